"""Zoneout inside the LSTM family's hand-written BPTT (rnncli/nn/bptt.py): the per-step closures
that pick each unit of h and c from the previous state or the step's new values (forward), and split
the gradient into the new state's share and the carry to the previous step (backward).

Zoneout (Krueger et al. 2017; rnncli/nn/regularise.py): `zones` (T, 2, B, H) bool, True where a unit of
h (row 0) or c (row 1) keeps its previous value at that step (drawn afresh per step), or at evaluation
the rate z (the expectation, s_t = z s_{t-1} + (1 - z) s_new). After each step's pointwise part:

    forward                                      backward (before the step's pointwise part)
    c_t = d_c ? c_{t-1} : c_new                  carry = d ⊙ (dh, dc);  (dh, dc) *= 1 - d
    h_t = d_h ? h_{t-1} : o ⊙ tanh(c_new)        ... step, matmul ...;   (dh, dc) += carry

c_new is kept (the output peephole saw it), the gates saw the zoned state; on the CPU in float32 the
split is one compiled call per step (rnncli/nn/fused_cpu.py `zone_forward` / `zone_backward`).

The masks are drawn once per forward call, one per step.
"""
from __future__ import annotations

import torch
from torch import Tensor


def zone_forward(fused, zones, hs: Tensor, cs: Tensor, c_new: Tensor):
    """Zoneout after step t's pointwise part: h_{t+1} = hs[t + 1] and c from c_new[t], or the
    previous state where the mask keeps it (the expectation for a float rate). zones (T, 2, B, H)."""
    if isinstance(zones, float):
        def zone(t):
            hs[t + 1].lerp_(hs[t], zones)  # (1 - z) new + z old, as regularise.zone
            torch.lerp(c_new[t], cs[t], zones, out=cs[t + 1])
    elif fused is not None:  # per-step views made once (indexing per step costs more than the pass)
        per_step = list(zip(zones.contiguous().unbind(0), hs[:-1].unbind(0), hs[1:].unbind(0), cs[:-1].unbind(0),
                            c_new.unbind(0), cs[1:].unbind(0)))

        def zone(t):
            fused.zone_forward(*per_step[t])
    else:
        def zone(t):
            keep_h, keep_c = zones[t]
            hs[t + 1].copy_(torch.where(keep_h, hs[t], hs[t + 1]))
            torch.where(keep_c, cs[t], c_new[t], out=cs[t + 1])
    return zone


def zone_backward(fused, zones: Tensor | None, rate: float | None, like: Tensor):
    """The reverse of `zone_forward` for step t: unzone(t, dh, dc, g_prev) scales dh, dc (B, H) in place
    to the new state's share and returns (g_prev + h's carry, c's carry), the carries going to step t-1."""
    if rate is not None:
        def unzone(t, dh, dc, g_prev):
            carry_h, carry_c = dh * rate, dc * rate
            dh.mul_(1 - rate), dc.mul_(1 - rate)
            return (carry_h if g_prev is None else carry_h.add_(g_prev)), carry_c
    elif fused is not None:
        keeps, none = zones.contiguous().unbind(0), like.new_empty(0)
        carry_h, carry_c = torch.empty_like(like), torch.empty_like(like)  # reused: consumed within the step

        def unzone(t, dh, dc, g_prev):
            fused.zone_backward(keeps[t], dh, dc, none if g_prev is None else g_prev, carry_h, carry_c)
            return carry_h, carry_c
    else:
        keeps = zones.to(like.dtype)  # (T, 2, B, H) 1 where the old value was kept

        def unzone(t, dh, dc, g_prev):
            keep_h, keep_c = keeps[t]
            carry_h, carry_c = dh * keep_h, dc * keep_c
            dh.sub_(carry_h), dc.sub_(carry_c)
            return (carry_h if g_prev is None else carry_h.add_(g_prev)), carry_c
    return unzone
