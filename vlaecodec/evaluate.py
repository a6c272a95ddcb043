"""Model evaluation: test -ELBO, its two terms, and the importance-weighted NLL.

All numbers are per image, in nats, with bits/dim = nats / (H * W * ln 2).

* **-ELBO** = rec + KL, with rec = -log p(x|z) and KL = log q(z|x) - log p(z) at one
  sample z ~ q(z|x) per image (the reparameterised z = mu + sigma * eps). It is a
  single-sample Monte-Carlo estimate of the expectation over q, so it is unbiased but
  noisy per image; averaged over thousands of images the noise is well below 0.1 nat.
  The noise eps for *all* images is drawn up front from one ``torch.Generator`` seeded
  with ``seed``, so the result depends on ``seed`` and on the images, never on
  ``batch_size`` or on the global torch RNG. This is also (in expectation) the size a
  bits-back file reaches, which is why the bench compares its bytes with it.
  The training objective's free-bits floor is not applied here: this is the true bound.
* **IWAE NLL** (Burda et al. 2015) with k samples: -log mean_k p(x, z_k) / q(z_k|x),
  a tighter bound that approaches -log p(x) as k grows (the paper reports k = 4096).
  It uses ``VLAE.iwae_nll`` under a forked global RNG seeded from ``seed``.

    >>> from vlaecodec.zoo import load_model                              # doctest: +SKIP
    >>> from vlaecodec.data import load_binarized_mnist                   # doctest: +SKIP
    >>> r = evaluate(load_model(), load_binarized_mnist("test"), iwae_k=64)  # doctest: +SKIP
    >>> r["neg_elbo_nats"], r["kl_nats"], r["iwae_nll_nats"]              # doctest: +SKIP
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable

import numpy as np
import torch

from .vlae import VLAE, gaussian_log_prob
from .zoo import LoadedModel

Progress = Callable[[int], None] | None

# IWAE runs the decoder on (images x samples) rows at once; cap the rows per call so
# k = 4096 does not need gigabytes of activations.
_IWAE_ROWS = 4096
_IWAE_CHUNK = 64  # samples per decoder call inside VLAE.iwae_nll


def nats_to_bits_per_dim(nats: float, dims: int) -> float:
    """Per-image nats -> bits per pixel."""
    return nats / (dims * math.log(2))


def _as_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[1:] != (size, size):
        raise ValueError(f"expected images of shape (N, {size}, {size}), got {x.shape}")
    return torch.from_numpy(x.astype(np.int64, copy=False))


def evaluate(loaded: "LoadedModel | VLAE", images: np.ndarray, *, iwae_k: int = 0, batch_size: int = 500,
             seed: int = 0, progress: Progress = None) -> dict[str, Any]:
    """-ELBO (single seeded sample per image), its rec/KL split and optionally the
    IWAE NLL with ``iwae_k`` samples, averaged over ``images`` (uint8 (N, H, W)), for
    the float model (an installed model's frozen-from checkpoint, or a VLAE).

    ``progress(n)`` is called with the number of images finished in the current pass
    (the ELBO pass, then the IWAE pass if any)."""
    model = loaded.float_model() if isinstance(loaded, LoadedModel) else loaded
    x_all = _as_tensor(images, model.cfg.image_size)
    n = len(x_all)
    if n == 0:
        raise ValueError("no images to evaluate")
    dims = int(x_all.shape[1] * x_all.shape[2])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(seed)
            eps_all = torch.randn(n, model.cfg.latent_dim, generator=gen)
            rec_sum = kl_sum = 0.0
            elbo_each = []      # per image, for standard errors
            for i in range(0, n, batch_size):
                x = x_all[i:i + batch_size]
                mean, log_std = model.encoder(x)
                z = mean + torch.exp(log_std) * eps_all[i:i + batch_size]
                kl = (gaussian_log_prob(z, mean, log_std) - model.prior.log_prob_dims(z)).sum(1)
                rec = model.pixel_nll(x, model.decoder_logits(x, z))
                # float64 accumulation: 10,000 images x ~80 nats loses digits in float32.
                rec_sum += rec.double().sum().item()
                kl_sum += kl.double().sum().item()
                elbo_each.append((rec.double() + kl.double()).numpy())
                if progress:
                    progress(min(i + batch_size, n))

            iwae = None
            if iwae_k:
                if iwae_k < 1:
                    raise ValueError("iwae_k must be >= 1")
                rows = max(1, _IWAE_ROWS // min(iwae_k, _IWAE_CHUNK))
                step = max(1, min(batch_size, rows))
                iwae_each = []
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    for i in range(0, n, step):
                        nll = model.iwae_nll(x_all[i:i + step], iwae_k, chunk=_IWAE_CHUNK)
                        iwae_each.append(nll.double().numpy())
                        if progress:
                            progress(min(i + step, n))
                iwae_img = np.concatenate(iwae_each)
                iwae = float(iwae_img.sum()) / n
    finally:
        model.train(was_training)

    rec_m, kl_m = rec_sum / n, kl_sum / n
    ne = rec_m + kl_m
    elbo_img = np.concatenate(elbo_each)
    gap = None if iwae is None else elbo_img - iwae_img
    return {
        "n": n,
        "neg_elbo_nats": ne,
        "neg_elbo_bpd": nats_to_bits_per_dim(ne, dims),
        "rec_nats": rec_m,
        "kl_nats": kl_m,
        "iwae_k": iwae_k or None,
        "iwae_nll_nats": iwae,
        "iwae_bpd": None if iwae is None else nats_to_bits_per_dim(iwae, dims),
        # Standard errors of the means over these images (how far a subset's figure may
        # sit from the full test set's); the gap is paired: the same images' -ELBO - IWAE.
        "neg_elbo_stderr_nats": _stderr(elbo_img),
        "iwae_stderr_nats": None if iwae is None else _stderr(iwae_img),
        "elbo_iwae_gap_nats": None if gap is None else float(gap.mean()),
        "elbo_iwae_gap_stderr_nats": None if gap is None else _stderr(gap),
    }


def _stderr(v: np.ndarray) -> float | None:
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None


def neg_elbo_bits_per_dim(loaded: "LoadedModel | VLAE", images: np.ndarray) -> float:
    """The model's -ELBO on ``images`` in bits/dim (seed 0): what a chained file should reach."""
    return float(evaluate(loaded, images)["neg_elbo_bpd"])


# ------------------------------------------------------- evaluating by name (the CLI)

def evaluation_inputs(model: str | None, dataset: str | None, split: str = "test",
                      limit: int | None = None) -> tuple[Any, dict[str, Any], np.ndarray]:
    """(model to evaluate, its description, images) for ``vlaecodec eval``.

    ``model``: an installed model's name (default: the default model) or a float
    training checkpoint (.pt). ``dataset``: default the one the model was trained on (its
    manifest's ``dataset``, or the checkpoint's training record), else binarized-mnist
    for binary models and mnist for 8-bit ones; a dataset whose pixels the model cannot
    code is refused.
    """
    from pathlib import Path

    from . import data, zoo

    if model and model.endswith(".pt"):   # a float training checkpoint
        target = zoo.load_float_checkpoint(model)
        name, sha, cfg = Path(model).name, zoo.sha256_bytes(Path(model).read_bytes()), target.cfg
        trained = (torch.load(model, map_location="cpu", weights_only=True).get("training") or {}).get("dataset")
    else:
        target = zoo.load_model(model)
        name, sha, cfg = target.name, target.sha256, target.config
        trained = target.manifest.get("dataset")
    binary = cfg.pixel_levels == 2
    if trained not in data.DATASETS or (trained in data.BINARY_DATASETS) != binary:
        trained = "binarized-mnist" if binary else "mnist"
    dataset = dataset or trained
    images = np.asarray(data.load_dataset(dataset, split))
    if limit:
        images = images[:limit]
    if cfg.pixel_levels == 2 and images.max(initial=0) > 1:
        raise zoo.ModelError(f"{dataset} has 8-bit pixels; model {name} is binary (use --dataset binarized-mnist)")
    if cfg.pixel_levels == 256 and dataset in data.BINARY_DATASETS:
        raise zoo.ModelError(f"{dataset} has binary pixels; model {name} codes 8-bit images "
                             "(use --dataset mnist or fashion-mnist)")
    about = {"model": name, "sha256": sha, "dataset": dataset, "split": split, "dims": cfg.image_size ** 2}
    return target, about, images


def evaluate_named(model: str | None, dataset: str | None, split: str = "test", limit: int | None = None,
                   *, iwae_k: int = 0, quiet: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``vlaecodec eval``: (description, results) of ``evaluate`` on the inputs that
    ``evaluation_inputs`` picks, with a progress bar on a terminal unless ``quiet``."""
    from .progress import bar

    target, about, images = evaluation_inputs(model, dataset, split, limit)
    with bar("evaluating", len(images), quiet=quiet, passes=2 if iwae_k else 1) as cb:
        timed = _Estimate(cb, len(images), iwae_k, enabled=not quiet)
        return about, evaluate(target, images, iwae_k=iwae_k, progress=timed)


class _Estimate:
    """A progress callback that passes every call on, and once the IWAE pass has done
    its first batch prints on stderr how much longer that pass will take (it is the long
    part: k decoder passes per image), so a long evaluation says so early, with or
    without a terminal."""

    def __init__(self, inner: Callable[[int], None], total: int, iwae_k: int, enabled: bool = True):
        import time

        self.inner, self.total, self.iwae_k, self.enabled = inner, total, iwae_k, enabled and iwae_k > 0
        self.clock = time.monotonic
        self.elbo_done: float | None = None   # when the -ELBO pass finished: the IWAE pass starts
        self.said = False

    def __call__(self, n: int) -> None:
        self.inner(n)
        if not self.enabled or self.said:
            return
        if self.elbo_done is None:
            if n >= self.total:
                self.elbo_done = self.clock()
            return
        self.said = True
        if n >= self.total:   # one batch held them all: nothing left to estimate
            return
        took = self.clock() - self.elbo_done
        left = took * (self.total - n) / max(n, 1)
        line = (f"IWAE k={self.iwae_k} on {self.total} images: about {_duration(left)} more "
                f"(the first {n} took {_duration(took)}; --iwae-k 0 skips it, --limit N takes fewer images)")
        bar_on = getattr(self.inner, "enabled", False)
        sys.stderr.write(("\r\033[K" if bar_on else "") + line + "\n")   # over the bar's line, if drawn
        sys.stderr.flush()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def report_lines(about: dict[str, Any], r: dict[str, Any]) -> list[str]:
    """``vlaecodec eval``'s lines: every number per image with its unit."""
    lines = [f"model: {about['model']} (sha256 {about['sha256'][:12]})",
             f"images: {r['n']} ({about['dataset']} {about['split']})",
             f"-ELBO: {r['neg_elbo_nats']:.3f} nats/image ({r['neg_elbo_bpd']:.5f} bits/dim)",
             f"reconstruction -log p(x|z): {r['rec_nats']:.3f} nats/image",
             f"KL: {r['kl_nats']:.3f} nats/image ({r['kl_nats'] / math.log(2):.2f} bits/image carried by z)"]
    if r.get("iwae_nll_nats") is not None:
        se = r.get("iwae_stderr_nats")
        lines.append(f"IWAE NLL (k={r['iwae_k']}): {r['iwae_nll_nats']:.3f} nats/image "
                     f"({r['iwae_bpd']:.5f} bits/dim)" + (f", standard error {se:.3f}" if se else ""))
        if r.get("elbo_iwae_gap_nats") is not None:
            se = r.get("elbo_iwae_gap_stderr_nats")
            lines.append(f"-ELBO - IWAE on these images: {r['elbo_iwae_gap_nats']:.3f} nats/image"
                         + (f" (standard error {se:.3f})" if se else ""))
    return lines
