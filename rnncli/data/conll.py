"""CoNLL-format files: one token per line, a blank line between sentences.

    CoNLL-2003 style (space separated)        WNUT-17 style (tab separated)
    -DOCSTART- -X- -X- O                      @paulwalk<TAB>O
                                              It<TAB>O
    EU NNP B-NP B-ORG                         's<TAB>O
    rejects VBZ B-VP O                        the<TAB>O
    ...                                       view<TAB>O

Columns are split on tabs when the line has a tab, else on runs of spaces; the token and tag
columns are configurable (defaults: first and last). `-DOCSTART-` lines are dropped (they
also end a sentence). Real-file quirks that are accepted: a byte-order mark (alone on a line
or before the first token), trailing spaces, CRLF line ends, whitespace-only lines (as
blank), several blank lines in a row, no final blank line. Errors name file:line and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rnncli.data.tags import split_tag
from rnncli.data.text import read_text
from rnncli.errors import DataError

BOM = "\ufeff"


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str]
    lines: list[int] = field(default_factory=list)  # 1-based line of each token, for errors


def split_columns(line: str) -> list[str]:
    return [c.strip() for c in line.split("\t")] if "\t" in line else line.split()


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1,
               encoding: str = "utf-8") -> list[Sentence]:
    """Sentences of a CoNLL file; every line must have as many columns as the first token line."""
    text = read_text(path, encoding)
    sentences, current, width = [], Sentence([], []), None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").replace(BOM, "").rstrip()
        if not line.strip() or line.split()[0] == "-DOCSTART-":
            if current.tokens:
                sentences.append(current)
            current = Sentence([], [])
            continue
        columns = split_columns(line)
        width = width or len(columns)
        where = f"{path}:{number}: {raw.rstrip(chr(13))!r}"
        if len(columns) != width or any(not c for c in columns):
            raise DataError(f"{where}: expected {width} non-empty columns (as on the first token line), "
                            f"found {len(columns)}: {columns}")
        try:
            token, tag = columns[token_column], columns[tag_column]
        except IndexError:
            raise DataError(f"{where}: data.token_column = {token_column} or data.tag_column = {tag_column} "
                            f"is outside the line's {width} columns") from None
        try:
            split_tag(tag)
        except ValueError as e:
            raise DataError(f"{where}: unknown tag scheme prefix: {e}") from None
        current.tokens.append(token)
        current.tags.append(tag)
        current.lines.append(number)
    if current.tokens:
        sentences.append(current)
    if not sentences:
        raise DataError(f"{path}: no sentences found (expected one `token ... tag` line per token)")
    return sentences


def write_conll(path: str | Path, rows: list[list[list[str]]]) -> None:
    """Sentences of token rows (each a list of columns) -> a tab-separated CoNLL file."""
    with open(path, "w", encoding="utf-8") as f:
        for sentence in rows:
            f.write("".join("\t".join(cols) + "\n" for cols in sentence) + "\n")
