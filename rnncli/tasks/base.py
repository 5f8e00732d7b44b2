"""The contract between a task and the trainer."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch


class Task(Protocol):
    """What `rnncli.training.trainer.Trainer` needs from a task.

    Batches must be deterministic given the config's seed and the epoch number, so that a
    resumed run can skip to the saved batch index and see exactly the batches it would have.
    """

    model: torch.nn.Module
    metric: str  # validation metric that picks the best checkpoint, e.g. "loss"
    higher_is_better: bool

    def num_train_batches(self) -> int: ...

    def train_batches(self, epoch: int) -> Sequence[Any]: ...

    def initial_carry(self) -> Any:
        """State carried from batch to batch within an epoch (None when nothing is carried)."""

    def train_step(self, batch: Any, carry: Any) -> tuple[torch.Tensor, Any, int]:
        """Forward one batch: (mean loss to backpropagate, new carry, tokens in the batch)."""

    def evaluate(self, split: str) -> dict[str, float]: ...

    def state(self) -> dict:
        """Plain data (vocabularies, ...) saved in checkpoints to rebuild the task at eval time."""
