"""The .vlae container: compact header, exact round trips, clear errors."""
from __future__ import annotations

import random
import zlib

import pytest

from vlaecodec import container as C
from vlaecodec.container import ContainerError, Header, pack, unpack

HASH = "a1b2c3d4e5f60718"
PAYLOAD = bytes(range(17))


def _round_trip(h: Header, payload: bytes = PAYLOAD, default_shape=(28, 28)) -> Header:
    data = pack(h, payload)
    got, rest = unpack(data, default_shape=default_shape)
    assert rest == payload
    assert got.model_hash == h.model_hash[:2 * C.HASH_BYTES]
    assert got.count == h.count
    assert (got.height, got.width) == (h.height, h.width)
    assert got.model_name == (h.model_name or None)
    assert got.schedule == h.schedule
    assert got.names == h.names
    assert got.image_modes() == h.image_modes()
    assert got.crc32 == h.crc32
    assert got.version == C.FORMAT_VERSION
    assert got.batches() == h.batches()
    return got


# ---------------------------------------------------------------- varints

@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 300, 16383, 16384, 2 ** 32 - 1, 2 ** 40])
def test_varint_round_trip(n):
    out = bytearray()
    C.put_varint(out, n)
    assert len(out) == max(1, -(-n.bit_length() // 7))
    r = C._Reader(bytes(out) + b"tail")
    assert r.varint() == n
    assert r.pos == len(out)


def test_varint_rejects_negative_and_oversized():
    with pytest.raises(ValueError):
        C.put_varint(bytearray(), -1)
    out = bytearray()
    C.put_varint(out, 1000)
    with pytest.raises(ContainerError):
        C._Reader(bytes(out)).varint(limit=999)
    with pytest.raises(ContainerError):
        C._Reader(b"\x80\x80").varint()  # continuation bit, then nothing


# ---------------------------------------------------------------- sizes

def test_minimal_header_is_11_bytes():
    data = pack(Header(model_hash=HASH, count=1, crc32=0xDEADBEEF), PAYLOAD)
    assert len(data) == 11 + len(PAYLOAD)
    assert data[:2] == b"VL"
    assert data[2] == C.FORMAT_VERSION << 4
    assert data[3:6] == bytes.fromhex(HASH[:6])
    assert data[7:11] == (0xDEADBEEF).to_bytes(4, "little")
    assert data[11:] == PAYLOAD


def test_minimal_header_round_trip():
    _round_trip(Header(model_hash=HASH, count=1, crc32=123456789))


def test_numbered_names_cost_a_few_bytes():
    n = 1000
    names = [f"{i:05d}.png" for i in range(n)]
    base = len(pack(Header(model_hash=HASH, count=n), b""))
    with_names = pack(Header(model_hash=HASH, count=n, names=names), b"")
    assert len(with_names) - base < 12
    _round_trip(Header(model_hash=HASH, count=n, names=names))


@pytest.mark.parametrize("names", [
    ["img7.png", "img8.png", "img9.png", "img10.png"],       # width grows past the pattern
    ["scan_003_a.tif", "scan_004_a.tif"],
    ["a.png", "b.png", "c.png"],
    ["x1.png", "x3.png", "x2.png"],
    ["café 1.png", "café 2.png"],
    ["", "no digits", "ünïcödé.png"],
    ["42"],
])
def test_names_round_trip(names):
    _round_trip(Header(model_hash=HASH, count=len(names), names=names))


def test_arbitrary_names_are_zlib_compressed():
    rng = random.Random(0)
    names = [f"photo-{rng.choice(['cat', 'dog', 'owl'])}-{rng.randrange(10 ** 6)}.png" for _ in range(200)]
    h = Header(model_hash=HASH, count=len(names), names=names)
    data = pack(h, b"")
    base = len(pack(Header(model_hash=HASH, count=len(names)), b""))
    assert len(data) - base < len(zlib.compress("\n".join(names).encode(), 9)) + 8
    _round_trip(h)


def test_names_with_newline_refused():
    with pytest.raises(ValueError):
        pack(Header(model_hash=HASH, count=1, names=["a\nb"]), b"")


@pytest.mark.parametrize("names", [["20240101123045.png"], ["1" * 70 + ".png"]])
def test_long_numbered_names_round_trip(names):
    _round_trip(Header(model_hash=HASH, count=len(names), names=names))


# ---------------------------------------------------------------- optional fields

def test_model_name_round_trip():
    _round_trip(Header(model_hash=HASH, count=3, model_name="vlae-mnist-v1"))


@pytest.mark.parametrize("schedule", [[(1, False)], [(5, True)], [(1, False), (4, True), (300, True)]])
def test_schedule_round_trip(schedule):
    _round_trip(Header(model_hash=HASH, count=sum(s for s, _ in schedule), schedule=schedule))


def test_schedule_must_cover_every_image():
    with pytest.raises(ValueError):
        pack(Header(model_hash=HASH, count=3, schedule=[(2, True)]), b"")


def test_modes_all_l_costs_one_byte():
    h = Header(model_hash=HASH, count=5, modes=["L"] * 5)
    assert len(pack(h, b"")) == 12
    _round_trip(h)


@pytest.mark.parametrize("n", [1, 2, 8, 9, 20])
def test_mixed_modes_round_trip(n):
    modes = ["L" if (i * 7) % 3 == 0 else "1" for i in range(n)]
    if all(m == "L" for m in modes):
        modes[-1] = "1"
    _round_trip(Header(model_hash=HASH, count=n, modes=modes))


def test_all_binary_modes_are_implicit():
    h = Header(model_hash=HASH, count=4, modes=["1"] * 4)
    assert len(pack(h, b"")) == 11
    got = _round_trip(h)
    assert got.image_modes() == ["1"] * 4


def test_wrong_number_of_modes_refused():
    with pytest.raises(ValueError):
        pack(Header(model_hash=HASH, count=3, modes=["L"]), b"")


@pytest.mark.parametrize("shape", [(32, 20), (1, 1), (28, 27), (4000, 3)])
def test_shape_round_trip(shape):
    _round_trip(Header(model_hash=HASH, count=2, height=shape[0], width=shape[1]))


def test_default_shape_is_not_stored():
    h = Header(model_hash=HASH, count=1, height=32, width=32, default_shape=(32, 32))
    data = pack(h, b"")
    assert len(data) == 11
    got, _ = unpack(data, default_shape=(32, 32))
    assert (got.height, got.width) == (32, 32)


def test_everything_at_once():
    n = 12
    h = Header(model_hash=HASH, count=n, height=30, width=29, model_name="m", schedule=[(2, False), (10, True)],
               names=[f"d{i:03d}.png" for i in range(n)], modes=["L", "1"] * 6, crc32=0xFFFFFFFF)
    _round_trip(h)


# ---------------------------------------------------------------- errors

def _full_header() -> bytes:
    n = 10
    h = Header(model_hash=HASH, count=n, height=30, width=29, model_name="vlae-x", schedule=[(3, False), (7, True)],
               names=[f"n{i}" for i in range(n)][::-1], modes=["L", "1"] * 5, crc32=42)
    return pack(h, b"")


@pytest.mark.parametrize("make", [
    lambda: pack(Header(model_hash=HASH, count=1), b""),
    lambda: pack(Header(model_hash=HASH, count=300, names=[f"{i:05d}.png" for i in range(300)]), b""),
    _full_header,
])
def test_every_truncation_raises(make):
    data = make()
    assert unpack(data)[1] == b""
    for k in range(len(data)):
        with pytest.raises(ContainerError):
            unpack(data[:k])


def test_bad_magic():
    data = pack(Header(model_hash=HASH, count=1), PAYLOAD)
    for bad in (b"PK" + data[2:], b"\x89PNG\r\n\x1a\n", b""):
        with pytest.raises(ContainerError, match="magic"):
            unpack(bad)


@pytest.mark.parametrize("version", [0, 2, 15])
def test_bad_version(version):
    data = bytearray(pack(Header(model_hash=HASH, count=1), PAYLOAD))
    data[2] = (version << 4) | (data[2] & 0x0F)
    with pytest.raises(ContainerError, match=f"version {version}") as e:
        unpack(bytes(data))
    assert f"version {C.FORMAT_VERSION}" in str(e.value)  # says what it can read


def test_zero_images_and_unknown_flags_raise():
    data = bytearray(pack(Header(model_hash=HASH, count=1), b""))
    data[6] = 0  # count
    with pytest.raises(ContainerError):
        unpack(bytes(data))
    data = bytearray(pack(Header(model_hash=HASH, count=1, modes=["L"]), b""))
    data[3] |= 0x80  # undefined extension flag
    with pytest.raises(ContainerError, match="flags"):
        unpack(bytes(data))
    data[3] = C.EXT_MODES_L | C.EXT_MODES_MIXED  # contradictory
    with pytest.raises(ContainerError):
        unpack(bytes(data))


def test_corrupt_schedule_and_names_raise():
    h = Header(model_hash=HASH, count=4, schedule=[(4, True)], names=["a", "b", "c", "d"])
    data = bytearray(pack(h, b""))
    i = 7  # after magic, version, hash (3), count: schedule length, then entries
    assert data[i] == 1 and data[i + 1] == (4 << 1 | 1)
    data[i + 1] = 3 << 1 | 1  # schedule no longer covers every image
    with pytest.raises(ContainerError, match="schedule"):
        unpack(bytes(data))
    data = bytearray(pack(h, b""))
    data[i + 2] = 7  # unknown names encoding
    with pytest.raises(ContainerError, match="names"):
        unpack(bytes(data))


def test_crc_of_pixels():
    chunks = [bytes([0, 1] * 392), bytes(784)]
    assert C.pixels_crc32(chunks) == zlib.crc32(b"".join(chunks))
    assert C.pixels_crc32([]) == 0
