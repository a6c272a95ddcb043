"""One BLAS thread per coding worker (blas.py): several processes with a BLAS thread
per core each spin on each other's cores."""
import sys

import numpy as np
import pytest

from vlaecodec import blas, codec


def _worker_threads() -> tuple[int | None, bool]:
    a = np.arange(4000.0).reshape(200, 20)   # and BLAS still computes in the worker
    return blas.get_threads(), bool(np.array_equal(a @ a.T, np.einsum("ik,jk->ij", a, a)))


def test_set_threads_round_trip():
    before = blas.get_threads()
    if before is None:
        pytest.skip("numpy here does not use OpenBLAS")
    try:
        assert blas.set_threads(1)
        assert blas.get_threads() == 1
        assert blas.set_threads(2)
        assert blas.get_threads() == 2
    finally:
        blas.set_threads(before)


@pytest.mark.skipif(sys.platform != "linux", reason="coding workers are forked on Linux only")
def test_coding_workers_use_one_blas_thread():
    if blas.get_threads() is None:
        pytest.skip("numpy here does not use OpenBLAS")
    before = blas.get_threads()
    blas.set_threads(2)   # what the parent has on a 2-core machine
    try:
        out = codec._run_chains(None, 2, _worker_threads, [(), ()], [1, 1], None)
    finally:
        blas.set_threads(before)
    assert out == [(1, True), (1, True)]
