"""The JSON file written next to the exported graphs: what a caller needs to use them without rnncli.

    format, task, cell, run, checkpoint_step
    graphs      {name: {file, inputs: [{name, dtype, shape}], outputs: [...]}}, shapes with named
                dynamic axes ("batch", "time", ...) and fixed sizes as numbers
    state       which inputs are recurrent state and which outputs carry it on (h -> h_out, ...)
    task_state  the run's own vocabularies / labels (what `task_state.json` holds)
    data, model the run's resolved config sections (tokenizer, lowercasing, sizes, ...)
    + per task  special token ids (classify, seq2seq), the CRF's scores and the decoding rule (ner),
                the greedy loop's limits (seq2seq)
    parity      the tolerance, the cases checked and the max abs difference of each graph
"""
from __future__ import annotations

import torch

from rnncli.data.vocab import PAD, UNK

_DTYPES = {torch.int64: "int64", torch.float32: "float32", torch.bool: "bool"}


def _io(names: list[str], tensors: tuple, axes: dict[str, dict[int, str]]) -> list[dict]:
    out = []
    for name, t in zip(names, tensors):
        shape = [axes.get(name, {}).get(i, size) for i, size in enumerate(t.shape)]
        out.append({"name": name, "dtype": _DTYPES.get(t.dtype, str(t.dtype)), "shape": shape})
    return out


def graph_entry(graph, file: str, example: tuple, outputs: tuple) -> dict:
    return {"file": file, "inputs": _io(graph.inputs, example, graph.axes),
            "outputs": _io(graph.outputs, outputs, graph.axes)}


def _ids(itos: list[str], *tokens: str) -> dict[str, int]:
    return {t: itos.index(t) for t in tokens if t in itos}


def task_extras(task_name: str, cfg: dict, task, model) -> dict:
    """What a caller needs beyond the vocabularies for this task."""
    state = task.state()
    if task_name == "classify":
        return {"special_ids": _ids(state["itos"], PAD, UNK),
                "decode": "label = labels[argmax(logits)]; unknown tokens map to <unk>"}
    if task_name == "ner":
        special = {"special_ids": _ids(state["words"], PAD, UNK)}
        if model.crf is None:
            return {**special, "crf": None, "decode": "tag = tags[argmax(emissions)] at each real step"}
        start, trans, end = (s.detach().tolist() for s in model.crf._scores())  # forbidden moves: -10000
        return {**special, "crf": {"start": start, "transitions": trans, "end": end},
                "decode": "Viterbi over emissions[:length] with crf start / transitions[from][to] / end"}
    if task_name == "seq2seq":
        target = state["target"]
        return {"special_ids": _ids(target, PAD, UNK, "<bos>", "<eos>"),
                "source_special_ids": _ids(state["source"], PAD, UNK, "<eos>"),
                "max_length_ratio": cfg["trainer"]["max_length_ratio"],
                "max_length_extra": cfg["trainer"]["max_length_extra"],
                "decode": "greedy: encoder once, then decoder_step from <bos>, feeding back argmax(logits) "
                          "(never <pad> or <bos>) until <eos> or max_length_ratio * source length + "
                          "max_length_extra; carry every state output (x_out -> x)"}
    return {}


def sidecar(fmt: str, cfg: dict, run: str, step: int, task, model, graphs: dict, parity: dict) -> dict:
    outputs = {o["name"] for g in graphs.values() for o in g["outputs"]}
    inputs = [io["name"] for g in graphs.values() for io in g["inputs"]]
    state_inputs = list(dict.fromkeys(n for n in inputs if f"{n}_out" in outputs))  # graph order: h, c, feed
    return {
        "format": fmt, "task": cfg["task"], "cell": cfg["model"]["cell"], "run": run, "checkpoint_step": step,
        "graphs": graphs,
        "state": {"inputs": state_inputs, "outputs": [f"{n}_out" for n in state_inputs],
                  "note": "feed each x_out back as x on the next call (zeros to start)"},
        "task_state": task.state(), "data": cfg["data"], "model": cfg["model"],
        **task_extras(cfg["task"], cfg, task, model),
        "parity": parity,
    }
