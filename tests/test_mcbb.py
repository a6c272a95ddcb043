"""Monte Carlo bits-back (codec._push_bits_back with K particles): push and pop are
exact mirrors, the importance weights are the same integers on both sides, files with
particles round-trip and carry K in the header, and hostile values are refused."""
from __future__ import annotations

import numpy as np
import pytest

import vlaecodec
from vlaecodec import codec, container
from vlaecodec import numerics as nx

from conftest import synthetic_digits, synthetic_gray


@pytest.fixture
def short_warmup(monkeypatch):
    """MC batches after 8 bits-back images (instead of 256) so small chains use them."""
    monkeypatch.setattr(container, "MC_WARMUP", 8)


def _stack(seed: int, words: int = 4000):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 ** 32, words, dtype=np.uint64).astype(np.uint32)


@pytest.mark.parametrize("particles", [1, 2, 5])
@pytest.mark.parametrize("which", ["tiny", "tiny8"])
def test_batch_push_and_pop_are_mirrors(request, which, particles):
    """Popping a batch gives back the images and leaves the stack exactly as it was."""
    net = request.getfixturevalue(which).net
    x = synthetic_digits(6, seed=1) if which == "tiny" else synthetic_gray(4, seed=1)
    words = _stack(particles)
    coder = codec.new_coder(words.copy(), seal=True)
    codec._push_bits_back(net, x, coder, net.posterior(x), particles)
    dec = codec.new_coder(coder.get_compressed())
    back = codec._pop_bits_back(net, len(x), dec, particles)
    assert np.array_equal(back, x)
    assert np.array_equal(dec.get_compressed(unseal=True), words)


def test_particles_lower_the_rate_towards_the_iwae_bound():
    """Net bits per image, on a stack with plenty of bits: K particles cost less than one
    (the importance-weighted bound is tighter than the ELBO). The shipped model on the
    bundled sample digits, each coded 4 times (its gain is ~1 bit per image)."""
    from pathlib import Path

    from vlaecodec.images import load_png
    paths = sorted((Path(__file__).resolve().parent.parent / "samples" / "digits").glob("*.png"))
    x = np.stack([load_png(p.read_bytes(), p.name)[0] for p in paths] * 4)
    net = vlaecodec.load_model("vlae-mnist-v2").net
    cost = {}
    for k in (1, 8):
        coder = codec.new_coder(_stack(7, 20000), seal=True)
        n0 = coder.num_valid_bits()
        codec._push_bits_back(net, x, coder, net.posterior(x), k)
        cost[k] = (coder.num_valid_bits() - n0) / len(x)
    assert cost[8] < cost[1] - 0.3, cost


def test_log_weights_are_the_code_lengths(tiny):
    """log2 w_k = log2 Q(z_k|x) - log2 P(z_k) - log2 P(x|z_k), each from the coders'
    own integer frequency tables, recomputed here one particle and image at a time."""
    net, g = tiny.net, tiny.net.grid
    x = synthetic_digits(3, seed=3)
    mean, log_std = net.posterior(x)
    rng = np.random.default_rng(0)
    kk = np.rint(mean / g.unit).astype(np.int64)[:, None, :] + rng.integers(-3, 4, (3, 4, mean.shape[1]))
    lw = codec._log_weights(net, x, kk, mean, log_std)
    for i in range(3):
        for p in range(4):
            k = kk[i, p]
            q = g.posterior_freqs(mean[i], log_std[i])[np.arange(len(k)), k + g.K]
            z = g.values(k)[None]
            pr = g.prior_freqs(net.prior_means(z)[0])[np.arange(len(k)), k + g.K]
            f1 = net.pixel_freqs(x[i:i + 1], z)[0]
            px = np.where(x[i].ravel() == 1, f1, 2 ** 16 - f1).astype(np.int64)
            want = (nx.nll_q16(q, nx.CDF_BITS).sum() - nx.nll_q16(pr, nx.CDF_BITS).sum()
                    - nx.NLL_Q16[px].sum())
            assert lw[i, p] == want


def test_weight_tables_are_deterministic():
    e = nx.exp2_table()
    assert e[0] == 1 << nx.EXP_BITS and e[256] == 1 << (nx.EXP_BITS - 1) and e[-1] == 0
    assert np.array_equal(e[:-1], np.rint(2.0 ** nx.EXP_BITS * 2.0 ** (-np.arange(len(e) - 1) / 256)))
    f = np.array([1, 2, 3, 2 ** 15, 2 ** 16 - 1, 2 ** 16, 12345678, 2 ** 24])
    got = nx.nll_q16(f, 24) / 65536
    assert np.all(np.abs(got - (24 - np.log2(f))) < 2 ** -14)
    assert nx.nll_q16(np.array([0]), 24)[0] == nx.nll_q16(np.array([1]), 24)[0]   # 0 counts as 1


@pytest.mark.parametrize("which", ["tiny", "tiny8"])
def test_archives_with_particles_round_trip(request, which, short_warmup):
    loaded = request.getfixturevalue(which)
    x = list(synthetic_digits(40, seed=4) if which == "tiny" else synthetic_gray(40, seed=4))
    blob = vlaecodec.compress(x, loaded, particles=3)
    h = vlaecodec.inspect(blob)
    assert h.particles == 3
    sizes = [s for s, _ in h.schedule[1:]]
    before = np.cumsum([0] + sizes[:-1])
    assert any(container.batch_particles(int(b), 3) == 3 for b in before)   # MC batches inside
    out = vlaecodec.decompress(blob, loaded)
    assert all(np.array_equal(a, b) for a, b in zip(out.images, x))
    # One particle (the default) stores nothing extra; a single image has no particles.
    assert vlaecodec.inspect(vlaecodec.compress(x, loaded)).particles == 1
    assert vlaecodec.inspect(vlaecodec.compress(x[:1], loaded, particles=4)).particles == 1


def test_warmup_batches_use_one_particle(tiny):
    assert container.batch_particles(0, 4) == 1
    assert container.batch_particles(container.MC_WARMUP - 1, 4) == 1
    assert container.batch_particles(container.MC_WARMUP, 4) == 4
    assert container.batch_particles(10 ** 6, 1) == 1


def test_particles_out_of_range_are_refused(tiny):
    x = list(synthetic_digits(3, seed=5))
    for bad in (0, container.MAX_PARTICLES + 1):
        with pytest.raises(vlaecodec.CodecError, match="particles"):
            vlaecodec.compress(x, tiny, particles=bad)
    with pytest.raises(vlaecodec.CodecError, match="particles"):
        vlaecodec.compress(x, tiny, particles=2, lossy=True)


def test_hostile_particle_counts_are_refused(tiny, short_warmup):
    blob = vlaecodec.compress(list(synthetic_digits(30, seed=6)), tiny, particles=2)
    h, payload = container.unpack(blob)
    for bad in (1, 0, container.MAX_PARTICLES + 1, 255):
        h.particles = bad
        if bad == 1:
            continue
        with pytest.raises(container.ContainerError, match="particles"):
            container.pack(h, payload, [])
    # A particle byte patched into a valid header: refused by the parser, not decoded.
    raw = bytearray(blob)
    pos = blob.index(bytes([2]), 6)   # the particle byte follows the fixed fields
    for bad in (0, 1, container.MAX_PARTICLES + 1):
        raw[pos] = bad
        with pytest.raises(container.ContainerError):
            vlaecodec.decompress(bytes(raw), tiny)
