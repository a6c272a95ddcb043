"""One BLAS thread per coding process.

numpy's OpenBLAS starts one thread per core for every GEMM large enough, and its idle
threads spin before they sleep. The coding path's GEMMs are small (tens of rows to a
few thousand), so extra threads barely help one process (10,000 digits, one process:
418 img/s with the default threads, 390 with one), but when ``--jobs`` runs one coding
process per core, each process's BLAS threads spin on the cores the other processes
need: 10,000 digits in 2 processes encoded at 146 img/s with the default threads and
718 img/s with one thread each (same machine, back to back). So every worker process
asks its BLAS for one thread.

Threads never change results here: the coding path's sums are exact (numerics.py).

No new dependency: the loaded OpenBLAS is found in /proc/self/maps (Linux, the only
platform that forks coding workers: see codec._pool) and told through its C API, the
way threadpoolctl does it.
"""
from __future__ import annotations

import ctypes
import os

# OpenBLAS builds name the call differently (numpy's wheels prefix and suffix it).
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")


def _openblas_libraries() -> list[ctypes.CDLL]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return []
    libs = []
    for p in sorted(paths):
        if os.path.isfile(p):
            try:
                libs.append(ctypes.CDLL(p))
            except OSError:
                pass
    return libs


def _find(lib: ctypes.CDLL, names: tuple[str, ...]):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def set_threads(n: int) -> bool:
    """Ask every loaded OpenBLAS for ``n`` threads; False where none was found (then
    nothing changes: other BLAS builds, other platforms)."""
    import numpy  # noqa: F401 - make sure numpy's BLAS is loaded before looking for it
    done = False
    for lib in _openblas_libraries():
        fn = _find(lib, _SETTERS)
        if fn is not None:
            fn(ctypes.c_int(int(n)))
            done = True
    return done


def get_threads() -> int | None:
    """Threads of the first loaded OpenBLAS, or None where there is none."""
    import numpy  # noqa: F401
    for lib in _openblas_libraries():
        fn = _find(lib, _GETTERS)
        if fn is not None:
            fn.restype = ctypes.c_int
            return int(fn())
    return None
