"""The shipped any-size photo models: their files match their manifests, they code the
sample photo crops in samples/photos/ losslessly, and the coded size tracks the float
-ELBO (recomputed here, not read from the manifest)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlaecodec import anysize, photo_codec

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = [m for m in sorted((ROOT / "models").glob("*.json"))
             if json.loads(m.read_text()).get("architecture") == "photo-vlae"]
SAMPLES = {"RGB": ROOT / "samples/photos/ladybird-128x96.png", "L": ROOT / "samples/photos/coins-128x96-gray.png"}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_shipped_photo_model_codes_its_sample(manifest):
    m = json.loads(manifest.read_text())
    raw = (manifest.parent / m["file"]).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == m["sha256"]
    pm = next(p for p in anysize.photo_models(m["mode"]) if p.name == m["name"])
    x = np.asarray(Image.open(SAMPLES[m["mode"]]))
    x3 = x if x.ndim == 3 else x[..., None]
    words, _ = photo_codec.encode(pm.net, x3)
    assert np.array_equal(photo_codec.decode(pm.net, words, *x.shape[:2]), x3)
    real = 32 * len(words) / x.size
    assert 1.0 < real < 8.0                      # a photo model, not noise
    torch = pytest.importorskip("torch")
    from vlaecodec.photo_bench import _float_elbo_bits
    bound = _float_elbo_bits(x, m["name"]) / x.size
    # a 128x96 crop pays its rANS lanes on few pixels (measured 1.029x gray, 1.014x RGB;
    # 1.10x and more when the encoder popped latents from a nearly empty stack)
    assert bound <= real <= 1.05 * bound, (real, bound)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.stem)
def test_bits_back_never_pops_from_an_empty_stack(manifest, monkeypatch):
    """Every latent the encoder pops from q(z|x) is a real draw: a pop that ran out of bits
    reads the zero words below the stack and lands in the grid's first cell (z = -10),
    which no posterior of these models reaches (the bug this guards against made 8% of
    a photo's latents that, and cost 13% of its size)."""
    m = json.loads(manifest.read_text())
    pm = next(p for p in anysize.photo_models(m["mode"]) if p.name == m["name"])
    x = np.asarray(Image.open(SAMPLES[m["mode"]]))
    # 384x256: several groups of latent rows, the lowest popped by the encoder early on
    x3 = np.tile(np.concatenate([x, x[::-1]], axis=0), (2, 2) + (1,) * (x.ndim - 2))
    x3 = x3 if x3.ndim == 3 else x3[..., None]
    popped = []
    real_pop = photo_codec._pop_table

    def spy(stack, freqs):
        k = real_pop(stack, freqs)
        popped.append(k)
        return k
    monkeypatch.setattr(photo_codec, "_pop_table", spy)
    words, stats = photo_codec.encode(pm.net, x3)
    assert popped, "no latent row was coded by bits-back"
    assert min(int(k.min()) for k in popped) > 0
    monkeypatch.undo()
    assert np.array_equal(photo_codec.decode(pm.net, words, *x3.shape[:2]), x3)


def test_photo_models_are_shipped_for_both_kinds():
    modes = {json.loads(m.read_text())["mode"] for m in MANIFESTS}
    assert modes == {"RGB", "L"}


def test_one_current_photo_model_per_kind():
    """Retired models still decode their files, but each kind has exactly one model that
    new images are tried with (two would double the encode time)."""
    for mode in ("RGB", "L"):
        current = anysize.photo_models(mode, retired=False)
        assert len(current) == 1, [p.name for p in current]
        assert len(anysize.photo_models(mode)) >= 1
