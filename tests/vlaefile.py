"""Test helper: write .vlae headers field by field, valid or not, with correct CRCs.

Follows the layout in ``vlaecodec/container.py``'s docstring, independently of
``container.pack`` (``test_container.py`` checks that both agree on valid headers), so
tests can build headers that ``pack`` would refuse -- hostile counts, schedules, name
bombs -- and still get past the CRC checks to the limit under test.
"""
from __future__ import annotations

import struct
import zlib
from typing import Iterable, Sequence

import numpy as np

from vlaecodec import container as C


def varint(n: int) -> bytes:
    out = bytearray()
    C.put_varint(out, n)
    return bytes(out)


def names_pattern(prefix: str, suffix: str, width: int, start: int) -> bytes:
    p, s = prefix.encode(), suffix.encode()
    return bytes([C.NAMES_PATTERN]) + varint(len(p)) + p + varint(len(s)) + s + varint(width) + varint(start)


def names_list(blob: bytes, declared_len: int | None = None) -> bytes:
    """A NAMES_LIST field holding ``blob`` (normally zlib data)."""
    return bytes([C.NAMES_LIST]) + varint(len(blob) if declared_len is None else declared_len) + blob


def modes_all(code: int) -> bytes:
    return bytes([C.MODES_ALL_SAME, code])


def modes_each(codes: Sequence[int]) -> bytes:
    packed = 0
    for i, c in enumerate(codes):
        packed |= c << (2 * i)
    return bytes([C.MODES_EACH]) + packed.to_bytes((len(codes) + 3) // 4, "little")


def craft(model_hash: str = "a1b2c3", *, count: int | None = None, model_name: str | None = None,
          shape: tuple[int, int] | None = None, levels: int | None = None, modes: bytes | None = None,
          schedule: Sequence[int] | None = None, names: bytes | None = None, version: int = C.FORMAT_VERSION,
          flags_extra: int = 0, ext_extra: int = 0, header_crc: int | None = None,
          payload: bytes = b"", pixels: Iterable[np.ndarray | bytes] = ()) -> bytes:
    """Header bytes + payload. A field is written (and its flag set) when given;
    ``count`` given means MULTI (any value, even 0 or 1). ``schedule`` is the list of
    batch sizes. ``header_crc`` overrides the archive CRC; the final CRC is computed over
    ``pixels`` (what a decoder would have to produce for the file to verify)."""
    ext = ((C.X_NAME if model_name is not None else 0) | (C.X_SHAPE if shape is not None else 0)
           | (C.X_LEVELS if levels is not None else 0) | (C.X_MODES if modes is not None else 0) | ext_extra)
    flags = ((C.F_MULTI if count is not None else 0) | (C.F_SCHED if schedule is not None else 0)
             | (C.F_NAMES if names is not None else 0) | (C.F_EXT if ext else 0) | flags_extra)
    out = bytearray(C.MAGIC)
    out.append(((version & 0xF) << 4) | (flags & 0xF))
    if flags & C.F_EXT:
        out.append(ext & 0xFF)
    out += bytes.fromhex(model_hash)
    if model_name is not None:
        b = model_name.encode()
        out += varint(len(b)) + b
    if count is not None:
        out += varint(count)
    if shape is not None:
        out += varint(shape[0]) + varint(shape[1])
    if levels is not None:
        out += varint(levels)
    if modes is not None:
        out += modes
    if schedule is not None:
        out += varint(1)                 # one chain
        out += varint(len(schedule))
        for s in schedule:
            out += varint(s)
    if names is not None:
        out += names
    head = zlib.crc32(out)   # both CRCs cover the header before the header CRC field
    if flags & C.F_MULTI:
        out += struct.pack("<I", head if header_crc is None else header_crc)
    base = zlib.crc32(struct.pack("<Q", len(payload)), head)
    out += struct.pack("<I", C.pixels_crc32(pixels, base))
    return bytes(out) + payload


def header_length(data: bytes) -> int:
    """Bytes before the payload of a valid file (the payload is what ``unpack`` returns)."""
    _, payload = C.unpack(data)
    return len(data) - len(payload)
