"""Atomic, complete, plain checkpoints.

A checkpoint is a dict of plain values and tensors (loadable with `weights_only=True`):

    format_version  int
    config          the resolved config (plain dict)
    task_state      what the task needs to rebuild itself (e.g. the vocabulary)
    model           model.state_dict()
    optimizer       optimizer.state_dict()
    trainer         step, epoch, batch index, best metric, lr factor, patience counters
    rng             torch CPU/CUDA and Python `random` states
    carry           the task's carried state (e.g. the LM hidden state between BPTT windows)

It is written to a temporary file in the same directory, flushed to disk, then renamed over
the old file, so a crash or Ctrl-C never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import torch

from rnncli.errors import ArgumentError, RunError

FORMAT_VERSION = 1


def save_atomic(obj: dict, path: Path) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise RunError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise RunError(f"cannot read checkpoint {path}: {e}") from None
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version != FORMAT_VERSION:
        raise RunError(f"{path}: checkpoint format {version!r}, this rnncli reads format {FORMAT_VERSION}")
    return ckpt


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    """`best.pt` (falling back to `last.pt`) or `last.pt` of a run directory."""
    if which not in ("best", "last"):
        raise ArgumentError("which", f"must be best or last (got {which!r})")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run directory not found: {run_dir}")
    order = ["best", "last"] if which == "best" else [which]
    for name in order:
        path = run_dir / f"{name}.pt"
        if path.exists():
            return path
    raise RunError(f"{run_dir} has no checkpoint ({', '.join(n + '.pt' for n in order)}); was it trained?")
