"""The any-size container: images of any size and kind, each coded with the smallest of
the installed photo models, PNG and WebP lossless; damage is an error, never a wrong image."""
import hashlib
import io
import json

import numpy as np
import pytest

from vlaecodec import anysize, zoo
from vlaecodec.container import ContainerError


def _photo_model_dir(tmp_path, channels):
    torch = pytest.importorskip("torch")
    from vlaecodec.photo_freeze import to_integer
    from vlaecodec.photo_vlae import PHOTO_PRESETS, PhotoVLAE
    torch.manual_seed(7)
    name = "photo-tiny-rgb" if channels == 3 else "photo-tiny-gray"
    arrays = to_integer(PhotoVLAE(PHOTO_PRESETS[name]).eval(), name=name)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    raw = buf.getvalue()
    digest = hashlib.sha256(raw).hexdigest()
    (tmp_path / f"{name}.npz").write_bytes(raw)
    (tmp_path / f"{name}.json").write_text(json.dumps({
        "name": name, "file": f"{name}.npz", "sha256": digest, "architecture": "photo-vlae",
        "mode": "RGB" if channels == 3 else "L"}))
    return name


@pytest.fixture
def photo_models(tmp_path, monkeypatch):
    monkeypatch.setenv("VLAECODEC_MODELS", str(tmp_path))
    anysize._PHOTO_CACHE.clear()
    names = [_photo_model_dir(tmp_path, 3), _photo_model_dir(tmp_path, 1)]
    yield names
    anysize._PHOTO_CACHE.clear()


def _images():
    rng = np.random.default_rng(11)
    smooth = np.add.outer(np.arange(40), np.arange(33)).astype(np.uint8)
    return [smooth, np.stack([smooth, smooth // 2, 255 - smooth], 2), rng.integers(0, 256, (7, 5, 3)).astype(np.uint8),
            np.zeros((1, 1), np.uint8), (rng.random((9, 30)) < 0.3).astype(np.uint8)]


MODES = ["L", "RGB", "RGB", "L", "1"]


def test_classical_round_trip_every_kind():
    imgs = _images()
    blob, records = anysize.compress(imgs, MODES, names=[f"i{k}" for k in range(5)], coders=["png", "webp"])
    out, recs = anysize.decompress(blob)
    for a, b in zip(imgs, out):
        assert np.array_equal(a, b)
    assert [r.name for r in recs] == [f"i{k}" for k in range(5)]
    for r in records:   # the smaller of the two was kept
        assert len(r.payload) == min(r.tried.values())


def test_photo_models_take_part_and_decode(photo_models):
    imgs = _images()[:3]
    blob, records = anysize.compress(imgs, MODES[:3])
    assert all(set(r.tried) >= {"PNG", "WebP lossless"} for r in records)
    # each model was coded, or skipped because its estimate was far above PNG/WebP
    for r, name in zip(records[:2], ["photo-tiny-gray", "photo-tiny-rgb"]):
        assert name in r.estimates
        assert (name in r.tried) == (r.estimates[name] <= anysize.SKIP_MARGIN * min(r.tried.values()))
    out, _ = anysize.decompress(blob)
    for a, b in zip(imgs, out):
        assert np.array_equal(a, b)
    # forced to the model: decodes too
    blob, records = anysize.compress(imgs[1:2], ["RGB"], coders=["photo-tiny-rgb"])
    assert records[0].coder == anysize.CODER_MODEL
    assert np.array_equal(anysize.decompress(blob)[0][0], imgs[1])
    assert "coder photo-tiny-rgb" in anysize.describe(blob)[0]


def test_model_estimate_tracks_its_coded_size(photo_models, monkeypatch):
    """The estimate that decides whether a model is tried is near the real size (an
    eighth of the rows, scaled), and with the margin lifted the model is always coded."""
    monkeypatch.setattr(anysize, "SKIP_MARGIN", 1e9)
    rng = np.random.default_rng(4)
    smooth = np.cumsum(rng.integers(-2, 3, size=(130, 90, 3)), axis=1) + 128
    img = np.clip(smooth, 0, 255).astype(np.uint8)
    blob, records = anysize.compress([img], ["RGB"])
    r = records[0]
    assert "photo-tiny-rgb" in r.tried
    assert 0.8 < r.estimates["photo-tiny-rgb"] / r.tried["photo-tiny-rgb"] < 1.25


def test_every_damaged_byte_is_an_error_or_the_same_pixels():
    imgs = _images()[:2]
    blob, _ = anysize.compress(imgs, MODES[:2], coders=["png"])
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x21
        try:
            out, _ = anysize.decompress(bytes(bad))
        except (ContainerError, zoo.ModelError):   # (AnySizeError is a ContainerError)
            continue
        assert all(np.array_equal(a, b) for a, b in zip(imgs, out))   # a byte no decoder reads


def test_truncation_and_limits():
    blob, _ = anysize.compress([np.zeros((3, 3), np.uint8)], ["L"], coders=["png"])
    for n in range(len(blob)):
        with pytest.raises(ContainerError):
            anysize.decompress(blob[:n])
    with pytest.raises(ContainerError):
        anysize.decompress(blob + b"\0")
    # a header claiming a huge image is refused before anything is allocated
    head = anysize.MAGIC + bytes([1, 0]) + anysize._varint(1)
    import struct
    import zlib
    rec = bytes([anysize.CODER_PNG, 0]) + anysize._varint(1 << 16) + anysize._varint(1 << 16) + anysize._varint(0)
    with pytest.raises(anysize.AnySizeError, match="limit"):
        anysize.parse(head + struct.pack("<I", zlib.crc32(head)) + rec + b"\0" * 4)


def test_webp_method_6_only_for_graphics():
    """Low-entropy images (graphics) get the smaller of WebP methods 5 and 6; noisy,
    photo-like ones only method 5 (method 6 would cost ~50 s per megapixel there)."""
    from PIL import Image, ImageDraw
    im = Image.new("RGB", (160, 120), "white")
    d = ImageDraw.Draw(im)
    for k in range(6):
        d.pieslice([10, 10, 110, 110], 60 * k, 60 * k + 50, fill=(40 * k, 200 - 30 * k, 90))
    graphic = np.asarray(im)
    r = anysize.choose(graphic, "RGB", coders=["png", "webp"])
    best = min(len(anysize._webp_bytes(graphic, "RGB", m)) for m in (5, 6))
    assert r.tried["WebP lossless"] == best
    noisy = np.random.default_rng(1).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    r = anysize.choose(noisy, "RGB", coders=["png", "webp"])
    assert r.tried["WebP lossless"] == len(anysize._webp_bytes(noisy, "RGB", 5))
