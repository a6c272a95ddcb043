"""Training loop (``vlaecodec train`` / ``python -m vlaecodec.train``): the only writer
of checkpoints. The paper's recipe: Adamax (lr 2e-3), free bits 0.01 nats/dim,
Polyak averaging 0.998; dynamic binarization of 8-bit MNIST while training.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import data
from .config import PRESETS, VLAEConfig, preset
from .vlae import VLAE

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    import importlib.metadata  # constriction has no __version__; coding depends on it
    return {"torch": str(torch.__version__), "numpy": str(np.__version__),
            "constriction": importlib.metadata.version("constriction"),
            "python": platform.python_version()}


def atomic_save(obj: Any, path: Path) -> None:
    from .fileio import write_atomic
    write_atomic(path, lambda f: torch.save(obj, f), overwrite=True, make_parents=True)


@torch.no_grad()
def evaluate_elbo(model: VLAE, x: np.ndarray, batch: int = 500) -> dict[str, float]:
    """Single-sample -ELBO, reconstruction and KL in nats/image over a fixed set."""
    model.eval()
    gen = torch.Generator().manual_seed(0)
    rec = kl = 0.0
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i:i + batch]).long()
        mean, log_std = model.encoder(xb)
        z = mean + torch.exp(log_std) * torch.randn(mean.shape, generator=gen)
        t = _terms_at(model, xb, z, mean, log_std)
        rec += t[0].sum().item()
        kl += t[1].sum().item()
    n = len(x)
    return {"neg_elbo": (rec + kl) / n, "rec": rec / n, "kl": kl / n}


def _terms_at(model: VLAE, x, z, mean, log_std):
    from .vlae import gaussian_log_prob
    log_q = gaussian_log_prob(z, mean, log_std).sum(1)
    log_p = model.prior.log_prob_dims(z).sum(1)
    return model.pixel_nll(x, model.decoder_logits(x, z)), log_q - log_p


class Ranks:
    """Where this process stands in data-parallel training (torchrun). One process:
    rank 0 of 1, and every method is a no-op, so one process trains exactly as before."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, owns_group: bool = False):
        self.rank, self.world, self.local_rank, self.owns_group = rank, world, local_rank, owns_group

    @property
    def lead(self) -> bool:
        return self.rank == 0

    def global_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Mean over ranks of a per-shard mean (= the global-batch mean: equal shards)."""
        t = t.clone()
        torch.distributed.all_reduce(t)
        return t / self.world

    def any(self, flag: bool, device: str) -> bool:
        """True on every rank if it is true on any: ranks must stop at the same step."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        if self.world > 1:
            with torch.no_grad():
                for t in list(module.parameters()) + list(module.buffers()):
                    torch.distributed.broadcast(t, src=0)

    def check_replicas(self, *modules: torch.nn.Module) -> str:
        """sha256 of the modules' tensors, the same on every rank or RuntimeError on all."""
        import hashlib
        h = hashlib.sha256()
        for m in modules:
            for k, v in m.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        digest = h.hexdigest()
        if self.world == 1:
            return digest
        got: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(got, digest)
        if len(set(got)) != 1:
            raise RuntimeError(f"data-parallel replicas diverged: weight digests per rank {[d[:12] for d in got]}")
        return digest

    def barrier(self) -> None:
        if self.world > 1:
            cuda = torch.distributed.get_backend() == "nccl"
            torch.distributed.barrier(device_ids=[self.local_rank] if cuda else None)

    def close(self) -> None:
        """Leave the process group together: every rank waits for the others before
        destroying it, so no rank tears down its connections while another still uses
        them (CI once saw rank 1 abort in gloo's teardown after training had finished)."""
        if self.owns_group and torch.distributed.is_initialized():
            try:
                self.barrier()
            finally:
                torch.distributed.destroy_process_group()
                self.owns_group = False


def setup_ranks(device: str) -> tuple[Ranks, str]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR/PORT: env:// initialisation): NCCL for CUDA, gloo for CPU. Each rank
    uses cuda:LOCAL_RANK. Without torchrun (WORLD_SIZE unset or 1): one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    import torch.distributed as dist
    if not dist.is_available():
        raise SystemExit("WORLD_SIZE > 1 (torchrun?) but this torch build has no torch.distributed")
    dev = torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        if dev.index is not None:
            raise SystemExit(f"--device {device}: under torchrun pass --device cuda; rank r of a node "
                             "uses cuda:LOCAL_RANK (limit GPUs with CUDA_VISIBLE_DEVICES)")
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    elif dev.type == "cpu":
        backend = "gloo"
    else:
        raise SystemExit(f"--device {device}: data-parallel training runs on cpu (gloo) or cuda (nccl)")
    owns = not dist.is_initialized()
    if owns:
        import datetime
        # Rank 0 validates and saves alone while the others wait: allow it time.
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return Ranks(dist.get_rank(), dist.get_world_size(), local, owns), device


class _LossModule(torch.nn.Module):
    """The training loss as a forward pass: DistributedDataParallel syncs gradients of
    what runs through ``forward`` only."""

    def __init__(self, model: VLAE, ranks: Ranks):
        super().__init__()
        self.model, self.ranks = model, ranks

    def forward(self, x: torch.Tensor):
        loss, t = self.model.training_loss(x, global_mean=self.ranks.global_mean)
        return loss, t.neg_elbo.detach(), t.kl.detach()


def train(cfg: VLAEConfig, out_dir: Path, *, epochs: int, minutes: float | None, batch_size: int = 64,
          lr: float = 2e-3, ema: float = 0.998, seed: int = 0, device: str = "cpu", resume: bool = False,
          train_limit: int | None = None, valid_limit: int = 10000, threads: int | None = None,
          dataset: str | None = None, command: str = "", log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
          bars: bool | None = None) -> Path:
    """Train and write ``out_dir/last.pt`` (resumable) and ``out_dir/model.pt`` (EMA weights).
    ``bars``: draw a progress bar per epoch on stderr (default: only if it is a terminal);
    the per-epoch ``log`` lines come either way.

    Under torchrun (WORLD_SIZE > 1) every rank calls this: DistributedDataParallel with
    ``batch_size`` the global batch (each rank computes batch_size / world of it, the
    same images one process would take at that step), the same ``lr``; only rank 0
    logs, validates and writes checkpoints. See ``build_parser``'s epilog."""
    ranks, device = setup_ranks(device)
    try:
        return _train(cfg, out_dir, ranks, epochs=epochs, minutes=minutes, batch_size=batch_size, lr=lr,
                      ema=ema, seed=seed, device=device, resume=resume, train_limit=train_limit,
                      valid_limit=valid_limit, threads=threads, dataset=dataset, command=command,
                      log=log if ranks.lead else (lambda s: None),
                      bars=ranks.lead and (sys.stderr.isatty() if bars is None else bars))
    finally:
        ranks.close()


def _train(cfg: VLAEConfig, out_dir: Path, ranks: Ranks, *, epochs: int, minutes: float | None, batch_size: int,
           lr: float, ema: float, seed: int, device: str, resume: bool, train_limit: int | None,
           valid_limit: int, threads: int | None, dataset: str | None, command: str, log: Callable[[str], None],
           bars: bool = False) -> Path:
    if threads:
        torch.set_num_threads(threads)
    if batch_size % ranks.world:
        raise SystemExit(f"--batch-size {batch_size} is the global batch; it must split evenly over "
                         f"{ranks.world} ranks")
    # Same seed on every rank: the same initial weights (DDP also broadcasts rank 0's) and
    # the same permutation of the training set each epoch (each rank takes its slice).
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dataset = dataset or default_dataset(cfg)
    if (cfg.pixel_levels == 2) != (dataset in data.BINARY_DATASETS):
        raise SystemExit(f"a {cfg.pixel_levels}-level model cannot train on {dataset}")
    train8, valid, binarize = data.training_split(dataset)
    train8 = train8[:train_limit]
    valid = valid[:valid_limit] if ranks.lead else None

    model = VLAE(cfg).to(device)
    avg = copy.deepcopy(model)
    opt = torch.optim.Adamax(model.parameters(), lr=lr)
    state = {"epoch": 0, "step": 0, "wall_s": 0.0, "history": []}
    last = out_dir / "last.pt"
    # Rank 0 reads the checkpoint and hands it to the others: every rank resumes from the
    # same one, even where only rank 0's node holds the run directory.
    source = ck = None
    if resume and ranks.lead:
        source = last if last.exists() else out_dir / "model.pt" if (out_dir / "model.pt").exists() else None
        if source is not None:
            ck = torch.load(source, map_location="cpu", weights_only=False)
    source, ck = ranks.share((source, ck))
    if source == last:
        if VLAEConfig.from_dict(ck["config"]) != cfg:
            raise SystemExit(f"{last}: config differs from the requested one; refusing to resume")
        model.load_state_dict(ck["model"])
        avg.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["state"]
        rng = np.random.default_rng([seed, state["epoch"]])
        torch.manual_seed(seed + state["epoch"])
        log(f"resumed from {last} at epoch {state['epoch']}")
    elif source is not None:
        # Only the shippable checkpoint survived (it is the one small enough to commit
        # between sessions): continue from its averaged weights with a fresh optimizer.
        if VLAEConfig.from_dict(ck["config"]) != cfg:
            raise SystemExit(f"{out_dir / 'model.pt'}: config differs from the requested one; refusing to resume")
        model.load_state_dict(ck["state_dict"])
        avg.load_state_dict(ck["state_dict"])
        t = ck.get("training") or {}
        state = {"epoch": int(t.get("epochs", 0)), "step": int(t.get("steps", 0)),
                 "wall_s": float(t.get("wall_s", 0.0)), "history": list(t.get("history", []))}
        rng = np.random.default_rng([seed, state["epoch"]])
        torch.manual_seed(seed + state["epoch"])
        log(f"resumed from {out_dir / 'model.pt'} (averaged weights, new optimizer) at epoch {state['epoch']}")
    del ck

    loss_fn: Callable = model.training_loss
    if ranks.world > 1:
        # Per-rank randomness (binarization draws, z samples): rank 0 keeps the one-process
        # stream, rank r > 0 its own seed from (seed, epoch, rank).
        if not ranks.lead:
            torch.manual_seed(int(np.random.SeedSequence([seed, state["epoch"], ranks.rank]).generate_state(1)[0]))
        import inspect

        from torch.nn.parallel import DistributedDataParallel
        # The buffers are constant masks: no need to broadcast them every step (the
        # newer torch names the option forward_sync_buffers).
        quiet = ("forward_sync_buffers" if "forward_sync_buffers" in
                 inspect.signature(DistributedDataParallel.__init__).parameters else "broadcast_buffers")
        ddp = DistributedDataParallel(_LossModule(model, ranks), **{quiet: False},
                                      device_ids=[ranks.local_rank] if device.startswith("cuda") else None)
        ranks.broadcast_module(avg)   # the EMA starts as rank 0's, then follows identical updates

        def loss_fn(x):
            loss, neg_elbo, kl = ddp(x)
            return loss, _Terms(neg_elbo, kl)
        log(f"data parallel: {ranks.world} ranks ({torch.distributed.get_backend()}), global batch "
            f"{batch_size} = {ranks.world} x {batch_size // ranks.world}, lr {lr}")

    t_start = time.time() - state["wall_s"]
    deadline = None if minutes is None else t_start + 60 * minutes
    n = len(train8)
    steps_per_epoch = n // batch_size
    shard = batch_size // ranks.world
    lo, hi = ranks.rank * shard, (ranks.rank + 1) * shard
    while state["epoch"] < epochs and not (deadline is not None and ranks.any(time.time() >= deadline, device)):
        model.train()
        perm = rng.permutation(n)
        run = None
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size][lo:hi]
            if binarize:   # dynamic binarization: a fresh Bernoulli draw every time an image is seen
                x = torch.bernoulli(torch.from_numpy(train8[idx]).float() / 255.0).long().to(device)
            else:
                x = torch.from_numpy(train8[idx]).long().to(device)
            loss, terms = loss_fn(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for pa, pm in zip(avg.parameters(), model.parameters()):
                    pa.lerp_(pm, 1.0 - ema)
            state["step"] += 1
            if bars:   # progress shows rank 0's shard
                ne = terms.neg_elbo.mean().item()
                run = ne if run is None else 0.98 * run + 0.02 * ne
                if i % 50 == 0 or i == steps_per_epoch - 1:
                    done = (i + 1) / steps_per_epoch
                    bar = "#" * int(20 * done)
                    sys.stderr.write(f"\repoch {state['epoch'] + 1}/{epochs} [{bar:<20}] "
                                     f"-ELBO {run:7.2f} nats  KL {terms.kl.mean().item():5.2f}")
                    sys.stderr.flush()
            if deadline is not None and ranks.any(time.time() > deadline, device):
                break
        if bars:
            sys.stderr.write("\n")
        state["epoch"] += 1
        state["wall_s"] = time.time() - t_start
        if ranks.world > 1:
            digest = ranks.check_replicas(model, avg)
            log(f"data parallel: weights and EMA identical on all {ranks.world} ranks (sha256 {digest[:16]})")
        if not ranks.lead:
            continue
        val = evaluate_elbo(avg.cpu() if device != "cpu" else avg, valid)
        avg.to(device)
        state["history"].append({"epoch": state["epoch"], "wall_s": round(state["wall_s"], 1), **val})
        log(f"epoch {state['epoch']}: valid -ELBO {val['neg_elbo']:.2f} nats (KL {val['kl']:.2f}), "
            f"{state['wall_s'] / 60:.1f} min")
        atomic_save({"config": cfg.to_dict(), "model": model.state_dict(), "ema": avg.state_dict(),
                     "optimizer": opt.state_dict(), "state": state}, last)
        extra = {"ranks": ranks.world} if ranks.world > 1 else {}
        write_model_checkpoint(avg, out_dir / "model.pt", state, command=command, seed=seed, dataset=dataset,
                               batch_size=batch_size, lr=lr, ema=ema, **extra)
    ranks.barrier()   # the others wait for rank 0's last checkpoint
    return out_dir / "model.pt"


def default_dataset(cfg: VLAEConfig) -> str:
    return "binarized-mnist" if cfg.pixel_levels == 2 else "mnist"


class _Terms:
    def __init__(self, neg_elbo: torch.Tensor, kl: torch.Tensor):
        self.neg_elbo, self.kl = neg_elbo, kl


def write_model_checkpoint(model: VLAE, path: Path, state: dict, **training: Any) -> None:
    """The shippable checkpoint: config + averaged weights + provenance (no optimizer)."""
    atomic_save({
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": {**training, "epochs": state["epoch"], "steps": state["step"],
                     "wall_s": round(state["wall_s"], 1), "history": state["history"]},
        "versions": library_versions(),
    }, path)


DISTRIBUTED_HELP = """\
several processes (torchrun, DistributedDataParallel):
  torchrun --nproc_per_node=N -m vlaecodec.train --device cuda --out DIR ...
  runs N ranks: NCCL with --device cuda (rank r of a node on cuda:LOCAL_RANK), gloo with
  --device cpu. --batch-size is the global batch: each rank computes batch-size/N images
  of it (it must divide evenly), the same images one process would use at that step, and
  the gradients are averaged, so --lr, --epochs and the free-bits floor mean what they
  mean in one process. All ranks start from the same weights (same --seed) and keep
  identical weights and EMA (checked by sha256 every epoch); binarization and z samples
  are seeded per rank. Only rank 0 logs, validates and writes last.pt and model.pt;
  --resume makes every rank continue from rank 0's checkpoint. Multi-node: torchrun
  --nnodes=M --nproc_per_node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT --rdzv-id=ID.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlaecodec train", description=__doc__, epilog=DISTRIBUTED_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="vlae-mnist", choices=list(PRESETS))
    p.add_argument("--config-json", help="JSON object of VLAEConfig fields overriding the preset")
    p.add_argument("--out", required=True, help="run directory (last.pt, model.pt)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--minutes", type=float, help="stop after this much wall time")
    p.add_argument("--batch-size", type=int, default=64,
                   help="images per optimizer step (default 64); under torchrun the global batch, split "
                        "evenly over the ranks, so --lr stays the same whatever the number of ranks")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:N (default cpu); under torchrun cpu (gloo) or cuda (nccl, "
                        "each rank on cuda:LOCAL_RANK)")
    p.add_argument("--threads", type=int, help="torch threads per process")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--train-limit", type=int)
    p.add_argument("--dataset", choices=data.DATASETS,
                   help="training data (default: binarized-mnist for binary models, mnist for 8-bit ones); "
                        "fashion-mnist holds out its last 10,000 training images for validation")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal); the "
                        "per-epoch lines stay")
    return p


def main(argv: list[str] | None = None) -> None:
    """``vlaecodec train [freeze]``: an expected failure (a missing or unreadable file, a
    bad checkpoint, a dataset not fetched) ends with one line on stderr, exit status 1."""
    from .data import DataError
    from .zoo import ModelError

    argv = sys.argv[1:] if argv is None else argv
    freezing = argv[:1] == ["freeze"]
    expected: tuple[type[BaseException], ...] = (OSError, ModelError, DataError)
    if freezing:   # freeze's own checks (a file that is no model checkpoint, a dataset it cannot code)
        expected += (ValueError,)
    try:
        if freezing:
            from .freeze import main as freeze_main
            return freeze_main(argv[1:])
        return _main(argv)
    except expected as e:
        if isinstance(e, OSError) and e.strerror:
            msg = (f"{e.filename}: " if e.filename else "") + e.strerror
        else:
            msg = " ".join(str(e).split()) or e.__class__.__name__
        raise SystemExit(f"Error: {msg}") from None


def _main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    cfg = preset(args.preset)
    if args.config_json:
        cfg = VLAEConfig.from_dict({**cfg.to_dict(), **json.loads(args.config_json)})
    cmd = "vlaecodec train " + " ".join(argv)
    path = train(cfg, Path(args.out), epochs=args.epochs, minutes=args.minutes, batch_size=args.batch_size,
                 lr=args.lr, seed=args.seed, device=args.device, resume=args.resume,
                 train_limit=args.train_limit, threads=args.threads, dataset=args.dataset, command=cmd,
                 bars=False if args.quiet else None)
    if os.environ.get("RANK", "0") == "0":
        print(path)


if __name__ == "__main__":
    main()
