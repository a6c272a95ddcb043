"""Issue 19's out-of-distribution table for images of any size, through the CLI as a user
runs it: our own non-photographic images (``bench/ood_images.py``: 12 RGB graphics, the
same 12 in gray, 10 binary documents), one file per image,

    python -m vlaecodec compress IMG.png -o IMG.vlae        (no --model, default coder choice)
    python -m vlaecodec decompress IMG.vlae -o back.png     (compared pixel for pixel)
    python -m vlaecodec info --no-elbo IMG.vlae             (which coder was chosen)

against PNG (``optipng -o2``), WebP lossless (``cwebp -lossless -z 9 -exact``), JPEG-XL
lossless (``cjxl -d 0 -e 7`` and ``-e 9``) and, for binary images, JBIG1 (``pbmtojbg -q -s
HEIGHT``: sequential, one stripe, the smallest of pbmtojbg's options on these pages).
Every peer's file is decoded back and compared too (optipng's PNG with Pillow, WebP with
``dwebp``, JPEG-XL with ``djxl``, JBIG1 with ``jbgtopbm``).

Issue 19's bars, checked here: per set, vlaecodec's total <= 1.02x WebP lossless's
(graphics) or <= JBIG1's (documents); per file, <= 1.10x (documents: 1.25x) the best of
optipng, WebP lossless, JPEG-XL -e 7 and JBIG1 on that image (``cjxl -e 9`` is shown but
is not part of that bar).

    nice -n 5 python bench/ood_anysize.py                      # all three sets
    nice -n 5 python bench/ood_anysize.py --sets binary --update   # redo one set, keep the others

writes bench/results/ood-anysize.{md,json} (``--out`` elsewhere) and prints the markdown.
Times are wall seconds of whole processes (Python start-up included) on whatever machine
runs it; the header records the load average.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ood_images  # noqa: E402  (bench/ood_images.py, the generator)

sys.path.remove(str(HERE))
from vlaecodec.bench import JBIG_ARGS, _pbm, _read_pbm  # noqa: E402
from vlaecodec.photo_bench import PEERS as PHOTO_PEERS  # noqa: E402

SET_TITLES = {"rgb": "RGB graphics", "gray": "Gray graphics", "binary": "Binary documents"}
VLAE = "vlaecodec"
WEBP = "WebP lossless (cwebp -lossless -z 9 -exact)"
JBIG = "JBIG1 (pbmtojbg -q -s H)"
# photo_bench's peers without JPEG 2000: (label, encode(in, out), decode(in, out) or None, suffix)
PEERS = [p for p in PHOTO_PEERS if not p[0].startswith("JPEG 2000")]
BAR_PEERS = {"PNG (optipng -o2)", WEBP, "JPEG-XL lossless (cjxl -d 0 -e 7)", JBIG}
SHORT = {"PNG (optipng -o2)": "optipng", WEBP: "WebP", "JPEG-XL lossless (cjxl -d 0 -e 7)": "JXL e7",
         "JPEG-XL lossless (cjxl -d 0 -e 9)": "JXL e9", JBIG: "JBIG1", VLAE: VLAE}
TOTAL_BAR = {"rgb": (WEBP, 1.02), "gray": (WEBP, 1.02), "binary": (JBIG, 1.0)}
FILE_BAR = {"rgb": 1.10, "gray": 1.10, "binary": 1.25}
CLI = [sys.executable, "-m", "vlaecodec"]


def _run(cmd: list[str], **kw: Any) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, **kw)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace") if isinstance(r.stderr, bytes) else r.stderr
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {r.returncode}): {err.strip()[-400:]}")
    return r, wall


def load(path: Path) -> np.ndarray:
    """A PNG's pixels as a user would see them: RGB (H, W, 3), gray (H, W), or binary
    (H, W) bool with True = white (Pillow's mode "1")."""
    with Image.open(path) as im:
        if im.mode == "1":
            return np.asarray(im).copy()
        if im.mode in ("L", "RGB"):
            return np.asarray(im).copy()
        if im.mode in ("P", "LA", "RGBA", "I", "I;16"):
            return np.asarray(im.convert("RGB" if im.mode in ("P", "RGBA") else "L")).copy()
        return np.asarray(im).copy()


def same(decoded: np.ndarray, ref: np.ndarray) -> bool:
    """Is a decoder's output the reference image? A gray or binary image may come back as
    RGB (dwebp) and a binary one as 0/255 or 0/1 levels (djxl): the same two levels, the
    same pattern, is the same image."""
    d = decoded
    if d.ndim == 3 and ref.ndim == 2:
        if not (np.array_equal(d[..., 0], d[..., 1]) and np.array_equal(d[..., 0], d[..., 2])):
            return False
        d = d[..., 0]
    if d.shape != ref.shape:
        return False
    if ref.dtype == bool:
        if d.dtype == bool:
            return bool(np.array_equal(d, ref))
        top = int(d.max()) if d.size else 0
        return bool(np.isin(d, (0, top)).all() and np.array_equal(d > 0, ref))
    return bool(np.array_equal(d, ref))


def vlaecodec(src: Path, work: Path) -> dict[str, Any]:
    """One image through the CLI: compress (no --model), decompress and compare, info."""
    out = work / (src.stem + ".vlae")
    back = work / (src.stem + ".back.png")
    _, t_enc = _run(CLI + ["compress", str(src), "-o", str(out), "-q", "--force"])
    _, t_dec = _run(CLI + ["decompress", str(out), "-o", str(back), "-q", "--force"])
    ok = same(load(back), load(src))
    if not ok:
        raise RuntimeError(f"python -m vlaecodec decompress {out.name}: not the pixels of {src.name}")
    r, _ = _run(CLI + ["info", "--no-elbo", "-q", str(out)], text=True)
    info = (r.stdout + r.stderr).strip()
    m = re.search(r"coder (.+?), \d+ bytes", info)
    coder = m.group(1) if m else (info.splitlines() or ["?"])[0]
    return {"file": out.name, "bytes": out.stat().st_size, "encode_s": t_enc, "decode_s": t_dec,
            "coder": coder, "lossless": ok, "info": info.splitlines()[:3]}


def peer(label: str, enc: Callable, dec: Callable | None, suffix: str, src: Path, work: Path,
         ref: np.ndarray) -> dict[str, Any]:
    exe = enc("", "")[0]
    if not shutil.which(exe):
        return {"error": f"{exe} not installed"}
    o = work / f"{src.stem}.{SHORT[label].replace(' ', '')}{suffix}"
    if o.exists():
        o.unlink()
    _, te = _run(enc(str(src), str(o)))
    if dec is None:                              # a PNG: Pillow reads it
        t0 = time.perf_counter()
        got = load(o)
        td = time.perf_counter() - t0
    else:
        dexe = dec("", "")[0]
        if not shutil.which(dexe):
            return {"file": o.name, "bytes": o.stat().st_size, "encode_s": te, "decode_s": None, "lossless": None}
        d = work / f"{o.name}.dec{'.ppm' if suffix == '.webp' else '.png'}"
        _, td = _run(dec(str(o), str(d)))
        got = load(d)
    ok = same(got, ref)
    if not ok:
        raise RuntimeError(f"{label} was not lossless on {src.name}")
    return {"file": o.name, "bytes": o.stat().st_size, "encode_s": te, "decode_s": td, "lossless": ok}


def jbig(src: Path, work: Path, ref: np.ndarray) -> dict[str, Any]:
    if not shutil.which("pbmtojbg"):
        return {"error": "pbmtojbg not installed"}
    ink = ~ref                                   # PBM: 1 = black
    o = work / f"{src.stem}.jbg"
    t0 = time.perf_counter()
    r, _ = _run(["pbmtojbg", *JBIG_ARGS, "-s", str(ref.shape[0])], input=_pbm(ink))
    te = time.perf_counter() - t0
    o.write_bytes(r.stdout)
    res: dict[str, Any] = {"file": o.name, "bytes": o.stat().st_size, "encode_s": te, "decode_s": None,
                           "lossless": None}
    if shutil.which("jbgtopbm"):
        t0 = time.perf_counter()
        back, _ = _run(["jbgtopbm"], input=r.stdout)
        res["decode_s"] = time.perf_counter() - t0
        got = _read_pbm(back.stdout)
        res["lossless"] = got is not None and bool(np.array_equal(got.astype(bool), ink))
        if not res["lossless"]:
            raise RuntimeError(f"JBIG1 was not lossless on {src.name}")
    return res


def bench_set(kind: str, paths: list[Path], work: Path,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict[str, Any]:
    """Every image of one set through vlaecodec and the peers; outputs are left in ``work``
    (each row names its files), so the sizes can be checked against the disk."""
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for src in paths:
        ref = load(src)
        h, w = ref.shape[:2]
        row: dict[str, Any] = {"image": src.name, "width": w, "height": h,
                               "subpixels": int(h * w * (3 if ref.ndim == 3 else 1)), "codecs": {}}
        row["codecs"][VLAE] = vlaecodec(src, work)
        for label, enc, dec, suffix in PEERS:
            row["codecs"][label] = peer(label, enc, dec, suffix, src, work, ref)
        if kind == "binary":
            row["codecs"][JBIG] = jbig(src, work, ref)
        sizes = {k: c["bytes"] for k, c in row["codecs"].items() if k in BAR_PEERS and "bytes" in c}
        best = min(sizes, key=sizes.get) if sizes else None
        v = row["codecs"][VLAE]["bytes"]
        row["best_peer"] = best
        row["best_peer_bytes"] = sizes.get(best)
        row["ratio_to_best"] = v / sizes[best] if best else None
        row["bar"] = FILE_BAR[kind]
        row["over_bar"] = bool(best and v > FILE_BAR[kind] * sizes[best])
        rows.append(row)
        log(f"{kind}/{src.name} {w}x{h}: vlaecodec {v} B ({row['codecs'][VLAE]['coder']}), best peer "
            f"{SHORT.get(best, best)} {row['best_peer_bytes']} B, ratio {row['ratio_to_best']:.3f}"
            f"{'  OVER ' + str(FILE_BAR[kind]) if row['over_bar'] else ''}")
    return summarize(kind, rows)


def summarize(kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    sub = sum(r["subpixels"] for r in rows)
    totals: dict[str, Any] = {}
    labels = [VLAE] + [p[0] for p in PEERS] + ([JBIG] if kind == "binary" else [])
    for label in labels:
        cs = [r["codecs"].get(label, {}) for r in rows]
        if not cs or any("bytes" not in c for c in cs):
            totals[label] = {"error": next((c["error"] for c in cs if "error" in c), "missing")}
            continue
        b = sum(c["bytes"] for c in cs)
        totals[label] = {"bytes": b, "bits_per_subpixel": 8 * b / sub,
                         "encode_s": sum(c["encode_s"] for c in cs),
                         "decode_s": (sum(c["decode_s"] for c in cs)
                                      if all(c.get("decode_s") is not None for c in cs) else None)}
    ref_label, bar = TOTAL_BAR[kind]
    v = totals[VLAE]["bytes"]
    ref = totals.get(ref_label, {}).get("bytes")
    best_sum = sum(r["best_peer_bytes"] for r in rows) if all(r["best_peer_bytes"] for r in rows) else None
    coders: dict[str, int] = {}
    for r in rows:
        coders[r["codecs"][VLAE]["coder"]] = coders.get(r["codecs"][VLAE]["coder"], 0) + 1
    return {"set": kind, "title": SET_TITLES[kind], "images": len(rows), "subpixels": sub, "totals": totals,
            "total_bar": {"against": ref_label, "bar": bar, "ratio": v / ref if ref else None,
                          "holds": (v <= bar * ref) if ref else None},
            "ratio_to_sum_of_best_peers": v / best_sum if best_sum else None,
            "files_over_bar": [r["image"] for r in rows if r["over_bar"]],
            "coders": coders, "rows": rows}


def markdown(doc: dict[str, Any]) -> str:
    L = ["## Out-of-distribution images of any size (issue 19)", "",
         f"Images: our own, drawn by `bench/ood_images.py` (seed {doc['seed']}); documents from "
         f"{doc.get('documents_source', '?')}. One file per image through the CLI (`python -m vlaecodec "
         "compress IMG.png -o IMG.vlae`, no --model; decompressed and compared pixel for pixel; coder from "
         "`python -m vlaecodec info`). Every peer file decoded back and compared. Times: wall seconds of "
         "whole processes (start-up included).", ""]
    for kind in ood_images.SETS:
        s = doc["sets"].get(kind)
        if not s:
            continue
        ref_label, bar = s["total_bar"]["against"], s["total_bar"]["bar"]
        L += [f"### {s['title']} ({s['images']} images, {s['subpixels']:,} sub-pixels)", "",
              f"Measured {s['date']} with `{s['command']}`; load average at the start {s['loadavg']}"
              + (f" ({s['note']})" if s.get("note") else "") + ".", "",
              "| codec | total bytes | bits/sub-pixel | encode s | decode s |", "|---|---:|---:|---:|---:|"]
        for label, t in s["totals"].items():
            if "error" in t:
                L.append(f"| {label} | ({t['error']}) | | | |")
                continue
            dec = f"{t['decode_s']:.1f}" if t.get("decode_s") is not None else ""
            L.append(f"| {label} | {t['bytes']:,} | {t['bits_per_subpixel']:.4f} | {t['encode_s']:.1f} | {dec} |")
        tb = s["total_bar"]
        L += ["", f"vlaecodec / {SHORT[ref_label]} total: **{tb['ratio']:.4f}** (bar <= {bar}: "
              f"{'holds' if tb['holds'] else 'FAILS'}); vlaecodec / sum of each file's best peer "
              f"(optipng, WebP, JXL e7{', JBIG1' if kind == 'binary' else ''}): "
              f"{s['ratio_to_sum_of_best_peers']:.4f}. vlaecodec's coders: "
              + ", ".join(f"{k} {v}" for k, v in sorted(s["coders"].items())) + ".", "",
              f"| image | size | vlaecodec coder | vlaecodec bytes | best peer | its bytes | ratio (bar {s['rows'][0]['bar']}) "
              "| JXL e9 bytes | encode s | decode s |", "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in s["rows"]:
            v = r["codecs"][VLAE]
            e9 = r["codecs"].get("JPEG-XL lossless (cjxl -d 0 -e 9)", {}).get("bytes", "")
            flag = " **over**" if r["over_bar"] else ""
            L.append(f"| {r['image']} | {r['width']}x{r['height']} | {v['coder']} | {v['bytes']:,} | "
                     f"{SHORT.get(r['best_peer'], r['best_peer'])} | {r['best_peer_bytes']:,} | "
                     f"{r['ratio_to_best']:.3f}{flag} | {e9:,} | {v['encode_s']:.1f} | {v['decode_s']:.1f} |")
        over = s["files_over_bar"]
        L += ["", f"Files over the per-file bar: {len(over)} of {s['images']}" + (f" ({', '.join(over)})" if over else "")
              + ".", ""]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bench/ood_anysize.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default=",".join(ood_images.SETS), help="comma-separated: rgb,gray,binary")
    p.add_argument("--limit", type=int, help="only the first N images of each set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results"), help="folder for ood-anysize.{md,json}")
    p.add_argument("--update", action="store_true",
                   help="keep the other sets' results already in the output JSON (redo only --sets)")
    p.add_argument("--keep", help="leave the images and coded files in this folder (default: a temp folder)")
    p.add_argument("--note", help="a remark stored with each set measured (e.g. the machine was loaded)")
    a = p.parse_args(argv)
    sets = [s for s in a.sets.split(",") if s]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "ood-anysize.json"
    doc: dict[str, Any] = {"seed": a.seed, "sets": {}}
    if a.update and jpath.exists():
        doc = json.loads(jpath.read_text())
        if doc.get("seed") != a.seed:
            raise SystemExit(f"{jpath} holds seed {doc.get('seed')}, not {a.seed}: drop --update")
    command = "nice -n 5 python bench/ood_anysize.py " + " ".join(argv if argv is not None else sys.argv[1:])
    tmpctx = tempfile.TemporaryDirectory(prefix="vlaecodec-ood-") if not a.keep else None
    root = Path(a.keep) if a.keep else Path(tmpctx.name)
    try:
        written = ood_images.write(root / "images", a.seed, sets, a.limit)
        if "binary" in sets:
            doc["documents_source"] = ood_images.documents(a.seed)[1]
        for kind in sets:
            load1 = os.getloadavg()[0]
            s = bench_set(kind, written[kind], root / "coded" / kind)
            s.update(date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), command=command.strip(),
                     loadavg=f"{load1:.2f}", note=a.note, limit=a.limit)
            doc["sets"][kind] = s
    finally:
        if tmpctx:
            tmpctx.cleanup()
    doc["tools"] = {t: shutil.which(t) for t in ("optipng", "cwebp", "dwebp", "cjxl", "djxl", "pbmtojbg", "jbgtopbm")}
    jpath.write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    (out / "ood-anysize.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
