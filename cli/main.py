"""The ``vlaecodec`` command line: parsing, ``-`` for stdin/stdout, exit codes; each command
calls the library (images, fileio, progress, zoo, fileinfo). Bars only on a terminal, status
lines on stderr, never in stdout's data; torch is imported late so ``--help`` stays fast."""
from __future__ import annotations

import os

import click

from vlaecodec import progress

from .common import CONTEXT, QUIET, about, friendly
from .data import data
from .work import bench, eval_cmd, train


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from vlaecodec import __version__
    click.echo(f"vlaecodec, version {__version__}")
    ctx.exit()


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
@click.option("--model", default=None, help="Installed model name or model file (default: the default "
              "model for the images' kind: binary or 8-bit; see `vlaecodec models`).")
@click.option("--names/--no-names", default=None,
              help="Store the input file names (default: yes for archives, no for a single image).")
@click.option("--binarize", is_flag=True, help="Threshold gray images at 128 for a binary model instead of "
              "refusing them (warns how many pixels changed).")
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
@QUIET
@friendly
def compress(inputs: tuple[str, ...], output: str, model: str | None, names: bool | None,
             binarize: bool, lossy: bool, rate: int | None, jobs: int | None, force: bool, quiet: bool) -> None:
    """Compress PNG images into one .vlae archive.

    INPUTS are PNG files, folders of PNGs (taken in name order) or '-' for one PNG
    on stdin. All images go into one file and share one bits-back stack, so many
    images cost much less each than one. Binary images (mode '1', or grayscale with
    only 0/255 pixels) go to a binary model, 8-bit grayscale ones to an 8-bit model;
    every image is written back in its own mode. An archive stores the file names (a
    numbered sequence costs a few bytes) unless --no-names; a single image stores none
    unless --names (you name the output when you decompress it, as with cjxl or cwebp).

    \b
    Example:
        vlaecodec compress samples/digits -o digits.vlae
        vlaecodec compress a.png b.png -o ab.vlae --model vlae-mnist-v1
        vlaecodec compress samples/digits -o sketch.vlae --lossy --rate 3
        cat a.png | vlaecodec compress - -o - > a.vlae
    """
    import vlaecodec
    from vlaecodec import fileio, images, zoo

    if inputs.count("-") > 1:
        raise click.UsageError("'-' (stdin) can be given only once")
    if rate is not None and not lossy:
        raise click.UsageError("--rate sets the lossy rate level: use it with --lossy")
    items = images.expand_inputs(inputs)
    fileio.check_writable(output, overwrite=force)
    loaded = vlaecodec.load_model(model) if model else None   # a bad --model fails before any reading
    pictures = [images.read_image(images.read_input(path), images.describe(path)) for path, _ in items]
    loaded = loaded or zoo.default_model(images.image_levels(pictures, binarize))
    levels, size = loaded.config.pixel_levels, loaded.config.image_size
    if binarize and levels != 2:
        raise click.UsageError(f"--binarize is for binary models; model {loaded.name} codes 8-bit pixels as they are")
    pixels, modes, changed = images.for_model(pictures, levels, size, loaded.name, binarize)
    if changed:
        click.echo(f"warning: --binarize changed {changed} of {len(pixels) * size * size} pixels "
                   "(gray levels lost)", err=True)
    stored = images.names_to_store([name for _, name in items], names)
    with progress.bar("compressing", len(pixels), quiet=quiet) as cb:
        blob = vlaecodec.compress(pixels, loaded, names=stored, modes=modes, progress=cb, jobs=jobs,
                                  lossy=lossy, rate=rate)
    fileio.write_output(output, blob, overwrite=force)
    if not quiet:
        n, dims = len(pixels), len(pixels) * size * size
        click.echo(f"{n} image{'s' * (n != 1)} -> {len(blob)} bytes ({8 * len(blob) / dims:.4f} bits/dim)", err=True)


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
@QUIET
@friendly
def decompress(file: str, output: str, model: str | None, jobs: int | None, force: bool, quiet: bool) -> None:
    """Decompress a .vlae archive back to PNG images, bit for bit.

    FILE may be '-' for stdin. An archive of one image is written to OUTPUT as a PNG
    (or into OUTPUT if it is an existing folder). Several images go into the folder
    OUTPUT (created if needed; a name like x.png is refused) under their stored names,
    or 00000.png, 00001.png, ... Each image comes back in its original mode. The
    model is found from the file's header; a damaged file is an error, never a
    wrong image.

    \b
    Example:
        vlaecodec decompress digits.vlae -o digits/
        vlaecodec decompress a.vlae -o a.png
    """
    import vlaecodec
    from vlaecodec import images

    data, where = images.read_input(file), images.describe(file)
    loaded = vlaecodec.load_model(model) if model else None
    with about(where):
        header = vlaecodec.inspect(data)
        with progress.bar("decompressing", header.count, quiet=quiet) as cb:
            archive = vlaecodec.decompress(data, loaded, progress=cb, jobs=jobs)
    n = len(archive.images)
    into_folder, paths = images.output_paths(output, n, archive.names, where)
    images.write_images(paths, archive.images, archive.modes, archive.header.levels, overwrite=force,
                        folder=output if into_folder else None)
    if into_folder and not quiet:
        click.echo(f"{n} image{'s' * (n != 1)} -> {output.rstrip(os.sep)}{os.sep}", err=True)


@cli.command(context_settings=CONTEXT)
@click.argument("file")
@click.option("--elbo/--no-elbo", default=True, show_default=True,
              help="Decode the images and report the model's -ELBO on them.")
@QUIET
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
    from vlaecodec import fileinfo, images

    data, where = images.read_input(file), images.describe(file)
    with about(where):
        header, lines = fileinfo.header_lines(data)
    click.echo("\n".join(lines))
    if elbo and not header.lossy_level:
        with about(where), progress.bar("decoding", header.count, quiet=quiet) as cb:
            lines = fileinfo.elbo_lines(data, header, cb)
        click.echo("\n".join(lines))


@cli.command(context_settings=CONTEXT)
@friendly
def models() -> None:
    """List the installed models (shipped ones and those in $VLAECODEC_MODELS).

    Columns: name, sha256 prefix, the images it codes (size; binary or 8-bit pixels),
    prior, decoder receptive field (rows above a pixel), the test -ELBO measured when
    the model was frozen, its lossy rate levels (bits per image, for --lossy --rate N),
    and '*' for the default model of its kind (used when compress gets no --model).

    \b
    Example:
        vlaecodec models
    """
    from vlaecodec import zoo

    click.echo("\n".join(zoo.model_lines()) or "no models installed (shipped models live in "
               "vlaecodec/checkpoints; add folders with $VLAECODEC_MODELS)")


for command in (data, train, eval_cmd, bench):
    cli.add_command(command)


def main() -> None:  # console-script style entry for `python -m vlaecodec`
    cli(prog_name="vlaecodec")


if __name__ == "__main__":
    main()
