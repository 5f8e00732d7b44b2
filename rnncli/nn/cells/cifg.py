"""LSTM with a coupled input-forget gate, CIFG (Greff et al. 2017, "LSTM: A Search Space
Odyssey", variant CIFG; the coupling goes back to Cho et al. 2014's GRU)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn.activations import ACTIVATIONS, GATE_ACTIVATIONS, activations_repr, check_activations


class CIFGLSTMCell(nn.Module):
    """One step of a CIFG LSTM: the input gate is tied to the forget gate, i = 1 - f exactly.

        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate
        i_t = 1 - f_t                                       coupled input gate (no weights)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)   candidate
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)

    Gate blocks (G = 3) stacked in the order f, g, o (torch's i, f, g, o minus i), so the forget
    block is block 0. No peephole connections (Greff et al.'s variant has them; combine with
    `peephole_lstm` if needed). Shapes: x_t (B, I); h, c (B, H); weight_ih (3H, I);
    weight_hh (3H, H); bias_ih, bias_hh (3H,). State (h, c); None = zeros.
    `gates(xw, state)` returns the gate activations so the coupling can be inspected.
    The hand-written BPTT keeps the gates as f, o, g: both sigmoid gates, then the candidate.
    σ and tanh are the defaults of `gate_activation` / `activation` (rnncli/nn/activations.py);
    with other choices the layer runs this step under autograd (no kernel computes them).
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "cifg_lstm"
    gate_names = ("f", "g", "o")
    num_gates = len(gate_names)
    state_kind = "hc"
    forget_block = 0
    sigmoid_gates = ("f", "o")
    nonlinearities = ("tanh",)
    torch_kernel = None
    folds_b_hh = True
    bptt_kind = "cifg"
    bptt_gates = ("f", "o", "g")
    extra_params = ()
    # Greff et al.'s switches (cells/ablation.py); no_input_gate / no_forget_gate: impossible (i = 1 - f)
    ablations = ("no_output_gate", "no_input_activation", "no_output_activation")
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

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """x (B, I), (h, c) each (B, H) or None -> new (h, c)."""
        if state is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
            state = (h, h)
        return self.recurrent_step(F.linear(x, self.weight_ih, self.bias_ih), state)

    def gates(self, xw: Tensor, state: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Gate activations {"i", "f", "g", "o"}, each (B, H), for xw = W_ih x_t + b_ih (B, 3H)."""
        return self._activate(xw + F.linear(state[0], self.weight_hh, self.bias_hh))

    def gate_activations(self, xw: Tensor, state: tuple[Tensor, Tensor], new_state) -> dict[str, Tensor]:
        """The sigmoid gates of one step, each (B, H); i = 1 - f is not listed apart."""
        gate = self.gates(xw, state)
        return {"forget f (i = 1 - f)": gate["f"], "output o": gate["o"]}

    def recurrent_step(
        self, xw: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """xw = W_ih x_t + b_ih (B, 3H) -> new (h, c)."""
        return self.pointwise(xw + F.linear(state[0], self.weight_hh, self.bias_hh), state)

    def pointwise(self, pre: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Everything after the matmuls: pre = W_ih x + b_ih + W_hh h + b_hh (B, 3H) -> (h, c)."""
        gate = self._activate(pre)
        c = torch.addcmul(gate["f"] * state[1], gate["i"], gate["g"])  # f ⊙ c_{t-1} + i ⊙ g
        return gate["o"] * self.act(c), c

    def _activate(self, pre: Tensor) -> dict[str, Tensor]:
        f, g, o = pre.chunk(3, 1)  # each (B, H)
        f = self.sigma(f)
        return {"i": 1.0 - f, "f": f, "g": self.act(g), "o": self.sigma(o)}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + activations_repr(self.gate_activation, self.activation)
