"""The hand-written BPTT path (rnncli/nn/bptt.py) against the plain autograd loop and nn.LSTM."""

from __future__ import annotations

import pytest
import torch

from rnncli.nn import fused_cpu
from rnncli.nn.bptt import block_permutation, lstm_family_layer
from rnncli.nn.cells import cells_where, make_cell
from rnncli.nn.recurrent import Recurrent, run_cell, time_mask

KINDS = cells_where(lambda c: c.bptt_kind in fused_cpu.KINDS)  # the LSTM family's hand-written BPTT
F64 = torch.float64


def _weights(cell):
    peep = tuple(getattr(cell, name) for name in cell.extra_params) or None
    return cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, peep


def _inputs(steps=6, batch=3, inputs=4, hidden=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch, inputs, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(batch, hidden, dtype=F64, generator=gen, requires_grad=True)
    c0 = torch.randn(batch, hidden, dtype=F64, generator=gen, requires_grad=True)
    return x, h0, c0


def _layer_loss(outputs, gen_seed=1):
    """A random linear functional of every output, so every gradient path is exercised."""
    gen = torch.Generator().manual_seed(gen_seed)
    return sum((o * torch.randn(o.shape, dtype=o.dtype, generator=gen)).sum() for o in outputs)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lengths", [None, (6, 3, 1)])
def test_layer_equals_autograd_loop_values_and_every_gradient(kind, lengths):
    torch.manual_seed(0)
    cell = make_cell(kind, 4, 5).double()
    x, h0, c0 = _inputs()
    mask = None if lengths is None else time_mask(torch.tensor(lengths), 6)
    hs, c_last = lstm_family_layer(kind, x, h0, c0, *_weights(cell), mask=mask)
    out = hs if mask is None else hs * mask
    ref_out, (ref_h, ref_c) = run_cell(cell, x, (h0, c0), mask)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    torch.testing.assert_close(hs[-1], ref_h, atol=1e-12, rtol=0)
    torch.testing.assert_close(c_last, ref_c, atol=1e-12, rtol=0)
    params = [x, h0, c0, *cell.parameters()]
    ours = torch.autograd.grad(_layer_loss([out, hs[-1], c_last]), params)
    ref = torch.autograd.grad(_layer_loss([ref_out, ref_h, ref_c]), params)
    for name, a, b in zip(["x", "h0", "c0"] + [n for n, _ in cell.named_parameters()], ours, ref):
        assert (a - b).abs().max() < 1e-6, name


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float64_with_padding(kind):
    torch.manual_seed(1)
    cell = make_cell(kind, 3, 2).double()
    x, h0, c0 = _inputs(steps=4, batch=2, inputs=3, hidden=2, seed=2)
    mask = time_mask(torch.tensor([4, 2]), 4)
    w_ih, w_hh, b_ih, b_hh, peep = _weights(cell)
    leaves = (x, h0, c0, w_ih, w_hh, b_ih, b_hh) + (peep or ())

    def fn(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *peep):
        return lstm_family_layer(kind, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep or None, mask)

    assert torch.autograd.gradcheck(fn, leaves)


def test_missing_or_extra_peepholes_are_errors():
    cell = make_cell("peephole_lstm", 3, 2)
    x, h = torch.zeros(2, 1, 3), torch.zeros(1, 2)
    w_ih, w_hh, b_ih, b_hh, peep = _weights(cell)
    with pytest.raises(ValueError, match="peephole"):
        lstm_family_layer("peephole_lstm", x, h, h, w_ih, w_hh, b_ih, b_hh, None)
    with pytest.raises(ValueError, match="gru"):
        lstm_family_layer("gru", x, h, h, w_ih, w_hh, b_ih, b_hh, None)


def test_block_permutation_groups_the_gates():
    # lstm: torch i f g o -> i f o g; cifg: f g o -> f o g; peephole keeps i f g o
    assert block_permutation("lstm", 1).tolist() == [0, 1, 3, 2]
    assert block_permutation("cifg_lstm", 2).tolist() == [0, 1, 4, 5, 2, 3]
    assert block_permutation("peephole_lstm", 1).tolist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------- Recurrent paths
def _pair(cell, impl_a, impl_b, **kw):
    torch.manual_seed(3)
    a = Recurrent(cell, 4, 5, impl=impl_a, **kw).double()
    b = Recurrent(cell, 4, 5, impl=impl_b, **kw).double()
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("cell", ["peephole_lstm", "cifg_lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_fused_equals_autograd_stacked_packed(cell, bidirectional):
    fast, slow = _pair(cell, "auto", "autograd", num_layers=2, bidirectional=bidirectional)
    assert fast.path() == "bptt" and slow.path() == "autograd"
    x = torch.randn(3, 7, 4, dtype=F64, requires_grad=True)
    lengths = torch.tensor([7, 2, 5])
    outs = []
    for model in (fast, slow):
        out, (h, c) = model(x, lengths)
        loss = _layer_loss([out, h, c])
        grads = torch.autograd.grad(loss, [x, *model.parameters()])
        outs.append((out, h, c, grads))
    for a, b in zip(outs[0][:3], outs[1][:3]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    for a, b in zip(outs[0][3], outs[1][3]):
        assert (a - b).abs().max() < 1e-6


def test_lstm_on_the_bptt_path_equals_nn_lstm():
    torch_path, ours = _pair("lstm", "auto", "bptt", num_layers=2, bidirectional=True)
    assert torch_path.path() == "torch" and ours.path() == "bptt"
    x = torch.randn(2, 6, 4, dtype=F64, requires_grad=True)
    lengths = torch.tensor([6, 3])
    results = []
    for model in (torch_path, ours):
        out, (h, c) = model(x, lengths)
        results.append((out, h, c, torch.autograd.grad(_layer_loss([out, h, c]), [x, *model.parameters()])))
    for a, b in zip(results[0][:3], results[1][:3]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    for a, b in zip(results[0][3], results[1][3]):
        assert (a - b).abs().max() < 1e-6


def test_peephole_with_zero_peepholes_on_the_bptt_path_equals_nn_lstm():
    torch.manual_seed(4)
    ours = Recurrent("peephole_lstm", 4, 5, num_layers=2).double()
    ref = Recurrent("lstm", 4, 5, num_layers=2).double()
    with torch.no_grad():
        for layer, cell in enumerate(ours.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(ref.rnn, f"{name}_l{layer}"))
            for name in ("weight_ci", "weight_cf", "weight_co"):
                getattr(cell, name).zero_()
    x = torch.randn(3, 8, 4, dtype=F64)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-12, rtol=0)


def test_bf16_compute_tracks_fp32():
    """bf16 matmuls with fp32 state: close to fp32 (bf16 has ~3 significant digits)."""
    torch.manual_seed(5)
    cell = make_cell("peephole_lstm", 8, 16)
    x = torch.randn(10, 4, 8)
    h = torch.zeros(4, 16)
    full, _ = lstm_family_layer("peephole_lstm", x, h, h, *_weights(cell))
    half, _ = lstm_family_layer("peephole_lstm", x, h, h, *_weights(cell), compute_dtype=torch.bfloat16)
    assert half.dtype == torch.float32
    assert 0 < (full - half).abs().max() < 0.05


def test_bf16_autocast_routes_lstm_to_the_bptt_path_and_trains():
    torch.manual_seed(6)
    model = Recurrent("lstm", 4, 8)
    x = torch.randn(2, 5, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.path("cpu") == "bptt"
        (layers, impl, why), = model.paths("cpu")
        assert impl.startswith("hand-written BPTT") and "bfloat16 matmuls, fp32 cell state" in why
        out, _ = model(x)
    assert model.path("cpu") == "torch"
    out.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("cell,impl", [("gru", "bptt"), ("lstm", "autograd"), ("peephole_lstm", "fast")])
def test_bad_impl_is_a_clear_error(cell, impl):
    with pytest.raises(ValueError, match="impl"):
        Recurrent(cell, 3, 4, impl=impl)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_path_with_packed_weights_matches_the_autograd_loop(kind):
    """In float32 on the CPU the per-step matmuls run on oneDNN-packed weights: same numbers."""
    torch.manual_seed(7)
    cell = make_cell(kind, 6, 16)
    x = torch.randn(20, 4, 6, requires_grad=True)
    h0, c0 = torch.randn(4, 16, requires_grad=True), torch.randn(4, 16, requires_grad=True)
    mask = time_mask(torch.tensor([20, 13, 20, 5]), 20)
    hs, c_last = lstm_family_layer(kind, x, h0, c0, *_weights(cell), mask=mask)
    ref_out, (ref_h, ref_c) = run_cell(cell, x, (h0, c0), mask)
    torch.testing.assert_close(hs * mask, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c_last, ref_c, atol=1e-5, rtol=1e-5)
    params = [x, h0, c0, *cell.parameters()]
    ours = torch.autograd.grad(_layer_loss([hs * mask, hs[-1], c_last]), params)
    ref = torch.autograd.grad(_layer_loss([ref_out, ref_h, ref_c]), params)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- fused C++ steps
@pytest.fixture(scope="module")
def fused_kernels():
    from rnncli.nn import fused_cpu

    module = fused_cpu.kernels()
    if module is None:
        pytest.skip("no C++ compiler here: the eager step runs instead")
    return module


@pytest.mark.parametrize("kind", KINDS)
def test_fused_cpu_steps_equal_the_eager_steps(kind, fused_kernels, monkeypatch):
    """Same layer, same float32 inputs: the compiled step and the eager step agree."""
    from rnncli.nn import fused_cpu

    torch.manual_seed(8)
    cell = make_cell(kind, 6, 16)
    x = torch.randn(20, 4, 6, requires_grad=True)
    h0, c0 = torch.randn(4, 16, requires_grad=True), torch.randn(4, 16, requires_grad=True)
    mask = time_mask(torch.tensor([20, 13, 20, 5]), 20)
    results = []
    for module in (fused_kernels, None):
        monkeypatch.setitem(fused_cpu._cache, "module", module)
        hs, c_last = lstm_family_layer(kind, x, h0, c0, *_weights(cell), mask=mask)
        grads = torch.autograd.grad(_layer_loss([hs * mask, c_last]), [x, h0, c0, *cell.parameters()])
        results.append((hs, c_last, grads))
    (hs_a, c_a, g_a), (hs_b, c_b, g_b) = results
    torch.testing.assert_close(hs_a, hs_b, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c_a, c_b, atol=1e-6, rtol=1e-5)
    for a, b in zip(g_a, g_b):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_fused_cpu_can_be_switched_off(monkeypatch):
    from rnncli.nn import fused_cpu

    monkeypatch.setenv("RNNCLI_FUSED_CPU", "0")
    monkeypatch.setattr(fused_cpu, "_cache", {})
    assert fused_cpu.kernels() is None


def test_the_kernel_cache_name_follows_the_source_the_flags_and_the_environment(monkeypatch):
    """Two venvs (other torch include paths in the build commands) must not rebuild each other's cache."""
    from torch.utils import cpp_extension

    name = fused_cpu.build_name("rnncli_fused_cpu_", "source", ["-O3"])
    assert name == fused_cpu.build_name("rnncli_fused_cpu_", "source", ["-O3"])
    assert name != fused_cpu.build_name("rnncli_fused_cpu_", "source 2", ["-O3"])
    assert name != fused_cpu.build_name("rnncli_fused_cpu_", "source", ["-O2"])
    monkeypatch.setattr(cpp_extension, "include_paths", lambda *a, **k: ["/elsewhere/venv/torch/include"])
    assert name != fused_cpu.build_name("rnncli_fused_cpu_", "source", ["-O3"])
