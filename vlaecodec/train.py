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


# ----------------------------------------------------------------- freezing

def _direct_code_bytes(loaded: Any, images: np.ndarray) -> float:
    """Mean bytes per image of the real direct (start-of-chain) code for these images,
    coded as one arithmetic-coded batch; the codec's own functions do the coding."""
    from . import codec
    from . import numerics as nx
    from .arith import ArithEncoder

    with nx.coding_context():
        encs = [ArithEncoder() for _ in images]
        codec._encode_direct(codec._Side(loaded), images, encs)
        return sum(len(e.finish()) for e in encs) / len(images)


def freeze(run_checkpoint: Path, name: str, out_dir: Path, *, n_calib: int = 300, n_kl: int = 2000,
           iwae_k: int = 64, test_limit: int | None = None,
           log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> Path:
    """Turn a training run's averaged weights into a shippable model: freeze its coding
    tables, measure it on the test set and write ``<name>-<sha8>.pt`` plus ``<name>.json``.

    Direct coding (the start of every chain, and single images) sends each latent
    dimension as one of K_i equal-mass bins of its prior conditional. A dimension that
    carries more KL on average deserves more bins; K_i = 1 sends nothing (z_i is set to
    its conditional mean). The table is chosen among a few rules by measuring real
    direct-code lengths on validation digits (not the test set).
    """
    import hashlib

    from .evaluate import evaluate
    from .zoo import LoadedModel

    torch.manual_seed(0)  # the KL estimate below samples z
    ck = torch.load(run_checkpoint, map_location="cpu", weights_only=False)
    cfg = VLAEConfig.from_dict(ck["config"])
    model = VLAE(cfg)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    valid = data.load_binarized_mnist("valid")
    with torch.no_grad():
        kl = model.elbo_terms(torch.from_numpy(valid[:n_kl]).long()).kl_dims.mean(0).clamp(min=0).double().numpy()
    loaded = LoadedModel(name=name, sha256="0" * 64, model=model)
    calib = valid[n_kl:n_kl + n_calib]
    # Two candidate families, each judged by real code lengths: K_i = round(exp(KL_i + a)),
    # and "the M dimensions with most KL get K bins each, the rest none".
    candidates = [(f"exp(KL+{a:+.2f})", np.clip(np.rint(np.exp(kl + a)), 1, 4096).astype(int))
                  for a in (0.0, 0.2, 0.25, 0.3, 0.4)]
    order = np.argsort(-kl, kind="stable")
    for m in (4, 8, 12, 16, 24, 32, 48):
        for k in (2, 3, 4):
            bins = np.ones(len(kl), int)
            bins[order[:m]] = k
            candidates.append((f"top {m} dims x {k} bins", bins))
    best = None
    for rule, bins in candidates:
        loaded.coding = {"direct_bins": bins.tolist()}
        size = _direct_code_bytes(loaded, calib)
        log(f"direct bins {rule}: {int((bins > 1).sum())} dims sent, {size:.2f} bytes/image")
        if best is None or size < best[0]:
            best = (size, rule, bins)
    size, rule, bins = best
    loaded.coding = {"direct_bins": bins.tolist()}
    test = data.load_binarized_mnist("test")[:test_limit]
    log(f"evaluating on {len(test)} test images (IWAE k={iwae_k})")
    metrics = evaluate(loaded, test, iwae_k=iwae_k)
    training = dict(ck.get("training") or {})
    training.pop("history", None)
    payload = {
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "state_dict": ck["state_dict"],
        "coding": {"direct_bins": bins.tolist(), "direct_bins_rule": rule,
                   "direct_bytes_per_image_valid": round(size, 3)},
        "metrics": {k: v for k, v in metrics.items() if v is not None},
        "training": training,
        "versions": library_versions(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{name}.pt.tmp"
    torch.save(payload, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    final = out_dir / f"{name}-{digest[:8]}.pt"
    os.replace(tmp, final)
    manifest = {
        "name": name, "file": final.name, "sha256": digest, "format_version": FORMAT_VERSION,
        "architecture": "vlae", "config": cfg.to_dict(), "prior": cfg.prior,
        "receptive_rows": cfg.receptive_rows,
        "metrics": {"test_images": metrics["n"], "test_neg_elbo_nats": metrics["neg_elbo_nats"],
                    "test_neg_elbo_bpd": metrics["neg_elbo_bpd"], "test_kl_nats": metrics["kl_nats"],
                    "test_iwae_k": metrics["iwae_k"], "test_iwae_nll_nats": metrics["iwae_nll_nats"],
                    "test_iwae_bpd": metrics["iwae_bpd"]},
        "coding": {"direct_bins_rule": rule, "direct_dims_sent": int((bins > 1).sum()),
                   "direct_bytes_per_image_valid": round(size, 3)},
        "training": training,
        "versions": library_versions(),
    }
    (out_dir / f"{name}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"wrote {final} ({final.stat().st_size / 1e6:.1f} MB) and {name}.json")
    return final


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


def freeze_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="vlaecodec train freeze",
                                description="Freeze a run's model.pt into models/: coding tables, test metrics, manifest.")
    p.add_argument("checkpoint", help="a run's model.pt")
    p.add_argument("--name", required=True, help="model name, e.g. vlae-mnist-v1")
    p.add_argument("--out", default="models")
    p.add_argument("--iwae-k", type=int, default=64)
    p.add_argument("--test-limit", type=int)
    a = p.parse_args(argv)
    print(freeze(Path(a.checkpoint), a.name, Path(a.out), iwae_k=a.iwae_k, test_limit=a.test_limit))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["freeze"]:
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
