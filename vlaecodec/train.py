"""Training loop (``vlaecodec train`` / ``python -m vlaecodec.train``): the only writer
of checkpoints. The paper's recipe: Adamax (lr 2e-3), free bits 0.01 nats/dim,
Polyak averaging 0.998; dynamic binarization of 8-bit MNIST while training.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import data
from .config import VLAEConfig, preset
from .vlae import VLAE

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    import importlib.metadata  # constriction has no __version__; coding depends on it
    return {"torch": str(torch.__version__), "numpy": str(np.__version__),
            "constriction": importlib.metadata.version("constriction"),
            "python": platform.python_version()}


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def evaluate_elbo(model: VLAE, x: np.ndarray, batch: int = 500) -> dict[str, float]:
    """Single-sample -ELBO, reconstruction and KL in nats/image over a fixed set."""
    model.eval()
    gen = torch.Generator().manual_seed(0)
    rec = kl = 0.0
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i:i + batch]).long()
        mean, log_std = model.encoder(xb)
        z = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=gen)
        t = _terms_at(model, xb, z, mean, log_std)
        rec += t[0].sum().item()
        kl += t[1].sum().item()
    n = len(x)
    return {"neg_elbo": (rec + kl) / n, "rec": rec / n, "kl": kl / n}


def _terms_at(model: VLAE, x, z, mean, log_std):
    from .vlae import gaussian_log_prob
    log_q = gaussian_log_prob(z, mean, log_std).sum(1)
    log_p = model.prior.log_prob_dims(z).sum(1)
    return model.pixel_nll(x, model.decoder_logits(x, z)), log_q - log_p


def train(cfg: VLAEConfig, out_dir: Path, *, epochs: int, minutes: float | None, batch_size: int = 64,
          lr: float = 2e-3, ema: float = 0.998, seed: int = 0, device: str = "cpu", resume: bool = False,
          train_limit: int | None = None, valid_limit: int = 10000, threads: int | None = None,
          command: str = "", log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> Path:
    """Train and write ``out_dir/last.pt`` (resumable) and ``out_dir/model.pt`` (EMA weights)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train8 = data.load_mnist("train")[:train_limit]
    valid = data.load_binarized_mnist("valid")[:valid_limit]

    model = VLAE(cfg).to(device)
    avg = copy.deepcopy(model)
    opt = torch.optim.Adamax(model.parameters(), lr=lr)
    state = {"epoch": 0, "step": 0, "wall_s": 0.0, "history": []}
    last = out_dir / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, map_location=device, weights_only=False)
        if VLAEConfig.from_dict(ck["config"]) != cfg:
            raise SystemExit(f"{last}: config differs from the requested one; refusing to resume")
        model.load_state_dict(ck["model"])
        avg.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["state"]
        rng = np.random.default_rng([seed, state["epoch"]])
        torch.manual_seed(seed + state["epoch"])
        log(f"resumed from {last} at epoch {state['epoch']}")
    elif resume and (out_dir / "model.pt").exists():
        # Only the shippable checkpoint survived (it is the one small enough to commit
        # between sessions): continue from its averaged weights with a fresh optimizer.
        ck = torch.load(out_dir / "model.pt", map_location=device, weights_only=False)
        if VLAEConfig.from_dict(ck["config"]) != cfg:
            raise SystemExit(f"{out_dir / 'model.pt'}: config differs from the requested one; refusing to resume")
        model.load_state_dict(ck["state_dict"])
        avg.load_state_dict(ck["state_dict"])
        t = ck.get("training") or {}
        state = {"epoch": int(t.get("epochs", 0)), "step": int(t.get("steps", 0)),
                 "wall_s": float(t.get("wall_s", 0.0)), "history": list(t.get("history", []))}
        rng = np.random.default_rng([seed, state["epoch"]])
        torch.manual_seed(seed + state["epoch"])
        log(f"resumed from {out_dir / 'model.pt'} (averaged weights, new optimizer) at epoch {state['epoch']}")

    t_start = time.time() - state["wall_s"]
    deadline = None if minutes is None else t_start + 60 * minutes
    n = len(train8)
    steps_per_epoch = n // batch_size
    while state["epoch"] < epochs and (deadline is None or time.time() < deadline):
        model.train()
        perm = rng.permutation(n)
        run = None
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            # Dynamic binarization: a fresh Bernoulli draw every time an image is seen.
            probs = torch.from_numpy(train8[idx]).float() / 255.0
            x = torch.bernoulli(probs).long().to(device)
            loss, terms = model.training_loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for pa, pm in zip(avg.parameters(), model.parameters()):
                    pa.lerp_(pm, 1.0 - ema)
            state["step"] += 1
            ne = terms.neg_elbo.mean().item()
            run = ne if run is None else 0.98 * run + 0.02 * ne
            if i % 50 == 0 or i == steps_per_epoch - 1:
                done = (i + 1) / steps_per_epoch
                bar = "#" * int(20 * done)
                sys.stderr.write(f"\repoch {state['epoch'] + 1}/{epochs} [{bar:<20}] "
                                 f"-ELBO {run:7.2f} nats  KL {terms.kl.mean().item():5.2f}")
                sys.stderr.flush()
            if deadline is not None and time.time() > deadline:
                break
        sys.stderr.write("\n")
        state["epoch"] += 1
        state["wall_s"] = time.time() - t_start
        val = evaluate_elbo(avg.cpu() if device != "cpu" else avg, valid)
        avg.to(device)
        state["history"].append({"epoch": state["epoch"], "wall_s": round(state["wall_s"], 1), **val})
        log(f"epoch {state['epoch']}: valid -ELBO {val['neg_elbo']:.2f} nats (KL {val['kl']:.2f}), "
            f"{state['wall_s'] / 60:.1f} min")
        atomic_save({"config": cfg.to_dict(), "model": model.state_dict(), "ema": avg.state_dict(),
                     "optimizer": opt.state_dict(), "state": state}, last)
        write_model_checkpoint(avg, out_dir / "model.pt", state, command=command, seed=seed,
                               batch_size=batch_size, lr=lr, ema=ema)
    return out_dir / "model.pt"


def write_model_checkpoint(model: VLAE, path: Path, state: dict, **training: Any) -> None:
    """The shippable checkpoint: config + averaged weights + provenance (no optimizer)."""
    atomic_save({
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": {**training, "epochs": state["epoch"], "steps": state["step"],
                     "wall_s": round(state["wall_s"], 1), "history": state["history"]},
        "versions": library_versions(),
    }, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlaecodec train", description=__doc__)
    p.add_argument("--preset", default="vlae-mnist")
    p.add_argument("--config-json", help="JSON object of VLAEConfig fields overriding the preset")
    p.add_argument("--out", required=True, help="run directory (last.pt, model.pt)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--minutes", type=float, help="stop after this much wall time")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--train-limit", type=int)
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["freeze"]:
        from .freeze import main as freeze_main
        return freeze_main(argv[1:])
    args = build_parser().parse_args(argv)
    cfg = preset(args.preset)
    if args.config_json:
        cfg = VLAEConfig.from_dict({**cfg.to_dict(), **json.loads(args.config_json)})
    cmd = "vlaecodec train " + " ".join(argv)
    path = train(cfg, Path(args.out), epochs=args.epochs, minutes=args.minutes, batch_size=args.batch_size,
                 lr=args.lr, seed=args.seed, device=args.device, resume=args.resume,
                 train_limit=args.train_limit, threads=args.threads, command=cmd)
    print(path)


if __name__ == "__main__":
    main()
