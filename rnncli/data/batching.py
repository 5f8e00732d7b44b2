"""Batches of indices for variable-length examples: shuffled or bucketed for training, sorted for
evaluation.

    training    shuffle ─► cut                                                 (shuffled_batches)
                shuffle ─► pools of `pool` batches ─► sort each pool by length ─► cut ─► shuffle batches
                                                                               (bucketed_batches)
    evaluation  sort everything by length ─► cut (callers put results back in corpus order)

Sorting by length keeps padding small; the pools keep training batches random enough.
"""
from __future__ import annotations

import torch


def shuffled_batches(count: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """range(count) shuffled, cut into batches."""
    order = torch.randperm(count, generator=generator).tolist()
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]


def bucketed_batches(lengths: list[int], batch_size: int, generator: torch.Generator,
                     pool: int = 50) -> list[list[int]]:
    """Shuffle, sort by length within pools of `pool` batches, cut batches, shuffle batch order."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = sorted(order[start:start + batch_size * pool], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """All indices sorted by length, cut into batches."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def split_index(index: list[int], parts: int) -> list[tuple[list[int], bool]]:
    """A batch cut into `parts` interleaved pieces for ranks / accumulation steps: piece p is
    index[p::parts], so each piece of a length-sorted batch gets short and long examples alike.
    A piece left empty (fewer examples than parts) is (index[:1], False): a stand-in that runs
    with weight 0, so every rank still takes part in the step's all-reduce."""
    pieces = [index[p::parts] for p in range(parts)]
    return [(piece, True) if piece else (index[:1], False) for piece in pieces]
