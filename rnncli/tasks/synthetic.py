"""Shared pieces of the synthetic long-dependency tasks (`adding`, `copy_memory`).

Their data is generated on the fly, never read from files:

    train  batch `index` of epoch `epoch` = make_batch(Generator(seed, epoch, index))
           -> the same batches after a resume, and fresh ones every epoch
    val    `val_size` examples from Generator(seed, VAL), fixed for the whole run
    test   `test_size` examples from Generator(seed, TEST)

The model is the same for both: inputs (B, T, I) -> Recurrent (any zoo cell) -> a linear head
(rnncli/models/sequence.py).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from rnncli.errors import ArgumentError
from rnncli.models.sequence import SequenceModel
from rnncli.schema import recurrent_kwargs
from rnncli.tasks.schemas.synthetic import check, data_fields, model_fields  # noqa: F401  (re-exported)

# Stream ids that keep the evaluation sets apart from every training batch.
VAL_STREAM, TEST_STREAM = -1, -2


def generator(seed: int, stream: int, index: int = 0) -> torch.Generator:
    """A CPU generator for (seed, stream, index); stream = epoch >= 0, or VAL/TEST_STREAM."""
    mixed = (seed * 1_000_003 + (stream + 3) * 10_007 + index * 7_919) % (2**62)
    return torch.Generator().manual_seed(mixed)


class GeneratedBatches:
    """A lazy, indexable sequence of training batches: batch i is generated when asked for."""

    def __init__(self, make: Callable[[torch.Generator], tuple], seed: int, epoch: int, length: int):
        self.make, self.seed, self.epoch, self.length = make, seed, epoch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.make(generator(self.seed, self.epoch, index))


def shard_rows(batch: tuple[torch.Tensor, torch.Tensor], parts: int) -> list[tuple[tuple, int]]:
    """A generated batch (x, y) cut into `parts` interleaved row sets, each counted by its rows
    (the losses are means over rows); a part left empty runs one row with count 0."""
    x, y = batch
    rows = list(range(x.shape[0]))
    out = []
    for p in range(parts):
        index = rows[p::parts]
        pick = torch.tensor(index or rows[:1], device=x.device)
        out.append(((x[pick], y[pick]), len(index)))
    return out


def build_model(input_size: int, output_size: int, m: dict) -> SequenceModel:
    return SequenceModel(input_size=input_size, output_size=output_size, **recurrent_kwargs(m))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def no_data_file(task: str, data_file: str | None) -> None:
    """A synthetic task generates its evaluation data; it cannot score a file."""
    if data_file is not None:
        raise ArgumentError("data_file", f"cannot be used: the {task} task generates its data, it cannot score "
                            f"a file")


def eval_splits(make_examples, data: dict, seed: int, device) -> dict:
    """The fixed seeded val and test sets: split -> (inputs, targets) on the device."""
    splits = {}
    for split, stream in (("val", VAL_STREAM), ("test", TEST_STREAM)):
        x, y = make_examples(data[f"{split}_size"], data["T"], generator(seed, stream))
        splits[split] = (x.to(device), y.to(device))
    return splits
