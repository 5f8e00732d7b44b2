"""Task `classify`: text classification, e.g. sentiment (many-to-one).

    data    TSV / CSV / one-file-per-class readers (data/tabular.py), separate train/val/test
            files or one list of files cut by a seeded shuffle; a word (or character)
            vocabulary built on the training split; padded batches + lengths, optionally
            bucketed by length (similar lengths batched together, batch order shuffled;
            rnncli/data/batching.py)
    model   embedding (optionally pretrained GloVe / word2vec, frozen or not)
              -> recurrent stack (any zoo cell, stacked, bidirectional)
              -> pooling over the real steps: last | mean | max | attention
              -> dropout -> linear over the labels (softmax in the loss / at prediction)
            (rnncli/models/classifier.py)
    loss    cross-entropy of the label
    metrics loss, accuracy, macro-F1, per-class precision / recall / F1, confusion matrix
    decode  `predict`: label and probability for raw texts

Padding never changes a result: the recurrent layer packs (or masks) by length, and every
pooling looks only at real steps, so a sentence scores the same alone and in any batch.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from rnncli.data.batching import bucketed_batches, length_sorted_batches, shuffled_batches, split_index
from rnncli.data.embeddings import pretrained_embedding
from rnncli.data.tabular import (
    Example,
    TableFormat,
    read_examples,
    split_examples,
)
from rnncli.data.tokenize import tokenize
from rnncli.data.vocab import Vocab, pad_batch
from rnncli.errors import DataError
from rnncli.metrics import ExampleScores, ExampleStats, classification_metrics, fingerprint, macro_f1_rows
from rnncli.models.classifier import TextClassifier
from rnncli.schema import recurrent_kwargs
from rnncli.tasks.schemas.classify import SCHEMA, check  # noqa: F401  (the task contract)

EVAL_BATCH = 256


# --------------------------------------------------------------------------- data
def _read(d: dict, paths: list[str]) -> list[Example]:
    quoting = d["quoting"] if d.get("quoting") is not None else d["format"] == "csv"
    fmt = TableFormat(delimiter="," if d["format"] == "csv" else "\t", quoting=quoting,
                      header=d.get("header", False), text_column=d.get("text_column", 0),
                      label_column=d.get("label_column", 1))
    return read_examples(paths, d["format"], fmt, d["encoding"], d["skip_bad_lines"])


def load_splits(d: dict) -> dict[str, list[Example]]:
    """split name -> examples, as the data section describes."""
    if d["path"] is not None:
        return split_examples(_read(d, d["path"]), d["split"], d["split_seed"])
    return {s: _read(d, d[s]) for s in ("train", "val", "test") if d[s] is not None}


def _label_order(labels) -> list[str]:
    """Sorted, numbers by value ("2" before "10")."""
    return sorted(set(labels), key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))


@dataclass
class Encoded:
    """Examples as ids: token ids, label ids and where each came from."""

    ids: list[list[int]]
    labels: list[int]
    where: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


# --------------------------------------------------------------------------- model
def build_model(vocab: Vocab, num_labels: int, m: dict) -> TextClassifier:
    return TextClassifier(vocab_size=len(vocab), num_labels=num_labels, embedding_dim=m["embedding_dim"],
                          pooling=m["pooling"], embedding_dropout=m["embedding_dropout"],
                          word_dropout=m["word_dropout"], pad_id=vocab.pad_id, unk_id=vocab.unk_id,
                          **recurrent_kwargs(m))


# --------------------------------------------------------------------------- the task
@dataclass
class ClassifyTask:
    model: TextClassifier
    vocab: Vocab
    labels: list[str]
    data: dict  # the config's data section (files, tokenizer, lowercasing, bucketing)
    splits: dict[str, Encoded]
    batch_size: int
    seed: int
    device: torch.device
    metric: str = "accuracy"
    higher_is_better: bool = True

    def load_data(self, data_file: str | None = None) -> None:
        d = self.data
        if data_file is not None:
            self.splits = {"file": self.encode(_read(d, [data_file]), d["skip_bad_lines"])}
        else:
            self.splits = {s: self.encode(e, d["skip_bad_lines"]) for s, e in load_splits(d).items()}

    def num_train_batches(self) -> int:
        return math.ceil(len(self.splits["train"]) / self.batch_size)

    def train_batches(self, epoch: int) -> list:
        """Shuffled with a generator seeded by (seed, epoch), so a resumed run sees the same batches;
        with data.bucket, sorted by length within pools of 50 batches (rnncli/data/batching.py)."""
        data = self.splits["train"]
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        if self.data["bucket"]:
            batches = bucketed_batches([len(ids) for ids in data.ids], self.batch_size, generator)
        else:
            batches = shuffled_batches(len(data), self.batch_size, generator)
        return batches

    def _collate(self, data: Encoded, index: list[int]):
        x, lengths = pad_batch([data.ids[i] for i in index], self.vocab.pad_id)  # (B, T), (B,)
        y = torch.tensor([data.labels[i] for i in index])
        return x.to(self.device), lengths, y.to(self.device)

    def initial_carry(self):
        return None

    def shard(self, index: list[int], parts: int) -> list[tuple[list[int], int]]:
        return [(piece, len(piece) if real else 0) for piece, real in split_index(index, parts)]  # per example

    def train_step(self, index: list[int], carry):
        x, lengths, y = self._collate(self.splits["train"], index)
        loss = F.cross_entropy(self.model(x, lengths), y)
        return loss, None, int(lengths.sum())

    def evaluate(self, split: str) -> dict:
        data = self._split(split)
        losses, pred = self._scored(data)
        return {"loss": sum(losses) / len(data), **classification_metrics(data.labels, pred, self.labels)}

    def example_scores(self, split: str) -> ExampleScores:
        """Per example: loss, correct, and the per-class counts of macro-F1 (rnncli/metrics.py)."""
        data = self._split(split)
        losses, pred = self._scored(data)
        correct = [[float(g == p), 1.0] for g, p in zip(data.labels, pred)]
        return ExampleScores("example", fingerprint(data.where, data.labels, self.labels), {
            "accuracy": ExampleStats(correct, "ratio", True),
            "macro_f1": ExampleStats(macro_f1_rows(data.labels, pred, len(self.labels)), "macro_f1", True),
            "loss": ExampleStats([[loss, 1.0] for loss in losses], "ratio", False)})

    def _split(self, split: str) -> Encoded:
        if split not in self.splits or not len(self.splits[split]):
            raise DataError(f"this run has no {split} split (or it is empty)")
        return self.splits[split]

    @torch.no_grad()
    def _scored(self, data: Encoded) -> tuple[list[float], list[int]]:
        """Per example, in corpus order: the loss and the predicted label id."""
        self.model.eval()
        losses, pred = [0.0] * len(data), [0] * len(data)
        for index in length_sorted_batches([len(ids) for ids in data.ids], EVAL_BATCH):  # less padding
            x, lengths, y = self._collate(data, index)
            logits = self.model(x, lengths)
            loss = F.cross_entropy(logits, y, reduction="none")
            for i, p, l in zip(index, logits.argmax(-1).tolist(), loss.tolist()):
                pred[i], losses[i] = p, l
        return losses, pred

    def state(self) -> dict:
        return {"itos": self.vocab.itos, "labels": self.labels}

    # ---- decode: predictions for raw texts, and how `rnncli` shows them
    @torch.no_grad()
    def predict(self, texts: list[str]) -> list[dict]:
        """{text, label, probability} for each raw text."""
        ids = []
        for number, text in enumerate(texts, start=1):
            tokens = tokenize(text, self.data["tokenizer"], self.data["lowercase"])
            if not tokens:
                raise DataError(f"input {number} is empty ({text!r}): nothing to classify")
            ids.append(self.vocab.encode(tokens))
        self.model.eval()
        out = []
        for b in range(0, len(ids), EVAL_BATCH):
            x, lengths = pad_batch(ids[b:b + EVAL_BATCH], self.vocab.pad_id)
            probs = self.model(x.to(self.device), lengths).softmax(-1)  # (B, num_labels)
            best = probs.max(-1)
            for text, p, c in zip(texts[b:b + EVAL_BATCH], best.values.tolist(), best.indices.tolist()):
                out.append({"text": text, "label": self.labels[c], "probability": round(p, 4)})
        return out

    @staticmethod
    def format_prediction(prediction: dict) -> str:
        return f"{prediction['label']}\t{prediction['probability']:.3f}\t{prediction['text']}"

    @staticmethod
    def metric_tables(metrics: dict) -> list:
        """Per-class precision / recall / F1 and the confusion matrix, as rich tables."""
        from rich.table import Table

        if "per_class" not in metrics:
            return []
        per_class = Table(title="per class", header_style="bold")
        for name in ("label", "precision", "recall", "f1", "support"):
            per_class.add_column(name, justify="left" if name == "label" else "right")
        for label, s in metrics["per_class"].items():
            per_class.add_row(label, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}",
                              str(s["support"]))
        labels = metrics["labels"]
        confusion = Table(title="confusion matrix (rows: gold, columns: predicted)", header_style="bold")
        confusion.add_column("gold \\ predicted")
        for label in labels:
            confusion.add_column(label, justify="right")
        for label, row in zip(labels, metrics["confusion"]):
            confusion.add_row(label, *map(str, row))
        return [per_class, confusion]

    def encode(self, examples: list[Example], skip_bad_lines: bool = False) -> Encoded:
        """Tokenize and map to ids; a label the run does not know is an error naming file:line."""
        index = {label: i for i, label in enumerate(self.labels)}
        out, unknown = Encoded([], []), []
        for e in examples:
            if e.label not in index:
                unknown.append(e)
                continue
            out.ids.append(self.vocab.encode(tokenize(e.text, self.data["tokenizer"], self.data["lowercase"])))
            out.labels.append(index[e.label])
            out.where.append(e.where)
        if unknown:
            message = (f"{unknown[0].where}: unknown label {unknown[0].label!r}; this run's labels are "
                       f"{', '.join(self.labels)} (from the training split)")
            if not skip_bad_lines:
                raise DataError(message + f" ({len(unknown)} such line(s); data.skip_bad_lines: true skips them)")
            warnings.warn(f"skipped {len(unknown)} line(s) with unknown labels; the first: {message}", stacklevel=2)
        return out


def build(cfg: dict, device: torch.device) -> ClassifyTask:
    """Config -> data, vocabulary, labels, model and task, ready to train."""
    d, m = cfg["data"], cfg["model"]
    examples = load_splits(d)
    for split in ("train", "val"):  # found now, not at the first validation
        if not examples.get(split):
            raise DataError(f"the {'training' if split == 'train' else 'validation'} split is empty (check "
                            f"data.path / data.split / data.{split}: {len(sum(examples.values(), []))} examples "
                            f"in all)")
    labels = _label_order(e.label for e in examples["train"])
    if len(labels) < 2:
        raise DataError(f"the training data has only one label ({labels[0]!r}); a classifier needs at least two "
                        f"(check data.label_column)")
    tokens = [tokenize(e.text, d["tokenizer"], d["lowercase"]) for e in examples["train"]]
    vocab = Vocab.build(tokens, d["min_freq"], d["max_size"])
    model = build_model(vocab, len(labels), m)
    if m["embeddings"] is not None:
        _load_pretrained(model, vocab, m, Counter(t for seq in tokens for t in seq), d["skip_bad_lines"],
                         cfg["trainer"]["seed"])
    model.to(device)
    task = _task(model, vocab, labels, cfg, device)
    task.splits = {s: task.encode(e, d["skip_bad_lines"]) for s, e in examples.items()}
    return task


def _load_pretrained(model: TextClassifier, vocab: Vocab, m: dict, counts: Counter, skip_bad_lines: bool,
                     seed: int) -> None:
    weights, coverage = pretrained_embedding(m["embeddings"], vocab, m["embedding_dim"], counts, skip_bad_lines,
                                             seed)
    with torch.no_grad():
        model.embedding.weight.copy_(weights)
    model.embedding.weight.requires_grad_(not m["freeze"])
    print(coverage.describe() + (" (frozen)" if m["freeze"] else " (fine-tuned)"), file=sys.stderr, flush=True)


def _task(model, vocab, labels, cfg, device) -> ClassifyTask:
    t = cfg["trainer"]
    return ClassifyTask(model, vocab, labels, cfg["data"], {}, t["batch_size"], t["seed"], device,
                        metric=t["best_metric"], higher_is_better=t["best_metric"] != "loss")


def restore(cfg: dict, task_state: dict, model_state: dict, device: torch.device) -> ClassifyTask:
    """Rebuild a trained task from a checkpoint: the saved vocabulary, labels, weights; data on demand."""
    vocab = Vocab(task_state["itos"])
    labels = list(task_state["labels"])
    model = build_model(vocab, len(labels), cfg["model"])
    model.load_state_dict(model_state)
    model.to(device)
    return _task(model, vocab, labels, cfg, device)
