"""Task registry: each task module has SCHEMA extras, build(cfg) and load(run_dir).

A task owns data -> model -> loss -> metrics -> decode for one kind of problem. The trainer
only sees the `Task` protocol in `rnncli.tasks.base`.
"""

from __future__ import annotations

import importlib

TASK_MODULES = {
    "char_lm": "rnncli.tasks.char_lm",
}
TASK_NAMES = tuple(TASK_MODULES)


def task_module(name: str):
    return importlib.import_module(TASK_MODULES[name])


def task_schema(name: str) -> dict:
    """section -> key -> Field for this task: the shared trainer/run keys plus the task's own."""
    from rnncli.config import RUN_FIELDS, TRAINER_FIELDS

    extra = task_module(name).SCHEMA
    return {
        "data": dict(extra.get("data", {})),
        "model": dict(extra.get("model", {})),
        "trainer": {**TRAINER_FIELDS, **extra.get("trainer", {})},
        "run": dict(RUN_FIELDS),
    }
