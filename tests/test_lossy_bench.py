"""The lossy benchmark's machinery (bench/lossy.py) on a few synthetic digits: peers'
byte counts and reconstructions, metrics, the stand-in codec and its detection, the
JSON/markdown/plot writer. No classifier is trained here (a tiny untrained CNN or a
fake evaluator stands in), and no MNIST is needed."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_digits

_PATH = Path(__file__).resolve().parent.parent / "bench" / "lossy.py"


@pytest.fixture(scope="module")
def lossy():
    spec = importlib.util.spec_from_file_location("vlaecodec_bench_lossy", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def x():
    return synthetic_digits(6, seed=7)


def _fake_evaluate(recon):
    return {"class_accuracy": float(np.mean(recon)), "agreement": 1.0}


# ---------------------------------------------------------------- thumbnails

def test_downsample_majority_and_threshold(lossy):
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, :7, :7] = 1                 # block (0, 0) full
    img[0, :7, 7:7 + 3] = 1            # block (0, 1): 21/49 = 0.43
    t = lossy.downsample(img, 4)
    assert t.shape == (1, 4, 4) and t.dtype == np.uint8
    assert t[0, 0, 0] == 1 and t[0, 0, 1] == 0 and t.sum() == 1
    assert lossy.downsample(img, 4, threshold=0.4)[0, 0, 1] == 1
    with pytest.raises(ValueError):
        lossy.downsample(img, 5)


@pytest.mark.parametrize("k", [4, 7, 14])
def test_upsampling_round_trip(lossy, x, k):
    t = lossy.downsample(x, k)
    near = lossy.upsample_nearest(t)
    assert near.shape == x.shape and set(np.unique(near)) <= {0, 1}
    assert np.array_equal(lossy.downsample(near, k), t)     # nearest is exact on blocks
    smooth = lossy.upsample_smooth(t)
    assert smooth.shape == x.shape and set(np.unique(smooth)) <= {0, 1}
    assert lossy.upsample_smooth(np.ones((1, k, k), np.uint8)).all()
    assert not lossy.upsample_smooth(np.zeros((1, k, k), np.uint8)).any()
    m = lossy._bilinear_matrix(k, 28)
    assert np.allclose(m.sum(1), 1) and (m >= 0).all()


def test_tune_thresholds(lossy, x):
    td, tu = lossy.tune_thresholds(x, 7, "nearest")
    assert td in lossy.DOWN_GRID and tu == 0.5
    errs = {t: lossy.pixel_error_rate(lossy.upsample_nearest(lossy.downsample(x, 7, t)), x) for t in lossy.DOWN_GRID}
    assert errs[td] == min(errs.values())
    td, tu = lossy.tune_thresholds(x, 7, "bilinear")
    assert td in lossy.DOWN_GRID and tu in lossy.UP_GRID
    best = lossy.pixel_error_rate(lossy.reconstruct_thumbnail(lossy.downsample(x, 7, td), "bilinear", tu), x)
    assert best <= errs[0.5]
    # For "class", the accuracy callback decides: here, the most ink wins.
    td, tu = lossy.tune_thresholds(x, 7, "bilinear", "class", accuracy=lambda r: float(r.mean()))
    assert (td, tu) == (min(lossy.DOWN_GRID), min(lossy.UP_GRID))


def test_raw_and_label_sizes(lossy):
    assert lossy.raw_sizes(np.zeros((3, 7, 7), np.uint8)) == (math.ceil(147 / 8) / 3, 7)
    assert lossy.raw_sizes(np.zeros((5, 4, 4), np.uint8)) == (2.0, 2)
    assert lossy.raw_sizes(np.zeros((8, 14, 14), np.uint8)) == (24.5, 25)
    a, s = lossy.label_sizes(10000)
    assert s == 1 and a == math.ceil(10000 * math.log2(10) / 8) / 10000 and 0.415 < a < 0.416


@pytest.mark.skipif(shutil.which("pbmtojbg") is None or shutil.which("jbgtopbm") is None,
                    reason="jbigkit-bin not installed")
def test_jbig_sizes_and_round_trip(lossy, x):
    t = lossy.downsample(x, 7)
    lay = lossy.jbig_layouts(t, per_row=4)
    assert lay["side by side"].shape == (7, 7 * len(x)) and lay["stacked"].shape == (7 * len(x), 7)
    assert lay["grid of 4 per row"].shape == (14, 28)
    assert np.array_equal(lay["side by side"][:, 7:14], t[1]) and np.array_equal(lay["stacked"][7:14], t[1])
    assert np.array_equal(lay["grid of 4 per row"][7:, :7], t[4]) and not lay["grid of 4 per row"][7:, 14:].any()
    js = lossy.jbig_sizes(t)
    assert js["single_n"] == len(x)
    assert js["single_bytes_per_image"] >= 20             # JBIG1's 20-byte header
    assert 0 < js["archive_bytes"] < js["single_bytes_per_image"] * len(x)
    assert np.array_equal(lossy.jbig_decode(lossy.jbig_encode(x[0])), x[0])
    assert "single_bytes_per_image" not in lossy.jbig_sizes(t, per_image=False)


# ---------------------------------------------------------------- JPEG, WebP, labels

def test_jpeg_split_join_decodes_like_the_file(lossy, x):
    import io

    from PIL import Image
    buf = io.BytesIO()
    lossy._gray(x[0]).save(buf, "JPEG", quality=5)
    raw = buf.getvalue()
    tables, body = lossy.jpeg_split(raw)
    assert tables and body and len(tables) + len(body) < len(raw)
    with Image.open(io.BytesIO(raw)) as im:
        full = np.asarray(im.convert("L"))
    assert np.array_equal(lossy._decode_gray(lossy.jpeg_join(tables, body)), full)


def test_jpeg_peer(lossy, x):
    r = lossy.jpeg_peer(x, 5)
    assert r["recon"].shape == x.shape and set(np.unique(r["recon"])) <= {0, 1}
    assert r["archive_bytes_per_image"] < r["single_bytes_per_image"]
    assert r["single_n"] == len(x)
    assert lossy.pixel_error_rate(r["recon"], x) < 0.3


def test_webp_peer(lossy, x):
    from PIL import features
    if not features.check("webp"):
        pytest.skip("Pillow without WebP")
    r = lossy.webp_peer(x, 5)
    assert r["recon"].shape == x.shape and set(np.unique(r["recon"])) <= {0, 1}
    assert r["archive_bytes_per_image"] < r["single_bytes_per_image"]
    assert lossy.pixel_error_rate(r["recon"], x) < 0.3


def test_class_means(lossy):
    x8 = np.zeros((20, 28, 28), np.uint8)
    y = np.arange(20) % 10
    x8[y == 3, 5:9, 5:9] = 255
    x8[(y == 3) & (np.arange(20) < 10), 20:, 20:] = 255    # in half of the 3s: mean 0.5 -> kept
    m = lossy.class_means(x8, y)
    assert m.shape == (10, 28, 28) and m.dtype == np.uint8
    assert m[3, 5:9, 5:9].all() and m[3, 20:, 20:].all() and m[3].sum() == 16 + 64
    assert m[[0, 1, 2, 4, 5, 6, 7, 8, 9]].sum() == 0


# ---------------------------------------------------------------- metrics, classifier

def test_metrics(lossy):
    a = np.zeros((2, 28, 28), np.uint8)
    b = a.copy()
    b[0, 0, :7] = 1
    assert lossy.pixel_error_rate(b, a) == 7 / (2 * 784)
    assert lossy.pixel_error_rate(a, a) == 0.0
    with pytest.raises(ValueError):
        lossy.pixel_error_rate(a[:1], a)
    m = lossy.class_metrics([1, 2, 3, 4], [1, 2, 0, 0], [1, 0, 3, 0])
    assert m == {"class_accuracy": 0.5, "agreement": 0.5}


def test_predict_with_tiny_untrained_cnn(lossy, x):
    import torch
    torch.manual_seed(0)
    net = lossy.build_classifier([["conv", 1, 2, 3, 1], ["relu"], ["maxpool", 4], ["flatten"],
                                  ["dropout", 0.1], ["linear", 2 * 49, 10]])
    p = lossy.predict(net, x, batch=4)
    assert p.shape == (len(x),) and p.dtype == np.int64 and ((0 <= p) & (p < 10)).all()
    with pytest.raises(ValueError):
        lossy.build_classifier([["batchnorm"]])


def test_recipe_key_tracks_the_recipe(lossy):
    k = lossy.recipe_key()
    assert len(k) == 12 and k == lossy.recipe_key(dict(lossy.CLASSIFIER_RECIPE))
    assert lossy.recipe_key({**lossy.CLASSIFIER_RECIPE, "epochs": 1}) != k
    assert lossy.classifier_path().name == f"digit-cnn-{k}.pt"


# ---------------------------------------------------------------- VLAE stand-in

def test_stand_in_codec_round_trip(lossy, x):
    c = lossy.StandInCodec()
    blob = c.compress(list(x), None, lossy=True, rate=2)
    back = np.asarray(c.decompress(blob).images)
    assert np.array_equal(back, lossy.StandInCodec.reconstruct(x, 2))
    r = lossy.run_vlae_level(c, None, x, 2, single_limit=3)
    assert r["single_n"] == 3 and r["archive_bytes"] == len(blob)
    assert np.array_equal(r["recon"], back)


def test_lossy_codec_detection(lossy, monkeypatch):
    import vlaecodec

    def old_api(images, model=None, *, names=None):
        return b""

    monkeypatch.setattr(vlaecodec, "compress", old_api)
    codec, real, why = lossy.lossy_codec(None, 1)
    assert not real and isinstance(codec, lossy.StandInCodec) and "no lossy mode" in why

    calls = []

    def new_api(images, model=None, *, lossy=False, rate=None):
        calls.append((len(images), lossy, rate))
        return b"VL"

    monkeypatch.setattr(vlaecodec, "compress", new_api)
    codec, real, why = lossy.lossy_codec(None, 3)
    assert real and codec is vlaecodec and calls == [(1, True, 3)] and why == ""

    def no_levels(images, model=None, *, lossy=False, rate=None):
        raise vlaecodec.CodecError("this model has no lossy rate levels")

    monkeypatch.setattr(vlaecodec, "compress", no_levels)
    codec, real, why = lossy.lossy_codec(None, 3)
    assert not real and "no lossy rate levels" in why

    def broken(images, model=None, *, lossy=False, rate=None):
        raise TypeError("something else went wrong")

    monkeypatch.setattr(vlaecodec, "compress", broken)
    with pytest.raises(TypeError, match="something else"):
        lossy.lossy_codec(None, 1)


def test_model_levels_from_manifest(lossy):
    class Fake:
        manifest = {"coding": {"lossy_bits_per_level": [8, 12, 16]}}

    class Old:
        manifest = {"coding": {}}

    assert lossy.model_levels(Fake()) == [1, 2, 3] and lossy.model_level_bits(Fake()) == [8, 12, 16]
    assert lossy.model_levels(Old()) == [] and lossy.model_levels("no-such-model-anywhere") == []


# ---------------------------------------------------------------- peers and reports

def test_run_peers_rows(lossy, x, monkeypatch):
    monkeypatch.setattr(lossy, "JPEG_QUALITIES", (5,))
    monkeypatch.setattr(lossy, "WEBP_QUALITIES", (5,))
    means = np.zeros((10, 28, 28), np.uint8)
    labels = np.arange(len(x)) % 10
    rows = lossy.run_peers(x, _fake_evaluate, tune_x=x, tune_accuracy=lambda r: float(r.mean()), means=means,
                           labels=labels, pred_orig=labels, jbig_per_image=False)
    names = [r["name"] for r in rows]
    assert "thumbnail 7x7, nearest, raw bits" in names and "JPEG q5" in names
    assert "class label only (true label)" in names
    for r in rows:
        if r.get("status") not in (None, "ok"):
            continue
        assert 0 <= r["pixel_error"] <= 1 and "class_accuracy" in r and r["archive_bytes_per_image"] > 0
    raw = {r["name"]: r for r in rows if r["family"] == "thumbnail raw"}
    assert len(raw) == 3 * len(lossy.THUMB_VARIANTS)
    assert raw["thumbnail 4x4, nearest, raw bits"]["single_bytes_per_image"] == 2
    assert raw["thumbnail 14x14, bilinear, raw bits"]["archive_bytes_per_image"] == 24.5
    tuned = raw["thumbnail 7x7, bilinear, tuned for class, raw bits"]
    assert tuned["tuned_for"] == "class" and tuned["down_threshold"] == min(lossy.DOWN_GRID)
    lab = rows[-1]
    assert lab["single_bytes_per_image"] == 1 and lab["pixel_error"] == float(np.mean(x))


def _fake_results(stand_in: bool = True) -> dict:
    return {
        "dataset": "binarized-mnist", "split": "test", "n": 3,
        "classifier": {"recipe_key": "abc", "test_accuracy": 0.99, "train_s": 12.0,
                       "accuracy_on_these_originals": 1.0},
        "vlae_codec": "STAND-IN (x)" if stand_in else "vlaecodec lossy mode", "vlae_is_stand_in": stand_in,
        "systems": [
            {"name": "originals (lossless reference)", "family": "reference", "archive_bytes_per_image": None,
             "single_bytes_per_image": None, "pixel_error": 0.0, "class_accuracy": 1.0, "agreement": 1.0},
            {"name": "VLAE lossy, rate=1", "family": "VLAE", "level": 1, "archive_bytes_per_image": 3.5,
             "single_bytes_per_image": 13.0, "single_n": 2, "pixel_error": 0.1, "class_accuracy": 0.9,
             "agreement": 0.9},
            {"name": "VLAE lossy, rate=2", "family": "VLAE", "level": 2, "archive_bytes_per_image": 5.0,
             "single_bytes_per_image": 15.0, "single_n": 2, "pixel_error": 0.07, "class_accuracy": 0.95,
             "agreement": 0.95},
            {"name": "thumbnail 7x7, nearest, raw bits", "family": "thumbnail raw", "thumb": 7,
             "upsample": "nearest", "archive_bytes_per_image": 6.125, "single_bytes_per_image": 7,
             "pixel_error": 0.08, "class_accuracy": 0.85, "agreement": 0.85},
            {"name": "class label only (true label)", "family": "class label", "archive_bytes_per_image": 0.415,
             "single_bytes_per_image": 1, "pixel_error": 0.12, "class_accuracy": 0.96, "agreement": 0.96},
            {"name": "JPEG q1", "family": "JPEG", "quality": 1, "archive_bytes_per_image": 80.0,
             "single_bytes_per_image": 300.0, "pixel_error": 0.05, "class_accuracy": 0.97, "agreement": 0.97},
            {"name": "thumbnail 4x4, bilinear, JBIG1", "family": "thumbnail JBIG1", "status": "not installed",
             "notes": "pbmtojbg not found"},
        ]}


def test_markdown_and_json_writer(lossy, tmp_path):
    res = _fake_results()
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    out = lossy.write_outputs(res, tmp_path / "out", with_plot=has_mpl)
    doc = json.loads(Path(out["json_path"]).read_text())
    assert doc["name"] == "lossy-3-standin" and doc["results"]["systems"][1]["archive_bytes_per_image"] == 3.5
    assert "STAND-IN" in doc["description"] and "versions" in doc["environment"]
    md = Path(out["markdown_path"]).read_text()
    assert "The VLAE rows are a STAND-IN" in md
    assert "| VLAE lossy, rate=1 | 3.500 | 13.00 (first 2) | 0.1000 | 90.00% | 90.00% |" in md
    assert "| thumbnail 4x4, bilinear, JBIG1 | — | — | — | — | — | not installed" in md
    # The label-only peer beats both levels (fewer bytes, better accuracy); JPEG does not;
    # counting pixel error too, no peer wins.
    assert ("- VLAE lossy, rate=1 (3.500 B, 90.00%, pixel error 0.1000): class label only (true label) "
            "(0.415 B, 96.00%, pixel error 0.1200)") in md
    assert "- VLAE lossy, rate=1 (3.500 B, 90.00%, pixel error 0.1000): none" in md
    assert "JPEG q1 (" not in md
    if has_mpl:
        png = Path(out["plot_path"])
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert out["plot_path"] is None
    assert "STAND-IN" not in lossy.to_markdown(_fake_results(stand_in=False))


def test_dominating_peers(lossy):
    res = _fake_results()
    vl = res["systems"][2]                                  # 5.0 B, 95%
    assert [p["name"] for p in lossy.dominating_peers(res, vl)] == ["class label only (true label)"]
    assert lossy.dominating_peers(res, vl, pixel=True) == []


def test_run_lossy_bench_end_to_end(lossy, monkeypatch, tmp_path):
    """The whole run on synthetic 'test' and 'train' digits with an untrained CNN."""
    import torch

    import vlaecodec
    from vlaecodec import data
    digits = synthetic_digits(8, seed=3)
    # The codec as it was before its lossy mode: the stand-in must be used, and said so.
    monkeypatch.setattr(vlaecodec, "compress", lambda images, model=None, *, names=None: b"")
    monkeypatch.setattr(data, "load_binarized_mnist", lambda split="test": digits)
    monkeypatch.setattr(data, "load_mnist", lambda split="test": digits * 255)
    monkeypatch.setattr(data, "load_mnist_labels", lambda split="test": np.arange(8) % 10)
    monkeypatch.setattr(lossy, "JPEG_QUALITIES", (10,))
    monkeypatch.setattr(lossy, "WEBP_QUALITIES", ())
    monkeypatch.setattr(lossy, "THUMB_SIZES", (7,))
    torch.manual_seed(0)
    net = lossy.build_classifier([["flatten"], ["linear", 784, 10]])
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    if not has_mpl:
        monkeypatch.setattr(lossy, "plot", lambda *a, **k: (_ for _ in ()).throw(ImportError("no mpl")))
    out = lossy.run_lossy_bench(levels=(1, 2), limit=5, out_dir=tmp_path, single_limit=2, classifier=net,
                                classifier_info={"recipe_key": "tiny"}, jbig_per_image=False, log=lambda m: None)
    r = out["results"]
    assert r["n"] == 5 and r["vlae_is_stand_in"] is True    # the codec has no lossy mode yet
    vl = [s for s in r["systems"] if s["family"] == "VLAE"]
    assert [s["level"] for s in vl] == [1, 2] and all(s["single_n"] == 2 for s in vl)
    assert all(s["name"].startswith("STAND-IN") for s in vl)
    assert Path(out["json_path"]).name == "lossy-5-standin.json" and Path(out["markdown_path"]).exists()
    assert (out["plot_path"] is not None) == has_mpl
    assert "why: vlaecodec.compress has no lossy mode" in r["vlae_codec"]
    with pytest.raises(RuntimeError, match="no lossy VLAE"):
        lossy.run_lossy_bench(levels=(1,), limit=5, out_dir=None, classifier=net, peers=False,
                              allow_stand_in=False, log=lambda m: None)


def test_run_lossy_bench_real_codec_with_tiny_model(lossy, tiny, monkeypatch):
    """With a model frozen with lossy levels, the VLAE rows come from vlaecodec itself."""
    import torch

    import vlaecodec
    from vlaecodec import data
    if "lossy" not in __import__("inspect").signature(vlaecodec.compress).parameters:
        pytest.skip("vlaecodec.compress has no lossy mode")
    digits = synthetic_digits(6, seed=4)
    monkeypatch.setattr(data, "load_binarized_mnist", lambda split="test": digits)
    monkeypatch.setattr(data, "load_mnist_labels", lambda split="test": np.arange(6) % 10)
    torch.manual_seed(0)
    net = lossy.build_classifier([["flatten"], ["linear", 784, 10]])
    levels = lossy.model_levels(tiny)
    assert levels and levels == list(range(1, len(levels) + 1))
    out = lossy.run_lossy_bench(model=tiny, levels=(1, 2), out_dir=None, single_limit=2, classifier=net,
                                peers=False, allow_stand_in=False, log=lambda m: None)
    r = out["results"]
    assert r["vlae_is_stand_in"] is False and r["vlae_model"] == tiny.name and out["json_path"] is None
    vl = [s for s in r["systems"] if s["family"] == "VLAE"]
    assert [s["level"] for s in vl] == [1, 2]
    for s in vl:
        assert s["archive_bytes_per_image"] == s["archive_bytes"] / 6 and s["single_n"] == 2
        assert 0 <= s["pixel_error"] <= 1 and not s["stand_in"]
    assert vl[0]["archive_bytes"] <= vl[1]["archive_bytes"]
    assert "model " + tiny.name in out["markdown"]
