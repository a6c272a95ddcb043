"""Model zoo: hash-checked loading, clear errors for unknown or broken models."""
from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch

from conftest import TINY_NAME
from vlaecodec import zoo
from vlaecodec.config import preset
from vlaecodec.train import FORMAT_VERSION
from vlaecodec.vlae import VLAE
from vlaecodec.zoo import ModelError, find_by_hash, load_checkpoint, load_model


def _checkpoint(seed=0, **extra):
    torch.manual_seed(seed)
    m = VLAE(preset("vlae-tiny"))
    return m, {"format_version": FORMAT_VERSION, "config": m.cfg.to_dict(), "state_dict": m.state_dict(),
               "training": {}, **extra}


def _write(path, obj):
    torch.save(obj, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkpoint_loads(tmp_path):
    m, ck = _checkpoint(1)
    path = tmp_path / "net.pt"
    digest = _write(path, ck)
    lm = load_checkpoint(path, expected_sha256=digest)
    assert lm.sha256 == digest and lm.name == "net" and lm.path == path
    assert lm.config == m.cfg
    assert not lm.model.training
    got, want = lm.model.state_dict(), m.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert lm.coding == {}


def test_coding_tables_survive(tmp_path):
    _, ck = _checkpoint(2, coding={"bins": [3, 5]})
    path = tmp_path / "c.pt"
    _write(path, ck)
    assert load_checkpoint(path).coding == {"bins": [3, 5]}


def test_wrong_sha256_refused(tmp_path):
    _, ck = _checkpoint()
    path = tmp_path / "net.pt"
    digest = _write(path, ck)
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(ModelError, match="sha256"):
        load_checkpoint(path, expected_sha256=wrong)


def test_tampered_installed_model_refused(tmp_path, monkeypatch):
    """A manifest whose checkpoint changed after it was written: load_model refuses it."""
    _, ck = _checkpoint(3)
    d = tmp_path / "models"
    d.mkdir()
    digest = _write(d / "tampered.pt", ck)
    (d / "tampered.json").write_text(json.dumps({"name": "tampered-test", "file": "tampered.pt",
                                                 "sha256": digest}))
    _, ck2 = _checkpoint(4)
    _write(d / "tampered.pt", ck2)
    monkeypatch.setenv("VLAECODEC_MODELS", os.environ["VLAECODEC_MODELS"] + os.pathsep + str(d))
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


def test_load_model_by_path(tiny):
    lm = load_model(str(tiny.path))
    assert lm.sha256 == tiny.sha256


def test_find_by_hash(tiny):
    for n in (6, 12, 64):
        assert find_by_hash(tiny.sha256[:n]).sha256 == tiny.sha256
    assert find_by_hash(tiny.sha256[:6], name=TINY_NAME).name == TINY_NAME
    with pytest.raises(ModelError, match="not installed"):
        find_by_hash(tiny.sha256[:6], name="other-name")
    other = "".join("0" if ch != "0" else "1" for ch in tiny.sha256[:6])
    with pytest.raises(ModelError, match=other):
        find_by_hash(other)


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "text"])
def test_unreadable_file_raises_model_error(tmp_path, kind):
    _, ck = _checkpoint()
    good = tmp_path / "good.pt"
    _write(good, ck)
    raw = {"random": os.urandom(2000), "truncated": good.read_bytes()[:1000], "empty": b"",
           "text": b"hello, I am not a checkpoint\n"}[kind]
    path = tmp_path / f"{kind}.pt"
    path.write_bytes(raw)
    with pytest.raises(ModelError, match=f"{kind}.pt"):
        load_checkpoint(path)


def test_missing_file_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        load_checkpoint(tmp_path / "absent.pt")


def test_unsupported_format_version(tmp_path):
    _, ck = _checkpoint()
    ck["format_version"] = 99
    path = tmp_path / "v99.pt"
    _write(path, ck)
    with pytest.raises(ModelError, match="format 99"):
        load_checkpoint(path)


@pytest.mark.parametrize("kind", ["not_a_dict", "no_config", "bad_config", "wrong_weights"])
def test_malformed_checkpoint_raises_model_error(tmp_path, kind):
    _, ck = _checkpoint()
    big = VLAE(preset("vlae-mnist-factorized")).state_dict() if kind == "wrong_weights" else None
    obj = {"not_a_dict": [1, 2, 3],
           "no_config": {"format_version": FORMAT_VERSION, "state_dict": ck["state_dict"]},
           "bad_config": {**ck, "config": {"latent_dim": 8, "colour": "blue"}},
           "wrong_weights": {**ck, "state_dict": big}}[kind]
    path = tmp_path / f"{kind}.pt"
    _write(path, obj)
    with pytest.raises(ModelError):
        load_checkpoint(path)
