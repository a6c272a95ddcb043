"""Bits-back coding of images with a VLAE: the push/pop order, chaining, start-up.

A file codes its images in *batches*, in order; the decoder undoes them in reverse.

Direct batch (the start of every chain; a single image is one direct batch)::

    code  z: one dimension at a time, each a uniform choice among K_i equal-mass
             bins of p(z_i | z_<i)  (K_i frozen with the model; K_i = 1 sends nothing)
    code  x | z: pixel by pixel (local PixelCNN, integer frequencies)
  with an exact arithmetic coder (``arith.py``): no bits back, but no start-up cost.

Bits-back batch (everything after the start, on one constriction AnsCoder stack whose
bottom holds the direct batch's bytes)::

    encode:  pop  z ~ q(z|x)      decode:  pop  z  under p(z)  (dim by dim)
             push x | z                     pop  x | z  (pixel by pixel)
             push z under p(z)              push z  under q(z|x)   <- bits given back

Expected cost of a bits-back image = -log p(x|z) - log p(z) + log q(z|x), i.e. the
negative ELBO. Batches grow with the stack: a batch pops only as many latent bits as
the stack holds, so the chain starts small and quickly reaches full-size batches.

Exactness: every probability is produced by one function (``_Side``) that the
encoder and decoder call with the same batch and the same shapes; the encoder runs
the decoder's pixel-by-pixel stepper rather than the parallel network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import constriction
import numpy as np
import torch

from . import numerics as nx
from .arith import ArithDecoder, ArithEncoder
from .container import ContainerError, Header, pack, pixels_crc32, unpack
from .zoo import DEFAULT_MODEL, LoadedModel, ModelError, find_by_hash

MAX_BATCH = 1000          # images decoded together (memory: ~0.2 MB per image in the stepper)
STACK_MARGIN = 1.25       # pop only when the stack holds 1.25x the expected latent bits
DEFAULT_DIRECT_BINS = 4

_QG = constriction.stream.model.QuantizedGaussian(-nx.LATENT_MAX_INDEX, nx.LATENT_MAX_INDEX)
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)


@dataclass
class Archive:
    images: list[np.ndarray]
    names: list[str] | None
    modes: list[str]
    header: Header


def direct_bins(loaded: LoadedModel) -> list[int]:
    """Bins per latent dimension for direct coding, frozen in the checkpoint."""
    d = loaded.config.latent_dim
    bins = loaded.coding.get("direct_bins")
    if bins is None:
        return [DEFAULT_DIRECT_BINS] * d
    if len(bins) != d or any(int(b) < 1 for b in bins):
        raise ModelError(f"{loaded.name}: malformed direct_bins table in the checkpoint")
    return [int(b) for b in bins]


class _Side:
    """The model functions both sides call, one batch at a time."""

    def __init__(self, loaded: LoadedModel):
        self.m = loaded.model
        self.cfg = loaded.config
        self.hw = self.cfg.image_size ** 2
        self.bins = direct_bins(loaded)
        self.offsets = [nx.equal_mass_offsets(k) for k in self.bins]

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.m.encoder(x)
        return mean, torch.exp(log_std)

    def prior_mean(self, z: torch.Tensor, i: int) -> torch.Tensor:
        """Mean of p(z_i | z_<i) for the batch; entries >= i of z are ignored (exactly)."""
        return self.m.prior.conditional_means(z)[:, i]

    def direct_latents(self, js: torch.Tensor) -> torch.Tensor:
        """Latents of direct coding from bin indices (B, D): z_i = m_i(z_<i) + offset."""
        z = torch.zeros(js.shape, dtype=torch.float32)
        for i in range(js.shape[1]):
            z[:, i] = self.prior_mean(z, i) + self.offsets[i][js[:, i]]
        return z

    def pixel_loop(self, z: torch.Tensor, next_pixels: Callable[[int, torch.Tensor], torch.Tensor]) -> None:
        """Run the stepper; ``next_pixels(t, logits)`` returns pixel t of every image."""
        stepper = self.m.stepper(z)
        for t in range(self.hw):
            stepper.set_pixel(t, next_pixels(t, stepper.logits(t)))


# ----------------------------------------------------------------- direct batches

def _encode_direct(side: _Side, x: np.ndarray, enc: ArithEncoder | list[ArithEncoder]) -> None:
    """Code a batch directly. ``enc`` is one encoder for the whole batch (a file's
    chain start) or one per image (to measure each image's code alone): the
    arithmetic coder's integers grow with the message, so long messages are slow."""
    b = x.shape[0]
    encs = enc if isinstance(enc, list) else [enc] * b
    xt = torch.from_numpy(x.reshape(b, -1).astype(np.int64))
    js = _choose_direct_bins(side, xt.view(b, side.cfg.image_size, side.cfg.image_size))
    z = side.direct_latents(js)
    for i, k in enumerate(side.bins):          # order: dim-major, images inner
        if k > 1:
            for e, j in zip(encs, js[:, i].tolist()):
                e.encode(j, 1, k)
    freq0 = np.empty((side.hw, b), np.int64)

    def record(t: int, logits: torch.Tensor) -> torch.Tensor:
        freq0[t] = nx.quantize_p0(nx.bernoulli_p1(logits))
        return xt[:, t]

    side.pixel_loop(z, record)
    bits = x.reshape(b, -1).T
    for t in range(side.hw):
        for e, bit, f in zip(encs, bits[t].tolist(), freq0[t].tolist()):
            e.encode_bit(bit, f, nx.PIXEL_FREQ_BITS)


def _choose_direct_bins(side: _Side, x: torch.Tensor, passes: int = 1) -> torch.Tensor:
    """Bins for direct coding (encoder only: the decoder just reads them).

    Every choice costs the same rate (uniform over K_i bins), so pick the bins that
    make the pixels cheapest: start from the bin holding the posterior mean, then
    try each other bin of each sent dimension and keep any change that lowers
    -log p(x|z) (scored with the parallel network; the code itself always uses the
    stepper, so these scores only guide the choice)."""
    b = x.shape[0]
    mean, _ = side.posterior(x)
    z = torch.zeros_like(mean)
    js = torch.zeros(mean.shape, dtype=torch.long)
    for i, k in enumerate(side.bins):
        m = side.prior_mean(z, i)
        if k > 1:
            js[:, i] = nx.equal_mass_bin(mean[:, i] - m, k)
        z[:, i] = m + side.offsets[i][js[:, i]]
    moves = [(i, j) for i, k in enumerate(side.bins) for j in range(k)]
    if not moves:
        return js
    nll = side.m.pixel_nll(x, side.m.decoder_logits(x, z))
    for _ in range(passes):
        improved = False
        for i, j in moves:
            cand = js.clone()
            cand[:, i] = j
            todo = (js[:, i] != j).nonzero().flatten()
            if len(todo) == 0:
                continue
            zc = side.direct_latents(cand[todo])
            c = side.m.pixel_nll(x[todo], side.m.decoder_logits(x[todo], zc))
            better = c < nll[todo] - 1e-4
            if better.any():
                idx = todo[better]
                js[idx] = cand[idx]
                nll[idx] = c[better]
                improved = True
        if not improved:
            break
    return js


def _decode_direct(side: _Side, b: int, dec: ArithDecoder) -> np.ndarray:
    js = torch.zeros(b, side.cfg.latent_dim, dtype=torch.long)
    for i, k in enumerate(side.bins):
        if k > 1:
            js[:, i] = torch.tensor([dec.decode_uniform(k) for _ in range(b)])
    z = side.direct_latents(js)
    out = np.empty((side.hw, b), np.uint8)

    def decode_pixels(t: int, logits: torch.Tensor) -> torch.Tensor:
        freq0 = nx.quantize_p0(nx.bernoulli_p1(logits))
        out[t] = [dec.decode_bit(int(f), nx.PIXEL_FREQ_BITS) for f in freq0]
        return torch.from_numpy(out[t].astype(np.int64))

    side.pixel_loop(z, decode_pixels)
    return out.T.reshape(b, side.cfg.image_size, side.cfg.image_size)


# --------------------------------------------------------------- bits-back batches

def _push_bits_back(side: _Side, x: np.ndarray, coder) -> None:
    b = x.shape[0]
    xt = torch.from_numpy(x.astype(np.int64))
    # 1. pop z ~ q(z|x): the bits this takes are given back by the decoder's last step.
    mean, std = side.posterior(xt)
    k = coder.decode(_QG, *nx.scaled_gaussian(mean, std)).reshape(b, -1)
    z = nx.latent_values(k)
    # 2. push x | z, pixel by pixel (decoder pops t = 0.. first, images inner).
    flat = xt.view(b, -1)
    p1 = np.empty((side.hw, b))

    def record(t: int, logits: torch.Tensor) -> torch.Tensor:
        p1[t] = nx.bernoulli_p1(logits)
        return flat[:, t]

    side.pixel_loop(z, record)
    coder.encode_reverse(np.ascontiguousarray(x.reshape(b, -1).T.ravel(), dtype=np.int32), _BERNOULLI, p1.ravel())
    # 3. push z under p(z); the decoder pops dimension 0 first, images inner. One
    #    network pass gives every conditional mean: m_i only reads z_<i.
    means = side.m.prior.conditional_means(z)
    mu, sd = nx.scaled_gaussian(means.T.contiguous(), 1.0)
    coder.encode_reverse(np.ascontiguousarray(k.T.ravel(), dtype=np.int32), _QG, mu, sd)


def _pop_bits_back(side: _Side, b: int, coder) -> np.ndarray:
    d = side.cfg.latent_dim
    # 3'. pop z under p(z), one dimension at a time.
    z = torch.zeros(b, d)
    k = np.empty((b, d), np.int32)
    for i in range(d):
        mu, sd = nx.scaled_gaussian(side.prior_mean(z, i), 1.0)
        k[:, i] = coder.decode(_QG, mu, sd)
        z[:, i] = nx.latent_values(torch.from_numpy(k[:, i]))
    # 2'. pop x | z.
    out = np.empty((side.hw, b), np.uint8)

    def decode_pixels(t: int, logits: torch.Tensor) -> torch.Tensor:
        out[t] = coder.decode(_BERNOULLI, nx.bernoulli_p1(logits))
        return torch.from_numpy(out[t].astype(np.int64))

    side.pixel_loop(z, decode_pixels)
    x = out.T.reshape(b, side.cfg.image_size, side.cfg.image_size)
    # 1'. push z back under q(z|x): returns the bits the encoder popped.
    mean, std = side.posterior(torch.from_numpy(x.astype(np.int64)))
    coder.encode_reverse(np.ascontiguousarray(k.ravel()), _QG, *nx.scaled_gaussian(mean, std))
    return x


# ------------------------------------------------------------------- scheduling

def _latent_bits_needed(side: _Side, x: np.ndarray) -> np.ndarray:
    """Expected bits popped when sampling z ~ q on the grid, per image (an estimate
    used only to size batches; the schedule itself is stored in the file)."""
    _, std = side.posterior(torch.from_numpy(x.astype(np.int64)))
    h = torch.log2(std * math.sqrt(2 * math.pi * math.e) / nx.LATENT_STEP).clamp(min=0.0)
    return h.sum(1).double().numpy()


def _words_to_bytes(words: np.ndarray) -> bytes:
    raw = words.astype("<u4").tobytes()
    return raw.rstrip(b"\0") if raw else raw


def _bytes_to_words(raw: bytes) -> np.ndarray:
    raw = raw + b"\0" * (-len(raw) % 4)
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


# ------------------------------------------------------------------- public

Progress = Callable[[int], None] | None


def _check_images(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    if len(images) == 0:
        raise ContainerError("nothing to compress: no images given")
    arr = []
    for i, im in enumerate(images):
        a = np.asarray(im)
        if a.shape != (size, size):
            raise ContainerError(f"image {i} is {a.shape[1] if a.ndim > 1 else '?'}x{a.shape[0]}; "
                                 f"this model codes {size}x{size} images")
        if a.dtype.kind not in "biu" or a.min() < 0 or a.max() > 1:
            raise ContainerError(f"image {i} is not binary (pixels must be 0 or 1)")
        arr.append(a.astype(np.uint8))
    return np.stack(arr)


def compress(images: Sequence[np.ndarray], loaded: LoadedModel, *, names: Sequence[str] | None = None,
             modes: Sequence[str] | None = None, progress: Progress = None) -> bytes:
    size = loaded.config.image_size
    x = _check_images(images, size)
    n = len(x)
    modes = list(modes) if modes is not None else ["1"] * n
    if len(modes) != n or any(m not in ("1", "L") for m in modes):
        raise ContainerError("modes must be '1' or 'L', one per image")
    if names is not None and len(names) != n:
        raise ContainerError("one name per image expected")
    with nx.coding_context():
        side = _Side(loaded)
        need = np.concatenate([_latent_bits_needed(side, x[i:i + 500]) for i in range(0, n, 500)])
        # Direct part: as few images as give the stack enough bits to pop the first
        # bits-back image's latents (popping from a too-short stack would still
        # decode, but with degenerate latents). Then bits-back batches, each as large
        # as the stack can feed. The encoder fixes the schedule and records it in
        # the header, so the decoder never has to guess.
        n_direct, start = 1, b""
        while True:
            enc = ArithEncoder()
            _encode_direct(side, x[:n_direct], enc)
            start = enc.finish()
            if n_direct == n or 8 * len(start) >= STACK_MARGIN * need[n_direct]:
                break
            per_image = 8 * len(start) / n_direct
            n_direct = min(n, n_direct + max(1, math.ceil((STACK_MARGIN * need[n_direct] - 8 * len(start)) / per_image)))
        schedule: list[tuple[int, bool]] = [(n_direct, False)]
        if progress:
            progress(n_direct)
        pos = n_direct
        if pos < n:
            coder = constriction.stream.stack.AnsCoder(_bytes_to_words(start), seal=True)
            while pos < n:
                avail = coder.num_valid_bits() / STACK_MARGIN
                cum = np.cumsum(need[pos:pos + MAX_BATCH])
                b = max(1, int(np.searchsorted(cum, avail, side="right")))
                _push_bits_back(side, x[pos:pos + b], coder)
                schedule.append((b, True))
                pos += b
                if progress:
                    progress(pos)
            payload = _words_to_bytes(coder.get_compressed())
        else:
            payload = start
    header = Header(model_hash=loaded.sha256[:6], count=n, height=size, width=size,
                    model_name=None if loaded.name == DEFAULT_MODEL else loaded.name,
                    schedule=schedule if len(schedule) > 1 else None,
                    names=list(names) if names is not None else None, modes=modes,
                    crc32=pixels_crc32(im.tobytes() for im in x), default_shape=(size, size))
    return pack(header, payload)


def resolve_model(header: Header, loaded: LoadedModel | None) -> LoadedModel:
    if loaded is None:
        return find_by_hash(header.model_hash, header.model_name)
    if not loaded.sha256.startswith(header.model_hash) or (header.model_name and header.model_name != loaded.name):
        who = header.model_name or "another model"
        raise ModelError(f"this file was made with {who} (hash {header.model_hash}), "
                         f"not with {loaded.name} (hash {loaded.sha256[:6]})")
    return loaded


def decompress(data: bytes, loaded: LoadedModel | None = None, *, progress: Progress = None) -> Archive:
    header, payload = unpack(data)
    loaded = resolve_model(header, loaded)
    size = loaded.config.image_size
    if (header.height, header.width) != (size, size):
        raise ContainerError(f"file holds {header.width}x{header.height} images; model {loaded.name} "
                             f"codes {size}x{size}")
    batches = header.batches()
    if batches[0][1] or any(not bb for _, bb in batches[1:]):
        raise ContainerError("corrupt header (unsupported batch schedule)")
    parts: list[np.ndarray] = []
    done = 0
    try:
        with nx.coding_context():
            side = _Side(loaded)
            if len(batches) > 1:
                coder = constriction.stream.stack.AnsCoder(_bytes_to_words(payload))
                for b, _ in reversed(batches[1:]):
                    parts.append(_pop_bits_back(side, b, coder))
                    done += b
                    if progress:
                        progress(done)
                start = _words_to_bytes(coder.get_compressed(unseal=True))
            else:
                start = payload
            parts.append(_decode_direct(side, batches[0][0], ArithDecoder(start)))
    except (ContainerError, ModelError):
        raise
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException:  # noqa: BLE001 - constriction reports bad input as assertions/panics
        raise ContainerError("file is corrupt or truncated (payload does not decode)") from None
    if progress:
        progress(header.count)
    images = list(np.concatenate(parts[::-1]))
    if pixels_crc32(im.tobytes() for im in images) != header.crc32:
        raise ContainerError("file is corrupt or truncated (CRC32 of decoded pixels does not match)")
    return Archive(images=images, names=header.names, modes=header.image_modes(), header=header)
