"""Numerics rule 0/3: the same bits under every kernel setting and thread count.

A chain file is written here; fresh processes decode it -- and encode the same images
again -- under settings that change which float kernels numpy, OpenBLAS and torch use
(they are read at start-up, so each setting gets its own process). Every child must
decode identical pixels and names and write byte-identical files. The coding path is
integer arithmetic in numpy, so none of this may matter; this test is where it would
break if a float result ever decided a coded symbol.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vlaecodec import container

from conftest import TINY8_NAME, TINY_NAME, synthetic_digits, synthetic_gray

# Runs in each child. argv[1]: a JSON job. Prints one JSON line.
CHILD = r"""
import ctypes, hashlib, json, resource, sys, time
job = json.loads(open(sys.argv[1]).read())
# CPU is bounded, not wall time: the kernel stops a child that computes too long.
resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_limit_s"], job["cpu_limit_s"] + 5))
if job["torch"]:
    # Load torch and run its kernels first, as a program that trains or evaluates would.
    import torch
    a = torch.randn(64, 64)
    torch.nn.functional.elu(a @ a).sum().item()
import numpy as np
import vlaecodec

def openblas(kind):
    # OpenBLAS's core type / thread count, as numpy's bundled library reports them.
    try:
        path = [l.split()[-1] for l in open("/proc/self/maps") if "openblas" in l.lower()][0]
        lib = ctypes.CDLL(path)
        for sym in {"core": ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"),
                    "threads": ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                                "openblas_get_num_threads")}[kind]:
            f = getattr(lib, sym, None)
            if f is not None:
                if kind == "core":
                    f.restype = ctypes.c_char_p
                    return f().decode()
                return int(f())
    except Exception:
        pass
    return None

out = {"torch_loaded_by_coding": None, "decoded": {}, "encoded": {}}
torch_before = "torch" in sys.modules
for name, path in job["decode"].items():
    a = vlaecodec.decompress(open(path, "rb").read())
    px = np.stack(a.images).astype(np.uint8)
    out["decoded"][name] = {"pixels": hashlib.sha256(px.tobytes()).hexdigest(), "names": a.names,
                            "modes": a.modes}
for name, spec in job["encode"].items():
    x = list(np.load(spec["images"]))
    blob = vlaecodec.compress(x, spec["model"], names=spec["names"], particles=spec.get("particles", 1))
    out["encoded"][name] = hashlib.sha256(blob).hexdigest()
out["torch_loaded_by_coding"] = (not torch_before) and "torch" in sys.modules
f = np.__dict__.get("_core", None)
feats = f._multiarray_umath.__cpu_features__ if f is not None else {}
out["numpy_features"] = {k: bool(feats.get(k)) for k in ("AVX2", "X86_V3", "X86_V4", "AVX512F", "AVX512_ICL")}
out["corename"] = openblas("core")
out["blas_threads"] = openblas("threads")
if job["torch"]:
    import torch
    out["torch_capability"] = torch.backends.cpu.get_cpu_capability()
out["cpu_s"] = time.process_time()
print("RESULT " + json.dumps(out))
"""

AVX512_OFF = "X86_V4 AVX512_ICL AVX512_SPR"   # numpy 2.x dispatch targets above AVX2
SETTINGS = {
    "aten-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, True),
    "aten-default": ({"ATEN_CPU_CAPABILITY": "default"}, True),
    "onednn-avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, True),
    "mkl-cbwr-compatible": ({"MKL_CBWR": "COMPATIBLE"}, True),
    "numpy-no-avx512": ({"NPY_DISABLE_CPU_FEATURES": AVX512_OFF}, False),
    "numpy-no-avx2": ({"NPY_DISABLE_CPU_FEATURES": "X86_V3 " + AVX512_OFF}, False),
    "openblas-autodetect": ({"OPENBLAS_CORETYPE": None}, False),
    "openblas-haswell": ({"OPENBLAS_CORETYPE": "Haswell"}, False),
    "openblas-prescott": ({"OPENBLAS_CORETYPE": "Prescott"}, False),
    "threads-1": ({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}, False),
    "threads-2": ({"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}, False),
    "threads-4": ({"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"}, False),
}
PARALLEL = 2
# A child uses 1.2-2.3 s of CPU (measured; its report's cpu_s). RLIMIT_CPU stops one at
# CHILD_CPU_S; the wall-clock deadline only guards against a hang that burns no CPU, so
# it is generous: a loaded machine stretches wall time (the children took ~20 s each
# at a load average of 10 on 2 cores), and that must not fail the test.
CHILD_CPU_S = 30
HANG_GUARD_S = 600


def _pixels_sha(images) -> str:
    return hashlib.sha256(np.stack(images).astype(np.uint8).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(tiny, tiny8, tmp_path_factory):
    """Write the files here, run every child (two at a time), return their reports."""
    import vlaecodec

    d = tmp_path_factory.mktemp("exactness")
    chain = synthetic_digits(20, seed=41)
    names = [f"digit-{i}.png" for i in range(20)]
    single = synthetic_digits(1, seed=42)
    # 8-bit images through an 8-bit model: the categorical path (integer softmax,
    # 24-bit frequencies) must be just as machine-independent.
    gray, gray1 = synthetic_gray(12, seed=43), synthetic_gray(1, seed=44)
    mc = synthetic_digits(container.MC_WARMUP + 40, seed=45)
    files = {"chain": vlaecodec.compress(list(chain), tiny, names=names),
             "single": vlaecodec.compress(list(single), tiny),
             "gray-chain": vlaecodec.compress(list(gray), tiny8),
             "gray-single": vlaecodec.compress(list(gray1), tiny8),
             # Monte Carlo bits-back: the particle index is drawn from weights both sides
             # compute (past the one-particle warm-up, hence the longer chain).
             "mc-chain": vlaecodec.compress(list(mc), tiny, particles=2)}
    assert len(vlaecodec.inspect(files["chain"]).schedule) >= 2     # bits-back batches inside
    assert len(vlaecodec.inspect(files["gray-chain"]).schedule) >= 2
    sched = vlaecodec.inspect(files["mc-chain"]).schedule
    assert sum(s for s, _ in sched[1:-1]) >= container.MC_WARMUP    # the last batch has 2 particles
    for k, blob in files.items():
        (d / f"{k}.vlae").write_bytes(blob)
    sources = {"chain": (chain, TINY_NAME, names), "single": (single, TINY_NAME, None),
               "gray-chain": (gray, TINY8_NAME, None), "gray-single": (gray1, TINY8_NAME, None),
               "mc-chain": (mc, TINY_NAME, None)}
    for k, (x, _, _) in sources.items():
        np.save(d / f"{k}.npy", x)
    job = {"decode": {k: str(d / f"{k}.vlae") for k in files},
           "encode": {k: {"images": str(d / f"{k}.npy"), "model": m, "names": nm,
                          "particles": vlaecodec.inspect(files[k]).particles}
                      for k, (_, m, nm) in sources.items()}}
    expected = {
        "decoded": {"chain": {"pixels": _pixels_sha(chain), "names": names, "modes": ["1"] * 20},
                    "single": {"pixels": _pixels_sha(single), "names": None, "modes": ["1"]},
                    "gray-chain": {"pixels": _pixels_sha(gray), "names": None, "modes": ["L"] * 12},
                    "gray-single": {"pixels": _pixels_sha(gray1), "names": None, "modes": ["L"]},
                    "mc-chain": {"pixels": _pixels_sha(mc), "names": None, "modes": ["1"] * len(mc)}},
        "encoded": {k: hashlib.sha256(b).hexdigest() for k, b in files.items()},
    }
    pending = list(SETTINGS.items())
    running: list[tuple[str, subprocess.Popen, float]] = []
    reports: dict[str, dict] = {}
    while pending or running:
        while pending and len(running) < PARALLEL:
            name, (env_changes, use_torch) = pending.pop(0)
            jpath = d / f"{name}.json"
            jpath.write_text(json.dumps({**job, "torch": use_torch, "cpu_limit_s": CHILD_CPU_S}))
            env = dict(os.environ)   # carries VLAECODEC_MODELS (conftest)
            for k, v in env_changes.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
            p = subprocess.Popen([sys.executable, "-c", CHILD, str(jpath)], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            running.append((name, p, time.monotonic()))
        for item in list(running):
            name, p, t0 = item
            if p.poll() is None:
                if time.monotonic() - t0 > HANG_GUARD_S:
                    p.kill()
                    p.communicate()
                    reports[name] = {"error": f"hang guard: still running after {HANG_GUARD_S} s of wall time, "
                                              f"killed (its CPU is capped at {CHILD_CPU_S} s by RLIMIT_CPU, so it "
                                              "waited rather than worked: a hang)"}
                    running.remove(item)
                continue
            out, err = p.communicate()
            running.remove(item)
            line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
            if p.returncode == 0 and line:
                reports[name] = json.loads(line[0][7:])
            elif p.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
                reports[name] = {"error": f"over its CPU limit: stopped by RLIMIT_CPU at {CHILD_CPU_S} s of CPU "
                                          f"(signal {-p.returncode})"}
            else:
                reports[name] = {"error": f"exit {p.returncode}: {err.strip()[-2000:]}"}
        time.sleep(0.05)
    return expected, reports


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_fresh_process_decodes_and_encodes_identically(runs, setting):
    expected, reports = runs
    r = reports[setting]
    assert "error" not in r, r.get("error")
    assert r["decoded"] == expected["decoded"]     # same pixels, names, modes
    assert r["encoded"] == expected["encoded"]     # byte-identical files
    assert r["torch_loaded_by_coding"] is False    # coding never imports torch


def test_the_settings_took_effect(runs):
    """Each setting really changed what it claims to change (where this machine can)."""
    _, reports = runs
    ok = {k: v for k, v in reports.items() if "error" not in v}
    assert set(ok) == set(SETTINGS)
    assert ok["numpy-no-avx512"]["numpy_features"]["X86_V4"] is False
    assert ok["numpy-no-avx512"]["numpy_features"]["AVX512_ICL"] is False
    assert ok["numpy-no-avx2"]["numpy_features"]["X86_V3"] is False
    if ok["threads-1"]["blas_threads"] is not None:
        assert ok["threads-1"]["blas_threads"] == 1
        assert ok["threads-2"]["blas_threads"] == min(2, os.cpu_count() or 1)
        assert ok["threads-4"]["blas_threads"] == min(4, os.cpu_count() or 1)
    if ok["aten-avx2"].get("torch_capability") is not None:
        assert ok["aten-avx2"]["torch_capability"].lower() in ("avx2", "default")
        assert ok["aten-default"]["torch_capability"].lower() == "default"
    auto = ok["openblas-autodetect"]["corename"]
    if auto is not None:
        assert ok["openblas-haswell"]["corename"].lower() == "haswell"
        if auto.lower() not in ("prescott", "katmai"):
            assert ok["openblas-prescott"]["corename"] != auto
