"""model.impl, trainer.precision, the fast-path report at train start, and `rnncli bench`."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.config import load_config
from rnncli.errors import ArgumentError, ConfigError
from rnncli.nn.recurrent import impls_for
from rnncli.tools.bench import bench
from rnncli.training import precision
from rnncli.training.step import TrainingStep

runner = CliRunner()
NATIVE_BF16, _ = precision.hardware_support("bf16", torch.device("cpu"))


# --------------------------------------------------------------------------- model.impl
@pytest.mark.parametrize("cell", ["peephole_lstm", "cifg_lstm"])
def test_impl_is_a_key_of_the_custom_cells(make_config, cell):
    cfg = load_config(make_config(model={"cell": cell, "impl": "autograd"}))
    assert cfg["model"]["impl"] == "autograd"
    assert load_config(make_config(model={"cell": cell}))["model"]["impl"] == "auto"


def test_impl_on_a_standard_cell_says_when_it_applies(make_config):
    with pytest.raises(ConfigError, match=r"model\.impl.*peephole_lstm, cifg_lstm"):
        load_config(make_config(model={"cell": "lstm", "impl": "autograd"}))


def test_bad_impl_value_lists_the_choices(make_config):
    with pytest.raises(ConfigError, match=r"bptt.*autograd"):
        load_config(make_config(model={"cell": "cifg_lstm", "impl": "jit"}))


def test_both_impls_train_to_the_same_weights(make_config, tmp_path):
    """Same seed, same data: the hand-written and the autograd path give the same run (float32),
    and each run really took its own path (read from the trained model, not assumed from the key)."""
    losses, paths = {}, {}
    for impl in impls_for("peephole_lstm"):  # auto, bptt, autograd
        path = make_config(model={"cell": "peephole_lstm", "impl": impl}, run={"name": impl},
                           trainer={"epochs": 1})
        api.train(str(path), show_progress=False)
        records = [json.loads(line) for line in open(tmp_path / "runs" / impl / "metrics.jsonl")]
        losses[impl] = [r["loss"] for r in records if r["split"] == "train"]
        _, task, _ = api.load_run(str(tmp_path / "runs" / impl), device="cpu")
        paths[impl] = task.model.rnn.path("cpu")
    assert len(set(paths.values())) == 2 and "autograd" in paths.values(), paths  # two different paths ran
    first, *others = losses.values()
    assert len(first) > 3 and others
    for other in others:
        assert other == pytest.approx(first, rel=1e-4)


# --------------------------------------------------------------------------- precision
@pytest.mark.skipif(NATIVE_BF16, reason="this CPU has native bf16")
def test_bf16_on_a_cpu_without_it_is_a_clear_error(make_config):
    path = make_config(trainer={"precision": "bf16"})
    with pytest.raises(ConfigError) as err:
        api.train(str(path), show_progress=False)
    message = str(err.value)
    assert "trainer.precision" in message and str(path) in message
    assert "AVX-512 BF16 or AMX" in message and "fp32" in message


@pytest.mark.skipif(precision.hardware_support("fp16", torch.device("cpu"))[0], reason="native fp16 CPU")
def test_fp16_on_a_cpu_without_it_is_a_clear_error(make_config):
    with pytest.raises(ConfigError, match=r"trainer\.precision: fp16 .*AVX-512 FP16"):
        api.train(str(make_config(trainer={"precision": "fp16"})), show_progress=False)


def test_bad_precision_lists_the_choices(make_config):
    with pytest.raises(ConfigError, match=r"fp32, bf16, fp16"):
        load_config(make_config(trainer={"precision": "fp8"}))


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm", "cifg_lstm"])
def test_bf16_training_runs_the_hand_written_path_and_learns(make_config, tmp_path, monkeypatch, cell):
    """With bf16 allowed (emulated on this CPU; tiny model), the loss falls like fp32's."""
    monkeypatch.setattr(precision, "hardware_support", lambda p, d: (True, "test"))
    finals = {}
    for prec in ("fp32", "bf16"):
        path = make_config(model={"cell": cell}, trainer={"precision": prec, "epochs": 3}, run={"name": prec})
        api.train(str(path), show_progress=False)
        records = [json.loads(line) for line in open(tmp_path / "runs" / prec / "metrics.jsonl")]
        train = [r["loss"] for r in records if r["split"] == "train"]
        assert train[-1] < 0.7 * train[0]
        finals[prec] = train[-1]
    assert math.isclose(finals["bf16"], finals["fp32"], rel_tol=0.1)


# --------------------------------------------------------------------------- report and bench
def test_train_reports_the_path_of_each_stack_and_a_measured_speed(make_config, capsys):
    api.train(str(make_config(model={"cell": "cifg_lstm", "num_layers": 2})), show_progress=True)
    err = capsys.readouterr().err
    assert "fast path: rnn: 2 layers: hand-written BPTT (rnncli.nn.bptt) (custom cell: no torch kernel; " in err
    assert "fast path: measured" in err and "tokens/s over steps 2-6" in err


def test_train_report_for_a_standard_cell_names_the_torch_kernel(make_config, capsys):
    api.train(str(make_config(model={"cell": "gru"})), show_progress=True)
    assert "torch kernel (nn.GRU)" in capsys.readouterr().err


def test_bench_measures_and_writes_no_run(make_config, tmp_path):
    result = bench(str(make_config(model={"cell": "peephole_lstm"})), steps=2, generate_chars=20)
    assert result["train_tokens_per_s"] > 0 and result["eval_tokens_per_s"] > 0
    assert result["generate_chars_per_s"] > 0
    (line,) = result["paths"]
    assert line.startswith("rnn: 1 layer: hand-written BPTT (rnncli.nn.bptt) (custom cell: no torch kernel; ")
    assert line.endswith("fused C++ steps)") or line.endswith("eager steps (no C++ kernels))")
    assert not (tmp_path / "runs").exists()


def test_bench_cli_prints_the_table(make_config):
    result = runner.invoke(app, ["bench", str(make_config(model={"cell": "lstm"})), "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert "torch kernel (nn.LSTM)" in result.output
    for word in ("train", "eval", "generate", "tokens/s", "chars/s"):
        assert word in result.output


def test_bench_rejects_zero_steps(make_config):
    with pytest.raises(ArgumentError, match=r"^steps must be >= 1 \(got 0\)$"):
        bench(str(make_config()), steps=0)


def test_bench_times_the_trainers_own_step(make_config, monkeypatch):
    """A benchmarked step is a trained step: bench calls TrainingStep (fp16 scaler, value clipping)."""
    calls = []
    original = TrainingStep.__call__
    monkeypatch.setattr(TrainingStep, "__call__", lambda self, *a: calls.append(self.t) or original(self, *a))
    bench(str(make_config(trainer={"clip_grad_value": 0.5})), steps=2, warmup=1, generate_chars=1)
    assert len(calls) == 3 and all(t["clip_grad_value"] == 0.5 for t in calls)
