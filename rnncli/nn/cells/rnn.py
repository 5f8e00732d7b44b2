"""Elman RNN cell (Elman 1990, "Finding Structure in Time"), the tutorials' SimpleRNNCell."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RNNCell(nn.Module):
    """One step of an Elman RNN; numerically the same as `torch.nn.RNNCell`.

        h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh | relu

    One gate block (G = 1). Shapes: x_t (B, I); h (B, H); weight_ih (H, I); weight_hh (H, H);
    bias_ih, bias_hh (H,). The state is h alone; state=None means zeros.
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "rnn"
    gate_names = ("h",)
    num_gates = len(gate_names)
    state_kind = "h"
    forget_block = None
    sigmoid_gates = ()
    nonlinearities = ("tanh", "relu")
    torch_kernel = nn.RNN
    folds_b_hh = True
    bptt_kind = None
    bptt_gates = None
    extra_params = ()
    ablations = ()  # Greff et al.'s switches (cells/ablation.py)
    sequence_kind = "loop"
    configurable_activations = False

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        super().__init__()
        if nonlinearity not in self.nonlinearities:
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}: expected tanh or relu")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.nonlinearity = nonlinearity
        self.act = torch.tanh if nonlinearity == "tanh" else torch.relu
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(hidden_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: Tensor | None = None) -> Tensor:
        """x (B, I), h (B, H) or None -> new h (B, H)."""
        if state is None:
            state = x.new_zeros(x.shape[0], self.hidden_size)
        return self.recurrent_step(F.linear(x, self.weight_ih, self.bias_ih), state)

    def recurrent_step(self, xw: Tensor, state: Tensor) -> Tensor:
        """xw = W_ih x_t + b_ih (B, H), h (B, H) -> new h (B, H)."""
        return self.pointwise(xw + F.linear(state, self.weight_hh, self.bias_hh), state)

    def pointwise(self, pre: Tensor, state: Tensor) -> Tensor:
        """Everything after the matmuls: pre = W_ih x + b_ih + W_hh h + b_hh (B, H) -> new h."""
        return self.act(pre)

    def gate_activations(self, xw: Tensor, state: Tensor, new_state: Tensor) -> dict[str, Tensor]:
        """No sigmoid gates: {}."""
        return {}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"
