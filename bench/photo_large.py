"""One large photo through the CLI: wall time and peak memory (``/usr/bin/time -v``) of
``vlaecodec compress`` and ``decompress``, and a check that the pixels come back.

    python bench/photo_large.py PHOTO.png [--coder model] [--out bench/results/photo-large.md]

(The issue's bar: a 2560x1600 RGB photo within 1.5 GB each way, >= 30 thousand
pixels/s.) Needs GNU time (Debian: apt-get install time).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def timed(cmd: list[str]) -> tuple[float, float]:
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-800:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", r.stderr)
    h, m, s = (float(g) if g else 0.0 for g in wall.groups())
    rss = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return 3600 * h + 60 * m + s, rss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo")
    p.add_argument("--out")
    p.add_argument("--coder", default="auto", help="passed to compress (auto: the encoder's choice; "
                   "model: the photo model, forced)")
    a = p.parse_args()
    x = np.asarray(Image.open(a.photo))
    px = x.shape[0] * x.shape[1]
    cli = [sys.executable, "-m", "vlaecodec"]
    with tempfile.TemporaryDirectory() as tmp:
        f, back = os.path.join(tmp, "p.vlae"), os.path.join(tmp, "back.png")
        te, me = timed(cli + ["compress", a.photo, "-o", f, "-q", "--coder", a.coder])
        td, md = timed(cli + ["decompress", f, "-o", back, "-q"])
        same = np.array_equal(np.asarray(Image.open(back)), x)
        size = os.path.getsize(f)
        info = subprocess.run(cli + ["info", f, "--no-elbo"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    coder = "" if a.coder == "auto" else f" --coder {a.coder}"
    lines = [f"### One large photo through the CLI (`python bench/photo_large.py {Path(a.photo).name}{coder}`)", "",
             f"{x.shape[1]}x{x.shape[0]} {'RGB' if x.ndim == 3 else 'gray'}, {px:,} pixels; lossless: {same}; "
             f"{size:,} bytes ({8 * size / x.size:.4f} bits/sub-pixel); {info}", "",
             "| | wall s | pixels/s | peak memory (MB) |", "|---|---|---|---|",
             f"| compress | {te:.1f} | {px / te:,.0f} | {me:.0f} |",
             f"| decompress | {td:.1f} | {px / td:,.0f} | {md:.0f} |", "",
             f"(load average when it ended: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} on {os.cpu_count()} cores)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    if not same:
        raise SystemExit("pixels differ")


if __name__ == "__main__":
    main()
