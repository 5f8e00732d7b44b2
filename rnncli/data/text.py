"""Plain-text corpora for character-level language modelling.

`read_text` decodes a file strictly and names the byte offset of the first bad byte;
`CharVocab` maps characters to ids; `batchify` and `BPTTWindows` cut a token stream into
parallel streams and truncated-BPTT windows:

    stream (N ids):   a b c d e f g h i j k l m n o p q r s t u v w x
    batchify, B = 4:  row 0: a b c d e f        each row is a contiguous stream of
                      row 1: g h i j k l        L = N // B ids; the tail (N mod B) is
                      row 2: m n o p q r        dropped
                      row 3: s t u v w x
    window k (bptt = 2):  x = rows[:, 2k : 2k+2]      (B, bptt)
                          y = rows[:, 2k+1 : 2k+3]    the next character of every x

The hidden state at the end of window k is the initial state of window k + 1 (stateful
truncated BPTT): row r of window k + 1 continues exactly where row r of window k stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rnncli.errors import DataError


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file not found: {Path(path).absolute()}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, expected a text file") from None
    try:
        return data.decode(encoding)
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}' (data.encoding)") from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}: byte offset {e.start} (line {line}): cannot decode {data[e.start:e.end]!r} as "
            f"{encoding} ({e.reason}); set data.encoding to the file's encoding (e.g. latin-1)"
        ) from None


def split_text(text: str, fractions: list[float]) -> list[str]:
    """Cut `text` in order into consecutive pieces of the given fractions (train, val, test)."""
    bounds, total = [0], len(text)
    acc = 0.0
    for f in fractions:
        acc += f
        bounds.append(min(total, round(acc * total)))
    bounds[-1] = total
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


class CharVocab:
    """Characters <-> ids; the id order is the sorted character order."""

    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, *texts: str) -> "CharVocab":
        return cls(sorted(set().union(*map(set, texts))))

    def __len__(self) -> int:
        return len(self.chars)

    def missing(self, text: str) -> list[str]:
        return sorted(set(text) - self.index.keys())

    def encode(self, text: str, source: str = "text") -> torch.Tensor:
        missing = self.missing(text)
        if missing:
            raise DataError(
                f"{source} has characters that are not in the vocabulary: {_show(missing)}"
            )
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)


def _show(chars: list[str], limit: int = 20) -> str:
    shown = " ".join(repr(c) for c in chars[:limit])
    return shown + (f" ... ({len(chars)} in all)" if len(chars) > limit else "")


def batchify(ids: torch.Tensor, streams: int) -> torch.Tensor:
    """(N,) -> (B, N // B): B contiguous streams side by side."""
    length = ids.numel() // streams
    return ids[: streams * length].view(streams, length)


class BPTTWindows:
    """The truncated-BPTT windows of a batchified stream, as an indexable sequence of (x, y)."""

    def __init__(self, rows: torch.Tensor, bptt: int):
        self.rows, self.bptt = rows, bptt

    def __len__(self) -> int:
        return max(0, math.ceil((self.rows.size(1) - 1) / self.bptt))

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        start = k * self.bptt
        n = min(self.bptt, self.rows.size(1) - 1 - start)
        return self.rows[:, start : start + n], self.rows[:, start + 1 : start + 1 + n]  # (B, n) each
