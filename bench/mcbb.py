"""Monte Carlo bits-back: file size and coding speed against the number of particles K.

    python bench/mcbb.py --limit 2000 --particles 1 4 16 64 --out bench/results
    python bench/mcbb.py --limit 10000 --particles 1 4 16 32 64 --jobs 2 --no-bound

For each K: one chained archive of the first N binarized MNIST test digits written by
``vlaecodec.compress(..., particles=K)`` (one process, so times compare), its size in
bits/dim, encode and decode images/s, and a lossless check. The model's -ELBO and its
IWAE bound with K samples (``evaluate``) on the same digits are printed beside it: the
file should approach the IWAE bound as K grows (the first MC_WARMUP bits-back images
of a chain use one particle, and the chain's direct start is in the file too).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import vlaecodec
from vlaecodec import container, data
from vlaecodec.evaluate import evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=2000)
    p.add_argument("--particles", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--model", default="vlae-mnist-v2")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--steady", action="store_true",
                   help="instead of files: the net bits per image of one bits-back batch of all N digits "
                        "pushed onto a stack that already holds plenty of bits (no chain start, no warm-up)")
    p.add_argument("--jobs", type=int, default=1,
                   help="processes for the archive's chains (the bytes do not depend on it; the times do)")
    p.add_argument("--no-bound", action="store_true", help="skip the float model's bound (an IWAE pass per K)")
    a = p.parse_args()
    if a.steady:
        return steady(a)
    loaded = vlaecodec.load_model(a.model)
    x = data.load_binarized_mnist("test")[:a.limit]
    n, dims = len(x), x.shape[1] * x.shape[2]
    rows = []
    for k in a.particles:
        t0 = time.perf_counter()
        blob = vlaecodec.compress(list(x), loaded, particles=k, jobs=a.jobs)
        enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = vlaecodec.decompress(blob, loaded, jobs=a.jobs).images
        dec = time.perf_counter() - t0
        ok = all(np.array_equal(u, v) for u, v in zip(back, x))
        if a.no_bound:
            bound = None
        else:
            ev = evaluate(loaded, x, iwae_k=k) if k > 1 else evaluate(loaded, x)
            bound = ev["iwae_bpd"] if k > 1 else ev["neg_elbo_bpd"]
        chains = vlaecodec.inspect(blob).chains()
        row = {"particles": k, "bytes": len(blob), "bits_per_dim": 8 * len(blob) / (n * dims),
               "batches_per_chain": [len(c) for c in chains],
               "model_bound_bpd": bound, "bound": f"IWAE k={k}" if k > 1 else "-ELBO",
               "encode_images_per_s": n / enc, "decode_images_per_s": n / dec, "lossless": ok}
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = rows[0]["bits_per_dim"] if rows[0]["particles"] == 1 else None
    md = [f"### Monte Carlo bits-back, first {n} binarized MNIST test digits, model {loaded.name}",
          f"(one chain per 5,000 images; the first {container.MC_WARMUP} bits-back images of a chain use one "
          f"particle; {a.jobs} process{'es' if a.jobs > 1 else ''})", "",
          "| particles K | bytes | file bits/dim | vs K=1 | model bound (float, one seeded draw) | encode img/s | decode img/s "
          "| batches per chain | lossless |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rel = f"{100 * (r['bits_per_dim'] / base - 1):+.2f}%" if base else ""
        md.append(f"| {r['particles']} | {r['bytes']:,} | {r['bits_per_dim']:.5f} | {rel} | " + (f"{r['bound']} {r['model_bound_bpd']:.5f}" if r['model_bound_bpd'] is not None else "not measured") + " | "
                  f"{r['encode_images_per_s']:.0f} | {r['decode_images_per_s']:.0f} | "
                  f"{', '.join(map(str, r['batches_per_chain']))} | {r['lossless']} |")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"mcbb-{n}"
    (out / f"{stem}.json").write_text(json.dumps({"model": loaded.name, "n": n, "rows": rows}, indent=2) + "\n")
    (out / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def steady(a) -> None:
    """Steady-state rate: what each image adds to a long chain, per K."""
    from vlaecodec import codec
    loaded = vlaecodec.load_model(a.model)
    net = loaded.net
    x = data.load_binarized_mnist("test")[:a.limit]
    dims = x.shape[1] * x.shape[2]
    ev = evaluate(loaded, x)
    rows = []
    for k in a.particles:
        rng = np.random.default_rng(0)
        # Enough words that every pop of K latent sets per image finds real bits.
        words = 40 * k * len(x) + 10000
        coder = codec.new_coder(rng.integers(0, 2 ** 32, words, dtype=np.uint64).astype(np.uint32), seal=True)
        n0 = coder.num_valid_bits()
        t0 = time.perf_counter()
        for i in range(0, len(x), 250):   # batches of 250, each on the stack the last one left
            codec._push_bits_back(net, x[i:i + 250], coder, net.posterior(x[i:i + 250]), k)
        enc = time.perf_counter() - t0
        bits = (coder.num_valid_bits() - n0) / len(x)
        iw = evaluate(loaded, x, iwae_k=k)["iwae_bpd"] if k > 1 else ev["neg_elbo_bpd"]
        rows.append({"particles": k, "bits_per_image": bits, "bits_per_dim": bits / dims, "model_bound_bpd": iw,
                     "encode_images_per_s": len(x) / enc})
        print(json.dumps(rows[-1]), flush=True)
    md = [f"### Monte Carlo bits-back, steady state: first {len(x)} binarized MNIST test digits pushed in batches "
          f"of 250 onto a full stack, model {loaded.name}", "",
          "| particles K | bits/image | bits/dim | vs K=1 | model bound (float, IWAE k=K; K=1: -ELBO) | encode img/s |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['particles']} | {r['bits_per_image']:.2f} | {r['bits_per_dim']:.5f} | "
                  f"{100 * (r['bits_per_image'] / rows[0]['bits_per_image'] - 1):+.2f}% | {r['model_bound_bpd']:.5f} | "
                  f"{r['encode_images_per_s']:.0f} |")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"mcbb-steady-{len(x)}.md").write_text("\n".join(md) + "\n")
    (out / f"mcbb-steady-{len(x)}.json").write_text(json.dumps({"model": loaded.name, "rows": rows}, indent=2) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
