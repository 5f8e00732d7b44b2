"""Shared fixtures: a tiny corpus and a tiny char-LM config written to a temp directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

torch.set_num_threads(1)  # tiny models: one thread is as fast and never oversubscribes 2 cores

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_TEXT = "the cat sat on the mat.\nthe dog sat on the log.\n" * 40


def tiny_config(tmp_path: Path, **sections) -> dict:
    """A char-LM config that trains in about a second; `sections` update its sections."""
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(TINY_TEXT)
    cfg = {
        "task": "char_lm",
        "data": {"path": str(corpus), "split": [0.8, 0.1, 0.1]},
        "model": {"cell": "lstm", "embedding_dim": 8, "hidden_size": 16, "num_layers": 1},
        "trainer": {"batch_size": 4, "bptt": 16, "lr": 0.01, "epochs": 2, "val_every": 10, "log_every": 1,
                    "device": "cpu"},
        "run": {"dir": str(tmp_path / "runs"), "name": "tiny"},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    return cfg


def write_config(tmp_path: Path, cfg: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def make_config(tmp_path):
    def make(**sections) -> Path:
        return write_config(tmp_path, tiny_config(tmp_path, **sections))

    return make
