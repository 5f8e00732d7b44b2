"""minGRU / minLSTM: both forms of the scan (the CPU's sequential linear scan with its hand-written
backward, the parallel log-space scan) equal the sequential loop (float64), gradcheck, padding, the
one-token stepper, mixed precision and the config rules for model.impl."""

import pytest
import torch

from rnncli.config import load_config
from rnncli.errors import ConfigError
from rnncli.models.char_lm import CharLM
from rnncli.nn.cells import cells_where, make_cell
from rnncli.nn.recurrent import Recurrent
from rnncli.nn import scan as scan_module
from rnncli.nn.scan import linear_scan, log_scan, run_scan
from rnncli.nn.state import join_state, split_state
from rnncli.nn.stepper import Stepper

SCAN_CELLS = cells_where(lambda c: c.sequence_kind == "scan")
EVERY_SCAN_CELL = pytest.mark.parametrize("cell", SCAN_CELLS)


@pytest.fixture(params=["linear", "linear in chunks", "log"])
def form(request, monkeypatch):
    """Run the test with the CPU's scan in each form (chunks: 1-2 steps each, so chunks meet mid-sequence)."""
    monkeypatch.setitem(scan_module.FORMS, "cpu", request.param.split()[0])
    if request.param == "linear in chunks":
        monkeypatch.setattr(scan_module, "CHUNK_ELEMENTS", 12)
    return request.param


def test_the_scan_cells_are_mingru_and_minlstm():
    assert SCAN_CELLS == ("mingru", "minlstm")


def pair(cell: str, **kwargs) -> tuple[Recurrent, Recurrent]:
    """The same float64 weights on the scan and on the sequential loop."""
    torch.manual_seed(0)
    scan = Recurrent(cell, 3, 5, impl="scan", **kwargs).double()
    with torch.no_grad():  # biases away from zero, so every gate term matters
        for p in scan.parameters():
            p.uniform_(-1.5, 1.5)
    loop = Recurrent(cell, 3, 5, impl="autograd", **kwargs).double()
    loop.load_state_dict(scan.state_dict())
    return scan, loop


@EVERY_SCAN_CELL
@pytest.mark.parametrize("lengths", [None, [7, 3, 1, 5]], ids=["full", "padded"])
def test_scan_equals_the_loop_stacked_bidirectional(cell, lengths, form):
    scan, loop = pair(cell, num_layers=2, bidirectional=True)
    assert scan.path() == "scan" and loop.path() == "autograd"
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    h0 = torch.randn(4, 4, 5, dtype=torch.float64)  # any initial state, negative entries too
    lengths = None if lengths is None else torch.tensor(lengths)
    results = []
    for model in (scan, loop):
        xi, hi = x.clone().requires_grad_(), h0.clone().requires_grad_()
        out, final = model(xi, lengths, hi)
        (out.sin().sum() + final.cos().sum()).backward()
        results.append((out, final, xi.grad, hi.grad, [p.grad for p in model.parameters()]))
    (o1, f1, gx1, gh1, gp1), (o2, f2, gx2, gh2, gp2) = results
    torch.testing.assert_close(o1, o2, rtol=0, atol=1e-10)
    torch.testing.assert_close(f1, f2, rtol=0, atol=1e-10)
    for a, b in zip([gx1, gh1, *gp1], [gx2, gh2, *gp2]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    if lengths is not None:
        assert torch.equal(o1[1, 3:], torch.zeros_like(o1[1, 3:]))  # zero past the length


@EVERY_SCAN_CELL
def test_a_padded_sequence_equals_the_same_sequence_alone(cell, form):
    scan, _ = pair(cell, num_layers=2, bidirectional=True)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    out, final = scan(x, torch.tensor([6, 4]))
    alone, final_alone = scan(x[1:, :4])
    torch.testing.assert_close(out[1:, :4], alone, rtol=0, atol=1e-12)
    torch.testing.assert_close(final[:, 1:], final_alone, rtol=0, atol=1e-12)


@EVERY_SCAN_CELL
def test_gradcheck_of_the_scan(cell, form):
    torch.manual_seed(1)
    step_cell = make_cell(cell, 2, 3).double()
    x = torch.randn(5, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True]] * 3 + [[True, False]] * 2).unsqueeze(-1)  # (T, B, 1)
    params = (step_cell.weight_ih, step_cell.bias_ih)

    def f(x, h0, *_):
        return run_scan(step_cell, x, h0, mask)

    assert torch.autograd.gradcheck(f, (x, h0, *params))


def test_log_scan_is_the_linear_recurrence():
    torch.manual_seed(2)
    a, b = torch.rand(6, 2, 3, dtype=torch.float64), torch.rand(6, 2, 3, dtype=torch.float64)
    h0 = h = torch.randn(2, 3, dtype=torch.float64)
    expected = []
    for t in range(6):
        h = a[t] * h + b[t]
        expected.append(h)
    got = log_scan(a.log(), b.log(), h0)
    torch.testing.assert_close(got, torch.stack(expected), rtol=0, atol=1e-12)


def test_linear_scan_and_its_backward_are_the_recurrence_under_autograd():
    torch.manual_seed(2)
    a, b = torch.rand(6, 2, 3, dtype=torch.float64), torch.randn(6, 2, 3, dtype=torch.float64)
    h0 = torch.randn(2, 3, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
    h, expected = leaves[2], []
    for t in range(6):  # the plain loop, differentiated by autograd
        h = leaves[0][t] * h + leaves[1][t]
        expected.append(h)
    expected = torch.stack(expected)
    weights = torch.randn(6, 2, 3, dtype=torch.float64)
    reference = torch.autograd.grad((expected * weights).sum(), leaves)
    mine = [t.clone().requires_grad_() for t in (a, b, h0)]
    got = linear_scan(*mine)
    torch.testing.assert_close(got, expected.detach(), rtol=0, atol=1e-12)
    for g, r in zip(torch.autograd.grad((got * weights).sum(), mine), reference):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(linear_scan, mine)


@EVERY_SCAN_CELL
def test_coefficients_are_the_exp_of_the_log_coefficients_and_the_step(cell):
    torch.manual_seed(5)
    step_cell = make_cell(cell, 2, 3).double()
    xw = torch.randn(4, 2, step_cell.weight_ih.shape[0], dtype=torch.float64) * 3
    a, b = step_cell.coefficients(xw)
    log_a, log_b = step_cell.log_coefficients(xw)
    torch.testing.assert_close(a, log_a.exp(), rtol=1e-12, atol=0)
    torch.testing.assert_close(b, log_b.exp(), rtol=1e-12, atol=0)
    h = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(step_cell.pointwise(xw[0], h), a[0] * h + b[0], rtol=0, atol=1e-12)


@EVERY_SCAN_CELL
@pytest.mark.parametrize("num_layers", [1, 2])
def test_stepper_equals_the_full_forward(cell, num_layers):
    torch.manual_seed(3)
    model = CharLM(vocab_size=7, embedding_dim=5, cell=cell, hidden_size=6, num_layers=num_layers).eval()
    ids = torch.randint(0, 7, (2, 9))
    with torch.no_grad():
        out, final = model.rnn(model.embedding(ids))
        stepper = Stepper(model.rnn, model.embedding)
        state = stepper.initial_state(2)
        for t in range(9):
            h, state = stepper.step(ids[:, t], state)
            torch.testing.assert_close(h, out[:, t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(join_state(state), final, rtol=1e-5, atol=1e-6)
    assert all(s.shape == (2, 6) for s in split_state(final))  # constant-size state: h per layer


@EVERY_SCAN_CELL
def test_bf16_autocast_runs_the_scan_in_float32(cell):
    torch.manual_seed(4)
    model = Recurrent(cell, 3, 8, num_layers=2)
    x = torch.randn(2, 50, 3)
    ref, _ = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, final = model(x, torch.tensor([50, 20]))
        out.float().sum().backward()
    assert out.dtype == torch.float32 and final.dtype == torch.float32
    torch.testing.assert_close(out[0], ref[0], rtol=0.05, atol=0.05)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@EVERY_SCAN_CELL
def test_auto_picks_the_scan_linear_on_the_cpu_log_space_elsewhere_and_the_report_says_so(cell):
    model = Recurrent(cell, 3, 4)
    assert model.path("cpu") == "scan" and "sequential linear scan" in model.paths("cpu")[0][1]
    assert model.path("cuda") == "scan" and "parallel log-space scan" in model.paths("cuda")[0][1]
    assert model.layer_weights(0)[1] is None  # no W_hh


@pytest.mark.parametrize("cell,impl", [("cifg_lstm", "scan"), ("peephole_lstm", "scan"), ("mingru", "bptt")])
def test_impl_a_cell_lacks_is_a_config_error(make_config, cell, impl):
    with pytest.raises(ConfigError, match=rf"model\.impl = '{impl}' is not a path of cell '{cell}'. Allowed"):
        load_config(make_config(model={"cell": cell, "impl": impl}))


def test_impl_of_a_scan_cell_defaults_to_auto_and_may_force_the_loop(make_config):
    assert load_config(make_config(model={"cell": "minlstm"}))["model"]["impl"] == "auto"
    assert load_config(make_config(model={"cell": "mingru", "impl": "autograd"}))["model"]["impl"] == "autograd"
