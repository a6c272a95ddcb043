"""Regenerate samples/digits/: the first 16 statically binarized MNIST test digits as
mode-'1' PNGs (00000.png ... 00015.png). `make demo` compresses this folder.

    python bench/make_samples.py            # needs `vlaecodec data fetch mnist` first
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from vlaecodec.data import load_binarized_mnist

COUNT = 16


def main(out: Path = Path(__file__).resolve().parent.parent / "samples" / "digits") -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, pixels in enumerate(load_binarized_mnist("test")[:COUNT]):
        # bool array -> PIL mode '1'; PNG stores it as a 1-bit image.
        Image.fromarray(pixels.astype(bool)).save(out / f"{i:05d}.png", optimize=True)
    print(f"wrote {COUNT} digits to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "samples" / "digits")
