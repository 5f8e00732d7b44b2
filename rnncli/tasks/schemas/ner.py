"""Config keys (`SCHEMA`) and cross-key rules (`check`) of task `ner` (rnncli/tasks/ner.py), without
torch."""
from __future__ import annotations

from typing import Callable

from rnncli.data import tags as tagging
from rnncli.errors import ConfigError
from rnncli.schema import Field, recurrent_model_fields


def _chars_on(cfg: dict) -> bool:
    return cfg["model"].get("char_features") != "none"


SCHEMA = {
    "data": {
        "train": Field("str", None, path=True, help="training CoNLL file"),
        "val": Field("str", None, path=True, help="validation CoNLL file (picks the best checkpoint)"),
        "test": Field("str", None, path=True, help="test CoNLL file", nullable=True),
        "token_column": Field("int", 0, "column of the token (0-based; negative counts from the end)"),
        "tag_column": Field("int", -1, "column of the entity tag (0-based; negative counts from the end)"),
        "encoding": Field("str", "utf-8", "text encoding of the files"),
        "scheme": Field("str", None, "tag scheme of the files (null: detect from the training file)",
                        nullable=True, choices=tagging.SCHEMES),
        "train_scheme": Field("str", "iob2", "tag scheme the model learns and predicts in",
                              choices=tagging.SCHEMES),
        "lowercase": Field("bool", False, "lowercase words for the word vocabulary (characters keep case)"),
        "min_freq": Field("int", 1, "training-set count a word needs to get its own embedding", min=1),
        "vectors": Field("str", None, path=True, help="pretrained word vectors, GloVe / word2vec text format",
                         nullable=True),
    },
    "model": {
        "embedding_dim": Field("int", 100, "word embedding size (with data.vectors: the vectors' size)", min=1),
        "freeze_embeddings": Field("bool", False, "keep pretrained vectors fixed",
                                   when=lambda c: c["data"].get("vectors") is not None,
                                   when_text="data.vectors is set"),
        "word_dropout": Field("float", 0.0, "replace training words by <unk> with this probability", min=0,
                              max=1),
        "char_features": Field("str", "none", "character-level word representation",
                               choices=("none", "lstm", "cnn")),
        "char_embedding_dim": Field("int", 25, "character embedding size", min=1, when=_chars_on,
                                    when_text="model.char_features is lstm or cnn"),
        "char_hidden_size": Field("int", 25, "char BiLSTM units per direction, or CNN filters", min=1,
                                  when=_chars_on, when_text="model.char_features is lstm or cnn"),
        "char_kernel_size": Field("int", 3, "char CNN window", min=1,
                                  when=lambda c: c["model"].get("char_features") == "cnn",
                                  when_text="model.char_features is cnn"),
        "crf": Field("bool", False, "linear-chain CRF output layer with Viterbi decoding"),
        "constraints": Field("bool", True, "forbid invalid tag transitions in the CRF",
                             when=lambda c: c["model"].get("crf") is True, when_text="model.crf is true"),
        **recurrent_model_fields(bidirectional=True),
    },
}


def check(cfg: dict, where: Callable[..., str]) -> None:
    d = cfg["data"]
    for split in ("train", "val"):
        if d[split] is None:
            raise ConfigError(f"{where('data', split)}: data.{split} is required: a CoNLL file")
    if d["token_column"] == d["tag_column"]:
        raise ConfigError(f"{where('data', 'tag_column')}: data.token_column and data.tag_column are both "
                          f"{d['tag_column']}; the token and the tag need their own columns")
