"""Task registry. A task owns data -> model -> loss -> metrics -> decode for one kind of problem.

Each task module (one per task, read top to bottom) provides:

    SCHEMA                      {"data": {...}, "model": {...}, "trainer": {...}}: its own config
                                fields (rnncli.schema.Field); trainer/run fields are shared
    check(cfg, where)           cross-key checks; raise ConfigError(f"{where('data', 'x')}: ...")
    build(cfg, device)          -> a Task, data loaded, ready to train
    restore(cfg, task_state, model_state, device)
                                -> a trained Task from a checkpoint, without data;
                                `task.load_data(data_file=None)` then loads the evaluation data

and a task class implementing the `Task` protocol (rnncli/tasks/base.py: what the trainer needs,
`load_data` included). What a task can do beyond training and scoring is declared here, as the
capability protocols of rnncli/tasks/base.py its class implements:

    SamplesText         generate(prompt, length, temperature, ...)     char_lm
    Predicts            predict(texts), format_prediction(pred)        classify, ner
    WritesPredictions   write_predictions(preds, path)                 ner (CoNLL)
    Translates          translate(sentences, beam, n_best), format_translation(result, n_best),
                        evaluate(split, beam)                          seq2seq
    MapsAttention       attention_map(split, index, beam)              seq2seq
    Probes              probe(batch_size), for `rnncli diagnose`       char_lm, adding, copy_memory
    RendersMetrics      metric_tables(metrics), for `rnncli eval`      classify, ner, seq2seq
    ScoresExamples      example_scores(split), for `rnncli eval --compare`   every task
    ShowsSamples        samples(split, count), text for TensorBoard    char_lm, ner, seq2seq

`api`, the CLI and the tools dispatch on `task_spec(name).can(Capability)`; nothing probes a task
object for methods. A new task is one module, its SCHEMA and check in rnncli/tasks/schemas/, and one
line in `TASKS`.

A task module imports torch (seconds); its SCHEMA and check live in a torch-free module of
rnncli/tasks/schemas/ that the task module re-exports. The registry imports neither up front:
`spec.schema` (what the config needs) loads the torch-free module, `spec.module` and
`spec.task_class` the task module, each on first use. So a config is read, checked and printed,
and every config error answers, before torch is imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from rnncli.schema import RUN_FIELDS, TRAINER_FIELDS
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


@dataclass(frozen=True)
class TaskSpec:
    """One registered task: its modules (by name, imported on first use), its task class and the
    capabilities that class implements."""

    name: str
    class_name: str  # the task class in rnncli/tasks/<name>.py
    capabilities: tuple[type, ...] = ()
    schema_name: str = ""  # its module in rnncli/tasks/schemas/ (default: the task's name)

    @property
    def module(self) -> ModuleType:
        """rnncli/tasks/<name>.py: SCHEMA, check, build, restore (imports torch)."""
        return importlib.import_module(f"rnncli.tasks.{self.name}")

    @property
    def task_class(self) -> type:
        return getattr(self.module, self.class_name)

    @property
    def schema(self) -> ModuleType:
        """rnncli/tasks/schemas/<name>.py: SCHEMA and check, without torch."""
        return importlib.import_module(f"rnncli.tasks.schemas.{self.schema_name or self.name}")

    def can(self, capability: type) -> bool:
        return capability in self.capabilities


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("char_lm", "CharLMTask", (SamplesText, Probes, ScoresExamples, ShowsSamples)),
    TaskSpec("classify", "ClassifyTask", (Predicts, RendersMetrics, ScoresExamples)),
    TaskSpec("ner", "NERTask", (Predicts, WritesPredictions, RendersMetrics, ScoresExamples, ShowsSamples)),
    TaskSpec("seq2seq", "Seq2SeqTask", (Translates, MapsAttention, RendersMetrics, ScoresExamples, ShowsSamples)),
    TaskSpec("adding", "AddingTask", (Probes, ScoresExamples), schema_name="synthetic"),
    TaskSpec("copy_memory", "CopyMemoryTask", (Probes, ScoresExamples), schema_name="synthetic"),
)}
TASK_NAMES = tuple(TASKS)


def task_spec(name: str) -> TaskSpec:
    return TASKS[name]


def task_module(name: str) -> ModuleType:
    """The module of task `name` (SCHEMA, check, build, restore)."""
    return TASKS[name].module


def spec_of(task) -> TaskSpec | None:
    """The registry entry of a task object (by its class), or None for an object of no registered task."""
    cls = type(task)
    return next((spec for spec in TASKS.values()
                 if (cls.__module__, cls.__name__) == (f"rnncli.tasks.{spec.name}", spec.class_name)), None)


def tasks_that(capability: type) -> list[str]:
    """Names of the tasks that declare `capability`, in registry order."""
    return [name for name, spec in TASKS.items() if spec.can(capability)]


def task_check(name: str):
    """The cross-key rules of task `name`: check(cfg, where), without torch."""
    return TASKS[name].schema.check


def task_schema(name: str) -> dict:
    """section -> key -> Field for this task: the shared trainer/run keys plus the task's own."""
    extra = TASKS[name].schema.SCHEMA
    return {
        "data": dict(extra.get("data", {})),
        "model": dict(extra.get("model", {})),
        "trainer": {**TRAINER_FIELDS, **extra.get("trainer", {})},
        "run": dict(RUN_FIELDS),
    }
