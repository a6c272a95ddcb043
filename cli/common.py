"""What every command shares: -h, one-line errors and their exit codes."""
from __future__ import annotations

import functools
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

CONTEXT = dict(help_option_names=["-h", "--help"])
QUIET = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


def one_line(msg: object) -> str:
    return " ".join(str(msg).split())


def _expected_errors() -> tuple[type[BaseException], ...]:
    from PIL import UnidentifiedImageError

    from vlaecodec import CodecError, ModelError, data, images, lossy_bench
    return (CodecError, ModelError, data.DataError, images.ImageError, lossy_bench.NoCheckout,
            UnidentifiedImageError, OSError)


def friendly(f: Callable[..., Any] | None = None, *, also: tuple[type[BaseException], ...] = ()) -> Any:
    """Turn the library's expected failures (and ``also``) into a one-line error, exit 1;
    an unknown model name is a usage error, exit 2."""
    if f is None:
        return functools.partial(friendly, also=also)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vlaecodec.zoo import UnknownModel
        try:
            return f(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`vlaecodec info f.vlae | head -1`): stop quietly, and
            # point stdout at /dev/null so the interpreter's final flush does not complain.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):   # no real file descriptor (e.g. under CliRunner)
                pass
            raise click.exceptions.Exit(0) from None
        except UnknownModel as e:
            raise click.BadParameter(one_line(e), param_hint="'--model'") from None
        except FileExistsError as e:
            raise click.ClickException(f"{e.filename} {e.strerror}; pass --force to overwrite it") from None
        except Exception as e:  # noqa: BLE001 - filtered just below
            if not isinstance(e, _expected_errors() + also):
                raise
            if isinstance(e, OSError) and e.strerror:
                raise click.ClickException((f"{e.filename}: " if e.filename else "") + e.strerror) from None
            raise click.ClickException(one_line(e) or e.__class__.__name__) from None
    return wrapper


@contextmanager
def about(where: str) -> Iterator[None]:
    """Name the file in a decoding error: `a.vlae: corrupt header ...`."""
    from vlaecodec import CodecError, ModelError
    try:
        yield
    except (CodecError, ModelError) as e:
        raise click.ClickException(f"{where}: {one_line(e)}") from None
