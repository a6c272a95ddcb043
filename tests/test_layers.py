"""Masked convolutions and MADE: causality is exact, not approximate."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlaecodec.config import preset
from vlaecodec.layers import MADE, MaskedConv2d, causal_offsets
from vlaecodec.vlae import LocalPixelCNN


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _before(dr: int, dc: int) -> bool:
    """Strictly before the centre in raster order."""
    return dr < 0 or (dr == 0 and dc < 0)


# ---------------------------------------------------------------- causal_offsets

def test_causal_offsets_k3_exact():
    assert causal_offsets(3, "A") == [(-1, -1), (-1, 0), (-1, 1), (0, -1)]
    assert causal_offsets(3, "B") == [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0)]


@pytest.mark.parametrize("k", [3, 5])
def test_causal_offsets_are_the_raster_past(k):
    p = k // 2
    everything = [(dr, dc) for dr in range(-p, p + 1) for dc in range(-p, p + 1)]
    a, b = causal_offsets(k, "A"), causal_offsets(k, "B")
    assert a == [o for o in everything if _before(*o)]          # kernel raster order
    assert b == [o for o in everything if _before(*o) or o == (0, 0)]
    assert len(a) == k * p + p and len(b) == len(a) + 1


def test_causal_offsets_k5_values():
    a = causal_offsets(5, "A")
    assert a[0] == (-2, -2) and a[-1] == (0, -1) and len(a) == 12
    assert (0, 0) not in a and (0, 1) not in a and (1, 0) not in a
    assert causal_offsets(5, "B")[-1] == (0, 0)


def test_causal_offsets_rejects_unknown_type():
    with pytest.raises(ValueError):
        causal_offsets(3, "C")


# ---------------------------------------------------------------- MaskedConv2d

def _positions(h, w):
    return [(r, c) for r in range(h) for c in range(w)]


@pytest.mark.parametrize("k", [3, 5])
def test_masked_conv_type_a_ignores_current_and_future_pixels(k):
    torch.manual_seed(0)
    h, w, cin, cout = 6, 7, 2, 3
    conv = MaskedConv2d(cin, cout, k, "A")
    x = torch.randn(1, cin, h, w)
    n = h * w
    # Batch element t: every input pixel >= t (raster) replaced with fresh noise.
    base = x.repeat(n, 1, 1, 1)
    pert = base.clone().view(n, cin, n)
    for t in range(n):
        pert[t, :, t:] = torch.randn(cin, n - t) * 5
    pert = pert.view(n, cin, h, w)
    with torch.no_grad():
        yb, yp = conv(base), conv(pert)
    for t, (r, c) in enumerate(_positions(h, w)):
        assert torch.equal(yb[t, :, r, c], yp[t, :, r, c]), f"output at pixel {t} saw pixels >= {t}"
    # ...while the previous pixel does matter (the mask is not all zero).
    x2 = x.clone()
    x2[0, :, 3, 2] += 1.0
    with torch.no_grad():
        assert not torch.equal(conv(x)[0, :, 3, 3], conv(x2)[0, :, 3, 3])


def test_masked_conv_type_b_sees_centre_but_not_future():
    torch.manual_seed(1)
    conv = MaskedConv2d(2, 2, 3, "B")
    x = torch.randn(1, 2, 5, 5)
    with torch.no_grad():
        y = conv(x)
        xc = x.clone()
        xc[0, :, 2, 2] += 1.0
        assert not torch.equal(conv(xc)[0, :, 2, 2], y[0, :, 2, 2])
        xf = x.clone()
        xf[0, :, 2, 3:] += 3.0
        xf[0, :, 3:, :] -= 3.0
        assert torch.equal(conv(xf)[0, :, 2, 2], y[0, :, 2, 2])


def test_pixelcnn_stack_is_causal():
    """The type-A + type-B stack of LocalPixelCNN: logits of pixel t never depend on
    pixels >= t (checked for every pixel, all later pixels perturbed at once)."""
    torch.manual_seed(3)
    cfg = preset("vlae-tiny")
    net = LocalPixelCNN(cfg).eval()
    h = w = cfg.image_size
    n = h * w
    zc = torch.randn(1, cfg.pcnn_layers, cfg.pcnn_channels, h, w).expand(n, -1, -1, -1, -1)
    x = torch.randint(0, 2, (h, w))
    base = x.repeat(n, 1, 1)
    pert = base.clone().view(n, n)
    gen = torch.Generator().manual_seed(4)
    for t in range(n):
        pert[t, t:] = torch.randint(0, 2, (n - t,), generator=gen)
    pert = pert.view(n, h, w)
    with torch.no_grad():
        lb, lp = net(base, zc), net(pert, zc)
    idx = torch.arange(n)
    same = (lb.view(n, n, -1)[idx, idx] == lp.view(n, n, -1)[idx, idx]).all(-1)
    bad = (~same).nonzero().flatten().tolist()
    assert not bad, f"pixels whose logits saw the future: {bad[:10]}"
    # Gradient check: d logits[t] / d input is exactly zero at >= t.
    xin = torch.randn(1, 1, h, w, requires_grad=True)
    a = F.elu(net.convs[0](xin) + zc[:1, 0])
    for i, conv in enumerate(net.convs[1:], start=1):
        a = a + F.elu(conv(a) + zc[:1, i])
    t = 10 * w + 13
    a[0, :, 10, 13].sum().backward()
    g = xin.grad.view(-1)
    assert torch.all(g[t:] == 0)
    assert g[t - 1] != 0 and g[t - w] != 0


# ---------------------------------------------------------------- MADE

def _made(dim=8, hidden=32, seed=5):
    torch.manual_seed(seed)
    made = MADE(dim, hidden)
    with torch.no_grad():
        made.l2.weight.normal_(0, 0.5)
        made.l2.bias.normal_(0, 0.5)
    return made


def test_fresh_made_outputs_zero():
    torch.manual_seed(0)
    made = MADE(8, 32)
    with torch.no_grad():
        out = made(torch.randn(5, 8) * 10)
    assert torch.equal(out, torch.zeros(5, 8))


@pytest.mark.parametrize("dim,hidden", [(8, 32), (5, 7), (16, 16)])
def test_made_output_i_independent_of_inputs_ge_i(dim, hidden):
    made = _made(dim, hidden)
    z = torch.randn(6, dim)
    with torch.no_grad():
        out = made(z)
        for i in range(dim):
            for fill in (torch.zeros(6, dim - i), torch.randn(6, dim - i) * 100):
                z2 = z.clone()
                z2[:, i:] = fill
                assert torch.equal(made(z2)[:, i], out[:, i]), f"output {i} saw inputs >= {i}"


def test_made_output_i_depends_on_input_i_minus_1():
    made = _made(8, 32)
    z = torch.randn(4, 8)
    with torch.no_grad():
        out = made(z)
        for i in range(1, 8):
            z2 = z.clone()
            z2[:, i - 1] += 1.0
            assert not torch.equal(made(z2)[:, i], out[:, i]), f"output {i} ignores input {i - 1}"
        # Output 0 sees no input at all: constant.
        assert torch.equal(made(torch.randn(4, 8))[:, 0], out[:, 0])
