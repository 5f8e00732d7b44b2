"""CLI wiring and error text: each command is a thin wrapper over rnncli.api."""

import json
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from rnncli.cli import app

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
