"""Task `seq2seq`: encoder-decoder translation (many-to-many, unequal lengths).

    data    a TSV file (or two line-aligned files) cut by a seeded split, or separate train/val/test
            TSV files; unicode normalisation, word or char tokens per side, length/prefix filters
            (rnncli/data/parallel.py); source and target vocabularies with <pad> <unk> <bos> <eos>
    batches sorted by source length within shuffled pools (buckets), so padding stays small
              (rnncli/data/batching.py; the shuffle is seeded with seed*1000+epoch)
    model   encoder -> bridge -> decoder with none / dot / general / additive attention
            (rnncli/models/seq2seq.py); teacher forcing with a ratio, decayed per epoch
    loss    cross-entropy of the next target token, masked over padding
    metrics teacher-forced loss, perplexity and token accuracy; BLEU, chrF (sacrebleu, on
            detokenized text, rnncli/metrics.py) and exact match of free decoding (greedy or beam,
            rnncli/decoding/search.py)
    decode  `translate`: greedy or batched beam search with n-best lists and scores;
            `attention_map`: one sentence's attention weights (drawn by rnncli/tools/attention_plot.py)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from rnncli.data import parallel
from rnncli.data.batching import bucketed_batches, length_sorted_batches, split_index
from rnncli.data.vocab import PAD, UNK, Vocab, pad_batch
from rnncli.decoding.search import Hypothesis, beam_search, greedy, max_lengths
from rnncli.errors import ArgumentError, DataError, RunError
from rnncli.metrics import ExampleScores, ExampleStats, fingerprint, translation_metrics, translation_rows
from rnncli.models.seq2seq import Seq2Seq
from rnncli.schema import recurrent_kwargs
from rnncli.tasks.schemas.seq2seq import METRICS, SCHEMA, check  # noqa: F401  (the task contract)

BOS, EOS = "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


# --------------------------------------------------------------------------- data
@dataclass
class Pairs:
    """Tokenized sentence pairs of one split."""

    src: list[list[str]]
    tgt: list[list[str]]

    def __len__(self) -> int:
        return len(self.src)


def _raw_pairs(d: dict, split_name: str | None = None, path: str | None = None) -> list[tuple[str, str]]:
    if path is not None:
        return parallel.read_tsv(path, d.get("source_column", 0), d.get("target_column", 1), d["encoding"])
    if d["source_path"] is not None:
        return parallel.read_aligned(d["source_path"], d["target_path"], d["encoding"])
    return parallel.read_tsv(d["path"] if split_name is None else d[split_name], d["source_column"],
                             d["target_column"], d["encoding"])


def prepare(raw: list[tuple[str, str]], d: dict, filters: bool = True) -> Pairs:
    """Normalise, tokenize and (for training data) filter raw pairs."""
    src, tgt = [], []
    for s_text, t_text in raw:
        s_text, t_text = parallel.normalize(s_text, d["normalize"]), parallel.normalize(t_text, d["normalize"])
        s = parallel.tokenize(s_text, d["source_tokenizer"], d["lowercase"])
        t = parallel.tokenize(t_text, d["target_tokenizer"], d["lowercase"])
        if filters and not parallel.keep_pair(s, t, s_text, t_text, d["max_source_len"], d["max_target_len"],
                                              d["prefixes"], d["prefix_side"]):
            continue
        if not filters and (not s or not t):
            continue
        src.append(s)
        tgt.append(t)
        if filters and d["max_pairs"] is not None and len(src) >= d["max_pairs"]:
            break
    return Pairs(src, tgt)


def load_splits(d: dict) -> dict[str, Pairs]:
    """split name -> tokenized pairs, as the data section describes."""
    if d["train"] is None:
        pairs = prepare(_raw_pairs(d), d)
        where = d["path"] or d["source_path"]
        if len(pairs) < 3:
            raise DataError(f"{where}: only {len(pairs)} sentence pairs pass the filters (data.max_source_len, "
                            f"data.max_target_len, data.prefixes); need at least 3 to split")
        cut = parallel.split_pairs(list(zip(pairs.src, pairs.tgt)), d["split"], d["split_seed"])
        return {name: Pairs([s for s, _ in items], [t for _, t in items]) for name, items in cut.items()}
    out = {"train": prepare(_raw_pairs(d, "train"), d)}
    for name in ("val", "test"):
        if d[name] is not None:
            out[name] = prepare(_raw_pairs(d, name), d, filters=False)
    if not len(out["train"]):
        raise DataError(f"{d['train']}: no sentence pairs pass the filters")
    return out


@dataclass
class Vocabs:
    src: Vocab
    tgt: Vocab

    @classmethod
    def build(cls, train: Pairs, min_freq: int, shared: bool) -> "Vocabs":
        if shared:
            both = Vocab.build(train.src + train.tgt, min_freq, specials=SPECIALS)
            return cls(both, both)
        return cls(Vocab.build(train.src, min_freq, specials=SPECIALS),
                   Vocab.build(train.tgt, min_freq, specials=SPECIALS))

    def state(self) -> dict:
        return {"source": self.src.itos, "target": self.tgt.itos}

    @classmethod
    def from_state(cls, s: dict) -> "Vocabs":
        return cls(Vocab(s["source"]), Vocab(s["target"]))


def make_batch(pairs: Pairs, index: list[int], vocabs: Vocabs, device) -> dict:
    """src (B, S) + lengths; tgt_in = <bos> y (B, T); tgt_out = y <eos> (B, T), padded with <pad>."""
    bos, eos, pad = vocabs.tgt.stoi[BOS], vocabs.tgt.stoi[EOS], vocabs.tgt.pad_id
    src, lengths = pad_batch([vocabs.src.encode(pairs.src[i]) for i in index], vocabs.src.pad_id)
    tgt = [vocabs.tgt.encode(pairs.tgt[i]) for i in index]
    tgt_in, _ = pad_batch([[bos] + y for y in tgt], pad)
    tgt_out, _ = pad_batch([y + [eos] for y in tgt], pad)
    return {"src": src.to(device), "lengths": lengths, "tgt_in": tgt_in.to(device),
            "tgt_out": tgt_out.to(device), "index": index}


def sorted_batches(pairs: Pairs, batch_size: int) -> list[list[int]]:
    """Evaluation order: by source length (less padding); results are put back in corpus order."""
    return length_sorted_batches([len(s) for s in pairs.src], batch_size)


# --------------------------------------------------------------------------- model
def build_model(vocabs: Vocabs, m: dict) -> Seq2Seq:
    return Seq2Seq(src_vocab=len(vocabs.src), tgt_vocab=len(vocabs.tgt), embedding_dim=m["embedding_dim"],
                   attention=m["attention"], input_feeding=m.get("input_feeding", False),
                   decoder_hidden_size=m["decoder_hidden_size"], decoder_num_layers=m["decoder_num_layers"],
                   bridge=m["bridge"], pad_id=vocabs.src.pad_id, **recurrent_kwargs(m))


def teacher_forcing_ratio(t: dict, epoch: int) -> float:
    """Scheduled sampling: the ratio decays linearly per epoch down to teacher_forcing_min."""
    ratio = t["teacher_forcing"] - t["teacher_forcing_decay"] * epoch
    return max(ratio, min(t["teacher_forcing_min"], t["teacher_forcing"]))


# --------------------------------------------------------------------------- the task
@dataclass
class Seq2SeqTask:
    model: Seq2Seq
    vocabs: Vocabs
    splits: dict[str, Pairs]
    data: dict  # the config's data section (tokenizers, normalisation)
    t: dict  # the config's trainer section
    device: torch.device
    metric: str = "bleu"
    higher_is_better: bool = True
    decode_options: dict = field(default_factory=dict)  # overrides of beam_size etc. (`evaluate(beam=)`)

    def load_data(self, data_file: str | None = None) -> None:
        d = self.data
        if data_file is not None:
            self.splits = {"file": prepare(_raw_pairs(d, path=data_file), d, filters=False)}
        else:
            self.splits = load_splits(d)

    def num_train_batches(self) -> int:
        return math.ceil(len(self.splits["train"]) / self.t["batch_size"])

    def train_batches(self, epoch: int) -> list[tuple[int, list[int]]]:
        g = torch.Generator().manual_seed(self.t["seed"] * 1000 + epoch)
        lengths = [len(s) for s in self.splits["train"].src]
        return [(epoch, b) for b in bucketed_batches(lengths, self.t["batch_size"], g)]

    def initial_carry(self):
        return None

    def shard(self, batch, parts: int) -> list[tuple[tuple[int, list[int]], int]]:
        epoch, index = batch
        tgt = self.splits["train"].tgt  # the loss is per target token, <eos> included
        return [((epoch, piece), sum(len(tgt[i]) + 1 for i in piece) if real else 0)
                for piece, real in split_index(index, parts)]

    def train_step(self, batch, carry):
        epoch, index = batch
        b = make_batch(self.splits["train"], index, self.vocabs, self.device)
        logits, _ = self.model(b["src"], b["lengths"], b["tgt_in"], teacher_forcing_ratio(self.t, epoch))
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), b["tgt_out"].reshape(-1),
                               ignore_index=self.vocabs.tgt.pad_id)
        return loss, None, int((b["tgt_out"] != self.vocabs.tgt.pad_id).sum())

    def evaluate(self, split: str, beam: int | None = None) -> dict:
        """Teacher-forced scores and free-decoding scores (beam: override trainer.beam_size)."""
        _check_sizes(beam, 1)
        if beam is not None:
            self.decode_options = {**self.decode_options, "beam_size": beam}
        pairs = self._split(split)
        scored = teacher_forced_scores(self.model, pairs, self.vocabs, self.t["batch_size"], self.device)
        hyps = self.decode(pairs.src)
        scores = decoding_scores([h[0].tokens for h in hyps], pairs.tgt, self.vocabs.tgt, self.data["target_tokenizer"])
        if scores["bleu"] is None and self.metric == "bleu":  # asked for: kept (0 by construction)
            scores["bleu"] = 0.0
        return {**scored, **scores, "beam_size": self.option("beam_size")}

    def example_scores(self, split: str) -> ExampleScores:
        """Per segment, with free decoding: sacrebleu's BLEU and chrF statistics, and exact match."""
        pairs = self._split(split)
        tok, vocab = self.data["target_tokenizer"], self.vocabs.tgt
        hyps = [parallel.detokenize(vocab.decode(h[0].tokens), tok) for h in self.decode(pairs.src)]
        refs = [parallel.detokenize(r, tok) for r in pairs.tgt]
        rows = translation_rows(hyps, refs)
        return ExampleScores("segment", fingerprint(pairs.src, pairs.tgt), {
            "bleu": ExampleStats(rows["bleu"], "bleu", True), "chrf": ExampleStats(rows["chrf"], "chrf", True),
            "exact_match": ExampleStats([[float(h == r), 1.0] for h, r in zip(hyps, refs)], "ratio", True)})

    def samples(self, split: str, count: int = 3) -> str:
        """The first `count` sentences of the split: source, translation (free decoding), reference."""
        pairs, tok = self._split(split), self.data["target_tokenizer"]
        hyps = self.decode(pairs.src[:count])
        rows = [f"| {' '.join(s)} | {parallel.detokenize(self.vocabs.tgt.decode(h[0].tokens), tok)} | "
                f"{parallel.detokenize(r, tok)} |" for s, h, r in zip(pairs.src, hyps, pairs.tgt)]
        return "\n".join(["| source | translation | reference |", "|---|---|---|", *rows])

    def _split(self, split: str) -> Pairs:
        if split not in self.splits or not len(self.splits[split]):
            raise DataError(f"this run has no {split} split (or it is empty)")
        return self.splits[split]

    def option(self, key: str):
        if self.decode_options.get(key) is not None:
            return self.decode_options[key]
        return self.t.get(key, SCHEMA["trainer"][key].default)  # a key that did not apply to the config

    def decode(self, sources: list[list[str]], n_best: int = 1) -> list[list[Hypothesis]]:
        """Token lists -> n-best hypotheses each, in input order."""
        pairs = Pairs(sources, [[] for _ in sources])
        out: list = [None] * len(sources)
        tgt = self.vocabs.tgt
        ids = dict(bos=tgt.stoi[BOS], eos=tgt.stoi[EOS], banned=[tgt.pad_id, tgt.stoi[BOS]])
        beam = self.option("beam_size")
        for index in sorted_batches(pairs, self.t["batch_size"]):
            b = make_batch(pairs, index, self.vocabs, self.device)
            limit = max_lengths(b["lengths"], self.option("max_length_ratio"), self.option("max_length_extra"))
            if beam == 1 and n_best == 1:
                results = [[h] for h in greedy(self.model, b["src"], b["lengths"], max_len=limit, **ids)]
            else:
                results = beam_search(self.model, b["src"], b["lengths"], max_len=limit, beam=max(beam, n_best),
                                      alpha=self.option("length_penalty"), n_best=n_best, **ids)
            for i, r in zip(index, results):
                out[i] = r
        return out

    def state(self) -> dict:
        return self.vocabs.state()

    # ---- decode for users: translations, one sentence's attention, example tables
    def translate(self, sentences: list[str], beam: int | None = None, n_best: int = 1) -> list[dict]:
        """Raw sentences -> one dict each: {"source", "translations": [{"text", "score"}, ...]} best first."""
        _check_sizes(beam, n_best)
        d = self.data
        tokens = [parallel.tokenize(parallel.normalize(s, d["normalize"]), d["source_tokenizer"], d["lowercase"])
                  for s in sentences]
        empty = [i + 1 for i, t in enumerate(tokens) if not t]
        if empty:
            raise DataError(f"sentence {empty[0]} is empty: nothing to translate")
        self.decode_options = {"beam_size": beam}
        results = self.decode(tokens, n_best)
        vocab, tok = self.vocabs.tgt, d["target_tokenizer"]
        return [{"source": s, "translations": [{"text": parallel.detokenize(vocab.decode(h.tokens), tok),
                                                "score": round(h.score, 4)} for h in hyps]}
                for s, hyps in zip(sentences, results)]

    @staticmethod
    def format_translation(result: dict, n_best: int = 1) -> str:
        if n_best == 1:
            return result["translations"][0]["text"]
        return "\n".join(f"{t['score']:.4f}\t{t['text']}" for t in result["translations"])

    def attention_map(self, split: str, index: int = 0, beam: int | None = None) -> dict:
        """The translation of sentence `index` of a split with its attention weights: greedy decoding,
        or with `beam` the best hypothesis of beam search (trainer.length_penalty) and its own rows."""
        _check_sizes(beam, 1)
        pairs = self.splits.get(split)
        if pairs is None or not 0 <= index < len(pairs):
            raise DataError(f"no sentence {index} in the {split} split")
        if self.model.attention_kind == "none":
            raise RunError("this run has model.attention = none: there are no attention weights to plot")
        b = make_batch(pairs, [index], self.vocabs, self.device)
        tgt = self.vocabs.tgt
        limit = max_lengths(b["lengths"], self.t["max_length_ratio"], self.t["max_length_extra"])[0]
        ids = dict(bos=tgt.stoi[BOS], eos=tgt.stoi[EOS], banned=[tgt.pad_id, tgt.stoi[BOS]])
        if beam is None:
            (hyp,) = greedy(self.model, b["src"], b["lengths"], max_len=[limit], keep_attention=True, **ids)
        else:
            ((hyp,),) = beam_search(self.model, b["src"], b["lengths"], max_len=[limit], beam=beam,
                                    alpha=self.option("length_penalty"), keep_attention=True, **ids)
        ended = len(hyp.attention) > len(hyp.tokens)  # the last row is <eos>'s
        out = hyp.tokens + [tgt.stoi[EOS]] * ended
        return {"source": pairs.src[index], "output": tgt.decode(out), "weights": hyp.attention,
                "decoder": "greedy" if beam is None else f"beam {beam}"}

    @staticmethod
    def metric_tables(metrics: dict) -> list:
        """A few decoded examples beside their references, for `rnncli eval`."""
        from rich.table import Table

        table = Table(title="examples")
        table.add_column("hypothesis")
        table.add_column("reference")
        for example in metrics.get("examples", []):
            table.add_row(example["hypothesis"], example["reference"])
        return [table]


@torch.no_grad()
def teacher_forced_scores(model: Seq2Seq, pairs: Pairs, vocabs: Vocabs, batch_size: int, device) -> dict:
    """Loss (nats per target token, <eos> included), perplexity, token accuracy under teacher forcing."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    pad = vocabs.tgt.pad_id
    for index in sorted_batches(pairs, batch_size):
        b = make_batch(pairs, index, vocabs, device)
        logits, _ = model(b["src"], b["lengths"], b["tgt_in"])
        gold = b["tgt_out"]
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), gold.reshape(-1), ignore_index=pad,
                                 reduction="sum").item()
        real = gold != pad
        correct += int(((logits.argmax(-1) == gold) & real).sum())
        count += int(real.sum())
    loss = total / count
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "token_accuracy": correct / count, "tokens": count}


def decoding_scores(hyps: list[list[int]], refs: list[list[str]], tgt_vocab: Vocab, tokenizer: str) -> dict:
    """Corpus BLEU and chrF (sacrebleu, detokenized text) and exact match of decoded token lists."""
    hyp_text = [parallel.detokenize(tgt_vocab.decode(h), tokenizer) for h in hyps]
    return translation_metrics(hyp_text, [parallel.detokenize(r, tokenizer) for r in refs])


def build(cfg: dict, device: torch.device) -> Seq2SeqTask:
    """Config -> data, vocabularies, model and task, ready to train."""
    splits = load_splits(cfg["data"])
    if "val" not in splits:
        raise DataError("the corpus has no validation pairs (check data.split / data.val)")
    metric = cfg["trainer"]["best_metric"]
    vocabs = Vocabs.build(splits["train"], cfg["data"]["min_freq"], cfg["data"]["shared_vocab"])
    model = build_model(vocabs, cfg["model"]).to(device)
    return Seq2SeqTask(model, vocabs, splits, cfg["data"], cfg["trainer"], device, metric, METRICS[metric])


def restore(cfg: dict, task_state: dict, model_state: dict, device: torch.device) -> Seq2SeqTask:
    """Rebuild a trained task from a checkpoint: saved vocabularies and weights, data on demand."""
    vocabs = Vocabs.from_state(task_state)
    model = build_model(vocabs, cfg["model"]).to(device)
    model.load_state_dict(model_state)
    metric = cfg["trainer"]["best_metric"]
    return Seq2SeqTask(model, vocabs, {}, cfg["data"], cfg["trainer"], device, metric, METRICS[metric])


# --------------------------------------------------------------------------- decode
def _check_sizes(beam: int | None, n_best: int) -> None:
    if beam is not None and beam < 1:
        raise ArgumentError("beam", f"must be >= 1 (got {beam})")
    if n_best < 1:
        raise ArgumentError("n_best", f"must be >= 1 (got {n_best})")
    if beam is not None and n_best > beam:
        raise ArgumentError("n_best", f"must not exceed the beam size ({beam}): a beam of K gives at most K "
                            f"translations (got {n_best})")
