"""Model name -> manifest -> hash-verified checkpoint -> model.

Checkpoints ship inside the package (``vlaecodec.checkpoints``, the repo's ``models/``)
because nothing may be fetched from a hub at run time. Every load checks the file's
sha256 against its manifest and refuses a mismatch.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import VLAEConfig
from .vlae import VLAE

DEFAULT_MODEL = "vlae-mnist-v1"
CHECKPOINT_FORMAT_VERSION = 1


class ModelError(RuntimeError):
    """A model is unknown, corrupt or incompatible; the message says which and why."""


@dataclass
class LoadedModel:
    name: str
    sha256: str
    model: VLAE
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    # Coding tables frozen with the weights (e.g. direct-coding bins per latent dim).
    coding: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> VLAEConfig:
        return self.model.cfg


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


def list_manifests() -> list[dict[str, Any]]:
    out, seen = [], set()
    for d in model_dirs():
        for p in sorted(d.glob("*.json")):
            try:
                m = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if "name" in m and "file" in m and m["name"] not in seen:
                m["_dir"] = str(d)
                seen.add(m["name"])
                out.append(m)
    return out


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def model_from_checkpoint_bytes(raw: bytes, where: str) -> tuple[VLAE, dict[str, Any]]:
    try:
        ck = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ModelError(f"{where}: not a readable vlaecodec checkpoint ({e.__class__.__name__})") from None
    if not isinstance(ck, dict):
        raise ModelError(f"{where}: not a vlaecodec checkpoint (no checkpoint dictionary)")
    if ck.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ModelError(f"{where}: checkpoint format {ck.get('format_version')} is not supported "
                         f"(this vlaecodec reads format {CHECKPOINT_FORMAT_VERSION})")
    try:
        model = VLAE(VLAEConfig.from_dict(ck["config"]))
        model.load_state_dict(ck["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, NotImplementedError) as e:
        raise ModelError(f"{where}: checkpoint is incomplete or does not match its config "
                         f"({e.__class__.__name__}: {str(e)[:200]})") from None
    return model.eval(), dict(ck.get("coding") or {})


def load_checkpoint(path: str | os.PathLike, name: str | None = None, expected_sha256: str | None = None,
                    manifest: dict[str, Any] | None = None) -> LoadedModel:
    """Load a checkpoint file; if ``expected_sha256`` is given a mismatch is an error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read checkpoint {path}: {e.strerror}") from None
    digest = sha256_bytes(raw)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelError(f"{path.name}: sha256 {digest[:16]}... does not match the manifest's "
                         f"{expected_sha256[:16]}...; the checkpoint is corrupt or was replaced")
    model, coding = model_from_checkpoint_bytes(raw, path.name)
    return LoadedModel(name=name or path.stem, sha256=digest, model=model, manifest=manifest or {},
                       path=path, coding=coding)


_CACHE: dict[str, LoadedModel] = {}


def load_model(name_or_path: str | os.PathLike | None = None) -> LoadedModel:
    """A shipped model by name (default: the newest default model) or a .pt path."""
    key = str(name_or_path or DEFAULT_MODEL)
    if key in _CACHE:
        return _CACHE[key]
    if key.endswith(".pt") or os.sep in key:
        loaded = load_checkpoint(key)
    else:
        manifests = {m["name"]: m for m in list_manifests()}
        if key not in manifests:
            known = ", ".join(sorted(manifests)) or "none installed"
            raise ModelError(f"unknown model {key!r} (available: {known})")
        m = manifests[key]
        loaded = load_checkpoint(Path(m["_dir"]) / m["file"], name=m["name"],
                                 expected_sha256=m["sha256"], manifest=m)
    _CACHE[key] = loaded
    return loaded


def find_by_hash(prefix_hex: str, name: str | None = None) -> LoadedModel:
    """The installed model whose sha256 starts with ``prefix_hex`` (and has ``name``, if given)."""
    hits = [m for m in list_manifests() if m["sha256"].startswith(prefix_hex) and (name is None or m["name"] == name)]
    if not hits:
        who = f"model {name!r}" if name else "a model"
        raise ModelError(f"this file needs {who} with hash {prefix_hex}, which is not installed "
                         f"(see `vlaecodec models`)")
    return load_model(hits[0]["name"])
