"""Model zoo: hash-checked loading of integer models (.npz) and float checkpoints (.pt),
clear errors for unknown or broken models."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch

from conftest import TINY_NAME, synthetic_digits, tiny_float_model
from vlaecodec import freeze, zoo
from vlaecodec.config import preset
from vlaecodec.intnet import IntVLAE
from vlaecodec.train import FORMAT_VERSION
from vlaecodec.vlae import VLAE
from vlaecodec.zoo import (LoadedModel, ModelError, find_by_hash, load_float_checkpoint, load_model,
                           load_model_file)


def _float(seed=0):
    torch.manual_seed(seed)
    return VLAE(preset("vlae-tiny")).eval()


def _checkpoint(seed=0, **extra):
    m = _float(seed)
    return m, {"format_version": FORMAT_VERSION, "config": m.cfg.to_dict(), "state_dict": m.state_dict(),
               "training": {}, **extra}


def _write_pt(path, obj):
    torch.save(obj, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_npz(path, model, name=""):
    blob = freeze.model_bytes(freeze.to_integer(model, name=name))
    path.write_bytes(blob)
    return hashlib.sha256(blob).hexdigest()


# ------------------------------------------------------------------ integer models

def test_integer_model_file_loads(tmp_path):
    m = _float(1)
    path = tmp_path / "net.npz"
    digest = _write_npz(path, m, name="net-one")
    lm = load_model_file(path, expected_sha256=digest)
    assert isinstance(lm, LoadedModel) and isinstance(lm.net, IntVLAE)
    assert lm.sha256 == digest and lm.path == path
    assert lm.name == "net-one"                         # from the file's metadata
    assert load_model_file(path, name="given").name == "given"
    assert lm.config == m.cfg
    assert lm.manifest == {}


def test_model_without_a_name_is_named_after_its_file(tmp_path):
    path = tmp_path / "plain.npz"
    _write_npz(path, _float(2))
    assert load_model_file(path).name == "plain"


def test_wrong_sha256_refused(tmp_path):
    path = tmp_path / "net.npz"
    digest = _write_npz(path, _float())
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(ModelError, match="sha256"):
        load_model_file(path, expected_sha256=wrong)
    pt = tmp_path / "net.pt"
    _write_pt(pt, _checkpoint()[1])
    with pytest.raises(ModelError, match="sha256"):
        load_float_checkpoint(pt, expected_sha256=wrong)


def test_tampered_installed_model_refused(tmp_path, monkeypatch):
    """A manifest whose model file changed after it was written: load_model refuses it."""
    d = tmp_path / "models"
    d.mkdir()
    digest = _write_npz(d / "tampered.npz", _float(3))
    (d / "tampered.json").write_text(json.dumps({"name": "tampered-test", "file": "tampered.npz",
                                                 "sha256": digest}))
    _write_npz(d / "tampered.npz", _float(4))
    monkeypatch.setenv("VLAECODEC_MODELS", os.environ["VLAECODEC_MODELS"] + os.pathsep + str(d))
    assert d in zoo.model_dirs()
    with pytest.raises(ModelError, match="sha256"):
        load_model("tampered-test")


def test_unknown_model_lists_available():
    with pytest.raises(ModelError) as e:
        load_model("no-such-model")
    msg = str(e.value)
    assert "no-such-model" in msg and "available" in msg and TINY_NAME in msg


def test_tiny_model_by_name(tiny):
    assert tiny.name == TINY_NAME
    assert load_model(TINY_NAME) is tiny
    assert tiny.manifest["sha256"] == tiny.sha256 == hashlib.sha256(tiny.path.read_bytes()).hexdigest()
    assert tiny.config == preset("vlae-tiny")
    assert tiny.path.suffix == ".npz"


def test_load_model_by_path(tiny):
    lm = load_model(str(tiny.path))
    assert lm.sha256 == tiny.sha256
    x = synthetic_digits(2)
    assert np.array_equal(lm.net.posterior(x)[0], tiny.net.posterior(x)[0])


def test_find_by_hash(tiny):
    for n in (6, 12, 64):
        assert find_by_hash(tiny.sha256[:n]).sha256 == tiny.sha256
    assert find_by_hash(tiny.sha256[:6], name=TINY_NAME).name == TINY_NAME
    with pytest.raises(ModelError, match="not installed"):
        find_by_hash(tiny.sha256[:6], name="other-name")
    other = "".join("0" if ch != "0" else "1" for ch in tiny.sha256[:6])
    with pytest.raises(ModelError, match=other):
        find_by_hash(other)


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "text", "zip_of_junk"])
def test_unreadable_integer_model_raises_model_error(tmp_path, kind):
    good = tmp_path / "good.npz"
    _write_npz(good, _float())
    raw = {"random": np.random.default_rng(2000).bytes(2000), "truncated": good.read_bytes()[:1000], "empty": b"",
           "text": b"hello, I am not a model\n", "zip_of_junk": None}[kind]
    path = tmp_path / f"{kind}.npz"
    if raw is None:
        np.savez(path, a=np.arange(3))   # a valid .npz, but not a model
    else:
        path.write_bytes(raw)
    with pytest.raises(ModelError, match=f"{kind}.npz: not a vlaecodec integer model"):
        load_model_file(path)


def test_float_checkpoint_given_as_coding_model_gets_a_hint(tmp_path):
    pt = tmp_path / "run.pt"
    _write_pt(pt, _checkpoint()[1])
    with pytest.raises(ModelError, match="freeze it first"):
        load_model_file(pt)
    with pytest.raises(ModelError, match="freeze it first"):
        load_model(str(pt))


def test_missing_file_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        load_model_file(tmp_path / "absent.npz")
    with pytest.raises(ModelError, match="cannot read"):
        load_float_checkpoint(tmp_path / "absent.pt")


def test_damaged_tables_refused(tmp_path):
    arrays = freeze.to_integer(_float())
    arrays["lut.phi"] = arrays["lut.phi"][::-1].copy()
    path = tmp_path / "bad.npz"
    path.write_bytes(freeze.model_bytes(arrays))
    with pytest.raises(ModelError, match="not a CDF"):
        load_model_file(path)


# ------------------------------------------------------------------ float checkpoints

def test_float_checkpoint_loads(tmp_path):
    m, ck = _checkpoint(1)
    path = tmp_path / "net.pt"
    digest = _write_pt(path, ck)
    model = load_float_checkpoint(path, expected_sha256=digest)
    assert isinstance(model, VLAE) and not model.training
    assert model.cfg == m.cfg
    got, want = model.state_dict(), m.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_installed_model_gives_its_float_model(tiny):
    f = tiny.float_model()
    assert isinstance(f, VLAE) and tiny.float_model() is f   # loaded once
    want = tiny_float_model().state_dict()
    assert all(torch.equal(f.state_dict()[k], want[k]) for k in want)


def test_float_model_needs_a_recorded_checkpoint(tmp_path, tiny):
    lm = load_model_file(tiny.path)          # no manifest: no float file known
    with pytest.raises(ModelError, match="no float checkpoint"):
        lm.float_model()
    bad = LoadedModel(name="x", sha256=tiny.sha256, net=tiny.net, path=tiny.path,
                      manifest={"float_file": tiny.manifest["float_file"], "float_sha256": "0" * 64})
    with pytest.raises(ModelError, match="sha256"):
        bad.float_model()


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "text"])
def test_unreadable_float_checkpoint_raises_model_error(tmp_path, kind):
    good = tmp_path / "good.pt"
    _write_pt(good, _checkpoint()[1])
    raw = {"random": np.random.default_rng(2000).bytes(2000), "truncated": good.read_bytes()[:1000], "empty": b"",
           "text": b"hello, I am not a checkpoint\n"}[kind]
    path = tmp_path / f"{kind}.pt"
    path.write_bytes(raw)
    with pytest.raises(ModelError, match=f"{kind}.pt"):
        load_float_checkpoint(path)


def test_unsupported_format_version(tmp_path):
    _, ck = _checkpoint()
    ck["format_version"] = 99
    path = tmp_path / "v99.pt"
    _write_pt(path, ck)
    with pytest.raises(ModelError, match="format 99"):
        load_float_checkpoint(path)


@pytest.mark.parametrize("kind", ["not_a_dict", "no_config", "bad_config", "wrong_weights"])
def test_malformed_checkpoint_raises_model_error(tmp_path, kind):
    _, ck = _checkpoint()
    big = VLAE(preset("vlae-mnist-factorized")).state_dict() if kind == "wrong_weights" else None
    obj = {"not_a_dict": [1, 2, 3],
           "no_config": {"format_version": FORMAT_VERSION, "state_dict": ck["state_dict"]},
           "bad_config": {**ck, "config": {"latent_dim": 8, "colour": "blue"}},
           "wrong_weights": {**ck, "state_dict": big}}[kind]
    path = tmp_path / f"{kind}.pt"
    _write_pt(path, obj)
    with pytest.raises(ModelError):
        load_float_checkpoint(path)
