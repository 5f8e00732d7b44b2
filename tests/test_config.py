"""Strict config validation: every error names the key, the file:line and what is allowed."""

import warnings
from pathlib import Path

import pytest
import yaml

from rnncli.config import load_config
from rnncli.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


BASE = """task: char_lm
data:
  path: corpus.txt
model:
  cell: {cell}
  hidden_size: 32
trainer:
  lr: 1e-3
"""


def test_defaults_are_filled_and_1e3_is_a_float(tmp_path):
    cfg = load_config(write(tmp_path, BASE.format(cell="lstm")))
    assert cfg["trainer"]["lr"] == 0.001 and isinstance(cfg["trainer"]["lr"], float)
    assert cfg["model"]["hidden_size"] == 32
    assert cfg["model"]["forget_bias"] == 1.0 and cfg["trainer"]["bptt"] == 100
    assert cfg["run"]["dir"] == "runs"
    # keys that do not apply are left out of the resolved config
    assert "nonlinearity" not in cfg["model"] and "momentum" not in cfg["trainer"]


def test_unknown_key_names_key_section_file_line_allowed_and_closest(tmp_path):
    path = write(tmp_path, BASE.format(cell="lstm").replace("  hidden_size: 32", "  hiden_size: 32"))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert f"{path}:6" in msg
    assert "'hiden_size'" in msg and "section 'model'" in msg
    assert "Did you mean 'hidden_size'?" in msg
    assert "Allowed keys:" in msg and "num_layers" in msg


def test_unknown_section_and_unknown_task(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml:9: unknown section 'trainr'. Did you mean 'trainer'"):
        load_config(write(tmp_path, BASE.format(cell="lstm") + "trainr:\n  lr: 1\n"))
    with pytest.raises(ConfigError, match=r"c.yaml:1: task is 'char_l'. Did you mean 'char_lm'\? Allowed: char_lm"):
        load_config(write(tmp_path, BASE.format(cell="lstm").replace("char_lm", "char_l")))


@pytest.mark.parametrize(
    "line, expected",
    [
        ("  hidden_size: big", r"c.yaml:6: model.hidden_size = 'big': expected an integer in \[1, 32768\]"),
        ("  hidden_size: 0", r"model.hidden_size = 0: expected an integer in \[1, 32768\]"),
        ("  hidden_size: 2.5", r"model.hidden_size = 2.5: expected an integer"),
        ("  hidden_size: true", r"model.hidden_size = True: expected an integer"),
        ("  cell: lstn", r"c.yaml:6: model.cell = 'lstn' is not allowed. Did you mean 'lstm'\? Allowed: rnn, lstm, gru"),
        ("  dropout: lots", r"model.dropout = 'lots': expected a number in \[0, 0.99\]"),
    ],
)
def test_wrong_type_or_value_names_key_value_and_allowed(tmp_path, line, expected):
    base = BASE.format(cell="lstm")
    if line.startswith("  cell:"):  # one cell key (a second would be a duplicate key), still on line 6
        base = base.replace("  cell: lstm", "  num_layers: 1")
    text = base.replace("  hidden_size: 32", line)
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    "cell, key, value, applies",
    [
        ("gru", "forget_bias", "1.0", "model.cell is one of lstm, peephole_lstm, cifg_lstm"),
        ("rnn", "forget_bias", "1.0", "model.cell is one of lstm"),
        ("lstm", "nonlinearity", "relu", "model.cell is rnn"),
        ("peephole_lstm", "nonlinearity", "tanh", "model.cell is rnn"),
    ],
)
def test_keys_without_effect_for_the_cell_are_errors(tmp_path, cell, key, value, applies):
    text = BASE.format(cell=cell) + f"  {key}: {value}\n"
    text = text.replace("trainer:\n  lr: 1e-3\n", "") + "trainer:\n  lr: 1e-3\n"
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert f"'model.{key}' has no effect here" in str(e.value) and applies in str(e.value)


def test_trainer_keys_without_effect_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="'trainer.momentum' has no effect here: it applies only when trainer.optimizer is sgd or rmsprop"):
        load_config(write(tmp_path, BASE.format(cell="lstm") + "  momentum: 0.9\n"))
    cfg = load_config(write(tmp_path, BASE.format(cell="lstm") + "  optimizer: sgd\n  momentum: 0.5\n"))
    assert cfg["trainer"]["momentum"] == 0.5


def test_set_overrides_parse_yaml_scalars_and_validate(tmp_path):
    path = write(tmp_path, BASE.format(cell="rnn"))
    cfg = load_config(path, ["trainer.lr=3e-3", "model.nonlinearity=relu", "run.name=x", "trainer.max_steps=7"])
    assert cfg["trainer"]["lr"] == 0.003 and cfg["model"]["nonlinearity"] == "relu"
    assert cfg["run"]["name"] == "x" and cfg["trainer"]["max_steps"] == 7
    with pytest.raises(ConfigError, match=r"override trainer.lrr=1: unknown key 'lrr' in section 'trainer'. Did you mean 'lr'"):
        load_config(path, ["trainer.lrr=1"])
    with pytest.raises(ConfigError, match=r"override model.nonlinearity=sigmoid: model.nonlinearity = 'sigmoid' is not allowed"):
        load_config(path, ["model.nonlinearity=sigmoid"])
    with pytest.raises(ConfigError, match=r"expected section.key=value"):
        load_config(path, ["trainer.lr"])
    with pytest.raises(ConfigError, match=r"'model.nonlinearity' has no effect here"):
        load_config(path, ["model.cell=gru", "model.nonlinearity=tanh"])


def test_data_section_cross_checks(tmp_path):
    text = BASE.format(cell="lstm").replace("  path: corpus.txt", "  path: a.txt\n  train: b.txt")
    with pytest.raises(ConfigError, match="set either data.path"):
        load_config(write(tmp_path, text))
    text = BASE.format(cell="lstm").replace("  path: corpus.txt", "  path: a.txt\n  split: [0.5, 0.2]")
    with pytest.raises(ConfigError, match=r"c.yaml:4: data.split = \[0.5, 0.2\]: expected \[train, val, test\]"):
        load_config(write(tmp_path, text))


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: invalid YAML"):
        load_config(write(tmp_path, "task: char_lm\nmodel:\n  cell: [lstm\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO) for p in (REPO / "configs").rglob("*.yaml")), ids=str)
def test_every_shipped_config_loads(path):
    cfg = load_config(REPO / path)
    assert cfg["task"] and cfg["model"]["cell"]
    assert yaml.safe_load((REPO / path).read_text())  # not empty


SHARED = REPO.parent / "shared" / "data"


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("path", sorted(p.relative_to(REPO) for p in (REPO / "configs").rglob("*.yaml")), ids=str)
def test_shipped_config_paths_resolve_from_the_configs_folder(path, tmp_path, monkeypatch):
    """From any directory, with no fallback to the current one (which would warn)."""
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(REPO / path, check_files=True)
