"""Task registry. A task owns data -> model -> loss -> metrics -> decode for one kind of problem.

Each task module provides:

    SCHEMA                      {"data": {...}, "model": {...}, "trainer": {...}}: its own config
                                fields (rnncli.schema.Field); trainer/run fields are shared
    check(cfg, where)           optional cross-key checks; raise ConfigError(f"{where('data', 'x')}: ...")
    build(cfg, device)          -> a Task (rnncli/tasks/base.py), data loaded, ready to train
    restore(cfg, task_state, model_state, device, data_file=None)
                                -> a trained Task from a checkpoint; `task.load_data()` then loads
                                the evaluation data (the config's splits, or `data_file`)
    optional:
    generate(...)               char_lm: sample text (rnncli generate)
    predict(task, texts)        -> one plain dict per input text (rnncli predict)
    format_prediction(pred)     -> one line of text for a prediction dict
    write_predictions(preds, path)  the task's own output file format (ner: CoNLL) for --output
    metric_tables(metrics)      -> rich renderables for `rnncli eval` beyond the scalar table

The trainer only sees the `Task` protocol.
"""

from __future__ import annotations

import importlib

from rnncli.schema import RUN_FIELDS, TRAINER_FIELDS

TASK_MODULES = {
    "char_lm": "rnncli.tasks.char_lm",
    "classify": "rnncli.tasks.classify",
    "ner": "rnncli.tasks.ner",
    "seq2seq": "rnncli.tasks.seq2seq",
    "adding": "rnncli.tasks.adding",
    "copy_memory": "rnncli.tasks.copy_memory",
}
TASK_NAMES = tuple(TASK_MODULES)


def task_module(name: str):
    return importlib.import_module(TASK_MODULES[name])


def task_schema(name: str) -> dict:
    """section -> key -> Field for this task: the shared trainer/run keys plus the task's own."""
    extra = task_module(name).SCHEMA
    return {
        "data": dict(extra.get("data", {})),
        "model": dict(extra.get("model", {})),
        "trainer": {**TRAINER_FIELDS, **extra.get("trainer", {})},
        "run": dict(RUN_FIELDS),
    }
