"""Strict YAML configs: schema, loading with line numbers, `--set` overrides, clear errors.

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

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from rnncli.cells import CELL_NAMES, CUSTOM_CELLS, LSTM_FAMILY, NONLINEARITIES
from rnncli.errors import ConfigError
from rnncli.init import INPUT_INITS, RECURRENT_INITS

SECTIONS = ("data", "model", "trainer", "run")


@dataclass(frozen=True)
class Field:
    """One config key: its type, default, allowed values and when it applies."""

    kind: str  # "int" | "float" | "str" | "bool" | "floats" | "strs" (a string or list) | "int|str"
    default: Any
    help: str = ""
    choices: tuple | None = None
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    when: Callable[[dict], bool] | None = None  # gets the resolved config (all sections)
    when_text: str = ""  # human form of `when`, e.g. "model.cell is rnn"


Schema = dict[str, dict[str, Field]]  # section -> key -> Field


# --------------------------------------------------------------------------- shared fields
def _cell(cfg: dict) -> str:
    return cfg["model"].get("cell", "")




def recurrent_model_fields(bidirectional: bool = True) -> dict[str, Field]:
    """Model keys shared by every task that uses a zoo cell."""
    fields = {
        "cell": Field("str", "lstm", "recurrent cell", choices=CELL_NAMES),
        "hidden_size": Field("int", 256, "hidden units per layer and direction", min=1),
        "num_layers": Field("int", 1, "stacked recurrent layers", min=1),
        "dropout": Field("float", 0.0, "dropout between layers and before the output", min=0, max=0.99),
        "nonlinearity": Field(
            "str", "tanh", "Elman RNN activation", choices=NONLINEARITIES,
            when=lambda c: _cell(c) == "rnn", when_text="model.cell is rnn",
        ),
        "recurrent_init": Field(
            "str", "orthogonal", "init of W_hh (per gate block)",
            choices=RECURRENT_INITS,
        ),
        "input_init": Field(
            "str", "xavier_uniform", "init of W_ih",
            choices=INPUT_INITS,
        ),
        "forget_bias": Field(
            "float", 1.0, "effective forget-gate bias (b_ih + b_hh)",
            when=lambda c: _cell(c) in LSTM_FAMILY,
            when_text="model.cell is one of " + ", ".join(LSTM_FAMILY),
        ),
        "impl": Field(
            "str", "fused", "fused: hand-written BPTT (fast); autograd: plain loop (reference)",
            choices=("fused", "autograd"),
            when=lambda c: _cell(c) in CUSTOM_CELLS,
            when_text="model.cell is one of " + ", ".join(CUSTOM_CELLS),
        ),
    }
    if bidirectional:
        fields["bidirectional"] = Field("bool", False, "run a second layer right-to-left")
    return fields


def _is(key: str, *values: str) -> Callable[[dict], bool]:
    section, name = key.split(".")
    return lambda c: c[section].get(name) in values


TRAINER_FIELDS: dict[str, Field] = {
    "seed": Field("int", 1234, "one seed fixes data order, init, dropout and sampling"),
    "device": Field("str", "auto", "where to train", choices=("auto", "cpu", "cuda", "mps")),
    "precision": Field("str", "fp32", "fp32, or bf16 / fp16 mixed precision (fp32 master weights)",
                       choices=("fp32", "bf16", "fp16")),
    "optimizer": Field("str", "adam", "optimizer", choices=("adam", "adamw", "sgd", "rmsprop")),
    "lr": Field("float", 2e-3, "peak learning rate", min=0),
    "weight_decay": Field("float", 0.0, "L2 / decoupled weight decay", min=0),
    "momentum": Field(
        "float", 0.9, "momentum", min=0, max=1,
        when=_is("trainer.optimizer", "sgd", "rmsprop"), when_text="trainer.optimizer is sgd or rmsprop",
    ),
    "schedule": Field("str", "constant", "lr schedule", choices=("constant", "step", "cosine", "plateau")),
    "warmup_steps": Field("int", 0, "linear warmup from 0 to lr", min=0),
    "step_size": Field(
        "int", 1000, "steps between lr decays", min=1,
        when=_is("trainer.schedule", "step"), when_text="trainer.schedule is step",
    ),
    "gamma": Field(
        "float", 0.5, "lr decay factor", min=0, max=1,
        when=_is("trainer.schedule", "step", "plateau"), when_text="trainer.schedule is step or plateau",
    ),
    "min_lr": Field(
        "float", 0.0, "final lr of the cosine schedule", min=0,
        when=_is("trainer.schedule", "cosine"), when_text="trainer.schedule is cosine",
    ),
    "plateau_patience": Field(
        "int", 1, "validations without improvement before the lr decays", min=0,
        when=_is("trainer.schedule", "plateau"), when_text="trainer.schedule is plateau",
    ),
    "clip_grad_norm": Field("float", 5.0, "clip the global gradient norm (null: off)", nullable=True, min=0),
    "clip_grad_value": Field("float", None, "clip each gradient element (null: off)", nullable=True, min=0),
    "batch_size": Field("int", 32, "sequences per batch", min=1),
    "epochs": Field("int", 10, "passes over the training data (null: use max_steps)", nullable=True, min=1),
    "max_steps": Field("int", None, "stop after this many optimizer steps", nullable=True, min=1),
    "val_every": Field("int", 500, "validate (and save) every N steps; also at each epoch end", min=1),
    "log_every": Field("int", 50, "log training metrics every N steps", min=1),
    "early_stopping": Field(
        "int", None, "stop after N validations without improvement (null: off)", nullable=True, min=1
    ),
}

RUN_FIELDS: dict[str, Field] = {
    "name": Field("str", None, "run directory name (null: timestamp)", nullable=True),
    "dir": Field("str", "runs", "parent directory of run directories"),
    "overwrite": Field("bool", False, "start afresh even if the run directory has checkpoints"),
}


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
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. trainer.lr=0.003")
    dotted, value = text.split("=", 1)
    parts = dotted.strip().split(".")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    if parts == ["task"]:
        return "task", None, parsed
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: expected section.key=value (sections: {', '.join(SECTIONS)})")
    return parts[0], parts[1], parsed


def closest(name: str, allowed) -> str:
    match = difflib.get_close_matches(str(name), list(allowed), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def load_config(path: str | Path, overrides: list[str] = ()) -> dict:
    """Read, override, validate and resolve a config file into a plain nested dict."""
    raw, source = _read_yaml(Path(path))
    set_keys: dict[tuple, str] = {}  # keys given by --set -> the override text
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
        return f"--set {set_keys[key]}" if key in set_keys else source.where(*key)

    from rnncli.tasks import TASK_NAMES, task_module, task_schema

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
    check = getattr(task_module(task), "check", None)
    if check is not None:
        check(cfg, where)
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
            out[key] = coerce(values[key], field, f"{where(section, key)}: {section}.{key}")
        else:
            out[key] = field.default
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
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label} = {value!r}: expected {_describe(field)}")
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
