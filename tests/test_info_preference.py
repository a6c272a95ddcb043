"""bench/info_preference.py: the part that decides whether the study ran long enough."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "info_preference.py"


@pytest.fixture(scope="module")
def ip():
    spec = importlib.util.spec_from_file_location("vlaecodec_bench_info_preference", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _hist(*kls):
    return [{"epoch": i + 1, "kl": k, "neg_elbo": 90.0} for i, k in enumerate(kls)]


def test_kl_ordering_reports_when_the_order_settled(ip):
    order = ip.kl_ordering({"global": _hist(3.0, 2.0, 1.5, 1.2), "local": _hist(4.0, 6.0, 7.0, 7.5),
                            "factorized": _hist(3.5, 1.0, 20.0, 25.0)})
    assert order["per_epoch"] == ["local>factorized>global", "local>global>factorized",
                                  "factorized>local>global", "factorized>local>global"]
    assert order["final"] == "factorized>local>global"
    assert order["unchanged_since_epoch"] == 3 and order["epochs"] == 4


def test_kl_ordering_that_never_changed_settled_at_epoch_one(ip):
    order = ip.kl_ordering({"a": _hist(1.0, 2.0), "b": _hist(0.5, 0.7, 0.9)})
    assert order["epochs"] == 2   # only epochs every run has
    assert order["unchanged_since_epoch"] == 1 and order["final"] == "a>b"


def test_the_three_decoders_differ_only_in_the_pixelcnn_kernels(ip):
    from vlaecodec.config import preset
    cfgs = {k: preset(name).to_dict() for k, name in ip.DECODERS.items()}
    rows = {k: preset(name).receptive_rows for k, name in ip.DECODERS.items()}
    assert rows == {"global": 24, "local": 6, "factorized": 0}
    for c in cfgs.values():
        for key in ("pcnn_layers", "pcnn_kernel"):
            c.pop(key)
    assert cfgs["global"] == cfgs["local"] == cfgs["factorized"]
