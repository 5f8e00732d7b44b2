"""Long short-term memory cell (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn.activations import ACTIVATIONS, GATE_ACTIVATIONS, activations_repr, check_activations


class LSTMCell(nn.Module):
    """One step of an LSTM; numerically the same as `torch.nn.LSTMCell`.

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate
        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)   candidate
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)

    Gate blocks (G = 4) stacked in torch's order i, f, g, o. Shapes: x_t (B, I); h, c (B, H);
    weight_ih (4H, I); weight_hh (4H, H); bias_ih, bias_hh (4H,). State (h, c); None = zeros.
    The hand-written BPTT and the compiled step keep the gates as i, f, o, g: the three sigmoid
    gates side by side, then the candidate (rnncli/nn/bptt.py).
    σ and tanh are the defaults of `gate_activation` / `activation` (rnncli/nn/activations.py);
    with other choices the layer runs this step under autograd (no kernel computes them).
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "lstm"
    gate_names = ("i", "f", "g", "o")
    num_gates = len(gate_names)
    state_kind = "hc"
    forget_block = 1
    sigmoid_gates = ("i", "f", "o")
    nonlinearities = ("tanh",)
    torch_kernel = nn.LSTM
    folds_b_hh = True
    bptt_kind = "lstm"
    bptt_gates = ("i", "f", "o", "g")
    extra_params = ()
    ablations = ("no_input_gate", "no_forget_gate", "no_output_gate", "no_input_activation",
                 "no_output_activation", "full_gate_recurrence")  # Greff et al.'s switches (cells/ablation.py)
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
        i, f, g, o = gates.chunk(4, 1)  # each (B, H)
        c = torch.addcmul(self.sigma(f) * state[1], self.sigma(i), self.act(g))
        return self.sigma(o) * self.act(c), c

    def gate_activations(self, xw: Tensor, state: tuple[Tensor, Tensor], new_state) -> dict[str, Tensor]:
        """The sigmoid gates of one step, each (B, H), for xw = W_ih x_t + b_ih (B, 4H)."""
        i, f, _, o = (xw + F.linear(state[0], self.weight_hh, self.bias_hh)).chunk(4, 1)
        return {"input i": self.sigma(i), "forget f": self.sigma(f), "output o": self.sigma(o)}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + activations_repr(self.gate_activation, self.activation)
