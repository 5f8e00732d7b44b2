"""Recurrent dropout (variational) and zoneout: the hand-written BPTT equals the autograd loop with
the same masks (float64, gradcheck), one mask per sequence, evaluation, the stepper, the config."""

from __future__ import annotations

import pytest
import torch
from conftest import write_config
from test_synthetic import synthetic_config

from rnncli.config import load_config
from rnncli.errors import ConfigError
from rnncli.nn import fused_cpu
from rnncli.nn import recurrent as recurrent_module
from rnncli.nn.bptt import lstm_family_layer
from rnncli.nn.cells import CELLS, cells_where, make_cell
from rnncli.nn.recurrent import Recurrent, run_cell, time_mask
from rnncli.nn.regularise import run_cell_regularised
from rnncli.nn.stepper import Stepper

H = 3
BPTT_CELLS = cells_where(lambda c: c.bptt_kind in fused_cpu.KINDS)  # LN cells: tests/test_bptt_ln.py


def _layer_args(cell, module):
    extra = tuple(getattr(module, n) for n in CELLS[cell].extra_params) or None
    return (module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh, extra)


@pytest.mark.parametrize("cell", BPTT_CELLS)
def test_bptt_with_a_recurrent_dropout_mask_equals_the_autograd_loop(cell):
    torch.manual_seed(0)
    module = make_cell(cell, 2, H).double()
    x = torch.randn(5, 3, 2, dtype=torch.double, requires_grad=True)
    h0, c0 = torch.randn(3, H).double(), torch.randn(3, H).double()
    h_mask = torch.empty(3, H).double().bernoulli_(0.6) / 0.6
    mask = time_mask(torch.tensor([5, 2, 4]), 5)
    hs, c = lstm_family_layer(cell, x, h0, c0, *_layer_args(cell, module), mask=mask, h_mask=h_mask)
    ref, (ref_h, ref_c) = run_cell_regularised(module, True, x, (h0, c0), mask, h_mask, None)
    torch.testing.assert_close(hs * mask, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(c, ref_c, rtol=0, atol=1e-10)
    params = [x, *module.parameters()]
    grads = torch.autograd.grad((hs * mask).pow(2).sum() + c.sum(), params)
    ref_grads = torch.autograd.grad(ref.pow(2).sum() + ref_c.sum(), params)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-6)
    h0.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, h0, w_hh: lstm_family_layer(cell, x, h0, c0, module.weight_ih, w_hh, module.bias_ih,
                                              module.bias_hh, _layer_args(cell, module)[4], h_mask=h_mask)[0],
        (x, h0, module.weight_hh))


def test_the_fixed_mask_is_the_written_out_equation():
    """pre_t = W_ih x_t + b_ih + W_hh (m ⊙ h_{t-1}) + b_hh, the same m at every step; c not dropped."""
    torch.manual_seed(1)
    cell = make_cell("lstm", 2, H).double()
    x, m = torch.randn(4, 2, 2, dtype=torch.double), torch.tensor([[2.0, 0, 2.0], [0, 2.0, 2.0]]).double()
    h = c = torch.zeros(2, H, dtype=torch.double)
    for x_t in x.unbind(0):
        pre = x_t @ cell.weight_ih.t() + cell.bias_ih + (m * h) @ cell.weight_hh.t() + cell.bias_hh
        i, f, g, o = pre.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    out, (h_last, c_last) = run_cell_regularised(cell, True, x, (torch.zeros(2, H).double(),) * 2, None, m, None)
    torch.testing.assert_close(out[-1], h, rtol=0, atol=1e-12)
    ones = run_cell_regularised(cell, True, x, (torch.zeros(2, H).double(),) * 2, None, torch.ones_like(m), None)
    assert torch.equal(ones[0], run_cell(cell, x, (torch.zeros(2, H).double(),) * 2)[0])  # all-ones = no dropout


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole_lstm", "ln_lstm"])
def test_one_mask_per_sequence_and_row_and_none_at_evaluation(cell, monkeypatch):
    torch.manual_seed(2)
    layer = Recurrent(cell, 2, H, num_layers=2, bidirectional=True, recurrent_dropout=0.5)
    drawn = []
    original = recurrent_module.dropout_mask

    def record(like, p, training):
        mask = original(like, p, training)
        drawn.append(mask)
        return mask
    monkeypatch.setattr(recurrent_module, "dropout_mask", record)
    x = torch.randn(4, 6, 2)
    a, _ = layer(x)
    assert len(drawn) == 4 and all(m.shape == (4, H) and set(m.unique().tolist()) <= {0.0, 2.0} for m in drawn)
    assert not torch.equal(a, layer(x)[0])  # a fresh mask per call
    layer.eval()
    plain = Recurrent(cell, 2, H, num_layers=2, bidirectional=True).eval()
    for k in range(4):  # the same weights in the plain layer (torch's kernel for lstm and gru)
        with torch.no_grad():
            for mine, theirs in zip(layer.layer_weights(k), plain.layer_weights(k)):
                if mine is not None:
                    theirs.copy_(mine)
            for name in CELLS[cell].extra_params:
                getattr(plain.cells[k], name).copy_(getattr(layer.cells[k], name))
    torch.testing.assert_close(layer(x)[0], plain(x)[0], rtol=1e-5, atol=1e-6)
    assert drawn[-1] is None


def test_zoneout_follows_krueger_et_al_and_the_stepper_matches_evaluation():
    torch.manual_seed(3)
    cell = make_cell("gru", 2, H).double()
    x, h0 = torch.randn(3, 2, 2, dtype=torch.double), torch.zeros(2, H, dtype=torch.double)
    keep = torch.rand(3, 1, 2, H) < 0.5
    out, _ = run_cell_regularised(cell, False, x, h0, None, None, keep)
    h = h0
    for t, x_t in enumerate(x.unbind(0)):
        h = torch.where(keep[t, 0], h, cell(x_t, h))
        torch.testing.assert_close(out[t], h, rtol=0, atol=1e-12)
    layer = Recurrent("lstm", 2, H, num_layers=2, zoneout=0.3).eval()
    assert layer.path() == "bptt"  # zoneout runs inside the hand-written BPTT (tests/test_zoneout_bptt.py)
    seq = torch.randn(1, 5, 2)
    stepper, state, steps = Stepper(layer), None, []
    state = stepper.initial_state(1)
    for x_t in seq.unbind(1):
        h, state = stepper.step(x_t, state)
        steps.append(h)
    torch.testing.assert_close(torch.stack(steps, 1), layer(seq)[0], rtol=1e-5, atol=1e-6)


def test_config_keys_and_impl(tmp_path):
    cfg = synthetic_config(tmp_path, "adding", cell="cifg_lstm")
    cfg["model"].update(recurrent_dropout=0.25, zoneout=0.1)
    resolved = load_config(write_config(tmp_path, cfg))["model"]
    assert resolved["recurrent_dropout"] == 0.25 and resolved["impl"] == "auto"
    cfg["model"]["impl"] = "bptt"
    assert load_config(write_config(tmp_path, cfg))["model"]["impl"] == "bptt"  # zoneout runs in the BPTT
    cfg["model"].update(ablate=["no_output_gate"])
    with pytest.raises(ConfigError, match="model.ablate is empty"):
        load_config(write_config(tmp_path, cfg))
    with pytest.raises(ValueError, match="zoneout must be in"):
        Recurrent("lstm", 2, H, zoneout=1.0)
    assert Recurrent("lstm", 2, H, recurrent_dropout=0.2).path() == "bptt"
    relu = Recurrent("rnn", 2, H, nonlinearity="relu", recurrent_dropout=0.2)  # our cells keep the choice
    assert relu.path() == "autograd" and relu.cells[0].nonlinearity == "relu"
    assert "nn.RNN has none" in relu.paths()[0][2]


@pytest.mark.parametrize("key", ["recurrent_dropout", "zoneout"])
def test_scan_cells_take_neither_regulariser(tmp_path, key):
    loop_cells = cells_where(lambda c: c.sequence_kind == "loop")
    assert "mingru" not in loop_cells and "ln_lstm" in loop_cells
    cfg = synthetic_config(tmp_path, "adding", cell="mingru")
    cfg["model"][key] = 0.1
    with pytest.raises(ConfigError, match=f"model.{key}' has no effect here.*one of {', '.join(loop_cells)}"):
        load_config(write_config(tmp_path, cfg))
    with pytest.raises(ValueError, match=f"{key} does not apply to cell 'minlstm'.*take it: {', '.join(loop_cells)}"):
        Recurrent("minlstm", 2, H, **{key: 0.1})
    assert Recurrent("mingru", 2, H, **{key: 0.0}).path("cuda") == "scan"


def test_export_runs_evaluations_zoneout():
    from rnncli.nn.export import ExportRecurrent

    torch.manual_seed(0)
    layer = Recurrent("peephole_lstm", 3, H, num_layers=2, bidirectional=True, zoneout=0.3).eval()
    x, lengths = torch.randn(2, 6, 3), torch.tensor([6, 4])
    out, (h, c) = layer(x, lengths)
    zeros = torch.zeros(4, 2, H)
    got, h2, c2 = ExportRecurrent(layer)(x, lengths, zeros, zeros)
    for a, b in ((got, out), (h2, h), (c2, c)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
