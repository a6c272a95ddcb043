"""Bits-back coding of images with a frozen integer VLAE: the push/pop order, chaining,
start-up. numpy and constriction only (no torch).

A file codes its images in *batches*, in order; the decoder undoes them in reverse.

Direct batch (the start of every chain; a single image is one direct batch)::

    code  z: one dimension at a time, each a uniform choice among K_i equal-mass
             bins of p(z_i | z_<i)  (K_i frozen with the model; K_i = 1 sends nothing)
    code  x | z: pixel by pixel (local PixelCNN, 16-bit integer frequencies)
  with an exact arithmetic coder (``arith.py``): no bits back, but no start-up cost.

Bits-back batch (everything after the start, on one constriction AnsCoder stack whose
bottom holds the direct batch's bytes)::

    push (encode)                          pop (decode), the exact mirror
    1. pop  z ~ q(z|x)   (grid cells)      3'. pop  z under p(z), dim by dim
    2. push x | z        (parallel pass)   2'. pop  x | z, pixel by pixel (stepper)
    3. push z under p(z)                   1'. push z under q(z|x)   <- bits given back

Expected cost of a bits-back image = -log P(x|z) - log P(z) + log Q(z), the negative
ELBO on the latent grid. Batches grow with the stack: a batch pops only as many latent
bits as the stack holds, so the chain starts small and quickly reaches full batches.

Exactness: every frequency is an integer from ``intnet``/``numerics`` (see there); the
encoder's parallel pass equals the decoder's stepper integer for integer.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import constriction
import numpy as np

from . import blas
from . import numerics as nx
from .arith import ArithDecoder, ArithEncoder
from . import container as _container
from .container import (MAX_BATCH, MAX_DIRECT, MAX_PARTICLES, ContainerError, Header, batch_particles,
                        chain_count, default_mode, max_bits_back_batches,
                        pack, unpack)
from .intnet import BinCode, IntVLAE, threads
from .zoo import DEFAULT_MODELS, LoadedModel, ModelError, find_by_hash

# Pop a batch's latents only when the stack holds STACK_MARGIN x their expected bits. (A
# short stack still decodes correctly, but its pops cost extra bytes: 1.0 made 3,000 test
# digits 2% larger; 1.1 saved 2 of 18 batches but made the 10,000 test digits 126 bytes
# larger than 1.25.)
STACK_MARGIN = 1.25
DIRECT_SHARE = 200
POSTERIOR_CHUNK = 128     # images per posterior table (bounds memory: ~10 MB)
PIXEL_TOTAL = 1 << nx.PIXEL_FREQ_BITS
CAT_TOTAL = 1 << nx.CAT_FREQ_BITS
PIXEL_PUSH_STEPS = 28     # 8-bit pixels: push a batch this many pixel positions at a time

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)


def new_coder(words: np.ndarray, seal: bool = False):
    """The ANS stack every bits-back chain runs on (one place, so tools can wrap it: see
    bench/arm64/transcript.py, which records and replays every coder call)."""
    return constriction.stream.stack.AnsCoder(words, seal=seal)


@dataclass
class Archive:
    images: list[np.ndarray]
    names: list[str] | None
    modes: list[str]
    header: Header


# ----------------------------------------------------------------- direct batches

def direct_rounds(net: IntVLAE) -> int:
    """Rounds of the encoder's direct-bin search (see ``choose_direct_bins``). Each round
    scores every single-bin change with a parallel pass. For 8-bit models (256-way
    heads; latents a few percent of an image's code) one round saved 0.7% of a direct
    image (vlae-mnist8-v1: 109.33 -> 108.53 bytes; vlae-fashion-mnist-v1: 294.68 ->
    292.95, 40 validation images each) at 13 to 25 times the encoding time (about 1 s
    more per image), so they take the bins nearest the posterior mean."""
    return 2 if net.levels == 2 else 0


def _encode_direct(net: IntVLAE, x: np.ndarray, enc: ArithEncoder | list[ArithEncoder],
                   rounds: int | None = None) -> None:
    """Code a batch directly. ``enc`` is one encoder for the whole batch (a file's
    chain start) or one per image (to measure each image's code alone): the
    arithmetic coder's integers grow with the message, so long messages are slow."""
    b = x.shape[0]
    encs = enc if isinstance(enc, list) else [enc] * b
    js = choose_direct_bins(net, x, direct_rounds(net) if rounds is None else rounds)
    for i, k in enumerate(net.direct_bins):          # order: dim-major, images inner
        if k > 1:
            for e, j in zip(encs, js[:, i].tolist()):
                e.encode(j, 1, k)
    z = net.direct_latents(js)
    values = x.reshape(b, -1).T                                         # (HW, B)
    if net.levels == 2:
        f1 = net.pixel_freqs(x, z).T.astype(np.int64)
        for t in range(values.shape[0]):
            for e, bit, f in zip(encs, values[t].tolist(), f1[t].tolist()):
                e.encode_bit(bit, PIXEL_TOTAL - f, nx.PIXEL_FREQ_BITS)
        return
    f = net.pixel_freqs(x, z).transpose(1, 0, 2)                        # (HW, B, 256)
    cum = np.cumsum(f, axis=2) - f
    rows = np.arange(b)
    for t in range(values.shape[0]):
        v = values[t]
        for e, c, n in zip(encs, cum[t, rows, v].tolist(), f[t, rows, v].tolist()):
            e.encode(c, n, CAT_TOTAL)


def _decode_direct(net: IntVLAE, b: int, dec: ArithDecoder) -> np.ndarray:
    js = np.zeros((b, net.cfg.latent_dim), np.int64)
    for i, k in enumerate(net.direct_bins):
        if k > 1:
            js[:, i] = [dec.decode_uniform(k) for _ in range(b)]
    st = net.stepper(net.direct_latents(js))
    hw = net.size * net.size
    out = np.empty((hw, b), np.uint8)
    for t in range(hw):
        f = st.freqs(t)
        if net.levels == 2:
            out[t] = [dec.decode_bit(f0, nx.PIXEL_FREQ_BITS) for f0 in (PIXEL_TOTAL - f).astype(np.int64).tolist()]
        else:
            cums = np.cumsum(f, axis=1) - f
            out[t] = [dec.decode(c, CAT_TOTAL) for c in cums.tolist()]
        st.set_pixel(t, out[t])
    return out.T.reshape(b, net.size, net.size)


_NLL_Q16 = nx.NLL_Q16   # -log2(f / 2**16) in units of 2**-16 bits (see numerics)


def _pixel_bits(x: np.ndarray, f1: np.ndarray) -> np.ndarray:
    """-log2 P(x | z) per image, in units of 2**-16 bits, from 16-bit frequencies."""
    xf = x.reshape(len(x), -1)
    p = np.where(xf == 1, f1, PIXEL_TOTAL - f1)
    return _NLL_Q16[p.astype(np.intp)].sum(1)


def _pixel_nll_q16(net: IntVLAE, x: np.ndarray, z: np.ndarray, chunk: int = 8) -> np.ndarray:
    """-log2 P(x | z) per image, in units of 2**-16 bits (int64), from the coder's integer
    frequencies (``numerics.nll_q16``): the same integers on every machine. 8-bit models
    a few images at a time (256 frequencies per pixel would not fit for a large batch)."""
    if net.levels == 2:
        return _pixel_bits(x, net.pixel_freqs(x, z)).astype(np.int64)
    out = np.empty(len(x), np.int64)
    for i in range(0, len(x), chunk):
        f = net.pixel_freqs(x[i:i + chunk], z[i:i + chunk])           # (b, HW, 256)
        xf = x[i:i + chunk].reshape(len(f), -1, 1).astype(np.intp)
        out[i:i + chunk] = nx.nll_q16(np.take_along_axis(f, xf, axis=2)[..., 0], nx.CAT_FREQ_BITS).sum(1)
    return out


def choose_direct_bins(net: IntVLAE, x: np.ndarray, rounds: int = 2, code: BinCode | None = None) -> np.ndarray:
    """Bins for direct coding (encoder only: the decoder just reads them).

    Every choice costs the same rate (uniform over K_i bins), so pick the bins that make
    the pixels cheapest. Start from the bin nearest the posterior mean; then, ``rounds``
    times, score every single-bin change of every image in one batched parallel pass and
    move to the better of "the best change" and "every dimension's best change at once".
    (Measured on 200 validation digits: 17.95 bytes/image, against 18.36 without the
    search and 18.01 for one sequential sweep over the dimensions, at the same cost.) The
    scores only guide the choice; the code itself uses exact integer frequencies.
    ``code``: another bin table (a lossy level's) instead of the direct one."""
    code = code or net.direct
    b, d = x.shape[0], net.cfg.latent_dim
    mean, _ = net.posterior(x)
    js = np.zeros((b, d), np.int64)
    z = np.zeros((b, d))
    prior = net.prior_stepper(b)
    for i, k in enumerate(code.bins):   # nearest offset to the posterior mean
        m = prior.mean(i)
        js[:, i] = np.abs(code.offsets[i][None, :] - (mean[:, i] - m)[:, None]).argmin(1)
        z[:, i] = np.clip(m + code.offsets[i][js[:, i]], -nx.ACT_LIMIT, nx.ACT_LIMIT)
        prior.set(i, z[:, i])
    sent = [(i, k) for i, k in enumerate(code.bins) if k > 1]
    if not sent or rounds < 1:
        return js
    # Moves: (dimension, step); bin j -> (j + step) mod K, so no move is a no-op.
    mi = np.array([i for i, k in sent for _ in range(1, k)])
    step = np.array([s for _, k in sent for s in range(1, k)])
    kk = np.array([k for _, k in sent for _ in range(1, k)])
    rows = np.arange(b)[:, None]
    cost = _pixel_nll_q16(net, x, z)
    for _ in range(rounds):
        cand = np.repeat(js[:, None, :], len(mi), axis=1)            # (b, moves, d)
        cand[:, np.arange(len(mi)), mi] = (js[:, mi] + step) % kk
        xs = np.repeat(x, len(mi), axis=0)
        c = _pixel_nll_q16(net, xs, net.direct_latents(cand.reshape(-1, d), code)).reshape(b, -1)
        best = c.argmin(1)
        single, single_cost = cand[np.arange(b), best], c[np.arange(b), best]
        joint = js.copy()
        for i in {int(i) for i in mi}:
            cols = np.nonzero(mi == i)[0]
            bi = cols[c[:, cols].argmin(1)]
            ok = c[np.arange(b), bi] < cost
            joint[ok, i] = cand[rows[ok, 0], bi[ok], i]
        joint_cost = _pixel_nll_q16(net, x, net.direct_latents(joint, code))
        use_joint = joint_cost < single_cost
        new = np.where(use_joint[:, None], joint, single)
        new_cost = np.where(use_joint, joint_cost, single_cost)
        better = new_cost < cost
        if not better.any():
            break
        js[better], cost[better] = new[better], new_cost[better]
    return js


# --------------------------------------------------------------- bits-back batches
# Each step of a bits-back batch is a pair of functions, push and pop, written as
# mirrors: whatever one side pops, the other pushes with the same integer tables, in the
# reverse order.

def _posterior_tables(net: IntVLAE, mean: np.ndarray, log_std: np.ndarray):
    """Q(z|x) frequency tables for images in chunks: yields (rows, tables (n*D, cells))."""
    for r in range(0, len(mean), POSTERIOR_CHUNK):
        yield slice(r, r + POSTERIOR_CHUNK), net.map(
            net.grid.posterior_freqs, mean[r:r + POSTERIOR_CHUNK].ravel(), log_std[r:r + POSTERIOR_CHUNK].ravel(), least=512)


def _pop_posterior(net: IntVLAE, coder, mean: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """Pop z ~ Q(z|x) on the grid (bits the other side gives back): grid indices (B, D).
    Image-major order, in chunks (popping chunk after chunk = one pop)."""
    k = np.empty(mean.shape, np.int64)
    for rows, q in _posterior_tables(net, mean, log_std):
        k[rows] = coder.decode(_CATEGORICAL, q).reshape(-1, mean.shape[1]) - net.grid.K
    return k


def _push_posterior(net: IntVLAE, coder, k: np.ndarray, mean: np.ndarray, log_std: np.ndarray) -> None:
    """Mirror of ``_pop_posterior``: the last chunk goes first, so pops read chunk 0 first."""
    for rows, q in reversed(list(_posterior_tables(net, mean, log_std))):
        coder.encode_reverse(np.ascontiguousarray((k[rows] + net.grid.K).ravel(), dtype=np.int32), _CATEGORICAL, q)


def _push_pixels(net: IntVLAE, coder, x: np.ndarray, z: np.ndarray) -> None:
    """Push x | z so that the decoder pops pixel t = 0 first, images inner."""
    b = len(x)
    values = np.ascontiguousarray(x.reshape(b, -1).T, dtype=np.int32)   # (HW, B)
    if net.levels == 2:
        f1 = net.pixel_freqs(x, z)
        coder.encode_reverse(values.ravel(), _BERNOULLI, np.ascontiguousarray(f1.T.ravel()) / PIXEL_TOTAL)
        return
    # 256 frequencies per pixel: from the features, a few pixel positions at a time,
    # the last positions first (so the decoder's pops meet position 0 first).
    a = net.pixel_features(x, z).transpose(1, 0, 2)                     # (HW, B, C)
    for t0 in reversed(range(0, a.shape[0], PIXEL_PUSH_STEPS)):
        f = net.head(a[t0:t0 + PIXEL_PUSH_STEPS])                      # (steps, B, 256)
        coder.encode_reverse(values[t0:t0 + PIXEL_PUSH_STEPS].ravel(), _CATEGORICAL,
                             np.ascontiguousarray(f.reshape(-1, net.levels), dtype=np.float64))


def _pop_pixels(net: IntVLAE, coder, z: np.ndarray) -> np.ndarray:
    """Mirror of ``_push_pixels``: pixel by pixel, with the stepper."""
    b = len(z)
    st = net.stepper(z)
    hw = net.size * net.size
    out = np.empty((hw, b), np.uint8)
    for t in range(hw):
        if net.levels == 2:
            out[t] = coder.decode(_BERNOULLI, st.freqs(t) / PIXEL_TOTAL)
        else:
            # (C order: constriction reads a Fortran-ordered table's memory as rows)
            out[t] = coder.decode(_CATEGORICAL, np.ascontiguousarray(st.freqs(t), dtype=np.float64))
        st.set_pixel(t, out[t])
    return out.T.reshape(b, net.size, net.size)


def _push_prior(net: IntVLAE, coder, k: np.ndarray) -> None:
    """Push z under p(z): the decoder pops dimension 0 first, images inner. One prior
    pass gives every conditional mean, since m_i only reads z_<i."""
    g = net.grid
    m = net.map(net.prior_means, g.values(k), least=64)
    coder.encode_reverse(np.ascontiguousarray((k.T + g.K).ravel(), dtype=np.int32), _CATEGORICAL,
                         net.map(g.prior_freqs, m.T.ravel(), least=512))


def _pop_prior(net: IntVLAE, coder, b: int) -> np.ndarray:
    """Mirror of ``_push_prior``: one dimension at a time (m_i needs z_<i)."""
    g, d = net.grid, net.cfg.latent_dim
    k = np.empty((b, d), np.int64)
    prior = net.prior_stepper(b)
    for i in range(d):
        k[:, i] = coder.decode(_CATEGORICAL, g.prior_freqs(prior.mean(i))) - g.K
        prior.set(i, g.values(k[:, i]))
    return k


def _push_bits_back(net: IntVLAE, x: np.ndarray, coder, posterior: tuple[np.ndarray, np.ndarray],
                    particles: int = 1) -> None:
    """One bits-back batch at the ELBO (``particles`` = 1) or, with K > 1 particles, at
    the importance-weighted bound (Monte Carlo bits-back, Ruan et al. 2021)::

        push (encode)                             pop (decode), the exact mirror
        1. pop  z_1..z_K ~ Q(z|x)                 7'. push z_1..z_K under Q(z|x)
        2. pop  j ~ w_j / sum_k w_k               6'. push j under the same weights
        3. push j, uniform over K                 5'. pop  j, uniform
        4. push z_k (k != j) under Q(z|x)         4'. pop  z_k (k != j) under Q(z|x)
        5. push x | z_j                           3'. pop  x | z_j (stepper)
        6. push z_j under p(z)                    2'. pop  z_j under p(z)

    with w_k = P(x|z_k) P(z_k) / Q(z_k|x) from the integer tables (``_log_weights``).
    Net cost: -log2 (1/K sum_k w_k), the IWAE bound; K = 1 is steps 1, 5, 6."""
    mean, log_std = posterior
    if particles == 1:
        k = _pop_posterior(net, coder, mean, log_std)
        _push_pixels(net, coder, x, net.grid.values(k))
        _push_prior(net, coder, k)
        return
    ks = [_pop_posterior(net, coder, mean, log_std) for _ in range(particles)]          # 1
    kk = np.stack(ks, axis=1)                                                           # (B, K, D)
    j = coder.decode(_CATEGORICAL, _weight_freqs(net, x, kk, mean, log_std)).astype(np.int64)   # 2
    b = len(x)
    coder.encode_reverse(j.astype(np.int32), _CATEGORICAL, np.ones((b, particles)))     # 3
    others = _others(kk, j)                                                             # (B, K-1, D)
    for o in reversed(range(particles - 1)):                                            # 4
        _push_posterior(net, coder, others[:, o], mean, log_std)
    kj = kk[np.arange(b), j]
    _push_pixels(net, coder, x, net.grid.values(kj))                                    # 5
    _push_prior(net, coder, kj)                                                         # 6


def _pop_bits_back(net: IntVLAE, b: int, coder, particles: int = 1) -> np.ndarray:
    """Mirror of ``_push_bits_back``."""
    k = _pop_prior(net, coder, b)                                                       # 2' (6)
    x = _pop_pixels(net, coder, net.grid.values(k))                                     # 3' (5)
    mean, log_std = net.posterior(x)
    if particles == 1:
        _push_posterior(net, coder, k, mean, log_std)                                   # (1)
        return x
    others = np.stack([_pop_posterior(net, coder, mean, log_std)                        # 4'
                       for _ in range(particles - 1)], axis=1)
    j = coder.decode(_CATEGORICAL, np.ones((b, particles))).astype(np.int64)            # 5'
    kk = _insert(others, k, j)
    coder.encode_reverse(j.astype(np.int32), _CATEGORICAL, _weight_freqs(net, x, kk, mean, log_std))   # 6'
    for p in reversed(range(particles)):                                                # 7'
        _push_posterior(net, coder, kk[:, p], mean, log_std)
    return x


def _others(kk: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The particles other than j, in order: (B, K, D) -> (B, K-1, D)."""
    keep = np.arange(kk.shape[1])[None, :] != j[:, None]
    return kk[keep].reshape(kk.shape[0], kk.shape[1] - 1, kk.shape[2])


def _insert(others: np.ndarray, kj: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Inverse of ``_others``: put particle j back at position j."""
    b, k1, d = others.shape
    kk = np.empty((b, k1 + 1, d), others.dtype)
    pos = np.arange(k1 + 1)[None, :]
    kk[pos == j[:, None]] = kj
    kk[pos != j[:, None]] = others.reshape(-1, d)
    return kk


def _log_weights(net: IntVLAE, x: np.ndarray, kk: np.ndarray, mean: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """log2 w_k = log2 Q(z_k|x) - log2 P(z_k) - log2 P(x|z_k) in units of 2**-16 bits,
    (B, K) int64, from the coders' integer frequencies through ``numerics.nll_q16``: the
    encoder and the decoder compute the same integers on every machine."""
    g = net.grid
    b, n_p, d = kk.shape
    lw = np.zeros((b, n_p), np.int64)
    for rows, q in _posterior_tables(net, mean, log_std):          # Q: one table per image and dim
        q = q.reshape(-1, d, g.size)
        kr = kk[rows] + g.K                                         # (n, K, D)
        f = np.take_along_axis(q[:, None], kr[..., None], axis=3)[..., 0]
        lw[rows] -= nx.nll_q16(f, nx.CDF_BITS).sum(2)
    for p in range(n_p):
        z = g.values(kk[:, p])
        m = net.prior_means(z)
        f = np.take_along_axis(g.prior_freqs(m.ravel()), (kk[:, p] + g.K).reshape(-1, 1), axis=1)
        lw[:, p] += nx.nll_q16(f.reshape(b, d), nx.CDF_BITS).sum(1)
        lw[:, p] += _pixel_nll_q16(net, x, z)
    return -lw


def _weight_freqs(net: IntVLAE, x: np.ndarray, kk: np.ndarray, mean: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """The particle index's distribution w_k / sum w, as integer frequencies (B, K)."""
    return nx.categorical_freqs(_log_weights(net, x, kk, mean, log_std), nx.exp2_table(),
                                shift=nx.EXP2_SHIFT).astype(np.float64)


# ------------------------------------------------------------------- scheduling

_INV_LN2_Q16 = 94548             # round(2**16 / ln 2)
_LOG2_SQRT_2PI_E_Q16 = 134159    # round(2**16 * log2(sqrt(2 pi e)))


def _latent_bits_needed(net: IntVLAE, log_std: np.ndarray) -> np.ndarray:
    """Expected bits popped when sampling z ~ Q on the grid, per image: the sum over
    dimensions of max(0, log2(sigma sqrt(2 pi e) / step)). An encoder-side estimate that
    only sizes batches (the schedule is stored in the file), computed with integers so
    every machine makes the same schedule."""
    q16 = np.floor(log_std * _INV_LN2_Q16 / nx.ONE) + (_LOG2_SQRT_2PI_E_Q16 - 65536 * net.grid.step_log2)
    return np.clip(q16, 0.0, None).sum(1) / 65536.0


def _max_direct_bytes(net: IntVLAE) -> int:
    """An upper bound on one directly coded image's bytes (every pixel at its least
    likely value, every latent bin sent): longer direct parts are corrupt."""
    per_pixel = nx.PIXEL_FREQ_BITS if net.levels == 2 else nx.CAT_FREQ_BITS
    bits = net.size * net.size * per_pixel + sum(math.log2(k) for k in net.direct_bins)
    return math.ceil(bits / 8) + 2


def _words_to_bytes(words: np.ndarray) -> bytes:
    raw = words.astype("<u4").tobytes()
    return raw.rstrip(b"\0") if raw else raw


def _bytes_to_words(raw: bytes) -> np.ndarray:
    raw = raw + b"\0" * (-len(raw) % 4)
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


# ------------------------------------------------------------------- public

Progress = Callable[[int], None] | None


def _check_images(images: Sequence[np.ndarray], net: IntVLAE) -> np.ndarray:
    if len(images) == 0:
        raise ContainerError("nothing to compress: no images given")
    size, top = net.size, net.levels - 1
    arr = []
    for i, im in enumerate(images):
        a = np.asarray(im)
        if a.shape != (size, size):
            raise ContainerError(f"image {i} is {a.shape[1] if a.ndim > 1 else '?'}x{a.shape[0]}; "
                                 f"this model codes {size}x{size} images")
        if a.dtype.kind not in "biu" or a.min() < 0 or a.max() > top:
            raise ContainerError(f"image {i} has pixels outside 0..{top}"
                                 + (" (binary models take 0/1 pixels)" if top == 1 else ""))
        arr.append(a.astype(np.uint8))
    return np.stack(arr)


def _compress_chain(net: IntVLAE, x: np.ndarray, progress: Progress = None,
                    stats: dict | None = None, particles: int = 1) -> tuple[list[tuple[int, bool]], bytes]:
    """One bits-back chain: its batch schedule and its payload bytes."""
    n = len(x)
    post = [net.posterior(x[i:i + 500]) for i in range(0, n, 500)]
    mean_all = np.concatenate([m for m, _ in post])
    log_std_all = np.concatenate([s for _, s in post])
    need = _latent_bits_needed(net, log_std_all)
    # Direct part: enough images to give the stack the bits the first bits-back image's
    # latents pop. Then bits-back batches, each as large as the stack can feed, so they
    # grow ~1.4x per batch. Every batch costs the decoder 784 sequential steps whatever
    # its size, so long chains start with a larger direct part (1 image in
    # DIRECT_SHARE: +3.4 bytes each, ~0.1% of the file) to skip the first growth batches.
    # The encoder fixes the schedule and records it in the header.
    n_direct = max(1, min(MAX_DIRECT, n // DIRECT_SHARE))
    while True:
        enc = ArithEncoder()
        _encode_direct(net, x[:n_direct], enc)
        start = enc.finish()
        want = STACK_MARGIN * need[min(n_direct, n - 1)]
        if n_direct == n or 8 * len(start) >= want or n_direct == MAX_DIRECT:
            break
        per_image = max(8 * len(start) / n_direct, 1.0)
        n_direct = min(n, MAX_DIRECT, n_direct + max(1, math.ceil((want - 8 * len(start)) / per_image)))
    schedule: list[tuple[int, bool]] = [(n_direct, False)]
    if stats is not None:
        stats["direct_images"] = stats.get("direct_images", 0) + n_direct
        stats["direct_bytes"] = stats.get("direct_bytes", 0) + len(start)
    if progress:
        progress(n_direct)
    pos = n_direct
    if pos == n:
        return schedule, start
    coder = new_coder(_bytes_to_words(start), seal=True)
    batch_limit = max_bits_back_batches(n, particles)
    while pos < n:
        k = batch_particles(pos - n_direct, particles)   # a batch pops K latents per image
        avail = coder.num_valid_bits() / STACK_MARGIN
        cum = k * np.cumsum(need[pos:pos + MAX_BATCH])
        if k == 1 and particles > 1:   # the young stack's batches end where the warm-up does
            cum = cum[:max(1, _container.MC_WARMUP - (pos - n_direct))]
        b = max(1, int(np.searchsorted(cum, avail, side="right")))
        if len(schedule) == batch_limit:   # the container's bound: take what is left
            b = n - pos                     # (never reached by real images)
        _push_bits_back(net, x[pos:pos + b], coder, (mean_all[pos:pos + b], log_std_all[pos:pos + b]), k)
        schedule.append((b, True))
        pos += b
        if progress:
            progress(pos)
    payload = _words_to_bytes(coder.get_compressed())
    if n - n_direct > len(payload):   # never for real images (~15 bytes each)
        raise ContainerError("these images code in under a byte each; the container's "
                             "count bound would refuse the file")
    return schedule, payload


def _decompress_chain(net: IntVLAE, sizes: list[int], payload: bytes, progress: Progress = None,
                      particles: int = 1) -> np.ndarray:
    """Undo one chain (batches in reverse), then its direct start."""
    parts: list[np.ndarray] = []
    done = 0
    try:
        if len(sizes) > 1:
            coder = new_coder(_bytes_to_words(payload))
            starts = np.cumsum([0] + sizes[1:-1])       # bits-back images before each batch
            for b, before in zip(reversed(sizes[1:]), reversed(starts.tolist())):
                parts.append(_pop_bits_back(net, b, coder, batch_particles(before, particles)))
                done += b
                if progress:
                    progress(done)
            start = _words_to_bytes(coder.get_compressed(unseal=True))
        else:
            start = payload
        if len(start) > sizes[0] * _max_direct_bytes(net):
            raise ContainerError("file is corrupt (directly coded part is too long)")
        parts.append(_decode_direct(net, sizes[0], ArithDecoder(start)))
    except ContainerError:
        raise
    except BaseException as e:  # noqa: BLE001 - narrowed right here
        if not _is_coder_failure(e):
            raise
        raise ContainerError("file is corrupt or truncated (payload does not decode)") from None
    return np.concatenate(parts[::-1])


# ------------------------------------------------------------------- parallel chains
# Long archives are split into independent chains, coded in parallel processes and
# stored one after another (the header lists them). Each chain pays its own start (~60
# bytes for binary digits), so chains are long: one per CHAIN_IMAGES images. The split
# depends on the number of images only, never on the machine, so a file is the same
# whoever writes it; ``jobs`` only says how many processes share the chains.

_WORKER_NET: IntVLAE | None = None   # the model, inherited by forked workers


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _jobs(jobs: int | None) -> int:
    """Processes (or threads, for one chain) to code with: the usable cores by default."""
    return default_jobs() if jobs is None else max(1, int(jobs))


def _pool(workers: int):
    """A process pool whose workers inherit the model by fork; None where fork is missing
    (then chains run one after another: same files, no parallelism)."""
    # Fork only on Linux: macOS offers it but its system libraries are not fork-safe.
    if workers < 2 or sys.platform != "linux":
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"),
                               initializer=_worker_start)


def _worker_start() -> None:
    """In each coding process: one BLAS thread (see blas.py: several processes with a
    thread per core each ran 5x slower than with one thread each)."""
    blas.set_threads(1)


def _chain_encode_job(x: np.ndarray, particles: int) -> tuple[list[tuple[int, bool]], bytes, dict]:
    st: dict = {}
    sched, payload = _compress_chain(_WORKER_NET, x, stats=st, particles=particles)
    return sched, payload, st


def _chain_decode_job(sizes: list[int], payload: bytes, particles: int) -> np.ndarray:
    return _decompress_chain(_WORKER_NET, sizes, payload, particles=particles)


def _run_chains(net: IntVLAE, jobs: int, fn, args: list[tuple], sizes: list[int], progress: Progress) -> list:
    """fn(*a) for each a in args, in up to ``jobs`` forked processes, results in order."""
    global _WORKER_NET
    _WORKER_NET = net
    pool = _pool(min(jobs, len(args)))
    try:
        if pool is None:   # one chain after another, each with the cores as threads
            out, done = [], 0
            with threads(net, jobs):
                for a, n in zip(args, sizes):
                    out.append(fn(*a))
                    done += n
                    if progress:
                        progress(done)
            return out
        try:
            futures = [pool.submit(fn, *a) for a in args]
            out, done = [], 0
            for f, n in zip(futures, sizes):
                out.append(f.result())
                done += n
                if progress:
                    progress(done)
            return out
        finally:   # on a failure, do not wait for the other chains
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        _WORKER_NET = None


def compress(images: Sequence[np.ndarray], loaded: LoadedModel, *, names: Sequence[str] | None = None,
             modes: Sequence[str] | None = None, progress: Progress = None,
             stats: dict | None = None, jobs: int | None = None, lossy: bool = False,
             rate: int | None = None, draw: int | None = None, particles: int = 1) -> bytes:
    """Code ``images`` into one .vlae file. Archives of ``2 * CHAIN_IMAGES`` images or more
    are split into one chain per CHAIN_IMAGES images, coded by ``jobs`` processes
    (default: the usable cores; the file does not depend on it). ``stats``, if given,
    receives the file's make-up. ``lossy``: keep only each image's latents, at rate
    level ``rate`` (see lossy.py); decoding redraws the pixels (``draw``). ``particles``:
    K > 1 codes each bits-back image at the importance-weighted bound with K particles
    (Monte Carlo bits-back: smaller files, about K times the coding work)."""
    net = loaded.net
    x = _check_images(images, net)
    n = len(x)
    modes = list(modes) if modes is not None else [default_mode(net.levels)] * n
    if names is not None and len(names) != n:
        raise ContainerError("one name per image expected")
    if lossy:
        from . import lossy as lz
        if net.levels != 2:
            raise ContainerError(f"lossy mode needs a binary model; {loaded.name} codes {net.levels}-level pixels")
        if particles != 1:
            raise ContainerError("particles apply to lossless (bits-back) archives, not to lossy files")
        level = lz.DEFAULT_LEVEL if rate is None else int(rate)
        draw = lz.DEFAULT_DRAW if draw is None else int(draw)
        if not 0 <= draw <= lz.DRAW_PICK + 6:
            raise ContainerError(f"draw must be 0 (most probable pixels), 1..7 (the model's best of "
                                 f"2**(d-1) samples) or {lz.DRAW_PICK}..{lz.DRAW_PICK + 6} (the encoder's "
                                 f"pick of 2**(d-{lz.DRAW_PICK}) samples)")
        with threads(net, _jobs(jobs)):
            payload = lz.encode(net, x, level, draw)
        header = Header(model_hash=loaded.sha256[:6], count=n, height=net.size, width=net.size,
                        model_name=None if loaded.name in DEFAULT_MODELS.values() else loaded.name,
                        names=list(names) if names is not None else None, modes=modes, levels=net.levels,
                        lossy_level=level, lossy_draw=draw)
        if stats is not None:
            stats.update(lossy_level=level, bits_per_image=lz.bits_per_image(net, level, draw),
                         payload_bytes=len(payload))
        if progress:
            progress(n)
        return pack(header, payload, [payload])
    if rate is not None or draw is not None:
        raise ContainerError("rate and draw apply to lossy files only (pass lossy=True)")
    particles = int(particles)
    if not 1 <= particles <= MAX_PARTICLES:
        raise ContainerError(f"particles must be 1..{MAX_PARTICLES}")
    jobs = _jobs(jobs)
    n_chains = chain_count(n)
    bounds = [i * n // n_chains for i in range(n_chains + 1)]
    st: dict = {}
    if n_chains == 1:   # this process alone: the cores as threads (intnet.threads)
        with threads(net, jobs):
            schedule, payload = _compress_chain(net, x, progress, st, particles)
        chain_bytes: list[int] = []
    else:
        results = _run_chains(net, jobs, _chain_encode_job, [(x[a:b], particles) for a, b in zip(bounds, bounds[1:])],
                              list(np.diff(bounds)), progress)
        schedule = [e for sched, _, _ in results for e in sched]
        chain_bytes = [len(p) for _, p, _ in results[:-1]]
        payload = b"".join(p for _, p, _ in results)
        for _, _, s in results:
            for k, v in s.items():
                st[k] = st.get(k, 0) + v
    header = Header(model_hash=loaded.sha256[:6], count=n, height=net.size, width=net.size,
                    model_name=None if loaded.name in DEFAULT_MODELS.values() else loaded.name,
                    schedule=schedule if len(schedule) > 1 else None, chain_bytes=chain_bytes or None,
                    names=list(names) if names is not None else None, modes=modes,
                    levels=net.levels, particles=particles if len(schedule) > 1 else 1)
    if stats is not None:
        stats.update(st, chains=n_chains, batches=len(schedule), payload_bytes=len(payload))
    return pack(header, payload, x)


def resolve_model(header: Header, loaded: LoadedModel | None) -> LoadedModel:
    if loaded is None:
        return find_by_hash(header.model_hash, header.model_name)
    if not loaded.sha256.startswith(header.model_hash):
        who = header.model_name or "another model"
        raise ModelError(f"this file was made with {who} (hash {header.model_hash}), "
                         f"not with {loaded.name} (hash {loaded.sha256[:6]})")
    return loaded


# constriction reports undecodable input by raising (ValueError, AssertionError) or by a
# Rust panic, which pyo3 surfaces as PanicException (a BaseException subclass).
def _is_coder_failure(e: BaseException) -> bool:
    return isinstance(e, (ValueError, AssertionError, OverflowError)) or type(e).__name__ == "PanicException"


def decompress(data: bytes, loaded: LoadedModel | None = None, *, progress: Progress = None,
               jobs: int | None = None) -> Archive:
    """Decode a .vlae file. ``jobs``: processes for a file of several chains (default:
    the usable cores; any number gives the same images)."""
    header, payload = unpack(data)
    loaded = resolve_model(header, loaded)
    net = loaded.net
    if (header.height, header.width) != (net.size, net.size) or header.levels != net.levels:
        raise ContainerError(f"file holds {header.width}x{header.height} images with {header.levels} levels; "
                             f"model {loaded.name} codes {net.size}x{net.size} with {net.levels}")
    if header.lossy_level:
        from . import lossy as lz
        header.verify([payload])   # damage is found before anything is drawn
        with threads(net, _jobs(jobs)):
            images = lz.decode(net, payload, header.count, header.lossy_level, header.lossy_draw, progress)
        return Archive(images=list(images), names=header.names, modes=header.image_modes(), header=header)
    chains = header.chains()
    cuts = np.cumsum([0] + (header.chain_bytes or []) + [len(payload) - sum(header.chain_bytes or [])])
    parts = [payload[a:b] for a, b in zip(cuts, cuts[1:])]
    jobs = _jobs(jobs)
    if len(chains) == 1:
        with threads(net, jobs):
            images = _decompress_chain(net, chains[0], parts[0], progress, header.particles)
    else:
        images = np.concatenate(_run_chains(net, jobs, _chain_decode_job, [(c, p, header.particles) for c, p in zip(chains, parts)],
                                            [sum(c) for c in chains], progress))
    if progress:
        progress(header.count)
    header.verify(images)
    return Archive(images=list(images), names=header.names, modes=header.image_modes(), header=header)
