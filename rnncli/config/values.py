"""Checks of config values that one key's type and range cannot express, and the config's file paths:
encodings exist, run names fit a filesystem, the run has an end; relative paths made absolute (from
the config file's directory) and, when asked, every path key naming a readable file.

Used by `rnncli.config` (which passes its `warn_at`, so a warning points at file:line or the override).
"""

from __future__ import annotations

import codecs
import difflib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from rnncli.errors import ConfigError
from rnncli.schema import SECTIONS, Field
from rnncli.tasks import task_schema

PATH_KEYS = ("data.path", "data.train", "data.val", "data.test", "data.source_path", "data.target_path",
             "data.vectors", "model.embeddings")  # each names a file (or a list of files) to read
NAME_MAX = 255  # bytes in one file name on ext4, APFS, NTFS and most other filesystems


def check_values(cfg: dict, where, check_files: bool) -> None:
    """What one key's type and range cannot say: encodings exist, run names fit a filesystem, the run
    has an end, and (with `check_files`) every path key names a readable file."""
    encoding = cfg["data"].get("encoding")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
            b"\n\n\n\n".decode(encoding)  # and it decodes bytes to text (rot13, base64, hex do not)
        except UnicodeError:
            pass  # a real text codec that wants other bytes (e.g. utf-16 without a BOM)
        except (LookupError, ValueError):  # ValueError: a NUL inside the name
            raise ConfigError(f"{where('data', 'encoding')}: data.encoding = {encoding!r} is not a text encoding "
                              f"Python knows (e.g. utf-8, latin-1, cp1252, utf-16)") from None
    _check_run_name(cfg["run"]["name"], where("run", "name"))
    t = cfg["trainer"]
    if t.get("epochs", 1) is None and t.get("max_steps") is None:
        raise ConfigError(f"{where('trainer', 'epochs')}: trainer.epochs and trainer.max_steps are both null: "
                          f"set one of them, or the run would never end")
    if check_files:
        check_paths(cfg, where)


def check_paths(cfg: dict, where) -> None:
    """Every path key names a readable file (a folder where the reader takes one)."""
    for dotted in PATH_KEYS:
        section, key = dotted.split(".")
        value = cfg[section].get(key)
        folder_ok = section == "data" and cfg["data"].get("format") == "per_class"  # a folder of class files
        for path in [value] if isinstance(value, str) else value or []:
            _check_file(path, dotted, where(section, key), folder_ok)


def _check_run_name(name: str | None, where: str) -> None:
    if name is None:
        return
    problem = None
    if not name.strip() or name in (".", ".."):
        problem = "is not a directory name"
    elif "\0" in name or any(ord(c) < 32 for c in name):
        problem = "holds a control character (NUL, newline, ...)"
    elif "/" in name or "\\" in name:
        problem = "holds a path separator; put parent folders in run.dir"
    elif len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        problem = f"is longer than {NAME_MAX} bytes, the most a file name may have"
    if problem:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise ConfigError(f"{where}: run.name = {shown!r} {problem}")


def _check_file(path: str, key: str, where: str, folder_ok: bool = False) -> None:
    p = Path(path)
    if not path.strip():
        raise ConfigError(f"{where}: {key} is empty; expected a file path")
    if "\0" in path:
        raise ConfigError(f"{where}: {key} = {path!r} holds a NUL byte")
    try:
        is_dir = p.is_dir()
        p.stat()
    except FileNotFoundError:
        raise ConfigError(f"{where}: {key} = '{path}': no such file (relative paths start at {Path.cwd()})") from None
    except OSError as e:
        raise ConfigError(f"{where}: {key} = '{path}': {e.strerror or e}") from None
    if is_dir and not folder_ok:
        raise ConfigError(f"{where}: {key} = '{path}' is a directory; expected a file")


def resolve_paths(cfg: dict, base: Path, set_keys: dict, source, check: bool,
                  warn_at: Callable[[str, str], None]) -> None:
    """Make the config's relative file paths absolute (see `rnncli.config.load_config`), in place.

    `source.where(section, key)` says where a key was written; `warn_at(where, message)` warns of a
    path found only by the old rule (from the current directory)."""
    schema = task_schema(cfg["task"])
    for section in SECTIONS:
        for key, field in schema[section].items():
            value = cfg[section].get(key)
            if not field.path or value is None:
                continue
            given = set_keys.get((section, key))
            where = f"override {given}" if given else source.where(section, key)
            origin = Path.cwd() if given else base
            paths = [_one_path(v, origin, f"{section}.{key}", where, check, warn_at) for v in _as_list(value)]
            cfg[section][key] = paths if isinstance(value, list) else paths[0]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _one_path(value: str, origin: Path, name: str, where: str, check: bool, warn_at) -> str:
    written = Path(value).expanduser()
    tried = Path(os.path.abspath(origin / written))
    if tried.exists() or written.is_absolute():
        pass
    elif Path(os.path.abspath(written)).exists():  # the old rule: from the current directory
        old = os.path.abspath(written)
        warn_at(where, f"{name} = {value!r} was found from the current directory ({old}); relative paths are read "
                       f"from the config file's directory ({origin}): write an absolute path or one relative to it")
        return old
    if check and not tried.exists():
        raise ConfigError(f"{where}: {name}: file not found: {tried}{_near(tried)}"
                          + ("" if written.is_absolute() else f" (a relative path is read from {origin})"))
    return str(tried)


def _near(path: Path) -> str:
    """" Did you mean '/the/closest/file'?" among the files beside `path`, or where its folder ends."""
    folder = path.parent
    while not folder.is_dir():
        folder = folder.parent
    if folder != path.parent:
        return f"; {folder} has no folder {path.relative_to(folder).parts[0]!r}"
    match = difflib.get_close_matches(path.name, [p.name for p in folder.iterdir()], n=1, cutoff=0.5)
    return f". Did you mean '{folder / match[0]}'?" if match else ""


def describe_kind(field: Field) -> str:
    """What a field accepts, in words (error messages, `config keys`)."""
    names = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
             "floats": "a list of numbers", "strs": "a string or a non-empty list of strings",
             "int|str": "an integer or a string"}
    text = names[field.kind]
    if field.choices and field.kind == "int|str":  # e.g. val_every: "an integer >= 1 or epoch"
        return describe_kind(replace(field, kind="int", choices=None)) + " or " + " or ".join(field.choices)
    if field.choices:
        text = "one of " + ", ".join(field.choices)
    if field.min is not None and field.max is not None:
        text += f" in [{field.min}, {field.max}]"
    elif field.min is not None:
        text += f" >= {field.min}"
    if field.nullable:
        text += " or null"
    return text
