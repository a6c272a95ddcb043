"""Shared fixtures: a seeded tiny model installed as a test model, synthetic digits.

The tiny model is random-initialised (seeded): coding exactness and file handling do
not need a good model, and the suite must not depend on a network or on training.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

TINY_NAME = "vlae-tiny-test"


def tiny_float_model():
    from vlaecodec.config import preset
    from vlaecodec.vlae import VLAE

    torch.manual_seed(1234)
    model = VLAE(preset("vlae-tiny"))
    # Give the prior a non-trivial autoregressive part so AR paths are exercised.
    with torch.no_grad():
        for made in model.prior.steps:
            made.l2.weight.normal_(0, 0.05)
    return model.eval()


def _write_tiny_model(d: Path) -> None:
    """The tiny model as an installed model: integer .npz, float .pt, manifest."""
    from vlaecodec import freeze
    from vlaecodec.train import FORMAT_VERSION, library_versions

    model = tiny_float_model()
    fpath = d / f"{TINY_NAME}.pt"
    torch.save({"format_version": FORMAT_VERSION, "config": model.cfg.to_dict(),
                "state_dict": model.state_dict(), "training": {}, "versions": library_versions()}, fpath)
    bins = [4, 3, 2, 1, 1, 2, 1, 1]   # some dimensions sent directly, some not
    arrays = freeze.to_integer(model, name=TINY_NAME, direct_bins=bins)
    arrays = freeze.with_lossy_levels(arrays, freeze.lossy_tables(np.linspace(1.0, 0.1, model.cfg.latent_dim)))
    blob = freeze.model_bytes(arrays)
    ipath = d / f"{TINY_NAME}.npz"
    ipath.write_bytes(blob)
    (d / f"{TINY_NAME}.json").write_text(json.dumps({
        "name": TINY_NAME, "file": ipath.name, "sha256": hashlib.sha256(blob).hexdigest(),
        "float_file": fpath.name, "float_sha256": hashlib.sha256(fpath.read_bytes()).hexdigest(),
        "config": model.cfg.to_dict(), "description": "random tiny model for tests"}))


def pytest_configure(config):
    # Installed before any test imports the zoo; subprocesses inherit it too.
    d = Path(config._tmp_path_factory.mktemp("models")) if hasattr(config, "_tmp_path_factory") else None
    if d is None:
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="vlaecodec-test-models-"))
    _write_tiny_model(d)
    os.environ["VLAECODEC_MODELS"] = str(d)
    os.environ.setdefault("VLAECODEC_CACHE", str(d / "cache"))


@pytest.fixture(scope="session")
def tiny():
    from vlaecodec.zoo import load_model
    return load_model(TINY_NAME)


def synthetic_digits(n: int, seed: int = 0, size: int = 28) -> np.ndarray:
    """Binary 'digits': a few thick random strokes per image, deterministic per seed."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        for _ in range(rng.integers(2, 5)):
            (y0, x0), (y1, x1) = rng.integers(4, size - 4, size=(2, 2))
            for s in np.linspace(0, 1, 20):
                cy, cx = y0 + s * (y1 - y0), x0 + s * (x1 - x0)
                out[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= 2.5] = 1
    return out


@pytest.fixture(scope="session")
def digits():
    return synthetic_digits(12)
