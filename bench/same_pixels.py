"""Check that two folders hold the same PNGs pixel for pixel (and in the same PIL mode).

    python bench/same_pixels.py samples/digits build/demo/digits

Exit status 0 when every file in A has an identical twin in B; `make demo` uses it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def load(p: Path) -> tuple[str, np.ndarray]:
    with Image.open(p) as im:
        return im.mode, np.asarray(im)


def main(a: Path, b: Path) -> int:
    names = sorted(p.name for p in a.glob("*.png"))
    other = sorted(p.name for p in b.glob("*.png"))
    if names != other:
        print(f"file names differ: {sorted(set(names) ^ set(other))[:5]}", file=sys.stderr)
        return 1
    bad = []
    for n in names:
        (ma, pa), (mb, pb) = load(a / n), load(b / n)
        if ma != mb or pa.shape != pb.shape or not np.array_equal(pa, pb):
            bad.append(n)
    if bad or not names:
        print(f"NOT lossless: {len(bad)} of {len(names)} images differ: {bad[:5]}", file=sys.stderr)
        return 1
    print(f"lossless: {len(names)} of {len(names)} images identical (pixels and mode)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
