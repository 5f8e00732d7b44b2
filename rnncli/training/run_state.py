"""What the training loop (rnncli/training/trainer.py) keeps beside the model: `TrainState` (the
position and bookkeeping saved in every checkpoint), `MetricsLog` (metrics.jsonl, rank 0 only) and
`StopOnSignal` (Ctrl-C / SIGTERM stop the loop after the current step)."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from rnncli.training import distributed, rundir


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_index: int = 0  # next batch of the current epoch
    best: float | None = None  # best validation metric so far
    best_step: int | None = None
    bad_validations: int = 0  # validations since the best one (early stopping)
    plateau_best: float | None = None
    plateau_bad: int = 0
    lr_factor: float = 1.0  # reduce-on-plateau multiplier
    elapsed: float = 0.0  # seconds of training so far, across resumes


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl (rank 0 only; other ranks write nothing)."""

    def __init__(self, path: Path, resume_step: int | None = None, watch=None):
        self.path, self.watch = path, watch  # watch.write(record) sees every record (TensorBoard)
        self.enabled = distributed.is_main_process()
        if not self.enabled:
            return
        if resume_step is not None and path.exists():  # drop records past the checkpoint
            kept = rundir.metrics_up_to(path, resume_step)
            path.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None:
            path.write_text("")

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.watch is not None:
            self.watch.write(record)


class StopOnSignal:
    """First Ctrl-C (or SIGTERM) asks the loop to stop after the current step; a second one aborts.
    Under torchrun every rank learns of it in the step's all-reduce, so all stop at the same step."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for s, handler in (self._old or {}).items():
            signal.signal(s, handler)
