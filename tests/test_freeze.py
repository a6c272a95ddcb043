"""freeze.py: calibration of the coding tables and the shipped-model writer
(`vlaecodec train freeze`), on the tiny model with synthetic data."""
from __future__ import annotations

import functools
import hashlib
import json
import re

import numpy as np
import pytest
import torch

import vlaecodec
from conftest import synthetic_digits, tiny_float_model
from vlaecodec import data, freeze, train
from vlaecodec.intnet import IntVLAE
from vlaecodec.zoo import load_float_checkpoint, load_model_file


@pytest.fixture(scope="module")
def valid():
    return synthetic_digits(70, seed=31)


def test_calibrate_picks_the_cheapest_measured_tables(valid):
    lines: list[str] = []
    arrays = freeze.calibrate(tiny_float_model(), "cal", valid, n_kl=32, n_direct=8, n_chain=30, log=lines.append)
    meta = json.loads(bytes(arrays["meta"]).decode())
    cal = meta["calibration"]
    sizes = {m.group(1): float(m.group(2)) for m in
             (re.match(r"direct bins (.*): \d+ dims sent, ([\d.]+) bytes/image", ln) for ln in lines) if m}
    assert len(sizes) >= 10
    assert cal["direct_rule"] in sizes
    assert sizes[cal["direct_rule"]] == min(sizes.values())
    rates = {int(m.group(1)): float(m.group(2)) for m in
             (re.match(r"latent grid 2\*\*(-?\d+): bits-back rate ([\d.]+)", ln) for ln in lines) if m}
    assert set(rates) == {-2, -3, -4}
    assert cal["latent_step_log2"] in rates
    assert rates[cal["latent_step_log2"]] <= min(rates.values()) + 1e-5
    net = IntVLAE(arrays)
    assert net.grid.step_log2 == cal["latent_step_log2"]
    assert len(net.direct_bins) == net.cfg.latent_dim and all(b >= 1 for b in net.direct_bins)


def test_freeze_writes_an_installable_model(tmp_path, monkeypatch, valid):
    test = synthetic_digits(8, seed=32)
    monkeypatch.setattr(data, "load_dataset", lambda name, split="test", source=None: valid if split == "valid" else test)
    monkeypatch.setattr(freeze, "calibrate", functools.partial(freeze.calibrate, n_kl=32, n_direct=6, n_chain=20))
    model = tiny_float_model()
    ck = tmp_path / "model.pt"
    train.write_model_checkpoint(model, ck, {"epoch": 1, "step": 1, "wall_s": 1.0, "history": []})
    out = tmp_path / "models"
    path = freeze.freeze(ck, "frozen-test", out, iwae_k=2, log=lambda s: None)
    assert path.parent == out and path.suffix == ".npz"
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    assert path.name == f"frozen-test-{digest[:8]}.npz"
    manifest = json.loads((out / "frozen-test.json").read_text())
    assert manifest["name"] == "frozen-test" and manifest["file"] == path.name and manifest["sha256"] == digest
    fpath = out / manifest["float_file"]
    assert hashlib.sha256(fpath.read_bytes()).hexdigest() == manifest["float_sha256"]
    assert manifest["metrics"]["test_images"] == len(test)
    assert manifest["metrics"]["test_chained_bpd"] > 0 and manifest["coding"]["latent_cells"] > 1
    lm = load_model_file(path, expected_sha256=digest, manifest=manifest)
    f = load_float_checkpoint(fpath, expected_sha256=manifest["float_sha256"])
    want = model.state_dict()
    assert all(torch.equal(f.state_dict()[k], want[k]) for k in want)
    # The written model codes files (and its manifest's file size is what compress gives).
    x = list(test)
    blob = vlaecodec.compress(x, lm)
    assert len(blob) == manifest["metrics"]["test_chained_file_bytes"]
    assert all(np.array_equal(a, b) for a, b in zip(vlaecodec.decompress(blob, lm).images, x))


def test_train_freeze_subcommand_routes_to_freeze(monkeypatch, tmp_path):
    got = {}

    def fake(checkpoint, name, out_dir, **kw):
        got.update(checkpoint=checkpoint, name=name, out_dir=out_dir, **kw)
        return out_dir / "x.npz"
    monkeypatch.setattr(freeze, "freeze", fake)
    train.main(["freeze", str(tmp_path / "m.pt"), "--name", "n1", "--out", str(tmp_path), "--iwae-k", "3",
                "--test-limit", "5"])
    assert got["name"] == "n1" and got["iwae_k"] == 3 and got["test_limit"] == 5
    assert str(got["checkpoint"]) == str(tmp_path / "m.pt") and str(got["out_dir"]) == str(tmp_path)
    assert got["dataset"] == "binarized-mnist"


def test_freeze_refuses_a_non_checkpoint(tmp_path):
    p = tmp_path / "junk.pt"
    torch.save({"hello": 1}, p)
    with pytest.raises(ValueError, match="not a model checkpoint"):
        freeze.freeze(p, "x", tmp_path / "out", log=lambda s: None)
