"""Config keys (`SCHEMA`) and cross-key rules (`check`) of task `char_lm` (rnncli/tasks/char_lm.py),
without torch."""
from __future__ import annotations

from typing import Callable

from rnncli.errors import ConfigError
from rnncli.schema import Field, check_split, recurrent_model_fields


def _has_path(cfg: dict) -> bool:
    return cfg["data"].get("path") is not None


# data.path is cut into data.split: a data.val / data.test beside it would be ignored, so it is an error
_SPLIT_FILES = dict(when=lambda c: not _has_path(c), when_text="data.path is not set (data.path is cut by data.split)")
SCHEMA = {
    "data": {
        "path": Field("str", None, path=True, help="one text file, cut in order into `split` fractions", nullable=True),
        "split": Field(
            "floats", [0.9, 0.05, 0.05], "train/val/test fractions of `path`, taken in order", min=0, max=1,
            when=_has_path, when_text="data.path is set",
        ),
        "train": Field("str", None, path=True, help="training text file (instead of `path`)", nullable=True),
        "val": Field("str", None, path=True, help="validation text file", nullable=True, **_SPLIT_FILES),
        "test": Field("str", None, path=True, help="test text file", nullable=True, **_SPLIT_FILES),
        "encoding": Field("str", "utf-8", "text encoding of the files"),
    },
    "model": {
        "embedding_dim": Field("int", 64, "character embedding size", min=1),
        **recurrent_model_fields(bidirectional=False),
    },
    "trainer": {
        "bptt": Field("int", 100, "truncated-BPTT window length in characters", min=1),
    },
}


def check(cfg: dict, where: Callable[..., str]) -> None:
    """Cross-key rules the per-key schema cannot express."""
    d = cfg["data"]
    if (d["path"] is None) == (d["train"] is None):
        raise ConfigError(f"{where('data')}: set either data.path (one file with data.split) or data.train "
                          f"(+ data.val, data.test), not both and not neither")
    if d["path"] is not None:
        check_split(d["split"], where("data", "split"), SCHEMA["data"]["split"].default)
    elif d["val"] is None:
        raise ConfigError(f"{where('data', 'train')}: data.train is set, so data.val must be set too")
