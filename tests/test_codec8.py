"""8-bit pixels: the 256-level categorical path of the integer model and the codec.

The frequencies come from an integer softmax (numerics.categorical_freqs); the encoder
pushes them from the parallel pass a few pixel positions at a time, the decoder pops
them from the stepper. Everything here is array equality: one differing frequency
would make bits-back decoding fail."""
from __future__ import annotations

import numpy as np
import pytest

import vlaecodec
from vlaecodec import codec
from vlaecodec import numerics as nx
from vlaecodec.arith import ArithDecoder, ArithEncoder

from conftest import synthetic_gray

TABLES = nx.build_tables(256)
EXP = TABLES["lut.exp"].astype(np.int64)


def _reference_freqs(logits: np.ndarray) -> list[list[int]]:
    """categorical_freqs in plain Python integers, written from its docstring."""
    out = []
    total, exp_t = 1 << nx.CAT_FREQ_BITS, [int(v) for v in EXP]
    for row in logits.astype(int).tolist():
        top = max(row)
        w = [exp_t[min((top - v) >> nx.EXP_SHIFT, nx.EXP_ENTRIES - 1)] for v in row]
        f = [1 + wk * (total - len(row)) // sum(w) for wk in w]
        f[row.index(top)] += total - sum(f)
        out.append(f)
    return out


def test_categorical_freqs_are_an_exact_integer_softmax():
    rng = np.random.default_rng(0)
    logits = np.rint(rng.normal(0, 4, (64, 256)) * nx.ONE)
    logits[0] = 0                                  # all equal
    logits[1, 7] = nx.ACT_LIMIT                    # one level certain
    logits[2] = -nx.ACT_LIMIT                      # saturated
    f = nx.categorical_freqs(logits, EXP)
    assert f.dtype == np.int64
    assert np.all(f.sum(1) == 1 << nx.CAT_FREQ_BITS) and f.min() >= 1
    assert f.tolist() == _reference_freqs(logits)
    # Close to the float softmax: a negligible coding cost.
    p = np.exp((logits - logits.max(1, keepdims=True)) / nx.ONE)
    p /= p.sum(1, keepdims=True)
    q = f / 2.0 ** nx.CAT_FREQ_BITS
    kl = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1) / q), 0).sum(1)
    assert kl.max() < 1e-4
    assert f[1, 7] == (1 << nx.CAT_FREQ_BITS) - 255   # certain level: everything but the floors
    assert len(set(f[0].tolist()) - {f[0].max()}) <= 1  # equal logits: equal shares (+ remainder)


def test_exp_table_is_checked():
    t = dict(TABLES)
    nx.check_tables(t)
    t["lut.exp"] = t["lut.exp"].copy()
    t["lut.exp"][5] = t["lut.exp"][4] + 1
    with pytest.raises(ValueError, match="lut.exp"):
        nx.check_tables(t)


def test_arith_decoder_bisects_large_alphabets():
    rng = np.random.default_rng(1)
    f = rng.integers(1, 5000, 256)
    total = int(f.sum())
    cums = (np.cumsum(f) - f).tolist()
    msg = rng.integers(0, 256, 500).tolist() + [0, 255, 255, 0]
    enc = ArithEncoder()
    for s in msg:
        enc.encode(cums[s], int(f[s]), total)
    dec = ArithDecoder(enc.finish())
    assert [dec.decode(cums, total) for _ in msg] == msg


def test_stepper_equals_parallel_pass_for_8bit_pixels(tiny8):
    net = tiny8.net
    x = synthetic_gray(3, seed=5)
    z = net.direct_latents(np.array([[min(1, k - 1) for k in net.direct_bins]] * 3))
    par = net.pixel_freqs(x, z)                         # (3, HW, 256)
    assert par.shape == (3, 28 * 28, 256)
    assert np.all(par.sum(2) == 1 << nx.CAT_FREQ_BITS) and par.min() >= 1
    st = net.stepper(z)
    flat = x.reshape(3, -1)
    for t in range(28 * 28):
        assert np.array_equal(st.freqs(t), par[:, t]), t
        st.set_pixel(t, flat[:, t])
    # The features path the encoder pushes from gives the same frequencies.
    a = net.pixel_features(x, z)
    assert np.array_equal(net.head(a), par)


def test_single_8bit_image_round_trip(tiny8):
    x = synthetic_gray(1, seed=6)
    blob = vlaecodec.compress(list(x), tiny8)
    out = vlaecodec.decompress(blob)                    # model found from the header
    assert np.array_equal(out.images[0], x[0]) and out.modes == ["L"]
    assert out.header.levels == 256


def test_8bit_chain_uses_bits_back_and_round_trips(tiny8):
    x = synthetic_gray(24, seed=7)
    st: dict = {}
    blob = vlaecodec.compress(list(x), tiny8, stats=st)
    h = vlaecodec.inspect(blob)
    assert len(h.schedule) >= 2 and all(bb for _, bb in h.schedule[1:])
    out = vlaecodec.decompress(blob, tiny8)
    assert all(np.array_equal(a, b) for a, b in zip(out.images, x))
    # Every level 0..255 survives (the test images use them all).
    assert len(np.unique(x)) == 256


def test_8bit_pixels_push_in_position_chunks(tiny8, monkeypatch):
    """The chunk size of the encoder's pushes does not change the file."""
    x = list(synthetic_gray(10, seed=8))
    a = vlaecodec.compress(x, tiny8)
    monkeypatch.setattr(codec, "PIXEL_PUSH_STEPS", 5)
    assert vlaecodec.compress(x, tiny8) == a


def test_8bit_model_refuses_out_of_range_and_lossy(tiny8):
    x = synthetic_gray(1, seed=9)
    with pytest.raises(vlaecodec.CodecError, match="outside 0..255"):
        vlaecodec.compress([x[0].astype(np.int32) + 300], tiny8)
    with pytest.raises(vlaecodec.CodecError, match="binary model"):
        vlaecodec.compress(list(x), tiny8, lossy=True)


def test_corrupt_8bit_file_is_an_error_not_a_wrong_image(tiny8):
    blob = bytearray(vlaecodec.compress(list(synthetic_gray(6, seed=10)), tiny8))
    blob[-20] ^= 0x40
    with pytest.raises(vlaecodec.CodecError):
        vlaecodec.decompress(bytes(blob), tiny8)
