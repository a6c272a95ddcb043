"""Golden any-size files: .vlae files the shipped photo models (and the binary context
model, samples/documents/) wrote (tests/golden/photos/,
with `vlaecodec compress samples/photos/X.png -o F --coder model`) must decode, forever,
to the committed sample photos. A change to the photo coder, the rANS stack, the integer
mixture CDF or the container that would strand users' photo files fails here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlaecodec import anysize

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = {"photo-rgb-v1-ladybird.vlae": "ladybird-128x96.png",      # v1: retired, still decodes
          "photo-rgb-v2-ladybird.vlae": "ladybird-128x96.png",      # v2: retired, still decodes
          "photo-rgb-v3-ladybird.vlae": "ladybird-128x96.png",
          "photo-gray-v1-coins.vlae": "coins-128x96-gray.png",     # v1: retired, still decodes
          "photo-gray-v2-coins.vlae": "coins-128x96-gray.png"}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_photo_file_decodes_to_the_sample(name):
    data = (ROOT / "tests/golden/photos" / name).read_bytes()
    images, records = anysize.decompress(data)
    want = np.asarray(Image.open(ROOT / "samples/photos" / GOLDEN[name]))
    assert len(images) == 1 and records[0].coder == anysize.CODER_MODEL
    assert records[0].model.name == name.rsplit("-", 1)[0]
    assert np.array_equal(images[0], want)


def test_golden_binary_document_decodes_to_the_sample():
    """The context model's format (vlaecodec/bilevel.py: template, hashing, mixer, tables)
    is frozen by this file: any change to its constants must fail here."""
    data = (ROOT / "tests/golden/photos/context-text.vlae").read_bytes()
    images, records = anysize.decompress(data)
    want = np.asarray(Image.open(ROOT / "samples/documents/text-240x96-1bit.png")).astype(np.uint8)
    assert len(images) == 1 and records[0].coder == anysize.CODER_CONTEXT and records[0].mode == "1"
    assert np.array_equal(images[0], want)


def test_golden_gray_graphic_decodes_to_the_sample():
    """The gray context model's format (vlaecodec/graylevel.py: decisions, predictor,
    contexts, hashing, mixer) is frozen by this file: any change to it must fail here."""
    data = (ROOT / "tests/golden/photos/context-gray-chart.vlae").read_bytes()
    images, records = anysize.decompress(data)
    want = np.asarray(Image.open(ROOT / "tests/golden/photos/context-gray-chart.png"))
    assert len(images) == 1 and records[0].coder == anysize.CODER_GRAYCTX and records[0].mode == "L"
    assert np.array_equal(images[0], want)


def test_golden_rgb_graphic_decodes_to_the_sample():
    """The RGB context model's format (vlaecodec/colorlevel.py: channel order, cross-channel
    predictors and contexts, and graylevel.py's model under it) is frozen by this file."""
    data = (ROOT / "tests/golden/photos/context-rgb-wallpaper.vlae").read_bytes()
    images, records = anysize.decompress(data)
    want = np.asarray(Image.open(ROOT / "tests/golden/photos/context-rgb-wallpaper.png"))
    assert len(images) == 1 and records[0].coder == anysize.CODER_RGBCTX and records[0].mode == "RGB"
    assert np.array_equal(images[0], want)
