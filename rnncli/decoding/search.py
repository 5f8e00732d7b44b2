"""Greedy and batched beam-search decoding over a seq2seq model's `encode` / `step` (both can keep
each step's attention weights, for the heat-map).

Both decode many sentences at once; beam search keeps all B sentences x K beams in one tensor:

    row = sentence * K + beam        scores (B, K)      decoder state rows (B*K)

    each step:  candidates = scores[:, :, None] + log p(token | beam)          (B, K, V)
                top 2K candidates per sentence; those ending in <eos> among the top K become
                finished hypotheses; the K best others are the next beams (rows re-indexed)

A sentence is done when it has K finished hypotheses, or (length_penalty = 0) when its n-th best
finished score beats every live beam (scores only fall, so nothing better can come), or when it
reaches its maximum length (live beams are then finished as they are, without <eos>).
Final scores are  log p(y | x) / lp(y),  lp = ((5 + |y|) / 6) ** alpha  (Wu et al. 2016, GNMT),
|y| counting the <eos>. <pad> and <bos> are never generated.

With `keep_attention`, each beam carries its attention rows beside its tokens: a new beam is its
origin's rows plus the origin row's weights of this step (re-indexed by the same backpointers as
the tokens), so a finished hypothesis holds the attention of exactly the prefix it decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rnncli.models.seq2seq import Seq2Seq, index_memory, index_state


@dataclass
class Hypothesis:
    tokens: list[int]  # without <bos> / <eos>
    score: float  # length-normalised log probability
    logprob: float  # raw log probability (including <eos> when it ended)
    attention: list[list[float]] | None = None  # keep_attention=True: one row (S,) per step, <eos>'s too


def length_penalty(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


def step_logprobs(model: Seq2Seq, token: Tensor, state, memory, banned: list[int]):
    """log p(next | prefix) (rows, V) with `banned` tokens at -inf, the new state and attention weights."""
    logits, state, weights = model.step(token, state, memory)
    logits = logits.float()
    logits[:, banned] = float("-inf")
    return torch.log_softmax(logits, dim=-1), state, weights


def _rounded(weights: Tensor) -> list[list[float]]:
    """Attention weights (rows, S) as lists of floats, 4 decimals (what the heat-map shows)."""
    return [[round(w, 4) for w in row] for row in weights.float().tolist()]


def max_lengths(lengths: Tensor, ratio: float, extra: int) -> list[int]:
    """Maximum output length per sentence: ratio * source length + extra (at least 1)."""
    return [max(1, math.ceil(ratio * int(n)) + extra) for n in lengths]


@torch.no_grad()
def greedy(model: Seq2Seq, src: Tensor, lengths: Tensor, bos: int, eos: int, banned: list[int],
           max_len: list[int], keep_attention: bool = False) -> list[Hypothesis]:
    """Take the likeliest token at every step until <eos> or the sentence's maximum length.

    With `keep_attention`, each hypothesis keeps its attention weights, one row (S,) per step.
    """
    model.eval()
    memory, state = model.encode(src, lengths)
    batch = src.size(0)
    token = torch.full((batch,), bos, dtype=torch.long, device=src.device)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    rows: list[list[list[float]]] = [[] for _ in range(batch)]
    logprob = [0.0] * batch
    done = [False] * batch
    for t in range(max(max_len)):
        logp, state, weights = step_logprobs(model, token, state, memory, banned)
        best, token = logp.max(dim=-1)  # (B,)
        for b in range(batch):
            if done[b]:
                continue
            logprob[b] += best[b].item()
            if keep_attention:
                rows[b].append(_rounded(weights[b:b + 1])[0])
            if token[b].item() == eos:
                done[b] = True
            else:
                tokens[b].append(token[b].item())
                done[b] = len(tokens[b]) >= max_len[b]
        if all(done):
            break
    return [Hypothesis(tokens[b], logprob[b], logprob[b], rows[b] if keep_attention else None)
            for b in range(batch)]


@torch.no_grad()
def beam_search(model: Seq2Seq, src: Tensor, lengths: Tensor, bos: int, eos: int, banned: list[int],
                max_len: list[int], beam: int, alpha: float = 0.0, n_best: int = 1,
                keep_attention: bool = False) -> list[list[Hypothesis]]:
    """Batched beam search; returns the `n_best` hypotheses of each sentence, best first (each with
    its attention rows, one per step, with `keep_attention`)."""
    model.eval()
    batch, device = src.size(0), src.device
    memory, state = model.encode(src, lengths)
    rows = torch.arange(batch, device=device).repeat_interleave(beam)  # (B*K,) sentence of each row
    memory, state = index_memory(memory, rows), index_state(state, rows)
    scores = torch.full((batch, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive
    prefixes: list[list[list[int]]] = [[[] for _ in range(beam)] for _ in range(batch)]
    # attention rows of each beam, beside its prefix (None: not kept)
    rows_of: list[list[list]] | None = [[[] for _ in range(beam)] for _ in range(batch)] if keep_attention else None
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = [False] * batch
    token = torch.full((batch * beam,), bos, dtype=torch.long, device=device)
    for t in range(max(max_len)):
        logp, state, weights = step_logprobs(model, token, state, memory, banned)
        if keep_attention:  # beam k of sentence b: its rows + this step's row of weights (B*K, S)
            step = _rounded(weights)
            rows_of = [[rows_of[b][k] + [step[b * beam + k]] for k in range(beam)] for b in range(batch)]
        vocab = logp.size(-1)
        cand = (scores.unsqueeze(-1) + logp.view(batch, beam, vocab)).view(batch, -1)  # (B, K*V)
        top, index = cand.topk(min(2 * beam, cand.size(1)), dim=-1)  # (B, 2K)
        origin, next_token = index // vocab, index % vocab
        _collect_finished(top, origin, next_token, prefixes, rows_of, finished, done, eos, beam, alpha)
        live = top.masked_fill(next_token == eos, float("-inf")).topk(beam, dim=-1)  # (B, K)
        scores = live.values
        origin, next_token = origin.gather(1, live.indices), next_token.gather(1, live.indices)
        prefixes = [[prefixes[b][o] + [w] for o, w in zip(origin[b].tolist(), next_token[b].tolist())]
                    for b in range(batch)]
        if keep_attention:  # re-indexed by the same backpointers as the tokens
            rows_of = [[rows_of[b][o] for o in origin[b].tolist()] for b in range(batch)]
        _finish_sentences(scores, prefixes, rows_of, finished, done, max_len, beam, alpha, t, n_best)
        if all(done):
            break
        scores = scores.masked_fill(torch.tensor(done, device=device).unsqueeze(1), float("-inf"))
        flat = (origin + torch.arange(batch, device=device).unsqueeze(1) * beam).view(-1)  # (B*K,) rows
        state, token = index_state(state, flat), next_token.view(-1)
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]


def _collect_finished(top, origin, next_token, prefixes, rows_of, finished, done, eos, beam, alpha) -> None:
    """Candidates ending in <eos> among each sentence's top K become finished hypotheses."""
    is_eos = (next_token[:, :beam] == eos) & torch.isfinite(top[:, :beam])
    for b, k in is_eos.nonzero().tolist():
        if done[b]:
            continue
        logprob = top[b, k].item()
        o = origin[b, k].item()
        tokens, rows = prefixes[b][o], rows_of[b][o] if rows_of is not None else None  # rows: <eos>'s included
        finished[b].append(Hypothesis(tokens, logprob / length_penalty(len(tokens) + 1, alpha), logprob, rows))


def _finish_sentences(scores, prefixes, rows_of, finished, done, max_len, beam, alpha, t, n_best) -> None:
    """Mark sentences done (see the module docstring); at max length, live beams are finished as is."""
    for b in range(len(done)):
        if done[b]:
            continue
        live_best = scores[b].max().item()
        if t + 1 >= max_len[b]:
            for k in range(beam):
                if math.isfinite(scores[b, k].item()):
                    lp, rows = scores[b, k].item(), rows_of[b][k] if rows_of is not None else None
                    finished[b].append(Hypothesis(prefixes[b][k], lp / length_penalty(len(prefixes[b][k]), alpha),
                                                  lp, rows))
            done[b] = True
        elif len(finished[b]) >= beam or not math.isfinite(live_best):
            done[b] = True
        elif alpha == 0 and len(finished[b]) >= n_best and \
                sorted(h.score for h in finished[b])[-n_best] >= live_best:  # the n best are final
            done[b] = True
