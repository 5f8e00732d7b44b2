"""The task contract, for every registered task: the capabilities it declares are the ones it
implements, and every recurrent model key of its config reaches the Recurrent layers it builds."""

from __future__ import annotations

import inspect

import pytest
import torch
import yaml

from rnncli.config import load_config
from rnncli.nn.cells import CELL_NAMES
from rnncli.nn.recurrent import Recurrent
from rnncli.schema import recurrent_model_fields
from rnncli.tasks import TASK_NAMES, task_schema, task_spec
from rnncli.tasks.base import CAPABILITIES, Task

RECURRENT_FIELDS = recurrent_model_fields(bidirectional=True)


# --------------------------------------------------------------------------- declared capabilities
def _members(protocol: type) -> dict[str, object]:
    """name -> the protocol's own function (None for a plain attribute such as `vocab`)."""
    members = {name: None for name in protocol.__dict__.get("__annotations__", {})}
    for name, value in protocol.__dict__.items():
        if not name.startswith("_") and (isinstance(value, staticmethod) or inspect.isfunction(value)):
            members[name] = getattr(protocol, name)
    return members


def _implements(cls: type, protocol: type, exact: bool) -> bool:
    """Every member of `protocol` is on `cls`; with `exact`, methods take the protocol's parameters
    first (a task may add optional ones after them)."""
    fields = getattr(cls, "__dataclass_fields__", {})
    for name, function in _members(protocol).items():
        if function is None:
            if name not in fields:
                return False
            continue
        own = inspect.getattr_static(cls, name, None)
        if own is None:
            return False
        if exact:
            expected = list(inspect.signature(function).parameters)
            got = list(inspect.signature(getattr(cls, name)).parameters)
            assert got[:len(expected)] == expected, f"{cls.__name__}.{name}{got} vs {protocol.__name__}{expected}"
    return True


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_task_implements_the_task_protocol_and_exactly_the_capabilities_it_declares(name):
    spec = task_spec(name)
    assert _implements(spec.task_class, Task, exact=False)
    for capability in CAPABILITIES:
        assert _implements(spec.task_class, capability, exact=True) == spec.can(capability), (
            f"{name}: declares {capability.__name__}: {spec.can(capability)}; implements it: "
            f"{not spec.can(capability)}")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_task_module_provides_schema_check_build_restore(name):
    module = task_spec(name).module
    assert isinstance(module.SCHEMA, dict)
    assert list(inspect.signature(module.check).parameters) == ["cfg", "where"]
    assert list(inspect.signature(module.build).parameters) == ["cfg", "device"]
    assert list(inspect.signature(module.restore).parameters) == ["cfg", "task_state", "model_state", "device"]


# --------------------------------------------------------------------------- keys reach the layers
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> dict:
    """A few lines of data for every task that reads files."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "text.txt").write_text("the cat sat on the mat. the dog sat on the log.\n" * 4)
    (root / "reviews.tsv").write_text("a fine film\tpos\na dull film\tneg\ngreat fun\tpos\nso boring\tneg\n" * 3)
    conll = "Ada B-PER\nLovelace I-PER\nwas O\nin O\nLondon B-LOC\n\nBob B-PER\nran O\n\n"
    (root / "train.conll").write_text(conll * 3)
    (root / "val.conll").write_text(conll)
    (root / "pairs.tsv").write_text("I am happy.\tJe suis content.\nI am cold.\tJ'ai froid.\n"
                                    "He is tall.\tIl est grand.\nWe ran.\tNous avons couru.\n" * 3)
    return {
        "char_lm": {"data": {"path": str(root / "text.txt"), "split": [0.8, 0.1, 0.1]}},
        "classify": {"data": {"path": str(root / "reviews.tsv"), "split": [0.6, 0.2, 0.2]}},
        "ner": {"data": {"train": str(root / "train.conll"), "val": str(root / "val.conll"), "token_column": 0,
                         "tag_column": 1}},
        "seq2seq": {"data": {"path": str(root / "pairs.tsv"), "split": [0.6, 0.2, 0.2]}},
        "adding": {"data": {"T": 6, "steps_per_epoch": 2, "val_size": 4, "test_size": 4}},
        "copy_memory": {"data": {"T": 6, "steps_per_epoch": 2, "val_size": 4, "test_size": 4}},
    }


def _config(tmp_path, tiny_data, task: str, model: dict) -> dict:
    embedding = {} if task in ("adding", "copy_memory") else {"embedding_dim": 4}
    cfg = {"task": task, **tiny_data[task], "model": {"hidden_size": 4, **embedding, **model},
           "trainer": {"batch_size": 2, "device": "cpu"}, "run": {"dir": str(tmp_path)}}
    path = tmp_path / f"{task}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def _other_value(key: str):
    """A value for `key` that is neither its default nor what the tiny configs set."""
    field = RECURRENT_FIELDS[key]
    if field.kind == "strs":  # a list of choices (model.ablate): one of them
        return [field.choices[0]]
    if field.choices:
        return next(c for c in field.choices if c != field.default)
    if field.kind == "bool":
        return not field.default
    if key == "hidden_size":
        return 5  # the tiny configs use 4
    return field.default + (1 if field.kind == "int" else 0.25)


def _cell_taking(key: str, value) -> str:
    """A cell for which `key` applies (the key is then valid in the config)."""
    if key == "cell":
        return value
    field = RECURRENT_FIELDS[key]
    return next(c for c in CELL_NAMES if field.when is None or field.when({"model": {"cell": c}}))


CASES = [(task, key) for task in TASK_NAMES for key in RECURRENT_FIELDS if key in task_schema(task)["model"]]
# a layer that by design does not take a key: (task, layer, key) -> the value it gets instead
NOT_TAKEN = {("seq2seq", "decoder", "bidirectional"): False}  # the decoder reads left to right


def test_every_task_has_the_recurrent_keys():
    assert {task for task, _ in CASES} == set(TASK_NAMES)
    assert all(sum(t == task for t, _ in CASES) >= len(RECURRENT_FIELDS) - 1 for task in TASK_NAMES)


@pytest.mark.parametrize("task,key", CASES)
def test_every_recurrent_model_key_reaches_the_built_layers(task, key, tiny_data, tmp_path, monkeypatch):
    """`model.<key>: <value>` in a task's config -> `Recurrent(<key>=<value>)` for every layer the
    model section configures (the test that catches a task forgetting a key)."""
    value = _other_value(key)
    cfg = _config(tmp_path, tiny_data, task, {"cell": _cell_taking(key, value), key: value})
    arguments = {}
    init, signature = Recurrent.__init__, inspect.signature(Recurrent.__init__)

    def spy(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments[id(self)] = bound.arguments
        init(self, *args, **kwargs)

    monkeypatch.setattr(Recurrent, "__init__", spy)
    model = task_spec(task).module.build(cfg, torch.device("cpu")).model
    layers = {name: arguments[id(m)] for name, m in model.named_modules()
              if isinstance(m, Recurrent) and not name.startswith("chars.")}  # ner's char BiLSTM is fixed
    assert layers
    for name, args in layers.items():
        expected = NOT_TAKEN.get((task, name, key), value)
        assert args[key] == expected, f"{task}: model.{key} = {value!r} but layer '{name}' got {args[key]!r}"
