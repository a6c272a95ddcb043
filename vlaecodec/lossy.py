"""Lossy mode: a file keeps only each image's latent z; the local decoder redraws the rest.

This is the VLAE's own idea: z holds the global content of a digit (which digit, its
shape, slant and thickness) and the local PixelCNN can draw plausible strokes from z
alone. So a lossy file stores, per image, a few bits of z and nothing else::

    encode:  z -> one of K_i equal-mass bins of p(z_i | z_<i) per dimension, for the
             dimensions a rate level sends (K_i a power of two: the bins are plain bits);
             the encoder picks, dimension by dimension, the bin nearest the posterior mean
    decode:  z_i = m_i(z_<i) + the bin's latent (exact integers, as in direct coding),
             then the pixel stepper draws the image (``DRAWS`` below). A bin's latent is
             its median times a scale calibrated at freeze time (``freeze.calibrate_lossy``)

Rate levels 1..12 are frozen with the model (``freeze.LOSSY_LEVELS``: dimensions sent x
bits each, dimensions in order of KL), from 8 to 192 bits per image. Everything the
decoder computes is exact integer arithmetic, including the pseudo-random numbers of
sampled draws (a counter hash in uint64), so a lossy file redraws the same image on
every machine.
"""
from __future__ import annotations

import numpy as np

from . import numerics as nx
from .container import ContainerError
from .intnet import BinCode, IntVLAE

PIXEL_TOTAL = 1 << nx.PIXEL_FREQ_BITS

# How a decoder draws pixels from z (the header's draw code):
#   0       each pixel its more probable value given the pixels above it ("mode")
#   d >= 1  2**(d-1) seeded samples per image; keep the one the model finds most probable
DRAW_MODE = 0
# Measured on 1,000 test digits with vlae-mnist-v2 and a digit classifier (bench/lossy.py):
# at 31 bits, the most probable pixels keep the class of 64% of digits, one sample 76%,
# the best of 4 samples 79% and of 16 80% (4x and 16x slower to decode). More bits per
# dimension help less than more dimensions with one bit each. See README "Lossy mode".
DEFAULT_LEVEL = 7
DEFAULT_DRAW = 3
RECONSTRUCT_BATCH = 1000


def draw_name(draw: int) -> str:
    return "most probable pixels" if draw == 0 else (
        "one seeded sample" if draw == 1 else f"best of {1 << (draw - 1)} seeded samples")


def level_code(net: IntVLAE, level: int) -> BinCode:
    if not net.lossy_levels:
        raise ContainerError("this model has no lossy rate levels (it was frozen before lossy mode)")
    if not 1 <= level <= len(net.lossy_levels):
        raise ContainerError(f"lossy rate level must be 1..{len(net.lossy_levels)}")
    return net.lossy_levels[level - 1]


def bits_per_image(net: IntVLAE, level: int) -> int:
    return sum(level_code(net, level).bits)


# ----------------------------------------------------------------- bits <-> bins

def pack_bins(js: np.ndarray, code: BinCode) -> bytes:
    """Bins (N, D) -> bytes: image by image, each sent dimension's bits, most significant
    first, zero-padded to a whole byte at the end."""
    cols = [((js[:, i, None] >> np.arange(b - 1, -1, -1)) & 1) for i, b in enumerate(code.bits) if b]
    bits = np.concatenate(cols, axis=1).astype(np.uint8).ravel() if cols else np.zeros(0, np.uint8)
    return np.packbits(bits).tobytes()


def unpack_bins(payload: bytes, count: int, code: BinCode) -> np.ndarray:
    per = sum(code.bits)
    if len(payload) != (count * per + 7) // 8:
        raise ContainerError("file is corrupt or truncated (lossy payload has the wrong length)")
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))
    if bits[count * per:].any():
        raise ContainerError("file is corrupt (lossy payload padding)")
    bits = bits[:count * per].reshape(count, per).astype(np.int64)
    js = np.zeros((count, len(code.bits)), np.int64)
    col = 0
    for i, b in enumerate(code.bits):
        for _ in range(b):
            js[:, i] = (js[:, i] << 1) | bits[:, col]
            col += 1
    return js


# ----------------------------------------------------------------- drawing pixels

_NLL_Q16 = None


def _random16(counter: np.ndarray) -> np.ndarray:
    """16 pseudo-random bits per uint64 counter (splitmix64: wrapping integer arithmetic,
    the same on every machine)."""
    with np.errstate(over="ignore"):
        z = counter + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(48)).astype(np.float64)


def redraw(net: IntVLAE, z: np.ndarray, draw: int, first_index: int = 0) -> np.ndarray:
    """Images (B, H, W) drawn from latents z (B, D) by the local PixelCNN."""
    from .codec import _NLL_Q16 as nll_table

    b, hw = z.shape[0], net.size * net.size
    k = 1 if draw == DRAW_MODE else 1 << (draw - 1)
    st = net.stepper(np.repeat(z, k, axis=0))
    out = np.empty((hw, b * k), np.uint8)
    cost = np.zeros(b * k)
    if draw != DRAW_MODE:   # counter = ((image * 256 + sample) << 20) + pixel
        img = np.repeat(np.arange(first_index, first_index + b, dtype=np.uint64), k)
        smp = np.tile(np.arange(k, dtype=np.uint64), b)
        base = ((img * np.uint64(256) + smp) << np.uint64(20))
    for t in range(hw):
        f1 = st.freqs(t)
        if draw == DRAW_MODE:
            v = (f1 > PIXEL_TOTAL // 2).astype(np.uint8)
        else:
            v = (_random16(base + np.uint64(t)) < f1).astype(np.uint8)
            cost += nll_table[np.where(v == 1, f1, PIXEL_TOTAL - f1).astype(np.intp)]
        out[t] = v
        st.set_pixel(t, v)
    imgs = out.T.reshape(b, k, net.size, net.size)
    if k == 1:
        return imgs[:, 0]
    best = cost.reshape(b, k).argmin(1)   # most probable sample (first of equals)
    return imgs[np.arange(b), best]


# ----------------------------------------------------------------- public

def encode(net: IntVLAE, x: np.ndarray, level: int, rounds: int = 0) -> bytes:
    """The lossy payload for images x (N, H, W): their latents' bins, packed. The bins
    are those nearest the posterior mean; searching them for the likeliest image as
    direct coding does (``rounds``) lowered pixel error only from 7.94% to 7.86% at 32
    bits (200 test digits) while encoding 70x slower, so it is off by default."""
    from .codec import choose_direct_bins

    code = level_code(net, level)
    js = np.concatenate([choose_direct_bins(net, x[i:i + 256], rounds, code)
                         for i in range(0, len(x), 256)])
    return pack_bins(js, code)


def decode(net: IntVLAE, payload: bytes, count: int, level: int, draw: int, progress=None) -> np.ndarray:
    code = level_code(net, level)
    js = unpack_bins(payload, count, code)
    parts = []
    for i in range(0, count, RECONSTRUCT_BATCH):
        z = net.direct_latents(js[i:i + RECONSTRUCT_BATCH], code)
        parts.append(redraw(net, z, draw, first_index=i))
        if progress:
            progress(min(i + RECONSTRUCT_BATCH, count))
    return np.concatenate(parts)
