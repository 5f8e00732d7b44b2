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

import copy
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rnncli.config.show import describe_keys, dump_config, field_note  # noqa: F401  (re-exported)
from rnncli.config.values import check_paths, check_values, describe_kind, resolve_paths
from rnncli.errors import ConfigError, closest
from rnncli.schema import SECTIONS, Field, Schema, bounded, check_model
from rnncli.tasks import TASK_NAMES, task_check, task_schema


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
    text = _read_config_text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _refuse_duplicates(node, path)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            line = mark.line + 1
        elif isinstance(getattr(e, "position", None), int):  # a ReaderError: a character YAML forbids
            line = text.count("\n", 0, e.position) + 1
        else:
            line = None
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or str(e)
        problem = (str(problem).strip().splitlines() or ["unreadable"])[0]
        if isinstance(e, yaml.reader.ReaderError):
            char = f"U+{e.character:04X}" if isinstance(e.character, int) else repr(e.character)
            problem = f"the character {char} is not allowed in YAML (a binary or control character)"
        raise ConfigError(f"{path}{f':{line}' if line else ''}: invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply for a config") from None
    if raw is None:
        raw, node = {}, None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return raw, _Source(str(path), _line_numbers(node))


def _read_config_text(path: Path) -> str:
    """The file's bytes decoded as UTF-8 (a BOM is allowed), or a ConfigError that says why not."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give a YAML config file (e.g. {path}/demo.yaml)") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    if b"\0" in data:
        raise ConfigError(f"{path}: not a YAML config: a binary file (NUL byte at offset {data.index(0)})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {data[e.start:e.start + 1]!r} at offset "
                          f"{e.start}); save the config as UTF-8") from None


def _refuse_duplicates(node, path: Path) -> None:
    """PyYAML keeps the last of two equal keys; a config refuses them, naming both lines."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                    line = key_node.start_mark.line + 1
                    if key_node.value in seen:
                        raise ConfigError(f"{path}:{line}: duplicate key '{key_node.value}' (first at line "
                                          f"{seen[key_node.value]}); keep one of them")
                    seen[key_node.value] = line
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


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




def load_config(path: str | Path | dict, overrides: list[str] = (), check_files: bool = False) -> dict:
    """Read, override, validate and resolve a config file (or a dict as YAML would give it, e.g.
    from a notebook) into a plain nested dict.

    Relative file paths become absolute: a path written in the file is read from the file's
    directory (a dict's: from the current directory), a path given by an override from the current
    directory. `check_files`: every file the config names must exist (an error names the key,
    where it was set and the path tried).
    """
    if isinstance(path, dict):
        raw, source, base = copy.deepcopy(path), _Source("config", {}), Path.cwd()
    else:
        (raw, source), base = _read_yaml(Path(path)), Path(path).absolute().parent
    set_keys: dict[tuple, str] = {}  # keys given by an override -> the override text
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in raw:  # a section only an override names (a typo there is the override's)
            set_keys[(section,)] = text
        if key is None:
            raw["task"] = value
        else:
            if not isinstance(raw.get(section, {}), dict):
                raw[section] = {}
            raw.setdefault(section, {})
            raw[section] = dict(raw[section] or {})
            raw[section][key] = value
        set_keys[(section,) if key is None else (section, key)] = text
    cfg = resolve(raw, source, set_keys)
    resolve_paths(cfg, base, set_keys, source, check_files, warn_at)
    if check_files:
        check_paths(cfg, lambda *key: f"override {set_keys[key]}" if key in set_keys else source.where(*key))
    return cfg


def resolve(raw: dict, source: _Source, set_keys: dict | None = None, check_files: bool = False) -> dict:
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
    task_check(task)(cfg, where)
    check_values(cfg, where, check_files)
    return cfg


# Renamed keys: old spelling -> today's, accepted with a one-line FutureWarning (silently in saved runs)
RENAMED_KEYS = {("trainer", "metric"): "best_metric"}  # seq2seq's name before every task used best_metric


def _renamed_keys(section: str, values: dict, fields: dict[str, Field], where, warn: bool = True) -> dict:
    out = dict(values)
    for (sec, old), new in RENAMED_KEYS.items():
        if sec == section and old in out and old not in fields and new in fields and new not in out:
            if warn:
                warn_at(where(section, old), f"{section}.{old} is deprecated: write {section}.{new} (the same key)")
            out[new] = out.pop(old)
    return out


def _resolve_section(section: str, values: dict, fields: dict[str, Field], where) -> dict:
    values = _renamed_keys(section, values, fields, where)
    for key in values:
        if key not in fields:
            raise ConfigError(
                f"{where(section, key)}: unknown key '{key}' in section '{section}'.{closest(key, fields)} "
                f"Allowed keys: {', '.join(fields)}"
            )
    out = {}
    for key, field in fields.items():
        if key in values:
            field = bounded(key, field)
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
    warn_at(where, f"{name} = '{value}' is deprecated: write '{new}' (the same meaning)")
    return new


def warn_at(where: str, message: str) -> None:
    """A FutureWarning that points at where the value was written: `path:line` of the YAML file
    (Python then shows that line), or the override."""
    path, _, line = where.rpartition(":")
    if line.isdigit():
        warnings.warn_explicit(message, FutureWarning, path, int(line))
    else:  # from an override (--set), or a file without line numbers: no source line to show
        warnings.warn_explicit(f"{where}: {message}", FutureWarning, "<overrides>", 1)


def upgrade(cfg: dict) -> dict:
    """A resolved config saved by an older rnncli (in a run directory or a checkpoint), with renamed
    values in today's spelling. Silent: rnncli wrote those files, the user did not."""
    schema = task_schema(cfg["task"])
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in cfg.items()}
    for section in SECTIONS:
        values = out.get(section)
        if not isinstance(values, dict):  # damaged: resolve() names it
            continue
        out[section] = _renamed_keys(section, values, schema[section], None, warn=False)
        for key, field in schema[section].items():
            values = out.get(section)
            value = values.get(key) if isinstance(values, dict) else None
            if field.renamed and isinstance(value, str) and value in field.renamed:
                out[section][key] = field.renamed[value]
    return out


def resolve_saved(cfg: dict, origin: str) -> dict:
    """A config rnncli saved (in a checkpoint or run directory), upgraded and validated like a file:
    a damaged one is a ConfigError naming `origin`."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{origin}: the saved config is a {type(cfg).__name__}, not a mapping")
    return resolve(upgrade(cfg) if cfg.get("task") in TASK_NAMES else cfg, _Source(origin, {}))


def _drop_inapplicable(cfg: dict, raw: dict, schema: Schema, where) -> None:
    for section in SECTIONS:
        for key, field in schema[section].items():
            if field.when is None or field.when(cfg):
                continue
            given = raw.get(section) or {}
            if key in given and not (given[key] is None and field.default is None):  # `val: null`: harmless
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
        raise ConfigError(f"{label} must not be null; expected {describe_kind(field)}")
    kind = field.kind
    if kind == "floats":
        if not isinstance(value, list):
            raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}")
        return [coerce(v, Field("float", None, min=field.min, max=field.max), label) for v in value]
    if kind == "strs":  # one string or a list of them (e.g. several data files) -> a list
        value = [value] if isinstance(value, str) else value
        empty_ok = field.default == []  # a key whose default is [] may be set to []
        if not isinstance(value, list) or not (value or empty_ok) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}")
        for v in value if field.choices else ():
            if v not in field.choices:
                raise ConfigError(f"{label}: '{v}' is not allowed.{closest(v, field.choices)} "
                                  f"Allowed: {', '.join(field.choices)}")
        return list(value)
    if kind == "int|str":  # e.g. a column given by index or by header name; `val_every: epoch`
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}")
        if isinstance(value, str):
            if field.choices and value not in field.choices:
                raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}.{closest(value, field.choices)}")
            return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{label} = {value!r}: expected true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}")
    elif kind == "float":
        value = _to_float(value, field, label)
    elif kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}")
        if field.choices and value not in field.choices:
            raise ConfigError(
                f"{label} = '{value}' is not allowed.{closest(value, field.choices)} "
                f"Allowed: {', '.join(field.choices)}"
            )
    if field.min is not None and value < field.min or field.max is not None and value > field.max:
        raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}")
    return value


def _to_float(value: Any, field: Field, label: str) -> float:
    # PyYAML (YAML 1.1) reads `1e-3` as a string: accept any string float() accepts.
    if isinstance(value, bool):
        raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} = {value!r}: expected {describe_kind(field)}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{label} = {value!r}: expected a finite number")
    return out
