"""vlaecodec.mixture: the exact integer CDF of a discretized logistic mixture.

Checked against (1) the module docstring's formula recomputed with Python integers (no
int64 to overflow), (2) a float64 sigmoid mixture (the rate cost of the integer version),
(3) itself row by row, and (4) a child process with numpy's AVX2/AVX-512 loops switched
off, coding through vlaecodec.rans."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from decimal import ROUND_HALF_EVEN, Context, Decimal

import numpy as np
import pytest

from conftest import run_limited
from vlaecodec import mixture as M

T24 = 1 << M.PREC


def params(rng, n: int, k: int = 5, scale=(0.5, 50.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer (loc, inv_scale, weights) for n RGB-like rows (integer draws only)."""
    center = rng.integers(0, 256 << M.LOC_FRAC, size=(n, 1))
    lo, hi = (int((1 << M.INV_FRAC) / s) for s in scale)
    inv = np.exp(rng.uniform(np.log(hi), np.log(lo), size=(n, k))).astype(np.int64)
    loc = center + rng.integers(-8 << M.LOC_FRAC, 8 << M.LOC_FRAC, size=(n, k))
    w = M.mixture_weights(rng.integers(-6 << 12, 6 << 12, size=(n, k)))
    return loc, inv, w


def extreme_params(rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Locations far outside, tiny and huge scales, out-of-range values to be clipped,
    all weight on one component, zero weights."""
    locs = [-10 ** 9, -64 << 8, -1, 0, 127 << 8, (255 << 8) + 128, 320 << 8, 10 ** 9]
    invs = [-5, 0, 1, 2, 1 << 16, 1 << 24, 1 << 40]
    rows = []
    for l in locs:
        for i in invs:
            rows.append((l, i))
    n, k = len(rows), 3
    loc = np.array([[r[0]] * k for r in rows], np.int64)
    loc[:, 1] = rng.integers(-70 << 8, 330 << 8, size=n)
    inv = np.array([[r[1]] * k for r in rows], np.int64)
    inv[:, 2] = rng.integers(1, 1 << 24, size=n)
    w = np.zeros((n, k), np.int64)
    w[:, 0] = 1 << 12
    w[1::2] = [1 << 11, 0, 1 << 11]
    w[2::5] = [0, 0, 1 << 12]
    return loc, inv, w


def full_cdf(loc, inv, w) -> np.ndarray:
    """C(x) for x = 0..256 for every row: (N, 257)."""
    n = len(loc)
    return np.stack([M.cdf(np.full(n, x), loc, inv, w) for x in range(M.LEVELS + 1)], 1)


# ------------------------------------------------------------------ tables

def test_tables_are_monotone_exact_at_the_ends_and_close_to_float():
    sig, ex = M.sigmoid_table(), M.exp_table()
    assert sig.shape == (8193,) and ex.shape == (8193,)
    assert sig[0] == 0 and sig[-1] == 1 << 16 and sig[4096] == 1 << 15
    assert np.all(np.diff(sig) >= 0) and np.array_equal(sig + sig[::-1], np.full(8193, 1 << 16))
    assert ex[0] == 1 << 20 and ex[-1] == 0 and np.all(np.diff(ex) <= 0)
    u = np.arange(-4096, 4097) / 256
    assert np.abs(sig - (1 << 16) / (1 + np.exp(-u))).max() <= 0.5 + 1e-6
    assert np.abs(ex - (1 << 20) * np.exp(-np.arange(8193) / 256)).max() <= 0.5 + 1e-6


def test_tables_equal_correctly_rounded_values():
    """Spot check against exp computed entry by entry (decimal's exp is correctly
    rounded): the repeated products gave the same integers."""
    ctx = Context(prec=50, rounding=ROUND_HALF_EVEN)
    sig, ex = M.sigmoid_table(), M.exp_table()
    for i in range(0, 8193, 97):
        e = ctx.exp(Decimal(-i) / 256)
        assert ex[i] == int((e * (1 << 20)).to_integral_value(ROUND_HALF_EVEN))
    for i in range(0, 4097, 89):
        s = ctx.divide(Decimal(1 << 16), 1 + ctx.exp(Decimal(-i) / 256))
        assert sig[4096 + i] == int(s.to_integral_value(ROUND_HALF_EVEN))


def test_tables_are_frozen():
    """A changed table changes every file: pinned like golden words."""
    h = hashlib.sha256(M.sigmoid_table().astype("<i8").tobytes() + M.exp_table().astype("<i8").tobytes())
    assert h.hexdigest() == "e31e727631372246f0e7bb7693de7ec2f0b9de478321e2f8da4ce8eba0ac07a4"


# ------------------------------------------------------------------ weights

def test_mixture_weights():
    rng = np.random.default_rng(1)
    lg = rng.integers(-20 << 12, 20 << 12, size=(2000, 5))            # beyond the clip too
    w = M.mixture_weights(lg)
    assert w.dtype == np.int64 and w.min() >= 0 and np.all(w.sum(1) == 4096)
    c = np.clip(lg, -16 << 12, 16 << 12) / 4096
    p = np.exp(c - c.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.abs(w - 4096 * p).max() <= 5                              # floors + 2**-9 nats
    assert np.array_equal(M.mixture_weights([[0, -16 << 12, -20 << 12]]), [[4096, 0, 0]])
    assert np.array_equal(M.mixture_weights([[7, 7, 7, 7]]), [[1024] * 4])
    assert np.array_equal(M.mixture_weights([[5 << 12]]), [[4096]])
    rows = np.concatenate([M.mixture_weights(lg[i:i + 1]) for i in range(50)])
    assert np.array_equal(rows, w[:50])


# ------------------------------------------------------------------ the CDF

def reference_cdf(x: int, loc, inv, w) -> list[int]:
    """The module docstring's formula, Python integers, row by row: C(x) for each row."""
    sig = M.sigmoid_table().tolist()
    out = []
    for lr, ir, wr in zip(loc.tolist(), inv.tolist(), w.tolist()):
        if x == 0:
            out.append(0)
            continue
        if x == 256:
            out.append(T24)
            continue
        g = 0
        for l, i, wk in zip(lr, ir, wr):
            l, i = min(max(l, -64 * 256), 320 * 256), min(max(i, 1), 1 << 24)
            u = (((2 * x - 1) << 7) - l) * i
            u = (u + (1 << 15)) >> 16                       # round to 8 fractional bits
            u = min(max(u, -4096), 4096)
            g += wk * sig[u + 4096]
        out.append(((g * (T24 - 256)) >> 28) + x)
    return out


def test_cdf_equals_the_documented_formula_in_python_integers():
    rng = np.random.default_rng(2)
    for loc, inv, w in (params(rng, 40), extreme_params(rng)):
        c = full_cdf(loc, inv, w)
        for x in list(range(0, 257, 17)) + [1, 254, 255, 256]:
            assert c[:, x].tolist() == reference_cdf(x, loc, inv, w)


def test_monotone_and_every_frequency_at_least_one():
    rng = np.random.default_rng(3)
    for loc, inv, w in (params(rng, 500), params(rng, 200, scale=(0.004, 0.5)),
                        params(rng, 200, scale=(50, 60000)), extreme_params(rng)):
        c = full_cdf(loc, inv, w)
        assert np.all(c[:, 0] == 0) and np.all(c[:, 256] == T24)
        assert np.diff(c, axis=1).min() >= 1
    # all weight on a tiny-scale component at 100: nearly all mass on 100, the rest >= 1
    loc, inv, w = np.array([[100 << 8, 0]]), np.array([[1 << 24, 1]]), np.array([[4096, 0]])
    f = np.diff(full_cdf(loc, inv, w)[0])
    assert f[100] == T24 - 255 and np.all(np.delete(f, 100) == 1)


def test_start_freq_and_find_agree_with_cdf_at_every_boundary():
    rng = np.random.default_rng(4)
    for loc, inv, w in (params(rng, 60), extreme_params(rng)):
        n = len(loc)
        c = full_cdf(loc, inv, w)
        for x in range(256):
            xs = np.full(n, x)
            s, f = M.start_freq(xs, loc, inv, w)
            assert np.array_equal(s, c[:, x]) and np.array_equal(f, c[:, x + 1] - c[:, x])
            for cf in (c[:, x], c[:, x + 1] - 1):
                got = M.find(cf, loc, inv, w)
                assert np.array_equal(got[0], xs)
                assert np.array_equal(got[1], s) and np.array_equal(got[2], f)


def test_one_call_equals_row_by_row():
    rng = np.random.default_rng(5)
    loc, inv, w = params(rng, 64)
    x = rng.integers(0, 256, size=64)
    cf = rng.integers(0, T24, size=64)
    whole = (M.cdf(x, loc, inv, w), *M.start_freq(x, loc, inv, w), *M.find(cf, loc, inv, w))
    rows = [np.concatenate(parts) for parts in zip(*[
        (M.cdf(x[i:i + 1], loc[i:i + 1], inv[i:i + 1], w[i:i + 1]),
         *M.start_freq(x[i:i + 1], loc[i:i + 1], inv[i:i + 1], w[i:i + 1]),
         *M.find(cf[i:i + 1], loc[i:i + 1], inv[i:i + 1], w[i:i + 1])) for i in range(64)])]
    for a, b in zip(whole, rows):
        assert np.array_equal(a, b)
    # Fortran-ordered and strided inputs give the same numbers
    wide = np.zeros((64, 10), np.int64)
    wide[:, ::2] = inv
    assert np.array_equal(M.start_freq(x, np.asfortranarray(loc), wide[:, ::2], w)[1], whole[2])


def test_bad_inputs_are_refused():
    loc, inv, w = np.zeros((2, 3), np.int64), np.ones((2, 3), np.int64), np.full((2, 3), 4096 // 3)
    with pytest.raises(ValueError):
        M.cdf(np.array([1, 2]), loc, inv, w)                        # weights sum to 4095
    w[:, 0] += 1
    with pytest.raises(ValueError):
        M.start_freq(np.array([1, 256]), loc, inv, w)
    with pytest.raises(ValueError):
        M.find(np.array([0, T24]), loc, inv, w)
    with pytest.raises(ValueError):
        M.cdf(np.array([1, 2]), loc[:, :2], inv, w)
    with pytest.raises(TypeError):
        M.cdf(np.array([1, 2]), loc.astype(float), inv, w)
    bad = w.copy()
    bad[0] = [4097, -1, 0]
    with pytest.raises(ValueError):
        M.cdf(np.array([1, 2]), loc, inv, bad)


# ------------------------------------------------------------------ against float

def float_pmf(loc, inv, w_logits) -> np.ndarray:
    """The float64 discretized logistic mixture (PixelCNN++ edges: -inf and +inf at the
    ends) of the same fixed-point parameters; weights from the float softmax."""
    mu, s = loc / 256.0, 65536.0 / inv
    lg = np.clip(w_logits, -16 << 12, 16 << 12) / 4096.0
    pi = np.exp(lg - lg.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)
    edges = np.arange(1, 256) - 0.5
    z = (edges[None, :, None] - mu[:, None, :]) / s[:, None, :]
    F = (pi[:, None, :] * 0.5 * (1 + np.tanh(z / 2))).sum(2)
    n = len(loc)
    return np.diff(np.concatenate([np.zeros((n, 1)), F, np.ones((n, 1))], 1), axis=1)


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0])
def test_rate_cost_against_the_float_mixture(scale):
    """The expected excess code length (KL from the float mixture to the integer one, in
    bits per sub-pixel: the average over symbols drawn from the float model) is < 0.01."""
    rng = np.random.default_rng(int(scale * 10))
    n, k = 1500, 5
    center = rng.uniform(0, 255, size=(n, 1))
    loc = np.rint((center + rng.normal(0, scale, size=(n, k))) * 256).astype(np.int64)
    inv = np.rint(65536 / (scale * np.exp(rng.uniform(-0.2, 0.2, size=(n, k))))).astype(np.int64)
    lg = np.rint(rng.normal(0, 1.5, size=(n, k)) * 4096).astype(np.int64)
    q = np.diff(full_cdf(loc, inv, M.mixture_weights(lg)), axis=1) / T24
    p = float_pmf(loc, inv, lg)
    kl = (p * np.log2(np.maximum(p, 1e-300) / q)).sum(1)
    assert kl.mean() < 0.01
    assert kl.mean() > 0                 # a real difference was measured, not a copy


def test_cost_of_the_frequency_floor():
    """Against the same mixture before the floor of 1 (G differenced over 2**28, exact
    rationals), the integer CDF loses about -log2(1 - 256/2**24) = 2.2e-5 bits."""
    rng = np.random.default_rng(8)
    loc, inv, w = params(rng, 300, scale=(0.5, 20))
    c = full_cdf(loc, inv, w)
    sig = M.sigmoid_table()
    lc, ic = np.clip(loc, -64 << 8, 320 << 8), np.clip(inv, 1, 1 << 24)
    g = np.zeros((len(loc), 257), dtype=np.int64)
    g[:, 256] = 1 << 28
    for x in range(1, 256):
        u = ((((2 * x - 1) << 7) - lc) * ic + (1 << 15)) >> 16
        g[:, x] = (w * sig[np.clip(u, -4096, 4096) + 4096]).sum(1)
    assert np.array_equal(((g[:, 1:256] * (T24 - 256)) >> 28) + np.arange(1, 256), c[:, 1:256])
    pg = np.diff(g, axis=1) / 2.0 ** 28
    q = np.diff(c, axis=1) / T24
    cost = (pg * np.log2(np.maximum(pg, 1e-300) / q)).sum(1)
    floor = -np.log2(1 - 256 / T24)
    # q >= p * (1 - 2**-16) for every symbol (numerator >= (G1 - G0) * S / 2**28), so the
    # cost is at most the floor's; tails below 2**-24 gain mass, so usually less.
    assert np.all(cost <= floor * (1 + 1e-9)) and cost.mean() > floor / 10


# ------------------------------------------------------------------ with the coder

CHILD = r"""
import hashlib, json, sys
import numpy as np
from vlaecodec import mixture as M
from vlaecodec.rans import Stack
rng = np.random.default_rng(99)
n, k, calls = 250, 5, 6
out, pushed = {}, []
st = Stack(128)
st.pop(200, 24, lambda cf, sl: (cf, cf, np.ones_like(cf)))      # bits-back start: 200 raw symbols
for _ in range(calls):
    center = rng.integers(0, 256 << 8, size=(n, 1))
    loc = center + rng.integers(-2000, 2000, size=(n, k))
    inv = rng.integers(300, 1 << 20, size=(n, k))
    w = M.mixture_weights(rng.integers(-30000, 30000, size=(n, k)))
    x = np.clip(center[:, 0] // 256 + rng.integers(-9, 10, size=n), 0, 255)
    st.push(*M.start_freq(x, loc, inv, w), 24)
    pushed.append((x, loc, inv, w))
words = st.to_words()
out["words"] = hashlib.sha256(words.astype("<u4").tobytes()).hexdigest()
out["n_words"] = int(len(words))
back = Stack.from_words(words, 128)
ok = True
for x, loc, inv, w in reversed(pushed):
    got = back.pop(n, 24, lambda cf, sl: M.find(cf, loc[sl], inv[sl], w[sl]))
    ok = ok and bool(np.array_equal(got, x))
out["decoded"] = ok
out["tables"] = hashlib.sha256(M.sigmoid_table().tobytes() + M.exp_table().tobytes()).hexdigest()
f = np.__dict__.get("_core", None)
feats = f._multiarray_umath.__cpu_features__ if f is not None else {}
out["avx2_loops"] = bool(feats.get("X86_V3", feats.get("AVX2", False)))
out["avx512_loops"] = bool(feats.get("X86_V4", feats.get("AVX512F", False)))
out["torch"] = "torch" in sys.modules
print("RESULT " + json.dumps(out))
"""

# numpy 2.x dispatch targets above the baseline. numpy >= 2 ignores the 1.x names (AVX512F,
# AVX512_SKX, AVX512CD, AVX2, FMA3, F16C) with a warning, so for it only these switch loops off.
NO_SIMD = ("X86_V3 X86_V4 AVX512_ICL AVX512_SPR" if int(np.__version__.split(".")[0]) >= 2
           else "AVX512F AVX512_SKX AVX512CD AVX2 FMA3 F16C")


def _child(env_extra: dict) -> dict:
    env = dict(os.environ, **env_extra)
    r = run_limited([sys.executable, "-c", CHILD], cpu_s=120, hang_guard_s=1800, env=env,
                    capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_same_words_with_numpy_simd_loops_switched_off():
    """Encode in this process and in a child without numpy's AVX2/AVX-512 loops: identical
    words, both decode, and torch is not loaded."""
    ns: dict = {"__name__": "child"}
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(CHILD, ns)
    here = json.loads(buf.getvalue().split("RESULT ", 1)[1])
    plain = _child({})
    off = _child({"NPY_DISABLE_CPU_FEATURES": NO_SIMD})
    assert not off["avx2_loops"] and not off["avx512_loops"]
    assert here["decoded"] and plain["decoded"] and off["decoded"]
    for key in ("words", "n_words", "tables"):
        assert here[key] == plain[key] == off[key]
    assert not plain["torch"]


def test_coding_modules_import_only_numpy_and_the_standard_library():
    """rans.py and mixture.py import neither torch nor constriction (the package's
    __init__ loads constriction for the digit codec; these two modules do not need it)."""
    import ast

    from vlaecodec import rans

    allowed = {"__future__", "decimal", "typing", "numpy", "numpy._core.umath",
               "numpy.core.umath", "time", "vlaecodec.rans"}
    for mod in (rans, M):
        tree = ast.parse(open(mod.__file__).read())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert names <= allowed, (mod.__name__, names - allowed)


def test_speed_bench_runs():
    """python -m vlaecodec.mixture's bench: a round trip (asserted inside); no timing asserted."""
    res = M._bench(rows=50, k=3, calls=4, repeats=1)
    assert res["subpixels"] == 200 and res["push_per_s"] > 0 and res["pop_per_s"] > 0


def test_docstring_examples():
    import doctest

    assert doctest.testmod(M).failed == 0
