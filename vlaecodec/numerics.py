"""Exact arithmetic: everything that makes the encoder and the decoder compute the
same numbers, on every machine.

Why this module exists
----------------------
Bits-back decoding fails completely if the decoder's probabilities differ from the
encoder's by one unit in the last place, and float kernels differ across CPUs (AVX-512,
AVX2, SSE, NEON, oneDNN, MKL, OpenBLAS all round differently). So no float result that
could round decides a coded symbol. Training is float; ``freeze.py`` turns a trained model
into integers once, and the coding path computes with integers only (numpy, no torch).

The arithmetic (the whole contract, in words)
---------------------------------------------
* **Fixed point.** An activation is an integer ``a`` meaning ``a * 2**-FRAC``. Arrays hold
  these integers in float64, because numpy's float64 GEMM is fast (BLAS) while its
  integer matmul is not, and float64 represents every integer below 2**53 exactly.
* **Layers.** ``y = W x + b`` is ``acc = X @ Wq + bq`` followed by ``rescale(acc, s)``:
  ``floor(acc * 2**-s + 1/2)`` (a rounding right shift) clipped to ``[-ACT_LIMIT,
  ACT_LIMIT]``. Every layer's input is within ``2**19`` (pixels: ``(L-1) * 2**12``), so
  every partial sum is an integer below ``sum|Wq| * 2**19 + |bias|`` per output; each
  model file is checked, when frozen and again when loaded, to keep that below 2**52 in
  every layer (with the bias offsets of the fused forms below). Then each addition
  inside the GEMM is exact *in any order, blocked or not, with or without FMA*: the
  result is the same integer on every IEEE-754 machine, any BLAS, any thread count.
  Multiplying by a power of two, adding 1/2 and ``floor`` are exact too.
* **Nonlinearities** are frozen lookup tables indexed by those integers (ELU, the pixel
  sigmoid, exp(-log sigma), the Gaussian CDF). They are computed once at freeze time and
  stored in the model file, so no exp/log/erf is evaluated at coding time.
* **Probabilities** reach the entropy coders as integer frequencies: the arithmetic coder
  takes them as Python ints; constriction takes them as float64 arrays that hold them
  exactly (integer frequencies, or f / 2**16 for a binary pixel), which its
  ``perfect=False`` models turn into fixed point by sums, one division and
  multiplications (basic IEEE operations, identical everywhere).

Latents
-------
Bits-back codes z on a uniform grid ``z = k * LATENT_STEP`` (a power of two, frozen per
model), ``|k| <= K``. The posterior N(mu, sigma) and the prior N(m, 1) become integer
frequency tables over the 2K+1 grid cells by differencing the CDF table at the cell
edges, whose standardized positions are computed in fixed point.
"""
from __future__ import annotations

import math

import numpy as np

FRAC = 12                  # fractional bits of every activation
ONE = 1 << FRAC
ACT_LIMIT = float(1 << 19)  # saturation: |activation| <= 128.0
WEIGHT_BITS = 15           # |quantized weight| <= 2**15
EXACT_LIMIT = 2.0 ** 52    # every partial sum must stay below this

# Lookup-table ranges (in units of 2**-FRAC).
ELU_RANGE = 16 * ONE       # exp(-16) - 1 rounds to -1 at FRAC bits
SIGMOID_RANGE = 16 * ONE   # pixel logits are clipped to +-16
PHI_RANGE = 8 * ONE        # standardized CDF arguments are clipped to +-8
LOG_STD_MIN, LOG_STD_MAX = -7 * ONE, 2 * ONE   # the encoder's clamp, as in vlae.py

PIXEL_FREQ_BITS = 16       # binary pixel frequencies: P(x=1) = f / 2**16, 1 <= f < 2**16
# 8-bit pixels: 256-way categorical frequencies summing to 2**24, each >= 1. (With a
# 16-bit total, the floor of 1 per level alone would cost 256/2**16 of the mass: ~0.5%
# of an 8-bit MNIST file. At 2**24 it costs 0.002%.)
CAT_FREQ_BITS = 24
# exp(-d) for d = (max logit - logit) >= 0, indexed by d >> EXP_SHIFT (steps of 2**-8
# nats: relative error below 0.4%, a cost of ~1e-5 bits per pixel), 20-bit values,
# 16 nats long (beyond it every weight is 0 and a level keeps only its floor of 1).
EXP_SHIFT = 4
EXP_BITS = 20
EXP_ENTRIES = (16 * ONE >> EXP_SHIFT) + 1
CDF_BITS = 24              # Gaussian CDF table resolution
INV_SIGMA_FRAC = 16        # 1/sigma is stored with 16 fractional bits


# --------------------------------------------------------------- primitives

# The clip ufunc itself: np.clip's Python dispatch costs more than clipping the small
# arrays of a decoder step (1.1 us against 2.6 us a call; ~400,000 calls per 5,000
# digits). Same result: min(max(x, lo), hi).
try:
    from numpy._core.umath import clip
except ImportError:   # numpy < 2
    from numpy.core.umath import clip  # type: ignore[no-redef]


def rescale(acc: np.ndarray, shift: int) -> np.ndarray:
    """Rounding right shift by ``shift`` bits with saturation, in place; exact."""
    if shift:
        acc *= 2.0 ** -shift
    acc += 0.5
    np.floor(acc, out=acc)
    clip(acc, -ACT_LIMIT, ACT_LIMIT, out=acc)
    return acc


def lookup(table: np.ndarray, v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """table[clip(v, lo, hi) - lo] for integer-valued float arrays ``v``."""
    idx = clip(v, lo, hi)
    idx -= lo
    return table[idx.astype(np.intp)]


def elu_table(stored: np.ndarray) -> np.ndarray:
    """The stored ELU table (values at v = -ELU_RANGE..0) extended by the identity up to
    ACT_LIMIT: index v + ELU_RANGE gives ELU(v) for every v in [-ELU_RANGE, ACT_LIMIT]."""
    return np.concatenate([np.asarray(stored, dtype=np.float64), np.arange(1, ACT_LIMIT + 1)])


def elu(y: np.ndarray, table: np.ndarray) -> np.ndarray:
    """ELU in fixed point (saturating at -1 below -ELU_RANGE); ``table`` from ``elu_table``."""
    idx = clip(y, -ELU_RANGE, ACT_LIMIT)
    idx += ELU_RANGE
    return table[idx.astype(np.intp)]


# -------------------------------------------------------- frozen tables
# Built with float math once, at freeze time, and stored in the model file: the coding
# path only indexes them. (Building them on each machine could differ in a last bit.)

def build_tables(levels: int = 2) -> dict[str, np.ndarray]:
    j = np.arange(-ELU_RANGE, 1, dtype=np.float64)
    elu_t = np.rint(np.expm1(j / ONE) * ONE)
    s = np.arange(-SIGMOID_RANGE, SIGMOID_RANGE + 1, dtype=np.float64) / ONE
    total = 1 << PIXEL_FREQ_BITS
    sig = np.clip(np.rint(total / (1.0 + np.exp(-s))), 1, total - 1)
    u = np.arange(-PHI_RANGE, PHI_RANGE + 1, dtype=np.float64) / ONE
    phi = np.rint(0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in u]) * (1 << CDF_BITS))
    ls = np.arange(LOG_STD_MIN, LOG_STD_MAX + 1, dtype=np.float64) / ONE
    inv_sigma = np.rint(np.exp(-ls) * (1 << INV_SIGMA_FRAC))
    out = {"lut.elu": elu_t.astype(np.int32), "lut.sigmoid": sig.astype(np.int32),
           "lut.phi": phi.astype(np.int32), "lut.inv_sigma": inv_sigma.astype(np.int32)}
    if levels > 2:
        i = np.arange(EXP_ENTRIES, dtype=np.float64)
        e = np.rint(np.exp(-i * (2 ** EXP_SHIFT / ONE)) * (1 << EXP_BITS))
        e[-1] = 0.0
        out["lut.exp"] = e.astype(np.int32)
    return out


def check_tables(t: dict[str, np.ndarray]) -> None:
    """Shape and sanity checks a loaded model's tables must pass."""
    want = {"lut.elu": ELU_RANGE + 1, "lut.sigmoid": 2 * SIGMOID_RANGE + 1,
            "lut.phi": 2 * PHI_RANGE + 1, "lut.inv_sigma": LOG_STD_MAX - LOG_STD_MIN + 1}
    for k, n in want.items():
        a = t.get(k)
        if a is None or a.shape != (n,):
            raise ValueError(f"lookup table {k} is missing or has the wrong size")
    if t["lut.elu"][-1] != 0 or np.any(np.diff(t["lut.elu"]) < 0):
        raise ValueError("lookup table lut.elu is not an ELU")
    if np.any(np.diff(t["lut.phi"]) < 0) or t["lut.phi"][0] < 0 or t["lut.phi"][-1] > 1 << CDF_BITS:
        raise ValueError("lookup table lut.phi is not a CDF")
    sig = t["lut.sigmoid"]
    if sig.min() < 1 or sig.max() >= 1 << PIXEL_FREQ_BITS:
        raise ValueError("lookup table lut.sigmoid is out of range")
    e = t.get("lut.exp")
    if e is not None and (e.shape != (EXP_ENTRIES,) or e[0] != 1 << EXP_BITS or e.min() < 0
                          or np.any(np.diff(e) > 0)):
        raise ValueError("lookup table lut.exp is not a decreasing exponential")


def categorical_freqs(logits: np.ndarray, exp_t: np.ndarray, shift: int = EXP_SHIFT) -> np.ndarray:
    """Fixed-point logits (N, L) -> integer frequencies (N, L) summing to 2**CAT_FREQ_BITS,
    each >= 1: a softmax in integers (int64 throughout, so exact on every machine).

    w_k = exp_t[(max - logit_k) >> shift] (the most likely level gets 2**EXP_BITS),
    f_k = 1 + floor(w_k * (T - L) / sum w), and what the floors leave goes to the first
    most likely level. Products stay below 2**EXP_BITS * 2**CAT_FREQ_BITS = 2**44.
    (``shift``, ``exp_t``: another scale, e.g. log2-weights in units of 2**-16 bits with
    ``exp2_table``.)"""
    lg = logits.astype(np.int64)
    n_levels = lg.shape[1]
    d = (lg.max(1, keepdims=True) - lg) >> shift
    np.minimum(d, len(exp_t) - 1, out=d)
    w = exp_t[d]
    spare = (1 << CAT_FREQ_BITS) - n_levels
    f = 1 + (w * spare) // w.sum(1, keepdims=True)
    f[np.arange(len(f)), lg.argmax(1)] += (1 << CAT_FREQ_BITS) - f.sum(1)
    return f


# ---------------------------------------------------- code lengths and weights
# Monte Carlo bits-back draws a particle index from importance weights that both sides
# compute from integer frequencies, so code lengths and their exponentials must come out
# as the same integers everywhere:
# * -log2(f / 2**16) for 16-bit f, in units of 2**-16 bits: NLL_Q16. Its entries sit at
#   least 5e-6 from a rounding tie (tests/test_codec.py), so any log2 correct to ~1e-9
#   builds the same table; longer frequencies use their top 16 bits (``nll_q16``).
# * 2**(-i / 2**(16 - EXP2_SHIFT)) * 2**EXP_BITS: ``exp2_table``, computed in decimal
#   arithmetic (software, correctly rounded to 30 digits), never with the machine's libm.
NLL_Q16 = np.concatenate([[0.0], np.rint(-np.log2(np.arange(1, 1 << 16) / (1 << 16)) * 65536)]).astype(np.int64)
EXP2_SHIFT = 8                 # weights in steps of 2**-8 bits
EXP2_ENTRIES = (24 << 8) + 1   # 24 bits long; the last entry is 0
_EXP2: list[np.ndarray] = []


def nll_q16(f: np.ndarray, bits: int) -> np.ndarray:
    """-log2(f / 2**bits) in units of 2**-16 bits (int64), for integer frequencies
    1 <= f <= 2**bits (0 counts as 1): exact for f < 2**16, else from f's top 16 bits."""
    f = np.maximum(np.asarray(f, dtype=np.int64), 1)
    e = np.frexp(f.astype(np.float64))[1].astype(np.int64)     # bit length (exact for ints)
    s = np.maximum(e - 16, 0)
    return NLL_Q16[f >> s] + (bits - 16 - s) * 65536


def exp2_table() -> np.ndarray:
    """2**EXP_BITS * 2**(-i / 256) for i < EXP2_ENTRIES - 1, then 0 (int64)."""
    if not _EXP2:
        from decimal import ROUND_HALF_EVEN, Context, Decimal
        ctx = Context(prec=50, rounding=ROUND_HALF_EVEN)   # 6,144 products lose < 1e-45
        step = ctx.power(Decimal(2), ctx.divide(Decimal(-1), Decimal(256)))
        v, vals = Decimal(1 << EXP_BITS), []
        for _ in range(EXP2_ENTRIES - 1):
            vals.append(int(v.to_integral_value(rounding=ROUND_HALF_EVEN)))
            v = ctx.multiply(v, step)
        _EXP2.append(np.array(vals + [0], dtype=np.int64))
    return _EXP2[0]


# --------------------------------------------------------------- latents

class LatentGrid:
    """z = k * step for |k| <= K (step = 2**step_log2), with integer CDF tables for
    the posterior N(mu, sigma) and the prior N(m, 1) over the 2K+1 cells."""

    def __init__(self, step_log2: int, max_index: int, phi: np.ndarray, inv_sigma: np.ndarray):
        if not -FRAC + 1 <= step_log2 <= 0 or not 1 <= max_index <= 1 << 16:
            raise ValueError("latent grid out of range")
        self.step_log2, self.K = step_log2, max_index
        self.unit = float(1 << (FRAC + step_log2))   # one grid step in fixed point
        k = np.arange(-max_index, max_index, dtype=np.float64)
        # Inner edges between cells k and k+1 at (k + 1/2) * step, in fixed point (exact).
        self.edges = (2 * k + 1) * (self.unit / 2)
        self.phi = phi.astype(np.float64)
        self.inv_sigma = inv_sigma.astype(np.float64)
        self.size = 2 * max_index + 1

    def values(self, k: np.ndarray) -> np.ndarray:
        """Grid indices -> fixed-point latents."""
        return np.asarray(k, dtype=np.float64) * self.unit

    def _freqs(self, u: np.ndarray) -> np.ndarray:
        """Standardized edge positions (..., 2K) -> integer frequencies (..., 2K+1)."""
        cdf = lookup(self.phi, u, -PHI_RANGE, PHI_RANGE)
        out = np.empty(cdf.shape[:-1] + (self.size,))
        out[..., 0] = cdf[..., 0]
        np.subtract(cdf[..., 1:], cdf[..., :-1], out=out[..., 1:-1])
        out[..., -1] = float(1 << CDF_BITS) - cdf[..., -1]
        return out

    def posterior_freqs(self, mean: np.ndarray, log_std: np.ndarray) -> np.ndarray:
        """Frequencies of q(z|x) per cell: (N,) mean, log_std (fixed point) -> (N, 2K+1)."""
        inv = lookup(self.inv_sigma, log_std, LOG_STD_MIN, LOG_STD_MAX)
        u = (self.edges[None, :] - mean[:, None]) * inv[:, None]   # < 2**20 * 2**27: exact
        return self._freqs(rescale(u, INV_SIGMA_FRAC))

    def prior_freqs(self, m: np.ndarray) -> np.ndarray:
        """Frequencies of N(m, 1) per cell: (N,) conditional means -> (N, 2K+1)."""
        return self._freqs(self.edges[None, :] - m[:, None])
