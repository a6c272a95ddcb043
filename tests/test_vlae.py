"""The VLAE: local receptive field, exact prior
conditionals, ELBO/IWAE sanity and a few training steps (tiny preset, seeded)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import synthetic_digits
from vlaecodec.config import preset
from vlaecodec.vlae import VLAE

CFG = preset("vlae-tiny")
H = W = CFG.image_size


def _fresh(seed=0, **overrides):
    torch.manual_seed(seed)
    return VLAE(dataclasses.replace(CFG, **overrides)).eval()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: extra threads only add contention (60x slower on a busy 2-core box).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model(tiny):
    return tiny.float_model().eval()


def _window(r, c, cfg):
    """Pixels (row, col) that pixel (r, c)'s logits may depend on."""
    R = cfg.receptive_rows
    reach = cfg.pcnn_layers * (cfg.pcnn_kernel // 2)
    return {(rr, cc) for rr in range(r - R, r + 1) for cc in range(c - reach, c + reach + 1)
            if 0 <= rr < H and 0 <= cc < W and (rr < r or cc < c)}


# ---------------------------------------------------------------- receptive field

@pytest.mark.parametrize("pixel", [(14, 14), (0, 5), (27, 27), (5, 0), (20, 27)])
def test_receptive_field_is_local(model, pixel):
    r, c = pixel
    cfg = model.cfg
    R = cfg.receptive_rows
    assert R == cfg.pcnn_layers * (cfg.pcnn_kernel // 2)
    window = _window(r, c, cfg)
    gen = torch.Generator().manual_seed(r * 100 + c)
    x = torch.randint(0, 2, (H, W), generator=gen)
    z = torch.randn(1, cfg.latent_dim, generator=gen)

    outside = [(rr, cc) for rr in range(H) for cc in range(W) if (rr, cc) not in window]
    far_rows = [(rr, cc) for rr, cc in outside if rr < r - R]
    # Single flips just outside the window, plus "everything outside at once".
    edge = [(r - R - 1, c), (r - 1, c + R + 1), (r - 1, c - R - 1), (r, c), (r, c + 1), (r + 1, c - 1)]
    edge = [(rr, cc) for rr, cc in edge if 0 <= rr < H and 0 <= cc < W]
    variants = []
    for pos in edge:
        v = x.clone()
        v[pos] = 1 - v[pos]
        variants.append(v)
    for group in (outside, far_rows):
        v = x.clone()
        for pos in group:
            v[pos] = 1 - v[pos]
        variants.append(v)
    inside = [(r - 1, c), (r, c - 1), (r - R, c), (r, c - R), (r - R, c - R), (r - R, c + R)]
    inside = [(rr, cc) for rr, cc in inside if 0 <= rr < H and 0 <= cc < W]
    for pos in inside:
        v = x.clone()
        v[pos] = 1 - v[pos]
        variants.append(v)

    n = len(variants) + 1
    xs = torch.stack([x] + variants)
    with torch.no_grad():
        # Same z for all, one batch, so every row goes through identical arithmetic.
        logits = model.decoder_logits(xs, z.expand(n, -1))[:, r, c]
    base = logits[0]
    n_out = len(edge) + 2
    for i in range(n_out):
        assert torch.equal(logits[1 + i], base), f"pixel {pixel} saw a pixel outside its window (variant {i})"
    for j, pos in enumerate(inside):
        assert not torch.equal(logits[1 + n_out + j], base), f"pixel {pixel} ignores {pos} inside its window"


# ---------------------------------------------------------------- prior

@pytest.mark.parametrize("kind", ["ar", "factorized"])
def test_prior_conditional_means_use_only_earlier_dims(model, kind):
    prior = model.prior if kind == "ar" else _fresh(prior="factorized").prior
    d = model.cfg.latent_dim
    torch.manual_seed(9)
    z = torch.randn(16, d)
    with torch.no_grad():
        m = prior.conditional_means(z)
        if kind == "ar":
            # The check is not vacuous: the AR means do move with earlier dims.
            assert not torch.equal(prior.conditional_means(z + 1.0)[:, 1:], m[:, 1:])
        else:
            assert torch.equal(m, torch.zeros_like(z))
        for i in range(d):
            zz = z.clone()
            zz[:, i:] = 0.0  # what a decoder passes for dims it does not know yet
            assert torch.equal(prior.conditional_means(zz)[:, i], m[:, i]), f"dim {i}"
            zz = z.clone()
            zz[:, i:] = torch.randn(16, d - i) * 10
            assert torch.equal(prior.conditional_means(zz)[:, i], m[:, i]), f"dim {i}"


def test_ar_prior_with_strong_weights_still_exact():
    m = _fresh(3)
    with torch.no_grad():
        for made in m.prior.steps:
            made.l2.weight.normal_(0, 1.0)
            made.l2.bias.normal_(0, 1.0)
    torch.manual_seed(10)
    z = torch.randn(32, m.cfg.latent_dim) * 3
    with torch.no_grad():
        full = m.prior.conditional_means(z)
        for i in range(m.cfg.latent_dim):
            zz = z.clone()
            zz[:, i:] = 0
            assert torch.equal(m.prior.conditional_means(zz)[:, i], full[:, i])


@pytest.mark.parametrize("kind", ["ar", "factorized"])
def test_prior_log_prob_is_unit_gaussian_around_conditional_mean(model, kind):
    prior = model.prior if kind == "ar" else _fresh(prior="factorized").prior
    torch.manual_seed(11)
    z = torch.randn(8, model.cfg.latent_dim) * 2
    with torch.no_grad():
        lp = prior.log_prob_dims(z)
        ref = torch.distributions.Normal(prior.conditional_means(z), 1.0).log_prob(z)
    assert lp.shape == z.shape
    torch.testing.assert_close(lp, ref, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- objectives

def test_elbo_terms_are_sane(model, digits):
    x = torch.from_numpy(digits).long()
    torch.manual_seed(12)
    with torch.no_grad():
        t = model.elbo_terms(x)
        tm = model.elbo_terms(x, sample=False)
    for terms in (t, tm):
        assert terms.rec.shape == terms.kl.shape == (len(x),)
        assert terms.kl_dims.shape == (len(x), model.cfg.latent_dim)
        assert torch.isfinite(terms.rec).all() and torch.isfinite(terms.kl_dims).all()
        assert (terms.rec > 0).all()
        torch.testing.assert_close(terms.kl, terms.kl_dims.sum(1))
        torch.testing.assert_close(terms.neg_elbo, terms.rec + terms.kl)


def test_training_loss_includes_free_bits(model, digits):
    x = torch.from_numpy(digits).long()
    torch.manual_seed(13)
    with torch.no_grad():
        loss, t = model.training_loss(x)
    fb = torch.clamp(t.kl_dims.mean(0), min=model.cfg.free_bits).sum()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert loss >= t.rec.mean()
    assert loss >= t.rec.mean() + model.cfg.latent_dim * model.cfg.free_bits - 1e-3
    torch.testing.assert_close(loss, t.rec.mean() + fb)


def test_iwae_k1_is_the_single_sample_elbo(model, digits):
    """Same noise -> the same number, so the expectations agree too."""
    x = torch.from_numpy(digits).long()
    with torch.no_grad():
        torch.manual_seed(14)
        e = model.elbo_terms(x).neg_elbo
        torch.manual_seed(14)
        iw = model.iwae_nll(x, k=1)
    assert iw.shape == (len(x),)
    torch.testing.assert_close(iw, e, rtol=1e-5, atol=1e-3)


def test_iwae_k32_is_tighter_than_elbo(model):
    x = torch.from_numpy(synthetic_digits(32, seed=3)).long()
    with torch.no_grad():
        torch.manual_seed(15)
        elbo = torch.stack([model.elbo_terms(x).neg_elbo for _ in range(16)])  # (16, 32)
        torch.manual_seed(16)
        iw = model.iwae_nll(x, k=32, chunk=16)
    assert torch.isfinite(iw).all()
    se = elbo.mean(0).std() / len(x) ** 0.5  # crude scale of the estimate's noise
    assert iw.mean() <= elbo.mean(), (iw.mean().item(), elbo.mean().item())
    # Sanity: a bound on -log p(x), not wildly below the ELBO either.
    assert elbo.mean() - iw.mean() < 0.05 * elbo.mean() + se


def test_pixel_levels_other_than_binary_and_8bit_are_refused():
    with pytest.raises(ValueError, match="pixel_levels"):
        VLAE(dataclasses.replace(CFG, pixel_levels=16))
    m = VLAE(dataclasses.replace(CFG, pixel_levels=256))      # 8-bit: a 256-way head
    x = torch.randint(0, 256, (2, 28, 28))
    assert m.decoder_logits(x, torch.zeros(2, CFG.latent_dim)).shape == (2, 28, 28, 256)


def test_a_few_adamax_steps_reduce_the_loss():
    m = _fresh(21).train()
    x = torch.from_numpy(synthetic_digits(32, seed=5)).long()

    def loss_at_fixed_noise():
        torch.manual_seed(99)
        with torch.no_grad():
            return m.training_loss(x)[0].item()

    before = loss_at_fixed_noise()
    opt = torch.optim.Adamax(m.parameters(), lr=2e-3)
    torch.manual_seed(22)
    for _ in range(15):
        loss, _ = m.training_loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_at_fixed_noise()
    assert after < 0.95 * before, (before, after)
