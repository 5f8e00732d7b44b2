"""Greff et al. 2017 ("LSTM: A Search Space Odyssey") ablations of the LSTM family as switches.

`model.ablate: [no_output_gate, ...]` turns an lstm, peephole_lstm or cifg_lstm into the same cell
with parts removed. Each cell class declares the ablations it takes (`ablations`); `AblatedLSTMCell`
runs any allowed set of them over the base cell's own parameters and gate layout:

    no_input_gate          i_t = 1                     (NIG)
    no_forget_gate         f_t = 1                     (NFG)
    no_output_gate         o_t = 1                     (NOG)
    no_input_activation    g_t = z_g  (no tanh)        (NIAF)
    no_output_activation   h_t = o_t ⊙ c_t  (no tanh)  (NOAF)
    no_peepholes           peephole_lstm without w_ci, w_cf, w_co   (NP; = lstm's equations)
    full_gate_recurrence   i, f, o also read the previous step's i, f, o   (FGR; lstm, peephole_lstm)

Full gate recurrence adds Greff's nine recurrent matrices R_{a<-b} (a, b in i, f, o) as one parameter
`weight_fgr` (3H, 3H): rows the pre-activations of i, f, o, columns i_{t-1}, f_{t-1}, o_{t-1}.
It starts at zero (the layer begins as the unablated cell and learns the gate recurrence), and
the state carries the gates: (h, c, i, f, o), each (B, H), state kind "hc+gates" (zeros at the
start, like h0). A plain (h, c) state, e.g. from a seq2seq bridge, starts them at zero.

A removed gate's rows stay in weight_ih / weight_hh / the biases (the layout is the base cell's,
so weights copy between ablations and into nn.LSTM) but get no gradient; a removed gate's peephole
is not a parameter. With no ablation the layer keeps the base cell itself (and nn.LSTM for lstm):
`model.ablate: []` is bit for bit what it was.

Ablated layers run the plain autograd loop (the fast-path report says so): the hand-written BPTT
and the compiled step know only the unablated equations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn.activations import ACTIVATIONS, GATE_ACTIVATIONS, activations_repr
from rnncli.nn.cells.catalog import ABLATIONS

FGR_GATES = ("i", "f", "o")  # full gate recurrence: the gates that read (and are read) at t-1
GATE_OF = {"no_input_gate": "i", "no_forget_gate": "f", "no_output_gate": "o"}
_LABELS = {"i": "input i", "f": "forget f", "o": "output o"}


class AblatedLSTMCell(nn.Module):
    """One step of an LSTM-family cell (`base`: the class of lstm, peephole_lstm or cifg_lstm) with
    Greff's ablations (module docstring). Full equations, each removed part written as 1 or identity:

        i_t = σ(z_i + w_ci ⊙ c_{t-1})   or 1 - f_t (cifg)   or 1 (no_input_gate)
        f_t = σ(z_f + w_cf ⊙ c_{t-1})   or 1 (no_forget_gate)
        g_t = tanh(z_g)                 or z_g (no_input_activation)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        o_t = σ(z_o + w_co ⊙ c_t)       or 1 (no_output_gate)
        h_t = o_t ⊙ tanh(c_t)           or o_t ⊙ c_t (no_output_activation)

    σ and tanh are the cell's gate_activation / activation (rnncli/nn/activations.py; the defaults).

    z = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh (B, G*H), blocks in the base cell's `gate_names`;
    peephole terms only for a base with peepholes and without no_peepholes. Same parameter names,
    shapes and state (h, c) as the base cell. With full_gate_recurrence, z_i, z_f, z_o also get
    weight_fgr [i_{t-1}, f_{t-1}, o_{t-1}] and the state is (h, c, i, f, o) (a removed gate: 1).
    """

    state_kind = "hc"

    def __init__(self, base: type, input_size: int, hidden_size: int, ablate=(), bias: bool = True,
                 gate_activation: str = "sigmoid", activation: str = "tanh") -> None:
        super().__init__()
        self.base, self.ablate = base, tuple(a for a in ABLATIONS if a in ablate)  # checked by make_cell
        self.input_size, self.hidden_size = input_size, hidden_size
        self.gate_activation, self.activation = gate_activation, activation  # checked by the base cell
        plain = base(input_size, hidden_size, bias=bias, gate_activation=gate_activation, activation=activation)
        self.sigma, self.act = GATE_ACTIVATIONS[gate_activation], ACTIVATIONS[activation]  # σ, tanh by default
        self.weight_ih, self.weight_hh = plain.weight_ih, plain.weight_hh
        self.bias_ih, self.bias_hh = plain.bias_ih, plain.bias_hh
        self.removed = {GATE_OF[a] for a in self.ablate if a in GATE_OF}  # gates fixed at 1
        self.fgr = "full_gate_recurrence" in self.ablate
        if self.fgr:  # (3H, 3H): [z_i z_f z_o] += weight_fgr [i f o]_{t-1}; zeros = the unablated cell
            self.state_kind = "hc+gates"
            self.weight_fgr = nn.Parameter(torch.zeros(3 * hidden_size, 3 * hidden_size))
        self.peep = {}  # gate -> its peephole parameter name, for the peepholes kept
        if "no_peepholes" not in self.ablate:
            for name in base.extra_params:  # weight_ci, weight_cf, weight_co
                gate = name[-1]
                if gate not in self.removed:
                    setattr(self, name, getattr(plain, name))
                    self.peep[gate] = name

    def forward(self, x: Tensor, state: tuple[Tensor, ...] | None = None) -> tuple[Tensor, ...]:
        """x (B, I), (h, c) [+ (i, f, o) with full_gate_recurrence] each (B, H) or None -> new state."""
        if state is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
            state = (h, h)
        return self.recurrent_step(F.linear(x, self.weight_ih, self.bias_ih), state)

    def recurrent_step(self, xw: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """xw = W_ih x_t + b_ih (B, G*H), (h, c) -> new (h, c)."""
        return self.pointwise(xw + F.linear(state[0], self.weight_hh, self.bias_hh), state)

    def pointwise(self, pre: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Everything after the matmuls: pre = z (B, G*H) -> (h, c) [+ (i, f, o)]."""
        c, gates = self._gates(pre, state)
        h = c if "no_output_activation" in self.ablate else self.act(c)
        h = h if gates["o"] is None else gates["o"] * h
        if not self.fgr:
            return h, c
        return (h, c) + tuple(c.new_ones(()).expand_as(c) if gates[g] is None else gates[g] for g in FGR_GATES)

    def _gates(self, pre: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor | None]]:
        """(c_t, {gate: activation (B, H), or None where the gate is 1})."""
        c_prev = state[1]
        z = dict(zip(self.base.gate_names, pre.chunk(self.base.num_gates, 1)))  # each (B, H)
        if self.fgr and len(state) > 2:  # a plain (h, c) state: the previous gates are zero
            recurrent = F.linear(torch.cat(state[2:], 1), self.weight_fgr).chunk(3, 1)  # (B, 3H) -> 3 x (B, H)
            z.update({g: z[g] + r for g, r in zip(FGR_GATES, recurrent)})
        gates: dict[str, Tensor | None] = {"f": self._sigmoid(z, "f", c_prev)}
        gates["i"] = self._sigmoid(z, "i", c_prev) if "i" in z else 1.0 - gates["f"]
        g = z["g"] if "no_input_activation" in self.ablate else self.act(z["g"])
        c = c_prev if gates["f"] is None else gates["f"] * c_prev
        c = c + g if gates["i"] is None else torch.addcmul(c, gates["i"], g)
        gates["o"] = self._sigmoid(z, "o", c)  # the output peephole sees the new c_t
        return c, gates

    def _sigmoid(self, z: dict[str, Tensor], gate: str, c: Tensor) -> Tensor | None:
        """σ(z_gate [+ w_c,gate ⊙ c]), or None for a removed gate."""
        if gate in self.removed:
            return None
        if gate in self.peep:
            return self.sigma(torch.addcmul(z[gate], getattr(self, self.peep[gate]), c))
        return self.sigma(z[gate])

    def gate_activations(self, xw: Tensor, state: tuple[Tensor, Tensor], new_state) -> dict[str, Tensor]:
        """The sigmoid gates still present, each (B, H) (a removed gate is 1, not listed)."""
        _, gates = self._gates(xw + F.linear(state[0], self.weight_hh, self.bias_hh), state)
        out = {_LABELS[g]: gates[g] for g in ("i", "f", "o") if gates[g] is not None and g in self.base.gate_names}
        if "i" not in self.base.gate_names:  # cifg: i = 1 - f, listed under f as the base cell does
            out = {("forget f (i = 1 - f)" if k == "forget f" else k): v for k, v in out.items()}
        return out

    def extra_repr(self) -> str:
        return f"{self.base.name}, {self.input_size}, {self.hidden_size}, ablate={list(self.ablate)}" + \
            activations_repr(self.gate_activation, self.activation)
