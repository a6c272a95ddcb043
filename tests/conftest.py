"""Shared fixtures: a seeded tiny model installed as a test model, synthetic digits.

The tiny model is random-initialised (seeded): coding exactness and file handling do
not need a good model, and the suite must not depend on a network or on training.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

TINY_NAME = "vlae-tiny-test"
TINY8_NAME = "vlae-tiny8-test"   # the same, with 8-bit (256-level) pixels
USER_DATA_CACHE: Path | None = None   # the dataset cache outside the tests (pytest_configure)


def tiny_float_model(preset_name: str = "vlae-tiny"):
    from vlaecodec.config import preset
    from vlaecodec.vlae import VLAE

    torch.manual_seed(1234)
    model = VLAE(preset(preset_name))
    # Give the prior a non-trivial autoregressive part so AR paths are exercised.
    with torch.no_grad():
        for made in model.prior.steps:
            made.l2.weight.normal_(0, 0.05)
    return model.eval()


def _write_tiny_model(d: Path, name: str = TINY_NAME, preset_name: str = "vlae-tiny") -> None:
    """The tiny model as an installed model: integer .npz, float .pt, manifest."""
    from vlaecodec import freeze
    from vlaecodec.train import FORMAT_VERSION, library_versions

    model = tiny_float_model(preset_name)
    fpath = d / f"{name}.pt"
    torch.save({"format_version": FORMAT_VERSION, "config": model.cfg.to_dict(),
                "state_dict": model.state_dict(), "training": {}, "versions": library_versions()}, fpath)
    bins = [4, 3, 2, 1, 1, 2, 1, 1]   # some dimensions sent directly, some not
    arrays = freeze.to_integer(model, name=name, direct_bins=bins)
    if model.cfg.pixel_levels == 2:   # lossy mode is for binary models
        arrays = freeze.with_lossy_levels(arrays, freeze.lossy_tables(np.linspace(1.0, 0.1, model.cfg.latent_dim)))
    blob = freeze.model_bytes(arrays)
    ipath = d / f"{name}.npz"
    ipath.write_bytes(blob)
    (d / f"{name}.json").write_text(json.dumps({
        "name": name, "file": ipath.name, "sha256": hashlib.sha256(blob).hexdigest(),
        "float_file": fpath.name, "float_sha256": hashlib.sha256(fpath.read_bytes()).hexdigest(),
        "config": model.cfg.to_dict(), "description": "random tiny model for tests"}))


def pytest_configure(config):
    # Installed before any test imports the zoo; subprocesses inherit it too.
    d = Path(config._tmp_path_factory.mktemp("models")) if hasattr(config, "_tmp_path_factory") else None
    if d is None:
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="vlaecodec-test-models-"))
    _write_tiny_model(d)
    _write_tiny_model(d, TINY8_NAME, "vlae-tiny8")
    os.environ["VLAECODEC_MODELS"] = str(d)
    # Tests see an empty dataset cache; the few slow tests that read real datasets
    # (test_shipped) look in the user's cache, found here before it is replaced.
    from vlaecodec import data
    global USER_DATA_CACHE
    USER_DATA_CACHE = data.cache_dir()
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
def tiny8():
    from vlaecodec.zoo import load_model
    return load_model(TINY8_NAME)


def synthetic_gray(n: int, seed: int = 0, size: int = 28) -> np.ndarray:
    """8-bit 'digits': the binary strokes blurred into gray edges, plus some noise, so
    images have exact zeros, saturated 255s and every level in between."""
    rng = np.random.default_rng(seed)
    x = synthetic_digits(n, seed, size).astype(np.float64) * 255.0
    k = np.array([1.0, 2.0, 1.0]) / 4.0
    for axis in (1, 2):
        x = sum(w * np.roll(x, s, axis=axis) for w, s in zip(k, (-1, 0, 1)))
    x += rng.normal(0, 12, x.shape) * (x > 0)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def digits():
    return synthetic_digits(12)


# The child's CPU limit is set by a tiny launcher that then execs the command (limits
# survive exec); a preexec_fn would run in a forked copy of this threaded process.
_LAUNCH = ("import os, resource, sys; c = int(sys.argv[1]); "
           "resource.setrlimit(resource.RLIMIT_CPU, (c, c + 5)); os.execvp(sys.argv[2], sys.argv[2:])")


def run_limited(cmd: list, *, cpu_s: float, hang_guard_s: float, **kw) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, **kw) with the child's CPU time capped at ``cpu_s`` (RLIMIT_CPU)
    and a wall-clock hang guard. Tests bound CPU, not wall time: a loaded machine
    stretches wall time, so the guard is generous and only catches a child that waits
    forever. A child stopped by either fails the test, saying which stopped it."""
    try:
        r = subprocess.run([sys.executable, "-c", _LAUNCH, str(int(cpu_s)), *map(str, cmd)],
                           timeout=hang_guard_s, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang guard: {' '.join(map(str, cmd))[:200]} still running after {hang_guard_s:.0f} s of "
                    f"wall time, killed (its CPU is capped at {cpu_s:.0f} s, so it waited rather than "
                    "worked: a hang)")
    if r.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        pytest.fail(f"over its CPU limit: {' '.join(map(str, cmd))[:200]} stopped by RLIMIT_CPU at "
                    f"{cpu_s:.0f} s of CPU (signal {-r.returncode})")
    return r


@pytest.fixture(autouse=True)
def _digit_path_only(request, monkeypatch):
    """Most tests drive the 28x28 path with untrained tiny models, which PNG beats; the
    encoder would then (rightly) keep an any-size file. They test the digit path, so the
    fallback is off for them; tests/test_digit_fallback.py tests it with it on."""
    if request.node.get_closest_marker("any_size_fallback") is None:
        from vlaecodec import images
        monkeypatch.setattr(images, "TRY_ANY_SIZE", False)
