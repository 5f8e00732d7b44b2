"""Greedy and batched beam search: beam 1 == greedy, large beam == exhaustive search, batched == alone."""

import itertools

import pytest
import torch
from seq2seq_helpers import BANNED, BOS, EOS, padded_sources, tiny_model

from rnncli.decoding.search import (
    beam_search,
    greedy,
    length_penalty,
    max_lengths,
    step_logprobs,
)

ARGS = dict(bos=BOS, eos=EOS, banned=BANNED)


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_beam_of_one_equals_greedy(attention):
    model = tiny_model(attention=attention, seed=3)
    src, lengths = padded_sources((5, 2, 4, 3), seed=4)
    limit = [6, 3, 7, 5]
    g = greedy(model, src, lengths, max_len=limit, **ARGS)
    b = beam_search(model, src, lengths, max_len=limit, beam=1, **ARGS)
    for gh, (bh,) in zip(g, b):
        assert gh.tokens == bh.tokens
        assert gh.logprob == pytest.approx(bh.logprob, abs=1e-5)


def _sequence_logprob(model, src, lengths, tokens: list[int], ends: bool) -> float:
    memory, state = model.encode(src, lengths)
    total, token = 0.0, torch.tensor([BOS])
    for nxt in tokens + ([EOS] if ends else []):
        logp, state, _ = step_logprobs(model, token, state, memory, BANNED)
        total += logp[0, nxt].item()
        token = torch.tensor([nxt])
    return total


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_large_beam_finds_the_exhaustive_search_optimum(alpha):
    """Vocabulary of 6 (4 specials): 3 generable non-<eos> tokens, max length 4 -> 121 hypotheses."""
    model = tiny_model(vocab=(6, 6), attention="dot", bidirectional=False, seed=5)
    src, lengths = padded_sources((3,), vocab=6, seed=6)
    words, max_len = [1, 4, 5], 4  # <unk> can be generated; <pad> and <bos> cannot
    candidates = []
    for n in range(max_len + 1):
        for seq in itertools.product(words, repeat=n):
            ends = n < max_len  # shorter ones end with <eos>; full-length ones are cut off
            lp = _sequence_logprob(model, src, lengths, list(seq), ends)
            candidates.append((lp / length_penalty(n + ends, alpha), list(seq)))
    best_score, best = max(candidates, key=lambda c: c[0])
    (hyp,) = beam_search(model, src, lengths, max_len=[max_len], beam=81, alpha=alpha, **ARGS)[0]
    assert hyp.tokens == best and hyp.score == pytest.approx(best_score, abs=1e-5)
    small = beam_search(model, src, lengths, max_len=[max_len], beam=2, alpha=alpha, **ARGS)[0][0]
    assert small.score <= best_score + 1e-6


@pytest.mark.parametrize("beam,alpha", [(3, 0.0), (4, 0.8)])
def test_batched_beam_search_equals_one_sentence_at_a_time(beam, alpha):
    model = tiny_model(attention="general", seed=7)
    src, lengths = padded_sources((5, 2, 6, 3), seed=8)
    limit = max_lengths(lengths, 1.5, 1)
    batched = beam_search(model, src, lengths, max_len=limit, beam=beam, alpha=alpha, n_best=beam, **ARGS)
    for i in range(len(lengths)):
        n = int(lengths[i])
        alone = beam_search(model, src[i:i + 1, :n], lengths[i:i + 1], max_len=[limit[i]], beam=beam,
                            alpha=alpha, n_best=beam, **ARGS)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[i]], abs=1e-5)


def test_n_best_lists_are_sorted_distinct_and_never_contain_pad_or_bos():
    model = tiny_model(seed=9)
    src, lengths = padded_sources((4, 3), seed=10)
    results = beam_search(model, src, lengths, max_len=[6, 6], beam=5, n_best=3, **ARGS)
    for hyps in results:
        assert len(hyps) == 3
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 3
        assert all(t not in (0, BOS, EOS) for h in hyps for t in h.tokens)


def test_max_length_is_a_ratio_of_the_source_length_plus_extra():
    assert max_lengths(torch.tensor([4, 1, 10]), 1.5, 2) == [8, 4, 17]
    assert max_lengths(torch.tensor([3]), 0.0, 0) == [1]
    model = tiny_model(seed=11)
    src, lengths = padded_sources((4,), seed=12)
    (hyp,) = greedy(model, src, lengths, max_len=[2], **ARGS)
    assert len(hyp.tokens) <= 2


def test_gnmt_length_penalty():
    assert length_penalty(1, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert length_penalty(7, 0.5) == pytest.approx(2.0 ** 0.5)


# --------------------------------------------------------------------------- beam search's own attention
@pytest.mark.parametrize("attention", ["dot", "additive"])
def test_beam_of_one_keeps_greedys_attention(attention):
    model = tiny_model(attention=attention, bidirectional=False, seed=3)
    src, lengths = padded_sources((5, 2, 4, 3), seed=4)
    limit = [6, 3, 7, 5]
    g = greedy(model, src, lengths, max_len=limit, keep_attention=True, **ARGS)
    b = beam_search(model, src, lengths, max_len=limit, beam=1, keep_attention=True, **ARGS)
    for gh, (bh,) in zip(g, b):
        assert bh.tokens == gh.tokens and bh.attention == gh.attention


def _teacher_forced_attention(model, src, length: int, tokens: list[int], rows: int) -> torch.Tensor:
    """The decoder's attention (rows, S) over <bos> + tokens (+ <eos>), the sentence alone and unpadded,
    through `model.forward` (teacher forcing: no search, no beams, no re-indexing)."""
    tgt_in = torch.tensor([[BOS] + tokens + [EOS]])[:, :rows]
    _, weights = model(src[:, :length], torch.tensor([length]), tgt_in)
    return weights[0]


@pytest.mark.parametrize("input_feeding", [False, True])
def test_beam_search_returns_the_attention_of_its_own_output(input_feeding):
    model = tiny_model(attention="general", input_feeding=input_feeding, seed=11)
    src, lengths = padded_sources((6, 3, 5, 4, 6, 2), seed=12)
    limit = max_lengths(lengths, 1.5, 2)
    beams = beam_search(model, src, lengths, max_len=limit, beam=5, alpha=0.6, n_best=3, keep_attention=True,
                        **ARGS)
    greedy_tokens = [h.tokens for h in greedy(model, src, lengths, max_len=limit, **ARGS)]
    assert any(hyps[0].tokens != g for hyps, g in zip(beams, greedy_tokens)), "no sentence where beam != greedy"
    for i, hyps in enumerate(beams):
        n = int(lengths[i])
        for hyp in hyps:  # the best and the runners-up: each keeps its own rows
            got = torch.tensor(hyp.attention)  # (T_out, S_padded)
            assert got.shape[0] in (len(hyp.tokens), len(hyp.tokens) + 1)  # + <eos>'s row when it ended
            want = _teacher_forced_attention(model, src[i:i + 1], n, hyp.tokens, got.shape[0])
            assert torch.allclose(got[:, :n], want, atol=2e-4)
            assert not got[:, n:].any()  # padding gets no weight
