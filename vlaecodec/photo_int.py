"""The frozen any-size photo VLAE in integer arithmetic (numpy only): what both coding
sides run for photographs. Same architecture as ``photo_vlae.py``; every layer follows
the fixed-point rules of ``numerics.py`` (integer weights and activations, float64 GEMMs
of integers below 2**52, rounding shifts, lookup tables for ELU, tanh and 1/scale).

Arrays are channel-last, one image at a time: pixels (H, W, C) uint8.

* ``posterior(x)``            -> q(z|x) mean and log-std maps (Hz, Wz, Cz), fixed point
* ``prior_means(z, rows)``    -> means of p(z_row | z_row-1) for the given latent rows
* ``zfeatures(z, r0, r1)``    -> z features of pixel rows r0..r1-1
* ``pixel_params(x, zf, ...)``-> every pixel's mixture parameters at once (the encoder)
* ``Wavefront``               -> the same parameters for the pixels of one wavefront
                                 (the decoder), from their causal windows

The networks read pixels as v = (2x - 255) in fixed point (``pixel_input``): the float
model's to_unit(x) = (2x - 255) / 255 with its 1/255 folded into the first layers'
weights, so the image's zero padding is v = 0, exactly as in torch.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import numerics as nx
from .intnet import _PHASE_TAPS, Dense, _patches

PHOTO_INT_FORMAT = "vlaecodec-photo-int"
PHOTO_INT_VERSION = 1
STRIDE = 8
# Mixture parameter conventions of ``mixture.py``.
LOC_FRAC = 8           # component locations in pixel units, 8 fractional bits
INV_FRAC = 16          # 1/scale in pixel units, 16 fractional bits
LOG_S_MIN, LOG_S_MAX = -7 * nx.ONE, 7 * nx.ONE
TANH_RANGE = 8 * nx.ONE


def window_taps(h: int) -> list[tuple[int, int]]:
    """Causal window offsets in kernel raster order (the mask of photo_vlae.window_mask)."""
    return [(dr, dc) for dr in range(-h, 1) for dc in range(-h, h + 1) if dr < 0 or dc < 0]


PRIOR_TAPS = [(-1, -1), (-1, 0), (-1, 1)]


def build_photo_tables() -> dict[str, np.ndarray]:
    """Frozen at freeze time, stored in the model file (never recomputed when coding)."""
    t = {k: v for k, v in nx.build_tables(2).items() if k in ("lut.elu", "lut.phi", "lut.inv_sigma")}
    v = np.arange(-TANH_RANGE, TANH_RANGE + 1, dtype=np.float64)
    t["lut.tanh"] = np.rint(np.tanh(v / nx.ONE) * nx.ONE).astype(np.int32)
    ls = np.arange(LOG_S_MIN, LOG_S_MAX + 1, dtype=np.float64)
    # exp(-log s) / 127.5: the unit-scale inverse scale in pixel units.
    t["lut.inv_scale"] = np.rint(np.exp(-ls / nx.ONE) / 127.5 * (1 << INV_FRAC)).astype(np.int64)
    return t


@dataclass
class Conv:
    """A conv as one GEMM over windows: ``dense`` reads (k*k*Cin) tap-major inputs."""
    dense: Dense
    k: int
    stride: int
    pad: int

    def __call__(self, x: np.ndarray, elu: bool) -> np.ndarray:
        cols = _patches(x[None], self.k, self.stride, self.pad)[0] if self.k > 1 or self.stride > 1 else x
        return self.dense.elu(cols) if elu else self.dense(cols)


class IntPhotoVLAE:
    def __init__(self, arrays: dict[str, np.ndarray]):
        meta = json.loads(bytes(arrays["meta"]).decode())
        if meta.get("format") != PHOTO_INT_FORMAT or meta.get("version") != PHOTO_INT_VERSION:
            raise ValueError("not a photo integer model of this version")
        self.meta = meta
        cfg = meta["config"]
        self.channels, self.h, self.K = cfg["channels"], cfg["horizon"], cfg["mixtures"]
        self.cz = cfg["latent_channels"]
        self.zf_channels = cfg["zfeat_channels"]
        self.elu_pos = nx.elu_table(arrays["lut.elu"])
        self.tanh = arrays["lut.tanh"].astype(np.int64)
        self.inv_scale = arrays["lut.inv_scale"].astype(np.int64)
        self.grid = nx.LatentGrid(int(arrays["latent.step_log2"]), int(arrays["latent.max_index"]),
                                  arrays["lut.phi"], arrays["lut.inv_sigma"])

        def dense(name: str) -> Dense:
            d = Dense(arrays[name + ".w"].astype(np.float64), arrays[name + ".b"].astype(np.float64),
                      int(meta["shifts"][name]))
            d.elu_pos = self.elu_pos
            return d

        self.enc = [Conv(dense("enc.0"), 4, 2, 1), Conv(dense("enc.1"), 4, 2, 1), Conv(dense("enc.2"), 4, 2, 1),
                    Conv(dense("enc.3"), 3, 1, 1), Conv(dense("enc.4"), 1, 1, 0)]
        self.prior = [dense("prior.0"), dense("prior.1"), dense("prior.2")]
        self.zf_in = Conv(dense("zf.0"), 3, 1, 1)
        self.zf_up = [[dense(f"zf.{i}.{p}") for p in range(4)] for i in (1, 2, 3)]
        self.window = dense("pix.window")      # rows: window taps x C, then zfeat channels
        self.res = [dense(f"pix.res.{i}") for i in range(cfg["res_blocks"])]
        self.head = dense("pix.head")
        self.taps = window_taps(self.h)
        self.n_win = len(self.taps) * self.channels
        self.layers = ([c.dense for c in self.enc] + self.prior + [self.zf_in.dense]
                       + [d for ph in self.zf_up for d in ph] + [self.window] + self.res + [self.head])
        for layer in self.layers:   # pixel inputs are within 255 * ONE < ACT_LIMIT
            layer.check_exact(nx.ACT_LIMIT)

    # ------------------------------------------------------------ latents
    def posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (H, W, C) uint8 with H, W multiples of 8 -> mean, log_std (H/8, W/8, Cz)."""
        a = pixel_input(x)
        for i, conv in enumerate(self.enc):
            a = conv(a, elu=i < len(self.enc) - 1)
        mean, log_std = a[..., :self.cz], a[..., self.cz:]
        return mean, nx.clip(log_std, nx.LOG_STD_MIN, nx.LOG_STD_MAX, out=None)

    def prior_means(self, z_above: np.ndarray) -> np.ndarray:
        """Means of p(z_row | row above) from the row above (Wz, Cz) (zeros for row 0)."""
        p = np.pad(z_above, ((1, 1), (0, 0)))
        cols = np.concatenate([p[1 + dc:1 + dc + z_above.shape[0]] for _, dc in PRIOR_TAPS], axis=1)
        a = self.prior[0].elu(cols)
        a = self.prior[1].elu(a)
        return self.prior[2](a)

    def prior_means_all(self, z: np.ndarray) -> np.ndarray:
        """The prior means of every latent row at once (the encoder's pass)."""
        above = np.concatenate([np.zeros_like(z[:1]), z[:-1]], axis=0)
        wz = z.shape[1]
        p = np.pad(above, ((0, 0), (1, 1), (0, 0)))
        cols = np.concatenate([p[:, 1 + dc:1 + dc + wz] for _, dc in PRIOR_TAPS], axis=2)
        a = self.prior[0].elu(cols)
        a = self.prior[1].elu(a)
        return self.prior[2](a)

    # ------------------------------------------------------------ z features
    def zfeatures(self, z: np.ndarray) -> np.ndarray:
        """z (Hz, Wz, Cz) fixed point -> features (8 Hz, 8 Wz, F)."""
        a = self.zf_in(z, elu=True)
        for phases in self.zf_up:
            a = _conv_transpose(a, phases)
        return a

    # ------------------------------------------------------------ pixels
    def pixel_acc(self, v: np.ndarray, zf: np.ndarray) -> np.ndarray:
        """Window conv + z projection for all pixels (parallel): v (H, W, C) inputs 2x-255."""
        h = self.h
        vp = np.pad(v, ((h, 0), (h, h), (0, 0)))
        H, W = v.shape[:2]
        cols = np.concatenate([vp[h + dr:h + dr + H, h + dc:h + dc + W] for dr, dc in self.taps], axis=2)
        return self.window(cols, extra=zf)

    def params_from_acc(self, a: np.ndarray) -> np.ndarray:
        for r in self.res:
            a = nx.clip(a + r(self._elu(a)), -nx.ACT_LIMIT, nx.ACT_LIMIT, out=None)
        return self.head(self._elu(a))

    def _elu(self, a: np.ndarray) -> np.ndarray:
        return nx.elu(a, self.elu_pos)

    def pixel_params(self, x: np.ndarray, zf: np.ndarray) -> np.ndarray:
        """Every pixel's raw head outputs (H, W, K*P), fixed point (the encoder's pass)."""
        return self.params_from_acc(self.pixel_acc(pixel_input(x), zf))

    def windows(self, vpad: np.ndarray, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
        """Causal windows (N, taps*C) of pixels (ii, jj) from the padded input buffer
        (pad h rows above, h columns each side): the decoder's gather."""
        h = self.h
        rows = ii[:, None] + h + np.array([dr for dr, _ in self.taps])[None, :]
        cols = jj[:, None] + h + np.array([dc for _, dc in self.taps])[None, :]
        return vpad[rows, cols].reshape(len(ii), -1)

    # ------------------------------------------------------------ mixtures
    def channel_mixture(self, p: np.ndarray, c: int, prev_v: list[np.ndarray]):
        """Mixture of channel c for rows of head outputs p (N, K*P), given the values
        (2x - 255) of the channels before it: (loc, inv_scale, logits), int64 (N, K)."""
        C, K = self.channels, self.K
        q = p.reshape(len(p), K, -1).astype(np.int64)
        logits = q[:, :, c]
        mean = q[:, :, C + c]
        log_s = np.clip(q[:, :, 2 * C + c], LOG_S_MIN, LOG_S_MAX)
        if c > 0:   # coupling: coefficients (a, b, g) for G += a R, B += b R + g G
            idx = [0] if c == 1 else [1, 2]
            for k_coef, pv in zip(idx, prev_v):
                coef = self.tanh[np.clip(q[:, :, 3 * C + k_coef], -TANH_RANGE, TANH_RANGE) + TANH_RANGE]
                mean = mean + (coef * pv.astype(np.int64)[:, None]) // 255
        # unit scale -> pixel units: (m + 1) * 127.5, with LOC_FRAC fractional bits
        loc = ((mean + nx.ONE) * 255) >> (FRAC_SHIFT)
        inv = self.inv_scale[log_s - LOG_S_MIN]
        return loc, inv, logits


FRAC_SHIFT = nx.FRAC + 1 - LOC_FRAC   # (m + 1) * 255 / 2 in units of 2**-LOC_FRAC


def pixel_input(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> (2x - 255) * 2**FRAC as float64 integers."""
    return (2.0 * x.astype(np.float64) - 255.0) * nx.ONE


def _conv_transpose(x: np.ndarray, phases: list[Dense]) -> np.ndarray:
    """ConvTranspose2d(4, stride 2, padding 1) + ELU as four 2x2 phase convs (H, W, C)."""
    h, w, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    y = np.empty((2 * h, 2 * w, phases[0].w.shape[1]))
    for a in (0, 1):
        for c in (0, 1):
            cols = [xp[1 + di:1 + di + h, 1 + dj:1 + dj + w, :]
                    for di, _ in _PHASE_TAPS[a] for dj, _ in _PHASE_TAPS[c]]
            y[a::2, c::2, :] = phases[2 * a + c].elu(np.concatenate(cols, axis=2))
    return y


def load(path_or_arrays: Any) -> IntPhotoVLAE:
    if isinstance(path_or_arrays, dict):
        return IntPhotoVLAE(path_or_arrays)
    with np.load(path_or_arrays, allow_pickle=False) as z:
        return IntPhotoVLAE({k: z[k] for k in z.files})
