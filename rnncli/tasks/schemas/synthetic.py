"""Config keys (`SCHEMA`) and cross-key rules (`check`) of the synthetic tasks `adding` and
`copy_memory` (rnncli/tasks/synthetic.py): the same keys for both, without torch."""
from __future__ import annotations

from typing import Callable

from rnncli.schema import Field, recurrent_model_fields


def data_fields(T: int) -> dict[str, Field]:
    """The data keys both synthetic tasks share (the section names no files)."""
    return {
        "T": Field("int", T, "sequence length / delay the model must bridge", min=2),
        "steps_per_epoch": Field("int", 500, "training batches per epoch (each freshly generated)", min=1),
        "val_size": Field("int", 1000, "examples in the fixed validation set", min=1),
        "test_size": Field("int", 1000, "examples in the fixed test set", min=1),
    }


def model_fields() -> dict[str, Field]:
    fields = recurrent_model_fields(bidirectional=False)
    fields["hidden_size"] = Field("int", 128, "hidden units per layer", min=1)
    return fields


SCHEMA = {"data": data_fields(T=100), "model": model_fields()}


def check(cfg: dict, where: Callable[..., str]) -> None:
    """No cross-key rules: each synthetic key stands alone."""
