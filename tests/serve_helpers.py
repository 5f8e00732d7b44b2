"""Tiny trained runs of every task with a serving endpoint (char_lm, classify, ner, seq2seq), for
the serve and int8 tests: the shipped demo configs, shrunk to a few training steps."""
from __future__ import annotations

from pathlib import Path

from conftest import REPO

from rnncli import api

_SHRINK = ["trainer.epochs=1", "trainer.max_steps=2", "trainer.device=cpu", "run.overwrite=true"]
RUNS = {  # name -> (config, overrides)
    "lm": ("configs/demo.yaml", ["model.hidden_size=16", "model.num_layers=1", "model.embedding_dim=8",
                                 "trainer.batch_size=4", "trainer.bptt=16", f"data.path={REPO}/data/demo.txt"]),
    "cls": ("configs/classify/demo.yaml", ["model.hidden_size=8", f"data.path={REPO}/data/sentiment/reviews.tsv"]),
    "ner": ("configs/ner/demo.yaml", ["model.hidden_size=8", f"data.train={REPO}/data/ner/train.conll",
                                      f"data.val={REPO}/data/ner/dev.tsv", f"data.test={REPO}/data/ner/test.tsv"]),
    "s2s": ("configs/seq2seq/demo.yaml", ["model.hidden_size=8", f"data.path={REPO}/data/seq2seq/sample.tsv"]),
}


def train_tiny_runs(root: Path) -> dict[str, Path]:
    """Train every run in RUNS under root (a few steps each); name -> run directory."""
    out = {}
    for name, (config, overrides) in RUNS.items():
        sets = [*_SHRINK, *overrides, f"run.dir={root}", f"run.name={name}"]
        api.train(str(REPO / config), sets, show_progress=False)
        out[name] = root / name
    return out


_TRAINED: dict[str, Path] = {}


def shared_tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """`train_tiny_runs` once per test session (the serve and int8 tests share the runs)."""
    if not _TRAINED:
        _TRAINED.update(train_tiny_runs(tmp_path_factory.mktemp("tiny-runs")))
    return dict(_TRAINED)
