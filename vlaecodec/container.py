"""The .vlae container, format version 2: bytes <-> (Header, payload). Plain Python.

A single binarized digit carries ~17 bytes of payload, so the header is built from flags
and varints: 10 bytes for one image of the default model::

    offset  size  field
    0       2     magic b"VL"
    2       1     format version (high 4 bits) | flags (low 4 bits: MULTI, SCHED, NAMES, EXT)
    [3]     1     extension flags, if EXT: model name, shape, pixel levels, modes stored
    +0      3     sha256 prefix of the model file (identifies the model)
    [..]    var   model name (varint length + UTF-8), if X_NAME
    [..]    var   image count (varint, >= 2), if MULTI; otherwise one image
    [..]    var   height, width (varints), if X_SHAPE; otherwise 28 x 28
    [..]    var   pixel levels (varint), if X_LEVELS; otherwise 2 (binary)
    [..]    var   image modes, if X_MODES: one code for all, or 2 bits per image
    [..]    1     lossy: rate level (low 4 bits) and how pixels are drawn (high 4 bits), if
                  X_LOSSY; the payload is then the latents' bits only, and the final CRC
                  covers the payload instead of the pixels (they are redrawn from it)
    [..]    1     particles K (2..MAX_PARTICLES), if X_PARTICLES: bits-back batches code each
                  image at the importance-weighted bound with K particles (codec.py)
    [..]    var   chains, if SCHED: the number of independent bits-back chains (coded in
                  parallel), then for each chain its batch count and batch sizes (a chain's
                  first batch is coded directly, the others with bits back), then the
                  payload length in bytes of every chain but the last
    [..]    var   file names, if NAMES (a numbered pattern, or a zlib'd list)
    [..]    4     CRC32 of the header bytes so far, if MULTI (archives: damage is found
                  before any decoding)
    ..      4     CRC32 of every header byte before it, the payload length (8 bytes, LE)
                  and the decoded pixels (uint8, images concatenated), little-endian
    ..      rest  payload: coded bits (see codec.py)

So any damage -- to the header, the payload or its length (trailing or missing bytes) --
is an error, never a silent wrong image or name. Limits are checked while parsing,
before anything is allocated or decoded: the image count must fit the payload, batch
sizes never exceed what an encoder writes, name lists are bounded.

Version 1 files (vlaecodec 0.1) are refused with a message naming that version.
"""
from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

MAGIC = b"VL"
FORMAT_VERSION = 2
HASH_BYTES = 3
DEFAULT_SHAPE = (28, 28)

F_MULTI, F_SCHED, F_NAMES, F_EXT = 1, 2, 4, 8
X_NAME, X_SHAPE, X_LEVELS, X_MODES, X_LOSSY, X_PARTICLES = 1, 2, 4, 8, 16, 32

# Image modes: how an image is written back. Binary images came in as mode-1 PNGs or as
# grayscale PNGs holding only 0 and 255; 8-bit images are grayscale.
MODES = ("1", "L-binary", "L")
MODES_ALL_SAME, MODES_EACH = 0, 1

NAMES_PATTERN, NAMES_LIST = 0, 1
MAX_NAME_BYTES = 255

# Limits (an encoder never writes more; a header claiming more is corrupt or hostile).
MAX_BATCH = 1000          # images per bits-back batch
MAX_DIRECT = 16           # images in the directly coded batch (its exact coder is quadratic in length)
MAX_SIDE = 1024
MAX_CHAINS = 256
MAX_PARTICLES = 64        # Monte Carlo bits-back: each particle costs a parallel network pass
MC_WARMUP = 256           # bits-back images per chain coded with one particle first
CHAIN_IMAGES = 5000       # an encoder makes one chain per CHAIN_IMAGES images


def chain_count(count: int) -> int:
    """How many chains an archive of ``count`` images is split into."""
    return max(1, min(MAX_CHAINS, count // CHAIN_IMAGES))


def max_bits_back_batches(chain_images: int, particles: int = 1) -> int:
    """At most this many bits-back batches in a chain of ``chain_images`` images. Batches
    grow ~1.4x per batch up to MAX_BATCH, so a real chain has about log1.4(MAX_BATCH)
    growing batches, then full ones; every batch costs the decoder a full pass of
    sequential pixel steps, so a header claiming many small batches is refused."""
    # With K particles a batch pops K images' worth of latents, so batches grow about
    # K times more slowly (and the first MC_WARMUP images use one particle).
    return 2 * chain_images.bit_length() + 8 + chain_images // MAX_BATCH + 16 * (particles - 1)


def batch_particles(done: int, particles: int) -> int:
    """Particles of a bits-back batch that follows ``done`` bits-back images of its chain:
    one (the ELBO) while the stack is young, so the chain grows fast, then ``particles``.
    A rule of the header's schedule alone, so both sides agree."""
    return 1 if done < MC_WARMUP else particles
# A bits-back image costs about 15 bytes (a blank one still several bits of KL); the
# encoder refuses to write more bits-back images than payload bytes, so a header that
# claims more is corrupt or hostile. Decoding work is thus bounded by the file's size.
MAX_IMAGES_PER_PAYLOAD_BYTE = 1


class ContainerError(ValueError):
    """The bytes are not a valid .vlae file (or were damaged)."""


def default_mode(levels: int) -> str:
    return "1" if levels == 2 else "L"


@dataclass
class Header:
    model_hash: str                       # hex prefix, 2*HASH_BYTES characters
    count: int
    height: int = DEFAULT_SHAPE[0]
    width: int = DEFAULT_SHAPE[1]
    levels: int = 2
    model_name: str | None = None
    # (batch size, bits-back?) in coding order; each direct batch starts a chain.
    schedule: list[tuple[int, bool]] | None = None
    chain_bytes: list[int] | None = None  # payload bytes of each chain but the last
    names: list[str] | None = None
    modes: list[str] = field(default_factory=list)  # one of MODES per image ([] = default)
    lossy_level: int = 0                  # 0: lossless; 1..15: a lossy rate level
    lossy_draw: int = 0                   # how a lossy decoder draws pixels (codec.DRAWS)
    particles: int = 1                    # Monte Carlo bits-back particles per image (1: the ELBO)
    version: int = FORMAT_VERSION
    crc32: int = 0
    _crc_base: int = 0                    # CRC32 of the header bytes and payload length

    def batches(self) -> list[tuple[int, bool]]:
        return self.schedule if self.schedule is not None else [(self.count, False)]

    def chains(self) -> list[list[int]]:
        """Batch sizes per chain (each chain's first batch is its direct batch)."""
        out: list[list[int]] = []
        for size, bits_back in self.batches():
            if not bits_back:
                out.append([])
            out[-1].append(size)
        return out

    def image_modes(self) -> list[str]:
        return self.modes or [default_mode(self.levels)] * self.count

    def verify(self, images: Iterable[np.ndarray]) -> None:
        """Check the decoded pixels (and with them the whole file) against the CRC."""
        if pixels_crc32(images, self._crc_base) != self.crc32:
            raise ContainerError("file is corrupt (CRC32 of header, length and pixels does not match)")


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
    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise ContainerError("file is truncated (header ends early)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def varint(self, limit: int) -> int:
        n = shift = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if n > limit or shift > 63:
                raise ContainerError("corrupt header (a field is implausibly large)")
            if not b & 0x80:
                return n
            shift += 7

    def string(self, limit: int = MAX_NAME_BYTES) -> str:
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
        if (expected == list(names) and width <= 64 and start < 1 << 40
                and len(prefix.encode()) + max(width, 13) + len(suffix.encode()) <= MAX_NAME_BYTES):
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


def _decode_names(r: _Reader, count: int):
    """Parse the names field; returns a function that builds the list, called only once
    the whole header has passed its checks (so a hostile count costs nothing here)."""
    kind = r.take(1)[0]
    if kind == NAMES_PATTERN:
        prefix, suffix = r.string(), r.string()
        width, start = r.varint(64), r.varint(1 << 40)
        if len(prefix.encode()) + max(width, 13) + len(suffix.encode()) > MAX_NAME_BYTES:
            raise ContainerError("corrupt header (file names too long)")
        return lambda: [f"{prefix}{start + i:0{width}d}{suffix}" for i in range(count)]
    if kind == NAMES_LIST:
        blob = r.take(r.varint(r.end))

        def build() -> list[str]:
            d = zlib.decompressobj()
            try:
                raw = d.decompress(blob, count * (MAX_NAME_BYTES + 1))
                if d.unconsumed_tail or not d.eof:
                    raise ContainerError("corrupt header (file names too long or damaged)")
                names = raw.decode("utf-8").split("\n")
            except (zlib.error, UnicodeDecodeError):
                raise ContainerError("corrupt header (file names)") from None
            if len(names) != count or any(len(n.encode()) > MAX_NAME_BYTES for n in names):
                raise ContainerError("corrupt header (wrong number of file names, or too long)")
            return names
        return build
    raise ContainerError("corrupt header (unknown names encoding)")


def validate_name(name: str) -> None:
    if "\n" in name or len(name.encode()) > MAX_NAME_BYTES:
        raise ContainerError(f"file name {name[:40]!r} is too long or holds a newline")


# ------------------------------------------------------------------ pack / unpack

def image_limit(payload_bytes: int) -> int:
    return MAX_IMAGES_PER_PAYLOAD_BYTE * payload_bytes + MAX_DIRECT


def _check_writable(h: Header, payload_bytes: int) -> None:
    """Refuse to write what ``unpack`` would refuse to read."""
    if h.count < 1 or h.count > image_limit(payload_bytes):
        raise ContainerError(f"{h.count} images cannot be stored with a {payload_bytes}-byte payload")
    if not (1 <= h.height <= MAX_SIDE and 1 <= h.width <= MAX_SIDE):
        raise ContainerError(f"image sides must be 1..{MAX_SIDE} pixels")
    if h.levels not in (2, 256):
        raise ContainerError("pixel levels must be 2 or 256")
    if not 1 <= h.particles <= MAX_PARTICLES or (h.particles > 1 and h.schedule is None):
        raise ContainerError(f"particles must be 1..{MAX_PARTICLES}, and more than 1 only with bits-back batches")
    if h.lossy_level:
        if not (1 <= h.lossy_level <= 15 and 0 <= h.lossy_draw <= 15) or h.schedule is not None:
            raise ContainerError("lossy files have a rate level 1..15, a draw code 0..15 and no schedule")
    elif h.schedule is None:
        if h.count > MAX_DIRECT:
            raise ContainerError(f"at most {MAX_DIRECT} images can be coded directly")
        if h.chain_bytes:
            raise ContainerError("chain lengths given without a schedule")
    else:
        if not h.schedule or h.schedule[0][1] or sum(s for s, _ in h.schedule) != h.count:
            raise ContainerError("schedule must start with a direct batch and cover every image")
        chains = h.chains()
        bad = [c for c in chains if c[0] > MAX_DIRECT or c[0] < 1 or any(not 1 <= b <= MAX_BATCH for b in c[1:])
               or len(c) - 1 > max_bits_back_batches(sum(c), h.particles)]
        if bad or (len(chains) == 1 and len(chains[0]) < 2) or len(chains) > chain_count(h.count):
            raise ContainerError(f"a schedule is chains of one direct batch (<= {MAX_DIRECT} images) and "
                                 f"bits-back batches of <= {MAX_BATCH} (one chain: at least one of those), "
                                 f"one chain per {CHAIN_IMAGES} images, few small batches per chain")
        if len(h.chain_bytes or []) != len(chains) - 1 or sum(h.chain_bytes or []) > payload_bytes:
            raise ContainerError("a schedule of several chains needs one payload length per chain but the "
                                 "last, within the payload")


def pack(h: Header, payload: bytes, pixels: Iterable[np.ndarray]) -> bytes:
    """Header + payload; the final CRC also covers ``pixels`` (the images as coded; for a
    lossy file, pass the payload itself)."""
    if len(h.model_hash) < 2 * HASH_BYTES:
        raise ValueError("model hash prefix too short")
    modes = h.image_modes()
    if len(modes) != h.count or any(m not in MODES for m in modes):
        raise ContainerError(f"one mode per image expected, each one of {', '.join(MODES)}")
    if h.names is not None:
        if len(h.names) != h.count:
            raise ContainerError("one name per image expected")
        for n in h.names:
            validate_name(n)
    _check_writable(h, len(payload))
    default = default_mode(h.levels)
    ext = ((X_NAME if h.model_name else 0) | (X_SHAPE if (h.height, h.width) != DEFAULT_SHAPE else 0)
           | (X_LEVELS if h.levels != 2 else 0) | (X_MODES if any(m != default for m in modes) else 0)
           | (X_LOSSY if h.lossy_level else 0) | (X_PARTICLES if h.particles > 1 else 0))
    flags = ((F_MULTI if h.count > 1 else 0) | (F_SCHED if h.schedule is not None else 0)
             | (F_NAMES if h.names is not None else 0) | (F_EXT if ext else 0))
    out = bytearray(MAGIC)
    out.append((FORMAT_VERSION << 4) | flags)
    if ext:
        out.append(ext)
    out += bytes.fromhex(h.model_hash[:2 * HASH_BYTES])
    if h.model_name:
        b = h.model_name.encode()
        if len(b) > MAX_NAME_BYTES:
            raise ValueError("model name too long")
        put_varint(out, len(b))
        out += b
    if h.count > 1:
        put_varint(out, h.count)
    if ext & X_SHAPE:
        put_varint(out, h.height)
        put_varint(out, h.width)
    if ext & X_LEVELS:
        put_varint(out, h.levels)
    if ext & X_MODES:
        codes = [MODES.index(m) for m in modes]
        if len(set(codes)) == 1:
            out += bytes([MODES_ALL_SAME, codes[0]])
        else:
            out.append(MODES_EACH)
            packed = 0
            for i, c in enumerate(codes):
                packed |= c << (2 * i)
            out += packed.to_bytes((h.count + 3) // 4, "little")
    if h.lossy_level:
        out.append(h.lossy_level | (h.lossy_draw << 4))
    if h.particles > 1:
        out.append(h.particles)
    if h.schedule is not None:
        chains = h.chains()
        put_varint(out, len(chains))
        for c in chains:
            put_varint(out, len(c))
            for size in c:
                put_varint(out, size)
        for nbytes in h.chain_bytes or []:
            put_varint(out, nbytes)
    if h.names is not None:
        _encode_names(out, list(h.names))
    head = zlib.crc32(out)   # (not of out + head: CRC32(M + CRC32(M)) is a constant)
    if h.count > 1:
        out += struct.pack("<I", head)
    base = zlib.crc32(struct.pack("<Q", len(payload)), head)
    out += struct.pack("<I", pixels_crc32(pixels, base))
    return bytes(out) + payload


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and bound-check the header; returns it with the payload. Raises ContainerError."""
    if len(data) < 3 or data[:2] != MAGIC:
        raise ContainerError("not a .vlae file (bad magic number)")
    version, flags = data[2] >> 4, data[2] & 0x0F
    if version != FORMAT_VERSION:
        who = "vlaecodec 0.1" if version == 1 else "an unknown writer"
        raise ContainerError(f"this .vlae file uses format version {version} (written by {who}); "
                             f"this vlaecodec reads version {FORMAT_VERSION} only")
    r = _Reader(data, len(data))
    r.take(3)
    ext = r.take(1)[0] if flags & F_EXT else 0
    if ext & ~(X_NAME | X_SHAPE | X_LEVELS | X_MODES | X_LOSSY | X_PARTICLES) or (flags & F_EXT and not ext):
        raise ContainerError("corrupt header (unknown flags)")
    model_hash = r.take(HASH_BYTES).hex()
    model_name = r.string() if ext & X_NAME else None
    # The payload is part of what follows; bound the count by it now (the exact bound is
    # checked once the header's end, hence the payload's length, is known).
    count = r.varint(image_limit(len(data) - r.pos)) if flags & F_MULTI else 1
    if flags & F_MULTI and count < 2:
        raise ContainerError("corrupt header (image count)")
    height, width = DEFAULT_SHAPE
    if ext & X_SHAPE:
        height, width = r.varint(MAX_SIDE), r.varint(MAX_SIDE)
        if not height or not width:
            raise ContainerError("corrupt header (image size)")
    levels = r.varint(256) if ext & X_LEVELS else 2
    if levels not in (2, 256):
        raise ContainerError("corrupt header (pixel levels)")
    modes: list[str] = []
    if ext & X_MODES:
        kind = r.take(1)[0]
        if kind == MODES_ALL_SAME:
            code = r.take(1)[0]
            if code >= len(MODES):
                raise ContainerError("corrupt header (image mode)")
            modes = [MODES[code]] * count
        elif kind == MODES_EACH:
            packed = int.from_bytes(r.take((count + 3) // 4), "little")
            codes = [(packed >> (2 * i)) & 3 for i in range(count)]
            if max(codes) >= len(MODES):
                raise ContainerError("corrupt header (image mode)")
            modes = [MODES[c] for c in codes]
        else:
            raise ContainerError("corrupt header (image modes)")
    lossy_level = lossy_draw = 0
    if ext & X_LOSSY:
        b = r.take(1)[0]
        lossy_level, lossy_draw = b & 15, b >> 4
        if not lossy_level or flags & F_SCHED:
            raise ContainerError("corrupt header (lossy settings)")
    particles = 1
    if ext & X_PARTICLES:
        particles = r.take(1)[0]
        if not 2 <= particles <= MAX_PARTICLES or not flags & F_SCHED:
            raise ContainerError("corrupt header (particles)")
    schedule, chain_bytes = None, None
    if flags & F_SCHED:
        n_chains = r.varint(chain_count(count))
        schedule = []
        for _ in range(n_chains):
            sizes = [r.varint(MAX_BATCH) for _ in range(r.varint(count))]
            if (not sizes or min(sizes) == 0 or sizes[0] > MAX_DIRECT
                    or len(sizes) - 1 > max_bits_back_batches(sum(sizes), particles)):
                raise ContainerError("corrupt header (batch schedule)")
            schedule += [(s, i > 0) for i, s in enumerate(sizes)]
            if len(schedule) > count:
                raise ContainerError("corrupt header (batch schedule)")
        chain_bytes = [r.varint(len(data)) for _ in range(n_chains - 1)]
        if (n_chains == 0 or sum(s for s, _ in schedule) != count or (n_chains == 1 and len(schedule) < 2)
                or sum(chain_bytes) > len(data)):
            raise ContainerError("corrupt header (batch schedule)")
    elif count > MAX_DIRECT and not lossy_level:
        raise ContainerError("corrupt header (too many directly coded images)")
    build_names = _decode_names(r, count) if flags & F_NAMES else None
    crc_end = r.pos                 # both CRCs cover the header up to here
    if flags & F_MULTI and struct.unpack("<I", r.take(4))[0] != zlib.crc32(data[:crc_end]):
        raise ContainerError("file is corrupt (header CRC32 does not match)")
    crc = struct.unpack("<I", r.take(4))[0]
    payload = data[r.pos:]
    if count > image_limit(len(payload)):
        raise ContainerError("corrupt header (more images than the payload can hold)")
    if chain_bytes and sum(chain_bytes) > len(payload):
        raise ContainerError("corrupt header (chain lengths exceed the payload)")
    base = zlib.crc32(struct.pack("<Q", len(payload)), zlib.crc32(data[:crc_end]))
    names = build_names() if build_names else None
    h = Header(model_hash=model_hash, count=count, height=height, width=width, levels=levels,
               model_name=model_name, schedule=schedule, chain_bytes=chain_bytes, names=names, modes=modes,
               lossy_level=lossy_level, lossy_draw=lossy_draw, particles=particles, version=version,
               crc32=crc, _crc_base=base)
    return h, payload


def pixels_crc32(chunks: Iterable[np.ndarray | bytes], start: int = 0) -> int:
    """CRC32 over the decoded pixels (uint8 buffers, in image order), continuing ``start``."""
    c = start
    for b in chunks:
        c = zlib.crc32(b if isinstance(b, bytes) else np.ascontiguousarray(b, dtype=np.uint8).tobytes(), c)
    return c
