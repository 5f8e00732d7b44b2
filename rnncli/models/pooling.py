"""Pooling a recurrent layer's outputs over time into one vector per sequence, padding ignored.

    last       the top layer's final state of each direction (each sequence's last real step)
    mean       average over the real steps
    max        element-wise max over the real steps
    attention  a learned additive-attention average over the real steps
"""

from __future__ import annotations

import torch
from torch import nn

from rnncli.nn.state import lengths_mask
from rnncli.models.names import POOLINGS  # noqa: F401  (re-exported)



class Attention(nn.Module):
    """Additive attention pooling: a_t = softmax_t(v . tanh(W h_t + b)); sum_t a_t h_t (Yang et al. 2016)."""

    def __init__(self, size: int):
        super().__init__()
        self.proj = nn.Linear(size, size)
        self.score = nn.Linear(size, 1, bias=False)

    def forward(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """out (B, T, S), mask (B, T) True at real steps -> (B, S)."""
        scores = self.score(torch.tanh(self.proj(out))).squeeze(-1)  # (B, T)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)
        return torch.bmm(weights.unsqueeze(1), out).squeeze(1)


def last_states(state, num_directions: int) -> torch.Tensor:
    """Top layer's final state of each direction, concatenated: (B, D*H).

    The forward direction's final state is at each sequence's last real step, the backward
    direction's at its first step (it runs right to left): both have read the whole sentence.
    """
    h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
    return torch.cat(list(h[-num_directions:]), dim=-1)


def pool(kind: str, out: torch.Tensor, state, lengths: torch.Tensor, num_directions: int,
         attention: Attention | None = None) -> torch.Tensor:
    """Recurrent outputs (B, T, S) -> one vector per sentence (B, S), padding ignored."""
    if kind == "last":
        return last_states(state, num_directions)
    mask = lengths_mask(lengths.to(out.device), out.shape[1])  # (B, T)
    if kind == "mean":  # padded outputs are exactly zero
        return out.sum(dim=1) / lengths.to(out.device, out.dtype).unsqueeze(1)
    if kind == "max":
        return out.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
    return attention(out, mask)
