"""numerics.py: the fixed-point rules and frozen tables both coding sides compute with.

Everything here is exact, so it is checked with equality against Python integers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vlaecodec import numerics as nx

TABLES = nx.build_tables()
LIMIT = int(nx.ACT_LIMIT)


def _elu_table(stored: np.ndarray) -> np.ndarray:
    """The table ``nx.elu`` takes, from the stored one."""
    return nx.elu_table(stored)


def _grid(step_log2: int = -3, max_index: int = 80) -> nx.LatentGrid:
    return nx.LatentGrid(step_log2, max_index, TABLES["lut.phi"], TABLES["lut.inv_sigma"])


# ---------------------------------------------------------------- rescale / lookup

def _rescale_int(a: int, s: int) -> int:
    """The rule in words: floor(a / 2**s + 1/2), saturated; Python ints, floor shifts."""
    r = (a + (1 << (s - 1))) >> s if s else a
    return max(-LIMIT, min(LIMIT, r))


@pytest.mark.parametrize("shift", [0, 1, 2, 5, 12, 13, 16, 20, 27, 31, 40])
def test_rescale_is_a_rounding_shift_with_saturation(shift):
    rng = np.random.default_rng(shift)
    vals = [int(v) for v in rng.integers(-2 ** 50, 2 ** 50, size=3000)]
    # Magnitudes of every size, exact halves (ties round up, also below zero), edges.
    vals += [int(v) >> int(k) for v, k in zip(rng.integers(-2 ** 50, 2 ** 50, size=2000), rng.integers(0, 50, size=2000))]
    if shift:
        half = 1 << (shift - 1)
        vals += [m * (1 << shift) + half for m in range(-5, 5)] + [m * (1 << shift) - half for m in range(-5, 5)]
    vals += [0, 1, -1, 2 ** 50, -2 ** 50, LIMIT << shift, -(LIMIT << shift), (LIMIT << shift) + (1 << shift),
             -(LIMIT << shift) - (1 << shift)]
    acc = np.array(vals, dtype=np.float64)
    assert all(int(a) == v for a, v in zip(acc, vals))  # the inputs are exact in float64
    got = nx.rescale(acc.copy(), shift)
    want = np.array([_rescale_int(v, shift) for v in vals], dtype=np.float64)
    assert np.array_equal(got, want)


def test_rescale_works_in_place_and_keeps_shape():
    acc = np.arange(-12.0, 12.0).reshape(4, 6) * 1000
    out = nx.rescale(acc, 3)
    assert out is acc and out.shape == (4, 6)
    assert np.array_equal(out, np.floor(np.arange(-12.0, 12.0).reshape(4, 6) * 1000 / 8 + 0.5))


def test_lookup_clips_to_the_table():
    table = np.arange(100, 111)  # indices -5..5
    v = np.array([-100.0, -6, -5, -1, 0, 3, 5, 6, 1e9])
    assert np.array_equal(nx.lookup(table, v, -5, 5), [100, 100, 100, 104, 105, 108, 110, 110, 110])
    assert np.array_equal(v, [-100.0, -6, -5, -1, 0, 3, 5, 6, 1e9])  # input untouched


# ---------------------------------------------------------------- tables

def test_elu_table_values():
    t = TABLES["lut.elu"]
    assert t.shape == (nx.ELU_RANGE + 1,) and t.dtype == np.int32
    j = np.arange(-nx.ELU_RANGE, 1)
    want = np.array([round(math.expm1(v / nx.ONE) * nx.ONE) for v in j.tolist()])
    assert np.all(np.abs(t - np.expm1(j / nx.ONE) * nx.ONE) <= 0.5)
    assert np.array_equal(t, want)
    assert t[-1] == 0 and t[0] == -nx.ONE           # elu(0) = 0, saturates at -1
    assert np.all(np.diff(t) >= 0)
    assert t[nx.ELU_RANGE - nx.ONE] == round(math.expm1(-1.0) * nx.ONE)   # elu(-1) = -2589/4096


def test_elu_fixed_point():
    t = TABLES["lut.elu"].astype(np.float64)
    table = _elu_table(TABLES["lut.elu"])
    rng = np.random.default_rng(1)
    y = np.concatenate([rng.integers(-40 * nx.ONE, 40 * nx.ONE, size=5000),
                        [-nx.ELU_RANGE - 1, -nx.ELU_RANGE, -1, 0, 1, LIMIT, -LIMIT]]).astype(np.float64)
    got = nx.elu(y.copy(), table)
    want = np.array([v if v >= 0 else t[max(int(v), -nx.ELU_RANGE) + nx.ELU_RANGE] for v in y])
    assert np.array_equal(got, want)
    assert np.all(got >= -nx.ONE)


def test_sigmoid_table():
    s = TABLES["lut.sigmoid"]
    total = 1 << nx.PIXEL_FREQ_BITS
    assert s.shape == (2 * nx.SIGMOID_RANGE + 1,)
    assert s.min() == 1 and s.max() == total - 1     # never a zero-probability pixel
    assert np.all(np.diff(s) >= 0)
    assert s[nx.SIGMOID_RANGE] == total // 2          # sigmoid(0) = 1/2
    assert np.array_equal(s + s[::-1], np.full_like(s, total))  # sigmoid(-x) = 1 - sigmoid(x)
    x = np.arange(-nx.SIGMOID_RANGE, nx.SIGMOID_RANGE + 1) / nx.ONE
    inner = (s > 1) & (s < total - 1)   # the rest is clipped away from 0 and 1
    assert inner.sum() > 0.6 * len(s)
    assert np.abs(s / total - 1 / (1 + np.exp(-x)))[inner].max() <= 0.5 / total + 1e-12


def test_phi_and_inv_sigma_tables():
    phi = TABLES["lut.phi"]
    assert phi.shape == (2 * nx.PHI_RANGE + 1,)
    assert phi[0] >= 0 and phi[-1] <= 1 << nx.CDF_BITS and np.all(np.diff(phi) >= 0)
    assert phi[nx.PHI_RANGE] == 1 << (nx.CDF_BITS - 1)                        # Phi(0) = 1/2
    assert np.array_equal(phi + phi[::-1], np.full_like(phi, 1 << nx.CDF_BITS))  # symmetric
    u = np.arange(-nx.PHI_RANGE, nx.PHI_RANGE + 1, 997)
    want = [0.5 * math.erfc(-v / nx.ONE / math.sqrt(2)) * (1 << nx.CDF_BITS) for v in u.tolist()]
    assert np.abs(phi[u + nx.PHI_RANGE] - want).max() <= 0.5 + 1e-6
    inv = TABLES["lut.inv_sigma"]
    assert inv.shape == (nx.LOG_STD_MAX - nx.LOG_STD_MIN + 1,)
    assert inv[-nx.LOG_STD_MIN] == 1 << nx.INV_SIGMA_FRAC                      # log sigma = 0
    assert np.all(np.diff(inv) <= 0) and inv.min() > 0
    # Largest value times the largest edge distance must stay exact (see posterior_freqs).
    assert float(inv.max()) * 2 ** 20 < 2 ** 53


def test_build_tables_is_deterministic_and_checked():
    again = nx.build_tables()
    assert again.keys() == TABLES.keys()
    assert all(np.array_equal(again[k], TABLES[k]) and again[k].dtype == TABLES[k].dtype for k in TABLES)
    nx.check_tables(TABLES)


@pytest.mark.parametrize("damage,match", [
    (lambda t: t.pop("lut.elu"), "lut.elu is missing"),
    (lambda t: t.__setitem__("lut.sigmoid", t["lut.sigmoid"][:-1]), "lut.sigmoid is missing or has the wrong size"),
    (lambda t: t.__setitem__("lut.phi", t["lut.phi"][::-1].copy()), "not a CDF"),
    (lambda t: t["lut.phi"].__setitem__(-1, (1 << nx.CDF_BITS) + 1), "not a CDF"),
    (lambda t: t["lut.phi"].__setitem__(0, -1), "not a CDF"),
    (lambda t: t["lut.sigmoid"].__setitem__(0, 0), "out of range"),
    (lambda t: t["lut.sigmoid"].__setitem__(-1, 1 << nx.PIXEL_FREQ_BITS), "out of range"),
])
def test_check_tables_refuses_damaged_tables(damage, match):
    t = {k: v.copy() for k, v in TABLES.items()}
    damage(t)
    with pytest.raises(ValueError, match=match):
        nx.check_tables(t)


# ---------------------------------------------------------------- latent grid

def test_grid_values_and_edges():
    g = _grid(-3, 80)
    assert g.size == 161 and g.unit == 2 ** (nx.FRAC - 3)
    assert np.array_equal(g.values(np.array([-80, -1, 0, 1, 80])), np.array([-80, -1, 0, 1, 80]) * 512.0)
    assert np.array_equal(g.edges, (np.arange(-80, 80) + 0.5) * 512)
    for bad in [(1, 80), (-nx.FRAC, 80), (-3, 0), (-3, (1 << 16) + 1)]:
        with pytest.raises(ValueError, match="latent grid"):
            _grid(*bad)


def _check_table(f: np.ndarray, rows: int, size: int) -> None:
    assert f.shape == (rows, size) and f.dtype == np.float64
    assert np.array_equal(f, np.floor(f))          # integer-valued
    assert f.min() >= 0
    assert np.array_equal(f.sum(1), np.full(rows, float(1 << nx.CDF_BITS)))   # exactly 2**24


@pytest.mark.parametrize("step_log2,max_index", [(-3, 80), (-2, 40), (-4, 160), (0, 10), (-8, 2048)])
def test_posterior_tables_are_distributions_with_the_mode_at_the_mean(step_log2, max_index):
    g = _grid(step_log2, max_index)
    rng = np.random.default_rng(max_index)
    n = 400
    span = max_index * g.unit * 0.8
    mean = np.floor(rng.uniform(-span, span, n))
    log_std = np.floor(rng.uniform(nx.LOG_STD_MIN, nx.LOG_STD_MAX, n))
    f = g.posterior_freqs(mean, log_std)
    _check_table(f, n, g.size)
    # The most likely cell is the one holding the mean, or a neighbour: cells are
    # whole numbers of CDF-table steps, so when sigma spans many cells the flat top
    # wobbles by a few percent and the mode may sit up to ~0.25 sigma off. Near the
    # grid's ends the tail beyond the grid, which the end cells hold, may outweigh it.
    sigma = np.exp(log_std / nx.ONE)
    inside = np.abs(mean / nx.ONE) + 3 * sigma < max_index * g.unit / nx.ONE
    assert inside.sum() > n // 4
    mode = f.argmax(1) - max_index
    cells = sigma * nx.ONE / g.unit
    assert np.all((np.abs(mode - mean / g.unit) <= 1.5 + 0.3 * cells)[inside])
    narrow = inside & (sigma < g.unit / nx.ONE)
    assert narrow.any()
    assert np.all(np.abs(mode - np.round(mean / g.unit))[narrow] <= 1)


def test_tables_match_the_gaussian():
    g = _grid(-3, 80)
    mean = np.array([0.0, 1234.0, -20000.0, 7.0 * nx.ONE])
    log_std = np.array([0.0, -nx.ONE, 0.5 * nx.ONE, -2 * nx.ONE])
    f = g.posterior_freqs(mean, log_std) / 2 ** 24
    mu, sd = mean / nx.ONE, np.exp(log_std / nx.ONE)
    edges = np.concatenate([[-np.inf], g.edges / nx.ONE, [np.inf]])
    cdf = np.array([[0.5 * math.erfc(-(e - m) / s / math.sqrt(2)) for e in edges] for m, s in zip(mu, sd)])
    assert np.abs(f - np.diff(cdf, axis=1)).max() < 2e-3


def test_shifting_the_mean_by_one_cell_shifts_the_table():
    g = _grid(-3, 80)
    rng = np.random.default_rng(5)
    n = 300
    mean = np.floor(rng.uniform(-30 * g.unit, 30 * g.unit, n))
    log_std = np.floor(rng.uniform(nx.LOG_STD_MIN, nx.LOG_STD_MAX, n))
    for shift in (1, -1, 3):
        a = g.posterior_freqs(mean, log_std)
        b = g.posterior_freqs(mean + shift * g.unit, log_std)
        # Interior cells move by `shift` exactly; only the two end cells (which hold the
        # tails beyond the grid) may differ.
        if shift > 0:
            assert np.array_equal(b[:, 1 + shift:-1], a[:, 1:-1 - shift])
        else:
            assert np.array_equal(b[:, 1:-1 + shift], a[:, 1 - shift:-1])
        pa, pb = g.prior_freqs(mean), g.prior_freqs(mean + shift * g.unit)
        if shift > 0:
            assert np.array_equal(pb[:, 1 + shift:-1], pa[:, 1:-1 - shift])
        else:
            assert np.array_equal(pb[:, 1:-1 + shift], pa[:, 1 - shift:-1])


def test_prior_table_is_the_unit_posterior():
    g = _grid(-3, 80)
    m = np.floor(np.random.default_rng(6).uniform(-12 * nx.ONE, 12 * nx.ONE, 500))
    p = g.prior_freqs(m)
    _check_table(p, 500, g.size)
    assert np.array_equal(p, g.posterior_freqs(m, np.zeros(500)))


def test_symmetric_mean_gives_a_mirrored_table():
    g = _grid(-3, 80)
    m = np.array([0.0, 3 * g.unit, 17 * g.unit])
    p = g.prior_freqs(m)
    q = g.prior_freqs(-m)
    assert np.array_equal(p, q[:, ::-1])


def test_extreme_inputs_stay_distributions():
    g = _grid(-3, 80)
    mean = np.array([-nx.ACT_LIMIT, nx.ACT_LIMIT, 0.0, 0.0, 1e6, -1e6])
    log_std = np.array([nx.LOG_STD_MIN, nx.LOG_STD_MAX, nx.LOG_STD_MIN, nx.LOG_STD_MAX, -1e9, 1e9])
    f = g.posterior_freqs(mean, log_std)
    _check_table(f, 6, g.size)
    assert f[0, 0] == 2 ** 24 and f[1, -1] == 2 ** 24      # all mass in the end cells
    assert f[2, 80] == 2 ** 24                             # sigma << cell: one cell
    p = g.prior_freqs(np.array([-1e7, 1e7]))
    _check_table(p, 2, g.size)
