"""Freezing: a trained float VLAE -> the integer coding model that files are written with.

``to_integer`` quantizes every layer (per-layer power-of-two weight scales, weights
within +-2**15, biases at the accumulator's scale) and attaches the frozen lookup tables of
``numerics.py``; ``write_model`` stores the result as a ``.npz`` (no pickles) whose
sha256 identifies the model in every file it writes. Calibration and the shipped
manifests live in ``train.freeze`` (``vlaecodec train freeze``), which calls this.

Post-training quantization is enough here: with such weights and activations on a
2**-12 grid, the shipped models' integer files came within 0.02% (AR prior) and 0.12%
(factorized) of the float models' -ELBO on the test set (measured at freeze time and
written into the manifests), so no quantization-aware training is needed. Every model
built here is checked for exactness by ``IntVLAE`` (sums below 2**52 in every layer).
"""
from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import numerics as nx
from .intnet import INT_FORMAT, INT_FORMAT_VERSION, IntVLAE
from .vlae import VLAE

# Default latent grid for bits-back: 2**-3 steps over +-10 (161 cells). Calibrated per
# model by train.freeze; posteriors of the shipped models have sigma >= 0.5.
DEFAULT_STEP_LOG2 = -3
LATENT_RANGE = 10.0
DEFAULT_DIRECT_BINS = 4


def _quantize(w: torch.Tensor, b: torch.Tensor | None, fin: int, in_bound: float
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """float (W, b) -> (Wq int32, bq int64, shift) for inputs on a 2**-fin grid."""
    w = w.detach().double()
    wmax = float(w.abs().max())
    fw = nx.WEIGHT_BITS - (math.ceil(math.log2(wmax)) if wmax > 0 else 0)
    fw = max(fw, nx.FRAC - fin)          # the shift back to FRAC bits must be >= 0 (huge weights)
    wq = torch.round(w * 2.0 ** fw)
    bq = (torch.round(b.detach().double() * 2.0 ** (fin + fw)) if b is not None
          else torch.zeros(w.shape[0], dtype=torch.float64))
    fan_in = int(np.prod(w.shape[1:])) if w.dim() > 1 else 1
    bound = fan_in * float(wq.abs().max()) * in_bound + float(bq.abs().max())
    if bound >= nx.EXACT_LIMIT:
        raise ValueError(f"a layer's sums could reach {bound:.3g} >= 2**52: not exact")
    return wq.numpy().astype(np.int32), bq.numpy().astype(np.int64), fin + fw - nx.FRAC


def _quantize_pair(w: torch.Tensor, fin: int, wz: torch.Tensor, b: torch.Tensor, in_bound: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Two weight blocks summed into one accumulator: ``w`` reads inputs on a 2**-fin grid,
    ``wz`` reads activations (2**-FRAC). One accumulator scale 2**-acc for both, as fine
    as keeps every quantized weight within 2**15."""
    w, wz, b = w.detach().double(), wz.detach().double(), b.detach().double()

    def bits(t: torch.Tensor) -> int:
        m = float(t.abs().max())
        return nx.WEIGHT_BITS - (math.ceil(math.log2(m)) if m > 0 else 0)

    acc = max(min(bits(w) + fin, bits(wz) + nx.FRAC), nx.FRAC)
    wq = torch.round(w * 2.0 ** (acc - fin))
    wzq = torch.round(wz * 2.0 ** (acc - nx.FRAC))
    bq = torch.round(b * 2.0 ** acc)
    fan = int(np.prod(w.shape[1:]))
    bound = (fan * float(wq.abs().max()) * in_bound + wz.shape[1] * float(wzq.abs().max()) * nx.ACT_LIMIT
             + float(bq.abs().max()))
    if bound >= nx.EXACT_LIMIT:
        raise ValueError(f"a layer's sums could reach {bound:.3g} >= 2**52: not exact")
    return (wq.numpy().astype(np.int32), wzq.numpy().astype(np.int32), bq.numpy().astype(np.int64),
            acc - nx.FRAC)


def to_integer(model: VLAE, *, step_log2: int = DEFAULT_STEP_LOG2,
               direct_bins: list[int] | None = None, name: str = "") -> dict[str, np.ndarray]:
    """All arrays of the integer model (what ``write_model`` stores)."""
    cfg = model.cfg
    arrays: dict[str, np.ndarray] = {}
    shifts: dict[str, int] = {}
    act = nx.ACT_LIMIT
    pixel_scale = 1.0 / (cfg.pixel_levels - 1)   # float input = (2x - (L-1)) / (L-1)

    def add(key: str, w: torch.Tensor, b: torch.Tensor | None, *, pixels: bool = False,
            transpose_conv: bool = False) -> None:
        if pixels:   # input (2x - (L-1)) in fixed point; fold the float model's 1/(L-1) in
            wq, bq, s = _quantize(w * pixel_scale, b, nx.FRAC, (cfg.pixel_levels - 1) * nx.ONE)
        elif transpose_conv:  # ConvTranspose weight (Cin, Cout, k, k): each output sums Cin * 4 taps
            wq, bq, s = _quantize(w.transpose(0, 1), b, nx.FRAC, act)
            wq = np.ascontiguousarray(wq.transpose(1, 0, 2, 3))
        else:
            wq, bq, s = _quantize(w, b, nx.FRAC, act)
        arrays[key + ".w"], arrays[key + ".b"], shifts[key] = wq, bq, s

    e = model.encoder
    add("enc.c1", e.c1.weight, e.c1.bias, pixels=True)
    add("enc.c2", e.c2.weight, e.c2.bias)
    for i, blk in enumerate(e.blocks):
        add(f"enc.b{i}.c1", blk.c1.weight, blk.c1.bias)
        add(f"enc.b{i}.c2", blk.c2.weight, blk.c2.bias)
    add("enc.out", e.out.weight, e.out.bias)
    for i, made in enumerate(model.prior.steps):
        add(f"prior.s{i}.l1", made.l1.weight * made.l1.mask, made.l1.bias)
        add(f"prior.s{i}.l2", made.l2.weight * made.l2.mask, made.l2.bias)
    zf = model.zfeatures
    add("zf.lin", zf.lin.weight, zf.lin.bias)
    add("zf.up1", zf.up1.weight, zf.up1.bias, transpose_conv=True)
    add("zf.up2", zf.up2.weight, zf.up2.bias, transpose_conv=True)
    # Each masked conv and its slice of the z projection share one accumulator and one
    # rounding: layer i computes rescale(window @ W_i + h_t @ P_i + b_i + c_i), where
    # h_t is the upsampled z feature at the pixel (the float model adds the two).
    pc = model.pixelcnn
    c = cfg.pcnn_channels
    proj_w = zf.proj.weight.flatten(1)                     # (L * C, zfeat)
    for i, conv in enumerate(pc.convs):
        pw, pb = proj_w[i * c:(i + 1) * c], zf.proj.bias[i * c:(i + 1) * c]
        wconv = (conv.weight * conv.mask) * (pixel_scale if i == 0 else 1.0)
        wq, wzq, bq, s_ = _quantize_pair(wconv, nx.FRAC, pw, conv.bias + pb,
                                         (cfg.pixel_levels - 1) * nx.ONE if i == 0 else act)
        arrays[f"pc.conv{i}.w"], arrays[f"pc.conv{i}.wz"], arrays[f"pc.conv{i}.b"] = wq, wzq, bq
        shifts[f"pc.conv{i}"] = s_
    for i, (l1, l2) in enumerate(pc.blocks):
        add(f"pc.blk{i}.l1", l1.weight, l1.bias)
        add(f"pc.blk{i}.l2", l2.weight, l2.bias)
    add("pc.head", pc.head.weight, pc.head.bias)

    arrays.update(nx.build_tables(cfg.pixel_levels))
    bins = list(direct_bins) if direct_bins is not None else [DEFAULT_DIRECT_BINS] * cfg.latent_dim
    arrays["direct.offsets"] = direct_offsets(bins)
    meta: dict[str, Any] = {
        "format": INT_FORMAT, "format_version": INT_FORMAT_VERSION, "name": name,
        "config": cfg.to_dict(), "frac": nx.FRAC, "shifts": shifts,
        "latent": {"step_log2": step_log2, "max_index": int(LATENT_RANGE * 2 ** -step_log2)},
        "direct": {"bins": [int(b) for b in bins]},
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    return arrays


def direct_offsets(bins: list[int]) -> np.ndarray:
    """Medians of K equal-mass bins of N(0, 1) per dimension, fixed point, concatenated."""
    from statistics import NormalDist
    out = []
    for k in bins:
        out += [0] if k == 1 else [round(NormalDist().inv_cdf((j + 0.5) / k) * nx.ONE) for j in range(k)]
    return np.array(out, dtype=np.int32)


# Lossy rate levels 1..12: (dimensions sent, bits each), dimensions taken in order of
# their KL (the information the model puts in them): 8 to 192 bits per image. Level 7
# sends 31 bits, so an archive stays under 4 bytes per image with its header. One bit on
# more dimensions beats more bits on fewer: on 1,000 test digits with vlae-mnist-v2,
# 24 dims x 2 bits kept the class of fewer digits than 24 x 1 bit (77% vs 84%), and
# 31 x 2 bits fewer than 40 x 1 bit (81.8% vs 89.5%), so every dimension gets its first bit
# before any gets a second.
LOSSY_LEVELS = [(8, 1), (12, 1), (16, 1), (20, 1), (24, 1), (28, 1), (31, 1),
                (40, 1), (48, 1), (64, 1), (64, 2), (64, 3)]


def lossy_tables(kl: np.ndarray) -> list[list[int]]:
    """Bins per dimension for each lossy level (powers of two, so the code is plain bits)."""
    order = np.argsort(-np.asarray(kl), kind="stable")
    out = []
    for dims, bits in LOSSY_LEVELS:
        bins = np.ones(len(kl), int)
        bins[order[:min(dims, len(kl))]] = 1 << bits
        out.append(bins.tolist())
    return out


def with_lossy_levels(arrays: dict[str, np.ndarray], tables: list[list[int]],
                      scale: float = 1.0) -> dict[str, np.ndarray]:
    """A copy of a model's arrays with lossy rate levels. Each bin's latent is its
    equal-mass median times ``scale``: a lossy latent stands for a whole bin, and larger
    values make the redrawn digit commit to it (see ``calibrate``)."""
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["lossy"] = {"levels": [[int(b) for b in t] for t in tables], "offset_scale": scale}
    out = dict(arrays)
    out["lossy.offsets"] = np.concatenate([np.rint(direct_offsets(t) * scale) for t in tables]).astype(np.int32)
    out["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    return out


def with_direct_bins(arrays: dict[str, np.ndarray], bins: list[int]) -> dict[str, np.ndarray]:
    """A copy of a model's arrays with another direct-coding bin table."""
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["direct"] = {"bins": [int(b) for b in bins]}
    out = dict(arrays)
    out["direct.offsets"] = direct_offsets(bins)
    out["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    return out


def with_latent_step(arrays: dict[str, np.ndarray], step_log2: int) -> dict[str, np.ndarray]:
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["latent"] = {"step_log2": step_log2, "max_index": int(LATENT_RANGE * 2 ** -step_log2)}
    out = dict(arrays)
    out["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    return out


def model_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The model file's bytes: a compressed .npz that ``numpy.load`` reads (no pickles),
    written with fixed zip timestamps so the same arrays always give the same sha256."""
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k in sorted(arrays):
            info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[k]), allow_pickle=False)
    return buf.getvalue()




# ------------------------------------------------------------ calibrate and ship

def _direct_bytes(net: IntVLAE, images: np.ndarray, rounds: int) -> float:
    """Mean bytes per image of the real direct code, each image coded alone."""
    from . import codec
    from .arith import ArithEncoder

    encs = [ArithEncoder() for _ in images]
    codec._encode_direct(net, images, encs, rounds=rounds)
    return sum(len(e.finish()) for e in encs) / len(images)


def _bits_back_bits_per_dim(net: IntVLAE, images: np.ndarray) -> float:
    """Real bits/dim of the bits-back part of one chained file of ``images`` (the codec's
    own compress; the directly coded start is left out, as on a long chain it vanishes)."""
    from . import codec
    from .zoo import LoadedModel

    st: dict[str, int] = {}
    codec.compress(list(images), LoadedModel(name="calib", sha256="0" * 64, net=net), stats=st)
    n = len(images) - st["direct_images"]
    return 8 * (st["payload_bytes"] - st["direct_bytes"]) / (n * images[0].size)


LOSSY_CALIB_IMAGES = 500
LOSSY_CALIB_LEVEL, LOSSY_CALIB_DRAW = 7, 3


def calibrate_lossy(arrays: dict[str, np.ndarray], kl: np.ndarray, images: np.ndarray, log: Any = print
                    ) -> dict[str, np.ndarray]:
    """Lossy levels with the bin latents' scale that redraws validation digits with the
    fewest wrong pixels (at the default level and draw). Measured once on 2,000 test
    digits with a digit classifier (bench/lossy.py), scale 1.5 also lifted class agreement
    at 31 bits from 79.5% to 84.6%."""
    from . import lossy as lz

    tables = lossy_tables(kl)
    best = None
    for scale in (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0):
        net = IntVLAE(with_lossy_levels(arrays, tables, scale))
        rec = lz.decode(net, lz.encode(net, images, LOSSY_CALIB_LEVEL), len(images), LOSSY_CALIB_LEVEL,
                        LOSSY_CALIB_DRAW)
        err = float((rec != images).mean())
        log(f"lossy bin latents x{scale}: {100 * err:.2f}% pixels redrawn wrong (level {LOSSY_CALIB_LEVEL})")
        if best is None or err < best[0]:
            best = (err, scale)
    return with_lossy_levels(arrays, tables, best[1])


def calibrate(model: VLAE, name: str, valid: np.ndarray, *, n_kl: int = 2000, n_direct: int = 100,
              n_chain: int = 1000, log: Any = print) -> dict[str, np.ndarray]:
    """Choose the coding tables by measuring real code lengths on validation images.

    * Direct coding (chain starts, single images) sends latent i as one of K_i
      equal-mass bins of its prior conditional; dimensions carrying more KL deserve more
      bins. Candidate tables (K_i = round(exp(KL_i + a)), or "the m dimensions with most
      KL get k bins") are ranked by their real direct-code bytes.
    * The bits-back latent grid step (a power of two) is chosen by the real chained rate."""
    with torch.no_grad():
        kl = model.elbo_terms(torch.from_numpy(valid[:n_kl]).long()).kl_dims.mean(0).clamp(min=0).double().numpy()
    base = to_integer(model, name=name)
    candidates = [(f"exp(KL{a:+.2f})", np.clip(np.rint(np.exp(kl + a)), 1, 4096).astype(int))
                  for a in (0.0, 0.25, 0.5)]
    order = np.argsort(-kl, kind="stable")
    for m in (8, 16, 24, 32, 48):
        for k in (2, 3, 4):
            bins = np.ones(len(kl), int)
            bins[order[:m]] = k
            candidates.append((f"top {m} dims x {k} bins", bins))
    calib = valid[n_kl:n_kl + n_direct]
    # Rank every table with the plain start (no bin search), then measure the best few
    # as the encoder really codes (one sweep of the bin search).
    ranked = []
    for rule, bins in candidates:
        size = _direct_bytes(IntVLAE(with_direct_bins(base, bins.tolist())), calib, rounds=0)
        log(f"direct bins {rule}: {int((bins > 1).sum())} dims sent, {size:.2f} bytes/image (no search)")
        ranked.append((size, rule, bins))
    ranked.sort(key=lambda r: r[0])
    best = None
    from .codec import direct_rounds
    for _, rule, bins in ranked[:4]:
        net = IntVLAE(with_direct_bins(base, bins.tolist()))
        size = _direct_bytes(net, calib, rounds=direct_rounds(net))
        log(f"direct bins {rule}: {size:.2f} bytes/image (with the encoder's bin search)")
        if best is None or size < best[0]:
            best = (size, rule, bins)
    size, rule, bins = best
    arrays = with_direct_bins(base, bins.tolist())
    # The latent grid: the coarsest step within 0.05% of the best measured rate (coarser
    # grids mean smaller coding tables, hence faster coding).
    chain = valid[n_kl + n_direct:n_kl + n_direct + n_chain]
    rates = {}
    for step in (-2, -3, -4):
        rates[step] = _bits_back_bits_per_dim(IntVLAE(with_latent_step(arrays, step)), chain)
        log(f"latent grid 2**{step}: bits-back rate {rates[step]:.5f} bits/dim on {len(chain)} validation images")
    top = min(rates.values())
    step = max(s_ for s_, r in rates.items() if r <= top * 1.0005)
    best_step = (rates[step], step)
    arrays = with_latent_step(arrays, step)
    if model.cfg.pixel_levels == 2:   # lossy mode redraws binary digits only
        arrays = calibrate_lossy(arrays, kl, valid[n_kl:n_kl + LOSSY_CALIB_IMAGES], log)
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["calibration"] = {"direct_rule": rule, "direct_bytes_per_image_valid": round(size, 3),
                           "latent_step_log2": best_step[1], "bits_back_bpd_valid": round(best_step[0], 6)}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    return arrays


def freeze(checkpoint: Path, name: str, out_dir: Path, *, iwae_k: int = 64, test_limit: int | None = None,
           dataset: str = "binarized-mnist", log: Any = lambda s: print(s, file=sys.stderr)) -> Path:
    """A training run's averaged weights (or a shipped float checkpoint) -> a shipped model:
    ``<name>-<sha8>.npz`` (integer coding model), ``<name>-<sha8>.pt`` (float weights, for
    evaluation) and ``<name>.json`` (manifest with both the float -ELBO and the integer
    model's real chained-file rate on the test set)."""
    import hashlib
    import shutil
    import time

    from . import data
    from .evaluate import evaluate
    from .fileio import write_atomic
    from .train import FORMAT_VERSION, library_versions
    from .zoo import load_float_checkpoint

    torch.manual_seed(0)
    try:   # a file that is no checkpoint: a ValueError naming it (one line from the CLI), not torch's traceback
        ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except OSError as e:
        if e.filename:   # missing, a folder, unreadable: the error names the file already
            raise
        raise ValueError(f"{checkpoint}: not a readable checkpoint ({e.__class__.__name__}: {e})") from None
    except Exception as e:  # noqa: BLE001 - unpickling fails in many ways (EOFError, UnpicklingError, ...)
        raise ValueError(f"{checkpoint}: not a readable checkpoint ({e.__class__.__name__}: {e})") from None
    shippable = ck.get("format_version") == FORMAT_VERSION and "state_dict" in ck
    model = load_float_checkpoint(checkpoint) if shippable else None
    if model is None:
        raise ValueError(f"{checkpoint}: not a model checkpoint (use a run's model.pt)")
    valid = data.load_dataset(dataset, "valid")   # the split the training validated on
    test = data.load_dataset(dataset, "test")[:test_limit]
    if (model.cfg.pixel_levels == 2) != (dataset in data.BINARY_DATASETS):
        raise ValueError(f"a {model.cfg.pixel_levels}-level model cannot code {dataset}")
    out_dir.mkdir(parents=True, exist_ok=True)

    arrays = calibrate(model, name, valid, log=log)
    blob = model_bytes(arrays)
    digest = hashlib.sha256(blob).hexdigest()
    int_path = out_dir / f"{name}-{digest[:8]}.npz"
    write_atomic(int_path, blob, overwrite=True)

    # The float checkpoint ships unchanged if it already is a shippable one, and is not
    # copied again if the folder already holds it (two integer models frozen from one
    # float model share it).
    raw = Path(checkpoint).read_bytes()
    float_digest = hashlib.sha256(raw).hexdigest()
    same = [p for p in out_dir.glob(f"*-{float_digest[:8]}.pt") if hashlib.sha256(p.read_bytes()).digest()
            == hashlib.sha256(raw).digest()]
    float_path = same[0] if same else out_dir / f"{name}-{float_digest[:8]}.pt"
    if not float_path.exists():
        shutil.copyfile(checkpoint, float_path)

    log(f"evaluating the float model on {len(test)} test images (IWAE k={iwae_k})")
    metrics = evaluate(model, test, iwae_k=iwae_k)
    log("coding the test set with the integer model (one chained file)")
    from . import codec
    from .zoo import LoadedModel
    loaded = LoadedModel(name=name, sha256=digest, net=IntVLAE(arrays))
    t0 = time.time()
    file_bytes = len(codec.compress(list(test), loaded))
    enc_s = time.time() - t0
    dims = test.shape[1] * test.shape[2]
    real_bpd = 8 * file_bytes / (len(test) * dims)
    meta = json.loads(bytes(arrays["meta"]).decode())
    training = dict(ck.get("training") or {})
    training.pop("history", None)
    cfg = model.cfg
    manifest = {
        "name": name, "file": int_path.name, "sha256": digest,
        "format": INT_FORMAT, "format_version": INT_FORMAT_VERSION,
        "float_file": float_path.name, "float_sha256": float_digest,
        "architecture": "vlae", "config": cfg.to_dict(), "prior": cfg.prior,
        "receptive_rows": cfg.receptive_rows, "dataset": dataset,
        "metrics": {"test_images": metrics["n"], "test_neg_elbo_nats": metrics["neg_elbo_nats"],
                    "test_neg_elbo_bpd": metrics["neg_elbo_bpd"], "test_kl_nats": metrics["kl_nats"],
                    "test_iwae_k": metrics["iwae_k"], "test_iwae_nll_nats": metrics["iwae_nll_nats"],
                    "test_iwae_bpd": metrics["iwae_bpd"],
                    "test_chained_file_bytes": file_bytes, "test_chained_bpd": real_bpd,
                    "test_chained_over_float_elbo": real_bpd / metrics["neg_elbo_bpd"]},
        "coding": {**meta["calibration"], "direct_dims_sent": int(sum(b > 1 for b in meta["direct"]["bins"])),
                   "latent_cells": 2 * meta["latent"]["max_index"] + 1,
                   "lossy_bits_per_level": [int(sum(int(b).bit_length() - 1 for b in t))
                                            for t in meta.get("lossy", {}).get("levels", [])]},
        "training": training,
        "versions": library_versions(),
    }
    write_atomic(out_dir / f"{name}.json", (json.dumps(manifest, indent=2) + "\n").encode(), overwrite=True)
    log(f"{name}: float -ELBO {metrics['neg_elbo_bpd']:.5f} bits/dim; integer chained file "
        f"{real_bpd:.5f} bits/dim ({real_bpd / metrics['neg_elbo_bpd']:.4f}x), encoded in {enc_s:.0f} s")
    log(f"wrote {int_path}, {float_path.name} and {name}.json")
    return int_path


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="vlaecodec train freeze",
                                description="Freeze a run's model.pt into an integer coding model: "
                                            "calibrated coding tables, test metrics, manifest.")
    p.add_argument("checkpoint", help="a run's model.pt (or a shipped float .pt)")
    p.add_argument("--name", required=True, help="model name, e.g. vlae-mnist-v1")
    p.add_argument("--out", default="models")
    p.add_argument("--dataset", default="binarized-mnist")
    p.add_argument("--iwae-k", type=int, default=64)
    p.add_argument("--test-limit", type=int)
    a = p.parse_args(argv)
    print(freeze(Path(a.checkpoint), a.name, Path(a.out), iwae_k=a.iwae_k, test_limit=a.test_limit,
                 dataset=a.dataset))
