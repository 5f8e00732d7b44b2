"""Parallel corpora for sequence-to-sequence tasks: readers, normalisation, tokenization, filters.

    one TSV file          source<TAB>target[<TAB>extra columns ignored]   (columns configurable)
    two aligned files     line i of the source file translates line i of the target file

    raw pair ──► unicode normalisation (NFC / NFKC / none) ──► lowercase? ──► tokens per side
             ──► filters (max tokens per side, prefix of one side) ──► seeded train/val/test split

The word tokenizer splits punctuation and clitics so that `detokenize` can undo it:

    "I'm sure you're right."  ->  i 'm sure you 're right .
    "J'ai vu qu'il pleut !"   ->  j' ai vu qu' il pleut !        (French elision keeps its ')

BLEU and chrF are computed on `detokenize(tokens)` for both hypothesis and reference, so the
score measures the model, not a mismatch between two tokenizers.
"""

from __future__ import annotations

import random
import re
import unicodedata
from pathlib import Path

from rnncli.errors import DataError

TOKENIZERS = ("word", "char")
NORMALIZATIONS = ("none", "NFC", "NFKC")

_CLITIC = r"(?:s|re|ve|ll|d|m|t)\b"
_WORD = re.compile(
    r"\w+(?=n['’]t\b)"  # do|n't
    r"|n['’]t\b"
    rf"|['’]{_CLITIC}"  # English clitics attach to the right: i|'m, you|'re
    rf"|\w+['’](?!{_CLITIC})(?=\w)"  # French elision attaches to the left: j'|ai, qu'|il
    r"|\w+"
    r"|[^\w\s]"
)
_NO_SPACE_BEFORE = re.compile(r"^(?:[.,!?;:%)\]}…]|['’]|n['’]t$)")
_NO_SPACE_AFTER = re.compile(r"(?:['’(\[{¿¡])$")


def normalize(text: str, form: str) -> str:
    """Unicode normalisation (NFKC turns U+202F narrow no-break spaces into plain spaces)."""
    return text if form == "none" else unicodedata.normalize(form, text)


def tokenize(text: str, tokenizer: str, lowercase: bool) -> list[str]:
    """`text` -> tokens: `word` (regex, see the module docstring) or `char` (spaces kept, collapsed)."""
    if lowercase:
        text = text.lower()
    if tokenizer == "char":
        return list(" ".join(text.split()))
    return _WORD.findall(text)


def detokenize(tokens: list[str], tokenizer: str) -> str:
    """Inverse of `tokenize` up to whitespace: no space before punctuation and clitics, none after elision."""
    if tokenizer == "char":
        return "".join(tokens)
    out = ""
    for i, tok in enumerate(tokens):
        if i and not _NO_SPACE_BEFORE.search(tok) and not _NO_SPACE_AFTER.search(tokens[i - 1]):
            out += " "
        out += tok
    return out


# --------------------------------------------------------------------------- readers
def _read_lines(path: str, encoding: str) -> list[str]:
    """Lines split on \\n only (a CRLF ending loses its \\r; a lone \\r stays inside its line, as
    the other readers read it, so two aligned files stay aligned)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file not found: {Path(path).absolute()}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, expected a text file") from None
    try:
        lines = data.decode(encoding).split("\n")
    except UnicodeDecodeError as e:
        line = text_line_of(data, e.start)
        raise DataError(f"{path}:{line}: not valid {encoding} text (set data.encoding)") from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}' (data.encoding)") from None
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def text_line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def read_tsv(path: str, source_column: int = 0, target_column: int = 1,
             encoding: str = "utf-8") -> list[tuple[str, str]]:
    """(source, target) pairs from a tab-separated file; blank lines are skipped."""
    pairs = []
    need = max(source_column, target_column) + 1
    for number, line in enumerate(_read_lines(path, encoding), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < need:
            raise DataError(f"{path}:{number}: expected at least {need} tab-separated columns "
                            f"(source column {source_column}, target column {target_column}), "
                            f"found {len(cols)}: {line[:60]!r}")
        pairs.append((cols[source_column], cols[target_column]))
    if not pairs:
        raise DataError(f"{path}: no sentence pairs (the file is empty)")
    return pairs


def read_aligned(source_path: str, target_path: str, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """(source, target) pairs from two line-aligned files; their line counts must match."""
    src, tgt = _read_lines(source_path, encoding), _read_lines(target_path, encoding)
    if len(src) != len(tgt):
        raise DataError(f"{source_path} has {len(src)} lines but {target_path} has {len(tgt)}: "
                        f"two-file corpora must be line-aligned (line i translates line i)")
    pairs = [(s, t) for s, t in zip(src, tgt) if s.strip() or t.strip()]
    if not pairs:
        raise DataError(f"{source_path}: no sentence pairs (the files are empty)")
    return pairs


# --------------------------------------------------------------------------- filters and split
def keep_pair(src: list[str], tgt: list[str], src_text: str, tgt_text: str, max_source_len: int | None,
              max_target_len: int | None, prefixes: list[str] | None, prefix_side: str) -> bool:
    """The length filter (in tokens) and the prefix filter (on the normalised, lowercased side)."""
    if not src or not tgt:
        return False
    if max_source_len is not None and len(src) > max_source_len:
        return False
    if max_target_len is not None and len(tgt) > max_target_len:
        return False
    if prefixes:
        text = (src_text if prefix_side == "source" else tgt_text).lower()
        return text.startswith(tuple(p.lower() for p in prefixes))
    return True


def split_pairs(items: list, fractions: list[float], seed: int) -> dict[str, list]:
    """A seeded shuffle cut into train/val/test by `fractions` (val and test get >= 1 item if asked)."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val = max(1, round(fractions[1] * n)) if fractions[1] > 0 else 0
    n_test = max(1, round(fractions[2] * n)) if fractions[2] > 0 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise DataError(f"only {n} sentence pairs survive the filters: too few to split {fractions}")
    cuts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {name: [items[i] for i in idx] for name, idx in cuts.items() if idx}
