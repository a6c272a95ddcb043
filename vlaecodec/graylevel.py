"""8-bit gray images of any size: an adaptive context-mixing coder on the rANS stack.

Charts, screenshots, tables, terminals and vector wallpapers are flat areas, sharp edges,
repeated anti-aliased glyphs and smooth gradients. WebP lossless codes them with a
predictor per tile and Huffman codes; JPEG-XL's modular mode (context trees over local
gradients, a weighted predictor) with adaptive contexts. This module codes each pixel as
a few binary decisions, each with an adaptive probability mixed from several context
models, in the manner of ``bilevel.py`` (whose squash table, stretch, lane count and
wavefront step count it reuses, so that module's format does not change).

Order. Horizon 1: pixel (i, j) is coded at step t = 2 i + j; every pixel of a step is
coded together, so the decoder's Python loop runs once per step and decision (not per
pixel). At step t the row above is known up to j+1 and two rows above up to j+3, so a
pixel sees W, WW, NW, N, NE, NN and NNE. Pixels outside the image read 0.

Decisions. With P the weighted prediction below, a pixel x is coded as

    x == W?   then, if N != W, x == N?   then, if P is neither, x == P?
    then the sign of x - P (unless P is 0 or 255), then m = |x - P| >= 1 Elias-gamma
    style: bits "m > 2**k" for k = 0, 1, .. (unary exponent), then the bits of m within
    its range (2**(k-1), 2**k], most significant first,

skipping every bit that the range [0, 255] already decides (both sides skip alike). The
decision reached (``node``: which question, and for the magnitude its exponent and bit
position) is part of every context.

Prediction (integer only, in the spirit of JPEG-XL's weighted predictor): four
predictors (W, N, W + N - NW and W + NE - N, clamped to 0..255) are averaged with weights
2**24 // (1 + e)**2, e being the predictor's absolute errors summed over the neighbours W,
N, NW and NE (stored per pixel as the steps go); P is the rounded quotient.

Context models (``MODELS``), each a hashed table (``HASH_BITS`` bits) of integer counts
(c0, c1), ``INC`` per decision seen, halved (rounding up) when their sum passes
``LIMIT``; each hashes the node with:

0. the equality pattern of W, N, NW, NE, WW, NN, NNE and P;
1. the quantized local gradients NE-N, N-NW, NW-W, W-WW, N-NN (9 levels each, LOCO-I);
2. the exact values of W, N, NW, NE (repeated glyph fragments, palettes);
3. the exact values of W, N, NW, NE, WW, NN, NNE;
4. the quantized activity (the stored residuals x - P of W, N, NW, NE) and the signs of
   the residuals of W and N, and the quantized error of the best predictor;
5. the exact values of P and W with the quantized N - W.

Each model's estimate f = ((c1 + A0) << PREC) // (c0 + c1 + 2 A0) goes into an integer
logistic mixer (``bilevel._stretch``/``_SQUASH``, weights 2**28 = 1) twice: as its logit,
and as its logit again only when the context has seen one value alone (so the mixer can
trust deterministic contexts more), plus a bias; one weight set per node. p(1) =
squash(sum) clamped to [1, 2**PREC - 1]; the weights move by err * logit * ``LR``
(rounded shifts) after each decision, and every pixel that reaches a decision in a step
sees the counts and weights as of that decision's start (``np.add.at``).

Why it is exact: as in ``bilevel.py``. Values, predictions, contexts, counts and weights
are integers; hashes are uint64 products (wrapping modulo 2**64, the same everywhere);
every product stays below 2**62 (counts below 2**31, logits within +-4095, weights within
+-2**30, errors below 2**30); the logistic function is the frozen table of bilevel.py. No
float decides a bit.

Order of coding. The decoder pops, per step, one call per decision round (the pixels
still undecided); the encoder runs the same model forward over all steps in decoder
order (the same ``_step`` code), storing each coded bit's f1 and value and each call's
extent, then pushes the calls last to first.

Payload: ``VARIANT`` (1 byte) then the stack's words (``rans.Stack.to_words``, little-
endian uint32; ``lanes`` as ``bilevel.lanes_for(H, W, 1)``, a rotating stack). The image
size is the container's. Decoding checks that every word was used.

>>> import numpy as np
>>> x = np.random.default_rng(0).integers(0, 256, (9, 13)).astype(np.uint8)
>>> bool(np.array_equal(decode(encode(x), 9, 13), x))
True
"""
from __future__ import annotations

import numpy as np

from . import rans
from .bilevel import _SQUASH, STRETCH_MAX, lanes_for, steps

VARIANT = 0             # first payload byte: the model below
HORIZON = 1             # wavefront: pixel (i, j) at step 2 i + j
PREC = 24               # p(1) in units of 2**-PREC (the squash table's scale)
INC = 2                 # counts added per decision seen
A0 = 1                  # prior: A0 counts each way (KT: INC / 2)
LIMIT = 1 << 10         # halve a context's counts when their sum passes this
HASH_BITS = 20          # each model's table: 2**HASH_BITS contexts
MODELS = 6
LR = 24                 # mixer learning rate: a weight (2**28 = 1) moves by st * err * LR / 2**(PREC - 6)
NODES = 96              # decision nodes (see ``_node``)
W0 = 1 << 26            # a model logit's first weight (0.25)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_TOP, _LEFT, _RIGHT = 2, 2, 1     # the canvas margin

# quantizers as tables (integer)
_D = np.arange(-255, 256)
_QGRAD = (np.sign(_D) * ((np.abs(_D) >= 1).astype(np.int64) + (np.abs(_D) >= 3) + (np.abs(_D) >= 7)
                         + (np.abs(_D) >= 21))).astype(np.int64) + 4          # 0..8, index d + 255
_ACT_EDGES = np.array([1, 2, 3, 5, 8, 12, 18, 27, 40, 60, 90, 135, 200, 300], dtype=np.int64)
_LOG2 = np.array([0] + [int(v).bit_length() - 1 for v in range(1, 257)], dtype=np.int64)


class GraylevelError(ValueError):
    """A payload that this decoder cannot have written (damaged or truncated)."""


def _mix(a: np.ndarray) -> np.ndarray:
    """A uint64 hash of uint64 keys (wrapping products: the same everywhere)."""
    h = a * _M1
    h ^= h >> np.uint64(29)
    return h * _M2


class _Canvas:
    """The image (int64, a margin of 0 around it), the stored residuals x - P and the
    predictors' absolute errors, flat; and the wavefront steps over them."""

    NPRED = 4

    def __init__(self, H: int, W: int):
        self.H, self.W = H, W
        self.Wp = W + _LEFT + _RIGHT
        size = (H + _TOP) * self.Wp
        self.img = np.zeros(size, dtype=np.int16)       # int16: 12 bytes a pixel in all
        self.res = np.zeros(size, dtype=np.int16)
        self.perr = np.zeros((self.NPRED, size), dtype=np.int16)
        rows = np.arange(H, dtype=np.int64)
        self.row_base = (rows + _TOP) * self.Wp + _LEFT - (HORIZON + 1) * rows

    def view(self) -> np.ndarray:
        return self.img.reshape(self.H + _TOP, self.Wp)[_TOP:, _LEFT:_LEFT + self.W]

    def steps(self):
        H, W, h = self.H, self.W, HORIZON
        for t in range(steps(H, W, h)):
            lo = max(0, -(-(t - W + 1) // (h + 1)))
            hi = min(H - 1, t // (h + 1))
            yield self.row_base[lo:hi + 1] + t

    def features(self, base: np.ndarray):
        """(P, W, N, per-pixel predictions (NPRED, n), hashed model contexts (n, MODELS))."""
        Wp = self.Wp
        im = self.img[base[:, None] + np.array([-1, -2, -Wp, -Wp - 1, -Wp + 1, -2 * Wp, -2 * Wp + 1])
                      ].astype(np.int64).T
        w, ww, n, nw, ne, nn, nne = im
        preds = np.stack([w, n, np.clip(w + n - nw, 0, 255), np.clip(w + ne - n, 0, 255)])
        near = base[:, None] + np.array([-1, -Wp, -Wp - 1, -Wp + 1])
        esum = self.perr[:, near].astype(np.int64).sum(2)
        wt = (1 << 24) // (1 + esum) ** 2
        P = ((wt * preds).sum(0) + (wt.sum(0) >> 1)) // wt.sum(0)
        rw, rn, rnw, rne = self.res[near].astype(np.int64).T
        act = np.searchsorted(_ACT_EDGES, 2 * (np.abs(rw) + np.abs(rn)) + np.abs(rnw) + np.abs(rne), side="right")
        emin = np.searchsorted(_ACT_EDGES, esum.min(0), side="right")
        eq = ((w == n).astype(np.int64) | (w == nw) << 1 | (n == nw) << 2 | (n == ne) << 3 | (w == ww) << 4
              | (n == nn) << 5 | (ne == nne) << 6 | (P == w) << 7 | (P == n) << 8 | (nw == nn) << 9)
        q = _QGRAD
        grad = (((q[ne - n + 255] * 9 + q[n - nw + 255]) * 9 + q[nw - w + 255]) * 9 + q[w - ww + 255]) * 9 \
            + q[n - nn + 255]
        k = [eq,
             grad,
             ((w * 256 + n) * 256 + nw) * 256 + ne,
             ((((((w * 256 + n) * 256 + nw) * 256 + ne) * 256 + ww) * 256 + nn) * 256 + nne),
             ((act * 3 + np.sign(rw) + 1) * 3 + np.sign(rn) + 1) * 16 + emin,
             ((P * 256 + w) * 9 + q[n - w + 255])]
        keys = np.stack(k, 1).astype(np.uint64) + (np.arange(MODELS, dtype=np.uint64) << np.uint64(58))
        return P, w, n, preds, _mix(keys)

    def store(self, base, x, P, preds) -> None:
        self.img[base] = x
        self.res[base] = x - P
        self.perr[:, base] = np.abs(preds - x)


class _Model:
    """The context models' counts and the mixer's weights."""

    def __init__(self):
        self.tab = np.zeros((MODELS << HASH_BITS, 2), dtype=np.int32)     # (c0, c1) per context
        self.offs = (np.arange(MODELS, dtype=np.int64) << HASH_BITS)
        self.inputs = 2 * MODELS + 1
        self.w = np.zeros((NODES, self.inputs), dtype=np.int64)
        self.w[:, :MODELS] = W0

    def index(self, hashed: np.ndarray, node: np.ndarray) -> np.ndarray:
        """(n, MODELS) table rows of the contexts: each model's hash with the node."""
        h = (hashed + node.astype(np.uint64)[:, None] * _M1) * _M2
        return (h >> np.uint64(64 - HASH_BITS)).astype(np.int64) + self.offs

    def predict(self, idx: np.ndarray, node: np.ndarray):
        c = self.tab[idx].astype(np.int64)
        n0, n1 = c[..., 0], c[..., 1]
        f = ((n1 + A0) << PREC) // (n0 + n1 + 2 * A0)
        st = np.minimum(np.maximum(np.searchsorted(_SQUASH, f) - 4096, -STRETCH_MAX), STRETCH_MAX)
        det = ((n0 == 0) | (n1 == 0)) & (n0 + n1 > 0)
        inp = np.concatenate([st, np.where(det, st, 0), np.full((len(f), 1), 256, np.int64)], 1)
        dot = np.minimum(np.maximum((self.w[node] * inp).sum(1) >> 28, -STRETCH_MAX), STRETCH_MAX)
        p = np.minimum(np.maximum(_SQUASH[dot + 4096], 1), (1 << PREC) - 1)
        return p, (inp, p)

    def update(self, idx: np.ndarray, node: np.ndarray, bits: np.ndarray, state) -> None:
        b = bits.astype(np.int64)
        t = self.tab
        np.add.at(t.reshape(-1), (2 * idx + b[:, None]).ravel(), INC)
        over = t[idx].sum(-1) > LIMIT
        if over.any():
            k = idx[over]
            t[k] = (t[k] + 1) >> 1
        inp, p = state
        err = ((b << PREC) - p) * LR
        sh = PREC - 6
        delta = (inp * err[:, None] + (1 << (sh - 1))) >> sh
        np.add.at(self.w.reshape(-1), (node[:, None] * self.inputs + np.arange(self.inputs)).ravel(),
                  delta.ravel())
        np.clip(self.w, -(1 << 28), 1 << 30, out=self.w)


# Decision phases of a pixel: 0 x == W?, 1 x == N?, 2 x == P?, 3 sign, 4 magnitude, 6 done
class _State:
    """Each pixel's place in its decisions (vectors over a step's pixels). The magnitude
    m = |x - P| is known to lie in [lo, M]; while ``size`` is 0 the next question is
    "m > 2**k" (the exponent), then "m >= lo + size / 2" in a range of ``size`` values
    that halves with each answer until it holds one value."""

    def __init__(self, P, w, n):
        c = len(P)
        self.P = P
        self.wnp = np.stack([w, n, P])
        self.skip2 = (P == w) | (P == n)              # x == P? is answered by x != W, N
        self.ph = np.zeros(c, dtype=np.int64)
        self.k = np.zeros(c, dtype=np.int64)
        self.lo = np.ones(c, dtype=np.int64)
        self.size = np.zeros(c, dtype=np.int64)
        self.M = np.zeros(c, dtype=np.int64)
        self.sgn = np.zeros(c, dtype=np.int64)
        self.x = np.zeros(c, dtype=np.int64)

    def _split(self, a):
        size = self.size[a]
        return np.where(size == 0, (1 << self.k[a]) + 1, self.lo[a] + (size >> 1))

    def _magnitude(self, a, b) -> None:
        """Answers b (bool) of pixels a (all in phase 4) to their magnitude question."""
        size, k = self.size[a], self.k[a]
        exp = size == 0
        up = exp & b
        self.lo[a] = np.where(b, self._split(a), self.lo[a])
        self.k[a] = k + up
        self.size[a] = np.where(exp, np.where(b, 0, np.maximum((1 << k) >> 1, 1)), size >> 1)
        d = a[self.size[a] == 1]
        if len(d):
            self.x[d] = self.P[d] + np.where(self.sgn[d] == 1, self.lo[d], -self.lo[d])
            self.ph[d] = 6

    def settle(self) -> None:
        """Take every decision that the range or the earlier answers already make."""
        ph = self.ph
        ph[(ph == 1) & (self.wnp[1] == self.wnp[0])] = 2     # N == W: asked already
        ph[(ph == 2) & self.skip2] = 3
        d = np.flatnonzero(ph == 3)
        if len(d):
            P = self.P[d]
            f = d[(P == 0) | (P == 255)]
            self._sign(f, self.P[f] == 0)
        while True:
            a = np.flatnonzero(ph == 4)
            if not len(a):
                break
            a = a[self._split(a) > self.M[a]]                # "yes" is out of range
            if not len(a):
                break
            self._magnitude(a, np.zeros(len(a), dtype=bool))

    def _sign(self, d, b) -> None:
        self.sgn[d] = b
        P = self.P[d]
        self.M[d] = np.where(b, 255 - P, P)
        self.ph[d] = 4

    def node(self, a: np.ndarray) -> np.ndarray:
        ph, k, size = self.ph[a], self.k[a], self.size[a]
        return np.where(ph < 4, ph, np.where(size == 0, 4 + k, 12 + 8 * k + _LOG2[size]))

    def truth(self, a: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The answer of each pixel a to its next question, from its value x (encoder)."""
        ph, P = self.ph[a], self.P[a]
        eq = x == self.wnp[np.minimum(ph, 2), a]
        return np.where(ph < 3, eq, np.where(ph == 3, x > P, np.abs(x - P) >= self._split(a))).astype(np.uint8)

    def answer(self, a: np.ndarray, bits: np.ndarray) -> None:
        ph = self.ph[a]
        b = bits.astype(bool)
        e = ph < 3
        if e.any():
            ae, pe, be = a[e], ph[e], b[e]
            d = ae[be]
            self.x[d] = self.wnp[pe[be], d]
            self.ph[d] = 6
            self.ph[ae[~be]] += 1
        s = ph == 3
        if s.any():
            self._sign(a[s], b[s])
        s = ph == 4
        if s.any():
            self._magnitude(a[s], b[s])


def _code_step(cv: _Canvas, m: _Model, base: np.ndarray, code) -> None:
    """One step, both sides: ``code(a, node, f1, st)`` returns the bits of pixels a (the
    encoder from the truth, the decoder from the stack)."""
    P, w, n, preds, hashed = cv.features(base)
    st = _State(P, w, n)
    while True:
        st.settle()
        a = np.flatnonzero(st.ph != 6)
        if not len(a):
            break
        node = st.node(a)
        idx = m.index(hashed[a], node)
        f1, state = m.predict(idx, node)
        bits = code(a, f1, st)
        m.update(idx, node, bits, state)
        st.answer(a, bits)
    cv.store(base, st.x, P, preds)


def _check(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.size == 0:
        raise ValueError("a gray image is a non-empty 2-d array")
    if x.dtype.kind not in "biu" or x.min() < 0 or x.max() > 255:
        raise ValueError("a gray image holds values 0..255")
    return x.astype(np.uint8, copy=False)


def forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The encoder's model pass in decoder order: (f1 of every coded bit (uint32), the
    bits (uint8), each call's start in them)."""
    x = _check(x)
    H, W = x.shape
    cv, m = _Canvas(H, W), _Model()
    truth = np.zeros((H + _TOP) * cv.Wp, dtype=np.int16)
    truth.reshape(H + _TOP, cv.Wp)[_TOP:, _LEFT:_LEFT + W] = x
    f1s, bits, bounds = [], [], [0]
    for base in cv.steps():
        xs = truth[base].astype(np.int64)

        def code(a, f1, st, xs=xs):
            b = st.truth(a, xs[a])
            f1s.append(f1)
            bits.append(b)
            bounds.append(bounds[-1] + len(a))
            return b

        _code_step(cv, m, base, code)
    assert np.array_equal(cv.view(), x)
    return (np.concatenate(f1s).astype(np.uint32) if f1s else np.zeros(0, np.uint32),
            np.concatenate(bits) if bits else np.zeros(0, np.uint8), np.array(bounds, dtype=np.int64))


def code_length(x: np.ndarray) -> float:
    """The model's ideal code length in bits (float: for tuning and reports only)."""
    f1, b, _ = forward(x)
    f = np.where(b == 1, f1.astype(np.float64), float(1 << PREC) - f1)
    return float(np.sum(PREC - np.log2(f)))


def encode(x: np.ndarray) -> bytes:
    """A 2-d uint8 array (any size) -> payload bytes."""
    x = _check(x)
    H, W = x.shape
    f1, b, bounds = forward(x)
    full = np.int64(1 << PREC)
    st = rans.Stack(lanes_for(H, W, HORIZON), rotate=True)
    for c in range(len(bounds) - 2, -1, -1):          # last call first: the decoder pops it last
        lo, hi = bounds[c], bounds[c + 1]
        f, one = f1[lo:hi].astype(np.int64), b[lo:hi] == 1
        st.push(np.where(one, full - f, 0), np.where(one, f, full - f), PREC)
    return bytes([VARIANT]) + st.to_words().astype("<u4").tobytes()


def decode(payload: bytes, H: int, W: int, trace: list | None = None) -> np.ndarray:
    """Payload bytes -> (H, W) uint8 array; GraylevelError if the payload cannot be what
    ``encode`` wrote. ``trace``: if a list, each call's f1 (uint32) is appended."""
    if len(payload) < 5 or (len(payload) - 1) % 4:
        raise GraylevelError("damaged gray record (payload is not a variant byte and whole words)")
    if payload[0] != VARIANT:
        raise GraylevelError(f"gray record variant {payload[0]} is not supported")
    try:
        stack = rans.Stack.from_words(np.frombuffer(payload, "<u4", offset=1).astype(np.uint32),
                                      lanes_for(H, W, HORIZON), rotate=True)
    except ValueError as e:
        raise GraylevelError(f"damaged gray record ({e})") from None
    cv, m = _Canvas(H, W), _Model()
    full = np.int64(1 << PREC)

    def code(a, f1, st):
        if trace is not None:
            trace.append(f1.astype(np.uint32))
        f0 = full - f1

        def find(cf, sl):
            one = cf >= f0[sl]
            return one.astype(np.uint8), np.where(one, f0[sl], 0), np.where(one, f1[sl], f0[sl])

        return stack.pop(len(a), PREC, find)

    for base in cv.steps():
        _code_step(cv, m, base, code)
    if stack.bits() != rans.WORD_BITS or stack._pos != 0:
        raise GraylevelError("damaged gray record (words left over after the last pixel)")
    return cv.view().astype(np.uint8)
