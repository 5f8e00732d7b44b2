"""A newcomer's resume: the printed command continues the same run step for step; a config given
with --resume must agree with the run; Ctrl-C exits 130; a finished run says so; near-miss commands
get a one-line hint."""

import json
import shlex
import signal

import pytest
from conftest import tiny_config, write_config
from typer.testing import CliRunner

from rnncli.cli import app, resume_command
from rnncli.tasks import char_lm

runner = CliRunner()
SETS = ["--set", "trainer.max_steps=12", "--set", "trainer.epochs=null", "--set", "trainer.lr=0.005"]


def train_losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["step_loss"], r["lr"]) for r in records if r["split"] == "train"]


def interrupt_at(monkeypatch, step: int) -> None:
    original, calls = char_lm.CharLMTask.train_step, {"n": 0}

    def train_step(self, batch, carry):
        calls["n"] += 1
        if calls["n"] == step:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during this step
        return original(self, batch, carry)

    monkeypatch.setattr(char_lm.CharLMTask, "train_step", train_step)


@pytest.fixture
def interrupted(tmp_path, monkeypatch):
    """A run trained with overrides and stopped by Ctrl-C at step 5: (config, run dir, CLI result)."""
    config = write_config(tmp_path, tiny_config(tmp_path, model={"num_layers": 2, "dropout": 0.2}))
    interrupt_at(monkeypatch, 5)
    result = runner.invoke(app, ["train", str(config), *SETS])
    monkeypatch.undo()
    return config, tmp_path / "runs" / "tiny", result


def test_the_printed_resume_command_continues_the_same_run_step_for_step(interrupted, tmp_path):
    config, run_dir, result = interrupted
    assert result.exit_code == 130, result.output
    line = result.stderr.split("Resume with:\n")[1].splitlines()[0].strip()
    assert line == f"rnncli train --resume {run_dir}"
    resumed = runner.invoke(app, shlex.split(line)[1:] + ["-q"])
    assert resumed.exit_code == 0, resumed.output
    straight = runner.invoke(app, ["train", str(config), *SETS, "--set", "run.name=straight", "-q"])
    assert straight.exit_code == 0, straight.output
    a, b = train_losses(tmp_path / "runs" / "straight"), train_losses(run_dir)
    assert [s for s, _, _ in b] == list(range(1, 13))  # the saved max_steps, not the file's epochs
    assert {lr for _, _, lr in b} == {0.005}  # the saved lr, not the file's 0.01
    for (sa, la, _), (sb, lb, _) in zip(a, b):
        assert sa == sb and la == pytest.approx(lb, abs=1e-6)


def test_a_config_given_with_resume_must_agree_with_the_run(interrupted):
    config, run_dir, _ = interrupted
    result = runner.invoke(app, ["train", str(config), "--resume", str(run_dir), "--set", "trainer.max_steps=14"])
    assert result.exit_code == 1, result.output
    error = result.stderr.strip()
    assert error.count("\n") == 0 and "trainer.lr: 0.005 in the run, 0.01 in" in error
    assert "trainer.max_steps" not in error and "trainer.epochs: None in the run, 2 in" in error
    result = runner.invoke(app, ["train", str(config), "--resume", str(run_dir), "-q", *SETS])
    assert result.exit_code == 0, result.output  # the file plus the same overrides is the run
    assert "\n  lr: 0.005\n" in (run_dir / "config.yaml").read_text()


def test_resuming_a_finished_run_says_it_is_finished(interrupted):
    _, run_dir, _ = interrupted
    assert runner.invoke(app, ["train", "--resume", str(run_dir), "-q"]).exit_code == 0
    result = runner.invoke(app, ["train", "--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert f"{run_dir} is already finished (step 12 of 12): nothing to train" in result.stderr


def test_near_misses_get_one_line(interrupted):
    config, run_dir, _ = interrupted
    cases = [
        (["train", str(run_dir)], f"is a directory, not a config file; to continue a run: "
                                  f"rnncli train --resume {run_dir}"),
        (["eval", str(run_dir), "--checkpoint", "bestt"], "--checkpoint must be best or last (got 'bestt')"),
        (["train", str(config), "--set", "trainr.lr=0.1"],
         "override trainr.lr=0.1: unknown section 'trainr'. Did you mean 'trainer'?"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code in (1, 2) and result.stderr.count("\n") == 1, result.output
        assert message in result.stderr, result.stderr


def test_the_resume_line_takes_more_arguments():
    assert resume_command("runs/my run", "--nproc", "2") == "rnncli train --resume 'runs/my run' --nproc 2"
