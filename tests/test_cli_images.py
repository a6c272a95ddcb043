"""Images in and out on the command line (issue 8 item 4): the image's kind picks the
model, every image comes back in its own mode, and the small CLI fixes of item 5
(progress never in stdout, broken pipes, usage errors exit 2).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY8_NAME as TINY8
from conftest import TINY_NAME, synthetic_digits
from test_cli import fails_cleanly, ok, run, save_png, usage_error
from vlaecodec.zoo import load_model

M = ["--model", TINY_NAME]
@pytest.fixture
def with_tiny8(monkeypatch):
    """The tiny 8-bit test model (installed by conftest) as the default 8-bit model."""
    from vlaecodec import zoo
    monkeypatch.setitem(zoo.DEFAULT_MODELS, 256, TINY8)


def gray_image(seed: int = 0) -> np.ndarray:
    """A digit with gray edges: values 0..255, many exact zeros, some levels in between."""
    x = synthetic_digits(1, seed=seed)[0].astype(np.int64) * 255
    x[1:, :] = np.maximum(x[1:, :], x[:-1, :] // 3)   # a soft shadow below each stroke
    return x.astype(np.uint8)


def save_gray(path: Path, a: np.ndarray) -> Path:
    Image.fromarray(a, "L").save(path)
    return path


def read_back(path) -> tuple[np.ndarray, str]:
    with Image.open(path) as im:
        return np.asarray(im).copy(), im.mode


# ------------------------------------------------------------ choosing the model

def test_8bit_image_without_an_8bit_model_is_one_line(tmp_path, monkeypatch):
    from vlaecodec import zoo
    monkeypatch.setitem(zoo.DEFAULT_MODELS, 256, "vlae-not-installed8")
    monkeypatch.setattr("vlaecodec.choose.candidates", lambda *a, **k: [])   # no 8-bit model to choose from
    src = save_gray(tmp_path / "g.png", gray_image())
    fails_cleanly(run("compress", src, "-o", tmp_path / "g.vlae", "-q"), "no 8-bit model is installed",
                  "vlae-not-installed8")
    assert not (tmp_path / "g.vlae").exists()


def test_mixed_kinds_need_an_8bit_model(tmp_path, monkeypatch, with_tiny8):
    d = tmp_path / "in"
    d.mkdir()
    save_png(d / "a.png", synthetic_digits(1, seed=1)[0])
    save_gray(d / "b.png", gray_image())
    ok(run("compress", d, "-o", tmp_path / "m.vlae", "-q"))   # the default 8-bit model (issue 20 item 3)
    # A binary model named explicitly still refuses the gray image, pointing at --binarize.
    fails_cleanly(run("compress", d, "-o", tmp_path / "x.vlae", *M, "-q"), "b.png", "--binarize")


def test_binary_images_pick_the_default_binary_model(tmp_path, monkeypatch, pngs_dir):
    from vlaecodec import zoo
    monkeypatch.setitem(zoo.DEFAULT_MODELS, 2, TINY_NAME)
    monkeypatch.setattr("vlaecodec.choose.candidates", lambda *a, **k: [TINY_NAME])   # the only one installed
    ok(run("compress", pngs_dir, "-o", tmp_path / "a.vlae", "-q"))
    import vlaecodec
    from vlaecodec.zoo import load_model
    h = vlaecodec.inspect((tmp_path / "a.vlae").read_bytes())
    # A default model's name is not stored (its hash finds it); this is the tiny one's hash.
    assert h.model_name is None and load_model(TINY_NAME).sha256.startswith(h.model_hash)


@pytest.fixture
def pngs_dir(tmp_path):
    d = tmp_path / "pngs"
    d.mkdir()
    for i, px in enumerate(synthetic_digits(3, seed=11)):
        save_png(d / f"{i}.png", px)
    return d


def test_binarize_warns_how_many_pixels_changed(tmp_path):
    a = gray_image(seed=2)
    lost = int(np.count_nonzero((a != 0) & (a != 255)))
    assert lost > 0
    src = save_gray(tmp_path / "g.png", a)
    r = ok(run("compress", src, "-o", tmp_path / "g.vlae", *M, "-q", "--binarize"))
    assert f"warning: --binarize changed {lost} of 784 pixels (gray levels lost)" in r.stderr
    assert r.stdout == ""
    # Binary inputs lose nothing: no warning.
    src2 = save_png(tmp_path / "b.png", synthetic_digits(1, seed=2)[0])
    assert "warning" not in ok(run("compress", src2, "-o", tmp_path / "b.vlae", *M, "-q", "--binarize")).stderr


def test_gray_stored_as_rgb_is_gray(tmp_path):
    x = synthetic_digits(1, seed=6)[0]
    rgb = np.repeat((x * 255).astype(np.uint8)[..., None], 3, axis=2)
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png")
    ok(run("compress", tmp_path / "rgb.png", "-o", tmp_path / "r.vlae", *M, "-q"))
    ok(run("decompress", tmp_path / "r.vlae", "-o", tmp_path / "back.png", "-q"))
    px, mode = read_back(tmp_path / "back.png")
    assert mode == "L" and np.array_equal(px, x * 255)


def test_color_image_refused_by_a_digit_model_with_reason(tmp_path, with_tiny8):
    """A color image goes to the any-size path (tests/test_cli_anysize.py); forced onto a
    28x28 gray model it is refused, saying why."""
    a = np.zeros((28, 28, 3), np.uint8)
    a[..., 0] = 255
    Image.fromarray(a, "RGB").save(tmp_path / "red.png")
    fails_cleanly(run("compress", tmp_path / "red.png", "-o", tmp_path / "x.vlae", "-q", "--model", TINY8),
                  "mode RGB", "grayscale")
    ok(run("compress", tmp_path / "red.png", "-o", tmp_path / "y.vlae", "-q"))


def test_models_says_what_each_model_codes(with_tiny8):
    lines = ok(run("models")).stdout.splitlines()
    tiny = next(ln for ln in lines if ln.startswith(TINY_NAME + " "))
    tiny8 = next(ln for ln in lines if ln.startswith(TINY8 + " "))
    assert "28x28 binary" in tiny and "28x28 8-bit" in tiny8
    assert tiny8.rstrip().endswith("*")          # the default 8-bit model (patched)


# ------------------------------------------------------------------ 8-bit round trips

def test_8bit_images_round_trip_with_the_default_8bit_model(tmp_path, with_tiny8, monkeypatch):
    monkeypatch.setattr("vlaecodec.choose.candidates", lambda *a, **k: [TINY8])   # the only one installed
    d = tmp_path / "in"
    d.mkdir()
    want = {f"g{i}.png": gray_image(seed=i) for i in range(3)}
    for name, a in want.items():
        save_gray(d / name, a)
    ok(run("compress", d, "-o", tmp_path / "g.vlae", "-q"))
    import vlaecodec
    h = vlaecodec.inspect((tmp_path / "g.vlae").read_bytes())
    assert h.levels == 256 and load_model(TINY8).sha256.startswith(h.model_hash)
    ok(run("decompress", tmp_path / "g.vlae", "-o", tmp_path / "out", "-q"))
    for name, a in want.items():
        px, mode = read_back(tmp_path / "out" / name)
        assert mode == "L" and np.array_equal(px, a)
    assert "pixels: 8-bit" in ok(run("info", tmp_path / "g.vlae", "-q")).stdout


def test_binary_images_through_an_8bit_model_keep_their_modes(tmp_path, with_tiny8):
    d = tmp_path / "in"
    d.mkdir()
    x = synthetic_digits(2, seed=8)
    save_png(d / "a.png", x[0])                 # mode 1
    save_png(d / "b.png", x[1], mode="L")       # grayscale 0/255
    save_gray(d / "c.png", gray_image(seed=5))  # 8-bit
    ok(run("compress", d, "-o", tmp_path / "m.vlae", "--model", TINY8, "-q"))
    ok(run("decompress", tmp_path / "m.vlae", "-o", tmp_path / "out", "-q"))
    a, ma = read_back(tmp_path / "out" / "a.png")
    b, mb = read_back(tmp_path / "out" / "b.png")
    c, mc = read_back(tmp_path / "out" / "c.png")
    assert ma == "1" and np.array_equal(a.astype(np.uint8), x[0])
    assert mb == "L" and np.array_equal(b, x[1] * 255)
    assert mc == "L" and np.array_equal(c, gray_image(seed=5))


def test_binarize_is_for_binary_models(tmp_path, with_tiny8):
    src = save_gray(tmp_path / "g.png", gray_image())
    usage_error(run("compress", src, "-o", tmp_path / "g.vlae", "--model", TINY8, "--binarize", "-q"), "--binarize")


# --------------------------------------------- item 5: output streams, exits, pipes

def test_status_lines_never_reach_stdout(tmp_path, pngs_dir):
    # Not a terminal (CliRunner): no bar, and stdout holds only the data asked for.
    r = ok(run("compress", pngs_dir, "-o", "-", *M))
    assert r.stdout_bytes[:2] == b"VL" and b"compressing" not in r.stdout_bytes
    assert "3 images ->" in r.stderr and "compressing" not in r.stderr
    (tmp_path / "a.vlae").write_bytes(r.stdout_bytes)
    r = ok(run("info", tmp_path / "a.vlae"))
    assert "decoding" not in r.output and r.stdout.startswith("model: ")
    single = ok(run("compress", pngs_dir / "0.png", "-o", "-", *M)).stdout_bytes
    r = ok(run("decompress", "-", "-o", "-", input=single))
    assert r.stdout_bytes[:4] == b"\x89PNG" and "decompressing" not in r.output


def test_progress_bar_only_on_a_terminal():
    import io

    from vlaecodec import progress

    class Tty(io.StringIO):
        def isatty(self):
            return True
    log, tty = io.StringIO(), Tty()
    for stream in (log, tty):
        with progress.bar("coding", 10, stream=stream, passes=2) as cb:
            for n in (5, 10, 3, 10):
                cb(n)
    assert log.getvalue() == ""
    out = tty.getvalue()
    assert out.startswith("\rcoding") and out.endswith("100%\n") and " 25%" in out and " 65%" in out
    quiet = Tty()
    with progress.bar("coding", 10, stream=quiet, quiet=True) as cb:
        cb(10)
    assert quiet.getvalue() == ""


def test_eval_json_to_stdout_is_pure_json(monkeypatch):
    from vlaecodec import data
    monkeypatch.setattr(data, "load_dataset", lambda name, split="test", source=None: synthetic_digits(3, seed=2))
    r = ok(run("eval", *M, "--iwae-k", "0", "--json", "-"))
    doc = json.loads(r.stdout)
    assert doc["n"] == 3 and doc["model"] == TINY_NAME
    assert "-ELBO:" in r.stderr


def test_broken_pipe_exits_quietly(tmp_path, monkeypatch, pngs_dir):
    ok(run("compress", pngs_dir, "-o", tmp_path / "a.vlae", *M, "-q"))
    import click

    from vlaecodec.cli import main

    def closed(*a, **k):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(main.click, "echo", closed)
    r = run("info", tmp_path / "a.vlae", "--no-elbo")
    monkeypatch.setattr(main.click, "echo", click.echo)
    assert r.exit_code == 0 and "Error" not in r.output and "Traceback" not in r.output


def test_info_piped_into_head_exits_quietly(tmp_path, pngs_dir):
    """`vlaecodec info f.vlae | head -1`: the reader leaves while info is still decoding."""
    ok(run("compress", pngs_dir, "-o", tmp_path / "a.vlae", *M, "-q"))
    p = subprocess.Popen([sys.executable, "-m", "vlaecodec", "info", str(tmp_path / "a.vlae")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    first = p.stdout.readline()
    p.stdout.close()   # like head -1: the rest (the -ELBO lines, after decoding) meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0, err
    assert first.startswith(b"model: ") and "Error" not in err and "Traceback" not in err


def test_train_unknown_preset_is_a_usage_error(monkeypatch):
    from vlaecodec import train
    monkeypatch.setattr(train, "main", lambda argv: pytest.fail("train ran with a bad preset"))
    usage_error(run("train", "--preset", "nope", "--out", "x"), "'--preset'", "'nope' is not one of", "vlae-tiny")
    usage_error(run("train", "--out", "x", "--preset=nope"), "'nope' is not one of")


@pytest.mark.parametrize("args,fragment", [
    (["eval", "--model", "no-such-model", "-q"], "no-such-model"),
    (["eval", "--dataset", "nope", "-q"], "nope"),
    (["eval", "--split", "nope", "-q"], "nope"),
    (["bench", "--dataset", "nope"], "nope"),
    (["bench", "--split", "nope"], "nope"),
])
def test_unknown_names_are_usage_errors(args, fragment):
    usage_error(run(*args), fragment)


@pytest.mark.parametrize("name", ["x.png", "x.PGM", "x.jpg"])
def test_archive_to_an_image_name_is_refused(tmp_path, pngs_dir, name):
    ok(run("compress", pngs_dir, "-o", tmp_path / "a.vlae", *M, "-q"))
    fails_cleanly(run("decompress", tmp_path / "a.vlae", "-o", tmp_path / name, "-q"), "3 images", "folder")
    assert not (tmp_path / name).exists()
    ok(run("decompress", tmp_path / "a.vlae", "-o", tmp_path / "plain", "-q"))   # no suffix: a folder
    assert sorted(os.listdir(tmp_path / "plain")) == ["0.png", "1.png", "2.png"]


# ------------------------------------------------------------------ item 3: data

def _write_idx(d: Path, n_train: int = 5, n_test: int = 3) -> None:
    import gzip
    import struct
    d.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train-images-idx3-ubyte", n_train), ("t10k-images-idx3-ubyte", n_test)):
        body = np.arange(n * 28 * 28, dtype=np.uint8).tobytes()
        (d / f"{stem}.gz").write_bytes(gzip.compress(b"\0\0\x08\x03" + struct.pack(">III", n, 28, 28) + body))


def test_fashion_fetch_from_is_remembered(tmp_path, monkeypatch):
    from vlaecodec import data
    monkeypatch.setenv("VLAECODEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "FASHION_DIRS", ())      # no system copy: only what we import
    r = ok(run("data", "info"))
    assert "Fashion-MNIST: not found" in r.stdout and "vlaecodec data fetch fashion-mnist --from DIR" in r.stdout
    _write_idx(tmp_path / "idx")
    r = ok(run("data", "fetch", "fashion-mnist", "--from", tmp_path / "idx"))
    assert "train: 5 images" in r.stdout and "test: 3 images" in r.stdout
    r = ok(run("data", "info"))
    assert f"Fashion-MNIST: {tmp_path / 'cache' / 'fashion-mnist.npz'}" in r.stdout
    assert "fashion-mnist.npz" in r.stdout
    assert data.load_fashion_mnist("test").shape == (3, 28, 28)        # no --from needed any more
    assert data.load_fashion_mnist("valid").shape == (5, 28, 28)       # valid: the last 10,000 of train


def test_missing_fashion_names_an_option_that_exists(tmp_path, monkeypatch):
    from vlaecodec import data
    monkeypatch.setenv("VLAECODEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "FASHION_DIRS", ())
    msg = fails_cleanly(run("eval", "--model", TINY_NAME, "--dataset", "fashion-mnist", "-q"),
                        "data fetch fashion-mnist --from DIR")
    assert "dataset-fashion-mnist" in msg
    fails_cleanly(run("data", "fetch", "fashion-mnist"), "data fetch fashion-mnist --from DIR")


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_package_is_found(tmp_path, monkeypatch):
    from vlaecodec import data
    monkeypatch.setenv("VLAECODEC_CACHE", str(tmp_path / "cache"))
    assert data.find_fashion_dir() == Path("/usr/share/datasets/fashion-mnist")
    assert "Fashion-MNIST: /usr/share/datasets/fashion-mnist" in ok(run("data", "info")).stdout
