"""The any-size photo VLAE: float model, its integer freeze, and the dependency claims the
wavefront coder relies on (each checked with array equality on random weights)."""
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vlaecodec.photo_freeze import to_integer  # noqa: E402
from vlaecodec.photo_int import IntPhotoVLAE, load, pixel_input  # noqa: E402
from vlaecodec.photo_vlae import PHOTO_PRESETS, PhotoVLAE, discretized_mix_logistic_nll  # noqa: E402
from vlaecodec import photo_codec  # noqa: E402
from vlaecodec.photo_codec import STRIDE, _posterior_group, schedule, zrows_of_pixel_row  # noqa: E402


@pytest.fixture(scope="module", params=["photo-tiny-rgb", "photo-tiny-gray"])
def models(request):
    torch.manual_seed(3)
    m = PhotoVLAE(PHOTO_PRESETS[request.param]).eval()
    return m, IntPhotoVLAE(to_integer(m))


def test_pixel_network_sees_only_its_causal_window():
    torch.manual_seed(0)
    cfg = PHOTO_PRESETS["photo-tiny-rgb"]
    m = PhotoVLAE(cfg)
    x = torch.randint(0, 256, (1, 3, 24, 24)).float().requires_grad_(True)
    z = torch.randn(1, cfg.latent_channels, 3, 3)
    m.pixel_params(x, z)[0, :, 10, 10].sum().backward()
    seen = {(int(i), int(j)) for i, j in (x.grad[0].abs().sum(0) > 0).nonzero()}
    h = cfg.horizon
    window = {(10 + dr, 10 + dc) for dr in range(-h, 1) for dc in range(-h, h + 1) if dr < 0 or dc < 0}
    assert seen == window


def test_mixture_nll_is_a_distribution():
    """Over the 256 values of a gray pixel the bin probabilities sum to 1."""
    torch.manual_seed(1)
    params = torch.randn(1, 2 * 3, 1, 1)
    x = torch.arange(256).view(256, 1, 1, 1)
    nll = discretized_mix_logistic_nll(x, params.expand(256, -1, -1, -1), 1, 2)
    assert torch.exp(-nll).sum().item() == pytest.approx(1.0, abs=1e-5)


def test_integer_model_tracks_the_float_model(models):
    m, net = models
    c = m.cfg.channels
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 24, c)).astype(np.uint8)
    xt = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        mean, _ = m.posterior(xt)
        mi, _ = net.posterior(x)
        assert np.abs(mi / 4096 - mean[0].permute(1, 2, 0).numpy()).max() < 2e-3
        zi = np.round(mean[0].permute(1, 2, 0).numpy() * 16) * 256
        zq = torch.from_numpy(zi / 4096).permute(2, 0, 1)[None].float()
        pp = m.pixel_params(xt, zq)[0].permute(1, 2, 0).numpy()
        pi = net.pixel_params(x, net.zfeatures(zi)) / 4096
        assert np.abs(pi - pp).max() < 0.05


def test_model_file_round_trip(models):
    _, net = models
    arrays = {k: v for k, v in net_arrays(models).items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    again = load(buf)
    x = np.random.default_rng(2).integers(0, 256, (8, 8, net.channels)).astype(np.uint8)
    assert np.array_equal(again.posterior(x)[0], net.posterior(x)[0])


def net_arrays(models):
    m, _ = models
    return to_integer(m)


def test_posterior_of_a_crop_equals_the_whole_image(models):
    _, net = models
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (88, 24, net.channels)).astype(np.uint8)
    mean, log_std = net.posterior(x)
    for group in ([0], [0, 1, 2], [3, 4], [5, 6, 7, 8, 9, 10], [10]):
        changed = x.copy()   # rows past what q(z_r|x) reads may hold anything
        below = min(88, 8 * group[-1] + 23)
        changed[below:] = rng.integers(0, 256, changed[below:].shape)
        tables = _posterior_group(net, changed, group)
        for r, t in zip(group, tables):
            assert np.array_equal(t, net.grid.posterior_freqs(mean[r].ravel(), log_std[r].ravel()))


def test_z_features_read_only_the_latent_rows_claimed(models):
    _, net = models
    rng = np.random.default_rng(5)
    hz = 9
    z = rng.integers(-40, 40, (hz, 3, net.cz)) * 256.0
    zf = net.zfeatures(z)
    for i in range(hz * STRIDE):
        lo, hi = zrows_of_pixel_row(i, hz)
        other = z.copy()
        other[:lo] = rng.integers(-40, 40, other[:lo].shape) * 256.0
        other[hi + 1:] = rng.integers(-40, 40, other[hi + 1:].shape) * 256.0
        assert np.array_equal(net.zfeatures(other)[i], zf[i])


def test_band_features_and_wavefront_windows_equal_the_parallel_pass(models):
    """The decoder's per-step path (z features per band, causal windows gathered per
    wavefront) gives the encoder's parallel-pass integers exactly."""
    _, net = models
    rng = np.random.default_rng(6)
    H, W = 37, 21
    hp, wp = 40, 24
    x = rng.integers(0, 256, (H, W, net.channels)).astype(np.uint8)
    xp = np.pad(x, ((0, hp - H), (0, wp - W), (0, 0)), mode="edge")
    hz, wz = hp // STRIDE, wp // STRIDE
    lat = photo_codec._Latents(net, hz, wz)
    lat.k[:] = rng.integers(lat.g.K - 30, lat.g.K + 30, lat.k.shape)
    lat.known[:] = True
    whole = net.pixel_params(xp, net.zfeatures(lat.map()))
    rows = photo_codec._Rows(net, lat, hp)
    h = net.h
    vpad = np.pad(pixel_input(xp), ((h, 0), (h, h), (0, 0)))
    sch = schedule(H, W, h)
    seen = np.zeros((H, W), int)
    for t in range(sch.steps):
        ii, jj = sch.pixels(t)
        seen[ii, jj] += 1
        p = net.params_from_acc(net.window(net.windows(vpad, ii, jj), extra=rows.get(ii, jj)))
        assert np.array_equal(p, whole[ii, jj])
    assert (seen == 1).all()


@pytest.mark.parametrize("H,W,h", [(1, 1, 3), (5, 3, 1), (37, 21, 3), (100, 9, 3), (8, 200, 2)])
def test_schedule_orders_latents_before_their_use(H, W, h):
    sch = schedule(H, W, h)
    hz = -(-H // STRIDE)
    assert sch.steps == W + (h + 1) * (H - 1)
    popped_at = {r: t for t, rs in sch.pops.items() for r in rs}
    popped_at.update({r: sch.steps for r in sch.final_pops})
    popped_at.update({r: -1 for g in sch.direct_groups for r in g})   # not coded: z = 0 from the start
    pushed_at = {r: t for t, gs in sch.pushes.items() for g in gs for r in g}
    pushed_at.update({r: sch.steps + 1 for g in sch.direct_groups for r in g})
    assert sorted(popped_at) == sorted(pushed_at) == list(range(hz))
    for i in range(H):
        lo, hi = photo_codec.zrows_of_band(i // photo_codec.BAND, hz)
        assert lo <= zrows_of_pixel_row(i, hz)[0] and zrows_of_pixel_row(i, hz)[1] <= hi
        first, last = (h + 1) * i, (h + 1) * i + W - 1
        for r in range(hi + 1):
            assert popped_at[r] <= first          # popped before the row's first pixel
        for r in range(lo, hi + 1):
            assert pushed_at[r] >= last           # pushed back after its last pixel
    for r in range(hz - 1):
        assert pushed_at[r] >= popped_at[r + 1]   # the prior of row r+1 reads row r


@pytest.mark.parametrize("shape", [(1, 1), (2, 9), (13, 11), (30, 17), (41, 8)])
def test_photo_round_trip_any_size(models, shape):
    """Bits-back coding of one image of any size decodes to the same pixels."""
    _, net = models
    x = np.random.default_rng(sum(shape)).integers(0, 256, shape + (net.channels,)).astype(np.uint8)
    words, stats = photo_codec.encode(net, x)
    assert words.dtype == np.uint32 and stats.bits == 32 * len(words)
    assert np.array_equal(photo_codec.decode(net, words, *shape), x)



def test_band_features_equal_the_whole_map(models):
    """Each layer computes only the rows the next reads: same integers as the whole map."""
    _, net = models
    rng = np.random.default_rng(8)
    for hz in (1, 2, 5, 13):
        z = rng.integers(-30, 30, (hz, 4, net.cz)) * 256.0
        full = net.zfeatures(z)
        for r0 in range(0, 8 * hz, photo_codec.BAND):
            got = photo_codec._band_features(net, z, r0, photo_codec.BAND)
            assert np.array_equal(got, full[r0:r0 + photo_codec.BAND])
