"""Encoder-decoder model: attention is exactly 0 on padding, padding changes nothing, step == forward."""

import pytest
import torch
from seq2seq_helpers import BOS, padded_sources, tiny_model

from rnncli.models.seq2seq import ATTENTIONS
from rnncli.nn.cells import CELL_NAMES

WITH_ATTENTION = [a for a in ATTENTIONS if a != "none"]


@pytest.mark.parametrize("attention", WITH_ATTENTION)
def test_padded_source_positions_get_exactly_zero_weight(attention):
    model = tiny_model(attention=attention, bidirectional=False)  # dot needs decoder size == encoder size
    src, lengths = padded_sources((5, 2, 4))
    tgt_in = torch.tensor([[BOS, 4, 5], [BOS, 6, 4], [BOS, 5, 5]])
    _, weights = model(src, lengths, tgt_in)  # (B, T, S)
    assert weights.shape == (3, 3, 5)
    assert torch.equal(weights[1, :, 2:], torch.zeros(3, 3))  # exactly 0, not merely small
    assert torch.equal(weights[2, :, 4:], torch.zeros(3, 1))
    assert torch.allclose(weights.sum(-1), torch.ones(3, 3))
    assert (weights[0] > 0).all()


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("attention,feeding", [("none", False), ("general", True), ("additive", False)])
def test_padding_changes_nothing(cell, attention, feeding):
    """A sentence scored alone equals the same sentence in a padded batch with a longer one."""
    model = tiny_model(cell=cell, attention=attention, input_feeding=feeding)
    src, lengths = padded_sources((6, 3))
    tgt_in = torch.tensor([[BOS, 4, 5, 6], [BOS, 6, 4, 0]])
    batch_logits, _ = model(src, lengths, tgt_in)
    alone_logits, _ = model(src[1:, :3], lengths[1:], tgt_in[1:, :3])
    assert torch.allclose(batch_logits[1, :3], alone_logits[0], atol=1e-5)


@pytest.mark.parametrize("attention,feeding", [("none", False), ("dot", False), ("additive", True)])
def test_step_by_step_decoding_equals_the_whole_sequence_pass(attention, feeding):
    model = tiny_model(attention=attention, input_feeding=feeding, bidirectional=False, cell="lstm")
    src, lengths = padded_sources((4, 3))
    tgt_in = torch.tensor([[BOS, 4, 5, 6], [BOS, 6, 4, 5]])
    logits, weights = model(src, lengths, tgt_in)
    memory, state = model.encode(src, lengths)
    for t in range(4):
        step_logits, state, w = model.step(tgt_in[:, t], state, memory)
        assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
        if weights is not None:
            assert torch.allclose(w, weights[:, t], atol=1e-6)


def test_teacher_forcing_zero_feeds_back_the_models_own_predictions():
    model = tiny_model(attention="general")
    src, lengths = padded_sources((4, 3))
    gold = torch.tensor([[BOS, 4, 4, 4], [BOS, 4, 4, 4]])
    logits, _ = model(src, lengths, gold, teacher_forcing=0.0)
    own = torch.cat([gold[:, :1], logits[:, :-1].argmax(-1)], dim=1)  # what it fed itself
    replay, _ = model(src, lengths, own)
    assert torch.allclose(logits, replay, atol=1e-5)
    mixed, _ = model(src, lengths, gold, teacher_forcing=1.0)
    assert not torch.allclose(logits, mixed)


def test_bridge_maps_an_encoder_state_to_a_decoder_of_another_size():
    model = tiny_model(cell="lstm", hidden=8, decoder_hidden_size=5, decoder_num_layers=2, attention="additive")
    src, lengths = padded_sources((4, 2))
    memory, state = model.encode(src, lengths)
    h, c = state.rnn
    assert h.shape == c.shape == (2, 2, 5) and memory.keys.shape == (2, 4, 16)
    logits, _ = model(src, lengths, torch.tensor([[BOS, 4], [BOS, 5]]))
    assert logits.shape == (2, 2, 7)
