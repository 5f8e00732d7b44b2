"""The Python API behind the CLI: train, evaluate, generate, translate, predict, show a config.

Each function takes plain arguments and returns plain values, so tests (and notebooks) can
call it directly; `rnncli.cli` only parses arguments, calls one of these and prints. What a run
can do (sample text, translate, predict, ...) is what its task declares in the registry
(rnncli/tasks/__init__.py); a bad argument value is an `ArgumentError` naming the argument.

A run directory holds config.yaml (the resolved config), task_state.json (the task's state:
vocabularies, labels; older runs named it vocab.json), metrics.jsonl, last.pt and best.pt, and
`.previous-<time>/` folders of runs that `run.overwrite` replaced (rnncli/training/rundir.py).
`train` writes nothing until the data, the model and the trainer are built.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from rnncli.config import describe_keys, dump_config, load_config, parse_override, resolve_saved, upgrade
from rnncli.errors import ArgumentError, ConfigError, RnncliError, RunError, TrainingError
from rnncli.tasks import TASKS, TaskSpec, task_spec, tasks_that
from rnncli.tasks.base import (
    MapsAttention,
    Predicts,
    Probes,
    RendersMetrics,
    SamplesText,
    ScoresExamples,
    ShowsSamples,
    Translates,
    WritesPredictions,
)
from rnncli.training import checkpoint, distributed, rundir, tensorboard
from rnncli.training.health_line import HealthLine, ProbeAtValidation, Watchers
from rnncli.training.tensorboard import TensorBoardWriter
from rnncli.training.trainer import Trainer, seed_everything, select_device

TASK_STATE_FILE = "task_state.json"  # the task's state as readable JSON (checkpoints carry it too)
SPLITS = ("val", "test", "train")

# Keys that must not change when a run is resumed: they define the model, the data and its order.
_FIXED_ON_RESUME = ("task", "data", "model", "trainer.batch_size", "trainer.bptt", "trainer.seed")


def show_config(config_path: str | dict, overrides: list[str] = (), comments: bool = False) -> str:
    """The resolved config as YAML (block style); `comments`: each key's help as a comment."""
    return dump_config(load_config(config_path, overrides), comments)


def config_keys(task: str) -> list[dict]:
    """Every config key of `task`: {key, type, default, allowed, applies, help}, in section order."""
    return describe_keys(task)


def run_directory(cfg: dict) -> Path:
    name = cfg["run"]["name"] or time.strftime("%Y%m%d-%H%M%S") + f"-{cfg['task']}-{cfg['model']['cell']}"
    return Path(cfg["run"]["dir"]) / name


def train(config_path: str | dict | None = None, overrides: list[str] = (), resume: str | None = None,
          show_progress: bool = True) -> dict:
    """Train from a config file or dict (or continue `resume`, a run directory); returns the summary
    {status, steps, epochs, best_val_<metric>, best_step, run_dir}.

    Under torchrun every process calls this; they join one process group (see
    rnncli/training/distributed.py) and rank 0 alone writes the run directory."""
    if config_path is None and resume is None:
        raise ArgumentError("config_path", "is required to start a run (or give resume, a run directory, to "
                            "continue one)")
    cfg = _config_for(config_path, overrides, resume)
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
                with _fits(path):
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




def _config_for(config_path: str | dict | None, overrides: list[str], resume: str | None) -> dict:
    """The config a run trains with: the file's (or dict's) plus overrides; resuming, the run's own
    config.yaml plus overrides, and a config file given too must agree with the run there."""
    if resume is None:
        return load_config(config_path, overrides, check_files=True)
    cfg = _saved_config(Path(resume), overrides)
    if config_path is not None:
        label = config_path if isinstance(config_path, str) else "the config given"
        saved = load_config(Path(resume) / "config.yaml")
        _check_same_as_saved(saved, load_config(config_path, overrides), overrides, label, Path(resume))
    return cfg


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
        _check_task(ckpt, path)
        _check_resumable(_saved_cfg(ckpt, path), cfg, run_dir)
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


def train_processes(nproc: int, config_path: str | None = None, overrides: list[str] = (),
                    resume: str | None = None, max_restarts: int = 0, quiet: bool = False) -> int:
    """`rnncli train --nproc N`: start torchrun's own launcher with N processes on this machine and
    wait; returns its exit code (130 when interrupted). The config is checked here first, and a
    run without run.name gets its timestamped name now, so a restarted group finds it again."""
    if distributed.under_torchrun():
        raise ArgumentError("nproc", "cannot be used inside a process that torchrun started")
    if nproc < 1:
        raise ArgumentError("nproc", f"must be >= 1 (got {nproc})")
    if max_restarts < 0:
        raise ArgumentError("max_restarts", f"must be >= 0 (got {max_restarts})")
    if config_path is None and resume is None:
        raise ArgumentError("config_path", "is required to start a run (or give resume, a run directory)")
    cfg = _config_for(config_path, overrides, resume)
    args = ["train", *([config_path] if config_path else [])]
    for override in overrides:
        args += ["--set", override]
    if resume is not None:
        args += ["--resume", resume]
    elif not cfg["run"]["name"]:
        args += ["--set", f"run.name={run_directory(cfg).name}"]
    if quiet:
        args.append("--quiet")
    return distributed.launch(nproc, args, max_restarts)


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


def _saved_config(run_dir: Path, overrides: list[str]) -> dict:
    return load_config(run_dir / "config.yaml", overrides, check_files=True)


def _flatten(cfg: dict) -> dict:
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _check_same_as_saved(saved: dict, given: dict, overrides: list[str], config_path: str, run_dir: Path) -> None:
    """A config given with `resume` must say what the run says, except the keys `overrides` set
    (they change the run on purpose) and the `run` section (the run directory is `resume`)."""
    set_keys = {".".join(k for k in parse_override(o)[:2] if k) for o in overrides}
    old, new = _flatten(saved), _flatten(given)
    differ = sorted(k for k in old.keys() | new.keys()
                    if old.get(k) != new.get(k) and k not in set_keys and not k.startswith("run."))
    if differ:
        detail = "; ".join(f"{k}: {old.get(k)!r} in the run, {new.get(k)!r} in {config_path}" for k in differ)
        raise RunError(f"cannot resume {run_dir} with {config_path}: it differs from the run's saved config in "
                       f"{detail}. Resume without a config file (the run's own config.yaml is used), or change "
                       f"these keys with explicit overrides")


def _check_resumable(saved: dict, new: dict, run_dir: Path) -> None:
    old, cur = _flatten(saved), _flatten(new)
    changed = sorted(k for k in old.keys() | cur.keys()
                     if old.get(k) != cur.get(k) and any(k == f or k.startswith(f + ".") for f in _FIXED_ON_RESUME))
    if changed:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {cur.get(k)!r}" for k in changed)
        raise RunError(f"cannot resume {run_dir}: the config changed keys that define the model or data: {detail}")


def _say(text: str) -> None:
    """A one-line notice about files on disk (shown even with show_progress off)."""
    print(f"rnncli: {text}", file=sys.stderr, flush=True)


def load_run(run_dir: str, which: str = "best", device: str = "auto", int8: bool = False):
    """Rebuild the task of a trained run from its checkpoint (`best` or `last`), without data:
    `task.load_data(data_file=None)` loads the evaluation splits (or a file).

    `int8`: the model's recurrent and linear weights quantized to int8 for CPU inference
    (rnncli/nn/quantize.py); the task then runs on the CPU whatever `device` says.
    """
    path = checkpoint.find_checkpoint(Path(run_dir), which)
    ckpt = checkpoint.load(path, required=checkpoint.REQUIRED)
    _check_task(ckpt, path)
    dev = select_device("cpu" if int8 else device)
    cfg = _saved_cfg(ckpt, path)  # an older run's config, in today's spelling
    with _fits(path):
        task = task_spec(cfg["task"]).module.restore(cfg, ckpt["task_state"], ckpt["model"], dev)
    if int8:
        from rnncli.nn.quantize import quantize

        task.model = quantize(task.model)
    return cfg, task, ckpt


def _check_task(ckpt: dict, path: Path) -> None:
    if ckpt["config"]["task"] not in TASKS:
        raise RunError(f"{path}: checkpoint of task '{ckpt['config']['task']}', which this rnncli does not "
                       f"know (it knows {', '.join(TASKS)})")


def _saved_cfg(ckpt: dict, path: Path) -> dict:
    """The checkpoint's config, upgraded and validated against today's schema."""
    try:
        return resolve_saved(ckpt["config"], str(path))
    except ConfigError as e:
        raise RunError(f"{e} (the checkpoint's saved config)") from None


@contextmanager
def _fits(path: Path):
    """A checkpoint whose parts do not fit its config (a missing key, a weight of another shape) is one
    RunError line naming the file, not a traceback from deep inside torch."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        if isinstance(e, RnncliError):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise RunError(f"{path}: the checkpoint does not fit its config ({type(e).__name__}: {first})") from None


@dataclass
class LoadedRun:
    """A trained run held in memory for many calls (`rnncli serve`): what `open_run` returns.

    Each method checks that the run's task declares the capability, as the one-shot functions do.
    """

    run_dir: str
    cfg: dict
    spec: TaskSpec
    task: Any
    step: int  # the checkpoint's training step
    int8: bool

    def can(self, capability: type) -> bool:
        return self.spec.can(capability)

    def generate(self, prompt: str, length: int = 500, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, greedy: bool = False, seed: int | None = None,
                 on_text: Callable[[str], None] | None = None) -> str:
        _require(self.spec, SamplesText, self.run_dir, "sampling text")
        return self.task.generate(prompt, length, temperature, top_k, top_p, greedy, seed, on_text)

    def predict(self, texts: list[str]) -> list[dict]:
        _require(self.spec, Predicts, self.run_dir, "predict")
        return self.task.predict(texts)

    def translate(self, sentences: list[str], beam: int | None = None, n_best: int = 1) -> list[dict]:
        _require(self.spec, Translates, self.run_dir, "translation")
        return self.task.translate(sentences, beam, n_best)

    def info(self) -> dict:
        """Plain facts about the model: task, capabilities, cell and sizes, parameters, checkpoint."""
        model = self.task.model
        return {"run": str(self.run_dir), "task": self.spec.name, "checkpoint_step": self.step,
                "capabilities": [c.__name__ for c in self.spec.capabilities], "int8": self.int8,
                "model": dict(self.cfg["model"]), "device": str(next(model.parameters()).device),
                "parameters": sum(p.numel() for p in model.parameters())}


def open_run(run_dir: str, which: str = "best", int8: bool = False) -> LoadedRun:
    """Load a trained run once for many predictions, generations or translations."""
    cfg, task, ckpt = load_run(run_dir, which, int8=int8)
    task.model.eval()
    return LoadedRun(str(run_dir), cfg, task_spec(cfg["task"]), task, ckpt["trainer"]["step"], int8)


def task_of(run_dir: str) -> TaskSpec | None:
    """The registry entry of a run's task (from its config.yaml); None when the directory has none."""
    try:
        cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
        return task_spec(cfg["task"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def _require(spec: TaskSpec, capability: type, run_dir: str, what: str) -> None:
    if not spec.can(capability):
        names = tasks_that(capability)
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        raise RunError(f"{run_dir} is a '{spec.name}' run; {what} works for {listed} runs")


def _saved_spec(run_dir: str) -> TaskSpec:
    spec = task_of(run_dir)
    if spec is None:
        raise RunError(f"{run_dir}: no readable config.yaml (is it a run directory?)")
    return spec


def evaluate(run_dir: str, split: str = "val", data_file: str | None = None, which: str = "best",
             beam: int | None = None, int8: bool = False) -> dict:
    """Metrics of a trained run on one of its splits, or on another file (`data_file`).

    `beam` (translation runs) decodes with this beam size instead of the config's trainer.beam_size;
    `int8` scores the int8-quantized model on the CPU.
    """
    if split not in SPLITS:
        raise ArgumentError("split", f"must be one of {', '.join(SPLITS)} (got {split!r})")
    cfg, task, ckpt = load_run(run_dir, which, int8=int8)
    spec = task_spec(cfg["task"])
    if beam is not None and not spec.can(Translates):
        raise ArgumentError("beam", f"applies to translation runs ({', '.join(tasks_that(Translates))}); "
                            f"{run_dir} is a '{spec.name}' run")
    task.load_data(data_file)
    options = {} if beam is None else {"beam": beam}
    metrics = task.evaluate("file" if data_file else split, **options)
    return {"run": str(run_dir), "task": cfg["task"], "checkpoint_step": ckpt["trainer"]["step"],
            "split": data_file or split, **({"int8": True} if int8 else {}), **metrics}


def example_scores(run_dir: str, split: str = "val", which: str = "best"):
    """Per-example statistics of a trained run on one of its splits (`rnncli.metrics.ExampleScores`):
    what `rnncli.tools.compare_runs` resamples to compare two runs."""
    if split not in SPLITS:
        raise ArgumentError("split", f"must be one of {', '.join(SPLITS)} (got {split!r})")
    _require(_saved_spec(run_dir), ScoresExamples, run_dir, "per-example scores")
    _, task, _ = load_run(run_dir, which)
    task.load_data(None)
    return task.example_scores(split)


def generate(run_dir: str, prompt: str, length: int = 500, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, greedy: bool = False, seed: int | None = None,
             on_text: Callable[[str], None] | None = None, which: str = "best", beam: int | None = None,
             n_best: int = 1, int8: bool = False) -> str:
    """Sample text from a trained language model run (or translate `prompt` with a translation run)."""
    cfg, task, _ = load_run(run_dir, which, int8=int8)
    spec = task_spec(cfg["task"])
    if spec.can(Translates):
        return task.format_translation(task.translate([prompt], beam, n_best)[0], n_best)
    _require(spec, SamplesText, run_dir, "sampling text")
    return task.generate(prompt, length, temperature, top_k, top_p, greedy, seed, on_text)


def translate(run_dir: str, sentences: list[str], beam: int | None = None, n_best: int = 1,
              which: str = "best", int8: bool = False) -> list[dict]:
    """Translate sentences with a seq2seq run: {"source", "translations": [{"text", "score"}, ...]} each."""
    cfg, task, _ = load_run(run_dir, which, int8=int8)
    _require(task_spec(cfg["task"]), Translates, run_dir, "translation")
    return task.translate(sentences, beam, n_best)


def attention(run_dir: str, split: str = "val", data_file: str | None = None, which: str = "best",
              index: int = 0) -> dict:
    """Greedy translation of one sentence of a split (or file) with its attention weights (seq2seq runs);
    `rnncli.tools.attention_plot` draws it."""
    cfg, task, _ = load_run(run_dir, which)
    _require(task_spec(cfg["task"]), MapsAttention, run_dir, "an attention map")
    task.load_data(data_file)
    return task.attention_map("file" if data_file else split, index)


def predict(run_dir: str, texts: list[str], which: str = "best", int8: bool = False) -> list[dict]:
    """Predictions of a trained run for raw input texts (one plain dict each)."""
    cfg, task, _ = load_run(run_dir, which, int8=int8)
    _require(task_spec(cfg["task"]), Predicts, run_dir, "predict")
    return task.predict(texts)


def write_predictions(run_dir: str, predictions: list[dict], path: str) -> bool:
    """Write predictions in the task's own file format (ner: CoNLL); False when it has none."""
    spec = _saved_spec(run_dir)
    if not spec.can(WritesPredictions):
        return False
    spec.task_class.write_predictions(predictions, path)
    return True


def format_prediction(run_dir: str, prediction: dict) -> str:
    spec = _saved_spec(run_dir)
    _require(spec, Predicts, run_dir, "predict")
    return spec.task_class.format_prediction(prediction)


def metric_tables(task_name: str, metrics: dict) -> list:
    """Task-specific rich tables for `rnncli eval` (per-class scores, confusion matrix, ...)."""
    spec = task_spec(task_name)
    return spec.task_class.metric_tables(metrics) if spec.can(RendersMetrics) else []


def check_output_path(path: str, argument: str = "output") -> None:
    """Before any work: `path` can be written as a file (its folder exists, it is not a folder itself)."""
    p = Path(path)
    folder = p.parent
    if not path.strip():
        raise ArgumentError(argument, "is empty; give a file name")
    if p.is_dir():
        raise ArgumentError(argument, f"{path!r} is a directory; give a file name")
    if not folder.is_dir():
        raise ArgumentError(argument, f"{path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or p.exists() and not os.access(p, os.W_OK):
        raise ArgumentError(argument, f"{path}: no permission to write there")


def read_lines(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 file, split on \\n only (not on U+0085 and friends)."""
    from rnncli.data.text import read_text

    return [line.rstrip("\r") for line in read_text(path).split("\n") if line.strip()]
