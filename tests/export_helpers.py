"""Tiny configs of every task for the export tests (built in-process, no training: parity is about
the graphs, and random weights exercise them as well as trained ones)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from rnncli.config import load_config
from rnncli.tasks import task_module

REPO = Path(__file__).resolve().parents[1]
TINY_TEXT = "the cat sat on the mat.\nthe dog sat on the log.\n" * 40
SMALL = {"hidden_size": 8}


def task_config(tmp_path: Path, task: str, cell: str, **model) -> dict:
    """A resolved config of `task` with `cell` at tiny sizes."""
    if task == "char_lm":
        corpus = tmp_path / "corpus.txt"
        corpus.write_text(TINY_TEXT)
        raw = {"task": task, "data": {"path": str(corpus), "split": [0.8, 0.1, 0.1]},
               "model": {"embedding_dim": 8, "num_layers": 2}}
    elif task in ("adding", "copy_memory"):
        data = {"T": 10, "steps_per_epoch": 2, "val_size": 4, "test_size": 4}
        if task == "copy_memory":
            data = {"T": 4, "steps_per_epoch": 2, "val_size": 4, "test_size": 4}
        raw = {"task": task, "data": data, "model": {}}
    else:
        demo = {"classify": "configs/classify/demo.yaml", "ner": "configs/ner/demo.yaml",
                "seq2seq": "configs/seq2seq/demo.yaml"}[task]
        raw = yaml.safe_load((REPO / demo).read_text())
        for key in ("path", "train", "val", "test"):
            if key in raw["data"]:
                raw["data"][key] = str(REPO / raw["data"][key])
        raw["model"].update({"embedding_dim": 8})
        if task == "ner":
            raw["model"].update({"char_embedding_dim": 4, "char_hidden_size": 4})
    raw["model"].update({"cell": cell, **SMALL, **model})
    if raw["model"].get("attention") == "none":  # input feeding needs attention
        raw["model"].pop("input_feeding", None)
    if raw["model"].get("char_features") == "none":
        raw["model"] = {k: v for k, v in raw["model"].items() if not k.startswith("char_") or k == "char_features"}
    raw["trainer"] = {"device": "cpu", "batch_size": 4, **({"bptt": 8} if task == "char_lm" else {})}
    raw["run"] = {"dir": str(tmp_path / "runs"), "name": f"{task}-{cell}"}
    path = tmp_path / f"{task}-{cell}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(str(path))


def build_task(tmp_path: Path, task: str, cell: str, **model):
    """(cfg, task object) with random weights, in eval mode."""
    torch.manual_seed(0)
    cfg = task_config(tmp_path, task, cell, **model)
    built = task_module(task).build(cfg, torch.device("cpu"))
    built.model.eval()
    return cfg, built
