"""The synthetic long-dependency tasks: generators, baselines, determinism, training, errors."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import write_config

from rnncli import api
from rnncli.config import load_config
from rnncli.errors import ArgumentError, ConfigError, DataError
from rnncli.tasks import adding, copy_memory
from rnncli.tasks.synthetic import generator


def synthetic_config(tmp_path, task: str, cell: str = "lstm", **trainer) -> dict:
    return {
        "task": task,
        "data": {"T": 8, "steps_per_epoch": 4, "val_size": 16, "test_size": 8},
        "model": {"cell": cell, "hidden_size": 8},
        "trainer": {"batch_size": 4, "lr": 0.01, "epochs": None, "max_steps": 6, "val_every": 3,
                    "log_every": 1, "device": "cpu", **trainer},
        "run": {"dir": str(tmp_path / "runs"), "name": f"{task}-{cell}"},
    }


# --------------------------------------------------------------------------- adding
def test_adding_examples_have_one_marker_in_each_half_and_the_right_sum():
    x, y = adding.make_examples(500, 20, generator(1, 0))
    assert x.shape == (500, 20, 2) and y.shape == (500,)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    assert (markers[:, :10].sum(1) == 1).all() and (markers[:, 10:].sum(1) == 1).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(y, (values * markers).sum(1))


def test_adding_chance_baseline_from_data_equals_one_sixth():
    _, y = adding.make_examples(200_000, 10, generator(3, 0))
    assert adding.chance_mse(y) == pytest.approx(1 / 6, abs=2e-3)
    assert float(y.mean()) == pytest.approx(1.0, abs=5e-3)  # predicting 1 is predicting the mean


# --------------------------------------------------------------------------- copy memory
def test_copy_examples_follow_the_arjovsky_layout():
    T = 12
    x, y = copy_memory.make_examples(64, T, generator(1, 0))
    assert x.shape == y.shape == (64, T + 20)
    symbols = x[:, :10]
    assert ((symbols >= 1) & (symbols <= 8)).all()
    assert (x[:, 10:T + 9] == copy_memory.BLANK).all()  # T - 1 blanks
    assert (x[:, T + 9] == copy_memory.DELIMITER).all()
    assert (x[:, T + 10:] == copy_memory.BLANK).all()
    assert (y[:, :T + 10] == copy_memory.BLANK).all()
    assert torch.equal(y[:, T + 10:], symbols)


@pytest.mark.parametrize("T", [5, 100])
def test_copy_chance_baseline_from_data_equals_the_formula(T):
    """The best memoryless predictor (per-position target frequencies) scores 10 ln 8 / (T + 20)."""
    _, y = copy_memory.make_examples(20_000, T, generator(2, 0))
    counts = torch.stack([(y == k).float().mean(0) for k in range(10)], dim=-1)  # (L, 10) p(class | t)
    entropy = -(counts * counts.clamp_min(1e-12).log()).sum(-1).mean()  # mean over positions
    assert float(entropy) == pytest.approx(copy_memory.chance_loss(T), rel=2e-3)
    assert copy_memory.chance_loss(T) == pytest.approx(10 * math.log(8) / (T + 20))


# --------------------------------------------------------------------------- batches and training
@pytest.mark.parametrize("task", ["adding", "copy_memory"])
def test_batches_are_deterministic_per_epoch_and_index_and_differ_between_them(tmp_path, task):
    cfg = load_config(write_config(tmp_path, synthetic_config(tmp_path, task)))
    module = adding if task == "adding" else copy_memory
    a, b = module.build(cfg, torch.device("cpu")), module.build(cfg, torch.device("cpu"))
    assert len(a.train_batches(0)) == 4
    assert torch.equal(a.train_batches(1)[2][0], b.train_batches(1)[2][0])
    assert not torch.equal(a.train_batches(0)[2][0], a.train_batches(1)[2][0])
    assert not torch.equal(a.train_batches(0)[0][0], a.train_batches(0)[1][0])
    assert not torch.equal(a.splits["val"][0][:4], a.splits["test"][0][:4])
    with pytest.raises(IndexError):
        a.train_batches(0)[4]


@pytest.mark.parametrize("task,chance_key", [("adding", "chance_mse"), ("copy_memory", "chance_loss")])
def test_training_logs_chance_baselines_and_evaluates_test(tmp_path, task, chance_key):
    path = write_config(tmp_path, synthetic_config(tmp_path, task, cell="peephole_lstm"))
    summary = api.train(str(path), show_progress=False)
    assert summary["steps"] == 6
    metrics = api.evaluate(summary["run_dir"], "test")
    assert metrics["examples"] == 8 and chance_key in metrics
    if task == "copy_memory":
        assert metrics[chance_key] == pytest.approx(10 * math.log(8) / 28)
        assert 0 <= metrics["copy_accuracy"] <= 1
    else:
        assert metrics["mse_vs_chance"] == pytest.approx(metrics["mse"] / metrics["chance_mse"])


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    cfg = synthetic_config(tmp_path, "adding", max_steps=6)
    full = api.train(str(write_config(tmp_path, cfg)), show_progress=False)
    cfg["trainer"]["max_steps"], cfg["run"]["name"] = 3, "half"
    half = api.train(str(write_config(tmp_path, cfg, "half.yaml")), show_progress=False)
    resumed = api.train(None, ["trainer.max_steps=6"], resume=half["run_dir"], show_progress=False)
    assert resumed["best_val_mse"] == pytest.approx(full["best_val_mse"], rel=1e-6)


@pytest.mark.parametrize("module", [adding, copy_memory])
def test_synthetic_tasks_cannot_score_a_file(tmp_path, module):
    cfg = load_config(write_config(tmp_path, synthetic_config(tmp_path, module.__name__.split(".")[-1])))
    task = module.build(cfg, torch.device("cpu"))
    with pytest.raises(ArgumentError, match="data_file cannot be used: the .* task generates its data"):
        task.load_data("anything.txt")


def test_data_keys_are_validated(tmp_path):
    cfg = synthetic_config(tmp_path, "adding")
    cfg["data"]["T"] = 1
    with pytest.raises(ConfigError, match=r"data\.T = 1: expected an integer in \[2, 1048576\]"):
        load_config(write_config(tmp_path, cfg))
    cfg["data"] = {"path": "x.txt"}
    with pytest.raises(ConfigError, match="unknown key 'path' in section 'data'"):
        load_config(write_config(tmp_path, cfg))


def test_evaluate_names_the_missing_split(tmp_path):
    cfg = load_config(write_config(tmp_path, synthetic_config(tmp_path, "adding")))
    task = adding.build(cfg, torch.device("cpu"))
    with pytest.raises(DataError, match="the adding task has no 'train' split \\(it has: val, test\\)"):
        task.evaluate("train")
