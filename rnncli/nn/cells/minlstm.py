"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201): an LSTM whose gates read
only the input and whose forget and input gates are normalised to sum to one, so a whole sequence
trains as a parallel scan over time (rnncli/nn/scan.py)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn.cells.mingru import g, log_g


class MinLSTMCell(nn.Module):
    """One step of a minLSTM (length-independent scaling); a log-space scan over a sequence.

        i_t = σ(W_ii x_t + b_ii)                       input gate   (input only: no W_hi h)
        f_t = σ(W_if x_t + b_if)                       forget gate
        h̃_t = g(W_ih x_t + b_ih)                       candidate, g > 0 (rnncli/nn/cells/mingru.py)
        f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
        h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t              (no separate memory cell, no output gate)

    Log-space scan form (Feng et al., Appendix B): h_t = a_t ⊙ h_{t-1} + b_t with
        d_t = softplus(-p_f) - softplus(-p_i)          = log(i_t / f_t), p = pre-activations
        log a_t = log f'_t = -softplus(d_t)
        log b_t = log i'_t + log h̃_t = -softplus(-d_t) + log g(p_h)

    Gate blocks (G = 3) stacked as i, f, h (torch's i, f first). Shapes: x_t (B, I); h (B, H);
    weight_ih (3H, I); bias_ih (3H,). No weight_hh / bias_hh. State h; None = zeros.
    `pointwise` is the sequential reference (autograd; the one-token stepper's step);
    `coefficients` / `log_coefficients` feed the scan's two forms, which equal it to float rounding.
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "minlstm"
    gate_names = ("i", "f", "h")
    num_gates = len(gate_names)
    state_kind = "h"
    forget_block = 1
    sigmoid_gates = ("i", "f")
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
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None
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
        """xw = W_ih x_t + b_ih (B, 3H), h (B, H) -> new h (B, H)."""
        return self.pointwise(xw, state)

    def pointwise(self, pre: Tensor, state: Tensor) -> Tensor:
        """The sequential step after the matmul: pre = xw (B, 3H), h -> new h (B, H)."""
        f_n, i_n = self._normalised_gates(pre)
        return f_n * state + i_n * g(pre.chunk(3, -1)[2])

    def coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        """xw (T, B, 3H) -> (a, b), each (T, B, H): h_t = a_t ⊙ h_{t-1} + b_t, a = f', b = i' ⊙ h̃."""
        f_n, i_n = self._normalised_gates(xw)
        return f_n, i_n * g(xw.chunk(3, -1)[2])

    def log_coefficients(self, xw: Tensor) -> tuple[Tensor, Tensor]:
        """xw (T, B, 3H) -> (log a, log b), each (T, B, H): h_t = a_t ⊙ h_{t-1} + b_t."""
        p_i, p_f, p_h = xw.chunk(3, -1)
        d = F.softplus(-p_f) - F.softplus(-p_i)  # log(i / f)
        return -F.softplus(d), -F.softplus(-d) + log_g(p_h)

    def _normalised_gates(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """(f', i') = (f, i) / (f + i), each (B, H)."""
        p_i, p_f, _ = pre.chunk(3, -1)
        i, f = torch.sigmoid(p_i), torch.sigmoid(p_f)
        return f / (f + i), i / (f + i)

    def gate_activations(self, xw: Tensor, state: Tensor, new_state: Tensor) -> dict[str, Tensor]:
        """The sigmoid gates of one step, each (B, H), before normalisation (f' = f / (f + i))."""
        p_i, p_f, _ = xw.chunk(3, -1)
        return {"input i": torch.sigmoid(p_i), "forget f": torch.sigmoid(p_f)}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
