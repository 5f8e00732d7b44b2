"""Initialisation: orthogonal W_hh gate blocks, Xavier W_ih, zero biases, effective forget bias."""
import math

import pytest
import torch
from torch import nn

from rnncli.nn.cells import CELL_NAMES, cell_class, cells_where, num_gates
from rnncli.nn.init import init_recurrent_
from rnncli.nn.recurrent import Recurrent

I, H = 3, 4


def params_named(layer, prefix):
    """Every parameter whose last name component starts with prefix, one per layer/direction."""
    ln = {"bias_ih": "ln_ih_bias", "bias_hh": "ln_hh_bias"}.get(prefix)  # the LN cells' betas are their biases
    found = [p for n, p in layer.named_parameters() if n.rsplit(".", 1)[-1].startswith(prefix)
             or n.rsplit(".", 1)[-1] == ln]
    assert len(found) == layer.num_layers * layer.num_directions
    return found


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_default_init(cell):
    layer = Recurrent(cell, I, H, num_layers=2, bidirectional=True)
    gates = num_gates(cell)
    loop = cell_class(cell).sequence_kind == "loop"  # scan cells have no W_hh and no b_hh
    for w_hh in params_named(layer, "weight_hh") if loop else ():
        assert w_hh.shape == (gates * H, H)
        for block in w_hh.split(H):  # each gate block orthogonal: Q^T Q = I
            torch.testing.assert_close(block.T @ block, torch.eye(H), rtol=0, atol=1e-5)
    for w_ih in params_named(layer, "weight_ih"):
        bound = math.sqrt(6.0 / (w_ih.shape[1] + H))  # Glorot uniform, per (H, in) block
        assert w_ih.abs().max() <= bound and w_ih.std() > bound / 4
    effective = [b_ih + b_hh for b_ih, b_hh in zip(params_named(layer, "bias_ih"), params_named(layer, "bias_hh"))] \
        if loop else params_named(layer, "bias_ih")
    for bias in effective:
        expected = torch.zeros(gates * H)
        f = cell_class(cell).forget_block
        if f is not None:
            expected[f * H : (f + 1) * H] = 1.0
        assert torch.equal(bias, expected)
    for b_hh in params_named(layer, "bias_hh") if loop else ():
        assert not b_hh.any()  # the forget bias lives in bias_ih only


def test_forget_block_positions():
    expected = {"rnn": None, "lstm": 1, "gru": None, "peephole_lstm": 1, "cifg_lstm": 0}
    assert {c: cell_class(c).forget_block for c in expected} == expected


@pytest.mark.parametrize("cell", cells_where(lambda c: c.forget_block is not None))
def test_forget_bias_value(cell):
    layer = Recurrent(cell, I, H, forget_bias=2.5)
    b_ih = params_named(layer, "bias_ih")[0]
    f = cell_class(cell).forget_block
    assert torch.equal(b_ih[f * H : (f + 1) * H], torch.full((H,), 2.5))
    assert b_ih.sum().item() == 2.5 * H


def test_peepholes_keep_the_cell_init():
    layer = Recurrent("peephole_lstm", I, H)
    cell = layer.cells[0]
    for w in (cell.weight_ci, cell.weight_cf, cell.weight_co):
        assert w.shape == (H,) and w.abs().max() <= 1 / math.sqrt(H) and w.any()


def test_pytorch_choice_leaves_weights_alone():
    torch.manual_seed(0)
    lstm = nn.LSTM(I, H, num_layers=2)
    before = {n: p.clone() for n, p in lstm.named_parameters()}
    init_recurrent_(lstm, "lstm", H, recurrent_init="pytorch", input_init="pytorch")
    for name, p in lstm.named_parameters():
        if name.startswith("weight"):
            assert torch.equal(p, before[name])
        else:  # biases are always reset: zero, forget block of bias_ih = 1
            assert p.sum().item() == (H if name.startswith("bias_ih") else 0)


def test_other_choices_and_name_pairs():
    gru = nn.GRU(I, H)
    init_recurrent_(gru.named_parameters(), "gru", H, recurrent_init="xavier_uniform",
                    input_init="xavier_normal", forget_bias=5.0)
    assert not gru.bias_ih_l0.any() and not gru.bias_hh_l0.any()  # no forget gate in a GRU
    assert gru.weight_hh_l0.abs().max() <= math.sqrt(6.0 / (2 * H))


@pytest.mark.parametrize("key,value", [("recurrent_init", "identity"), ("input_init", "kaiming")])
def test_unknown_init_names_key_value_and_choices(key, value):
    with pytest.raises(ValueError, match=f"unknown {key} '{value}': expected one of"):
        Recurrent("lstm", I, H, **{key: value})
