"""Images in and out: PNG files <-> pixel arrays, for the command line and the bench.

An image's *kind* says which models can code it losslessly:

* binary (2 levels): mode ``1``, or grayscale holding only 0 and 255;
* 8-bit (256 levels): any other grayscale image (and RGB/palette images whose
  channels are all equal, which are grayscale stored wide).

Its *mode* says how it is written back (see ``container.MODES``), so decompression
gives back the file type it was given:

* ``"1"``: a bilevel PNG (mode 1);
* ``"L-binary"``: a grayscale PNG holding only 0 and 255;
* ``"L"``: an 8-bit grayscale PNG.

Pixels handed to a model are in its levels: 0/1 for a binary model, 0..255 for an
8-bit one (a binary image given to an 8-bit model is coded as 0/255 and still written
back in its own mode). Every failure is an ``ImageError`` with a one-line message.

``compress_files`` and ``decompress_file`` are ``vlaecodec compress`` and ``decompress``
without the parsing: paths in, files out, progress bars on a terminal.
"""
from __future__ import annotations

import errno
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .fileio import check_writable, naming, write_many_atomic, write_output

if TYPE_CHECKING:
    from .codec import Archive
    from .zoo import LoadedModel

BINARY_MODES = ("1", "L-binary")
# An output name with one of these suffixes names a file, never a folder to create.
IMAGE_SUFFIXES = (".png", ".pbm", ".pgm", ".pnm", ".bmp", ".gif", ".jpg", ".jpeg", ".webp",
                  ".tif", ".tiff", ".jxl", ".vlae")
# The files of an input folder that compress takes (by name; Pillow then reads them by
# content, as it reads a file given by name); the others are skipped, and reported.
FOLDER_SUFFIXES = (".png", ".pbm", ".pgm", ".pnm", ".bmp", ".gif", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")


class ImageError(ValueError):
    """An input image cannot be coded as asked; the message says why, in one line."""


class OptionError(ImageError):
    """Options that do not go together (a usage error: the command line exits 2)."""


# ------------------------------------------------------------------ reading

@dataclass
class Picture:
    """One input image as read: its gray pixels (0..255), how to write it back, and
    whether it is binary. ``color`` marks an image with unequal RGB channels (refused
    unless binarized)."""
    where: str
    gray: np.ndarray
    mode: str
    color: str = ""    # the source mode (e.g. "RGB") of an image that is not grayscale
    format: str = "PNG"   # the file's format as Pillow read it (e.g. "JPEG")
    rgb: np.ndarray | None = None   # an opaque 8-bit color image's pixels (H, W, 3)
    widened: str = ""  # the source mode (RGBA, P, LA, RGB) when the image comes back in a plainer
                       # one with the same pixel values (RGB or gray: no opaque alpha, no palette)

    @property
    def levels(self) -> int:
        return 2 if self.mode in BINARY_MODES else 256

    @property
    def gray_levels_lost(self) -> int:
        """Pixels that thresholding at 128 would change (those not already 0 or 255)."""
        return int(np.count_nonzero((self.gray != 0) & (self.gray != 255)))


def read_image(data: bytes, where: str) -> Picture:
    """PNG (or any Pillow-readable image) bytes -> a Picture."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            picture = _picture(im, where)
            picture.format = im.format or "?"
            return picture
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files
        reason = ("not an image file" if e.__class__.__name__ == "UnidentifiedImageError"
                  else " ".join(str(e).split()) or e.__class__.__name__)
        raise ImageError(f"{where}: cannot read image ({reason})") from None


def _picture(im, where: str) -> Picture:
    if im.mode == "1":
        return Picture(where, np.where(np.asarray(im), 255, 0).astype(np.uint8), "1")
    if im.mode == "L":
        a = np.asarray(im)
        return Picture(where, a, "L-binary" if np.isin(a, (0, 255)).all() else "L")
    if im.mode in ("RGB", "RGBA", "P", "PA", "LA"):
        rgba = np.asarray(im.convert("RGBA"))
        gray, opaque = rgba[..., 0], bool((rgba[..., 3] == 255).all())
        if opaque and (rgba[..., 1] == gray).all() and (rgba[..., 2] == gray).all():
            # Gray stored wide: code its gray values; it comes back as a grayscale PNG.
            return Picture(where, gray.copy(), "L-binary" if np.isin(gray, (0, 255)).all() else "L",
                           widened=im.mode)
        if opaque:   # 8-bit color: the any-size path codes it (anysize.py)
            return Picture(where, np.asarray(im.convert("L")), "L", color=im.mode, rgb=rgba[..., :3].copy(),
                           widened="" if im.mode == "RGB" else im.mode)
    # Transparency, 16-bit, CMYK...: only --binarize (luma, thresholded) can take it.
    return Picture(where, np.asarray(im.convert("L")), "L", color=im.mode)


def image_levels(pictures: Sequence[Picture], binarize: bool = False) -> int:
    """The pixel levels a set of inputs needs: 2 if every image is binary (or is to be
    binarized), else 256. A mix goes to 256: an 8-bit model codes a binary image
    losslessly (as 0/255 pixels; it is written back in its own mode), while a binary
    model would lose the gray levels. (Among MNIST's 10,000 8-bit test digits, one holds
    only 0 and 255.)"""
    if binarize or all(p.levels == 2 for p in pictures):
        return 2
    _refuse_color(pictures, binarize=False)
    return 256


def _refuse_color(pictures: Sequence[Picture], binarize: bool) -> None:
    for p in pictures:
        if p.color and not binarize:
            raise ImageError(f"{p.where}: image is mode {p.color}, not 8-bit grayscale (colors, transparency "
                             "or more than 8 bits); vlaecodec codes grayscale images: convert it (or pass "
                             "--binarize to threshold it at 128 for a binary model)")


def to_model_pixels(p: Picture, levels: int, model: str, binarize: bool = False) -> tuple[np.ndarray, str]:
    """A Picture as pixels for a model of ``levels`` levels, and the mode to write back."""
    _refuse_color([p], binarize and levels == 2)
    if levels == 256:
        return p.gray, p.mode
    if p.levels == 2:
        return (p.gray == 255).astype(np.uint8), p.mode
    if not binarize:
        raise ImageError(f"{p.where}: image is grayscale with values other than 0 and 255; model {model} is "
                         "binary: it takes mode-1 images or grayscale images whose pixels are only 0 or 255 "
                         "(pass --binarize to threshold at 128, losing the gray levels, or use an 8-bit model)")
    return (p.gray >= 128).astype(np.uint8), "L-binary"


def for_model(pictures: Sequence[Picture], levels: int, size: int, model: str,
              binarize: bool = False) -> tuple[list[np.ndarray], list[str], int]:
    """Every picture as pixels for model ``model`` (``levels`` levels, ``size`` x ``size``):
    (pixels, modes to write back, pixels that --binarize changed)."""
    pixels, modes, changed = [], [], 0
    for p in pictures:
        if p.gray.shape != (size, size):
            h, w = p.gray.shape
            raise ImageError(f"{p.where}: image is {w}x{h} pixels; model {model} codes {size}x{size} images")
        px, mode = to_model_pixels(p, levels, model, binarize)
        changed += p.gray_levels_lost if levels == 2 and p.levels == 256 else 0
        pixels.append(px)
        modes.append(mode)
    return pixels, modes, changed


def load_png(data: bytes, where: str, *, binarize: bool = False) -> tuple[np.ndarray, str]:
    """PNG bytes -> (0/1 pixels, mode) for binary models (the bench and golden tests)."""
    return to_model_pixels(read_image(data, where), 2, "(binary)", binarize)


# ------------------------------------------------------------------ inputs

def read_input(path: str) -> bytes:
    """The bytes of a file, or of stdin for '-'."""
    return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()


def describe(path: str) -> str:
    return "<stdin>" if path == "-" else path


def expand_inputs(inputs: Sequence[str], skipped: list[str] | None = None) -> list[tuple[str, str | None]]:
    """INPUTS -> (path, name to store) pairs: files, folders of images (name order; the
    files named as FOLDER_SUFFIXES say, the others appended to ``skipped``), '-'."""
    out: list[tuple[str, str | None]] = []
    for item in inputs:
        if item == "-":
            out.append(("-", None))
        elif os.path.isdir(item):
            entries = sorted(os.listdir(item))
            files = [p for p in entries
                     if p.lower().endswith(FOLDER_SUFFIXES) and os.path.isfile(os.path.join(item, p))]
            if skipped is not None:
                taken = set(files)
                skipped += [os.path.join(item, p) for p in entries if p not in taken]
            if not files:
                raise ImageError(f"{item}: no image files in this folder (it takes {', '.join(FOLDER_SUFFIXES)})")
            out += [(os.path.join(item, p), p) for p in files]
        elif os.path.exists(item):
            out.append((item, os.path.basename(item)))
        else:
            raise ImageError(f"{item}: no such file or folder")
    return out


def names_to_store(stored: Sequence[str | None], want: bool | None) -> list[str] | None:
    """The names an archive keeps: by default only for several images, never for stdin."""
    want = len(stored) > 1 if want is None else want
    if not want or any(n is None for n in stored):
        return None
    names = [str(n) for n in stored]
    if any("\n" in n for n in names):
        raise ImageError("a file name contains a newline; rename it or pass --no-names")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ImageError(f"two inputs are named {dup!r}; rename them or pass --no-names")
    return names


@dataclass
class Prepared:
    """Inputs made ready for ``vlaecodec.compress``: pixels in the model's levels, the
    modes to write them back in, the names to store, the model, and how many pixels
    --binarize changed."""
    pixels: list[np.ndarray]
    modes: list[str]
    names: list[str] | None
    model: LoadedModel
    changed: int
    not_png: list[tuple[str, str]] = field(default_factory=list)   # (input, format) of inputs that are not PNG
    choice: object = None   # choose.Choice: the estimates the model was chosen by (no --model)


def prepare(items: Sequence[tuple[str, str | None]], model: str | None = None, *, binarize: bool = False,
            names: bool | None = None, pictures: Sequence[Picture] | None = None, choose: bool = True) -> Prepared:
    """``expand_inputs`` pairs -> a Prepared: the model named (loaded before any image is
    read, so that a bad name fails first), else the installed model of the images' kind
    whose estimated file is smallest (``choose.py``; ``choose`` False: the default model
    of the images' kind, as lossy files need)."""
    from . import zoo

    loaded = zoo.load_model(model) if model else None
    if pictures is None:
        pictures = [read_image(read_input(path), describe(path)) for path, _ in items]
    choice = None
    if loaded is None and choose:
        from .choose import choose_for
        choice = choose_for(pictures, image_levels(pictures, binarize), binarize)
        loaded = choice.model if choice else None
    loaded = loaded or zoo.default_model(image_levels(pictures, binarize))
    levels, size = loaded.config.pixel_levels, loaded.config.image_size
    if binarize and levels != 2:
        raise OptionError(f"--binarize is for binary models; model {loaded.name} codes 8-bit pixels as they are")
    pixels, modes, changed = for_model(pictures, levels, size, loaded.name, binarize)
    stored = png_names([name for _, name in items], [p.format for p in pictures])
    return Prepared(pixels, modes, names_to_store(stored, names), loaded, changed,
                    [(p.where, p.format) for p in pictures if p.format != "PNG"], choice)


def png_names(names: Sequence[str | None], formats: Sequence[str]) -> list[str | None]:
    """The names to store for images that will come back as PNG files: a non-PNG input's
    suffix becomes .png (a.jpg -> a.png), or .png is appended where that name is taken
    (a.jpg beside a.png -> a.jpg.png)."""
    out: list[str | None] = []
    for n, f in zip(names, formats):
        if n is None or f == "PNG" or n.lower().endswith(".png"):
            out.append(n)
            continue
        png = os.path.splitext(n)[0] + ".png"
        out.append(n + ".png" if png in names or png in out else png)
    return out


# ------------------------------------------------------------------ writing

def png_bytes(pixels: np.ndarray, mode: str, levels: int = 2) -> bytes:
    """Pixels (in a model's ``levels``) -> PNG bytes in ``mode`` ("1", "L-binary", "L")."""
    from PIL import Image

    a = np.asarray(pixels)
    if mode in BINARY_MODES:
        on = a >= (levels // 2)   # 1 of 0/1, 255 of 0/255 (and a lossy redraw's light pixels)
        im = Image.fromarray(on) if mode == "1" else Image.fromarray(np.where(on, 255, 0).astype(np.uint8))
    elif mode in ("L", "RGB"):   # 8-bit gray (8-bit and any-size models) or color (any-size)
        im = Image.fromarray(a.astype(np.uint8))
    else:
        raise ValueError(f"unknown image mode {mode!r}")
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def safe_name(name: str) -> bool:
    """A stored name we may write: a plain file name, no folders, nothing hidden behind it."""
    return (bool(name) and name not in (".", "..") and os.path.basename(name) == name
            and "\\" not in name and "\0" not in name and "/" not in name)


def names_a_folder(output: str) -> bool:
    """Whether ``-o`` names a folder: an existing one, or any name ending in a slash."""
    return output != "-" and (os.path.isdir(output) or output.endswith(("/", os.sep)))


def output_paths(output: str, count: int, names: Sequence[str] | None, where: str,
                 stem: str | None = None) -> tuple[bool, list[str]]:
    """Where decompression writes: (into a folder?, the paths; ['-'] for stdout).

    One image goes to OUTPUT itself (a PNG name or '-'), or into OUTPUT if it names a
    folder (an existing one, or a name ending in '/', created if need be), under its
    stored name, else ``stem``.png (the archive's name: one.vlae -> one.png), else
    00000.png. Several go into the folder OUTPUT, which must not look like a file name:
    ``-o x.png`` for an archive is a mistake, not a folder to create."""
    width = max(5, len(str(count - 1)))
    if names:
        names = list(names)
    elif count == 1 and stem and safe_name(stem + ".png"):
        names = [stem + ".png"]
    else:
        names = [f"{i:0{width}d}.png" for i in range(count)]
    bad = [n for n in names if not safe_name(n)]
    if bad or len(set(names)) != count:
        what = f"an unsafe file name {bad[0]!r}" if bad else "duplicate file names"
        raise ImageError(f"{where}: archive holds {what}; refusing to write")
    if count == 1 and not names_a_folder(output):
        return False, [output]
    if output == "-":
        raise ImageError(f"{where} holds {count} images; give a folder with -o, not '-'")
    if os.path.exists(output) and not os.path.isdir(output):
        raise ImageError(f"{output} is a file; archives of {count} images go into a folder")
    if not os.path.exists(output) and Path(output).suffix.lower() in IMAGE_SUFFIXES:
        raise ImageError(f"{where} holds {count} images; give a folder with -o, not a "
                         f"{Path(output).suffix} name")
    return True, [os.path.join(output, n) for n in names]


def write_images(paths: Sequence[str], images: Sequence[np.ndarray], modes: Sequence[str], levels: int,
                 overwrite: bool, folder: str | None = None) -> None:
    """Write every image as a PNG, atomically. Nothing is written if any target exists
    and ``overwrite`` is off (FileExistsError naming the first one)."""
    clash = [p for p in paths if p != "-" and os.path.exists(p)]
    if clash and not overwrite:
        many = f" ({len(clash)} of {len(paths)} files do)" if len(paths) > 1 else ""
        raise FileExistsError(errno.EEXIST, "exists" + many, clash[0])
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
    if len(paths) == 1:
        write_output(paths[0], png_bytes(images[0], modes[0], levels), overwrite=overwrite)
        return
    write_many_atomic(((p, png_bytes(x, m, levels)) for p, x, m in zip(paths, images, modes)), overwrite=overwrite)


def write_archive(archive: Archive, output: str, where: str, *, overwrite: bool = False,
                  stem: str | None = None) -> bool:
    """Write a decoded archive's images where ``output_paths`` says; True if into a folder."""
    into_folder, paths = output_paths(output, len(archive.images), archive.names, where, stem)
    write_images(paths, archive.images, archive.modes, archive.header.levels, overwrite=overwrite,
                 folder=output if into_folder else None)
    return into_folder


# ------------------------------------------------------------------ whole commands

def _count(n: int, what: str = "image") -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def compress_files(inputs: Sequence[str], output: str, model: str | None = None, *, names: bool | None = None,
                   binarize: bool = False, lossy: bool = False, rate: int | None = None, jobs: int | None = None,
                   particles: int = 1, overwrite: bool = False, quiet: bool = False, coder: str = "auto",
                   warn: Callable[[str], None] = _stderr) -> str:
    """Image paths (files, folders of images, '-' for stdin) -> one .vlae file at ``output``
    ('-' for stdout); returns the summary line (images, bytes, bits/dim). ``warn`` gets a
    note on the files a folder held that are not images by name (skipped), and on inputs
    that are not PNG (their decoded pixels are coded; they come back as PNG).

    Options that do not go together, the inputs and the output are checked before any
    coding; ``warn`` gets the count of pixels that --binarize changed."""
    from . import compress
    from .progress import bar

    if list(inputs).count("-") > 1:
        raise OptionError("'-' (stdin) can be given only once")
    if rate is not None and not lossy:
        raise OptionError("--rate sets the lossy rate level: use it with --lossy")
    if particles > 1 and lossy:
        raise OptionError("--particles applies to lossless archives (bits-back), not to --lossy")
    if names_a_folder(output):   # one archive from any number of inputs: -o names that file
        first = Path(inputs[0]).name if len(inputs) == 1 and inputs[0] != "-" else ""
        example = os.path.join(output, (Path(first).stem if Path(first).suffix.lower() == ".png" else first)
                               or "images") + ".vlae"
        raise ImageError(f"{output}: -o names the archive file, not a folder (e.g. -o {example})")
    skipped: list[str] = []
    items = expand_inputs(inputs, skipped)
    check_writable(output, overwrite=overwrite)
    pictures = [read_image(read_input(path), describe(path)) for path, _ in items]
    if coder != "auto" or _is_photo_model(model) or (model is None and not binarize and any_size(pictures)):
        if lossy or particles > 1 or binarize:
            raise OptionError("--lossy, --particles and --binarize are for 28x28 images and their models; "
                              "images of other sizes or in color are coded losslessly as they are")
        return _compress_any_size(items, pictures, output, model, names, coder, overwrite, quiet, warn, skipped)
    got = prepare(items, model, binarize=binarize, names=names, pictures=pictures, choose=not lossy)
    if skipped:   # notes after every check: an error stays the only line
        warn(f"note: skipped {_count(len(skipped), 'file')} in the input folder(s) not named as images "
             f"(e.g. {skipped[0]}); a folder's images are {', '.join(FOLDER_SUFFIXES)} files")
    if got.not_png:
        formats = ", ".join(sorted({f for _, f in got.not_png}))
        k = len(got.not_png)
        warn(f"note: {k} input{' is' if k == 1 else 's are'} not PNG ({formats}; e.g. {got.not_png[0][0]}): "
             "the decoded pixels are what is coded, and decompression gives them back as PNG files (a.jpg -> a.png), "
             "not the original files")
    if not binarize:
        note_widened(pictures, warn)
    n, dims = len(got.pixels), len(got.pixels) * got.model.config.image_size ** 2
    if got.changed:
        warn(f"warning: --binarize changed {got.changed} of {dims} pixels (gray levels lost)")
    with bar("compressing", n, quiet=quiet) as cb:
        blob = compress(got.pixels, got.model, names=got.names, modes=got.modes, progress=cb, jobs=jobs,
                        lossy=lossy, rate=rate, particles=particles)
    how = got.choice.describe() if got.choice else f"with {got.model.name}"
    if model is None and not lossy and particles == 1 and TRY_ANY_SIZE:
        other = _any_size_instead(pictures, got.names, len(blob))
        if other is not None:
            write_output(output, other[0], overwrite=overwrite)
            return (f"{_count(n)} -> {len(other[0])} bytes ({8 * len(other[0]) / dims:.4f} bits/dim; "
                    f"{_coders_used(other[1])}: smaller than the {len(blob)} bytes {how})")
    write_output(output, blob, overwrite=overwrite)
    return f"{_count(n)} -> {len(blob)} bytes {how} ({8 * len(blob) / dims:.4f} bits/dim)"


DIGIT_SIDE = 28   # the 28x28 models' size: other sizes, and color, take the any-size path


def any_size(pictures: Sequence[Picture]) -> bool:
    """Whether inputs need the any-size path: any color image, or any gray or binary one
    that is not 28x28 (an archive then goes there whole)."""
    return any(p.rgb is not None or p.gray.shape != (DIGIT_SIDE, DIGIT_SIDE) for p in pictures)


def _is_photo_model(model: str | None) -> bool:
    from .zoo import list_manifests
    return model is not None and model in {m["name"] for m in list_manifests("photo-vlae")}


def note_widened(pictures: Sequence[Picture], warn: Callable[[str], None]) -> None:
    """Tell the user when images will come back in a plainer PNG mode (same pixels)."""
    wide = [p for p in pictures if p.widened]
    if wide:
        modes = ", ".join(sorted({p.widened for p in wide}))
        warn(f"note: {_count(len(wide), 'input')} of mode {modes} (e.g. {wide[0].where}) will come back as "
             "plain RGB or grayscale PNGs with the same pixel values (an all-opaque alpha channel or a "
             "palette is not kept)")


def _any_size_pixels(pictures: Sequence[Picture]) -> tuple[list[np.ndarray], list[str]]:
    """Pictures -> the any-size container's pixels and modes (refusing what it cannot code)."""
    from . import anysize

    pixels, modes = [], []
    for p in pictures:
        if p.color and p.rgb is None:
            raise ImageError(f"{p.where}: image is mode {p.color} (transparency, 16-bit or CMYK); vlaecodec "
                             "codes 8-bit grayscale and RGB images (and binary ones): convert it to RGB or L")
        mode = "RGB" if p.rgb is not None else p.mode if p.mode in BINARY_MODES else "L"
        pixels.append(p.rgb if p.rgb is not None else (p.gray == 255).astype(np.uint8) if mode in BINARY_MODES
                      else p.gray)
        modes.append(mode)
        h, w = p.gray.shape
        if not (1 <= h <= anysize.MAX_SIDE and 1 <= w <= anysize.MAX_SIDE and h * w <= anysize.MAX_PIXELS):
            raise ImageError(f"{p.where}: image is {w}x{h} pixels; vlaecodec codes images from 1x1 up to "
                             f"{anysize.MAX_SIDE} pixels a side and {anysize.MAX_PIXELS:,} pixels in all")
    return pixels, modes


# 28x28 inputs go to the digit models, but an image unlike digits (a flat square, an
# icon) can cost them ten times what WebP would. After coding with the chosen digit model
# the encoder also codes the images one record each in the any-size container and keeps
# that file when it is smaller: with PNG and WebP lossless (about 1 ms an image), and for
# up to FEW_IMAGES images with every any-size coder (photo models, the context models:
# a tenth of a second or more each, too slow for big archives).
FEW_IMAGES = 16
TRY_ANY_SIZE = True   # tests of the digit path with untrained tiny models turn it off (conftest.py)


def _any_size_instead(pictures: Sequence[Picture], stored: list[str] | None, beat: int
                      ) -> tuple[bytes, list] | None:
    """The any-size file of these 28x28 pictures when it is smaller than ``beat`` bytes."""
    from . import anysize

    pixels, modes = _any_size_pixels(pictures)
    coders = None if len(pixels) <= FEW_IMAGES else ["png", "webp"]
    try:
        blob, records = anysize.compress(pixels, modes, names=stored, coders=coders)
    except anysize.AnySizeError:
        return None
    return (blob, records) if len(blob) < beat else None


def _alternatives(r) -> str:
    """Why one image got its coder: what every candidate made of it (record payloads)."""
    others = [f"{k} {v:,}" for k, v in sorted(r.tried.items(), key=lambda kv: kv[1]) if k != r.coder_name]
    others += [f"{k} ~{v:,} (estimated on an eighth of the rows; not coded)" for k, v in r.estimates.items()
               if k not in r.tried]
    return f"; {r.tried.get(r.coder_name, 0):,} bytes against " + ", ".join(others) if others else ""


def _coders_used(records) -> str:
    used: dict[str, int] = {}
    for r in records:
        used[r.coder_name] = used.get(r.coder_name, 0) + 1
    return ", ".join(f"{k}" + (f" x{v}" if v > 1 else "") for k, v in sorted(used.items()))


def _compress_any_size(items, pictures: Sequence[Picture], output: str, model: str | None, names: bool | None,
                       coder: str, overwrite: bool, quiet: bool, warn: Callable[[str], None],
                       skipped: list[str]) -> str:
    """Images of any size, gray or RGB (or binary), one record each in the any-size
    container, each with the smallest of the photo models, PNG and WebP lossless (or
    the coder forced by --coder / a photo model's name in --model)."""
    from . import anysize
    from .progress import bar

    pixels, modes = _any_size_pixels(pictures)
    coders = [model] if _is_photo_model(model) else None if coder == "auto" else [coder]
    if coders == ["model"] and not any(anysize.photo_models(m) for m in set(modes)):
        raise ImageError("no photo model is installed for these images (see `vlaecodec models`)")
    stored = names_to_store(png_names([name for _, name in items], [p.format for p in pictures]), names)
    if skipped:
        warn(f"note: skipped {_count(len(skipped), 'file')} in the input folder(s) not named as images "
             f"(e.g. {skipped[0]}); a folder's images are {', '.join(FOLDER_SUFFIXES)} files")
    not_png = [p.where for p in pictures if p.format != "PNG"]
    if not_png:
        warn(f"note: {_count(len(not_png), 'input')} not PNG (e.g. {not_png[0]}): the decoded pixels are what is "
             "coded, and decompression gives them back as PNG files")
    note_widened(pictures, warn)
    with bar("compressing", len(pixels), quiet=quiet) as cb:
        try:
            blob, records = anysize.compress(pixels, modes, names=stored, coders=coders, progress=cb)
        except anysize.AnySizeError as e:
            raise ImageError(str(e)) from None
    write_output(output, blob, overwrite=overwrite)
    dims = sum(px.size for px in pixels)
    how = _coders_used(records) + (_alternatives(records[0]) if len(records) == 1 else "")
    return f"{_count(len(pixels))} -> {len(blob)} bytes ({8 * len(blob) / dims:.4f} bits/sub-pixel; {how})"


def _decompress_any_size(data: bytes, file: str, output: str, where: str, overwrite: bool, quiet: bool) -> str | None:
    from . import anysize
    from .container import ContainerError
    from .progress import bar

    with naming(where):
        try:
            n = len(anysize.parse(data).records)
            with bar("decompressing", n, quiet=quiet) as cb:
                pixels, records = anysize.decompress(data, progress=cb)
        except anysize.AnySizeError as e:
            raise ContainerError(str(e)) from None
    names = [r.name for r in records] if records and records[0].name is not None else None
    stem = None if file == "-" else Path(file).stem
    into_folder, paths = output_paths(output, n, names, where, stem)
    write_images(paths, pixels, [r.mode for r in records], 2, overwrite=overwrite,
                 folder=output if into_folder else None)
    return f"{_count(n)} -> {output.rstrip(os.sep)}{os.sep}" if into_folder else None


def decompress_file(file: str, output: str, model: str | None = None, *, jobs: int | None = None,
                    overwrite: bool = False, quiet: bool = False) -> str | None:
    """A .vlae file ('-' for stdin) -> PNGs where ``output_paths`` says, with the model
    from the file's header unless ``model`` (a name or model file) is given. A decoding
    error names the file (``FileError``). Returns a summary line when the images went
    into a folder, else None."""
    from . import decompress, inspect, load_model
    from .progress import bar

    data, where = read_input(file), describe(file)
    from .anysize import is_anysize
    if is_anysize(data):
        return _decompress_any_size(data, file, output, where, overwrite, quiet)
    loaded = load_model(model) if model else None
    with naming(where):
        n = inspect(data).count
        with bar("decompressing", n, quiet=quiet) as cb:
            archive = decompress(data, loaded, progress=cb, jobs=jobs)
    stem = None if file == "-" else Path(file).stem
    if write_archive(archive, output, where, overwrite=overwrite, stem=stem):
        return f"{_count(n)} -> {output.rstrip(os.sep)}{os.sep}"
    return None
