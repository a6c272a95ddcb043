"""evaluate(): the -ELBO split, bits/dim, IWAE bound and seeding, on the tiny test model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import synthetic_digits
from vlaecodec.evaluate import evaluate, nats_to_bits_per_dim, neg_elbo_bits_per_dim


@pytest.fixture(scope="module")
def images():
    return synthetic_digits(24, seed=3)


def test_terms_finite_and_consistent(tiny, images):
    r = evaluate(tiny, images)
    assert r["n"] == len(images)
    for k in ("neg_elbo_nats", "neg_elbo_bpd", "rec_nats", "kl_nats"):
        assert math.isfinite(r[k]), k
    assert r["kl_nats"] >= 0.0
    assert r["rec_nats"] > 0.0
    assert r["neg_elbo_nats"] == pytest.approx(r["rec_nats"] + r["kl_nats"], rel=1e-9, abs=1e-9)
    assert r["neg_elbo_bpd"] == pytest.approx(r["neg_elbo_nats"] / (28 * 28 * math.log(2)), rel=1e-12)
    assert r["iwae_k"] is None and r["iwae_nll_nats"] is None and r["iwae_bpd"] is None


def test_bits_per_dim_conversion():
    # 784 * ln 2 nats per 28x28 image is exactly one bit per pixel.
    assert nats_to_bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0, rel=1e-15)


def test_elbo_matches_model_terms_at_same_noise(tiny, images):
    """The numbers are the model's own -log p(x|z) and log q - log p at z = mu + sigma*eps."""
    m = tiny.float_model()
    x = torch.from_numpy(images.astype(np.int64))
    eps = torch.randn(len(images), m.cfg.latent_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        mean, log_std = m.encoder(x)
        z = mean + torch.exp(log_std) * eps
        from vlaecodec.vlae import gaussian_log_prob
        kl = (gaussian_log_prob(z, mean, log_std) - m.prior.log_prob_dims(z)).sum(1).double().mean().item()
        rec = m.pixel_nll(x, m.decoder_logits(x, z)).double().mean().item()
    r = evaluate(tiny, images, seed=7)
    assert r["rec_nats"] == pytest.approx(rec, rel=1e-6)
    assert r["kl_nats"] == pytest.approx(kl, rel=1e-5, abs=1e-5)


def test_seeded_and_batch_size_independent(tiny, images):
    a = evaluate(tiny, images, seed=1, batch_size=500)
    b = evaluate(tiny, images, seed=1, batch_size=5)
    c = evaluate(tiny, images, seed=2)
    assert a["neg_elbo_nats"] == pytest.approx(b["neg_elbo_nats"], rel=1e-6)
    assert a["kl_nats"] == pytest.approx(b["kl_nats"], rel=1e-5, abs=1e-5)
    assert a["kl_nats"] != c["kl_nats"]  # the seed is really used
    state = torch.get_rng_state()
    evaluate(tiny, images, iwae_k=4, seed=1)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone


def test_iwae_is_tighter_than_elbo_on_average(tiny, images):
    iw, ne = [], []
    for seed in range(3):
        r = evaluate(tiny, images, iwae_k=16, seed=seed)
        assert r["iwae_k"] == 16
        assert r["iwae_bpd"] == pytest.approx(r["iwae_nll_nats"] / (784 * math.log(2)), rel=1e-12)
        iw.append(r["iwae_nll_nats"])
        ne.append(r["neg_elbo_nats"])
    assert np.mean(iw) <= np.mean(ne) + 0.05


def test_standard_errors_for_subset_reports(tiny, images):
    r = evaluate(tiny, images, iwae_k=8, seed=0)
    # the paired gap is the difference of the two means, and each error is positive
    assert r["elbo_iwae_gap_nats"] == pytest.approx(r["neg_elbo_nats"] - r["iwae_nll_nats"], abs=1e-9)
    for k in ("neg_elbo_stderr_nats", "iwae_stderr_nats", "elbo_iwae_gap_stderr_nats"):
        assert r[k] > 0
    assert r["elbo_iwae_gap_stderr_nats"] < r["iwae_stderr_nats"]   # pairing removes the images' spread
    one = evaluate(tiny, images[:1], iwae_k=2)
    assert one["neg_elbo_stderr_nats"] is None and one["elbo_iwae_gap_nats"] is not None


def test_progress_mode_and_shortcut(tiny, images):
    seen = []
    model = tiny.float_model()
    model.train()
    try:
        r = evaluate(tiny, images, batch_size=10, progress=seen.append)
        assert model.training  # evaluate() restores the mode it found
    finally:
        model.eval()
    assert seen == [10, 20, 24]
    # Per-image terms are float32 (unit roundoff 6e-8, sums of 784 pixel terms): batches
    # of 10 and of 500 run different kernels, so the two agree to ~1e-8, not to 1e-9
    # (measured 5e-9). rel=1e-6 is what float32 can honour; a wrong seed moves the
    # number by 1e-4 or more (checked below), so the tolerance still catches one.
    whole = neg_elbo_bits_per_dim(tiny, images)
    assert whole == pytest.approx(r["neg_elbo_bpd"], rel=1e-6)
    other_seed = evaluate(tiny, images, seed=1)["neg_elbo_bpd"]
    assert abs(other_seed / whole - 1) > 1e-4
    with pytest.raises(ValueError):
        evaluate(tiny, images[:, :20, :20])


def test_installed_model_and_its_float_model_evaluate_alike(tiny, images):
    """evaluate() of an installed (integer) model evaluates the float checkpoint it
    was frozen from."""
    a = evaluate(tiny, images, seed=3)
    b = evaluate(tiny.float_model(), images, seed=3)
    assert a == b
