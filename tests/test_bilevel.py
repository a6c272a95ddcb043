"""The bilevel context coder: exact round trips of any size, encoder = decoder model,
damaged payloads are errors, the CLI keeps binary PNGs binary, and text beats PNG."""
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageFont

from vlaecodec import anysize, bilevel
from vlaecodec.container import ContainerError
from vlaecodec.cli.main import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def _structured(h, w, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((h, w), np.uint8)
    for _ in range(4):   # boxes and lines
        a, b = sorted(rng.integers(0, h, 2))
        c, d = sorted(rng.integers(0, w, 2))
        x[a:b + 1, c] = x[a:b + 1, d] = 1
        x[a, c:d + 1] = x[b, c:d + 1] = 1
    x[rng.random((h, w)) < 0.02] ^= 1
    return x


SHAPES = [(1, 1), (1, 9), (9, 1), (1, 100), (100, 1), (2, 3), (5, 4), (17, 31), (100, 70)]


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_every_shape(shape):
    rng = np.random.default_rng(sum(shape))
    images = [np.zeros(shape, np.uint8), np.ones(shape, np.uint8),
              (rng.random(shape) < 0.5).astype(np.uint8), (rng.random(shape) < 0.03).astype(np.uint8),
              _structured(*shape, seed=shape[0])]
    for x in images:
        payload = bilevel.encode(x)
        y = bilevel.decode(payload, *shape)
        assert y.dtype == np.uint8 and y.shape == shape
        assert np.array_equal(x, y)


def test_blank_and_random_cost_what_they_should():
    blank = bilevel.encode(np.zeros((100, 70), np.uint8))
    noise = bilevel.encode((np.random.default_rng(3).random((100, 70)) < 0.5).astype(np.uint8))
    assert len(blank) < 40                        # a few words
    assert 7000 / 8 < len(noise) < 7000 / 8 * 1.25  # random bits: about a bit each, plus learning


def test_encoder_and_decoder_compute_the_same_frequencies():
    x = _structured(90, 67, seed=5)
    f1, xs, bounds = bilevel.forward(x)
    trace = []
    assert np.array_equal(bilevel.decode(bilevel.encode(x), 90, 67, trace=trace), x)
    assert len(trace) == len(bounds) - 1 == bilevel.steps(90, 67)
    assert np.array_equal(np.concatenate(trace), f1)
    assert f1.min() >= 1 and f1.max() < 1 << bilevel.PREC
    # the steps' contexts equal the ones computed for the whole image at once
    cv = bilevel._Canvas(90, 67, bilevel.TEMPLATE, bilevel.HORIZON)
    cv.view()[:] = x
    whole = bilevel.contexts(x)
    for t, base in enumerate(cv.steps()):
        i, j = bilevel.step_pixels(t, 90, 67)
        assert np.array_equal(cv.contexts(base), whole[i, j])
        assert np.array_equal(cv.img[base], x[i, j])
    assert whole.shape == (90, 67, -(-len(bilevel.TEMPLATE) // 64)) and whole.dtype == np.uint64


def test_template_is_causal_in_wavefront_order():
    h = bilevel.HORIZON
    assert len(set(bilevel.TEMPLATE)) == len(bilevel.TEMPLATE)
    assert all((h + 1) * dy + dx < 0 for dy, dx in bilevel.TEMPLATE)
    with pytest.raises(ValueError):
        bilevel._Model(template=((0, 1),), levels=(1,), strength=())


def test_bad_input_is_refused():
    for bad in (np.zeros((0, 3), np.uint8), np.zeros(5, np.uint8), np.full((2, 2), 2, np.uint8),
                np.zeros((2, 2), np.float32)):
        with pytest.raises(ValueError):
            bilevel.encode(bad)


def test_damaged_payloads_raise_the_container_error():
    x = _structured(40, 30, seed=2)
    blob, records = anysize.compress([x], ["1"], coders=["context"])
    assert records[0].coder == anysize.CODER_CONTEXT
    assert np.array_equal(anysize.decompress(blob)[0][0], x)
    payload_at = len(blob) - len(records[0].payload)
    rng = np.random.default_rng(0)
    positions = sorted(set(rng.integers(payload_at, len(blob), 40).tolist()) | {payload_at, len(blob) - 1})
    for pos in positions:
        bad = bytearray(blob)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out, _ = anysize.decompress(bytes(bad))
        except anysize.AnySizeError:
            continue
        assert np.array_equal(out[0], x)          # a flip that changes nothing decoded is fine
    with pytest.raises(bilevel.BilevelError):
        bilevel.decode(b"\x00\x01\x02", 4, 4)
    with pytest.raises(bilevel.BilevelError):
        bilevel.decode(bilevel.encode(x) + b"\x07\x00\x00\x00", 40, 30)   # a word too many
    with pytest.raises(ContainerError):      # truncated: the container's reader says so
        anysize.decompress(blob[:-4])


def _text(h=160, w=220):
    from binary_docs import _font
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    f = _font("serif", 13)
    for k in range(9):
        d.text((6, 4 + 17 * k), "the quick brown fox jumps over a lazy dog"[k:] + " 0123", font=f, fill=0)
    return (np.asarray(im) < 128).astype(np.uint8)


def test_text_page_beats_png_and_webp():
    x = _text()
    blob, records = anysize.compress([x], ["1"])
    r = records[0]
    assert r.coder == anysize.CODER_CONTEXT, r.tried
    assert r.tried["context model (binary)"] < 0.8 * min(r.tried["PNG"], r.tried["WebP lossless"])
    assert np.array_equal(anysize.decompress(blob)[0][0], x)


@pytest.mark.parametrize("pil_mode", ["1", "L"])
def test_cli_round_trip_keeps_the_png_mode(tmp_path, pil_mode):
    x = _text(120, 150)
    src, vlae, out = tmp_path / "page.png", tmp_path / "page.vlae", tmp_path / "back.png"
    im = Image.fromarray(x == 0)
    (im if pil_mode == "1" else im.convert("L")).save(src)
    r = CliRunner().invoke(cli, ["compress", str(src), "-o", str(vlae)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "context model (binary)" in r.output
    parsed = anysize.parse(vlae.read_bytes())
    assert parsed.records[0].coder == anysize.CODER_CONTEXT
    assert parsed.records[0].mode == ("1" if pil_mode == "1" else "L-binary")
    r = CliRunner().invoke(cli, ["info", str(vlae)], catch_exceptions=False)
    assert r.exit_code == 0 and "coder context model (binary)" in r.output, r.output
    r = CliRunner().invoke(cli, ["decompress", str(vlae), "-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with Image.open(out) as a, Image.open(src) as b:
        assert a.mode == b.mode == pil_mode
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_generator_is_deterministic():
    from binary_docs import qr_like
    a = qr_like(np.random.default_rng(4), 21, 2)
    b = qr_like(np.random.default_rng(4), 21, 2)
    assert np.array_equal(a, b) and set(np.unique(a)) <= {0, 1}
    buf = io.BytesIO()
    Image.fromarray(a == 0).save(buf, format="PNG")
    assert Image.open(buf).mode == "1"
