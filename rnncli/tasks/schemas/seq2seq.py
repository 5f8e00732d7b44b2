"""Config keys (`SCHEMA`) and cross-key rules (`check`) of task `seq2seq` (rnncli/tasks/seq2seq.py),
without torch."""
from __future__ import annotations

from typing import Callable

from rnncli.data import parallel
from rnncli.errors import ConfigError
from rnncli.models.names import ATTENTIONS
from rnncli.schema import Field, check_split, recurrent_model_fields

# validation metrics that may pick best.pt -> higher is better
METRICS = {"bleu": True, "chrf": True, "exact_match": True, "token_accuracy": True, "loss": False}


def _one_corpus(cfg: dict) -> bool:
    return cfg["data"].get("path") is not None or cfg["data"].get("source_path") is not None


# keys that would be silently ignored by some corpus layouts apply only to the others
_SPLIT_FILES = dict(when=lambda c: not _one_corpus(c),
                    when_text="data.train is set (data.path and data.source_path are cut by data.split)")
_TSV = dict(when=lambda c: c["data"].get("source_path") is None,
            when_text="the corpus is a TSV (data.path or data.train), not data.source_path + data.target_path")
SCHEMA = {
    "data": {
        "path": Field("str", None, path=True, help="one TSV corpus, cut by `split`", nullable=True),
        "source_path": Field("str", None, path=True, help="source side of a two-file corpus (line-aligned)",
                             nullable=True),
        "target_path": Field("str", None, path=True, help="target side of a two-file corpus", nullable=True),
        "train": Field("str", None, path=True, help="training TSV (instead of path)", nullable=True),
        "val": Field("str", None, path=True, help="validation TSV", nullable=True, **_SPLIT_FILES),
        "test": Field("str", None, path=True, help="test TSV", nullable=True, **_SPLIT_FILES),
        "split": Field("floats", [0.8, 0.1, 0.1], "train/val/test fractions after a seeded shuffle", min=0, max=1,
                       when=_one_corpus, when_text="data.path or data.source_path is set"),
        "split_seed": Field("int", 0, "seed of the shuffle before the split", when=_one_corpus,
                            when_text="data.path or data.source_path is set"),
        "source_column": Field("int", 0, "TSV column of the source sentence (0-based)", min=0, **_TSV),
        "target_column": Field("int", 1, "TSV column of the target sentence (0-based)", min=0, **_TSV),
        "encoding": Field("str", "utf-8", "text encoding of the files"),
        "normalize": Field("str", "NFKC", "unicode normalisation", choices=parallel.NORMALIZATIONS),
        "lowercase": Field("bool", True, "lowercase both sides"),
        "source_tokenizer": Field("str", "word", "source tokens", choices=parallel.TOKENIZERS),
        "target_tokenizer": Field("str", "word", "target tokens", choices=parallel.TOKENIZERS),
        "max_source_len": Field("int", None, "drop pairs with longer sources (tokens)", nullable=True, min=1),
        "max_target_len": Field("int", None, "drop pairs with longer targets (tokens)", nullable=True, min=1),
        "prefixes": Field("strs", None, "keep only pairs whose `prefix_side` starts with one of these",
                          nullable=True),
        "prefix_side": Field("str", "source", "side the prefix filter looks at", choices=("source", "target")),
        "max_pairs": Field("int", None, "use only the first N pairs that pass the filters", nullable=True, min=1),
        "min_freq": Field("int", 1, "tokens seen fewer times in train become <unk>", min=1),
        "shared_vocab": Field("bool", False, "one vocabulary for both sides"),
    },
    "model": {
        "embedding_dim": Field("int", 128, "token embedding size (both sides)", min=1),
        **recurrent_model_fields(bidirectional=True),
        "attention": Field("str", "additive", "attention score", choices=ATTENTIONS),
        "input_feeding": Field("bool", False, "feed the previous attentional state to the decoder (Luong)",
                               when=lambda c: c["model"].get("attention") != "none",
                               when_text="model.attention is not none"),
        "decoder_hidden_size": Field("int", None, "decoder size (null: hidden_size)", nullable=True, min=1),
        "decoder_num_layers": Field("int", None, "decoder layers (null: num_layers)", nullable=True, min=1),
        "bridge": Field("str", "linear", "encoder final state -> decoder initial state", choices=("linear", "zeros")),
    },
    "trainer": {
        "teacher_forcing": Field("float", 1.0, "probability of feeding the gold previous token", min=0, max=1),
        "teacher_forcing_decay": Field("float", 0.0, "subtracted from teacher_forcing each epoch", min=0, max=1),
        "teacher_forcing_min": Field("float", 0.0, "floor of the decayed ratio", min=0, max=1),
        "best_metric": Field("str", "bleu", "validation metric for best.pt / early stopping", choices=tuple(METRICS)),
        "beam_size": Field("int", 1, "beam used by validation decoding (1: greedy)", min=1),
        "length_penalty": Field("float", 0.0, "GNMT length penalty alpha", min=0,
                                when=lambda c: c["trainer"]["beam_size"] > 1, when_text="trainer.beam_size > 1"),
        "max_length_ratio": Field("float", 2.0, "max output tokens = ratio * source tokens + extra", min=0),
        "max_length_extra": Field("int", 5, "see max_length_ratio", min=0),
    },
}


def check(cfg: dict, where: Callable[..., str]) -> None:
    d, m = cfg["data"], cfg["model"]
    sources = [d["path"] is not None, d["source_path"] is not None or d["target_path"] is not None,
               d["train"] is not None]
    if sum(sources) != 1:
        raise ConfigError(f"{where('data')}: set exactly one of data.path (a TSV), data.source_path + "
                          f"data.target_path (two aligned files) or data.train (+ data.val, data.test)")
    if (d["source_path"] is None) != (d["target_path"] is None):
        raise ConfigError(f"{where('data', 'source_path')}: set both data.source_path and data.target_path")
    if d["train"] is not None and d["val"] is None:
        raise ConfigError(f"{where('data', 'train')}: data.train is set, so data.val must be set too")
    if _one_corpus(cfg):
        check_split(d["split"], where("data", "split"), SCHEMA["data"]["split"].default)
    if d["shared_vocab"] and d["source_tokenizer"] != d["target_tokenizer"]:
        raise ConfigError(f"{where('data', 'shared_vocab')}: data.shared_vocab needs the same tokenizer on "
                          f"both sides (source: {d['source_tokenizer']}, target: {d['target_tokenizer']})")
    enc_size = m["hidden_size"] * (2 if m["bidirectional"] else 1)
    dec_size = m["decoder_hidden_size"] or m["hidden_size"]
    if m["attention"] == "dot" and enc_size != dec_size:
        raise ConfigError(f"{where('model', 'attention')}: model.attention = dot needs the decoder size "
                          f"({dec_size}) to equal the encoder output size ({enc_size} = hidden_size x directions); "
                          f"use general or additive, or set model.decoder_hidden_size: {enc_size}")
