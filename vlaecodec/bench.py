"""``vlaecodec bench``: real file sizes against the model's -ELBO, speed, and peer codecs.

For one dataset split (or its first ``limit`` images) it measures

* the model's -ELBO in bits/dim on those images (``evaluate``: one seeded sample each);
* one chained ``.vlae`` file holding all of them: real bits/dim = 8 * bytes / (N*H*W),
  header and start-up bits included, its ratio to the -ELBO, encode and decode
  images/s (after a warm-up on a few images), and a lossless check of every image;
* single-image files (each image compressed alone, header included): mean bytes, each
  one decoded and checked;
* peers on the same images: PNG and WebP lossless (Pillow) per image, JPEG-XL lossless
  (``cjxl``) per image on a subset, JBIG1 (``pbmtojbg``) per image and on all images
  stacked into one tall image, bz2 and xz on the whole raw set. A missing tool is
  recorded as "not installed", never an error. PNG, WebP and both JBIG1 rows are also
  timed in the same run, encode and decode in images/s (``encode_images_per_s``,
  ``decode_images_per_s``, with ``timing`` saying what was timed): Pillow in this
  process after a warm-up; JBIG1 per image as one ``pbmtojbg`` and one ``jbgtopbm``
  process per image (a process start per image included), and all images as one tall
  image through one process each way, the fair throughput comparison.

Results go to ``bench-<dataset>-<split>-<N>.json`` and ``.md`` in ``out_dir`` (default
``./bench-results`` under the current directory), as ``{name, description, results,
environment}`` with library versions, so a number can always be traced to its run.
"""
from __future__ import annotations

import bz2
import datetime as _dt
import io
import json
import lzma
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .progress import ProgressFactory
from .progress import stage as _Stage

WARMUP_IMAGES = 16
PEER_LIMIT = 1000          # cjxl is one process per image: run it on this many
CJXL_ARGS = ["-d", "0", "-e", "9"]
JXL_VERIFY = 10            # decode this many back with djxl (another process each)
# One resolution layer (sequential mode) and, added per image, one stripe of the image's
# height: pbmtojbg's default of ~35 stripes restarts the coder every line on a 28-row
# digit (79.7 instead of 50.4 bytes on binarized MNIST).
JBIG_ARGS = ["-q"]


# ------------------------------------------------------------------------- helpers

def _bpd(total_bytes: float, n: int, dims: int) -> float:
    return 8.0 * total_bytes / (n * dims)


def _is_binary(x: np.ndarray) -> bool:
    return bool(x.size == 0 or x.max() <= 1)


def _to_pil(img: np.ndarray, binary: bool):
    from PIL import Image
    if binary:
        # 0/1 -> 0/255 -> mode '1' without dithering (values are already 0 or 255).
        return Image.fromarray((img * 255).astype(np.uint8), "L").convert("1", dither=Image.Dither.NONE)
    return Image.fromarray(img.astype(np.uint8), "L")


def _pil_decode(raw: bytes) -> np.ndarray:
    """Decode an image file with Pillow to a pixel array (mode '1' gives a bool array)."""
    from PIL import Image
    with Image.open(io.BytesIO(raw)) as im:
        # WebP has no gray mode: it decodes to RGB, converted back to the gray image.
        return np.asarray(im if im.mode in ("1", "L") else im.convert("L"))


def _pixels_ok(back: np.ndarray, img: np.ndarray, binary: bool) -> bool:
    if back.dtype == bool:
        return bool(binary and np.array_equal(back, img.astype(bool)))
    if back.ndim != 2:
        return False
    if not binary:
        return bool(np.array_equal(back, img))
    # Decoders write a bi-level image as 0/255 or (djxl) as 0/1: two levels, same pattern.
    top = int(back.max())
    return bool(np.isin(back, (0, top)).all() and np.array_equal(back > 0, img.astype(bool)))


def _pil_roundtrip_ok(raw: bytes, img: np.ndarray, binary: bool) -> bool:
    from PIL import Image
    with Image.open(io.BytesIO(raw)) as im:
        back = np.asarray(im.convert("L"))
    return _pixels_ok(back, img, binary)


def _pbm(img: np.ndarray) -> bytes:
    """Binary PBM (P4): rows packed MSB first, 1 = black."""
    h, w = img.shape
    return f"P4\n{w} {h}\n".encode() + np.packbits(img.astype(bool), axis=1).tobytes()


def _read_pbm(raw: bytes) -> np.ndarray | None:
    """Parse a P4 PBM (any whitespace in the header; no comments) -> uint8 0/1, or None."""
    pos, fields = 0, []
    while len(fields) < 3:
        while pos < len(raw) and raw[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while end < len(raw) and not raw[end:end + 1].isspace():
            end += 1
        if end == pos:
            return None
        fields.append(raw[pos:end])
        pos = end
    if fields[0] != b"P4":
        return None
    w, h = int(fields[1]), int(fields[2])
    rowb = (w + 7) // 8
    if len(raw) < pos + 1 + h * rowb:
        return None
    # Exactly one whitespace byte separates the height from the pixel data.
    body = np.frombuffer(raw, np.uint8, count=h * rowb, offset=pos + 1).reshape(h, rowb)
    return np.unpackbits(body, axis=1)[:, :w]


def _speed(n: int, enc_s: float, dec_s: float | None, how: str) -> dict[str, Any]:
    """A peer's timing fields: seconds and images/s each way (decode None if not run)."""
    return {"encode_s": enc_s, "encode_images_per_s": n / enc_s if enc_s > 0 else None,
            "decode_s": dec_s, "decode_images_per_s": n / dec_s if dec_s else None,
            "timed_images": n, "timing": how}


def _tool_version(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (r.stdout + r.stderr).strip().splitlines()
    return out[0][:120] if out else None


# --------------------------------------------------------------------------- peers

def _peer_pillow(x: np.ndarray, fmt: str, save_kw: dict[str, Any], label: str,
                 factory: ProgressFactory | None) -> dict[str, Any]:
    from PIL import features
    if fmt == "WEBP" and not features.check("webp"):
        return {"status": "not installed", "notes": "Pillow built without WebP"}
    binary = _is_binary(x)

    def encode(img: np.ndarray) -> bytes:
        buf = io.BytesIO()
        im = _to_pil(img, binary)
        if fmt == "WEBP":
            im = im.convert("L")  # WebP has no 1-bit mode
        im.save(buf, fmt, **save_kw)
        return buf.getvalue()

    for img in x[:WARMUP_IMAGES]:  # warm-up, untimed: Pillow loads its plugins on first use
        _pil_decode(encode(img))
    sizes, bad = [], 0
    enc_s = dec_s = 0.0
    with _Stage(factory, label, len(x)) as prog:
        for i, img in enumerate(x):
            # Timed: numpy array -> file bytes, and file bytes -> numpy array; the
            # lossless check and the progress bar are not.
            t0 = time.perf_counter()
            raw = encode(img)
            t1 = time.perf_counter()
            back = _pil_decode(raw)
            t2 = time.perf_counter()
            enc_s += t1 - t0
            dec_s += t2 - t1
            sizes.append(len(raw))
            bad += not _pixels_ok(back, img, binary)
            prog(i + 1)
    return {"status": "ok", "n": len(x), "mean_bytes": float(np.mean(sizes)), "lossless": bad == 0,
            "notes": "per image; " + ", ".join(f"{k}={v}" for k, v in save_kw.items()),
            **_speed(len(x), enc_s, dec_s, f"Pillow {fmt} save and open in this process, per image, "
                     f"after a warm-up on {min(WARMUP_IMAGES, len(x))} images")}


def _peer_cjxl(x: np.ndarray, limit: int, factory: ProgressFactory | None) -> dict[str, Any]:
    exe = shutil.which("cjxl")
    if exe is None:
        return {"status": "not installed", "notes": "cjxl not found (Debian: apt-get install libjxl-tools)"}
    sub = x[:limit]
    binary = _is_binary(x)
    sizes, checked_bad = [], 0
    djxl = shutil.which("djxl")
    with tempfile.TemporaryDirectory(prefix="vlaecodec-cjxl-") as tmp, _Stage(factory, "JPEG-XL", len(sub)) as prog:
        # A 1-bit PNG tells cjxl the bit depth: it then writes ~59 B per binarized MNIST
        # digit instead of ~69 B from an 8-bit grayscale PNG of the same pixels.
        src, dst = Path(tmp) / "in.png", Path(tmp) / "out.jxl"
        for i, img in enumerate(sub):
            _to_pil(img, binary).save(src, "PNG")
            dst.unlink(missing_ok=True)
            r = subprocess.run([exe, str(src), str(dst), *CJXL_ARGS], capture_output=True)
            if r.returncode != 0:
                return {"status": "error", "notes": f"cjxl failed: {r.stderr.decode(errors='replace')[-200:]}"}
            sizes.append(dst.stat().st_size)
            if djxl and i < JXL_VERIFY:
                back = Path(tmp) / "back.png"
                r = subprocess.run([djxl, str(dst), str(back)], capture_output=True)
                checked_bad += r.returncode != 0 or not _pil_roundtrip_ok(back.read_bytes(), img, binary)
            prog(i + 1)
    subset = f"first {len(sub)} of {len(x)} images" if len(sub) < len(x) else f"all {len(x)} images"
    verified = f"decoded back with djxl: first {min(JXL_VERIFY, len(sub))}" if djxl else "not decoded back"
    return {"status": "ok", "n": len(sub), "mean_bytes": float(np.mean(sizes)),
            "lossless": (checked_bad == 0) if djxl else None, "verified": verified,
            "notes": f"per image, {subset} (one process per image); {'1-bit' if binary else '8-bit'} PNG input, "
                     f"cjxl {' '.join(CJXL_ARGS)}",
            "version": _tool_version([exe, "--version"])}


def _mosaic(x: np.ndarray) -> tuple[np.ndarray, int]:
    """All images tiled row-major into one near-square image (a column count of
    ceil(sqrt(N))); blank tiles pad the last row. Returns (mosaic, padding tiles)."""
    n, h, w = x.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = rows * cols - n
    tiles = np.concatenate([x, np.zeros((pad, h, w), x.dtype)]) if pad else x
    return tiles.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w), pad


def _peer_cjxl_mosaic(x: np.ndarray) -> dict[str, Any]:
    """JPEG-XL lossless on every image at once, tiled into one mosaic: the strongest
    use of a classical codec on a set of small images (context shared across them)."""
    exe, djxl = shutil.which("cjxl"), shutil.which("djxl")
    if exe is None:
        return {"status": "not installed", "notes": "cjxl not found (Debian: apt-get install libjxl-tools)"}
    m, pad = _mosaic(x)
    with tempfile.TemporaryDirectory(prefix="vlaecodec-cjxl-") as tmp:
        src, dst, back = Path(tmp) / "in.png", Path(tmp) / "out.jxl", Path(tmp) / "back.png"
        _to_pil(m, _is_binary(x)).save(src, "PNG")
        t0 = time.perf_counter()
        r = subprocess.run([exe, str(src), str(dst), *CJXL_ARGS], capture_output=True)
        enc_s = time.perf_counter() - t0
        if r.returncode != 0:
            return {"status": "error", "notes": f"cjxl failed: {r.stderr.decode(errors='replace')[-200:]}"}
        size = dst.stat().st_size
        ok, dec_s = None, None
        if djxl:
            t0 = time.perf_counter()
            r = subprocess.run([djxl, str(dst), str(back)], capture_output=True)
            dec_s = time.perf_counter() - t0
            ok = r.returncode == 0 and _pil_roundtrip_ok(back.read_bytes(), m, _is_binary(x))
    return {"status": "ok", "n": len(x), "total_bytes": size, "mean_bytes": size / len(x), "lossless": ok,
            "notes": f"all images as one {m.shape[0]}x{m.shape[1]} mosaic"
                     + (f" ({pad} blank tiles pad the last row)" if pad else "") + f", cjxl {' '.join(CJXL_ARGS)}",
            **_speed(len(x), enc_s, dec_s, "one cjxl and one djxl process for the mosaic"),
            "version": _tool_version([exe, "--version"])}


def _peer_jbig(x: np.ndarray, factory: ProgressFactory | None) -> dict[str, dict[str, Any]]:
    exe = shutil.which("pbmtojbg")
    missing = {"status": "not installed", "notes": "pbmtojbg not found (Debian: apt-get install jbigkit-bin)"}
    if not _is_binary(x):
        na = {"status": "not applicable", "notes": "JBIG1 codes bi-level images"}
        return {"JBIG1 per image": na, "JBIG1 all as one image": na}
    if exe is None:
        return {"JBIG1 per image": missing, "JBIG1 all as one image": missing}
    dec = shutil.which("jbgtopbm")

    def run(img: np.ndarray, args: list[str]) -> bytes:
        r = subprocess.run([exe, *args], input=_pbm(img), capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"pbmtojbg failed: {r.stderr.decode(errors='replace')[-200:]}")
        return r.stdout

    def unrun(blob: bytes) -> np.ndarray | None:
        r = subprocess.run([dec], input=blob, capture_output=True)
        return _read_pbm(r.stdout) if r.returncode == 0 else None

    out: dict[str, dict[str, Any]] = {}
    sizes, bad = [], 0
    enc_s = dec_s = 0.0
    args = [*JBIG_ARGS, "-s", str(x.shape[1])]
    with _Stage(factory, "JBIG1", len(x)) as prog:
        for i, img in enumerate(x):
            # Timed: numpy array -> PBM -> pbmtojbg process -> JBIG bytes, and JBIG bytes
            # -> jbgtopbm process -> PBM parsed to a numpy array. One process each way per
            # image, so the rate includes a process start per image.
            t0 = time.perf_counter()
            blob = run(img, args)
            t1 = time.perf_counter()
            enc_s += t1 - t0
            sizes.append(len(blob))
            if dec:
                back = unrun(blob)
                dec_s += time.perf_counter() - t1
                bad += back is None or not np.array_equal(back, img)
            prog(i + 1)
    subset = f"all {len(x)} images"
    out["JBIG1 per image"] = {
        "status": "ok", "n": len(x), "mean_bytes": float(np.mean(sizes)),
        "lossless": (bad == 0) if dec else None,
        "notes": f"per image, pbmtojbg {' '.join(args)}",
        **_speed(len(x), enc_s, dec_s if dec else None,
                 f"{subset}, one pbmtojbg{'/jbgtopbm' if dec else ''} process per image: "
                 f"includes a process start per image")}
    tall = x.reshape(-1, x.shape[2])
    args = [*JBIG_ARGS, "-s", str(tall.shape[0])]
    t0 = time.perf_counter()
    blob = run(tall, args)
    enc_s = time.perf_counter() - t0
    ok, dec_s = None, None
    if dec:
        t0 = time.perf_counter()
        back = unrun(blob)
        dec_s = time.perf_counter() - t0
        ok = back is not None and np.array_equal(back, tall)
    out["JBIG1 all as one image"] = {
        "status": "ok", "n": len(x), "total_bytes": len(blob), "mean_bytes": len(blob) / len(x),
        "lossless": ok, "notes": f"{tall.shape[0]}x{tall.shape[1]} image, pbmtojbg {' '.join(args)}",
        **_speed(len(x), enc_s, dec_s,
                 f"one pbmtojbg{' and one jbgtopbm' if dec else ''} process for all {len(x)} images"),
        "version": _tool_version([exe, "-h"])}
    return out


def _peer_generic(x: np.ndarray) -> dict[str, dict[str, Any]]:
    """bz2 / xz (maximum presets) on the whole set as one byte string."""
    n = len(x)
    layouts = {"1 byte/pixel": x.astype(np.uint8).tobytes()}
    if _is_binary(x):
        # Each image's 784 bits packed row-major (MSB first) into 98 bytes, images concatenated.
        layouts = {"packed bits": np.packbits(x.reshape(n, -1).astype(bool), axis=1).tobytes(), **layouts}
    out = {}
    for name, comp in (("bz2", lambda b: bz2.compress(b, 9)),
                       ("xz", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME))):
        for layout, raw in layouts.items():
            size = len(comp(raw))
            out[f"{name} whole set, {layout}"] = {
                "status": "ok", "n": n, "total_bytes": size, "mean_bytes": size / n,
                "notes": f"{len(raw)} raw bytes ({layout}), "
                         + ("level 9" if name == "bz2" else "preset 9e")}
    return out


def run_peers(x: np.ndarray, *, peer_limit: int = PEER_LIMIT,
              progress_factory: ProgressFactory | None = None) -> dict[str, dict[str, Any]]:
    """All peer codecs on images x (uint8 (N, H, W)); mean bytes per image and bits/dim."""
    dims = x.shape[1] * x.shape[2]
    peers: dict[str, dict[str, Any]] = {}
    binary = _is_binary(x)
    peers["PNG per image"] = _peer_pillow(x, "PNG", {"optimize": True}, "PNG", progress_factory)
    peers["PNG per image"]["notes"] += f", mode {'1' if binary else 'L'}"
    peers["WebP lossless per image"] = _peer_pillow(
        x, "WEBP", {"lossless": True, "quality": 100, "method": 6}, "WebP", progress_factory)
    peers["JPEG-XL lossless per image"] = _peer_cjxl(x, peer_limit, progress_factory)
    if not binary:   # (binary sets have JBIG1 on one tall image for this role)
        peers["JPEG-XL lossless, one mosaic"] = _peer_cjxl_mosaic(x)
    peers.update(_peer_jbig(x, progress_factory))
    peers.update(_peer_generic(x))
    for p in peers.values():
        if p.get("status") == "ok":
            p["bits_per_dim"] = 8.0 * p["mean_bytes"] / dims
    return peers


# --------------------------------------------------------------------------- codec

def _count_mismatches(decoded: Sequence[np.ndarray], x: np.ndarray) -> int:
    if len(decoded) != len(x):
        return max(len(decoded), len(x))
    return sum(not np.array_equal(np.asarray(d), xi) for d, xi in zip(decoded, x))


def _bench_chained(vc: Any, loaded: Any, x: np.ndarray, factory: ProgressFactory | None) -> dict[str, Any]:
    n, dims = len(x), x.shape[1] * x.shape[2]
    images = list(x)
    warm = images[:WARMUP_IMAGES]
    vc.decompress(vc.compress(warm, loaded), loaded)  # warm-up: allocators, lazy init, caches

    st: dict[str, Any] = {}
    with _Stage(factory, "encode", n) as prog:
        t0 = time.perf_counter()
        blob = vc.compress(images, loaded, progress=prog, stats=st)
        enc_s = time.perf_counter() - t0
    res: dict[str, Any] = {"n": n, "bytes": len(blob), "bits_per_dim": _bpd(len(blob), n, dims),
                           "bytes_per_image": len(blob) / n, "encode_s": enc_s,
                           "encode_images_per_s": n / enc_s, "warmup_images": len(warm),
                           "chains": st.get("chains", 1), "batches": st.get("batches"),
                           "direct_images": st.get("direct_images"), "jobs": st.get("chains", 1)}
    with _Stage(factory, "decode", n) as prog:
        t0 = time.perf_counter()
        try:
            arch = vc.decompress(blob, loaded, progress=prog)
        except Exception as e:  # noqa: BLE001 - a failed decode is a result to report
            res.update(lossless=False, mismatches=n, decode_error=f"{e.__class__.__name__}: {e}")
            return res
        dec_s = time.perf_counter() - t0
    mism = _count_mismatches(arch.images, x)
    res.update(decode_s=dec_s, decode_images_per_s=n / dec_s, mismatches=mism, lossless=mism == 0)
    return res


def _png(img: np.ndarray) -> bytes:
    """An image of the set as a user's PNG: mode 1 if binary (0/1 pixels), else mode L."""
    from .images import png_bytes
    return png_bytes(img, "1") if img.max() <= 1 else png_bytes(img, "L", 256)


def _read_png(png: bytes, where: str) -> tuple[np.ndarray, str]:
    """A PNG as the CLI reads it: (pixels, mode); binary images as 0/1."""
    from .images import read_image
    p = read_image(png, where)
    return ((p.gray >= 128).astype(np.uint8), p.mode) if p.levels == 2 else (p.gray, p.mode)


def _bench_single(vc: Any, loaded: Any, x: np.ndarray, factory: ProgressFactory | None) -> dict[str, Any]:
    """Single-image files exactly as ``vlaecodec compress one.png`` writes them: the image
    as a PNG (mode 1 for binary sets, L for 8-bit ones), read back by the CLI's reader,
    coded with its mode and no name."""

    dims = x.shape[1] * x.shape[2]
    sizes, bad, errors = [], 0, []
    enc_s = dec_s = 0.0
    with _Stage(factory, "single-image files", len(x)) as prog:
        for i, img in enumerate(x):
            png = _png(img)
            t0 = time.perf_counter()
            px, mode = _read_png(png, f"image {i}")
            blob = vc.compress([px], loaded, modes=[mode])
            t1 = time.perf_counter()
            sizes.append(len(blob))
            try:
                back = vc.decompress(blob, loaded).images
                ok = len(back) == 1 and np.array_equal(np.asarray(back[0]), img)
            except Exception as e:  # noqa: BLE001
                ok = False
                if len(errors) < 5:
                    errors.append(f"image {i}: {e.__class__.__name__}: {e}")
            dec_s += time.perf_counter() - t1
            enc_s += t1 - t0
            bad += not ok
            prog(i + 1)
    s = np.asarray(sizes)
    res = {"n": len(x), "mean_bytes": float(s.mean()), "median_bytes": float(np.median(s)),
           "min_bytes": int(s.min()), "max_bytes": int(s.max()), "bits_per_dim": _bpd(s.mean(), 1, dims),
           "mismatches": bad, "lossless": bad == 0,
           "encode_images_per_s": len(x) / enc_s, "decode_images_per_s": len(x) / dec_s}
    if errors:
        res["decode_errors"] = errors
    return res


def _bench_cli(loaded: Any, x: np.ndarray, factory: ProgressFactory | None, single_runs: int = 5) -> dict[str, Any]:
    """What a user waits for: the ``vlaecodec`` command itself, in fresh processes, on
    the images as PNG files (PNG reading and writing, imports, model loading included)."""
    import statistics
    import sys

    n = len(x)
    model_args = [] if loaded.manifest.get("name") is None else ["--model", loaded.name]
    cmd = [sys.executable, "-m", "vlaecodec"]
    with tempfile.TemporaryDirectory(prefix="vlaecodec-bench-") as tmp, \
            _Stage(factory, "command line (PNG files in and out)", 4) as prog:
        src, out, arc = Path(tmp) / "png", Path(tmp) / "out", Path(tmp) / "all.vlae"
        src.mkdir()
        for i, img in enumerate(x):
            (src / f"{i:05d}.png").write_bytes(_png(img))
        prog(1)
        t0 = time.perf_counter()
        subprocess.run(cmd + ["compress", str(src), "-o", str(arc), "-q"] + model_args, check=True)
        enc_s = time.perf_counter() - t0
        prog(2)
        t0 = time.perf_counter()
        subprocess.run(cmd + ["decompress", str(arc), "-o", str(out), "-q"], check=True)
        dec_s = time.perf_counter() - t0
        prog(3)
        back = sorted(out.glob("*.png"))
        bad = sum(not np.array_equal(_read_png(p.read_bytes(), str(p))[0], img) for p, img in zip(back, x))
        bad += abs(len(back) - n)
        one, one_vlae, one_png = src / "00000.png", Path(tmp) / "one.vlae", Path(tmp) / "one.png"
        enc1, dec1 = [], []
        for _ in range(single_runs):
            t0 = time.perf_counter()
            subprocess.run(cmd + ["compress", str(one), "-o", str(one_vlae), "-q", "--force"] + model_args, check=True)
            enc1.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run(cmd + ["decompress", str(one_vlae), "-o", str(one_png), "-q", "--force"], check=True)
            dec1.append(time.perf_counter() - t0)
        prog(4)
        return {"n": n, "archive_bytes": arc.stat().st_size, "encode_s": enc_s, "decode_s": dec_s,
                "encode_images_per_s": n / enc_s, "decode_images_per_s": n / dec_s, "mismatches": int(bad),
                "single_file_bytes": one_vlae.stat().st_size,
                "single_compress_s_median": statistics.median(enc1),
                "single_decompress_s_median": statistics.median(dec1), "single_runs": single_runs}


# ------------------------------------------------------------------------- reports

def environment() -> dict[str, Any]:
    import PIL
    import importlib.metadata

    import constriction  # noqa: F401
    import vlaecodec
    try:
        import torch
        torch_version, torch_threads = str(torch.__version__), torch.get_num_threads()
    except ImportError:
        torch_version, torch_threads = None, None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "cpus_usable": cores,
        "torch_threads": torch_threads, "coding": "numpy integer arithmetic (OpenBLAS float64 GEMM on integers)",
        "versions": {"vlaecodec": vlaecodec.__version__, "torch": torch_version,
                     "numpy": np.__version__, "constriction": importlib.metadata.version("constriction"),
                     "pillow": PIL.__version__},
    }


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def to_markdown(results: dict[str, Any]) -> str:
    r = results
    m, c, s = r["model"], r.get("codec"), r.get("single")
    dims = r["image_shape"][0] * r["image_shape"][1]
    lines = [f"### vlaecodec bench: {r['dataset']} {r['split']}, {r['n']} images "
             f"({r['image_shape'][0]}×{r['image_shape'][1]}), model {m['name']}",
             "", "| system | bits/dim | bytes/image | notes |", "|---|---|---|---|"]
    if m["neg_elbo_nats"] is None:
        lines.append(f"| VLAE −ELBO (model) | — | — | not measured: {m.get('neg_elbo_note', '')} |")
    else:
        lines.append(f"| VLAE −ELBO (model) | {_fmt(m['neg_elbo_bpd'], '.4f')} | "
                     f"{_fmt(m['neg_elbo_nats'] / (8 * math.log(2)), '.1f')} | "
                     f"{m['neg_elbo_nats']:.2f} nats/image, KL {m['kl_nats']:.2f} nats; a bound, not a file |")
    if c:
        speed = (f"encode {c['encode_images_per_s']:.0f} img/s, decode "
                 f"{_fmt(c.get('decode_images_per_s'), '.0f')} img/s")
        lossless = f"lossless {c['n'] - c['mismatches']}/{c['n']}"
        if c.get("decode_error"):
            lossless += f" (decode failed: {c['decode_error']})"
        chains = f", {c['chains']} chains" if c.get("chains", 1) > 1 else ""
        ratio = "" if c.get("ratio_to_elbo") is None else f", {c['ratio_to_elbo']:.4f}× −ELBO"
        lines.append(f"| vlaecodec, one archive | {c['bits_per_dim']:.4f} | {c['bytes_per_image']:.2f} | "
                     f"{c['bytes']} bytes{chains}{ratio}; {lossless}; {speed} |")
    if s:
        lines.append(f"| vlaecodec, single-image files | {s['bits_per_dim']:.4f} | {s['mean_bytes']:.2f} | "
                     f"{s['n']} files, header included; median {s['median_bytes']:.0f} B, max {s['max_bytes']} B; "
                     f"lossless {s['n'] - s['mismatches']}/{s['n']} |")
    cl = r.get("cli")
    if cl:
        lines.append(f"| vlaecodec command line, {cl['n']} PNGs | {_bpd(cl['archive_bytes'], cl['n'], dims):.4f} | "
                     f"{cl['archive_bytes'] / cl['n']:.2f} | `vlaecodec compress`/`decompress` wall time, PNG files "
                     f"in and out: encode {cl['encode_images_per_s']:.0f} img/s, decode "
                     f"{cl['decode_images_per_s']:.0f} img/s; lossless {cl['n'] - cl['mismatches']}/{cl['n']}; "
                     f"one digit: {cl['single_file_bytes']} B, compress {cl['single_compress_s_median']:.2f} s, "
                     f"decompress {cl['single_decompress_s_median']:.2f} s (median of {cl['single_runs']}) |")
    for name, p in (r.get("peers") or {}).items():
        if p.get("status") == "ok":
            extra = "" if p.get("lossless") in (None, True) else "; NOT LOSSLESS"
            n_note = f" (n={p['n']})" if p.get("n") != r["n"] else ""
            speed = ""
            if "encode_images_per_s" in p:
                speed = (f"; encode {_fmt(p['encode_images_per_s'], '.0f')} img/s, decode "
                         f"{_fmt(p.get('decode_images_per_s'), '.0f')} img/s ({p['timing']})")
            lines.append(f"| {name} | {p['bits_per_dim']:.4f} | {p['mean_bytes']:.2f} | "
                         f"{p.get('notes', '')}{n_note}{extra}{speed} |")
        else:
            lines.append(f"| {name} | — | — | {p['status']}: {p.get('notes', '')} |")
    return "\n".join(lines) + "\n"


def _default_out_dir() -> Path:
    out = Path.cwd() / "bench-results"
    pkg = Path(__file__).resolve().parent
    if out.resolve() == pkg or pkg in out.resolve().parents:
        raise ValueError(f"refusing to write benchmark results inside the package ({pkg}); pass out_dir")
    return out


def run_bench(*, dataset: str = "binarized-mnist", split: str = "test", limit: int | None = None,
              single_limit: int | None = None, model: Any = None, out_dir: str | os.PathLike | None = None,
              peers: bool = True, progress_factory: ProgressFactory | None = None,
              peer_limit: int = PEER_LIMIT, codec: bool = True, cli: bool = False) -> dict[str, Any]:
    """Run the benchmark; returns ``{"markdown", "json_path", "results"}``.

    ``model``: a name, a model file path, a ``LoadedModel`` or None (the default model).
    ``single_limit``: how many single-image files to make (default: all N; 0 skips).
    ``peer_limit``: images for the per-process JPEG-XL peer. ``progress_factory(label,
    total)`` returns a callback taking the number of items done (and may have
    ``close()``, called when that stage ends)."""
    import vlaecodec as vc
    from . import data, zoo
    from .fileinfo import TRAIN_EXTRA, have_torch
    from .fileio import write_atomic

    x = np.ascontiguousarray(data.load_dataset(dataset, split)[:limit]).astype(np.uint8)
    if len(x) == 0:
        raise ValueError("no images selected")
    if isinstance(model, zoo.LoadedModel):
        loaded = model
    else:   # no model: the one trained on the dataset (else the default of its kind)
        loaded = (zoo.load_model(model) if model is not None
                  else zoo.model_for_dataset(dataset, 2 if _is_binary(x) else 256))
    n, dims = len(x), x.shape[1] * x.shape[2]

    ev: dict[str, Any] = dict.fromkeys(("neg_elbo_nats", "neg_elbo_bpd", "rec_nats", "kl_nats"))
    if have_torch():   # the float model's -ELBO needs torch (the [train] extra); the rest does not
        from .evaluate import evaluate
        with _Stage(progress_factory, "model -ELBO", n) as prog:
            ev = evaluate(loaded, x, progress=prog)
    results: dict[str, Any] = {
        "dataset": dataset, "split": split, "n": n, "image_shape": list(x.shape[1:]),
        "model": {"name": loaded.name, "sha256": loaded.sha256, "receptive_rows": loaded.config.receptive_rows,
                  **{k: ev[k] for k in ("neg_elbo_nats", "neg_elbo_bpd", "rec_nats", "kl_nats")}},
    }
    if ev["neg_elbo_bpd"] is None:
        results["model"]["neg_elbo_note"] = f"needs torch, the [train] extra: {TRAIN_EXTRA}"
    if codec:
        c = _bench_chained(vc, loaded, x, progress_factory)
        c["ratio_to_elbo"] = None if ev["neg_elbo_bpd"] is None else c["bits_per_dim"] / ev["neg_elbo_bpd"]
        results["codec"] = c
        k = n if single_limit is None else min(single_limit, n)
        if k > 0:
            results["single"] = _bench_single(vc, loaded, x[:k], progress_factory)
    if cli:
        results["cli"] = _bench_cli(loaded, x, progress_factory)
    if peers:
        results["peers"] = run_peers(x, peer_limit=peer_limit, progress_factory=progress_factory)

    out = Path(out_dir) if out_dir is not None else _default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{dataset}-{split}-{n}"
    md = to_markdown(results)
    doc = {"name": stem,
           "description": (f"vlaecodec bench on {n} {dataset} {split} images with model {loaded.name}: "
                           "model -ELBO (one seeded sample per image) vs real bits/dim of one chained file, "
                           "single-image files, encode/decode speed, lossless check, peer codecs"),
           "results": results, "environment": environment()}
    doc["environment"]["tools"] = {t: shutil.which(t) for t in ("cjxl", "pbmtojbg")}
    json_path = out / f"{stem}.json"
    write_atomic(json_path, (json.dumps(doc, indent=2, default=_json_default) + "\n").encode(), overwrite=True)
    write_atomic(out / f"{stem}.md", md.encode(), overwrite=True)
    return {"markdown": md, "json_path": str(json_path), "results": results}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
