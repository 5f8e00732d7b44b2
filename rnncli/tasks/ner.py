"""Task `ner`: named-entity recognition, one tag per token (many-to-many tagging).

    data    CoNLL files (data/conll.py); tags converted from the files' scheme to
            `data.train_scheme` for training, predictions converted back for scoring
            (rnncli/data/tags.py); word vocabulary (min_freq, optional lowercasing), character
            vocabulary, optional pretrained word vectors (data/embeddings.py)
    model   word embedding (+ character BiLSTM or CNN per word, concatenated) -> dropout ->
            recurrent stack (any zoo cell, optionally bidirectional) -> dropout -> linear
            -> softmax, or a linear-chain CRF (rnncli/models/crf.py) with optional BIO/BIOES constraints;
            the nn.Modules live in rnncli/models/tagger.py, built here from the config
    loss    token cross-entropy, or the CRF's negative log-likelihood; summed, divided by tokens
    metrics entity-level (span) micro P/R/F1 as conlleval/seqeval (default and strict), per type,
            token accuracy
    decode  argmax per token, or Viterbi; `predict` tags whitespace-tokenized raw sentences

Batching: sentences are shuffled per epoch with a generator seeded by (seed, epoch), cut into
batches of `batch_size`, padded on the right; `lengths` keep padding out of every result.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from rnncli.data import scheme_check
from rnncli.data import tags as tagging
from rnncli.data.batching import shuffled_batches, split_index
from rnncli.data.conll import read_conll
from rnncli.data.conll import write_conll as _write_rows
from rnncli.data.embeddings import pretrained_embedding
from rnncli.data.tokenize import conll_tokens
from rnncli.data.vocab import Vocab, pad_batch
from rnncli.errors import DataError
from rnncli.metrics import ExampleScores, ExampleStats, f1_rows, fingerprint
from rnncli.models.tagger import CharEncoder, Tagger
from rnncli.nn.state import lengths_mask
from rnncli.schema import recurrent_kwargs
from rnncli.tasks.schemas.ner import SCHEMA, check  # noqa: F401  (the task contract)

SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- data
@dataclass
class Encoded:
    """One split: sentences as read, and as ids for the model."""

    tokens: list[list[str]]
    gold: list[list[str]]  # tags in the files' scheme
    words: list[list[int]] = field(default_factory=list)
    chars: list[list[list[int]]] = field(default_factory=list)
    tags: list[list[int]] | None = None  # train-scheme tag ids (training split only)


@dataclass
class Vocabs:
    words: Vocab
    chars: Vocab
    tags: list[str]  # in the training scheme
    scheme: str  # the files' scheme
    train_scheme: str
    lowercase: bool

    def encode(self, tokens: list[list[str]], gold: list[list[str]]) -> Encoded:
        lower = (lambda w: w.lower()) if self.lowercase else (lambda w: w)
        return Encoded(tokens, gold, [self.words.encode(map(lower, s)) for s in tokens],
                       [[self.chars.encode(w) for w in s] for s in tokens])

    def state(self) -> dict:
        return {"words": self.words.itos, "chars": self.chars.itos, "tags": self.tags, "scheme": self.scheme,
                "train_scheme": self.train_scheme, "lowercase": self.lowercase}

    @classmethod
    def from_state(cls, s: dict) -> "Vocabs":
        return cls(Vocab(s["words"]), Vocab(s["chars"]), s["tags"], s["scheme"], s["train_scheme"], s["lowercase"])


def read_split(path: str, d: dict, scheme: str | None = None,
               why: str = "") -> tuple[list[list[str]], list[list[str]]]:
    """(tokens, tags) of a CoNLL file; with `scheme`, a tag the scheme lacks is a DataError here."""
    sentences = read_conll(path, d["token_column"], d["tag_column"], d["encoding"])
    if scheme is not None:
        scheme_check.check_file(sentences, path, scheme, why)
    return [s.tokens for s in sentences], [s.tags for s in sentences]


def files_scheme(d: dict) -> tuple[str, str]:
    """(scheme, why) of the run's files: data.scheme, or detected from the training file."""
    if d["scheme"]:
        return d["scheme"], "data.scheme"
    return scheme_check.detect(read_conll(d["train"], d["token_column"], d["tag_column"], d["encoding"]), d["train"])


def build_vocabs(tokens: list[list[str]], gold: list[list[str]], d: dict) -> Vocabs:
    scheme = d["scheme"] or tagging.detect_scheme(gold)
    lower = (lambda w: w.lower()) if d["lowercase"] else (lambda w: w)
    words = Vocab.build(([lower(w) for w in s] for s in tokens), min_freq=d["min_freq"])
    chars = Vocab.build(s for sentence in tokens for s in sentence)
    types = {kind for tags in gold for kind, _, _ in tagging.spans(tags)}
    return Vocabs(words, chars, tagging.scheme_tags(types, d["train_scheme"]), scheme, d["train_scheme"],
                  d["lowercase"])


# --------------------------------------------------------------------------- model
def build_model(vocabs: Vocabs, m: dict, vectors: torch.Tensor | None = None) -> Tagger:
    chars = None
    if m["char_features"] != "none":
        chars = CharEncoder(len(vocabs.chars), m["char_embedding_dim"], m["char_hidden_size"], m["char_features"],
                            m.get("char_kernel_size", 3))
    allowed = tagging.allowed_transitions(vocabs.tags, vocabs.train_scheme) if m.get("constraints") else None
    return Tagger(num_words=len(vocabs.words), num_tags=len(vocabs.tags), embedding_dim=m["embedding_dim"],
                  crf=m["crf"], allowed=allowed, chars=chars, vectors=vectors,
                  freeze_embeddings=m.get("freeze_embeddings", False), **recurrent_kwargs(m))


# --------------------------------------------------------------------------- batches
def make_batch(data: Encoded, index: list[int], device, with_tags: bool = False) -> dict:
    """Sentences `index` of a split -> padded tensors: words/tags (B, T), lengths (B,), chars."""
    words, lengths = pad_batch([data.words[i] for i in index])
    char_words = [w for i in index for w in data.chars[i]]  # the N real words, row-major
    chars, char_lengths = pad_batch([w or [1] for w in char_words])  # an empty word reads as <unk>
    batch = {"index": index, "words": words.to(device), "lengths": lengths.to(device),
             "chars": (chars.to(device), char_lengths.to(device))}
    if with_tags:
        batch["tags"] = pad_batch([data.tags[i] for i in index])[0].to(device)
    return batch


def decode(model: Tagger, batch: dict) -> tuple[list[list[int]], torch.Tensor]:
    """Best tag ids per sentence and their scores (CRF path score, or summed log-softmax)."""
    emissions = model(batch["words"], batch["lengths"], batch["chars"])  # (B, T, K)
    lengths = batch["lengths"]
    if model.crf is not None:
        return model.crf.decode(emissions, lengths)
    logp, ids = F.log_softmax(emissions, dim=2).max(dim=2)  # (B, T) each
    mask = lengths_mask(lengths, ids.size(1))  # (B, T)
    paths = [row[:n] for row, n in zip(ids.tolist(), lengths.tolist())]
    return paths, (logp * mask).sum(1)


# --------------------------------------------------------------------------- the task
@dataclass
class NERTask:
    model: Tagger
    vocabs: Vocabs
    data: dict  # the config's data section (files and columns)
    splits: dict[str, Encoded]
    batch_size: int
    seed: int
    word_dropout: float = 0.0
    metric: str = "f1"
    higher_is_better: bool = True

    @property
    def device(self):
        return next(self.model.parameters()).device

    def load_data(self, data_file: str | None = None) -> None:
        d = self.data
        files = {"file": data_file} if data_file else {s: d[s] for s in SPLITS if d[s] is not None}
        why = f"the scheme {self.vocabs.scheme} this run was trained with"
        self.splits = {s: self.vocabs.encode(*read_split(path, d, self.vocabs.scheme, why))
                       for s, path in files.items()}

    def num_train_batches(self) -> int:
        return -(-len(self.splits["train"].words) // self.batch_size)

    def train_batches(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        return shuffled_batches(len(self.splits["train"].words), self.batch_size, generator)

    def initial_carry(self):
        return None

    def shard(self, index: list[int], parts: int) -> list[tuple[list[int], int]]:
        words = self.splits["train"].words  # the loss is per token
        return [(piece, sum(len(words[i]) for i in piece) if real else 0)
                for piece, real in split_index(index, parts)]

    def train_step(self, index: list[int], carry):
        batch = make_batch(self.splits["train"], index, self.device, with_tags=True)
        words, lengths = batch["words"], batch["lengths"]
        if self.word_dropout:
            drop = torch.rand(words.shape, device=words.device) < self.word_dropout
            words = words.masked_fill(drop & (words != 0), self.vocabs.words.unk_id)
        emissions = self.model(words, lengths, batch["chars"])  # (B, T, K)
        tokens = int(lengths.sum())
        if self.model.crf is not None:
            loss = self.model.crf.neg_log_likelihood(emissions, batch["tags"], lengths).sum() / tokens
        else:
            mask = lengths_mask(lengths, words.size(1))  # (B, T)
            loss = F.cross_entropy(emissions[mask], batch["tags"][mask], reduction="sum") / tokens
        return loss, None, tokens

    def evaluate(self, split: str) -> dict:
        if split not in self.splits:
            raise DataError(f"this run has no {split} split (set data.{split} in the config, or score a file)")
        data = self.splits[split]
        pred = self.tag(data)
        return scores(data.gold, pred, self.vocabs.scheme)

    def samples(self, split: str, count: int = 3) -> str:
        """The first `count` sentences of the split, entities tagged: predicted, then gold."""
        if split not in self.splits:
            raise DataError(f"this run has no {split} split")
        data = self.splits[split]
        tokens, gold = data.tokens[:count], data.gold[:count]
        pred = self.tag(self.vocabs.encode(tokens, gold))
        show = lambda words, tags: " ".join(w if t == "O" else f"**{w}**/{t}" for w, t in zip(words, tags))  # noqa: E731
        return "\n\n".join(f"{show(w, p)}  \ngold: {show(w, g)}" for w, p, g in zip(tokens, pred, gold))

    def example_scores(self, split: str) -> ExampleScores:
        """Per sentence: entity counts of span F1 (conlleval default mode) and token accuracy counts."""
        if split not in self.splits:
            raise DataError(f"this run has no {split} split (set data.{split} in the config, or score a file)")
        data = self.splits[split]
        pred = self.tag(data)
        f1, tokens = [], []
        for g, p in zip(data.gold, pred):
            gold_spans, pred_spans = set(tagging.spans(g)), set(tagging.spans(p))
            f1.append(f1_rows(len(gold_spans & pred_spans), len(pred_spans), len(gold_spans)))
            tokens.append([float(sum(a == b for a, b in zip(g, p))), float(len(g))])
        return ExampleScores("sentence", fingerprint(data.tokens, data.gold), {
            "f1": ExampleStats(f1, "f1", True), "token_accuracy": ExampleStats(tokens, "ratio", True)})

    @torch.no_grad()
    def tag(self, data: Encoded) -> list[list[str]]:
        """Predicted tags in the files' scheme (repaired and converted from the training scheme)."""
        self.model.eval()
        out: list[list[str]] = []
        for start in range(0, len(data.words), 64):
            index = list(range(start, min(start + 64, len(data.words))))
            paths, _ = decode(self.model, make_batch(data, index, self.device))
            out += [tagging.convert([self.vocabs.tags[k] for k in p], self.vocabs.scheme) for p in paths]
        return out

    def state(self) -> dict:
        return self.vocabs.state()

    # ---- decode: predictions for raw sentences, and how `rnncli` shows and writes them
    def predict(self, texts: list[str]) -> list[dict]:
        """Raw sentences, tokenized as CoNLL files are (`conll_tokens`: `London.` -> `London` `.`) ->
        {"text", "tokens", "tags", "entities": [{text, type, start, end}]}, with `end` exclusive
        (tokens[start:end] is the entity)."""
        preds = predict_tokens(self, [conll_tokens(text) for text in texts])
        return [{"text": text, **p} for text, p in zip(texts, preds)]

    @staticmethod
    def format_prediction(prediction: dict) -> str:
        """'Ada Lovelace  person [0:2]  |  London  location [5:6]' (token spans, end exclusive)."""
        if not prediction["entities"]:
            return "(no entities)"
        return "  |  ".join(f"{e['text']}  {e['type']} [{e['start']}:{e['end']}]" for e in prediction["entities"])

    @staticmethod
    def write_predictions(predictions: list[dict], path: str) -> None:
        """CoNLL (`write_conll`): what `rnncli predict --output FILE` writes for ner runs."""
        write_conll(predictions, path)

    @staticmethod
    def metric_tables(metrics: dict) -> list:
        """The per-type precision / recall / F1 table for `rnncli eval`."""
        from rich.table import Table

        per_type = metrics.get("per_type")
        if not per_type:
            return []
        table = Table(title="entities by type (span level, conlleval)")
        for name in ("type", "precision", "recall", "f1", "support"):
            table.add_column(name, justify="left" if name == "type" else "right")
        for kind, s in per_type.items():
            table.add_row(kind, f"{100 * s['precision']:.2f}", f"{100 * s['recall']:.2f}", f"{100 * s['f1']:.2f}",
                          str(s["support"]))
        table.add_row("[bold]all (micro)", f"{100 * metrics['precision']:.2f}", f"{100 * metrics['recall']:.2f}",
                      f"{100 * metrics['f1']:.2f}", str(metrics.get("entities", "")))
        return [table]


def scores(gold: list[list[str]], pred: list[list[str]], scheme: str) -> dict:
    """Span P/R/F1 (conlleval default mode), strict-mode F1, token accuracy, per-type table."""
    default = tagging.span_scores(gold, pred)
    strict = tagging.span_scores(gold, pred, mode="strict", scheme=scheme)
    return {"f1": default["f1"], "precision": default["precision"], "recall": default["recall"],
            "strict_f1": strict["f1"], "token_accuracy": tagging.token_accuracy(gold, pred),
            "entities": sum(t["support"] for t in default["per_type"].values()), "sentences": len(gold),
            "per_type": default["per_type"]}


def _train_tags(vocabs: Vocabs, gold: list[list[str]]) -> list[list[int]]:
    """Gold tags (repaired) in the training scheme, as ids."""
    index = {t: i for i, t in enumerate(vocabs.tags)}
    return [[index[t] for t in tagging.convert(tags, vocabs.train_scheme)] for tags in gold]


def _vectors(d: dict, vocabs: Vocabs, tokens: list[list[str]], embedding_dim: int, seed: int):
    """Pretrained rows for the word vocabulary, or None."""
    if d["vectors"] is None:
        return None
    counts = Counter(w.lower() if vocabs.lowercase else w for s in tokens for w in s)
    return pretrained_embedding(d["vectors"], vocabs.words, embedding_dim, counts, seed=seed)[0]


def build(cfg: dict, device: torch.device) -> NERTask:
    """Config -> data, vocabularies, model and task, ready to train."""
    d, t = cfg["data"], cfg["trainer"]
    scheme, why = files_scheme(d)  # every file is checked against it as it is read
    raw = {s: read_split(d[s], d, scheme, why) for s in SPLITS if d[s] is not None}
    vocabs = build_vocabs(*raw["train"], {**d, "scheme": scheme})
    splits = {s: vocabs.encode(*raw[s]) for s in raw}
    splits["train"].tags = _train_tags(vocabs, raw["train"][1])
    vectors = _vectors(d, vocabs, raw["train"][0], cfg["model"]["embedding_dim"], t["seed"])
    model = build_model(vocabs, cfg["model"], vectors).to(device)
    return NERTask(model, vocabs, d, splits, t["batch_size"], t["seed"], cfg["model"]["word_dropout"])


def restore(cfg: dict, task_state: dict, model_state: dict, device: torch.device) -> NERTask:
    """Rebuild a trained tagger from a checkpoint; `task.load_data()` reads the evaluation data."""
    vocabs = Vocabs.from_state(task_state)
    model = build_model(vocabs, cfg["model"]).to(device)
    model.load_state_dict(model_state)
    return NERTask(model, vocabs, cfg["data"], {}, cfg["trainer"]["batch_size"], cfg["trainer"]["seed"])


# --------------------------------------------------------------------------- predict
def predict_tokens(task: NERTask, sentences: list[list[str]], gold: list[list[str]] | None = None) -> list[dict]:
    """Tokenized sentences (e.g. a CoNLL file's, with its `gold` tags) -> prediction dicts;
    tags are in the files' scheme; `gold` is kept for `write_conll`."""
    nonempty = [i for i, s in enumerate(sentences) if s]  # an empty sentence has no entities
    kept = [sentences[i] for i in nonempty]
    tags = dict(zip(nonempty, task.tag(task.vocabs.encode(kept, [["O"] * len(s) for s in kept]))))
    out = []
    for i, tokens in enumerate(sentences):
        found = tagging.spans(tags.get(i, []))
        out.append({"tokens": tokens, "tags": tags.get(i, []), **({"gold": gold[i]} if gold else {}),
                    "entities": [{"text": " ".join(tokens[s : e + 1]), "type": kind, "start": s, "end": e + 1}
                                 for kind, s, e in found]})
    return out


def write_conll(preds: list[dict], path: str) -> None:
    """Predictions -> CoNLL: `token<TAB>[gold<TAB>]predicted` per line, conlleval-readable."""
    _write_rows(path, [[[tok, *([p["gold"][k]] if "gold" in p else []), tag]
                        for k, (tok, tag) in enumerate(zip(p["tokens"], p["tags"]))] for p in preds])
