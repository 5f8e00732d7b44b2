"""compare: one run per cell and seed, mean ± std table, JSON/CSV/PNG, skip and resume."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import write_config
from test_synthetic import synthetic_config
from typer.testing import CliRunner

from rnncli.cli import app
from rnncli.errors import ArgumentError, ConfigError, RunError
from rnncli.tools.compare import compare, summarise

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny(tmp_path, **trainer):
    cfg = synthetic_config(tmp_path, "adding", max_steps=4, val_every=2, **trainer)
    cfg["data"]["T"] = 6
    return str(write_config(tmp_path, cfg))


def test_compare_trains_every_cell_and_seed_then_skips_them(tmp_path):
    config, out = tiny(tmp_path), tmp_path / "cmp"
    seen = []
    result = compare(config, ["rnn", "gru"], seeds=2, out_dir=str(out), on_run=lambda n, s: seen.append((n, s)))
    assert seen == [("rnn-seed1234", "trained"), ("rnn-seed1235", "trained"),
                    ("gru-seed1234", "trained"), ("gru-seed1235", "trained")]
    assert [r["cell"] for r in result["summary"]] == ["rnn", "gru"]
    rnn = result["summary"][0]
    finals = [r["final_val"] for r in result["runs"][:2]]
    assert rnn["runs"] == 2 and rnn["final_val"] == pytest.approx(sum(finals) / 2)
    assert rnn["final_val_std"] == pytest.approx(abs(finals[0] - finals[1]) / 2 ** 0.5)
    assert rnn["parameters"] == 8 * 2 + 8 * 8 + 2 * 8 + 8 + 1  # W_ih, W_hh, biases, head
    assert finals[0] != finals[1]  # the seeds really differ
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["cell"] for r in rows] == ["rnn", "rnn", "gru", "gru"]
    saved = json.loads((out / "compare.json").read_text())
    assert saved["summary"] == result["summary"]
    assert (out / "validation_curves.png").read_bytes()[:8] == PNG_SIGNATURE
    mtime = (out / "runs" / "gru-seed1235" / "best.pt").stat().st_mtime_ns
    seen.clear()
    again = compare(config, ["rnn", "gru"], seeds=2, out_dir=str(out), on_run=lambda n, s: seen.append((n, s)))
    assert {s for _, s in seen} == {"skipped"}
    assert again["summary"] == result["summary"]
    assert (out / "runs" / "gru-seed1235" / "best.pt").stat().st_mtime_ns == mtime


def test_compare_resumes_an_unfinished_run_and_adds_new_cells(tmp_path):
    out = tmp_path / "cmp"
    compare(tiny(tmp_path), ["lstm"], seeds=1, out_dir=str(out))
    (out / "results.json").write_text("{}")  # as if interrupted before its result was recorded
    seen = []
    result = compare(tiny(tmp_path), ["lstm", "cifg_lstm"], seeds=1, out_dir=str(out),
                     on_run=lambda n, s: seen.append((n, s)))
    assert seen == [("lstm-seed1234", "resumed"), ("cifg_lstm-seed1234", "trained")]
    assert [r["steps"] for r in result["runs"]] == [4, 4]


def test_compare_rejects_keys_that_do_not_apply_to_every_cell_before_training(tmp_path):
    cfg = synthetic_config(tmp_path, "adding")
    cfg["model"]["forget_bias"] = 2.0
    with pytest.raises(ConfigError, match="key 'model.forget_bias' has no effect here"):
        compare(str(write_config(tmp_path, cfg)), ["lstm", "gru"], seeds=1, out_dir=str(tmp_path / "c"))
    assert not (tmp_path / "c" / "runs").exists()


def test_compare_names_unknown_cells(tmp_path):
    with pytest.raises(ArgumentError, match="cells has an unknown cell 'lstn'. Did you mean 'lstm'?"):
        compare(tiny(tmp_path), ["lstn"], seeds=1)


def test_summary_of_one_seed_has_zero_std():
    runs = [{"cell": "gru", "metric": "mse", "final_val": 0.5, "best_val": 0.4, "test": None, "chance": 0.17,
             "steps_per_s": 10.0, "parameters": 7}]
    row = summarise(runs)[0]
    assert row["final_val_std"] == 0.0 and row["test"] is None


def test_compare_cli_prints_the_table(tmp_path):
    result = CliRunner().invoke(app, ["compare", tiny(tmp_path), "--cells", "rnn,gru", "--seeds", "1",
                                      "--dir", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 0, result.output
    assert "adding: mse per cell" in result.output and "gru" in result.output and "±" in result.output


def test_compare_refuses_to_skip_runs_trained_from_another_config(tmp_path):
    out = tmp_path / "cmp"
    compare(tiny(tmp_path), ["gru"], seeds=1, out_dir=str(out))
    with pytest.raises(RunError, match=r"gru-seed1234 was trained from a different config "
                                       r"\(trainer.lr: 0.01 -> 0.02\); compare into another directory"):
        compare(tiny(tmp_path), ["gru"], seeds=1, overrides=["trainer.lr=0.02"], out_dir=str(out))


def test_an_interrupted_run_stops_the_compare_untabulated_and_the_same_command_resumes_it(tmp_path, monkeypatch):
    from rnncli.training import run_state, trainer

    class AskedToStop(run_state.StopOnSignal):  # as if Ctrl-C / SIGTERM came during the first step
        def __init__(self):
            super().__init__()
            self.requested = True

    config, out, seen = tiny(tmp_path), tmp_path / "cmp", []
    monkeypatch.setattr(trainer, "StopOnSignal", AskedToStop)
    result = compare(config, ["rnn", "gru"], seeds=1, out_dir=str(out), on_run=lambda n, s: seen.append((n, s)))
    assert seen == [("rnn-seed1234", "interrupted")]  # gru never started
    assert result["interrupted"] == "rnn-seed1234" and "summary" not in result
    assert (out / "runs" / "rnn-seed1234" / "last.pt").exists() and not (out / "runs" / "gru-seed1234").exists()
    assert "rnn-seed1234" not in json.loads((out / "results.json").read_text() if (out / "results.json").exists()
                                            else "{}")
    cli = CliRunner().invoke(app, ["compare", config, "--cells", "rnn,gru", "--seeds", "1", "--dir", str(out), "-q"])
    assert cli.exit_code == 130 and "Run the same command again" in cli.output
    monkeypatch.undo()
    seen.clear()
    result = compare(config, ["rnn", "gru"], seeds=1, out_dir=str(out), on_run=lambda n, s: seen.append((n, s)))
    assert seen == [("rnn-seed1234", "resumed"), ("gru-seed1234", "trained")]
    assert [r["steps"] for r in result["runs"]] == [4, 4]


def test_vary_ablate_none_resumes_into_the_same_directory(tmp_path):
    """'none' resolves to the unablated cell, whose saved config then reads back the same (model.impl)."""
    cfg = synthetic_config(tmp_path, "adding", max_steps=2, val_every=2)
    cfg["data"]["T"], cfg["model"]["cell"] = 6, "peephole_lstm"
    config, out = str(write_config(tmp_path, cfg)), tmp_path / "cmp"
    compare(config, seeds=1, out_dir=str(out), vary="model.ablate=none")
    (out / "results.json").write_text("{}")
    seen = []
    compare(config, seeds=1, out_dir=str(out), vary="model.ablate=none", on_run=lambda n, s: seen.append((n, s)))
    assert seen == [("none-seed1234", "resumed")]
