"""28x28 images unlike digits (issue 19): the digit model's file is kept only when the
any-size container (PNG, WebP lossless, the context models, the photo models) cannot
code the same images smaller; digits keep their digit-model files byte for byte."""
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vlaecodec import anysize, images
from vlaecodec.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.any_size_fallback


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _flat_and_gradient(tmp_path):
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(tmp_path / "flat.png")
    Image.fromarray(np.tile((np.arange(28) * 9).astype(np.uint8), (28, 1))).save(tmp_path / "grad.png")
    return [tmp_path / "flat.png", tmp_path / "grad.png"]


@pytest.mark.parametrize("which", [0, 1])
def test_a_flat_28x28_image_is_not_coded_with_a_digit_model(tmp_path, which):
    src = _flat_and_gradient(tmp_path)[which]
    out = tmp_path / "x.vlae"
    r = run("compress", str(src), "-o", str(out))
    assert r.exit_code == 0, r.output
    data = out.read_bytes()
    assert anysize.is_anysize(data), r.output          # not the digit container
    assert "smaller than the" in r.output
    # Forced to the digit model, the same image costs more than the file that was kept.
    forced = tmp_path / "forced.vlae"
    chosen = images.compress_files([str(src)], str(forced), model="vlae-mnist8-v1", quiet=True)
    assert not anysize.is_anysize(forced.read_bytes()) and "vlae-mnist8-v1" in chosen
    assert len(data) < len(forced.read_bytes())
    r = run("decompress", str(out), "-o", str(tmp_path / "back.png"))
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "back.png") as a, Image.open(src) as b:
        assert a.mode == b.mode == "L" and np.array_equal(np.asarray(a), np.asarray(b))


def test_digits_keep_the_digit_model(tmp_path):
    digits = sorted((ROOT / "samples/digits").glob("*.png"))[:4]
    for i, d in enumerate(digits):
        out = tmp_path / f"{i}.vlae"
        r = run("compress", str(d), "-o", str(out))
        assert r.exit_code == 0, r.output
        assert not anysize.is_anysize(out.read_bytes()), r.output
    r = run("compress", *map(str, digits), "-o", str(tmp_path / "all.vlae"))
    assert r.exit_code == 0 and not anysize.is_anysize((tmp_path / "all.vlae").read_bytes())


def test_an_archive_mixing_digits_and_flat_squares_decodes_as_given(tmp_path):
    """Whichever container wins, every image comes back (names and modes included)."""
    srcs = _flat_and_gradient(tmp_path) + sorted((ROOT / "samples/digits").glob("*.png"))[:2]
    out = tmp_path / "mix.vlae"
    assert run("compress", *map(str, srcs), "-o", str(out)).exit_code == 0
    r = run("decompress", str(out), "-o", str(tmp_path / "back") + "/")
    assert r.exit_code == 0, r.output
    for s in srcs:
        with Image.open(tmp_path / "back" / s.name) as a, Image.open(s) as b:
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


def test_the_few_images_limit_keeps_big_archives_on_the_fast_coders(monkeypatch):
    """Past FEW_IMAGES, only PNG and WebP are tried (the others take ~0.1 s an image)."""
    seen = []
    monkeypatch.setattr(anysize, "compress", lambda px, modes, names=None, coders=None: seen.append(coders)
                        or (b"", []))
    pic = images.read_image((ROOT / "samples/digits/00000.png").read_bytes(), "d")
    images._any_size_instead([pic] * images.FEW_IMAGES, None, 10**6)
    images._any_size_instead([pic] * (images.FEW_IMAGES + 1), None, 10**6)
    assert seen == [None, ["png", "webp"]]
