"""Repairs of issue 20 (items 2 to 9), one section per item; each test failed before its fix.

The tiny random models of conftest.py are used where a model is needed; the no-torch
tests run the command line in a fresh interpreter in which torch cannot be imported.
"""
from __future__ import annotations

import io
import json
import os
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import TINY8_NAME, TINY_NAME, run_limited, synthetic_digits, synthetic_gray
from vlaecodec.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "digits"
M = ["--model", TINY_NAME]


def run(*args: object, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def ok(r):
    assert r.exit_code == 0, (r.output, r.exception)
    return r


def one_error_line(r, *fragments: str, code: int = 1) -> str:
    assert r.exit_code == code, (r.output, r.exception)
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Error")]
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------ 2. no torch for coding

# A fresh interpreter in which torch is absent: a meta-path finder refuses it (as an
# environment without torch would) and records every lookup; at exit it reports the
# lookups and whether torch was ever loaded. PRELUDE (optional) runs before the CLI.
NO_TORCH = r'''
import atexit, json, os, sys

class NoTorch:
    lookups = []

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            NoTorch.lookups.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
atexit.register(lambda: print("NO-TORCH " + json.dumps({"lookups": NoTorch.lookups,
                                                        "loaded": "torch" in sys.modules}), file=sys.stderr))
exec(os.environ.get("PRELUDE", ""))
from vlaecodec.cli.main import cli
cli(sys.argv[1:], prog_name="vlaecodec")
'''


def no_torch(*args: object, prelude: str = "", cwd: Path | None = None) -> tuple[int, str, str, dict]:
    env = {**os.environ, "PRELUDE": prelude}
    p = run_limited([sys.executable, "-c", NO_TORCH, *map(str, args)], cpu_s=600, hang_guard_s=1800,
                    capture_output=True, env=env, cwd=cwd or ROOT)
    out, err = p.stdout.decode(), p.stderr.decode()
    report = [ln for ln in err.splitlines() if ln.startswith("NO-TORCH ")]
    assert len(report) == 1, err
    return p.returncode, out, err.replace(report[0], "").strip(), json.loads(report[0][len("NO-TORCH "):])


def test_pyproject_installs_no_torch_but_the_train_extra_does():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split("=")[0].split("<")[0].split(">")[0].strip().lower() for d in project["dependencies"]]
    assert "torch" not in names and {"numpy", "pillow", "click", "constriction"} <= set(names)
    assert "torch" in project["optional-dependencies"]["train"]
    assert "torch" in project["optional-dependencies"]["test"]   # conftest trains tiny float models


def test_coding_commands_work_without_torch(tmp_path):
    arc, out = tmp_path / "d.vlae", tmp_path / "out"
    rc, _, err, seen = no_torch("compress", SAMPLES, "-o", arc, "-q")
    assert rc == 0 and "Traceback" not in err, err
    assert seen == {"lookups": [], "loaded": False}   # compress never even looks for torch
    rc, _, err, seen = no_torch("decompress", arc, "-o", out, "-q")
    assert rc == 0 and seen == {"lookups": [], "loaded": False}, err
    for p in sorted(SAMPLES.glob("*.png")):
        with Image.open(p) as a, Image.open(out / p.name) as b:
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
    rc, text, err, seen = no_torch("models")
    assert rc == 0 and TINY_NAME in text and seen == {"lookups": [], "loaded": False}, err
    rc, text, err, seen = no_torch("info", arc)
    assert rc == 0 and "Traceback" not in err, err
    assert "images: 16" in text and "real rate:" in text
    assert "model -ELBO: skipped (needs torch, the [train] extra: pip install 'vlaecodec[train]')" in text
    assert not seen["loaded"]   # info only asked whether torch is there


def test_bench_without_torch_measures_all_but_the_elbo(tmp_path):
    prelude = ("import numpy as np, vlaecodec.data as d\n"
               "d.load_dataset = lambda name, split='test', source=None: "
               "(np.random.default_rng(0).random((6, 28, 28)) < 0.3).astype(np.uint8)\n")
    rc, text, err, seen = no_torch("bench", *M, "--limit", "6", "--single-limit", "1", "--no-peers", "-q",
                                   "--out", tmp_path, prelude=prelude)
    assert rc == 0 and "Traceback" not in err, err
    assert not seen["loaded"]
    row = next(ln for ln in text.splitlines() if ln.startswith("| VLAE −ELBO"))
    assert "needs torch, the [train] extra: pip install 'vlaecodec[train]'" in row
    assert "lossless 6/6" in text and "lossless 1/1" in text
    doc = json.loads((tmp_path / "bench-binarized-mnist-test-6.json").read_text())
    assert doc["results"]["model"]["neg_elbo_bpd"] is None and doc["results"]["codec"]["ratio_to_elbo"] is None


@pytest.mark.parametrize("args", [["train", "--out", "runs/x"], ["train", "freeze", "x.pt", "--name", "x"],
                                  ["eval", "--limit", "2"]])
def test_training_commands_without_torch_say_how_to_install_it(args):
    rc, _, err, seen = no_torch(*args)
    assert rc == 1 and not seen["loaded"], err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: vlaecodec "), err
    assert "needs torch" in lines[0] and "pip install 'vlaecodec[train]'" in lines[0]


# ------------------------------------------------------------ 3. a mix goes to the 8-bit model

@pytest.fixture
def tiny8_default(monkeypatch):
    from vlaecodec import zoo
    monkeypatch.setitem(zoo.DEFAULT_MODELS, 256, TINY8_NAME)


def read_back(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        return im.mode, np.asarray(im).copy()


def test_a_folder_with_one_black_and_white_image_goes_to_the_8bit_model(tmp_path, tiny8_default):
    import vlaecodec
    from vlaecodec.zoo import load_model

    d = tmp_path / "mnist8"
    d.mkdir()
    gray = synthetic_gray(3, seed=5)
    for i, g in enumerate(gray):
        Image.fromarray(g, "L").save(d / f"{i}.png")
    Image.fromarray(np.where(synthetic_digits(1, seed=6)[0] > 0, 255, 0).astype(np.uint8), "L").save(d / "3.png")
    Image.fromarray(synthetic_digits(1, seed=7)[0].astype(bool)).save(d / "4.png")   # mode 1
    arc, out = tmp_path / "a.vlae", tmp_path / "out"
    ok(run("compress", d, "-o", arc, "-q"))   # no --model: an 8-bit model (issue 19: the one measured smallest)
    h = vlaecodec.inspect(arc.read_bytes())
    assert h.levels == 256 and load_model(h.model_name).config.pixel_levels == 256
    ok(run("decompress", arc, "-o", out, "-q"))
    for p in sorted(d.glob("*.png")):
        assert read_back(out / p.name)[0] == read_back(p)[0]   # each in its own mode: L, L (0/255), 1
        assert np.array_equal(read_back(out / p.name)[1], read_back(p)[1])
    assert [read_back(out / f"{i}.png")[0] for i in (2, 3, 4)] == ["L", "L", "1"]


# ------------------------------------------------------------ 4. -o name/ is a folder

@pytest.fixture
def one_vlae(tmp_path) -> Path:
    src = tmp_path / "digit.png"
    Image.fromarray(synthetic_digits(1, seed=3)[0].astype(bool)).save(src)
    ok(run("compress", src, "-o", tmp_path / "one.vlae", *M, "-q"))
    return tmp_path / "one.vlae"


def test_decompress_one_image_into_a_new_folder_with_a_trailing_slash(tmp_path, one_vlae):
    r = ok(run("decompress", one_vlae, "-o", f"{tmp_path / 'newdir'}/", "-q"))
    assert (tmp_path / "newdir").is_dir()   # not a file named newdir
    assert os.listdir(tmp_path / "newdir") == ["one.png"]   # named after the archive (no name stored)
    assert np.array_equal(read_back(tmp_path / "newdir" / "one.png")[1], read_back(tmp_path / "digit.png")[1])
    assert r.stdout == ""
    # An existing folder (no slash) gets the same name; from stdin, 00000.png.
    (tmp_path / "old").mkdir()
    ok(run("decompress", one_vlae, "-o", tmp_path / "old", "-q"))
    ok(run("decompress", "-", "-o", f"{tmp_path / 'old'}/", "-q", input=one_vlae.read_bytes()))
    assert sorted(os.listdir(tmp_path / "old")) == ["00000.png", "one.png"]
    # A stored name wins: --names keeps it.
    ok(run("compress", tmp_path / "digit.png", "-o", tmp_path / "named.vlae", "--names", *M, "-q"))
    ok(run("decompress", tmp_path / "named.vlae", "-o", f"{tmp_path / 'n'}/", "-q"))
    assert os.listdir(tmp_path / "n") == ["digit.png"]


def test_compress_into_a_folder_name_is_refused_with_a_suggestion(tmp_path):
    out = f"{tmp_path / 'outc'}/"
    line = one_error_line(run("compress", SAMPLES, "-o", out, *M, "-q"), "names the archive file, not a folder")
    assert f"-o {tmp_path / 'outc' / 'digits.vlae'}" in line
    assert not (tmp_path / "outc").exists()
    (tmp_path / "d").mkdir()   # an existing folder, no slash: the same refusal
    one_error_line(run("compress", SAMPLES / "00000.png", "-o", tmp_path / "d", *M, "-q"),
                   f"-o {tmp_path / 'd' / '00000.vlae'}")
    assert os.listdir(tmp_path / "d") == []


# ------------------------------------------------------------ 5. info --model

def uninstalled_model(tmp_path) -> Path:
    import torch

    from vlaecodec import freeze
    from vlaecodec.config import preset
    from vlaecodec.vlae import VLAE

    torch.manual_seed(78)
    p = tmp_path / "private.npz"
    p.write_bytes(freeze.model_bytes(freeze.to_integer(VLAE(preset("vlae-tiny")).eval(), name="private-tiny")))
    return p


def test_info_takes_the_model_it_points_to(tmp_path):
    from vlaecodec.zoo import load_model

    model, arc = uninstalled_model(tmp_path), tmp_path / "p.vlae"
    ok(run("compress", SAMPLES, "-o", arc, "--model", model, "-q"))
    line = one_error_line(run("info", arc, "-q"), "not installed", "--model")
    r = ok(run("info", arc, "--model", model, "-q"))
    assert "model: private-tiny" in r.stdout and "images: 16" in r.stdout
    # A bare model file has no float checkpoint: the -ELBO line says it is skipped.
    assert "model -ELBO: skipped (model private-tiny has no float checkpoint to evaluate)" in r.stdout
    assert "Error" not in r.output and line
    # The wrong model: one line saying whose file it is.
    one_error_line(run("info", arc, "--model", load_model(TINY_NAME).path, "-q"), "p.vlae", "made with")
    one_error_line(run("info", arc, "--model", "no-such-model", "-q"), "no-such-model", code=2)
    # An installed model named with --model evaluates its float checkpoint as usual.
    ok(run("compress", SAMPLES, "-o", tmp_path / "t.vlae", *M, "-q"))
    r = ok(run("info", tmp_path / "t.vlae", *M, "-q"))
    assert "model -ELBO: " in r.stdout and "bits/dim" in r.stdout.split("model -ELBO: ")[1]


# ------------------------------------------------------------ 6. train: one-line errors, bars, -q

def test_train_freeze_of_a_missing_or_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"# not a checkpoint\n")
    for path, fragment in (("missing.pt", "missing.pt: No such file or directory"),
                           (bad, f"{bad}: not a readable checkpoint")):
        p = run_limited([sys.executable, "-m", "vlaecodec", "train", "freeze", str(path), "--name", "x",
                         "--out", str(tmp_path / "m")], cpu_s=300, hang_guard_s=1800,
                        capture_output=True, cwd=tmp_path)
        err = p.stderr.decode()
        assert p.returncode == 1 and "Traceback" not in err, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {fragment}"), err
    assert not (tmp_path / "m").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream,flags,drawn", [(io.StringIO, [], False), (_Terminal, [], True),
                                                (_Terminal, ["-q"], False)],
                         ids=["file", "terminal", "terminal-q"])
def test_train_draws_bars_only_on_a_terminal_and_not_with_q(tmp_path, monkeypatch, capsys, stream, flags, drawn):
    from vlaecodec import data, train

    train8 = (synthetic_digits(64, seed=21) * 255).astype(np.uint8)
    monkeypatch.setattr(data, "load_mnist", lambda split="train": train8)
    monkeypatch.setattr(data, "load_binarized_mnist", lambda split="valid": synthetic_digits(16, seed=22))
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    train.main(["--preset", "vlae-tiny", "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "32",
                "--threads", "1", *flags])
    assert (tmp_path / "run" / "model.pt").exists()
    text = err.getvalue()
    assert ("\r" in text and "epoch 1/1 [" in text) == drawn, text
    assert "epoch 1: valid -ELBO" in text   # the per-epoch line comes either way


# ------------------------------------------------------------ 7. eval: a time estimate, the model's data set

def test_eval_says_how_long_the_iwae_pass_will_take(monkeypatch):
    from vlaecodec import data, evaluate
    monkeypatch.setattr(data, "load_dataset", lambda name, split="test", source=None: synthetic_digits(10, seed=2))
    monkeypatch.setattr(evaluate, "_IWAE_ROWS", 8)   # IWAE batches of 8 // k = 4 images at k=2: three
    r = ok(run("eval", *M, "--iwae-k", "2"))
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("IWAE k=2 on 10 images: about ")]
    assert len(lines) == 1 and "more (the first 4 took " in lines[0], r.stderr
    assert "IWAE NLL (k=2)" in r.stdout
    r = ok(run("eval", *M, "--iwae-k", "2", "-q"))   # -q: quiet
    assert "IWAE k=" not in r.stderr
    r = ok(run("eval", *M, "--iwae-k", "2", "--limit", "4"))   # one batch: nothing left to estimate
    assert "IWAE k=" not in r.stderr and "IWAE NLL (k=2)" in r.stdout


def test_eval_defaults_to_the_data_set_the_model_was_trained_on(monkeypatch, tmp_path):
    import torch

    from vlaecodec import data, zoo
    from vlaecodec.evaluate import evaluation_inputs

    asked = []
    monkeypatch.setattr(data, "load_dataset",
                        lambda name, split="test", source=None: asked.append(name) or synthetic_gray(4, seed=1))
    # The shipped manifests record it: Fashion-MNIST for vlae-fashion-mnist-v1.
    assert evaluation_inputs("vlae-fashion-mnist-v1", None)[1]["dataset"] == "fashion-mnist"
    assert evaluation_inputs("vlae-mnist8-v1", None)[1]["dataset"] == "mnist"
    # The tiny 8-bit model, with a manifest that says fashion-mnist: eval takes it.
    monkeypatch.setitem(zoo.load_model(TINY8_NAME).manifest, "dataset", "fashion-mnist")
    r = ok(run("eval", "--model", TINY8_NAME, "--iwae-k", "0", "-q"))
    assert asked[-1] == "fashion-mnist" and "(fashion-mnist test)" in r.stdout
    ok(run("eval", "--model", TINY8_NAME, "--dataset", "mnist", "--iwae-k", "0", "-q"))   # --dataset still rules
    assert asked[-1] == "mnist"
    # A float checkpoint: its training record says.
    pt = Path(zoo.load_model(TINY8_NAME).path).with_suffix(".pt")
    ck = torch.load(pt, weights_only=True)
    ck["training"] = {"dataset": "fashion-mnist"}
    torch.save(ck, tmp_path / "f.pt")
    ok(run("eval", "--model", tmp_path / "f.pt", "--iwae-k", "0", "-q"))
    assert asked[-1] == "fashion-mnist"
    # A record that does not fit the model's pixels falls back to the default of its kind.
    monkeypatch.setitem(zoo.load_model(TINY8_NAME).manifest, "dataset", "binarized-mnist")
    ok(run("eval", "--model", TINY8_NAME, "--iwae-k", "0", "-q"))
    assert asked[-1] == "mnist"


# ------------------------------------------------------------ 8. JPEG in a folder, skipped files

def test_jpeg_in_a_folder_is_coded_like_a_jpeg_by_name_and_skipped_files_are_reported(tmp_path, tiny8_default):
    d = tmp_path / "in"
    d.mkdir()
    g = synthetic_gray(3, seed=9)
    Image.fromarray(g[0], "L").save(d / "a.jpg", quality=90)
    Image.fromarray(g[1], "L").save(d / "b.png")
    Image.fromarray(g[2], "L").save(d / "c.JPEG", quality=90)
    (d / "notes.txt").write_text("not an image")
    with Image.open(d / "a.jpg") as im:
        decoded_a = np.asarray(im).copy()   # what is coded: the JPEG's decoded pixels
    arc, out = tmp_path / "a.vlae", tmp_path / "out"
    r = ok(run("compress", d, "-o", arc, "-q"))
    assert r.stderr.count("note: ") == 2, r.stderr
    assert "skipped 1 file" in r.stderr and str(d / "notes.txt") in r.stderr
    assert "2 inputs are not PNG (JPEG; e.g. " in r.stderr and "decoded pixels are what is coded" in r.stderr
    assert vlaecodec_count(arc) == 3
    ok(run("decompress", arc, "-o", out, "-q"))
    assert sorted(os.listdir(out)) == ["a.png", "b.png", "c.png"]   # PNG files, named as such
    assert np.array_equal(read_back(out / "a.png")[1], decoded_a)
    assert np.array_equal(read_back(out / "b.png")[1], g[1])
    # The same JPEG given by name: the same pixels coded, the same note.
    r = ok(run("compress", d / "a.jpg", "-o", tmp_path / "one.vlae", "-q"))
    assert "1 input is not PNG (JPEG; e.g. " in r.stderr
    ok(run("decompress", tmp_path / "one.vlae", "-o", tmp_path / "one.png", "-q"))
    assert np.array_equal(read_back(tmp_path / "one.png")[1], decoded_a)


def vlaecodec_count(path: Path) -> int:
    import vlaecodec
    return vlaecodec.inspect(path.read_bytes()).count


def test_a_png_beside_a_jpeg_of_the_same_name_keeps_both(tmp_path, tiny8_default):
    from vlaecodec.images import png_names
    assert png_names(["a.jpg", "a.png", "b.gif", None], ["JPEG", "PNG", "GIF", "JPEG"]) == \
        ["a.jpg.png", "a.png", "b.png", None]
    d = tmp_path / "in"
    d.mkdir()
    g = synthetic_gray(2, seed=11)
    Image.fromarray(g[0], "L").save(d / "a.jpg")
    Image.fromarray(g[1], "L").save(d / "a.png")
    ok(run("compress", d, "-o", tmp_path / "x.vlae", "-q"))
    ok(run("decompress", tmp_path / "x.vlae", "-o", tmp_path / "out", "-q"))
    assert sorted(os.listdir(tmp_path / "out")) == ["a.jpg.png", "a.png"]


# ------------------------------------------------------------ 9. errors name the target, not the temp file

def _read_only_folder(monkeypatch):
    """mkstemp fails as in a read-only folder: EROFS, naming the temp file it tried."""
    import errno
    import tempfile

    def refuse(suffix=None, prefix=None, dir=None, text=False):
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(dir, f"{prefix}8yyxmglg{suffix}"))
    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def test_a_read_only_folder_error_names_the_target(tmp_path, monkeypatch, one_vlae):
    _read_only_folder(monkeypatch)
    target = tmp_path / "x.vlae"
    line = one_error_line(run("compress", SAMPLES, "-o", target, *M, "-q"))
    assert line == f"Error: {target}: Read-only file system"
    line = one_error_line(run("decompress", one_vlae, "-o", tmp_path / "one.png", "-q"))
    assert line == f"Error: {tmp_path / 'one.png'}: Read-only file system"
    ok(run("compress", SAMPLES, "-o", "-", *M, "-q"))   # stdout needs no temp file
    monkeypatch.undo()
    ok(run("compress", SAMPLES, "-o", target, *M, "-q"))
    _read_only_folder(monkeypatch)
    line = one_error_line(run("decompress", target, "-o", tmp_path / "out", "-q"))   # 16 images into a folder
    assert ".tmp" not in line and line.startswith(f"Error: {tmp_path / 'out'}{os.sep}")
    assert line.endswith(".png: Read-only file system")


def test_a_write_error_without_a_file_name_names_the_target(tmp_path, monkeypatch):
    import errno

    from vlaecodec import fileio

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fileio.os, "fsync", full)
    target = tmp_path / "x.vlae"
    line = one_error_line(run("compress", SAMPLES, "-o", target, *M, "-q"))
    assert line == f"Error: {target}: No space left on device"
    assert os.listdir(tmp_path) == []   # the temp file is gone too


def test_a_real_unwritable_folder_names_the_target(tmp_path):
    import tempfile
    for d in ("/sys", "/proc"):   # root may write anywhere else; these refuse new files
        try:
            fd, t = tempfile.mkstemp(dir=d)
        except OSError:
            break
        os.close(fd)
        os.unlink(t)
    else:
        pytest.skip("no folder here refuses a new file")
    line = one_error_line(run("compress", SAMPLES, "-o", f"{d}/x.vlae", *M, "-q"))
    assert line.startswith(f"Error: {d}/x.vlae: ") and ".tmp" not in line
