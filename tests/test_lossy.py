"""Lossy mode: only the latents are stored; decoding redraws the pixels, identically on
every machine. (Tiny random model: quality is not the point here, the contract is.)"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import vlaecodec
from vlaecodec import codec, container, lossy
from vlaecodec.intnet import BinCode

from conftest import run_limited, synthetic_digits


@pytest.fixture(scope="module")
def x():
    return synthetic_digits(9, seed=31)


def test_lossless_unless_asked(tiny, x):
    blob = vlaecodec.compress(list(x), tiny)
    assert vlaecodec.inspect(blob).lossy_level == 0
    with pytest.raises(vlaecodec.CodecError, match="lossy"):
        vlaecodec.compress(list(x), tiny, rate=2)


@pytest.mark.parametrize("level", [1, 3, 5])
def test_lossy_archive_holds_only_the_latent_bits(tiny, x, level):
    net = tiny.net
    bits = lossy.bits_per_image(net, level, lossy.DEFAULT_DRAW)   # latent bits + the encoder's pick
    st: dict = {}
    blob = vlaecodec.compress(list(x), tiny, lossy=True, rate=level, stats=st)
    h, payload = container.unpack(blob)
    assert h.lossy_level == level and st["bits_per_image"] == bits
    assert len(payload) == (len(x) * bits + 7) // 8
    out = vlaecodec.decompress(blob, tiny)
    assert len(out.images) == len(x)
    assert all(im.shape == (28, 28) and set(np.unique(im)) <= {0, 1} for im in out.images)
    # Decoding is deterministic, and encoding too.
    again = vlaecodec.decompress(blob, tiny)
    assert all(np.array_equal(a, b) for a, b in zip(out.images, again.images))
    assert vlaecodec.compress(list(x), tiny, lossy=True, rate=level) == blob


def test_bins_pack_round_trip():
    code = BinCode([4, 1, 2, 8, 1, 1, 2, 1], np.zeros(4 + 1 + 2 + 8 + 4 + 1), 8, power_of_two=True)
    rng = np.random.default_rng(0)
    js = np.stack([rng.integers(0, k, 13) for k in code.bins], axis=1)
    payload = lossy.pack_bins(js, code)
    assert len(payload) == (13 * sum(code.bits) + 7) // 8
    assert np.array_equal(lossy.unpack_bins(payload, 13, code)[0], js)
    picks = rng.integers(0, 8, 13)
    with_picks = lossy.pack_bins(js, code, picks, 3)
    assert len(with_picks) == (13 * (sum(code.bits) + 3) + 7) // 8
    js2, picks2 = lossy.unpack_bins(with_picks, 13, code, 3)
    assert np.array_equal(js2, js) and np.array_equal(picks2, picks)
    with pytest.raises(vlaecodec.CodecError):
        lossy.unpack_bins(payload + b"\0", 13, code)
    if (13 * sum(code.bits)) % 8:   # a set padding bit is damage
        with pytest.raises(vlaecodec.CodecError, match="padding"):
            lossy.unpack_bins(payload[:-1] + bytes([payload[-1] | 1]), 13, code)


def test_damaged_lossy_payload_is_an_error_before_drawing(tiny, x):
    blob = bytearray(vlaecodec.compress(list(x), tiny, lossy=True, rate=4))
    blob[-1] ^= 0x10
    with pytest.raises(vlaecodec.CodecError, match="CRC"):
        vlaecodec.decompress(bytes(blob), tiny)


@pytest.mark.parametrize("draw", [0, 1, 3, lossy.DRAW_PICK, lossy.DRAW_PICK + 2])
def test_draws_are_deterministic_and_sampling_differs_from_the_mode(tiny, x, draw):
    blob = vlaecodec.compress(list(x), tiny, lossy=True, rate=4, draw=draw)
    assert vlaecodec.inspect(blob).lossy_draw == draw
    a = vlaecodec.decompress(blob, tiny).images
    assert all(np.array_equal(p, q) for p, q in zip(a, vlaecodec.decompress(blob, tiny).images))
    # Draw 0 decodes the most probable pixels; every sampling draw decodes other pixels
    # from the same latents (the tiny random model's pixels are far from certain: ~40%
    # of them differ from the mode), in every image.
    mode = vlaecodec.decompress(vlaecodec.compress(list(x), tiny, lossy=True, rate=4, draw=0), tiny).images
    same = [bool(np.array_equal(p, q)) for p, q in zip(a, mode)]
    assert same == [draw == 0] * len(x)


def test_best_of_k_keeps_the_likeliest_sample(tiny):
    net = tiny.net
    z = np.zeros((3, net.cfg.latent_dim))
    best = lossy.redraw(net, z, draw=3)                      # best of 4
    samples = np.stack([lossy.redraw(net, z, draw=1, first_index=0)])   # shape check only
    assert best.shape == samples.shape[1:] and best.dtype == np.uint8
    # Recompute each of the 4 samples' cost with the stepper and check the choice.
    k = 4
    st = net.stepper(np.repeat(z, k, axis=0))
    img = np.repeat(np.arange(3, dtype=np.uint64), k)
    smp = np.tile(np.arange(k, dtype=np.uint64), 3)
    base = (img * np.uint64(256) + smp) << np.uint64(20)
    cost = np.zeros(3 * k)
    out = np.empty((784, 3 * k), np.uint8)
    for t in range(784):
        f1 = st.freqs(t)
        v = (lossy._random16(base + np.uint64(t)) < f1).astype(np.uint8)
        cost += codec._NLL_Q16[np.where(v == 1, f1, lossy.PIXEL_TOTAL - f1).astype(np.intp)]
        out[t] = v
        st.set_pixel(t, v)
    imgs = out.T.reshape(3, k, 28, 28)
    want = imgs[np.arange(3), cost.reshape(3, k).argmin(1)]
    assert np.array_equal(best, want)


def test_encoders_pick_is_the_sample_closest_to_the_original(tiny, x):
    net, level, n_pick = tiny.net, 3, 3
    draw = lossy.DRAW_PICK + n_pick
    blob = vlaecodec.compress(list(x), tiny, lossy=True, rate=level, draw=draw)
    h, payload = container.unpack(blob)
    code = lossy.level_code(net, level)
    assert len(payload) == (len(x) * (sum(code.bits) + n_pick) + 7) // 8
    js, picks = lossy.unpack_bins(payload, len(x), code, n_pick)
    z = net.direct_latents(js, code)
    # Every candidate, drawn one sample at a time with its own stream.
    cands = np.stack([lossy._samples(net, z, np.arange(len(x)), np.full(len(x), s))[0] for s in range(8)], 1)
    assert np.array_equal(picks, lossy.pick_distance(cands, x).argmin(1))   # closest by lossy.pick_distance
    out = np.stack(vlaecodec.decompress(blob, tiny).images)
    assert np.array_equal(out, cands[np.arange(len(x)), picks])
    # The pick is never worse than the first sample, which is what draw=DRAW_PICK (no bits) gives.
    first = np.stack(vlaecodec.decompress(vlaecodec.compress(list(x), tiny, lossy=True, rate=level,
                                                              draw=lossy.DRAW_PICK), tiny).images)
    assert np.array_equal(first, cands[:, 0])
    assert (lossy.pick_distance(out[:, None], x) <= lossy.pick_distance(first[:, None], x)).all()


def test_draw_codes_out_of_range_are_refused(tiny, x):
    for draw in (-1, lossy.DRAW_PICK + 7, 16):
        with pytest.raises(vlaecodec.CodecError, match="draw must be"):
            vlaecodec.compress(list(x), tiny, lossy=True, rate=2, draw=draw)


def test_single_lossy_file_size(tiny, x):
    blob = vlaecodec.compress([x[0]], tiny, lossy=True, rate=4)
    name = len(tiny.name.encode()) + 1           # the tiny model is not the default model
    assert len(blob) == 12 + name + (lossy.bits_per_image(tiny.net, 4, lossy.DEFAULT_DRAW) + 7) // 8


def test_lossy_decode_is_identical_in_a_fresh_process_with_other_kernels(tiny, x, tmp_path):
    blob = vlaecodec.compress(list(x), tiny, lossy=True, rate=5, draw=2)
    f = tmp_path / "l.vlae"
    f.write_bytes(blob)
    here = vlaecodec.decompress(blob, tiny).images
    code = ("import hashlib, numpy as np, vlaecodec, sys; "
            "a = vlaecodec.decompress(open(sys.argv[1], 'rb').read()); "
            "print(hashlib.sha256(np.stack(a.images).tobytes()).hexdigest())")
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR", OPENBLAS_CORETYPE="Prescott")
    # ~1-2 s of CPU: capped at 60 s; the wall-clock guard only catches a hang.
    r = run_limited([sys.executable, "-c", code, str(f)], cpu_s=60, hang_guard_s=600,
                    capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    import hashlib
    assert r.stdout.strip() == hashlib.sha256(np.stack(here).tobytes()).hexdigest()


def test_model_without_lossy_levels_is_a_clear_error(tiny, x, monkeypatch):
    monkeypatch.setattr(tiny.net, "lossy_levels", [])
    with pytest.raises(vlaecodec.CodecError, match="no lossy rate levels"):
        vlaecodec.compress(list(x), tiny, lossy=True)
