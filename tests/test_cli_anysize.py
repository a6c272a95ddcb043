"""The CLI on images of any size and in color: photos in, the same pixels out, one-line
errors for what is not supported, and nothing written on failure."""
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vlaecodec import anysize
from vlaecodec.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _photo(h=37, w=53, seed=0):
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.arange(h), 2 * np.arange(w))
    return np.clip(np.stack([base, base // 2 + 40, 200 - base // 3], 2) + rng.integers(0, 9, (h, w, 3)), 0, 255
                   ).astype(np.uint8)


def test_rgb_and_gray_photos_round_trip(tmp_path):
    a = _photo()
    Image.fromarray(a).save(tmp_path / "p.png")
    Image.fromarray(a[..., 1]).save(tmp_path / "g.png")
    for name, mode in (("p", "RGB"), ("g", "L")):
        r = run("compress", str(tmp_path / f"{name}.png"), "-o", str(tmp_path / f"{name}.vlae"))
        assert r.exit_code == 0, r.output
        assert anysize.is_anysize((tmp_path / f"{name}.vlae").read_bytes())
        r = run("decompress", str(tmp_path / f"{name}.vlae"), "-o", str(tmp_path / f"{name}.out.png"))
        assert r.exit_code == 0, r.output
        with Image.open(tmp_path / f"{name}.out.png") as im:
            assert im.mode == mode
            assert np.array_equal(np.asarray(im), np.asarray(Image.open(tmp_path / f"{name}.png")))
    r = run("info", str(tmp_path / "p.vlae"))
    assert r.exit_code == 0 and "53x37 RGB, coder" in r.output


def test_folder_of_photos_is_one_archive_with_names(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    imgs = {"a.png": _photo(5, 9, 1), "b.png": _photo(40, 3, 2)[..., 0], "c.png": _photo(1, 1, 3)}
    for n, a in imgs.items():
        Image.fromarray(a).save(src / n)
    r = run("compress", str(src), "-o", str(tmp_path / "all.vlae"), "--coder", "png")
    assert r.exit_code == 0, r.output
    assert "3 images" in r.output and "PNG x3" in r.output
    r = run("decompress", str(tmp_path / "all.vlae"), "-o", str(tmp_path / "out/"))
    assert r.exit_code == 0, r.output
    for n, a in imgs.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / n)), a)


@pytest.mark.parametrize("kind", ["alpha", "16-bit", "cmyk"])
def test_unsupported_kinds_get_one_line_and_no_file(tmp_path, kind):
    src = tmp_path / "x.png"
    if kind == "alpha":
        a = np.zeros((6, 6, 4), np.uint8)
        a[..., 3] = 128
        Image.fromarray(a).save(src)
    elif kind == "16-bit":
        Image.fromarray(np.arange(36, dtype=np.uint16).reshape(6, 6) * 1000).save(src)
    else:
        src = tmp_path / "x.tif"
        Image.new("CMYK", (6, 6), (1, 2, 3, 4)).save(src)
    r = CliRunner().invoke(cli, ["compress", str(src), "-o", str(tmp_path / "x.vlae")])
    assert r.exit_code == 1
    assert len(r.output.strip().splitlines()) == 1 and "8-bit grayscale and RGB" in r.output
    assert not (tmp_path / "x.vlae").exists()


def test_damaged_any_size_file_is_a_one_line_error(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "p.png")
    assert run("compress", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.vlae"), "--coder", "webp").exit_code == 0
    data = bytearray((tmp_path / "p.vlae").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.vlae").write_bytes(bytes(data))
    r = CliRunner().invoke(cli, ["decompress", str(tmp_path / "bad.vlae"), "-o", str(tmp_path / "bad.png")])
    assert r.exit_code == 1 and "bad.vlae" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad.png").exists()


def test_lossy_options_are_refused_for_photos(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "p.png")
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.vlae"), "--lossy"])
    assert r.exit_code == 2 and "28x28" in r.output


def test_forced_model_without_photo_model_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(anysize, "photo_models", lambda mode=None: [])
    Image.fromarray(_photo()).save(tmp_path / "p.png")
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.vlae"), "--coder", "model"])
    assert r.exit_code == 1 and "no photo model" in r.output


def test_opaque_alpha_and_palettes_come_back_plain_with_a_note(tmp_path):
    a = _photo(23, 31)
    rgba = np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")                 # RGBA, opaque everywhere
    Image.fromarray(a).convert("P").save(tmp_path / "p.png")         # palette
    Image.fromarray(a).save(tmp_path / "plain.png")                  # plain RGB: no note
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "plain.png"), "-o", str(tmp_path / "plain.vlae")])
    assert r.exit_code == 0 and "note" not in r.output, r.output
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "a.png"), str(tmp_path / "p.png"),
                                 "-o", str(tmp_path / "x.vlae")])
    assert r.exit_code == 0, r.output
    assert "2 inputs of mode P, RGBA" in r.output and "same pixel values" in r.output
    assert run("decompress", str(tmp_path / "x.vlae"), "-o", str(tmp_path / "out") + "/").exit_code == 0
    for name in ("a.png", "p.png"):
        with Image.open(tmp_path / "out" / name) as back, Image.open(tmp_path / name) as src:
            assert back.mode == "RGB"
            assert np.array_equal(np.asarray(back), np.asarray(src.convert("RGB")))


def test_one_image_summary_says_what_the_other_coders_made(tmp_path):
    Image.fromarray(_photo(40, 60)).save(tmp_path / "p.png")
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "p.png"), "-o", str(tmp_path / "p.vlae"),
                                 "--coder", "png"])
    assert r.exit_code == 0 and "bytes against" not in r.output      # one coder: nothing to compare
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "p.png"), "-o", str(tmp_path / "q.vlae")])
    assert r.exit_code == 0, r.output
    line = r.output.strip().splitlines()[-1]
    kept = anysize.parse((tmp_path / "q.vlae").read_bytes()).records[0]
    assert f"{kept.coder_name}; {len(kept.payload):,} bytes against " in line
    assert sum(name in line for name in ("PNG", "WebP lossless", "photo-rgb")) >= 3   # all candidates named
