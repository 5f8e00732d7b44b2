"""Word vocabularies and padding shared by the classify / ner / seq2seq tasks."""

import pytest
import torch

from rnncli.data.vocab import PAD, UNK, Vocab, pad_batch


def test_build_orders_by_frequency_then_alphabet_and_applies_cut_offs():
    seqs = [["b", "a", "c"], ["a", "b", "d"], ["a"]]
    v = Vocab.build(seqs)
    assert v.itos == [PAD, UNK, "a", "b", "c", "d"] and (v.pad_id, v.unk_id) == (0, 1)
    assert Vocab.build(seqs, min_freq=2).itos == [PAD, UNK, "a", "b"]
    assert Vocab.build(seqs, max_size=1).itos == [PAD, UNK, "a"]
    assert Vocab.build(seqs, specials=(PAD, UNK, "<bos>")).itos[:3] == [PAD, UNK, "<bos>"]


def test_unknown_tokens_map_to_unk_and_round_trip():
    v = Vocab.build([["x", "y"]])
    assert v.encode(["y", "zzz", "x"]) == [v.stoi["y"], 1, v.stoi["x"]]
    assert Vocab.from_dict(v.to_dict()).itos == v.itos
    with pytest.raises(ValueError, match="unique"):
        Vocab(["a", "a"])


def test_pad_batch():
    ids, lengths = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    assert ids.dtype == lengths.dtype == torch.long
