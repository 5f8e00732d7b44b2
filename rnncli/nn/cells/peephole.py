"""LSTM with peephole connections (Gers & Schmidhuber 2000, "Recurrent Nets that Time and
Count"; also the "vanilla LSTM" of Greff et al. 2017, "LSTM: A Search Space Odyssey")."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn.activations import ACTIVATIONS, GATE_ACTIVATIONS, activations_repr, check_activations


class PeepholeLSTMCell(nn.Module):
    """One step of a peephole LSTM: the gates also see the cell state, through diagonal weights.

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi + w_ci ⊙ c_{t-1})
        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf + w_cf ⊙ c_{t-1})
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho + w_co ⊙ c_t)   (sees the NEW cell)
        h_t = o_t ⊙ tanh(c_t)

    Gate blocks (G = 4) in torch's order i, f, g, o, so with zero peephole weights this is
    exactly `torch.nn.LSTMCell`. Shapes: x_t (B, I); h, c (B, H); weight_ih (4H, I);
    weight_hh (4H, H); bias_ih, bias_hh (4H,); weight_ci, weight_cf, weight_co (H,).
    All parameters, peepholes included, start ~ U(-1/sqrt(H), 1/sqrt(H)) (torch's default;
    `rnncli.nn.init.init_recurrent_` re-initialises the matrices and biases but not the peepholes).
    State (h, c); None = zeros. The hand-written BPTT keeps torch's gate order i, f, g, o: one
    sigmoid call covers i, f and the candidate, then o follows once c_t is known (rnncli/nn/bptt.py).
    σ and tanh are the defaults of `gate_activation` / `activation` (rnncli/nn/activations.py);
    with other choices the layer runs this step under autograd (no kernel computes them).
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "peephole_lstm"
    gate_names = ("i", "f", "g", "o")
    num_gates = len(gate_names)
    state_kind = "hc"
    forget_block = 1
    sigmoid_gates = ("i", "f", "o")
    nonlinearities = ("tanh",)
    torch_kernel = None
    folds_b_hh = True
    bptt_kind = "peephole"
    bptt_gates = ("i", "f", "g", "o")
    extra_params = ("weight_ci", "weight_cf", "weight_co")
    ablations = ("no_input_gate", "no_forget_gate", "no_output_gate", "no_input_activation",
                 "no_output_activation", "no_peepholes", "full_gate_recurrence")  # Greff et al. (cells/ablation.py)
    sequence_kind = "loop"
    configurable_activations = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 gate_activation: str = "sigmoid", activation: str = "tanh") -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        check_activations(gate_activation, activation)
        self.gate_activation, self.activation = gate_activation, activation
        self.sigma, self.act = GATE_ACTIVATIONS[gate_activation], ACTIVATIONS[activation]  # σ, tanh by default
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None
        self.weight_ci = nn.Parameter(torch.empty(hidden_size))
        self.weight_cf = nn.Parameter(torch.empty(hidden_size))
        self.weight_co = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """x (B, I), (h, c) each (B, H) or None -> new (h, c)."""
        if state is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
            state = (h, h)
        return self.recurrent_step(F.linear(x, self.weight_ih, self.bias_ih), state)

    def recurrent_step(
        self, xw: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """xw = W_ih x_t + b_ih (B, 4H), (h, c) -> new (h, c)."""
        return self.pointwise(xw + F.linear(state[0], self.weight_hh, self.bias_hh), state)

    def pointwise(self, gates: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Everything after the matmuls: gates = W_ih x + b_ih + W_hh h + b_hh (B, 4H) -> (h, c)."""
        c = state[1]
        i, f, g, o = gates.chunk(4, 1)  # each (B, H)
        i = self.sigma(torch.addcmul(i, self.weight_ci, c))  # σ(i + w_ci ⊙ c_{t-1})
        f = self.sigma(torch.addcmul(f, self.weight_cf, c))
        c = torch.addcmul(f * c, i, self.act(g))  # f ⊙ c_{t-1} + i ⊙ g
        o = self.sigma(torch.addcmul(o, self.weight_co, c))  # σ(o + w_co ⊙ c_t)
        return o * self.act(c), c

    def gate_activations(
        self, xw: Tensor, state: tuple[Tensor, Tensor], new_state: tuple[Tensor, Tensor]
    ) -> dict[str, Tensor]:
        """The sigmoid gates of one step, each (B, H): i, f peek at c_{t-1}, o at the new c_t."""
        i, f, _, o = (xw + F.linear(state[0], self.weight_hh, self.bias_hh)).chunk(4, 1)
        i, f = i + self.weight_ci * state[1], f + self.weight_cf * state[1]
        o = o + self.weight_co * new_state[1]
        return {"input i": self.sigma(i), "forget f": self.sigma(f), "output o": self.sigma(o)}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + activations_repr(self.gate_activation, self.activation)
