"""Everything that makes the encoder and the decoder compute identical numbers.

Rules (see DESIGN.md): coding runs on CPU in float32 under one fixed policy; every
probability used for coding is computed by the same function with the same shapes on
both sides; probabilities reach the entropy coders either as float64 copies of those
float32 numbers (constriction) or as integers quantized here (arithmetic coder).
This is the only module that sets torch backend flags.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

# Latent grid for bits-back coding: z = k * LATENT_STEP, k in [-LATENT_MAX_INDEX, LATENT_MAX_INDEX].
# A power-of-two step keeps k * step exact in float32. 2**-7 is far finer than the
# posterior standard deviations of a trained model (so the discretized rate tracks the
# continuous ELBO), and +-8 prior standard deviations covers the prior.
LATENT_STEP = 2.0 ** -7
LATENT_MAX_INDEX = 8 * 2 ** 7

# The arithmetic coder (chain starts) codes binary pixels with 16-bit frequencies.
PIXEL_FREQ_BITS = 16

# One thread: results must not depend on how many cores the decoding machine has.
CODING_THREADS = 1


def _fix_backend_flags() -> None:
    # TF32 would change float32 matmul results on GPUs; coding must never see it.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


@contextlib.contextmanager
def coding_context() -> Iterator[None]:
    """The fixed runtime for anything that produces coding probabilities."""
    _fix_backend_flags()
    threads = torch.get_num_threads()
    torch.set_num_threads(CODING_THREADS)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)


def latent_values(k: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Grid indices -> float32 latent values (exact)."""
    k = torch.as_tensor(k)
    return k.to(torch.float32) * LATENT_STEP


def scaled_gaussian(mean: torch.Tensor, std: torch.Tensor | float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian parameters in units of the latent grid, as float64 for constriction."""
    m = mean.detach().to(torch.float64).numpy().ravel() / LATENT_STEP
    if isinstance(std, float):
        s = np.full_like(m, std / LATENT_STEP)
    else:
        s = std.detach().to(torch.float64).numpy().ravel() / LATENT_STEP
    return m, s


def bernoulli_p1(logits: torch.Tensor) -> np.ndarray:
    """P(pixel = 1) from a (B, 1) logit tensor, float64 copy of the float32 sigmoid."""
    return torch.sigmoid(logits[:, 0]).to(torch.float64).numpy()


def quantize_p0(p1: np.ndarray) -> np.ndarray:
    """Integer frequency of symbol 0 out of 2**PIXEL_FREQ_BITS, never 0 or the total."""
    total = 1 << PIXEL_FREQ_BITS
    return np.clip(np.rint((1.0 - p1) * total), 1, total - 1).astype(np.int64)


def equal_mass_offsets(n_bins: int) -> torch.Tensor:
    """Medians of n equal-mass bins of N(0, 1), float32: the representative latent
    offsets for direct (non-bits-back) coding of one dimension with n bins."""
    if n_bins == 1:
        return torch.zeros(1)
    u = (torch.arange(n_bins, dtype=torch.float64) + 0.5) / n_bins
    return torch.special.ndtri(u).to(torch.float32)


def equal_mass_bin(x: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Index of the equal-mass N(0,1) bin containing x (encoder-side choice only)."""
    u = torch.special.ndtr(x.to(torch.float64))
    return torch.clamp((u * n_bins).floor().long(), 0, n_bins - 1)
