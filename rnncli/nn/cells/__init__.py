"""Step-level recurrent cells: one class per cell, each describing itself; one registry by name.

Every cell follows the same contract (see `Cell`):

    cell(x_t, state=None) -> new_state              # x_t (B, I); state h (B, H) or (h, c)
    cell.recurrent_step(xw_t, state) -> new_state   # xw_t = x_t @ weight_ih.T + bias_ih, (B, G*H)

`recurrent_step` lets a sequence layer compute the input projection for all time steps in one
matmul and loop only over the recurrent part (as in pytorch `benchmarks/fastrnns`).

Parameter names and layouts follow `torch.nn`: weight_ih (G*H, I), weight_hh (G*H, H),
bias_ih (G*H,), bias_hh (G*H,), with G gate blocks stacked in torch's gate order, so weights can
be copied into `nn.RNN` / `nn.LSTM` / `nn.GRU` and compared.

What a cell *is* — its gates, state, forget block, torch kernel, hand-written-BPTT equations — is
declared on its class (the `Cell` protocol's class attributes), and the layer, init, BPTT, stepper,
diagnose and the config schema ask the class. A new cell is one file here plus one entry in
`CELLS` below (plus a kernel in rnncli/nn/bptt.py and fused_cpu.py only if it wants that path).
"""
from __future__ import annotations

import difflib
from typing import Callable, ClassVar, Protocol

from torch import Tensor, nn

from rnncli.nn.cells.ablation import ABLATIONS, AblatedLSTMCell
from rnncli.nn.activations import check_activations, is_default
from rnncli.nn.cells.cifg import CIFGLSTMCell
from rnncli.nn.cells.gru import GRUCell
from rnncli.nn.cells.ln_gru import LayerNormGRUCell
from rnncli.nn.cells.ln_lstm import LayerNormLSTMCell
from rnncli.nn.cells.lstm import LSTMCell
from rnncli.nn.cells.mingru import MinGRUCell
from rnncli.nn.cells.minlstm import MinLSTMCell
from rnncli.nn.cells.peephole import PeepholeLSTMCell
from rnncli.nn.cells.rnn import RNNCell
from rnncli.nn.state import State
from rnncli.nn.state import zero_state as _zeros


class Cell(Protocol):
    """What a cell class declares (class attributes) and what its instances do."""

    name: ClassVar[str]  # registry name, the value of `model.cell`
    gate_names: ClassVar[tuple[str, ...]]  # H-row blocks of weight_ih / weight_hh, torch's order
    num_gates: ClassVar[int]  # G = len(gate_names)
    state_kind: ClassVar[str]  # "h": the state is h; "hc": it is (h, c)
    forget_block: ClassVar[int | None]  # block index of the forget gate (forget_bias), or None
    sigmoid_gates: ClassVar[tuple[str, ...]]  # gates whose values are σ(.) in (0, 1)
    nonlinearities: ClassVar[tuple[str, ...]]  # allowed `nonlinearity` values, default first
    torch_kernel: ClassVar[type[nn.RNNBase] | None]  # nn.RNN / nn.LSTM / nn.GRU with these equations
    folds_b_hh: ClassVar[bool]  # every block's pre-activation is xw + h W_hh^T + b_hh (b_hh can join b_ih)
    # hand-written BPTT equations: the LSTM family's in rnncli/nn/bptt.py and fused_cpu.py (its KINDS),
    # the layer-normalised cells' in bptt_ln.py and fused_ln.py; None: no hand-written BPTT
    bptt_kind: ClassVar[str | None]
    bptt_gates: ClassVar[tuple[str, ...] | None]  # gate order in the BPTT's and compiled step's rows
    extra_params: ClassVar[tuple[str, ...]]  # parameters beyond the torch four, in the BPTT's order
    ablations: ClassVar[tuple[str, ...]]  # Greff et al.'s ablations it takes (model.ablate; cells/ablation.py)
    # "loop": a step reads h_{t-1} through weight_hh, so a sequence is a loop over time;
    # "scan": gates read only x_t (weight_hh and bias_hh are None) and the step is linear in h,
    # h_t = a_t ⊙ h_{t-1} + b_t, so a sequence can run as a parallel scan (rnncli/nn/scan.py)
    # from the cell's `log_coefficients(xw (T, B, G*H)) -> (log a, log b)`, each (T, B, H)
    sequence_kind: ClassVar[str]
    # takes gate_activation / activation (rnncli/nn/activations.py) in place of its σ and tanh
    configurable_activations: ClassVar[bool]

    weight_ih: Tensor  # (G*H, I)
    weight_hh: Tensor | None  # (G*H, H); None for scan cells
    bias_ih: Tensor | None  # (G*H,)
    bias_hh: Tensor | None  # (G*H,); None for scan cells

    def __call__(self, x: Tensor, state: State | None = None) -> State: ...

    def recurrent_step(self, xw: Tensor, state: State) -> State: ...

    # folds_b_hh: pointwise(pre, state), pre = xw + h W_hh^T + b_hh (B, G*H);
    # otherwise pointwise(xw, hw, state) with hw = h W_hh^T + b_hh. Everything after the matmuls.
    pointwise: Callable[..., State]

    def gate_activations(self, xw: Tensor, state: State, new_state: State) -> dict[str, Tensor]:
        """The sigmoid gates of one step, {label: (B, H)}, label e.g. 'forget f'."""
        ...


# The registry: name -> class, in the order cells are listed to users.
CELLS: dict[str, type[nn.Module]] = {
    cls.name: cls for cls in (RNNCell, LSTMCell, GRUCell, PeepholeLSTMCell, CIFGLSTMCell,
                              MinGRUCell, MinLSTMCell)
}
CELLS.update({cls.name: cls for cls in (LayerNormLSTMCell, LayerNormGRUCell)})  # Ba et al. 2016
CELL_NAMES = tuple(CELLS)
NONLINEARITIES = tuple(dict.fromkeys(n for cls in CELLS.values() for n in cls.nonlinearities))


def check_cell_name(cell: str) -> None:
    """Raise a ValueError naming the bad cell, the allowed ones and the closest match."""
    if cell in CELLS:
        return
    close = difflib.get_close_matches(str(cell), CELL_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown cell {cell!r}: expected one of {', '.join(CELL_NAMES)}{hint}")


def cell_class(cell: str) -> type[nn.Module]:
    """The class registered under `cell` (a ValueError with the closest match if none is)."""
    check_cell_name(cell)
    return CELLS[cell]


def cells_where(test: Callable[[type], bool]) -> tuple[str, ...]:
    """Names of the registered cells whose class passes `test`, e.g. those with a forget gate."""
    return tuple(name for name, cls in CELLS.items() if test(cls))


def check_nonlinearity(cell: str, nonlinearity: str) -> None:
    """Only cells that declare a choice of nonlinearity take one; the others are always tanh."""
    allowed = cell_class(cell).nonlinearities
    if nonlinearity in allowed:
        return
    if len(allowed) > 1:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r} for cell {cell!r}: expected one of "
                         f"{', '.join(allowed)}")
    choosers = " or ".join(repr(c) for c in cells_where(lambda c: len(c.nonlinearities) > 1))
    raise ValueError(f"nonlinearity {nonlinearity!r} is only configurable for cell {choosers}; "
                     f"cell {cell!r} always uses {allowed[0]}")


def check_ablate(cell: str, ablate) -> tuple[str, ...]:
    """The ablations in ABLATIONS' order; a ValueError naming the first that `cell` cannot take and
    why: an impossible combination (CIFG's coupled gates), or which cells take it."""
    cls = cell_class(cell)
    for name in ablate:
        if name not in ABLATIONS:
            close = difflib.get_close_matches(str(name), ABLATIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown ablation {name!r}: expected some of {', '.join(ABLATIONS)}{hint}")
        if name in cls.ablations:
            continue
        coupled = "i" not in cls.gate_names and cls.forget_block is not None  # CIFG: i = 1 - f
        if coupled and name in ("no_input_gate", "no_forget_gate"):
            raise ValueError(f"ablation {name!r} is impossible with cell {cell!r}: its input gate is tied "
                             f"to its forget gate (i = 1 - f), so neither can be removed alone")
        takers = ", ".join(cells_where(lambda c: name in c.ablations)) or "none"
        raise ValueError(f"ablation {name!r} does not apply to cell {cell!r}; the cells that take it: {takers}")
    return tuple(a for a in ABLATIONS if a in ablate)


def check_cell_activations(cell: str, gate_activation: str, activation: str) -> None:
    """Only cells whose class says `configurable_activations` take other than sigmoid gates and tanh."""
    check_activations(gate_activation, activation)
    if is_default(gate_activation, activation) or cell_class(cell).configurable_activations:
        return
    takers = ", ".join(cells_where(lambda c: c.configurable_activations))
    raise ValueError(f"gate_activation / activation are only configurable for the cells {takers}; "
                     f"cell {cell!r} takes gate_activation='sigmoid', activation='tanh' (got "
                     f"{gate_activation!r}, {activation!r})")


def num_gates(cell: str) -> int:
    """Number of H-sized gate blocks G stacked in weight_ih / weight_hh."""
    return cell_class(cell).num_gates


def make_cell(
    cell: str, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True, ablate=(),
    gate_activation: str = "sigmoid", activation: str = "tanh",
) -> nn.Module:
    """Build the step-level cell registered under `cell` (one of CELL_NAMES); with `ablate`, that
    cell with Greff et al.'s ablations (an `AblatedLSTMCell` over its parameters)."""
    cls = cell_class(cell)
    check_nonlinearity(cell, nonlinearity)
    check_cell_activations(cell, gate_activation, activation)
    activations = dict(gate_activation=gate_activation, activation=activation) if cls.configurable_activations else {}
    if ablate:
        return AblatedLSTMCell(cls, input_size, hidden_size, ablate=check_ablate(cell, ablate), bias=bias,
                               **activations)
    options = {"nonlinearity": nonlinearity} if len(cls.nonlinearities) > 1 else {}
    return cls(input_size, hidden_size, bias=bias, **options, **activations)


def zero_state(cell: str, batch_size: int, hidden_size: int, device=None, dtype=None) -> State:
    """All-zeros step-level state: h (B, H), or (h, c) for cells whose state_kind is 'hc'."""
    return _zeros(cell_class(cell).state_kind, (batch_size, hidden_size), device, dtype)


__all__ = [
    "ABLATIONS",
    "AblatedLSTMCell",
    "CELLS",
    "CELL_NAMES",
    "NONLINEARITIES",
    "CIFGLSTMCell",
    "Cell",
    "GRUCell",
    "LayerNormGRUCell",
    "LayerNormLSTMCell",
    "LSTMCell",
    "MinGRUCell",
    "MinLSTMCell",
    "PeepholeLSTMCell",
    "RNNCell",
    "cell_class",
    "cells_where",
    "check_ablate",
    "check_cell_activations",
    "check_cell_name",
    "check_nonlinearity",
    "make_cell",
    "num_gates",
    "zero_state",
]
