"""Check that the any-size photo coder (photo_codec, rans, mixture, photo_int: numpy only)
encodes and decodes bit for bit alike on another machine, e.g. emulated ARM64.

    python bench/arm64/photo_check.py record OUT                  # here (x86-64)
    bench/arm64/run.sh python bench/arm64/photo_check.py check OUT          # qemu's max CPU
    ARM64_CPU=cortex-a72 bench/arm64/run.sh python bench/arm64/photo_check.py check OUT

``record`` codes, with the current photo model of each kind forced
(``anysize.compress([x], [mode], coders=[model name])``), the two sample crops
(samples/photos/, 128x96 RGB and gray) and a larger crop of each, 200x150 of the sample
tiled 2x2 (150 rows: not a multiple of 8, so the padding is exercised), and, with the
context models forced (``coders=["context"]``), a binary document, a gray chart and an
RGB wallpaper (bilevel.py, graylevel.py, colorlevel.py); it writes the files, the models' hashes and the pixels'
sha256 to OUT. ``check`` then, on the other machine: (a) decodes every golden file
tests/golden/photos/*.vlae and compares it with its image; (b) encodes the same seven
images and compares the files
with the recorded ones byte for byte; (c) decodes the recorded files and compares the
pixels with the originals. Everything goes through ``vlaecodec.anysize`` (no CLI).

constriction is not used by the photo coder, but ``import vlaecodec.anysize`` runs
vlaecodec/__init__.py, whose last lines import vlaecodec.codec (for ``Archive``), which
imports constriction at module level. Where constriction is absent (Linux aarch64 has no
wheel) the stand-in of bench/arm64/stub is put on the path: it only names the model
families; its AnsCoder raises, so any use of it by the photo path would fail loudly.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Every golden any-size file (tests/test_photo_golden.py) and the image it must decode to.
GOLDEN = {"photo-rgb-v1-ladybird.vlae": "samples/photos/ladybird-128x96.png",
          "photo-rgb-v2-ladybird.vlae": "samples/photos/ladybird-128x96.png",
          "photo-rgb-v3-ladybird.vlae": "samples/photos/ladybird-128x96.png",
          "photo-gray-v1-coins.vlae": "samples/photos/coins-128x96-gray.png",
          "photo-gray-v2-coins.vlae": "samples/photos/coins-128x96-gray.png",
          "context-text.vlae": "samples/documents/text-240x96-1bit.png",
          "context-gray-chart.vlae": "tests/golden/photos/context-gray-chart.png",
          "context-rgb-wallpaper.vlae": "tests/golden/photos/context-rgb-wallpaper.png"}
SAMPLES = {"RGB": "ladybird-128x96.png", "L": "coins-128x96-gray.png"}
# The context models (bilevel.py, graylevel.py, colorlevel.py), forced with coders=["context"].
CONTEXT_SAMPLES = {"text-240x96-1bit": ("samples/documents/text-240x96-1bit.png", "1"),
                   "context-gray-chart": ("tests/golden/photos/context-gray-chart.png", "L"),
                   "context-rgb-wallpaper": ("tests/golden/photos/context-rgb-wallpaper.png", "RGB")}
LARGE = (150, 200)   # rows, columns of the tiled crop


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _pixels_sha(a) -> str:
    import numpy as np
    a = np.ascontiguousarray(a)
    return _sha(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())[:24]


def _cases():
    """name -> (pixels, mode): the two sample crops and a 200x150 crop of each tiled
    (coded with the photo models), and the context models' two samples."""
    import numpy as np
    from PIL import Image
    out = {}
    for mode, f in SAMPLES.items():
        x = np.asarray(Image.open(REPO / "samples/photos" / f))
        assert (x.ndim == 3) == (mode == "RGB"), f
        stem = f.rsplit(".", 1)[0]
        out[stem] = (x, mode)
        reps = (2, 2, 1) if x.ndim == 3 else (2, 2)
        big = np.ascontiguousarray(np.tile(x, reps)[:LARGE[0], :LARGE[1]])
        out[f"{stem.split('-')[0]}-tiled-{LARGE[1]}x{LARGE[0]}{'-gray' if mode == 'L' else ''}"] = (big, mode)
    for name, (f, mode) in CONTEXT_SAMPLES.items():
        out[name] = (np.asarray(Image.open(REPO / f)).astype(np.uint8), mode)
    return out


def _coder(case: str, mode: str, models: dict) -> str:
    """What ``record`` forces for a case: "context" or the current photo model's name."""
    return "context" if case in CONTEXT_SAMPLES else models[mode]["name"]


def _machine() -> str:
    import numpy as np
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
        on = [k for k, v in feats.items() if v]
    except Exception:  # noqa: BLE001 - informative only
        on = ["?"]
    cpu = os.environ.get("QEMU_CPU")
    return (f"{platform.machine()} (python {platform.python_version()}, numpy {np.__version__}"
            + (f", QEMU_CPU={cpu}" if cpu else "") + f"; numpy CPU features: {' '.join(on) or 'none'})")


def _import_anysize(force_stub: bool = False):
    if force_stub or importlib.util.find_spec("constriction") is None:
        sys.path.insert(0, str(HERE / "stub"))
        print("constriction absent: bench/arm64/stub stands in (import vlaecodec -> vlaecodec/__init__.py "
              "-> `from .codec import Archive` -> vlaecodec/codec.py `import constriction`)")
    from vlaecodec import anysize
    return anysize


def _current_models(anysize) -> dict:
    out = {}
    for mode in SAMPLES:
        ms = anysize.photo_models(mode, retired=False)
        assert len(ms) == 1, f"{len(ms)} current photo models for mode {mode}"
        out[mode] = {"name": ms[0].name, "sha256": ms[0].sha256}
    return out


def record(out: Path) -> int:
    import numpy as np
    anysize = _import_anysize()
    out.mkdir(parents=True, exist_ok=True)
    models = _current_models(anysize)
    rep = {"machine": platform.machine(), "numpy": np.__version__, "models": models, "cases": {}}
    print(f"recording on {_machine()}")
    failures = 0
    for case, (x, mode) in _cases().items():
        name = _coder(case, mode, models)
        t = time.perf_counter()
        blob, recs = anysize.compress([x], [mode], coders=[name])
        te = time.perf_counter() - t
        assert recs[0].coder_name == name or name == "context" and "context" in recs[0].coder_name
        (out / f"{case}.vlae").write_bytes(blob)
        t = time.perf_counter()
        back, _ = anysize.decompress(blob)
        td = time.perf_counter() - t
        ok = len(back) == 1 and np.array_equal(back[0], x)
        failures += not ok
        rep["cases"][case] = {"mode": mode, "shape": list(x.shape), "model": name, "file_sha256": _sha(blob),
                              "bytes": len(blob), "pixels_sha": _pixels_sha(x)}
        print(f"{case}: {x.shape[1]}x{x.shape[0]} {mode}, {name}, {len(blob)} bytes, sha256 {_sha(blob)[:16]}; "
              f"round trip {'ok' if ok else 'FAIL'} (encode {te:.1f} s, decode {td:.1f} s)")
        gold = next((g for g, png in GOLDEN.items() if Path(png).stem == case
                     and (g.startswith(name + "-") or name == "context")), None)
        if gold:   # the golden file of this sample, written earlier through the CLI
            same = (REPO / "tests/golden/photos" / gold).read_bytes() == blob
            print(f"    {'same bytes as' if same else 'differs from'} tests/golden/photos/{gold}")
    (out / "recorded.json").write_text(json.dumps(rep, indent=2))
    print("recorded" if not failures else f"{failures} FAILED")
    return 1 if failures else 0


def check(out: Path, force_stub: bool = False) -> int:
    import numpy as np
    from PIL import Image
    anysize = _import_anysize(force_stub)
    rec = json.loads((out / "recorded.json").read_text())
    print(f"checking on {_machine()}; recorded on {rec['machine']} (numpy {rec['numpy']})")
    failures = 0

    def report(label: str, ok: bool, what: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{label}: {'ok' if ok else 'FAIL'} ({what})", flush=True)

    models = _current_models(anysize)
    for mode, m in rec["models"].items():
        same = models[mode] == m
        report(f"model {mode}", same, f"{m['name']} {m['sha256'][:12]}" if same else
               f"installed {models[mode]['name']} {models[mode]['sha256'][:12]} vs recorded "
               f"{m['name']} {m['sha256'][:12]}")
    if failures:
        print(f"{failures} FAILED")
        return 1

    # (a) the golden files, written by the shipped models on x86-64
    for f, png in sorted(GOLDEN.items()):
        label = f"(a) golden {f}"
        try:
            t = time.perf_counter()
            imgs, recs = anysize.decompress((REPO / "tests/golden/photos" / f).read_bytes())
            td = time.perf_counter() - t
            want = np.asarray(Image.open(REPO / png)).astype(np.uint8)
            ok = len(imgs) == 1 and np.array_equal(imgs[0], want)
            report(label, ok, f"{recs[0].coder_name}, decodes to {png}: "
                   f"{'identical pixels' if ok else 'PIXELS DIFFER'}, {td:.1f} s")
        except Exception as e:  # noqa: BLE001 - report and go on
            report(label, False, f"{e.__class__.__name__}: {e}")

    cases = _cases()
    for case, want in rec["cases"].items():
        x, mode = cases[case]
        name = want["model"]
        recorded = (out / f"{case}.vlae").read_bytes()
        size = f"{x.shape[1]}x{x.shape[0]} {mode}, {name}"
        if _pixels_sha(x) != want["pixels_sha"] or _sha(recorded) != want["file_sha256"]:
            report(f"{case}", False, "input pixels or recorded file are not what was recorded")
            continue
        # (b) encoding here gives the recorded file, byte for byte
        try:
            t = time.perf_counter()
            blob, recs = anysize.compress([x], [mode], coders=[name])
            te = time.perf_counter() - t
            same = blob == recorded
            what = (f"{size}: {len(blob)} bytes identical to x86-64's" if same else
                    f"{size}: FILE BYTES DIFFER, {len(blob)} vs {len(recorded)} bytes, first difference at byte "
                    f"{next((i for i, (a, b) in enumerate(zip(blob, recorded)) if a != b), min(len(blob), len(recorded)))}")
            report(f"(b) encode {case}", same, f"{what}, {te:.1f} s")
            if not same:   # still lossless here? (diagnostic only)
                back, _ = anysize.decompress(blob)
                print(f"    this machine's file decodes to the original here: {np.array_equal(back[0], x)}")
        except Exception as e:  # noqa: BLE001
            report(f"(b) encode {case}", False, f"{e.__class__.__name__}: {e}")
        # (c) the recorded (x86-64) file decodes here to the original pixels
        try:
            t = time.perf_counter()
            back, recs = anysize.decompress(recorded)
            td = time.perf_counter() - t
            ok = (len(back) == 1 and (recs[0].coder_name == name or name == "context")
                  and np.array_equal(back[0], x))
            report(f"(c) decode {case}", ok, f"{size}: x86-64's file decodes to "
                   f"{'the original pixels' if ok else 'DIFFERENT PIXELS'}, {td:.1f} s")
        except Exception as e:  # noqa: BLE001
            report(f"(c) decode {case}", False, f"{e.__class__.__name__}: {e}")

    leaked = [m for m in ("torch",) if m in sys.modules]
    if leaked:
        report("imports", False, f"{' '.join(leaked)} imported by the photo path")
    print("ALL OK" if not failures else f"{failures} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--stub"]
    if len(args) != 2 or args[0] not in ("record", "check"):
        sys.exit(__doc__)
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args[0] == "record":
        sys.exit(record(Path(args[1])))
    sys.exit(check(Path(args[1]), force_stub="--stub" in sys.argv))
