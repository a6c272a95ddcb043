"""Masked convolutions, residual blocks and MADE: plain nn.Modules, no coding logic."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .intnet import causal_offsets  # (one definition, shared with the integer model)


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded conv whose kernel is zeroed outside the causal offsets."""

    def __init__(self, cin: int, cout: int, kernel: int, mask_type: str):
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        self.mask_type = mask_type
        mask = torch.zeros(kernel, kernel)
        p = kernel // 2
        for dr, dc in causal_offsets(kernel, mask_type):
            mask[p + dr, p + dc] = 1.0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResBlock(nn.Module):
    """x + conv(elu(conv(elu(x)))) at constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.elu(self.c1(F.elu(x))))


class MaskedLinear(nn.Linear):
    def __init__(self, cin: int, cout: int, mask: torch.Tensor):
        super().__init__(cin, cout)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder (Germain et al. 2015) producing an autoregressive shift.

    Output i depends only on inputs < i (natural order). The output layer starts at
    zero so a fresh MADE step is the identity transform.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        in_deg = torch.arange(1, dim + 1)
        hid_deg = torch.arange(hidden) % max(dim - 1, 1) + 1
        m1 = (hid_deg[:, None] >= in_deg[None, :]).float()
        m2 = (in_deg[:, None] > hid_deg[None, :]).float()
        self.l1 = MaskedLinear(dim, hidden, m1)
        self.l2 = MaskedLinear(hidden, dim, m2)
        nn.init.zeros_(self.l2.weight)
        nn.init.zeros_(self.l2.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.l2(F.elu(self.l1(z)))
