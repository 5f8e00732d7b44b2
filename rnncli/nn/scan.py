"""Parallel scan over time for cells whose gates read only the input (`sequence_kind = "scan"`).

minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?") update their state as a linear
recurrence whose coefficients are known for every step before the loop starts:

    h_t = a_t ⊙ h_{t-1} + b_t        a_t in (0, 1), b_t > 0, both from x_t alone

Unrolled, with A_t = a_1 ⊙ ... ⊙ a_t (Feng et al., Appendix; Heinsen 2023):

    h_t = A_t ⊙ h_0 + Σ_{k<=t} (A_t / A_k) ⊙ b_k
    log A_t = cumsum(log a)_t = a*_t
    log Σ_{k<=t} (A_t / A_k) b_k = a*_t + logcumsumexp(log b - a*)_t

so the whole sequence is one cumsum and one logcumsumexp over time instead of T dependent steps.
The h_0 term is added outside the logs, so any initial state works (also negative or zero ones).
It runs in float32 at least (autocast is switched off for it): log-space sums lose too much in
bf16 / fp16. `run_scan` has `run_cell`'s contract (rnncli/nn/recurrent.py), padding included.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LOW = (torch.bfloat16, torch.float16)


def log_scan(log_a: Tensor, log_b: Tensor, h0: Tensor) -> Tensor:
    """h_t = exp(log_a_t) ⊙ h_{t-1} + exp(log_b_t) for t = 1..T, from h0.

    log_a, log_b (T, B, H); h0 (B, H) -> h (T, B, H), h[t] the state after step t.
    """
    a_star = log_a.cumsum(0)  # log A_t, (T, B, H)
    log_sum = a_star + torch.logcumsumexp(log_b - a_star, dim=0)
    return torch.exp(a_star) * h0 + torch.exp(log_sum)


def run_scan(cell: nn.Module, x: Tensor, state: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run a scan cell over time: x (T, B, I), h (B, H) -> (outputs (T, B, H), final h (B, H)).

    mask (T, B, 1) bool, True at real steps: past a sequence's length a_t = 1 and b_t = 0, so the
    state stays as it was (the final state is the last real step's) and the output there is 0.
    """
    xw = F.linear(x, cell.weight_ih, cell.bias_ih)  # (T, B, G*H), under autocast if it is on
    with torch.autocast(x.device.type, enabled=False):
        xw = xw.float() if xw.dtype in _LOW else xw
        log_a, log_b = cell.log_coefficients(xw)  # each (T, B, H)
        if mask is not None:  # exp(-big) = 0 exactly, and unlike -inf it keeps the gradients finite
            log_a = log_a.masked_fill(~mask, 0.0)
            log_b = log_b.masked_fill(~mask, torch.finfo(log_b.dtype).min / 4)
        h = log_scan(log_a, log_b, state.to(xw.dtype))
    return (h if mask is None else h * mask), h[-1]
