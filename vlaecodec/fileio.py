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
from typing import BinaryIO, Callable, Iterable, Iterator, Union

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
    with _naming_target(path):
        tmp = _write_temp(path, content, sync=True)
        try:
            _publish(tmp, path, overwrite)
        except BaseException:
            _remove(tmp)
            raise
    return path


def write_many_atomic(items: Iterable[tuple[str | os.PathLike, Content]], *, overwrite: bool = False) -> int:
    """``write_atomic`` for many files (a decoded archive's images), in three passes:
    every file to its temp file, one sync of them all, then every rename. Syncing file
    by file cost 0.3 to 0.6 ms each (10,000 PNGs: 869 files/s; batched: ~18,000/s, the
    same bytes on disk before any name appears). A failure before the renames leaves no
    output at all; after, every name that appeared holds a complete file. Returns the
    number of files written."""
    temps: list[tuple[str, Path]] = []
    bulk = hasattr(os, "sync")   # else (Windows) each file is synced as it is written
    published = 0
    try:
        for path, content in items:
            path = Path(path)
            check_writable(path, overwrite=overwrite)
            with _naming_target(path):
                temps.append((_write_temp(path, content, sync=not bulk), path))
        if bulk:
            os.sync()
        for tmp, path in temps:
            with _naming_target(path):
                _publish(tmp, path, overwrite)
            published += 1
    finally:
        for tmp, _ in temps[published:]:
            _remove(tmp)
    return published


@contextmanager
def _naming_target(path: Path) -> Iterator[None]:
    """An OSError about our temp file (or about no file: a full disk) names the target
    instead: the user gave ``x.vlae``, never ``.x.vlae.8yyxmglg.tmp`` (a read-only
    folder failed with the temp file's name)."""
    try:
        yield
    except OSError as e:
        name = Path(str(e.filename)) if e.filename is not None else None
        ours = name is None or (name.parent == path.parent and name.name.startswith(f".{path.name}.")
                                and name.name.endswith(".tmp"))
        if not ours or e.errno is None or isinstance(e, FileExistsError):
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None


def _write_temp(path: Path, content: Content, sync: bool) -> str:
    """``content`` into a new temp file beside ``path`` (fsync'ed if ``sync``): its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
            if sync:
                os.fsync(f.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _publish(tmp: str, path: Path, overwrite: bool) -> None:
    """The temp file takes its final name (never clobbering one without ``overwrite``)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:  # link() fails if the name appeared meanwhile: never clobber
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
    except OSError:  # a filesystem without hard links
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def _remove(tmp: str) -> None:
    if os.path.exists(tmp):
        os.unlink(tmp)
