"""``vlaecodec bench --dataset photos``: photographs through the CLI, one file per photo,
against PNG (optipng -o2), WebP lossless (cwebp -z 9), JPEG 2000 lossless (opj_compress)
and JPEG-XL lossless (cjxl -e 7 and -e 9) on the same images.

What is measured is what a user gets: every vlaecodec figure is a file written by
``python -m vlaecodec compress photo.png -o photo.vlae`` (the encoder's own choice of
coder: the photo model, or PNG/WebP when they are smaller), timed as a whole process,
and checked to decompress to the same pixels. Beside it: the photo model's own file size
when forced (``--coder model``) and its float -ELBO (needs torch), so the gap between the
real rate and the bound is visible. Times are wall seconds per megapixel, one photo at a time.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

PEERS = [
    # label, encode command (in, out), decode command (in, out) or None, output suffix
    ("PNG (optipng -o2)", lambda i, o: ["optipng", "-quiet", "-o2", "-out", o, i], None, ".png"),
    ("WebP lossless (cwebp -lossless -z 9 -exact)", lambda i, o: ["cwebp", "-quiet", "-lossless", "-z", "9", "-exact", i, "-o", o],
     lambda i, o: ["dwebp", "-quiet", i, "-ppm", "-o", o], ".webp"),
    ("JPEG 2000 lossless (opj_compress)", lambda i, o: ["opj_compress", "-i", i, "-o", o],
     lambda i, o: ["opj_decompress", "-i", i, "-o", o], ".j2k"),
    ("JPEG-XL lossless (cjxl -d 0 -e 7)", lambda i, o: ["cjxl", "-d", "0", "-e", "7", "--quiet", i, o],
     lambda i, o: ["djxl", "--quiet", i, o], ".jxl"),
    ("JPEG-XL lossless (cjxl -d 0 -e 9)", lambda i, o: ["cjxl", "-d", "0", "-e", "9", "--quiet", i, o],
     lambda i, o: ["djxl", "--quiet", i, o], ".jxl"),
]
DECODED_SUFFIX = {".webp": ".ppm", ".j2k": ".png", ".jxl": ".png"}


def _run(cmd: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {r.stderr.decode(errors='replace')[-300:]}")
    return time.perf_counter() - t


def _pixels(path: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im).copy()


def export(images: list[np.ndarray], folder: Path) -> list[Path]:
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, a in enumerate(images):
        p = folder / f"photo{k:02d}.png"
        Image.fromarray(a).save(p)
        paths.append(p)
    return paths


def bench(paths: list[Path], *, peers: bool = True, elbo: bool = True, model_only: bool = True,
          log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict[str, Any]:
    """Every photo through the CLI and the peers; per-codec totals (bits per sub-pixel,
    seconds per megapixel each way) and per-photo rows."""
    cli = [sys.executable, "-m", "vlaecodec"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vlaecodec-photos-") as tmp:
        tmp = Path(tmp)
        for k, src in enumerate(paths):
            x = _pixels(src)
            mp = x.shape[0] * x.shape[1] / 1e6
            row: dict[str, Any] = {"photo": src.name, "width": x.shape[1], "height": x.shape[0],
                                   "subpixels": int(x.size), "codecs": {}}
            out = tmp / f"{k}.vlae"
            back = tmp / f"{k}.back.png"
            t_enc = _run(cli + ["compress", str(src), "-o", str(out), "-q", "--force"])
            t_dec = _run(cli + ["decompress", str(out), "-o", str(back), "-q", "--force"])
            if not np.array_equal(_pixels(back), x):
                raise RuntimeError(f"{src.name}: vlaecodec did not give back the same pixels")
            from . import anysize
            data = out.read_bytes()
            coder = anysize.parse(data).records[0].coder_name if anysize.is_anysize(data) else "28x28 model"
            row["codecs"]["vlaecodec"] = {"bytes": len(data), "encode_s": t_enc, "decode_s": t_dec, "coder": coder}
            if model_only:
                mo = tmp / f"{k}.model.vlae"
                try:
                    t_m = _run(cli + ["compress", str(src), "-o", str(mo), "-q", "--force", "--coder", "model"])
                    t_md = _run(cli + ["decompress", str(mo), "-o", str(back), "-q", "--force"])
                    row["codecs"]["vlaecodec photo model only"] = {"bytes": mo.stat().st_size, "encode_s": t_m,
                                                                   "decode_s": t_md}
                except RuntimeError as e:
                    row["codecs"]["vlaecodec photo model only"] = {"error": str(e)[:200]}
            if elbo:
                row["neg_elbo_bits"] = _float_elbo_bits(x)
            for label, enc, dec, suffix in (PEERS if peers else []):
                exe = enc("", "")[0]
                if not shutil.which(exe):
                    row["codecs"][label] = {"error": f"{exe} not installed"}
                    continue
                o = tmp / f"{k}{suffix}"
                if o.exists():
                    o.unlink()
                te = _run(enc(str(src), str(o)))
                td = None
                if dec is not None:
                    d = tmp / f"{k}.dec{DECODED_SUFFIX[suffix]}"
                    td = _run(dec(str(o), str(d)))
                    got = _pixels(d)
                    if got.shape != x.shape:   # a gray photo decoded as RGB by a peer
                        got = got[..., 0] if got.ndim == 3 and x.ndim == 2 else got
                    if not np.array_equal(got, x):
                        raise RuntimeError(f"{label} was not lossless on {src.name}")
                else:
                    t0 = time.perf_counter()
                    got = _pixels(o)
                    td = time.perf_counter() - t0
                    if not np.array_equal(got, x):
                        raise RuntimeError(f"{label} was not lossless on {src.name}")
                row["codecs"][label] = {"bytes": o.stat().st_size, "encode_s": te, "decode_s": td}
            rows.append(row)
            v = row["codecs"]["vlaecodec"]
            log(f"{src.name} {x.shape[1]}x{x.shape[0]}: vlaecodec {8 * v['bytes'] / x.size:.4f} bits/sub-pixel "
                f"({v['coder']}), {mp / v['encode_s'] * 1e3:.0f} / {mp / v['decode_s'] * 1e3:.0f} kpx/s")
    return summarize(rows)


def _float_elbo_bits(x: np.ndarray, name: str | None = None) -> float | None:
    """A photo model's float -ELBO of one photo in bits: the model called ``name``, or the
    current (not retired) model of the photo's kind; None without torch or without a
    float checkpoint."""
    try:
        import torch
    except ImportError:
        return None
    from . import anysize
    from .photo_train import evaluate_photos
    from .photo_vlae import PhotoConfig, PhotoVLAE
    mode = "RGB" if x.ndim == 3 else "L"
    from .zoo import list_manifests
    for m in list_manifests("photo-vlae"):
        if m.get("mode") == mode and m.get("float_file") and (
                m["name"] == name if name else not m.get("retired")):
            import io
            from .zoo import _read_verified
            raw, _ = _read_verified(Path(m["_dir"]) / m["float_file"], m.get("float_sha256"))
            ck = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
            model = PhotoVLAE(PhotoConfig.from_dict(ck["config"]))
            model.load_state_dict(ck["state_dict"])
            return evaluate_photos(model.eval(), [x])["bpd"] * x.size
    return None


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sub = sum(r["subpixels"] for r in rows)
    mpx = sum(r["width"] * r["height"] for r in rows) / 1e6
    totals: dict[str, Any] = {}
    for label in rows[0]["codecs"] if rows else []:
        cs = [r["codecs"].get(label, {}) for r in rows]
        if any("error" in c or not c for c in cs):
            totals[label] = {"error": next((c.get("error") for c in cs if "error" in c), "missing")}
            continue
        b = sum(c["bytes"] for c in cs)
        te = sum(c["encode_s"] for c in cs)
        td = sum(c["decode_s"] for c in cs)
        totals[label] = {"bytes": b, "bits_per_subpixel": 8 * b / sub, "encode_s_per_mpx": te / mpx,
                         "decode_s_per_mpx": td / mpx, "encode_kpx_s": mpx / te * 1e3, "decode_kpx_s": mpx / td * 1e3}
    elbo = [r.get("neg_elbo_bits") for r in rows]
    if rows and all(e is not None for e in elbo):
        totals["photo model -ELBO (float, bound)"] = {"bits_per_subpixel": sum(elbo) / sub}
    return {"photos": len(rows), "subpixels": sub, "megapixels": mpx, "totals": totals, "rows": rows}


def markdown(result: dict[str, Any], title: str) -> str:
    lines = [f"### {title}", "",
             f"{result['photos']} photos, {result['megapixels']:.2f} megapixels, {result['subpixels']:,} sub-pixels; "
             "one file per photo; times are wall seconds per megapixel (one process per file).", "",
             "| codec | bits/sub-pixel | encode s/MP | decode s/MP |", "|---|---|---|---|"]
    for label, t in result["totals"].items():
        if "error" in t:
            lines.append(f"| {label} | ({' '.join(str(t['error']).split())}) | | |")
        elif "bytes" not in t:
            lines.append(f"| {label} | {t['bits_per_subpixel']:.4f} | | |")
        else:
            lines.append(f"| {label} | {t['bits_per_subpixel']:.4f} | {t['encode_s_per_mpx']:.2f} | "
                         f"{t['decode_s_per_mpx']:.2f} |")
    coders: dict[str, int] = {}
    for r in result["rows"]:
        c = r["codecs"]["vlaecodec"]["coder"]
        coders[c] = coders.get(c, 0) + 1
    lines += ["", "vlaecodec's choice per photo: " + ", ".join(f"{k} {v}" for k, v in sorted(coders.items()))]
    return "\n".join(lines) + "\n"


def bits_map(net, x: np.ndarray) -> np.ndarray:
    """Bits each pixel costs under the integer photo model (all its channels), with z at
    the posterior's most likely cells: the model's view of where a photo's bits go."""
    from . import mixture
    from .photo_int import STRIDE
    x3 = x if x.ndim == 3 else x[..., None]
    H, W, C = x3.shape
    hp, wp = -(-H // STRIDE) * STRIDE, -(-W // STRIDE) * STRIDE
    xp = np.pad(x3, ((0, hp - H), (0, wp - W), (0, 0)), mode="edge")
    mean, _ = net.posterior(xp)
    z = np.round(mean / net.grid.unit) * net.grid.unit
    p = net.pixel_params(xp, net.zfeatures(z))[:H, :W].reshape(H * W, -1)
    vals = x3.reshape(-1, C).astype(np.int64)
    bits = np.zeros(H * W)
    prev: list[np.ndarray] = []
    for c in range(C):
        loc, inv, lg = net.channel_mixture(p, c, prev)
        _, f = mixture.start_freq(vals[:, c], loc, inv, mixture.mixture_weights(lg))
        bits += mixture.PREC - np.log2(f)
        prev.append(2 * vals[:, c] - 255)
    return bits.reshape(H, W)


def heat_png(x: np.ndarray, bits: np.ndarray, path: Path, top: float | None = None) -> None:
    """The photo beside its bits-per-pixel map (black 0 -> yellow ``top`` bits), with a
    scale bar under the map."""
    from PIL import Image, ImageDraw
    top = top or float(np.percentile(bits, 99))
    t = np.clip(bits / top, 0, 1)
    # a dark-to-bright ramp: black, purple, orange, yellow
    stops = np.array([[0, 0, 0], [90, 20, 120], [230, 90, 30], [255, 240, 80]], float)
    pos = t * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    f = (pos - i)[..., None]
    heat = ((1 - f) * stops[i] + f * stops[i + 1]).astype(np.uint8)
    rgb = x if x.ndim == 3 else np.repeat(x[..., None], 3, 2)
    h, w = x.shape[:2]
    canvas = Image.new("RGB", (2 * w + 10, h + 40), "white")
    canvas.paste(Image.fromarray(rgb), (0, 0))
    canvas.paste(Image.fromarray(heat), (w + 10, 0))
    bar = np.linspace(0, 1, w)[None, :].repeat(12, 0)
    pos = bar * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    f = (pos - i)[..., None]
    canvas.paste(Image.fromarray(((1 - f) * stops[i] + f * stops[i + 1]).astype(np.uint8)), (w + 10, h + 6))
    d = ImageDraw.Draw(canvas)
    d.text((w + 10, h + 22), f"0 bits/pixel", fill="black")
    d.text((2 * w - 90, h + 22), f"{top:.1f} bits/pixel", fill="black")
    d.text((4, h + 22), f"mean {bits.mean():.2f} bits/pixel ({bits.mean() / (3 if x.ndim == 3 else 1):.3f} per sub-pixel)",
           fill="black")
    canvas.save(path)


def main(argv: list[str] | None = None) -> None:
    import argparse
    from . import photos
    from .data import cache_dir
    p = argparse.ArgumentParser(prog="python -m vlaecodec.photo_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=("rgb", "gray"), default="rgb")
    p.add_argument("--folder", help="PNG photos to use (default: the photo pool's validation split)")
    p.add_argument("--limit", type=int)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--out", default="build/bench", help="where the JSON and markdown go")
    p.add_argument("--heatmap", metavar="PNG", help="only draw the first photo beside its bits-per-pixel map")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.folder:
        paths = sorted(Path(a.folder).glob("*.png"))[: a.limit]
        tag = Path(a.folder).name
    else:
        imgs = photos.load(cache_dir(), "valid", a.kind)[: a.limit]
        paths = export(imgs, out / f"photos-valid-{a.kind}")
        tag = f"valid-{a.kind}"
    if a.heatmap:
        from . import anysize
        x = _pixels(paths[0])
        pm = anysize.photo_models("RGB" if x.ndim == 3 else "L", retired=False)   # the current model
        if not pm:
            raise SystemExit("no photo model installed for this kind of photo")
        heat_png(x, bits_map(pm[0].net, x), Path(a.heatmap))
        print(f"wrote {a.heatmap}")
        return
    res = bench(paths, peers=not a.no_peers)
    (out / f"bench-photos-{tag}.json").write_text(json.dumps(res, indent=1))
    md = markdown(res, f"Photos ({tag})")
    (out / f"bench-photos-{tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
