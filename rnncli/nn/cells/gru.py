"""Gated recurrent unit (Cho et al. 2014, "Learning Phrase Representations using RNN
Encoder-Decoder"), in torch's variant: the reset gate multiplies W_hn h + b_hn."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn.activations import ACTIVATIONS, GATE_ACTIVATIONS, activations_repr, check_activations


class GRUCell(nn.Module):
    """One step of a GRU; numerically the same as `torch.nn.GRUCell`.

        r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)            reset gate
        z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)            update gate
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))  candidate
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Gate blocks (G = 3) stacked in torch's order r, z, n. Shapes: x_t (B, I); h (B, H);
    weight_ih (3H, I); weight_hh (3H, H); bias_ih, bias_hh (3H,). State h; None = zeros.
    b_hn sits inside r ⊙ (...), so b_hh cannot join b_ih: `pointwise` takes xw and hw apart.
    σ and tanh are the defaults of `gate_activation` / `activation` (rnncli/nn/activations.py);
    with other choices the layer runs this step under autograd (no kernel computes them).
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "gru"
    gate_names = ("r", "z", "n")
    num_gates = len(gate_names)
    state_kind = "h"
    forget_block = None
    sigmoid_gates = ("r", "z")
    nonlinearities = ("tanh",)
    torch_kernel = nn.GRU
    folds_b_hh = False
    bptt_kind = None
    bptt_gates = None
    extra_params = ()
    ablations = ()  # Greff et al.'s switches (cells/ablation.py)
    sequence_kind = "loop"
    configurable_activations = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 gate_activation: str = "sigmoid", activation: str = "tanh") -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        check_activations(gate_activation, activation)
        self.gate_activation, self.activation = gate_activation, activation
        self.sigma, self.act = GATE_ACTIVATIONS[gate_activation], ACTIVATIONS[activation]  # σ, tanh by default
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None
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
        """xw = W_ih x_t + b_ih (B, 3H), h (B, H) -> new h (B, H)."""
        return self.pointwise(xw, F.linear(state, self.weight_hh, self.bias_hh), state)

    def pointwise(self, xw: Tensor, hw: Tensor, state: Tensor) -> Tensor:
        """Everything after the matmuls: xw = W_ih x + b_ih, hw = W_hh h + b_hh (B, 3H) -> new h."""
        x_r, x_z, x_n = xw.chunk(3, 1)  # each (B, H)
        h_r, h_z, h_n = hw.chunk(3, 1)
        r = self.sigma(x_r + h_r)
        z = self.sigma(x_z + h_z)
        n = self.act(torch.addcmul(x_n, r, h_n))  # tanh(x_n + r ⊙ h_n)
        return torch.lerp(n, state, z)  # (1 - z) ⊙ n + z ⊙ h

    def gate_activations(self, xw: Tensor, state: Tensor, new_state: Tensor) -> dict[str, Tensor]:
        """The sigmoid gates of one step, each (B, H), for xw = W_ih x_t + b_ih (B, 3H)."""
        r, z, _ = (xw + F.linear(state, self.weight_hh, self.bias_hh)).chunk(3, 1)
        return {"reset r": self.sigma(r), "update z": self.sigma(z)}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + activations_repr(self.gate_activation, self.activation)
