"""The VLAE paper's information-preference result (Chen et al. 2016, section 3), done fairly.

A VAE whose decoder can model everything on its own tends to leave z unused: the KL
term falls toward zero, because information is cheaper to model in the decoder than to
send through z. Restrict the decoder's receptive field and z must carry the global
structure; remove the autoregression altogether and z must carry everything.

This script trains the same VLAE (encoder, AR prior, z-features, seed, data order,
recipe) with three decoders for the SAME number of optimizer steps (whole epochs),

* ``global``:     ``vlae-mnist-global``, 12 masked 5x5 layers: 24 rows above a pixel,
                  the whole image above it on 28x28;
* ``local``:      ``vlae-mnist``, the shipped decoder, 6 masked 3x3 layers (6 rows);
* ``factorized``: ``vlae-mnist-factorized-decoder``, the same 6 layers with 1x1
                  kernels, which read no pixel: p(x|z) = prod_i p(x_i|z),

then reports for each, on binarized MNIST test digits:

* the KL (nats carried by z, without the training's free-bits floor) and the -ELBO,
  from ``vlaecodec.evaluate``;
* the KL and -ELBO on the validation digits after every epoch (from the checkpoints'
  training history), and whether the KL ordering of the three ever changed: the
  evidence that the budget was long enough for the ordering to settle;
* the lossy class agreement: each model is frozen through the exact integer path
  (``freeze.calibrate``, as ``vlaecodec train freeze`` does) and its lossy files at the
  default rate and draw (what ``vlaecodec compress --lossy`` writes) are decoded and
  classified by the lossy bench's digit classifier (``bench/lossy.py``);
* a picture: originals, then for each decoder its lossy reconstruction and two other
  decodes of the same z (seeded samples).

The training objective keeps a free-bits floor of 0.01 nats per latent dimension (0.64
nats/image for 64 dims), so "collapse" means KL falling toward that floor, not to zero.

    python bench/info_preference.py --workdir runs/ip --epochs 8 --threads 1 --out bench/results
    python bench/info_preference.py --workdir /tmp/ip --epochs 1 --train-limit 640 --valid-limit 200 \\
        --limit 200 --lossy-limit 100 --out /tmp/ip          # smoke test, about 2 minutes

Training resumes: a run directory whose checkpoint already has the epochs is only
evaluated, so the three trainings can also run as separate ``vlaecodec train --preset P
--epochs E --threads 1 --seed 0`` processes side by side and be evaluated here after.
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

import numpy as np
import torch

from vlaecodec import data, freeze
from vlaecodec import lossy as lz
from vlaecodec.config import preset
from vlaecodec.evaluate import evaluate
from vlaecodec.fileio import write_atomic
from vlaecodec.intnet import IntVLAE
from vlaecodec.lossy_bench import load as load_lossy_bench
from vlaecodec.train import library_versions, train
from vlaecodec.zoo import LoadedModel, load_float_checkpoint

DECODERS = {"global": "vlae-mnist-global", "local": "vlae-mnist", "factorized": "vlae-mnist-factorized-decoder"}
GRID_DIGITS = 12
GRID_SAMPLES = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="run directories <workdir>/<preset>/ go here")
    p.add_argument("--epochs", type=int, default=8, help="training epochs per model, the same for all (default 8)")
    p.add_argument("--decoders", nargs="+", choices=list(DECODERS), default=list(DECODERS))
    p.add_argument("--train-limit", type=int, help="train on the first N training images")
    p.add_argument("--valid-limit", type=int, default=10000, help="validation images per epoch (default 10000)")
    p.add_argument("--limit", type=int, help="-ELBO and KL on the first N test images (default all 10,000)")
    p.add_argument("--lossy-limit", type=int, default=10000, help="lossy class agreement on the first N test images")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="folder for info-preference.{json,md,png} (default: --workdir)")
    return p


def kl_ordering(histories: dict[str, list[dict]]) -> dict:
    """Per epoch, the decoders from most to fewest validation nats in z; and the first
    epoch from which that order never changed again."""
    epochs = min(len(h) for h in histories.values())
    orders = [sorted(histories, key=lambda d: -histories[d][e]["kl"]) for e in range(epochs)]
    settled = epochs
    while settled > 1 and orders[settled - 2] == orders[-1]:
        settled -= 1
    return {"per_epoch": [">".join(o) for o in orders], "final": ">".join(orders[-1]) if orders else "",
            "unchanged_since_epoch": settled, "epochs": epochs}


def lossy_agreement(model, name: str, valid: np.ndarray, x: np.ndarray, bench, classifier,
                    labels: np.ndarray, pred_orig: np.ndarray, log) -> tuple[dict, LoadedModel]:
    """Freeze (exact integer model with lossy levels) and code x lossy at the CLI default."""
    t0 = time.time()
    arrays = freeze.calibrate(model, name, valid, log=lambda s: None)
    loaded = LoadedModel(name=name, sha256="0" * 64, net=IntVLAE(arrays))
    r = bench.run_vlae_level(loaded, x, lz.DEFAULT_LEVEL, single_limit=0, log=log)
    recon = r["recon"]
    metrics = bench.class_metrics(bench.predict(classifier, recon), labels, pred_orig)
    bits = bench.model_level_bits(loaded)[lz.DEFAULT_LEVEL - 1] + lz.pick_bits(r["draw"])
    return {"lossy_level": lz.DEFAULT_LEVEL, "lossy_draw": r["draw"], "lossy_bits_per_image": bits,
            "lossy_archive_bytes_per_image": r["archive_bytes_per_image"], "lossy_images": len(x),
            "lossy_pixel_error": bench.pixel_error_rate(recon, x), "lossy_class_accuracy": metrics["class_accuracy"],
            "lossy_agreement": metrics["agreement"], "lossy_s": round(time.time() - t0, 1)}, loaded


def grid_rows(models: dict[str, LoadedModel], x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    import vlaecodec as vc
    rows = [("originals", x)]
    for kind, loaded in models.items():
        net = loaded.net
        blob = vc.compress(list(x), loaded, lossy=True)
        rows.append((f"{kind}: lossy file (rate {lz.DEFAULT_LEVEL})", np.asarray(vc.decompress(blob, loaded).images)))
        code = lz.level_code(net, lz.DEFAULT_LEVEL)
        js, _ = lz.unpack_bins(lz.encode(net, x, lz.DEFAULT_LEVEL), len(x), code)
        z = net.direct_latents(js, code)
        for k in range(1, GRID_SAMPLES + 1):
            rows.append((f"{kind}: same z, sample {k}", lz.redraw(net, z, draw=1, first_index=k * 1000)))
    return rows


def markdown(doc: dict) -> str:
    rows = doc["results"]
    order = doc["kl_ordering"]
    lines = [f"### Information preference: {doc['epochs']} epochs ({rows[0]['steps']} steps) per decoder",
             "", f"`{doc['command']}`", "",
             f"-ELBO and KL on {rows[0]['n']} binarized MNIST test digits; lossy class accuracy on the first "
             f"{rows[0]['lossy_images']} (CLI default: rate {rows[0]['lossy_level']}, draw {rows[0]['lossy_draw']}; "
             f"classifier: {doc['classifier_test_accuracy']:.2%} on the originals).", "",
             "| decoder | receptive field | steps | KL (nats/image) | −ELBO (nats/image) | bits/dim "
             "| lossy bits/image | lossy class accuracy | lossy pixel error |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['decoder']} (`{r['preset']}`) | {r['receptive_rows']} rows above | {r['steps']} "
                     f"| {r['kl_nats']:.2f} | {r['neg_elbo_nats']:.2f} | {r['neg_elbo_bpd']:.4f} "
                     f"| {r['lossy_bits_per_image']} | {r['lossy_class_accuracy']:.2%} | {r['lossy_pixel_error']:.4f} |")
    lines += ["", "Validation KL (nats/image) after each epoch:", "",
              "| epoch | " + " | ".join(r["decoder"] for r in rows) + " | order (most nats in z first) |",
              "|---|" + "---|" * len(rows) + "---|"]
    for e in range(order["epochs"]):
        lines.append(f"| {e + 1} | " + " | ".join(f"{r['history'][e]['kl']:.2f}" for r in rows)
                     + f" | {order['per_epoch'][e]} |")
    lines += ["", f"The KL order {order['final']} has held since epoch {order['unchanged_since_epoch']} "
              f"of {order['epochs']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    out_dir = Path(args.out) if args.out else workdir
    command = "python bench/info_preference.py " + " ".join(sys.argv[1:] if argv is None else argv)
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    test = data.load_binarized_mnist("test")
    labels = data.load_mnist_labels("test")
    valid = data.load_dataset("binarized-mnist", "valid")
    bench = load_lossy_bench()
    classifier, cinfo = bench.load_or_train_classifier(log=log)
    xl = np.ascontiguousarray(test[:args.lossy_limit]).astype(np.uint8)
    pred_orig = bench.predict(classifier, xl)

    rows, frozen = [], {}
    for kind in args.decoders:
        name = DECODERS[kind]
        cfg = preset(name)
        run_dir = workdir / name
        log(f"{kind} decoder ({name}, {cfg.receptive_rows} rows above a pixel): training to epoch {args.epochs}")
        # resume=True: a finished run is only loaded; epochs, not wall time, is the shared budget.
        train(cfg, run_dir, epochs=args.epochs, minutes=None, batch_size=args.batch_size, seed=args.seed,
              device=args.device, resume=True, train_limit=args.train_limit, valid_limit=args.valid_limit,
              threads=args.threads, command=command)
        ck_path = run_dir / "model.pt"
        training = torch.load(ck_path, map_location="cpu", weights_only=True).get("training", {})
        if training.get("epochs") != args.epochs:
            raise SystemExit(f"{ck_path}: {training.get('epochs')} epochs, not {args.epochs} "
                             "(a run trained further cannot be compared; use another --workdir)")
        model = load_float_checkpoint(ck_path)
        ev = evaluate(model, test[:args.limit], seed=args.seed)
        log(f"{kind}: KL {ev['kl_nats']:.2f} nats, -ELBO {ev['neg_elbo_nats']:.2f} nats on {ev['n']} test digits")
        lossy, frozen[kind] = lossy_agreement(model, name, valid, xl, bench, classifier, labels[:len(xl)],
                                              pred_orig, log)
        log(f"{kind}: lossy class accuracy {lossy['lossy_class_accuracy']:.2%} ({lossy['lossy_bits_per_image']} bits)")
        rows.append({"decoder": kind, "preset": name, "receptive_rows": cfg.receptive_rows,
                     "pcnn_layers": cfg.pcnn_layers, "pcnn_kernel": cfg.pcnn_kernel,
                     "free_bits_floor_nats": cfg.free_bits * cfg.latent_dim,
                     "epochs": training.get("epochs"), "steps": training.get("steps"),
                     "train_wall_s": training.get("wall_s"),
                     "history": [{"epoch": h["epoch"], "kl": h["kl"], "neg_elbo": h["neg_elbo"]}
                                 for h in training.get("history", [])],
                     "checkpoint": str(ck_path), **ev, **lossy})

    doc = {"name": "info_preference", "command": command, "epochs": args.epochs,
           "description": "KL, -ELBO and lossy class accuracy of the same VLAE with a global, a local "
                          "and a factorized decoder after the same number of training steps",
           "kl_ordering": kl_ordering({r["decoder"]: r["history"] for r in rows}),
           "classifier_test_accuracy": float(np.mean(pred_orig == labels[:len(xl)])),
           "results": rows, "environment": {"torch_threads": torch.get_num_threads(), **library_versions()}}
    md = markdown(doc)
    print(md)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "info-preference.json", (json.dumps(doc, indent=2) + "\n").encode(), overwrite=True)
    write_atomic(out_dir / "info-preference.md", md.encode(), overwrite=True)
    picture = bench.grid_image(grid_rows(frozen, xl[:GRID_DIGITS]),
                               breaks=tuple(1 + i * (1 + GRID_SAMPLES) for i in range(len(frozen))))
    write_atomic(out_dir / "info-preference.png", lambda f: picture.save(f, format="PNG", optimize=True), overwrite=True)
    log(f"wrote info-preference.json, .md and .png in {out_dir}")
    return doc


if __name__ == "__main__":
    main()
