"""Images in and out: PNG bytes <-> (uint8 pixel array, mode). Pillow only.

Modes say how an image is written back (see ``container.MODES``):

* ``"1"``: a bilevel PNG (mode 1); pixels 0/1.
* ``"L-binary"``: a grayscale PNG holding only 0 and 255; pixels 0/1.
* ``"L"``: an 8-bit grayscale PNG; pixels 0..255 (8-bit models).
"""
from __future__ import annotations

import io

import numpy as np


class ImageError(ValueError):
    """An input image cannot be coded as asked; the message says why, in one line."""


def load_png(data: bytes, where: str, *, binarize: bool = False) -> tuple[np.ndarray, str]:
    """PNG (or any Pillow-readable image) bytes -> (0/1 pixels, mode) for binary models."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return to_binary(im, where, binarize)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files
        reason = ("not an image file" if e.__class__.__name__ == "UnidentifiedImageError"
                  else " ".join(str(e).split()) or e.__class__.__name__)
        raise ImageError(f"{where}: cannot read image ({reason})") from None


def to_binary(im, where: str, binarize: bool) -> tuple[np.ndarray, str]:
    """A Pillow image -> (uint8 array of 0/1, mode to write back)."""
    if im.mode == "1":
        return (np.asarray(im) != 0).astype(np.uint8), "1"
    if im.mode == "L":
        a = np.asarray(im)
        if np.isin(a, (0, 255)).all():
            return (a == 255).astype(np.uint8), "L-binary"
    if not binarize:
        what = "grayscale with values other than 0 and 255" if im.mode == "L" else f"mode {im.mode}"
        raise ImageError(f"{where}: image is {what}; binary models take mode-1 images or grayscale "
                         f"images whose pixels are only 0 or 255 (pass --binarize to threshold at 128)")
    a = np.asarray(im.convert("L"))
    return (a >= 128).astype(np.uint8), "L-binary"


def png_bytes(pixels: np.ndarray, mode: str) -> bytes:
    """Pixels -> PNG bytes in ``mode`` ("1", "L-binary" or "L")."""
    from PIL import Image

    a = np.asarray(pixels)
    if mode == "1":
        im = Image.fromarray(a.astype(bool))
    elif mode == "L-binary":
        im = Image.fromarray((a * 255).astype(np.uint8))
    elif mode == "L":
        im = Image.fromarray(a.astype(np.uint8))
    else:
        raise ValueError(f"unknown image mode {mode!r}")
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
