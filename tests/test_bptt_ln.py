"""The layer-normalised cells' hand-written BPTT (rnncli/nn/bptt_ln.py, compiled step in fused_ln.py)
against their autograd loop: float64 values and every gradient (gains and betas included), gradcheck,
padding, recurrent dropout, stacked and bidirectional layers, float32, and where it falls back."""

from __future__ import annotations

import pytest
import torch

from rnncli.nn import bptt_ln, fused_ln
from rnncli.nn.cells import make_cell
from rnncli.nn.recurrent import Recurrent, run_cell, time_mask
from rnncli.nn.regularise import run_cell_regularised

KINDS = bptt_ln.KINDS
F64 = torch.float64


@pytest.fixture(scope="module", autouse=True)
def compiled():
    if fused_ln.kernels() is None:
        pytest.skip("no C++ compiler here: the layer-normalised cells run their autograd loop")


def _cell(kind, inputs, hidden, bias=True, dtype=F64, seed=0):
    """A cell with its gains and betas moved away from 1 and 0, so each one is tested."""
    torch.manual_seed(seed)
    cell = make_cell(kind, inputs, hidden, bias=bias).to(dtype)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return cell


def _extra(cell):
    return tuple(getattr(cell, name) for name in cell.extra_params)


def _state(kind, batch, hidden, dtype=F64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, hidden, dtype=dtype, generator=gen, requires_grad=True)
    if kind == "ln_gru":
        return h
    return h, torch.randn(batch, hidden, dtype=dtype, generator=gen, requires_grad=True)


def _leaves(state):
    return list(state) if isinstance(state, tuple) else [state]


def _loss(out, state, seed=2):
    """A random linear functional of the outputs and the final state: every gradient path."""
    gen = torch.Generator().manual_seed(seed)
    parts = [out] + _leaves(state)
    return sum((p * torch.randn(p.shape, dtype=p.dtype, generator=gen)).sum() for p in parts)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", ["full", "padded", "no-betas"])
def test_bptt_equals_the_autograd_loop_in_float64(kind, case):
    cell = _cell(kind, 4, 5, bias=case != "no-betas")
    x = torch.randn(7, 3, 4, dtype=F64, requires_grad=True)
    state = _state(kind, 3, 5)
    mask = time_mask(torch.tensor([7, 4, 1]), 7) if case == "padded" else None
    hs, final = bptt_ln.ln_layer(kind, x, state, cell.weight_ih, cell.weight_hh, _extra(cell), mask=mask)
    out = hs if mask is None else hs * mask
    ref_out, ref_final = run_cell(cell, x, state, mask)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-10)
    for a, b in zip(_leaves(final), _leaves(ref_final)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    params = [x, *_leaves(state), *cell.parameters()]
    ours = torch.autograd.grad(_loss(out, final), params)
    ref = torch.autograd.grad(_loss(ref_out, ref_final), params)
    names = ["x"] + ["h0", "c0"][:len(_leaves(state))] + [n for n, _ in cell.named_parameters()]
    for name, a, b in zip(names, ours, ref):
        assert (a - b).abs().max() < 1e-6, name


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_with_padding_and_a_recurrent_dropout_mask(kind):
    cell = _cell(kind, 3, 2, seed=3)
    x = torch.randn(4, 2, 3, dtype=F64, requires_grad=True)
    state = _state(kind, 2, 2, seed=4)
    mask = time_mask(torch.tensor([4, 2]), 4)
    h_mask = torch.tensor([[2.0, 0.0], [2.0, 2.0]], dtype=F64)
    params = (cell.weight_ih, cell.weight_hh) + _extra(cell)  # the order ln_layer takes them

    def run(x, *args):
        s = tuple(args[:len(_leaves(state))])
        weights = args[len(s):]
        hs, final = bptt_ln.ln_layer(kind, x, s if len(s) == 2 else s[0], weights[0], weights[1], weights[2:],
                                     mask=mask, h_mask=h_mask)
        return (hs * mask,) + tuple(_leaves(final))

    assert torch.autograd.gradcheck(run, (x, *_leaves(state), *params))
    # and the same mask on the autograd loop gives the same values
    hs, _ = bptt_ln.ln_layer(kind, x, state, cell.weight_ih, cell.weight_hh, _extra(cell), mask=mask, h_mask=h_mask)
    ref, _ = run_cell_regularised(cell, cell.folds_b_hh, x, state, mask, h_mask, None)
    torch.testing.assert_close(hs * mask, ref, rtol=0, atol=1e-10)


def _twin_layers(kind, dtype):
    torch.manual_seed(5)
    fast = Recurrent(kind, 3, 4, num_layers=2, bidirectional=True).to(dtype)
    with torch.no_grad():
        for name, p in fast.named_parameters():
            if ".ln_" in name:
                p.add_(0.3 * torch.randn_like(p))
    ref = Recurrent(kind, 3, 4, num_layers=2, bidirectional=True, impl="autograd").to(dtype)
    ref.load_state_dict(fast.state_dict())
    assert fast.path() == "bptt" and ref.path() == "autograd"
    return fast, ref


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["float64", "float32"])
def test_stacked_bidirectional_padded_layer_equals_the_autograd_layer(kind, dtype):
    fast, ref = _twin_layers(kind, dtype)
    x = torch.randn(3, 6, 3, dtype=dtype)
    lengths = torch.tensor([6, 2, 5])
    tol = (1e-10, 1e-6) if dtype == F64 else (1e-5, 1e-4)
    out, state = fast(x, lengths)
    ref_out, ref_state = ref(x, lengths)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=tol[0])
    for a, b in zip(_leaves(state), _leaves(ref_state)):
        torch.testing.assert_close(a, b, rtol=0, atol=tol[0])
    (_loss(out, state)).backward()
    (_loss(ref_out, ref_state)).backward()
    for (name, a), b in zip(fast.named_parameters(), ref.parameters()):
        assert (a.grad - b.grad).abs().max() < tol[1], name


def test_falls_back_to_the_autograd_loop_where_the_compiled_step_cannot_run(monkeypatch):
    layer = Recurrent("ln_lstm", 3, 4, impl="bptt")
    x = torch.randn(2, 5, 3)
    compiled = layer(x)[0].detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.path() == "autograd"
        assert "autocast" in layer.paths()[0][2]
        out, _ = layer(x)
    out.float().sum().backward()  # trains under autocast, on the reference loop
    assert layer.cells[0].ln_c_weight.grad is not None
    monkeypatch.setitem(fused_ln._cache, "module", None)  # no compiler
    assert layer.path() == "autograd" and "no compiled layer-norm kernels" in layer.paths()[0][2]
    torch.testing.assert_close(layer(x)[0], compiled, rtol=0, atol=1e-5)


def test_the_report_names_the_layer_norm_path():
    layer = Recurrent("ln_gru", 3, 4, recurrent_dropout=0.2)
    (_, impl, why), = layer.paths()
    assert "bptt_ln" in impl and "recurrent_dropout" in why
    assert layer.path() == "bptt"
