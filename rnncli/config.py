"""Strict YAML configs: schema, loading with line numbers, `section.key=value` overrides (the
CLI's --set), clear errors.

A config is one YAML file with a top-level `task:` name and four sections:

    task: char_lm           # which task module builds data, model, loss and metrics
    data:    {...}          # task-specific: files, splits, encodings
    model:   {...}          # cell, sizes, init (keys that do not apply to the cell are errors)
    trainer: {...}          # optimizer, schedule, clipping, steps, validation, seed, device
    run:     {...}          # where the run directory goes

Every key is declared once as a `Field` (type, default, allowed values, help, and when it
applies). `load_config` returns a plain nested dict with every default filled in; keys that
do not apply (e.g. `nonlinearity` for an LSTM) are left out of the resolved dict, and setting
one explicitly is an error that says why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rnncli.errors import ConfigError, closest
from rnncli.schema import SECTIONS, Field, Schema, check_model
from rnncli.tasks import TASK_NAMES, task_module, task_schema


# --------------------------------------------------------------------------- loading
@dataclass
class _Source:
    """Where a value came from, for error messages."""

    path: str
    lines: dict[tuple, int]  # (section,) or (section, key) -> 1-based line

    def where(self, *key: str) -> str:
        line = self.lines.get(tuple(key)) or (self.lines.get(key[:1]) if key else None)
        return f"{self.path}:{line}" if line else self.path


def _read_yaml(path: Path) -> tuple[dict, _Source]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{loc}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if raw is None:
        raw, node = {}, None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return raw, _Source(str(path), _line_numbers(node))


def _line_numbers(node) -> dict[tuple, int]:
    lines: dict[tuple, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key_node, value_node in node.value:
        section = key_node.value
        lines[(section,)] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            for k, _ in value_node.value:
                lines[(section, k.value)] = k.start_mark.line + 1
    return lines


def parse_override(text: str) -> tuple[str, str | None, Any]:
    """`section.key=value` -> (section, key, value) with value parsed as a YAML scalar."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. trainer.lr=0.003")
    dotted, value = text.split("=", 1)
    parts = dotted.strip().split(".")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    if parts == ["task"]:
        return "task", None, parsed
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {text!r}: expected section.key=value (sections: {', '.join(SECTIONS)})")
    return parts[0], parts[1], parsed




def load_config(path: str | Path, overrides: list[str] = ()) -> dict:
    """Read, override, validate and resolve a config file into a plain nested dict."""
    raw, source = _read_yaml(Path(path))
    set_keys: dict[tuple, str] = {}  # keys given by an override -> the override text
    for text in overrides:
        section, key, value = parse_override(text)
        if key is None:
            raw["task"] = value
        else:
            if not isinstance(raw.get(section, {}), dict):
                raw[section] = {}
            raw.setdefault(section, {})
            raw[section] = dict(raw[section] or {})
            raw[section][key] = value
        set_keys[(section,) if key is None else (section, key)] = text
    return resolve(raw, source, set_keys)


def resolve(raw: dict, source: _Source, set_keys: dict | None = None) -> dict:
    """Validate `raw` (as read from YAML) against the task's schema; fill defaults."""
    set_keys = set_keys or {}

    def where(*key: str) -> str:
        return f"override {set_keys[key]}" if key in set_keys else source.where(*key)

    allowed_top = ("task",) + SECTIONS
    for key in raw:
        if key not in allowed_top:
            raise ConfigError(
                f"{where(key)}: unknown section '{key}'.{closest(key, allowed_top)} "
                f"Allowed: {', '.join(allowed_top)}"
            )
    task = raw.get("task")
    if task not in TASK_NAMES:
        shown = "missing" if task is None else f"'{task}'"
        raise ConfigError(
            f"{where('task')}: task is {shown}.{closest(task, TASK_NAMES)} Allowed: {', '.join(TASK_NAMES)}"
        )
    schema = task_schema(task)
    cfg: dict[str, Any] = {"task": task}
    for section in SECTIONS:
        values = raw.get(section) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{where(section)}: section '{section}' must be a mapping of keys")
        cfg[section] = _resolve_section(section, values, schema[section], where)
    _drop_inapplicable(cfg, raw, schema, where)
    check_model(cfg, where)
    task_module(task).check(cfg, where)
    return cfg


def _resolve_section(section: str, values: dict, fields: dict[str, Field], where) -> dict:
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"{where(section, key)}: unknown key '{key}' in section '{section}'.{closest(key, fields)} "
                f"Allowed keys: {', '.join(fields)}"
            )
    out = {}
    for key, field in fields.items():
        if key in values:
            value = _renamed(values[key], field, where(section, key), f"{section}.{key}")
            out[key] = coerce(value, field, f"{where(section, key)}: {section}.{key}")
        else:
            out[key] = field.default
    return out


def _renamed(value: Any, field: Field, where: str, name: str) -> Any:
    """Today's spelling of a renamed value, with a FutureWarning that points at where it was
    written: `path:line` of the YAML file (Python then shows that line), or the override."""
    if not field.renamed or not isinstance(value, str) or value not in field.renamed:
        return value
    new = field.renamed[value]
    message = f"{name} = '{value}' is deprecated: write '{new}' (the same meaning)"
    path, _, line = where.rpartition(":")
    if line.isdigit():
        warnings.warn_explicit(message, FutureWarning, path, int(line))
    else:  # from an override (--set), or a file without line numbers: no source line to show
        warnings.warn_explicit(f"{where}: {message}", FutureWarning, "<overrides>", 1)
    return new


def upgrade(cfg: dict) -> dict:
    """A resolved config saved by an older rnncli (in a run directory or a checkpoint), with renamed
    values in today's spelling. Silent: rnncli wrote those files, the user did not."""
    schema = task_schema(cfg["task"])
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in cfg.items()}
    for section in SECTIONS:
        for key, field in schema[section].items():
            value = out.get(section, {}).get(key)
            if field.renamed and isinstance(value, str) and value in field.renamed:
                out[section][key] = field.renamed[value]
    return out


def _drop_inapplicable(cfg: dict, raw: dict, schema: Schema, where) -> None:
    for section in SECTIONS:
        for key, field in schema[section].items():
            if field.when is None or field.when(cfg):
                continue
            if key in (raw.get(section) or {}):
                raise ConfigError(
                    f"{where(section, key)}: key '{section}.{key}' has no effect here: it applies only when "
                    f"{field.when_text}. Remove it."
                )
            del cfg[section][key]


def coerce(value: Any, field: Field, label: str) -> Any:
    """Check and convert one value; `label` names it in errors."""
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{label} must not be null; expected {_describe(field)}")
    kind = field.kind
    if kind == "floats":
        if not isinstance(value, list):
            raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}")
        return [coerce(v, Field("float", None, min=field.min, max=field.max), label) for v in value]
    if kind == "strs":  # one string or a list of them (e.g. several data files) -> a list
        value = [value] if isinstance(value, str) else value
        empty_ok = field.default == []  # a key whose default is [] may be set to []
        if not isinstance(value, list) or not (value or empty_ok) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}")
        for v in value if field.choices else ():
            if v not in field.choices:
                raise ConfigError(f"{label}: '{v}' is not allowed.{closest(v, field.choices)} "
                                  f"Allowed: {', '.join(field.choices)}")
        return list(value)
    if kind == "int|str":  # e.g. a column given by index or by header name
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{label} = {value!r}: expected true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}")
    elif kind == "float":
        value = _to_float(value, field, label)
    elif kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}")
        if field.choices and value not in field.choices:
            raise ConfigError(
                f"{label} = '{value}' is not allowed.{closest(value, field.choices)} "
                f"Allowed: {', '.join(field.choices)}"
            )
    if field.min is not None and value < field.min or field.max is not None and value > field.max:
        raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}")
    return value


def _to_float(value: Any, field: Field, label: str) -> float:
    # PyYAML (YAML 1.1) reads `1e-3` as a string: accept any string float() accepts.
    if isinstance(value, bool):
        raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{label} = {value!r}: expected a finite number")
    return out


def _describe(field: Field) -> str:
    names = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
             "floats": "a list of numbers", "strs": "a string or a non-empty list of strings",
             "int|str": "an integer or a string"}
    text = names[field.kind]
    if field.choices:
        text = "one of " + ", ".join(field.choices)
    if field.min is not None and field.max is not None:
        text += f" in [{field.min}, {field.max}]"
    elif field.min is not None:
        text += f" >= {field.min}"
    if field.nullable:
        text += " or null"
    return text


def dump_config(cfg: dict) -> str:
    """The resolved config as YAML, sections in reading order."""
    ordered = {"task": cfg["task"], **{s: cfg[s] for s in SECTIONS}}
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=None)
