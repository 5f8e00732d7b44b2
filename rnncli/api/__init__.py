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

import os
from pathlib import Path
from typing import Callable

from rnncli.api.runs import LoadedRun, config_for, load_run, open_run, require, run_directory, saved_spec, task_of
from rnncli.config import describe_keys, dump_config, load_config
from rnncli.errors import ArgumentError
from rnncli.tasks import task_spec, tasks_that
from rnncli.tasks.base import (
    MapsAttention,
    Predicts,
    RendersMetrics,
    SamplesText,
    ScoresExamples,
    Translates,
    WritesPredictions,
)

SPLITS = ("val", "test", "train")
__all__ = ["LoadedRun", "load_run", "open_run", "run_directory", "task_of"]  # from rnncli/api/runs.py


def show_config(config_path: str | dict, overrides: list[str] = (), comments: bool = False) -> str:
    """The resolved config as YAML (block style); `comments`: each key's help as a comment."""
    return dump_config(load_config(config_path, overrides), comments)


def config_keys(task: str) -> list[dict]:
    """Every config key of `task`: {key, type, default, allowed, applies, help}, in section order."""
    return describe_keys(task)


def train(config_path: str | dict | None = None, overrides: list[str] = (), resume: str | None = None,
          show_progress: bool = True) -> dict:
    """Train from a config file or dict (or continue `resume`, a run directory); returns the summary
    {status, steps, epochs, best_val_<metric>, best_step, run_dir}.

    Under torchrun every process calls this; they join one process group (see
    rnncli/training/distributed.py) and rank 0 alone writes the run directory."""
    if config_path is None and resume is None:
        raise ArgumentError("config_path", "is required to start a run (or give resume, a run directory, to "
                            "continue one)")
    cfg = config_for(config_path, overrides, resume)
    from rnncli.api.fit import fit  # imports torch: only once the config is known to be good

    return fit(cfg, config_path, resume, show_progress)


def train_processes(nproc: int, config_path: str | None = None, overrides: list[str] = (),
                    resume: str | None = None, max_restarts: int = 0, quiet: bool = False) -> int:
    """`rnncli train --nproc N`: start torchrun's own launcher with N processes on this machine and
    wait; returns its exit code (130 when interrupted). The config is checked here first, and a
    run without run.name gets its timestamped name now, so a restarted group finds it again."""
    if nproc < 1:
        raise ArgumentError("nproc", f"must be >= 1 (got {nproc})")
    if max_restarts < 0:
        raise ArgumentError("max_restarts", f"must be >= 0 (got {max_restarts})")
    if config_path is None and resume is None:
        raise ArgumentError("config_path", "is required to start a run (or give resume, a run directory)")
    cfg = config_for(config_path, overrides, resume)
    from rnncli.training import distributed  # imports torch

    if distributed.under_torchrun():
        raise ArgumentError("nproc", "cannot be used inside a process that torchrun started")
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
    require(saved_spec(run_dir), ScoresExamples, run_dir, "per-example scores")
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
    require(spec, SamplesText, run_dir, "sampling text")
    return task.generate(prompt, length, temperature, top_k, top_p, greedy, seed, on_text)


def translate(run_dir: str, sentences: list[str], beam: int | None = None, n_best: int = 1,
              which: str = "best", int8: bool = False) -> list[dict]:
    """Translate sentences with a seq2seq run: {"source", "translations": [{"text", "score"}, ...]} each."""
    cfg, task, _ = load_run(run_dir, which, int8=int8)
    require(task_spec(cfg["task"]), Translates, run_dir, "translation")
    return task.translate(sentences, beam, n_best)


def attention(run_dir: str, split: str = "val", data_file: str | None = None, which: str = "best",
              index: int = 0, beam: int | None = None) -> dict:
    """The translation of one sentence of a split (or file) with its attention weights (seq2seq runs):
    greedy decoding, or with `beam` beam search's best hypothesis and its own attention;
    `rnncli.tools.attention_plot` draws it."""
    cfg, task, _ = load_run(run_dir, which)
    require(task_spec(cfg["task"]), MapsAttention, run_dir, "an attention map")
    task.load_data(data_file)
    return task.attention_map("file" if data_file else split, index, beam)


def predict(run_dir: str, texts: list[str], which: str = "best", int8: bool = False) -> list[dict]:
    """Predictions of a trained run for raw input texts (one plain dict each)."""
    cfg, task, _ = load_run(run_dir, which, int8=int8)
    require(task_spec(cfg["task"]), Predicts, run_dir, "predict")
    return task.predict(texts)


def write_predictions(run_dir: str, predictions: list[dict], path: str) -> bool:
    """Write predictions in the task's own file format (ner: CoNLL); False when it has none."""
    spec = saved_spec(run_dir)
    if not spec.can(WritesPredictions):
        return False
    spec.task_class.write_predictions(predictions, path)
    return True


def format_prediction(run_dir: str, prediction: dict) -> str:
    spec = saved_spec(run_dir)
    require(spec, Predicts, run_dir, "predict")
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
