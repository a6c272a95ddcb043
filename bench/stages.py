"""Where a chain's coding time goes: each stage of the bits-back encoder and decoder timed
inside the library, for one chain coded in one process with one thread (what each of
the processes of ``--jobs`` does).

    python bench/stages.py --limit 5000       > bench/results/stages-5000.md
    python bench/stages.py --library 3000     # vlaecodec.compress/decompress, default jobs
    python bench/stages.py --split-cost 10000 > bench/results/split-cost-10000.md
    python bench/stages.py --macs             > bench/results/macs.md

``--library N``: instead, the library's own calls on the first N digits with the default
``--jobs`` (one chain below 10,000 digits: one process, the cores as threads).
``--split-cost N``: the first N digits as the library's archive (one chain per
5,000 digits) and as one single chain: file bytes of each (both decoded back).
``--macs``: multiply-adds per digit in each network's GEMMs, counted from the integer
model's matrices (what one digit's encode runs; no timing).

Every output starts with the date and the load average, so a run on a busy machine says so.

Stages are timed by wrapping codec's functions, so the bytes are those of
``vlaecodec.compress``; the decoded digits are checked against the originals.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import functools
import os
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
    p.add_argument("--split-cost", type=int, metavar="N", help="bytes of N digits as chains and as one chain")
    p.add_argument("--macs", action="store_true", help="multiply-adds per digit, network by network")
    a = p.parse_args()
    print(_stamp() + "\n")
    if a.macs:
        return macs(a.model)
    if a.split_cost:
        return split_cost(a.split_cost, a.model)
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
    print("| encode stage | seconds | share | decode stage | seconds | share |\n|---|---|---|---|---|---|")
    rows = max(len(ENCODE), len(DECODE))
    for i in range(rows):
        e = (f"{ENCODE[i][1]} | {enc.get(ENCODE[i][0], 0):.2f} | {enc.get(ENCODE[i][0], 0) / enc_total:.0%}"
             if i < len(ENCODE) else " | | ")
        d = (f"{DECODE[i][1]} | {dec.get(DECODE[i][0], 0):.2f} | {dec.get(DECODE[i][0], 0) / dec_total:.0%}"
             if i < len(DECODE) else " | | ")
        print(f"| {e} | {d} |")
    print(f"| **total** | **{enc_total:.2f} ({len(x) / enc_total:.0f} img/s)** | | **total** | "
          f"**{dec_total:.2f} ({len(x) / dec_total:.0f} img/s)** | |")
    print("\n" + _stamp("finished"))


def _stamp(what: str = "started") -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{what} {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, "
            f"{os.cpu_count()} CPUs, load average (1, 5, 15 min) {load}")


def split_cost(n: int, model: str | None) -> None:
    """The first n digits as the library writes them (one chain per CHAIN_IMAGES) and as
    one chain (``chain_count`` patched to 1): file bytes, both decoded back."""
    from vlaecodec import container
    loaded = vlaecodec.load_model(model)
    x = data.load_binarized_mnist("test")[:n]
    split = vlaecodec.compress(list(x), loaded)
    real = codec.chain_count
    codec.chain_count = lambda count: 1
    try:
        one = vlaecodec.compress(list(x), loaded)
    finally:
        codec.chain_count = real
    for blob in (split, one):
        assert np.array_equal(np.asarray(vlaecodec.decompress(blob, loaded).images), x), "decoded digits differ"
    k = len(vlaecodec.inspect(split).chains())
    print(f"{n} binarized test digits, model {loaded.name}, {container.CHAIN_IMAGES} digits per chain:\n")
    print("| archive | chains | bytes |\n|---|---|---|")
    print(f"| as vlaecodec.compress writes it | {k} | {len(split):,} |")
    print(f"| one chain | {len(vlaecodec.inspect(one).chains())} | {len(one):,} |")
    print(f"\nthe split costs {len(split) - len(one):,} bytes ({(len(split) - len(one)) / len(one):.2%}); "
          "both decoded back to the digits")


def macs(model: str | None) -> None:
    """Multiply-adds per digit in the GEMMs of each network, counted by wrapping the
    integer model's dense layers while one digit is encoded (the head's transposed
    matrices counted from their shapes; bias rows included where the GEMM holds them)."""
    loaded = vlaecodec.load_model(model)
    net = loaded.net
    x = data.load_binarized_mnist("test")[:1]
    count = collections.Counter()
    where = ["?"]
    orig = {name: getattr(intnet.Dense, name) for name in ("_acc", "elu", "elu_with_bias_column")}

    def counted(name):
        fn = orig[name]

        def wrapper(self, xx, *args, **kw):
            rows = xx.size // xx.shape[-1]
            cols = xx.shape[-1] + (args[0].shape[-1] if args and args[0] is not None else 0)
            count[where[0]] += rows * cols * self.w.shape[1]
            return fn(self, xx, *args, **kw)
        return wrapper

    for name in orig:
        setattr(intnet.Dense, name, counted(name))
    try:
        where[0] = "encoder q(z\\|x)"
        mean, _ = net._posterior(x)
        where[0] = "prior p(z) (all dimensions, one pass)"
        net.prior_means(mean)
        where[0] = "z features (upsampling)"
        net._zfeatures(mean)
        where[0] = "PixelCNN masked layers (window, z feature and bias rows)"
        net._features(x, mean)
    finally:
        for name, fn in orig.items():
            setattr(intnet.Dense, name, fn)
    hw = net.size * net.size
    count["PixelCNN output blocks and head"] = hw * (sum(w1.size + w2.size for w1, _, w2, _ in net._blocks_t)
                                               + net._head_t.size)
    print(f"Multiply-adds per digit in the GEMMs of model {loaded.name} ({net.size}x{net.size}):\n")
    print("| network | multiply-adds per digit |\n|---|---|")
    for k, v in count.items():
        print(f"| {k} | {v / 1e6:.2f} M |")
    print(f"| **total** | **{sum(count.values()) / 1e6:.2f} M** |")


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
    print("\n" + _stamp("finished"))


if __name__ == "__main__":
    main()
