"""One optimizer step, exactly as training runs it: the trainer and `rnncli bench` share it.

    model.train()
    with autocast (trainer.precision):  loss, carry, tokens = task.train_step(batch, carry)
    loss not finite -> Diverged
    zero_grad -> backward ──────────────────────────────► clip -> optimizer.step
                 fp16: scaler.scale(loss).backward -> unscale -> clip -> scaler.step -> scaler.update
    clip:  the global gradient norm to trainer.clip_grad_norm, then each element to
           trainer.clip_grad_value (each when set); the norm before clipping is returned
    fp32 / bf16: a gradient norm that is not finite -> Diverged (fp16: the scaler skips the step)

The learning rate is the caller's: the trainer sets it per step from its schedule.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from rnncli.errors import TrainingError
from rnncli.training import precision


class Diverged(TrainingError):
    """The loss or the gradient norm is not finite; the trainer adds which checkpoint is still good."""


class StepResult(NamedTuple):
    loss: float  # the batch's loss before the update
    grad_norm: float  # global gradient norm before clipping
    carry: Any  # the task's carried state for the next batch
    tokens: int  # tokens in the batch


def build_optimizer(params, t: dict) -> torch.optim.Optimizer:
    lr, wd = t["lr"], t["weight_decay"]
    if t["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if t["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if t["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=t["momentum"], weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, momentum=t["momentum"], weight_decay=wd)


class TrainingStep:
    """`step(batch, carry) -> StepResult`: forward, backward, clipping and the optimizer update of
    one batch, with the optimizer and (fp16) loss scaler that a checkpoint saves."""

    def __init__(self, task, t: dict, device: torch.device):
        self.task, self.model, self.t, self.device = task, task.model, t, device
        self.scaler = precision.grad_scaler(t["precision"], device)  # fp16 only
        self.optimizer = build_optimizer(self.model.parameters(), t)

    def __call__(self, batch, carry) -> StepResult:
        self.model.train()
        with precision.autocast(self.t["precision"], self.device):
            loss, carry, n_tokens = self.task.train_step(batch, carry)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise Diverged(f"loss became {loss_value}")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            grad_norm = self.clip()
            if not math.isfinite(grad_norm):
                raise Diverged(f"gradient norm became {grad_norm}")
            self.optimizer.step()
        else:  # fp16: scale the loss; the scaler skips steps whose gradients overflowed
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = self.clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return StepResult(loss_value, grad_norm, carry, n_tokens)

    def clip(self) -> float:
        """Clip as configured; return the global gradient norm before clipping."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.t["clip_grad_norm"]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else math.inf)
        if self.t["clip_grad_value"] is not None:
            torch.nn.utils.clip_grad_value_(params, self.t["clip_grad_value"])
        return float(norm)
