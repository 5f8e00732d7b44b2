"""Choosing the next token from a model's logits: greedy, temperature, top-k and top-p sampling.

Decoding is plain functions over logits and a model's `step`; no state lives on the model.
"""

from __future__ import annotations

import torch

from rnncli.errors import ArgumentError


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, greedy: bool = False) -> None:
    """An `ArgumentError` naming the first sampling argument out of range (greedy decoding ignores the
    temperature, so `temperature=0` with `greedy` is fine: it is what "temperature 0" means)."""
    if not greedy and not temperature > 0:
        raise ArgumentError("temperature", f"must be > 0 (got {temperature}); greedy decoding takes the argmax")
    if top_k is not None and top_k < 1:
        raise ArgumentError("top_k", f"must be >= 1 (got {top_k})")
    if top_p is not None and not 0 < top_p <= 1:
        raise ArgumentError("top_p", f"must be in (0, 1] (got {top_p})")


def next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (B, V) -> token ids (B,)."""
    if greedy:
        return logits.argmax(dim=-1)
    logits = logits.float()  # a no-op (no copy) when logits are already float32
    if temperature != 1.0:  # x / 1.0 == x exactly: skip the copy
        logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        logits = _nucleus(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return _sample_one(probs, generator)


def _sample_one(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row from probs (B, V) -> (B,): argmax(p / E) with E ~ Exp(1) i.i.d.

    This "exponential race" is how torch.multinomial itself draws a single sample, so the same
    generator state gives the same tokens (tests/test_decoding.py checks it); doing it here skips
    multinomial's validation passes, ~40 us a character at batch 1.
    """
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / race).argmax(dim=-1)


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability mass reaches top_p (always >= 1 token)."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # mass before this token
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
