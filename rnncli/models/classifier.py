"""The text classifier of the `classify` task (many-to-one).

    ids (B, T) ──► [word dropout: ids -> <unk>, training only] ──► embedding ──► dropout
               ──► Recurrent (any zoo cell, stacked, bidirectional) (B, T, D*H)
               ──► pooling over the real steps: last | mean | max | attention (models/pooling.py)
               ──► dropout ──► linear over the labels ──► logits (B, num_labels)

Padding never changes a result: the recurrent layer packs (or masks) by length, and every
pooling looks only at real steps, so a sentence scores the same alone and in any batch.
"""

from __future__ import annotations

import torch
from torch import nn

from rnncli.models.pooling import Attention, pool
from rnncli.nn.recurrent import Recurrent


class TextClassifier(nn.Module):
    """Embedding -> recurrent stack -> pooling -> dropout -> linear over the labels.

    `recurrent` are the `Recurrent` keyword arguments (cell, hidden_size, num_layers,
    bidirectional, dropout, ...); the same dropout rate is applied before the head.
    """

    def __init__(self, vocab_size: int, num_labels: int, embedding_dim: int, pooling: str = "last",
                 embedding_dropout: float = 0.0, word_dropout: float = 0.0, pad_id: int = 0, unk_id: int = 1,
                 **recurrent):
        super().__init__()
        self.pooling, self.word_dropout, self.pad_id, self.unk_id = pooling, word_dropout, pad_id, unk_id
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.rnn = Recurrent(input_size=embedding_dim, **recurrent)
        size = self.rnn.output_size  # D*H
        self.attention = Attention(size) if pooling == "attention" else None
        self.dropout = nn.Dropout(self.rnn.dropout)
        self.head = nn.Linear(size, num_labels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T) ids, lengths (B,) -> logits (B, num_labels)."""
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(x.shape, device=x.device) < self.word_dropout) & (x != self.pad_id)
            x = x.masked_fill(drop, self.unk_id)
        out, state = self.rnn(self.embedding_dropout(self.embedding(x)), lengths)  # (B, T, D*H)
        pooled = pool(self.pooling, out, state, lengths, self.rnn.num_directions, self.attention)
        return self.head(self.dropout(pooled))
