"""28x28 images that are not digits, through the CLI (issue 19's classical fallback).

    python bench/digit_fallback.py            # writes bench/results/digit-fallback.md

Three gray 28x28 images a user might have (a flat square, a horizontal gradient, a crop
of the coins sample photo) and two test digits, each compressed as a user would
(``python -m vlaecodec compress IMG.png -o IMG.vlae``, no --model) and forced to the
digit model the encoder estimated best (``--model``), and decompressed and compared; beside
them cwebp -lossless -z 9 -exact and the PNG as saved by Pillow.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "vlaecodec", *args], capture_output=True, text=True, check=True)
    lines = (r.stdout + r.stderr).strip().splitlines()
    return lines[-1] if lines else ""


def main() -> None:
    out = ROOT / "bench/results/digit-fallback.md"
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        Image.fromarray(np.full((28, 28), 200, np.uint8)).save(d / "flat.png")
        Image.fromarray(np.tile((np.arange(28) * 9).astype(np.uint8), (28, 1))).save(d / "gradient.png")
        coins = np.asarray(Image.open(ROOT / "samples/photos/coins-128x96-gray.png"))[:28, :28]
        Image.fromarray(coins).save(d / "coins-crop.png")
        for i, name in enumerate(sorted((ROOT / "samples/digits").glob("*.png"))[:2]):
            shutil.copy(name, d / f"digit{i}.png")
        rows = []
        for name in ("flat", "gradient", "coins-crop", "digit0", "digit1"):
            png = d / f"{name}.png"
            line = cli("compress", str(png), "-o", str(d / f"{name}.vlae"))
            got = (d / f"{name}.vlae").stat().st_size
            model = re.search(r"vlae-[a-z0-9-]+", line).group(0)
            cli("compress", str(png), "-o", str(d / f"{name}.forced.vlae"), "--model", model)
            forced = (d / f"{name}.forced.vlae").stat().st_size
            cli("decompress", str(d / f"{name}.vlae"), "-o", str(d / f"{name}.back.png"))
            same = np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(d / f"{name}.back.png")))
            coder = cli("info", "--no-elbo", str(d / f"{name}.vlae"))
            subprocess.run(["cwebp", "-quiet", "-lossless", "-z", "9", "-exact", str(png), "-o",
                            str(d / f"{name}.webp")], check=True)
            rows.append(f"| {name} | {got} | {forced} ({model}) | {(d / f'{name}.webp').stat().st_size} | "
                        f"{png.stat().st_size} | {same} | {coder} |")
            print(rows[-1], flush=True)
    md = ("### 28x28 images that are not digits (`python bench/digit_fallback.py`)\n\n"
          "| image | vlaecodec bytes | forced to the digit model | cwebp -z 9 | PNG (Pillow) | lossless | "
          "`vlaecodec info --no-elbo` (last line) |\n|---|---:|---:|---:|---:|---|---|\n" + "\n".join(rows) + "\n")
    out.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
