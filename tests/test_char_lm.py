"""Task char_lm: text reading, BPTT batching, learning, metrics, generation."""

import math

import pytest
import torch

from rnncli import api
from rnncli.data.text import BPTTWindows, CharVocab, batchify, read_text, split_text
from rnncli.errors import DataError
from rnncli.models.char_lm import CharLM
from rnncli.tasks.char_lm import generate


def test_undecodable_bytes_name_the_file_and_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello\nwor\xffld\n")
    with pytest.raises(DataError, match=r"bad.txt: byte offset 9 \(line 2\): cannot decode b'\\xff' as utf-8"):
        read_text(path)
    assert read_text(path, "latin-1")[9] == "\xff"
    with pytest.raises(DataError, match="data file not found"):
        read_text(tmp_path / "missing.txt")


def test_split_is_in_order_and_complete():
    text = "abcdefghij" * 10
    train, val, test = split_text(text, [0.8, 0.1, 0.1])
    assert (len(train), len(val), len(test)) == (80, 10, 10) and train + val + test == text
    assert split_text(text, [0.95, 0.05, 0.0])[2] == ""


def test_bptt_windows_carry_on_where_the_last_one_stopped():
    ids = torch.arange(26)
    rows = batchify(ids, 4)  # (4, 6): the tail of 2 is dropped
    assert rows.tolist()[1] == [6, 7, 8, 9, 10, 11]
    windows = BPTTWindows(rows, bptt=2)
    assert len(windows) == 3  # targets need one extra step: ceil((6 - 1) / 2)
    (x0, y0), (x1, y1), (x2, y2) = windows[0], windows[1], windows[2]
    assert x0.tolist()[1] == [6, 7] and y0.tolist()[1] == [7, 8]
    assert x1.tolist()[1] == [8, 9]  # row 1 continues exactly
    assert x2.shape == (4, 1) and y2.tolist()[1] == [11]  # last window is short
    with pytest.raises(IndexError):
        windows[3]


def test_vocab_round_trip_and_unknown_characters():
    vocab = CharVocab.from_texts("hello", "world")
    assert vocab.chars == sorted(set("helloworld"))
    assert vocab.decode(vocab.encode("hold").tolist()) == "hold"
    with pytest.raises(DataError, match=r"not in the vocabulary: 'x' 'z'"):
        vocab.encode("zox")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny LSTM trained on a repetitive corpus until it knows it."""
    from conftest import tiny_config, write_config

    tmp = tmp_path_factory.mktemp("lm")
    (tmp / "corpus.txt").write_text("abcdefgh\n" * 300)
    cfg = tiny_config(tmp, trainer={"epochs": 8, "val_every": "epoch", "log_every": 50, "lr": 0.02})
    api.train(str(write_config(tmp, cfg)), show_progress=False)
    return tmp / "runs" / "tiny"


def test_training_learns_the_corpus_and_metrics_agree(trained_run):
    m = api.evaluate(str(trained_run), "val")
    uniform = math.log(9)  # 9 distinct characters
    assert m["loss"] < 0.1 * uniform  # a deterministic sequence: far below the uniform model
    assert m["bpc"] == pytest.approx(m["loss"] / math.log(2))
    assert m["ppl"] == pytest.approx(math.exp(m["loss"]))
    test = api.evaluate(str(trained_run), "test")
    assert test["split"] == "test" and test["loss"] < 0.1 * uniform


def test_eval_on_a_file_and_unknown_characters_in_it(trained_run, tmp_path):
    good = tmp_path / "more.txt"
    good.write_text("abcdefgh\n" * 20)
    assert api.evaluate(str(trained_run), data_file=str(good))["chars"] > 0
    bad = tmp_path / "bad.txt"
    bad.write_text("abcxyz")
    with pytest.raises(DataError, match=r"bad.txt has characters that are not in the vocabulary: 'x' 'y' 'z'"):
        api.evaluate(str(trained_run), data_file=str(bad))


def test_greedy_generation_continues_the_pattern(trained_run):
    assert api.generate(str(trained_run), "abc", length=12, greedy=True) == "defgh\nabcdef"


def test_sampling_is_repeatable_with_a_seed_and_streams(trained_run):
    streamed = []
    a = api.generate(str(trained_run), "a", 40, temperature=2.0, seed=3, on_text=streamed.append)
    b = api.generate(str(trained_run), "a", 40, temperature=2.0, seed=3)
    assert a == b == "".join(streamed) and len(streamed) == 40


def test_prompt_with_unknown_characters_lists_them(trained_run):
    with pytest.raises(DataError, match=r"prompt characters not in the run's vocabulary: 'X' 'Z'"):
        api.generate(str(trained_run), "aXbZ", 5)


def test_top_k_one_is_greedy():
    torch.manual_seed(0)
    model = CharLM(vocab_size=5, embedding_dim=4, cell="gru", hidden_size=8)
    vocab = CharVocab("abcde")
    greedy = generate(model, vocab, "ab", 20, greedy=True)
    assert generate(model, vocab, "ab", 20, temperature=1.0, top_k=1, seed=1) == greedy
    assert generate(model, vocab, "ab", 20, temperature=1.0, top_p=1e-6, seed=2) == greedy
