"""Recurrent regularisers applied inside the step: variational recurrent dropout and zoneout.

    recurrent_dropout p   (Gal & Ghahramani 2016, "A Theoretically Grounded Application of Dropout in
                          Recurrent Neural Networks"): one mask m (B, H) per sequence, layer and
                          direction, the same at every step, on the recurrent input only:
                              pre_t = W_ih x_t + b_ih + W_hh (m ⊙ h_{t-1}) + b_hh,   m ~ Bernoulli(1-p)/(1-p)
                          the state itself (h_{t-1} in GRU's interpolation, c) is not dropped.
    zoneout z             (Krueger et al. 2017, "Zoneout: Regularizing RNNs by Randomly Preserving
                          Hidden Activations"): each unit of the state keeps its previous value with
                          probability z, drawn afresh at every step as in the paper (h and c apart):
                              s_t = d_t ⊙ s_{t-1} + (1 - d_t) ⊙ cell(x_t, s_{t-1}),   d_t ~ Bernoulli(z)
                          at evaluation the expectation, s_t = z s_{t-1} + (1 - z) cell(...) (the paper's).

Training mode only for the draws; at evaluation recurrent dropout is the identity. A "sequence" is
one forward call: a char-LM window of truncated BPTT draws a new mask per window.
The masks are drawn here and handed to the step loops: `run_cell_regularised` (the autograd loop)
and the hand-written BPTT (rnncli/nn/bptt.py, `h_mask` and `zones`), so both paths see the same draws.
On the CPU the zoneout masks come from a compiled counter-based hash (rnncli/nn/fused_cpu.py
`zone_masks`) where the kernels are built, else from torch.rand.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn import fused_cpu
from rnncli.nn.state import State, hidden, keep_where


def dropout_mask(like: Tensor, p: float, training: bool) -> Tensor | None:
    """(B, H) mask scaled by 1/(1-p) for the recurrent input, or None (p = 0 or not training)."""
    if p == 0 or not training:
        return None
    return torch.empty_like(like).bernoulli_(1 - p).div_(1 - p)


def zoneout_masks(steps: int, state: State, z: float, training: bool) -> Tensor | float | None:
    """Training: (T, S, B, H) bool, True where a unit keeps its previous value (S = 1 for h, 2 for
    (h, c)); evaluation: the rate z itself (the expectation); None when z = 0."""
    if z == 0:
        return None
    if not training:
        return z
    parts = state if isinstance(state, tuple) else (state,)
    shape = (steps, len(parts), *parts[0].shape)
    kernels = fused_cpu.kernels() if parts[0].device.type == "cpu" else None
    if kernels is None:  # rand() < z: 6 ms for (100, 2, 32, 256) on 2 CPU cores (bernoulli_ into bool: 12)
        return torch.rand(shape, device=parts[0].device) < z
    keep = torch.empty(shape, dtype=torch.bool)
    # the compiled counter-based draw, keyed by 63 bits from torch's generator (so torch.manual_seed /
    # trainer.seed fix it); the same Bernoulli(z) per unit and step as rand() < z, not the same bits
    kernels.zone_masks(torch.empty((), dtype=torch.int64).random_().item(), z, keep)
    return keep


def zone(new: State, old: State, d_t: Tensor | float) -> State:
    """Zoneout of one step: d_t (S, B, H) bool (keep old where True), or the rate (the expectation)."""
    if isinstance(new, tuple):
        return tuple(_zone_one(n, o, d_t if isinstance(d_t, float) else d_t[k])
                     for k, (n, o) in enumerate(zip(new, old)))
    return _zone_one(new, old, d_t if isinstance(d_t, float) else d_t[0])


def _zone_one(new: Tensor, old: Tensor, d: Tensor | float) -> Tensor:
    if isinstance(d, float):
        return torch.lerp(new, old, d)  # (1 - z) new + z old
    return torch.where(d, old, new)


def dropped_step(cell: nn.Module, folds_b_hh: bool, xw_t: Tensor, state: State, h_mask: Tensor) -> State:
    """One step with the recurrent input m ⊙ h_{t-1}: the cell's own `pointwise` after the matmuls
    (with m all ones, exactly its `recurrent_step`)."""
    hw = F.linear(hidden(state) * h_mask, cell.weight_hh, cell.bias_hh)  # (B, G*H)
    return cell.pointwise(xw_t + hw, state) if folds_b_hh else cell.pointwise(xw_t, hw, state)


def run_cell_regularised(
    cell: nn.Module, folds_b_hh: bool, x: Tensor, state: State, mask: Tensor | None,
    h_mask: Tensor | None, zones: Tensor | float | None,
) -> tuple[Tensor, State]:
    """`rnncli.nn.recurrent.run_cell` with recurrent dropout (h_mask (B, H)) and / or zoneout
    (`zoneout_masks`): x (T, B, I) -> (outputs (T, B, H), final state); mask (T, B, 1) as there."""
    xw = F.linear(x, cell.weight_ih, cell.bias_ih)  # (T, B, G*H)
    outputs = []
    for t, xw_t in enumerate(xw.unbind(0)):
        if h_mask is None:
            new = cell.recurrent_step(xw_t, state)
        else:
            new = dropped_step(cell, folds_b_hh, xw_t, state, h_mask)
        if zones is not None:
            new = zone(new, state, zones if isinstance(zones, float) else zones[t])
        state = new if mask is None else keep_where(mask[t], new, state)
        outputs.append(hidden(state))
    out = torch.stack(outputs)
    return (out if mask is None else out * mask), state
