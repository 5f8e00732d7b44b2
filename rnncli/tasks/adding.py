"""Task `adding`: the adding problem (Hochreiter & Schmidhuber 1997, experiment 4; the form of
Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of ReLUs").

    input   T steps of (value, marker): value ~ U[0, 1]; marker = 1 at exactly two steps,
            one in the first half [0, T/2) and one in the second half [T/2, T), else 0

                t:       0     1    ...   a   ...  T/2  ...   b   ...  T-1
                value:  .31   .92   ...  .58  ...  .07  ...  .44  ...  .65
                marker:  0     0    ...   1   ...   0   ...   1   ...   0
                target: .58 + .44 = 1.02

    model   (B, T, 2) -> Recurrent (any zoo cell) -> linear head on the LAST step -> (B,)
    loss    mean squared error
    metrics mse; chance_mse = the MSE of always predicting 1 (the mean target) on the same
            set, ≈ 1/6 (the variance of a sum of two U[0,1]); mse_vs_chance = mse / chance_mse;
            accuracy = fraction within 0.04 of the target (the threshold Le et al. use)
"""

from __future__ import annotations

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

TOLERANCE = 0.04


# --------------------------------------------------------------------------- data
def make_examples(n: int, T: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n examples: inputs (n, T, 2) = (value, marker) per step, targets (n,) = sum of marked values."""
    values = torch.rand(n, T, generator=gen)  # (n, T)
    half = T // 2
    first = torch.randint(0, half, (n,), generator=gen)  # marker in [0, T/2)
    second = torch.randint(half, T, (n,), generator=gen)  # marker in [T/2, T)
    markers = torch.zeros(n, T)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = (values * markers).sum(1)  # (n,)
    return torch.stack([values, markers], dim=-1), targets


def chance_mse(targets: torch.Tensor) -> float:
    """MSE of the input-blind prediction 1 (the expected target) on these targets."""
    return float(((targets - 1.0) ** 2).mean())


# --------------------------------------------------------------------------- the task
@dataclass
class AddingTask:
    model: SequenceModel
    data: dict  # the config's data section: T, steps_per_epoch, val_size, test_size
    batch_size: int
    seed: int
    splits: dict  # split -> (inputs (N, T, 2), targets (N,)) on the device
    device: torch.device
    metric: str = "mse"
    higher_is_better: bool = False

    def load_data(self, data_file: str | None = None) -> None:
        no_data_file("adding", data_file)
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
        prediction = self.model(x)[:, -1, 0]  # (B,): the head on the last step
        return F.mse_loss(prediction, y), None, x.shape[0] * x.shape[1]

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        if split not in self.splits:
            raise DataError(f"the adding task has no '{split}' split (it has: {', '.join(self.splits)})")
        self.model.eval()
        x, y = self.splits[split]
        prediction = torch.cat([self.model(xb)[:, -1, 0] for xb in x.split(self.batch_size)])  # (N,)
        mse = float(F.mse_loss(prediction, y))
        chance = chance_mse(y)
        accuracy = float(((prediction - y).abs() < TOLERANCE).float().mean())
        return {"loss": mse, "mse": mse, "chance_mse": chance, "mse_vs_chance": mse / chance,
                "accuracy": accuracy, "examples": len(y)}

    @torch.no_grad()
    def example_scores(self, split: str) -> ExampleScores:
        """Per example: squared error and within-tolerance."""
        if split not in self.splits:
            raise DataError(f"the adding task has no '{split}' split (it has: {', '.join(self.splits)})")
        self.model.eval()
        x, y = self.splits[split]
        prediction = torch.cat([self.model(xb)[:, -1, 0] for xb in x.split(self.batch_size)])  # (N,)
        error = (prediction - y).double()
        ones = torch.ones_like(error)
        return ExampleScores("example", fingerprint(self.data["T"], y.tolist()), {
            "mse": ExampleStats(torch.stack([error**2, ones], 1).tolist(), "ratio", False),
            "accuracy": ExampleStats(torch.stack([(error.abs() < TOLERANCE).double(), ones], 1).tolist(), "ratio",
                                     True)})

    def state(self) -> dict:
        return {"T": self.data["T"]}

    def probe(self, batch_size: int) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """For `rnncli diagnose`: recurrent inputs (B, T, 2) and loss(outputs (B, T, H))."""
        x, y = (t[:batch_size] for t in self.splits["val"])
        return x, lambda out: F.mse_loss(self.model.head(out[:, -1])[:, 0], y)


def build(cfg: dict, device: torch.device) -> AddingTask:
    d, t = cfg["data"], cfg["trainer"]
    model = build_model(2, 1, cfg["model"]).to(device)
    splits = eval_splits(make_examples, d, t["seed"], device)
    return AddingTask(model, d, t["batch_size"], t["seed"], splits, device)


def restore(cfg: dict, task_state: dict, model_state: dict, device: torch.device) -> AddingTask:
    model = build_model(2, 1, cfg["model"]).to(device)
    model.load_state_dict(model_state)
    d, t = cfg["data"], cfg["trainer"]
    return AddingTask(model, d, t["batch_size"], t["seed"], {}, device)
