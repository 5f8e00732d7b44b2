"""The Python API behind the CLI: train, evaluate, generate, show a config.

Each function takes plain arguments and returns plain values, so tests (and notebooks) can
call it directly; `rnncli.cli` only parses arguments, calls one of these and prints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import yaml

from rnncli.config import dump_config, load_config, upgrade
from rnncli.errors import RunError
from rnncli.tasks import task_module
from rnncli.training import checkpoint
from rnncli.training.trainer import Trainer, seed_everything, select_device

# Keys that must not change when a run is resumed: they define the model, the data and its order.
_FIXED_ON_RESUME = ("task", "data", "model", "trainer.batch_size", "trainer.bptt", "trainer.seed")


def show_config(config_path: str, overrides: list[str] = ()) -> str:
    return dump_config(load_config(config_path, overrides))


def run_directory(cfg: dict) -> Path:
    name = cfg["run"]["name"] or time.strftime("%Y%m%d-%H%M%S") + f"-{cfg['task']}-{cfg['model']['cell']}"
    return Path(cfg["run"]["dir"]) / name


def train(config_path: str | None = None, overrides: list[str] = (), resume: str | None = None,
          show_progress: bool = True) -> dict:
    """Train from a config (or continue `resume`, a run directory); returns the summary dict."""
    if config_path is None and resume is None:
        raise RunError("give a CONFIG file, or --resume RUN_DIR to continue a run")
    ckpt = None
    if resume is not None:
        run_dir = Path(resume)
        ckpt = checkpoint.load(checkpoint.find_checkpoint(run_dir, "last"))
        cfg = load_config(config_path, overrides) if config_path else _saved_config(run_dir, overrides)
        _check_resumable(upgrade(ckpt["config"]), cfg, run_dir)
    else:
        cfg = load_config(config_path, overrides)
        run_dir = run_directory(cfg)
        _prepare_run_dir(run_dir, cfg["run"]["overwrite"])
    seed_everything(cfg["trainer"]["seed"])
    device = select_device(cfg["trainer"]["device"])
    task = task_module(cfg["task"]).build(cfg, device)
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    (run_dir / "vocab.json").write_text(json.dumps(task.state(), ensure_ascii=False, indent=1))
    trainer = Trainer(task, cfg, run_dir, config_path or str(run_dir / "config.yaml"), show_progress)
    if ckpt is not None:
        trainer.restore(ckpt)
    summary = trainer.fit(resumed=ckpt is not None)
    return summary


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
            f"{run_dir} already holds a trained run. Continue it with --resume {run_dir}, start afresh with "
            f"--set run.overwrite=true, or pick another --set run.name=..."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "best.pt", "metrics.jsonl"):
        (run_dir / name).unlink(missing_ok=True)


def load_run(run_dir: str, which: str = "best", data_file: str | None = None, device: str = "auto"):
    """Rebuild the task of a trained run from its checkpoint (`best` or `last`)."""
    ckpt = checkpoint.load(checkpoint.find_checkpoint(Path(run_dir), which))
    cfg = upgrade(ckpt["config"])  # an older run's config, in today's spelling
    dev = select_device(device)
    task = task_module(cfg["task"]).restore(cfg, ckpt["task_state"], ckpt["model"], dev, data_file)
    return cfg, task, ckpt


def evaluate(run_dir: str, split: str = "val", data_file: str | None = None, which: str = "best",
             beam: int | None = None) -> dict:
    """Metrics of a trained run on one of its splits, or on another file (`data_file`).

    `beam` (seq2seq runs) decodes with this beam size instead of the config's trainer.beam_size.
    """
    cfg, task, ckpt = load_run(run_dir, which, data_file)
    options = {} if beam is None else {"beam": beam}
    if options and not hasattr(task_module(cfg["task"]), "translate"):
        raise RunError(f"--beam works for seq2seq runs; {run_dir} is a '{cfg['task']}' run")
    if beam is not None and beam < 1:
        raise RunError(f"--beam {beam}: must be >= 1")
    task.load_data()
    metrics = task.evaluate("file" if data_file else split, **options)
    return {"run": str(run_dir), "task": cfg["task"], "checkpoint_step": ckpt["trainer"]["step"],
            "split": data_file or split, **metrics}


def generate(run_dir: str, prompt: str, length: int = 500, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, greedy: bool = False, seed: int | None = None,
             on_text: Callable[[str], None] | None = None, which: str = "best", beam: int | None = None,
             n_best: int = 1) -> str:
    """Sample text from a trained language model run (or translate `prompt` with a seq2seq run)."""
    cfg, task, _ = load_run(run_dir, which)
    module = task_module(cfg["task"])
    if hasattr(module, "translate"):
        return module.format_translation(module.translate(task, [prompt], beam, n_best)[0], n_best)
    if not hasattr(module, "generate"):
        raise RunError(f"{run_dir} is a '{cfg['task']}' run; generate works for char_lm runs")
    return module.generate(task.model, task.vocab, prompt, length, temperature, top_k, top_p, greedy, seed,
                           on_text)


def is_translation_run(run_dir: str) -> bool:
    """True when `run_dir` holds a seq2seq (translation) run; False when it is another task or unreadable."""
    try:
        cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
        return hasattr(task_module(cfg["task"]), "translate")
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return False


def translate(run_dir: str, sentences: list[str], beam: int | None = None, n_best: int = 1,
              which: str = "best") -> list[dict]:
    """Translate sentences with a seq2seq run: {"source", "translations": [{"text", "score"}, ...]} each."""
    cfg, task, _ = load_run(run_dir, which)
    module = task_module(cfg["task"])
    if not hasattr(module, "translate"):
        raise RunError(f"{run_dir} is a '{cfg['task']}' run; translation (--beam, --n-best, --input) works "
                       f"for seq2seq runs")
    return module.translate(task, sentences, beam, n_best)


def attention(run_dir: str, split: str = "val", data_file: str | None = None, which: str = "best",
              index: int = 0) -> dict:
    """Greedy translation of one sentence of a split (or file) with its attention weights (seq2seq runs)."""
    cfg, task, _ = load_run(run_dir, which, data_file)
    module = task_module(cfg["task"])
    if not hasattr(module, "attention_map"):
        raise RunError(f"--attention-plot works for seq2seq runs; {run_dir} is a '{cfg['task']}' run")
    task.load_data()
    return module.attention_map(task, "file" if data_file else split, index)


def write_attention_plot(amap: dict, path: str) -> bool:
    """A PNG heat-map of `attention(...)` at `path`; False when matplotlib is not installed."""
    from rnncli.tools.attention_plot import plot_attention

    return plot_attention(amap, path)


def attention_table(amap: dict):
    """A rich terminal heat-map of `attention(...)`."""
    from rnncli.tools.attention_plot import attention_table as table

    return table(amap)


def predict(run_dir: str, texts: list[str], which: str = "best") -> list[dict]:
    """Predictions of a trained run for raw input texts (one plain dict each)."""
    cfg, task, _ = load_run(run_dir, which)
    module = task_module(cfg["task"])
    if not hasattr(module, "predict"):
        raise RunError(f"{run_dir} is a '{cfg['task']}' run; predict works for classify and ner runs")
    return module.predict(task, texts)


def write_predictions(run_dir: str, predictions: list[dict], path: str) -> bool:
    """Write predictions in the task's own file format (ner: CoNLL); False when it has none."""
    cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    writer = getattr(task_module(cfg["task"]), "write_predictions", None)
    if writer is None:
        return False
    writer(predictions, path)
    return True


def format_prediction(run_dir: str, prediction: dict) -> str:
    cfg = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    return task_module(cfg["task"]).format_prediction(prediction)


def metric_tables(task_name: str, metrics: dict) -> list:
    """Task-specific rich tables for `rnncli eval` (per-class scores, confusion matrix, ...)."""
    render = getattr(task_module(task_name), "metric_tables", None)
    return render(metrics) if render else []


def read_lines(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 file, split on \\n only (not on U+0085 and friends)."""
    from rnncli.data.text import read_text

    return [line.rstrip("\r") for line in read_text(path).split("\n") if line.strip()]
