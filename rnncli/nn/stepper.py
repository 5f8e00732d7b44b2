"""One-token steps over a unidirectional `Recurrent` stack: fast sampling at batch 1.

`Recurrent.forward` on a length-1 sequence pays nn.LSTM's per-call set-up (~5 ms on CPU) for
what is one small matmul per layer. `Stepper` copies a stack's weights once into the layout
that is cheapest to step, then `step(inputs, state)` advances every layer by one token:

    token ──► table[token] = xw          layer 0: the input projection is a row lookup
    h_0   ──► xw + h_0 @ W_hh^T ──► cell ──► h_0'
    h_1   ──► b + [h_0' | h_1] @ [W_ih | W_hh]^T ──► cell ──► h_1' ──► ...  (cells that fold b_hh)
                                                              output: the top layer's h

    table = embedding.weight @ W_ih^T + b_ih (+ b_hh)        (V, G*H), built once

Why this layout (2x512 LSTM on a 2-core AMD EPYC VM, batch 1; benchmarks/generation_speed.py):
  * a step reads every weight once, and at batch 1 that memory traffic is the cost. The
    weights are packed once for oneDNN (`rnncli/nn/onednn.py`; elsewhere stored transposed and
    contiguous, (in, G*H)): `x @ W^T` over torch's own (G*H, in) layout, which is what
    `torch.lstm_cell` and `F.linear` do, took 2-2.8 ms a step, the transposed copy 0.7-1 ms,
    the packed weights ~0.5 ms (past ~8 MB of weights the matmuls stream from DRAM).
  * scan cells (mingru, minlstm) have no W_hh: a layer is its input matmul and the cell's
    sequential `pointwise`, with a constant-size state h (B, H), however long the sequence.
  * layers >= 1 of cells whose class says `folds_b_hh` do one matmul over [x | h] instead of two,
    with b_hh folded into b_ih. gru keeps two (its b_hn and W_hn h sit inside r ⊙ (...)).
  * after the matmuls each layer calls its cell's own `pointwise`, so the equations live in one
    place (rnncli/nn/cells/); stacks on torch's kernel get step cells holding a copy of its weights.
  * in float32 on the CPU, when rnncli/nn/fused_cpu.py's kernels are built, every layer of a cell
    with a `bptt_kind` runs its pointwise part as one compiled call instead (`_FusedLayer`), its gate
    rows in the cell's `bptt_gates` order (the same layout as the hand-written BPTT): 1.16x chars/s
    for lstm, 1.4x for the peephole and CIFG LSTMs.

State is explicit, as everywhere (STYLE habit 7): a tuple with one step-level state per layer,
h (B, H) or (h, c), passed in and returned. `split_state` / `join_state` (rnncli/nn/state.py)
convert from / to Recurrent's (L, B, H) layout, e.g. after priming with a full forward.
The stepper is a snapshot for inference: no dropout, no graph; rebuild it if the weights change.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from rnncli.nn import fused_cpu
from rnncli.nn.bptt import block_permutation, double_candidate
from rnncli.nn.cells import num_gates
from rnncli.nn.int8 import SMALL_BATCH, Int8Weight
from rnncli.nn.onednn import FixedWeight
from rnncli.nn.regularise import zone
from rnncli.nn.state import State, StepState, hidden, zero_state

_EMPTY = torch.empty(0)  # an absent tensor argument of the C++ kernels


class Stepper:
    """Step a unidirectional `Recurrent` one token at a time, with its weights as they are now.

    step(inputs, state) -> (output (B, H), new state)
      inputs  token ids (B,) when built with `embedding`, else layer-0 inputs x (B, I)
      state   StepState: one h (B, H) or (h, c) per layer (see `initial_state`, `split_state`)
    Matches `recurrent(embedding(ids), state=...)` step by step up to float rounding.
    With `int8` (default: what the layer declares, `recurrent.int8`) the matmuls read int8 weights
    (rnncli/nn/int8.py): a quarter of the bytes, results within int8 rounding.
    """

    def __init__(self, recurrent: nn.Module, embedding: nn.Embedding | None = None,
                 int8: bool | None = None) -> None:
        check_steppable(recurrent, embedding)
        self.int8 = recurrent.int8 if int8 is None else int8
        fixed = Int8Weight if self.int8 else _fixed
        self.cell, self.hidden_size = recurrent.cell, recurrent.hidden_size
        self.state_kind = recurrent.state_kind  # the cell's, or "hc+gates" (full gate recurrence)
        self.zoneout = float(recurrent.zoneout)  # evaluation's zoneout: s = z s_prev + (1 - z) step (regularise.py)
        ref = next(recurrent.parameters())
        self.device, self.dtype = ref.device, ref.dtype
        kernels = _fused_kernels(recurrent)  # compiled LSTM-family step, or None
        with torch.no_grad():
            self.table = None if embedding is None else _input_table(recurrent, embedding, kernels)
            self.layers = [
                _make_layer(recurrent, k, projected=k == 0 and self.table is not None, kernels=kernels, fixed=fixed)
                for k in range(recurrent.num_layers)
            ]

    def initial_state(self, batch_size: int = 1) -> StepState:
        """All zeros, like `Recurrent`'s state=None."""
        shape = (batch_size, self.hidden_size)
        return tuple(zero_state(self.state_kind, shape, self.device, self.dtype) for _ in self.layers)

    def step(self, inputs: Tensor, state: StepState) -> tuple[Tensor, StepState]:
        """One token through every layer -> (top layer's h (B, H), new state)."""
        if torch.is_grad_enabled():  # the custom cells use live parameters: record no graph
            with torch.no_grad():
                return self.step(inputs, state)
        x = inputs if self.table is None else self.table.index_select(0, inputs)  # (B, G*H)
        new = []
        for layer, old in zip(self.layers, state):
            layer_state = layer(x, old)
            layer_state = zone(layer_state, old, self.zoneout) if self.zoneout else layer_state
            new.append(layer_state)
            x = hidden(layer_state)  # (B, H)
        return x, tuple(new)


def check_steppable(recurrent: nn.Module, embedding: nn.Embedding | None = None) -> None:
    """Raise a ValueError naming what a Stepper cannot step."""
    if recurrent.bidirectional:
        raise ValueError(
            f"cannot step a bidirectional {recurrent.cell!r} layer one token at a time: its "
            f"backward direction reads the sequence from the end; only unidirectional stacks step"
        )
    if embedding is None:
        return
    if embedding.embedding_dim != recurrent.input_size:
        raise ValueError(
            f"embedding_dim {embedding.embedding_dim} does not match the recurrent layer's "
            f"input size {recurrent.input_size}"
        )
    if embedding.max_norm is not None:  # rows renormalised on lookup: no fixed table
        raise ValueError("cannot precompute the input table of an embedding with max_norm set")


# --------------------------------------------------------------------------- weights
def _weights(recurrent: nn.Module, k: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Layer k's (weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh), detached."""
    return tuple(None if w is None else w.detach() for w in recurrent.layer_weights(k))


def _plus(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """a + b where either bias may be missing."""
    if a is None or b is None:
        return b if a is None else a
    return a + b


def _input_table(recurrent: nn.Module, embedding: nn.Embedding, kernels=None) -> Tensor:
    """Layer 0's input projection of every token: (V, G*H), b_hh included where the cell folds it
    (in the kernel's gate layout when layer 0 runs the compiled step)."""
    w_ih, _, b_ih, b_hh = _weights(recurrent, 0)
    table = embedding.weight.detach() @ w_ih.t()  # (V, I) @ (I, G*H)
    bias = _plus(b_ih, b_hh) if recurrent.cell_class.folds_b_hh else b_ih
    table = table if bias is None else table + bias
    return table if kernels is None else _kernel_rows(recurrent.cell, table.t()).t().contiguous()


def _fixed(w: Tensor) -> FixedWeight:
    """(G*H, in) -> x @ W^T at batch 1, packed for oneDNN where it can be (rnncli/nn/onednn.py)."""
    return FixedWeight(w, batch=1)


def _project(x: Tensor, weight: FixedWeight, bias: Tensor | None) -> Tensor:
    """x (B, in) @ weight_t (in, G*H) + bias -> (B, G*H)."""
    return weight(x, bias)


# --------------------------------------------------------------------------- layers
def _make_layer(recurrent: nn.Module, k: int, projected: bool, kernels=None,
                fixed: Callable[[Tensor], FixedWeight] = None) -> Callable[[Tensor, State], State]:
    """Layer k as `layer(x, state) -> new state`; with `projected`, x is already xw (B, G*H).
    `fixed` packs a weight for the matmuls (default fp32 `FixedWeight`; `Int8Weight` for int8)."""
    fixed = fixed or _fixed
    w_ih, w_hh, b_ih, b_hh = _weights(recurrent, k)
    if kernels is not None:
        layer = _Int8FusedLayer if fixed is Int8Weight else _FusedLayer  # int8: GEMVs + step in one call
        return layer(kernels, recurrent, k, w_ih, w_hh, _plus(b_ih, b_hh), projected, fixed)
    cell = recurrent.step_cell(k)
    if recurrent.cell_class.sequence_kind == "scan":  # no W_hh: one matmul, then the sequential step
        return _InputLayer(w_ih, b_ih, cell.pointwise, projected, fixed)
    if recurrent.cell_class.folds_b_hh:
        return _ConcatLayer(w_ih, w_hh, _plus(b_ih, b_hh), cell.pointwise, projected, fixed)
    return _SplitLayer(cell, w_ih, w_hh, b_ih, b_hh, projected, fixed)


def make_layer(recurrent: nn.Module, k: int, projected: bool, fixed=None) -> Callable[[Tensor, State], State]:
    """Row k (layer * D + direction) of any `Recurrent` as a step function `layer(x, state)`, on the
    compiled step where the cell has one; with `projected`, x is `input_projection`'s output."""
    return _make_layer(recurrent, k, projected, _fused_kernels(recurrent), fixed)


def input_projection(recurrent: nn.Module, k: int) -> tuple[Tensor, Tensor | None]:
    """Row k's input weight (G*H, I) and bias (G*H,) in the row layout `make_layer(projected=True)`
    expects: xw = x @ W^T + b (b_hh folded in where the cell folds it; the kernel's gate order)."""
    w_ih, _, b_ih, b_hh = _weights(recurrent, k)
    bias = _plus(b_ih, b_hh) if recurrent.cell_class.folds_b_hh else b_ih
    if _fused_kernels(recurrent) is None:
        return w_ih, bias
    return _kernel_rows(recurrent.cell, w_ih), None if bias is None else _kernel_rows(recurrent.cell, bias)


class _ConcatLayer:
    """pre = b + [x | h] @ [W_ih | W_hh]^T (one matmul), then the cell's `pointwise(pre, state)`.

    With `projected`, x is layer 0's table row (b already in it): pre = x + h @ W_hh^T.
    """

    def __init__(self, w_ih, w_hh, bias, pointwise, projected: bool, fixed=_fixed) -> None:
        self.projected, self.bias, self.pointwise = projected, bias, pointwise
        parts = (w_hh,) if projected else (w_ih, w_hh)
        self.weight = fixed(torch.cat(parts, dim=1))  # (G*H, [I +] H)

    def __call__(self, x: Tensor, state: State) -> State:
        h = hidden(state)
        if self.projected:
            pre = self.weight(h).add_(x)  # (B, G*H)
        else:
            pre = _project(torch.cat([x, h], dim=1), self.weight, self.bias)
        return self.pointwise(pre, state)


class _InputLayer:
    """Scan cells (mingru, minlstm), whose gates read only the input: pre = x @ W_ih^T + b_ih (or the
    table row), then the cell's sequential `pointwise(pre, h)`; the state stays one h (B, H)."""

    def __init__(self, w_ih, b_ih, pointwise, projected: bool, fixed=_fixed) -> None:
        self.pointwise, self.projected, self.b_ih = pointwise, projected, b_ih
        self.weight_ih = None if projected else fixed(w_ih)  # x -> x W_ih^T (B, G*H)

    def __call__(self, x: Tensor, state: State) -> State:
        pre = x if self.projected else _project(x, self.weight_ih, self.b_ih)  # (B, G*H)
        return self.pointwise(pre, state)


class _SplitLayer:
    """Cells that keep b_hh apart (gru: b_hn sits inside r ⊙ (W_hn h + b_hn)): xw = x @ W_ih^T + b_ih
    (or the table row), hw = h @ W_hh^T + b_hh, then the cell's `pointwise(xw, hw, state)`."""

    def __init__(self, cell: nn.Module, w_ih, w_hh, b_ih, b_hh, projected: bool, fixed=_fixed) -> None:
        self.pointwise, self.projected, self.b_ih, self.b_hh = cell.pointwise, projected, b_ih, b_hh
        self.weight_ih = None if projected else fixed(w_ih)  # x -> x W_ih^T (B, G*H)
        self.weight_hh = fixed(w_hh)  # h -> h W_hh^T (B, G*H)

    def __call__(self, x: Tensor, state: State) -> State:
        xw = x if self.projected else _project(x, self.weight_ih, self.b_ih)  # (B, G*H)
        return self.pointwise(xw, _project(hidden(state), self.weight_hh, self.b_hh), state)


# --------------------------------------------------------------------------- compiled LSTM-family step
def _fused_kernels(recurrent: nn.Module):
    """rnncli/nn/fused_cpu.py's kernels for a stack of an LSTM-family cell (its `bptt_kind` in
    fused_cpu.KINDS), in float32 on the CPU, with sigmoid gates and tanh; else None."""
    ref = next(recurrent.parameters())
    if recurrent.bptt_kind not in fused_cpu.KINDS or ref.dtype != torch.float32 or ref.device.type != "cpu":
        return None
    if not recurrent.default_activations:  # the kernel computes σ and tanh only
        return None
    return fused_cpu.kernels()


def _kernel_rows(cell: str, w: Tensor) -> Tensor:
    """Gate rows (G*H, ...) from torch's order to the cell's `bptt_gates` order, candidate doubled:
    the kernel takes 2x g's pre-activation (g = 2 sigma(2x) - 1 = tanh(x))."""
    size = w.shape[0] // num_gates(cell)  # H
    return double_candidate(cell, w[block_permutation(cell, size, w.device)], size)


def _peepholes(recurrent: nn.Module, k: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """The kernels read a peephole cell's (w_ci, w_cf) as one (2, H) block and w_co (H,); other cells: empty."""
    spec = recurrent.cell_class
    if not spec.extra_params:
        return like.new_empty(0), like.new_empty(0)
    cell = recurrent.step_cell(k)
    w_ci, w_cf, w_co = (getattr(cell, name).detach() for name in spec.extra_params)
    return torch.stack((w_ci, w_cf)).contiguous(), w_co.contiguous()


class _FusedLayer:
    """A layer through the compiled step: pre = xw + [x |] h @ W^T (+ b) in the kernel's gate
    layout, then one C++ call for gates, cell and output (a snapshot of the weights)."""

    def __init__(self, kernels, recurrent: nn.Module, k: int, w_ih, w_hh, bias, projected: bool,
                 fixed=_fixed) -> None:
        self.kernels, self.projected = kernels, projected
        self.kind = fused_cpu.kind_id(recurrent.cell_class.bptt_kind)
        self.w_cif, self.w_co = _peepholes(recurrent, k, w_hh)
        weight = w_hh if projected else torch.cat([w_ih, w_hh], dim=1)  # (G*H, [I +] H)
        self.weight = fixed(_kernel_rows(recurrent.cell, weight))
        self.bias = None if projected or bias is None else _kernel_rows(recurrent.cell, bias)

    def __call__(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        if self.projected:
            pre = self.weight(h).add_(x)  # x: the table row, bias included
        else:
            pre = self.weight(torch.cat([x, h], dim=1), self.bias)
        c_new, tanh_c, h_new = torch.empty_like(c), torch.empty_like(c), torch.empty_like(c)
        self.kernels.forward_step(self.kind, pre, c.contiguous(), c_new, tanh_c, h_new, self.w_cif, self.w_co)
        return h_new, c_new


class _Int8FusedLayer(_FusedLayer):
    """`_FusedLayer` on int8 weights (`Int8Weight`): at small batch the two GEMVs, bias, gates and
    the c/h update are ONE C++ call (int8_lstm_step, rnncli/nn/int8_kernels.py) with fp32
    activations; larger batches take `_FusedLayer`'s path (fbgemm's int8 matmul, then the step)."""

    def __call__(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        if self.weight.kernels is None or h.shape[0] > SMALL_BATCH:
            return super().__call__(x, state)
        add, inputs = (x, _EMPTY) if self.projected else (_EMPTY, x)  # the table row / the layer's input
        bias = _EMPTY if self.bias is None else self.bias
        h_new, c_new = self.kernels.int8_lstm_step(self.kind, add, inputs, h, c, self.weight.qweight,
                                                   self.weight.scale, bias, self.w_cif, self.w_co)
        return h_new, c_new
