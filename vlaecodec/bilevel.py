"""Binary (1-bit) images of any size: an adaptive context model on the rANS stack.

Documents, scans and line art are mostly paper with a little ink, and what a pixel is
depends on its neighbours: the bi-level coders JBIG1 (ITU-T T.82) and JBIG2's generic
region (T.88) code each pixel with an adaptive binary model chosen by a template of
already coded neighbours. This module does the same with numpy, but codes a whole
*wavefront* of pixels at once (as ``photo_codec`` does), so the decoder's Python loop
runs once per wavefront step rather than once per pixel.

Order. With horizon ``HORIZON`` = h, pixel (i, j) is coded at step t = (h+1) i + j; every
pixel of a step is coded together. A template pixel (i + dy, j + dx) is known at step t
when (h+1) dy + dx < 0: the current row up to j-1, the row above up to j+h, two rows
above up to j+2h+1. Pixels outside the image read 0 (paper).

Model. A pixel's context is its ``TEMPLATE`` pixels as bits (bit k = template pixel k):
JBIG2's generic template 0 (16 pixels) first, then the nearest other known pixels, 256
in all: wide enough to see most of a glyph above and left of the pixel, so that glyphs
that repeat exactly (typeset text) are predicted from their earlier copies. ``LEVELS``
are nested prefixes of it (the first 10, 16, ... 256 pixels); levels of
up to ``DIRECT_BITS`` pixels index a table of counts directly, wider ones through a
multiplicative hash (``HASH_BITS`` bits; a collision only costs rate, both sides collide
alike). Every context holds integer counts (c0, c1), ``INC`` per pixel seen, and gives an
estimate of p(1) out of 2**PREC:

    level 0:  f = ((c1 + A0) << PREC) // (c0 + c1 + 2 A0)                (KT-like)
    level k:  f = ((c1 << PREC) + STRENGTH[k-1] * f_below) // (c0 + c1 + STRENGTH[k-1])

so a young wide context follows the narrower one below it and an old one its own counts;
a context seen only with ink (or only with paper) predicts it ever more surely, which is
how repeated glyphs, rules and box edges get cheap. A logistic mixer then adds the
levels' logits (``_stretch``, the inverse of ``_SQUASH``, a frozen integer table of the
logistic function) with integer weights (2**28 = 1), one weight set per how often the
two widest contexts were seen (0, 1, 2-3, 4-7, 8+ pixels) and whether they only ever
saw one value; the final f1 is ``_SQUASH`` of the weighted sum, clamped to
[1, 2**PREC - 1]. After a step, both sides add the step's pixels to the counts
(``np.add.at``: the pixels of a step all see the counts and weights as of the step's
start), halve a context's counts (rounding up) when their sum passes ``LIMIT`` (so the
model stays adaptive), and move the weights by err * logit * ``LR`` (rounded shifts).
p(1) = f1 / 2**PREC; the symbol 0 is the interval [0, 2**PREC - f1), 1 the rest.

Why it is exact. Contexts are bit patterns; counts, weights and estimates are integers
combined by sums, products, shifts and floor division in int64, none of which can
overflow (counts stay below 2**31, logits within +-4095, weights within +-2**30, so
every product is below 2**62); the logistic function is a table of integers written in
this file, joined by integer interpolation, and its inverse is a search in that table.
One function pair (``_Model.predict``/``update``) and one context reader (``_Canvas``)
serve both sides, and the rANS stack (``rans.py``) is exact integer arithmetic too. No
float decides a bit, so a file decodes the same on every machine.

Order of coding. The decoder pops steps first to last; the encoder must push them last to
first, yet its counts must evolve in decoder order. So it first runs the model forward
over all steps, reading contexts with the decoder's own code (``_Canvas``) and storing
each pixel's f1 and value (5 bytes a pixel), then pushes the steps in reverse.

Payload: ``VARIANT`` (1 byte) then the stack's words (``rans.Stack.to_words``, little-
endian uint32; ``lanes`` as ``lanes_for(H, W)``, a rotating stack). The image size is
the container's. Decoding checks that every word was used.

>>> import numpy as np
>>> x = (np.random.default_rng(0).random((9, 13)) < 0.2).astype(np.uint8)
>>> bool(np.array_equal(decode(encode(x), 9, 13), x))
True
"""
from __future__ import annotations

import numpy as np

from . import rans

VARIANT = 0             # first payload byte: the model below (a later one may add others)
HORIZON = 3             # wavefront: pixel (i, j) at step (h+1) i + j
# JBIG2's generic template 0 with its default adaptive pixels (16 pixels) ...
_JBIG2 = ((0, -1), (-1, 0), (0, -2), (-1, -1), (-1, 1), (-2, 0), (0, -3), (-1, -2),
          (-1, 2), (-2, -1), (-2, 1), (0, -4), (-1, 3), (-1, -3), (-2, 2), (-2, -2))


def _ring(n: int, h: int = HORIZON, first=_JBIG2) -> tuple:
    """``first``, then the nearest causal pixels not in it (by squared distance, then
    row, then column), n in all."""
    cand = [(dy, dx) for dy in range(-24, 1) for dx in range(-24, 25)
            if (h + 1) * dy + dx < 0 and (dy, dx) not in first]
    cand.sort(key=lambda p: (p[0] ** 2 + p[1] ** 2, p[0], p[1]))
    return tuple(first) + tuple(cand[:n - len(first)])


TEMPLATE = _ring(256)   # ... then the nearest others: 256 pixels within 13 of (i, j), the widest context
LEVELS = (10, 16, 24, 40, 64, 128, 256)   # each level's context: the first k template pixels
STRENGTH = (8, 4, 2, 2, 2, 2)   # how many counts the level below's estimate is worth to levels 1..
PREC = 24               # p(1) in units of 2**-PREC
INC = 2                 # counts added per pixel seen
A0 = 1                  # prior of a level-0 context: A0 counts each way (KT: INC / 2)
LIMIT = 1 << 14         # halve a context's counts when their sum passes this
DIRECT_BITS = 16        # levels up to this many pixels index their table directly ...
HASH_BITS = 22          # ... wider ones through a multiplicative hash of this many bits
_MULT = np.uint64(0x9E3779B97F4A7C15)
LR = 32                 # mixer learning rate: a weight (2**28 = 1) moves by st * err * LR / 2**(PREC - 6)
LANES = 32              # most rANS lanes (each used lane costs 32 to 64 bits)

# The logistic function, frozen: p = 2**24 / (1 + exp(-d / 256)) rounded, at d = -4096,
# -4032, .., 4096 (computed once with float64 and written here; never recomputed).
_KNOTS = np.array([2, 2, 3, 4, 5, 7, 8, 11, 14, 18, 23, 30, 38, 49, 63, 80, 103, 132, 170, 218, 280, 360, 462, 593, 762, 978, 1256, 1612, 2070, 2658, 3413, 4382, 5626, 7224, 9274, 11906, 15285, 19621, 25186, 32325, 41484, 53229, 68286, 87579, 112287, 143906, 184330, 235949, 301759, 385496, 491778, 626241, 795674, 1008087, 1272689, 1599699, 1999893, 2483820, 3060592, 3736288, 4512088, 5382488, 6334081, 7345459, 8388608, 9431757, 10443135, 11394728, 12265128, 13040928, 13716624, 14293396, 14777323, 15177517, 15504527, 15769129, 15981542, 16150975, 16285438, 16391720, 16475457, 16541267, 16592886, 16633310, 16664929, 16689637, 16708930, 16723987, 16735732, 16744891, 16752030, 16757595, 16761931, 16765310, 16767942, 16769992, 16771590, 16772834, 16773803, 16774558, 16775146, 16775604, 16775960, 16776238, 16776454, 16776623, 16776754, 16776856, 16776936, 16776998, 16777046, 16777084, 16777113, 16777136, 16777153, 16777167, 16777178, 16777186, 16777193, 16777198, 16777202, 16777205, 16777208, 16777209, 16777211, 16777212, 16777213, 16777214, 16777214], dtype=np.int64)
STRETCH_MAX = 4095      # |logit| in units of 1/256: the mixer's domain


def _squash_table() -> np.ndarray:
    """p(d) for d = -4096 .. 4096 (units of 1/256 nat), 2**24 scale: the knots joined by
    straight lines in exact integer arithmetic."""
    d = np.arange(-4096, 4097, dtype=np.int64) + 4096
    k, r = d >> 6, d & 63
    hi = np.minimum(k + 1, len(_KNOTS) - 1)
    return (_KNOTS[k] * (64 - r) + _KNOTS[hi] * r + 32) >> 6


_SQUASH = _squash_table()


def _stretch(f: np.ndarray) -> np.ndarray:
    """The inverse of the squash table: the least d with squash(d) >= f, in -4095..4095."""
    return np.clip(np.searchsorted(_SQUASH, f) - 4096, -STRETCH_MAX, STRETCH_MAX)


MAX_TEMPLATE = 512


class BilevelError(ValueError):
    """A payload that this decoder cannot have written (damaged or truncated)."""


def lanes_for(H: int, W: int, h: int = HORIZON) -> int:
    """rANS lanes: one per 2**15 pixels (each used lane costs 32 to 64 bits, which a small
    image feels), at most LANES, and no more than a wavefront has pixels."""
    return max(1, min(LANES, (H * W) >> 15, H, (W + h) // (h + 1)))


def steps(H: int, W: int, h: int = HORIZON) -> int:
    return W + (h + 1) * (H - 1)


def step_pixels(t: int, H: int, W: int, h: int = HORIZON) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels coded at step t, rows increasing (``photo_codec.Schedule``)."""
    lo = max(0, -(-(t - W + 1) // (h + 1)))
    hi = min(H - 1, t // (h + 1))
    i = np.arange(lo, hi + 1)
    return i, t - (h + 1) * i


def _mask(k: int) -> np.uint64:
    return np.uint64((1 << min(k, 64)) - 1)


def _bucket(n: np.ndarray) -> np.ndarray:
    """Counts seen (in pixels) -> 0, 1, 2-3, 4-7, 8+ as 0..4."""
    return (n >= 1).astype(np.int64) + (n >= 2) + (n >= 4) + (n >= 8)


class _Model:
    """Counts of every level's contexts, the estimates they give, and a logistic mixer
    of those estimates.

    Level 0's estimate is KT-like, ((c1 + A0) << PREC) // (c0 + c1 + 2 A0); level k's uses
    level k-1's as a prior worth STRENGTH[k-1] counts. The mixer adds the estimates'
    logits (frozen integer tables), weighted by integer weights (2**28 = 1) chosen by how
    often the two widest contexts were seen and whether they always saw the same value,
    and learns the weights online (both sides, after each step)."""

    def __init__(self, template=TEMPLATE, levels=LEVELS, strength=STRENGTH, prec=PREC, inc=INC,
                 a0=A0, limit=LIMIT, h=HORIZON, direct_bits=DIRECT_BITS, hash_bits=HASH_BITS, lr=LR,
                 mix=True, wmax=1 << 30):
        for dy, dx in template:
            if not (dy <= 0 and (h + 1) * dy + dx < 0):
                raise ValueError(f"template pixel {(dy, dx)} is not known before its pixel")
        if not (len(template) <= MAX_TEMPLATE and list(levels) == sorted(levels) and levels[-1] == len(template)
                and len(strength) == len(levels) - 1 and levels[0] <= direct_bits):
            raise ValueError(f"levels: increasing prefixes of a template of at most {MAX_TEMPLATE} pixels")
        self.template, self.levels, self.strength = tuple(template), tuple(levels), tuple(strength)
        self.prec, self.inc, self.a0, self.limit, self.h = prec, inc, a0, limit, h
        self.direct_bits, self.hash_bits, self.lr, self.mix = direct_bits, hash_bits, lr, mix
        self.wmax = wmax
        self.n = [np.zeros(2 << min(k, hash_bits if k > direct_bits else k), dtype=np.int32)
                  for k in levels]
        self.inputs = len(levels) + 1                     # the levels' logits and a bias
        self.w = np.zeros((100, self.inputs), dtype=np.int64)
        self.w[:, len(levels) - 1] = 1 << 28              # start as the widest level alone

    def index(self, ctx: np.ndarray) -> list[np.ndarray]:
        """Each level's table index (times 2) of pixels with contexts ``ctx`` ((n, words)
        uint64, as ``_Canvas.contexts``): its first k bits, or their hash (uint64 products
        wrap modulo 2**64, the same everywhere)."""
        out = []
        w0 = ctx[:, 0]
        for k in self.levels:
            c = w0 & _mask(k)
            for i in range(1, -(-k // 64)):              # wider than a word: hash word by word
                c = c * _MULT + (ctx[:, i] & _mask(k - 64 * i))
            if k > self.direct_bits:
                c = (c * _MULT) >> np.uint64(64 - self.hash_bits)
            out.append(2 * c.astype(np.int64))
        return out

    def predict(self, idx: list[np.ndarray]) -> tuple[np.ndarray, tuple]:
        """(f1, state for ``update``): f1 (int64, in [1, 2**prec - 1]) from the levels."""
        c = idx[0]
        n0, n1 = self.n[0][c].astype(np.int64), self.n[0][c + 1].astype(np.int64)
        f = ((n1 + self.a0) << self.prec) // (n0 + n1 + 2 * self.a0)
        est, seen = [f], []
        for n, c, a in zip(self.n[1:], idx[1:], self.strength):
            n0, n1 = n[c].astype(np.int64), n[c + 1].astype(np.int64)
            f = ((n1 << self.prec) + a * f) // (n0 + n1 + a)
            est.append(f)
            seen.append((n0, n1))
        if not self.mix:
            return np.clip(f, 1, (1 << self.prec) - 1), None
        st = np.stack([_stretch(e << (24 - self.prec)) for e in est] + [np.full(len(f), 256, np.int64)], 1)
        sel = np.zeros(len(f), dtype=np.int64)
        for n0, n1 in seen[-2:]:
            sel = sel * 10 + 2 * _bucket((n0 + n1) // self.inc) + ((n0 == 0) | (n1 == 0))
        dot = np.clip((self.w[sel] * st).sum(1) >> 28, -STRETCH_MAX, STRETCH_MAX)
        p = _SQUASH[dot + 4096] >> (24 - self.prec)
        return np.clip(p, 1, (1 << self.prec) - 1), (st, sel, p)

    def update(self, idx: list[np.ndarray], bits: np.ndarray, state) -> None:
        """Add pixels (indices, values) to the counts, halving contexts over the limit;
        move the mixer's weights."""
        b = bits.astype(np.int64)
        for n, c in zip(self.n, idx):
            np.add.at(n, c + b, self.inc)
            tot = n[c] + n[c + 1]
            over = tot > self.limit
            if over.any():
                k = c[over]
                n[k] = (n[k] + 1) >> 1
                n[k + 1] = (n[k + 1] + 1) >> 1
        if state is not None:
            st, sel, p = state
            err = ((b << self.prec) - p) * self.lr
            sh = self.prec - 6                                    # weights: 2**28 = 1
            delta = (st * err[:, None] + (1 << (sh - 1))) >> sh  # rounded: no drift from tiny errors
            np.add.at(self.w.reshape(-1), (sel[:, None] * self.inputs + np.arange(self.inputs)).ravel(),
                      delta.ravel())
            np.clip(self.w, -(1 << 28), self.wmax, out=self.w)


def _pads(template) -> tuple[int, int, int]:
    top = max(-dy for dy, _ in template)
    left = max(max(-dx for _, dx in template), 0)
    right = max(max(dx for _, dx in template), 0)
    return top, left, right


class _Canvas:
    """The image with a margin of paper (0) around it, flat, and the wavefront steps over
    it: both sides read contexts from here, the decoder writing each step's pixels as it
    goes. A context is the template pixels as bits, bit k = template pixel k."""

    def __init__(self, H: int, W: int, template, h: int):
        self.H, self.W, self.h = H, W, h
        self.top, self.left, right = _pads(template)
        self.Wp = W + self.left + right
        self.img = np.zeros((H + self.top) * self.Wp, dtype=np.uint8)
        self.offs = np.array([dy * self.Wp + dx for dy, dx in template], dtype=np.int64)
        rows = np.arange(H, dtype=np.int64)
        self.row_base = (rows + self.top) * self.Wp + self.left - (h + 1) * rows

    def view(self) -> np.ndarray:
        """The image part (H, W) of the canvas (a view)."""
        return self.img.reshape(self.H + self.top, self.Wp)[self.top:, self.left:self.left + self.W]

    def steps(self):
        """Each step's flat canvas indices of its pixels (rows increasing), first to last."""
        H, W, h = self.H, self.W, self.h
        for t in range(steps(H, W, h)):
            lo = max(0, -(-(t - W + 1) // (h + 1)))
            hi = min(H - 1, t // (h + 1))
            yield self.row_base[lo:hi + 1] + t          # (i, t - (h+1) i) for i = lo .. hi

    def contexts(self, base: np.ndarray) -> np.ndarray:
        g = self.img[base[:, None] + self.offs]                       # (n, pixels) of 0/1
        packed = np.packbits(g, axis=1, bitorder="little")            # bit k = column k
        words = -(-len(self.offs) // 64)
        if packed.shape[1] < 8 * words:
            packed = np.pad(packed, ((0, 0), (0, 8 * words - packed.shape[1])))
        return np.ascontiguousarray(packed).view("<u8")                # (n, words) uint64


def contexts(bits: np.ndarray, template=TEMPLATE) -> np.ndarray:
    """Every pixel's context ((H, W, words) uint64, bit k % 64 of word k // 64 = template
    pixel k) computed for the whole image at once: a second way to the contexts the steps
    read, for tests."""
    H, W = bits.shape
    top, left, right = _pads(template)
    p = np.zeros((H + top, W + left + right), dtype=np.uint64)
    p[top:, left:left + W] = bits
    ctx = np.zeros((H, W, -(-len(template) // 64)), dtype=np.uint64)
    for k, (dy, dx) in enumerate(template):
        ctx[..., k // 64] |= p[top + dy:top + dy + H, left + dx:left + dx + W] << np.uint64(k % 64)
    return ctx


def forward(bits: np.ndarray, model: _Model | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The encoder's model pass, in decoder order: (f1 of every pixel in coding order
    (uint32), the pixels' values in that order (uint8), each step's start in them)."""
    H, W = bits.shape
    m = model or _Model()
    cv = _Canvas(H, W, m.template, m.h)
    cv.view()[:] = bits
    f1 = np.empty(H * W, dtype=np.uint32)
    x = np.empty(H * W, dtype=np.uint8)
    bounds = np.zeros(steps(H, W, m.h) + 1, dtype=np.int64)
    pos = 0
    for t, base in enumerate(cv.steps()):
        idx = m.index(cv.contexts(base))
        n = len(base)
        xs = cv.img[base]
        f1[pos:pos + n], state = m.predict(idx)
        x[pos:pos + n] = xs
        m.update(idx, xs, state)
        pos += n
        bounds[t + 1] = pos
    return f1, x, bounds


def code_length(bits: np.ndarray, model: _Model | None = None) -> float:
    """The model's ideal code length in bits (float: for tuning and reports only)."""
    m = model or _Model()
    f1, x, _ = forward(np.asarray(bits, dtype=np.uint8), m)
    f = np.where(x == 1, f1.astype(np.float64), float(1 << m.prec) - f1)
    return float(np.sum(m.prec - np.log2(f)))


def _check(bits) -> np.ndarray:
    bits = np.asarray(bits)
    if bits.ndim != 2 or bits.size == 0:
        raise ValueError("a binary image is a non-empty 2-d array")
    if bits.dtype.kind not in "biu" or bits.min() < 0 or bits.max() > 1:
        raise ValueError("a binary image holds only 0 and 1")
    return bits.astype(np.uint8, copy=False)


def encode(bits: np.ndarray) -> bytes:
    """A 2-d array of 0/1 (any size) -> payload bytes."""
    bits = _check(bits)
    H, W = bits.shape
    f1, x, bounds = forward(bits)
    full = np.int64(1 << PREC)
    st = rans.Stack(lanes_for(H, W), rotate=True)
    for t in range(len(bounds) - 2, -1, -1):          # last step first: the decoder pops it last
        a, b = bounds[t], bounds[t + 1]
        f, one = f1[a:b].astype(np.int64), x[a:b] == 1
        st.push(np.where(one, full - f, 0), np.where(one, f, full - f), PREC)
    return bytes([VARIANT]) + st.to_words().astype("<u4").tobytes()


def decode(payload: bytes, H: int, W: int, trace: list | None = None) -> np.ndarray:
    """Payload bytes -> (H, W) uint8 array of 0/1; BilevelError if the payload cannot be
    what ``encode`` wrote. ``trace``: if a list, each step's f1 (uint32) is appended (tests
    check that the encoder's ``forward`` computed the same)."""
    if len(payload) < 5 or (len(payload) - 1) % 4:
        raise BilevelError("damaged binary record (payload is not a variant byte and whole words)")
    if payload[0] != VARIANT:
        raise BilevelError(f"binary record variant {payload[0]} is not supported")
    try:
        st = rans.Stack.from_words(np.frombuffer(payload, "<u4", offset=1).astype(np.uint32),
                                   lanes_for(H, W), rotate=True)
    except ValueError as e:
        raise BilevelError(f"damaged binary record ({e})") from None
    m = _Model()
    cv = _Canvas(H, W, m.template, m.h)
    full = np.int64(1 << PREC)
    for base in cv.steps():
        idx = m.index(cv.contexts(base))
        f1, state = m.predict(idx)
        if trace is not None:
            trace.append(f1.astype(np.uint32))
        f0 = full - f1

        def find(cf, sl, f0=f0, f1=f1):
            one = cf >= f0[sl]
            return one.astype(np.uint8), np.where(one, f0[sl], 0), np.where(one, f1[sl], f0[sl])

        x = st.pop(len(base), PREC, find)
        cv.img[base] = x
        m.update(idx, x, state)
    if st.bits() != rans.WORD_BITS or st._pos != 0:
        raise BilevelError("damaged binary record (words left over after the last pixel)")
    return cv.view().copy()
