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
diagnose ask the class. The config schema asks catalog.py, the same facts without torch (a test
checks they agree). A new cell is one file here, its import in `_classes` below and its row in
catalog.py (plus a kernel in rnncli/nn/bptt.py and fused_cpu.py only if it wants that path).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar, Protocol

from rnncli.nn.activations import check_activations, is_default
from rnncli.nn.cells.catalog import (
    ABLATIONS,
    CATALOG,
    CELL_NAMES,
    NONLINEARITIES,
    cells_where,
    check_ablate,
    check_cell_name,
    facts,
)

if TYPE_CHECKING:
    from torch import Tensor, nn

    from rnncli.nn.state import State


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
    # from the cell's `coefficients(xw (T, B, G*H)) -> (a, b)` (the CPU's sequential form) or
    # `log_coefficients(xw) -> (log a, log b)` (the parallel log-space form), each (T, B, H)
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


# The registry: name -> class, in the order cells are listed to users (catalog.py's order). The
# classes import torch, so they are loaded on first use: importing this package (as the config
# schema does) does not import torch, and a config error answers at once.
_loaded: dict[str, type[nn.Module]] = {}  # class name -> class, once loaded


def _classes() -> dict[str, type[nn.Module]]:
    """Every cell class by class name (AblatedLSTMCell included), imported on the first call."""
    if not _loaded:
        from rnncli.nn.cells.ablation import AblatedLSTMCell
        from rnncli.nn.cells.cifg import CIFGLSTMCell
        from rnncli.nn.cells.gru import GRUCell
        from rnncli.nn.cells.ln_gru import LayerNormGRUCell
        from rnncli.nn.cells.ln_lstm import LayerNormLSTMCell
        from rnncli.nn.cells.lstm import LSTMCell
        from rnncli.nn.cells.mingru import MinGRUCell
        from rnncli.nn.cells.minlstm import MinLSTMCell
        from rnncli.nn.cells.peephole import PeepholeLSTMCell
        from rnncli.nn.cells.rnn import RNNCell

        _loaded.update({cls.__name__: cls for cls in (
            RNNCell, LSTMCell, GRUCell, PeepholeLSTMCell, CIFGLSTMCell, MinGRUCell, MinLSTMCell,
            LayerNormLSTMCell, LayerNormGRUCell, AblatedLSTMCell)})
    return _loaded


def _cells() -> dict[str, type[nn.Module]]:
    """CELLS: name -> class in CELL_NAMES' order (catalog.py)."""
    by_name = {cls.name: cls for cls in _classes().values() if cls.__name__ != "AblatedLSTMCell"}
    return {name: by_name[name] for name in CELL_NAMES}


def __getattr__(name: str):
    """`CELLS` and the cell classes (`from rnncli.nn.cells import LSTMCell`), loaded on first use."""
    if name == "CELLS":
        return _cells()
    classes = _classes() if name.endswith("Cell") else {}
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cell_class(cell: str) -> type[nn.Module]:
    """The class registered under `cell` (a ValueError with the closest match if none is)."""
    check_cell_name(cell)
    return _cells()[cell]


def check_nonlinearity(cell: str, nonlinearity: str) -> None:
    """Only cells that declare a choice of nonlinearity take one; the others are always tanh."""
    allowed = facts(cell).nonlinearities
    if nonlinearity in allowed:
        return
    if len(allowed) > 1:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r} for cell {cell!r}: expected one of "
                         f"{', '.join(allowed)}")
    choosers = " or ".join(repr(c) for c in cells_where(lambda c: len(c.nonlinearities) > 1))
    raise ValueError(f"nonlinearity {nonlinearity!r} is only configurable for cell {choosers}; "
                     f"cell {cell!r} always uses {allowed[0]}")


def check_cell_activations(cell: str, gate_activation: str, activation: str) -> None:
    """Only cells whose class says `configurable_activations` take other than sigmoid gates and tanh."""
    check_activations(gate_activation, activation)
    if is_default(gate_activation, activation) or facts(cell).configurable_activations:
        return
    takers = ", ".join(cells_where(lambda c: c.configurable_activations))
    raise ValueError(f"gate_activation / activation are only configurable for the cells {takers}; "
                     f"cell {cell!r} takes gate_activation='sigmoid', activation='tanh' (got "
                     f"{gate_activation!r}, {activation!r})")


def num_gates(cell: str) -> int:
    """Number of H-sized gate blocks G stacked in weight_ih / weight_hh."""
    return len(facts(cell).gate_names)


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
        return _classes()["AblatedLSTMCell"](cls, input_size, hidden_size, ablate=check_ablate(cell, ablate),
                                              bias=bias, **activations)
    options = {"nonlinearity": nonlinearity} if len(cls.nonlinearities) > 1 else {}
    return cls(input_size, hidden_size, bias=bias, **options, **activations)


def zero_state(cell: str, batch_size: int, hidden_size: int, device=None, dtype=None) -> State:
    """All-zeros step-level state: h (B, H), or (h, c) for cells whose state_kind is 'hc'."""
    from rnncli.nn.state import zero_state as _zeros

    return _zeros(cell_class(cell).state_kind, (batch_size, hidden_size), device, dtype)


__all__ = [
    "ABLATIONS",
    "AblatedLSTMCell",
    "CELLS",
    "CATALOG",
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
    "facts",
    "make_cell",
    "num_gates",
    "zero_state",
]
