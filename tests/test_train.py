"""Training loop: checkpoints it writes load through the zoo, and --resume continues."""
from __future__ import annotations

import numpy as np
import torch

from vlaecodec import data, train, zoo
from vlaecodec.config import preset

from conftest import synthetic_digits


def _fake_data(monkeypatch):
    train8 = (synthetic_digits(128, seed=21) * 255).astype(np.uint8)
    monkeypatch.setattr(data, "load_mnist", lambda split="train": train8)
    monkeypatch.setattr(data, "load_binarized_mnist", lambda split="valid": synthetic_digits(32, seed=22))


def test_train_writes_loadable_checkpoint_and_resumes(tmp_path, monkeypatch):
    _fake_data(monkeypatch)
    threads = torch.get_num_threads()
    cfg = preset("vlae-tiny")
    path = train.train(cfg, tmp_path, epochs=1, minutes=None, batch_size=32, threads=1, log=lambda s: None)
    loaded = zoo.load_float_checkpoint(path)  # weights_only load: no pickled objects inside
    assert loaded.cfg == cfg
    ck = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ck["state"]["epoch"] == 1 and ck["state"]["step"] == 4
    first = {k: v.clone() for k, v in loaded.state_dict().items()}

    train.train(cfg, tmp_path, epochs=2, minutes=None, batch_size=32, threads=1, resume=True, log=lambda s: None)
    ck = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ck["state"]["epoch"] == 2 and ck["state"]["step"] == 8
    assert len(ck["state"]["history"]) == 2 and all(np.isfinite(h["neg_elbo"]) for h in ck["state"]["history"])
    again = zoo.load_float_checkpoint(path)
    assert any(not torch.equal(first[k], v) for k, v in again.state_dict().items())
    torch.set_num_threads(threads)


def test_resume_refuses_a_different_config(tmp_path, monkeypatch):
    import dataclasses

    import pytest

    _fake_data(monkeypatch)
    cfg = preset("vlae-tiny")
    train.train(cfg, tmp_path, epochs=1, minutes=None, batch_size=64, threads=1, log=lambda s: None)
    with pytest.raises(SystemExit, match="config differs"):
        train.train(dataclasses.replace(cfg, latent_dim=4), tmp_path, epochs=2, minutes=None,
                    batch_size=64, threads=1, resume=True, log=lambda s: None)


def test_resume_from_the_shippable_checkpoint_alone(tmp_path, monkeypatch):
    """Between sessions only model.pt (small) is kept: --resume continues from its
    averaged weights and its epoch/step counters, with a new optimizer."""
    _fake_data(monkeypatch)
    cfg = preset("vlae-tiny")
    path = train.train(cfg, tmp_path, epochs=1, minutes=None, batch_size=32, threads=1, log=lambda s: None)
    before = {k: v.clone() for k, v in zoo.load_float_checkpoint(path).state_dict().items()}
    (tmp_path / "last.pt").unlink()
    logs: list[str] = []
    train.train(cfg, tmp_path, epochs=2, minutes=None, batch_size=32, threads=1, resume=True, log=logs.append)
    assert any("model.pt" in m and "epoch 1" in m for m in logs)
    ck = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ck["state"]["epoch"] == 2 and ck["state"]["step"] == 8 and len(ck["state"]["history"]) == 2
    after = zoo.load_float_checkpoint(path).state_dict()
    assert any(not torch.equal(before[k], v) for k, v in after.items())
