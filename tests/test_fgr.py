"""Greff et al.'s full gate recurrence (model.ablate: [full_gate_recurrence], rnncli/nn/cells/ablation.py):
the written-out equations, zero weights = the plain cell, gradcheck, the state it carries, the stepper,
and the config."""

from __future__ import annotations

import pytest
import torch
from conftest import write_config
from test_synthetic import synthetic_config

from rnncli.config import load_config
from rnncli.errors import ConfigError
from rnncli.nn.recurrent import Recurrent
from rnncli.nn.stepper import Stepper

H = 3
F64 = torch.float64
FGR = ["full_gate_recurrence"]


def _randomise_fgr(rnn: Recurrent) -> None:
    with torch.no_grad():
        for cell in rnn.cells:
            cell.weight_fgr.normal_(0, 0.5)


def test_fgr_is_the_written_out_equation():
    """z_{i,f,o} += R [i f o]_{t-1}; the rest is the LSTM; the state carries i, f, o."""
    torch.manual_seed(0)
    rnn = Recurrent("lstm", 2, H, ablate=FGR).double()
    _randomise_fgr(rnn)
    cell = rnn.cells[0]
    x = torch.randn(2, 5, 2, dtype=F64)
    out, state = rnn(x)
    h = c = torch.zeros(2, H, dtype=F64)
    gates = torch.zeros(2, 3 * H, dtype=F64)  # [i f o] at t-1
    for t in range(5):
        pre = x[:, t] @ cell.weight_ih.t() + cell.bias_ih + h @ cell.weight_hh.t() + cell.bias_hh
        zi, zf, zg, zo = pre.chunk(4, 1)
        ri, rf, ro = (gates @ cell.weight_fgr.t()).chunk(3, 1)
        i, f, o = torch.sigmoid(zi + ri), torch.sigmoid(zf + rf), torch.sigmoid(zo + ro)
        c = f * c + i * torch.tanh(zg)
        h = o * torch.tanh(c)
        gates = torch.cat([i, f, o], 1)
        torch.testing.assert_close(out[:, t], h, rtol=0, atol=1e-12)
    assert len(state) == 5 and all(s.shape == (1, 2, H) for s in state)
    torch.testing.assert_close(torch.cat([s[0] for s in state[2:]], 1), gates, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm"])
def test_zero_gate_recurrence_is_the_plain_cell(cell):
    """weight_fgr starts at zero: the layer is then the unablated one (nn.LSTM for lstm)."""
    torch.manual_seed(1)
    fgr = Recurrent(cell, 2, H, num_layers=2, ablate=FGR).double()
    plain = Recurrent(cell, 2, H, num_layers=2).double()
    with torch.no_grad():
        for k in range(2):
            for mine, theirs in zip(fgr.layer_weights(k), plain.layer_weights(k)):
                theirs.copy_(mine)
            for name in plain.cell_class.extra_params:
                getattr(plain.cells[k], name).copy_(getattr(fgr.cells[k], name))
    x, lengths = torch.randn(3, 6, 2, dtype=F64), torch.tensor([6, 4, 1])
    a, b = fgr(x, lengths), plain(x, lengths)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(a[1][:2], b[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm"])
def test_fgr_gradchecks_stacked_bidirectional_with_lengths(cell):
    torch.manual_seed(2)
    rnn = Recurrent(cell, 2, 2, num_layers=2, bidirectional=True, ablate=FGR).double()
    _randomise_fgr(rnn)
    x, lengths = torch.randn(2, 3, 2, dtype=F64, requires_grad=True), torch.tensor([3, 2])
    out, _ = rnn(x, lengths)
    assert out[1, 2:].abs().sum() == 0
    fgr_weights = [cell.weight_fgr for cell in rnn.cells]
    assert torch.autograd.gradcheck(lambda x, *w: rnn(x, lengths)[0], (x, rnn.cells[0].weight_hh, *fgr_weights))


def test_state_in_and_out_the_stepper_and_a_plain_hc_state():
    torch.manual_seed(3)
    rnn = Recurrent("peephole_lstm", 3, H, num_layers=2, ablate=FGR + ["no_output_gate"]).eval()
    _randomise_fgr(rnn)
    assert len(rnn.initial_state(2)) == 5
    x = torch.randn(1, 5, 3)
    full, _ = rnn(x)
    stepper, outs = Stepper(rnn), []
    state = stepper.initial_state(1)
    for x_t in x.unbind(1):
        h, state = stepper.step(x_t, state)
        outs.append(h)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-5, atol=1e-6)
    zeros = torch.zeros(2, 1, H)
    torch.testing.assert_close(rnn(x, state=(zeros, zeros))[0], full)  # (h, c): the gates start at zero
    # a windowed run that carries the whole state equals one run over the sequence
    first, carried = rnn(x[:, :2])
    torch.testing.assert_close(torch.cat([first, rnn(x[:, 2:], state=carried)[0]], 1), full)


def test_config_names_the_cells_that_take_it(tmp_path):
    cfg = synthetic_config(tmp_path, "adding", max_steps=2, val_every=2)
    cfg["model"].update(cell="cifg_lstm", ablate=FGR)
    with pytest.raises(ConfigError, match="the cells that take it: lstm, peephole_lstm"):
        load_config(write_config(tmp_path, cfg))
    cfg["model"].update(cell="lstm")
    assert load_config(write_config(tmp_path, cfg))["model"]["ablate"] == FGR
    with pytest.raises(ValueError, match="full_gate_recurrence.*does not apply to cell 'gru'"):
        Recurrent("gru", 2, H, ablate=FGR)
