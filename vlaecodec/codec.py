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

from . import numerics as nx
from .arith import ArithDecoder, ArithEncoder
from .container import (MAX_BATCH, MAX_DIRECT, ContainerError, Header, chain_count, default_mode, max_bits_back_batches,
                        pack, unpack)
from .intnet import BinCode, IntVLAE
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
    scores every single-bin change with a parallel pass; for 8-bit models (256-way
    heads, and latents a few percent of an image's code) that costs far more than it
    saves, so they take the bins nearest the posterior mean."""
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


# -log2(f / 2**16) in units of 2**-16, for every frequency f: an encoder-side score. Its
# values sit at least 5e-6 from a rounding tie (checked in tests/test_codec.py), so any
# log2 correct to ~1e-9 builds the same integers: the encoder's choices, hence its files,
# do not depend on the machine's libm.
_NLL_Q16 = np.concatenate([[0.0], np.rint(-np.log2(np.arange(1, PIXEL_TOTAL) / PIXEL_TOTAL) * 65536)])


def _pixel_bits(x: np.ndarray, f1: np.ndarray) -> np.ndarray:
    """-log2 P(x | z) per image, in units of 2**-16 bits, from 16-bit frequencies."""
    xf = x.reshape(len(x), -1)
    p = np.where(xf == 1, f1, PIXEL_TOTAL - f1)
    return _NLL_Q16[p.astype(np.intp)].sum(1)


def _pixel_cost(net: IntVLAE, x: np.ndarray, z: np.ndarray, chunk: int = 8) -> np.ndarray:
    """-log2 P(x | z) per image, in units of 2**-16 bits (an encoder-side score). 8-bit
    models: scored from the top 16 bits of each 24-bit frequency, a few images at a time
    (256 frequencies per pixel would not fit in memory for a whole search)."""
    if net.levels == 2:
        return _pixel_bits(x, net.pixel_freqs(x, z))
    out = np.empty(len(x))
    for i in range(0, len(x), chunk):
        f = net.pixel_freqs(x[i:i + chunk], z[i:i + chunk])           # (b, HW, 256)
        xf = x[i:i + chunk].reshape(len(f), -1, 1).astype(np.intp)
        p = np.take_along_axis(f, xf, axis=2)[..., 0] >> (nx.CAT_FREQ_BITS - nx.PIXEL_FREQ_BITS)
        out[i:i + chunk] = _NLL_Q16[np.clip(p, 1, PIXEL_TOTAL - 1)].sum(1)
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
    for i, k in enumerate(code.bins):   # nearest offset to the posterior mean
        m = net.prior_means(z)[:, i]
        js[:, i] = np.abs(code.offsets[i][None, :] - (mean[:, i] - m)[:, None]).argmin(1)
        z[:, i] = np.clip(m + code.offsets[i][js[:, i]], -nx.ACT_LIMIT, nx.ACT_LIMIT)
    sent = [(i, k) for i, k in enumerate(code.bins) if k > 1]
    if not sent or rounds < 1:
        return js
    # Moves: (dimension, step); bin j -> (j + step) mod K, so no move is a no-op.
    mi = np.array([i for i, k in sent for _ in range(1, k)])
    step = np.array([s for _, k in sent for s in range(1, k)])
    kk = np.array([k for _, k in sent for _ in range(1, k)])
    rows = np.arange(b)[:, None]
    cost = _pixel_cost(net, x, z)
    for _ in range(rounds):
        cand = np.repeat(js[:, None, :], len(mi), axis=1)            # (b, moves, d)
        cand[:, np.arange(len(mi)), mi] = (js[:, mi] + step) % kk
        xs = np.repeat(x, len(mi), axis=0)
        c = _pixel_cost(net, xs, net.direct_latents(cand.reshape(-1, d), code)).reshape(b, -1)
        best = c.argmin(1)
        single, single_cost = cand[np.arange(b), best], c[np.arange(b), best]
        joint = js.copy()
        for i in {int(i) for i in mi}:
            cols = np.nonzero(mi == i)[0]
            bi = cols[c[:, cols].argmin(1)]
            ok = c[np.arange(b), bi] < cost
            joint[ok, i] = cand[rows[ok, 0], bi[ok], i]
        joint_cost = _pixel_cost(net, x, net.direct_latents(joint, code))
        use_joint = joint_cost < single_cost
        new = np.where(use_joint[:, None], joint, single)
        new_cost = np.where(use_joint, joint_cost, single_cost)
        better = new_cost < cost
        if not better.any():
            break
        js[better], cost[better] = new[better], new_cost[better]
    return js


# --------------------------------------------------------------- bits-back batches

def _push_bits_back(net: IntVLAE, x: np.ndarray, coder, posterior: tuple[np.ndarray, np.ndarray]) -> None:
    b, g = x.shape[0], net.grid
    # 1. pop z ~ Q(z|x) on the grid: the bits this takes are given back by the decoder's
    #    last step. Image-major order, in chunks (popping chunk after chunk = one pop).
    mean, log_std = posterior
    k = np.empty(mean.shape, np.int64)
    for r in range(0, b, POSTERIOR_CHUNK):
        q = g.posterior_freqs(mean[r:r + POSTERIOR_CHUNK].ravel(), log_std[r:r + POSTERIOR_CHUNK].ravel())
        k[r:r + POSTERIOR_CHUNK] = coder.decode(_CATEGORICAL, q).reshape(-1, mean.shape[1]) - g.K
    z = g.values(k)
    # 2. push x | z: the decoder pops pixel t = 0 first, images inner.
    values = np.ascontiguousarray(x.reshape(b, -1).T, dtype=np.int32)   # (HW, B)
    if net.levels == 2:
        f1 = net.pixel_freqs(x, z)
        coder.encode_reverse(values.ravel(), _BERNOULLI, np.ascontiguousarray(f1.T.ravel()) / PIXEL_TOTAL)
    else:
        # 256 frequencies per pixel: from the features, a few pixel positions at a time,
        # the last positions first (so the decoder's pops meet position 0 first).
        a = net.pixel_features(x, z).transpose(1, 0, 2)                 # (HW, B, C)
        for t0 in reversed(range(0, a.shape[0], PIXEL_PUSH_STEPS)):
            f = net.head(a[t0:t0 + PIXEL_PUSH_STEPS])                  # (steps, B, 256)
            coder.encode_reverse(values[t0:t0 + PIXEL_PUSH_STEPS].ravel(), _CATEGORICAL,
                                 f.reshape(-1, net.levels).astype(np.float64))
    # 3. push z under p(z): the decoder pops dimension 0 first, images inner. One prior
    #    pass gives every conditional mean, since m_i only reads z_<i.
    m = net.prior_means(z)
    coder.encode_reverse(np.ascontiguousarray((k.T + g.K).ravel(), dtype=np.int32), _CATEGORICAL,
                         g.prior_freqs(m.T.ravel()))


def _pop_bits_back(net: IntVLAE, b: int, coder) -> np.ndarray:
    g, d = net.grid, net.cfg.latent_dim
    # 3'. pop z under p(z), one dimension at a time.
    z = np.zeros((b, d))
    k = np.empty((b, d), np.int64)
    for i in range(d):
        m = net.prior_means(z)[:, i] if net.prior_steps else np.zeros(b)
        k[:, i] = coder.decode(_CATEGORICAL, g.prior_freqs(m)) - g.K
        z[:, i] = g.values(k[:, i])
    # 2'. pop x | z, pixel by pixel.
    st = net.stepper(z)
    hw = net.size * net.size
    out = np.empty((hw, b), np.uint8)
    for t in range(hw):
        if net.levels == 2:
            out[t] = coder.decode(_BERNOULLI, st.freqs(t) / PIXEL_TOTAL)
        else:
            out[t] = coder.decode(_CATEGORICAL, st.freqs(t).astype(np.float64))
        st.set_pixel(t, out[t])
    x = out.T.reshape(b, net.size, net.size)
    # 1'. push z back under Q(z|x): returns the bits the encoder popped (mirror of 1:
    #     the last chunk goes first so the encoder's pops read chunk 0 first).
    mean, log_std = net.posterior(x)
    for r in reversed(range(0, b, POSTERIOR_CHUNK)):
        q = g.posterior_freqs(mean[r:r + POSTERIOR_CHUNK].ravel(), log_std[r:r + POSTERIOR_CHUNK].ravel())
        coder.encode_reverse(np.ascontiguousarray((k[r:r + POSTERIOR_CHUNK] + g.K).ravel(), dtype=np.int32),
                             _CATEGORICAL, q)
    return x


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
                    stats: dict | None = None) -> tuple[list[tuple[int, bool]], bytes]:
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
    batch_limit = max_bits_back_batches(n)
    while pos < n:
        avail = coder.num_valid_bits() / STACK_MARGIN
        cum = np.cumsum(need[pos:pos + MAX_BATCH])
        b = max(1, int(np.searchsorted(cum, avail, side="right")))
        if len(schedule) == batch_limit:   # the container's bound: take what is left
            b = n - pos                     # (never reached by real images)
        _push_bits_back(net, x[pos:pos + b], coder, (mean_all[pos:pos + b], log_std_all[pos:pos + b]))
        schedule.append((b, True))
        pos += b
        if progress:
            progress(pos)
    payload = _words_to_bytes(coder.get_compressed())
    if n - n_direct > len(payload):   # never for real images (~15 bytes each)
        raise ContainerError("these images code in under a byte each; the container's "
                             "count bound would refuse the file")
    return schedule, payload


def _decompress_chain(net: IntVLAE, sizes: list[int], payload: bytes, progress: Progress = None) -> np.ndarray:
    """Undo one chain (batches in reverse), then its direct start."""
    parts: list[np.ndarray] = []
    done = 0
    try:
        if len(sizes) > 1:
            coder = new_coder(_bytes_to_words(payload))
            for b in reversed(sizes[1:]):
                parts.append(_pop_bits_back(net, b, coder))
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


def _pool(workers: int):
    """A process pool whose workers inherit the model by fork; None where fork is missing
    (then chains run one after another: same files, no parallelism)."""
    # Fork only on Linux: macOS offers it but its system libraries are not fork-safe.
    if workers < 2 or sys.platform != "linux":
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"))


def _chain_encode_job(x: np.ndarray) -> tuple[list[tuple[int, bool]], bytes, dict]:
    st: dict = {}
    sched, payload = _compress_chain(_WORKER_NET, x, stats=st)
    return sched, payload, st


def _chain_decode_job(sizes: list[int], payload: bytes) -> np.ndarray:
    return _decompress_chain(_WORKER_NET, sizes, payload)


def _run_chains(net: IntVLAE, jobs: int, fn, args: list[tuple], sizes: list[int], progress: Progress) -> list:
    """fn(*a) for each a in args, in up to ``jobs`` forked processes, results in order."""
    global _WORKER_NET
    _WORKER_NET = net
    pool = _pool(min(jobs, len(args)))
    try:
        if pool is None:
            out, done = [], 0
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
             rate: int | None = None, draw: int | None = None) -> bytes:
    """Code ``images`` into one .vlae file. Archives of ``2 * CHAIN_IMAGES`` images or more
    are split into one chain per CHAIN_IMAGES images, coded by ``jobs`` processes
    (default: the usable cores; the file does not depend on it). ``stats``, if given,
    receives the file's make-up. ``lossy``: keep only each image's latents, at rate
    level ``rate`` (see lossy.py); decoding redraws the pixels (``draw``)."""
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
        level = lz.DEFAULT_LEVEL if rate is None else int(rate)
        draw = lz.DEFAULT_DRAW if draw is None else int(draw)
        if not 0 <= draw <= lz.DRAW_PICK + 6:
            raise ContainerError(f"draw must be 0 (most probable pixels), 1..7 (the model's best of "
                                 f"2**(d-1) samples) or {lz.DRAW_PICK}..{lz.DRAW_PICK + 6} (the encoder's "
                                 f"pick of 2**(d-{lz.DRAW_PICK}) samples)")
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
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    n_chains = chain_count(n)
    bounds = [i * n // n_chains for i in range(n_chains + 1)]
    st: dict = {}
    if n_chains == 1:
        schedule, payload = _compress_chain(net, x, progress, st)
        chain_bytes: list[int] = []
    else:
        results = _run_chains(net, jobs, _chain_encode_job, [(x[a:b],) for a, b in zip(bounds, bounds[1:])],
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
                    levels=net.levels)
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
        images = lz.decode(net, payload, header.count, header.lossy_level, header.lossy_draw, progress)
        return Archive(images=list(images), names=header.names, modes=header.image_modes(), header=header)
    chains = header.chains()
    cuts = np.cumsum([0] + (header.chain_bytes or []) + [len(payload) - sum(header.chain_bytes or [])])
    parts = [payload[a:b] for a, b in zip(cuts, cuts[1:])]
    if len(chains) == 1:
        images = _decompress_chain(net, chains[0], parts[0], progress)
    else:
        jobs = default_jobs() if jobs is None else max(1, int(jobs))
        images = np.concatenate(_run_chains(net, jobs, _chain_decode_job, list(zip(chains, parts)),
                                            [sum(c) for c in chains], progress))
    if progress:
        progress(header.count)
    header.verify(images)
    return Archive(images=list(images), names=header.names, modes=header.image_modes(), header=header)
