"""Check that another machine computes exactly the coder inputs this one does, even
where constriction cannot run (Linux aarch64 has no constriction 0.5.0 wheel).

    python bench/arm64/transcript.py record OUT          # here (x86-64, real constriction)
    bench/arm64/run.sh python bench/arm64/transcript.py replay OUT   # emulated ARM64
    python bench/arm64/transcript.py replay OUT --stub   # here, with the stand-in coder

``record`` writes, with the default model, one archive of the 16 sample digits (with
names) and three single-digit files, and logs every call that encoding and decoding
make to the ANS coder: the model family, the sha256 of each parameter array, the
symbols, and what the coder returned. ``replay`` runs vlaecodec's real encoder and
decoder on the other machine with a stand-in coder that returns the recorded results
*only if* every call arrives in the same order with byte-identical parameters.

Why that is enough: constriction is integer code whose results depend only on its
inputs; the parameters vlaecodec hands it are integer-valued float64 arrays. If they
are identical call for call, the real coder there returns what it returned here.
Everything else runs for real on the other machine: the integer networks, the exact
arithmetic coder of the chain start, the container and its CRC, and at the end the
decoded pixels are compared with the original digits and the re-encoded files with
the recorded bytes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _digest(a) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:24]


def _family(model) -> str:
    return type(model).__name__


class RecordingCoder:
    """Wraps a real coder and logs every call."""

    def __init__(self, inner, log: list):
        self.inner, self.log = inner, log

    def decode(self, model, *params):
        out = self.inner.decode(model, *params)
        self.log.append({"op": "decode", "family": _family(model), "params": [_digest(p) for p in params],
                         "out": np.asarray(out).tolist()})
        return out

    def encode_reverse(self, symbols, model, *params):
        self.inner.encode_reverse(symbols, model, *params)
        self.log.append({"op": "encode_reverse", "family": _family(model), "params": [_digest(p) for p in params],
                         "symbols": _digest(np.asarray(symbols, dtype=np.int32))})

    def num_valid_bits(self):
        v = self.inner.num_valid_bits()
        self.log.append({"op": "num_valid_bits", "out": int(v)})
        return v

    def get_compressed(self, unseal: bool = False):
        out = self.inner.get_compressed(unseal=unseal) if unseal else self.inner.get_compressed()
        self.log.append({"op": "get_compressed", "unseal": unseal, "out": np.asarray(out).tolist()})
        return out


class Mismatch(RuntimeError):
    pass


class ReplayCoder:
    """Serves calls from a log, checking each against what was recorded."""

    def __init__(self, log: list, pos: list, init: dict):
        self.log, self.pos = log, pos
        rec = self._next("new")
        if rec["words"] != init["words"] or rec["seal"] != init["seal"]:
            raise Mismatch(f"call {pos[0] - 1}: coder created from different words")

    def _next(self, op: str) -> dict:
        i = self.pos[0]
        if i >= len(self.log):
            raise Mismatch(f"call {i}: {op} beyond the end of the recording")
        rec = self.log[i]
        if rec["op"] != op:
            raise Mismatch(f"call {i}: expected {rec['op']}, got {op}")
        self.pos[0] += 1
        return rec

    def _check(self, rec: dict, model, params) -> None:
        got = {"family": _family(model), "params": [_digest(p) for p in params]}
        if got["family"] != rec["family"] or got["params"] != rec["params"]:
            raise Mismatch(f"call {self.pos[0] - 1} ({rec['op']}): parameters differ from the recording")

    def decode(self, model, *params):
        rec = self._next("decode")
        self._check(rec, model, params)
        return np.asarray(rec["out"], dtype=np.int32)

    def encode_reverse(self, symbols, model, *params):
        rec = self._next("encode_reverse")
        self._check(rec, model, params)
        if _digest(np.asarray(symbols, dtype=np.int32)) != rec["symbols"]:
            raise Mismatch(f"call {self.pos[0] - 1}: pushed symbols differ from the recording")

    def num_valid_bits(self):
        return self._next("num_valid_bits")["out"]

    def get_compressed(self, unseal: bool = False):
        rec = self._next("get_compressed")
        if rec["unseal"] != unseal:
            raise Mismatch(f"call {self.pos[0] - 1}: get_compressed(unseal={unseal}) differs")
        return np.asarray(rec["out"], dtype=np.uint32)


def _sample_digits():
    from vlaecodec.images import load_png
    folder = REPO / "samples" / "digits"
    paths = sorted(folder.glob("*.png"))
    return [load_png(p.read_bytes(), str(p))[0] for p in paths], [p.name for p in paths]


def _gray_samples():
    from vlaecodec.images import read_image
    paths = sorted((REPO / "samples" / "mnist8").glob("*.png"))
    return [read_image(p.read_bytes(), str(p)).gray for p in paths], [p.name for p in paths]


GRAY_MODEL = "vlae-mnist8-v1"


def _cases():
    """case -> (model name or None for the default, images, names, compress options)."""
    from vlaecodec import container, zoo
    images, names = _sample_digits()
    cases = {"archive": (None, images, names, {})}
    cases |= {f"single{i}": (None, [images[i]], None, {}) for i in (0, 5, 11)}
    # Monte Carlo bits-back: long enough that batches past the one-particle warm-up exist
    # (VLAECODEC_TRANSCRIPT_MC=0 leaves it out: tests/test_transcript.py, for time).
    if os.environ.get("VLAECODEC_TRANSCRIPT_MC", "1") != "0":
        reps = container.MC_WARMUP // len(images) + 3
        cases["mc-particles4"] = (None, images * reps, [f"{r}-{n}" for r in range(reps) for n in names],
                                  {"particles": 4})
    if any(m["name"] == GRAY_MODEL for m in zoo.list_manifests()):   # 8-bit coding path
        gray, gnames = _gray_samples()
        cases["gray-archive"] = (GRAY_MODEL, gray, gnames, {})
        cases["gray-single3"] = (GRAY_MODEL, [gray[3]], None, {})
    return cases


# Lossy files make no coder calls (their latents are plain bits): they run for real on the
# other machine; the redrawn digits (most probable pixels, the model's best of 4, the
# encoder's pick of 16) must match.
LOSSY_CASES = {"lossy-mode": dict(rate=5, draw=0), "lossy-best4": dict(rate=7, draw=3),
               "lossy-pick16": dict(rate=5, draw=12),
               "lossy-default": dict()}   # the current default (rate 5, the encoder's pick of 64)


def record(out: Path) -> None:
    from vlaecodec import codec, load_model
    import vlaecodec

    loaded = load_model()
    out.mkdir(parents=True, exist_ok=True)
    real_new = codec.new_coder
    report = {"machine": platform.machine(), "numpy": np.__version__, "model": loaded.name,
              "model_sha256": loaded.sha256, "cases": {}}
    default = loaded
    for case, (model, images, names, kw) in _cases().items():
        loaded = load_model(model) if model else default
        for phase in ("encode", "decode"):
            log: list = []

            def new(words, seal=False, log=log):
                log.append({"op": "new", "words": np.asarray(words).tolist(), "seal": seal})
                return RecordingCoder(real_new(words, seal=seal), log)

            codec.new_coder = new
            try:
                if phase == "encode":
                    blob = vlaecodec.compress(images, loaded, names=names, **kw)
                    (out / f"{case}.vlae").write_bytes(blob)
                else:
                    back = vlaecodec.decompress((out / f"{case}.vlae").read_bytes(), loaded)
                    assert all(np.array_equal(a, b) for a, b in zip(back.images, images))
            finally:
                codec.new_coder = real_new
            (out / f"{case}.{phase}.json").write_text(json.dumps(log))
            report["cases"][f"{case}.{phase}"] = len(log)
    loaded = default
    images, names = _sample_digits()
    for case, kw in LOSSY_CASES.items():
        blob = vlaecodec.compress(images, loaded, names=names, lossy=True, **kw)
        (out / f"{case}.vlae").write_bytes(blob)
        np.save(out / f"{case}.npy", np.stack(vlaecodec.decompress(blob, loaded).images))
        report["cases"][case] = 0
    (out / "recorded.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def replay(out: Path, force_stub: bool = False) -> int:
    if force_stub or importlib.util.find_spec("constriction") is None:
        sys.path.insert(0, str(HERE / "stub"))
    from vlaecodec import codec, load_model
    import vlaecodec

    rec = json.loads((out / "recorded.json").read_text())
    loaded = load_model()
    if loaded.sha256 != rec["model_sha256"]:
        print(f"model differs: {loaded.sha256[:12]} vs recorded {rec['model_sha256'][:12]}")
        return 1
    print(f"replaying on {platform.machine()} (numpy {np.__version__}); recorded on {rec['machine']} "
          f"(numpy {rec['numpy']})")
    failures = 0
    default = loaded
    for case, (model, images, names, kw) in _cases().items():
        loaded = load_model(model) if model else default
        for phase in ("encode", "decode"):
            if not (out / f"{case}.{phase}.json").exists():
                failures += 1
                print(f"{case}: not recorded")
                continue
            log = json.loads((out / f"{case}.{phase}.json").read_text())
            pos = [0]

            def new(words, seal=False, log=log, pos=pos):
                return ReplayCoder(log, pos, {"words": np.asarray(words).tolist(), "seal": seal})

            codec.new_coder = new
            try:
                want = (out / f"{case}.vlae").read_bytes()
                if phase == "encode":
                    ok = vlaecodec.compress(images, loaded, names=names, **kw) == want
                    what = "file bytes identical" if ok else "FILE BYTES DIFFER"
                else:
                    back = vlaecodec.decompress(want, loaded)
                    ok = (all(np.array_equal(a, b) for a, b in zip(back.images, images))
                          and len(back.images) == len(images) and back.names == names)
                    what = "pixels and names identical" if ok else "PIXELS DIFFER"
                if pos[0] != len(log):
                    ok, what = False, f"only {pos[0]} of {len(log)} recorded calls made"
            except Exception as e:  # noqa: BLE001 - report and go on with the next case
                ok, what = False, f"{e.__class__.__name__}: {e}"
            failures += not ok
            print(f"{case:8s} {phase}: {'ok' if ok else 'FAIL'} ({len(log)} coder calls checked; {what})")
    loaded = default
    codec.new_coder = lambda *a, **k: (_ for _ in ()).throw(Mismatch("a lossy file used the coder"))
    images, names = _sample_digits()
    for case, kw in LOSSY_CASES.items():
        try:
            want = (out / f"{case}.vlae").read_bytes()
            same_file = vlaecodec.compress(images, loaded, names=names, lossy=True, **kw) == want
            back = np.stack(vlaecodec.decompress(want, loaded).images)
            same_pixels = np.array_equal(back, np.load(out / f"{case}.npy"))
            ok, what = same_file and same_pixels, f"file bytes {'identical' if same_file else 'DIFFER'}, " \
                f"redrawn digits {'identical' if same_pixels else 'DIFFER'}"
        except Exception as e:  # noqa: BLE001
            ok, what = False, f"{e.__class__.__name__}: {e}"
        failures += not ok
        print(f"{case:12s}: {'ok' if ok else 'FAIL'} ({what})")
    print("ALL OK" if not failures else f"{failures} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--stub"]
    if len(args) != 2 or args[0] not in ("record", "replay"):
        sys.exit(__doc__)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args[0] == "record":
        record(Path(args[1]))
    else:
        sys.exit(replay(Path(args[1]), force_stub="--stub" in sys.argv))
