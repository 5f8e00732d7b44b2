"""The character language model of the `char_lm` task (Karpathy 2015, "The Unreasonable
Effectiveness of Recurrent Neural Networks"; Graves 2013, "Generating Sequences With RNNs").

    ids (B, T) ──► embedding (B, T, E) ──► Recurrent (any zoo cell, stacked) (B, T, H)
               ──► dropout ──► linear over the characters ──► logits (B, T, V)

The final state comes back with the logits, so a caller can carry it across BPTT windows
(training) or feed it to `rnncli.nn.stepper.Stepper` one character at a time (generation).
"""

from __future__ import annotations

import torch
from torch import nn

from rnncli.nn.recurrent import Recurrent


class CharLM(nn.Module):
    """Embedding -> recurrent stack -> dropout -> linear over the vocabulary.

    `recurrent` are the `Recurrent` keyword arguments (cell, hidden_size, num_layers, dropout, ...);
    the same dropout rate is applied before the head.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, **recurrent):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = Recurrent(input_size=embedding_dim, **recurrent)
        self.dropout = nn.Dropout(self.rnn.dropout)
        self.head = nn.Linear(self.rnn.output_size, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        """x (B, T) ids -> logits (B, T, V) and the final state."""
        out, state = self.rnn(self.embedding(x), state=state)  # (B, T, H)
        return self.head(self.dropout(out)), state
