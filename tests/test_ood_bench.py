"""bench/ood_anysize.py (issue 19's out-of-distribution table) on two tiny images: the
table's bytes are the sizes of the files on disk, the ratios follow from them, and the
pixel comparison catches a wrong pixel. Skips when a peer tool is missing."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parent.parent / "bench"
TOOLS = ("optipng", "cwebp", "dwebp", "cjxl", "djxl", "pbmtojbg", "jbgtopbm")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"vlaecodec_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ood():
    return _load("ood_anysize")


def test_same_compares_pixels(ood):
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    assert ood.same(np.repeat(g[..., None], 3, 2), g)          # dwebp gives gray back as RGB
    bad = g.copy()
    bad[4, 3] ^= 1
    assert not ood.same(bad, g)
    b = rng.random((9, 7)) < 0.5                                # mode "1": True = white
    assert ood.same(b.astype(np.uint8), b) and ood.same(b.astype(np.uint8) * 255, b)
    assert not ood.same(~b, b)
    assert not ood.same(np.where(b, 255, 7).astype(np.uint8), b)   # three levels is not binary


def test_generator_is_deterministic():
    gen = _load("ood_images")
    a = np.asarray(gen.logo(np.random.default_rng([3, 11])))
    b = np.asarray(gen.logo(np.random.default_rng([3, 11])))
    c = np.asarray(gen.logo(np.random.default_rng([4, 11])))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                    reason="a peer tool is missing: " + ", ".join(t for t in TOOLS if shutil.which(t) is None))
def test_table_numbers_are_the_files_on_disk(ood, tmp_path):
    rgb = Image.new("RGB", (48, 32), (250, 250, 250))
    from PIL import ImageDraw
    d = ImageDraw.Draw(rgb)
    d.rectangle([4, 10, 14, 30], fill=(31, 119, 180))
    d.rectangle([20, 4, 30, 30], fill=(255, 127, 14))
    d.text((33, 2), "7", fill=(0, 0, 0))
    rgb.save(tmp_path / "chart.png")
    ink = np.zeros((40, 64), bool)
    ink[5:35:6, 4:60] = True
    ink[5:35, 10] = True
    Image.fromarray(~ink).save(tmp_path / "page.png")            # mode "1", black ink

    results = {}
    for kind, name in [("rgb", "chart.png"), ("binary", "page.png")]:
        work = tmp_path / kind
        s = ood.bench_set(kind, [tmp_path / name], work, log=lambda _: None)
        results[kind] = s
        row = s["rows"][0]
        for label, c in row["codecs"].items():
            assert "error" not in c, (label, c)
            assert c["bytes"] == (work / c["file"]).stat().st_size, label
            assert c["bytes"] == s["totals"][label]["bytes"]
            assert c["lossless"] is True, label
        assert (ood.JBIG in row["codecs"]) == (kind == "binary")
        bar_sizes = {k: c["bytes"] for k, c in row["codecs"].items() if k in ood.BAR_PEERS}
        assert row["best_peer_bytes"] == min(bar_sizes.values())
        v = row["codecs"][ood.VLAE]["bytes"]
        assert row["ratio_to_best"] == pytest.approx(v / row["best_peer_bytes"])
        assert row["over_bar"] == (v > ood.FILE_BAR[kind] * row["best_peer_bytes"])
        ref = s["totals"][ood.TOTAL_BAR[kind][0]]["bytes"]
        assert s["total_bar"]["ratio"] == pytest.approx(v / ref)
        assert s["totals"][ood.VLAE]["bits_per_subpixel"] == pytest.approx(8 * v / row["subpixels"])
        assert row["subpixels"] == (48 * 32 * 3 if kind == "rgb" else 64 * 40)
        assert row["codecs"][ood.VLAE]["coder"]                   # named by `vlaecodec info`
    doc = {"seed": 0, "documents_source": "test", "sets": {}}
    for kind, s in results.items():
        s.update(date="today", command="test", loadavg="0", note=None)
        doc["sets"][kind] = s
    md = ood.markdown(doc)
    for s in results.values():
        assert f"| {s['rows'][0]['codecs'][ood.VLAE]['bytes']:,} |" in md
