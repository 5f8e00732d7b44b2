"""Parallel-corpus readers, tokenization, normalisation, filters and split, with their error texts."""

import pytest

from rnncli.data import parallel
from rnncli.errors import DataError


def test_tsv_reader_picks_columns_ignores_extras_and_blank_lines(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("Go.\tVa !\tCC-BY attribution\n\nHi.\tSalut !\textra\textra\n", encoding="utf-8")
    assert parallel.read_tsv(str(path)) == [("Go.", "Va !"), ("Hi.", "Salut !")]
    assert parallel.read_tsv(str(path), source_column=1, target_column=0) == [("Va !", "Go."), ("Salut !", "Hi.")]


def test_tsv_reader_names_file_line_and_columns_when_a_column_is_missing(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("Go.\tVa !\nno tab here\n")
    with pytest.raises(DataError, match=r"c\.tsv:2: expected at least 2 tab-separated columns .*found 1: 'no tab here'"):
        parallel.read_tsv(str(path))


def test_missing_and_empty_and_undecodable_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="data file not found: .*nope.tsv"):
        parallel.read_tsv(str(tmp_path / "nope.tsv"))
    (tmp_path / "empty.tsv").write_text("\n\n")
    with pytest.raises(DataError, match=r"empty.tsv: no sentence pairs \(the file is empty\)"):
        parallel.read_tsv(str(tmp_path / "empty.tsv"))
    (tmp_path / "latin.tsv").write_bytes("a\tb\ncaf\xe9\tx\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.tsv:2: not valid utf-8 text \(set data.encoding\)"):
        parallel.read_tsv(str(tmp_path / "latin.tsv"))


def test_two_aligned_files_and_their_line_count_error(tmp_path):
    (tmp_path / "s.txt").write_text("one\ntwo\n")
    (tmp_path / "t.txt").write_text("un\ndeux\n")
    assert parallel.read_aligned(str(tmp_path / "s.txt"), str(tmp_path / "t.txt")) == [("one", "un"), ("two", "deux")]
    (tmp_path / "t3.txt").write_text("un\ndeux\ntrois\n")
    with pytest.raises(DataError, match=r"s.txt has 2 lines but .*t3.txt has 3: two-file corpora must be line-aligned"):
        parallel.read_aligned(str(tmp_path / "s.txt"), str(tmp_path / "t3.txt"))


@pytest.mark.parametrize("text,tokens", [
    ("I'm sure you're right.", ["i", "'m", "sure", "you", "'re", "right", "."]),
    ("Don't go!", ["do", "n't", "go", "!"]),
    ("J'ai vu qu'il pleut !", ["j'", "ai", "vu", "qu'", "il", "pleut", "!"]),
    ("Où est-il ?", ["où", "est", "-", "il", "?"]),
])
def test_word_tokenizer_splits_clitics_and_punctuation_and_detokenize_undoes_it(text, tokens):
    assert parallel.tokenize(text, "word", lowercase=True) == tokens
    detok = parallel.detokenize(tokens, "word")
    assert parallel.tokenize(detok, "word", lowercase=True) == tokens
    assert detok.replace(" ", "") == text.lower().replace(" ", "")


def test_char_tokenizer_keeps_single_spaces_and_case_when_asked():
    assert parallel.tokenize("Ab  c", "char", lowercase=False) == ["A", "b", " ", "c"]
    assert parallel.detokenize(["a", " ", "b"], "char") == "a b"


def test_nfkc_turns_narrow_no_break_spaces_into_spaces_and_nfc_keeps_them():
    text = "Va\u202f!"
    assert parallel.normalize(text, "NFKC") == "Va !"
    assert parallel.normalize(text, "NFC") == text and parallel.normalize(text, "none") == text
    assert parallel.normalize("e\u0301", "NFC") == "é"


def test_filters_on_length_and_prefix():
    keep = parallel.keep_pair
    assert keep(["a"] * 3, ["b"] * 4, "", "", 3, 4, None, "source")
    assert not keep(["a"] * 4, ["b"], "", "", 3, None, None, "source")
    assert not keep(["a"], ["b"] * 5, "", "", None, 4, None, "source")
    assert keep(["x"], ["y"], "Je suis là", "I am here", None, None, ["i am "], "target")
    assert not keep(["x"], ["y"], "Je suis là", "I am here", None, None, ["i am "], "source")
    assert not keep([], ["y"], "", "y", None, None, None, "source")


def test_seeded_split_is_deterministic_disjoint_and_complete():
    items = list(range(100))
    a, b = parallel.split_pairs(items, [0.8, 0.1, 0.1], 3), parallel.split_pairs(items, [0.8, 0.1, 0.1], 3)
    assert a == b and [len(a[s]) for s in ("train", "val", "test")] == [80, 10, 10]
    assert sorted(a["train"] + a["val"] + a["test"]) == items
    assert parallel.split_pairs(items, [0.8, 0.1, 0.1], 4) != a
    with pytest.raises(DataError, match="only 2 sentence pairs survive the filters"):
        parallel.split_pairs([1, 2], [0.5, 0.25, 0.25], 0)
