"""The RGB context-mixing coder (vlaecodec/colorlevel.py): exact round trips of any size,
encoder = decoder model, damaged payloads are errors, the same bytes under other numpy
code paths, and the any-size container picks it for RGB graphics."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from vlaecodec import anysize, colorlevel
from vlaecodec.container import ContainerError


def _graphic(h, w, seed=0):
    """A small RGB graphic: flat coloured boxes, a gray gradient band, a line and
    anti-aliased text."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (w, h), (250, 250, 246))
    d = ImageDraw.Draw(im)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, max(1, w - 8))), int(rng.integers(0, max(1, h - 8)))
        d.rectangle([x0, y0, x0 + int(rng.integers(4, 40)), y0 + int(rng.integers(4, 30))],
                    fill=tuple(int(v) for v in rng.integers(40, 220, 3)),
                    outline=tuple(int(v) for v in rng.integers(0, 120, 3)))
    d.line([(0, h - 1), (w - 1, 0)], fill=(30, 60, 200), width=2)
    d.text((3, 2), "RGB 0123 ab", fill=(200, 20, 10), font=ImageFont.load_default())
    a = np.asarray(im).astype(np.int64)
    band = slice(h // 2, h // 2 + max(1, h // 5))
    a[band] = (np.arange(w) * 200 // max(1, w - 1) + 20)[None, :, None]
    return a.astype(np.uint8)


def _wallpaper(h, w, seed=0):
    """A small vector wallpaper: a diagonal two-colour gradient, flat triangles, a label."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    t = (xx + yy) / (h + w)
    c0, c1 = rng.integers(20, 235, 3), rng.integers(20, 235, 3)
    a = np.rint(c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]).astype(np.uint8)
    im = Image.fromarray(a)
    d = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        d.polygon([(x0, y0), (x0 + 30, y0 + 5), (x0 + 10, y0 + 25)],
                  fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    d.text((4, 4), "RGB 0123", fill=(250, 250, 250), font=ImageFont.load_default(size=11))
    return np.asarray(im)


SHAPES = [(1, 1), (1, 9), (9, 1), (1, 20), (20, 1), (2, 3), (5, 4), (13, 17)]


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_every_shape(shape):
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    s3 = shape + (3,)
    spikes = np.zeros(s3, np.uint8)
    spikes[rng.random(s3) < 0.2] = 255                             # P = 0 or 255: forced signs
    grad = np.add.outer(np.arange(h) * 7, np.arange(w) * 3)
    images = [np.zeros(s3, np.uint8), np.full(s3, 255, np.uint8), np.full(s3, (10, 128, 250), np.uint8),
              rng.integers(0, 256, s3).astype(np.uint8), spikes,
              (np.stack([grad, grad + 40, 2 * grad], 2) % 256).astype(np.uint8),
              _graphic(h, w, seed=h)]
    for x in images:
        y = colorlevel.decode(colorlevel.encode(x), h, w)
        assert y.dtype == np.uint8 and y.shape == s3
        assert np.array_equal(x, y)


def test_flat_and_noise_cost_what_they_should():
    flat = colorlevel.encode(np.full((40, 30, 3), (77, 12, 200), np.uint8))
    noise = colorlevel.encode(np.random.default_rng(3).integers(0, 256, (40, 30, 3)).astype(np.uint8))
    assert len(flat) < 80                                    # a few words
    assert 3600 < len(noise) < 3600 * 1.15                   # random bytes: 8 bits each, plus learning


def test_channels_that_move_together_cost_little_more_than_one():
    """A gray picture stored as RGB costs well under twice its G channel alone (the later
    channels are predicted from the earlier ones); three unrelated channels cost about
    three times as much."""
    g = _graphic(40, 60, seed=4)[..., 1]
    z = np.zeros_like(g)
    one = colorlevel.code_length(np.stack([g, z, z], 2))
    assert colorlevel.code_length(np.repeat(g[..., None], 3, 2)) < 1.6 * one
    assert colorlevel.code_length(np.stack([g, g[::-1], g[:, ::-1]], 2)) > 2.5 * one


def test_encoder_and_decoder_compute_the_same_probabilities():
    x = _graphic(21, 27, seed=5)
    starts, freqs, bounds = colorlevel.forward(x)
    trace = []
    assert np.array_equal(colorlevel.decode(colorlevel.encode(x), 21, 27, trace=trace), x)
    assert len(trace) == len(bounds) - 1
    assert np.array_equal(np.concatenate([c for c, _ in trace]), starts)
    assert np.array_equal(np.concatenate([f for _, f in trace]), freqs)
    assert freqs.min() >= 1 and (starts.astype(np.int64) + freqs).max() <= 1 << colorlevel.PREC
    assert x.size <= len(freqs)                                      # a symbol or more a sub-pixel
    ideal = colorlevel.code_length(x) / 8
    assert ideal < len(colorlevel.encode(x)) < ideal + 8 * 64 + 16   # lanes' overhead only


def test_bad_input_is_refused():
    for bad in (np.zeros((0, 3, 3), np.uint8), np.zeros((4, 5), np.uint8), np.zeros((2, 2, 4), np.uint8),
                np.full((2, 2, 3), 256), np.full((2, 2, 3), -1), np.zeros((2, 2, 3), np.float32)):
        with pytest.raises(ValueError):
            colorlevel.encode(bad)


def test_damaged_payloads_raise_the_container_error():
    x = _graphic(16, 22, seed=2)
    blob, records = anysize.compress([x], ["RGB"], coders=["context"])
    assert records[0].coder == anysize.CODER_RGBCTX
    assert records[0].coder_name == "context model (RGB)"
    assert np.array_equal(anysize.decompress(blob)[0][0], x)
    payload_at = len(blob) - len(records[0].payload)
    rng = np.random.default_rng(0)
    positions = sorted(set(rng.integers(payload_at, len(blob), 6).tolist()) | {payload_at, len(blob) - 1})
    for pos in positions:
        bad = bytearray(blob)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out, _ = anysize.decompress(bytes(bad))
        except anysize.AnySizeError as e:
            assert "\n" not in str(e)
            continue
        assert np.array_equal(out[0], x)          # a flip that changes nothing decoded is fine
    with pytest.raises(colorlevel.ColorlevelError):
        colorlevel.decode(b"\x00\x01\x02", 4, 4)
    with pytest.raises(colorlevel.ColorlevelError):
        colorlevel.decode(b"\x01" + colorlevel.encode(x)[1:], 16, 22)        # unknown variant
    with pytest.raises(colorlevel.ColorlevelError):
        colorlevel.decode(colorlevel.encode(x) + b"\x07\x00\x00\x00", 16, 22)   # a word too many
    with pytest.raises(ContainerError):       # truncated: the container's reader says so
        anysize.decompress(blob[:-4])


def test_an_rgb_context_record_must_hold_an_rgb_image():
    x = _graphic(12, 10)
    blob, records = anysize.compress([x], ["RGB"], coders=["context"])
    r = records[0]
    gray = anysize.Record(anysize.CODER_RGBCTX, "L", r.height, r.width, r.payload)
    bad = anysize.pack([gray], [x[..., 1]])
    with pytest.raises(anysize.AnySizeError, match="RGB context-model record"):
        anysize.parse(bad)


def test_any_size_picks_it_for_rgb_graphics_and_photos_skip_it():
    x = _wallpaper(60, 80, seed=1)
    blob, records = anysize.compress([x], ["RGB"])
    r = records[0]
    assert r.coder == anysize.CODER_RGBCTX, r.tried
    assert r.tried["context model (RGB)"] < min(r.tried["PNG"], r.tried["WebP lossless"])
    assert np.array_equal(anysize.decompress(blob)[0][0], x)
    assert "coder context model (RGB)" in anysize.describe(blob)[0]
    noise = np.random.default_rng(1).integers(0, 256, (30, 40, 3)).astype(np.uint8)   # over the gate
    r = anysize.choose(noise, "RGB")
    assert "context model (RGB)" not in r.tried and r.coder != anysize.CODER_RGBCTX


def test_big_rgb_images_skip_it_unless_forced(monkeypatch):
    """Over RGB_CONTEXT_MAX_PIXELS the (slow, memory-hungry) coder is not tried by
    default, however well it would do; --coder context still reaches it."""
    x = _wallpaper(60, 80, seed=1)
    monkeypatch.setattr(anysize, "RGB_CONTEXT_MAX_PIXELS", 60 * 80 - 1)
    r = anysize.choose(x, "RGB")
    assert "context model (RGB)" not in r.tried and r.coder != anysize.CODER_RGBCTX
    assert anysize.choose(x, "RGB", coders=["context"]).coder == anysize.CODER_RGBCTX


def test_cli_round_trip_with_the_context_coder(tmp_path):
    from click.testing import CliRunner

    from vlaecodec.cli.main import cli
    x = _graphic(30, 40, seed=3)
    src, vlae, out = tmp_path / "g.png", tmp_path / "g.vlae", tmp_path / "back.png"
    Image.fromarray(x).save(src)
    r = CliRunner().invoke(cli, ["compress", str(src), "-o", str(vlae), "--coder", "context"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert anysize.parse(vlae.read_bytes()).records[0].coder == anysize.CODER_RGBCTX
    r = CliRunner().invoke(cli, ["decompress", str(vlae), "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with Image.open(out) as a:
        assert a.mode == "RGB" and np.array_equal(np.asarray(a), x)


CHILD = r"""
import hashlib, json, sys
import numpy as np
sys.modules["torch"] = None                     # the coding path must not need torch
from vlaecodec import colorlevel
x = np.load(sys.argv[1])
payload = colorlevel.encode(x)
back = colorlevel.decode(open(sys.argv[2], "rb").read(), *x.shape[:2])
print(json.dumps({"payload": hashlib.sha256(payload).hexdigest(), "decoded": bool(np.array_equal(back, x))}))
"""
AVX512_OFF = "X86_V4 AVX512_ICL AVX512_SPR"   # as tests/test_photo_exactness.py
SETTINGS = {"openblas-prescott": {"OPENBLAS_CORETYPE": "Prescott"},
            "numpy-no-avx2-avx512": {"NPY_DISABLE_CPU_FEATURES": "X86_V3 " + AVX512_OFF}}


def test_same_bytes_under_other_numpy_code_paths(tmp_path):
    x = _graphic(25, 31, seed=9)
    np.save(tmp_path / "x.npy", x)
    payload = colorlevel.encode(x)
    (tmp_path / "p.bin").write_bytes(payload)
    want = {"payload": hashlib.sha256(payload).hexdigest(), "decoded": True}
    for name, changes in SETTINGS.items():
        env = dict(os.environ, **changes)
        r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "x.npy"), str(tmp_path / "p.bin")],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{name}: {r.stderr[-500:]}"
        assert json.loads(r.stdout.strip().splitlines()[-1]) == want, name
