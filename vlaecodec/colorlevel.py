"""8-bit RGB images of any size: graylevel.py's context-mixing coder, channel by channel,
with cross-channel prediction and contexts.

Charts, screenshots, terminals and vector wallpapers in colour are mostly grey or a few
flat colours, where the channels move together: WebP lossless subtracts green from red
and blue, JPEG-XL's modular mode applies a reversible colour transform. Here each pixel's
channels are coded in the order G, R, B, each with graylevel.py's decisions (``x == W?``,
``x == N?``, ``x == P?``, sign and exponent, mantissa; ``graylevel._State``), symbols,
integer mixer and wavefront (horizon 1: every pixel of a step is coded together, first
all their G, then R, then B), and each channel with its own counts and weights. What an
earlier channel of the same pixel tells a later one:

Prediction. Besides graylevel's four predictors (W, N, W + N - NW, W + NE - N), channel
c gets three per earlier channel e, corrected by e's value at the pixel: W + (e - e_W),
N + (e - e_N) and W + N - NW + (e - (e_W + e_N - e_NW)) (clamped to 0..255); all are
weighted by their summed neighbour errors as in graylevel (the weights pick the
corrected ones where the channels move together, the plain ones where not).

Contexts. Every channel's equality pattern (model 0) also holds whether the whole RGB
pixels W, N, NW, NE are equal (W == N, N == NW, W == NW, N == NE over all three
channels) and, for the later channels, whether each earlier channel equals its own W and
its own N at the pixel. The later channels have three more models: 6. for each earlier channel whether
its value equals its W, N, NW, NE and its quantized residual e - P_e, with whether W == N
and W == NW here; 7. the exact values of the earlier channels with this channel's W and N
(palettes: a colour's G says its R); 8. G's exact changes from its W and its N with this
channel's W and N (how a colour edge moves the channels together).

Why it is exact: as graylevel.py (the same integer model, tables and hashes; the extra
predictors and contexts are integer functions of decoded values).

Payload: ``VARIANT`` (1 byte) then the stack's words (``rans.Stack.to_words``, little-
endian uint32; ``lanes`` as ``bilevel.lanes_for(H, W, 1)``, a rotating stack) that hold
every step's G calls, then R's, then B's. The image size is the container's. Decoding
checks that every word was used.

>>> import numpy as np
>>> x = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.uint8)
>>> bool(np.array_equal(decode(encode(x), 5, 7), x))
True
"""
from __future__ import annotations

import numpy as np

from . import rans
from .bilevel import lanes_for, steps
from .graylevel import (_LEFT, _QGRAD, _TOP, HASH_BITS, HORIZON, MODELS, NODES, PREC, W0, _ACT_EDGES, _Canvas,
                        _code_step, _interval, _mix, _Model, _popper)

VARIANT = 0             # first payload byte: the model below
ORDER = (1, 0, 2)       # channels coded per pixel: G, then R, then B
CROSS_MODELS = 3        # models 6, 7, 8 of the later channels


class ColorlevelError(ValueError):
    """A payload that this decoder cannot have written (damaged or truncated)."""


class _ChannelCanvas(_Canvas):
    """One channel's canvas; ``refs``: the earlier channels' canvases (same geometry),
    ``others``: all three (filled in after they exist)."""

    def __init__(self, H: int, W: int, refs: list):
        self.refs = refs
        self.NPRED = 4 + 3 * len(refs)
        self.models = MODELS + (CROSS_MODELS if refs else 0)
        self.others: list = []
        super().__init__(H, W)

    def features(self, base: np.ndarray):
        Wp = self.Wp
        offs = np.array([-1, -2, -Wp, -Wp - 1, -Wp + 1, -2 * Wp, -2 * Wp + 1])
        im = self.img[base[:, None] + offs].astype(np.int64).T
        w, ww, n, nw, ne, nn, nne = im
        preds = [w, n, np.clip(w + n - nw, 0, 255), np.clip(w + ne - n, 0, 255)]
        near = base[:, None] + np.array([-1, -Wp, -Wp - 1, -Wp + 1])
        cross = []
        for e in self.refs:
            ex = e.img[base].astype(np.int64)
            ew, en, enw, ene = e.img[near].astype(np.int64).T
            if e is self.refs[0]:
                gwn = ex, ew, en
            preds += [np.clip(w + ex - ew, 0, 255), np.clip(n + ex - en, 0, 255),
                      np.clip(w + n - nw + ex - (ew + en - enw), 0, 255)]
            flags = ((ex == ew).astype(np.int64) | (ex == en) << 1 | (ex == enw) << 2 | (ex == ene) << 3)
            r = np.clip(e.res[base].astype(np.int64), -255, 255)
            cross.append((ex, flags * 9 + _QGRAD[r + 255]))
        preds = np.stack(preds)
        esum = self.perr[:, near].astype(np.int64).sum(2)
        wt = (1 << 24) // (1 + esum) ** 2
        P = ((wt * preds).sum(0) + (wt.sum(0) >> 1)) // wt.sum(0)
        rw, rn, rnw, rne = self.res[near].astype(np.int64).T
        act = np.searchsorted(_ACT_EDGES, 2 * (np.abs(rw) + np.abs(rn)) + np.abs(rnw) + np.abs(rne), side="right")
        emin = np.searchsorted(_ACT_EDGES, esum.min(0), side="right")
        pix = np.full((4, len(base)), True)
        for o in self.others:                     # whole-pixel equalities of the neighbours
            ow, on, onw, one = o.img[near].astype(np.int64).T
            pix &= np.stack([ow == on, on == onw, ow == onw, on == one])
        eq = ((w == n).astype(np.int64) | (w == nw) << 1 | (n == nw) << 2 | (n == ne) << 3 | (w == ww) << 4
              | (n == nn) << 5 | (ne == nne) << 6 | (P == w) << 7 | (P == n) << 8 | (nw == nn) << 9
              | pix[0] << 10 | pix[1] << 11 | pix[2] << 12 | pix[3] << 13)
        for i, (_, fq) in enumerate(cross):       # an earlier channel == its W, == its N
            eq = eq | (fq // 9 & 3) << (14 + 2 * i)
        q = _QGRAD
        grad = (((q[ne - n + 255] * 9 + q[n - nw + 255]) * 9 + q[nw - w + 255]) * 9 + q[w - ww + 255]) * 9 \
            + q[n - nn + 255]
        k = [eq,
             grad,
             ((w * 256 + n) * 256 + nw) * 256 + ne,
             ((((((w * 256 + n) * 256 + nw) * 256 + ne) * 256 + ww) * 256 + nn) * 256 + nne),
             ((act * 3 + np.sign(rw) + 1) * 3 + np.sign(rn) + 1) * 16 + emin,
             ((P * 256 + w) * 9 + q[n - w + 255])]
        if cross:
            k6 = (w == n).astype(np.int64) | (w == nw) << 1
            k7 = w * 256 + n
            for ex, fq in cross:
                k6 = k6 * 144 + fq
                k7 = k7 * 256 + ex
            ex, ew, en = gwn                      # G's changes from its W and N, with W and N here
            k += [k6, k7, (((ex - ew + 255) * 511 + ex - en + 255) * 256 + w) * 256 + n]
        keys = np.stack(k, 1).astype(np.uint64) + (np.arange(self.models, dtype=np.uint64) << np.uint64(58))
        return P, w, n, preds, _mix(keys)


class _ChannelModel(_Model):
    """graylevel's counts and mixer weights with ``models`` context models."""

    def __init__(self, models: int):
        self.tab = np.zeros((models << HASH_BITS, 2), dtype=np.int32)
        self.offs = (np.arange(models, dtype=np.int64) << HASH_BITS)
        self.inputs = 2 * models + 1
        self.w = np.zeros((NODES, self.inputs), dtype=np.int64)
        self.w[:, :models] = W0


def _setup(H: int, W: int):
    cvs: list[_ChannelCanvas] = []
    for _ in ORDER:
        cvs.append(_ChannelCanvas(H, W, list(cvs)))
    for c in cvs:
        c.others = cvs
    return cvs, [_ChannelModel(c.models) for c in cvs]


def _check(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != 3 or x.size == 0:
        raise ValueError("an RGB image is a non-empty (H, W, 3) array")
    if x.dtype.kind not in "biu" or x.min() < 0 or x.max() > 255:
        raise ValueError("an RGB image holds values 0..255")
    return x.astype(np.uint8, copy=False)


def _image(cvs) -> np.ndarray:
    out = np.zeros(cvs[0].view().shape + (3,), dtype=np.uint8)
    for ch, cv in zip(ORDER, cvs):
        out[..., ch] = cv.view()
    return out


def forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The encoder's model pass in decoder order: (each coded symbol's start and
    frequency out of 2**PREC (uint32, in coding order), each call's start in them)."""
    x = _check(x)
    H, W = x.shape[:2]
    cvs, ms = _setup(H, W)
    truth = np.zeros((3, (H + _TOP) * cvs[0].Wp), dtype=np.int16)
    for i, ch in enumerate(ORDER):
        truth[i].reshape(H + _TOP, cvs[0].Wp)[_TOP:, _LEFT:_LEFT + W] = x[..., ch]
    starts, freqs, bounds = [], [], [0]
    for base in cvs[0].steps():
        for i in range(3):
            xs = truth[i, base].astype(np.int64)

            def code(a, grp, F, st, xs=xs):
                s = st.truth(a, grp, xs[a])
                c, f = _interval(F, s)
                starts.append(c)
                freqs.append(f)
                bounds.append(bounds[-1] + len(a))
                return s

            _code_step(cvs[i], ms[i], base, code)
    assert np.array_equal(_image(cvs), x)
    return (np.concatenate(starts).astype(np.uint32), np.concatenate(freqs).astype(np.uint32),
            np.array(bounds, dtype=np.int64))


def code_length(x: np.ndarray) -> float:
    """The model's ideal code length in bits (float: for tuning and reports only)."""
    _, f, _ = forward(x)
    return float(np.sum(PREC - np.log2(f.astype(np.float64))))


def encode(x: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 array (any size) -> payload bytes."""
    x = _check(x)
    H, W = x.shape[:2]
    c, f, bounds = forward(x)
    st = rans.Stack(lanes_for(H, W, HORIZON), rotate=True)
    for i in range(len(bounds) - 2, -1, -1):          # last call first: the decoder pops it last
        lo, hi = bounds[i], bounds[i + 1]
        st.push(c[lo:hi].astype(np.int64), f[lo:hi].astype(np.int64), PREC)
    return bytes([VARIANT]) + st.to_words().astype("<u4").tobytes()


def decode(payload: bytes, H: int, W: int, trace: list | None = None) -> np.ndarray:
    """Payload bytes -> (H, W, 3) uint8 array; ColorlevelError if the payload cannot be
    what ``encode`` wrote. ``trace``: if a list, each call's (start, freq) of the decoded
    symbols (uint32) is appended."""
    if len(payload) < 5 or (len(payload) - 1) % 4:
        raise ColorlevelError("damaged RGB record (payload is not a variant byte and whole words)")
    if payload[0] != VARIANT:
        raise ColorlevelError(f"RGB record variant {payload[0]} is not supported")
    try:
        stack = rans.Stack.from_words(np.frombuffer(payload, "<u4", offset=1).astype(np.uint32),
                                      lanes_for(H, W, HORIZON), rotate=True)
    except ValueError as e:
        raise ColorlevelError(f"damaged RGB record ({e})") from None
    cvs, ms = _setup(H, W)

    code = _popper(stack, trace)

    for base in cvs[0].steps():
        for i in range(3):
            _code_step(cvs[i], ms[i], base, code)
    if stack.bits() != rans.WORD_BITS or stack._pos != 0:
        raise ColorlevelError("damaged RGB record (words left over after the last pixel)")
    return _image(cvs)
