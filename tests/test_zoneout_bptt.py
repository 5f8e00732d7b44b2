"""Zoneout inside the hand-written BPTT (rnncli/nn/bptt.py, fused_cpu.py's zone kernels): equal to the
autograd loop with the same masks in float64 (with padding and recurrent dropout), gradcheck, the
evaluation expectation, the compiled kernels against the eager ones, and the layer's path."""

from __future__ import annotations

import pytest
import torch

from rnncli.nn import fused_cpu
from rnncli.nn.bptt import lstm_family_layer
from rnncli.nn.cells import CELLS, cells_where, make_cell
from rnncli.nn.recurrent import Recurrent, time_mask
from rnncli.nn.regularise import run_cell_regularised, zoneout_masks

H = 3
BPTT_CELLS = cells_where(lambda c: c.bptt_kind in fused_cpu.KINDS)  # lstm_family_layer's cells
F64 = torch.float64


def _layer_args(cell, module):
    extra = tuple(getattr(module, n) for n in CELLS[cell].extra_params) or None
    return (module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh, extra)


def _weighted(outputs, seed=1):
    """A random linear functional of every output, so every gradient path is exercised."""
    gen = torch.Generator().manual_seed(seed)
    return sum((o * torch.randn(o.shape, dtype=o.dtype, generator=gen)).sum() for o in outputs)


@pytest.mark.parametrize("cell", BPTT_CELLS)
@pytest.mark.parametrize("training", [True, False], ids=["masks", "expectation"])
def test_zoneout_in_the_bptt_equals_the_autograd_loop(cell, training):
    torch.manual_seed(0)
    module = make_cell(cell, 2, H).double()
    x = torch.randn(6, 4, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(4, H, dtype=F64, requires_grad=True)
    c0 = torch.randn(4, H, dtype=F64, requires_grad=True)
    zones = zoneout_masks(6, (h0, c0), 0.4, training)  # (T, 2, B, H) bool, or the rate 0.4
    h_mask = torch.empty(4, H, dtype=F64).bernoulli_(0.7) / 0.7 if training else None
    mask = time_mask(torch.tensor([6, 2, 5, 6]), 6)
    hs, c = lstm_family_layer(cell, x, h0, c0, *_layer_args(cell, module), mask=mask, h_mask=h_mask, zones=zones)
    ref, (_, ref_c) = run_cell_regularised(module, True, x, (h0, c0), mask, h_mask, zones)
    torch.testing.assert_close(hs * mask, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(c, ref_c, rtol=0, atol=1e-10)
    params = [x, h0, c0, *module.parameters()]
    grads = torch.autograd.grad(_weighted([hs * mask, c]), params)
    ref_grads = torch.autograd.grad(_weighted([ref, ref_c]), params)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", BPTT_CELLS)
def test_gradcheck_with_zoneout_masks(cell):
    torch.manual_seed(1)
    module = make_cell(cell, 2, H).double()
    x = torch.randn(4, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, H, dtype=F64, requires_grad=True)
    c0 = torch.randn(2, H, dtype=F64, requires_grad=True)
    zones = torch.rand(4, 2, 2, H) < 0.5
    weights = _layer_args(cell, module)

    def run(x, h0, c0, w_hh, *peep):
        hs, c = lstm_family_layer(cell, x, h0, c0, weights[0], w_hh, *weights[2:4], peep or None, zones=zones)
        return hs, c
    assert torch.autograd.gradcheck(run, (x, h0, c0, module.weight_hh, *(weights[4] or ())))


def test_a_kept_unit_is_exactly_its_previous_value():
    """All-true masks: the state never leaves (h0, c0); all-false: exactly the plain layer."""
    torch.manual_seed(2)
    module = make_cell("lstm", 2, H).double()
    x, h0, c0 = torch.randn(5, 2, 2, dtype=F64), torch.randn(2, H, dtype=F64), torch.randn(2, H, dtype=F64)
    hs, c = lstm_family_layer("lstm", x, h0, c0, *_layer_args("lstm", module), zones=torch.ones(5, 2, 2, H, dtype=bool))
    assert torch.equal(hs, h0.expand(5, 2, H)) and torch.equal(c, c0)
    plain = lstm_family_layer("lstm", x, h0, c0, *_layer_args("lstm", module))
    none_kept = lstm_family_layer("lstm", x, h0, c0, *_layer_args("lstm", module), zones=torch.zeros(5, 2, 2, H, dtype=bool))
    assert torch.equal(plain[0], none_kept[0]) and torch.equal(plain[1], none_kept[1])


@pytest.mark.parametrize("cell", BPTT_CELLS)
@pytest.mark.parametrize("rate", [False, True], ids=["masks", "expectation"])
def test_compiled_zone_kernels_equal_the_eager_ones(cell, rate, monkeypatch):
    """float32: the compiled zoned steps (forward_step_zoned / backward_step_zoned), or the compiled step
    with the eager expectation, against the eager steps, with padding."""
    kernels = fused_cpu.kernels()
    if kernels is None:
        pytest.skip("no C++ compiler here: the eager step runs instead")
    torch.manual_seed(3)
    module = make_cell(cell, 6, 16)
    x = torch.randn(20, 4, 6, requires_grad=True)
    h0, c0 = torch.randn(4, 16, requires_grad=True), torch.randn(4, 16, requires_grad=True)
    mask, zones = time_mask(torch.tensor([20, 13, 20, 5]), 20), torch.rand(20, 2, 4, 16) < 0.3
    zones = 0.3 if rate else zones
    results = []
    for compiled in (kernels, None):
        monkeypatch.setitem(fused_cpu._cache, "module", compiled)
        hs, c = lstm_family_layer(cell, x, h0, c0, *_layer_args(cell, module), mask=mask, zones=zones)
        grads = torch.autograd.grad(_weighted([hs * mask, c]), [x, h0, c0, *module.parameters()])
        results.append((hs, c, grads))
    (hs_a, c_a, g_a), (hs_b, c_b, g_b) = results
    torch.testing.assert_close(hs_a, hs_b, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c_a, c_b, atol=1e-6, rtol=1e-5)
    for a, b in zip(g_a, g_b):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm"])
def test_the_layer_runs_zoneout_on_the_bptt_and_equals_its_autograd_loop(cell):
    """Same seed, same draws: impl='auto' (the hand-written BPTT) == impl='autograd', stacked,
    bidirectional, padded, with recurrent dropout too; both train and evaluate alike."""
    layers = []
    for impl in ("auto", "autograd"):
        torch.manual_seed(4)
        layers.append(Recurrent(cell, 2, H, num_layers=2, bidirectional=True, zoneout=0.3,
                                recurrent_dropout=0.2, impl=impl).double())
    fast, ref = layers
    assert fast.path() == "bptt" and "model.recurrent_dropout and model.zoneout" in fast.paths()[0][2]
    assert ref.path() == "autograd"
    x, lengths = torch.randn(3, 5, 2, dtype=F64), torch.tensor([5, 3, 1])
    for training in (True, False):
        outs = []
        for layer in layers:
            layer.train(training)
            torch.manual_seed(5)
            out, (h, c) = layer(x, lengths)
            grads = torch.autograd.grad(_weighted([out, h, c]), list(layer.parameters()))
            outs.append((out, h, c, grads))
        for a, b in zip(outs[0][:3], outs[1][:3]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
        for a, b in zip(outs[0][3], outs[1][3]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", BPTT_CELLS)
def test_the_compiled_step_saturates_without_nan(cell, monkeypatch):
    """Huge pre-activations and cell states (a peephole char-LM reached them; -ffast-math turned the
    overflow into NaN): the compiled step gives the eager step's 0 / 1 / ±1, not NaN."""
    kernels = fused_cpu.kernels()
    if kernels is None:
        pytest.skip("no C++ compiler here: the eager step runs instead")
    module = make_cell(cell, 2, 8)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(400)
    x = torch.randn(3, 4, 2) * 50
    h0, c0 = torch.randn(4, 8) * 100, torch.randn(4, 8) * 300
    results = []
    for compiled in (kernels, None):
        monkeypatch.setitem(fused_cpu._cache, "module", compiled)
        results.append(lstm_family_layer(cell, x, h0, c0, *_layer_args(cell, module)))
    assert torch.isfinite(results[0][0]).all() and torch.isfinite(results[0][1]).all()
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)


def _compiled_or_skip():
    kernels = fused_cpu.kernels()
    if kernels is None:
        pytest.skip("no C++ compiler here: zoneout_masks draws with torch.rand instead")
    return kernels


def _binomial_bound(n, p, sigmas=6.0):
    """A tolerance on the mean of n Bernoulli(p) draws: `sigmas` binomial standard deviations."""
    return sigmas * (p * (1 - p) / n) ** 0.5


@pytest.mark.parametrize("z", [0.1, 0.5, 0.9])
def test_the_compiled_masks_are_bernoulli_z_per_unit_and_step(z):
    """The compiled draw (fused_cpu.zone_masks): rate z overall and per step, fresh at every step,
    and no pairing between the two elements one 64-bit hash word feeds (2j, 2j + 1), nor across steps."""
    _compiled_or_skip()
    torch.manual_seed(6)
    state = (torch.zeros(32, 64), torch.zeros(32, 64))
    keep = zoneout_masks(200, state, z, True)  # (T, 2, B, H) bool
    assert keep.shape == (200, 2, 32, 64) and keep.dtype == torch.bool
    d = keep.double()
    assert abs(d.mean().item() - z) < _binomial_bound(d.numel(), z)
    per_step = d.flatten(1).mean(1)  # (T,)
    assert (per_step - z).abs().max().item() < _binomial_bound(d[0].numel(), z)
    pairs = d.flatten().view(-1, 2)  # the two halves of one hash word
    assert abs((pairs[:, 0] * pairs[:, 1]).mean().item() - z * z) < _binomial_bound(len(pairs), z * z)
    consecutive = (d[1:] * d[:-1]).mean().item()  # the same unit at steps t and t + 1
    assert abs(consecutive - z * z) < _binomial_bound(d[1:].numel(), z * z)
    assert all(not torch.equal(keep[t], keep[t + 1]) for t in range(199))  # a fresh mask per step
    assert not torch.equal(keep[:, 0], keep[:, 1])  # h and c drawn apart


def test_the_compiled_masks_follow_torchs_seed_and_the_edge_rates():
    kernels = _compiled_or_skip()
    state = (torch.zeros(3, 5), torch.zeros(3, 5))
    draws = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        draws.append(zoneout_masks(9, state, 0.3, True))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    odd = torch.empty(7, dtype=torch.bool)  # an odd count: the last word feeds one element
    for z, expected in ((0.0, False), (1.0, True)):
        kernels.zone_masks(12345, z, odd)
        assert torch.equal(odd, torch.full((7,), expected))


def test_the_torch_fallback_draws_the_same_rate(monkeypatch):
    """Without the compiled kernels (no compiler, RNNCLI_FUSED_CPU=0) the masks come from torch.rand:
    the same Bernoulli(z), other bits."""
    _compiled_or_skip()
    state = (torch.zeros(16, 32), torch.zeros(16, 32))
    torch.manual_seed(9)
    compiled = zoneout_masks(100, state, 0.2, True).double()
    monkeypatch.setitem(fused_cpu._cache, "module", None)
    torch.manual_seed(9)
    fallback = zoneout_masks(100, state, 0.2, True).double()
    for d in (compiled, fallback):
        assert abs(d.mean().item() - 0.2) < _binomial_bound(d.numel(), 0.2)
    assert not torch.equal(compiled, fallback)


def test_the_layers_compiled_draws_replayed_in_the_autograd_loop_give_its_gradients(monkeypatch):
    """float32 on the compiled path end to end: record the masks the layer drew, replay them in the
    autograd reference loop (rnncli/nn/regularise.py), same outputs and gradients."""
    _compiled_or_skip()
    from rnncli.nn import recurrent
    drawn = []

    def recording(*args):
        drawn.append(recurrent_zoneout_masks(*args))
        return drawn[-1]
    recurrent_zoneout_masks = recurrent.zoneout_masks
    monkeypatch.setattr(recurrent, "zoneout_masks", recording)
    torch.manual_seed(10)
    layer = Recurrent("lstm", 6, 16, zoneout=0.25).train()
    assert layer.path() == "bptt"
    x = torch.randn(4, 30, 6)  # (B, T, I), batch_first
    out, (h, c) = layer(x)
    assert len(drawn) == 1 and drawn[0].dtype == torch.bool and drawn[0].any()
    cell = layer.cells[0]
    ref, (ref_h, ref_c) = run_cell_regularised(cell, True, x.transpose(0, 1), (torch.zeros(4, 16),) * 2,
                                               None, None, drawn[0])
    torch.testing.assert_close(out, ref.transpose(0, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c[0], ref_c, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(_weighted([out, c]), list(layer.parameters()))
    ref_grads = torch.autograd.grad(_weighted([ref.transpose(0, 1), ref_c[None]]), list(layer.parameters()))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
