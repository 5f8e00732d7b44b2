"""A newcomer's configs: relative paths read from the config file's directory, file errors that say
where, `config show` as a block-style template that loads back, `config keys`, other tools'
spellings, a config dict from Python, and a help that answers without importing torch."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import tiny_config, write_config
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.config import load_config
from rnncli.errors import ConfigError

runner = CliRunner()


def relative_config(tmp_path, **trainer):
    """configs/tiny.yaml whose data.path is the relative `corpus.txt` beside it."""
    folder = tmp_path / "configs"
    folder.mkdir()
    cfg = tiny_config(folder, trainer={"max_steps": 3, "epochs": None, **trainer})
    cfg["data"]["path"] = "corpus.txt"
    return write_config(folder, cfg, "tiny.yaml"), folder / "corpus.txt"


def test_a_relative_data_path_is_read_from_the_config_files_directory(tmp_path, monkeypatch):
    config, corpus = relative_config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert not (elsewhere / "corpus.txt").exists()
    summary = api.train(str(config), show_progress=False)
    saved = yaml.safe_load((tmp_path / "configs" / "runs" / "tiny" / "config.yaml").read_text())
    assert summary["status"] == "finished" and saved["data"]["path"] == str(corpus)
    assert load_config(tmp_path / "configs" / "runs" / "tiny" / "config.yaml")["data"]["path"] == str(corpus)


def test_a_missing_file_names_the_key_where_it_was_set_the_path_tried_and_a_near_match(tmp_path, monkeypatch):
    config, corpus = relative_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    text = config.read_text().replace("path: corpus.txt", "path: corpsu.txt")
    config.write_text(text)
    line = text.splitlines().index("  path: corpsu.txt") + 1
    with pytest.raises(ConfigError) as error:
        api.train(str(config), show_progress=False)
    assert str(error.value) == (f"{config}:{line}: data.path: file not found: {corpus.parent / 'corpsu.txt'}. "
                                f"Did you mean '{corpus}'? (a relative path is read from {corpus.parent})")
    with pytest.raises(ConfigError, match=r"^override data.path=nope/x.txt: data.path: file not found: "
                                          rf"{tmp_path / 'nope' / 'x.txt'}; {tmp_path} has no folder 'nope'"):
        api.train(str(config), ["data.path=nope/x.txt"], show_progress=False)


@pytest.mark.parametrize("comments", [False, True])
def test_config_show_is_block_style_and_loads_back_as_the_same_config(tmp_path, comments):
    config = write_config(tmp_path, tiny_config(tmp_path, model={"cell": "gru"}))
    result = runner.invoke(app, ["config", "show", str(config), "--set", "trainer.lr=5e-4",
                                 *(["--comments"] if comments else [])])
    assert result.exit_code == 0, result.output
    assert "trainer:\n  seed: 1234" in result.stdout and "{" not in result.stdout
    assert ("  lr: 0.0005" in result.stdout) and ("# peak learning rate" in result.stdout) == comments
    assert ("(adam | adamw | sgd | rmsprop)" in result.stdout) == comments
    shown = tmp_path / "shown.yaml"
    shown.write_text(result.stdout)
    assert load_config(shown) == load_config(config, ["trainer.lr=5e-4"])


def test_config_keys_lists_every_key_with_type_default_and_help():
    result = runner.invoke(app, ["config", "keys", "char_lm", "--json"])
    assert result.exit_code == 0, result.output
    keys = {row["key"]: row for row in json.loads(result.stdout)}
    assert keys["trainer.lr"]["default"] == 0.002 and keys["trainer.lr"]["help"] == "peak learning rate"
    assert keys["model.nonlinearity"]["applies"] == "model.cell is rnn"
    assert keys["trainer.optimizer"]["allowed"] == "adam | adamw | sgd | rmsprop"
    result = runner.invoke(app, ["config", "keys", "char_l"])
    assert result.exit_code == 1 and "Did you mean 'char_lm'?" in result.stderr
    result = runner.invoke(app, ["config", "keys"])
    assert result.exit_code == 0 and "config keys of task seq2seq" in result.stdout


@pytest.mark.parametrize("written,ours", [("learning_rate", "lr"), ("max_epochs", "epochs")])
def test_other_tools_spellings_get_a_did_you_mean(tmp_path, written, ours):
    config = write_config(tmp_path, tiny_config(tmp_path))
    with pytest.raises(ConfigError, match=f"unknown key '{written}' in section 'trainer'. Did you mean '{ours}'?"):
        load_config(config, [f"trainer.{written}=3"])


def test_the_api_takes_a_config_dict_and_returns_identifier_keys(tmp_path):
    summary = api.train(tiny_config(tmp_path, trainer={"max_steps": 2, "epochs": None}), show_progress=False)
    assert set(summary) == {"status", "steps", "epochs", "best_val_loss", "best_step", "run_dir"}
    assert summary["run_dir"] == str(tmp_path / "runs" / "tiny") and summary["steps"] == 2
    assert "\n  lr: 0.01\n" in api.show_config(tiny_config(tmp_path))


def test_help_answers_without_importing_torch():
    code = ("import sys; from typer.testing import CliRunner; from rnncli.cli import app; "
            "r = CliRunner().invoke(app, ['train', '--help']); print(r.exit_code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", "False"], out.stderr


def test_help_shows_flags_as_flags_examples_and_one_output_option():
    text = runner.invoke(app, ["eval", "--help"], terminal_width=200).stdout
    assert "--json " in text and "<bool>" not in text and "Examples:" in text
    text = runner.invoke(app, ["plot", "--help"], terminal_width=200).stdout
    assert "--output" in text and "--out " not in text
    assert runner.invoke(app, ["--version"]).stdout.startswith("rnncli ")
