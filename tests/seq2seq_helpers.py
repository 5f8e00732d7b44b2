"""Tiny seq2seq models and configs shared by the seq2seq tests (not a test module itself)."""

from __future__ import annotations

import pytest
import torch

from rnncli.models.seq2seq import Seq2Seq

BOS, EOS, PAD = 2, 3, 0
BANNED = [PAD, BOS]


def tiny_model(cell="gru", attention="additive", input_feeding=False, bidirectional=True, vocab=(9, 7),
               hidden=8, seed=0, **kw) -> Seq2Seq:
    torch.manual_seed(seed)
    model = Seq2Seq(src_vocab=vocab[0], tgt_vocab=vocab[1], embedding_dim=6, attention=attention,
                    input_feeding=input_feeding, cell=cell, hidden_size=hidden, bidirectional=bidirectional, **kw)
    return model.eval()


def padded_sources(lengths=(5, 2, 4), vocab=9, seed=1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random source ids (B, S) padded with 0, and their lengths."""
    g = torch.Generator().manual_seed(seed)
    src = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, vocab, (n,), generator=g)
    return src, torch.tensor(lengths)


@pytest.fixture
def one_thread():
    """Small models run much faster on one thread when the CPU is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
