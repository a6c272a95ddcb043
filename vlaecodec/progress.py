"""Progress bars on a terminal: the library's ``progress(n_done)`` callbacks, drawn.

Coding and evaluation report progress as a plain callback ``f(n_done)``. This module
turns that into a bar on stderr, and into nothing at all when stderr is not a terminal
(a log file or a pipe must not collect bar redraws or stray label lines) or when the
user asked for quiet. No click here: the library may draw bars without the CLI.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, TextIO

WIDTH = 30


class Bar:
    """A callback ``f(n_done)`` drawing ``label [####------]  40%``; a context manager.

    With ``passes`` > 1 the work runs over the same ``total`` items several times (e.g.
    evaluation's ELBO pass, then its IWAE pass): when ``n_done`` goes back down a new
    pass has started, and the bar keeps moving forward across passes.
    """

    def __init__(self, label: str, total: int, *, passes: int = 1, stream: TextIO | None = None,
                 enabled: bool = True):
        self.label, self.total, self.passes = label, max(int(total), 0), max(int(passes), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.total > 0
        self._last = self._offset = 0
        self._shown = -1   # percent last drawn: redraw only when it changes (cheap per call)

    def __call__(self, n: int) -> None:
        if not self.enabled:
            return
        n = min(max(int(n), 0), self.total)
        if n < self._last:
            self._offset = min(self._offset + self.total, self.total * (self.passes - 1))
        self._last = n
        pct = (self._offset + n) * 100 // (self.total * self.passes)
        if pct != self._shown:
            self._shown = pct
            fill = WIDTH * pct // 100
            self.stream.write(f"\r{self.label}  [{'#' * fill}{'-' * (WIDTH - fill)}]  {pct:3d}%")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._shown >= 0:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False


def bar(label: str, total: int, *, quiet: bool = False, passes: int = 1, stream: TextIO | None = None) -> Bar:
    """A bar on ``stream`` (stderr), drawn only on a terminal and unless ``quiet``."""
    stream = stream if stream is not None else sys.stderr
    return Bar(label, total, passes=passes, stream=stream, enabled=not quiet and _is_terminal(stream))


ProgressFactory = Callable[[str, int], Callable[[int], None]]


class Bars:
    """A ``progress_factory(label, total)`` for work in stages (the bench): each call
    finishes the previous stage's bar and returns the next one; a context manager that
    closes the last."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None):
        self.quiet, self.stream = quiet, stream
        self._open: Bar | None = None

    def __call__(self, label: str, total: int) -> Bar:
        self.close()
        self._open = bar(label, total, quiet=self.quiet, stream=self.stream)
        return self._open

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    def __enter__(self) -> "Bars":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def stage(factory: ProgressFactory | None, label: str, total: int) -> Any:
    """The factory's callback for one stage, or a silent bar when there is no factory;
    either way usable as ``with stage(...) as progress:`` and closed at the end."""
    if factory is None:
        return Bar(label, total, enabled=False)
    cb = factory(label, total)
    return cb if hasattr(cb, "__enter__") else _Closing(cb)


class _Closing:
    """Wraps a bare callback so that it is a context manager that closes it (if it can)."""

    def __init__(self, cb: Callable[[int], None]):
        self.cb = cb

    def __call__(self, n: int) -> None:
        self.cb(n)

    def __enter__(self) -> "_Closing":
        return self

    def __exit__(self, *exc: Any) -> None:
        close = getattr(self.cb, "close", None)
        if callable(close):
            close()
