"""run_bench() end to end on the tiny test model and synthetic digits (no dataset needed)."""
from __future__ import annotations

import json
import math
import shutil

import pytest

import vlaecodec.data
from conftest import TINY_NAME, synthetic_digits
from vlaecodec import bench


@pytest.fixture
def fake_dataset(monkeypatch):
    x = synthetic_digits(8, seed=5)
    monkeypatch.setattr(vlaecodec.data, "load_dataset", lambda name, split="test", source=None: x)
    return x


def test_run_bench_writes_results(fake_dataset, tmp_path):
    stages = {}

    def factory(label, total):
        stages[label] = [total]
        return stages[label].append

    out = bench.run_bench(model=TINY_NAME, out_dir=tmp_path, single_limit=3, peer_limit=2,
                          progress_factory=factory)
    r = out["results"]
    assert out["json_path"] == str(tmp_path / "bench-binarized-mnist-test-8.json")
    doc = json.loads((tmp_path / "bench-binarized-mnist-test-8.json").read_text())
    assert set(doc) == {"name", "description", "results", "environment"}
    assert (tmp_path / "bench-binarized-mnist-test-8.md").read_text() == out["markdown"]
    for k in ("torch", "numpy", "constriction", "pillow"):
        assert doc["environment"]["versions"][k]
    assert doc["environment"]["cpu_count"] >= 1 and doc["environment"]["torch_threads"] >= 1

    assert r["n"] == 8 and r["model"]["name"] == TINY_NAME
    c = r["codec"]
    assert c["lossless"] is True and c["mismatches"] == 0
    assert c["bits_per_dim"] == pytest.approx(8 * c["bytes"] / (8 * 784))
    assert c["ratio_to_elbo"] == pytest.approx(c["bits_per_dim"] / r["model"]["neg_elbo_bpd"])
    assert c["encode_images_per_s"] > 0 and c["decode_images_per_s"] > 0
    s = r["single"]
    assert s["n"] == 3 and s["lossless"] is True and s["mean_bytes"] > 0

    peers = r["peers"]
    for name in ("PNG per image", "WebP lossless per image", "JPEG-XL lossless per image",
                 "JBIG1 per image", "JBIG1 all as one image"):
        assert peers[name]["status"] in ("ok", "not installed"), (name, peers[name])
    assert peers["PNG per image"]["status"] == "ok" and peers["PNG per image"]["lossless"] is True
    assert {"bz2 whole set, packed bits", "xz whole set, 1 byte/pixel"} <= set(peers)
    for p in peers.values():
        if p["status"] == "ok":
            assert p["bits_per_dim"] > 0 and p.get("lossless") in (None, True)
    if peers["JPEG-XL lossless per image"]["status"] == "ok":
        assert peers["JPEG-XL lossless per image"]["n"] == 2
    # Every stage reported progress up to its total.
    for label, calls in stages.items():
        assert calls[-1] == calls[0], label
    assert "| system | bits/dim | bytes/image | notes |" in out["markdown"]


def test_missing_tools_and_default_out_dir(fake_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    monkeypatch.chdir(tmp_path)
    out = bench.run_bench(model=TINY_NAME, single_limit=0, codec=False)
    assert out["json_path"] == str(tmp_path / "bench-results" / "bench-binarized-mnist-test-8.json")
    peers = out["results"]["peers"]
    for name in ("JPEG-XL lossless per image", "JBIG1 per image", "JBIG1 all as one image"):
        assert peers[name]["status"] == "not installed"
        assert "not installed" in out["markdown"]
    assert "codec" not in out["results"]


@pytest.fixture(scope="module")
def peer_speed_run(tmp_path_factory):
    """One small run (20 synthetic digits, peers only) shared by the peer speed tests."""
    x = synthetic_digits(20, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vlaecodec.data, "load_dataset", lambda name, split="test", source=None: x)
        return bench.run_bench(model=TINY_NAME, out_dir=tmp_path_factory.mktemp("bench"), codec=False,
                               single_limit=0, peer_limit=1)


def _md_row(markdown: str, name: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {name} |")]
    assert len(rows) == 1, (name, markdown)
    return rows[0]


def _assert_speed(out: dict, name: str, decode: bool = True) -> None:
    p = out["results"]["peers"][name]
    doc = json.loads(open(out["json_path"]).read())["results"]["peers"][name]
    assert p["status"] == "ok" and p["lossless"] in (True, None), (name, p)
    keys = ("encode_images_per_s", "decode_images_per_s") if decode else ("encode_images_per_s",)
    for k in keys:
        # Existence and sanity only: speeds depend on the machine and its load.
        assert isinstance(doc[k], float) and math.isfinite(doc[k]) and doc[k] > 0, (name, k, doc[k])
    assert doc["timed_images"] == p["n"] and doc["timing"]
    row = _md_row(out["markdown"], name)
    assert "; encode " in row and " img/s, decode " in row and p["timing"] in row, row


def test_png_peer_speed(peer_speed_run):
    _assert_speed(peer_speed_run, "PNG per image")
    assert peer_speed_run["results"]["peers"]["PNG per image"]["lossless"] is True


@pytest.mark.skipif(shutil.which("pbmtojbg") is None, reason="pbmtojbg not installed")
def test_jbig_peer_speed(peer_speed_run):
    decode = shutil.which("jbgtopbm") is not None
    for name in ("JBIG1 per image", "JBIG1 all as one image"):
        _assert_speed(peer_speed_run, name, decode=decode)
    per_image = peer_speed_run["results"]["peers"]["JBIG1 per image"]
    assert per_image["n"] == 20 and "process start per image" in per_image["timing"]
    if decode:
        assert per_image["lossless"] is True
