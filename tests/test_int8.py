"""int8 inference: quantized layers stay close to fp32 for every cell, the int8 kernels are the
ones that run (module types, Int8Weight in the stepper), and --int8 reaches generate/predict/eval."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rnncli.nn.cells import CELL_NAMES, cell_class
from rnncli.nn.int8 import Int8Weight
from rnncli.nn.onednn import FixedWeight
from rnncli.nn.quantize import DYNAMIC_KERNELS, QuantizedRecurrent, int8_modules, quantize
from rnncli.nn.recurrent import Recurrent
from rnncli.nn.stepper import Stepper


def test_int8_weight_is_close_to_the_fp32_matmul():
    torch.manual_seed(0)
    w, b, x = torch.randn(48, 32) * 0.2, torch.randn(48), torch.rand(5, 32) * 2 - 1
    q = Int8Weight(w)
    exact = x @ w.t() + b
    assert torch.allclose(q(x, b), exact, atol=0.03)
    assert not torch.equal(q(x, b), exact)  # it did quantize
    scales = w.abs().amax(1, keepdim=True) / 127  # per-row symmetric
    assert torch.allclose(q.dequantized(), torch.round(w / scales) * scales, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_quantized_recurrent_matches_fp32(cell, bidirectional):
    torch.manual_seed(0)
    holder = nn.Module()
    holder.rnn = Recurrent(cell, 8, 16, num_layers=2, bidirectional=bidirectional).eval()
    q = quantize(holder)
    if not getattr(cell_class(cell), "int8", True):  # the cell opts out: the layer stays fp32, unchanged
        x = torch.randn(3, 7, 8)
        assert type(q.rnn) is Recurrent and torch.equal(q.rnn(x)[0], holder.rnn(x)[0])
        return
    assert type(q.rnn) is QuantizedRecurrent and type(holder.rnn) is Recurrent  # a copy; the model is left
    if cell_class(cell).torch_kernel in DYNAMIC_KERNELS:  # torch's dynamic-quantized LSTM / GRU
        assert type(q.rnn.kernel).__module__.startswith("torch.ao.nn.quantized.dynamic")
    else:  # our loop, on int8 weights
        assert q.rnn.kernel is None
        assert all(type(w) is Int8Weight for w, _ in q.rnn._projections)
    x, lengths = torch.randn(3, 7, 8) * 0.5, torch.tensor([7, 4, 2])
    with torch.no_grad():
        ref, ref_state = holder.rnn(x, lengths)
        out, state = q.rnn(x, lengths)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=0.06)
    assert (out[2, 2:] == 0).all() and (out[1, 4:] == 0).all()  # padding stays zero
    h, ref_h = (state[0], ref_state[0]) if isinstance(state, tuple) else (state, ref_state)
    assert torch.allclose(h, ref_h, atol=0.06)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_int8_stepper_steps_close_to_fp32(cell):
    torch.manual_seed(0)
    emb, rnn = nn.Embedding(10, 8), Recurrent(cell, 8, 16, num_layers=2).eval()
    fp32, int8 = Stepper(rnn, emb), Stepper(QuantizedRecurrent(rnn), emb)
    assert int8.int8 and not fp32.int8
    def matmul_weights(stepper):  # cells that keep b_hh apart hold weight_hh, the others one [W_ih | W_hh];
        if cell_class(cell).sequence_kind == "scan":  # scan cells only W_ih (layer 0's is a table lookup)
            return [layer.weight_ih for layer in stepper.layers[1:]]
        return [layer.weight if cell_class(cell).folds_b_hh else layer.weight_hh for layer in stepper.layers]

    assert all(type(w) is Int8Weight for w in matmul_weights(int8))
    assert all(type(w) is FixedWeight for w in matmul_weights(fp32))
    s, s8 = fp32.initial_state(), int8.initial_state()
    for token in (3, 1, 4, 1, 5):
        h, s = fp32.step(torch.tensor([token]), s)
        h8, s8 = int8.step(torch.tensor([token]), s8)
    assert torch.allclose(h, h8, atol=0.05)


def test_quantize_swaps_every_large_linear_and_keeps_small_ones_fp32():
    from rnncli.models.char_lm import CharLM
    from rnncli.nn.quantize import SMALL_LINEAR

    model = CharLM(vocab_size=12, embedding_dim=4, cell="lstm", hidden_size=8, num_layers=1)
    counts = int8_modules(quantize(model))
    assert counts["QuantizedRecurrent"] == 1 and counts["LSTM"] == 1 and "Linear" not in counts  # 12 x 8 head
    assert int8_modules(model) == {}
    big = CharLM(vocab_size=SMALL_LINEAR // 16, embedding_dim=4, cell="lstm", hidden_size=16, num_layers=1)
    assert int8_modules(quantize(big))["Linear"] == 1  # SMALL_LINEAR weights: quantized, per row
    assert quantize(big).head.weight().qscheme() == torch.per_channel_affine


# --------------------------------------------------------------------------- through the API and CLI
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from serve_helpers import shared_tiny_runs

    return shared_tiny_runs(tmp_path_factory)


def test_int8_through_api_and_cli(runs):
    from typer.testing import CliRunner

    from rnncli import api
    from rnncli.cli import app

    fp32, int8 = (api.evaluate(str(runs["lm"]), "val", int8=flag) for flag in (False, True))
    assert int8["int8"] is True and "int8" not in fp32
    assert abs(int8["loss"] - fp32["loss"]) < 0.05 and int8["loss"] != fp32["loss"]
    loaded = api.open_run(str(runs["cls"]), int8=True)
    assert loaded.info()["int8"] and int8_modules(loaded.task.model)["QuantizedRecurrent"] == 1
    texts = ["the soup was cold", "a lovely view"]
    assert [p["label"] for p in loaded.predict(texts)] == [p["label"] for p in api.predict(str(runs["cls"]), texts)]
    result = CliRunner().invoke(app, ["generate", str(runs["lm"]), "--prompt", "The ", "--length", "20", "--int8",
                                      "--seed", "1"])
    assert result.exit_code == 0 and len(result.stdout) == 4 + 20 + 1
    result = CliRunner().invoke(app, ["eval", str(runs["ner"]), "--int8", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["int8"] is True
    result = CliRunner().invoke(app, ["predict", str(runs["ner"]), "Ada was in London .", "--int8", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)["tags"]) == 5
    result = CliRunner().invoke(app, ["generate", str(runs["s2s"]), "--prompt", "go .", "--int8"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", ["cls", "s2s"])
def test_int8_eval_of_the_other_trained_tasks(runs, name):
    from rnncli import api

    fp32, int8 = (api.evaluate(str(runs[name]), "val", int8=flag) for flag in (False, True))
    assert int8["int8"] is True and set(int8) == set(fp32) | {"int8"}


@pytest.mark.parametrize("task", ["adding", "copy_memory"])
def test_int8_eval_of_the_synthetic_tasks(task, tmp_path):
    from export_helpers import build_task

    _, built = build_task(tmp_path, task, "lstm")
    built.load_data(None)  # the evaluation splits, as `rnncli eval` loads them
    fp32 = built.evaluate("val")
    built.model = quantize(built.model)
    int8 = built.evaluate("val")
    assert set(int8) == set(fp32) and int8_modules(built.model)["QuantizedRecurrent"] == 1
