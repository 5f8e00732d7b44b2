"""Pretrained word vectors in GloVe or word2vec *text* format, aligned to a vocabulary.

    GloVe       word v1 v2 ... vD            one word a line, no header
    word2vec    <count> <dim>                a header line, then the GloVe layout

Usage (any task with a `rnncli.data.vocab.Vocab`):

    weights, coverage = load_vectors(["glove.txt"], vocab, token_counts=counts)
    nn.Embedding.from_pretrained(weights, freeze=True, padding_idx=vocab.pad_id)
    print(coverage.describe())   # "embeddings: 1,234 of 2,000 word types (61.7%), ..."

Tasks call `pretrained_embedding`: the same, plus the check that the vectors fit `model.embedding_dim`.

Real files are messy, so reading is byte-based and line-by-line:
- lines are split on `\\n` only; a last line without a newline is read like any other;
- a line that is not valid UTF-8 (GloVe files in the wild have a few cp1252 bytes) is skipped
  and counted: its word cannot be matched reliably, so guessing an encoding would be worse;
- a line with the wrong number of fields, or a value that is not a number, is an error naming
  `file:line` and what was found (or, with `skip_bad_lines=True`, counted and skipped): a
  vector is never silently shifted or truncated;
- a word seen twice keeps its first vector (the later ones are counted as duplicates).

Rows of vocabulary words missing from the files get N(0, s^2) with s the standard deviation of
the vectors found (0.1 if none), drawn from a seeded generator; the `<pad>` row is zero.
A word is looked up as written, then lowercased (GloVe 6B is uncased).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from rnncli.data.vocab import PAD, UNK, Vocab
from rnncli.errors import DataError


@dataclass
class Coverage:
    """How much of a vocabulary (and of its running tokens) the vector files cover."""

    dim: int
    types: int  # vocabulary words (specials excluded)
    types_found: int
    tokens: int  # running tokens of those words, if counts were given (else 0)
    tokens_found: int
    vectors_read: int  # lines with a well-formed vector
    undecodable_lines: int  # skipped: not UTF-8
    bad_lines: int  # skipped: wrong field count or not numbers (skip_bad_lines=True)
    duplicates: int  # words seen again after their first vector

    def describe(self) -> str:
        text = (f"embeddings: {self.types_found:,} of {self.types:,} word types found "
                f"({_pct(self.types_found, self.types)})")
        if self.tokens:
            share = _pct(self.tokens_found, self.tokens)
            text += f", {self.tokens_found:,} of {self.tokens:,} training tokens ({share})"
        text += f"; {self.vectors_read:,} {self.dim}-d vectors read"
        skipped = [f"{n} {what}" for n, what in ((self.undecodable_lines, "undecodable"),
                                                  (self.bad_lines, "malformed"),
                                                  (self.duplicates, "duplicate")) if n]
        return text + (f", skipped {', '.join(skipped)} line(s)" if skipped else "")


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "n/a"


def load_vectors(paths: str | Path | list, vocab: Vocab, token_counts: Counter | None = None,
                 skip_bad_lines: bool = False, seed: int = 0,
                 specials: tuple[str, ...] = ()) -> tuple[torch.Tensor, Coverage]:
    """Vectors of `vocab`'s words from GloVe / word2vec text files -> (weights (V, dim), coverage).

    `token_counts` (word -> count, e.g. of the training data) adds token coverage to the report.
    `specials` are vocabulary entries not to look up (e.g. <unk>); <pad> is always zero.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    wanted = _lookup_keys(vocab, specials)
    found: dict[int, torch.Tensor] = {}
    exact_ids: set[int] = set()
    stats = Counter()
    dim = None
    for path in paths:
        dim = _read_file(Path(path), wanted, found, exact_ids, stats, dim, skip_bad_lines)
    if dim is None:
        raise DataError(f"{', '.join(map(str, paths))}: no word vectors found (empty file?)")
    weights = _fill(found, len(vocab), dim, seed)
    if PAD in vocab:
        weights[vocab.pad_id] = 0.0
    counts = token_counts or Counter()
    words = [w for w in vocab.itos if w not in specials and w != PAD]
    coverage = Coverage(
        dim=dim, types=len(words), types_found=len(found),
        tokens=sum(counts[w] for w in words), tokens_found=sum(counts[vocab.itos[i]] for i in found),
        vectors_read=stats["read"], undecodable_lines=stats["undecodable"], bad_lines=stats["bad"],
        duplicates=stats["duplicates"],
    )
    return weights, coverage


def pretrained_embedding(paths: str | list[str], vocab: Vocab, embedding_dim: int, token_counts: Counter,
                         skip_bad_lines: bool = False, seed: int = 0) -> tuple[torch.Tensor, Coverage]:
    """Rows (V, embedding_dim) for a task's word embedding: vectors of `vocab`'s words (<unk> keeps
    a random row, <pad> is zero); an error naming model.embedding_dim when the sizes differ."""
    weights, coverage = load_vectors(paths, vocab, token_counts, skip_bad_lines, seed, specials=(UNK,))
    if coverage.dim != embedding_dim:
        first = paths if isinstance(paths, str) else paths[0]
        raise DataError(f"{first}: the vectors are {coverage.dim}-d but model.embedding_dim is {embedding_dim}; "
                        f"set model.embedding_dim: {coverage.dim}")
    return weights, coverage


def _lookup_keys(vocab: Vocab, specials: tuple[str, ...]) -> dict[str, list[tuple[int, bool]]]:
    """File word -> (vocabulary id, exact?) pairs it fills: each word as written, or lowercased."""
    keys: dict[str, list[tuple[int, bool]]] = {}
    for i, word in enumerate(vocab.itos):
        if word == PAD or word in specials:
            continue
        keys.setdefault(word, []).append((i, True))
        if word.lower() != word:
            keys.setdefault(word.lower(), []).append((i, False))
    return keys


def _read_file(path: Path, wanted: dict, found: dict[int, torch.Tensor], exact_ids: set[int], stats: Counter,
               dim: int | None, skip_bad_lines: bool) -> int | None:
    """Read one file into `found` (vocab id -> vector); returns the vector size."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"embeddings file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, expected a GloVe / word2vec text file") from None
    seen: set[str] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            stats["undecodable"] += 1
            continue
        fields = line.rstrip().split(" ")
        if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
            header_dim = int(fields[1])  # word2vec: "<count> <dim>"
            if dim is not None and header_dim != dim:
                raise DataError(f"{path}:1: header says {header_dim}-d vectors, but the earlier files had {dim}-d")
            dim = header_dim
            continue
        if dim is None:
            dim = len(fields) - 1
            if dim < 1:
                raise DataError(f"{path}:{number}: expected a word and its vector, found {line[:60]!r}")
        if len(fields) != dim + 1:
            _bad(f"{path}:{number}: expected a word and {dim} numbers ({dim + 1} space-separated fields), "
                 f"found {len(fields)} fields: {line[:60]!r}...", stats, skip_bad_lines)
            continue
        word = fields[0]
        if word in seen:
            stats["duplicates"] += 1
            continue
        seen.add(word)
        ids = wanted.get(word)
        if ids is None:
            stats["read"] += 1
            continue
        try:
            vector = torch.tensor([float(v) for v in fields[1:]])
        except ValueError:
            _bad(f"{path}:{number}: the vector of {word!r} has a value that is not a number", stats, skip_bad_lines)
            continue
        stats["read"] += 1
        for i, exact in ids:
            if exact or i not in exact_ids:  # an exact match beats (and is never replaced by) a lowercase one
                found[i] = vector
                if exact:
                    exact_ids.add(i)
    return dim


def _bad(message: str, stats: Counter, skip: bool) -> None:
    if not skip:
        raise DataError(message + " (set skip_bad_lines: true to skip such lines)")
    stats["bad"] += 1


def _fill(found: dict[int, torch.Tensor], size: int, dim: int, seed: int) -> torch.Tensor:
    """(size, dim): found rows as read, the rest random with the found vectors' spread."""
    std = torch.stack(list(found.values())).std().item() if len(found) > 1 else 0.1
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(size, dim, generator=generator) * std
    for i, vector in found.items():
        weights[i] = vector
    return weights
