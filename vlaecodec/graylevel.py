"""8-bit gray images of any size: an adaptive context-mixing coder on the rANS stack.

Charts, screenshots, tables, terminals and vector wallpapers are flat areas, sharp edges,
repeated anti-aliased glyphs and smooth gradients. WebP lossless codes them with a
predictor per tile and Huffman codes; JPEG-XL's modular mode (context trees over local
gradients, a weighted predictor) with adaptive contexts. This module codes each pixel as
a few binary decisions, each with an adaptive probability mixed from several context
models, in the manner of ``bilevel.py`` (whose squash table, stretch, lane count and
wavefront step count it reuses, so that module's format does not change).

Order. Horizon 1: pixel (i, j) is coded at step t = 2 i + j; every pixel of a step is
coded together, so the decoder's Python loop runs at most three times per step (not per
pixel). At step t the row above is known up to j+1 and two rows above up to j+3, so a
pixel sees W, WW, NW, N, NE, NN and NNE. Pixels outside the image read 0.

Decisions. With P the weighted prediction below, a pixel x is a path of binary
decisions:

    x == W?   then, if N != W, x == N?   then, if P is neither, x == P?
    then the sign of x - P (unless P is 0 or 255), then m = |x - P| >= 1 Elias-gamma
    style: "m > 2**k?" for k = 0, 1, .. until no (the exponent k), then the bits of m
    within its range (2**(k-1), 2**k], most significant first,

leaving out every decision that the range [0, 255] already makes (both sides alike). The
decision (``node``: which question; for the magnitude its exponent question k, or the
mantissa's exponent and the size of the range left) is part of every context, and no
context depends on the answers within a pixel's path other than through the node. So the
path is coded as at most three symbols, each built from the decisions' probabilities
(``_State.table``, exact integer splits of 2**PREC, every possible symbol at least 1):
which of W, N, P (or none); the sign with the exponent; the mantissa (a leaf of its
binary tree). Each decision a symbol answers then updates its contexts.

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
(rounded shifts) after each symbol, and every decision of a symbol sees the counts and weights as of
the start of its call (``np.add.at``).

Why it is exact: as in ``bilevel.py``. Values, predictions, contexts, counts and weights
are integers; hashes are uint64 products (wrapping modulo 2**64, the same everywhere);
every product stays below 2**62 (counts below 2**31, logits within +-4095, weights within
+-2**30, errors below 2**30); the logistic function is the frozen table of bilevel.py. No
float decides a bit.

Order of coding. The decoder pops, per step, up to three calls (the pixels still
undecided, each one symbol); the encoder runs the same model forward over all steps in
decoder order (the same ``_code_step`` code), storing each coded symbol's interval and
each call's extent, then pushes the calls last to first.

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


# Phases of a pixel: 0 its value among W, N, P (or none), 3 sign and exponent, 5 a mantissa bit, 6 done
NCOL = 18               # the most symbols of one coded step of a pixel (sign and exponent: 2 x 9)
_JLUT = np.array([0] + [int(v - 1).bit_length() for v in range(1, 256)], dtype=np.int64)  # exponents coded for m <= M
_FULL = 1 << PREC


def _split_mass(R, p, lo, hi):
    """(R * p) >> PREC clamped to [lo, hi]: the integer share of mass R for probability p."""
    return np.minimum(np.maximum((R * p) >> PREC, lo), hi)


class _State:
    """Each pixel's place in its decisions (vectors over a step's pixels). A pixel is
    coded in at most 2 + 7 calls: one symbol for "W, N, P or none" (the chain of the
    questions x == W?, x == N?, x == P?), one for the sign and exponent k of m = |x - P|
    (m in (2**(k-1), 2**k]: the chain m > 1?, m > 2?, m > 4?, ...), then one call per
    mantissa bit (m >= lo + size / 2?, the range [lo, lo + size) halving). Each symbol's
    interval is built from the binary decisions' probabilities (``_table``), and each
    decision it answers updates that decision's contexts."""

    def __init__(self, P, w, n):
        c = len(P)
        self.lmax = 0
        self.P = P
        self.wnp = np.stack([w, n, P])
        self.eqv = np.stack([np.ones(c, dtype=bool), n != w, (P != w) & (P != n)], 1)   # questions asked
        self.jp, self.jn = _JLUT[255 - P], _JLUT[P]         # exponent questions if x > P / x < P
        self.ph = np.zeros(c, dtype=np.int64)
        self.k = np.zeros(c, dtype=np.int64)
        self.lo = np.ones(c, dtype=np.int64)
        self.size = np.zeros(c, dtype=np.int64)
        self.M = np.zeros(c, dtype=np.int64)
        self.sgn = np.zeros(c, dtype=np.int64)
        self.x = np.zeros(c, dtype=np.int64)

    def groups(self, a):
        """Positions in a of the pixels in each phase: (value, sign and exponent, mantissa)."""
        ph = self.ph[a]
        return np.flatnonzero(ph == 0), np.flatnonzero(ph == 3), np.flatnonzero(ph == 5)

    def decisions(self, a, grp):
        """(nodes (n, 9), asked (n, 9)) of the binary decisions whose probabilities the
        next symbol of pixels a needs."""
        e, g, t = grp
        n = len(a)
        node = np.zeros((n, 9), dtype=np.int64)
        ask = np.zeros((n, 9), dtype=bool)
        if len(e):
            node[e, :3] = np.arange(3)
            ask[e, :3] = self.eqv[a[e]]
        if len(g):
            ag = a[g]
            P = self.P[ag]
            node[g] = np.arange(3, 12)
            ask[g, 0] = (P > 0) & (P < 255)
            jmax = np.maximum(np.where(P < 255, self.jp[ag], 0), np.where(P > 0, self.jn[ag], 0))
            ask[g, 1:] = np.arange(8)[None, :] < jmax[:, None]
        if len(t):                   # the mantissa: levels lv of a tree of Lmax (7 at most)
            at = a[t]
            L = _LOG2[self.size[at]][:, None]
            lm = self.lmax = int(L.max())
            lv = np.arange(lm)
            node[t, :lm] = 12 + 8 * self.k[at][:, None] + lm - lv      # 12 + 8 k + log2(range size)
            ask[t, :lm] = lv >= lm - L
        return node, ask

    def table(self, a, grp, p1):
        """(n, NCOL) frequencies (out of 2**PREC) of the symbols of pixels a, from the
        decisions' p(1) (n, 9) (exact integers; every possible symbol gets at least 1)."""
        e, g, t = grp
        F = np.zeros((len(a), max(NCOL, 1 << self.lmax if len(t) else 0)), dtype=np.int64)
        if len(e):
            ask, p = self.eqv[a[e]], p1[e]
            R = np.full(len(e), _FULL, dtype=np.int64)
            for j in range(3):
                after = ask[:, j + 1:].sum(1) + 1
                f = np.where(ask[:, j], _split_mass(R, p[:, j], 1, R - after), 0)
                F[e, j] = f
                R = R - f
            F[e, 3] = R
        if len(g):
            ag, p = a[g], p1[g]
            P = self.P[ag]
            jp, jn = self.jp[ag], self.jn[ag]
            R = np.full(len(g), _FULL, dtype=np.int64)
            Rp = np.where(P == 255, 0, np.where(P == 0, R, _split_mass(R, p[:, 0], jp + 1, R - jn - 1)))
            for R, J, col in ((Rp, jp, 0), (R - Rp, jn, 9)):
                live = R > 0
                for j in range(int(J.max(initial=0))):
                    f = np.where((j < J) & live, _split_mass(R, _FULL - p[:, 1 + j], 1, R - (J - j)), 0)
                    F[g, col + j] = f
                    R = R - f
                F[g, col + J] = np.where(live, R, 0)
        if len(t):                   # leaf i: m = lo + i, possible for i < room
            at, p, lm = a[t], p1[t], self.lmax
            room = self._room(at)[:, None]
            mass = np.full((len(t), 1), _FULL, dtype=np.int64)
            for lv in range(lm):
                half = 1 << (lm - lv - 1)
                start = np.arange(0, 1 << lm, 2 * half)           # each node's first leaf
                up_feas = np.minimum(np.maximum(room - start - half, 0), half)
                lo_feas = np.minimum(np.maximum(room - start, 0), half)
                up = np.where(up_feas > 0, _split_mass(mass, p[:, lv, None], up_feas, mass - lo_feas), 0)
                mass = np.stack([mass - up, up], 2).reshape(len(t), -1)
            F[t, :1 << lm] = mass
        return F

    def _room(self, a):
        """How many values the mantissa of pixels a can take: m in [lo, lo + room)."""
        return np.minimum(self.M[a] - self.lo[a] + 1, self.size[a])

    def truth(self, a, grp, x):
        """The symbol (column) of each pixel a, from its value x (encoder)."""
        e, g, t = grp
        s = np.zeros(len(a), dtype=np.int64)
        if len(e):
            ae = a[e]
            eqc = self.eqv[ae] & (x[e, None] == self.wnp[:, ae].T)
            s[e] = np.where(eqc.any(1), eqc.argmax(1), 3)
        if len(g):
            xg, P = x[g], self.P[a[g]]
            k = _JLUT[np.abs(xg - P)]
            s[g] = np.where(xg > P, k, 9 + k)
        if len(t):
            at = a[t]
            s[t] = np.abs(x[t] - self.P[at]) - self.lo[at]
        return s

    def answered(self, a, grp, s, ask):
        """(coded (n, 9), bits (n, 9)): the binary decisions that symbols s answer."""
        e, g, t = grp
        j = np.arange(9)[None, :]
        coded = np.zeros(ask.shape, dtype=bool)
        bits = np.zeros(ask.shape, dtype=np.uint8)
        if len(e):
            se = s[e, None]
            coded[e] = ask[e] & (j <= se)
            bits[e] = j == se
        if len(g):
            sg = s[g]
            pos = sg < 9
            k = np.where(pos, sg, sg - 9)[:, None]
            ag = a[g]
            J = np.where(pos, self.jp[ag], self.jn[ag])[:, None]
            j8 = j[:, :8]
            cg = np.empty((len(sg), 9), dtype=bool)
            cg[:, 0] = ask[g, 0]
            cg[:, 1:] = (j8 < J) & (j8 <= k)
            bg = np.empty((len(sg), 9), dtype=np.uint8)
            bg[:, 0] = pos
            bg[:, 1:] = j8 < k
            coded[g], bits[g] = cg, bg
        if len(t):
            at, i, lm = a[t], s[t][:, None], self.lmax
            sh = lm - 1 - j[:, :lm]                               # level lv splits on bit lm - 1 - lv of i
            node_lo = (i >> (sh + 1)) << (sh + 1)                # the path's node at each level
            coded[t, :lm] = node_lo + (1 << sh) < self._room(at)[:, None]   # its upper half possible
            bits[t, :lm] = (i >> sh) & 1
        return coded, bits

    def answer(self, a, grp, s) -> None:
        e, g, t = grp
        if len(e):
            ae, se = a[e], s[e]
            d = se < 3
            self.x[ae[d]] = self.wnp[se[d], ae[d]]
            self.ph[ae[d]] = 6
            self.ph[ae[~d]] = 3
        if len(g):
            ag, sg = a[g], s[g]
            pos = sg < 9
            k = np.where(pos, sg, sg - 9)
            self.sgn[ag] = pos
            self.M[ag] = np.where(pos, 255 - self.P[ag], self.P[ag])
            self.k[ag] = k
            lo = (1 << k) // 2 + 1
            self.lo[ag] = lo
            self.size[ag] = np.maximum((1 << k) // 2, 1)
            one = np.minimum(self.size[ag], self.M[ag] - lo + 1) == 1    # one value left: m = lo
            self.ph[ag] = np.where(one, 6, 5)
            self.x[ag] = np.where(one, self.P[ag] + np.where(pos, lo, -lo), 0)
        if len(t):
            at = a[t]
            m = self.lo[at] + s[t]
            self.x[at] = self.P[at] + np.where(self.sgn[at] == 1, m, -m)
            self.ph[at] = 6


def _code_step(cv: _Canvas, m: _Model, base: np.ndarray, code) -> None:
    """One step, both sides: ``code(a, F)`` returns the symbols (columns of the frequency
    table F) of pixels a: the encoder's from the truth, the decoder's from the stack."""
    P, w, n, preds, hashed = cv.features(base)
    st = _State(P, w, n)
    while True:
        a = np.flatnonzero(st.ph != 6)
        if not len(a):
            break
        grp = st.groups(a)
        node, ask = st.decisions(a, grp)
        row = np.nonzero(ask)[0]
        nd = node[ask]
        idx = m.index(hashed[a[row]], nd)
        f1, (inp, p) = m.predict(idx, nd)
        p1 = np.zeros(ask.shape, dtype=np.int64)
        p1[ask] = f1
        F = st.table(a, grp, p1)
        s = code(a, grp, F, st)
        coded, bits = st.answered(a, grp, s, ask)
        c = coded[ask]
        if c.all():
            m.update(idx, nd, bits[ask], (inp, p))
        else:
            m.update(idx[c], nd[c], bits[ask][c], (inp[c], p[c]))
        st.answer(a, grp, s)
    cv.store(base, st.x, P, preds)


def _check(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.size == 0:
        raise ValueError("a gray image is a non-empty 2-d array")
    if x.dtype.kind not in "biu" or x.min() < 0 or x.max() > 255:
        raise ValueError("a gray image holds values 0..255")
    return x.astype(np.uint8, copy=False)


def _interval(F, s):
    """(start, freq) of symbols s in the frequency tables F."""
    r = np.arange(len(s))
    return np.cumsum(F, 1)[r, s] - F[r, s], F[r, s]


def forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The encoder's model pass in decoder order: (each coded symbol's start and
    frequency out of 2**PREC (uint32, in coding order), each call's start in them)."""
    x = _check(x)
    H, W = x.shape
    cv, m = _Canvas(H, W), _Model()
    truth = np.zeros((H + _TOP) * cv.Wp, dtype=np.int16)
    truth.reshape(H + _TOP, cv.Wp)[_TOP:, _LEFT:_LEFT + W] = x
    starts, freqs, bounds = [], [], [0]
    for base in cv.steps():
        xs = truth[base].astype(np.int64)

        def code(a, grp, F, st, xs=xs):
            s = st.truth(a, grp, xs[a])
            c, f = _interval(F, s)
            starts.append(c)
            freqs.append(f)
            bounds.append(bounds[-1] + len(a))
            return s

        _code_step(cv, m, base, code)
    assert np.array_equal(cv.view(), x)
    return (np.concatenate(starts).astype(np.uint32), np.concatenate(freqs).astype(np.uint32),
            np.array(bounds, dtype=np.int64))


def code_length(x: np.ndarray) -> float:
    """The model's ideal code length in bits (float: for tuning and reports only)."""
    _, f, _ = forward(x)
    return float(np.sum(PREC - np.log2(f.astype(np.float64))))


def encode(x: np.ndarray) -> bytes:
    """A 2-d uint8 array (any size) -> payload bytes."""
    x = _check(x)
    H, W = x.shape
    c, f, bounds = forward(x)
    st = rans.Stack(lanes_for(H, W, HORIZON), rotate=True)
    for i in range(len(bounds) - 2, -1, -1):          # last call first: the decoder pops it last
        lo, hi = bounds[i], bounds[i + 1]
        st.push(c[lo:hi].astype(np.int64), f[lo:hi].astype(np.int64), PREC)
    return bytes([VARIANT]) + st.to_words().astype("<u4").tobytes()


def _popper(stack: rans.Stack, trace: list | None):
    """The decoder's ``code`` callback for ``_code_step`` (also colorlevel's): pops each
    coded symbol of a batch from ``stack`` under its row of frequencies F (summing to
    2**PREC), found by a search in F's running sums; ``trace`` gets their intervals."""
    def code(a, grp, F, st):
        ends = np.cumsum(F, 1)

        def find(cf, sl):
            e = ends[sl]
            s = (e <= cf[:, None]).sum(1)
            r = np.arange(len(s))
            return s, e[r, s] - F[sl][r, s], F[sl][r, s]

        s = stack.pop(len(a), PREC, find)
        if trace is not None:
            c, f = _interval(F, s)
            trace.append((c.astype(np.uint32), f.astype(np.uint32)))
        return s
    return code


def decode(payload: bytes, H: int, W: int, trace: list | None = None) -> np.ndarray:
    """Payload bytes -> (H, W) uint8 array; GraylevelError if the payload cannot be what
    ``encode`` wrote. ``trace``: if a list, each call's (start, freq) of the decoded
    symbols (uint32) is appended."""
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

    code = _popper(stack, trace)

    for base in cv.steps():
        _code_step(cv, m, base, code)
    if stack.bits() != rans.WORD_BITS or stack._pos != 0:
        raise GraylevelError("damaged gray record (words left over after the last pixel)")
    return cv.view().astype(np.uint8)
