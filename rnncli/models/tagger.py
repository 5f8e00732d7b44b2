"""The NER tagger: word (+ character) features -> recurrent stack -> per-token tag scores (-> CRF).

    words (B, T) ──► embedding ─┐
    chars of each word ──► CharEncoder (BiLSTM final states, or CNN max-pool) ─┴► concat
        ──► dropout ──► Recurrent (any zoo cell, stacked, bidirectional) ──► linear ──► (B, T, K)
                                                                   └► CRF (optional) in the task

The task module (rnncli/tasks/ner.py) builds it from the config and owns loss, metrics, decoding.
"""
from __future__ import annotations

import torch
from torch import nn

from rnncli.models.crf import CRF
from rnncli.nn.recurrent import Recurrent
from rnncli.nn.state import lengths_mask


class CharEncoder(nn.Module):
    """Each word's characters -> one vector: a BiLSTM's final states, or a CNN max-pooled."""

    def __init__(self, num_chars: int, embedding_dim: int, hidden_size: int, kind: str, kernel_size: int = 3):
        super().__init__()
        self.kind = kind
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=0)
        if kind == "lstm":
            self.rnn = Recurrent("lstm", embedding_dim, hidden_size, bidirectional=True)
            self.output_size = 2 * hidden_size
        else:
            self.conv = nn.Conv1d(embedding_dim, hidden_size, kernel_size, padding=kernel_size // 2)
            self.output_size = hidden_size

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """chars (N, L) ids of N words, lengths (N,) -> (N, output_size)."""
        x = self.embedding(chars)  # (N, L, E)
        if self.kind == "lstm":
            _, (h, _) = self.rnn(x, lengths)  # h (2, N, H): forward and backward final states
            return torch.cat([h[0], h[1]], dim=1)
        y = self.conv(x.transpose(1, 2))[:, :, : chars.size(1)]  # (N, H, L)
        pad = ~lengths_mask(lengths, chars.size(1))  # (N, L)
        return y.masked_fill(pad.unsqueeze(1), float("-inf")).max(dim=2).values


class Tagger(nn.Module):
    """Word (+ char) features -> recurrent stack -> per-token tag scores (-> CRF)."""

    def __init__(self, num_words: int, num_tags: int, embedding_dim: int, crf: bool = False,
                 allowed=None, chars: CharEncoder | None = None, vectors: torch.Tensor | None = None,
                 freeze_embeddings: bool = False, **recurrent):
        """`recurrent` are the `Recurrent` keyword arguments (cell, hidden_size, num_layers,
        bidirectional, dropout, ...); the same dropout rate is applied around the recurrent stack."""
        super().__init__()
        dropout = recurrent.get("dropout", 0.0)
        self.embedding = nn.Embedding(num_words, embedding_dim, padding_idx=0)
        if vectors is not None:
            self.embedding.weight.data.copy_(vectors)
            self.embedding.weight.requires_grad_(not freeze_embeddings)
        self.chars = chars
        features = embedding_dim + (chars.output_size if chars is not None else 0)
        self.dropout = nn.Dropout(dropout)
        self.rnn = Recurrent(input_size=features, **recurrent)
        self.head = nn.Linear(self.rnn.output_size, num_tags)
        self.crf = CRF(num_tags, allowed) if crf else None

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, chars=None) -> torch.Tensor:
        """words (B, T), lengths (B,), chars (ids (N, L), lengths (N,)) of the N real words in
        row-major order -> emissions (B, T, K)."""
        x = self.embedding(words)  # (B, T, E)
        if self.chars is not None:
            mask = lengths_mask(lengths, words.size(1))  # (B, T)
            per_word = self.chars(*chars)  # (N, C)
            char_x = x.new_zeros(*words.shape, per_word.size(1)).masked_scatter(mask.unsqueeze(2), per_word)
            x = torch.cat([x, char_x], dim=2)  # (B, T, E + C)
        out, _ = self.rnn(self.dropout(x), lengths)  # (B, T, D*H), zero past each length
        return self.head(self.dropout(out))
