"""Which pixel likelihood for 8-bit images: a 256-way categorical (what vlaecodec ships)
or a discretized logistic mixture (PixelCNN++, Salimans et al. 2017)?

Trains the vlae-mnist8 architecture with a mixture-of-logistics head for the same
number of epochs, seed, batch and learning rate as a categorical run, through the same
training loop (``vlaecodec.train``), and prints both runs' validation -ELBO per epoch:

    python bench/pixel_likelihood.py --categorical training/vlae-mnist8/model.pt \\
        --out runs/dlm --epochs 2

Only the float model is built here: the shipped coder implements the winner.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vlaecodec import train as training
from vlaecodec.config import preset
from vlaecodec.vlae import VLAE

COMPONENTS = 5


def dlm_nll(x: torch.Tensor, params: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """-log P(x) per image (nats) under a mixture of logistics discretized to ``levels``
    bins on [-1, 1], the end bins taking the tails. params (B, H, W, 3K)."""
    logit_pi, mu, log_s = params.chunk(3, dim=-1)
    log_s = log_s.clamp(min=-7.0)
    half = 1.0 / (levels - 1)
    xc = (x.float() * (2.0 / (levels - 1)) - 1.0).unsqueeze(-1)
    inv_s = torch.exp(-log_s)
    plus, minus = inv_s * (xc - mu + half), inv_s * (xc - mu - half)
    log_cdf_plus = plus - F.softplus(plus)          # log sigmoid(plus): the bottom bin
    log_one_minus_cdf_minus = -F.softplus(minus)    # log(1 - sigmoid(minus)): the top bin
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * (xc - mu)
    log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid) + math.log(2 * half)   # narrow-bin fallback
    inner = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)), log_pdf_mid)
    edge_hi = xc > 1.0 - half / 2
    edge_lo = xc < -1.0 + half / 2
    log_p = torch.where(edge_lo, log_cdf_plus, torch.where(edge_hi, log_one_minus_cdf_minus, inner))
    log_p = torch.logsumexp(log_p + F.log_softmax(logit_pi, dim=-1), dim=-1)
    return -log_p.flatten(1).sum(1)


class DLMVLAE(VLAE):
    """The same VLAE with a 3K-output head read as a logistic mixture."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.pixelcnn.head = nn.Linear(cfg.pcnn_channels, 3 * COMPONENTS)

    def pixel_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return dlm_nll(x, logits, self.cfg.pixel_levels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--categorical", required=True, help="the categorical run's model.pt (its history is read)")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", action="store_true", help="only print the table from both runs' checkpoints")
    a = p.parse_args()
    ck = torch.load(a.categorical, map_location="cpu", weights_only=False)
    t = ck["training"]
    path = Path(a.out) / "model.pt"
    if not a.report:
        cfg = preset("vlae-mnist8")
        training.VLAE = DLMVLAE      # the loop builds its model through this name
        path = training.train(cfg, Path(a.out), epochs=a.epochs, minutes=None, batch_size=t.get("batch_size", 64),
                              lr=t.get("lr", 2e-3), ema=t.get("ema", 0.998), seed=t.get("seed", 0), resume=True,
                              threads=a.threads, dataset="mnist", command="bench/pixel_likelihood.py")
    dlm = torch.load(path, map_location="cpu", weights_only=False)["training"]["history"]
    cat = {h["epoch"]: h for h in t["history"]}
    print("| epoch | categorical valid -ELBO (nats) | logistic mixture (K=%d) valid -ELBO (nats) |" % COMPONENTS)
    print("|---|---|---|")
    for h in dlm:
        c = cat.get(h["epoch"])
        print(f"| {h['epoch']} | {c['neg_elbo']:.2f} | {h['neg_elbo']:.2f} |" if c else
              f"| {h['epoch']} | (not reached) | {h['neg_elbo']:.2f} |")


if __name__ == "__main__":
    main()
