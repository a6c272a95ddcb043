"""Data-parallel training under torchrun: 2 CPU processes (gloo) on the tiny preset.

The run reads a small synthetic MNIST from a temporary cache (no network, no real data),
writes one checkpoint from rank 0 that loads through the zoo, reports identical weights
on both ranks, and ``--resume`` continues it under torchrun.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_digits


def _gloo() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_gloo_available()


needs_gloo = pytest.mark.skipif(not _gloo(), reason="torch.distributed with the gloo backend is not "
                                                    "available in this torch build")


def _synthetic_mnist_cache(cache: Path) -> None:
    """The cached npz vlaecodec.data builds from MNIST, made of synthetic digits."""
    cache.mkdir(parents=True)
    arrays = {}
    for i, (split, n) in enumerate((("train", 128), ("valid", 32), ("test", 8))):
        arrays[split] = (synthetic_digits(n, seed=40 + i) * 255).astype(np.uint8)
        arrays[split + "_labels"] = np.zeros(n, np.int64)
    np.savez(cache / "mnist8.npz", **arrays)


def _torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLAECODEC_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "vlaecodec.train", "--preset", "vlae-tiny", "--out", str(tmp_path / "run"),
           "--batch-size", "32", "--threads", "1", "--device", "cpu", *args]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    # Known, outside our code: with torch 2.13 on a busy 2-core machine, a rank sometimes
    # aborts inside gloo's teardown ("terminate called without an active exception",
    # SIGABRT) after training has finished and rank 0 has written and logged everything
    # (3 runs in about 25 here, always after the last log line). Only that exit is let
    # through; the callers then check every log line and checkpoint as usual.
    teardown_abort = ("terminate called without an active exception" in r.stderr
                      and "(SIGABRT)" in r.stderr and "data parallel: weights and EMA identical" in r.stderr)
    assert r.returncode == 0 or teardown_abort, \
        f"torchrun failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


@needs_gloo
def test_torchrun_two_cpu_ranks_train_and_resume(tmp_path):
    from vlaecodec import zoo
    from vlaecodec.config import preset

    _synthetic_mnist_cache(tmp_path / "cache")
    run = tmp_path / "run"

    r = _torchrun(tmp_path, "--epochs", "1")
    log = r.stderr
    assert "data parallel: 2 ranks (gloo), global batch 32 = 2 x 16" in log
    assert log.count("data parallel: weights and EMA identical on all 2 ranks") == 1   # checked, logged by rank 0
    assert log.count("epoch 1: valid -ELBO") == 1                     # only rank 0 validates and logs
    assert r.stdout.strip().splitlines() == [str(run / "model.pt")]   # only rank 0 prints
    model = zoo.load_float_checkpoint(run / "model.pt")               # a valid model
    assert model.cfg == preset("vlae-tiny")
    ck = torch.load(run / "model.pt", weights_only=False)
    assert ck["training"]["ranks"] == 2 and ck["training"]["batch_size"] == 32
    last = torch.load(run / "last.pt", weights_only=False)
    # 128 images, global batch 32: 4 optimizer steps per epoch, as in one process.
    assert last["state"]["epoch"] == 1 and last["state"]["step"] == 4
    first = {k: v.clone() for k, v in model.state_dict().items()}

    r = _torchrun(tmp_path, "--epochs", "2", "--resume")
    log = r.stderr
    assert log.count(f"resumed from {run / 'last.pt'} at epoch 1") == 1
    assert log.count("data parallel: weights and EMA identical on all 2 ranks") == 1
    assert "epoch 2: valid -ELBO" in log and "epoch 1: valid" not in log
    last = torch.load(run / "last.pt", weights_only=False)
    assert last["state"]["epoch"] == 2 and last["state"]["step"] == 8
    assert len(last["state"]["history"]) == 2
    assert all(np.isfinite(h["neg_elbo"]) for h in last["state"]["history"])
    again = zoo.load_float_checkpoint(run / "model.pt")
    assert any(not torch.equal(first[k], v) for k, v in again.state_dict().items())


def test_shard_losses_average_to_the_one_process_gradient(monkeypatch):
    """The rule behind "same batch, same lr": DDP averages the ranks' gradients, and each
    rank's loss (its shard's mean reconstruction + the free-bits KL floored on the
    global batch's mean) has the gradient that averages to the one-process gradient of
    the whole batch. The floor straddles here: dimension 5's mean KL is above it on the
    whole batch and below it on the first shard, where a per-shard floor would differ."""
    from vlaecodec.config import VLAEConfig, preset
    from vlaecodec.vlae import VLAE

    cfg = VLAEConfig(**{**preset("vlae-tiny").to_dict(), "free_bits": 0.03})
    torch.manual_seed(0)
    model = VLAE(cfg)
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(32, 28, 28, generator=g) < 0.3).long()
    eps = torch.randn(32, cfg.latent_dim, generator=g)

    def grad(xb, noise, global_mean=None):
        monkeypatch.setattr(torch, "randn_like", lambda t: noise.clone())
        model.zero_grad()
        loss, t = model.training_loss(xb, global_mean=global_mean)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()]), t

    whole, t = grad(x, eps)
    kl_mean = t.kl_dims.mean(0).detach()
    halves = [slice(0, 16), slice(16, 32)]
    shard_means = [t.kl_dims[s].mean(0).detach() for s in halves]
    assert kl_mean[5] > cfg.free_bits > shard_means[0][5]
    ddp = sum(grad(x[s], eps[s], lambda m: kl_mean)[0] for s in halves) / 2
    torch.testing.assert_close(ddp, whole, rtol=1e-4, atol=1e-4 * whole.abs().max().item())
    per_shard = sum(grad(x[s], eps[s], lambda m: m)[0] for s in halves) / 2
    assert (per_shard - whole).abs().max() > 100 * (ddp - whole).abs().max()
