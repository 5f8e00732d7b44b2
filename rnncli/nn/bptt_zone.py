"""Zoneout inside the LSTM family's hand-written BPTT (rnncli/nn/bptt.py): the per-step closures
that pick each unit of h and c from the previous state or the step's new values (forward), and split
the gradient into the new state's share and the carry to the previous step (backward).

Zoneout (Krueger et al. 2017; rnncli/nn/regularise.py): `zones` (T, 2, B, H) bool, True where a unit of
h (row 0) or c (row 1) keeps its previous value at that step (drawn afresh per step), or at evaluation
the rate z (the expectation, s_t = z s_{t-1} + (1 - z) s_new). After each step's pointwise part:

    forward                                      backward (before the step's pointwise part)
    c_t = d_c ? c_{t-1} : c_new                  carry = d ⊙ (dh, dc);  (dh, dc) *= 1 - d
    h_t = d_h ? h_{t-1} : o ⊙ tanh(c_new)        ... step, matmul ...;   (dh, dc) += carry

c_new is kept (the output peephole saw it), the gates saw the zoned state. Each closure here wraps the
step's pointwise part: on the CPU in float32 the zoning rides in the same compiled pass as the step
(rnncli/nn/fused_cpu.py `forward_step_zoned` / `backward_step_zoned`: one call per step, as without
zoneout); elsewhere eager torch ops run after / around the eager step.

The masks are drawn once per forward call, one per step (rnncli/nn/regularise.py `zoneout_masks`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnncli.nn import fused_cpu


def zone_forward(fused, spec, peep, zones, step, hs: Tensor, cs: Tensor, c_new: Tensor):
    """Step t's pointwise part with zoneout: zone(t, args) runs `step(*args)` (args: bptt.py's per-step
    views, ending c_prev, c_new[t], tanh_c[t], hs[t + 1]) and then sets h_{t+1} = hs[t + 1] and
    c_{t+1} = cs[t + 1] from the new values or the previous state where the mask keeps it (the
    expectation for a float rate). zones (T, 2, B, H); `fused` the compiled kernels or None; spec, peep
    the cell class and its peephole weights, as bptt.py's step closures take them."""
    if isinstance(zones, float):
        def zone(t, args):
            step(*args)
            hs[t + 1].lerp_(hs[t], zones)  # (1 - z) new + z old, as regularise.zone
            torch.lerp(c_new[t], cs[t], zones, out=cs[t + 1])
    elif fused is not None:  # per-step views made once (indexing per step costs more than the pass)
        kid, _, w_cif, w_co = fused_cpu.step_args(spec, peep)
        per_step = list(zip(zones.contiguous().unbind(0), hs[:-1].unbind(0), cs[1:].unbind(0)))

        def zone(t, args):
            fused.forward_step_zoned(kid, args[0], *args[-4:], w_cif, w_co, *per_step[t])
    else:
        def zone(t, args):
            step(*args)
            keep_h, keep_c = zones[t]
            hs[t + 1].copy_(torch.where(keep_h, hs[t], hs[t + 1]))
            torch.where(keep_c, cs[t], c_new[t], out=cs[t + 1])
    return zone


def zone_backward(fused, spec, peep, zones: Tensor | None, rate: float | None, step, like: Tensor):
    """The reverse of `zone_forward` for step t: unzone(t, args, g_prev) with args = the backward step's
    (..., dh, dc, tmp) splits dh, dc (B, H) into the new state's share and the kept share, runs the
    step, adds c's kept share to dc (now dL/dc_{t-1}) and returns g_prev + h's kept share, which the
    caller adds to dL/dh_{t-1}."""
    if rate is not None:
        def unzone(t, args, g_prev):
            dh, dc = args[-3], args[-2]
            carry_h, carry_c = dh * rate, dc * rate
            dh.mul_(1 - rate), dc.mul_(1 - rate)
            step(*args)
            dc.add_(carry_c)
            return carry_h if g_prev is None else carry_h.add_(g_prev)
    elif fused is not None:
        kid, n_views, w_cif, w_co = fused_cpu.step_args(spec, peep)
        keeps, none = zones.contiguous().unbind(0), like.new_empty(0)
        carry_h, carry_c = torch.empty_like(like), torch.empty_like(like)  # reused: consumed within the step

        def unzone(t, args, g_prev):
            fused.backward_step_zoned(kid, args[0], args[n_views], *args[-5:-1], w_cif, w_co, keeps[t],
                                      none if g_prev is None else g_prev, carry_h, carry_c)
            return carry_h
    else:
        keeps = zones.to(like.dtype)  # (T, 2, B, H) 1 where the old value was kept

        def unzone(t, args, g_prev):
            dh, dc = args[-3], args[-2]
            keep_h, keep_c = keeps[t]
            carry_h, carry_c = dh * keep_h, dc * keep_c
            dh.sub_(carry_h), dc.sub_(carry_c)
            step(*args)
            dc.add_(carry_c)
            return carry_h if g_prev is None else carry_h.add_(g_prev)
    return unzone
