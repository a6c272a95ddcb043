"""The frozen VLAE in integer arithmetic (numpy only): what both coding sides run.

Same architecture as ``vlae.py`` (see its diagram), every layer computed by the exact
fixed-point rules of ``numerics.py``. Arrays are channel-last, ``(B, H, W, C)``.

* ``posterior(x)``      -> q(z|x) mean and log-std (fixed point)
* ``prior_means(z)``    -> m_i(z_<i) of the prior's conditionals N(m_i, 1)
* ``pixel_freqs(x, z)`` -> P(x_t | x_<t, z) as integer frequencies, all pixels at once:
  binary models give P(x_t = 1) out of 2**16, 8-bit models all 256 levels out of 2**24
* ``stepper(z)``        -> the same frequencies one pixel at a time, from causal windows

The parallel pass and the stepper multiply the same integers by the same integer
weights, so they agree exactly (sums of integers below 2**52 do not depend on order);
``tests/test_intnet.py`` checks it with array equality. The encoder therefore codes
with the parallel pass and only the decoder steps pixel by pixel.
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from . import numerics as nx
from .config import VLAEConfig

INT_FORMAT = "vlaecodec-int"
INT_FORMAT_VERSION = 1


class Dense:
    """y = rescale(x @ w + b, shift): w is (fan_in, fan_out), everything integer-valued float64.

    The rounding half of ``rescale`` is folded into the bias once, so a call is a GEMM
    and three in-place passes: floor((acc + b + 2**(s-1)) * 2**-s) is exactly
    floor((acc + b) * 2**-s + 1/2) (all terms are exact in float64). ``elu`` fuses the
    ELU that follows most layers: its table already saturates below -ELU_RANGE, so the
    clip to [-ELU_RANGE, ACT_LIMIT] gives the same result as clip-then-ELU."""

    def __init__(self, w: np.ndarray, b: np.ndarray, shift: int):
        self.w, self.b, self.shift = np.ascontiguousarray(w), b, shift
        self.b_round = b + (2.0 ** (shift - 1) if shift else 0.0)
        self.scale = 2.0 ** -shift
        # For the fused ELU: also add ELU_RANGE (after the shift), so every clipped value
        # is >= 0, truncation to an integer index is floor, and the index needs no offset.
        self.b_elu = self.b_round + float(nx.ELU_RANGE) * 2.0 ** shift
        self.w_b_elu = np.vstack([self.w, self.b_elu[None, :]])   # bias as a last input row
        self.b_sig = self.b_round           # the head's: set by IntVLAE
        self.elu_pos: np.ndarray | None = None   # set by IntVLAE: ELU at index v + ELU_RANGE

    def check_exact(self, in_bound: float) -> None:
        """Refuse a layer whose sums could round: every GEMM partial sum, with any of the
        biases (plain, rounded, with a fused table offset), must stay below 2**52."""
        if self.shift < 0 or not np.all(np.isfinite(self.w)) or np.any(self.w != np.round(self.w)):
            raise ValueError("a layer has a negative shift or non-integer weights")
        col = np.abs(self.w).sum(0) * in_bound
        bias = np.max(np.abs([self.b, self.b_round, self.b_elu, self.b_sig]), axis=0)
        if float((col + bias).max()) >= nx.EXACT_LIMIT:
            raise ValueError("a layer's sums could exceed 2**52: the model file is not exact")

    def _acc(self, x: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
        # 2-D GEMMs (numpy would loop over leading axes of an N-D matmul). ``extra`` holds
        # the last input columns separately (same as concatenating it to ``x``).
        k = x.shape[-1]
        acc = _rows(x, k) @ (self.w if extra is None else self.w[:k])
        if extra is not None:
            acc += extra.reshape(-1, extra.shape[-1]) @ self.w[k:]
        acc += self.b_round
        if self.shift:
            acc *= self.scale
            np.floor(acc, out=acc)
        return acc

    def __call__(self, x: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        acc = nx.clip(self._acc(x, extra), -nx.ACT_LIMIT, nx.ACT_LIMIT, out=None)
        return acc.reshape(x.shape[:-1] + (self.w.shape[1],))

    def elu(self, x: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """elu(self(x)): after the GEMM, a scale, a clip and one gather."""
        k = x.shape[-1]
        acc = _rows(x, k) @ (self.w if extra is None else self.w[:k])
        if extra is not None:
            acc += extra.reshape(-1, extra.shape[-1]) @ self.w[k:]
        acc += self.b_elu
        return self._elu_tail(acc).reshape(x.shape[:-1] + (self.w.shape[1],))

    def elu_with_bias_column(self, x: np.ndarray) -> np.ndarray:
        """``elu`` for a 2-D input whose last column is all ones (the stepper's windows)."""
        return self._elu_tail(x @ self.w_b_elu)

    def _elu_tail(self, acc: np.ndarray) -> np.ndarray:
        if self.shift:
            acc *= self.scale
        nx.clip(acc, 0.0, float(nx.ELU_RANGE) + nx.ACT_LIMIT, out=acc)
        return self.elu_pos[acc.astype(np.intp)]


def _rows(x: np.ndarray, k: int) -> np.ndarray:
    """x as a 2-D (rows, k) matrix; also for k = 0 (a factorized decoder's first layer
    reads no pixel), where reshape(-1, 0) cannot infer the row count."""
    return x.reshape(-1, k) if k else x.reshape(int(np.prod(x.shape[:-1])), 0)


# Output row 2m + a of ConvTranspose2d(4, stride 2, padding 1) sums input rows m + di
# through kernel row ki, for (di, ki) in _PHASE_TAPS[a] (columns alike).
_PHASE_TAPS = {0: [(0, 1), (-1, 3)], 1: [(1, 0), (0, 2)]}


def causal_offsets(kernel: int, mask_type: str) -> list[tuple[int, int]]:
    """(row, col) offsets a masked kernel may read, in kernel raster order.

    Type "A" (first layer) sees only pixels strictly before the centre in raster
    order; type "B" (later layers) also sees the centre, which at that point holds
    features of earlier pixels only. (layers.MaskedConv2d builds its mask from this.)"""
    if mask_type not in ("A", "B"):
        raise ValueError("mask_type must be 'A' or 'B'")
    p = kernel // 2
    return [(dr, dc) for dr in range(-p, 1) for dc in range(-p, p + 1)
            if dr < 0 or dc < 0 or (dc == 0 and mask_type == "B")]


def _conv_matrix(w: np.ndarray, taps: list[tuple[int, int]]) -> np.ndarray:
    """torch conv weight (Cout, Cin, k, k) -> (taps * Cin, Cout), tap-major."""
    p = w.shape[2] // 2
    if not taps:   # a 1x1 type-A layer reads no pixel (a factorized decoder)
        return np.zeros((0, w.shape[0]), w.dtype)
    return np.concatenate([w[:, :, p + dr, p + dc].T for dr, dc in taps], axis=0)


def _patches(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """(B, H, W, C) -> (B, Ho, Wo, k*k*C) windows, tap-major (row, col, channel)."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = [xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            for i in range(k) for j in range(k)]
    return np.concatenate(cols, axis=3)


POSTERIOR_IMAGES = 32   # images per posterior and z-feature pass (see IntVLAE.posterior)


class BinCode:
    """Latents sent as bins: dimension i is one of ``bins[i]`` equal-mass bins of its prior
    conditional, whose medians (``offsets[i]``, fixed point) are added to m_i(z_<i). Used
    for direct coding (chain starts, single images) and for the lossy rate levels."""

    def __init__(self, bins, flat_offsets: np.ndarray, dims: int, power_of_two: bool = False):
        self.bins = [int(b) for b in bins]
        if len(self.bins) != dims or min(self.bins) < 1 or (power_of_two and any(b & (b - 1) for b in self.bins)):
            raise ValueError("malformed bin table")
        starts = np.concatenate([[0], np.cumsum(self.bins)])
        flat = np.asarray(flat_offsets, dtype=np.float64)
        if len(flat) != starts[-1] or np.abs(flat).max(initial=0) > nx.ACT_LIMIT:
            raise ValueError("bin offset table does not match its bins")
        self.offsets = [flat[starts[i]:starts[i + 1]] for i in range(dims)]
        self.bits = [b.bit_length() - 1 for b in self.bins]   # (power-of-two tables)


class IntVLAE:
    """A frozen integer VLAE, built from the arrays of a model file."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        meta = json.loads(bytes(arrays["meta"]).decode())
        if meta.get("format") != INT_FORMAT or meta.get("format_version") != INT_FORMAT_VERSION:
            raise ValueError(f"not a {INT_FORMAT} v{INT_FORMAT_VERSION} model")
        if meta.get("frac") != nx.FRAC:
            raise ValueError("model was frozen with another fixed-point format")
        self.meta = meta
        self.cfg = cfg = VLAEConfig.from_dict(meta["config"])
        tables = {k: arrays[k] for k in arrays if k.startswith("lut.")}
        nx.check_tables(tables)
        self.elu_t = nx.elu_table(tables["lut.elu"])
        self.sig_t = tables["lut.sigmoid"].astype(np.float64)
        if cfg.pixel_levels not in (2, 256):
            raise ValueError(f"models with {cfg.pixel_levels}-level pixels are not supported")
        if cfg.pixel_levels > 2 and "lut.exp" not in tables:
            raise ValueError("an 8-bit model needs the lookup table lut.exp")
        self.exp_t = tables["lut.exp"].astype(np.int64) if cfg.pixel_levels > 2 else None
        lat = meta["latent"]
        self.grid = nx.LatentGrid(lat["step_log2"], lat["max_index"], tables["lut.phi"], tables["lut.inv_sigma"])
        shifts: dict[str, int] = meta["shifts"]

        def w(name: str) -> np.ndarray:
            return arrays[name + ".w"].astype(np.float64)

        def dense(name: str, wm: np.ndarray | None = None) -> Dense:
            wm = w(name).T if wm is None else wm
            return Dense(np.ascontiguousarray(wm), arrays[name + ".b"].astype(np.float64), int(shifts[name]))

        def conv(name: str) -> Dense:  # plain conv: (Cout, Cin, k, k) -> (k*k*Cin, Cout)
            wt = w(name)
            return dense(name, wt.transpose(2, 3, 1, 0).reshape(-1, wt.shape[0]))

        self.levels = cfg.pixel_levels
        self.size = cfg.image_size
        self.side = -(-cfg.image_size // 4)
        # Encoder. Its final linear reads torch's (C, 7, 7) flattening; we hold (7, 7, C).
        self.enc_c1, self.enc_c2 = conv("enc.c1"), conv("enc.c2")
        self.enc_blocks = [(conv(f"enc.b{i}.c1"), conv(f"enc.b{i}.c2")) for i in range(cfg.enc_blocks)]
        wo = w("enc.out")
        c2 = 2 * cfg.enc_channels
        wo = wo.reshape(wo.shape[0], c2, self.side, self.side).transpose(0, 2, 3, 1).reshape(wo.shape[0], -1)
        self.enc_out = dense("enc.out", wo.T)
        # Prior (AR: mean-only MADE steps; factorized: none).
        self.prior_steps = [(dense(f"prior.s{i}.l1"), dense(f"prior.s{i}.l2"))
                            for i in range(cfg.prior_steps if cfg.prior == "ar" else 0)]
        # z features: linear to a 7x7 map (rows reordered to channel-last), two transposed convs.
        wl, bl = w("zf.lin"), arrays["zf.lin.b"].astype(np.float64)
        d = cfg.dec_channels
        order = np.arange(wl.shape[0]).reshape(d, self.side, self.side).transpose(1, 2, 0).ravel()
        self.zf_lin = Dense(np.ascontiguousarray(wl[order].T), bl[order], int(shifts["zf.lin"]))
        # Transposed convs (kernel 4, stride 2, padding 1) as 4 output phases, each an
        # ordinary 2x2 conv: output (2m+a, 2n+c) reads inputs m+di, n+dj with kernel taps
        # (ki, kj) from _PHASE_TAPS. One GEMM per phase; the same integer sums as the
        # transposed conv, so the same result.
        self.zf_up = []
        for name in ("zf.up1", "zf.up2"):
            wt = w(name)  # (Cin, Cout, 4, 4)
            phases = [np.concatenate([wt[:, :, ki, kj] for _, ki in _PHASE_TAPS[a] for _, kj in _PHASE_TAPS[c]])
                      for a in (0, 1) for c in (0, 1)]
            self.zf_up.append([Dense(m, arrays[name + ".b"].astype(np.float64), int(shifts[name])) for m in phases])
        # Local PixelCNN: masked convs as tap matrices (shared by the parallel pass and the stepper).
        k = cfg.pcnn_kernel
        self.taps_a, self.taps_b = causal_offsets(k, "A"), causal_offsets(k, "B")
        # Each layer's weights read [causal window, z feature at the pixel] (see freeze.py).
        self.pc_convs = [dense(f"pc.conv{i}", np.concatenate(
            [_conv_matrix(w(f"pc.conv{i}"), self.taps_a if i == 0 else self.taps_b), arrays[f"pc.conv{i}.wz"].astype(np.float64).T]))
            for i in range(cfg.pcnn_layers)]
        self.pc_blocks = [(dense(f"pc.blk{i}.l1"), dense(f"pc.blk{i}.l2")) for i in range(cfg.pcnn_out_blocks)]
        self.pc_head = dense("pc.head")
        self.pc_head.b_sig = self.pc_head.b_round + float(nx.SIGMOID_RANGE) * 2.0 ** self.pc_head.shift
        # The head's weights transposed, for W^T @ features (head_channels_first).
        tr = np.ascontiguousarray
        self._blocks_t = [(tr(l1.w.T), l1.b_elu[:, None], tr(l2.w.T), l2.b_round[:, None]) for l1, l2 in self.pc_blocks]
        self._head_t = tr(self.pc_head.w.T)
        for layer in self._layers():
            layer.elu_pos = self.elu_t
            layer.check_exact(self._input_bound(layer))
        self.direct = BinCode(meta["direct"]["bins"], arrays["direct.offsets"], cfg.latent_dim)
        self.direct_bins, self.direct_offsets = self.direct.bins, self.direct.offsets
        # Lossy rate levels 1..N (models frozen before lossy mode have none).
        lossy = meta.get("lossy") or {}
        flat, pos, self.lossy_levels = arrays.get("lossy.offsets", np.zeros(0)), 0, []
        for bins in lossy.get("levels", []):
            n = int(sum(bins))
            self.lossy_levels.append(BinCode(bins, flat[pos:pos + n], cfg.latent_dim, power_of_two=True))
            pos += n
        if pos != len(flat):
            raise ValueError("lossy offset tables do not match their bins")

    # ------------------------------------------------------------ helpers
    def _input_bound(self, layer: Dense) -> float:
        """The largest |input| a layer can see: pixels for the first layers, else ACT_LIMIT."""
        if layer is self.enc_c1 or layer is self.pc_convs[0]:
            return float(max((self.levels - 1) * nx.ONE, nx.ACT_LIMIT))
        return nx.ACT_LIMIT

    def _layers(self) -> list[Dense]:
        out = [self.enc_c1, self.enc_c2, self.enc_out, self.zf_lin, *sum(self.zf_up, []), *self.pc_convs,
               self.pc_head]
        for pair in self.enc_blocks + self.prior_steps + self.pc_blocks:
            out += list(pair)
        return out

    def elu(self, y: np.ndarray) -> np.ndarray:
        return nx.elu(y, self.elu_t)

    def pixel_input(self, x: np.ndarray) -> np.ndarray:
        """Pixels 0..L-1 -> (2x - (L-1)) in fixed point; 0 means 'outside the image'.
        (The float model's 1/(L-1) is folded into the first layers' weights.)"""
        return (2.0 * x - (self.levels - 1)) * nx.ONE

    # ------------------------------------------------------------ q(z|x)
    def posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (B, H, W) integer pixels -> mean, log_std (B, D), fixed point. Computed
        POSTERIOR_IMAGES images at a time: the encoder's patch matrices of larger
        batches leave the caches (1,000 images at once: 0.72 ms per image; 32 at a time: 0.46)."""
        if len(x) <= POSTERIOR_IMAGES:
            return self._posterior(x)
        if self.pool is not None:
            return self._split(self._posterior_serial, x)
        return self._posterior_serial(x)

    def _posterior_serial(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [self._posterior(x[i:i + POSTERIOR_IMAGES]) for i in range(0, len(x), POSTERIOR_IMAGES)]
        return np.concatenate([m for m, _ in parts]), np.concatenate([s for _, s in parts])

    def _posterior(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = self.pixel_input(np.asarray(x, dtype=np.float64))[..., None]
        h = self.enc_c1.elu(_patches(h, 3, 2, 1))
        h = self.enc_c2.elu(_patches(h, 3, 2, 1))
        for c1, c2 in self.enc_blocks:
            r = c2(_patches(c1.elu(_patches(self.elu(h), 3, 1, 1)), 3, 1, 1))
            h = nx.clip(h + r, -nx.ACT_LIMIT, nx.ACT_LIMIT)
        out = self.enc_out(self.elu(h).reshape(h.shape[0], -1))
        d = self.cfg.latent_dim
        return out[:, :d], nx.clip(out[:, d:], nx.LOG_STD_MIN, nx.LOG_STD_MAX)

    # ------------------------------------------------------------ p(z)
    def prior_means(self, z: np.ndarray) -> np.ndarray:
        """m(z) with m_i depending on z_<i only: masked weights are exact zeros, so
        entries >= i of z may hold anything (a decoder passes zeros)."""
        u, m = nx.clip(z, -nx.ACT_LIMIT, nx.ACT_LIMIT), np.zeros_like(z)
        for l1, l2 in self.prior_steps:
            shift = l2(l1.elu(u))
            m = nx.clip(m + shift, -nx.ACT_LIMIT, nx.ACT_LIMIT)   # keep every layer input bounded
            u = nx.clip(u - shift, -nx.ACT_LIMIT, nx.ACT_LIMIT)
        return m

    # ------------------------------------------------------------ p(x|z)
    def zfeatures(self, z: np.ndarray) -> np.ndarray:
        """z (B, D) fixed point -> the upsampled map (B, H, W, zfeat) before projection,
        POSTERIOR_IMAGES images at a time (cache-sized, as the posterior)."""
        if len(z) <= POSTERIOR_IMAGES:
            return self._zfeatures(z)
        return np.concatenate([self._zfeatures(z[i:i + POSTERIOR_IMAGES]) for i in range(0, len(z), POSTERIOR_IMAGES)])

    def _zfeatures(self, z: np.ndarray) -> np.ndarray:
        b, s = z.shape[0], self.side
        h = self.zf_lin.elu(z).reshape(b, s, s, -1)
        for up in self.zf_up:
            h = self._conv_transpose(h, up)
        return h[:, :self.size, :self.size, :]

    @staticmethod
    def _conv_transpose(x: np.ndarray, phases: list[Dense]) -> np.ndarray:
        """ConvTranspose2d(kernel 4, stride 2, padding 1) + ELU, one 2x2 conv per output phase."""
        b, h, w, _ = x.shape
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        y = np.empty((b, 2 * h, 2 * w, phases[0].w.shape[1]))
        for a in (0, 1):
            for c in (0, 1):
                cols = [xp[:, 1 + di:1 + di + h, 1 + dj:1 + dj + w, :]
                        for di, _ in _PHASE_TAPS[a] for dj, _ in _PHASE_TAPS[c]]
                y[:, a::2, c::2, :] = phases[2 * a + c].elu(np.concatenate(cols, axis=3))
        return y

    def head(self, a: np.ndarray) -> np.ndarray:
        """Per-pixel head: features (..., C) -> frequencies: binary models P(x=1) out of
        2**16, shape (...); 8-bit models every level out of 2**24, int64 (..., 256)."""
        shape = a.shape[:-1]
        f = self.head_channels_first(np.asarray(a.reshape(-1, a.shape[-1]), dtype=np.float64).T)
        return f.reshape(shape + f.shape[1:])

    def head_channels_first(self, a: np.ndarray) -> np.ndarray:
        """``head`` of features held channels-first, (C, N) -> (N,) or (N, 256): the one
        head of both coding sides (the stepper keeps its features this way; the parallel
        pass hands over a transposed view). GEMMs as W^T @ a, same integer sums."""
        for (l1, l2), (w1, b1, w2, b2) in zip(self.pc_blocks, self._blocks_t):
            acc = w1 @ self.elu(a)
            acc += b1
            r = w2 @ l1._elu_tail(acc)
            r += b2
            if l2.shift:
                r *= l2.scale
                np.floor(r, out=r)
            nx.clip(r, -nx.ACT_LIMIT, nx.ACT_LIMIT, out=r)
            a = a + r
            nx.clip(a, -nx.ACT_LIMIT, nx.ACT_LIMIT, out=a)
        h = self.pc_head
        acc = self._head_t @ self.elu(a)
        if self.levels > 2:
            acc += h.b_round[:, None]
            if h.shift:
                acc *= h.scale
                np.floor(acc, out=acc)
            nx.clip(acc, -nx.ACT_LIMIT, nx.ACT_LIMIT, out=acc)
            return nx.categorical_freqs(np.ascontiguousarray(acc.T), self.exp_t)
        # The logit -> frequency table read like the fused ELU: the table's offset is
        # folded into the bias, so clip, truncate and gather (same result as
        # lookup(sig_t, rescale(logit), -R, R)).
        acc += h.b_sig[:, None]
        if h.shift:
            acc *= h.scale
        nx.clip(acc, 0.0, 2.0 * nx.SIGMOID_RANGE, out=acc)
        return self.sig_t[acc.astype(np.intp)[0]]

    def pixel_freqs(self, x: np.ndarray, z: np.ndarray, chunk: int = 8) -> np.ndarray:
        """The parallel pass: frequencies for every pixel (see ``head``): binary models
        (B, H*W) float64, 8-bit models (B, H*W, 256) int64."""
        if self.pool is not None and len(x) >= 2 * chunk:
            return self._split(lambda a, b: self._pixel_freqs(a, b, chunk), x, z)
        return self._pixel_freqs(x, z, chunk)

    def _pixel_freqs(self, x: np.ndarray, z: np.ndarray, chunk: int) -> np.ndarray:
        out = [self.head(self._features(x[i:i + chunk], z[i:i + chunk])).reshape((min(chunk, len(x) - i), -1)
                                                                                 + ((self.levels,) if self.levels > 2 else ()))
               for i in range(0, len(x), chunk)]
        return np.concatenate(out)

    def pixel_features(self, x: np.ndarray, z: np.ndarray, chunk: int = 8) -> np.ndarray:
        """The parallel pass up to the head: the last masked layer's features (B, H*W, C),
        float32 (they are integers below 2**20, so exact). ``head`` turns any slice of
        them into frequencies: a batch of 8-bit images is coded a few pixels at a time
        instead of holding 256 frequencies for every pixel at once."""
        out = np.empty((len(x), self.size * self.size, self.cfg.pcnn_channels), np.float32)
        for i in range(0, len(x), chunk):
            a = self._features(x[i:i + chunk], z[i:i + chunk])
            out[i:i + chunk] = a.reshape(len(a), -1, a.shape[-1])
        return out

    def _features(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The masked layers over whole images: (B, H, W, C). Each layer is one GEMM over
        rows [causal window, z feature, 1] (the stepper's row layout: the bias is the
        last weight row), filled in place from a zero-padded copy of the layer's input."""
        b, hh, ww = x.shape
        hz = self.zfeatures(z)
        zf, c = hz.shape[-1], self.cfg.pcnn_channels
        p = self.cfg.pcnn_kernel // 2
        a = None
        for layer, conv in enumerate(self.pc_convs):
            taps, width = (self.taps_a, 1) if layer == 0 else (self.taps_b, c)
            if layer < 2:   # one row buffer per window width, reused by the later layers
                win = np.empty((b, hh, ww, len(taps) * width + zf + 1))
                win[..., -zf - 1:-1] = hz
                win[..., -1] = 1.0
                src = np.zeros((b, hh + p, ww + 2 * p, width))
            src[:, p:, p:p + ww] = (self.pixel_input(np.asarray(x, dtype=np.float64))[..., None]
                                    if layer == 0 else a.reshape(b, hh, ww, c))
            for j, (dr, dc) in enumerate(taps):
                win[..., j * width:(j + 1) * width] = src[:, p + dr:p + dr + hh, p + dc:p + dc + ww]
            y = conv.elu_with_bias_column(win.reshape(b * hh * ww, -1))
            if a is None:
                a = y
            else:
                a += y
                nx.clip(a, -nx.ACT_LIMIT, nx.ACT_LIMIT, out=a)
        return a.reshape(b, hh, ww, c)

    def stepper(self, z: np.ndarray) -> "IntStepper":
        """The pixel stepper for latents z (B, D). (Never split over threads: a step is
        ~100 small numpy calls, and handing half of each to another thread made 1,000
        images step at 1,115 img/s against 1,087 alone, 256 images at 628 against 1,003.)"""
        return IntStepper(self, z)

    # ------------------------------------------------------------ threads
    # Every pass above is per image, so a batch may be cut anywhere and its parts computed
    # at once: numpy drops the GIL inside its loops and GEMMs (2 threads on 2,000 digits:
    # pixel pass 845 -> 1,454 img/s, posterior 2,052 -> 3,789). ``threads`` sets a pool.
    # The pool is per calling thread: two threads may code with one model at once, and
    # the pool's own threads (which compute parts) see none, so parts are never split again.
    _local = threading.local()

    @property
    def pool(self) -> Executor | None:
        return getattr(self._local, "pools", {}).get(id(self), (None, 1))[0]

    @property
    def pool_size(self) -> int:
        return getattr(self._local, "pools", {}).get(id(self), (None, 1))[1]

    def _set_pool(self, pool: Executor | None, size: int) -> None:
        pools = self._local.__dict__.setdefault("pools", {})
        if pool is None:
            pools.pop(id(self), None)
        else:
            pools[id(self)] = (pool, size)

    def map(self, fn: Callable, *arrays: np.ndarray, least: int = 2):
        """fn(*arrays) for a function that works row by row (same rows out as in), split
        over the pool's threads when there is a pool and at least ``least`` rows."""
        if self.pool is None or len(arrays[0]) < least:
            return fn(*arrays)
        return self._split(fn, *arrays)

    def _split(self, fn: Callable, *arrays: np.ndarray):
        """fn over ``pool_size`` parts of the batch at once, results joined in order (a
        tuple result is joined element by element)."""
        n, k = len(arrays[0]), self.pool_size
        cuts = [i * n // k for i in range(k + 1)]
        futures = [self.pool.submit(fn, *[a[lo:hi] for a in arrays]) for lo, hi in zip(cuts[1:-1], cuts[2:])]
        out = [fn(*[a[cuts[0]:cuts[1]] for a in arrays])] + [f.result() for f in futures]
        if isinstance(out[0], tuple):
            return tuple(np.concatenate(parts) for parts in zip(*out))
        return np.concatenate(out)

    # ------------------------------------------------------------ direct coding
    def direct_latents(self, js: np.ndarray, code: "BinCode | None" = None) -> np.ndarray:
        """Latents from bin indices (B, D): z_i = m_i(z_<i) + offset_i[j_i], for the direct
        code (default) or a lossy level's."""
        offsets = (code or self.direct).offsets
        z = np.zeros(js.shape)
        prior = self.prior_stepper(len(js))
        for i in range(js.shape[1]):
            z[:, i] = nx.clip(prior.mean(i) + offsets[i][js[:, i]], -nx.ACT_LIMIT, nx.ACT_LIMIT)
            prior.set(i, z[:, i])
        return z

    def prior_stepper(self, b: int) -> "PriorStepper":
        return PriorStepper(self, b)


class PriorStepper:
    """m_i(z_<i) one dimension at a time, for loops that learn z_i only after using m_i
    (decoding z, choosing bins). The same integers as ``IntVLAE.prior_means``, whose
    full MADE pass per dimension cost 64 times the work: each step's hidden layer is
    kept as a running sum over the known inputs (masked weights are exact zeros, so the
    hidden units that would read unknown inputs never reach output i), and only output
    column i is computed. Integer sums below 2**52 do not depend on their order, so
    the running sum equals the GEMM; ``tests/test_intnet.py`` checks equality.

        for i in range(D):
            m = prior.mean(i)       # (B,)
            z_i = ...               # decoded or chosen with m
            prior.set(i, z_i)
    """

    def __init__(self, net: IntVLAE, b: int):
        self.steps = net.prior_steps
        self.b = b
        # Hidden pre-activations of every step, bias included, for the inputs set so far.
        self.acc = [np.repeat(l1.b_elu[None, :], b, axis=0) for l1, _ in self.steps]
        self.shifts = np.zeros((len(self.steps), b))   # each step's output i, from mean(i)
        self.next = 0

    def mean(self, i: int) -> np.ndarray:
        if i != self.next:
            raise ValueError(f"prior stepper: dimension {i} asked for before {self.next} was set")
        m = np.zeros(self.b)
        for s, ((l1, l2), acc) in enumerate(zip(self.steps, self.acc)):
            h = l1._elu_tail(acc.copy())
            a = h @ l2.w[:, i]
            a += l2.b_round[i]
            if l2.shift:
                a *= l2.scale
                np.floor(a, out=a)
            nx.clip(a, -nx.ACT_LIMIT, nx.ACT_LIMIT, out=a)
            self.shifts[s] = a
            m = nx.clip(m + a, -nx.ACT_LIMIT, nx.ACT_LIMIT)
        return m

    def set(self, i: int, z_i: np.ndarray) -> None:
        """z_i is known: feed it (and each step's input derived from it) forward."""
        if i != self.next:
            raise ValueError(f"prior stepper: dimension {i} set out of order (expected {self.next})")
        u = nx.clip(np.asarray(z_i, dtype=np.float64), -nx.ACT_LIMIT, nx.ACT_LIMIT)
        for s, ((l1, _), acc) in enumerate(zip(self.steps, self.acc)):
            acc += u[:, None] * l1.w[i][None, :]
            u = nx.clip(u - self.shifts[s], -nx.ACT_LIMIT, nx.ACT_LIMIT)
        self.next = i + 1


class IntStepper:
    """Pixel-by-pixel evaluation from causal windows (the decoder's hot loop).

    Layout: position-major and channels-first. Each layer's features live in a ring of
    k//2 + 1 zero-padded rows, (rows * width, C, B): one position's features for the
    whole batch are one contiguous block. A step gathers its window's positions with one
    ``take`` straight into the GEMM's input, a (taps * C + zfeat + 1, B) matrix whose
    last rows hold pixel t's z feature and ones (for the bias), and computes pixel t's
    features as W^T @ window. (The batch-major layout of earlier versions gathered
    128-byte pieces 7.7 KB apart: with 1,000 images it left the caches and the TLB, and
    was 40% slower even at 256 images.) The integers are those of the parallel pass:
    the same products, summed exactly (numerics.py). Columns outside the image are never
    written, so they read as the zero padding; the row above the first one is a ring
    row not yet written, also zero."""

    def __init__(self, net: IntVLAE, z: np.ndarray):
        cfg = net.cfg
        self.net, self.b = net, z.shape[0]
        b = self.b
        h = net.zfeatures(z)                       # (B, H, W, zfeat)
        height, width, zf = h.shape[1:4]
        p = cfg.pcnn_kernel // 2
        rows, wp = p + 1, width + 2 * p

        def slot(r: int, c: int) -> int:
            return (r % rows) * wp + c + p

        coords = [(r, c) for r in range(height) for c in range(width)]
        self.pos = [slot(r, c) for r, c in coords]
        self.idx_a = [np.array([slot(r + dr, c + dc) for dr, dc in net.taps_a], np.intp) for r, c in coords]
        self.idx_b = [np.array([slot(r + dr, c + dc) for dr, dc in net.taps_b], np.intp) for r, c in coords]
        c = cfg.pcnn_channels
        na, nb = len(net.taps_a), len(net.taps_b)
        self.x_buf = np.zeros((rows * wp, b))
        self.a_buf = [np.zeros((rows * wp, c, b)) for _ in net.pc_convs]
        self.hz = np.ascontiguousarray(h.reshape(b, height * width, zf).transpose(1, 2, 0))   # (HW, zfeat, B)
        # The GEMMs' inputs, [window; z feature; 1] (rows), reused every step.
        self.win_a, self.win_b = np.ones((na + zf + 1, b)), np.ones((nb * c + zf + 1, b))
        self.taps_a_rows = self.win_a[:na]
        self.taps_b_rows = self.win_b[:nb * c].reshape(nb, c, b)
        self.z_rows = (slice(na, na + zf), slice(nb * c, nb * c + zf))
        self.conv_wt = [np.ascontiguousarray(layer.w_b_elu.T) for layer in net.pc_convs]

    def freqs(self, t: int) -> np.ndarray:
        """Frequencies of pixel t for all B images (reads only pixels < t): (B,) for
        binary models, (B, 256) for 8-bit ones (as ``IntVLAE.head``)."""
        net, pos, hz = self.net, self.pos[t], self.hz[t]
        self.win_a[self.z_rows[0]] = hz
        np.take(self.x_buf, self.idx_a[t], axis=0, out=self.taps_a_rows)
        a = net.pc_convs[0]._elu_tail(self.conv_wt[0] @ self.win_a)
        self.a_buf[0][pos] = a
        self.win_b[self.z_rows[1]] = hz
        idx = self.idx_b[t]
        for i in range(1, len(net.pc_convs)):
            np.take(self.a_buf[i - 1], idx, axis=0, out=self.taps_b_rows)
            a += net.pc_convs[i]._elu_tail(self.conv_wt[i] @ self.win_b)
            nx.clip(a, -nx.ACT_LIMIT, nx.ACT_LIMIT, out=a)
            self.a_buf[i][pos] = a
        return net.head_channels_first(a)

    def set_pixel(self, t: int, values: np.ndarray) -> None:
        """Record the (decoded or true) value of pixel t for all B images."""
        self.x_buf[self.pos[t]] = self.net.pixel_input(np.asarray(values, dtype=np.float64))


@contextmanager
def threads(net: IntVLAE, n: int) -> Iterator[None]:
    """Inside, ``net`` computes its passes over batches in ``n`` threads (n < 2: no
    change). For a process that has the cores to itself: a single chain, a lossy
    archive. Coding workers in separate processes keep one thread each. BLAS is held at
    one thread meanwhile (its own threads would spin on the cores ours need; blas.py)."""
    if n < 2:
        yield
        return
    from . import blas
    before = blas.get_threads()
    blas.set_threads(1)
    try:
        with ThreadPoolExecutor(n - 1) as pool:   # the calling thread computes one part
            net._set_pool(pool, n)
            try:
                yield
            finally:
                net._set_pool(None, 1)
    finally:
        if before is not None:
            blas.set_threads(before)


def load_arrays(source: Any) -> dict[str, np.ndarray]:
    """Read a model file (.npz, no pickles) into a dict of arrays."""
    with np.load(source, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
