"""Metrics: classification (from gold and predicted label ids) and translation (from text); per-example
sufficient statistics (`ExampleScores`) and how a resample of them becomes a metric (`aggregate`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


def classification_metrics(gold: list[int], pred: list[int], labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class P/R/F1/support and the confusion matrix (rows gold, columns predicted).

    A class never predicted has precision 0; never present, recall 0 (as scikit-learn's zero_division=0).
    """
    k = len(labels)
    confusion = [[0] * k for _ in range(k)]
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    per_class = {}
    for c, label in enumerate(labels):
        tp = confusion[c][c]
        predicted = sum(row[c] for row in confusion)
        support = sum(confusion[c])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    n = len(gold)
    return {
        "accuracy": sum(confusion[c][c] for c in range(k)) / n if n else 0.0,
        "macro_f1": sum(v["f1"] for v in per_class.values()) / k,
        "examples": n,
        "labels": list(labels),
        "per_class": per_class,
        "confusion": confusion,
    }


def translation_metrics(hypotheses: list[str], references: list[str]) -> dict:
    """Corpus BLEU and chrF (sacrebleu, one reference each), exact match, and three examples."""
    import sacrebleu  # imported here: only seq2seq runs need it

    exact = sum(h == r for h, r in zip(hypotheses, references)) / len(references)
    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "exact_match": exact, "sentences": len(references),
            "examples": [{"hypothesis": h, "reference": r} for h, r in zip(hypotheses[:3], references[:3])]}


# --------------------------------------------------------------------------- per-example statistics
# A metric of a whole split is a function of per-example statistics summed over the examples:
# accuracy = sum(correct) / sum(1), span F1 = 2 sum(tp) / (sum(pred) + sum(gold)), BLEU = sacrebleu's
# score of the summed n-gram counts. Summing the rows of any resample of the examples and applying
# the same function gives the metric on that resample: what a paired bootstrap needs.
#
#     aggregate   row (K numbers per example)                      metric of summed rows s
#     ratio       (value, weight)                                  s0 / s1
#     f1          (true positives, predicted, gold)                2 s0 / (s1 + s2)
#     macro_f1    (tp_1..tp_C, pred_1..pred_C, gold_1..gold_C)      mean over classes of f1
#     bleu, chrf  sacrebleu's sentence statistics                  sacrebleu's corpus score (0-100)
AGGREGATES = ("ratio", "f1", "macro_f1", "bleu", "chrf")


@dataclass
class ExampleStats:
    """One metric's per-example sufficient statistics: `rows` (N, K) and how summed rows become the metric."""

    rows: list[list[float]]
    aggregate: str  # one of AGGREGATES
    higher_is_better: bool


@dataclass
class ExampleScores:
    """A run's per-example statistics on one split: what `rnncli eval --compare` resamples.

    `fingerprint` names the examples (a hash of the gold data, in order): two runs can be compared
    when it is equal. `unit` says what one example is (sentence, segment, window, example)."""

    unit: str
    fingerprint: str
    metrics: dict[str, ExampleStats] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.metrics.values())).rows) if self.metrics else 0


def fingerprint(*parts) -> str:
    """A short stable hash of plain data (the gold side of a split)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


def f1_rows(tp: int, pred: int, gold: int) -> list[float]:
    return [float(tp), float(pred), float(gold)]


def macro_f1_rows(gold: list[int], pred: list[int], num_labels: int) -> list[list[float]]:
    """Per example (tp_c..., pred_c..., gold_c...) for macro-F1 (as `classification_metrics` computes it)."""
    rows = []
    for g, p in zip(gold, pred):
        row = [0.0] * (3 * num_labels)
        row[g] += float(g == p)
        row[num_labels + p] += 1.0
        row[2 * num_labels + g] += 1.0
        rows.append(row)
    return rows


def translation_rows(hypotheses: list[str], references: list[str]) -> dict[str, list[list[float]]]:
    """sacrebleu's sentence statistics for BLEU and chrF (one reference each), summable over segments."""
    from sacrebleu.metrics import BLEU, CHRF

    return {name: [list(map(float, row)) for row in metric._extract_corpus_statistics(hypotheses, [references])]
            for name, metric in (("bleu", BLEU()), ("chrf", CHRF()))}


def aggregate(kind: str, summed):
    """Metric values from summed statistics: `summed` is a numpy array (R, K) -> (R,) values."""
    import numpy as np

    summed = np.asarray(summed, dtype=np.float64)
    if kind == "ratio":
        return np.divide(summed[:, 0], summed[:, 1], out=np.zeros(len(summed)), where=summed[:, 1] != 0)
    if kind in ("f1", "macro_f1"):
        tp, pred, gold = np.split(summed, 3, axis=1)  # (R, C) each; C = 1 for f1
        denominator = pred + gold
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator != 0)
        return f1.mean(axis=1)
    if kind in ("bleu", "chrf"):
        from sacrebleu.metrics import BLEU, CHRF

        metric = BLEU() if kind == "bleu" else CHRF()
        return np.array([metric._compute_score_from_stats(row.tolist()).score for row in summed])
    raise ValueError(f"unknown aggregate {kind!r} (known: {', '.join(AGGREGATES)})")
