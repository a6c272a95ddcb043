"""Tests on the shipped models: the files are the ones their manifests name, and the
manifests' numbers are recomputed, not read back.

Fast (in `make test`): sha256 of every shipped file; every number a manifest derives
from others or from its model file; the default models' real bits-back rate on the
bundled sample images (samples/, binarized MNIST and 8-bit test images, so no dataset
download) against the float -ELBO on the same images, bounded tightly around the ratio
the manifest claims. Slow: the same for the other shipped models, the full test-set
recompute (needs the dataset in the user's cache; skipped otherwise) and the longer
sample round trips.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import conftest
import vlaecodec
from vlaecodec import data, zoo
from vlaecodec.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples" / "digits").glob("*.png"))
SHIPPED = [m for m in zoo.list_manifests() if Path(m["_dir"]).resolve() == zoo.model_dirs()[0]]
GRAY_SAMPLES = {"vlae-mnist8-v1": "mnist8", "vlae-fashion-mnist-v1": "fashion"}
DEFAULTS = set(zoo.DEFAULT_MODELS.values())
# The sample rate checks: how often the 16 sample images are repeated in the chain. The
# binary digits cost ~120 bits each, so 16 x 16 images; the 8-bit ones ~800-4000 bits
# each, so 16 x 2 (about as much coding work; each check takes a few seconds).
REPEATS = {2: 16, 256: 2}
# |real / float-ELBO on the samples - the manifest's ratio| allowed. The float side is a
# single-sample -ELBO of 250 (binary) or 30 (8-bit) images: its standard error is
# ~0.1-0.2% (seeds 0-2 measured within 0.4% of the manifest, seed 0 within 0.22%), so
# 0.5% never fails by chance, while a codec that got 1% worse fails.
RATE_TOLERANCE = 0.005


def _samples() -> np.ndarray:
    return np.stack([(np.asarray(Image.open(p).convert("L")) > 127).astype(np.uint8) for p in SAMPLES])


def _gray_samples(folder: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted((ROOT / "samples" / folder).glob("*.png"))])


# The bundled samples of each dataset a shipped model may be measured on.
DATASET_SAMPLES = {"binarized-mnist": _samples, "mnist": lambda: _gray_samples("mnist8"),
                   "fashion-mnist": lambda: _gray_samples("fashion")}


def _samples_for(dataset: str) -> np.ndarray:
    if dataset not in DATASET_SAMPLES:
        pytest.skip(f"no bundled samples of {dataset}")
    return DATASET_SAMPLES[dataset]()


def _slow_unless_default(names):
    return [n if n in DEFAULTS else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def default():
    if not any(m["name"] == zoo.DEFAULT_MODEL for m in SHIPPED):
        pytest.skip("default checkpoint not shipped")
    return zoo.load_model(zoo.DEFAULT_MODEL)


# ------------------------------------------------------------ fast: files and manifests

def test_shipped_files_are_the_ones_their_manifests_name():
    assert {m["name"] for m in SHIPPED} >= DEFAULTS, "the default models are not shipped"
    for m in SHIPPED:
        d = Path(m["_dir"])
        path, fpath = d / m["file"], d / m["float_file"]
        assert _sha256(path) == m["sha256"], m["name"]
        assert _sha256(fpath) == m["float_sha256"], m["name"]
        assert path.stat().st_size <= 20e6 and fpath.stat().st_size <= 20e6
        assert m["file"] == f"{m['name']}-{m['sha256'][:8]}.npz"
        assert fpath.name.endswith(f"-{m['float_sha256'][:8]}.pt")   # may be another model's (v2 is v1's)
        assert zoo.load_model(m["name"]).sha256 == m["sha256"]


def test_tampered_checkpoint_is_refused(tmp_path, default):
    raw = bytearray(default.path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    bad = tmp_path / default.path.name
    bad.write_bytes(bytes(raw))
    with pytest.raises(zoo.ModelError, match="sha256"):
        zoo.load_model_file(bad, expected_sha256=default.sha256)


def test_manifest_numbers_agree_with_each_other_and_with_the_model_file():
    """What a manifest derives (bits/dim, ratios) or copies from its model file (config,
    coding set-up) is recomputed here; a hand-edited manifest fails."""
    for m in SHIPPED:
        net = zoo.load_model(m["name"]).net
        meta = net.meta
        dims = net.cfg.image_size ** 2
        t = m["metrics"]
        assert t["test_images"] == 10_000, m["name"]            # the whole test split
        assert t["test_neg_elbo_bpd"] == pytest.approx(t["test_neg_elbo_nats"] / (dims * math.log(2)), rel=1e-12)
        assert t["test_chained_bpd"] == pytest.approx(8 * t["test_chained_file_bytes"] / (t["test_images"] * dims),
                                                      rel=1e-12)
        assert t["test_chained_over_float_elbo"] == pytest.approx(t["test_chained_bpd"] / t["test_neg_elbo_bpd"],
                                                                  rel=1e-12)
        assert 0 < t["test_kl_nats"] < t["test_neg_elbo_nats"]
        iwae = t.get("test_iwae_nll_nats")   # optional (freeze --iwae-k 0 skips it)
        assert iwae is None or iwae < t["test_neg_elbo_nats"]
        assert m["config"] == meta["config"] and m["format_version"] == meta["format_version"]
        assert m["prior"] == net.cfg.prior and m["receptive_rows"] == net.cfg.receptive_rows
        assert m["dataset"] in data.DATASETS and m["dataset"].startswith("binarized-") == (net.cfg.pixel_levels == 2)
        c = m["coding"]
        assert {k: c[k] for k in meta["calibration"]} == meta["calibration"]
        assert c["direct_dims_sent"] == sum(b > 1 for b in meta["direct"]["bins"])
        assert c["latent_cells"] == 2 * meta["latent"]["max_index"] + 1
        if "lossy_bits_per_level" in c:
            assert c["lossy_bits_per_level"] == [sum(int(b).bit_length() - 1 for b in lv)
                                                 for lv in meta.get("lossy", {}).get("levels", [])]
        assert m["training"]["command"].startswith("vlaecodec train")


def test_shipped_models_are_integer_models_with_their_float_checkpoints():
    for m in SHIPPED:
        assert m["file"].endswith(".npz"), m["name"]
        fpath = Path(m["_dir"]) / m["float_file"]
        model = zoo.load_float_checkpoint(fpath, expected_sha256=m["float_sha256"])
        assert model.cfg == zoo.load_model(m["name"]).config


# ------------------------------------------------------------ the real rate, recomputed

@pytest.mark.parametrize("name", _slow_unless_default(sorted(m["name"] for m in SHIPPED)))
def test_real_rate_on_the_samples_matches_the_manifest(name):
    """The bits-back part of a chain of the sample images (repeated) costs what the
    manifest's test-set ratio says: real bits / float -ELBO on the same images. The
    directly coded start is left out of both sides (a short chain's start is a large
    share of it; 10,000 images hide it)."""
    loaded = zoo.load_model(name)
    levels = loaded.config.pixel_levels
    x = np.tile(_samples_for(loaded.manifest["dataset"]), (REPEATS[levels], 1, 1))
    st: dict = {}
    vlaecodec.compress(list(x), loaded, stats=st, jobs=1)
    assert st["chains"] == 1 and st["batches"] >= 3
    nd = st["direct_images"]
    real_bits = 8 * (st["payload_bytes"] - st["direct_bytes"])
    elbo_bits = evaluate(loaded, x[nd:])["neg_elbo_nats"] * (len(x) - nd) / math.log(2)
    ratio = real_bits / elbo_bits
    claimed = loaded.manifest["metrics"]["test_chained_over_float_elbo"]
    assert abs(ratio - claimed) <= RATE_TOLERANCE, (ratio, claimed)


def _test_set(name: str, monkeypatch) -> tuple[dict, np.ndarray]:
    """(manifest, the test split it was measured on), from the user's dataset cache
    (the tests' own cache is empty); skips if the dataset is not there."""
    m = next(m for m in SHIPPED if m["name"] == name)
    if conftest.USER_DATA_CACHE is None:
        pytest.skip("no user dataset cache")
    monkeypatch.setenv("VLAECODEC_CACHE", str(conftest.USER_DATA_CACHE))
    try:
        x = data.load_dataset(m["dataset"], "test")
    except data.DataError as e:
        pytest.skip(f"{m['dataset']} not in the cache ({e})")
    assert len(x) == m["metrics"]["test_images"]
    return m, x


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(m["name"] for m in SHIPPED))
def test_manifest_test_set_elbo_recomputes(name, monkeypatch):
    """The manifest's float -ELBO and KL, recomputed on the whole test split (float32
    terms summed in float64; measured agreement ~1e-8 relative)."""
    m, x = _test_set(name, monkeypatch)
    r = evaluate(zoo.load_model(name), x)
    assert r["neg_elbo_nats"] == pytest.approx(m["metrics"]["test_neg_elbo_nats"], rel=1e-6)
    assert r["kl_nats"] == pytest.approx(m["metrics"]["test_kl_nats"], rel=1e-5)




@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(m["name"] for m in SHIPPED if m["config"]["pixel_levels"] == 2))
def test_manifest_test_set_file_size_recomputes(name, monkeypatch):
    """The chained file of the whole test split is exactly the size the manifest says
    (integer coding: the same bytes on every machine). Binary models only: an 8-bit
    model's 10,000 images take 5-10 minutes of coding."""
    m, x = _test_set(name, monkeypatch)
    assert len(vlaecodec.compress(list(x), zoo.load_model(name))) == m["metrics"]["test_chained_file_bytes"]


# ------------------------------------------------------------ the default model on the samples

def test_default_model_is_trained_and_uses_z(default):
    r = evaluate(default, _samples())
    # A random model sits near 550 nats; a trained one near 80-90 on MNIST digits.
    assert 40 < r["neg_elbo_nats"] < 100
    assert r["kl_nats"] > 3  # the latent carries information (local decoder)


@pytest.mark.slow
def test_default_model_round_trip_and_rate(default):
    x = _samples()
    blob = vlaecodec.compress(list(x), default)
    out = vlaecodec.decompress(blob)  # model found from the header's hash
    assert all(np.array_equal(a, b) for a, b in zip(out.images, x))
    elbo_bytes = evaluate(default, x)["neg_elbo_nats"] * len(x) / np.log(2) / 8
    # 16 images is a short chain (the first is coded without bits back), so allow 25%.
    assert len(blob) < 1.25 * elbo_bytes + 16


@pytest.mark.slow
def test_default_model_single_image_files_are_small(default):
    sizes = [len(vlaecodec.compress([im], default)) for im in _samples()]
    assert np.mean(sizes) <= 32, sizes


@pytest.mark.slow
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
