"""Model name -> manifest -> hash-verified model file -> integer model (and, on request,
the float model it was frozen from).

Models ship inside the package (``vlaecodec.checkpoints``, the repo's ``models/``)
because nothing may be fetched from a hub at run time. A model is two files:

* ``<name>-<sha8>.npz``: the frozen integer coding model (numpy arrays, no pickles).
  Its sha256 is the model's identity: every .vlae file names it by a prefix of it.
* ``<name>-<sha8>.pt``: the float checkpoint it was frozen from (torch), used only to
  evaluate the model's -ELBO; coding never loads it (nor torch).

Every load checks the file's sha256 against the manifest and refuses a mismatch.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import VLAEConfig
from .intnet import IntVLAE, load_arrays

# The model an image's kind picks when none is named: pixel levels -> model name.
DEFAULT_MODELS = {2: "vlae-mnist-v2", 256: "vlae-mnist8-v1"}
DEFAULT_MODEL = DEFAULT_MODELS[2]   # the library's default (binary digits)
CHECKPOINT_FORMAT_VERSION = 1   # the float .pt checkpoints written by train.py


class ModelError(RuntimeError):
    """A model is unknown, corrupt or incompatible; the message says which and why."""


class UnknownModel(ModelError):
    """No installed model has this name (a usage error on the command line)."""


@dataclass
class LoadedModel:
    name: str
    sha256: str
    net: IntVLAE
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    _float: Any = None

    @property
    def config(self) -> VLAEConfig:
        return self.net.cfg

    def float_model(self) -> Any:
        """The float VLAE this model was frozen from (imports torch; for evaluation)."""
        if self._float is None:
            f, digest = self.manifest.get("float_file"), self.manifest.get("float_sha256")
            if not f or self.path is None:
                raise ModelError(f"{self.name}: no float checkpoint is recorded for this model")
            self._float = load_float_checkpoint(self.path.parent / f, expected_sha256=digest)
        return self._float


def model_dirs() -> list[Path]:
    """Shipped models first, then any directories listed in $VLAECODEC_MODELS (os.pathsep)."""
    dirs = [Path(__file__).resolve().parent / "checkpoints"]
    try:  # installed layout: vlaecodec.checkpoints is package data
        import vlaecodec.checkpoints as ck
        dirs = [Path(p) for p in ck.__path__]
    except ImportError:
        dirs.append(Path(__file__).resolve().parent.parent / "models")  # source tree
    extra = os.environ.get("VLAECODEC_MODELS")
    if extra:
        dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return [d for d in dirs if d.is_dir()]


def list_manifests(architecture: str | None = "vlae") -> list[dict[str, Any]]:
    """Installed model manifests of one architecture ("vlae": the 28x28 digit models;
    "photo-vlae": the any-size models of ``photo_int``; None: all)."""
    out, seen = [], set()
    for d in model_dirs():
        for p in sorted(d.glob("*.json")):
            try:
                m = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if (isinstance(m, dict) and "name" in m and "file" in m and "sha256" in m and m["name"] not in seen
                    and (architecture is None or m.get("architecture", "vlae") == architecture)):
                m["_dir"] = str(d)
                seen.add(m["name"])
                out.append(m)
    return out


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _read_verified(path: Path, expected_sha256: str | None) -> tuple[bytes, str]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror}") from None
    digest = sha256_bytes(raw)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelError(f"{path.name}: sha256 {digest[:16]}... does not match the manifest's "
                         f"{expected_sha256[:16]}...; the file is corrupt or was replaced")
    return raw, digest


def load_model_file(path: str | os.PathLike, name: str | None = None, expected_sha256: str | None = None,
                    manifest: dict[str, Any] | None = None) -> LoadedModel:
    """Load an integer model file (.npz); if ``expected_sha256`` is given a mismatch is an error."""
    path = Path(path)
    raw, digest = _read_verified(path, expected_sha256)
    try:
        net = IntVLAE(load_arrays(io.BytesIO(raw)))
    except Exception as e:  # noqa: BLE001 - any failure to read the arrays means a bad file
        hint = " (a float .pt checkpoint? freeze it first: vlaecodec train freeze)" if path.suffix == ".pt" else ""
        raise ModelError(f"{path.name}: not a vlaecodec integer model{hint} "
                         f"({e.__class__.__name__}: {str(e)[:120]})") from None
    return LoadedModel(name=name or net.meta.get("name") or path.stem, sha256=digest, net=net,
                       manifest=manifest or {}, path=path)


def load_float_checkpoint(path: str | os.PathLike, expected_sha256: str | None = None) -> Any:
    """A float VLAE from a training checkpoint (.pt; imports torch)."""
    import torch

    from .vlae import VLAE

    path = Path(path)
    raw, _ = _read_verified(path, expected_sha256)
    try:
        ck = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ModelError(f"{path.name}: not a readable vlaecodec checkpoint ({e.__class__.__name__})") from None
    if not isinstance(ck, dict):
        raise ModelError(f"{path.name}: not a vlaecodec checkpoint (no checkpoint dictionary)")
    if ck.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ModelError(f"{path.name}: checkpoint format {ck.get('format_version')} is not supported "
                         f"(this vlaecodec reads format {CHECKPOINT_FORMAT_VERSION})")
    try:
        model = VLAE(VLAEConfig.from_dict(ck["config"]))
        model.load_state_dict(ck["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, NotImplementedError) as e:
        raise ModelError(f"{path.name}: checkpoint is incomplete or does not match its config "
                         f"({e.__class__.__name__}: {str(e)[:200]})") from None
    return model.eval()


_CACHE: dict[str, LoadedModel] = {}


def load_model(name_or_path: str | os.PathLike | None = None) -> LoadedModel:
    """An installed model by name (default: the default model) or a model file's path."""
    key = str(name_or_path or DEFAULT_MODEL)
    if key in _CACHE:
        return _CACHE[key]
    if is_model_file(key):
        loaded = load_model_file(key)
    else:
        manifests = {m["name"]: m for m in list_manifests()}
        if key not in manifests:
            known = ", ".join(sorted(manifests)) or "none installed"
            raise UnknownModel(f"unknown model {key!r} (available: {known})")
        m = manifests[key]
        loaded = load_model_file(Path(m["_dir"]) / m["file"], name=m["name"],
                                 expected_sha256=m["sha256"], manifest=m)
    _CACHE[key] = loaded
    return loaded


def find_by_hash(prefix_hex: str, name: str | None = None) -> LoadedModel:
    """The installed model whose sha256 starts with ``prefix_hex`` (and has ``name``, if given)."""
    hits = [m for m in list_manifests() if m["sha256"].startswith(prefix_hex) and (name is None or m["name"] == name)]
    if not hits:
        who = f"model {name!r}" if name else "a model"
        raise ModelError(f"this file needs {who} with hash {prefix_hex}, which is not installed "
                         f"(see `vlaecodec models`; or pass the model file with --model)")
    return load_model(hits[0]["name"])


def is_model_file(name_or_path: str) -> bool:
    """Whether ``--model`` names a file (a path or a .npz/.pt name) rather than an installed model."""
    return name_or_path.endswith((".npz", ".pt")) or os.sep in name_or_path


def kind(levels: int) -> str:
    """What a model of ``levels`` pixel levels codes, in words."""
    return "binary" if levels == 2 else "8-bit" if levels == 256 else f"{levels}-level"


def default_model(levels: int) -> LoadedModel:
    """The default model for images of ``levels`` pixel levels (see DEFAULT_MODELS)."""
    name = DEFAULT_MODELS.get(levels)
    if name is None:
        raise ModelError(f"no default model codes {kind(levels)} images; pass --model")
    if name not in {m["name"] for m in list_manifests()}:
        raise ModelError(f"no {kind(levels)} model is installed (the default, {name}, is missing; "
                         f"see `vlaecodec models`, or pass --model NAME or a model file)")
    return load_model(name)


def model_for_dataset(dataset: str, levels: int) -> LoadedModel:
    """The model to measure ``dataset`` with: the default model of its kind if it was
    trained on that dataset, else the installed model trained on it (the last name in
    sort order, so v2 before v1), else the default of its kind."""
    default = DEFAULT_MODELS.get(levels)
    trained = sorted(m["name"] for m in list_manifests() if m.get("dataset") == dataset
                     and m.get("config", {}).get("pixel_levels", 2) == levels)
    if default in trained or not trained:
        return default_model(levels)
    return load_model(trained[-1])


def name_for_hash(prefix_hex: str) -> str | None:
    """The name of the installed model whose sha256 starts with ``prefix_hex``, if any."""
    hits = [m["name"] for m in list_manifests() if m.get("sha256", "").startswith(prefix_hex)]
    return hits[0] if hits else None


def model_table() -> list[tuple[str, ...]]:
    """One row per installed model for ``vlaecodec models``: name, sha256 prefix, what it
    codes (size and binary/8-bit), prior, decoder receptive field, test -ELBO, lossy rate
    levels, and '*' for the default model of its kind. The first row is the header."""
    import math

    rows = [("name", "sha256", "codes", "prior", "receptive field", "test -ELBO", "lossy levels", "default")]
    for m in list_manifests():
        cfg = m.get("config") or {}
        try:
            c = VLAEConfig.from_dict(cfg)
            prior, field_, dims = c.prior, f"{c.receptive_rows} rows", c.image_size * c.image_size
        except (TypeError, ValueError):
            prior, field_, dims = str(cfg.get("prior", "?")), "?", 0
        nats = (m.get("metrics") or {}).get("test_neg_elbo_nats")
        elbo = "-"
        if isinstance(nats, (int, float)):
            elbo = f"{nats:.2f} nats" + (f" ({nats / (dims * math.log(2)):.4f} bits/dim)" if dims else "")
        levels = (m.get("coding") or {}).get("lossy_bits_per_level") or []
        lossy = f"1-{len(levels)}: {levels[0]}-{levels[-1]} bits" if levels else "none"
        size, pixel_levels = cfg.get("image_size", "?"), cfg.get("pixel_levels", 2)
        rows.append((m["name"], str(m.get("sha256", ""))[:12], f"{size}x{size} {kind(pixel_levels)}", prior,
                     field_, elbo, lossy, "*" if DEFAULT_MODELS.get(pixel_levels) == m["name"] else ""))
    for m in list_manifests("photo-vlae"):   # any-size models: tried on every photo of their mode (unless retired)
        cfg = m.get("config") or {}
        bpd = (m.get("metrics") or {}).get("valid_neg_elbo_bpd")
        elbo = f"{bpd:.4f} bits/sub-pixel (validation photos)" if isinstance(bpd, (int, float)) else "-"
        what = "any size RGB" if m.get("mode") == "RGB" else "any size 8-bit gray"
        rows.append((m["name"], str(m.get("sha256", ""))[:12], what, "row above",
                     f"{cfg.get('horizon', '?')} rows", elbo, "none", "" if m.get("retired") else "*"))
    return rows


def model_lines() -> list[str]:
    """``model_table`` as aligned text lines (none when no model is installed)."""
    rows = model_table()
    if len(rows) == 1:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
