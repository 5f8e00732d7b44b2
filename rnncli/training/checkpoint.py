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

import errno
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch

from rnncli.errors import ArgumentError, RunError

FORMAT_VERSION = 1


def save_atomic(obj: dict, path: Path) -> None:
    """Write `obj` to `path` atomically; a failed write (disk full, no permission) is one RunError
    line and leaves the previous file at `path` as it was."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):
            kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
            raise RunError(f"cannot save checkpoint {path}: {_why(e, path.parent)}; {kept}") from None
        raise


def _why(error: Exception, folder: Path) -> str:
    """The reason of a failed write in words: torch's zip writer reports a full disk as an assertion."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write in {folder}"
    try:
        if shutil.disk_usage(folder).free < 64 * 2**20:
            return f"the disk is full ({shutil.disk_usage(folder).free // 2**20} MiB free)"
    except OSError:
        pass
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def load(path: Path, map_location="cpu", required: dict | None = None) -> dict:
    """A checkpoint of this format; `required` (e.g. REQUIRED) names the parts it must have."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file, or a pickle that is not plain data
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise RunError(f"cannot read checkpoint {path}: {first}") from None
    check_structure(ckpt, path, required)
    return ckpt


REQUIRED = {"config": dict, "task_state": dict, "model": dict, "trainer": dict}  # what every use reads
FOR_RESUME = {"optimizer": dict, "rng": dict}  # what `--resume` reads besides


def check_structure(ckpt, path: Path, required: dict | None = None) -> None:
    """The checkpoint is an rnncli checkpoint of this format with the parts it needs (one RunError line)."""
    if not isinstance(ckpt, dict):
        raise RunError(f"{path}: not an rnncli checkpoint (a {type(ckpt).__name__}, expected a dict)")
    version = ckpt.get("format_version")
    if not (isinstance(version, int) and version == FORMAT_VERSION):  # (a tensor would compare elementwise)
        version = version if isinstance(version, (int, str, type(None))) else type(version).__name__
        raise RunError(f"{path}: checkpoint format {version!r}, this rnncli reads format {FORMAT_VERSION}")
    missing = [key for key, kind in (required or {}).items() if not isinstance(ckpt.get(key), kind)]
    if missing:
        raise RunError(f"{path}: damaged checkpoint: {', '.join(missing)} missing or of the wrong type")
    if "config" in (required or {}) and not isinstance(ckpt["config"].get("task"), str):
        raise RunError(f"{path}: damaged checkpoint: its config has no task name")
    if "trainer" in (required or {}) and not isinstance(ckpt["trainer"].get("step"), int):
        raise RunError(f"{path}: damaged checkpoint: its trainer state has no step")


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
