"""Token vocabularies with special tokens, frequency cut-offs and a plain-dict form for checkpoints.

    specials first (<pad> = 0, <unk> = 1, then any task extras such as <bos>, <eos>),
    then tokens by descending frequency, ties broken alphabetically (deterministic).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

import torch

PAD, UNK = "<pad>", "<unk>"


class Vocab:
    def __init__(self, tokens: list[str]):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary tokens must be unique")

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], min_freq: int = 1, max_size: int | None = None,
              specials: tuple[str, ...] = (PAD, UNK)) -> "Vocab":
        """From token sequences: keep tokens seen >= min_freq times, at most max_size (specials excluded)."""
        counts = Counter(t for seq in sequences for t in seq)
        kept = sorted((t for t, n in counts.items() if n >= min_freq and t not in specials),
                      key=lambda t: (-counts[t], t))
        return cls([*specials, *kept[:max_size]])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    @property
    def pad_id(self) -> int:
        return self.stoi[PAD]

    @property
    def unk_id(self) -> int:
        return self.stoi[UNK]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Unknown tokens map to <unk> (which must be in the vocabulary)."""
        unk = self.stoi.get(UNK)
        return [self.stoi.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def to_dict(self) -> dict:
        return {"itos": self.itos}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        return cls(d["itos"])


def pad_batch(seqs: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged id lists -> (ids (B, T_max) padded with pad_id, lengths (B,))."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out, lengths
