"""One-token steps over a unidirectional `Recurrent` stack: fast sampling at batch 1.

`Recurrent.forward` on a length-1 sequence pays nn.LSTM's per-call set-up (~5 ms on CPU) for
what is one small matmul per layer. `Stepper` copies a stack's weights once into the layout
that is cheapest to step, then `step(inputs, state)` advances every layer by one token:

    token ──► table[token] = xw          layer 0: the input projection is a row lookup
    h_0   ──► xw + h_0 @ W_hh^T ──► cell ──► h_0'
    h_1   ──► b + [h_0' | h_1] @ [W_ih | W_hh]^T ──► cell ──► h_1' ──► ...  (rnn, lstm)
                                                              output: the top layer's h

    table = embedding.weight @ W_ih^T + b_ih (+ b_hh)        (V, G*H), built once

Why this layout (2x512 LSTM on a 2-core AMD EPYC VM, batch 1; benchmarks/generation_speed.py):
  * a step reads every weight once, and at batch 1 that memory traffic is the cost. The
    weights are packed once for oneDNN (`rnncli/nn/onednn.py`; elsewhere stored transposed and
    contiguous, (in, G*H)): `x @ W^T` over torch's own (G*H, in) layout, which is what
    `torch.lstm_cell` and `F.linear` do, took 2-2.8 ms a step, the transposed copy 0.7-1 ms,
    the packed weights ~0.5 ms (past ~8 MB of weights the matmuls stream from DRAM).
  * layers >= 1 of rnn and lstm do one matmul over [x | h] instead of two, with b_hh folded
    into b_ih. gru keeps two (its b_hn and W_hn h sit inside r ⊙ (...)).
  * the custom cells (peephole_lstm, cifg_lstm) do the matmuls here (packed weights) and then
    call the cell's own `pointwise`, so their equations live in one place.
  * in float32 on the CPU, when rnncli/nn/fused_cpu.py's kernels are built, every LSTM-family layer
    runs its pointwise part as one compiled call instead (`_FusedLayer`): 1.16x chars/s for
    lstm, 1.4x for peephole_lstm and cifg_lstm.

State is explicit, as everywhere (STYLE habit 7): a tuple with one step-level state per layer,
h (B, H) or (h, c) for the LSTM family, passed in and returned. `split_state` / `join_state`
convert from / to Recurrent's (L, B, H) layout, e.g. after priming with a full forward.
The stepper is a snapshot for inference: no dropout, no graph; rebuild it if the weights change.
"""
from __future__ import annotations

from typing import Callable, Union

import torch
from torch import Tensor, nn

from rnncli.nn import fused_cpu
from rnncli.nn.cells import LSTM_FAMILY
from rnncli.nn.onednn import FixedWeight

_TORCH_CELLS = ("rnn", "lstm", "gru")  # held by `recurrent.rnn`; the others by `recurrent.cells`
State = Union[Tensor, tuple[Tensor, Tensor]]  # one layer: h (B, H), or (h, c)
StepState = tuple[State, ...]  # one State per layer, bottom first


class Stepper:
    """Step a unidirectional `Recurrent` one token at a time, with its weights as they are now.

    step(inputs, state) -> (output (B, H), new state)
      inputs  token ids (B,) when built with `embedding`, else layer-0 inputs x (B, I)
      state   StepState: one h (B, H) or (h, c) per layer (see `initial_state`, `split_state`)
    Matches `recurrent(embedding(ids), state=...)` step by step up to float rounding.
    """

    def __init__(self, recurrent: nn.Module, embedding: nn.Embedding | None = None) -> None:
        check_steppable(recurrent, embedding)
        self.cell, self.hidden_size = recurrent.cell, recurrent.hidden_size
        ref = next(recurrent.parameters())
        self.device, self.dtype = ref.device, ref.dtype
        kernels = _fused_kernels(recurrent)  # compiled LSTM-family step, or None
        with torch.no_grad():
            self.table = None if embedding is None else _input_table(recurrent, embedding, kernels)
            self.layers = [
                _make_layer(recurrent, k, projected=k == 0 and self.table is not None, kernels=kernels)
                for k in range(recurrent.num_layers)
            ]

    def initial_state(self, batch_size: int = 1) -> StepState:
        """All zeros, like `Recurrent`'s state=None."""
        h = torch.zeros(batch_size, self.hidden_size, device=self.device, dtype=self.dtype)
        return tuple((h, h) if self.cell in LSTM_FAMILY else h for _ in self.layers)

    def step(self, inputs: Tensor, state: StepState) -> tuple[Tensor, StepState]:
        """One token through every layer -> (top layer's h (B, H), new state)."""
        if torch.is_grad_enabled():  # the custom cells use live parameters: record no graph
            with torch.no_grad():
                return self.step(inputs, state)
        x = inputs if self.table is None else self.table.index_select(0, inputs)  # (B, G*H)
        new = []
        for layer, layer_state in zip(self.layers, state):
            layer_state = layer(x, layer_state)
            new.append(layer_state)
            x = layer_state[0] if isinstance(layer_state, tuple) else layer_state  # (B, H)
        return x, tuple(new)


def check_steppable(recurrent: nn.Module, embedding: nn.Embedding | None = None) -> None:
    """Raise a ValueError naming what a Stepper cannot step."""
    if recurrent.bidirectional:
        raise ValueError(
            f"cannot step a bidirectional {recurrent.cell!r} layer one token at a time: its "
            f"backward direction reads the sequence from the end; only unidirectional stacks step"
        )
    if getattr(getattr(recurrent, "rnn", None), "proj_size", 0):
        raise ValueError("cannot step an LSTM with proj_size > 0")
    if embedding is None:
        return
    input_size = _weights(recurrent, 0)[0].shape[1]
    if embedding.embedding_dim != input_size:
        raise ValueError(
            f"embedding_dim {embedding.embedding_dim} does not match the recurrent layer's "
            f"input size {input_size}"
        )
    if embedding.max_norm is not None:  # rows renormalised on lookup: no fixed table
        raise ValueError("cannot precompute the input table of an embedding with max_norm set")


def split_state(state: State) -> StepState:
    """Recurrent's h (L, B, H) or (h, c) -> one step-level state per layer."""
    if isinstance(state, tuple):
        return tuple(zip(*(s.unbind(0) for s in state)))
    return state.unbind(0)


def join_state(state: StepState) -> State:
    """One step-level state per layer -> Recurrent's h (L, B, H) or (h, c)."""
    if isinstance(state[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*state))
    return torch.stack(state)


# --------------------------------------------------------------------------- weights
def _weights(recurrent: nn.Module, k: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Layer k's (weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh), detached."""
    if recurrent.cell in _TORCH_CELLS:  # torch's nn.RNN / LSTM / GRU holds every layer
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        found = (getattr(recurrent.rnn, f"{n}_l{k}", None) for n in names)
    else:
        cell = recurrent.cells[k]  # unidirectional: row k = layer k
        found = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    return tuple(None if w is None else w.detach() for w in found)


def _plus(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """a + b where either bias may be missing."""
    if a is None or b is None:
        return b if a is None else a
    return a + b


def _folds_b_hh(recurrent: nn.Module) -> bool:
    """rnn and lstm add b_hh straight to the input projection; gru and our cells need it apart."""
    return recurrent.cell in ("rnn", "lstm")


def _input_table(recurrent: nn.Module, embedding: nn.Embedding, kernels=None) -> Tensor:
    """Layer 0's input projection of every token: (V, G*H) (in the kernel's gate layout when
    layer 0 runs the compiled step, which takes b_hh in the table too)."""
    w_ih, _, b_ih, b_hh = _weights(recurrent, 0)
    table = embedding.weight.detach() @ w_ih.t()  # (V, I) @ (I, G*H)
    bias = _plus(b_ih, b_hh) if _folds_b_hh(recurrent) or kernels is not None else b_ih
    table = table if bias is None else table + bias
    return table if kernels is None else _kernel_rows(recurrent.cell, table.t()).t().contiguous()


def _fixed(w: Tensor) -> FixedWeight:
    """(G*H, in) -> x @ W^T at batch 1, packed for oneDNN where it can be (rnncli/nn/onednn.py)."""
    return FixedWeight(w, batch=1)


def _project(x: Tensor, weight: FixedWeight, bias: Tensor | None) -> Tensor:
    """x (B, in) @ weight_t (in, G*H) + bias -> (B, G*H)."""
    return weight(x, bias)


# --------------------------------------------------------------------------- layers
def _make_layer(recurrent: nn.Module, k: int, projected: bool, kernels=None) -> Callable[[Tensor, State], State]:
    """Layer k as `layer(x, state) -> new state`; with `projected`, x is already xw (B, G*H)."""
    w_ih, w_hh, b_ih, b_hh = _weights(recurrent, k)
    if kernels is not None:
        cell = None if recurrent.cell in _TORCH_CELLS else recurrent.cells[k]
        return _FusedLayer(kernels, recurrent.cell, cell, w_ih, w_hh, _plus(b_ih, b_hh), projected)
    if recurrent.cell == "gru":
        return _GRULayer(w_ih, w_hh, b_ih, b_hh, projected)
    if recurrent.cell == "lstm":
        return _ConcatLayer(w_ih, w_hh, _plus(b_ih, b_hh), _lstm_pointwise, projected)
    if recurrent.cell == "rnn":
        activation = _ACTIVATIONS[recurrent.rnn.nonlinearity]
        return _ConcatLayer(w_ih, w_hh, _plus(b_ih, b_hh), activation, projected)
    return _CellLayer(recurrent.cells[k], w_ih, w_hh, b_ih, b_hh, projected)


class _ConcatLayer:
    """rnn / lstm: pre = b + [x | h] @ [W_ih | W_hh]^T (one matmul), then the cell's pointwise part.

    With `projected`, x is layer 0's table row (b already in it): pre = x + h @ W_hh^T.
    """

    def __init__(self, w_ih, w_hh, bias, pointwise, projected: bool) -> None:
        self.projected, self.bias, self.pointwise = projected, bias, pointwise
        parts = (w_hh,) if projected else (w_ih, w_hh)
        self.weight = _fixed(torch.cat(parts, dim=1))  # (G*H, [I +] H)

    def __call__(self, x: Tensor, state: State) -> State:
        h = state[0] if isinstance(state, tuple) else state
        if self.projected:
            pre = self.weight(h).add_(x)  # (B, G*H)
        else:
            pre = _project(torch.cat([x, h], dim=1), self.weight, self.bias)
        return self.pointwise(pre, state)


def _lstm_pointwise(gates: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """LSTMCell's equations after the matmul; gates (B, 4H) in torch's order i, f, g, o."""
    i, f, g, o = gates.chunk(4, 1)  # each (B, H)
    c = torch.addcmul(torch.sigmoid(f) * state[1], torch.sigmoid(i), torch.tanh(g))
    return torch.sigmoid(o) * torch.tanh(c), c


_ACTIVATIONS = {  # rnn's pointwise part: h' = act(pre), whatever the old h
    "tanh": lambda pre, state: torch.tanh(pre),
    "relu": lambda pre, state: torch.relu(pre),
}


class _GRULayer:
    """gru: xw = x @ W_ih^T + b_ih (or the table row), hw = h @ W_hh^T + b_hh, then GRUCell's
    equations (b_hh stays apart: b_hn sits inside r ⊙ (W_hn h + b_hn))."""

    def __init__(self, w_ih, w_hh, b_ih, b_hh, projected: bool) -> None:
        self.projected, self.b_ih, self.b_hh = projected, b_ih, b_hh
        self.weight_ih = None if projected else _fixed(w_ih)  # x -> x W_ih^T (B, 3H)
        self.weight = _fixed(w_hh)  # h -> h W_hh^T (B, 3H)

    def __call__(self, x: Tensor, h: Tensor) -> Tensor:
        xw = x if self.projected else _project(x, self.weight_ih, self.b_ih)  # (B, 3H)
        hw = _project(h, self.weight, self.b_hh)  # (B, 3H)
        x_r, x_z, x_n = xw.chunk(3, 1)  # each (B, H), torch's order r, z, n
        h_r, h_z, h_n = hw.chunk(3, 1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(torch.addcmul(x_n, r, h_n))  # tanh(x_n + r ⊙ h_n)
        return torch.lerp(n, h, z)  # (1 - z) ⊙ n + z ⊙ h


class _CellLayer:
    """peephole_lstm / cifg_lstm: pre = xw + h @ W_hh^T + b_hh, then the cell's own `pointwise`
    (its equations stay in the cell); xw = x @ W_ih^T + b_ih, or layer 0's table row."""

    def __init__(self, cell: nn.Module, w_ih, w_hh, b_ih, b_hh, projected: bool) -> None:
        self.cell, self.projected, self.b_ih, self.b_hh = cell, projected, b_ih, b_hh
        self.weight = None if projected else _fixed(w_ih)  # x -> x W_ih^T (B, G*H)
        self.weight_hh = _fixed(w_hh)  # h -> h W_hh^T (B, G*H)

    def __call__(self, x: Tensor, state: State) -> State:
        xw = x if self.projected else _project(x, self.weight, self.b_ih)  # (B, G*H)
        return self.cell.pointwise(self.weight_hh(state[0], self.b_hh).add_(xw), state)


# --------------------------------------------------------------------------- compiled LSTM-family step
def _fused_kernels(recurrent: nn.Module):
    """rnncli/nn/fused_cpu.py's kernels for an LSTM-family stack in float32 on the CPU, else None."""
    ref = next(recurrent.parameters())
    if recurrent.cell not in LSTM_FAMILY or ref.dtype != torch.float32 or ref.device.type != "cpu":
        return None
    return fused_cpu.kernels()


def _kernel_rows(cell: str, w: Tensor) -> Tensor:
    """Gate rows (G*H, ...) from torch's order to the kernel's, candidate block doubled.

    Kernel layouts (rnncli/nn/fused_cpu.py): lstm and peephole_lstm run as kind 1, [i f g o] (torch's
    order; lstm with zero peepholes); cifg_lstm as kind 2, [f o g]. Block 2 is g in both, and the
    kernel takes 2x its pre-activation (g = 2 sigma(2x) - 1 = tanh(x)).
    """
    blocks = list(w.chunk(4 if cell != "cifg_lstm" else 3, 0))
    if cell == "cifg_lstm":
        blocks = [blocks[0], blocks[2], blocks[1]]  # f g o -> f o g
    blocks[2] = blocks[2] * 2
    return torch.cat(blocks, 0)


class _FusedLayer:
    """An LSTM-family layer through the compiled step: pre = xw + [x |] h @ W^T (+ b) in the
    kernel's gate layout, then one C++ call for gates, cell and output (a snapshot of the weights)."""

    def __init__(self, kernels, name: str, cell, w_ih, w_hh, bias, projected: bool) -> None:
        self.kernels, self.projected = kernels, projected
        self.kind = fused_cpu.kind_id("cifg_lstm" if name == "cifg_lstm" else "peephole_lstm")
        hidden = w_hh.shape[1]
        if name == "peephole_lstm":  # the kernel reads (w_ci, w_cf) as one (2, H) block
            self.w_cif = torch.stack((cell.weight_ci, cell.weight_cf)).detach().contiguous()
            self.w_co = cell.weight_co.detach().contiguous()
        else:  # lstm = peephole kernel with zero peepholes; cifg ignores them
            self.w_cif, self.w_co = w_hh.new_zeros(2, hidden), w_hh.new_zeros(hidden)
        weight = w_hh if projected else torch.cat([w_ih, w_hh], dim=1)  # (G*H, [I +] H)
        self.weight = _fixed(_kernel_rows(name, weight))
        self.bias = None if projected or bias is None else _kernel_rows(name, bias)

    def __call__(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        if self.projected:
            pre = self.weight(h).add_(x)  # x: the table row, bias included
        else:
            pre = self.weight(torch.cat([x, h], dim=1), self.bias)
        c_new, tanh_c, h_new = torch.empty_like(c), torch.empty_like(c), torch.empty_like(c)
        self.kernels.forward_step(self.kind, pre, c.contiguous(), c_new, tanh_c, h_new, self.w_cif, self.w_co)
        return h_new, c_new
