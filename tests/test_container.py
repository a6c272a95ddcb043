"""The .vlae container, format version 2: compact header, exact round trips, CRCs over
everything, limits checked while parsing, clear errors."""
from __future__ import annotations

import random
import struct
import zlib

import numpy as np
import pytest

from vlaecodec import container as C
from vlaecodec.container import ContainerError, Header, pack, unpack

from vlaefile import craft, modes_all, modes_each, names_list, names_pattern, varint

HASH = "a1b2c3d4e5f60718"
PAYLOAD = bytes(range(17))


def _pixels(n: int, h: int = 28, w: int = 28, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return list(rng.integers(0, 2, size=(n, h, w), dtype=np.uint8))


def _payload_for(count: int) -> bytes:
    """A payload long enough for ``count`` images (one per byte beyond MAX_DIRECT)."""
    return PAYLOAD if count <= C.MAX_DIRECT + len(PAYLOAD) else bytes(range(256)) * (count // 256 + 1)


def _round_trip(h: Header, payload: bytes | None = None) -> Header:
    payload = _payload_for(h.count) if payload is None else payload
    px = _pixels(min(h.count, 3), min(h.height, 8), min(h.width, 8))
    data = pack(h, payload, px)
    got, rest = unpack(data)
    assert rest == payload
    assert got.model_hash == h.model_hash[:2 * C.HASH_BYTES]
    assert got.count == h.count
    assert (got.height, got.width) == (h.height, h.width)
    assert got.levels == h.levels
    assert got.model_name == (h.model_name or None)
    assert got.schedule == h.schedule
    assert got.names == h.names
    assert got.image_modes() == h.image_modes()
    assert got.version == C.FORMAT_VERSION
    assert got.batches() == h.batches()
    got.verify(px)  # the final CRC covers header, payload length and these pixels
    return got


# ---------------------------------------------------------------- varints

@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 300, 16383, 16384, 2 ** 32 - 1, 2 ** 40])
def test_varint_round_trip(n):
    out = bytearray()
    C.put_varint(out, n)
    assert len(out) == max(1, -(-n.bit_length() // 7))
    data = bytes(out) + b"tail"
    r = C._Reader(data, len(data))
    assert r.varint(2 ** 64) == n
    assert r.pos == len(out)


def test_varint_rejects_negative_oversized_and_unterminated():
    with pytest.raises(ValueError):
        C.put_varint(bytearray(), -1)
    out = bytes(varint(1000))
    with pytest.raises(ContainerError, match="implausibly large"):
        C._Reader(out, len(out)).varint(999)
    assert C._Reader(out, len(out)).varint(1000) == 1000
    with pytest.raises(ContainerError, match="truncated"):
        C._Reader(b"\x80\x80", 2).varint(2 ** 64)  # continuation bit, then nothing
    endless = b"\x80" * 20 + b"\x01"  # 140+ bits of zeros: never a plausible value
    with pytest.raises(ContainerError):
        C._Reader(endless, len(endless)).varint(2 ** 64)


def test_reader_never_reads_past_its_end():
    r = C._Reader(b"abcdef", 3)
    assert r.take(3) == b"abc"
    with pytest.raises(ContainerError, match="truncated"):
        r.take(1)


# ---------------------------------------------------------------- sizes and layout

def test_single_image_header_is_10_bytes():
    px = _pixels(1)
    data = pack(Header(model_hash=HASH, count=1), PAYLOAD, px)
    assert len(data) == 10 + len(PAYLOAD)
    assert data[:2] == b"VL"
    assert data[2] == C.FORMAT_VERSION << 4  # no flags
    assert data[3:6] == bytes.fromhex(HASH[:6])
    base = zlib.crc32(struct.pack("<Q", len(PAYLOAD)), zlib.crc32(data[:6]))
    assert data[6:10] == struct.pack("<I", zlib.crc32(px[0].tobytes(), base))
    assert data[10:] == PAYLOAD


def test_archive_header_has_count_and_header_crc():
    px = _pixels(3)
    data = pack(Header(model_hash=HASH, count=3), PAYLOAD, px)
    assert data[2] == (C.FORMAT_VERSION << 4) | C.F_MULTI
    assert data[6] == 3
    assert data[7:11] == struct.pack("<I", zlib.crc32(data[:7]))
    assert len(data) == 15 + len(PAYLOAD)


@pytest.mark.parametrize("h", [
    Header(model_hash=HASH, count=1),
    Header(model_hash=HASH, count=5, schedule=[(1, False), (4, True)]),
    Header(model_hash=HASH, count=3, model_name="vlae-x", names=["a.png", "b", "c"], modes=["1", "L-binary", "1"]),
    Header(model_hash=HASH, count=2, height=30, width=29, levels=256, modes=["L", "L"]),
    Header(model_hash=HASH, count=4, names=[f"{i:03d}.png" for i in range(4)], modes=["L-binary"] * 4),
])
def test_pack_follows_the_documented_layout(h):
    """The test helper writes headers from the docstring's table; pack must agree."""
    px = _pixels(h.count, 4, 4)
    ext_modes = None
    modes = h.image_modes()
    if any(m != C.default_mode(h.levels) for m in modes):
        codes = [C.MODES.index(m) for m in modes]
        ext_modes = modes_all(codes[0]) if len(set(codes)) == 1 else modes_each(codes)
    names = None
    if h.names is not None:
        out = bytearray()
        C._encode_names(out, h.names)
        names = bytes(out)
    want = craft(h.model_hash[:6], count=h.count if h.count > 1 else None, model_name=h.model_name,
                 shape=(h.height, h.width) if (h.height, h.width) != (28, 28) else None,
                 levels=h.levels if h.levels != 2 else None, modes=ext_modes,
                 schedule=[s for s, _ in h.schedule] if h.schedule else None, names=names,
                 payload=PAYLOAD, pixels=px)
    assert pack(h, PAYLOAD, px) == want


def test_numbered_names_cost_a_few_bytes():
    n = 1000
    names = [f"{i:05d}.png" for i in range(n)]
    sched = [(1, False), (999, True)]
    payload = _payload_for(n)
    base = len(pack(Header(model_hash=HASH, count=n, schedule=sched), payload, []))
    with_names = pack(Header(model_hash=HASH, count=n, schedule=sched, names=names), payload, [])
    assert len(with_names) - base < 12
    _round_trip(Header(model_hash=HASH, count=n, schedule=sched, names=names))


@pytest.mark.parametrize("names", [
    ["img7.png", "img8.png", "img9.png", "img10.png"],       # width grows past the pattern
    ["scan_003_a.tif", "scan_004_a.tif"],
    ["a.png", "b.png", "c.png"],
    ["x1.png", "x3.png", "x2.png"],
    ["café 1.png", "café 2.png"],
    ["", "no digits", "ünïcödé.png"],
    ["42"],
    ["a" * 255, "b" * 255],
])
def test_names_round_trip(names):
    _round_trip(Header(model_hash=HASH, count=len(names), names=names))


def test_arbitrary_names_are_zlib_compressed():
    rng = random.Random(0)
    names = [f"photo-{rng.choice(['cat', 'dog', 'owl'])}-{rng.randrange(10 ** 6)}.png" for _ in range(60)]
    sched = [(1, False), (len(names) - 1, True)]
    h = Header(model_hash=HASH, count=len(names), names=names, schedule=sched)
    data = pack(h, bytes(60), [])
    base = len(pack(Header(model_hash=HASH, count=len(names), schedule=sched), bytes(60), []))
    assert len(data) - base < len(zlib.compress("\n".join(names).encode(), 9)) + 8
    _round_trip(h)


@pytest.mark.parametrize("bad", [["a\nb"], ["x" * 256], ["ü" * 128]])
def test_bad_names_refused(bad):
    with pytest.raises(ContainerError, match="too long or holds a newline"):
        pack(Header(model_hash=HASH, count=1, names=bad), b"", [])


def test_one_name_per_image():
    with pytest.raises(ContainerError, match="one name per image"):
        pack(Header(model_hash=HASH, count=2, names=["a"]), b"", [])


@pytest.mark.parametrize("names", [["20240101123045.png"], ["1" * 70 + ".png"], ["p" * 254 + "1"]])
def test_long_numbered_names_round_trip(names):
    _round_trip(Header(model_hash=HASH, count=len(names), names=names))


# ---------------------------------------------------------------- optional fields

def test_model_name_round_trip_and_cost():
    base = len(pack(Header(model_hash=HASH, count=1), b"", []))
    data = pack(Header(model_hash=HASH, count=1, model_name="vlae-mnist-v1"), b"", [])
    assert len(data) == base + 1 + 1 + len("vlae-mnist-v1")  # ext byte, length, text
    _round_trip(Header(model_hash=HASH, count=3, model_name="vlae-mnist-v1"))
    _round_trip(Header(model_hash=HASH, count=1, model_name="ünï"))


@pytest.mark.parametrize("schedule", [[(1, False), (4, True)], [(1, False), (4, True), (300, True)],
                                      [(C.MAX_DIRECT, False), (1000, True), (1000, True)]])
def test_schedule_round_trip(schedule):
    _round_trip(Header(model_hash=HASH, count=sum(s for s, _ in schedule), schedule=schedule))


@pytest.mark.parametrize("schedule", [[(2, False)], [(1, False), (1, True)], [(3, True)],
                                      [(1, False), (1, False), (1, True)], [(1, True), (2, True)]])
def test_schedule_must_be_direct_then_bits_back_covering_every_image(schedule):
    with pytest.raises(ValueError, match="schedule"):
        pack(Header(model_hash=HASH, count=3, schedule=schedule), b"", [])


def test_modes_all_same_costs_three_bytes():
    base = len(pack(Header(model_hash=HASH, count=5), b"", []))
    h = Header(model_hash=HASH, count=5, modes=["L-binary"] * 5)
    assert len(pack(h, b"", [])) == base + 3  # ext byte, kind, code
    _round_trip(h)


@pytest.mark.parametrize("n", [1, 2, 4, 5, 8, 9, 20])
def test_mixed_modes_round_trip(n):
    modes = [C.MODES[(i * 7) % 3] for i in range(n)]
    if len(set(modes)) == 1:
        modes[-1] = "L-binary"
    sched = [(1, False), (n - 1, True)] if n > C.MAX_DIRECT else None
    h = Header(model_hash=HASH, count=n, modes=modes, schedule=sched)
    if len(set(modes)) > 1:
        payload = _payload_for(n)
        base = len(pack(Header(model_hash=HASH, count=n, schedule=sched), payload, []))
        assert len(pack(h, payload, [])) == base + 2 + (n + 3) // 4  # ext byte, kind, 2 bits each
    _round_trip(h)


def test_default_modes_are_implicit():
    h = Header(model_hash=HASH, count=4, modes=["1"] * 4)
    assert pack(h, b"", []) == pack(Header(model_hash=HASH, count=4), b"", [])
    assert _round_trip(h).image_modes() == ["1"] * 4
    h8 = Header(model_hash=HASH, count=2, levels=256, modes=["L", "L"])
    assert pack(h8, b"", []) == pack(Header(model_hash=HASH, count=2, levels=256), b"", [])
    assert _round_trip(h8).image_modes() == ["L", "L"]


@pytest.mark.parametrize("modes", [["L"], ["L", "1", "1"], ["RGB", "1"], ["l", "1"]])
def test_wrong_number_or_unknown_modes_refused(modes):
    with pytest.raises(ContainerError, match="one mode per image"):
        pack(Header(model_hash=HASH, count=2, modes=modes), b"", [])


@pytest.mark.parametrize("shape", [(32, 20), (1, 1), (28, 27), (C.MAX_SIDE, 3)])
def test_shape_round_trip(shape):
    _round_trip(Header(model_hash=HASH, count=2, height=shape[0], width=shape[1]))


def test_default_shape_and_levels_are_not_stored():
    base = pack(Header(model_hash=HASH, count=1), b"", [])
    assert pack(Header(model_hash=HASH, count=1, height=28, width=28, levels=2), b"", []) == base
    assert len(pack(Header(model_hash=HASH, count=1, height=32, width=32), b"", [])) == len(base) + 3
    assert len(pack(Header(model_hash=HASH, count=1, levels=256), b"", [])) == len(base) + 3


def test_levels_round_trip():
    got = _round_trip(Header(model_hash=HASH, count=3, levels=256))
    assert got.image_modes() == ["L"] * 3


def test_everything_at_once():
    n = 12
    h = Header(model_hash=HASH, count=n, height=30, width=29, levels=256, model_name="m",
               schedule=[(2, False), (10, True)], names=[f"d{i:03d}.png" for i in range(n)],
               modes=["L", "1", "L-binary"] * 4)
    _round_trip(h)


# ---------------------------------------------------------------- CRCs

def test_final_crc_covers_pixels_payload_length_and_header():
    px = _pixels(3)
    h = Header(model_hash=HASH, count=3, names=["a", "b", "c"])
    got, _ = unpack(pack(h, PAYLOAD, px))
    got.verify(px)
    for i in range(3):  # any one pixel changed
        bad = [p.copy() for p in px]
        bad[i][5, 7] ^= 1
        with pytest.raises(ContainerError, match="CRC32"):
            got.verify(bad)
    with pytest.raises(ContainerError, match="CRC32"):
        got.verify(px[:2])
    # The same header and pixels with a payload one byte longer or shorter: another CRC.
    for other in (PAYLOAD + b"\0", PAYLOAD[:-1]):
        g2, _ = unpack(pack(h, other, px))
        assert g2.crc32 != got.crc32
    # A single image's header has no CRC of its own: the final CRC covers it.
    one, _ = unpack(pack(Header(model_hash=HASH, count=1, names=["a"]), PAYLOAD, px[:1]))
    other, _ = unpack(pack(Header(model_hash=HASH, count=1, names=["b"]), PAYLOAD, px[:1]))
    assert one.crc32 != other.crc32


def test_archive_final_crc_depends_on_the_header():
    # (Regression: the final CRC once ran over the header *and* its own CRC32, and
    # CRC32(M + CRC32(M)) is a constant, so the header did not count.)
    px = _pixels(3)
    a, _ = unpack(pack(Header(model_hash=HASH, count=3, names=["a", "b", "c"]), PAYLOAD, px))
    b, _ = unpack(pack(Header(model_hash=HASH, count=3, names=["a", "b", "d"]), PAYLOAD, px))
    assert a.crc32 != b.crc32


def test_archive_header_crc_is_checked_before_anything_else():
    data = bytearray(pack(Header(model_hash=HASH, count=3, names=["x.png", "y.png", "zz"]), PAYLOAD, []))
    hlen = len(data) - len(PAYLOAD)
    crc_at = hlen - 8
    for pos in range(3, crc_at + 4):  # every byte after magic+version, through the header CRC
        bad = bytearray(data)
        bad[pos] ^= 0x01
        with pytest.raises(ContainerError):
            unpack(bytes(bad))
    bad = bytearray(data)
    bad[crc_at] ^= 0xFF
    with pytest.raises(ContainerError, match="header CRC32"):
        unpack(bytes(bad))


def test_crc_of_pixels():
    chunks = [bytes([0, 1] * 392), bytes(784)]
    assert C.pixels_crc32(chunks) == zlib.crc32(b"".join(chunks))
    assert C.pixels_crc32([]) == 0
    arrs = [np.frombuffer(c, np.uint8).reshape(28, 28) for c in chunks]
    assert C.pixels_crc32(arrs) == zlib.crc32(b"".join(chunks))
    assert C.pixels_crc32(arrs[1:], C.pixels_crc32(arrs[:1])) == C.pixels_crc32(arrs)
    # Non-contiguous and non-uint8 views are read as uint8 pixels in raster order.
    big = np.zeros((28, 56), np.int64)
    big[:, ::2] = arrs[0]
    assert C.pixels_crc32([big[:, ::2]]) == zlib.crc32(chunks[0])


# ---------------------------------------------------------------- errors

def _full_header() -> bytes:
    n = 10
    h = Header(model_hash=HASH, count=n, height=30, width=29, model_name="vlae-x",
               schedule=[(3, False), (7, True)], names=[f"n{i}" for i in range(n)][::-1],
               modes=["L-binary", "1"] * 5)
    return pack(h, b"", [])


@pytest.mark.parametrize("make", [
    lambda: pack(Header(model_hash=HASH, count=1), b"", []),
    lambda: pack(Header(model_hash=HASH, count=300, schedule=[(1, False), (299, True)],
                        names=[f"{i:05d}.png" for i in range(300)]), bytes(300), []),
    _full_header,
])
def test_every_truncation_of_a_header_raises(make):
    data = make()
    h, payload = unpack(data)
    data = data[:len(data) - len(payload)]   # the header alone: every cut ends inside it
    for k in range(len(data)):
        with pytest.raises(ContainerError):
            unpack(data[:k])


def test_truncated_or_extended_payload_fails_the_final_crc():
    px = _pixels(2)
    data = pack(Header(model_hash=HASH, count=2), PAYLOAD, px)
    for cut in (data[:-1], data[:-len(PAYLOAD)], data + b"\0", data + PAYLOAD):
        h, _ = unpack(cut)
        with pytest.raises(ContainerError, match="CRC32"):
            h.verify(px)


def test_bad_magic():
    data = pack(Header(model_hash=HASH, count=1), PAYLOAD, [])
    for bad in (b"PK" + data[2:], b"\x89PNG\r\n\x1a\n", b"", b"V", b"VL"):
        with pytest.raises(ContainerError, match="magic|truncated"):
            unpack(bad)


@pytest.mark.parametrize("version", [0, 1, 3, 15])
def test_other_versions_refused_naming_them(version):
    data = bytearray(pack(Header(model_hash=HASH, count=1), PAYLOAD, []))
    data[2] = (version << 4) | (data[2] & 0x0F)
    with pytest.raises(ContainerError, match=f"version {version}") as e:
        unpack(bytes(data))
    assert f"version {C.FORMAT_VERSION}" in str(e.value)  # says what it can read
    if version == 1:
        assert "vlaecodec 0.1" in str(e.value)


def test_version_1_file_refused():
    # A vlaecodec 0.1 file: magic, version 1 with no flags, hash, count, CRC, payload.
    v1 = b"VL\x10" + bytes.fromhex("a1b2c3") + b"\x01" + bytes(4) + PAYLOAD
    with pytest.raises(ContainerError, match="version 1"):
        unpack(v1)


def test_image_count_and_flags_checked():
    with pytest.raises(ContainerError, match="image count"):
        unpack(craft(count=1))            # MULTI must mean >= 2 images
    with pytest.raises(ContainerError, match="image count"):
        unpack(craft(count=0))
    with pytest.raises(ContainerError, match="flags"):
        unpack(craft(levels=256, ext_extra=0x80))   # undefined extension flag
    with pytest.raises(ContainerError, match="flags"):
        unpack(craft(flags_extra=C.F_EXT))          # an extension byte with no flag set
    unpack(craft(count=2))                          # the baseline is fine


def test_image_count_bounded_by_file_size():
    """At most MAX_IMAGES_PER_PAYLOAD_BYTE images per payload byte beyond MAX_DIRECT."""
    n = C.MAX_DIRECT + 100
    unpack(craft(count=n, schedule=[1, n - 1], payload=bytes(100)))   # exactly at the bound
    with pytest.raises(ContainerError, match="payload can hold"):
        unpack(craft(count=n, schedule=[1, n - 1], payload=bytes(99)))
    with pytest.raises(ContainerError, match="implausibly large"):
        unpack(craft(count=10 ** 9, schedule=[1] + [1000] * 3))


@pytest.mark.parametrize("schedule,count", [
    ([3], 3),                       # one batch: no bits-back part, must not be stored
    ([1, 1], 3),                    # does not cover every image
    ([1, 3], 3),                    # covers more
    ([0, 3], 3),                    # empty batch
    ([1, 0, 2], 3),
    ([C.MAX_DIRECT + 1, 1], C.MAX_DIRECT + 2),   # direct batch too large
    ([1, C.MAX_BATCH + 1], C.MAX_BATCH + 2),     # bits-back batch too large
    ([1] * 5, 3),                   # more batches than images
])
def test_corrupt_schedule_raises(schedule, count):
    with pytest.raises(ContainerError, match="schedule|implausibly large"):
        unpack(craft(count=count, schedule=schedule, payload=bytes(64)))


def test_too_many_direct_images_without_schedule():
    unpack(craft(count=C.MAX_DIRECT, payload=bytes(64)))
    with pytest.raises(ContainerError, match="too many directly coded"):
        unpack(craft(count=C.MAX_DIRECT + 1, payload=bytes(64)))


@pytest.mark.parametrize("names,match", [
    (b"\x07", "unknown names encoding"),
    (names_list(zlib.compress(b"a\nb")), "wrong number"),
    (names_list(zlib.compress(b"a\nb\nc\nd")), "wrong number"),
    (names_list(b"not zlib at all"), "file names"),
    (names_list(zlib.compress(b"a\nb\nc")[:-3]), "file names"),        # stream cut short
    (names_list(zlib.compress("a\nb\n\xff".encode("latin-1"))), "file names"),  # bad UTF-8
    (names_list(zlib.compress(b"x" * 2000 + b"\nb\nc")), "too long"),   # past count * 256 bytes
    (names_list(zlib.compress(b"a\nb\nc"), declared_len=10 ** 6), "truncated|implausibly"),
    (names_pattern("a", "b", 65, 0), "implausibly large"),             # width > 64
    (names_pattern("a", "b", 5, 2 ** 41), "implausibly large"),        # start >= 2**40
    (b"\x00\xff\x01", "implausibly large|truncated"),                  # prefix length > 255
])
def test_corrupt_names_raise(names, match):
    with pytest.raises(ContainerError, match=match):
        unpack(craft(count=3, names=names))


def test_valid_crafted_names_parse():
    h, _ = unpack(craft(count=3, names=names_pattern("im", ".png", 3, 8)))
    assert h.names == ["im008.png", "im009.png", "im010.png"]
    h, _ = unpack(craft(count=3, names=names_list(zlib.compress("a\nß\n".encode()))))
    assert h.names == ["a", "ß", ""]


@pytest.mark.parametrize("modes,match", [
    (modes_all(3), "image mode"), (modes_each([0, 3, 1]), "image mode"),
    (b"\x02\x00", "image modes"), (b"\x01", "image mode|CRC32"),
])
def test_corrupt_modes_raise(modes, match):
    with pytest.raises(ContainerError, match=match):
        unpack(craft(count=3, modes=modes))


@pytest.mark.parametrize("kw,match", [
    (dict(shape=(0, 28)), "image size"), (dict(shape=(28, 0)), "image size"),
    (dict(shape=(C.MAX_SIDE + 1, 28)), "implausibly large"), (dict(shape=(28, 10 ** 9)), "implausibly large"),
    (dict(levels=3), "pixel levels"), (dict(levels=0), "pixel levels"), (dict(levels=2 ** 20), "implausibly large"),
])
def test_corrupt_shape_and_levels_raise(kw, match):
    with pytest.raises(ContainerError, match=match):
        unpack(craft(count=2, **kw))


def test_bad_utf8_model_name():
    data = bytearray(craft(model_name="ab"))
    data[8] = 0xFF  # after magic, version, ext, hash (3), length
    with pytest.raises(ContainerError, match="UTF-8"):
        unpack(bytes(data))


@pytest.mark.parametrize("h", [
    Header(model_hash=HASH, count=C.MAX_DIRECT + 1),                                   # no schedule
    Header(model_hash=HASH, count=C.MAX_DIRECT + 2, schedule=[(C.MAX_DIRECT + 1, False), (1, True)]),
    Header(model_hash=HASH, count=C.MAX_BATCH + 2, schedule=[(1, False), (C.MAX_BATCH + 1, True)]),
    Header(model_hash=HASH, count=1, schedule=[(1, False)]),                            # a 1-batch schedule
    Header(model_hash=HASH, count=1, height=C.MAX_SIDE + 1, width=1),
    Header(model_hash=HASH, count=1, levels=16),
], ids=["direct>MAX_DIRECT", "sched-direct>MAX_DIRECT", "batch>MAX_BATCH", "1-batch-schedule",
        "side>MAX_SIDE", "levels16"])
def test_pack_never_writes_what_unpack_refuses(h):
    """pack refuses (ValueError) every header unpack would refuse to read."""
    with pytest.raises(ValueError):
        pack(h, bytes(4096), [])


def test_several_chains_round_trip(monkeypatch):
    monkeypatch.setattr(C, "CHAIN_IMAGES", 5)
    sched = [(2, False), (5, True), (3, False), (4, True), (1, False)]
    h = Header(model_hash=HASH, count=15, schedule=sched, chain_bytes=[7, 9])
    got = _round_trip(h, payload=bytes(40))
    assert got.schedule == sched and got.chain_bytes == [7, 9]
    assert got.chains() == [[2, 5], [3, 4], [1]]


@pytest.mark.parametrize("chain_bytes", [None, [7], [7, 9, 1], [30, 30]])
def test_chain_lengths_must_match_the_chains_and_fit(chain_bytes, monkeypatch):
    monkeypatch.setattr(C, "CHAIN_IMAGES", 5)
    sched = [(2, False), (5, True), (3, False), (4, True), (1, False)]
    with pytest.raises(ValueError):
        pack(Header(model_hash=HASH, count=15, schedule=sched, chain_bytes=chain_bytes), bytes(40), [])


def test_more_chains_than_the_image_count_allows_is_refused(monkeypatch):
    monkeypatch.setattr(C, "CHAIN_IMAGES", 8)
    sched = [(2, False), (5, True), (3, False), (4, True), (1, False)]   # 3 chains for 15 images
    with pytest.raises(ValueError, match="chain"):
        pack(Header(model_hash=HASH, count=15, schedule=sched, chain_bytes=[7, 9]), bytes(40), [])


def test_many_small_batches_are_refused():
    """Every batch costs the decoder a full pass of pixel steps, so a chain may not
    claim more small batches than an encoder makes (hostile: 20 images in 19 batches)."""
    n = 20
    assert C.max_bits_back_batches(n) < 19
    with pytest.raises(ContainerError, match="schedule"):
        unpack(craft(count=n, schedule=[1] + [1] * 19, payload=bytes(40)))
    unpack(craft(count=n, schedule=[1, 2, 3, 4, 10], payload=bytes(40)))   # what an encoder writes
