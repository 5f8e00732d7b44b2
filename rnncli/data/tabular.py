"""Labelled-text readers for classification: TSV / CSV tables and one-file-per-class folders.

    tsv        sentence<TAB>label            no quoting: a `"` is just a character
    csv        "a sentence, quoted",label    quoting as Python's csv module does it
    per_class  pos.txt / neg.txt             one example a line; the label is the file name
                                             (a folder stands for all the files in it)

Files are decoded strictly (`read_text`) and split on `\\n` only: real sentences contain U+0085,
which `str.splitlines()` would treat as a line break. Blank lines are ignored. A malformed line
(too few columns, another number of columns than the header or first row has, e.g. from a tab
inside a text; empty text or label) is an error naming `file:line` and what was found; with
`skip_bad_lines` it is skipped instead and one warning per file gives the count.

`split_examples` cuts one list of examples into train/val/test with a seeded shuffle.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from rnncli.data.text import read_text
from rnncli.errors import DataError, closest


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    where: str  # "file:line", for error messages


@dataclass(frozen=True)
class TableFormat:
    """How to read a table: columns by 0-based index or header name."""

    delimiter: str = "\t"
    quoting: bool = False  # csv-style "quoted, fields"
    header: bool = False
    text_column: int | str = 0
    label_column: int | str = 1


class _BadLines:
    """Raises on the first bad line, or counts them and warns once per file."""

    def __init__(self, path: Path, skip: bool):
        self.path, self.skip, self.count, self.first = path, skip, 0, None

    def bad(self, line: int, what: str) -> None:
        message = f"{self.path}:{line}: {what}"
        if not self.skip:
            raise DataError(message + " (set data.skip_bad_lines: true to skip such lines)")
        self.count += 1
        self.first = self.first or message

    def report(self) -> None:
        if self.count:
            warnings.warn(f"{self.path}: skipped {self.count} bad line(s); the first: {self.first}", stacklevel=3)


def _lines(path: Path, encoding: str) -> list[str]:
    """Lines split on \\n only, a trailing \\r (CRLF files) removed."""
    lines = read_text(path, encoding).split("\n")
    if lines[-1] == "":
        lines.pop()  # the file ended with a newline
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_table(path: str | Path, fmt: TableFormat, encoding: str = "utf-8",
               skip_bad_lines: bool = False) -> list[Example]:
    """Examples of one TSV/CSV file (the header row, if any, is not an example)."""
    path = Path(path)
    quoting = csv.QUOTE_MINIMAL if fmt.quoting else csv.QUOTE_NONE
    lines = [line + "\n" for line in _lines(path, encoding)]  # the \n keeps quoted multi-line fields whole
    reader = csv.reader(lines, delimiter=fmt.delimiter, quoting=quoting, strict=True)
    bad = _BadLines(path, skip_bad_lines)
    columns = None if fmt.header else (fmt.text_column, fmt.label_column)
    width = None  # (columns, line) of the header or the first row: every row must have as many
    examples, line = [], 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. an unclosed quote
            raise DataError(f"{path}:{line}: cannot parse the line as CSV ({e})") from None
        start, line = line, reader.line_num + 1  # a quoted field may span lines
        if not any(field.strip() for field in row):
            continue
        if columns is None:
            columns, width = _header_columns(path, start, row, fmt), (len(row), start)
            continue
        width = width or (len(row), start)
        if len(row) != width[0] and len(row) > max(columns):  # too few columns: _example says which
            bad.bad(start, f"{len(row)} columns, but line {width[1]} has {width[0]} (a stray "
                           f"{'tab' if fmt.delimiter == chr(9) else repr(fmt.delimiter)} inside a text?)")
            continue
        example = _example(row, columns, f"{path}:{start}", lambda what: bad.bad(start, what))
        if example is not None:
            examples.append(example)
    bad.report()
    return examples


def _header_columns(path: Path, line: int, header: list[str], fmt: TableFormat) -> tuple[int, int]:
    names = [h.strip() for h in header]
    out = []
    for key, column in (("text_column", fmt.text_column), ("label_column", fmt.label_column)):
        if isinstance(column, int):
            out.append(column)
        elif column in names:
            out.append(names.index(column))
        else:
            raise DataError(f"{path}:{line}: data.{key} = '{column}' is not a column of the header."
                            f"{closest(column, names)} Columns: {', '.join(names)}")
    return out[0], out[1]


def _example(row: list[str], columns: tuple[int, int], where: str, bad) -> Example | None:
    text_col, label_col = columns
    if len(row) <= max(text_col, label_col):
        shown = "\\t".join(row) if len(row) < 6 else f"{len(row)} fields"
        bad(f"expected the text in column {text_col} and the label in column {label_col} (0-based), "
            f"found {len(row)} column(s): {shown[:80]!r}")
        return None
    text, label = row[text_col].strip(), row[label_col].strip()
    if not text:
        bad(f"empty text (column {text_col})")
        return None
    if not label:
        bad(f"empty label (column {label_col})")
        return None
    return Example(text, label, where)


def read_per_class(path: str | Path, encoding: str = "utf-8") -> list[Example]:
    """One example per non-blank line; the label is the file name without its extension.

    A folder stands for every file in it (sorted, hidden files ignored).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{path}: data.format is per_class, but the folder has no files (one file per class)")
        return [e for f in files for e in read_per_class(f, encoding)]
    return [Example(line.strip(), path.stem, f"{path}:{i}")
            for i, line in enumerate(_lines(path, encoding), start=1) if line.strip()]


def read_examples(paths: list[str], format: str, fmt: TableFormat, encoding: str = "utf-8",
                  skip_bad_lines: bool = False) -> list[Example]:
    """All examples of one or more files, in file order."""
    if format == "per_class":
        return [e for p in paths for e in read_per_class(p, encoding)]
    return [e for p in paths for e in read_table(p, fmt, encoding, skip_bad_lines)]


def split_examples(examples: list, fractions: list[float], seed: int) -> dict[str, list]:
    """Shuffle with `seed`, then cut into consecutive train/val/test pieces of the given fractions.

    The same examples, fractions and seed always give the same split (independent of the
    model's seed, so changing the model never changes the test set).
    """
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    bounds, acc = [0], 0.0
    for f in fractions:
        acc += f
        bounds.append(min(len(order), round(acc * len(order))))
    bounds[-1] = len(order)
    names = ("train", "val", "test")
    return {name: [examples[i] for i in order[a:b]] for name, a, b in zip(names, bounds, bounds[1:])}
