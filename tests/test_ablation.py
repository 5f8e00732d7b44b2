"""Greff et al.'s LSTM ablations (model.ablate): each against an independent reference, gradcheck,
off == the unablated cell bit for bit, strict config, stepper, diagnose, compare --vary."""

from __future__ import annotations

import pytest
import torch
from conftest import write_config
from test_synthetic import synthetic_config
from torch import nn

from rnncli.config import load_config
from rnncli.errors import ArgumentError, ConfigError
from rnncli.nn.cells import ABLATIONS, CELLS, AblatedLSTMCell, cell_class, cells_where
from rnncli.nn.health import unroll
from rnncli.nn.recurrent import Recurrent, run_cell
from rnncli.nn.stepper import Stepper
from rnncli.tools.compare import compare

H = 4
TAKERS = [(cell, a) for cell, cls in CELLS.items() for a in cls.ablations]
GATE_ROWS = {"no_input_gate": 0, "no_forget_gate": 1, "no_output_gate": 3}  # nn.LSTM's i, f, g, o


def _copy_to_torch(rnn: Recurrent) -> nn.LSTM:
    ref = nn.LSTM(rnn.input_size, H, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name + "_l0").copy_(getattr(rnn.cells[0], name))
    return ref


@pytest.mark.parametrize("ablation", sorted(GATE_ROWS))
def test_a_removed_gate_equals_nn_lstm_with_that_gate_saturated_open(ablation):
    """σ(1000) == 1.0 in float64: nn.LSTM with the gate's rows zeroed and its bias at 1000 is the ablation."""
    torch.manual_seed(0)
    rnn = Recurrent("lstm", 3, H, ablate=[ablation]).double()
    ref, rows = _copy_to_torch(rnn), slice(GATE_ROWS[ablation] * H, (GATE_ROWS[ablation] + 1) * H)
    with torch.no_grad():
        ref.weight_ih_l0[rows], ref.weight_hh_l0[rows], ref.bias_ih_l0[rows] = 0.0, 0.0, 1000.0
    x = torch.randn(2, 7, 3, dtype=torch.double)
    torch.testing.assert_close(rnn(x)[0], ref(x)[0], rtol=0, atol=1e-12)
    assert rnn.path() == "autograd"


def _reference(x, w_ih, w_hh, b, ablate):
    """An independent lstm loop with the activation ablations written out."""
    h = c = x.new_zeros(x.shape[0], H)
    outs = []
    for x_t in x.unbind(1):
        i, f, g, o = (x_t @ w_ih.t() + h @ w_hh.t() + b).chunk(4, 1)
        g = g if "no_input_activation" in ablate else torch.tanh(g)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * g
        h = torch.sigmoid(o) * (c if "no_output_activation" in ablate else torch.tanh(c))
        outs.append(h)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("ablate", [["no_input_activation"], ["no_output_activation"],
                                    ["no_input_activation", "no_output_activation"]])
def test_activation_ablations_equal_the_written_out_equations(ablate):
    torch.manual_seed(1)
    rnn = Recurrent("lstm", 3, H, ablate=ablate).double()
    cell = rnn.cells[0]
    x = torch.randn(2, 6, 3, dtype=torch.double)
    ref = _reference(x, cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh, ablate)
    torch.testing.assert_close(rnn(x)[0], ref, rtol=0, atol=1e-12)


def test_no_peepholes_is_the_lstm_and_removed_gates_drop_their_peephole():
    torch.manual_seed(2)
    rnn = Recurrent("peephole_lstm", 3, H, ablate=["no_peepholes"]).double()
    assert not any(n.startswith("weight_c") for n, _ in rnn.cells[0].named_parameters())
    ref = _copy_to_torch(rnn)
    x = torch.randn(2, 5, 3, dtype=torch.double)
    torch.testing.assert_close(rnn(x)[0], ref(x)[0], rtol=0, atol=1e-12)
    nig = Recurrent("peephole_lstm", 3, H, ablate=["no_input_gate", "no_output_gate"])
    assert [n for n, _ in nig.cells[0].named_parameters() if n.startswith("weight_c")] == ["weight_cf"]


@pytest.mark.parametrize("cell", cells_where(lambda c: bool(c.ablations)))
def test_no_ablation_is_the_cell_bit_for_bit(cell):
    """AblatedLSTMCell with nothing removed runs its base cell's very operations; the layer with
    ablate=[] keeps the base cell (and nn.LSTM for lstm)."""
    torch.manual_seed(3)
    base = cell_class(cell)(3, H).double()
    ablated = AblatedLSTMCell(cell_class(cell), 3, H).double()
    ablated.load_state_dict(base.state_dict())
    x, state = torch.randn(6, 2, 3, dtype=torch.double), (torch.randn(2, H).double(), torch.randn(2, H).double())
    out, final = run_cell(ablated, x, state)
    ref_out, ref_final = run_cell(base, x, state)
    assert torch.equal(out, ref_out) and all(torch.equal(a, b) for a, b in zip(final, ref_final))
    layer = Recurrent(cell, 3, H, ablate=[])
    assert layer.ablate == () and layer.bptt_kind == cell_class(cell).bptt_kind


@pytest.mark.parametrize("cell,ablation", TAKERS)
def test_every_ablation_gradchecks_stacked_bidirectional_with_lengths(cell, ablation):
    torch.manual_seed(4)
    rnn = Recurrent(cell, 2, 2, num_layers=2, bidirectional=True, ablate=[ablation]).double()
    x = torch.randn(2, 3, 2, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([3, 2])
    out, _ = rnn(x, lengths)
    assert out[1, 2:].abs().sum() == 0  # padding
    weights = tuple(rnn.parameters())[:4]
    assert torch.autograd.gradcheck(lambda x, *w: rnn(x, lengths)[0], (x, *weights))


@pytest.mark.parametrize("cell,ablation", TAKERS[::3])
def test_stepper_and_diagnose_run_ablated_cells(cell, ablation):
    torch.manual_seed(5)
    rnn = Recurrent(cell, 3, H, num_layers=2, ablate=[ablation]).eval()
    x = torch.randn(1, 5, 3)
    stepper, state, outs = Stepper(rnn), None, []
    state = stepper.initial_state(1)
    for x_t in x.unbind(1):
        h, state = stepper.step(x_t, state)
        outs.append(h)
    torch.testing.assert_close(torch.stack(outs, 1), rnn(x)[0][..., :H], rtol=1e-5, atol=1e-6)
    out, _, gates = unroll(rnn, x)
    torch.testing.assert_close(out, rnn(x)[0], rtol=1e-5, atol=1e-6)
    removed = {"no_input_gate": "input i", "no_forget_gate": "forget f", "no_output_gate": "output o"}
    assert removed.get(ablation, "-") not in gates[0]


def _config(tmp_path, cell, ablate, **model):
    cfg = synthetic_config(tmp_path, "adding", max_steps=2, val_every=2)
    cfg["model"].update(cell=cell, ablate=ablate, **model)
    return str(write_config(tmp_path, cfg))


@pytest.mark.parametrize("cell,ablate,message", [
    ("gru", ["no_output_gate"], "applies only when model.cell is one of lstm, peephole_lstm, cifg_lstm"),
    ("cifg_lstm", ["no_forget_gate"], "impossible with cell 'cifg_lstm': its input gate is tied"),
    ("lstm", ["no_peepholes"], "does not apply to cell 'lstm'; the cells that take it: peephole_lstm"),
    ("lstm", ["no_forget_gat"], "Did you mean 'no_forget_gate'"),
    ("lstm", ["none", "no_forget_gate"], "'none' cannot be combined"),
])
def test_config_names_what_takes_an_ablation(tmp_path, cell, ablate, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, cell, ablate))


def test_config_none_means_no_ablation_and_impl_is_not_offered_with_one(tmp_path):
    assert load_config(_config(tmp_path, "lstm", "none"))["model"]["ablate"] == []
    assert load_config(_config(tmp_path, "lstm", []))["model"]["ablate"] == []
    cfg = load_config(_config(tmp_path, "cifg_lstm", ["no_output_gate"]))
    assert cfg["model"]["ablate"] == ["no_output_gate"] and "impl" not in cfg["model"]
    with pytest.raises(ConfigError, match="model.impl' has no effect here.*model.ablate is empty"):
        load_config(_config(tmp_path, "cifg_lstm", ["no_output_gate"], impl="bptt"))
    assert set(ABLATIONS) == {a for cls in CELLS.values() for a in cls.ablations}


def test_compare_varies_the_ablation(tmp_path):
    cfg = synthetic_config(tmp_path, "adding", max_steps=2, val_every=2)
    cfg["data"]["T"] = 5
    config = str(write_config(tmp_path, cfg))
    result = compare(config, seeds=1, out_dir=str(tmp_path / "c"), vary="model.ablate=none,no_forget_gate")
    assert [r["variant"] for r in result["summary"]] == ["none", "no_forget_gate"]
    assert result["varied"] == "model.ablate" and {r["cell"] for r in result["runs"]} == {"lstm"}
    assert (tmp_path / "c" / "runs" / "no_forget_gate-seed1234" / "best.pt").exists()
    with pytest.raises(ArgumentError, match="vary cannot be combined with cells"):
        compare(config, ["gru"], vary="model.ablate=none")
    with pytest.raises(ArgumentError, match="expected section.key=a,b"):
        compare(config, vary="ablate")


def test_ablations_take_the_gate_and_candidate_activations():
    """no_peepholes on peephole_lstm is the lstm's equations: with hard_sigmoid / softsign too."""
    torch.manual_seed(0)
    kw = dict(gate_activation="hard_sigmoid", activation="softsign")
    ablated = AblatedLSTMCell(cell_class("peephole_lstm"), 3, 4, ablate=("no_peepholes",), **kw).double()
    plain = cell_class("lstm")(3, 4, **kw).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(plain, name).copy_(getattr(ablated, name))
    x, state = torch.randn(5, 3, dtype=torch.float64), (torch.randn(5, 4, dtype=torch.float64),) * 2
    for got, want in zip(ablated(x, state), plain(x, state)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    layer = Recurrent("peephole_lstm", 3, 4, ablate=["no_output_gate"], **kw)
    why = layer.paths()[0][2]
    assert layer.path() == "autograd" and "hard_sigmoid" in why and "model.ablate" in why
