"""Golden files: .vlae files written once by the shipped models (tests/golden/) must
decode, forever, to the committed sample digits and their names.

A numpy, constriction or Python upgrade, or any change to the integer arithmetic, the
coder calls or the container that would strand users' files fails here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vlaecodec
from vlaecodec.images import load_png

GOLDEN = Path(__file__).resolve().parent / "golden"
SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "digits"
FILES = sorted(GOLDEN.glob("*.vlae"))


def _samples(folder: Path = SAMPLES):
    """(pixels, mode) per sample PNG, as the coder saw them, and the names."""
    from vlaecodec.images import read_image
    paths = sorted(folder.glob("*.png"))
    if folder == SAMPLES:
        return [load_png(p.read_bytes(), str(p)) for p in paths], [p.name for p in paths]
    return [(read_image(p.read_bytes(), str(p)).gray, "L") for p in paths], [p.name for p in paths]


# 8-bit models' golden files hold 8-bit sample images (samples/<folder>).
GRAY_FOLDERS = {"vlae-mnist8-v1": "mnist8", "vlae-fashion-mnist-v1": "fashion"}


def test_golden_files_are_present():
    assert len(FILES) >= 4, "tests/golden/*.vlae missing (python tests/golden/make_golden.py writes them once)"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_golden_file_decodes_to_the_committed_pixels(path):
    folder = next((SAMPLES.parent / f for m, f in GRAY_FOLDERS.items() if path.name.startswith(m + "-")), SAMPLES)
    samples, names = _samples(folder)
    out = vlaecodec.decompress(path.read_bytes())
    if "-lossy-" in path.name:   # lossy: the redrawn digits, committed next to the file
        folder = path.with_suffix("")
        want = [load_png((folder / n).read_bytes(), n) for n in names]
        assert out.names == names and out.header.lossy_level > 0
    elif path.name.endswith("-single.vlae"):
        want = [samples[3]]
        assert out.names is None
    else:
        want = samples
        assert out.names == names
    assert len(out.images) == len(want)
    for got, mode, (pixels, want_mode) in zip(out.images, out.modes, want):
        assert np.array_equal(got, pixels) and mode == want_mode
