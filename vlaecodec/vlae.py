"""The Variational Lossy Autoencoder (Chen et al. 2016, arXiv:1611.02731).

::

    x ──► Encoder ──► q(z|x) = N(mu, sigma²)          (diagonal, latent_dim)
                        │ z
                        ▼
    p(z): N(0, I)  or  AR flow prior (mean-only MADE steps)  → p(z_i | z_<i) Gaussian
                        │
    z ──► ZFeatures ──► per-pixel conditioning map zc (one bias per PixelCNN layer)
                        │
    x ──► local PixelCNN(x_<t, zc_t) ──► p(x_t | x_<t, z)

The PixelCNN's receptive field is small (a few masked 3×3 layers), so global
structure must be carried by z. Everything is in nats. This module is the float model
that training optimizes; it never touches bytes or an entropy coder. The codec runs
its frozen integer counterpart (``intnet.py``, made by ``freeze.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import VLAEConfig
from .layers import MADE, MaskedConv2d, ResBlock

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((z - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI


def pixels_to_input(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer pixels -> network input in [-1, 1]; 0 is reserved for 'outside the image'."""
    return x.float() * (2.0 / (levels - 1)) - 1.0


class Encoder(nn.Module):
    """q(z|x): two strided convs to 7×7, residual blocks, linear to (mu, log_std)."""

    def __init__(self, cfg: VLAEConfig):
        super().__init__()
        e = cfg.enc_channels
        self.levels = cfg.pixel_levels
        self.c1 = nn.Conv2d(1, e, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(e, 2 * e, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(2 * e) for _ in range(cfg.enc_blocks)])
        side = -(-cfg.image_size // 4)
        self.out = nn.Linear(2 * e * side * side, 2 * cfg.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = pixels_to_input(x, self.levels).unsqueeze(1)
        h = F.elu(self.c2(F.elu(self.c1(h))))
        h = F.elu(self.blocks(h)).flatten(1)
        mean, log_std = self.out(h).chunk(2, dim=1)
        return mean, log_std.clamp(-7.0, 2.0)


class Prior(nn.Module):
    """p(z). Factorized: N(0, I). AR: z -> eps by mean-only MADE steps in one fixed
    order, so eps_i = z_i - m_i(z_<i) and p(z_i | z_<i) = N(m_i(z_<i), 1) exactly
    (unit Jacobian). Keeping every step in the same order is what makes the
    conditionals Gaussian, which the coder needs."""

    def __init__(self, cfg: VLAEConfig):
        super().__init__()
        self.kind = cfg.prior
        if cfg.prior not in ("ar", "factorized"):
            raise ValueError(f"unknown prior {cfg.prior!r}")
        steps = cfg.prior_steps if cfg.prior == "ar" else 0
        self.steps = nn.ModuleList([MADE(cfg.latent_dim, cfg.prior_hidden) for _ in range(steps)])

    def conditional_means(self, z: torch.Tensor) -> torch.Tensor:
        """m(z) with m_i depending on z_<i only. Entries >= i of z may hold anything
        (a decoder passes zeros): masked weights multiply them by exact zero."""
        # Sum the shifts instead of computing z - eps: z_i - (z_i - m_i) would round
        # differently depending on z_i, which a decoder does not know yet.
        u, m = z, torch.zeros_like(z)
        for made in self.steps:
            shift = made(u)
            m = m + shift
            u = u - shift
        return m

    def log_prob_dims(self, z: torch.Tensor) -> torch.Tensor:
        m = self.conditional_means(z)
        return -0.5 * (z - m) ** 2 - 0.5 * LOG_2PI


class ZFeatures(nn.Module):
    """z -> 7×7 map -> two transposed convs -> one bias per PixelCNN layer and pixel."""

    def __init__(self, cfg: VLAEConfig):
        super().__init__()
        d = cfg.dec_channels
        self.side = -(-cfg.image_size // 4)
        self.size = cfg.image_size
        self.lin = nn.Linear(cfg.latent_dim, d * self.side * self.side)
        self.up1 = nn.ConvTranspose2d(d, d, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(d, cfg.zfeat_channels, 4, stride=2, padding=1)
        self.n_layers = cfg.pcnn_layers
        self.channels = cfg.pcnn_channels
        self.proj = nn.Conv2d(cfg.zfeat_channels, cfg.pcnn_layers * cfg.pcnn_channels, 1)

    def hidden(self, z: torch.Tensor) -> torch.Tensor:
        """The upsampled feature map (B, zfeat_channels, H, W) before projection."""
        b = z.shape[0]
        h = F.elu(self.lin(z)).view(b, -1, self.side, self.side)
        h = F.elu(self.up2(F.elu(self.up1(h))))
        return h[:, :, : self.size, : self.size]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Returns (B, L, C, H, W): the additive conditioning of each PixelCNN layer."""
        return self.proj(self.hidden(z)).view(z.shape[0], self.n_layers, self.channels, self.size, self.size)


class LocalPixelCNN(nn.Module):
    """Masked conv stack: a0 = elu(convA(x) + zc0), a_l = a_{l-1} + elu(convB(a_{l-1}) + zc_l),
    then residual 1×1 blocks and a 1×1 head to logits."""

    def __init__(self, cfg: VLAEConfig):
        super().__init__()
        c, k = cfg.pcnn_channels, cfg.pcnn_kernel
        self.levels = cfg.pixel_levels
        self.convs = nn.ModuleList(
            [MaskedConv2d(1, c, k, "A")] + [MaskedConv2d(c, c, k, "B") for _ in range(cfg.pcnn_layers - 1)])
        self.blocks = nn.ModuleList([nn.ModuleList([nn.Linear(c, c), nn.Linear(c, c)])
                                     for _ in range(cfg.pcnn_out_blocks)])
        self.head = nn.Linear(c, 1 if cfg.pixel_levels == 2 else cfg.pixel_levels)

    def head_logits(self, a: torch.Tensor) -> torch.Tensor:
        """Per-pixel head on channel-last features (..., C)."""
        for l1, l2 in self.blocks:
            a = a + l2(F.elu(l1(F.elu(a))))
        return self.head(F.elu(a))

    def forward(self, x: torch.Tensor, zc: torch.Tensor) -> torch.Tensor:
        """Full parallel pass: logits (B, H, W, K) with K = 1 (Bernoulli) or levels."""
        a = F.elu(self.convs[0](pixels_to_input(x, self.levels).unsqueeze(1)) + zc[:, 0])
        for i, conv in enumerate(self.convs[1:], start=1):
            a = a + F.elu(conv(a) + zc[:, i])
        return self.head_logits(a.permute(0, 2, 3, 1))


@dataclass
class ELBOTerms:
    """Per-image terms in nats: rec = -log p(x|z), kl = log q(z|x) - log p(z) (one sample)."""
    rec: torch.Tensor
    kl: torch.Tensor
    kl_dims: torch.Tensor  # (B, latent_dim)

    @property
    def neg_elbo(self) -> torch.Tensor:
        return self.rec + self.kl


class VLAE(nn.Module):
    def __init__(self, cfg: VLAEConfig):
        super().__init__()
        if cfg.pixel_levels not in (2, 256):
            raise ValueError(f"pixel_levels must be 2 (Bernoulli) or 256 (8-bit categorical), "
                             f"not {cfg.pixel_levels}")
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.prior = Prior(cfg)
        self.zfeatures = ZFeatures(cfg)
        self.pixelcnn = LocalPixelCNN(cfg)

    # -- likelihood -------------------------------------------------------------
    def pixel_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image in nats, from logits (B, H, W, K)."""
        if self.cfg.pixel_levels == 2:
            return F.binary_cross_entropy_with_logits(
                logits[..., 0], x.float(), reduction="none").flatten(1).sum(1)
        return F.cross_entropy(logits.permute(0, 3, 1, 2), x.long(), reduction="none").flatten(1).sum(1)

    def decoder_logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.pixelcnn(x, self.zfeatures(z))

    # -- objectives -----------------------------------------------------------
    def elbo_terms(self, x: torch.Tensor, sample: bool = True) -> ELBOTerms:
        mean, log_std = self.encoder(x)
        z = mean + torch.exp(log_std) * torch.randn_like(mean) if sample else mean
        log_q = gaussian_log_prob(z, mean, log_std)
        log_p = self.prior.log_prob_dims(z)
        kl_dims = log_q - log_p
        rec = self.pixel_nll(x, self.decoder_logits(x, z))
        return ELBOTerms(rec=rec, kl=kl_dims.sum(1), kl_dims=kl_dims)

    def training_loss(self, x: torch.Tensor, global_mean: Callable[[torch.Tensor], torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, ELBOTerms]:
        """Mean negative ELBO with free bits: each dimension's batch-mean KL is
        floored at ``free_bits`` nats so z is not switched off early in training.

        ``global_mean`` (data-parallel training): maps this shard's per-dimension mean
        KL (detached) to the mean over the whole global batch (all ranks). The floor then
        applies to the global batch, as in one process: the term's value is the global
        one and its gradient is this shard's share, so averaging the ranks' gradients
        gives the one-process gradient."""
        t = self.elbo_terms(x)
        kl_mean = t.kl_dims.mean(0)
        if global_mean is None:
            kl_fb = torch.clamp(kl_mean, min=self.cfg.free_bits).sum()
        else:
            g = global_mean(kl_mean.detach())
            floor = torch.full_like(g, self.cfg.free_bits)
            # clamp's gradient passes where the input is >= the floor.
            kl_fb = torch.where(g >= floor, kl_mean - kl_mean.detach() + g, floor).sum()
        return t.rec.mean() + kl_fb, t

    @torch.no_grad()
    def iwae_nll(self, x: torch.Tensor, k: int, chunk: int = 64) -> torch.Tensor:
        """Importance-weighted bound on -log p(x) with k samples, per image (nats)."""
        mean, log_std = self.encoder(x)
        b = x.shape[0]
        weights = []
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            m = mean.repeat(n, 1)
            s = log_std.repeat(n, 1)
            z = m + torch.exp(s) * torch.randn_like(m)
            xr = x.repeat(n, 1, 1)
            lw = (-self.pixel_nll(xr, self.decoder_logits(xr, z))
                  + self.prior.log_prob_dims(z).sum(1) - gaussian_log_prob(z, m, s).sum(1))
            weights.append(lw.view(n, b))
        lw = torch.cat(weights, 0)
        return -(torch.logsumexp(lw, 0) - math.log(k))
