"""CLI wiring and error text: each command is a thin wrapper over rnncli.api."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import tiny_config, write_config
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.errors import ArgumentError

runner = CliRunner()


def test_config_show_prints_the_resolved_config(make_config):
    path = make_config(model={"cell": "rnn"})
    result = runner.invoke(app, ["config", "show", str(path), "--set", "trainer.lr=5e-4"])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(result.stdout)
    assert cfg["trainer"]["lr"] == 0.0005 and cfg["model"]["nonlinearity"] == "tanh"
    assert cfg["trainer"]["optimizer"] == "adam" and "forget_bias" not in cfg["model"]


def test_config_error_exits_2_with_the_message(make_config):
    path = make_config(model={"cell": "gru", "forget_bias": 1.0})
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2
    assert "error:" in result.stderr and "'model.forget_bias' has no effect here" in result.stderr
    assert "Traceback" not in result.output


def test_train_eval_generate_end_to_end(make_config, tmp_path):
    path = make_config(trainer={"max_steps": 6, "epochs": None})
    result = runner.invoke(app, ["train", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tiny"
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "task_state.json", "metrics.jsonl", "last.pt", "best.pt"}
    (run_dir / "task_state.json").rename(run_dir / "vocab.json")  # a run from before the rename reads the same
    result = runner.invoke(app, ["eval", str(run_dir), "--json", "--split", "test"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["split"] == "test" and metrics["checkpoint_step"] == 6 and metrics["bpc"] > 0
    result = runner.invoke(app, ["generate", str(run_dir), "--prompt", "the ", "--length", "30", "--seed", "1"])
    assert result.exit_code == 0 and result.stdout.startswith("the ") and len(result.stdout) == 4 + 30 + 1
    result = runner.invoke(app, ["generate", str(run_dir), "--prompt", "Q!"])
    assert result.exit_code == 1 and "prompt characters not in the run's vocabulary: '!' 'Q'" in result.stderr
    result = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "run directory not found" in result.stderr


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "rnncli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "generate" in out.stdout


# --------------------------------------------------------------------------- the error boundary
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A char-LM run trained for 2 steps, and its config."""
    tmp = tmp_path_factory.mktemp("cli")
    path = write_config(tmp, tiny_config(tmp, trainer={"max_steps": 2, "epochs": None}))
    assert runner.invoke(app, ["train", str(path), "--quiet"]).exit_code == 0
    return str(tmp / "runs" / "tiny"), str(path)


BAD_VALUES = [  # (arguments with RUN / CONFIG, the one line after "error: ", exit code)
    (["bench", "CONFIG", "--steps", "0"], "--steps must be >= 1 (got 0)", 1),
    (["bench", "CONFIG", "--steps", "abc"], "Invalid value for '--steps'", 2),
    (["generate", "RUN", "--temperature", "0"], "--temperature must be > 0 (got 0.0)", 1),
    (["generate", "RUN", "--top-k", "0"], "--top-k must be >= 1 (got 0)", 1),
    (["generate", "RUN", "--top-p", "1.5"], "--top-p must be in (0, 1] (got 1.5)", 1),
    (["generate", "RUN", "--length", "-3"], "--length must be >= 0 (got -3)", 1),
    (["generate", "RUN", "--beam", "2"], "is a 'char_lm' run; translation (--beam", 1),
    (["eval", "RUN", "--split", "dev"], "--split must be one of val, test, train (got 'dev')", 1),
    (["eval", "RUN", "--checkpoint", "worst"], "--checkpoint must be best or last (got 'worst')", 1),
    (["eval", "RUN", "--beam", "2"], "--beam applies to translation runs (seq2seq)", 1),
    (["predict", "RUN", "some text"], "is a 'char_lm' run; predict works for classify and ner runs", 1),
    (["diagnose", "RUN", "--batch", "0"], "--batch must be >= 1 (got 0)", 1),
    (["compare", "CONFIG", "--seeds", "0"], "--seeds must be >= 1 (got 0)", 1),
    (["compare", "CONFIG", "--cells", "lstn"], "--cells has an unknown cell 'lstn'. Did you mean 'lstm'?", 1),
    (["compare", "CONFIG", "--vary", "ablate"], "--vary = 'ablate': expected section.key=a,b,...", 1),
    (["compare", "CONFIG", "--vary", "model.ablate=none", "--cells", "gru"], "--vary cannot be combined", 1),
    (["train"], "CONFIG is required to start a run", 1),
    (["train", "CONFIG", "--set", "trainer.lr"], "override 'trainer.lr': expected section.key=value", 2),
    (["train", "CONFIG", "--set", "data.split=[0.5, 0.5]"], "expected [train, val, test] fractions", 2),
]


@pytest.mark.parametrize("args,message,code", BAD_VALUES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_option_value_is_one_line_naming_the_flag(tiny_run, args, message, code):
    run, config = tiny_run
    result = runner.invoke(app, [{"RUN": run, "CONFIG": config}.get(a, a) for a in args])
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_the_library_names_arguments_and_the_cli_names_flags(tiny_run):
    run, _ = tiny_run
    with pytest.raises(ArgumentError, match=r"^temperature must be > 0") as error:
        api.generate(run, "the", temperature=0)
    assert error.value.argument == "temperature" and "--" not in str(error.value)


@pytest.mark.parametrize("args,code,message", [
    (["bench", "CONFIG", "--steps", "0"], 1, "error: --steps must be >= 1 (got 0)"),
    (["bench", "CONFIG", "--steps", "abc"], 2, "(see 'rnncli bench --help')"),
])
def test_a_real_process_prints_one_line_and_no_traceback(tiny_run, args, code, message):
    _, config = tiny_run
    out = subprocess.run([sys.executable, "-m", "rnncli", *[config if a == "CONFIG" else a for a in args]],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == code
    assert out.stderr.splitlines() == [out.stderr.strip()] and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_an_interrupted_train_prints_how_to_resume(monkeypatch):
    monkeypatch.setattr(api, "train", lambda *a, **k: {"status": "interrupted", "run_dir": "runs/x"})
    result = runner.invoke(app, ["train", "c.yaml"])
    assert result.exit_code == 130 and "Resume with:\n  rnncli train --resume runs/x\n" in result.stderr
    quiet = runner.invoke(app, ["train", "c.yaml", "-q"])
    assert quiet.exit_code == 130 and "--resume runs/x" not in quiet.stderr
