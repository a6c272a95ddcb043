"""The lossy benchmark's machinery (bench/lossy.py) on a few synthetic digits: peers'
byte counts and reconstructions, metrics, the VLAE rows through vlaecodec's own lossy
mode (the tiny test model; the shipped model's level table), the picture grid, the
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


# ---------------------------------------------------------------- VLAE rows

def test_model_levels_read_the_real_model(lossy, tiny):
    from vlaecodec import lossy as lz
    from vlaecodec.freeze import LOSSY_LEVELS
    bits = lossy.model_level_bits(tiny)
    assert len(bits) == len(tiny.net.lossy_levels) == len(LOSSY_LEVELS)
    assert bits == [lz.bits_per_image(tiny.net, lv) for lv in range(1, len(bits) + 1)]
    assert lossy.model_levels(tiny) == list(range(1, len(bits) + 1))
    assert lossy.model_levels(tiny.name) == lossy.model_levels(tiny)      # by name, loaded by vlaecodec
    # The shipped default model: (dimensions x bits) of freeze.LOSSY_LEVELS, 31 bits at the default.
    v2 = lossy.model_level_bits(None)
    assert v2 == [d * b for d, b in LOSSY_LEVELS]
    assert v2[lz.DEFAULT_LEVEL - 1] + lz.pick_bits(lz.DEFAULT_DRAW) <= 31   # the default: under 4 B/image
    with pytest.raises(Exception, match="no-such-model"):
        lossy.model_levels("no-such-model-anywhere")


def test_a_model_without_lossy_levels_is_an_error(lossy, tiny):
    import vlaecodec
    old = vlaecodec.load_model("vlae-mnist-v1")        # frozen before lossy mode
    assert lossy.model_levels(old) == []
    with pytest.raises(RuntimeError, match="no lossy rate levels"):
        lossy.check_levels(old, [1])
    with pytest.raises(RuntimeError, match=r"levels 1\.\.12; asked for \[13\]"):
        lossy.check_levels(tiny, [1, 13])
    lossy.check_levels(tiny, [1, 12])
    with pytest.raises(RuntimeError, match="no lossy rate levels"):
        lossy.run_lossy_bench(model=old, limit=2, out_dir=None, classifier=_tiny_cnn(), peers=False,
                              log=lambda m: None)


def test_codec_refusal_is_a_clear_error(lossy, tiny, x, monkeypatch):
    import vlaecodec

    def refuse(*a, **k):
        raise vlaecodec.CodecError("lossy rate level must be 1..12")
    monkeypatch.setattr(vlaecodec, "compress", refuse)
    with pytest.raises(RuntimeError, match=r"vlaecodec refused lossy rate=3, draw=None with model .*1\.\.12"):
        lossy.run_vlae_level(tiny, x, 3, single_limit=1)


def test_run_vlae_level_uses_the_codec(lossy, tiny, x):
    import vlaecodec
    from vlaecodec import lossy as lz
    r = lossy.run_vlae_level(tiny, x, 2, single_limit=2)
    blob = vlaecodec.compress(list(x), tiny, lossy=True, rate=2)
    assert r["archive_bytes"] == len(blob) and r["draw"] == lz.DEFAULT_DRAW and r["single_n"] == 2
    assert r["single_bytes_per_image"] == np.mean([len(vlaecodec.compress([i], tiny, lossy=True, rate=2))
                                                   for i in x[:2]])
    assert np.array_equal(r["recon"], np.asarray(vlaecodec.decompress(blob).images))
    r0 = lossy.run_vlae_level(tiny, x, 2, single_limit=0, draw=0)
    blob0 = vlaecodec.compress(list(x), tiny, lossy=True, rate=2, draw=0)     # no pick bits
    assert r0["draw"] == 0 and r0["single_bytes_per_image"] is None and r0["archive_bytes"] == len(blob0)
    code = lz.level_code(tiny.net, 2)
    z = tiny.net.direct_latents(lz.unpack_bins(lz.encode(tiny.net, x, 2), len(x), code)[0], code)
    assert np.array_equal(r0["recon"], lz.redraw(tiny.net, z, draw=0))      # most probable pixels


def test_shipped_model_sizes(lossy):
    """vlae-mnist-v2 at its default level and draw on 24 digits: their bits/image plus a few header
    bytes as an archive, single files within the issue's 16 bytes."""
    import vlaecodec
    from vlaecodec import lossy as lz
    x = synthetic_digits(24, seed=5)
    loaded = vlaecodec.load_model(None)
    r = lossy.run_vlae_level(loaded, x, lz.DEFAULT_LEVEL, single_limit=3)
    payload = math.ceil(24 * lz.bits_per_image(loaded.net, lz.DEFAULT_LEVEL, lz.DEFAULT_DRAW) / 8)
    assert payload < r["archive_bytes"] < payload + 24
    assert r["single_bytes_per_image"] <= 16 and r["draw"] == lz.DEFAULT_DRAW
    assert r["recon"].shape == x.shape and set(np.unique(r["recon"])) <= {0, 1}


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


def _fake_results() -> dict:
    return {
        "dataset": "binarized-mnist", "split": "test", "n": 3,
        "classifier": {"recipe_key": "abc", "test_accuracy": 0.99, "train_s": 12.0,
                       "accuracy_on_these_originals": 1.0},
        "vlae_codec": "vlaecodec lossy mode", "vlae_model": "vlae-x",
        "systems": [
            {"name": "originals (lossless reference)", "family": "reference", "archive_bytes_per_image": None,
             "single_bytes_per_image": None, "pixel_error": 0.0, "class_accuracy": 1.0, "agreement": 1.0},
            {"name": "VLAE lossy, rate=1", "family": "VLAE", "level": 1, "draw": 3, "archive_bytes_per_image": 3.5,
             "single_bytes_per_image": 13.0, "single_n": 2, "pixel_error": 0.1, "class_accuracy": 0.9,
             "agreement": 0.9},
            {"name": "VLAE lossy, rate=2 (CLI default)", "family": "VLAE", "level": 2, "draw": 3,
             "cli_default": True, "archive_bytes_per_image": 5.0, "single_bytes_per_image": 15.0, "single_n": 2,
             "pixel_error": 0.07, "class_accuracy": 0.95, "agreement": 0.95},
            {"name": "VLAE lossy, rate=2, draw=0", "family": "VLAE", "level": 2, "draw": 0,
             "cli_default": False, "archive_bytes_per_image": 5.0, "single_bytes_per_image": 15.0, "single_n": 2,
             "pixel_error": 0.075, "class_accuracy": 0.8, "agreement": 0.8},
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
    assert doc["name"] == "lossy-3" and doc["results"]["systems"][1]["archive_bytes_per_image"] == 3.5
    assert "versions" in doc["environment"] and "STAND-IN" not in json.dumps(doc)
    md = Path(out["markdown_path"]).read_text()
    assert "VLAE rows: vlaecodec lossy mode, model vlae-x." in md and "(CLI default)" in md
    assert "| VLAE lossy, rate=1 | 3.500 | 13.00 (first 2) | 0.1000 | 90.00% | 90.00% |" in md
    assert "| VLAE lossy, rate=2 (CLI default) | 5.000 | 15.00 (first 2) | 0.0700 | 95.00% |" in md
    assert "| VLAE lossy, rate=2, draw=0 | 5.000 |" in md
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
    # Without peer rows there is no "where a peer wins" section (it would say "none").
    alone = {**res, "systems": [s for s in res["systems"] if s["family"] in ("VLAE", "reference")]}
    assert "Where a peer wins" not in lossy.to_markdown(alone)


def test_dominating_peers(lossy):
    res = _fake_results()
    vl = res["systems"][2]                                  # 5.0 B, 95%
    assert [p["name"] for p in lossy.dominating_peers(res, vl)] == ["class label only (true label)"]
    assert lossy.dominating_peers(res, vl, pixel=True) == []


def _tiny_cnn():
    """An untrained linear 'classifier' (what the recipe's layer list builds)."""
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def test_run_lossy_bench_end_to_end(lossy, tiny, monkeypatch, tmp_path):
    """The whole run on synthetic 'test' and 'train' digits: the tiny model through
    vlaecodec's lossy mode, an untrained CNN, a few peers; JSON, markdown, plot, grid."""
    from PIL import Image

    from vlaecodec import data
    from vlaecodec import lossy as lz
    digits = synthetic_digits(20, seed=3)
    monkeypatch.setattr(data, "load_binarized_mnist", lambda split="test": digits)
    monkeypatch.setattr(data, "load_mnist", lambda split="test": digits * 255)
    monkeypatch.setattr(data, "load_mnist_labels", lambda split="test": np.arange(20) % 10)
    monkeypatch.setattr(lossy, "JPEG_QUALITIES", (10,))
    monkeypatch.setattr(lossy, "WEBP_QUALITIES", ())
    monkeypatch.setattr(lossy, "THUMB_SIZES", (7,))
    has_mpl = importlib.util.find_spec("matplotlib") is not None
    if not has_mpl:
        monkeypatch.setattr(lossy, "plot", lambda *a, **k: (_ for _ in ()).throw(ImportError("no mpl")))
    levels = (1, lz.DEFAULT_LEVEL, 11)
    out = lossy.run_lossy_bench(model=tiny, levels=levels, limit=18, out_dir=tmp_path, single_limit=2,
                                classifier=_tiny_cnn(), classifier_info={"recipe_key": "tiny"},
                                jbig_per_image=False, log=lambda m: None)
    r = out["results"]
    assert r["n"] == 18 and r["vlae_model"] == tiny.name and r["vlae_codec"] == "vlaecodec lossy mode"
    bits = lossy.model_level_bits(tiny)
    assert r["vlae_level_bits"] == {str(lv): bits[lv - 1] + lz.pick_bits(lz.DEFAULT_DRAW) for lv in levels}
    assert r["vlae_cli_default"]["level"] == lz.DEFAULT_LEVEL and r["vlae_cli_default"]["draw"] == lz.DEFAULT_DRAW
    vl = [s for s in r["systems"] if s["family"] == "VLAE"]
    # One row per level with the default draw, then the default level with draws 0 and 1.
    assert [(s["level"], s["draw"]) for s in vl] == [(1, lz.DEFAULT_DRAW), (lz.DEFAULT_LEVEL, lz.DEFAULT_DRAW),
                                                     (11, lz.DEFAULT_DRAW), (lz.DEFAULT_LEVEL, 0),
                                                     (lz.DEFAULT_LEVEL, 1)]
    default = [s for s in vl if s["cli_default"]]
    assert len(default) == 1 and default[0] is vl[1] and default[0]["name"].endswith("(CLI default)")
    assert vl[3]["name"] == f"VLAE lossy, rate={lz.DEFAULT_LEVEL}, draw=0" and "most probable" in vl[3]["notes"]
    for s in vl:
        assert s["archive_bytes_per_image"] == s["archive_bytes"] / 18 and s["single_n"] == 2
        assert s["bits"] == bits[s["level"] - 1] + lz.pick_bits(s["draw"]) and 0 <= s["pixel_error"] <= 1
        assert s["archive_bytes"] >= math.ceil(18 * s["bits"] / 8)
    # Draws 0 and 1 live in the header only (same bytes, other pixels); the default draw
    # adds the encoder's pick to each image.
    assert vl[3]["archive_bytes"] == vl[4]["archive_bytes"] <= vl[1]["archive_bytes"]
    assert vl[0]["archive_bytes"] <= vl[1]["archive_bytes"] <= vl[2]["archive_bytes"]
    assert any(s["family"] == "JPEG" for s in r["systems"])
    md = out["markdown"]
    assert f"| VLAE lossy, rate={lz.DEFAULT_LEVEL} (CLI default) |" in md and "Where a peer wins" in md
    assert Path(out["json_path"]).name == "lossy-18.json" and Path(out["markdown_path"]).exists()
    assert (out["plot_path"] is not None) == has_mpl
    # The picture: originals, 3 rates, 3 redraws of one z; 16 digits at 3x.
    grid = Path(out["grid_path"])
    assert grid.name == "lossy-grid.png"
    with Image.open(grid) as im:
        assert im.mode == "L" and im.size[1] == 7 * (28 * 3 + 2) + 2 * 10
        a = np.asarray(im)
    cell = 28 * 3 + 2
    left = im.size[0] - 16 * cell                       # the label column
    first = a[:84, left:left + 84][::3, ::3]            # first original, downscaled back
    assert np.array_equal(first == 0, digits[0] == 1)


def test_grid_rows(lossy, tiny):
    from vlaecodec import lossy as lz
    x = synthetic_digits(5, seed=9)
    rows = lossy.grid_rows(tiny, x, levels=(3, lz.DEFAULT_LEVEL, 99), archive_bpi={3: 2.25})
    labels = [lab for lab, _ in rows]
    bits = lossy.model_level_bits(tiny)
    assert labels[0] == "originals" and np.array_equal(rows[0][1], x)
    pick = lz.pick_bits(lz.DEFAULT_DRAW)
    assert labels[1] == f"rate 3: 2.25 B/image, {bits[2] + pick} bits"               # the bench's bytes
    assert labels[2].startswith(f"rate {lz.DEFAULT_LEVEL} (default): {(bits[lz.DEFAULT_LEVEL - 1] + pick) / 8:g} B")
    assert len(rows) == 1 + 2 + lossy.GRID_REDRAWS                                   # level 99: skipped
    redraws = [imgs for _, imgs in rows[3:]]
    assert all(r.shape == x.shape and set(np.unique(r)) <= {0, 1} for r in redraws)
    # Different seeds draw different pixels from the same z; the same seed, the same ones.
    assert not np.array_equal(redraws[0], redraws[1])
    again = lossy.grid_rows(tiny, x, levels=(), redraws=1)
    assert np.array_equal(again[-1][1], redraws[0])


def test_runs_that_split_the_levels_merge_into_one_table(lossy, tiny, monkeypatch, tmp_path):
    from vlaecodec import data
    from vlaecodec import lossy as lz
    digits = synthetic_digits(12, seed=4)
    monkeypatch.setattr(data, "load_binarized_mnist", lambda split="test": digits)
    monkeypatch.setattr(data, "load_mnist_labels", lambda split="test": np.arange(12) % 10)
    monkeypatch.setattr(lossy, "plot", lambda *a, **k: (_ for _ in ()).throw(ImportError("no plot here")))
    cnn = _tiny_cnn()

    def run(levels, draws, sub):
        return lossy.run_lossy_bench(model=tiny, levels=levels, out_dir=tmp_path / sub, single_limit=1,
                                     classifier=cnn, classifier_info={"recipe_key": "tiny"}, peers=False,
                                     draws=draws, grid=False, log=lambda m: None)

    whole = run((1, lz.DEFAULT_LEVEL, 11), (0,), "whole")["results"]
    a = run((11, lz.DEFAULT_LEVEL), (0,), "a")["json_path"]
    b = run((1,), (), "b")["json_path"]
    merged = lossy.merge_results([a, b])

    def rows(r):
        return [{k: v for k, v in s.items() if not k.endswith("_s")} for s in r["systems"]]
    assert rows(merged) == rows(whole)
    assert merged["vlae_level_bits"] == whole["vlae_level_bits"] and merged["merged_from"] == [a, b]
    assert lossy.main(["--merge", a, b, "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "lossy-12.md").read_text().count("VLAE lossy, rate=") == 4
    with pytest.raises(ValueError, match="twice"):
        lossy.merge_results([a, a])
