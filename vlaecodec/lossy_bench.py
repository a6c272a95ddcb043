"""``vlaecodec bench --lossy``: finds and runs bench/lossy.py of a repository checkout.

The lossy bench is not part of the installed package (its digit classifier and
results live under bench/), so a plain install has none: it says so in one line.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any


class NoCheckout(RuntimeError):
    """This vlaecodec does not run from a repository checkout."""


def script_path() -> Path:
    """bench/lossy.py of the checkout this package runs from (editable install)."""
    return Path(__file__).resolve().parent.parent / "bench" / "lossy.py"


def load() -> Any:
    """bench/lossy.py as a module."""
    path = script_path()
    if not path.is_file():
        raise NoCheckout(f"bench --lossy needs a repository checkout (no {path}); "
                         "run it from a clone installed with pip install -e '.[bench]'")
    spec = importlib.util.spec_from_file_location("vlaecodec_bench_lossy", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def run(*, model: str | None, limit: int | None, single_limit: int | None, out_dir: str | None,
        peers: bool) -> dict[str, Any]:
    """Run the lossy bench (default folder: the script's own); returns its results."""
    mod = load()
    kw: dict[str, Any] = {"model": model, "limit": limit, "peers": peers,
                          "out_dir": out_dir if out_dir is not None else mod.DEFAULT_OUT}
    if single_limit is not None:
        kw["single_limit"] = single_limit
    return mod.run_lossy_bench(**kw)
