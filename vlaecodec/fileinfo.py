"""What ``vlaecodec info`` says about a .vlae file: its header in words, and (after
decoding) how close the file came to the model's -ELBO on the same images."""
from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from .container import Header, unpack

if TYPE_CHECKING:
    from .zoo import LoadedModel

# torch is the [train] extra: coding never needs it, the float model's -ELBO does.
TRAIN_EXTRA = "pip install 'vlaecodec[train]'"


def have_torch() -> bool:
    """Whether torch can be imported, without importing it."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def header_lines(data: bytes, loaded: LoadedModel | None = None) -> tuple[Header, list[str]]:
    """(header, lines): model, image count and size, bytes, real bits/dim, lossy or not.
    Reads the header only (a damaged file raises the container's error). ``loaded``: the
    model given with --model, which must be the file's (else a ``ModelError``)."""
    from . import zoo
    from .codec import resolve_model

    h = unpack(data)[0]
    if loaded is not None:
        resolve_model(h, loaded)   # the file's model, or an error saying whose file it is
    name = h.model_name or zoo.name_for_hash(h.model_hash) or (loaded and loaded.name) or "(not installed)"
    dims = h.count * h.height * h.width
    lines = [f"model: {name} (sha256 {h.model_hash}...)",
             f"images: {h.count}",
             f"image size: {h.width}x{h.height} pixels",
             f"pixels: {zoo.kind(h.levels)}",
             f"file size: {len(data)} bytes ({len(data) / h.count:.2f} bytes/image)",
             f"real rate: {8 * len(data) / dims:.4f} bits/dim"]
    if h.lossy_level:
        from .lossy import draw_name
        lines.append(f"lossy: yes, rate level {h.lossy_level}; decompression draws {draw_name(h.lossy_draw)} "
                     "from the stored latents (the images differ from the originals)")
    else:
        lines.append("lossy: no (decompression gives back every pixel)")
    if h.particles > 1:
        lines.append(f"bits-back: Monte Carlo, {h.particles} particles (coded at the importance-weighted bound)")
    return h, lines


def elbo_lines(data: bytes, h: Header, progress: Callable[[int], None] | None = None,
               loaded: LoadedModel | None = None) -> list[str]:
    """Decode the file (lossless only) and compare its real rate with the model's -ELBO
    (of ``loaded``, else of the installed model the header names)."""
    from . import codec, zoo
    from .evaluate import neg_elbo_bits_per_dim

    loaded = loaded or zoo.find_by_hash(h.model_hash, h.model_name)
    archive = codec.decompress(data, loaded, progress=progress)
    bpd = neg_elbo_bits_per_dim(loaded, np.stack(archive.images))
    real = 8 * len(data) / (h.count * h.height * h.width)
    return [f"model -ELBO: {bpd:.4f} bits/dim",
            f"real / -ELBO: {real / bpd:.4f}" if bpd > 0 else "real / -ELBO: n/a"]


def anysize_elbo_lines(data: bytes) -> Iterator[str]:
    """Each image's real rate beside the installed photo model's float -ELBO (the bound
    its bits-back coding tracks): for a model record the gap is the coder's overhead
    (start-up rows, rANS lanes, integer arithmetic); for a PNG/WebP record it shows
    what the model would have cost."""
    from . import anysize
    from .photo_bench import _float_elbo_bits
    parsed = anysize.parse(data)
    for i, (r, c) in enumerate(zip(parsed.records, parsed.crcs)):
        px = anysize.decode_record(r, c)
        if r.mode in anysize.BINARY:
            continue
        # the record's own model; for a PNG/WebP record, the current model of its kind
        bits = _float_elbo_bits(px, r.model.name if r.model is not None else None)
        label = r.name or f"image {i}"
        if bits is None:
            yield f"{label}: no photo model with a float checkpoint for {r.mode} images: -ELBO not measured"
            continue
        real = 8 * len(r.payload) / px.size
        yield (f"{label}: real {real:.4f} bits/sub-pixel ({r.coder_name}), photo model -ELBO "
               f"{bits / px.size:.4f} ({real / (bits / px.size):.4f}x)")


def report(data: bytes, *, where: str = "<data>", elbo: bool = True, quiet: bool = False,
           model: str | None = None) -> Iterator[str]:
    """Every line ``vlaecodec info`` prints, the header's first (before any decoding),
    then for a lossless file with ``elbo`` the -ELBO comparison (a progress bar on a
    terminal meanwhile, unless ``quiet``), or without torch a line saying it was skipped.
    Errors name the file ``where``. ``model``: a model name or file to use when the
    file's model is not installed; a model file without a float checkpoint (a bare .npz)
    has no -ELBO, which is then skipped with a note."""
    from .fileio import naming
    from .progress import bar

    from .zoo import load_model

    from .anysize import describe, is_anysize
    if is_anysize(data):   # images of any size: one line per image (its coder, bytes, bits/sub-pixel)
        with naming(where):
            yield from describe(data)
            if elbo and not have_torch():
                yield f"photo model -ELBO: skipped (needs torch, the [train] extra: {TRAIN_EXTRA})"
            elif elbo:
                yield from anysize_elbo_lines(data)
        return
    loaded = load_model(model) if model else None
    with naming(where):
        h, lines = header_lines(data, loaded)
    yield from lines
    if elbo and not h.lossy_level and not have_torch():
        yield f"model -ELBO: skipped (needs torch, the [train] extra: {TRAIN_EXTRA})"
    elif elbo and not h.lossy_level and loaded is not None and not loaded.manifest.get("float_file"):
        yield f"model -ELBO: skipped (model {loaded.name} has no float checkpoint to evaluate)"
    elif elbo and not h.lossy_level:
        with naming(where), bar("decoding", h.count, quiet=quiet) as cb:
            lines = elbo_lines(data, h, cb, loaded)
        yield from lines
