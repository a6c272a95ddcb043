"""A photo file is the same bytes, and decodes to the same pixels, under other BLAS
kernels, numpy SIMD settings and thread counts (fresh processes; no torch in them)."""
import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

CHILD = r"""
import hashlib, json, sys
import numpy as np
sys.modules["torch"] = None                     # the coding path must not need torch
from vlaecodec import photo_codec, photo_int
net = photo_int.load(sys.argv[1])
x = np.load(sys.argv[2])
words, _ = photo_codec.encode(net, x)
back = photo_codec.decode(net, np.load(sys.argv[3]), *x.shape[:2])
print(json.dumps({"words": hashlib.sha256(words.tobytes()).hexdigest(),
                  "decoded": bool(np.array_equal(back, x))}))
"""

AVX512_OFF = "X86_V4 AVX512_ICL AVX512_SPR"   # numpy 2.x dispatch targets above AVX2 (as test_exactness)
SETTINGS = {
    "openblas-prescott": {"OPENBLAS_CORETYPE": "Prescott"},
    "openblas-haswell-4-threads": {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "4"},
    "numpy-no-avx2-avx512": {"NPY_DISABLE_CPU_FEATURES": "X86_V3 " + AVX512_OFF},
}


def test_photo_file_identical_on_other_kernels(tmp_path):
    from vlaecodec import photo_codec
    from vlaecodec.photo_freeze import to_integer
    from vlaecodec.photo_int import IntPhotoVLAE
    from vlaecodec.photo_vlae import PHOTO_PRESETS, PhotoVLAE
    torch.manual_seed(5)
    arrays = to_integer(PhotoVLAE(PHOTO_PRESETS["photo-tiny-rgb"]).eval())
    np.savez(tmp_path / "m.npz", **arrays)
    rng = np.random.default_rng(12)
    x = np.clip(np.add.outer(np.arange(29), np.arange(23))[..., None] * 4 + rng.integers(0, 30, (29, 23, 3)), 0, 255
                ).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    words, _ = photo_codec.encode(IntPhotoVLAE(arrays), x)
    np.save(tmp_path / "w.npy", words)
    want = hashlib.sha256(words.tobytes()).hexdigest()
    for name, changes in SETTINGS.items():
        env = dict(os.environ, **changes)
        r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "m.npz"), str(tmp_path / "x.npy"),
                            str(tmp_path / "w.npy")], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{name}: {r.stderr[-500:]}"
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert got == {"words": want, "decoded": True}, name
