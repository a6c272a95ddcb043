"""Tests on the shipped checkpoints (marked slow: they load real models).

They use the bundled sample digits (samples/digits, binarized MNIST test images), so
they need no dataset download.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vlaecodec
from vlaecodec import zoo
from vlaecodec.evaluate import evaluate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples" / "digits").glob("*.png"))
SHIPPED = [m for m in zoo.list_manifests() if Path(m["_dir"]).resolve() == zoo.model_dirs()[0]]
GRAY_SAMPLES = {"vlae-mnist8-v1": "mnist8", "vlae-fashion-mnist-v1": "fashion"}


def _samples() -> np.ndarray:
    return np.stack([(np.asarray(Image.open(p).convert("L")) > 127).astype(np.uint8) for p in SAMPLES])


@pytest.fixture(scope="module")
def default():
    if not any(m["name"] == zoo.DEFAULT_MODEL for m in SHIPPED):
        pytest.skip("default checkpoint not shipped")
    return zoo.load_model(zoo.DEFAULT_MODEL)


def test_shipped_manifests_match_files():
    assert SHIPPED, "no shipped model manifests"
    for m in SHIPPED:
        path = Path(m["_dir"]) / m["file"]
        assert path.stat().st_size <= 20e6
        loaded = zoo.load_model(m["name"])
        assert loaded.sha256 == m["sha256"]
        assert m["file"].startswith(m["name"] + "-" + m["sha256"][:8])


def test_tampered_checkpoint_is_refused(tmp_path, default):
    raw = bytearray(default.path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    bad = tmp_path / default.path.name
    bad.write_bytes(bytes(raw))
    with pytest.raises(zoo.ModelError, match="sha256"):
        zoo.load_model_file(bad, expected_sha256=default.sha256)


def test_shipped_models_are_integer_models_with_their_float_checkpoints():
    for m in SHIPPED:
        assert m["file"].endswith(".npz"), m["name"]
        fpath = Path(m["_dir"]) / m["float_file"]
        assert fpath.suffix == ".pt"
        model = zoo.load_float_checkpoint(fpath, expected_sha256=m["float_sha256"])
        assert model.cfg == zoo.load_model(m["name"]).config


def test_default_model_is_trained_and_uses_z(default):
    r = evaluate(default, _samples())
    # A random model sits near 550 nats; a trained one near 80-90 on MNIST digits.
    assert 40 < r["neg_elbo_nats"] < 100
    assert r["kl_nats"] > 3  # the latent carries information (local decoder)


def test_default_model_round_trip_and_rate(default):
    x = _samples()
    blob = vlaecodec.compress(list(x), default)
    out = vlaecodec.decompress(blob)  # model found from the header's hash
    assert all(np.array_equal(a, b) for a, b in zip(out.images, x))
    elbo_bytes = evaluate(default, x)["neg_elbo_nats"] * len(x) / np.log(2) / 8
    # 16 images is a short chain (the first is coded without bits back), so allow 25%.
    assert len(blob) < 1.25 * elbo_bytes + 16


def test_default_model_single_image_files_are_small(default):
    sizes = [len(vlaecodec.compress([im], default)) for im in _samples()]
    assert np.mean(sizes) <= 32, sizes


def test_manifest_records_measurements(default):
    m = default.manifest
    for key in ("test_neg_elbo_nats", "test_kl_nats", "test_chained_bpd"):
        assert np.isfinite(m["metrics"][key])
    iwae = m["metrics"].get("test_iwae_nll_nats")   # optional (freeze --iwae-k 0 skips it)
    assert iwae is None or iwae < m["metrics"]["test_neg_elbo_nats"]
    # The integer model's real chained file on the test set stays close to the float -ELBO.
    assert m["metrics"]["test_chained_over_float_elbo"] < 1.02
    assert m["training"]["command"].startswith("vlaecodec train")
    json.dumps(m)


def _gray_samples(folder: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted((ROOT / "samples" / folder).glob("*.png"))])


@pytest.mark.parametrize("name", list(GRAY_SAMPLES))
def test_8bit_models_code_their_samples(name):
    if not any(m["name"] == name for m in SHIPPED):
        pytest.skip(f"{name} not shipped")
    loaded = zoo.load_model(name)
    assert loaded.config.pixel_levels == 256
    x = _gray_samples(GRAY_SAMPLES[name])
    blob = vlaecodec.compress(list(x), loaded)
    out = vlaecodec.decompress(blob)
    assert all(np.array_equal(a, b) for a, b in zip(out.images, x)) and out.modes == ["L"] * len(x)
    r = evaluate(loaded, x)
    assert r["kl_nats"] > 3
    # 16 images: a short chain (the first coded without bits back): within 10% of the -ELBO.
    assert len(blob) < 1.10 * r["neg_elbo_nats"] * len(x) / np.log(2) / 8 + 16
    m = loaded.manifest
    assert m["metrics"]["test_chained_over_float_elbo"] < 1.005
