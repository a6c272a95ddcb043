"""Which installed 28x28 model codes an archive smallest (numpy only, no torch).

``vlaecodec compress`` without ``--model`` estimates, for every installed 28x28 model
that can code the images losslessly, the size of the file it would write, and codes
with the smallest (the file names the model, as always):

* binary images: every binary model, and every 8-bit model (which codes them as 0/255);
  with ``--binarize``: the binary models only;
* 8-bit images: every 8-bit model.

The estimate is the one the codec's own integer tables give. On a sample of at most
``SAMPLE_IMAGES`` images (evenly spaced through the archive, all of them if fewer):

* bits-back images cost the -ELBO on the latent grid, one draw z ~ Q(z|x) per image
  from the posterior's integer frequency table (a seeded generator, the same for every
  model): -log2 P(x|z) - log2 P(z) + log2 Q(z|x), each from the coder's integer
  frequencies (``numerics.nll_q16``), i.e. one posterior pass, one prior pass and one
  parallel pixel pass per model;
* the directly coded start of each chain costs its real direct code length without
  the encoder's bin search (uniform bins, then pixels under the bins' latents);
* a model that is not the default of its kind adds its name to the header.

The mean of each over the sample times the images of each kind is the estimate.
The estimate only guides the choice; the file itself is coded exactly as before.
Every number is an integer from the coder's tables and the draw is seeded, so the
same images choose the same model on every machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import numerics as nx

SAMPLE_IMAGES = 200        # images measured per model (evenly spaced; all if fewer)
DIRECT_SAMPLE = 16         # of those, how many measure the direct (chain start) cost
SEED = 20240919            # the posterior draws' generator (the same for every model)
# Screening: every model is first estimated on SCREEN_IMAGES of the sample; only those
# within SCREEN_MARGIN of the best there are measured on the whole sample. (On 1,000
# test images of binarized MNIST and Fashion-MNIST, the models dropped this way were
# 1.7x to 15x the best one; the best few are within a few percent of each other.)
SCREEN_IMAGES = 40
SCREEN_MARGIN = 1.25


@dataclass
class Estimate:
    """One model's estimated file for an archive."""
    name: str
    bits: float                  # the whole archive's payload (and name) bits
    elbo_bits: float             # mean -ELBO on the latent grid, bits per image
    direct_bits: float           # mean direct code length, bits per image
    direct_images: int           # images the codec would code directly (chain starts)
    images: int                  # images in the archive
    measured: int                # images the means were measured on

    def bits_per_dim(self, dims_per_image: int) -> float:
        return self.bits / (self.images * dims_per_image)


def sample_rows(n: int, limit: int = SAMPLE_IMAGES) -> np.ndarray:
    """Which of ``n`` images to measure: all, or ``limit`` evenly spaced ones."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def _pixel_q16(net, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """-log2 P(x|z) per image (2**-16 bits), the images split over the model's threads
    (binary models split their pixel pass themselves; 8-bit ones go a few images at a time)."""
    from .codec import _pixel_nll_q16
    if net.levels == 2:
        return _pixel_nll_q16(net, x, z)
    return net.map(lambda xx, zz: _pixel_nll_q16(net, xx, zz), x, z, least=16)


def draw_posterior(net, mean: np.ndarray, log_std: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One draw z ~ Q(z|x) per image on the latent grid, from the posterior's integer
    frequency table (the one the bits-back coder pops with): grid indices (B, D) and
    -log2 Q(z|x) per image in units of 2**-16 bits (int64)."""
    from .codec import _posterior_tables

    b, d = mean.shape
    g = net.grid
    k = np.empty((b, d), np.int64)
    neg_log_q = np.empty(b, np.int64)
    for rows, q in _posterior_tables(net, mean, log_std):
        cum = np.cumsum(q, axis=1)                              # integers < 2**24: exact
        u = rng.integers(0, 1 << nx.CDF_BITS, size=len(q))
        cell = np.minimum((cum <= u[:, None]).sum(1), g.size - 1)
        f = q[np.arange(len(q)), cell]
        n_rows = len(q) // d
        k[rows] = (cell - g.K).reshape(n_rows, d)
        neg_log_q[rows] = nx.nll_q16(f, nx.CDF_BITS).reshape(n_rows, d).sum(1)
    return k, neg_log_q


def neg_elbo_q16(net, x: np.ndarray, rng: np.random.Generator,
                 posterior: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """-log2 P(x|z) - log2 P(z) + log2 Q(z|x) per image, in units of 2**-16 bits (int64),
    with one draw z ~ Q(z|x) per image on the model's latent grid (``draw_posterior``),
    all from the integer frequency tables the bits-back coder uses. ``posterior``: x's
    (mean, log_std), if already computed."""
    x = np.asarray(x, dtype=np.uint8)
    mean, log_std = posterior if posterior is not None else net.posterior(x)
    b, d = mean.shape
    g = net.grid
    k, neg_log_q = draw_posterior(net, mean, log_std, rng)
    z = g.values(k)
    m = net.prior_means(z)
    fp = np.take_along_axis(g.prior_freqs(m.ravel()), (k + g.K).reshape(-1, 1), axis=1)[:, 0]
    prior = nx.nll_q16(fp, nx.CDF_BITS).reshape(b, d).sum(1)
    return _pixel_q16(net, x, z) + prior - neg_log_q


def direct_q16(net, x: np.ndarray) -> np.ndarray:
    """Each image's direct code length without the bin search (the bins nearest the
    posterior mean), in units of 2**-16 bits: uniform bins, then the pixels."""
    from .codec import choose_direct_bins

    x = np.asarray(x, dtype=np.uint8)
    js = choose_direct_bins(net, x, rounds=0)
    latent = round(65536 * sum(math.log2(k) for k in net.direct_bins))
    return _pixel_q16(net, x, net.direct_latents(js)) + latent


def direct_images(n: int, direct_bits: float, need_bits: float) -> int:
    """About how many of ``n`` images the codec codes directly: per chain, one in
    ``DIRECT_SHARE`` (at least one), more until they hold ``STACK_MARGIN`` times the
    latent bits the first bits-back image pops (see ``codec._compress_chain``)."""
    from .codec import DIRECT_SHARE, STACK_MARGIN
    from .container import MAX_DIRECT, chain_count

    chains = chain_count(n)
    total = 0
    for c in range(chains):
        size = (c + 1) * n // chains - c * n // chains
        nd = max(1, min(MAX_DIRECT, size // DIRECT_SHARE))
        if direct_bits > 0:
            nd = max(nd, min(size, MAX_DIRECT, math.ceil(STACK_MARGIN * need_bits / direct_bits)))
        total += min(nd, size)
    return total


def estimate(loaded, x: np.ndarray, count: int | None = None, *, limit: int = SAMPLE_IMAGES,
             name_bits: int = 0, jobs: int | None = None) -> Estimate:
    """The estimated payload of an archive of ``count`` images (default: ``len(x)``)
    like ``x`` (pixels in the model's levels) coded with ``loaded``. ``x`` may be the
    whole archive (then ``sample_rows`` picks the images measured) or a sample already.
    ``jobs``: threads (default: the usable cores; the result does not depend on it)."""
    from .codec import _jobs, _latent_bits_needed
    from .intnet import threads

    net = loaded.net
    n = len(x) if count is None else int(count)
    xs = np.asarray(x, dtype=np.uint8)[sample_rows(len(x), limit)]
    with threads(net, _jobs(jobs)):
        post = net.posterior(xs)
        elbo = neg_elbo_q16(net, xs, np.random.default_rng(SEED), post).mean() / 65536.0
        direct = direct_q16(net, xs[:DIRECT_SAMPLE]).mean() / 65536.0
    need = float(_latent_bits_needed(net, post[1][:DIRECT_SAMPLE]).mean())
    nd = direct_images(n, direct, need)
    bits = nd * direct + (n - nd) * elbo + name_bits
    return Estimate(loaded.name, float(bits), float(elbo), float(direct), nd, n, len(xs))


def candidates(levels: int, size: int, binarize: bool = False) -> list[str]:
    """Installed models of ``size`` x ``size`` that code images of ``levels`` levels
    losslessly: the 8-bit ones for 8-bit images; for binary images the binary ones and,
    unless the images are to be binarized, the 8-bit ones. Sorted by name."""
    from .zoo import list_manifests

    out = []
    for m in list_manifests():
        cfg = m.get("config") or {}
        lv = cfg.get("pixel_levels", 2)
        if cfg.get("image_size", 28) != size:
            continue
        if lv == levels or (levels == 2 and lv == 256 and not binarize):
            out.append(m["name"])
    return sorted(out)


def header_name_bits(name: str) -> int:
    """Bits a file spends naming its model: none for a default model (its hash finds
    it), else the name (varint length + UTF-8)."""
    from .zoo import DEFAULT_MODELS
    if name in DEFAULT_MODELS.values():
        return 0
    return 8 * (len(name.encode()) + 1)


@dataclass
class Choice:
    """The model chosen for an archive and every estimate it was chosen from (smallest
    first); ``skipped``: (name, reason) of installed models that could not be loaded."""
    model: object                # zoo.LoadedModel
    estimates: list[Estimate]
    skipped: list[tuple[str, str]]
    seconds: float = 0.0

    def describe(self) -> str:
        """A few words for the compress summary line."""
        n = len(self.estimates)
        if n <= 1:
            return f"with {self.model.name}"
        return f"with {self.model.name}, the smallest estimate of {n} models"


def choose(levels: int, size: int, pixels_for: Callable[[int, str], np.ndarray], count: int, *,
           binarize: bool = False, names: Sequence[str] | None = None, limit: int = SAMPLE_IMAGES,
           screen: int = SCREEN_IMAGES, jobs: int | None = None) -> Choice:
    """Estimate every candidate model (``candidates``, or ``names``) and return the
    smallest. ``pixels_for(levels, name)`` gives the sample images (at most ``limit``,
    chosen by ``sample_rows``) as that model's pixels.

    With more than ``screen`` sample images (0: no screening), every model is first
    estimated on ``screen`` of them (evenly spaced); only those within SCREEN_MARGIN of
    the best there are estimated on the whole sample (the others keep their screening
    estimate, which is what the returned list shows for them). Ties go to the name
    first in sort order. Raises zoo.ModelError if no candidate model loads."""
    import time

    from .zoo import ModelError, load_model

    t0 = time.perf_counter()
    names = list(names) if names is not None else candidates(levels, size, binarize)
    models: list = []
    skipped: list[tuple[str, str]] = []
    cache: dict[int, np.ndarray] = {}
    for name in names:
        try:
            loaded = load_model(name)
        except ModelError as e:
            skipped.append((name, str(e)))
            continue
        lv = loaded.config.pixel_levels
        if lv not in cache:
            x = np.asarray(pixels_for(lv, name))
            cache[lv] = x[sample_rows(len(x), limit)]
        models.append(loaded)
    if not models:
        raise ModelError(skipped[0][1] if skipped else "no model is installed for these images")

    def est(loaded, rows=slice(None)) -> Estimate:
        x = cache[loaded.config.pixel_levels]
        return estimate(loaded, x[rows], count, limit=limit, name_bits=header_name_bits(loaded.name), jobs=jobs)

    n_sample = len(next(iter(cache.values())))
    if len(models) > 1 and 0 < screen < n_sample:
        rows = sample_rows(n_sample, screen)
        first = {m.name: est(m, rows) for m in models}
        best = min(e.bits for e in first.values())
        ests = [(est(m) if first[m.name].bits <= SCREEN_MARGIN * best else first[m.name], m) for m in models]
    else:
        ests = [(est(m), m) for m in models]
    ests.sort(key=lambda e: (e[0].bits, e[0].name))
    return Choice(ests[0][1], [e for e, _ in ests], skipped, time.perf_counter() - t0)


def choose_for(pictures: Sequence, levels: int, binarize: bool = False, *, jobs: int | None = None) -> Choice | None:
    """``choose`` for ``images.Picture`` inputs of ``levels`` levels (``image_levels``):
    None when they are not all 28x28 or no candidate model is installed (the caller
    then takes the default model, which says what is missing). One candidate is taken
    without measuring."""
    from .images import DIGIT_SIDE, for_model
    from .zoo import load_model

    if not pictures or any(p.gray.shape != (DIGIT_SIDE, DIGIT_SIDE) for p in pictures):
        return None
    names = candidates(levels, DIGIT_SIDE, binarize)
    if not names:
        return None
    if len(names) == 1:
        return Choice(load_model(names[0]), [], [])
    sample = [pictures[i] for i in sample_rows(len(pictures))]

    def pixels_for(lv: int, name: str) -> np.ndarray:
        return np.stack(for_model(sample, lv, DIGIT_SIDE, name, binarize)[0])

    return choose(levels, DIGIT_SIDE, pixels_for, len(pictures), binarize=binarize, names=names, jobs=jobs)
