"""Step-level cells: equal to torch's cells, the peephole / CIFG equations, gradcheck, registry."""
import pytest
import torch
from torch import nn

from rnncli.nn.cells import (
    ABLATIONS,
    CELL_NAMES,
    CIFGLSTMCell,
    PeepholeLSTMCell,
    cell_class,
    cells_where,
    make_cell,
    num_gates,
    zero_state,
)

B, I, H = 3, 4, 5

TORCH_CELLS = {
    ("rnn", "tanh"): lambda: nn.RNNCell(I, H, nonlinearity="tanh"),
    ("rnn", "relu"): lambda: nn.RNNCell(I, H, nonlinearity="relu"),
    ("lstm", "tanh"): lambda: nn.LSTMCell(I, H),
    ("gru", "tanh"): lambda: nn.GRUCell(I, H),
}


def random_state(cell, batch=B, hidden=H, dtype=torch.float32):
    h = torch.randn(batch, hidden, dtype=dtype)
    return (h, torch.randn(batch, hidden, dtype=dtype)) if cell_class(cell).state_kind == "hc" else h


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cell,nonlinearity", list(TORCH_CELLS))
def test_step_cell_equals_torch_cell(cell, nonlinearity):
    torch.manual_seed(0)
    ref = TORCH_CELLS[cell, nonlinearity]()
    ours = make_cell(cell, I, H, nonlinearity=nonlinearity)
    ours.load_state_dict(ref.state_dict())  # same names and layout as torch.nn
    x = torch.randn(B, I)
    for state in (None, random_state(cell)):
        for a, b in zip(as_tuple(ours(x, state)), as_tuple(ref(x, state))):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_peephole_with_zero_peepholes_equals_lstm_cell():
    torch.manual_seed(0)
    ref, ours = nn.LSTMCell(I, H), PeepholeLSTMCell(I, H)
    ours.load_state_dict(ref.state_dict(), strict=False)
    for name in ("weight_ci", "weight_cf", "weight_co"):
        nn.init.zeros_(getattr(ours, name))
    x, state = torch.randn(B, I), random_state("lstm")
    for a, b in zip(ours(x, state), ref(x, state)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_peephole_follows_its_equations():
    """Gers & Schmidhuber 2000: i, f see c_{t-1}; o sees the new c_t."""
    torch.manual_seed(0)
    cell = PeepholeLSTMCell(I, H)
    x, (h, c) = torch.randn(B, I), random_state("lstm")
    pre = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    pi, pf, pg, po = pre.split(H, dim=1)
    i = torch.sigmoid(pi + cell.weight_ci * c)
    f = torch.sigmoid(pf + cell.weight_cf * c)
    c_new = f * c + i * torch.tanh(pg)
    h_new = torch.sigmoid(po + cell.weight_co * c_new) * torch.tanh(c_new)
    got_h, got_c = cell(x, (h, c))
    torch.testing.assert_close(got_c, c_new)
    torch.testing.assert_close(got_h, h_new)


def test_cifg_input_gate_is_exactly_one_minus_forget():
    torch.manual_seed(0)
    cell = CIFGLSTMCell(I, H)
    x, (h, c) = torch.randn(B, I), random_state("cifg_lstm")
    xw = x @ cell.weight_ih.T + cell.bias_ih
    gates = cell.gates(xw, (h, c))
    assert torch.equal(gates["i"], 1 - gates["f"])
    pre = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    pf, pg, po = pre.split(H, dim=1)
    torch.testing.assert_close(gates["f"], torch.sigmoid(pf))  # block order f, g, o
    torch.testing.assert_close(gates["g"], torch.tanh(pg))
    torch.testing.assert_close(gates["o"], torch.sigmoid(po))
    got_h, got_c = cell(x, (h, c))
    f, g = gates["f"], gates["g"]
    torch.testing.assert_close(got_c, f * c + (1 - f) * g)
    torch.testing.assert_close(got_h, gates["o"] * torch.tanh(got_c))


@pytest.mark.parametrize("cell", ["peephole_lstm", "cifg_lstm"])
def test_custom_cell_gradcheck(cell):
    torch.manual_seed(0)
    module = make_cell(cell, 2, 3).double()
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    h, c = (s.requires_grad_() for s in random_state(cell, 2, 3, torch.float64))
    params = dict(module.named_parameters())

    def step(x, h, c, *values):
        return torch.func.functional_call(module, dict(zip(params, values)), (x, (h, c)))

    assert torch.autograd.gradcheck(step, (x, h, c, *params.values()))


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_recurrent_step_takes_the_input_projection(cell):
    torch.manual_seed(0)
    module = make_cell(cell, I, H)
    x, state = torch.randn(B, I), random_state(cell)
    xw = nn.functional.linear(x, module.weight_ih, module.bias_ih)  # bias_ih None: the LN cells
    for a, b in zip(as_tuple(module.recurrent_step(xw, state)), as_tuple(module(x, state))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_none_state_means_zeros(cell):
    module, x = make_cell(cell, I, H), torch.randn(B, I)
    for a, b in zip(as_tuple(module(x)), as_tuple(module(x, zero_state(cell, B, H)))):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_formula(cell, bias):
    """G*(H*I + H*H + 2H) per cell, +3H for the peepholes; 2H drops without biases. Scan cells
    (gates from the input only) have no W_hh and no b_hh: G*(H*I + H). The LN cells: gains and betas
    (G*H,) for each matmul instead of the biases, and gain, beta (H,) of LN(c)."""
    module, extra = make_cell(cell, I, H, bias=bias), cell_class(cell).extra_params
    if make_cell(cell, I, H).bias_ih is None:  # LN: no biases; (G*H,) or (H,) gains [and betas]
        ln = dict(module.named_parameters(recurse=False))
        ln = {n: p for n, p in ln.items() if n.startswith("ln_")}
        assert len(ln) == (len(extra) if bias else len(extra) // 2)
        assert all(p.shape in ((num_gates(cell) * H,), (H,)) for p in ln.values())
        expected = num_gates(cell) * (H * I + H * H) + sum(p.numel() for p in ln.values())
    elif cell_class(cell).sequence_kind == "scan":
        expected = num_gates(cell) * (H * I + (H if bias else 0))
    else:
        expected = num_gates(cell) * (H * I + H * H + (2 * H if bias else 0))
        expected += H * len(extra)  # the peepholes: (H,) each
    assert sum(p.numel() for p in module.parameters()) == expected
    assert module.weight_ih.shape == (num_gates(cell) * H, I)
    if cell_class(cell).sequence_kind == "loop":
        assert module.weight_hh.shape == (num_gates(cell) * H, H)
    else:
        assert module.weight_hh is None and module.bias_hh is None


def recurrent_params(cell):
    module = make_cell(cell, I, H)
    return module.weight_hh.numel() + module.bias_hh.numel()


@pytest.mark.parametrize(
    "cell,factor", [("lstm", 4), ("gru", 3), ("cifg_lstm", 3), ("peephole_lstm", 4)]
)
def test_recurrent_parameters_are_a_multiple_of_elman(cell, factor):
    assert recurrent_params(cell) == factor * recurrent_params("rnn")


def test_num_gates():
    expected = {"rnn": 1, "lstm": 4, "gru": 3, "peephole_lstm": 4, "cifg_lstm": 3}
    assert {c: num_gates(c) for c in expected} == expected


def test_unknown_cell_names_the_value_and_closest_match():
    with pytest.raises(ValueError, match=r"'lstn'.*rnn, lstm, gru.*did you mean 'lstm'"):
        make_cell("lstn", I, H)
    with pytest.raises(ValueError, match="unknown cell"):
        num_gates("transformer")


def test_nonlinearity_only_for_rnn():
    with pytest.raises(ValueError, match="'relu'.*only configurable for cell 'rnn'"):
        make_cell("gru", I, H, nonlinearity="relu")
    with pytest.raises(ValueError, match="'sigmoid'.*tanh, relu"):
        make_cell("rnn", I, H, nonlinearity="sigmoid")


# --------------------------------------------------------------------------- what each class declares
FACTS = {  # the Cell protocol's class attributes and what each may hold
    "name": str, "gate_names": tuple, "num_gates": int, "state_kind": str, "forget_block": (int, type(None)),
    "sigmoid_gates": tuple, "nonlinearities": tuple, "torch_kernel": (type, type(None)), "folds_b_hh": bool,
    "bptt_kind": (str, type(None)), "bptt_gates": (tuple, type(None)), "extra_params": tuple,
    "ablations": tuple,
    "sequence_kind": str, "configurable_activations": bool,
}


def test_the_protocol_lists_every_fact():
    from typing import get_type_hints

    from rnncli.nn.cells import Cell
    from rnncli.nn.state import State

    # the package names torch's types for type checkers only (it loads without torch): give them here
    torch_names = {"Tensor": torch.Tensor, "nn": torch.nn, "State": State}
    declared = {k for k, v in get_type_hints(Cell, localns=torch_names).items() if "ClassVar" in str(v)}
    assert declared == set(FACTS)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_every_cell_class_declares_every_fact_consistently(cell):
    from rnncli.nn import bptt_ln, fused_cpu

    cls = cell_class(cell)
    for fact, kind in FACTS.items():
        assert fact in vars(cls), f"{cls.__name__} does not declare {fact}"  # its own, not inherited
        assert isinstance(getattr(cls, fact), kind), fact
    assert cls.name == cell and cls.num_gates == len(cls.gate_names) == len(set(cls.gate_names))
    assert cls.state_kind in ("h", "hc")
    assert cls.forget_block is None or cls.gate_names[cls.forget_block] == "f"
    assert set(cls.sigmoid_gates) <= set(cls.gate_names) and cls.nonlinearities[0] == "tanh"
    if cls.bptt_kind in bptt_ln.KINDS:  # the layer-normalised BPTT: torch's gate order, LN betas
        assert cls.bptt_gates == cls.gate_names and not cls.folds_b_hh and cls.extra_params
    elif cls.bptt_kind is not None:  # the LSTM family's BPTT: (h, c), one bias sum, a known kernel
        assert cls.bptt_kind in fused_cpu.KINDS and cls.state_kind == "hc" and cls.folds_b_hh
        assert sorted(cls.bptt_gates) == sorted(cls.gate_names) and "g" in cls.bptt_gates
    else:
        assert cls.bptt_gates is None
    module = make_cell(cell, I, H)
    biases = {n for n in ("bias_ih", "bias_hh") if getattr(module, n) is not None}  # None: the LN cells
    names = {n for n, _ in module.named_parameters()}
    assert set(cls.ablations) <= set(ABLATIONS)
    assert cls.sequence_kind in ("loop", "scan")
    if cls.sequence_kind == "loop":
        assert names == {"weight_ih", "weight_hh", *biases, *cls.extra_params}
    else:  # gates from the input only: no W_hh, no kernel, state h, and coefficients for both scan forms
        assert names == {"weight_ih", "bias_ih"} and cls.torch_kernel is None and cls.state_kind == "h"
        assert not cls.extra_params and callable(cls.log_coefficients) and callable(cls.coefficients)


@pytest.mark.parametrize("cell", cells_where(lambda c: c.torch_kernel is not None))
def test_the_torch_kernel_has_the_same_layout_and_equations(cell):
    """Same gate blocks (G*H rows), same state kind, same numbers over a whole sequence."""
    torch.manual_seed(0)
    cls = cell_class(cell)
    ours, ref = make_cell(cell, I, H), cls.torch_kernel(I, H)
    assert ref.weight_ih_l0.shape == (cls.num_gates * H, I) and ref.weight_hh_l0.shape == (cls.num_gates * H, H)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name + "_l0").copy_(getattr(ours, name))
    x = torch.randn(6, B, I)
    out, final = ref(x)
    assert isinstance(final, tuple) == (cls.state_kind == "hc")
    state = zero_state(cell, B, H)
    for t in range(6):
        state = ours(x[t], state)
        torch.testing.assert_close(as_tuple(state)[0], out[t], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gate_activations_are_the_declared_sigmoid_gates(cell):
    """Labels name the sigmoid gates in order ('forget f', ...), values in (0, 1); the forget gate is
    the block the forget bias goes into (a large forget bias with zero weights opens it fully)."""
    from rnncli.nn.init import init_recurrent_

    torch.manual_seed(0)
    cls, module = cell_class(cell), make_cell(cell, I, H)
    x, state = torch.randn(B, I), random_state(cell)

    def gates():
        xw = nn.functional.linear(x, module.weight_ih, module.bias_ih)
        return module.gate_activations(xw, state, module.recurrent_step(xw, state))

    assert [label.split()[1] for label in gates()] == list(cls.sigmoid_gates)
    assert all(((v > 0) & (v < 1)).all() for v in gates().values())
    init_recurrent_(module, cell, H, forget_bias=30.0)
    with torch.no_grad():  # every pre-activation = its bias (peepholes and LN gains off too)
        for name in ("weight_ih", "weight_hh", *(n for n in cls.extra_params if not n.endswith("_bias"))):
            if getattr(module, name) is not None:  # scan cells have no weight_hh
                getattr(module, name).zero_()
    for label, value in gates().items():
        expected = 1.0 if label.startswith("forget") else 0.5
        torch.testing.assert_close(value, torch.full((B, H), expected))
