"""Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization", section 3.1 / appendix)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-5  # F.layer_norm's default


class LayerNormLSTMCell(nn.Module):
    """One step of a layer-normalised LSTM: both matmuls and the cell are normalised per example.

        z_t = LN(W_ih x_t; γ_ih, β_ih) + LN(W_hh h_{t-1}; γ_hh, β_hh)      (B, 4H), blocks i, f, g, o
        i_t, f_t, o_t = σ(z_i), σ(z_f), σ(z_o);   g_t = tanh(z_g)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(LN(c_t; γ_c, β_c))

    LN(a; γ, β) = γ ⊙ (a - mean(a)) / sqrt(var(a) + 1e-5) + β, the mean and (biased) variance over the
    feature axis: all 4H pre-activations together, as in the paper. The LSTM bias b of the paper is
    β_ih + β_hh (the same redundancy as torch's b_ih + b_hh). Gate blocks in torch's order i, f, g, o.
    Shapes: x_t (B, I); h, c (B, H); weight_ih (4H, I); weight_hh (4H, H); ln_ih_weight, ln_ih_bias,
    ln_hh_weight, ln_hh_bias (4H,); ln_c_weight, ln_c_bias (H,). State (h, c); None = zeros.
    Gains start at 1, betas at 0 (the layer's init puts the forget bias in ln_ih_bias's f block).

    No bias enters before a normalisation (it would be removed by it), so `bias_ih` and `bias_hh`
    are None: the layer's input projection xw = W_ih x_t is then exactly what LN_ih normalises.
    This step is the reference; a layer runs the hand-written BPTT of rnncli/nn/bptt_ln.py where it can
    (float32 / float64 on the CPU), with LN_hh, the gates, the cell and LN(c) in one compiled call per step.
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "ln_lstm"
    gate_names = ("i", "f", "g", "o")
    num_gates = len(gate_names)
    state_kind = "hc"
    forget_block = 1
    sigmoid_gates = ("i", "f", "o")
    nonlinearities = ("tanh",)
    torch_kernel = None
    folds_b_hh = False  # pointwise(xw, hw, state): each matmul is normalised on its own
    bptt_kind = "ln_lstm"  # hand-written BPTT in rnncli/nn/bptt_ln.py, compiled step in fused_ln.py
    bptt_gates = ("i", "f", "g", "o")  # torch's order: layer norm sees all blocks at once
    extra_params = ("ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias", "ln_c_weight", "ln_c_bias")
    ablations = ()  # Greff et al.'s switches (cells/ablation.py)
    sequence_kind = "loop"
    int8 = False  # int8 weights move the normalised pre-activations too far (0.1-0.3 at H=16): kept fp32
    configurable_activations = False  # σ and tanh only (model.gate_activation / activation: not here)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        gates = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias_ih = self.bias_hh = None  # see the docstring: the betas below are the biases
        self.ln_ih_weight, self.ln_hh_weight = nn.Parameter(torch.empty(gates)), nn.Parameter(torch.empty(gates))
        self.ln_c_weight = nn.Parameter(torch.empty(hidden_size))
        self.ln_ih_bias = nn.Parameter(torch.empty(gates)) if bias else None
        self.ln_hh_bias = nn.Parameter(torch.empty(gates)) if bias else None
        self.ln_c_bias = nn.Parameter(torch.empty(hidden_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Matrices ~ U(-1/sqrt(H), 1/sqrt(H)) (torch's default); gains 1, betas 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            if name.startswith("weight_"):
                nn.init.uniform_(p, -bound, bound)
            else:
                nn.init.constant_(p, 1.0 if name.endswith("_weight") else 0.0)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """x (B, I), (h, c) each (B, H) or None -> new (h, c)."""
        if state is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
            state = (h, h)
        return self.recurrent_step(F.linear(x, self.weight_ih), state)

    def recurrent_step(self, xw: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """xw = W_ih x_t (B, 4H), (h, c) -> new (h, c)."""
        return self.pointwise(xw, F.linear(state[0], self.weight_hh), state)

    def pointwise(self, xw: Tensor, hw: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Everything after the matmuls: xw = W_ih x, hw = W_hh h (B, 4H) -> (h, c)."""
        i, f, g, o = self._pre(xw, hw).chunk(4, 1)  # each (B, H)
        c = torch.addcmul(torch.sigmoid(f) * state[1], torch.sigmoid(i), torch.tanh(g))
        c_norm = F.layer_norm(c, (self.hidden_size,), self.ln_c_weight, self.ln_c_bias, EPS)
        return torch.sigmoid(o) * torch.tanh(c_norm), c

    def _pre(self, xw: Tensor, hw: Tensor) -> Tensor:
        """z = LN_ih(xw) + LN_hh(hw) (B, 4H)."""
        shape = (4 * self.hidden_size,)  # a constant, so an exported graph keeps it static
        return (F.layer_norm(xw, shape, self.ln_ih_weight, self.ln_ih_bias, EPS)
                + F.layer_norm(hw, shape, self.ln_hh_weight, self.ln_hh_bias, EPS))

    def gate_activations(self, xw: Tensor, state: tuple[Tensor, Tensor], new_state) -> dict[str, Tensor]:
        """The sigmoid gates of one step, each (B, H), for xw = W_ih x_t (B, 4H)."""
        i, f, _, o = self._pre(xw, F.linear(state[0], self.weight_hh)).chunk(4, 1)
        return {"input i": torch.sigmoid(i), "forget f": torch.sigmoid(f), "output o": torch.sigmoid(o)}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
