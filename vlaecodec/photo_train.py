"""Train the any-size photo VLAE on random patches of the photo pool (float, torch).

    python -m vlaecodec.photo_train --preset photo-rgb --out runs/photo-rgb --minutes 60
    python -m vlaecodec.photo_train --preset photo-rgb --out runs/photo-rgb --resume --minutes 60

Patches are cut from the training photos after a random whole-number box shrink
(1x, 2x or 3x: the same scene at several scales), with random flips. Validation is the
-ELBO of the whole validation photos (not patches) in bits per sub-pixel, so runs are
compared on what the codec will be asked to do. ``--resume`` continues from
``last.pt`` (weights, EMA weights, optimizer, step, RNG): a run survives the end of a
session and continues in the next.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import photos
from .data import cache_dir
from .photo_vlae import PHOTO_PRESETS, PhotoConfig, PhotoVLAE

LN2 = math.log(2.0)


class PatchSampler:
    """Random patches (B, C, P, P) uint8 from photos shrunk by 1, 2 or 3."""

    def __init__(self, images: list[np.ndarray], patch: int, rng: np.random.Generator):
        self.rng = rng
        self.patch = patch
        self.scales = []
        for k in (1, 2, 3):
            imgs = [photos.box_shrink(a, k) for a in images]
            imgs = [a if a.ndim == 3 else a[..., None] for a in imgs if min(a.shape[:2]) >= patch]
            if imgs:
                w = np.array([a.shape[0] * a.shape[1] for a in imgs], float)
                self.scales.append((imgs, w / w.sum()))

    def __call__(self, batch: int) -> np.ndarray:
        out = []
        p = self.patch
        for _ in range(batch):
            imgs, w = self.scales[self.rng.integers(len(self.scales))]
            a = imgs[self.rng.choice(len(imgs), p=w)]
            i = self.rng.integers(a.shape[0] - p + 1)
            j = self.rng.integers(a.shape[1] - p + 1)
            t = a[i:i + p, j:j + p]
            if self.rng.random() < 0.5:
                t = t[:, ::-1]
            out.append(t.transpose(2, 0, 1))
        return np.ascontiguousarray(np.stack(out))


def pad_to_stride(x: torch.Tensor, s: int) -> torch.Tensor:
    """Replicate-pad H and W up to a multiple of the latent stride (the codec does the same)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % s, (-w) % s
    if ph or pw:
        x = torch.nn.functional.pad(x.float(), (0, pw, 0, ph), mode="replicate").round().to(x.dtype)
    return x


@torch.no_grad()
def evaluate_photos(model: PhotoVLAE, images: list[np.ndarray]) -> dict:
    """-ELBO (z at the posterior mean is not used: one posterior sample, as coded) of whole
    photos in bits per sub-pixel; the padding's pixels are not counted."""
    model.eval()
    total_rec = total_kl = total_dims = 0.0
    g = torch.Generator().manual_seed(0)
    for a in images:
        a = a if a.ndim == 3 else a[..., None]
        x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
        h, w = x.shape[-2:]
        xp = pad_to_stride(x, model.cfg.stride)
        mean, log_std = model.posterior(xp)
        z = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=g)
        log_q = -0.5 * ((z - mean) / torch.exp(log_std)) ** 2 - log_std
        log_p = -0.5 * (z - model.prior_mean(z)) ** 2
        from .photo_vlae import discretized_mix_logistic_nll
        nll = discretized_mix_logistic_nll(xp, model.pixel_params(xp, z), model.cfg.channels, model.cfg.mixtures)
        total_rec += nll[..., :h, :w].sum().item()
        total_kl += (log_q - log_p).sum().item()
        total_dims += h * w * x.shape[1]
    model.train()
    return {"bpd": (total_rec + total_kl) / total_dims / LN2, "rec_bpd": total_rec / total_dims / LN2,
            "kl_bpd": total_kl / total_dims / LN2}


def train(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kind = "rgb" if PHOTO_PRESETS[args.preset].channels == 3 else "gray"
    train_imgs = photos.load(cache_dir(), "train", kind)
    valid_imgs = photos.load(cache_dir(), "valid", kind)
    log_f = open(out / "log.txt", "a")

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)
        log_f.write(s + "\n")
        log_f.flush()

    last = out / "last.pt"
    if args.resume and last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        cfg = PhotoConfig.from_dict(ck["config"])
        model = PhotoVLAE(cfg)
        model.load_state_dict(ck["model"])
        ema = PhotoVLAE(cfg)
        ema.load_state_dict(ck["ema"])
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        opt.load_state_dict(ck["opt"])
        step, seen = ck["step"], ck["seconds"]
        rng = np.random.default_rng()
        rng.bit_generator.state = ck["np_rng"]
        torch.set_rng_state(ck["torch_rng"])
        best = ck.get("best", float("inf"))
        log(f"resumed at step {step} ({seen / 60:.1f} min trained)")
    else:
        cfg = PHOTO_PRESETS[args.preset]
        torch.manual_seed(args.seed)
        model = PhotoVLAE(cfg)
        ema = PhotoVLAE(cfg)
        ema.load_state_dict(model.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        step, seen, best = 0, 0.0, float("inf")
        rng = np.random.default_rng(args.seed)
        log(f"preset {args.preset}: {sum(p.numel() for p in model.parameters())} parameters, "
            f"{len(train_imgs)} training photos, {len(valid_imgs)} validation photos")
    for p in ema.parameters():
        p.requires_grad_(False)
    sampler = PatchSampler(train_imgs, args.patch, rng)
    t_end = time.time() + args.minutes * 60
    t_last_eval = time.time()
    run_loss = run_n = 0.0

    def save(valid: dict | None) -> None:
        nonlocal best
        state = {"config": cfg.to_dict(), "model": model.state_dict(), "ema": ema.state_dict(),
                 "opt": opt.state_dict(), "step": step, "seconds": seen, "np_rng": rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state(), "best": best, "preset": args.preset}
        tmp = last.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(last)
        if valid is not None and valid["bpd"] < best:
            best = valid["bpd"]
            m = {"config": cfg.to_dict(), "state_dict": ema.state_dict(), "step": step, "valid": valid,
                 "kind": "photo-vlae"}
            tmp = (out / "model.pt").with_suffix(".tmp")
            torch.save(m, tmp)
            tmp.replace(out / "model.pt")

    while time.time() < t_end:
        t0 = time.time()
        # cosine decay over the planned total, with a short warm-up
        frac = min(step / args.total_steps, 1.0)
        lr = args.lr * min(1.0, (step + 1) / 500) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for gopt in opt.param_groups:
            gopt["lr"] = lr
        x = torch.from_numpy(sampler(args.batch_size))
        loss, rec, kl = model.training_loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(args.ema).add_(pm, alpha=1 - args.ema)
        step += 1
        seen += time.time() - t0
        dims = x[0].numel()
        run_loss += ((rec + kl).mean().item()) / dims / LN2
        run_n += 1
        if step % 100 == 0:
            log(f"step {step} lr {lr:.2e} train -ELBO {run_loss / run_n:.4f} bits/sub-pixel "
                f"(kl {kl.mean().item() / dims / LN2:.4f}) {seen / step:.3f} s/step")
            run_loss = run_n = 0.0
        if time.time() - t_last_eval > args.eval_minutes * 60:
            v = evaluate_photos(ema, valid_imgs)
            log(f"step {step} valid -ELBO {v['bpd']:.4f} bits/sub-pixel (rec {v['rec_bpd']:.4f}, kl {v['kl_bpd']:.4f})")
            save(v)
            t_last_eval = time.time()
    v = evaluate_photos(ema, valid_imgs)
    log(f"step {step} valid -ELBO {v['bpd']:.4f} bits/sub-pixel (rec {v['rec_bpd']:.4f}, kl {v['kl_bpd']:.4f}) [end]")
    save(v)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m vlaecodec.photo_train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PHOTO_PRESETS), default="photo-rgb")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--total-steps", type=int, default=60000, help="length of the cosine schedule")
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--eval-minutes", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    train(p.parse_args(argv))


if __name__ == "__main__":
    main()
