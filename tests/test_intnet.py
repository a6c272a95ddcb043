"""intnet.py + freeze.py: the integer model both coding sides run.

* it tracks the float model it was frozen from (tolerances: quantization is lossy);
* the decoder's pixel stepper equals the encoder's parallel pass (array equality:
  the codec relies on it);
* causality: the prior's m_i reads only z_<i, pixel t reads only pixels < t;
* results do not depend on how images are batched (exact sums in any order);
* model files are deterministic and round-trip.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from conftest import synthetic_digits, tiny_float_model
from vlaecodec import freeze
from vlaecodec import numerics as nx
from vlaecodec.intnet import Dense, IntVLAE, load_arrays

BINS = [4, 3, 2, 1, 1, 2, 1, 1]


def _sharpened_float_model():
    """The tiny model with weights scaled up so that the integer paths saturate: pixel
    logits beyond the sigmoid table (+-16), log-std at its clamp, ELU tables at -1."""
    m = tiny_float_model()
    with torch.no_grad():
        m.pixelcnn.head.weight.mul_(60.0)
        m.pixelcnn.head.bias.fill_(2.0)
        m.encoder.out.weight.mul_(40.0)
        m.zfeatures.lin.weight.mul_(8.0)
        m.pixelcnn.convs[0].weight.mul_(6.0)
        for made in m.prior.steps:
            made.l2.weight.mul_(20.0)
    return m.eval()


@pytest.fixture(scope="module")
def float_model():
    return tiny_float_model()


@pytest.fixture(scope="module")
def arrays(float_model):
    return freeze.to_integer(float_model, name="t", direct_bins=BINS)


@pytest.fixture(scope="module")
def net(arrays):
    return IntVLAE(arrays)


@pytest.fixture(scope="module")
def sharp():
    return IntVLAE(freeze.to_integer(_sharpened_float_model(), name="sharp", direct_bins=BINS))


@pytest.fixture(scope="module")
def x():
    return synthetic_digits(8, seed=21)


def _latent_sets(net: IntVLAE, x: np.ndarray) -> list[np.ndarray]:
    """Several kinds of z on the grid: posterior means, random cells, the grid's ends,
    direct-coding latents (off-grid)."""
    g, d = net.grid, net.cfg.latent_dim
    rng = np.random.default_rng(3)
    mean, _ = net.posterior(x)
    b = len(x)
    return [g.values(np.clip(np.round(mean / g.unit), -g.K, g.K)),
            g.values(rng.integers(-24, 25, size=(b, d))),
            g.values(rng.choice([-g.K, g.K], size=(b, d))),
            net.direct_latents(rng.integers(0, 2, size=(b, d)) * (np.array(net.direct_bins) > 1))]


# ------------------------------------------------------- integer vs float model

def test_integer_model_tracks_the_float_model(net, float_model, x):
    xt = torch.from_numpy(x.astype(np.int64))
    with torch.no_grad():
        mu, ls = float_model.encoder(xt)
    mi, lsi = net.posterior(x)
    assert np.abs(mi / nx.ONE - mu.double().numpy()).max() < 3e-3
    assert np.abs(lsi / nx.ONE - ls.double().numpy()).max() < 3e-3

    rng = np.random.default_rng(0)
    for z in (net.grid.values(rng.integers(-24, 25, size=(len(x), net.cfg.latent_dim))),
              net.grid.values(np.round(mi / net.grid.unit))):
        zt = torch.from_numpy(z / nx.ONE).float()
        with torch.no_grad():
            m_float = float_model.prior.conditional_means(zt).double().numpy()
            logits = float_model.decoder_logits(xt, zt)
            nll_float = float_model.pixel_nll(xt, logits).double().numpy()
            p_float = torch.sigmoid(logits[..., 0].double()).numpy().reshape(len(x), -1)
        assert np.abs(m_float).max() > 0.05  # the AR prior is not trivial here
        assert np.abs(net.prior_means(z) / nx.ONE - m_float).max() < 3e-3
        p_int = net.pixel_freqs(x, z) / 2 ** nx.PIXEL_FREQ_BITS
        assert np.abs(p_int - p_float).max() < 1e-3
        bits = x.reshape(len(x), -1)
        nll_int = -np.log(np.where(bits == 1, p_int, 1 - p_int)).sum(1)
        assert np.all(np.abs(nll_int / nll_float - 1) < 1e-3)


# ------------------------------------------------------- stepper == parallel pass

def _stepper_freqs(net: IntVLAE, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    st = net.stepper(z)
    bits = x.reshape(len(x), -1)
    out = np.empty(bits.shape)
    for t in range(bits.shape[1]):
        out[:, t] = st.freqs(t)
        st.set_pixel(t, bits[:, t])
    return out


@pytest.mark.parametrize("which", ["tiny", "sharpened"])
def test_stepper_equals_parallel_pass(which, net, sharp, x):
    n = sharp if which == "sharpened" else net
    noise = np.random.default_rng(9).integers(0, 2, size=(2,) + x.shape[1:]).astype(np.uint8)
    imgs = np.concatenate([x[:4], noise, np.zeros_like(x[:1]), np.ones_like(x[:1])])
    zs = _latent_sets(n, imgs)
    xs, z = np.concatenate([imgs] * len(zs)), np.concatenate(zs)   # one stepper batch for all
    par = n.pixel_freqs(xs, z)
    step = _stepper_freqs(n, xs, z)
    assert par.shape == (len(xs), 28 * 28)
    assert np.array_equal(step, par)
    assert np.array_equal(par, np.floor(par)) and par.min() >= 1 and par.max() < 2 ** nx.PIXEL_FREQ_BITS
    if which == "sharpened":  # the saturating paths really ran
        assert par.min() == 1 or par.max() == 2 ** nx.PIXEL_FREQ_BITS - 1
        _, ls = n.posterior(imgs)
        assert ls.min() == nx.LOG_STD_MIN or ls.max() == nx.LOG_STD_MAX


def test_pixel_t_reads_only_earlier_pixels(sharp, x):
    z = _latent_sets(sharp, x)[1]
    base = sharp.pixel_freqs(x, z)
    rng = np.random.default_rng(4)
    for t in (0, 1, 27, 28, 29, 200, 405, 783):
        y = x.reshape(len(x), -1).copy()
        y[:, t:] = rng.integers(0, 2, size=y[:, t:].shape)
        got = sharp.pixel_freqs(y.reshape(x.shape), z)
        assert np.array_equal(got[:, :t + 1], base[:, :t + 1]), t


def test_stepper_reads_nothing_it_was_not_given(net, x):
    """Pixels >= t are never set before freqs(t), yet it equals the parallel pass on
    the full images: the stepper reads only the causal window."""
    z = _latent_sets(net, x)[0]
    st = net.stepper(z)
    par = net.pixel_freqs(x, z)
    bits = x.reshape(len(x), -1)
    for t in range(100):
        assert np.array_equal(st.freqs(t), par[:, t])
        st.set_pixel(t, bits[:, t])


# ------------------------------------------------------- prior causality

@pytest.mark.parametrize("which", ["tiny", "sharpened"])
def test_prior_mean_i_reads_only_earlier_dimensions(which, net, sharp):
    n = sharp if which == "sharpened" else net
    d = n.cfg.latent_dim
    rng = np.random.default_rng(7)
    z = n.grid.values(rng.integers(-40, 41, size=(16, d)))
    m = n.prior_means(z)
    assert np.abs(m).max() > 0
    for i in range(d):
        for fill in ("random", "zeros", "extreme"):
            z2 = z.copy()
            if fill == "random":
                z2[:, i:] = n.grid.values(rng.integers(-n.grid.K, n.grid.K + 1, size=z2[:, i:].shape))
            elif fill == "zeros":
                z2[:, i:] = 0.0                    # what a decoder passes
            else:
                z2[:, i:] = nx.ACT_LIMIT
            assert np.array_equal(n.prior_means(z2)[:, :i + 1], m[:, :i + 1]), (i, fill)
    assert np.array_equal(m[:, 0], np.full(16, m[0, 0]))  # m_0 is a constant


# ------------------------------------------------------- batching independence

def test_results_do_not_depend_on_the_batch(net, x):
    z = _latent_sets(net, x)[1]
    mean, ls = net.posterior(x)
    m = net.prior_means(z)
    f = net.pixel_freqs(x, z)
    for chunk in (1, 3):   # the parallel pass's internal chunking
        assert np.array_equal(net.pixel_freqs(x, z, chunk=chunk), f)
    for i in (0, 3, 7):
        a, b = net.posterior(x[i:i + 1])
        assert np.array_equal(a[0], mean[i]) and np.array_equal(b[0], ls[i])
        assert np.array_equal(net.prior_means(z[i:i + 1])[0], m[i])
        assert np.array_equal(net.pixel_freqs(x[i:i + 1], z[i:i + 1])[0], f[i])
    big = np.concatenate([x] * 9)
    assert np.array_equal(net.posterior(big)[0][-len(x):], mean)


def test_dense_layers_are_exact_integer_arithmetic(net):
    """Every layer's GEMM on integers below the bounds gives the exact integer result
    (compared with int64 arithmetic), whatever the BLAS does inside."""
    rng = np.random.default_rng(11)
    layers = [v for v in vars(net).values() if isinstance(v, Dense)]
    for v in vars(net).values():
        if isinstance(v, list):
            for item in v:
                layers += [u for u in (item if isinstance(item, tuple) else (item,)) if isinstance(u, Dense)]
    # (The transposed convolutions hold (Cin, 16 * Cout) weights and scatter their
    # products themselves: not a plain Dense call.)
    layers = [u for u in layers if u.b.shape[0] == u.w.shape[1]]
    assert len(layers) >= 8
    lim = int(nx.ACT_LIMIT)
    for layer in layers:
        w = layer.w
        assert np.array_equal(w, np.round(w)) and np.abs(w).max() <= 2 ** nx.WEIGHT_BITS
        # Worst-case partial sums stay below 2**52.
        assert w.shape[0] * np.abs(w).max() * lim + np.abs(layer.b).max() < nx.EXACT_LIMIT
        xi = rng.integers(-lim, lim + 1, size=(37, w.shape[0]))
        xi[0] = lim * np.sign(w[:, 0]).astype(np.int64)      # the largest sum for output 0
        got = layer(xi.astype(np.float64))
        acc = xi @ w.astype(np.int64) + layer.b.astype(np.int64)
        s = layer.shift
        want = (acc + (1 << (s - 1))) >> s if s else acc
        assert np.array_equal(got, np.clip(want, -lim, lim).astype(np.float64))


# ------------------------------------------------------- model files

def test_model_bytes_deterministic_and_round_trip(arrays, float_model, net, x):
    blob = freeze.model_bytes(arrays)
    assert freeze.model_bytes(arrays) == blob
    assert freeze.model_bytes(dict(reversed(list(arrays.items())))) == blob   # key order does not matter
    again = freeze.to_integer(float_model, name="t", direct_bins=BINS)
    assert freeze.model_bytes(again) == blob                                   # freezing is deterministic
    back = load_arrays(io.BytesIO(blob))
    assert back.keys() == arrays.keys()
    for k in arrays:
        assert back[k].dtype == arrays[k].dtype and np.array_equal(back[k], arrays[k]), k
    net2 = IntVLAE(back)
    z = _latent_sets(net, x)[1]
    assert np.array_equal(net2.pixel_freqs(x, z), net.pixel_freqs(x, z))
    assert np.array_equal(net2.posterior(x)[0], net.posterior(x)[0])
    # No pickles: numpy's safe loader reads it.
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:
        assert set(f.files) == set(arrays)


def test_installed_tiny_model_is_the_frozen_tiny_model(tiny):
    from conftest import TINY_NAME
    arrays = freeze.to_integer(tiny_float_model(), name=TINY_NAME, direct_bins=BINS)
    arrays = freeze.with_lossy_levels(arrays, freeze.lossy_tables(np.linspace(1.0, 0.1, 8)))
    assert tiny.path.read_bytes() == freeze.model_bytes(arrays)


def _with_meta(arrays, **changes):
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta.update(changes)
    out = dict(arrays)
    out["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return out


@pytest.mark.parametrize("damage,match", [
    (lambda a: _with_meta(a, format="other"), "not a vlaecodec-int"),
    (lambda a: _with_meta(a, format_version=99), "not a vlaecodec-int"),
    (lambda a: _with_meta(a, frac=nx.FRAC + 1), "another fixed-point format"),
    (lambda a: {**a, "lut.phi": a["lut.phi"][::-1].copy()}, "not a CDF"),
    (lambda a: {**a, "direct.offsets": a["direct.offsets"][:-1]}, "offset table"),
    (lambda a: {k: v for k, v in a.items() if k != "lut.sigmoid"}, "lut.sigmoid"),
])
def test_damaged_model_arrays_refused(arrays, damage, match):
    with pytest.raises(ValueError, match=match):
        IntVLAE(damage(arrays))


def test_freezing_refuses_layers_whose_sums_could_round():
    m = tiny_float_model()
    with torch.no_grad():
        m.encoder.out.bias[0] = 1e12   # a bias far beyond the weights' scale
    with pytest.raises(ValueError, match="not exact"):
        freeze.to_integer(m)


def test_coding_tables_can_be_replaced(arrays, net):
    other = IntVLAE(freeze.with_direct_bins(arrays, [2] * 8))
    assert other.direct_bins == [2] * 8 and net.direct_bins == BINS
    assert [len(o) for o in other.direct_offsets] == [2] * 8
    finer = IntVLAE(freeze.with_latent_step(arrays, -4))
    assert finer.grid.step_log2 == -4 and finer.grid.K == 2 * net.grid.K
    assert freeze.model_bytes(freeze.with_latent_step(arrays, -3)) != freeze.model_bytes(freeze.with_latent_step(arrays, -4))
    # The networks themselves are untouched.
    x = synthetic_digits(2, seed=1)
    assert np.array_equal(other.posterior(x)[0], net.posterior(x)[0])


def test_direct_offsets_are_equal_mass_bin_medians(net):
    from statistics import NormalDist
    for k, off in zip(net.direct_bins, net.direct_offsets):
        if k == 1:
            assert np.array_equal(off, [0.0])
            continue
        want = [round(NormalDist().inv_cdf((j + 0.5) / k) * nx.ONE) for j in range(k)]
        assert np.array_equal(off, want)
        assert np.array_equal(off, -off[::-1])   # symmetric


def test_direct_latents_follow_the_prior(net):
    rng = np.random.default_rng(2)
    js = np.stack([rng.integers(0, k, size=10) for k in net.direct_bins], axis=1)
    z = net.direct_latents(js)
    m = net.prior_means(z)
    for i in range(net.cfg.latent_dim):
        assert np.array_equal(z[:, i], m[:, i] + net.direct_offsets[i][js[:, i]])


def test_a_factorized_decoder_codes_exactly(x):
    """1x1 masked kernels read no pixel (the information-preference study's factorized
    decoder, preset vlae-mnist-factorized-decoder): the pixel frequencies depend on z
    only, the stepper still equals the parallel pass, and files round-trip."""
    from vlaecodec import codec
    from vlaecodec.config import VLAEConfig, preset
    from vlaecodec.vlae import VLAE
    from vlaecodec.zoo import LoadedModel

    assert preset("vlae-mnist-factorized-decoder").receptive_rows == 0
    torch.manual_seed(5)
    cfg = VLAEConfig(**{**preset("vlae-tiny").to_dict(), "pcnn_kernel": 1})
    n = IntVLAE(freeze.to_integer(VLAE(cfg).eval(), name="f", direct_bins=BINS))
    assert n.taps_a == []
    z = _latent_sets(n, x)[0]
    par = n.pixel_freqs(x, z)
    assert np.array_equal(_stepper_freqs(n, x, z), par)
    other = np.random.default_rng(1).integers(0, 2, size=x.shape).astype(np.uint8)
    assert np.array_equal(n.pixel_freqs(other, z), par)   # no pixel is read
    loaded = LoadedModel(name="f", sha256="0" * 64, net=n)
    imgs = np.concatenate([x, other])
    out = codec.decompress(codec.compress(list(imgs), loaded), loaded)
    assert np.array_equal(np.asarray(out.images), imgs)


@pytest.mark.parametrize("which", ["tiny", "sharpened"])
def test_prior_stepper_equals_the_full_prior_pass(which, net, sharp, x):
    """The decoder's dimension-by-dimension prior gives prior_means' integers exactly,
    for on-grid, off-grid and saturating latents."""
    n = sharp if which == "sharpened" else net
    z = np.concatenate(_latent_sets(n, x) + [np.full((2, n.cfg.latent_dim), float(nx.ACT_LIMIT)),
                                             np.full((2, n.cfg.latent_dim), -4.0e6)])
    full = n.prior_means(z)
    st = n.prior_stepper(len(z))
    got = np.empty_like(full)
    for i in range(n.cfg.latent_dim):
        got[:, i] = st.mean(i)
        st.set(i, z[:, i])
    assert np.array_equal(got, full)
    assert np.any(full != 0)
    with pytest.raises(ValueError, match="before"):
        n.prior_stepper(1).mean(3)


def test_stepper_and_posterior_do_not_depend_on_the_batch(net, x, monkeypatch):
    from vlaecodec import intnet
    z = np.concatenate(_latent_sets(net, x))
    xs = np.concatenate([x] * (len(z) // len(x)))
    whole = _stepper_freqs(net, xs, z)
    h = len(z) // 2 + 1
    halves = np.concatenate([_stepper_freqs(net, xs[:h], z[:h]), _stepper_freqs(net, xs[h:], z[h:])])
    assert np.array_equal(halves, whole)
    assert np.array_equal(whole, net.pixel_freqs(xs, z))
    mean, ls = net.posterior(xs)
    monkeypatch.setattr(intnet, "POSTERIOR_IMAGES", 3)   # chunks of 3, a partial last one
    m3, l3 = net.posterior(xs)
    assert np.array_equal(m3, mean) and np.array_equal(l3, ls)


def test_thread_pool_passes_equal_the_serial_ones(net, x):
    from vlaecodec import blas, intnet
    z = np.concatenate(_latent_sets(net, x))
    xs = np.concatenate([x] * (len(z) // len(x)))
    big = np.concatenate([xs] * 8)
    want = (net.pixel_freqs(xs, z), net.posterior(big), net.prior_means(z))
    before = blas.get_threads()
    with intnet.threads(net, 3):
        assert net.pool is not None and net.pool_size == 3
        if before is not None:
            assert blas.get_threads() == 1
        got = (net.pixel_freqs(xs, z), net.posterior(big), net.map(net.prior_means, z))
    assert net.pool is None and blas.get_threads() == before
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[2], want[2])
    assert all(np.array_equal(a, b) for a, b in zip(got[1], want[1]))
