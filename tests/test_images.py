"""Image kinds and modes (vlaecodec.images): what is binary, what is 8-bit, and that
every image is written back in the mode it came in, whatever model coded it."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vlaecodec import images
from vlaecodec.images import ImageError


def png(a: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a if mode != "1" else a.astype(bool)).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


BITS = (np.arange(28 * 28).reshape(28, 28) % 3 == 0)
GRAY = (np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8)


@pytest.mark.parametrize("data,mode,levels", [
    (png(BITS, "1"), "1", 2),
    (png(np.where(BITS, 255, 0).astype(np.uint8), "L"), "L-binary", 2),
    (png(GRAY, "L"), "L", 256),
    (png(GRAY, "RGB"), "L", 256),            # gray stored as RGB
    (png(GRAY, "P"), "L", 256),              # ... or as a palette
])
def test_kinds(data, mode, levels):
    p = images.read_image(data, "x.png")
    assert (p.mode, p.levels, p.color) == (mode, levels, "")


def test_mixed_kinds_go_to_8bit_unless_binarized():
    b, g = images.read_image(png(BITS, "1"), "b.png"), images.read_image(png(GRAY, "L"), "g.png")
    assert images.image_levels([b, b]) == 2 and images.image_levels([g, g]) == 256
    assert images.image_levels([b, g]) == 256   # an 8-bit model codes 0/255 losslessly (issue 20 item 3)
    assert images.image_levels([b, g], binarize=True) == 2


def test_for_model_pixels_and_modes():
    b, g = images.read_image(png(BITS, "1"), "b.png"), images.read_image(png(GRAY, "L"), "g.png")
    px, modes, changed = images.for_model([b, g], 256, 28, "m8")
    assert np.array_equal(px[0], np.where(BITS, 255, 0)) and np.array_equal(px[1], GRAY)
    assert modes == ["1", "L"] and changed == 0
    with pytest.raises(ImageError, match="--binarize"):
        images.for_model([g], 2, 28, "m2")
    px, modes, changed = images.for_model([b, g], 2, 28, "m2", binarize=True)
    assert np.array_equal(px[1], GRAY >= 128) and modes == ["1", "L-binary"]
    assert changed == int(np.count_nonzero((GRAY != 0) & (GRAY != 255)))
    with pytest.raises(ImageError, match="28x28"):
        images.for_model([b], 2, 32, "m2")


@pytest.mark.parametrize("mode", ["1", "L-binary"])
@pytest.mark.parametrize("levels", [2, 256])
def test_binary_modes_come_back_whatever_the_levels(mode, levels):
    pixels = BITS.astype(np.uint8) * (levels - 1)
    with Image.open(io.BytesIO(images.png_bytes(pixels, mode, levels))) as im:
        assert im.mode == ("1" if mode == "1" else "L")
        assert np.array_equal(np.asarray(im.convert("L")) > 0, BITS)


def test_gray_comes_back_exactly():
    with Image.open(io.BytesIO(images.png_bytes(GRAY, "L", 256))) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), GRAY)


def test_output_paths(tmp_path):
    assert images.output_paths(str(tmp_path / "a.png"), 1, None, "f") == (False, [str(tmp_path / "a.png")])
    into, paths = images.output_paths(str(tmp_path / "out"), 2, ["x.png", "y.png"], "f")
    assert into and paths == [str(tmp_path / "out" / "x.png"), str(tmp_path / "out" / "y.png")]
    for bad in (["../x.png", "y.png"], ["x.png", "x.png"]):
        with pytest.raises(ImageError, match="refusing"):
            images.output_paths(str(tmp_path / "out"), 2, bad, "f")
    with pytest.raises(ImageError, match="folder"):
        images.output_paths(str(tmp_path / "x.webp"), 2, None, "f")


def test_files_round_trip_without_the_cli(tmp_path):
    """compress_files / decompress_file: what the two commands do, minus parsing."""
    from conftest import TINY_NAME
    (tmp_path / "in").mkdir()
    for i in range(2):
        (tmp_path / "in" / f"d{i}.png").write_bytes(png(np.roll(BITS, i, axis=1), "1"))
    line = images.compress_files([str(tmp_path / "in")], str(tmp_path / "a.vlae"), TINY_NAME, quiet=True)
    assert line.startswith("2 images -> ") and line.endswith(" bits/dim)")
    with pytest.raises(images.OptionError, match="--lossy"):
        images.compress_files([str(tmp_path / "in")], str(tmp_path / "b.vlae"), TINY_NAME, rate=2)
    assert images.decompress_file(str(tmp_path / "a.vlae"), str(tmp_path / "out"), quiet=True).startswith("2 images")
    for i in range(2):
        with Image.open(tmp_path / "out" / f"d{i}.png") as im:
            assert im.mode == "1" and np.array_equal(np.asarray(im), np.roll(BITS, i, axis=1))


def test_decoding_errors_name_the_file(tmp_path):
    from vlaecodec.fileio import FileError
    (tmp_path / "bad.vlae").write_bytes(b"not a vlae file")
    with pytest.raises(FileError, match="^.*bad.vlae: "):
        images.decompress_file(str(tmp_path / "bad.vlae"), str(tmp_path / "x.png"))
