"""The network of the synthetic long-dependency tasks (`adding`, `copy_memory`): a recurrent
stack with a linear read-out at every step.

    inputs (B, T, I) ──► Recurrent (any zoo cell, stacked) (B, T, H) ──► linear ──► (B, T, out)

The tasks pick the steps they score (adding: the last one; copy_memory: every one).
"""

from __future__ import annotations

import torch
from torch import nn

from rnncli.nn.recurrent import Recurrent


class SequenceModel(nn.Module):
    """inputs (B, T, I) -> Recurrent -> Linear(H, out): per-step outputs (B, T, out).

    `recurrent` are the `Recurrent` keyword arguments (cell, hidden_size, num_layers, dropout, ...).
    """

    def __init__(self, input_size: int, output_size: int, **recurrent):
        super().__init__()
        self.input_size = input_size
        self.rnn = Recurrent(input_size=input_size, **recurrent)
        self.head = nn.Linear(self.rnn.output_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, T, H)
        return self.head(out)  # (B, T, out)
