"""Greedy translation over an exported seq2seq run (encoder.onnx + decoder_step.onnx + model.json),
with numpy and onnxruntime only: this file imports nothing from rnncli or torch, so a caller can copy
it next to the graphs. It takes the same tokens as `rnncli generate` greedy (tests/test_export.py).

Beam search is not exported as a graph: a beam loop calls the same decoder-step graph with B*K rows
and reorders every state input (h, c, feed) with the surviving beams' rows between steps
(numpy `take(rows, axis)`: axis 1 for h / c, 0 for feed, memory and src_lengths).
"""
from __future__ import annotations

import math

import numpy as np


def greedy_translate(encoder, decoder, meta: dict, src_ids: list[int]) -> list[int]:
    """Target token ids (without <bos> / <eos>) for one source sentence's ids (see meta["task_state"])."""
    special = meta["special_ids"]
    src = np.array([src_ids], dtype=np.int64)  # (1, S)
    src_lengths = np.array([len(src_ids)], dtype=np.int64)
    names = [o.name for o in encoder.get_outputs()]
    encoded = dict(zip(names, encoder.run(None, {"src": src, "src_lengths": src_lengths})))
    state_names = meta["state"]["inputs"]  # h, [c], [feed]: carried from step to step
    memory = {k: v for k, v in encoded.items() if k not in state_names}  # memory, [projected]
    state = {k: encoded[k] for k in state_names}
    limit = max(1, math.ceil(meta["max_length_ratio"] * len(src_ids)) + meta["max_length_extra"])
    wanted = {i.name for i in decoder.get_inputs()}  # without attention the step reads no memory
    memory = {k: v for k, v in memory.items() if k in wanted}
    token, out = special["<bos>"], []
    for _ in range(limit):
        feeds = {"token": np.array([token], dtype=np.int64), **memory, **state}
        if "src_lengths" in wanted:
            feeds["src_lengths"] = src_lengths
        logits, *new_state = decoder.run(None, feeds)  # logits (1, V)
        state = dict(zip(state_names, new_state))
        logits[0, [special["<pad>"], special["<bos>"]]] = -np.inf  # never generated
        token = int(logits[0].argmax())
        if token == special["<eos>"]:
            break
        out.append(token)
    return out
