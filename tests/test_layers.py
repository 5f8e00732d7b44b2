"""Recurrent: equal to nn.LSTM, per-sequence reference, gradcheck, state passing, dropout."""
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnncli.nn.cells import CELL_NAMES, cell_class, cells_where
from rnncli.nn.recurrent import Recurrent, reverse_padded

CUSTOM = cells_where(lambda c: c.torch_kernel is None)  # the cells Recurrent keeps as cells
I, H = 3, 4


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def zero_peepholes(layer):
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.rsplit(".", 1)[-1] in ("weight_ci", "weight_cf", "weight_co"):
                p.zero_()


def lstm_like(layer):
    """An nn.LSTM holding the same weights as a peephole_lstm Recurrent."""
    ref = nn.LSTM(layer.input_size, layer.hidden_size, layer.num_layers, batch_first=True,
                  bidirectional=layer.bidirectional)
    with torch.no_grad():
        for k, cell in enumerate(layer.cells):
            suffix = torch_suffix(layer, k)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, name + suffix).copy_(getattr(cell, name))
    return ref


def torch_suffix(layer, k):
    depth, direction = divmod(k, layer.num_directions)
    return f"_l{depth}" + ("_reverse" if direction else "")


def weighted_loss(out, state, seed=1):
    """A loss touching every output and final-state entry with different weights."""
    g = torch.Generator().manual_seed(seed)
    tensors = (out, *as_tuple(state))
    return sum((t * torch.randn(t.shape, generator=g)).sum() for t in tensors)


@pytest.mark.parametrize("with_lengths", [False, True])
def test_peephole_with_zero_peepholes_equals_nn_lstm(with_lengths):
    torch.manual_seed(0)
    layer = Recurrent("peephole_lstm", I, H, num_layers=2, bidirectional=True)
    zero_peepholes(layer)
    ref = lstm_like(layer)
    x = torch.randn(4, 6, I)
    lengths = torch.tensor([6, 2, 5, 1]) if with_lengths else None
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, state = layer(x1, lengths)
    if with_lengths:
        packed = pack_padded_sequence(x2, lengths, batch_first=True, enforce_sorted=False)
        ref_out, ref_state = ref(packed)
        ref_out, _ = pad_packed_sequence(ref_out, batch_first=True, total_length=6)
    else:
        ref_out, ref_state = ref(x2)
    close = dict(rtol=0, atol=1e-5)
    torch.testing.assert_close(out, ref_out, **close)
    for a, b in zip(state, ref_state):
        torch.testing.assert_close(a, b, **close)
    weighted_loss(out, state).backward()
    weighted_loss(ref_out, ref_state).backward()
    torch.testing.assert_close(x1.grad, x2.grad, **close)
    for k, cell in enumerate(layer.cells):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            ref_param = getattr(ref, name + torch_suffix(layer, k))
            torch.testing.assert_close(getattr(cell, name).grad, ref_param.grad, **close)


@pytest.mark.parametrize("cell", CUSTOM)
def test_recurrent_gradcheck(cell):
    """Inputs, initial state and every parameter; lengths, bidirectional, 2 layers, float64."""
    torch.manual_seed(0)
    layer = Recurrent(cell, 2, 2, num_layers=2, bidirectional=True).double()
    params = dict(layer.named_parameters())
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])
    n_state = len(cell_class(cell).state_kind)  # 1: h, 2: (h, c)
    state = [torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True) for _ in range(n_state)]

    def run(x, *values):
        init = tuple(values[:n_state]) if n_state == 2 else values[0]
        out, final = torch.func.functional_call(layer, dict(zip(params, values[n_state:])), (x, lengths, init))
        return (out, *as_tuple(final))

    assert torch.autograd.gradcheck(run, (x, *state, *params.values()))


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_padded_batch_equals_each_sequence_alone(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2, bidirectional=True)
    x, lengths = torch.randn(3, 5, I), torch.tensor([2, 5, 4])
    out, state = layer(x, lengths)
    assert out.shape == (3, 5, 2 * H)
    for b, n in enumerate(lengths.tolist()):
        alone_out, alone_state = layer(x[b : b + 1, :n])
        torch.testing.assert_close(out[b : b + 1, :n], alone_out, rtol=0, atol=1e-6)
        assert torch.equal(out[b, n:], torch.zeros_like(out[b, n:]))  # exactly zero
        for s, s_alone in zip(as_tuple(state), as_tuple(alone_state)):
            torch.testing.assert_close(s[:, b : b + 1], s_alone, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_two_halves_with_state_equal_the_whole(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2)
    x = torch.randn(2, 6, I)
    whole_out, whole_state = layer(x)
    out1, state = layer(x[:, :3])
    out2, state = layer(x[:, 3:], state=state)
    torch.testing.assert_close(torch.cat([out1, out2], 1), whole_out, rtol=0, atol=1e-6)
    for a, b in zip(as_tuple(state), as_tuple(whole_state)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_full_lengths_and_time_major_match_the_plain_call(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, bidirectional=True)
    time_major = Recurrent(cell, I, H, bidirectional=True, batch_first=False)
    time_major.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, I)
    out, state = layer(x)
    out_full, state_full = layer(x, torch.tensor([4, 4]))
    out_tm, state_tm = time_major(x.transpose(0, 1))
    torch.testing.assert_close(out_full, out)
    torch.testing.assert_close(out_tm.transpose(0, 1), out)
    for a, b, c in zip(as_tuple(state), as_tuple(state_full), as_tuple(state_tm)):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm"])
def test_dropout_is_between_layers_and_only_in_training(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2, dropout=0.5)
    x = torch.randn(2, 5, I)
    layer.eval()
    out_a, (h_eval, _) = layer(x)
    out_b, _ = layer(x)
    assert torch.equal(out_a, out_b)  # eval: deterministic, no dropout
    layer.train()
    out_1, (h_1, _) = layer(x)
    out_2, _ = layer(x)
    assert not torch.equal(out_1, out_2)  # train: a fresh mask each call
    torch.testing.assert_close(h_1[0], h_eval[0])  # layer 0 itself sees no dropout
    assert not torch.allclose(h_1[1], h_eval[1])  # layer 1 sees a dropped-out input


@pytest.mark.parametrize("cell", ["gru", "cifg_lstm"])
def test_dropout_with_one_layer_is_a_silent_no_op(cell, recwarn):
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, dropout=0.3).train()
    x = torch.randn(2, 5, I)
    assert torch.equal(layer(x)[0], layer(x)[0])
    assert not recwarn.list  # not even torch's "expects num_layers greater than 1"


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_initial_state_and_sizes(cell):
    layer = Recurrent(cell, I, H, num_layers=3, bidirectional=True)
    assert (layer.num_directions, layer.output_size) == (2, 2 * H)
    state = layer.initial_state(5)
    assert isinstance(state, tuple) == (cell_class(cell).state_kind == "hc")
    for s in as_tuple(state):
        assert s.shape == (6, 5, H) and not s.any()


def test_bad_lengths_name_the_problem():
    layer = Recurrent("cifg_lstm", I, H)
    x = torch.randn(2, 4, I)
    with pytest.raises(ValueError, match=r"lengths must lie in 1\.\.4.*max 5"):
        layer(x, torch.tensor([5, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        layer(x, torch.tensor([4]))


def test_reverse_padded():
    x = torch.arange(10.0).view(2, 5)
    lengths = torch.tensor([3, 5])
    assert reverse_padded(x, lengths).tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    assert torch.equal(reverse_padded(reverse_padded(x, lengths), lengths), x)
    time_major = reverse_padded(x.T, lengths, batch_first=False)
    assert torch.equal(time_major, reverse_padded(x, lengths).T)
