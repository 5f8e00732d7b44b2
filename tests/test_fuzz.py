"""Property-based fuzzing (hypothesis) of what a user hands rnncli: config files for every task,
the inputs of every reader, and checkpoint dicts.

The property: the input is accepted, or the error is an rnncli error (one line for the CLI) that
names the key or the file -- never another exception type, never a silently different reading.
Deterministic (`derandomize`, no example database) and bounded, so the suite stays fast; what
hypothesis shrank failures to is kept in tests/test_hardening.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_TEXT, tiny_config, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnncli import api
from rnncli.config import load_config
from rnncli.data import parallel, scheme_check, tabular
from rnncli.data.conll import read_conll
from rnncli.errors import DataError, RnncliError
from rnncli.schema import SECTIONS
from rnncli.tasks import TASK_NAMES, task_schema

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=60,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --------------------------------------------------------------------------- configs
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, 1, -1, 2**31, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e300, -1e300, 1e-300, 0.5]),
    st.text(max_size=12), st.sampled_from(["", "\0", "lstm", "utf-8", "rot13", "a/b", "..", "x" * 300]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))


def _keys(task: str) -> dict[str, list[str]]:
    schema = task_schema(task)
    return {section: list(schema[section]) for section in SECTIONS}


@st.composite
def configs(draw, task: str):
    """A config dict of `task`: a handful of its keys (and a few unknown ones) set to anything."""
    keys = _keys(task)
    cfg: dict = {"task": draw(st.sampled_from([task, task, task, "", None, task.upper()]))}
    for _ in range(draw(st.integers(0, 6))):
        section = draw(st.sampled_from([*SECTIONS, "trainr"]))
        key = draw(st.sampled_from(keys.get(section, ["x"]) + ["unknown_key"]))
        cfg.setdefault(section, {})[key] = draw(VALUES)
    if draw(st.booleans()):
        cfg[draw(st.sampled_from(SECTIONS))] = draw(SCALARS)  # a section that is not a mapping
    return cfg


def _mangle(text: str, draw) -> bytes:
    """Text-level damage: a duplicated line, stray bytes, a cut."""
    lines = text.splitlines(keepends=True)
    choice = draw(st.integers(0, 4))
    if choice == 1 and lines:
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
    data = "".join(lines).encode()
    if choice == 2:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=6)) + data[at:]
    if choice == 3:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _names_the_source(error: Exception, path: Path) -> bool:
    text = str(error)
    return str(path) in text or "override" in text or "config file" in text


@pytest.mark.parametrize("task", TASK_NAMES)
@FUZZ
@given(data=st.data())
def test_generated_configs_load_or_name_the_key(tmp_path, task, data):
    cfg = data.draw(configs(task))
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(_mangle(yaml.safe_dump(cfg, allow_unicode=True), data.draw))
    overrides = data.draw(st.lists(st.sampled_from(["trainer.lr=1e400", "trainer.seed=", "model.cell=lstm",
                                                    "trainer.lr 0.1", "task=ner", "x.y.z=1", "run.name=\0"]),
                                   max_size=2))
    try:
        resolved = load_config(path, overrides, check_files=True)
    except RnncliError as e:
        assert "\n" not in str(e) and _names_the_source(e, path), str(e)
        return
    assert resolved["task"] in TASK_NAMES  # accepted: a complete config


# --------------------------------------------------------------------------- readers
PIECES = st.sampled_from(["a", "b c", "\t", "\r", "\n", "\r\n", ",", '"', " ", "B-PER", "I-PER", "E-PER",
                          "S-LOC", "O", "-DOCSTART-", "\ufeff", "\u0085", "é", "\x00"])
LINES = st.lists(PIECES, max_size=40).map("".join)
ENCODED = st.one_of(LINES.map(lambda s: s.encode("utf-8")), LINES.map(lambda s: s.encode("utf-16")),
                    st.binary(max_size=40))


def _readable(read, path: Path):
    try:
        return read()
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e), str(e)
        return None


@FUZZ
@given(src=ENCODED, tgt=ENCODED)
def test_aligned_files_keep_their_lines(tmp_path, src, tgt):
    (tmp_path / "s.txt").write_bytes(src)
    (tmp_path / "t.txt").write_bytes(tgt)
    pairs = _readable(lambda: parallel.read_aligned(str(tmp_path / "s.txt"), str(tmp_path / "t.txt")), tmp_path)
    if pairs is not None:  # a lone CR never starts a line: sources are the file's \n-lines
        lines = src.decode("utf-8").split("\n")
        assert all(s in [line.removesuffix("\r") for line in lines] for s, _ in pairs)


@FUZZ
@given(data=ENCODED, quoting=st.booleans(), header=st.booleans())
def test_tables_read_or_name_file_and_line(tmp_path, data, quoting, header):
    path = tmp_path / "t.tsv"
    path.write_bytes(data)
    fmt = tabular.TableFormat(quoting=quoting, header=header, text_column=0, label_column=1)
    examples = _readable(lambda: tabular.read_table(path, fmt), path)
    for example in examples or []:
        assert example.text and example.label and "\t" not in example.label


@FUZZ
@given(data=ENCODED)
def test_conll_files_read_or_name_file_and_line(tmp_path, data):
    path = tmp_path / "c.conll"
    path.write_bytes(data)
    sentences = _readable(lambda: read_conll(path), path)
    if sentences:
        _readable(lambda: scheme_check.detect(sentences, str(path)), path)


# --------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz-run")
    (tmp / "corpus.txt").write_text(TINY_TEXT)
    api.train(str(write_config(tmp, tiny_config(tmp, model={"cell": "gru"}, trainer={"max_steps": 2, "epochs": None}))),
              show_progress=False)
    return tmp / "runs" / "tiny"


JUNK = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=5), st.just({}), st.just([]),
                 st.just(torch.zeros(3)), st.just({"task": "char_lm"}))


@st.composite
def damaged(draw, ckpt: dict):
    """A real checkpoint with parts dropped or replaced, at the top level or one level down."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ckpt.items()}
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(out)))
        if isinstance(out[key], dict) and out[key] and draw(st.booleans()):
            inner = draw(st.sampled_from(sorted(out[key])))
            out[key][inner] = draw(JUNK)
        elif draw(st.booleans()):
            del out[key]
        else:
            out[key] = draw(JUNK)
    return out


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_damaged_checkpoints_are_one_run_error(trained, tmp_path_factory, data):
    run_dir = tmp_path_factory.mktemp("ckpt") / "run"
    shutil.copytree(trained, run_dir)
    ckpt = torch.load(trained / "best.pt", weights_only=True)
    torch.save(data.draw(damaged(ckpt)), run_dir / "best.pt")
    try:
        api.evaluate(str(run_dir))
    except RnncliError as e:  # mostly RunError naming best.pt; a damaged data path is the reader's DataError
        assert "\n" not in str(e) and (isinstance(e, DataError) or "best.pt" in str(e)), str(e)


# --------------------------------------------------------------------------- runs that start
@settings(FUZZ, max_examples=12)
@given(batch_size=st.integers(1, 400), bptt=st.integers(1, 5000), hidden=st.integers(1, 24),
       layers=st.integers(1, 3), cell=st.sampled_from(["rnn", "gru"]), text_length=st.integers(0, 400))
def test_small_char_lm_runs_start_or_name_the_problem(tmp_path_factory, batch_size, bptt, hidden, layers, cell,
                                                        text_length):
    tmp = tmp_path_factory.mktemp("run")
    (tmp / "text.txt").write_text(TINY_TEXT[:text_length])
    cfg = tiny_config(tmp, data={"path": str(tmp / "text.txt")},
                      model={"cell": cell, "hidden_size": hidden, "num_layers": layers, "embedding_dim": 4},
                      trainer={"batch_size": batch_size, "bptt": bptt, "max_steps": 1, "epochs": None})
    try:
        summary = api.train(str(write_config(tmp, cfg)), show_progress=False)
    except RnncliError as e:
        assert "\n" not in str(e), str(e)
        return
    assert summary["steps"] == 1 and (tmp / "runs" / "tiny" / "last.pt").exists()
