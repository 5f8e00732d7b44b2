"""UCI sentiment benchmark: the classify configs against a bag-of-words naive Bayes baseline.

    flock /tmp/rnncli-cpu.lock .venv/bin/python benchmarks/classify_uci.py [CONFIG ...] [--set k=v ...]

Every model sees the same seeded split of the 3,000 sentences (data.split, data.split_seed of
the first config): naive Bayes is fit on the train split (and, for reference, on train + val)
and scored on the test split; each config is trained (wall time measured) and its best.pt
scored on the test split. Needs ../shared/data/uci-sentiment/ (run from the repo root).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter

import torch

from rnncli import api
from rnncli.config import load_config
from rnncli.data.tokenize import tokenize
from rnncli.tasks.classify import load_splits

CONFIGS = ["configs/classify/uci_bilstm.yaml", "configs/classify/uci_bilstm_glove.yaml"]


def naive_bayes(train, test, tokenizer: str = "word", lowercase: bool = True) -> float:
    """Multinomial naive Bayes, binary bag of words, add-one smoothing; test accuracy."""
    counts, docs, vocab = {}, Counter(), set()
    for e in train:
        words = set(tokenize(e.text, tokenizer, lowercase))
        counts.setdefault(e.label, Counter()).update(words)
        docs[e.label] += 1
        vocab |= words
    totals = {label: sum(c.values()) for label, c in counts.items()}

    def score(label, words):
        c = counts[label]
        return math.log(docs[label]) + sum(math.log((c[w] + 1) / (totals[label] + len(vocab)))
                                           for w in words if w in vocab)

    correct = sum(max(counts, key=lambda label: score(label, set(tokenize(e.text, tokenizer, lowercase))))
                  == e.label for e in test)
    return correct / len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=CONFIGS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="applied to every config")
    args = parser.parse_args()
    rows = []
    first = load_config(args.configs[0], args.overrides)
    splits = load_splits(first["data"])
    rows.append(("naive Bayes (train)", naive_bayes(splits["train"], splits["test"]), None))
    rows.append(("naive Bayes (train+val)", naive_bayes(splits["train"] + splits["val"], splits["test"]), None))
    for path in args.configs:
        overrides = [*args.overrides, "run.overwrite=true"]
        start = time.perf_counter()
        summary = api.train(path, overrides, show_progress=False)
        seconds = time.perf_counter() - start
        metrics = api.evaluate(summary["run_dir"], "test")
        rows.append((path, metrics["accuracy"], seconds))
        print(f"{path}: test accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
              f"best step {summary['best_step']}, {seconds:.0f} s", flush=True)
    print(f"\nUCI sentiment, {len(splits['train'])}/{len(splits['val'])}/{len(splits['test'])} "
          f"train/val/test, torch threads {torch.get_num_threads()}")
    for name, accuracy, seconds in rows:
        print(f"  {name:<45} test accuracy {accuracy:.4f}" + (f"   train {seconds:.0f} s" if seconds else ""))


if __name__ == "__main__":
    main()
