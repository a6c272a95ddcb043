"""Images of any size and kind (8-bit gray, RGB, binary): the record container and the
per-image choice of coder.

The 28x28 digit models keep their compact container (``container.py``, magic "VL").
Every other image goes into this container (magic "VP"), one record per image; each
record names the coder that made it:

* a photo model (``photo_int`` + ``photo_codec``: bits-back with the any-size VLAE),
  named by its sha256 prefix like the digit models;
* PNG or WebP lossless, through pillow (exact decoders), for images no model codes
  smaller, so a file is never much bigger than a classical codec would make it;
* for binary images (modes "1" and "L-binary": 0/1 pixels, written back as a 1-bit PNG or
  an 8-bit one of 0 and 255), the adaptive context model of ``bilevel.py``;
* for 8-bit gray graphics (mode "L" when WebP lossless gives under GRAY_CONTEXT_BITS bits
  a pixel), the adaptive context-mixing model of ``graylevel.py``;
* for RGB graphics (mode "RGB" when WebP lossless gives under RGB_CONTEXT_BITS bits a
  sub-pixel), its channel-by-channel version ``colorlevel.py``.

With no model forced, the encoder codes each image with every candidate that applies
and keeps the smallest record (``choose``); ``inspect`` says which coder each image got.

```
 file:    b"VP" | version (1) | flags (1: NAMES) | image count (varint)
          | CRC32 of the bytes so far | records
 record:  coder (1) | [model sha256 prefix (4), if coder = MODEL] | mode (1)
          | height, width (varints) | [name: varint length + UTF-8, if NAMES]
          | payload length (varint) | CRC32 of the record's header bytes and the
          decoded pixels | payload
```

Limits are checked before anything is allocated: sides up to MAX_SIDE, at most
MAX_PIXELS pixels per image, payload lengths within the file.
"""
from __future__ import annotations

import importlib
import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .container import ContainerError, _Reader, put_varint

MAGIC = b"VP"
VERSION = 1
F_NAMES = 1
CODER_MODEL, CODER_PNG, CODER_WEBP, CODER_CONTEXT, CODER_GRAYCTX, CODER_RGBCTX = 0, 1, 2, 3, 4, 5
CODER_NAMES = {CODER_MODEL: "model", CODER_PNG: "PNG", CODER_WEBP: "WebP lossless",
               CODER_CONTEXT: "context model (binary)", CODER_GRAYCTX: "context model (gray)",
               CODER_RGBCTX: "context model (RGB)"}
MODES = ("L", "RGB", "1", "L-binary")   # how pixels are stored and written back
BINARY = ("1", "L-binary")           # 0/1 pixels, written back as mode 1 or as L of 0 and 255
CHANNELS = {"L": 1, "RGB": 3, "1": 1, "L-binary": 1}
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 26                 # 67 M pixels (8192 x 8192)
MAX_IMAGES = 1 << 20
HASH_BYTES = 4
# A model is coded only when its estimated size is below 1.06x the best classical file:
# the estimate (photo_codec.estimate_bits) was within -1% .. +4% of the coded size on
# the validation photos.
SKIP_MARGIN = 1.06
# WebP method 6 is run too when method 5 gives under this many bits per sub-pixel: never
# on photos (1.8 and more at method 5 on ours), on graphics 0.005 to 0.2.
GRAPHICS_BITS = 1.0
# The gray context model (graylevel.py, ~10 s per megapixel) is tried on gray images under
# this many bits per pixel at WebP: our 12 gray validation photos give 2.07 and more
# (bench/results/bench-photos-valid-gray.json), graphics 0.005 to 0.2, gradients with
# random dither 1.5 to 1.7 (there the context model is well ahead of WebP:
# tests/test_graylevel.py).
GRAY_CONTEXT_BITS = 2.0
# The RGB context model (colorlevel.py, about 3x the gray one's time) is tried on RGB
# images under this many bits per sub-pixel at WebP: our 9 RGB validation photos give
# 2.39 and more at cwebp -z 9 (bench/results/bench-photos-valid-rgb.json), RGB graphics
# 0.005 to 0.2 (bench/results/ood-anysize.md). It is slow and large on photos: a 2560x1600
# photo (WebP 1.89 bits/sub-pixel) took 201 s and 1.03 GB to encode (20k pixels/s; 1.65
# bits/sub-pixel), so smooth photos must not reach it: the gate is 1 bit a sub-pixel,
# five times the graphics' worst, and images over RGB_CONTEXT_MAX_PIXELS (1920x1080 and
# a little more) skip it unless forced with --coder context.
RGB_CONTEXT_BITS = 1.0
RGB_CONTEXT_MAX_PIXELS = 2_100_000


class AnySizeError(ContainerError):
    """A damaged, truncated or unsupported file; the message says which."""


def _varint(n: int) -> bytes:
    out = bytearray()
    put_varint(out, n)
    return bytes(out)


# ------------------------------------------------------------------ coders

def _png_bytes(pixels: np.ndarray, mode: str) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    _to_pil(pixels, mode).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _webp_bytes(pixels: np.ndarray, mode: str, method: int = 5) -> bytes:
    buf = io.BytesIO()
    img = _to_pil(pixels, mode)
    if mode != "RGB":
        img = img.convert("RGB")         # WebP stores color; gray comes back from any channel
    # method 5, quality 100: on the 9 RGB validation photos 0.29% bigger than method 6
    # (cwebp -z 9's setting) in a twelfth of the time (8.0 s against 96.9 s while other
    # jobs ran): method 6 alone would cost ~50 s per megapixel, above the speed bar
    img.save(buf, format="WEBP", lossless=True, quality=100, method=method, exact=True)
    return buf.getvalue()


def _to_pil(pixels: np.ndarray, mode: str):
    from PIL import Image
    if mode in BINARY:
        return Image.fromarray((pixels > 0).astype(np.uint8) * 255).convert("1")
    return Image.fromarray(pixels)


def _decode_classical(payload: bytes, mode: str, h: int, w: int) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(payload)) as im:
            if im.size != (w, h):
                raise AnySizeError("a record's image does not have the size its header says")
            if mode == "RGB":
                a = np.asarray(im.convert("RGB"))
            elif mode in BINARY:
                a = (np.asarray(im.convert("L")) > 127).astype(np.uint8)
            else:
                a = np.asarray(im.convert("RGB"))[..., 0] if im.mode == "RGB" else np.asarray(im.convert("L"))
    except AnySizeError:
        raise
    except Exception as e:  # noqa: BLE001 - pillow raises many kinds on damaged data
        raise AnySizeError(f"damaged record ({e.__class__.__name__})") from None
    return np.ascontiguousarray(a)


# ------------------------------------------------------------------ photo models

@dataclass
class PhotoModel:
    name: str
    sha256: str
    mode: str
    net: object

    def encode(self, pixels: np.ndarray) -> bytes:
        from . import photo_codec
        x = pixels if pixels.ndim == 3 else pixels[..., None]
        words, _ = photo_codec.encode(self.net, x)
        return words.astype("<u4").tobytes()

    def estimate_bits(self, pixels: np.ndarray) -> float:
        from . import photo_codec
        return photo_codec.estimate_bits(self.net, pixels if pixels.ndim == 3 else pixels[..., None])

    def decode(self, payload: bytes, h: int, w: int) -> np.ndarray:
        from . import photo_codec
        if len(payload) % 4:
            raise AnySizeError("damaged record (payload is not whole words)")
        x = photo_codec.decode(self.net, np.frombuffer(payload, "<u4").astype(np.uint32), h, w)
        return x if self.mode == "RGB" else x[..., 0]


def photo_models(mode: str | None = None, *, retired: bool = True) -> list[PhotoModel]:
    """Installed any-size models (manifests with architecture "photo-vlae"). A manifest
    with ``"retired": true`` (a model a newer one replaced) still decodes its files but
    is not tried on new images: ``retired=False`` leaves it out."""
    from .zoo import list_manifests
    out = []
    for m in list_manifests("photo-vlae"):
        if (mode is None or m.get("mode") == mode) and (retired or not m.get("retired")):
            out.append(_load_photo(m))
    return out


_PHOTO_CACHE: dict[str, PhotoModel] = {}


def _load_photo(m: dict) -> PhotoModel:
    if m["sha256"] not in _PHOTO_CACHE:
        from . import photo_int
        from .zoo import ModelError, _read_verified
        raw, digest = _read_verified(Path(m["_dir"]) / m["file"], m["sha256"])
        try:
            net = photo_int.load(io.BytesIO(raw))
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{m['file']}: not a photo model ({e.__class__.__name__})") from None
        _PHOTO_CACHE[m["sha256"]] = PhotoModel(m["name"], digest, m["mode"], net)
    return _PHOTO_CACHE[m["sha256"]]


def _photo_by_hash(prefix: bytes) -> PhotoModel:
    from .zoo import ModelError, list_manifests
    hexp = prefix.hex()
    for m in list_manifests("photo-vlae"):
        if m["sha256"].startswith(hexp):
            return _load_photo(m)
    raise ModelError(f"this file needs a photo model with hash {hexp}, which is not installed "
                     f"(see `vlaecodec models`)")


# ------------------------------------------------------------------ records

@dataclass
class Record:
    coder: int
    mode: str
    height: int
    width: int
    payload: bytes
    model: PhotoModel | None = None
    name: str | None = None
    tried: dict = field(default_factory=dict)     # coder label -> bytes (what the choice measured)
    estimates: dict = field(default_factory=dict)  # model -> estimated bytes (a model not in
                                                   # ``tried`` was skipped on its estimate)

    @property
    def coder_name(self) -> str:
        return self.model.name if self.coder == CODER_MODEL else CODER_NAMES[self.coder]


def image_mode(pixels: np.ndarray, binary: bool = False) -> str:
    if pixels.ndim == 3:
        if pixels.shape[2] != 3:
            raise AnySizeError("only gray and RGB images are supported")
        return "RGB"
    return "1" if binary else "L"


def choose(pixels: np.ndarray, mode: str, *, coders: Sequence[str] | None = None,
           log: Callable[[str], None] | None = None) -> Record:
    """Code one image with every candidate (photo models of its mode, PNG, WebP
    lossless, for binary images the binary context model, for gray and RGB graphics the
    gray or RGB one; or only ``coders``: "context" names the context model of the image's
    kind) and keep the smallest."""
    h, w = pixels.shape[:2]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and h * w <= MAX_PIXELS):
        raise AnySizeError(f"{w}x{h} is outside the supported sizes (1 to {MAX_SIDE} a side, "
                           f"at most {MAX_PIXELS} pixels)")
    tried: dict[str, tuple[int, bytes, PhotoModel | None]] = {}
    want = set(coders) if coders else None
    if want is None or "png" in want:
        tried["PNG"] = (CODER_PNG, _png_bytes(pixels, mode), None)
    if want is None or "webp" in want:
        webp = _webp_bytes(pixels, mode)
        if 8 * len(webp) < GRAPHICS_BITS * pixels.size:
            # Graphics (charts, screenshots, flat colours), not photos: method 6 costs a
            # second or two here and saved up to 9% (a pie chart, bench/ood_anysize.py).
            slow = _webp_bytes(pixels, mode, method=6)
            webp = slow if len(slow) < len(webp) else webp
        tried["WebP lossless"] = (CODER_WEBP, webp, None)
    if mode == "L" and (want is not None and "context" in want
                        or want is None and 8 * len(webp) < GRAY_CONTEXT_BITS * pixels.size):
        # Gray graphics and dithered gradients, not photos: the context-mixing coder
        # (seconds per megapixel: bench/results/ood-anysize.md).
        from . import graylevel
        tried[CODER_NAMES[CODER_GRAYCTX]] = (CODER_GRAYCTX, graylevel.encode(pixels), None)
    if mode == "RGB" and (want is not None and "context" in want
                          or want is None and 8 * len(webp) < RGB_CONTEXT_BITS * pixels.size
                          and h * w <= RGB_CONTEXT_MAX_PIXELS):
        from . import colorlevel
        tried[CODER_NAMES[CODER_RGBCTX]] = (CODER_RGBCTX, colorlevel.encode(pixels), None)
    classical = min((len(v[1]) for v in tried.values()), default=None)
    estimates: dict[str, int] = {}
    if mode in BINARY and (want is None or "context" in want):
        from . import bilevel
        tried[CODER_NAMES[CODER_CONTEXT]] = (CODER_CONTEXT, bilevel.encode(pixels), None)
    if mode not in BINARY:
        for pm in photo_models(mode, retired=want is not None and "model" not in want):
            if want is None or pm.name in want or "model" in want:
                # Coding with a model takes seconds per megapixel: skip it when a quick
                # estimate (an eighth of the rows) says the classical file is clearly smaller.
                if want is None and classical is not None:
                    estimates[pm.name] = int(pm.estimate_bits(pixels) / 8)
                    if estimates[pm.name] > SKIP_MARGIN * classical:
                        continue
                tried[pm.name] = (CODER_MODEL, pm.encode(pixels), pm)
    if not tried:
        raise AnySizeError("no coder applies to this image")
    best = min(tried, key=lambda k: (len(tried[k][1]), k))
    coder, payload, pm = tried[best]
    return Record(coder, mode, h, w, payload, pm, tried={k: len(v[1]) for k, v in tried.items()},
                  estimates=estimates)


def _record_header(r: Record, names: bool) -> bytes:
    out = bytearray([r.coder])
    if r.coder == CODER_MODEL:
        out += bytes.fromhex(r.model.sha256[:2 * HASH_BYTES])
    out.append(MODES.index(r.mode))
    out += _varint(r.height) + _varint(r.width)
    if names:
        nb = (r.name or "").encode()
        out += _varint(len(nb)) + nb
    out += _varint(len(r.payload))
    return bytes(out)


def _pixel_bytes(pixels: np.ndarray) -> bytes:
    return np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()


def pack(records: Sequence[Record], pixels: Sequence[np.ndarray], names: bool = False) -> bytes:
    head = MAGIC + bytes([VERSION, F_NAMES if names else 0]) + _varint(len(records))
    out = bytearray(head + struct.pack("<I", zlib.crc32(head)))
    for r, px in zip(records, pixels):
        rh = _record_header(r, names)
        out += rh + struct.pack("<I", zlib.crc32(_pixel_bytes(px), zlib.crc32(rh))) + r.payload
    return bytes(out)


def is_anysize(data: bytes) -> bool:
    return data[:2] == MAGIC


@dataclass
class Parsed:
    records: list[Record]
    crcs: list[int]
    names: bool


def parse(data: bytes) -> Parsed:
    """Header and records, every limit checked before anything is decoded."""
    rd = _Reader(data, len(data))
    if rd.take(2) != MAGIC:
        raise AnySizeError("not a vlaecodec any-size file")
    version, flags = rd.take(2)
    if version != VERSION:
        raise AnySizeError(f"any-size format version {version} is not supported (this vlaecodec reads {VERSION})")
    if flags & ~F_NAMES:
        raise AnySizeError("unknown flags in the header")
    count = rd.varint(MAX_IMAGES)
    if count < 1:
        raise AnySizeError("a file holds at least one image")
    (crc,) = struct.unpack("<I", rd.take(4))
    if crc != zlib.crc32(data[:rd.pos - 4]):
        raise AnySizeError("the header is damaged (checksum mismatch)")
    names = bool(flags & F_NAMES)
    records, crcs = [], []
    for _ in range(count):
        start = rd.pos
        coder = rd.take(1)[0]
        if coder not in CODER_NAMES:
            raise AnySizeError(f"unknown coder {coder} in a record")
        model = None
        if coder == CODER_MODEL:
            model = _photo_by_hash(rd.take(HASH_BYTES))
        mi = rd.take(1)[0]
        if mi >= len(MODES):
            raise AnySizeError("unknown image mode in a record")
        mode = MODES[mi]
        h, w = rd.varint(MAX_SIDE), rd.varint(MAX_SIDE)
        if h < 1 or w < 1 or h * w > MAX_PIXELS:
            raise AnySizeError("a record's image size is outside the limits")
        if model is not None and model.mode != mode:
            raise AnySizeError("a record's mode does not match its model")
        if coder == CODER_CONTEXT and mode not in BINARY:
            raise AnySizeError("a context-model record must hold a binary image")
        if coder == CODER_GRAYCTX and mode != "L":
            raise AnySizeError("a gray context-model record must hold a gray image")
        if coder == CODER_RGBCTX and mode != "RGB":
            raise AnySizeError("an RGB context-model record must hold an RGB image")
        name = None
        if names:
            name = rd.string(4096)
        n = rd.varint(len(data))
        (rcrc,) = struct.unpack("<I", rd.take(4))
        header_crc = zlib.crc32(data[start:rd.pos - 4])
        payload = rd.take(n)
        records.append(Record(coder, mode, h, w, payload, model, name))
        crcs.append((rcrc, header_crc))
    if rd.pos != len(data):
        raise AnySizeError("trailing bytes after the last record")
    return Parsed(records, crcs, names)


# The context coders: module (imported when first needed) with decode(payload, H, W), and
# its exception for a payload it cannot have written (the message is shown; any other
# exception from a damaged payload is only named).
_CONTEXT_MODULES = {CODER_CONTEXT: ("bilevel", "BilevelError"), CODER_GRAYCTX: ("graylevel", "GraylevelError"),
                    CODER_RGBCTX: ("colorlevel", "ColorlevelError")}


def decode_record(r: Record, crcs: tuple[int, int]) -> np.ndarray:
    if r.coder == CODER_MODEL:
        try:
            px = r.model.decode(r.payload, r.height, r.width)
        except AnySizeError:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged payload can fail anywhere in the coder
            raise AnySizeError(f"damaged record ({e.__class__.__name__})") from None
    elif r.coder in _CONTEXT_MODULES:
        module, error = _CONTEXT_MODULES[r.coder]
        coder = importlib.import_module(f"{__package__}.{module}")
        try:
            px = coder.decode(r.payload, r.height, r.width)
        except Exception as e:  # noqa: BLE001 - a damaged payload can fail anywhere in the coder
            raise AnySizeError(f"damaged record ({e})" if isinstance(e, getattr(coder, error))
                               else f"damaged record ({e.__class__.__name__})") from None
    else:
        px = _decode_classical(r.payload, r.mode, r.height, r.width)
    if zlib.crc32(_pixel_bytes(px), crcs[1]) != crcs[0]:
        raise AnySizeError("decoded pixels fail their checksum: the file is damaged")
    return px


def compress(images: Sequence[np.ndarray], modes: Sequence[str], names: Sequence[str] | None = None,
             coders: Sequence[str] | None = None, progress: Callable[[int], None] | None = None
             ) -> tuple[bytes, list[Record]]:
    records = []
    for i, (px, mode) in enumerate(zip(images, modes)):
        r = choose(px, mode, coders=coders)
        r.name = names[i] if names else None
        records.append(r)
        if progress:
            progress(i + 1)
    return pack(records, images, names=names is not None), records


def decompress(data: bytes, progress: Callable[[int], None] | None = None
               ) -> tuple[list[np.ndarray], list[Record]]:
    p = parse(data)
    out = []
    for i, (r, c) in enumerate(zip(p.records, p.crcs)):
        out.append(decode_record(r, c))
        if progress:
            progress(i + 1)
    return out, p.records


def describe(data: bytes) -> list[str]:
    """One line per image: size, mode, coder, bytes and bits per sub-pixel."""
    p = parse(data)
    lines = []
    for i, r in enumerate(p.records):
        dims = r.height * r.width * CHANNELS[r.mode]
        label = r.name or f"image {i}"
        lines.append(f"{label}: {r.width}x{r.height} {r.mode}, coder {r.coder_name}, "
                     f"{len(r.payload)} bytes ({8 * len(r.payload) / dims:.4f} bits/sub-pixel)")
    return lines
