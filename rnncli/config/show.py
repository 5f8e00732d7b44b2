"""A resolved config as text: block-style YAML (`rnncli config show`, saved run configs), optionally
with each key's help as a comment, and every key of a task described (`rnncli config keys`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from rnncli.config.values import describe_kind
from rnncli.errors import ArgumentError, closest
from rnncli.schema import SECTIONS, Field
from rnncli.tasks import TASK_NAMES, task_schema


class _Dumper(yaml.SafeDumper):
    """Block style (one key per line) with lists of numbers or names kept on one line."""


_Dumper.add_representer(list, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def _yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_config(cfg: dict, comments: bool = False) -> str:
    """The resolved config as block-style YAML, sections in reading order; with `comments`, each
    key carries its schema help (and allowed values) as a comment, so the text is a commented
    template that loads back as the same config."""
    ordered = {"task": cfg["task"], **{s: cfg[s] for s in SECTIONS}}
    if not comments:
        return _yaml(ordered)
    schema = task_schema(cfg["task"])
    lines = [f"task: {cfg['task']}  # {' | '.join(TASK_NAMES)}"]
    for section in SECTIONS:
        lines.append(f"\n{section}:" + (" {}" if not cfg[section] else ""))
        for key, value in cfg[section].items():
            text = f"  {_yaml({key: value}).rstrip()}"
            lines.append(f"{text:<34}  # {field_note(schema[section][key])}")
    return "\n".join(lines) + "\n"


def field_note(field: Field) -> str:
    """One key's help, with its allowed values."""
    allowed = f" ({' | '.join(field.choices)})" if field.choices else ""
    return field.help + allowed


def describe_keys(task: str) -> list[dict]:
    """Every key of `task`'s config: {key, type, default, allowed, applies, help} (`rnncli config keys`)."""
    if task not in TASK_NAMES:
        raise ArgumentError("task", f"must be one of {', '.join(TASK_NAMES)} (got {task!r})."
                                    f"{closest(task, TASK_NAMES)}")
    rows = [{"key": "task", "type": "a string", "default": None, "allowed": " | ".join(TASK_NAMES),
             "applies": "always", "help": "which task builds data, model, loss and metrics"}]
    for section, fields in task_schema(task).items():
        for key, field in fields.items():
            kind = describe_kind(replace(field, choices=None, min=None, max=None))
            kind = kind.replace("string", "file path") if field.path else kind  # (relative: from the file's dir)
            rows.append({"key": f"{section}.{key}", "type": kind,
                         "default": field.default, "allowed": _allowed(field), "applies": field.when_text or "always",
                         "help": field.help})
    return rows


def _allowed(field: Field) -> str:
    if field.choices:
        return " | ".join(field.choices)
    low, high = field.min, field.max
    return f"[{low}, {high}]" if low is not None and high is not None else f">= {low}" if low is not None else ""
