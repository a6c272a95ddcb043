"""Where a chain's coding time goes: each stage of the bits-back encoder and decoder timed
inside the library, for one chain coded in one process with one thread (what each of
the processes of ``--jobs`` does).

    python bench/stages.py --limit 5000
    python bench/stages.py --library 3000     # vlaecodec.compress/decompress, default jobs

``--library N``: instead, the library's own calls on the first N digits with the default
``--jobs`` (one chain below 10,000 digits: one process, the cores as threads).

Stages are timed by wrapping codec's functions, so the bytes are those of
``vlaecodec.compress``; the decoded digits are checked against the originals.
"""
from __future__ import annotations

import argparse
import collections
import functools
import time

import numpy as np

import vlaecodec
from vlaecodec import blas, codec, data, intnet

ENCODE = [("posterior", "q(z\\|x) for every digit (encoder network)"),
          ("_encode_direct", "digits coded directly (chain start, bin search)"),
          ("_pop_posterior", "pop z from q (bits back)"),
          ("_push_pixels", "push the pixels (all positions at once)"),
          ("_push_prior", "push z under p(z)")]
DECODE = [("_pop_prior", "pop z under p(z), dimension by dimension"),
          ("_pop_pixels", "pop the pixels, one pixel position per step"),
          ("posterior", "q(z\\|x) of the decoded digits"),
          ("_push_posterior", "push z under q (the bits given back)")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=5000, help="digits in the chain (first N binarized test digits)")
    p.add_argument("--model", default=None)
    p.add_argument("--library", type=int, metavar="N", help="time vlaecodec.compress and decompress of N digits")
    a = p.parse_args()
    if a.library:
        return library(a.library, a.model)
    blas.set_threads(1)
    net = vlaecodec.load_model(a.model).net
    x = data.load_binarized_mnist("test")[:a.limit]
    spent: collections.Counter = collections.Counter()

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                spent[name] += time.perf_counter() - t
        return wrapper

    for name in {n for n, _ in ENCODE + DECODE} - {"posterior"}:
        setattr(codec, name, timed(name, getattr(codec, name)))
    intnet.IntVLAE.posterior = timed("posterior", intnet.IntVLAE.posterior)

    t = time.perf_counter()
    sched, payload = codec._compress_chain(net, x)
    enc_total, enc = time.perf_counter() - t, dict(spent)
    spent.clear()
    t = time.perf_counter()
    back = codec._decompress_chain(net, [b for b, _ in sched], payload)
    dec_total, dec = time.perf_counter() - t, dict(spent)
    assert np.array_equal(back, x), "decoded digits differ"

    sizes = [b for b, _ in sched]
    print(f"### One chain of {len(x)} binarized test digits, one process, one thread ({len(payload)} payload "
          f"bytes; {sizes[0]} direct digits, then {len(sizes) - 1} bits-back batches: {sizes[1:]})\n")
    print("| encode stage | seconds | decode stage | seconds |\n|---|---|---|---|")
    rows = max(len(ENCODE), len(DECODE))
    for i in range(rows):
        e = f"{ENCODE[i][1]} | {enc.get(ENCODE[i][0], 0):.2f}" if i < len(ENCODE) else " | "
        d = f"{DECODE[i][1]} | {dec.get(DECODE[i][0], 0):.2f}" if i < len(DECODE) else " | "
        print(f"| {e} | {d} |")
    print(f"| **total** | **{enc_total:.2f} ({len(x) / enc_total:.0f} img/s)** | **total** | "
          f"**{dec_total:.2f} ({len(x) / dec_total:.0f} img/s)** |")


def library(n: int, model: str | None) -> None:
    loaded = vlaecodec.load_model(model)
    x = data.load_binarized_mnist("test")[:n]
    vlaecodec.decompress(vlaecodec.compress(list(x[:20]), loaded), loaded)   # warm-up
    t = time.perf_counter()
    blob = vlaecodec.compress(list(x), loaded)
    te = time.perf_counter() - t
    t = time.perf_counter()
    back = vlaecodec.decompress(blob, loaded).images
    td = time.perf_counter() - t
    assert np.array_equal(np.asarray(back), x), "decoded digits differ"
    print(f"{n} digits, {len(blob)} bytes, {len(vlaecodec.inspect(blob).chains())} chain(s), default jobs: "
          f"encode {n / te:.0f} img/s, decode {n / td:.0f} img/s")


if __name__ == "__main__":
    main()
