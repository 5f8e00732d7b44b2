"""Pretrained vectors: GloVe / word2vec text, the quirks of real files, alignment, coverage."""

from collections import Counter
from pathlib import Path

import pytest
import torch

from rnncli.data.embeddings import load_vectors
from rnncli.data.vocab import UNK, Vocab
from rnncli.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VOCAB = Vocab(["<pad>", "<unk>", "good", "bad", "Movie", "zzz"])


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_glove_without_final_newline_aligns_rows_to_the_vocabulary(tmp_path):
    path = write(tmp_path, "g.txt", b"bad 4 5 6\nthe 0 0 1\ngood 1 2 3")  # no \n at the end
    weights, cov = load_vectors(path, VOCAB, specials=(UNK,))
    assert weights.shape == (6, 3)
    assert weights[VOCAB.stoi["good"]].tolist() == [1, 2, 3] and weights[VOCAB.stoi["bad"]].tolist() == [4, 5, 6]
    assert weights[0].tolist() == [0, 0, 0]  # <pad>
    assert (cov.dim, cov.types, cov.types_found, cov.vectors_read) == (3, 4, 2, 3)


def test_word2vec_header_lowercase_fallback_and_exact_match_first(tmp_path):
    path = write(tmp_path, "w2v.txt", b"3 2\nmovie 1 1\nMovie 2 2\ngood 3 3\n")
    weights, cov = load_vectors(path, VOCAB, specials=(UNK,))
    assert cov.dim == 2 and weights[VOCAB.stoi["Movie"]].tolist() == [2, 2]  # exact beats lowercase
    only_lower = write(tmp_path, "lower.txt", b"movie 1 1\n")
    assert load_vectors(only_lower, VOCAB)[0][VOCAB.stoi["Movie"]].tolist() == [1, 1]


def test_undecodable_lines_are_skipped_and_counted(tmp_path):
    path = write(tmp_path, "g.txt", b"good 1 2\n\x96 9 9\nbad 3 4\n")
    weights, cov = load_vectors(path, VOCAB)
    assert cov.undecodable_lines == 1 and cov.types_found == 2
    assert weights[VOCAB.stoi["bad"]].tolist() == [3, 4]
    assert "skipped 1 undecodable line(s)" in cov.describe()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"good 1 2 3\nbad 1 2\n", r"g.txt:2: expected a word and 3 numbers \(4 space-separated fields\), found 3 "
                                   r"fields: 'bad 1 2'\.\.\. \(set skip_bad_lines: true to skip such lines\)"),
        (b"good 1 2\nbad 1 x\n", r"g.txt:2: the vector of 'bad' has a value that is not a number"),
        (b"good\n", r"g.txt:1: expected a word and its vector, found 'good'"),
        (b"\n\n", r"g.txt: no word vectors found \(empty file\?\)"),
    ],
)
def test_malformed_files_name_file_line_and_what_was_found(tmp_path, data, message):
    with pytest.raises(DataError, match=message):
        load_vectors(write(tmp_path, "g.txt", data), VOCAB)


def test_bad_lines_can_be_skipped_and_duplicates_keep_the_first(tmp_path):
    path = write(tmp_path, "g.txt", b"good 1 2\nbad 1 2 3\ngood 5 5\nbad 3 4\n")
    weights, cov = load_vectors(path, VOCAB, skip_bad_lines=True)
    assert (cov.bad_lines, cov.duplicates) == (1, 1)
    assert weights[VOCAB.stoi["good"]].tolist() == [1, 2] and weights[VOCAB.stoi["bad"]].tolist() == [3, 4]


def test_files_with_different_sizes_and_missing_files(tmp_path):
    a = write(tmp_path, "a.txt", b"good 1 2\n")
    b = write(tmp_path, "b.txt", b"2 3\nbad 1 2 3\n")
    with pytest.raises(DataError, match=r"b.txt:1: header says 3-d vectors, but the earlier files had 2-d"):
        load_vectors([a, b], VOCAB)
    with pytest.raises(DataError, match="embeddings file not found: .*nope.txt"):
        load_vectors(str(tmp_path / "nope.txt"), VOCAB)


def test_missing_words_get_a_seeded_random_init_and_coverage_counts_tokens(tmp_path):
    path = write(tmp_path, "g.txt", b"good 1 2\nbad 3 4\n")
    counts = Counter({"good": 6, "bad": 2, "zzz": 2})
    w1, cov = load_vectors(path, VOCAB, token_counts=counts, seed=3, specials=(UNK,))
    w2, _ = load_vectors(path, VOCAB, token_counts=counts, seed=3, specials=(UNK,))
    assert torch.equal(w1, w2) and w1[VOCAB.stoi["zzz"]].abs().sum() > 0
    assert (cov.tokens, cov.tokens_found) == (10, 8)
    assert cov.describe().startswith("embeddings: 2 of 4 word types found (50.0%), 8 of 10 training tokens (80.0%)")


@pytest.mark.skipif(not (SHARED_DATA / "glove-6B-50d-small").is_dir(), reason="../shared/data is absent")
def test_real_glove_excerpts_with_their_quirks():
    folder = SHARED_DATA / "glove-6B-50d-small"
    files = [str(folder / "glove.6B.50d.first2446.txt"), str(folder / "glove.6B.50d.excerpt5403.txt")]
    vocab = Vocab(["<pad>", "<unk>", "the", "yourself", "movie", "qwertyzzz"])
    weights, cov = load_vectors(files, vocab, specials=(UNK,))
    assert cov.dim == 50 and cov.undecodable_lines == 5 and cov.vectors_read == 2446 + 5403 - 5
    assert cov.types_found == 3 and cov.bad_lines == 0
    assert weights[vocab.stoi["the"]][:2].tolist() == pytest.approx([0.418, 0.24968])
