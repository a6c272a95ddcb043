"""Exact arithmetic coder: lossless round trips and a near-optimal code length."""
from __future__ import annotations

import math
import random

import pytest

from vlaecodec.arith import ArithDecoder, ArithEncoder


def _bits(code: bytes) -> int:
    return 8 * len(code)


@pytest.mark.parametrize("seed", range(5))
def test_binary_round_trip_and_length(seed):
    rng = random.Random(seed)
    bits = 16
    total = 1 << bits
    msg = []
    for _ in range(300):
        freq0 = rng.randint(1, total - 1)
        bit = int(rng.random() >= freq0 / total)
        msg.append((bit, freq0))
    enc = ArithEncoder()
    info = 0.0
    for bit, freq0 in msg:
        enc.encode_bit(bit, freq0, bits)
        info -= math.log2((freq0 if bit == 0 else total - freq0) / total)
    code = enc.finish()
    assert _bits(code) <= info + 9
    dec = ArithDecoder(code)
    assert [dec.decode_bit(f, bits) for _, f in msg] == [b for b, _ in msg]


def test_binary_adversarial_symbols():
    """Improbable symbols (p = 2**-16) cost ~16 bits each but still decode."""
    bits, total = 16, 1 << 16
    msg = [(i % 3 == 0, 1 if i % 2 else total - 1) for i in range(50)]
    enc = ArithEncoder()
    info = 0.0
    for bit, freq0 in msg:
        enc.encode_bit(int(bit), freq0, bits)
        info -= math.log2((freq0 if not bit else total - freq0) / total)
    code = enc.finish()
    assert info > 200 and _bits(code) <= info + 9
    dec = ArithDecoder(code)
    assert [bool(dec.decode_bit(f, bits)) for _, f in msg] == [b for b, _ in msg]


@pytest.mark.parametrize("seed", range(3))
def test_uniform_round_trip_and_length(seed):
    rng = random.Random(100 + seed)
    msg = [(rng.randrange(size), size) for size in (rng.randint(1, 1000) for _ in range(200))]
    enc = ArithEncoder()
    for s, size in msg:
        enc.encode(s, 1, size)
    code = enc.finish()
    info = sum(math.log2(size) for _, size in msg)
    assert _bits(code) <= info + 9
    dec = ArithDecoder(code)
    assert [dec.decode_uniform(size) for _, size in msg] == [s for s, _ in msg]


@pytest.mark.parametrize("seed", range(5))
def test_general_round_trip_and_length(seed):
    rng = random.Random(200 + seed)
    msg = []
    for _ in range(200):
        n = rng.randint(1, 12)
        freqs = [rng.randint(1, 50) for _ in range(n)]
        cums = [0]
        for f in freqs[:-1]:
            cums.append(cums[-1] + f)
        total = sum(freqs)
        s = rng.choices(range(n), weights=freqs)[0]
        msg.append((s, cums, freqs, total))
    enc = ArithEncoder()
    info = 0.0
    for s, cums, freqs, total in msg:
        enc.encode(cums[s], freqs[s], total)
        info -= math.log2(freqs[s] / total)
    code = enc.finish()
    assert _bits(code) <= info + 9
    dec = ArithDecoder(code)
    assert [dec.decode(cums, total) for _, cums, _, total in msg] == [m[0] for m in msg]


def test_first_and_last_symbols_of_an_alphabet():
    cums, total = [0, 1, 2, 100], 200  # last symbol takes [100, 200)
    msg = [0, 3, 3, 0, 1, 2, 3, 0, 0, 2]
    enc = ArithEncoder()
    for s in msg:
        hi = cums[s + 1] if s + 1 < len(cums) else total
        enc.encode(cums[s], hi - cums[s], total)
    dec = ArithDecoder(enc.finish())
    assert [dec.decode(cums, total) for _ in msg] == msg


def test_mixed_symbol_kinds_in_one_stream():
    rng = random.Random(7)
    enc = ArithEncoder()
    ops = []
    for i in range(300):
        kind = i % 3
        if kind == 0:
            f0 = rng.randint(1, (1 << 12) - 1)
            b = rng.randint(0, 1)
            enc.encode_bit(b, f0, 12)
            ops.append((kind, f0, b))
        elif kind == 1:
            size = rng.randint(1, 77)
            s = rng.randrange(size)
            enc.encode(s, 1, size)
            ops.append((kind, size, s))
        else:
            cums, total = [0, 3, 10], 17
            s = rng.randrange(3)
            hi = cums[s + 1] if s < 2 else total
            enc.encode(cums[s], hi - cums[s], total)
            ops.append((kind, None, s))
    dec = ArithDecoder(enc.finish())
    for kind, arg, want in ops:
        got = (dec.decode_bit(arg, 12) if kind == 0 else
               dec.decode_uniform(arg) if kind == 1 else dec.decode([0, 3, 10], 17))
        assert got == want


def test_encode_bit_equals_general_encode():
    rng = random.Random(8)
    a, b = ArithEncoder(), ArithEncoder()
    for _ in range(100):
        f0 = rng.randint(1, 65535)
        bit = rng.randint(0, 1)
        a.encode_bit(bit, f0, 16)
        b.encode(f0 if bit else 0, (65536 - f0) if bit else f0, 65536)
    assert a.finish() == b.finish()


def test_empty_message():
    assert ArithEncoder().finish() == b""
    dec = ArithDecoder(b"")  # decoding from nothing is allowed and deterministic
    assert dec.decode_uniform(10) == 0


def test_near_certain_symbols_cost_nothing():
    enc = ArithEncoder()
    for _ in range(100):
        enc.encode_bit(0, 65535, 16)  # info: 100 * 2.2e-5 bits
    code = enc.finish()
    assert code == b""
    dec = ArithDecoder(code)
    assert all(dec.decode_bit(65535, 16) == 0 for _ in range(100))


def test_code_is_shortest_within_a_byte():
    """Dropping the last byte must not still decode the message (no slack bytes)."""
    rng = random.Random(9)
    msg = [rng.randint(0, 1) for _ in range(400)]
    enc = ArithEncoder()
    for b in msg:
        enc.encode_bit(b, 1 << 15, 16)
    code = enc.finish()
    assert len(code) == 50  # exactly 400 bits of information
    dec = ArithDecoder(code[:-1])
    assert [dec.decode_bit(1 << 15, 16) for _ in msg] != msg
