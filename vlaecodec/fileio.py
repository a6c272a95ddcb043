"""Atomic file writes: the one place that writes an output file.

A reader (or a crash, or a full disk) must never see half a file under the final name:
every output is written to a temp file in the same folder, synced, then renamed.
Errors are ``OSError``s that carry the file name, so a caller can print one line;
``naming`` gives a decoding error the name of the file it came from.
"""
from __future__ import annotations

import errno
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

Content = Union[bytes, Callable[[BinaryIO], None]]


class FileError(ValueError):
    """A file that cannot be decoded (damaged, or its model missing or wrong); the message
    starts with the file's name: ``a.vlae: corrupt header ...``."""


@contextmanager
def naming(where: str) -> Iterator[None]:
    """Turn a container or model error raised inside into a ``FileError`` naming ``where``."""
    from .container import ContainerError
    from .zoo import ModelError
    try:
        yield
    except (ContainerError, ModelError) as e:
        raise FileError(f"{where}: {' '.join(str(e).split())}") from None


def check_writable(path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Fail now, before any work, if ``path`` could not be written: a folder, an existing
    file (unless ``overwrite``), or a missing parent folder. '-' (stdout) always can."""
    if str(path) == "-":
        return
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if path.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, "exists", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"no such folder (for {path.name})", str(path.parent))


def write_output(target: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """``write_atomic``, or for '-' the bytes on stdout (after any text already echoed)."""
    if str(target) != "-":
        write_atomic(target, data, overwrite=overwrite)
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def write_atomic(path: str | os.PathLike, content: Content, *, overwrite: bool = False,
                 make_parents: bool = False) -> Path:
    """Write ``content`` (bytes, or a function that writes to a binary file, e.g.
    ``lambda f: torch.save(obj, f)``) to ``path`` via a temp file and a rename.

    Without ``overwrite`` an existing file is never replaced, not even one that appears
    while we write (``FileExistsError``). A missing folder is ``FileNotFoundError``
    unless ``make_parents``. On any failure the temp file is removed.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(path, overwrite=overwrite)
    parent = path.parent
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the mode open() would
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:  # link() fails if the name appeared meanwhile: never clobber
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
            except OSError:  # a filesystem without hard links
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
