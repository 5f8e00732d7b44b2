"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201): a GRU whose gates read
only the input, so a whole sequence trains as a parallel scan over time (rnncli/nn/scan.py)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def g(x: Tensor) -> Tensor:
    """Feng et al.'s positive candidate activation: x + 0.5 for x >= 0, σ(x) below (continuous)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), stable: log(x + 0.5) for x >= 0, -softplus(-x) below."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class MinGRUCell(nn.Module):
    """One step of a minGRU; the same equations run as a log-space scan over a sequence.

        z_t = σ(W_iz x_t + b_iz)                      update gate (input only: no W_hz h)
        h̃_t = g(W_ih x_t + b_ih)                      candidate, g > 0 (see `g`)
        h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

    Log-space scan form (Feng et al., Appendix B): h_t = a_t ⊙ h_{t-1} + b_t with
        log a_t = log(1 - z_t) = -softplus(k_t)       k_t = W_iz x_t + b_iz
        log b_t = log z_t + log h̃_t = -softplus(-k_t) + log g(W_ih x_t + b_ih)

    Gate blocks (G = 2) stacked as z, h. Shapes: x_t (B, I); h (B, H); weight_ih (2H, I); bias_ih
    (2H,). No weight_hh / bias_hh: the state enters only through the interpolation. State h; None = 0.
    `pointwise` is the sequential reference (autograd; also the one-token stepper's step);
    `coefficients` / `log_coefficients` feed the scan's two forms, which equal it to float rounding.
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "mingru"
    gate_names = ("z", "h")
    num_gates = len(gate_names)
    state_kind = "h"
    forget_block = None
    sigmoid_gates = ("z",)
    nonlinearities = ("tanh",)  # not configurable: the candidate's activation is g
    torch_kernel = None
    folds_b_hh = True  # trivially: there is no b_hh, the pre-activation is xw
    bptt_kind = None
    bptt_gates = None
    extra_params = ()
    sequence_kind = "scan"
    configurable_activations = False
    ablations = ()  # Greff et al.'s switches (cells/ablation.py)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(2 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(2 * hidden_size)) if bias else None
        self.weight_hh = self.bias_hh = None  # gates read only the input
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), as torch's cells."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: Tensor | None = None) -> Tensor:
        """x (B, I), h (B, H) or None -> new h (B, H)."""
        if state is None:
            state = x.new_zeros(x.shape[0], self.hidden_size)
        return self.recurrent_step(F.linear(x, self.weight_ih, self.bias_ih), state)

    def recurrent_step(self, xw: Tensor, state: Tensor) -> Tensor:
        """xw = W_ih x_t + b_ih (B, 2H), h (B, H) -> new h (B, H)."""
        return self.pointwise(xw, state)

    def pointwise(self, pre: Tensor, state: Tensor) -> Tensor:
        """The sequential step after the matmul: pre = xw (B, 2H), h -> new h (B, H)."""
        k, h_pre = pre.chunk(2, -1)  # each (B, H)
        z = torch.sigmoid(k)
        return state + z * (g(h_pre) - state)  # (1 - z) h + z h̃; mixed dtypes promote (autocast)

    def coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        """xw (T, B, 2H) -> (a, b), each (T, B, H): h_t = a_t ⊙ h_{t-1} + b_t, a = 1 - z, b = z ⊙ h̃."""
        k, h_pre = xw.chunk(2, -1)
        z = torch.sigmoid(k)
        return 1 - z, z * g(h_pre)

    def log_coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        """xw (T, B, 2H) -> (log a, log b), each (T, B, H): h_t = a_t ⊙ h_{t-1} + b_t."""
        k, h_pre = xw.chunk(2, -1)
        return -F.softplus(k), -F.softplus(-k) + log_g(h_pre)

    def gate_activations(self, xw: Tensor, state: Tensor, new_state: Tensor) -> dict[str, Tensor]:
        """The update gate of one step (B, H), for xw = W_ih x_t + b_ih (B, 2H)."""
        return {"update z": torch.sigmoid(xw.chunk(2, -1)[0])}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
