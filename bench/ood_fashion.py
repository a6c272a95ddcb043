"""Issue 19's Fashion-MNIST bars through the command line, as a user would run them:

* 1,000 binarized Fashion-MNIST test images (the static binarization of
  ``vlaecodec data``: pixel = 1 iff U < intensity/255, seed BINARIZE_SEED, split 2),
  exported as mode-1 PNGs into a folder, ``vlaecodec compress FOLDER -o f.vlae`` (no
  --model), against JBIG1 (``pbmtojbg``, default options) on the same images stacked
  as one tall PBM (28 x 28,000);
* 1,000 8-bit Fashion-MNIST test images as grayscale PNGs, no --model;
* the digit archives (1,000 binarized MNIST and 1,000 8-bit MNIST test digits), no
  --model against --model of the model it chose, and against the default model of
  their kind: what choosing costs them;
* the cost of choosing in time: ``vlaecodec compress`` with and without --model (wall
  seconds of the whole command), and ``choose.choose_for`` alone in-process (CPU and
  wall seconds) with the number of models it measured.

Every archive is decompressed and compared with its PNGs pixel for pixel.

    python bench/ood_fashion.py --count 1000 > bench/results/ood-fashion-1000.md

writes the markdown table to stdout and the figures to bench/results/ood-fashion-N.json.
The output starts with the date and the load average (a busy machine stretches times).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vlaecodec import data

HERE = Path(__file__).resolve().parent


def export(images: np.ndarray, folder: Path, binary: bool) -> None:
    folder.mkdir(parents=True)
    for i, a in enumerate(images):
        im = Image.fromarray(a.astype(bool)) if binary else Image.fromarray(a, "L")
        im.save(folder / f"{i:05d}.png")


def cli(*args: str) -> tuple[str, float]:
    """Run ``vlaecodec ARGS``; (stderr's last line, wall seconds)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "vlaecodec", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"vlaecodec {' '.join(args)} failed: {r.stderr.strip()[-500:]}")
    return (r.stderr.strip().splitlines() or [""])[-1], wall


def round_trip(folder: Path, archive: Path, tmp: Path) -> bool:
    out = tmp / (archive.stem + "-out")
    cli("decompress", str(archive), "-o", str(out) + os.sep, "-q")
    for p in sorted(folder.iterdir()):
        with Image.open(p) as a, Image.open(out / p.name) as b:
            if a.mode != b.mode or not np.array_equal(np.asarray(a), np.asarray(b)):
                return False
    shutil.rmtree(out)
    return True


def compress(folder: Path, archive: Path, tmp: Path, model: str | None = None) -> dict:
    args = ["compress", str(folder), "-o", str(archive), "--force"] + (["--model", model] if model else [])
    line, wall = cli(*args)
    size = archive.stat().st_size
    n = len(list(folder.iterdir()))
    chosen = re.search(r"bytes with (\S+?)[,( ]", line)
    return {"command": "vlaecodec " + " ".join(a if a != str(folder) else folder.name for a in args),
            "summary": line, "bytes": size, "bits_per_dim": 8 * size / (n * 784),
            "model": chosen.group(1) if chosen else None, "wall_s": round(wall, 2),
            "lossless": round_trip(folder, archive, tmp)}


def jbig(images: np.ndarray, tmp: Path) -> dict:
    """JBIG1 on the images stacked as one tall bilevel image (1 = black), with
    ``vlaecodec bench``'s setting (``-q``: one resolution layer, sequential), and with
    pbmtojbg's default options (resolution layers down to 640x480) for reference."""
    tall = np.concatenate(list(images), axis=0).astype(bool)
    pbm = tmp / "tall.pbm"
    h, w = tall.shape
    raw = np.packbits(tall, axis=1).tobytes()
    pbm.write_bytes(f"P4\n{w} {h}\n".encode() + raw)
    out = {}
    for key, args in (("jbig1", ["-q"]), ("jbig1_default_options", [])):
        jbg = tmp / f"tall{len(args)}.jbg"
        subprocess.run(["pbmtojbg", *args, str(pbm), str(jbg)], check=True, capture_output=True)
        back = subprocess.run(["jbgtopbm", str(jbg)], check=True, capture_output=True).stdout
        size = jbg.stat().st_size
        out[key] = {"command": " ".join(["pbmtojbg", *args, "tall.pbm", "tall.jbg"]) + f" ({w}x{h})",
                    "bytes": size, "bits_per_dim": 8 * size / tall.size, "lossless": back.endswith(raw)}
    return out


def choose_time(folder: Path, levels: int) -> dict:
    """choose.choose_for alone, in this process (models loaded first: a CLI run loads them too)."""
    from vlaecodec import choose
    from vlaecodec.images import read_image

    pictures = [read_image(p.read_bytes(), str(p)) for p in sorted(folder.iterdir())]
    choose.choose_for(pictures[:2], levels)   # loads every candidate model
    cpu, wall = time.process_time(), time.perf_counter()
    c = choose.choose_for(pictures, levels)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"images": len(pictures), "models": len(c.estimates), "chosen": c.model.name,
            "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "estimates_bits_per_dim": {e.name: round(e.bits_per_dim(784), 5) for e in c.estimates},
            "images_measured": {e.name: e.measured for e in c.estimates}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--out", default=str(HERE / "results"))
    a = ap.parse_args()
    n = a.count
    from vlaecodec.zoo import DEFAULT_MODELS

    sets = {
        "binarized-fashion-mnist": (data.load_dataset("binarized-fashion-mnist", "test")[:n], True),
        "fashion-mnist": (data.load_dataset("fashion-mnist", "test")[:n], False),
        "binarized-mnist": (data.load_dataset("binarized-mnist", "test")[:n], True),
        "mnist": (data.load_dataset("mnist", "test")[:n], False),
    }
    res: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                 "load_average": os.getloadavg(), "cores": len(os.sched_getaffinity(0)), "count": n, "sets": {}}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, (x, binary) in sets.items():
            folder = tmp / name
            export(x, folder, binary)
            r: dict = {"auto": compress(folder, tmp / f"{name}.vlae", tmp)}
            default = DEFAULT_MODELS[2 if binary else 256]
            r["forced_chosen"] = compress(folder, tmp / f"{name}-forced.vlae", tmp, r["auto"]["model"])
            if r["auto"]["model"] != default:
                r["forced_default"] = compress(folder, tmp / f"{name}-default.vlae", tmp, default)
            if binary:
                r.update(jbig(x, tmp))
            r["choose"] = choose_time(folder, 2 if binary else 256)
            res["sets"][name] = r
            print(f"{name}: {r['auto']['summary']}", file=sys.stderr)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"ood-fashion-{n}.json").write_text(json.dumps(res, indent=2) + "\n")

    la = ", ".join(f"{v:.2f}" for v in res["load_average"])
    print(f"# Fashion-MNIST through the CLI, {n} test images per archive\n")
    print(f"{res['date']}, load average {la}, {res['cores']} cores. `python bench/ood_fashion.py --count {n}`\n")
    print("| images | no --model: chosen model | bytes | bits/dim | --model chosen: bytes | default model: bytes "
          "| JBIG1 one tall image (`pbmtojbg -q`) | lossless |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in res["sets"].items():
        au, fc = r["auto"], r["forced_chosen"]
        fd = r.get("forced_default")
        dflt = f"{fd['bytes']:,} ({fd['bits_per_dim']:.4f}, {fd['model']})" if fd else "(the chosen one)"
        jb = (f"{r['jbig1']['bytes']:,} ({r['jbig1']['bits_per_dim']:.4f}); default options "
              f"{r['jbig1_default_options']['bytes']:,}" if "jbig1" in r else "-")
        ok = all(v.get("lossless", True) for v in r.values() if isinstance(v, dict))
        print(f"| {name} | {au['model']} | {au['bytes']:,} | {au['bits_per_dim']:.4f} | {fc['bytes']:,} | {dflt} "
              f"| {jb} | {'yes' if ok else 'NO'} |")
    print("\nCost of choosing (every model estimated on 40 evenly spaced images, those within 1.25x of the best on at most 200):\n")
    print("| images | models measured | choose_for CPU s | choose_for wall s | compress wall s, no --model "
          "| compress wall s, --model chosen | estimates, bits/dim (images measured) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in res["sets"].items():
        c = r["choose"]
        est = ", ".join(f"{k} {v:.4f} ({c['images_measured'][k]})" for k, v in c["estimates_bits_per_dim"].items())
        print(f"| {name} | {c['models']} | {c['cpu_s']:.1f} | {c['wall_s']:.1f} | {r['auto']['wall_s']:.1f} "
              f"| {r['forced_chosen']['wall_s']:.1f} | {est} |")


if __name__ == "__main__":
    main()
