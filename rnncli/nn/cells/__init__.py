"""Step-level recurrent cells: one class per cell, chosen by registry name.

Every cell follows the same contract (see `Cell`):

    cell(x_t, state=None) -> new_state              # x_t (B, I); state h (B, H) or (h, c)
    cell.recurrent_step(xw_t, state) -> new_state   # xw_t = x_t @ weight_ih.T + bias_ih, (B, G*H)

`recurrent_step` lets a sequence layer compute the input projection for all time steps in one
matmul and loop only over the recurrent part (as in pytorch `benchmarks/fastrnns`).

Parameter names and layouts follow `torch.nn`: weight_ih (G*H, I), weight_hh (G*H, H),
bias_ih (G*H,), bias_hh (G*H,), with G gate blocks stacked in torch's gate order, so weights can
be copied into `nn.RNN` / `nn.LSTM` / `nn.GRU` and compared.
"""
from __future__ import annotations

import difflib
from typing import Protocol, Union

import torch
from torch import Tensor, nn

from rnncli.nn.cells.cifg import CIFGLSTMCell
from rnncli.nn.cells.gru import GRUCell
from rnncli.nn.cells.lstm import LSTMCell
from rnncli.nn.cells.peephole import PeepholeLSTMCell
from rnncli.nn.cells.rnn import RNNCell

State = Union[Tensor, tuple[Tensor, Tensor]]

CELL_NAMES = ("rnn", "lstm", "gru", "peephole_lstm", "cifg_lstm")
LSTM_FAMILY = ("lstm", "peephole_lstm", "cifg_lstm")  # state is (h, c); the others' state is h
CUSTOM_CELLS = ("peephole_lstm", "cifg_lstm")  # no torch kernel: our hand-written BPTT runs them
NONLINEARITIES = ("tanh", "relu")

_CELLS: dict[str, type[nn.Module]] = {
    "rnn": RNNCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
    "peephole_lstm": PeepholeLSTMCell,
    "cifg_lstm": CIFGLSTMCell,
}
_NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3, "peephole_lstm": 4, "cifg_lstm": 3}


class Cell(Protocol):
    """What a sequence layer needs from a cell."""

    weight_ih: Tensor  # (G*H, I)
    weight_hh: Tensor  # (G*H, H)
    bias_ih: Tensor | None  # (G*H,)
    bias_hh: Tensor | None  # (G*H,)

    def __call__(self, x: Tensor, state: State | None = None) -> State: ...

    def recurrent_step(self, xw: Tensor, state: State) -> State: ...


def check_cell_name(cell: str) -> None:
    """Raise a ValueError naming the bad cell, the allowed ones and the closest match."""
    if cell in CELL_NAMES:
        return
    close = difflib.get_close_matches(str(cell), CELL_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown cell {cell!r}: expected one of {', '.join(CELL_NAMES)}{hint}")


def check_nonlinearity(cell: str, nonlinearity: str) -> None:
    """Only the Elman RNN has a choice of nonlinearity; the gated cells are always tanh."""
    if cell == "rnn" and nonlinearity not in NONLINEARITIES:
        raise ValueError(
            f"unknown nonlinearity {nonlinearity!r} for cell 'rnn': expected one of "
            f"{', '.join(NONLINEARITIES)}"
        )
    if cell != "rnn" and nonlinearity != "tanh":
        raise ValueError(
            f"nonlinearity {nonlinearity!r} is only configurable for cell 'rnn'; "
            f"cell {cell!r} always uses tanh"
        )


def num_gates(cell: str) -> int:
    """Number of H-sized gate blocks G stacked in weight_ih / weight_hh."""
    check_cell_name(cell)
    return _NUM_GATES[cell]


def make_cell(
    cell: str, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True
) -> nn.Module:
    """Build the step-level cell registered under `cell` (one of CELL_NAMES)."""
    check_cell_name(cell)
    check_nonlinearity(cell, nonlinearity)
    if cell == "rnn":
        return RNNCell(input_size, hidden_size, bias=bias, nonlinearity=nonlinearity)
    return _CELLS[cell](input_size, hidden_size, bias=bias)


def zero_state(cell: str, batch_size: int, hidden_size: int, device=None, dtype=None) -> State:
    """All-zeros step-level state: h (B, H), or (h, c) for the LSTM family."""
    h = torch.zeros(batch_size, hidden_size, device=device, dtype=dtype)
    return (h, torch.zeros_like(h)) if cell in LSTM_FAMILY else h


__all__ = [
    "CELL_NAMES",
    "LSTM_FAMILY",
    "NONLINEARITIES",
    "CIFGLSTMCell",
    "Cell",
    "GRUCell",
    "LSTMCell",
    "PeepholeLSTMCell",
    "RNNCell",
    "State",
    "check_cell_name",
    "check_nonlinearity",
    "make_cell",
    "num_gates",
    "zero_state",
]
