"""Data-parallel training on PyTorch's own engine: torchrun starts the processes, torch.distributed
(gloo on the CPU, NCCL on CUDA) connects them, DistributedDataParallel all-reduces the gradients.

    torchrun --nproc-per-node N -m rnncli train CONFIG        (or: rnncli train CONFIG --nproc N)

    every rank builds the same seeded list of global batches (same config, same seed)
    global batch ──task.shard──► N x K pieces   (K = trainer.accumulate)
        rank r trains pieces r*K .. r*K+K-1, one backward each (DDP's no_sync on all but the last)
        each piece's mean loss is weighted by (its count / the global batch's count) x N,
        so DDP's average over N ranks gives exactly the gradient of the global batch's mean loss
    rank 0 alone prints, writes metrics.jsonl and saves checkpoints (with every rank's RNG state)

Nothing here launches processes or reduces gradients by hand: `launch` runs torchrun's own
launcher (`python -m torch.distributed.run --standalone`), and gradients go through DDP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank r of `world` processes (world 1: no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


SINGLE = Context()
_context = SINGLE


def under_torchrun() -> bool:
    """True in a process that torchrun started (it sets these variables for every worker)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def setup(device: torch.device) -> Context:
    """Join torchrun's process group (gloo on the CPU, NCCL on CUDA); a no-op in one process."""
    global _context
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not under_torchrun():
        _context = SINGLE
        return _context
    if dist.is_initialized():
        return _context
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    # torchrun's store outlives a restart; a fresh key prefix per restart keeps a restarted group
    # from reading the addresses its killed predecessors published there
    store, rank, world = next(dist.rendezvous("env://"))
    store = dist.PrefixStore(f"rnncli/restart-{restart_count()}/", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    _context = Context(dist.get_rank(), dist.get_world_size(), local_rank, backend)
    return _context


def context() -> Context:
    return _context


def is_main_process() -> bool:
    return _context.main


def shutdown() -> None:
    global _context
    if dist.is_initialized():
        dist.destroy_process_group()
    _context = SINGLE


def restart_count() -> int:
    """How often torchrun restarted the group (`--max-restarts`); 0 on the first start."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


# --------------------------------------------------------------------------- collectives (tiny ones)
def all_sum(values: list[float]) -> list[float]:
    """Sum a few scalars over all ranks (loss, token count, stop flag); identity in one process."""
    if not _context.active:
        return values
    device = torch.device("cuda", _context.local_rank) if _context.backend == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather(obj):
    """Every rank's `obj`, in rank order (on every rank); [obj] in one process."""
    if not _context.active:
        return [obj]
    out = [None] * _context.world
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj):
    """Rank 0's `obj` on every rank."""
    if not _context.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _context.active:
        dist.barrier()


# --------------------------------------------------------------------------- the model
class _DDP(DistributedDataParallel):
    """DDP whose attributes fall through to the wrapped model, so a task's `self.model.crf` or
    `self.model.head` still work while its forward goes through DDP."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: torch.nn.Module) -> torch.nn.Module | None:
    """The DDP wrapper that training steps call (None in one process). DDP broadcasts rank 0's
    parameters here, so every rank starts from the same weights."""
    if not _context.active:
        return None
    ids = [_context.local_rank] if _context.backend == "nccl" else None
    return _DDP(model, device_ids=ids)


def no_sync(ddp, last: bool):
    """Inner accumulation steps skip DDP's all-reduce; the last one reduces the summed gradients."""
    return ddp.no_sync() if ddp is not None and not last else nullcontext()


# --------------------------------------------------------------------------- launching
def threads_per_process(nproc: int) -> int:
    """This machine's cores shared out: N processes x (cores // N) threads (at least 1).

    torchrun itself sets OMP_NUM_THREADS=1 for every worker, which leaves cores idle when there
    are fewer processes than cores; a value the user set wins."""
    return max(1, (os.cpu_count() or 1) // max(1, nproc))


def torchrun_command(nproc: int, args: list[str], max_restarts: int = 0) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N ... -m rnncli ARGS`."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            f"--max-restarts={max_restarts}", "-m", "rnncli", *args]


def _workers(pid: int) -> list[int]:
    """Child processes of `pid` (torchrun's workers), read from /proc; [] where there is none."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def launch(nproc: int, args: list[str], max_restarts: int = 0) -> int:
    """Run torchrun's launcher on this machine and wait; returns its exit code (130 after Ctrl-C).

    Ctrl-C (or SIGTERM) is passed to the workers themselves as SIGINT: each stops after the
    current step, rank 0 saves last.pt, and they exit cleanly, so torchrun neither restarts them
    nor prints its own traceback."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(threads_per_process(nproc)))
    proc = subprocess.Popen(torchrun_command(nproc, args, max_restarts), env=env, start_new_session=True)
    interrupted = False

    def forward(signum, frame):
        nonlocal interrupted
        interrupted = True
        targets = _workers(proc.pid) or [proc.pid]
        for pid in targets:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if interrupted:
        return 130
    return 128 - code if code < 0 else code
