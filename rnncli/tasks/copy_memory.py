"""Task `copy_memory`: the copy-memory problem (Hochreiter & Schmidhuber 1997; the form of
Arjovsky, Shah & Bengio 2016, "Unitary Evolution Recurrent Neural Networks").

    alphabet  0 = blank, 1..8 = symbols, 9 = delimiter ("go")
    input     10 symbols drawn from 1..8, T-1 blanks, the delimiter, 10 blanks  (T + 20 steps)
    target    T + 10 blanks, then the 10 symbols in order                       (T + 20 steps)

                t:      0 .. 9      10 .. T+8     T+9     T+10 .. T+19
                input:  s1 .. s10   blanks        9       blanks
                target: blanks      blanks        blank   s1 .. s10

    model   one-hot (B, T+20, 10) -> Recurrent (any zoo cell) -> linear head per step -> logits
    loss    cross-entropy per step, averaged over all T + 20 steps
    metrics loss; chance_loss = 10 ln 8 / (T + 20), the loss of the best memoryless strategy
            (blank until the delimiter, then uniform over the 8 symbols); loss_vs_chance;
            copy_accuracy = fraction of the 10 recalled symbols predicted right (chance 1/8)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from rnncli.errors import DataError
from rnncli.metrics import ExampleScores, ExampleStats, fingerprint
from rnncli.models.sequence import SequenceModel
from rnncli.tasks.synthetic import (
    GeneratedBatches,
    build_model,
    eval_splits,
    no_data_file,
    shard_rows,
)
from rnncli.tasks.schemas.synthetic import SCHEMA, check  # noqa: F401  (the task contract)

BLANK, DELIMITER = 0, 9
NUM_SYMBOLS, COPY_LENGTH, NUM_CLASSES = 8, 10, 10


def chance_loss(T: int) -> float:
    """Per-step cross-entropy of the memoryless strategy: 10 steps at ln 8, T + 10 at 0."""
    return COPY_LENGTH * math.log(NUM_SYMBOLS) / (T + 2 * COPY_LENGTH)


# --------------------------------------------------------------------------- data
def make_examples(n: int, T: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n examples: inputs (n, T+20) and targets (n, T+20), both class ids in 0..9."""
    symbols = torch.randint(1, NUM_SYMBOLS + 1, (n, COPY_LENGTH), generator=gen)  # (n, 10)
    inputs = torch.full((n, T + 2 * COPY_LENGTH), BLANK, dtype=torch.long)
    targets = torch.full_like(inputs, BLANK)
    inputs[:, :COPY_LENGTH] = symbols
    inputs[:, T + COPY_LENGTH - 1] = DELIMITER  # after T - 1 blanks
    targets[:, -COPY_LENGTH:] = symbols
    return inputs, targets


def one_hot(ids: torch.Tensor) -> torch.Tensor:
    """(B, L) ids -> (B, L, 10) floats: the model's input."""
    return F.one_hot(ids, NUM_CLASSES).float()


# --------------------------------------------------------------------------- the task
@dataclass
class CopyMemoryTask:
    model: SequenceModel
    data: dict  # the config's data section: T, steps_per_epoch, val_size, test_size
    batch_size: int
    seed: int
    splits: dict  # split -> (inputs (N, L), targets (N, L)) on the device
    device: torch.device
    metric: str = "loss"
    higher_is_better: bool = False

    def load_data(self, data_file: str | None = None) -> None:
        no_data_file("copy_memory", data_file)
        self.splits.update(eval_splits(make_examples, self.data, self.seed, self.device))

    def num_train_batches(self) -> int:
        return self.data["steps_per_epoch"]

    def train_batches(self, epoch: int) -> GeneratedBatches:
        return GeneratedBatches(self._make_batch, self.seed, epoch, self.data["steps_per_epoch"])

    def _make_batch(self, gen: torch.Generator):
        x, y = make_examples(self.batch_size, self.data["T"], gen)
        return x.to(self.device), y.to(self.device)

    def initial_carry(self):
        return None

    def shard(self, batch, parts: int):
        return shard_rows(batch, parts)

    def train_step(self, batch, carry):
        x, y = batch
        logits = self.model(one_hot(x))  # (B, L, 10)
        return F.cross_entropy(logits.reshape(-1, NUM_CLASSES), y.reshape(-1)), None, x.numel()

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        if split not in self.splits:
            raise DataError(f"the copy_memory task has no '{split}' split (it has: {', '.join(self.splits)})")
        self.model.eval()
        x, y = self.splits[split]
        total, correct = 0.0, 0
        for xb, yb in zip(x.split(self.batch_size), y.split(self.batch_size)):
            logits = self.model(one_hot(xb))  # (b, L, 10)
            total += float(F.cross_entropy(logits.reshape(-1, NUM_CLASSES), yb.reshape(-1), reduction="sum"))
            recalled = logits[:, -COPY_LENGTH:].argmax(-1)  # (b, 10)
            correct += int((recalled == yb[:, -COPY_LENGTH:]).sum())
        loss = total / y.numel()
        chance = chance_loss(self.data["T"])
        return {"loss": loss, "chance_loss": chance, "loss_vs_chance": loss / chance,
                "copy_accuracy": correct / (len(y) * COPY_LENGTH), "examples": len(y)}

    @torch.no_grad()
    def example_scores(self, split: str) -> ExampleScores:
        """Per example: summed loss over its steps, and the recalled symbols that are right (of 10)."""
        if split not in self.splits:
            raise DataError(f"the copy_memory task has no '{split}' split (it has: {', '.join(self.splits)})")
        self.model.eval()
        x, y = self.splits[split]
        loss, right = [], []
        for xb, yb in zip(x.split(self.batch_size), y.split(self.batch_size)):
            logits = self.model(one_hot(xb))  # (b, L, 10)
            loss.append(F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").double().sum(1))  # (b,)
            right.append((logits[:, -COPY_LENGTH:].argmax(-1) == yb[:, -COPY_LENGTH:]).double().sum(1))
        steps = torch.full((len(y),), float(y.size(1)), dtype=torch.float64)
        return ExampleScores("example", fingerprint(self.data["T"], y.tolist()), {
            "loss": ExampleStats(torch.stack([torch.cat(loss), steps], 1).tolist(), "ratio", False),
            "copy_accuracy": ExampleStats(torch.stack([torch.cat(right), steps.new_full(steps.shape, COPY_LENGTH)],
                                                      1).tolist(), "ratio", True)})

    def state(self) -> dict:
        return {"T": self.data["T"]}

    def probe(self, batch_size: int) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """For `rnncli diagnose`: recurrent inputs (B, L, 10) and loss(outputs (B, L, H))."""
        x, y = (t[:batch_size] for t in self.splits["val"])
        return one_hot(x), lambda out: F.cross_entropy(
            self.model.head(out).reshape(-1, NUM_CLASSES), y.reshape(-1))


def build(cfg: dict, device: torch.device) -> CopyMemoryTask:
    d, t = cfg["data"], cfg["trainer"]
    model = build_model(NUM_CLASSES, NUM_CLASSES, cfg["model"]).to(device)
    splits = eval_splits(make_examples, d, t["seed"], device)
    return CopyMemoryTask(model, d, t["batch_size"], t["seed"], splits, device)


def restore(cfg: dict, task_state: dict, model_state: dict, device: torch.device) -> CopyMemoryTask:
    model = build_model(NUM_CLASSES, NUM_CLASSES, cfg["model"]).to(device)
    model.load_state_dict(model_state)
    d, t = cfg["data"], cfg["trainer"]
    return CopyMemoryTask(model, d, t["batch_size"], t["seed"], {}, device)
