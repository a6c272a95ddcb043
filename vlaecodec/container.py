"""The .vlae container: bytes <-> (Header, payload). Plain Python, no torch.

A single binarized digit carries ~15 bytes of payload, so the header is built from
flags and varints and is 11 bytes in the common case::

    offset  size  field
    0       2     magic b"VL"
    2       1     format version (high 4 bits) | flags (low 4 bits)
    [3]     1     extension flags (only if FLAG_EXT): shape stored, modes
    +0      3     sha256 prefix of the model checkpoint (identifies the model)
    [..]    var   model name (varint length + UTF-8), if FLAG_NAME
    ..      var   image count (varint)
    [..]    var   height, width (varints), if EXT_SHAPE; else the model's own size
    [..]    var   per-image mode bitmask, if modes are mixed
    [..]    var   batch schedule, if FLAG_SCHED: count, then (size << 1 | bits_back) each;
                  otherwise every image is one "direct" batch
    [..]    var   file names, if FLAG_NAMES (a numbered pattern, or a zlib'd list)
    ..      4     CRC32 of the decoded pixels (uint8, images concatenated), little-endian
    ..      rest  payload: coded bits (see codec.py)

Any malformed header is a ``ContainerError``; a payload that decodes to pixels whose
CRC differs is reported by the codec the same way, never as a silent wrong image.
"""
from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"VL"
FORMAT_VERSION = 1
HASH_BYTES = 3

FLAG_NAME = 1    # model name stored (otherwise the model is found by hash alone)
FLAG_SCHED = 2   # batch schedule stored
FLAG_NAMES = 4   # file names stored
FLAG_EXT = 8     # an extension-flags byte follows

EXT_SHAPE = 1
EXT_MODES_L = 2      # every image is mode 'L' (0/255 grayscale)
EXT_MODES_MIXED = 4  # a bitmask says which images are 'L'

NAMES_PATTERN = 0
NAMES_LIST = 1


class ContainerError(ValueError):
    """The bytes are not a valid .vlae file (or were damaged)."""


@dataclass
class Header:
    model_hash: str                       # hex prefix, 2*HASH_BYTES characters
    count: int
    height: int = 28
    width: int = 28
    model_name: str | None = None
    schedule: list[tuple[int, bool]] | None = None  # (batch size, bits-back?) in coding order
    names: list[str] | None = None
    modes: list[str] = field(default_factory=list)  # '1' or 'L' per image ('' list = all '1')
    crc32: int = 0
    version: int = FORMAT_VERSION
    default_shape: tuple[int, int] = (28, 28)

    def batches(self) -> list[tuple[int, bool]]:
        return self.schedule if self.schedule is not None else [(self.count, False)]

    def image_modes(self) -> list[str]:
        return self.modes or ["1"] * self.count


# ------------------------------------------------------------------ varints

def put_varint(out: bytearray, n: int) -> None:
    if n < 0:
        raise ValueError("varints are unsigned")
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ContainerError("file is truncated (header ends early)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def varint(self, limit: int = 1 << 40) -> int:
        n = shift = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if n > limit:
                raise ContainerError("corrupt header (a field is implausibly large)")
            if not b & 0x80:
                return n
            shift += 7

    def string(self, limit: int = 1 << 20) -> str:
        n = self.varint(limit)
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ContainerError("corrupt header (bad UTF-8 text)") from None


# ------------------------------------------------------------------ names

_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def _encode_names(out: bytearray, names: list[str]) -> None:
    """A numbered sequence (00000.png, 00001.png, ...) costs a few bytes; anything
    else is stored as a zlib-compressed newline-separated list."""
    m = _NUMBERED.match(names[0]) if names else None
    if m:
        prefix, digits, suffix = m.groups()
        start, width = int(digits), len(digits)
        expected = [f"{prefix}{start + i:0{width}d}{suffix}" for i in range(len(names))]
        if expected == list(names) and width <= 64 and start < 1 << 40:
            out.append(NAMES_PATTERN)
            for s in (prefix, suffix):
                b = s.encode()
                put_varint(out, len(b))
                out += b
            put_varint(out, width)
            put_varint(out, start)
            return
    blob = zlib.compress("\n".join(names).encode(), 9)
    out.append(NAMES_LIST)
    put_varint(out, len(blob))
    out += blob


def _decode_names(r: _Reader, count: int) -> list[str]:
    kind = r.take(1)[0]
    if kind == NAMES_PATTERN:
        prefix, suffix = r.string(), r.string()
        width, start = r.varint(64), r.varint()
        return [f"{prefix}{start + i:0{width}d}{suffix}" for i in range(count)]
    if kind == NAMES_LIST:
        blob = r.take(r.varint())
        try:
            names = zlib.decompress(blob).decode("utf-8").split("\n")
        except (zlib.error, UnicodeDecodeError):
            raise ContainerError("corrupt header (file names)") from None
        if len(names) != count:
            raise ContainerError("corrupt header (wrong number of file names)")
        return names
    raise ContainerError("corrupt header (unknown names encoding)")


# ------------------------------------------------------------------ pack / unpack

def pack(h: Header, payload: bytes) -> bytes:
    if len(h.model_hash) < 2 * HASH_BYTES:
        raise ValueError("model hash prefix too short")
    if h.names is not None and any("\n" in n for n in h.names):
        raise ValueError("file names may not contain newlines")
    modes = h.image_modes()
    if len(modes) != h.count:
        raise ValueError("one mode per image expected")
    ext = 0
    if (h.height, h.width) != tuple(h.default_shape):
        ext |= EXT_SHAPE
    if all(m == "L" for m in modes) and h.count:
        ext |= EXT_MODES_L
    elif any(m == "L" for m in modes):
        ext |= EXT_MODES_MIXED
    flags = ((FLAG_NAME if h.model_name else 0) | (FLAG_SCHED if h.schedule is not None else 0)
             | (FLAG_NAMES if h.names is not None else 0) | (FLAG_EXT if ext else 0))
    out = bytearray(MAGIC)
    out.append((h.version << 4) | flags)
    if ext:
        out.append(ext)
    out += bytes.fromhex(h.model_hash[:2 * HASH_BYTES])
    if h.model_name:
        b = h.model_name.encode()
        put_varint(out, len(b))
        out += b
    put_varint(out, h.count)
    if ext & EXT_SHAPE:
        put_varint(out, h.height)
        put_varint(out, h.width)
    if ext & EXT_MODES_MIXED:
        mask = 0
        for i, m in enumerate(modes):
            mask |= (m == "L") << i
        out += mask.to_bytes((h.count + 7) // 8, "little")
    if h.schedule is not None:
        if sum(s for s, _ in h.schedule) != h.count:
            raise ValueError("schedule does not cover every image")
        put_varint(out, len(h.schedule))
        for size, bits_back in h.schedule:
            put_varint(out, (size << 1) | int(bits_back))
    if h.names is not None:
        if len(h.names) != h.count:
            raise ValueError("one name per image expected")
        _encode_names(out, list(h.names))
    out += struct.pack("<I", h.crc32 & 0xFFFFFFFF)
    return bytes(out) + payload


def unpack(data: bytes, default_shape: tuple[int, int] = (28, 28)) -> tuple[Header, bytes]:
    """Parse the header; returns it with the payload bytes. Raises ContainerError."""
    if len(data) < 3 or data[:2] != MAGIC:
        raise ContainerError("not a .vlae file (bad magic number)")
    r = _Reader(data)
    r.take(2)
    vf = r.take(1)[0]
    version, flags = vf >> 4, vf & 0x0F
    if version != FORMAT_VERSION:
        raise ContainerError(f"unsupported .vlae format version {version} (this vlaecodec reads "
                             f"version {FORMAT_VERSION})")
    ext = r.take(1)[0] if flags & FLAG_EXT else 0
    if ext & ~(EXT_SHAPE | EXT_MODES_L | EXT_MODES_MIXED) or (ext & EXT_MODES_L and ext & EXT_MODES_MIXED):
        raise ContainerError("corrupt header (unknown flags)")
    model_hash = r.take(HASH_BYTES).hex()
    model_name = r.string(256) if flags & FLAG_NAME else None
    count = r.varint(1 << 32)
    if count == 0:
        raise ContainerError("corrupt header (no images)")
    height, width = default_shape
    if ext & EXT_SHAPE:
        height, width = r.varint(1 << 16), r.varint(1 << 16)
    modes: list[str] = []
    if ext & EXT_MODES_L:
        modes = ["L"] * count
    elif ext & EXT_MODES_MIXED:
        mask = int.from_bytes(r.take((count + 7) // 8), "little")
        modes = ["L" if mask >> i & 1 else "1" for i in range(count)]
    schedule = None
    if flags & FLAG_SCHED:
        n = r.varint(count)
        schedule = []
        for _ in range(n):
            v = r.varint(2 * count + 1)
            schedule.append((v >> 1, bool(v & 1)))
        if sum(s for s, _ in schedule) != count or any(s == 0 for s, _ in schedule):
            raise ContainerError("corrupt header (batch schedule)")
    names = _decode_names(r, count) if flags & FLAG_NAMES else None
    crc = struct.unpack("<I", r.take(4))[0]
    h = Header(model_hash=model_hash, count=count, height=height, width=width, model_name=model_name,
               schedule=schedule, names=names, modes=modes, crc32=crc, version=version,
               default_shape=default_shape)
    return h, data[r.pos:]


def pixels_crc32(chunks) -> int:
    """CRC32 over the decoded pixels (an iterable of uint8 buffers, in image order)."""
    c = 0
    for b in chunks:
        c = zlib.crc32(b, c)
    return c
