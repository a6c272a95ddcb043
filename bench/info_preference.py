"""The VLAE paper's information-preference result (Chen et al. 2016, section 3), reproduced.

A VAE whose decoder can model everything on its own (an autoregressive decoder that
sees the whole image above a pixel) tends to leave z unused: the KL term collapses
toward zero, because information is cheaper to model locally than to send through z.
Restrict the decoder's receptive field and z must carry the global structure.

This script trains the same VLAE twice on the same short budget and data,

* ``vlae-mnist-global``: 12 masked 5x5 layers, 24 rows above a pixel (the whole image
  above it on 28x28), and
* ``vlae-mnist``: the shipped local decoder, 6 masked 3x3 layers (6 rows),

then evaluates both on binarized MNIST test images with ``vlaecodec.evaluate`` and
prints the KL (nats carried by z), the -ELBO and the bits/dim of each.

The training objective keeps a free-bits floor of 0.01 nats per latent dimension
(0.64 nats/image for 64 dims), so "collapse" means KL falling toward that floor, not to
exactly zero; the evaluation reports the true KL without the floor.

    python bench/info_preference.py --workdir runs/infopref --minutes 8   # ~16 min + eval
    python bench/info_preference.py --workdir /tmp/ip --minutes 0.2 --train-limit 500 --limit 200  # smoke test
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

try:
    import vlaecodec  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from vlaecodec import data
from vlaecodec.config import preset
from vlaecodec.evaluate import evaluate
from vlaecodec.train import library_versions, train
from vlaecodec.zoo import load_checkpoint

MODELS = (("global", "vlae-mnist-global"), ("local", "vlae-mnist"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="run directories <workdir>/<preset>/ go here")
    p.add_argument("--minutes", type=float, default=8.0, help="training wall time per model (default 8)")
    p.add_argument("--train-limit", type=int, help="train on the first N 8-bit MNIST training images")
    p.add_argument("--valid-limit", type=int, default=1000, help="validation images per epoch (default 1000)")
    p.add_argument("--limit", type=int, help="evaluate on the first N test images (default all 10,000)")
    p.add_argument("--iwae-k", type=int, default=0, help="also report the IWAE NLL with k samples")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--eval-only", action="store_true", help="evaluate existing <workdir>/<preset>/model.pt")
    p.add_argument("--json", help="result file (default <workdir>/info_preference.json)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    test = data.load_binarized_mnist("test")[:args.limit]
    command = "python bench/info_preference.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    for kind, name in MODELS:
        cfg = preset(name)
        run_dir = workdir / name
        t0 = time.time()
        if not args.eval_only:
            print(f"training {name} ({kind} decoder, {cfg.receptive_rows} rows above a pixel) "
                  f"for {args.minutes} min ...", file=sys.stderr)
            # epochs is effectively unbounded: the wall-time budget is what both models share.
            train(cfg, run_dir, epochs=10 ** 6, minutes=args.minutes, batch_size=args.batch_size,
                  seed=args.seed, device=args.device, train_limit=args.train_limit,
                  valid_limit=args.valid_limit, threads=args.threads, command=command)
        train_s = time.time() - t0
        ck_path = run_dir / "model.pt"
        training = torch.load(ck_path, map_location="cpu", weights_only=True).get("training", {})
        loaded = load_checkpoint(ck_path, name=name)
        ev = evaluate(loaded, test, iwae_k=args.iwae_k, seed=args.seed)
        rows.append({"decoder": kind, "preset": name, "receptive_rows": cfg.receptive_rows,
                     "pcnn_layers": cfg.pcnn_layers, "pcnn_kernel": cfg.pcnn_kernel,
                     "free_bits_floor_nats": cfg.free_bits * cfg.latent_dim,
                     "train_minutes": args.minutes, "train_wall_s": round(train_s, 1),
                     "epochs": training.get("epochs"), "steps": training.get("steps"),
                     "checkpoint": str(ck_path), **ev})

    print(f"information preference: {len(test)} binarized MNIST test images, {args.minutes} min training "
          f"per model, train-limit {args.train_limit or 'all'}; free-bits floor "
          f"{rows[0]['free_bits_floor_nats']:.2f} nats/image in the objective")
    for r in rows:
        iw = f", IWAE({r['iwae_k']}) {r['iwae_nll_nats']:.2f} nats" if r["iwae_nll_nats"] is not None else ""
        print(f"{r['decoder']:>6} decoder ({r['preset']}): receptive field {r['receptive_rows']:2d} rows above, "
              f"KL {r['kl_nats']:6.2f} nats/image, -ELBO {r['neg_elbo_nats']:7.2f} nats/image "
              f"({r['neg_elbo_bpd']:.4f} bits/dim){iw}; {r['steps']} steps")
    out = Path(args.json) if args.json else workdir / "info_preference.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"name": "info_preference",
           "description": "KL and -ELBO of the same VLAE with a global vs a local PixelCNN decoder, "
                          "same training budget (paper section 3, information preference)",
           "command": command, "results": rows,
           "environment": {"torch_threads": torch.get_num_threads(), **library_versions()}}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return doc


if __name__ == "__main__":
    main()
