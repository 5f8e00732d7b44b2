"""Config keys (`SCHEMA`) and cross-key rules (`check`) of task `classify` (rnncli/tasks/classify.py),
without torch."""
from __future__ import annotations

from typing import Callable

from rnncli.data.tokenize import TOKENIZERS
from rnncli.errors import ConfigError
from rnncli.models.names import POOLINGS
from rnncli.schema import Field, check_split, recurrent_model_fields

FORMATS = ("tsv", "csv", "per_class")  # data.format: the readers of rnncli/data/tabular.py


def _has_path(cfg: dict) -> bool:
    return cfg["data"].get("path") is not None


def _is_table(cfg: dict) -> bool:
    return cfg["data"].get("format") != "per_class"


def _has_embeddings(cfg: dict) -> bool:
    return cfg["model"].get("embeddings") is not None


# data.path is cut into data.split: a data.val / data.test beside it would be ignored, so it is an error
_SPLIT_FILES = dict(when=lambda c: not _has_path(c), when_text="data.path is not set (data.path is cut by data.split)")
_TABLE = dict(when=_is_table, when_text="data.format is tsv or csv")
SCHEMA = {
    "data": {
        "format": Field("str", "tsv", "tsv (no quoting), csv (quoting), per_class (a file per label)",
                        choices=FORMATS),
        "path": Field("strs", None, path=True, help="file(s) cut into `split` fractions after a seeded shuffle",
                      nullable=True),
        "split": Field("floats", [0.8, 0.1, 0.1], "train/val/test fractions of `path`", min=0, max=1,
                       when=_has_path, when_text="data.path is set"),
        "split_seed": Field("int", 1234, "shuffle seed of the split (independent of trainer.seed)",
                            when=_has_path, when_text="data.path is set"),
        "train": Field("strs", None, path=True, help="training file(s) (instead of `path`)", nullable=True),
        "val": Field("strs", None, path=True, help="validation file(s)", nullable=True, **_SPLIT_FILES),
        "test": Field("strs", None, path=True, help="test file(s)", nullable=True, **_SPLIT_FILES),
        "text_column": Field("int|str", 0, "text column: 0-based index, or header name", **_TABLE),
        "label_column": Field("int|str", 1, "label column: 0-based index, or header name", **_TABLE),
        "header": Field("bool", False, "the first row names the columns", **_TABLE),
        "quoting": Field("bool", None, "csv-style quoted fields (null: true for csv, false for tsv)",
                         nullable=True, **_TABLE),
        "encoding": Field("str", "utf-8", "text encoding of the files"),
        "skip_bad_lines": Field("bool", False, "skip malformed lines with a warning instead of failing"),
        "tokenizer": Field("str", "word", "word (regex, PTB-like) or char", choices=TOKENIZERS),
        "lowercase": Field("bool", True, "lowercase before tokenizing"),
        "min_freq": Field("int", 1, "rarer training tokens become <unk>", min=1),
        "max_size": Field("int", None, "keep at most this many tokens (null: all)", nullable=True, min=1),
        "bucket": Field("bool", True, "batch sentences of similar length together (less padding)"),
    },
    "model": {
        "embedding_dim": Field("int", 100, "word embedding size (= the vectors' size with embeddings)", min=1),
        "embeddings": Field("strs", None, path=True, help="GloVe / word2vec text file(s) to start the embedding from",
                            nullable=True),
        "freeze": Field("bool", False, "keep the pretrained embedding fixed",
                        when=_has_embeddings, when_text="model.embeddings is set"),
        "pooling": Field("str", "last", "sentence vector from the recurrent outputs", choices=POOLINGS),
        "embedding_dropout": Field("float", 0.0, "dropout on the word embeddings", min=0, max=0.99),
        "word_dropout": Field("float", 0.0, "in training, replace each token by <unk> with this probability "
                              "(so <unk> learns a vector for words unseen in training)", min=0, max=0.99),
        **recurrent_model_fields(bidirectional=True),
    },
    "trainer": {
        "best_metric": Field("str", "accuracy", "validation metric that picks best.pt",
                             choices=("accuracy", "macro_f1", "loss")),
    },
}


def check(cfg: dict, where: Callable[..., str]) -> None:
    """Cross-key rules the per-key schema cannot express."""
    d = cfg["data"]
    if (d["path"] is None) == (d["train"] is None):
        raise ConfigError(f"{where('data')}: set either data.path (file(s) cut by data.split) or data.train "
                          f"(+ data.val, data.test), not both and not neither")
    if d["path"] is not None:
        check_split(d["split"], where("data", "split"), SCHEMA["data"]["split"].default)
    elif d["val"] is None:
        raise ConfigError(f"{where('data', 'train')}: data.train is set, so data.val must be set too")
    if d["format"] != "per_class":
        for key in ("text_column", "label_column"):
            if isinstance(d[key], int) and d[key] < 0:
                raise ConfigError(f"{where('data', key)}: data.{key} = {d[key]}: expected a 0-based index >= 0")
            if isinstance(d[key], str) and not d["header"]:
                raise ConfigError(f"{where('data', key)}: data.{key} = '{d[key]}' is a column name, which "
                                  f"needs data.header: true (or give a 0-based column index)")
        if d["text_column"] == d["label_column"]:
            raise ConfigError(f"{where('data', 'label_column')}: data.text_column and data.label_column are "
                              f"both {d['text_column']!r}")
