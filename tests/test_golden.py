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


def _samples():
    paths = sorted(SAMPLES.glob("*.png"))
    return [load_png(p.read_bytes(), str(p)) for p in paths], [p.name for p in paths]


def test_golden_files_are_present():
    assert len(FILES) >= 4, "tests/golden/*.vlae missing (python tests/golden/make_golden.py writes them once)"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_golden_file_decodes_to_the_committed_pixels(path):
    samples, names = _samples()
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
