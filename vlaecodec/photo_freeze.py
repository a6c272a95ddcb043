"""Freeze a trained photo VLAE (float, torch) into the integer model of ``photo_int``.

Every layer becomes integer weights with a power-of-two scale (``freeze._quantize``);
the window conv and the z projection share one accumulator (``freeze._quantize_pair``),
as the float model adds them before any nonlinearity. The tables (ELU, tanh, 1/scale,
the Gaussian CDF of the latent grid) are computed here once and stored in the file.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from . import numerics as nx
from .freeze import _quantize, _quantize_pair
from .intnet import _PHASE_TAPS, _conv_matrix
from .photo_int import PHOTO_INT_FORMAT, PHOTO_INT_VERSION, PRIOR_TAPS, build_photo_tables, window_taps
from .photo_vlae import PhotoVLAE

PHOTO_STEP_LOG2 = -4       # latent grid 2**-4 over +-10
PHOTO_LATENT_RANGE = 10.0


def _dense_matrix(wq: np.ndarray) -> np.ndarray:
    """torch conv weight (Cout, Cin, k, k) -> (k*k*Cin, Cout), tap-major like _patches."""
    return np.ascontiguousarray(wq.transpose(2, 3, 1, 0).reshape(-1, wq.shape[0]))


def to_integer(model: PhotoVLAE, *, name: str = "", step_log2: int = PHOTO_STEP_LOG2) -> dict[str, np.ndarray]:
    cfg = model.cfg
    arrays: dict[str, np.ndarray] = {}
    shifts: dict[str, int] = {}
    act = nx.ACT_LIMIT
    pix = 1.0 / 255.0          # to_unit(x) = (2x - 255) / 255: the network reads (2x - 255) * ONE

    def put(key: str, w: np.ndarray, b: np.ndarray, s: int) -> None:
        arrays[key + ".w"], arrays[key + ".b"], shifts[key] = w.astype(np.int32), b.astype(np.int64), int(s)

    def conv(key: str, m: torch.nn.Conv2d, pixels: bool = False) -> None:
        wq, bq, s = _quantize(m.weight * (pix if pixels else 1.0), m.bias, nx.FRAC, 255 * nx.ONE if pixels else act)
        put(key, _dense_matrix(wq), bq, s)

    enc = [m for m in model.enc if isinstance(m, torch.nn.Conv2d)]
    for i, m in enumerate(enc):
        conv(f"enc.{i}", m, pixels=i == 0)
    wq, bq, s = _quantize(model.prior_in.weight * model.prior_in.mask, model.prior_in.bias, nx.FRAC, act)
    put("prior.0", _conv_matrix(wq, PRIOR_TAPS), bq, s)
    p1, p2 = [m for m in model.prior_out if isinstance(m, torch.nn.Conv2d)]
    conv("prior.1", p1)
    conv("prior.2", p2)
    zf = [m for m in model.zfeat if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    conv("zf.0", zf[0])
    for i, up in enumerate(zf[1:], start=1):   # ConvTranspose weight (Cin, Cout, 4, 4)
        wq, bq, s = _quantize(up.weight.transpose(0, 1), up.bias, nx.FRAC, act)
        wt = wq.transpose(1, 0, 2, 3)
        for a in (0, 1):
            for c in (0, 1):
                m = np.concatenate([wt[:, :, ki, kj] for _, ki in _PHASE_TAPS[a] for _, kj in _PHASE_TAPS[c]])
                put(f"zf.{i}.{2 * a + c}", m, bq, s)
    wwin = model.window.weight * model.window.mask * pix
    wq, wzq, bq, s = _quantize_pair(wwin, nx.FRAC, model.zproj.weight.flatten(1),
                                    model.window.bias + model.zproj.bias, 255 * nx.ONE)
    put("pix.window", np.concatenate([_conv_matrix(wq, window_taps(cfg.horizon)), wzq.T]), bq, s)
    for i, r in enumerate(model.res):
        conv(f"pix.res.{i}", r)
    conv("pix.head", model.head)

    arrays.update(build_photo_tables())
    arrays["latent.step_log2"] = np.array(step_log2)
    arrays["latent.max_index"] = np.array(int(PHOTO_LATENT_RANGE * 2 ** -step_log2))
    meta = {"format": PHOTO_INT_FORMAT, "version": PHOTO_INT_VERSION, "name": name,
            "config": cfg.to_dict(), "frac": nx.FRAC, "shifts": shifts}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    return arrays


def freeze(checkpoint: str, name: str, out_dir: str, *, limit: int | None = None, log=print) -> dict:
    """Freeze ``checkpoint`` (photo_train's model.pt), code the validation photos with the
    integer model, and write ``<name>-<sha8>.npz`` and ``<name>.json`` into ``out_dir``."""
    import hashlib
    import io
    import math
    import time
    from pathlib import Path

    from . import photo_codec, photos
    from .data import cache_dir
    from .fileio import write_atomic
    from .photo_int import IntPhotoVLAE
    from .photo_train import evaluate_photos
    from .photo_vlae import PhotoConfig

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = PhotoConfig.from_dict(ck["config"])
    model = PhotoVLAE(cfg)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    arrays = to_integer(model, name=name)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    raw = buf.getvalue()
    digest = hashlib.sha256(raw).hexdigest()
    net = IntPhotoVLAE(arrays)
    mode = "RGB" if cfg.channels == 3 else "L"
    valid = photos.load(cache_dir(), "valid", "rgb" if cfg.channels == 3 else "gray")[:limit]
    fl = evaluate_photos(model, valid)
    log(f"float -ELBO on {len(valid)} validation photos: {fl['bpd']:.4f} bits/sub-pixel")
    bits = dims = 0
    t0 = time.time()
    per = []
    for a in valid:
        x = a if a.ndim == 3 else a[..., None]
        words, st = photo_codec.encode(net, x)
        bits += st.bits
        dims += x.size
        per.append({"shape": list(x.shape), "bits_per_subpixel": st.bits / x.size,
                    "uncoded_latent_rows": st.uncoded_rows})
        log(f"  {x.shape[1]}x{x.shape[0]}: {st.bits / x.size:.4f} bits/sub-pixel ({st.uncoded_rows} latent rows not coded)")
    seconds = time.time() - t0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fname = f"{name}-{digest[:8]}.npz"
    write_atomic(out / fname, raw, overwrite=True)
    # the float weights beside it (for the -ELBO in bench and info), without optimizer state
    fbuf = io.BytesIO()
    torch.save({"config": cfg.to_dict(), "state_dict": model.state_dict(), "step": ck.get("step"),
                "kind": "photo-vlae"}, fbuf)
    fraw = fbuf.getvalue()
    fdigest = hashlib.sha256(fraw).hexdigest()
    ffile = f"{name}-{fdigest[:8]}.pt"
    write_atomic(out / ffile, fraw, overwrite=True)
    manifest = {"name": name, "file": fname, "sha256": digest, "architecture": "photo-vlae",
                "format": "vlaecodec-photo-int", "format_version": 1, "mode": mode,
                "config": cfg.to_dict(), "dataset": "photos", "float_file": ffile, "float_sha256": fdigest,
                "training": {"step": ck.get("step"), "checkpoint_valid": ck.get("valid")},
                "metrics": {"valid_photos": len(valid), "valid_neg_elbo_bpd": fl["bpd"],
                            "valid_kl_bpd": fl["kl_bpd"], "valid_coded_bpd": bits / dims,
                            "valid_coded_over_float_elbo": bits / dims / fl["bpd"],
                            "valid_encode_seconds": seconds, "per_image": per}}
    write_atomic(out / f"{name}.json", (json.dumps(manifest, indent=2) + "\n").encode(), overwrite=True)
    log(f"{name}: coded {bits / dims:.4f} bits/sub-pixel ({bits / dims / fl['bpd']:.4f}x the float -ELBO), "
        f"{dims / max(seconds, 1e-9) / (3 if mode == 'RGB' else 1):.0f} pixels/s encode; wrote {out / fname}")
    return manifest


def main(argv: list[str] | None = None) -> None:
    import argparse
    p = argparse.ArgumentParser(prog="python -m vlaecodec.photo_freeze",
                                description="Freeze a photo VLAE checkpoint into an integer coding model.")
    p.add_argument("checkpoint")
    p.add_argument("--name", required=True)
    p.add_argument("--out", default="models")
    p.add_argument("--limit", type=int, default=None, help="validation photos to code (default: all)")
    a = p.parse_args(argv)
    freeze(a.checkpoint, a.name, a.out, limit=a.limit)


if __name__ == "__main__":
    main()
