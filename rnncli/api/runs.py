"""Run directories as the API reads them: the config a run trains with (a resumed run's own, and
the checks that a resume changes nothing that defines the model or data), and a trained run loaded
back from its checkpoint (`load_run`, `open_run` -> `LoadedRun`).

Nothing here imports torch until a checkpoint is loaded: the config checks of `rnncli train` answer
before it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from rnncli.config import load_config, parse_override, resolve_saved
from rnncli.errors import ConfigError, RnncliError, RunError
from rnncli.tasks import TASKS, TaskSpec, task_spec, tasks_that
from rnncli.tasks.base import Predicts, SamplesText, Translates

# Keys that must not change when a run is resumed: they define the model, the data and its order.
_FIXED_ON_RESUME = ("task", "data", "model", "trainer.batch_size", "trainer.bptt", "trainer.seed")


def run_directory(cfg: dict) -> Path:
    """RUN: run.dir / run.name, or a timestamped name when run.name is not set."""
    name = cfg["run"]["name"] or time.strftime("%Y%m%d-%H%M%S") + f"-{cfg['task']}-{cfg['model']['cell']}"
    return Path(cfg["run"]["dir"]) / name


def config_for(config_path: str | dict | None, overrides: list[str], resume: str | None) -> dict:
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


def check_resumable(saved: dict, new: dict, run_dir: Path) -> None:
    old, cur = _flatten(saved), _flatten(new)
    changed = sorted(k for k in old.keys() | cur.keys()
                     if old.get(k) != cur.get(k) and any(k == f or k.startswith(f + ".") for f in _FIXED_ON_RESUME))
    if changed:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {cur.get(k)!r}" for k in changed)
        raise RunError(f"cannot resume {run_dir}: the config changed keys that define the model or data: {detail}")


# --------------------------------------------------------------------------- a trained run
def load_run(run_dir: str, which: str = "best", device: str = "auto", int8: bool = False):
    """Rebuild the task of a trained run from its checkpoint (`best` or `last`), without data:
    `task.load_data(data_file=None)` loads the evaluation splits (or a file).

    `int8`: the model's recurrent and linear weights quantized to int8 for CPU inference
    (rnncli/nn/quantize.py); the task then runs on the CPU whatever `device` says.
    """
    from rnncli.training import checkpoint
    from rnncli.training.trainer import select_device

    path = checkpoint.find_checkpoint(Path(run_dir), which)
    ckpt = checkpoint.load(path, required=checkpoint.REQUIRED)
    check_task(ckpt, path)
    dev = select_device("cpu" if int8 else device)
    cfg = saved_cfg(ckpt, path)  # an older run's config, in today's spelling
    with fits(path):
        task = task_spec(cfg["task"]).module.restore(cfg, ckpt["task_state"], ckpt["model"], dev)
    if int8:
        from rnncli.nn.quantize import quantize

        task.model = quantize(task.model)
    return cfg, task, ckpt


def check_task(ckpt: dict, path: Path) -> None:
    if ckpt["config"]["task"] not in TASKS:
        raise RunError(f"{path}: checkpoint of task '{ckpt['config']['task']}', which this rnncli does not "
                       f"know (it knows {', '.join(TASKS)})")


def saved_cfg(ckpt: dict, path: Path) -> dict:
    """The checkpoint's config, upgraded and validated against today's schema."""
    try:
        return resolve_saved(ckpt["config"], str(path))
    except ConfigError as e:
        raise RunError(f"{e} (the checkpoint's saved config)") from None


@contextmanager
def fits(path: Path):
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
        require(self.spec, SamplesText, self.run_dir, "sampling text")
        return self.task.generate(prompt, length, temperature, top_k, top_p, greedy, seed, on_text)

    def predict(self, texts: list[str]) -> list[dict]:
        require(self.spec, Predicts, self.run_dir, "predict")
        return self.task.predict(texts)

    def translate(self, sentences: list[str], beam: int | None = None, n_best: int = 1) -> list[dict]:
        require(self.spec, Translates, self.run_dir, "translation")
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


def require(spec: TaskSpec, capability: type, run_dir: str, what: str) -> None:
    if not spec.can(capability):
        names = tasks_that(capability)
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        raise RunError(f"{run_dir} is a '{spec.name}' run; {what} works for {listed} runs")


def saved_spec(run_dir: str) -> TaskSpec:
    spec = task_of(run_dir)
    if spec is None:
        raise RunError(f"{run_dir}: no readable config.yaml (is it a run directory?)")
    return spec
