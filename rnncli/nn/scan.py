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

Two forms of the same scan, chosen by device (`FORMS`):

    log     the parallel log-space scan above (off the CPU): cumsum + logcumsumexp over time
    linear  on the CPU: a and b for every step at once (one vectorised pass, `cell.coefficients`;
            a long batch in chunks of steps, `CHUNK_ELEMENTS`),
            then h_t = a_t ⊙ h_{t-1} + b_t as T fused multiply-adds with a hand-written backward
            (`LinearScan`): dh_{t-1} += a_t ⊙ dh_t, then da = dh ⊙ h_{t-1}, db = dh over all steps.
            On two cores parallel time gains nothing and the log terms cost more than T tiny steps;
            this form has no log / exp and records no per-step autograd graph
            (benchmarks/min_cells.py).
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


class LinearScan(torch.autograd.Function):
    """h_t = a_t ⊙ h_{t-1} + b_t, t = 1..T, from h0: the sequential form with a hand-written backward.

    a, b (T, B, H), h0 (B, H) -> h (T, B, H). Forward: T multiply-adds, no graph. Backward: the
    gradient reaching h_t is g_t = dh_t + a_{t+1} ⊙ g_{t+1}; then db_t = g_t, da_t = g_t ⊙ h_{t-1},
    dh0 = a_1 ⊙ g_1.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h, prev = torch.empty_like(b), h0
        for t in range(a.shape[0]):
            prev = torch.addcmul(b[t], a[t], prev, out=h[t])
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    def backward(ctx, dh: Tensor):
        a, h, h0 = ctx.saved_tensors
        g = dh.clone()  # (T, B, H), becomes the total gradient reaching each h_t
        for t in range(a.shape[0] - 1, 0, -1):
            torch.addcmul(g[t - 1], a[t], g[t], out=g[t - 1])
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])
        return g * h_prev, g, a[0] * g[0]


def linear_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t for t = 1..T, from h0: a, b (T, B, H), h0 (B, H) -> h (T, B, H)."""
    return LinearScan.apply(a, b, h0.expand_as(b[0]).contiguous())


# the linear form works through time in chunks of at most this many values (16 MB in float32: under
# glibc's 32 MB mmap threshold, so the chunk's temporaries are reused, not page-faulted in afresh)
CHUNK_ELEMENTS = 1 << 22


def _linear_chunks(cell: nn.Module, xw: Tensor, h0: Tensor, mask: Tensor | None) -> Tensor:
    """The linear form over xw (T, B, G*H), a chunk of steps at a time (measured at 64x512, T=400:
    minGRU 2.5x -> 2.8x nn.GRU, minLSTM 0.85x -> 1.33x; at T=100 the whole sequence is one chunk)."""
    steps = max(1, CHUNK_ELEMENTS // h0.numel())
    hs, h = [], h0
    for start in range(0, xw.shape[0], steps):
        a, b = cell.coefficients(xw[start:start + steps])  # each (t, B, H)
        if mask is not None:
            keep = mask[start:start + steps]
            a, b = a.masked_fill(~keep, 1.0), b.masked_fill(~keep, 0.0)
        hs.append(linear_scan(a, b, h))
        h = hs[-1][-1]
    return hs[0] if len(hs) == 1 else torch.cat(hs)


FORMS = {"cpu": "linear"}  # device type -> scan form; any other device: "log" (module docstring)


def scan_form(device_type: str) -> str:
    """'linear' or 'log': the form `run_scan` takes on that device."""
    return FORMS.get(device_type, "log")


def run_scan(cell: nn.Module, x: Tensor, state: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Run a scan cell over time: x (T, B, I), h (B, H) -> (outputs (T, B, H), final h (B, H)).

    mask (T, B, 1) bool, True at real steps: past a sequence's length a_t = 1 and b_t = 0, so the
    state stays as it was (the final state is the last real step's) and the output there is 0.
    """
    xw = F.linear(x, cell.weight_ih, cell.bias_ih)  # (T, B, G*H), under autocast if it is on
    with torch.autocast(x.device.type, enabled=False):
        xw = xw.float() if xw.dtype in _LOW else xw
        if scan_form(x.device.type) == "linear":
            h = _linear_chunks(cell, xw, state.to(xw.dtype), mask)
            return (h if mask is None else h * mask), h[-1]
        log_a, log_b = cell.log_coefficients(xw)  # each (T, B, H)
        if mask is not None:  # exp(-big) = 0 exactly, and unlike -inf it keeps the gradients finite
            log_a = log_a.masked_fill(~mask, 0.0)
            log_b = log_b.masked_fill(~mask, torch.finfo(log_b.dtype).min / 4)
        h = log_scan(log_a, log_b, state.to(xw.dtype))
    return (h if mask is None else h * mask), h[-1]
