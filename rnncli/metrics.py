"""Metrics: classification (from gold and predicted label ids) and translation (from text)."""

from __future__ import annotations


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
    """Corpus BLEU and chrF (sacrebleu, one reference each), exact match, and three examples.

    BLEU is None when no reference has 4 tokens: 4-gram BLEU is 0 by construction there (e.g. the
    digit strings of the reverse task), which would read as a model that learned nothing."""
    import sacrebleu  # imported here: only seq2seq runs need it

    exact = sum(h == r for h, r in zip(hypotheses, references)) / len(references)
    bleu = sacrebleu.corpus_bleu(hypotheses, [references]).score if bleu_possible(references) else None
    return {"bleu": bleu,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "exact_match": exact, "sentences": len(references),
            "examples": [{"hypothesis": h, "reference": r} for h, r in zip(hypotheses[:3], references[:3])]}


def bleu_possible(references: list[str]) -> bool:
    """Whether 4-gram BLEU can be non-zero: some reference has at least 4 tokens as BLEU counts them
    (sacrebleu's 13a tokenizer: `content.` is two)."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenize = Tokenizer13a()
    return any(len(tokenize(r).split()) >= 4 for r in references)
