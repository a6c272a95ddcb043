"""The gray context-mixing coder (vlaecodec/graylevel.py): exact round trips of any size,
encoder = decoder model, damaged payloads are errors, the same bytes under other numpy
code paths, and the any-size container picks it for gray graphics."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from vlaecodec import anysize, graylevel
from vlaecodec.container import ContainerError


def _graphic(h, w, seed=0):
    """A small gray graphic: a gradient band, flat boxes, lines and anti-aliased text."""
    rng = np.random.default_rng(seed)
    im = Image.new("L", (w, h), 245)
    d = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, max(1, w - 8))), int(rng.integers(0, max(1, h - 8)))
        d.rectangle([x0, y0, x0 + int(rng.integers(4, 40)), y0 + int(rng.integers(4, 30))],
                    fill=int(rng.integers(40, 220)), outline=int(rng.integers(0, 120)))
    d.line([(0, h - 1), (w - 1, 0)], fill=30, width=2)
    d.text((3, 2), "Gray 0123 ab", fill=10, font=ImageFont.load_default())
    a = np.asarray(im).astype(np.int64)
    band = slice(h // 2, h // 2 + max(1, h // 5))
    a[band] = (np.arange(w) * 200 // max(1, w - 1) + 20)[None, :]
    return a.astype(np.uint8)


SHAPES = [(1, 1), (1, 9), (9, 1), (1, 40), (40, 1), (2, 3), (5, 4), (17, 31), (33, 20)]


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_every_shape(shape):
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    spikes = np.zeros(shape, np.uint8)
    spikes[rng.random(shape) < 0.2] = 255                          # P = 0 or 255: forced signs
    images = [np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8), np.full(shape, 128, np.uint8),
              rng.integers(0, 256, shape).astype(np.uint8), spikes,
              (np.add.outer(np.arange(h) * 7, np.arange(w) * 3) % 256).astype(np.uint8),
              _graphic(h, w, seed=h)]
    for x in images:
        payload = graylevel.encode(x)
        y = graylevel.decode(payload, h, w)
        assert y.dtype == np.uint8 and y.shape == shape
        assert np.array_equal(x, y)


def test_flat_and_noise_cost_what_they_should():
    flat = graylevel.encode(np.full((60, 50), 77, np.uint8))
    noise = graylevel.encode(np.random.default_rng(3).integers(0, 256, (60, 50)).astype(np.uint8))
    assert len(flat) < 60                                    # a few words
    assert 3000 < len(noise) < 3000 * 1.12                   # random bytes: 8 bits each, plus learning


def test_encoder_and_decoder_compute_the_same_probabilities():
    x = _graphic(41, 57, seed=5)
    starts, freqs, bounds = graylevel.forward(x)
    trace = []
    assert np.array_equal(graylevel.decode(graylevel.encode(x), 41, 57, trace=trace), x)
    assert len(trace) == len(bounds) - 1 <= 3 * graylevel.steps(41, 57, graylevel.HORIZON)
    assert np.array_equal(np.concatenate([c for c, _ in trace]), starts)
    assert np.array_equal(np.concatenate([f for _, f in trace]), freqs)
    assert freqs.min() >= 1 and (starts.astype(np.int64) + freqs).max() <= 1 << graylevel.PREC
    assert x.size <= len(freqs) <= 3 * x.size                        # one to three symbols a pixel
    ideal = graylevel.code_length(x) / 8
    assert ideal < len(graylevel.encode(x)) < ideal + 8 * 64 + 16     # lanes' overhead only


def test_bad_input_is_refused():
    for bad in (np.zeros((0, 3), np.uint8), np.zeros(5, np.uint8), np.full((2, 2), 256),
                np.full((2, 2), -1), np.zeros((2, 2), np.float32)):
        with pytest.raises(ValueError):
            graylevel.encode(bad)


def test_damaged_payloads_raise_the_container_error():
    x = _graphic(30, 40, seed=2)
    blob, records = anysize.compress([x], ["L"], coders=["context"])
    assert records[0].coder == anysize.CODER_GRAYCTX
    assert records[0].coder_name == "context model (gray)"
    assert np.array_equal(anysize.decompress(blob)[0][0], x)
    payload_at = len(blob) - len(records[0].payload)
    rng = np.random.default_rng(0)
    positions = sorted(set(rng.integers(payload_at, len(blob), 16).tolist()) | {payload_at, len(blob) - 1})
    for pos in positions:
        bad = bytearray(blob)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out, _ = anysize.decompress(bytes(bad))
        except anysize.AnySizeError:
            continue
        assert np.array_equal(out[0], x)          # a flip that changes nothing decoded is fine
    with pytest.raises(graylevel.GraylevelError):
        graylevel.decode(b"\x00\x01\x02", 4, 4)
    with pytest.raises(graylevel.GraylevelError):
        graylevel.decode(b"\x01" + graylevel.encode(x)[1:], 30, 40)        # unknown variant
    with pytest.raises(graylevel.GraylevelError):
        graylevel.decode(graylevel.encode(x) + b"\x07\x00\x00\x00", 30, 40)   # a word too many
    with pytest.raises(ContainerError):       # truncated: the container's reader says so
        anysize.decompress(blob[:-4])


def test_a_gray_context_record_must_hold_a_gray_image():
    x = _graphic(12, 10)
    blob, records = anysize.compress([x], ["L"], coders=["context"])
    r = records[0]
    rgb = anysize.Record(anysize.CODER_GRAYCTX, "RGB", r.height, r.width, r.payload)
    bad = anysize.pack([rgb], [np.repeat(x[..., None], 3, 2)])
    with pytest.raises(anysize.AnySizeError, match="gray context-model record"):
        anysize.parse(bad)


def test_any_size_picks_it_for_gray_graphics_and_photos_skip_it():
    x = _graphic(120, 160, seed=1)
    blob, records = anysize.compress([x], ["L"])
    r = records[0]
    assert r.coder == anysize.CODER_GRAYCTX, r.tried
    assert r.tried["context model (gray)"] < min(r.tried["PNG"], r.tried["WebP lossless"])
    assert np.array_equal(anysize.decompress(blob)[0][0], x)
    assert "coder context model (gray)" in anysize.describe(blob)[0]
    noise = np.random.default_rng(1).integers(0, 256, (40, 50)).astype(np.uint8)   # over GRAPHICS_BITS
    r = anysize.choose(noise, "L")
    assert "context model (gray)" not in r.tried and r.coder != anysize.CODER_GRAYCTX


def test_dithered_gradients_get_it_too():
    """A smooth gradient with random dither is over GRAPHICS_BITS at WebP (no WebP method
    6) but under GRAY_CONTEXT_BITS: the context model is tried, and is well ahead."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:96, 0:128]
    f = 60 + 84 * xx / 128 + 50 * np.sin(yy / 20.0 + xx / 45.0)
    x = np.clip(np.floor(f + rng.random(f.shape)), 0, 255).astype(np.uint8)
    r = anysize.choose(x, "L")
    assert anysize.GRAPHICS_BITS < 8 * r.tried["WebP lossless"] / x.size < anysize.GRAY_CONTEXT_BITS
    assert r.coder == anysize.CODER_GRAYCTX
    assert r.tried["context model (gray)"] < 0.9 * r.tried["WebP lossless"]


def test_cli_round_trip_with_the_context_coder(tmp_path):
    from click.testing import CliRunner

    from vlaecodec.cli.main import cli
    x = _graphic(50, 70, seed=3)
    src, vlae, out = tmp_path / "g.png", tmp_path / "g.vlae", tmp_path / "back.png"
    Image.fromarray(x).save(src)
    r = CliRunner().invoke(cli, ["compress", str(src), "-o", str(vlae), "--coder", "context"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert anysize.parse(vlae.read_bytes()).records[0].coder == anysize.CODER_GRAYCTX
    r = CliRunner().invoke(cli, ["decompress", str(vlae), "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with Image.open(out) as a:
        assert a.mode == "L" and np.array_equal(np.asarray(a), x)


CHILD = r"""
import hashlib, json, sys
import numpy as np
sys.modules["torch"] = None                     # the coding path must not need torch
from vlaecodec import graylevel
x = np.load(sys.argv[1])
payload = graylevel.encode(x)
back = graylevel.decode(open(sys.argv[2], "rb").read(), *x.shape)
print(json.dumps({"payload": hashlib.sha256(payload).hexdigest(), "decoded": bool(np.array_equal(back, x))}))
"""
AVX512_OFF = "X86_V4 AVX512_ICL AVX512_SPR"   # as tests/test_photo_exactness.py
SETTINGS = {"openblas-prescott": {"OPENBLAS_CORETYPE": "Prescott"},
            "numpy-no-avx2-avx512": {"NPY_DISABLE_CPU_FEATURES": "X86_V3 " + AVX512_OFF}}


def test_same_bytes_under_other_numpy_code_paths(tmp_path):
    import hashlib
    x = _graphic(37, 45, seed=9)
    np.save(tmp_path / "x.npy", x)
    payload = graylevel.encode(x)
    (tmp_path / "p.bin").write_bytes(payload)
    want = {"payload": hashlib.sha256(payload).hexdigest(), "decoded": True}
    for name, changes in SETTINGS.items():
        env = dict(os.environ, **changes)
        r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "x.npy"), str(tmp_path / "p.bin")],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{name}: {r.stderr[-500:]}"
        assert json.loads(r.stdout.strip().splitlines()[-1]) == want, name


def test_symbol_tables_split_the_whole_range(monkeypatch):
    """Every pixel's symbol table sums to 2**PREC, and the symbol coded has frequency >= 1,
    on images that reach every phase (noise, spikes at 0 and 255, a graphic)."""
    seen = []
    table = graylevel._State.table

    def checked(self, a, grp, p1):
        F = table(self, a, grp, p1)
        assert (F >= 0).all() and (F.sum(1) == 1 << graylevel.PREC).all()
        seen.append(len(grp[2]))
        return F

    monkeypatch.setattr(graylevel._State, "table", checked)
    rng = np.random.default_rng(11)
    spikes = np.where(rng.random((20, 24)) < 0.3, 255, 0).astype(np.uint8)
    for x in (rng.integers(0, 256, (20, 24)).astype(np.uint8), spikes, _graphic(20, 24)):
        assert np.array_equal(graylevel.decode(graylevel.encode(x), *x.shape), x)
    assert sum(seen) > 0                      # mantissa symbols were coded
