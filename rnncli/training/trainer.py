"""The task-agnostic training loop.

Reading order: `Trainer.fit` runs epochs of `_train_step`s (each one `TrainingStep`,
rnncli/training/step.py, the step `rnncli bench` times too, plus schedule and logging); every
`val_every` steps (or at each epoch end: `val_every: epoch`) and after the last step, `_validate`
scores the model, keeps `best.pt` and `last.pt`, and decides on early stopping. Everything the loop
needs from a task is the `Task` protocol (rnncli/tasks/base.py).

Exact resume: a checkpoint holds the model, optimizer, the schedule's state, every RNG state,
the data position (epoch, next batch index) and the task's carried state, so
`N steps + resume + N steps` reproduces `2N steps` step for step.

Under torchrun (rnncli/training/distributed.py) every rank runs this loop on the same batch list
and `TrainingStep` trains its share of each batch; rank 0 alone validates, prints, logs and
saves, and checkpoints hold every rank's RNG state and carried state.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch

from rnncli.errors import RnncliError, TrainingError
from rnncli.nn import fused_cpu
from rnncli.training import checkpoint, distributed, precision
from rnncli.training.progress import Progress
from rnncli.training.report import fast_paths
from rnncli.training.run_state import MetricsLog, StopOnSignal, TrainState
from rnncli.training.step import Diverged, TrainingStep


# --------------------------------------------------------------------------- schedule, device, seed
def scheduled_lr(t: dict, step: int, total_steps: int, plateau_factor: float) -> float:
    """Learning rate for optimizer step `step` (0-based): warmup x schedule x plateau factor."""
    lr = t["lr"]
    if t["warmup_steps"] and step < t["warmup_steps"]:
        return lr * (step + 1) / t["warmup_steps"] * plateau_factor
    after = step - t["warmup_steps"]
    if t["schedule"] == "step":
        lr *= t["gamma"] ** (after // t["step_size"])
    elif t["schedule"] == "cosine":
        span = max(1, total_steps - t["warmup_steps"])
        progress = min(1.0, after / span)
        lr = t["min_lr"] + (lr - t["min_lr"]) * 0.5 * (1 + math.cos(math.pi * progress))
    return lr * plateau_factor


def select_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("trainer.device = cuda, but torch sees no CUDA device (use auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainingError("trainer.device = mps, but this machine has no MPS device (use auto or cpu)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- the loop
class Trainer:
    def __init__(self, task, cfg: dict, run_dir: Path, config_path: str = "CONFIG", show_progress: bool = True,
                 watch=None):
        self.task, self.cfg, self.t = task, cfg, cfg["trainer"]
        self.watch = watch  # sees every metrics.jsonl record (rnncli/training/tensorboard.py)
        self.run_dir = Path(run_dir)
        self.model = task.model
        self.device = next(self.model.parameters()).device
        precision.check(self.t["precision"], self.device, f"{config_path}: trainer.precision")
        self.step = TrainingStep(task, self.t, self.device)
        self.optimizer, self.scaler = self.step.optimizer, self.step.scaler  # what checkpoints save
        self.state = TrainState()
        self.carry = None
        self.progress_notes: list[str] = []  # said once the progress display is up
        self._window = None  # running sums since the last log line
        self.dist = distributed.context()
        self.show_progress = show_progress and self.dist.main
        n = task.num_train_batches()
        if n == 0:
            raise TrainingError("the training data makes no batch (too little data for trainer.batch_size?)")
        total = (self.t["epochs"] or math.inf) * n
        self.total_steps = int(min(total, self.t["max_steps"] or math.inf))
        if self.total_steps == 0 or math.isinf(total) and not self.t["max_steps"]:
            raise TrainingError("set trainer.epochs or trainer.max_steps (and give the task training data)")
        if self.step.parts > 1:
            task.shard(task.train_batches(0)[0], self.step.parts)  # a batch that cannot be shared fails now

    # ---- checkpoints
    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = TrainState(**ckpt["trainer"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        ranks = ckpt.get("ranks") or {"world": 1, "parts": 1, "rng": [ckpt["rng"]], "carry": [ckpt["carry"]]}
        same = ranks["world"] == self.dist.world and ranks["parts"] == self.step.parts
        if same:
            checkpoint.set_rng_state(ranks["rng"][self.dist.rank])
            self.carry = ranks["carry"][self.dist.rank]
            return
        if self.dist.main:
            checkpoint.set_rng_state(ranks["rng"][0])
        self.carry = self.step.initial_carry()
        self.progress_notes.append(
            f"resuming a run saved by {ranks['world']} process(es) in {ranks['parts']} piece(s) per batch on "
            f"{self.dist.world} in {self.step.parts}: the global batch, the data position and the weights carry "
            f"over; each process's random stream (dropout) and any state carried between batches start afresh")

    def _elapsed(self) -> float:
        return round(time.perf_counter() - self._started, 3)

    def _rank_states(self) -> dict | None:
        """Every rank's RNG and carried state (a collective: all ranks call it); None in one process."""
        if self.step.parts == 1:
            return None
        gathered = distributed.gather((checkpoint.rng_state(), self.carry))
        return {"world": self.dist.world, "parts": self.step.parts,
                "rng": [g[0] for g in gathered], "carry": [g[1] for g in gathered]}

    def _save(self, name: str, ranks: dict | None = None) -> None:
        if not self.dist.main:
            return
        self.state.elapsed = self._elapsed()
        ckpt = {
            "format_version": checkpoint.FORMAT_VERSION,
            "config": self.cfg,
            "task_state": self.task.state(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": asdict(self.state),
            "rng": checkpoint.rng_state(),
            "carry": self.carry,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }
        if ranks is not None:
            ckpt["ranks"] = ranks
        checkpoint.save_atomic(ckpt, self.run_dir / f"{name}.pt")

    # ---- main loop
    def fit(self, resumed: bool = False) -> dict:
        s = self.state
        done = self._done() if resumed else None
        self.progress = Progress(self.total_steps, initial=s.step, enabled=self.show_progress,
                                 epochs=math.ceil(self.total_steps / self.task.num_train_batches()))
        if done is not None:
            return self._finish("already " + done)
        self.log = MetricsLog(self.run_dir / "metrics.jsonl", s.step if resumed else None, self.watch)
        if self.watch is not None:
            self.watch.attach(self.progress)  # the health line prints through it
        self._report_fast_paths()  # may compile the C++ kernels (once): before the clock and the bar start
        self._started = time.perf_counter() - s.elapsed
        for note in self.progress_notes:
            self.progress.message(note)
        self.progress.start()
        stopped = "finished"
        try:
            with StopOnSignal() as stop:
                stopped = self._epochs(stop)
        finally:
            self.progress.close()
        return self._finish(stopped)

    def _epochs(self, stop: StopOnSignal) -> str:
        s, every = self.state, self.t["val_every"]
        validated = None  # the step of the last validation
        while s.step < self.total_steps:
            batches = self.task.train_batches(s.epoch)
            if s.batch_index == 0 or self.carry is None:
                self.carry = self.step.initial_carry()
            for index in range(s.batch_index, len(batches)):
                asked = self._train_step(batches[index], stop)
                s.batch_index = index + 1
                if every != "epoch" and s.step % every == 0:
                    validated = s.step
                    if self._validate():
                        return "early stopping"
                if s.step >= self.total_steps:
                    break
                if asked:
                    self._save("last", self._rank_states())
                    return "interrupted"
            if s.batch_index >= len(batches):
                s.epoch, s.batch_index = s.epoch + 1, 0
                if every == "epoch" and s.step < self.total_steps:
                    validated = s.step
                    if self._validate():
                        return "early stopping"
        if validated != s.step:  # the last step is always scored and saved
            self._validate()
        return "finished"

    def _train_step(self, batch, stop: StopOnSignal) -> bool:
        """One optimizer step, logged; True when some rank was asked to stop."""
        s, t = self.state, self.t
        if self._window is None or s.step % t["log_every"] == 0:
            self._window = {"loss": 0.0, "steps": 0, "tokens": 0, "clipped": 0, "start": time.perf_counter()}
        lr = scheduled_lr(t, s.step, self.total_steps, s.lr_factor)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        try:
            loss_value, grad_norm, self.carry, n_tokens, asked = self.step(batch, self.carry, lambda: stop.requested)
        except Diverged as e:
            self._diverged(str(e))
        s.step += 1
        self._probe_speed(n_tokens)
        w = self._window
        w["loss"] += loss_value
        w["steps"] += 1
        w["tokens"] += n_tokens
        w["clipped"] += int(t["clip_grad_norm"] is not None and grad_norm > t["clip_grad_norm"])
        record = None
        if s.step % t["log_every"] == 0 or s.step == self.total_steps:
            elapsed = max(time.perf_counter() - w["start"], 1e-9)
            record = {"step": s.step, "epoch": s.epoch, "split": "train", "elapsed_s": self._elapsed(),
                      "loss": w["loss"] / w["steps"],
                      "step_loss": loss_value, "lr": lr, "grad_norm": grad_norm,
                      "tokens_per_s": w["tokens"] / elapsed, "clipped": w["clipped"], "steps": w["steps"]}
            self.log.write(record)
        self.progress.step(s.step, record)
        return asked

    # ---- fast-path report: what each layer runs on, then tokens/s over a few real steps
    _PROBE_STEPS = 5

    def _report_fast_paths(self) -> None:
        if self.dist.active or self.step.accumulate > 1:
            per = self.t["batch_size"] / self.step.parts
            self.progress.message(
                f"data parallel: {self.dist.world} process(es) ({self.dist.backend or 'one process'}, "
                f"{torch.get_num_threads()} thread(s) each) x trainer.accumulate {self.step.accumulate}: "
                f"each piece ~{per:g} of the global batch of {self.t['batch_size']}; every rank runs:")
        with fused_cpu.notifying(self.progress.message):
            lines = fast_paths(self.model, self.device, self.t["precision"])
        for line in lines:
            self.progress.message(f"fast path: {line}")
        self._probe = {"first": self.state.step + 1, "start": None, "tokens": 0}

    def _probe_speed(self, n_tokens: int) -> None:
        """Time steps first+1 .. first+5 (the first step warms up) and print tokens/s once."""
        p, step = self._probe, self.state.step
        if p is None:
            return
        if step == p["first"]:
            p["start"] = time.perf_counter()
        elif step > p["first"]:
            p["tokens"] += n_tokens
            if step == p["first"] + self._PROBE_STEPS:
                rate = p["tokens"] / (time.perf_counter() - p["start"])
                self.progress.message(f"fast path: measured {rate:,.0f} tokens/s over steps "
                                      f"{p['first'] + 1}-{step} (a first estimate; the log shows the steady rate)")
                self._probe = None

    def _autocast(self):
        return precision.autocast(self.t["precision"], self.device)

    def _diverged(self, what: str) -> None:
        last = self.run_dir / "last.pt"
        good = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise TrainingError(
            f"{what} at step {self.state.step + 1} (epoch {self.state.epoch}); training stopped and "
            f"{good}. Try a lower trainer.lr or trainer.clip_grad_norm."
        ) from None

    # ---- validation, best checkpoint, early stopping, plateau schedule
    def _validate(self) -> bool:
        """Score on the validation split, save checkpoints; True when early stopping triggers."""
        ranks = self._rank_states()
        decision = self._score_and_save(ranks) if self.dist.main else None
        stop, self.state.lr_factor = distributed.broadcast(decision)  # rank 0 decides for all
        return stop

    def _score_and_save(self, ranks: dict | None) -> tuple[bool, float]:
        s, t = self.state, self.t
        try:
            with self._autocast():
                metrics = self.task.evaluate("val")
        except BaseException as e:  # a bad validation file or a Ctrl-C: keep the epoch's work first
            self._save("last", ranks)
            if isinstance(e, RnncliError):
                raise TrainingError(f"validation at step {s.step} failed: {e}. The training so far is saved in "
                                    f"{self.run_dir / 'last.pt'}; fix the problem and resume that run") from None
            raise
        value = metrics[self.task.metric]
        better = (lambda a, b: a > b) if self.task.higher_is_better else (lambda a, b: a < b)
        improved = s.best is None or better(value, s.best)
        if improved:
            s.best, s.best_step, s.bad_validations = value, s.step, 0
        else:
            s.bad_validations += 1
        if t["schedule"] == "plateau":
            if s.plateau_best is None or better(value, s.plateau_best):
                s.plateau_best, s.plateau_bad = value, 0
            else:
                s.plateau_bad += 1
                if s.plateau_bad > t["plateau_patience"]:
                    s.lr_factor *= t["gamma"]
                    s.plateau_bad = 0
        self.log.write({"step": s.step, "epoch": s.epoch, "split": "val", "elapsed_s": self._elapsed(), **metrics})
        self.progress.validation(s.step, metrics, improved)
        self._save("last", ranks)
        if improved:
            self._save("best", ranks)
        return t["early_stopping"] is not None and s.bad_validations >= t["early_stopping"], s.lr_factor

    def _done(self) -> str | None:
        """How a resumed run had already ended ("finished", "stopped early"), or None if it had not."""
        s, t = self.state, self.t
        if s.step >= self.total_steps:
            return "finished"
        if t["early_stopping"] is not None and s.bad_validations >= t["early_stopping"]:
            return "stopped early"
        return None

    def _finish(self, stopped: str) -> dict:
        s = self.state
        if stopped == "interrupted":
            self.progress.message(f"Interrupted at step {s.step}; saved {self.run_dir / 'last.pt'}.")
        elif stopped == "already finished":
            self.progress.message(f"{self.run_dir} is already finished (step {s.step} of {self.total_steps}): "
                                  f"nothing to train. To train longer, raise trainer.max_steps or trainer.epochs.")
        elif stopped == "already stopped early":
            self.progress.message(f"{self.run_dir} already stopped early at step {s.step} (trainer.early_stopping): "
                                  f"nothing to train. To train on, raise trainer.early_stopping.")
        summary = {"status": stopped, "steps": s.step, "epochs": round(s.step / self.task.num_train_batches(), 2),
                   f"best_val_{self.task.metric}": s.best, "best_step": s.best_step,
                   "run_dir": str(self.run_dir)}
        if self.dist.active:
            summary["processes"] = self.dist.world
            if not self.dist.main:
                summary["rank"] = self.dist.rank
        self.progress.summary("training summary", summary)
        return summary
