"""What every command shares: -h, the common options, one-line errors and exit codes."""
from __future__ import annotations

import functools
import os
import sys
from contextlib import contextmanager, suppress
from typing import Any, Callable, Iterator

import click

from vlaecodec import CodecError, ModelError, data, fileio, images, lossy_bench, zoo
from vlaecodec.fileinfo import TRAIN_EXTRA

CONTEXT = dict(help_option_names=["-h", "--help"])   # subcommands inherit it from the group
QUIET = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
FORCE = click.option("--force", "overwrite", is_flag=True, help="Overwrite existing output files.")
JOBS = click.option("-j", "--jobs", type=click.IntRange(min=1), help="Processes for an archive's chains of 5,000 "
                    "images (~60 bytes each; default: the usable cores); any number gives the same result.")
model_option = functools.partial(click.option, "--model", default=None)   # each command says what it takes
# The library's expected failures (PIL's UnidentifiedImageError is an OSError).
EXPECTED = (CodecError, ModelError, data.DataError, fileio.FileError, images.ImageError, lossy_bench.NoCheckout,
            OSError)


def one_line(msg: object) -> str:
    return " ".join(str(msg).split())


def friendly(f: Callable[..., Any] | None = None, *, also: tuple[type[BaseException], ...] = ()) -> Any:
    """Turn the library's expected failures (and ``also``) into a one-line error, exit 1;
    an unknown model name or options that do not go together are usage errors, exit 2."""
    if f is None:
        return functools.partial(friendly, also=also)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`vlaecodec info f.vlae | head -1`): stop quietly, and
            # point stdout at /dev/null so the interpreter's final flush does not complain.
            with suppress(OSError, ValueError):   # no real file descriptor (e.g. under CliRunner)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except zoo.UnknownModel as e:
            raise click.BadParameter(one_line(e), param_hint="'--model'") from None
        except images.OptionError as e:
            raise click.UsageError(one_line(e)) from None
        except FileExistsError as e:
            raise click.ClickException(f"{e.filename} {e.strerror}; pass --force to overwrite it") from None
        except EXPECTED + also as e:
            if isinstance(e, OSError) and e.strerror:
                raise click.ClickException((f"{e.filename}: " if e.filename else "") + e.strerror) from None
            raise click.ClickException(one_line(e) or e.__class__.__name__) from None
    return wrapper



@contextmanager
def needs_torch(what: str) -> Iterator[None]:
    """A missing torch (the [train] extra) becomes one line saying how to install it."""
    try:
        yield
    except ImportError as e:
        if (e.name or "").split(".")[0] != "torch":
            raise
        raise click.ClickException(f"{what} needs torch, which is not installed: {TRAIN_EXTRA} (CPU-only "
                                   "build: pip install torch --index-url https://download.pytorch.org/whl/cpu "
                                   "first)") from None
