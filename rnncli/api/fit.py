"""Training set-up behind `rnncli.api.train`: open the run directory (fresh, resumed or restarted
by torchrun), build the task and the trainer, write the run's files once everything that can fail
has been tried, attach the watchers (health line, TensorBoard), and fit.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from rnncli.api.runs import check_resumable, check_task, fits, run_directory, saved_cfg
from rnncli.config import dump_config
from rnncli.errors import RunError, TrainingError
from rnncli.tasks import task_spec
from rnncli.tasks.base import MapsAttention, Probes, ShowsSamples
from rnncli.training import checkpoint, distributed, rundir, tensorboard
from rnncli.training.health_line import HealthLine, ProbeAtValidation, Watchers
from rnncli.training.tensorboard import TensorBoardWriter
from rnncli.training.trainer import Trainer, seed_everything, select_device

TASK_STATE_FILE = "task_state.json"  # the task's state as readable JSON (checkpoints carry it too)


def fit(cfg: dict, config_path: str | dict | None, resume: str | None, show_progress: bool) -> dict:
    """Train with a resolved config (see `rnncli.api.train`); returns the trainer's summary."""
    _require_extras(cfg)
    device = select_device(cfg["trainer"]["device"])
    ctx = distributed.setup(device)
    try:
        run_dir, ckpt, path = _open_run(cfg, resume, ctx)  # checks the run directory; writes nothing
        seed_everything(cfg["trainer"]["seed"])  # the same initial weights on every rank
        with _out_of_memory():
            task = task_spec(cfg["task"]).module.build(cfg, device)
            if ctx.rank:
                seed_everything(cfg["trainer"]["seed"] * 1000 + ctx.rank)  # dropout masks differ by rank
            label = (config_path if isinstance(config_path, str) else "config" if config_path
                     else str(run_dir / "config.yaml"))
            trainer = Trainer(task, cfg, run_dir, label, show_progress)
            if ckpt is not None:
                with fits(path):
                    trainer.restore(ckpt)
                if distributed.restart_count() and resume is None:
                    trainer.progress_notes.append(f"torchrun restarted the group (restart "
                                                  f"{distributed.restart_count()}): continuing from "
                                                  f"{run_dir / 'last.pt'} at step {trainer.state.step}")
            # the first write, once all that can fail has been tried; rank 0 writes, every rank stops on its error
            overwrite = cfg["run"]["overwrite"] or distributed.restart_count() > 0
            _on_rank0(ctx, lambda: _write_run_files(run_dir, cfg, task, fresh=ckpt is None, overwrite=overwrite))
            with _watch(cfg, task, run_dir, show_progress, ctx.main) as watch:  # once the run directory exists
                trainer.watch = watch
                return trainer.fit(resumed=ckpt is not None)
    finally:
        distributed.shutdown()


def _on_rank0(ctx, action) -> None:
    """Run `action` on rank 0; a RunError there stops every rank with the same message."""
    problem = None
    if ctx.main:
        try:
            action()
        except RunError as e:
            problem = str(e)
    problem = distributed.broadcast(problem)
    if problem:
        raise RunError(problem)


@contextmanager
def _out_of_memory():
    """A model or batch too big for this machine is one line naming the keys that size it."""
    try:
        yield
    except (torch.cuda.OutOfMemoryError, RuntimeError, MemoryError) as e:
        text = str(e)
        if not isinstance(e, (torch.cuda.OutOfMemoryError, MemoryError)) and "allocate" not in text:
            raise
        first = (text.strip().splitlines() or [type(e).__name__])[0][:200]
        raise TrainingError(f"out of memory ({first}): lower model.hidden_size, model.embedding_dim, "
                            f"model.num_layers or trainer.batch_size") from None


def _write_run_files(run_dir: Path, cfg: dict, task, fresh: bool, overwrite: bool) -> None:
    """Claim the run directory (a fresh run with `overwrite` moves an old run aside) and write the
    resolved config and the task state."""
    if fresh:
        aside = rundir.claim(run_dir, overwrite)
        if aside is not None:
            _say(f"run.overwrite: the previous run's files in {run_dir} were moved to {aside}")
    for tmp in rundir.remove_stale_temps(run_dir):
        _say(f"removed {tmp}, left by a checkpoint save that did not finish")
    try:
        (run_dir / "config.yaml").write_text(dump_config(cfg))
        (run_dir / TASK_STATE_FILE).write_text(json.dumps(task.state(), ensure_ascii=False, indent=1))
    except OSError as e:
        raise RunError(f"cannot write in run directory {run_dir}: {e.strerror or e}") from None


def _open_run(cfg: dict, resume: str | None, ctx) -> tuple[Path, dict | None, Path | None]:
    """The run directory, the checkpoint to continue from and its path (None: a fresh start).

    A group that torchrun restarted (`--max-restarts`) continues from the run's last.pt by itself."""
    if resume is None and ctx.active:
        run_dir = Path(distributed.broadcast(str(_rank0_run_directory(cfg)) if ctx.main else None))
        if distributed.restart_count() and (run_dir / "last.pt").exists():
            resume = str(run_dir)
    if resume is not None:
        run_dir = Path(resume)
        path = checkpoint.find_checkpoint(run_dir, "last")
        ckpt = checkpoint.load(path, required={**checkpoint.REQUIRED, **checkpoint.FOR_RESUME})
        check_task(ckpt, path)
        check_resumable(saved_cfg(ckpt, path), cfg, run_dir)
        return run_dir, ckpt, path
    if not ctx.active:
        run_dir = run_directory(cfg)
    # touches nothing: an old run stays as it is until the data and the model exist
    _on_rank0(ctx, lambda: rundir.check(run_dir, cfg["run"]["overwrite"] or distributed.restart_count() > 0))
    return run_dir, None, None


def _rank0_run_directory(cfg: dict) -> Path:
    """Under torchrun without run.name, the timestamped name chosen at the first start is kept in
    RUN_DIR_PARENT/.torchrun-<rendezvous id>, so a restarted group finds its run again."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    if cfg["run"]["name"] or not run_id or run_id == "none":
        return run_directory(cfg)
    marker = Path(cfg["run"]["dir"]) / f".torchrun-{run_id}"
    if distributed.restart_count() and marker.exists():
        return Path(marker.read_text().strip())
    run_dir = run_directory(cfg)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(run_dir))
    return run_dir


def _require_extras(cfg: dict) -> None:
    """Before any work: an optional package the config needs is missing -> one line naming the extra."""
    if cfg["run"]["tensorboard"]:
        tensorboard.require()


@contextmanager
def _watch(cfg: dict, task, run_dir: Path, show_progress: bool, main: bool = True):
    """What sees every metrics.jsonl record: the health line (with progress output) and TensorBoard
    (run.tensorboard: true), each handed what the run's task can show; nothing on ranks other than 0."""
    if not main:
        yield Watchers()
        return
    spec = task_spec(cfg["task"])
    probe = ProbeAtValidation(task.model.rnn, task.probe) if spec.can(Probes) else None
    health = HealthLine(probe, cfg["trainer"]["clip_grad_norm"]) if show_progress else None
    if not cfg["run"]["tensorboard"]:
        yield Watchers(health)
        return
    writer = TensorBoardWriter(
        run_dir, samples=(lambda: task.samples("val")) if spec.can(ShowsSamples) else None,
        attention=_attention_of(task) if spec.can(MapsAttention) else None, probe=probe)
    with writer:
        yield Watchers(health, writer)


def _attention_of(task) -> Callable[[], dict] | None:
    """One validation sentence's attention map; None for a model without attention."""
    return None if task.model.attention_kind == "none" else lambda: task.attention_map("val", 0)


def _say(text: str) -> None:
    """A one-line notice about files on disk (shown even with show_progress off)."""
    print(f"rnncli: {text}", file=sys.stderr, flush=True)
