"""Exact integer CDF of a discretized logistic mixture over the 256 values of a sub-pixel.

The photo model (PixelCNN++-style, Salimans et al. 2017) gives each sub-pixel K logistic
components (location, 1/scale, mixture logit). Coding a value needs the CDF at its two bin
edges only, never a 256-entry table; ``find`` inverts it with an 8-round binary search.
Every operation here is on int64 numpy arrays and exact (+, -, *, floor >>, //,
comparisons, table lookups), so encoder and decoder agree on every machine
(DESIGN.md "Numerics rules").

Fixed point (all int64, N rows = sub-pixels, K components)
----------------------------------------------------------
* ``loc``       (N, K): location in pixel units (0..255 scale) * 2**LOC_FRAC (8), clipped to
                [-64, 320] pixel units.
* ``inv_scale`` (N, K): 1/scale in 1/pixel units * 2**INV_FRAC (16), clipped to [1, 2**24].
* ``weights``   (N, K): integers >= 0 summing to 2**WEIGHT_BITS (12) per row, from
                ``mixture_weights(logits)``, logits * 2**12 clipped to +-16 nats.

The CDF
-------
Lower edge of symbol x (x - 1/2, in LOC_FRAC units) minus the location, times 1/scale:
``((2x - 1) << 7 - loc) * inv_scale`` has 24 fractional bits; rounded to U_FRAC = 8 it is
the standardized position u, and the sigmoid table (u = -16..16 in steps of 2**-8: 8193
entries in [0, 2**16], non-decreasing, exactly 0 and 2**16 at the ends) gives each
component's CDF. Then

    G(x) = sum_k weights_k * sigmoid_k(x)          (<= 2**28)
    C(0) = 0,  C(256) = 2**24,  C(x) = ((G(x) * (2**24 - 256)) >> 28) + x   (1 <= x <= 255)

so every symbol has ``freq = C(x+1) - C(x) >= 1``: G is non-decreasing in x (weights >= 0,
inv_scale >= 1, a rounding shift and the table are monotone), the floors differ by >= 0
and the ``+ x`` adds 1 per step. The floor of 1 costs at most -log2(1 - 2**-16) = 2.2e-5
bits per symbol. (Internally x = 0 and 256 go through the same formula with x replaced by
-+2**21, which drives every u past the table's ends: G = 0 and G = 2**28 exactly.)

Coding a sub-pixel with ``vlaecodec.rans`` (two components at 100 and 140, scales 4 and 8):

>>> import numpy as np
>>> from vlaecodec import mixture, rans
>>> loc, inv = np.array([[100 << 8, 140 << 8]]), np.array([[1 << 14, 1 << 13]])
>>> w = mixture.mixture_weights(np.array([[0, -4096]]))          # logits 0 and -1 nat
>>> w.tolist()
[[2995, 1101]]
>>> st = rans.Stack(lanes=1)
>>> st.push(*mixture.start_freq(np.array([103]), loc, inv, w), mixture.PREC)
>>> st.pop(1, mixture.PREC, lambda cf, sl: mixture.find(cf, loc[sl], inv[sl], w[sl])).tolist()
[103]

Bounds (int64 never overflows): |x * (inv << 8)| <= 2**21 * 2**32 = 2**53 and the location
term < 2**41; G * (2**24 - 256) < 2**52; in ``mixture_weights`` exp * 2**12 <= 2**32.

The tables, and why they are the same everywhere
------------------------------------------------
``math.exp`` comes from the platform's libm, which may differ by one ulp across machines,
and a table entry near a rounding tie could then differ by one unit. So the tables are
computed with Python's ``decimal`` module (software arithmetic specified exactly by the
General Decimal Arithmetic spec, the same in the C ``_decimal`` and ``_pydecimal``): at 60
significant digits, q = exp(-1/256) is correctly rounded (``Context.exp``), q**i is
built by 8,192 multiplications, each exact then rounded (relative error < 1e-55, so an
entry could differ from the correctly rounded value only if the true value lay within
1e-48 of a half-integer), then rounded half-even to integers. The result is a pure function of this code, built once per process (~20 ms) on
first use; the tests pin its sha256 and check it against float math (within one unit).
Shipping the integers as a data file would do too; generating them needs no package data.
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

import numpy as np

# The clip ufunc itself (as in numerics.py): np.clip's Python dispatch costs more than
# the clipping of these small arrays. Same result: min(max(x, lo), hi).
try:
    from numpy._core.umath import clip
except ImportError:   # numpy < 2
    from numpy.core.umath import clip  # type: ignore[no-redef]

LEVELS = 256               # values of a sub-pixel
PREC = 24                  # coding precision: frequencies sum to 2**24
LOC_FRAC = 8
INV_FRAC = 16
U_FRAC = 8                 # standardized edge resolution: 2**-8
U_RANGE = 16 << U_FRAC     # u clipped to +-16
SIG_BITS = 16              # sigmoid table values in [0, 2**16]
WEIGHT_BITS = 12           # mixture weights sum to 2**12
LOGIT_FRAC = 12
LOGIT_CLIP = 16 << LOGIT_FRAC
EXP_SHIFT = LOGIT_FRAC - 8          # exp table in steps of 2**-8 nats
EXP_BITS = 20                       # exp(0) = 2**20
TABLE_STEPS = 2 * U_RANGE           # 8192: both tables step 2**-8 over 32 units
LOC_MIN, LOC_MAX = -64 << LOC_FRAC, 320 << LOC_FRAC
INV_MIN, INV_MAX = 1, 1 << 24

_SHIFT = LOC_FRAC + INV_FRAC - U_FRAC     # 16: raw product -> u
_SPARE = (1 << PREC) - LEVELS             # 2**24 - 256
_G_BITS = WEIGHT_BITS + SIG_BITS          # 28
_EDGE_FAR = 1 << 21                       # stands in for x = 0 / 256 (see docstring)
# x -> the multiplier used in the edge formula: -2**21, 1, ..., 255, 2**21
_XMUL = np.concatenate([[-_EDGE_FAR], np.arange(1, LEVELS), [_EDGE_FAR]]).astype(np.int64)
# x -> (multiplier of x, of x + 1) and (x, x + 1), columns 0..255: start_freq's two edges
_XPAIR = np.stack([_XMUL[:-1], _XMUL[1:]])
_XPLUS = np.stack([np.arange(LEVELS), np.arange(1, LEVELS + 1)]).astype(np.int64)
_TABLES: dict[str, np.ndarray] = {}


# ------------------------------------------------------------------ frozen tables

def _powers() -> list[Decimal]:
    """q**i for i = 0..8192, q = exp(-1/256), in 60-digit decimal arithmetic."""
    ctx = Context(prec=60, rounding=ROUND_HALF_EVEN)
    q = ctx.exp(ctx.divide(Decimal(-1), Decimal(1 << 8)))
    out, v = [], Decimal(1)
    for _ in range(TABLE_STEPS + 1):
        out.append(v)
        v = ctx.multiply(v, q)
    return out


def _round(ctx: Context, v: Decimal) -> int:
    return int(ctx.to_integral_value(v))


def _build() -> None:
    ctx = Context(prec=60, rounding=ROUND_HALF_EVEN)
    pw = _powers()
    one = Decimal(1 << SIG_BITS)
    # sigmoid(i / 256) for i = 0..4096, then the mirror: sigmoid(-u) = 1 - sigmoid(u)
    pos = [_round(ctx, ctx.divide(one, ctx.add(Decimal(1), pw[i]))) for i in range(U_RANGE + 1)]
    sig = [(1 << SIG_BITS) - v for v in reversed(pos[1:])] + pos
    exp = [_round(ctx, ctx.multiply(Decimal(1 << EXP_BITS), v)) for v in pw]
    _TABLES["sigmoid"] = np.array(sig, dtype=np.int64)
    _TABLES["exp"] = np.array(exp, dtype=np.int64)


def sigmoid_table() -> np.ndarray:
    """round(2**16 * sigmoid(i / 256)) for i = -4096..4096 (index i + 4096), int64."""
    if not _TABLES:
        _build()
    return _TABLES["sigmoid"]


def exp_table() -> np.ndarray:
    """round(2**20 * exp(-i / 256)) for i = 0..8192, int64."""
    if not _TABLES:
        _build()
    return _TABLES["exp"]


# ------------------------------------------------------------------ weights

def mixture_weights(logits) -> np.ndarray:
    """Fixed-point logits (N, K) (12 fractional bits, clipped to +-16 nats) -> integer
    weights (N, K) >= 0 summing to 2**12 per row: an integer softmax.

    e_k = exp_table[round((max - logit_k) / 2**4)] (the largest gets 2**20),
    w_k = floor(e_k * 2**12 / sum e); the first largest absorbs the remainder. A weight
    may be 0 (a component far below the best); ``cdf`` keeps every symbol >= 1 anyway."""
    lg = np.clip(np.asarray(logits, dtype=np.int64), -LOGIT_CLIP, LOGIT_CLIP)
    if lg.ndim != 2 or lg.shape[1] == 0:
        raise ValueError("logits must be (N, K) with K >= 1")
    d = lg.max(1, keepdims=True) - lg
    d += 1 << (EXP_SHIFT - 1)
    d >>= EXP_SHIFT                              # 0..8192
    e = exp_table()[d]
    w = (e << WEIGHT_BITS) // e.sum(1, keepdims=True)
    w[np.arange(len(w)), lg.argmax(1)] += (1 << WEIGHT_BITS) - w.sum(1)
    return w


# ------------------------------------------------------------------ the CDF

def _prepare(loc, inv_scale, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip the parameters, lay them out as (K, N) (a sum over K is then a sum of rows,
    several times faster in numpy than over a short last axis) and fold them into the edge
    formula: table index of x's lower edge = (x * B + A) >> 16, clipped to 0..8192, with
    B = inv << 8 and A = 2**15 (rounding) + 4096 << 16 (table offset) - (loc + 128) * inv.
    Returns (A, B, weights * (2**24 - 256)), each (K, N)."""
    loc, inv, w = np.asarray(loc), np.asarray(inv_scale), np.asarray(weights)
    if loc.ndim != 2 or loc.shape != inv.shape or loc.shape != w.shape:
        raise ValueError("loc, inv_scale and weights must be (N, K) arrays of one shape")
    if loc.dtype.kind not in "iu" or inv.dtype.kind not in "iu" or w.dtype.kind not in "iu":
        raise TypeError("loc, inv_scale and weights must be integer arrays")
    n, k = loc.shape
    a = np.empty((k, n), dtype=np.int64)
    b = np.empty((k, n), dtype=np.int64)
    wt = np.empty((k, n), dtype=np.int64)
    clip(loc.T, LOC_MIN, LOC_MAX, out=a)
    clip(inv.T, INV_MIN, INV_MAX, out=b)
    wt[...] = w.T
    if n and (wt.min() < 0 or (wt.sum(0) != 1 << WEIGHT_BITS).any()):
        raise ValueError(f"weights must be >= 0 and sum to 2**{WEIGHT_BITS} per row")
    wt *= _SPARE                                 # G * (2**24 - 256) in one sum (< 2**52)
    a += 1 << (LOC_FRAC - 1)
    a *= b
    np.subtract((1 << (_SHIFT - 1)) + (U_RANGE << _SHIFT), a, out=a)
    b <<= LOC_FRAC
    return a, b, wt


def _cdf(xm: np.ndarray, a: np.ndarray, b: np.ndarray, w: np.ndarray,
         sig: np.ndarray) -> np.ndarray:
    """((G * (2**24 - 256)) >> 28) for edge multipliers xm (..., N) (broadcast against
    the (K, ..., N) parameters from ``_prepare``); the caller adds x."""
    v = b * xm
    v += a
    v >>= _SHIFT
    s = sig.take(v, mode="clip")                 # clipping the index = clipping u to +-16
    s *= w                                       # w holds weights * (2**24 - 256)
    g = s.sum(0)
    g >>= _G_BITS
    return g


def _symbols(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or not (x.dtype.kind in "iu" or x.size == 0):
        raise ValueError("symbols and cf must be 1-d integer arrays")
    return x.astype(np.int64, copy=False)


def cdf(x, loc, inv_scale, weights) -> np.ndarray:
    """C(x) for per-row symbols x in 0..256 (N,) -> (N,) int64, out of 2**24."""
    x = _symbols(x)
    if len(x) and (x.min() < 0 or x.max() > LEVELS):
        raise ValueError("x must lie in 0..256")
    a, b, w = _prepare(loc, inv_scale, weights)
    c = _cdf(_XMUL[x], a, b, w, sigmoid_table())
    c += x
    return c


def start_freq(x, loc, inv_scale, weights) -> tuple[np.ndarray, np.ndarray]:
    """(C(x), C(x+1) - C(x)) for symbols x in 0..255: what ``rans.Stack.push`` takes."""
    x = _symbols(x)
    if (x >> 8).any():                           # x < 0 or x > 255
        raise ValueError("x must lie in 0..255")
    a, b, w = _prepare(loc, inv_scale, weights)
    # Both edges in one pass: (K, 2, N) against the edge multipliers of x and x + 1.
    c = _cdf(_XPAIR.take(x, axis=1), a[:, None], b[:, None], w[:, None], sigmoid_table())
    c += _XPLUS.take(x, axis=1)
    return c[0], c[1] - c[0]


def find(cf, loc, inv_scale, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, C(x), C(x+1) - C(x)) with C(x) <= cf < C(x+1), for cf in [0, 2**24) (N,):
    a binary search over 0..255, 8 rounds, all rows at once (the decoder's mirror of
    ``start_freq``): lo starts at 0 (C(0) = 0 <= cf) and round s tries lo + 2**s."""
    cf = _symbols(cf)
    if (cf >> PREC).any():                       # cf < 0 or cf >= 2**24
        raise ValueError("cf must lie in [0, 2**24)")
    a, b, w = _prepare(loc, inv_scale, weights)
    sig = sigmoid_table()
    lo = np.zeros(len(cf), dtype=np.int64)
    for step in (128, 64, 32, 16, 8, 4, 2, 1):
        mid = lo + step                          # 1..255: the formula needs no _XMUL
        c = _cdf(mid, a, b, w, sig)
        c += mid
        np.copyto(lo, mid, where=c <= cf)
    c = _cdf(_XPAIR.take(lo, axis=1), a[:, None], b[:, None], w[:, None], sig)
    c += _XPLUS.take(lo, axis=1)
    return lo, c[0], c[1] - c[0]


# ------------------------------------------------------------------ speed (python -m)

def _bench(rows: int = 300, k: int = 5, calls: int = 400, seed: int = 0, repeats: int = 3) -> dict:
    """Sub-pixels per second of start_freq + push and of pop + find, RGB-like data."""
    import time

    from vlaecodec.rans import Stack

    rng = np.random.default_rng(seed)
    center = rng.integers(0, 256, size=(calls, rows, 1))
    loc = ((center + rng.normal(0, 4, size=(calls, rows, k))) * (1 << LOC_FRAC)).astype(np.int64)
    scale = np.exp(rng.uniform(np.log(0.5), np.log(20), size=(calls, rows, k)))
    inv = np.rint((1 << INV_FRAC) / scale).astype(np.int64)
    w = np.stack([mixture_weights((rng.normal(0, 2, size=(rows, k)) * 4096).astype(np.int64))
                  for _ in range(calls)])
    x = np.clip(np.rint(center[..., 0] + rng.logistic(0, 3, size=(calls, rows))), 0, 255).astype(np.int64)
    push_s, pop_s = [], []
    for _ in range(repeats):                     # best of several: a shared machine is noisy
        st = Stack(rows)
        t0 = time.perf_counter()
        for i in range(calls):
            st.push(*start_freq(x[i], loc[i], inv[i], w[i]), PREC)
        t1 = time.perf_counter()
        bits = st.bits()
        out = []
        for i in reversed(range(calls)):
            out.append(st.pop(rows, PREC, lambda cf, sl, i=i: find(cf, loc[i][sl], inv[i][sl], w[i][sl])))
        t2 = time.perf_counter()
        assert np.array_equal(np.stack(out[::-1]), x) and st.bits() == 32
        push_s.append(t1 - t0)
        pop_s.append(t2 - t1)
    n = rows * calls
    return {"rows_per_call": rows, "K": k, "subpixels": n, "push_per_s": n / min(push_s),
            "pop_per_s": n / min(pop_s), "bits_per_subpixel": bits / n}


if __name__ == "__main__":
    for r in (300, 900):
        res = _bench(rows=r)
        print(f"rows/call {res['rows_per_call']}, K={res['K']}, {res['subpixels']} sub-pixels: "
              f"start_freq+push {res['push_per_s'] / 1e6:.2f} M/s, pop+find {res['pop_per_s'] / 1e6:.2f} M/s, "
              f"{res['bits_per_subpixel']:.3f} bits/sub-pixel")
