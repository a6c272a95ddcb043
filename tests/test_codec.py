"""Bits-back codec on the integer model: round trips, the coder transcript (the decoder
undoes exactly what the encoder did, with the same parameters), determinism, errors."""
from __future__ import annotations

import constriction
import numpy as np
import pytest

import vlaecodec
from vlaecodec import codec, container
from vlaecodec.zoo import ModelError

from conftest import TINY_NAME, synthetic_digits
from vlaefile import craft

ERRORS = (vlaecodec.CodecError, ModelError)


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def chain(tiny):
    """40 digits in one file: a direct start, then several bits-back batches."""
    x = list(synthetic_digits(40, seed=3))
    stats: dict = {}
    blob = codec.compress(x, tiny, stats=stats)
    return x, blob, stats


# ------------------------------------------------------------------ round trips

def test_single_image_round_trip(tiny, digits):
    blob = vlaecodec.compress([digits[0]], tiny)
    out = vlaecodec.decompress(blob)          # the model is found from the header
    assert _same(out.images, [digits[0]])
    assert out.images[0].dtype == np.uint8
    assert out.header.schedule is None        # one direct batch: nothing stored
    assert out.names is None and out.modes == ["1"]
    assert out.header.model_name == TINY_NAME  # not the default model: its name is stored


def test_chain_round_trip_uses_bits_back(tiny, chain):
    x, blob, stats = chain
    h = vlaecodec.inspect(blob)
    assert h.count == 40
    assert h.schedule[0] == (stats["direct_images"], False)
    assert all(bb for _, bb in h.schedule[1:])
    assert len(h.schedule) >= 3                      # batches grow with the stack
    assert sum(s for s, _ in h.schedule) == 40
    assert _same(vlaecodec.decompress(blob, tiny).images, x)


def test_stats_describe_the_file(tiny, chain):
    x, blob, stats = chain
    h, payload = container.unpack(blob)
    assert stats["batches"] == len(h.schedule)
    assert stats["payload_bytes"] == len(payload)
    assert stats["direct_images"] == h.schedule[0][0]
    assert 0 < stats["direct_bytes"] < stats["payload_bytes"]
    one: dict = {}
    b1 = codec.compress(x[:1], tiny, stats=one)
    assert one["direct_images"] == 1 and one["batches"] == 1
    assert one["payload_bytes"] == one["direct_bytes"] == len(container.unpack(b1)[1])


def test_chain_costs_less_per_image_than_single_files(tiny, chain):
    x, blob, stats = chain
    singles = sum(len(vlaecodec.compress([im], tiny)) for im in x[:5]) / 5
    assert len(blob) / len(x) < singles


def test_encoding_is_deterministic(tiny, chain):
    x, blob, _ = chain
    assert codec.compress(x, tiny) == blob
    assert vlaecodec.compress(x[:7], tiny) == vlaecodec.compress([im.copy() for im in x[:7]], tiny)


def test_pixel_dtypes_do_not_matter(tiny, digits):
    ref = vlaecodec.compress(list(digits[:3]), tiny)
    for dt in (np.int64, np.int32, np.uint16, bool):
        assert vlaecodec.compress([d.astype(dt) for d in digits[:3]], tiny) == ref


def test_names_and_modes_survive(tiny):
    x = list(synthetic_digits(5, seed=8))
    names = ["a.png", "b c.png", "ü.png", "", "x" * 255]
    modes = ["1", "L-binary", "1", "L-binary", "L-binary"]
    out = vlaecodec.decompress(vlaecodec.compress(x, tiny, names=names, modes=modes))
    assert out.names == names and out.modes == modes
    assert _same(out.images, x)
    one = vlaecodec.decompress(vlaecodec.compress(x[:1], tiny, names=["only.png"], modes=["L-binary"]))
    assert one.names == ["only.png"] and one.modes == ["L-binary"]


def test_numbered_names_cost_a_few_bytes(tiny):
    x = list(synthetic_digits(30, seed=9))
    plain = vlaecodec.compress(x, tiny)
    named = vlaecodec.compress(x, tiny, names=[f"{i:05d}.png" for i in range(30)])
    assert len(named) - len(plain) <= 12


def test_progress_counts_images(tiny, chain):
    x, blob, _ = chain
    seen: list[int] = []
    codec.compress(x, tiny, progress=seen.append)
    assert seen[-1] == 40 and seen == sorted(seen) and len(seen) >= 3
    seen_dec: list[int] = []
    vlaecodec.decompress(blob, tiny, progress=seen_dec.append)
    assert seen_dec[-1] == 40 and seen_dec == sorted(seen_dec)


def test_direct_start_grows_until_it_feeds_the_first_pop(tiny, monkeypatch):
    """With a start of too few bits, more images are coded directly (up to MAX_DIRECT)."""
    monkeypatch.setattr(codec, "STACK_MARGIN", 40.0)   # ask for far more start bits
    x = list(synthetic_digits(12, seed=12))
    st: dict = {}
    blob = codec.compress(x, tiny, stats=st)
    assert st["direct_images"] > 1
    assert _same(vlaecodec.decompress(blob, tiny).images, x)


# ------------------------------------------------------------------ transcript

class _Recorder:
    """Wraps a constriction AnsCoder; records every decode (pop) and encode_reverse
    (push): the model family, the parameter array and the symbols."""

    def __init__(self, real, *args, **kwargs):
        self._c = real(*args, **kwargs)
        self.init_words = np.array(args[0], copy=True) if args else None
        self.log: list[tuple[str, str, np.ndarray, np.ndarray]] = []
        self.final_words = None

    @staticmethod
    def _family(model) -> str:
        if model is codec._CATEGORICAL:
            return "categorical"
        if model is codec._BERNOULLI:
            return "bernoulli"
        return repr(model)

    def decode(self, model, params):
        out = self._c.decode(model, params)
        self.log.append(("pop", self._family(model), np.array(params, copy=True), np.array(out, copy=True)))
        return out

    def encode_reverse(self, symbols, model, params):
        self.log.append(("push", self._family(model), np.array(params, copy=True), np.array(symbols, copy=True)))
        return self._c.encode_reverse(symbols, model, params)

    def get_compressed(self, *a, **k):
        out = self._c.get_compressed(*a, **k)
        self.final_words = np.array(out, copy=True)
        return out

    def __getattr__(self, name):
        return getattr(self._c, name)


def _stack_ops(log, mirror: bool = False) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """A coder's calls as stack operations, one row per symbol, in the order the stack
    sees them (a push call stores its last symbol first), merged into runs of the same
    (kind, family). ``mirror``: the time-reversed sequence with pops and pushes swapped,
    i.e. what the other side must have done."""
    segs = []
    for kind, fam, params, syms in log:
        p = params.reshape(len(syms), -1) if fam == "categorical" else params.reshape(-1, 1)
        s = syms.ravel()
        assert len(p) == len(s)
        if kind == "push":
            p, s = p[::-1], s[::-1]
        segs.append((kind, fam, p, s))
    if mirror:
        segs = [({"push": "pop", "pop": "push"}[k], f, p[::-1], s[::-1]) for k, f, p, s in reversed(segs)]
    runs: list[tuple[str, str, list, list]] = []
    for k, f, p, s in segs:
        if runs and runs[-1][:2] == (k, f):
            runs[-1][2].append(p)
            runs[-1][3].append(s)
        else:
            runs.append((k, f, [p], [s]))
    return [(k, f, np.concatenate(p), np.concatenate(s)) for k, f, p, s in runs]


def test_decoder_mirrors_the_encoders_coder_calls(tiny, monkeypatch):
    """Numerics rule 1, end to end: every pop of the decoder uses exactly (array
    equality) the parameters of the encoder's matching push, in mirrored order, and
    returns its symbol; every push of the decoder gives back exactly what the encoder
    popped; the stack ends where the encoder started."""
    coders: list[_Recorder] = []
    real = constriction.stream.stack.AnsCoder

    def make(*a, **k):
        coders.append(_Recorder(real, *a, **k))
        return coders[-1]

    monkeypatch.setattr(constriction.stream.stack, "AnsCoder", make)
    monkeypatch.setattr(codec, "POSTERIOR_CHUNK", 7)   # several posterior chunks per batch
    x = list(synthetic_digits(40, seed=3))
    blob = codec.compress(x, tiny)
    assert len(coders) == 1
    out = vlaecodec.decompress(blob, tiny)
    assert len(coders) == 2 and _same(out.images, x)
    enc, dec = coders
    h = vlaecodec.inspect(blob)
    n_bb = sum(s for s, bb in h.schedule if bb)
    d, hw = tiny.config.latent_dim, 28 * 28
    # The calls themselves: the encoder pushes whole batches, the decoder pops one
    # latent dimension / one pixel at a time.
    assert sum(len(s) for k, f, _, s in enc.log if k == "pop") == n_bb * d
    assert sum(len(s) for k, f, _, s in enc.log if k == "push" and f == "bernoulli") == n_bb * hw
    assert sum(1 for k, f, _, _ in dec.log if k == "pop" and f == "bernoulli") == (len(h.schedule) - 1) * hw
    assert sum(1 for k, f, _, _ in dec.log if k == "pop" and f == "categorical") == (len(h.schedule) - 1) * d

    mine, mirrored = _stack_ops(dec.log), _stack_ops(enc.log, mirror=True)
    assert [(k, f) for k, f, _, _ in mine] == [(k, f) for k, f, _, _ in mirrored]
    # Per bits-back batch: pop z (prior), pop x, push z (posterior).
    assert [(k, f) for k, f, _, _ in mine] == [("pop", "categorical"), ("pop", "bernoulli"),
                                              ("push", "categorical")] * (len(h.schedule) - 1)
    for i, ((k, f, p, s), (_, _, p2, s2)) in enumerate(zip(mine, mirrored)):
        assert p.shape == p2.shape, (i, k, f)
        assert np.array_equal(p, p2), (i, k, f)       # same parameters, bit for bit
        assert np.array_equal(s, s2), (i, k, f)       # same symbols
    # Parameters are integer frequencies (categorical) / k * 2**-16 (Bernoulli).
    for k, f, p, _ in mine:
        q = p * (2 ** 16 if f == "bernoulli" else 1)
        assert np.array_equal(q, np.floor(q)), f
    # Bits given back: the decoder's stack ends as the chain's start the encoder began on.
    assert np.array_equal(dec.final_words, enc.init_words)


def test_direct_start_decoder_reads_the_encoders_frequencies(tiny, monkeypatch):
    """The arithmetic-coded start: the decoder's pixel frequencies (pixel stepper) are
    the encoder's (parallel pass), symbol for symbol, and so are the latent bins."""
    from vlaecodec.arith import ArithDecoder, ArithEncoder

    enc_calls: list[list] = []
    dec_calls: list = []

    class E(ArithEncoder):
        def __init__(self):
            super().__init__()
            enc_calls.append([])

        def encode(self, cum, freq, total):
            enc_calls[-1].append(("u", cum, total))
            super().encode(cum, freq, total)

        def encode_bit(self, bit, freq0, bits):
            enc_calls[-1].append(("b", bit, freq0))
            super().encode_bit(bit, freq0, bits)

    class D(ArithDecoder):
        def decode_uniform(self, size):
            s = super().decode_uniform(size)
            dec_calls.append(("u", s, size))
            return s

        def decode_bit(self, freq0, bits):
            b = super().decode_bit(freq0, bits)
            dec_calls.append(("b", b, freq0))
            return b

    monkeypatch.setattr(codec, "ArithEncoder", E)
    monkeypatch.setattr(codec, "ArithDecoder", D)
    x = list(synthetic_digits(3, seed=13))
    blob = codec.compress(x, tiny)
    assert _same(vlaecodec.decompress(blob, tiny).images, x)
    n_direct = vlaecodec.inspect(blob).batches()[0][0]
    sent = sum(1 for k in tiny.net.direct_bins if k > 1)
    assert enc_calls[-1] == dec_calls                      # the last encoder wrote the start
    assert len(dec_calls) == n_direct * (sent + 28 * 28)
    assert sum(1 for c in dec_calls if c[0] == "u") == n_direct * sent


# ------------------------------------------------------------------ errors

def _other_model(tmp_path):
    import torch

    from vlaecodec import freeze
    from vlaecodec.config import preset
    from vlaecodec.vlae import VLAE
    from vlaecodec.zoo import load_model_file

    torch.manual_seed(99)
    other = VLAE(preset("vlae-tiny")).eval()
    p = tmp_path / "other.npz"
    p.write_bytes(freeze.model_bytes(freeze.to_integer(other, name="other-tiny")))
    return load_model_file(p)


def test_wrong_model_is_rejected(tiny, tmp_path):
    other = _other_model(tmp_path)
    assert other.sha256 != tiny.sha256
    blob = vlaecodec.compress([synthetic_digits(1)[0]], tiny)
    with pytest.raises(ModelError, match="made with"):
        vlaecodec.decompress(blob, other)
    # A file made with a model that is not installed: found by nobody.
    blob2 = vlaecodec.compress(list(synthetic_digits(2)), other)
    with pytest.raises(ModelError, match="not installed"):
        vlaecodec.decompress(blob2)
    assert _same(vlaecodec.decompress(blob2, other).images, list(synthetic_digits(2)))


def test_bad_inputs_are_errors(tiny):
    with pytest.raises(vlaecodec.CodecError, match="outside 0..1"):
        vlaecodec.compress([np.full((28, 28), 255, np.uint8)], tiny)
    with pytest.raises(vlaecodec.CodecError, match="outside 0..1"):
        vlaecodec.compress([np.full((28, 28), -1, np.int64)], tiny)
    with pytest.raises(vlaecodec.CodecError, match="outside 0..1"):
        vlaecodec.compress([np.full((28, 28), 0.5)], tiny)          # float pixels
    with pytest.raises(vlaecodec.CodecError, match="28x28"):
        vlaecodec.compress([np.zeros((20, 28), np.uint8)], tiny)
    with pytest.raises(vlaecodec.CodecError, match="28x28"):
        vlaecodec.compress([np.zeros((28, 28), np.uint8), np.zeros((28, 28, 1), np.uint8)], tiny)
    with pytest.raises(vlaecodec.CodecError, match="no images"):
        vlaecodec.compress([], tiny)
    with pytest.raises(vlaecodec.CodecError, match="one name per image"):
        vlaecodec.compress(list(synthetic_digits(2)), tiny, names=["a"])
    with pytest.raises(vlaecodec.CodecError, match="mode"):
        vlaecodec.compress(list(synthetic_digits(2)), tiny, modes=["1", "RGB"])


def test_trailing_byte_and_truncation_are_rejected(tiny, chain):
    x, blob, _ = chain
    with pytest.raises(vlaecodec.CodecError):
        vlaecodec.decompress(blob + b"\0", tiny)
    with pytest.raises(vlaecodec.CodecError):
        vlaecodec.decompress(blob + b"\x01", tiny)
    hlen = len(blob) - len(container.unpack(blob)[1])
    cuts = sorted({0, 1, 2, 5, hlen - 1, hlen, hlen + 1, len(blob) // 2, len(blob) - 4, len(blob) - 1})
    for n in cuts:
        with pytest.raises(ERRORS):
            vlaecodec.decompress(blob[:n], tiny)


def test_single_image_truncations_are_rejected(tiny, digits):
    blob = vlaecodec.compress([digits[1]], tiny)
    for n in range(0, len(blob), 7):
        with pytest.raises(ERRORS):
            vlaecodec.decompress(blob[:n], tiny)


def test_version_1_file_is_refused(tiny):
    v1 = b"VL\x10" + bytes.fromhex(tiny.sha256[:6]) + b"\x01" + bytes(4) + np.random.default_rng(350).bytes(20)
    with pytest.raises(vlaecodec.CodecError, match="version 1") as e:
        vlaecodec.decompress(v1)
    assert "vlaecodec 0.1" in str(e.value)


def test_file_for_another_image_size_is_refused(tiny):
    data = craft(tiny.sha256[:6], shape=(32, 32), payload=bytes(20))
    with pytest.raises(vlaecodec.CodecError, match="32x32"):
        vlaecodec.decompress(data)
    data = craft(tiny.sha256[:6], levels=256, payload=bytes(20))
    with pytest.raises(vlaecodec.CodecError, match="256 levels"):
        vlaecodec.decompress(data)


# ------------------------------------------------------------ parallel chains

@pytest.mark.parametrize("n,chains", [(40, 3), (25, 2)])
def test_parallel_chains_round_trip_with_any_number_of_processes(tiny, monkeypatch, n, chains):
    """A long archive is split into independent chains (one per CHAIN_IMAGES images), coded
    in forked processes; the file does not depend on how many processes wrote it, and it
    decodes to the same images with one process or several."""
    monkeypatch.setattr(container, "CHAIN_IMAGES", 12)
    x = list(synthetic_digits(n, seed=21))
    names = [f"d{i:03d}.png" for i in range(n)]
    st: dict = {}
    blob = vlaecodec.compress(x, tiny, names=names, jobs=2, stats=st)
    h = vlaecodec.inspect(blob)
    assert st["chains"] == chains == len(h.chains()) and len(h.chain_bytes) == chains - 1
    assert sum(sum(c) for c in h.chains()) == n
    for jobs in (1, 3):
        assert vlaecodec.compress(x, tiny, names=names, jobs=jobs) == blob
    for dec_jobs in (1, 2, 4):
        out = vlaecodec.decompress(blob, tiny, jobs=dec_jobs)
        assert _same(out.images, x) and out.names == names


def test_damaged_chain_length_is_an_error(tiny, monkeypatch):
    monkeypatch.setattr(container, "CHAIN_IMAGES", 12)
    x = list(synthetic_digits(30, seed=22))
    blob = bytearray(vlaecodec.compress(x, tiny, jobs=2))
    h, payload = container.unpack(bytes(blob))
    # Move one byte from chain 1 to chain 0: header CRC is recomputed by re-packing.
    h2 = container.Header(model_hash=h.model_hash, count=h.count, schedule=h.schedule,
                          chain_bytes=[h.chain_bytes[0] + 1], modes=h.modes, names=h.names,
                          model_name=h.model_name)
    bad = container.pack(h2, payload, x)
    with pytest.raises(ERRORS):
        vlaecodec.decompress(bad, tiny)


def test_pixel_cost_table_is_far_from_rounding_ties():
    """The encoder's pixel-cost table is the same on every machine: each value is at least
    1e-6 away from a rounding tie, far beyond any log2's error."""
    f = np.arange(1, codec.PIXEL_TOTAL, dtype=np.float64)
    v = -np.log2(f / codec.PIXEL_TOTAL) * 65536
    assert np.abs(v - np.floor(v) - 0.5).min() > 1e-6
    assert np.array_equal(codec._NLL_Q16[1:], np.rint(v))


def test_one_chain_coded_with_threads_is_the_same_file(tiny, monkeypatch):
    """A single chain uses the cores as threads (intnet.threads): parts of each batch's
    passes run at once. The file and the decoded images must not depend on it."""
    from vlaecodec import intnet
    splits = []
    real = intnet.IntVLAE._split
    monkeypatch.setattr(intnet.IntVLAE, "_split", lambda self, fn, *a: splits.append(len(a[0])) or real(self, fn, *a))
    x = list(synthetic_digits(150, seed=23))
    alone = vlaecodec.compress(x, tiny, jobs=1)
    assert splits == []
    threaded = vlaecodec.compress(x, tiny, jobs=3)
    assert threaded == alone and max(splits) >= 64   # the threads really took parts
    n_enc = len(splits)
    out = vlaecodec.decompress(alone, tiny, jobs=3)
    assert _same(out.images, x) and len(splits) > n_enc
    assert _same(vlaecodec.decompress(alone, tiny, jobs=1).images, x)
    lossy = vlaecodec.compress(x[:40], tiny, lossy=True, jobs=1)
    assert vlaecodec.compress(x[:40], tiny, lossy=True, jobs=2) == lossy
    assert _same(vlaecodec.decompress(lossy, tiny, jobs=2).images, vlaecodec.decompress(lossy, tiny, jobs=1).images)


def test_two_threads_coding_with_one_model_at_once(tiny):
    """Each calling thread has its own pool (intnet.threads): concurrent calls on one
    model neither share nor shut down each other's."""
    from concurrent.futures import ThreadPoolExecutor
    sets = [list(synthetic_digits(120, seed=s)) for s in (31, 32, 33, 34)]
    want = [vlaecodec.compress(x, tiny, jobs=1) for x in sets]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda x: vlaecodec.compress(x, tiny, jobs=2), sets))
        back = list(ex.map(lambda b: vlaecodec.decompress(b, tiny, jobs=2).images, want))
    assert got == want
    assert all(_same(b, x) for b, x in zip(back, sets))
