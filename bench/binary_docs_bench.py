"""The bilevel context coder against JBIG1, optipng, WebP lossless and JPEG-XL on the
rendered documents of ``bench/binary_docs.py`` (or on a folder of 1-bit PNGs).

    python bench/binary_docs_bench.py [--seed N | --folder DIR] [--time]
    python bench/binary_docs_bench.py --variants "[{}, {'mix': False}]"   # tuning


Prints a Markdown table: bytes per file for vlaecodec's context coder (the payload, plus
the any-size container's record when --container), pbmtojbg (JBIG1, default options and
-q, the smaller kept), optipng -o2, cwebp -lossless -z 9 -exact and cjxl -d 0 -e 7;
totals; and, per file, our size over the best of the four peers. --time adds encode and
decode seconds of the context coder (this process, numpy). --variants prints instead the
model's ideal code length (``bilevel.code_length``, bytes) per document for each dict of
``bilevel._Model`` arguments ({} = the shipped model; "ring": n means the template of the
first n pixels of ``bilevel._ring``).
"""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from binary_docs import make_documents  # noqa: E402

from vlaecodec import bilevel  # noqa: E402


def _pbm(img: np.ndarray) -> bytes:
    h, w = img.shape
    return f"P4\n{w} {h}\n".encode() + np.packbits(img.astype(bool), axis=1).tobytes()


def _png1(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img == 0).save(buf, format="PNG")
    return buf.getvalue()


def peers(img: np.ndarray, tmp: Path) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    src = tmp / "x.png"
    src.write_bytes(_png1(img))
    if shutil.which("pbmtojbg"):
        sizes = []
        for args in ([], ["-q"]):
            r = subprocess.run(["pbmtojbg", *args], input=_pbm(img), capture_output=True, check=True)
            sizes.append(len(r.stdout))
        out["JBIG1"] = min(sizes)
        out["JBIG1 default"] = sizes[0]
    if shutil.which("optipng"):
        dst = tmp / "o.png"
        dst.unlink(missing_ok=True)
        subprocess.run(["optipng", "-o2", "-quiet", "-force", "-out", str(dst), str(src)], check=True)
        out["optipng -o2"] = dst.stat().st_size
    if shutil.which("cwebp"):
        dst = tmp / "o.webp"
        subprocess.run(["cwebp", "-quiet", "-lossless", "-z", "9", "-exact", str(src), "-o", str(dst)], check=True)
        out["WebP -z 9"] = dst.stat().st_size
    if shutil.which("cjxl"):
        dst = tmp / "o.jxl"
        subprocess.run(["cjxl", "-d", "0", "-e", "7", "--quiet", str(src), str(dst)], check=True,
                       capture_output=True)
        out["JXL -e 7"] = dst.stat().st_size
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folder", help="1-bit PNGs to measure instead of the rendered documents")
    ap.add_argument("--time", action="store_true", help="also time encode and decode")
    ap.add_argument("--variants", help="a Python list of dicts of model arguments: ideal sizes only")
    a = ap.parse_args(argv)
    if a.folder:
        docs = [(p.stem, (np.asarray(Image.open(p).convert("L")) < 128).astype(np.uint8))
                for p in sorted(Path(a.folder).glob("*.png"))]
    else:
        docs = make_documents(a.seed)
    if a.variants:
        import ast
        for v in ast.literal_eval(a.variants):
            kw = dict(v)
            if "ring" in kw:
                kw["template"] = bilevel._ring(kw.pop("ring"))
            t0 = time.perf_counter()
            sizes = [bilevel.code_length(img, bilevel._Model(**kw)) / 8 for _, img in docs]
            print(f"{v}: total {sum(sizes):,.0f} bytes ({time.perf_counter() - t0:.0f} s): "
                  + ", ".join(f"{n} {s:,.0f}" for (n, _), s in zip(docs, sizes)), flush=True)
        return
    cols = ["JBIG1", "JBIG1 default", "optipng -o2", "WebP -z 9", "JXL -e 7"]
    print(f"| document | size | ours | {' | '.join(cols)} | ours / best peer |" + (" enc s | dec s |" if a.time else ""))
    print("|---" * (len(cols) + 4 + (2 if a.time else 0)) + "|")
    tot = {k: 0 for k in ["ours", *cols]}
    worst = 0.0
    with tempfile.TemporaryDirectory() as td:
        for name, img in docs:
            t0 = time.perf_counter()
            pl = bilevel.encode(img)
            t1 = time.perf_counter()
            if a.time:
                back = bilevel.decode(pl, *img.shape)
                t2 = time.perf_counter()
                assert np.array_equal(back, img)
            p = peers(img, Path(td))
            best = min(v for k, v in p.items() if k != "JBIG1 default")
            ratio = len(pl) / best
            worst = max(worst, ratio)
            tot["ours"] += len(pl)
            for k in cols:
                tot[k] += p.get(k) or 0
            row = f"| {name} | {img.shape[1]}x{img.shape[0]} | {len(pl):,} | " + " | ".join(
                f"{p[k]:,}" if p.get(k) else "-" for k in cols) + f" | {ratio:.3f} |"
            if a.time:
                row += f" {t1 - t0:.2f} | {t2 - t1:.2f} |"
            print(row, flush=True)
    print(f"| **total** | | **{tot['ours']:,}** | " + " | ".join(f"{tot[k]:,}" for k in cols)
          + f" | worst {worst:.3f} |" + (" | |" if a.time else ""))
    print(f"\nours / JBIG1 (total): {tot['ours'] / tot['JBIG1']:.4f}")


if __name__ == "__main__":
    main()
