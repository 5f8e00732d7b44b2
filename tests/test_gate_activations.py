"""model.gate_activation / model.activation: defaults are bit for bit today's cells (nn.LSTM / nn.GRU
kernels); other choices run the cells' own step, stacked, bidirectional, padded, in the stepper, in
diagnose and through training; the keys are strict."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnncli import api
from rnncli.config import load_config
from rnncli.errors import ConfigError
from rnncli.models.char_lm import CharLM
from rnncli.nn.cells import cells_where, make_cell
from rnncli.nn.health import gradient_flow
from rnncli.nn.recurrent import Recurrent
from rnncli.nn.stepper import Stepper
from conftest import TINY_TEXT

TAKERS = cells_where(lambda c: c.configurable_activations)
EVERY_TAKER = pytest.mark.parametrize("cell", TAKERS)
OTHER = {"gate_activation": "hard_sigmoid", "activation": "softsign"}


def test_the_lstm_family_and_gru_take_activations():
    assert set(TAKERS) == {"lstm", "gru", "peephole_lstm", "cifg_lstm"}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_explicit_defaults_run_torchs_kernel_bit_for_bit(cell):
    torch.manual_seed(0)
    plain = Recurrent(cell, 3, 4, num_layers=2, bidirectional=True).double()
    explicit = Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, gate_activation="sigmoid",
                         activation="tanh").double()
    explicit.load_state_dict(plain.state_dict())
    assert explicit.path() == "torch" and isinstance(explicit.rnn, torch.nn.RNNBase)
    x, lengths = torch.randn(3, 6, 3, dtype=torch.float64), torch.tensor([6, 2, 4])
    for a, b in zip(plain(x, lengths), explicit(x, lengths)):
        assert torch.equal(a[0] if isinstance(a, tuple) else a, b[0] if isinstance(b, tuple) else b)


@EVERY_TAKER
def test_explicit_defaults_keep_the_cells_step_bit_for_bit(cell):
    torch.manual_seed(1)
    a = make_cell(cell, 3, 4).double()
    b = make_cell(cell, 3, 4, gate_activation="sigmoid", activation="tanh").double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, dtype=torch.float64)
    assert torch.equal(torch.cat(list(_flat(a(x)))), torch.cat(list(_flat(b(x)))))
    assert a.sigma is torch.sigmoid and a.act is torch.tanh


def test_lstm_step_with_hard_sigmoid_and_softsign_follows_the_equations():
    torch.manual_seed(2)
    cell = make_cell("lstm", 3, 4, **OTHER).double()
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (3, 4, 4))
    pre = F.linear(x, cell.weight_ih, cell.bias_ih) + F.linear(h, cell.weight_hh, cell.bias_hh)
    i, f, g, o = pre.chunk(4, 1)
    hs = lambda v: torch.clamp(v / 6 + 0.5, 0, 1)  # noqa: E731
    c_new = hs(f) * c + hs(i) * (g / (1 + g.abs()))
    h_new = hs(o) * (c_new / (1 + c_new.abs()))
    got_h, got_c = cell(x, (h, c))
    torch.testing.assert_close(got_c, c_new, rtol=0, atol=1e-14)
    torch.testing.assert_close(got_h, h_new, rtol=0, atol=1e-14)


@EVERY_TAKER
def test_other_activations_run_autograd_stacked_bidirectional_padded(cell):
    torch.manual_seed(3)
    model = Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, **OTHER).double()
    assert model.path() == "autograd" and "hard_sigmoid" in model.paths()[0][2]
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    out, _ = model(x, torch.tensor([6, 4]))
    alone, _ = model(x[1:, :4])
    torch.testing.assert_close(out[1:, :4], alone, rtol=0, atol=1e-12)
    assert torch.equal(out[1, 4:], torch.zeros_like(out[1, 4:]))
    default = Recurrent(cell, 3, 4, num_layers=2, bidirectional=True).double()
    default.load_state_dict({k.replace("rnn.", "cells."): v for k, v in model.state_dict().items()}, strict=False)
    assert not torch.allclose(default(x)[0], model(x)[0])  # the choice changes the result


@EVERY_TAKER
def test_stepper_and_diagnose_use_the_chosen_activations(cell):
    torch.manual_seed(4)
    lm = CharLM(vocab_size=7, embedding_dim=5, cell=cell, hidden_size=6, num_layers=2, **OTHER).eval()
    ids = torch.randint(0, 7, (2, 8))
    with torch.no_grad():
        out, _ = lm.rnn(lm.embedding(ids))
        stepper = Stepper(lm.rnn, lm.embedding)
        state = stepper.initial_state(2)
        for t in range(8):
            h, state = stepper.step(ids[:, t], state)
            torch.testing.assert_close(h, out[:, t], rtol=1e-5, atol=1e-6)
    report = gradient_flow(lm.rnn, lm.embedding(ids).detach(), lambda o: o.sum())
    assert report["gates"]["layer 0"] and all(0 <= g["mean"] <= 1 for g in report["gates"]["layer 0"])


@pytest.mark.parametrize("cell", ["rnn", "mingru"])
@pytest.mark.parametrize("key", ["gate_activation", "activation"])
def test_a_cell_without_the_choice_is_told_which_cells_take_it(make_config, cell, key):
    value = OTHER[key]
    with pytest.raises(ConfigError, match=rf"model\.{key}.*applies only when model\.cell is one of lstm, gru, "):
        load_config(make_config(model={"cell": cell, key: value}))


def test_an_unknown_activation_lists_the_allowed(make_config):
    with pytest.raises(ConfigError, match=r"model\.activation = 'tahn'.*Allowed: tanh, softsign, hard_tanh, relu"):
        load_config(make_config(model={"cell": "gru", "activation": "tahn"}))


def test_bptt_with_other_activations_is_a_config_error(make_config):
    with pytest.raises(ConfigError, match=r"model\.impl = 'bptt' is not a path of cell 'peephole_lstm' with "
                                          r"gate_activation hard_sigmoid.*Allowed for it: auto, autograd"):
        load_config(make_config(model={"cell": "peephole_lstm", "impl": "bptt", **OTHER}))


def test_a_python_caller_gets_a_value_error_naming_the_cells():
    with pytest.raises(ValueError, match=r"only configurable for the cells lstm, gru, .*cell 'rnn'"):
        Recurrent("rnn", 3, 4, activation="relu")


def test_training_with_hard_sigmoid_reports_the_autograd_path_and_learns(make_config, capsys):
    summary = api.train(str(make_config(model={"cell": "lstm", "gate_activation": "hard_sigmoid"})),
                        show_progress=True)
    err = capsys.readouterr().err
    assert "plain autograd loop (gate_activation=hard_sigmoid, activation=tanh" in err
    chars = len(set(TINY_TEXT))
    assert summary["best_val_loss"] < 0.8 * math.log(chars)  # well below a uniform guess


def _flat(state):
    return state if isinstance(state, tuple) else (state,)


def test_layer_normalised_cells_refuse_other_activations():
    takers = ", ".join(cells_where(lambda c: c.configurable_activations))
    assert "ln_lstm" not in takers
    with pytest.raises(ValueError, match=f"only configurable for the cells {takers}; cell 'ln_gru'"):
        Recurrent("ln_gru", 2, 3, activation="softsign")
