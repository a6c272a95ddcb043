"""Bits-back codec: round trips, encoder/decoder exactness, determinism, damage."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import vlaecodec
from vlaecodec import codec
from vlaecodec import numerics as nx
from vlaecodec.zoo import ModelError

from conftest import synthetic_digits

ERRORS = (vlaecodec.CodecError, ModelError)


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_single_image_round_trip(tiny, digits):
    blob = vlaecodec.compress([digits[0]], tiny)
    out = vlaecodec.decompress(blob)
    assert _same(out.images, [digits[0]])
    assert out.header.schedule is None  # one direct batch, nothing stored


def test_chain_round_trip_uses_bits_back(tiny):
    x = synthetic_digits(40, seed=3)
    blob = vlaecodec.compress(list(x), tiny)
    h = vlaecodec.inspect(blob)
    assert h.schedule[0] == (1, False) and all(bb for _, bb in h.schedule[1:])
    assert len(h.schedule) > 2  # batches grow with the stack
    assert _same(vlaecodec.decompress(blob, tiny).images, list(x))


def test_encoding_is_deterministic(tiny):
    x = list(synthetic_digits(20, seed=4))
    assert vlaecodec.compress(x, tiny) == vlaecodec.compress(x, tiny)


@pytest.mark.parametrize("enc_threads,dec_threads", [(1, 1), (2, 2), (1, 2), (2, 1)])
def test_round_trip_across_thread_counts(tiny, enc_threads, dec_threads):
    x = list(synthetic_digits(15, seed=5))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(enc_threads)
        blob = vlaecodec.compress(x, tiny)
        torch.set_num_threads(dec_threads)
        assert _same(vlaecodec.decompress(blob, tiny).images, x)
    finally:
        torch.set_num_threads(old)


def _tap(monkeypatch):
    """Record every probability array handed to an entropy coder, in call order."""
    log: list[tuple[str, np.ndarray]] = []
    real_gauss, real_p1 = nx.scaled_gaussian, nx.bernoulli_p1

    def gauss(mean, std):
        out = real_gauss(mean, std)
        log.append(("gauss", np.concatenate(out)))
        return out

    def p1(logits):
        out = real_p1(logits)
        log.append(("p1", out.copy()))
        return out

    monkeypatch.setattr(nx, "scaled_gaussian", gauss)
    monkeypatch.setattr(nx, "bernoulli_p1", p1)
    return log


def test_encoder_and_decoder_compute_identical_parameters(tiny, monkeypatch):
    """The numerics rule, checked directly: for one bits-back batch, the posterior,
    every pixel probability and the prior conditionals are bitwise equal on both sides."""
    import constriction

    x = synthetic_digits(6, seed=6)
    log = _tap(monkeypatch)
    with nx.coding_context():
        side = codec._Side(tiny)
        seed_words = np.random.default_rng(0).integers(1, 2 ** 32, size=400, dtype=np.uint32)
        coder = constriction.stream.stack.AnsCoder(seed_words, seal=True)
        codec._push_bits_back(side, x, coder)
        enc = list(log)
        log.clear()
        y = codec._pop_bits_back(side, len(x), coder)
        dec = list(log)
    assert np.array_equal(x, y)
    hw, d = 28 * 28, tiny.config.latent_dim
    # encoder: [q, p1 x hw, prior(all dims)]; decoder: [prior dim 0..d-1, p1 x hw, q]
    assert [k for k, _ in enc] == ["gauss"] + ["p1"] * hw + ["gauss"]
    assert [k for k, _ in dec] == ["gauss"] * d + ["p1"] * hw + ["gauss"]
    t = torch.from_numpy
    assert torch.equal(t(enc[0][1]), t(dec[-1][1]))                       # q(z|x)
    for i in range(hw):
        assert torch.equal(t(enc[1 + i][1]), t(dec[d + i][1])), f"pixel {i}"  # p(x_t | x_<t, z)
    n = len(x)
    enc_prior_means = enc[-1][1][: n * d]          # dim-major means, then stds
    dec_prior_means = np.concatenate([a[:n] for _, a in dec[:d]])
    assert torch.equal(t(enc_prior_means), t(dec_prior_means))            # p(z_i | z_<i)
    assert coder.get_compressed(unseal=True).tolist() == seed_words.tolist()  # bits given back


def test_fresh_process_decodes(tiny, tmp_path):
    x = list(synthetic_digits(10, seed=7))
    path = tmp_path / "x.vlae"
    path.write_bytes(vlaecodec.compress(x, tiny))
    code = ("import sys, numpy as np, vlaecodec; a = vlaecodec.decompress(open(sys.argv[1],'rb').read()); "
            "np.save(sys.argv[2], np.stack(a.images))")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "y.npy")], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.stack(x))


def test_names_and_modes_survive(tiny):
    x = list(synthetic_digits(3, seed=8))
    names = ["a.png", "b c.png", "ü.png"]
    out = vlaecodec.decompress(vlaecodec.compress(x, tiny, names=names, modes=["1", "L", "1"]))
    assert out.names == names and out.modes == ["1", "L", "1"]


def test_numbered_names_cost_a_few_bytes(tiny):
    x = list(synthetic_digits(30, seed=9))
    plain = vlaecodec.compress(x, tiny)
    named = vlaecodec.compress(x, tiny, names=[f"{i:05d}.png" for i in range(30)])
    assert len(named) - len(plain) <= 12


def test_every_truncation_is_rejected(tiny):
    blob = vlaecodec.compress(list(synthetic_digits(5, seed=10)), tiny)
    for n in range(len(blob)):
        with pytest.raises(ERRORS):
            vlaecodec.decompress(blob[:n], tiny)


def test_every_flipped_byte_is_rejected(tiny):
    blob = vlaecodec.compress([synthetic_digits(1, seed=11)[0]], tiny)
    for i in range(len(blob)):
        for bit in (0, 7):
            bad = bytearray(blob)
            bad[i] ^= 1 << bit
            try:
                out = vlaecodec.decompress(bytes(bad))
            except ERRORS:
                continue
            # A flip may only "succeed" if it decodes to the very same image
            # (e.g. a bit the arithmetic coder never reads) — never a wrong one.
            assert _same(out.images, [synthetic_digits(1, seed=11)[0]]), f"byte {i} bit {bit}"


def test_wrong_model_is_rejected(tiny, tmp_path):
    from vlaecodec.config import preset
    from vlaecodec.train import FORMAT_VERSION
    from vlaecodec.vlae import VLAE
    from vlaecodec.zoo import load_checkpoint

    torch.manual_seed(99)
    other = VLAE(preset("vlae-tiny"))
    p = tmp_path / "other.pt"
    torch.save({"format_version": FORMAT_VERSION, "config": other.cfg.to_dict(),
                "state_dict": other.state_dict()}, p)
    blob = vlaecodec.compress([synthetic_digits(1)[0]], tiny)
    with pytest.raises(ModelError, match="made with"):
        vlaecodec.decompress(blob, load_checkpoint(p))


def test_non_binary_and_wrong_size_inputs_are_errors(tiny):
    with pytest.raises(vlaecodec.CodecError, match="not binary"):
        vlaecodec.compress([np.full((28, 28), 255, np.uint8)], tiny)
    with pytest.raises(vlaecodec.CodecError, match="28x28"):
        vlaecodec.compress([np.zeros((20, 28), np.uint8)], tiny)
    with pytest.raises(vlaecodec.CodecError):
        vlaecodec.compress([], tiny)
