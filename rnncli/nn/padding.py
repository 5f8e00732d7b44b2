"""Padded batches over time: the (T, B, 1) step mask, reversing each sequence within its own length
(the backward direction of a bidirectional layer), and the check of a lengths tensor."""
from __future__ import annotations

import torch
from torch import Tensor

from rnncli.nn.state import lengths_mask


def time_mask(lengths: Tensor, steps: int) -> Tensor:
    """(T, B, 1) bool, True where t < length: `lengths_mask`, time-major."""
    return lengths_mask(lengths, steps).t().unsqueeze(-1)


def reverse_padded(x: Tensor, lengths: Tensor | None, batch_first: bool = True) -> Tensor:
    """Reverse each sequence within its own length; padding stays at the end. Self-inverse.

    x (B, T, *) if batch_first else (T, B, *); lengths (B,) or None (= plain flip over time).
        [a b c . .] -> [c b a . .]
    """
    time_dim = 1 if batch_first else 0
    if lengths is None:
        return x.flip(time_dim)
    t = torch.arange(x.shape[time_dim], device=x.device).unsqueeze(0)  # (1, T)
    length = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(t < length, length - 1 - t, t)  # (B, T)
    if not batch_first:
        index = index.t()  # (T, B)
    index = index.reshape(index.shape + (1,) * (x.dim() - 2)).expand_as(x)
    return x.gather(time_dim, index)


def _all_full(lengths: Tensor | None, batch: int, steps: int) -> bool:
    """Validate lengths; True when there is no padding (lengths None or all == T)."""
    if lengths is None:
        return True
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > steps:
        raise ValueError(
            f"lengths must lie in 1..{steps} (the padded length), got min {lo}, max {hi}"
        )
    return lo == steps
