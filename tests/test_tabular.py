"""Labelled-text readers: TSV, CSV, one file per class; every malformed-input error text; splits."""

from pathlib import Path

import pytest

from rnncli.data.tabular import (
    Example,
    TableFormat,
    read_examples,
    read_per_class,
    read_table,
    split_examples,
)
from rnncli.errors import DataError

TSV = TableFormat()
CSV = TableFormat(delimiter=",", quoting=True)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write(tmp_path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_tsv_splits_on_newline_only_and_keeps_quotes_literal(tmp_path):
    # U+0085 inside a sentence, a lone ", CRLF, a blank line and no newline at the end
    path = write(tmp_path, "a.tsv", 'good\u0085stuff  \t1\r\n" Loved it.\t1\n\nbad\t0')
    examples = read_table(path, TSV)
    assert [(e.text, e.label) for e in examples] == [("good\u0085stuff", "1"), ('" Loved it.', "1"), ("bad", "0")]
    assert examples[2].where == f"{path}:4"


def test_csv_quoting_header_names_and_multiline_fields(tmp_path):
    path = write(tmp_path, "a.csv", 'id,label,review\n1,pos,"Big, ""bold"" taste"\n2,neg,"two\nlines"\n3,neg,flat\n')
    fmt = TableFormat(delimiter=",", quoting=True, header=True, text_column="review", label_column="label")
    examples = read_table(path, fmt)
    assert [(e.text, e.label) for e in examples] == [('Big, "bold" taste', "pos"), ("two\nlines", "neg"),
                                                     ("flat", "neg")]
    assert [e.where.rsplit(":", 1)[1] for e in examples] == ["2", "3", "5"]


@pytest.mark.parametrize(
    "content, fmt, message",
    [
        ("fine\t1\nno label here\n", TSV,
         r"a.txt:2: expected the text in column 0 and the label in column 1 \(0-based\), found 1 column\(s\): "
         r"'no label here' \(set data.skip_bad_lines: true"),
        ("fine\t1\n  \t0\n", TSV, r"a.txt:2: empty text \(column 0\)"),
        ("fine\t1\nsome text\t \n", TSV, r"a.txt:2: empty label \(column 1\)"),
        ('a,1\n"unclosed,0\n', CSV, r"a.txt:2: cannot parse the line as CSV \(unexpected end of data\)"),
        ("text,sentiment\nok,1\n", TableFormat(",", True, True, "text", "label"),
         r"a.txt:1: data.label_column = 'label' is not a column of the header. Columns: text, sentiment"),
        ("txt,label\nok,1\n", TableFormat(",", True, True, "text", "label"),
         r"a.txt:1: data.text_column = 'text' is not a column of the header. Did you mean 'txt'\?"),
    ],
)
def test_malformed_lines_name_file_line_and_what_was_found(tmp_path, content, fmt, message):
    path = write(tmp_path, "a.txt", content)
    with pytest.raises(DataError, match=message):
        read_table(path, fmt)


def test_undecodable_bytes_name_the_line(tmp_path):
    path = write(tmp_path, "a.tsv", b"ok\t1\nbad \xff\t0\n")
    with pytest.raises(DataError, match=r"a.tsv: byte offset 9 \(line 2\): cannot decode"):
        read_table(path, TSV)


def test_skip_bad_lines_warns_with_the_count(tmp_path):
    path = write(tmp_path, "a.tsv", "ok\t1\nbroken\n\t0\nalso ok\t0\n")
    with pytest.warns(UserWarning, match=r"a.tsv: skipped 2 bad line\(s\); the first: .*a.tsv:2: expected"):
        examples = read_table(path, TSV, skip_bad_lines=True)
    assert [e.text for e in examples] == ["ok", "also ok"]


def test_one_file_per_class_and_folders(tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    write(folder, "pos.txt", "great\n\nlovely\n")
    write(folder, "neg.txt", "awful")
    assert [(e.text, e.label) for e in read_per_class(folder)] == [("awful", "neg"), ("great", "pos"),
                                                                   ("lovely", "pos")]
    assert read_per_class(folder / "pos.txt")[1].where == f"{folder / 'pos.txt'}:3"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: data.format is per_class, but the folder has no files"):
        read_per_class(empty)
    both = read_examples([str(folder / "neg.txt"), str(folder / "pos.txt")], "per_class", TSV)
    assert [e.label for e in both] == ["neg", "pos", "pos"]


def test_split_is_seeded_disjoint_and_complete():
    examples = [Example(str(i), "x", "") for i in range(100)]
    a = split_examples(examples, [0.7, 0.1, 0.2], seed=1)
    assert [len(a[s]) for s in ("train", "val", "test")] == [70, 10, 20]
    assert sorted(e.text for part in a.values() for e in part) == sorted(e.text for e in examples)
    assert split_examples(examples, [0.7, 0.1, 0.2], seed=1) == a
    assert split_examples(examples, [0.7, 0.1, 0.2], seed=2)["test"] != a["test"]


@pytest.mark.skipif(not (SHARED_DATA / "uci-sentiment").is_dir(), reason="../shared/data is absent")
def test_uci_files_read_whole():
    files = sorted((SHARED_DATA / "uci-sentiment").glob("*_labelled.txt"))
    examples = read_examples([str(f) for f in files], "tsv", TSV)
    assert len(examples) == 3000 and {e.label for e in examples} == {"0", "1"}
    assert sum("\u0085" in e.text for e in examples) == 2  # IMDB's NEL characters stay inside sentences
