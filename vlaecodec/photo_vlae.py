"""The any-size VLAE for photographs (float, torch): fully convolutional, gray or RGB.

```
 x (C x H x W) --strided convs--> q(z|x): Gaussian map Cz x H/8 x W/8
 p(z): a 3x3 conv that sees only the latent row above, then 1x1 layers:
       p(z_row r | z_row r-1) = N(m, 1), so a whole latent row is coded at once
 z --transposed convs (x8)--> z features at full resolution (zfeat channels)
 x --one masked (2h+1)x(2h+1) conv (type A) + z features --> 1x1 residual layers -->
     discretized logistic mixture per pixel, RGB coupled PixelCNN++-style:
     mean_G += a*R, mean_B += b*R + c*G (per component), all from one pass per pixel.
```

Why this shape (DESIGN.md, "Any size"): the pixel model sees exactly a causal window
of horizon h (rows i-h..i-1 at columns j-h..j+h, and j-h..j-1 in row i), through one
masked convolution followed by 1x1 layers. So pixel (i, j) can be decoded at wavefront
step (h+1)*i + j, the window is all the decoder needs per pixel, and the model is the
same at any image size. Everything global goes through z. The mean-only unit-variance
prior reuses the digit models' exact latent grid (``numerics.LatentGrid.prior_freqs``).

A mixture of logistics needs only its CDF at two bin edges to code a value, never a
256-entry table, which keeps the integer coder's work per sub-pixel small.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

LOG2 = math.log(2.0)


@dataclass(frozen=True)
class PhotoConfig:
    channels: int = 3          # 1 = gray, 3 = RGB
    horizon: int = 3           # h: the causal window is (h+1) rows x (2h+1) columns
    hidden: int = 64           # width of the pixel network
    res_blocks: int = 2        # 1x1 residual blocks after the masked conv
    mixtures: int = 5          # logistic components per sub-pixel
    latent_channels: int = 8   # Cz at 1/8 resolution
    enc_channels: int = 48
    prior_channels: int = 48
    zfeat_channels: int = 32
    free_bits: float = 0.02    # nats per latent dimension (batch mean), early-training aid

    stride = 8                 # latent stride (three stride-2 convs); fixed by the architecture

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PhotoConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown photo config keys: {sorted(unknown)}")
        return cls(**d)

    @property
    def params_per_mixture(self) -> int:
        # per channel: a logit weight, a mean and a log-scale; and C(C-1)/2 coupling
        # coefficients. Each channel has its own mixture weights, so channel c's
        # distribution given the channels before it is one mixture, coded on its own.
        c = self.channels
        return 3 * c + c * (c - 1) // 2


PHOTO_PRESETS = {
    "photo-rgb": PhotoConfig(channels=3),
    "photo-gray": PhotoConfig(channels=1),
    "photo-tiny-rgb": PhotoConfig(channels=3, horizon=1, hidden=8, res_blocks=1, mixtures=2,
                                  latent_channels=2, enc_channels=8, prior_channels=8, zfeat_channels=4),
    "photo-tiny-gray": PhotoConfig(channels=1, horizon=1, hidden=8, res_blocks=1, mixtures=2,
                                   latent_channels=2, enc_channels=8, prior_channels=8, zfeat_channels=4),
}


def window_mask(horizon: int) -> torch.Tensor:
    """(2h+1)^2 mask of the causal window: rows above in full, the current row left of
    the pixel (type A: the pixel itself is not seen)."""
    k = 2 * horizon + 1
    m = torch.zeros(k, k)
    m[:horizon] = 1
    m[horizon, :horizon] = 1
    return m


def row_above_mask(k: int = 3) -> torch.Tensor:
    """The prior's mask: only the row above (a latent row depends on the one before it,
    so the decoder pops a whole latent row in one step)."""
    m = torch.zeros(k, k)
    m[: k // 2] = 1
    return m


class MaskedConv(nn.Conv2d):
    def __init__(self, cin: int, cout: int, mask: torch.Tensor):
        k = mask.shape[0]
        super().__init__(cin, cout, k, padding=k // 2)
        self.register_buffer("mask", mask.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixel values -> [-1, 1] (bin centres at (2x - 255)/255)."""
    return (2.0 * x.float() - 255.0) / 255.0


class PhotoVLAE(nn.Module):
    def __init__(self, cfg: PhotoConfig):
        super().__init__()
        self.cfg = cfg
        c, e, cz = cfg.channels, cfg.enc_channels, cfg.latent_channels
        # q(z|x): three stride-2 convs (x8), then the Gaussian's mean and log-std.
        self.enc = nn.Sequential(
            nn.Conv2d(c, e, 4, 2, 1), nn.ELU(),
            nn.Conv2d(e, e, 4, 2, 1), nn.ELU(),
            nn.Conv2d(e, e, 4, 2, 1), nn.ELU(),
            nn.Conv2d(e, e, 3, 1, 1), nn.ELU(),
            nn.Conv2d(e, 2 * cz, 1))
        # p(z): the row above through a masked 3x3, then 1x1 layers; mean only, unit variance.
        self.prior_in = MaskedConv(cz, cfg.prior_channels, row_above_mask(3))
        self.prior_out = nn.Sequential(nn.ELU(), nn.Conv2d(cfg.prior_channels, cfg.prior_channels, 1), nn.ELU(),
                                       nn.Conv2d(cfg.prior_channels, cz, 1))
        # z features at full resolution.
        f = cfg.zfeat_channels
        self.zfeat = nn.Sequential(
            nn.Conv2d(cz, e, 3, 1, 1), nn.ELU(),
            nn.ConvTranspose2d(e, e, 4, 2, 1), nn.ELU(),
            nn.ConvTranspose2d(e, f, 4, 2, 1), nn.ELU(),
            nn.ConvTranspose2d(f, f, 4, 2, 1), nn.ELU())
        # Local pixel network.
        hd = cfg.hidden
        self.window = MaskedConv(c, hd, window_mask(cfg.horizon))
        self.zproj = nn.Conv2d(f, hd, 1)
        self.res = nn.ModuleList(nn.Conv2d(hd, hd, 1) for _ in range(cfg.res_blocks))
        self.head = nn.Conv2d(hd, cfg.mixtures * cfg.params_per_mixture, 1)

    # -- pieces ---------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(to_unit(x))
        mean, log_std = h.chunk(2, dim=1)
        return mean, torch.clamp(log_std, -7.0, 2.0)

    def prior_mean(self, z: torch.Tensor) -> torch.Tensor:
        return self.prior_out(self.prior_in(z))

    def pixel_params(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(B, K*P, H, W) mixture parameters of every pixel given its window and z."""
        a = self.window(to_unit(x)) + self.zproj(self.zfeat(z)[..., : x.shape[2], : x.shape[3]])
        for layer in self.res:
            a = a + layer(F.elu(a))
        return self.head(F.elu(a))

    def pixel_nll(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image in nats."""
        return discretized_mix_logistic_nll(x, params, self.cfg.channels, self.cfg.mixtures).flatten(1).sum(1)

    # -- objective ------------------------------------------------------------
    def elbo_terms(self, x: torch.Tensor, sample: bool = True):
        """(rec, kl, kl_dims): per-image nats; kl_dims is (B, Cz) summed over positions."""
        mean, log_std = self.posterior(x)
        z = mean + torch.exp(log_std) * torch.randn_like(mean) if sample else mean
        log_q = -0.5 * ((z - mean) / torch.exp(log_std)) ** 2 - log_std
        log_p = -0.5 * (z - self.prior_mean(z)) ** 2
        kl = (log_q - log_p)                      # the 0.5*log(2*pi) terms cancel
        rec = self.pixel_nll(x, self.pixel_params(x, z))
        return rec, kl.flatten(1).sum(1), kl.sum((2, 3))

    def training_loss(self, x: torch.Tensor):
        rec, kl, kl_dims = self.elbo_terms(x)
        positions = x.shape[2] * x.shape[3] / self.cfg.stride ** 2
        floor = self.cfg.free_bits * positions
        kl_fb = torch.clamp(kl_dims.mean(0), min=floor).sum()
        return rec.mean() + kl_fb, rec, kl


def _split_params(params: torch.Tensor, c: int, k: int):
    """Mixture parameters -> logit weights, means, log-scales (each B,K,C,H,W) and
    coupling coefficients (B,K,C(C-1)/2,H,W)."""
    b, _, h, w = params.shape
    p = params.view(b, k, -1, h, w)
    logit = p[:, :, :c]
    means = p[:, :, c:2 * c]
    log_s = torch.clamp(p[:, :, 2 * c:3 * c], min=-7.0)
    coeff = torch.tanh(p[:, :, 3 * c:])
    return logit, means, log_s, coeff


def coupled_means(means: torch.Tensor, coeff: torch.Tensor, xu: torch.Tensor) -> torch.Tensor:
    """PixelCNN++ channel coupling: G's mean moves with R, B's with R and G."""
    if means.shape[2] == 1:
        return means
    r, g = xu[:, None, 0], xu[:, None, 1]
    m0 = means[:, :, 0]
    m1 = means[:, :, 1] + coeff[:, :, 0] * r
    m2 = means[:, :, 2] + coeff[:, :, 1] * r + coeff[:, :, 2] * g
    return torch.stack([m0, m1, m2], 2)


def discretized_mix_logistic_nll(x: torch.Tensor, params: torch.Tensor, c: int, k: int) -> torch.Tensor:
    """Per-pixel nats of uint8 x (B, C, H, W) under the mixture (bins of width 2/255 on
    [-1, 1]; the end bins extend to infinity)."""
    logit, means, log_s, coeff = _split_params(params, c, k)
    xu = to_unit(x)
    m = coupled_means(means, coeff, xu)
    xc = xu[:, None]                                      # (B,1,C,H,W)
    centered = xc - m
    inv_s = torch.exp(-log_s)
    plus = inv_s * (centered + 1.0 / 255.0)
    minus = inv_s * (centered - 1.0 / 255.0)
    cdf_plus = torch.sigmoid(plus)
    cdf_minus = torch.sigmoid(minus)
    log_cdf_plus = plus - F.softplus(plus)                # log sigmoid(plus), for x = 0
    log_one_minus_cdf_min = -F.softplus(minus)            # log(1 - sigmoid(minus)), for x = 255
    delta = cdf_plus - cdf_minus
    mid = inv_s * centered
    log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid)     # for bins too thin to difference
    log_delta = torch.where(delta > 1e-5, torch.log(torch.clamp(delta, min=1e-12)),
                            log_pdf_mid - math.log(127.5))
    xb = x[:, None].expand_as(centered)
    log_probs = torch.where(xb == 0, log_cdf_plus, torch.where(xb == 255, log_one_minus_cdf_min, log_delta))
    log_probs = log_probs + torch.log_softmax(logit, dim=1)   # each channel its own mixture
    return -torch.logsumexp(log_probs, dim=1).sum(1)
