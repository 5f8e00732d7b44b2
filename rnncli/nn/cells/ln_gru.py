"""Layer-normalised GRU (Ba, Kiros & Hinton 2016, "Layer Normalization", section 3.1, applied to
torch's GRU variant: the reset gate multiplies the normalised W_hn h)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-5  # F.layer_norm's default


class LayerNormGRUCell(nn.Module):
    """One step of a layer-normalised GRU: each matmul is normalised per example before the gates.

        a_t = LN(W_ih x_t; γ_ih, β_ih)        b_t = LN(W_hh h_{t-1}; γ_hh, β_hh)     (B, 3H), blocks r, z, n
        r_t = σ(a_r + b_r)                    reset gate
        z_t = σ(a_z + b_z)                    update gate
        n_t = tanh(a_n + r_t ⊙ b_n)           candidate
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    LN(v; γ, β) = γ ⊙ (v - mean(v)) / sqrt(var(v) + 1e-5) + β over all 3H features. The betas take
    the place of torch's biases (β_ih of b_ih, β_hh of b_hh, so b_hn's β stays inside r ⊙ (...)).
    Gate blocks in torch's order r, z, n. Shapes: x_t (B, I); h (B, H); weight_ih (3H, I);
    weight_hh (3H, H); ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias (3H,). State h; None = zeros.
    Gains start at 1, betas at 0. `bias_ih` / `bias_hh` are None: no bias enters before a
    normalisation, so the layer's xw = W_ih x_t is what LN_ih normalises. This step is the reference;
    a layer runs the hand-written BPTT of rnncli/nn/bptt_ln.py where it can (float32 / float64, CPU).
    """

    # what this cell is: the `Cell` protocol (rnncli/nn/cells/__init__.py) says what each fact means
    name = "ln_gru"
    gate_names = ("r", "z", "n")
    num_gates = len(gate_names)
    state_kind = "h"
    forget_block = None
    sigmoid_gates = ("r", "z")
    nonlinearities = ("tanh",)
    torch_kernel = None
    folds_b_hh = False
    bptt_kind = "ln_gru"  # hand-written BPTT in rnncli/nn/bptt_ln.py, compiled step in fused_ln.py
    bptt_gates = ("r", "z", "n")  # torch's order: layer norm sees all blocks at once
    extra_params = ("ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias")
    ablations = ()  # Greff et al.'s switches (cells/ablation.py)
    sequence_kind = "loop"
    int8 = False  # int8 weights move the normalised pre-activations too far (0.1-0.3 at H=16): kept fp32
    configurable_activations = False  # σ and tanh only (model.gate_activation / activation: not here)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        gates = 3 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias_ih = self.bias_hh = None  # see the docstring: the betas below are the biases
        self.ln_ih_weight, self.ln_hh_weight = nn.Parameter(torch.empty(gates)), nn.Parameter(torch.empty(gates))
        self.ln_ih_bias = nn.Parameter(torch.empty(gates)) if bias else None
        self.ln_hh_bias = nn.Parameter(torch.empty(gates)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Matrices ~ U(-1/sqrt(H), 1/sqrt(H)) (torch's default); gains 1, betas 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            if name.startswith("weight_"):
                nn.init.uniform_(p, -bound, bound)
            else:
                nn.init.constant_(p, 1.0 if name.endswith("_weight") else 0.0)

    def forward(self, x: Tensor, state: Tensor | None = None) -> Tensor:
        """x (B, I), h (B, H) or None -> new h (B, H)."""
        if state is None:
            state = x.new_zeros(x.shape[0], self.hidden_size)
        return self.recurrent_step(F.linear(x, self.weight_ih), state)

    def recurrent_step(self, xw: Tensor, state: Tensor) -> Tensor:
        """xw = W_ih x_t (B, 3H), h (B, H) -> new h (B, H)."""
        return self.pointwise(xw, F.linear(state, self.weight_hh), state)

    def pointwise(self, xw: Tensor, hw: Tensor, state: Tensor) -> Tensor:
        """Everything after the matmuls: xw = W_ih x, hw = W_hh h (B, 3H) -> new h."""
        (a_r, a_z, a_n), (b_r, b_z, b_n) = self._normalised(xw, hw)
        r = torch.sigmoid(a_r + b_r)
        z = torch.sigmoid(a_z + b_z)
        n = torch.tanh(torch.addcmul(a_n, r, b_n))  # tanh(a_n + r ⊙ b_n)
        # (1 - z) ⊙ n + z ⊙ h, in the state's dtype (under autocast the gates may come out in bf16)
        return torch.lerp(n.to(state.dtype), state, z.to(state.dtype))

    def _normalised(self, xw: Tensor, hw: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """(LN_ih(xw), LN_hh(hw)), each split into its r, z, n blocks (B, H)."""
        shape = (3 * self.hidden_size,)  # a constant, so an exported graph keeps it static
        a = F.layer_norm(xw, shape, self.ln_ih_weight, self.ln_ih_bias, EPS)
        b = F.layer_norm(hw, shape, self.ln_hh_weight, self.ln_hh_bias, EPS)
        return a.chunk(3, 1), b.chunk(3, 1)

    def gate_activations(self, xw: Tensor, state: Tensor, new_state: Tensor) -> dict[str, Tensor]:
        """The sigmoid gates of one step, each (B, H), for xw = W_ih x_t (B, 3H)."""
        (a_r, a_z, _), (b_r, b_z, _) = self._normalised(xw, F.linear(state, self.weight_hh))
        return {"reset r": torch.sigmoid(a_r + b_r), "update z": torch.sigmoid(a_z + b_z)}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
