"""vlaecodec: lossless image compression with a Variational Lossy Autoencoder and
bits-back ANS coding. Coding needs numpy and constriction only (integer arithmetic,
identical on every machine): ``pip install vlaecodec`` installs no torch. Training,
freezing and evaluating float models import torch: ``pip install 'vlaecodec[train]'``.

    >>> import numpy as np, vlaecodec
    >>> digits = [np.zeros((28, 28), np.uint8)]            # binary pixels: 0/1
    >>> blob = vlaecodec.compress(digits)                   # doctest: +SKIP
    >>> vlaecodec.decompress(blob).images[0].shape          # doctest: +SKIP
    (28, 28)
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

# Coding multiplies small matrices, millions of times: one BLAS thread per process is
# fastest (several threads only synchronise, and spin badly on a busy machine);
# parallel work runs in separate processes. Only takes effect if numpy is not loaded yet.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

__version__ = "0.1.0"

__all__ = ["compress", "decompress", "inspect", "load_model", "Archive", "CodecError", "__version__"]

from .container import ContainerError as CodecError  # noqa: E402  (re-exported)
from .zoo import LoadedModel, ModelError, load_model  # noqa: E402,F401

Progress = Callable[[int], None]


def compress(images: Sequence[np.ndarray], model: "LoadedModel | str | None" = None, *,
             names: Sequence[str] | None = None, modes: Sequence[str] | None = None,
             progress: Progress | None = None, stats: dict | None = None, jobs: int | None = None,
             lossy: bool = False, rate: int | None = None, draw: int | None = None,
             particles: int = 1) -> bytes:
    """Compress images (uint8 arrays of the model's size; 0/1 pixels for binary models)
    into one .vlae byte string. ``names`` are stored (compactly) if given; ``modes``
    ('1', 'L-binary' or 'L'; default '1' for binary models) say how each image is
    written back out. ``progress`` is
    called with the number of images finished so far (coding steps, not wall time).
    ``jobs`` processes code long archives as parallel chains (default: the usable
    cores); ``stats`` receives the file's make-up (chains, batches, direct part).
    ``lossy=True`` keeps only each image's latent code at rate level ``rate`` (see
    ``vlaecodec.lossy``); decompression then redraws the images (``draw``).
    ``particles=K`` (K > 1) codes archives at the importance-weighted bound with K
    particles (Monte Carlo bits-back): smaller, about K times slower."""
    from . import codec
    return codec.compress(images, _resolve(model), names=names, modes=modes, progress=progress,
                          stats=stats, jobs=jobs, lossy=lossy, rate=rate, draw=draw, particles=particles)


def decompress(data: bytes, model: "LoadedModel | str | None" = None, *,
               progress: Progress | None = None, jobs: int | None = None) -> "Archive":
    """Decode a .vlae byte string. The model is found from the file's header (name and
    sha256 prefix) unless one is given; a model whose hash does not match is an error."""
    from . import codec
    return codec.decompress(data, None if model is None else _resolve(model), progress=progress, jobs=jobs)


def inspect(data: bytes) -> "Header":
    """Parse only the header (model, image count, shapes) without decoding."""
    from .container import unpack
    return unpack(data)[0]


def _resolve(model: "LoadedModel | str | None") -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model)


from .codec import Archive  # noqa: E402
from .container import Header  # noqa: E402
