"""The Python API behind the CLI: train, evaluate, generate, translate, predict, show a config.

Each function takes plain arguments and returns plain values, so tests (and notebooks) can
call it directly; `rnncli.cli` only parses arguments, calls one of these and prints. What a run
can do (sample text, translate, predict, ...) is what its task declares in the registry
(rnncli/tasks/__init__.py); a bad argument value is an `ArgumentError` naming the argument.

A run directory holds config.yaml (the resolved config), task_state.json (the task's state:
vocabularies, labels; older runs named it vocab.json), metrics.jsonl, last.pt and best.pt.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import yaml

from rnncli.config import dump_config, load_config, upgrade
from rnncli.errors import ArgumentError, RunError
from rnncli.tasks import TaskSpec, task_spec, tasks_that
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
from rnncli.training import checkpoint, distributed, tensorboard
from rnncli.training.health_line import HealthLine, ProbeAtValidation, Watchers
from rnncli.training.tensorboard import TensorBoardWriter
from rnncli.training.trainer import Trainer, seed_everything, select_device

TASK_STATE_FILE = "task_state.json"  # the task's state as readable JSON (checkpoints carry it too)
SPLITS = ("val", "test", "train")

# Keys that must not change when a run is resumed: they define the model, the data and its order.
_FIXED_ON_RESUME = ("task", "data", "model", "trainer.batch_size", "trainer.bptt", "trainer.seed")


def show_config(config_path: str, overrides: list[str] = ()) -> str:
    return dump_config(load_config(config_path, overrides))


def run_directory(cfg: dict) -> Path:
    name = cfg["run"]["name"] or time.strftime("%Y%m%d-%H%M%S") + f"-{cfg['task']}-{cfg['model']['cell']}"
    return Path(cfg["run"]["dir"]) / name


def train(config_path: str | None = None, overrides: list[str] = (), resume: str | None = None,
          show_progress: bool = True) -> dict:
    """Train from a config (or continue `resume`, a run directory); returns the summary dict.

    Under torchrun every process calls this; they join one process group (see
    rnncli/training/distributed.py) and rank 0 alone writes the run directory."""
    if config_path is None and resume is None:
        raise ArgumentError("config_path", "is required to start a run (or give resume, a run directory, to "
                            "continue one)")
    cfg = load_config(config_path, overrides) if config_path else _saved_config(Path(resume), overrides)
    _require_extras(cfg)
    device = select_device(cfg["trainer"]["device"])
    ctx = distributed.setup(device)
    try:
        run_dir, ckpt = _open_run(cfg, resume, ctx)
        seed_everything(cfg["trainer"]["seed"])  # the same initial weights on every rank
        task = task_spec(cfg["task"]).module.build(cfg, device)
        if ctx.main:
            (run_dir / "config.yaml").write_text(dump_config(cfg))
            (run_dir / TASK_STATE_FILE).write_text(json.dumps(task.state(), ensure_ascii=False, indent=1))
        if ctx.rank:
            seed_everything(cfg["trainer"]["seed"] * 1000 + ctx.rank)  # dropout masks differ by rank
        with _watch(cfg, task, run_dir, show_progress, ctx.main) as watch:
            trainer = Trainer(task, cfg, run_dir, config_path or str(run_dir / "config.yaml"), show_progress, watch)
            if ckpt is not None:
                trainer.restore(ckpt)
                if distributed.restart_count() and resume is None:
                    trainer.progress_notes.append(
                        f"torchrun restarted the group (restart {distributed.restart_count()}): continuing from "
                        f"{run_dir / 'last.pt'} at step {trainer.state.step}")
            return trainer.fit(resumed=ckpt is not None)
    finally:
        distributed.shutdown()


def _open_run(cfg: dict, resume: str | None, ctx) -> tuple[Path, dict | None]:
    """The run directory and the checkpoint to continue from (None: a fresh start).

    A group that torchrun restarted (`--max-restarts`) continues from the run's last.pt by itself."""
    if resume is None and ctx.active:
        run_dir = Path(distributed.broadcast(str(_rank0_run_directory(cfg)) if ctx.main else None))
        if distributed.restart_count() and (run_dir / "last.pt").exists():
            resume = str(run_dir)
    if resume is not None:
        run_dir = Path(resume)
        ckpt = checkpoint.load(checkpoint.find_checkpoint(run_dir, "last"))
        _check_resumable(upgrade(ckpt["config"]), cfg, run_dir)
        return run_dir, ckpt
    if not ctx.active:
        run_dir = run_directory(cfg)
    problem = None
    if ctx.main:
        try:
            _prepare_run_dir(run_dir, cfg["run"]["overwrite"] or distributed.restart_count() > 0)
        except RunError as e:
            problem = str(e)
    problem = distributed.broadcast(problem)  # every rank stops on rank 0's error
    if problem:
        raise RunError(problem)
    return run_dir, None


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
    cfg = load_config(config_path, overrides) if config_path else _saved_config(Path(resume), overrides)
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
    return load_config(run_dir / "config.yaml", overrides)


def _flatten(cfg: dict) -> dict:
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _check_resumable(saved: dict, new: dict, run_dir: Path) -> None:
    old, cur = _flatten(saved), _flatten(new)
    changed = sorted(k for k in old.keys() | cur.keys()
                     if old.get(k) != cur.get(k) and any(k == f or k.startswith(f + ".") for f in _FIXED_ON_RESUME))
    if changed:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {cur.get(k)!r}" for k in changed)
        raise RunError(f"cannot resume {run_dir}: the config changed keys that define the model or data: {detail}")


def _prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    has_ckpt = any((run_dir / f"{n}.pt").exists() for n in ("last", "best"))
    if has_ckpt and not overwrite:
        raise RunError(
            f"{run_dir} already holds a trained run. Resume it, start afresh with run.overwrite=true, or pick "
            f"another run.name"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "best.pt", "metrics.jsonl"):
        (run_dir / name).unlink(missing_ok=True)


def load_run(run_dir: str, which: str = "best", device: str = "auto"):
    """Rebuild the task of a trained run from its checkpoint (`best` or `last`), without data:
    `task.load_data(data_file=None)` loads the evaluation splits (or a file)."""
    ckpt = checkpoint.load(checkpoint.find_checkpoint(Path(run_dir), which))
    cfg = upgrade(ckpt["config"])  # an older run's config, in today's spelling
    dev = select_device(device)
    task = task_spec(cfg["task"]).module.restore(cfg, ckpt["task_state"], ckpt["model"], dev)
    return cfg, task, ckpt


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
             beam: int | None = None) -> dict:
    """Metrics of a trained run on one of its splits, or on another file (`data_file`).

    `beam` (translation runs) decodes with this beam size instead of the config's trainer.beam_size.
    """
    if split not in SPLITS:
        raise ArgumentError("split", f"must be one of {', '.join(SPLITS)} (got {split!r})")
    cfg, task, ckpt = load_run(run_dir, which)
    spec = task_spec(cfg["task"])
    if beam is not None and not spec.can(Translates):
        raise ArgumentError("beam", f"applies to translation runs ({', '.join(tasks_that(Translates))}); "
                            f"{run_dir} is a '{spec.name}' run")
    task.load_data(data_file)
    options = {} if beam is None else {"beam": beam}
    metrics = task.evaluate("file" if data_file else split, **options)
    return {"run": str(run_dir), "task": cfg["task"], "checkpoint_step": ckpt["trainer"]["step"],
            "split": data_file or split, **metrics}


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
             n_best: int = 1) -> str:
    """Sample text from a trained language model run (or translate `prompt` with a translation run)."""
    cfg, task, _ = load_run(run_dir, which)
    spec = task_spec(cfg["task"])
    if spec.can(Translates):
        return task.format_translation(task.translate([prompt], beam, n_best)[0], n_best)
    _require(spec, SamplesText, run_dir, "sampling text")
    return task.generate(prompt, length, temperature, top_k, top_p, greedy, seed, on_text)


def translate(run_dir: str, sentences: list[str], beam: int | None = None, n_best: int = 1,
              which: str = "best") -> list[dict]:
    """Translate sentences with a seq2seq run: {"source", "translations": [{"text", "score"}, ...]} each."""
    cfg, task, _ = load_run(run_dir, which)
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


def predict(run_dir: str, texts: list[str], which: str = "best") -> list[dict]:
    """Predictions of a trained run for raw input texts (one plain dict each)."""
    cfg, task, _ = load_run(run_dir, which)
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


def read_lines(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 file, split on \\n only (not on U+0085 and friends)."""
    from rnncli.data.text import read_text

    return [line.rstrip("\r") for line in read_text(path).split("\n") if line.strip()]
