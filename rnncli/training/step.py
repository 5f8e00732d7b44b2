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

Several pieces per step (torchrun ranks and/or trainer.accumulate, rnncli/training/distributed.py):

    global batch ──task.shard──► parts = ranks x K pieces, each with its loss count
    this rank: for its K pieces: loss_k x (count_k / global count) x ranks ─► backward
               (DDP's no_sync on the first K-1: gradients add up locally, the last one all-reduces)
    the global loss, token count and the stop request are summed over ranks (one tiny all-reduce),
    so every rank agrees on divergence and on stopping
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch

from rnncli.errors import TrainingError
from rnncli.training import distributed, precision


class Diverged(TrainingError):
    """The loss or the gradient norm is not finite; the trainer adds which checkpoint is still good."""


class StepResult(NamedTuple):
    loss: float  # the batch's loss before the update
    grad_norm: float  # global gradient norm before clipping
    carry: Any  # the task's carried state for the next batch
    tokens: int  # tokens in the batch (all ranks)
    stop: bool = False  # some rank was asked to stop (Ctrl-C, SIGTERM): every rank stops here


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
    one batch, with the optimizer and (fp16) loss scaler that a checkpoint saves.

    With `parts` > 1 (ranks x accumulation steps) the carry is a list, one per local piece."""

    def __init__(self, task, t: dict, device: torch.device):
        self.task, self.model, self.t, self.device = task, task.model, t, device
        self.scaler = precision.grad_scaler(t["precision"], device)  # fp16 only
        self.optimizer = build_optimizer(self.model.parameters(), t)
        ctx = distributed.context()
        self.rank, self.world, self.accumulate = ctx.rank, ctx.world, t.get("accumulate", 1)
        self.parts = self.world * self.accumulate
        self.ddp = distributed.wrap(self.model)

    def initial_carry(self):
        carry = self.task.initial_carry()
        return carry if self.parts == 1 else [carry] * self.accumulate

    def __call__(self, batch, carry, stop: Callable[[], bool] = lambda: False) -> StepResult:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self.parts == 1:
            loss_value, carry, n_tokens = self._backward(batch, carry, 1.0)
            asked = stop()
        else:
            loss_value, carry, n_tokens, asked = self._backward_pieces(batch, carry, stop)
        if not math.isfinite(loss_value):
            raise Diverged(f"loss became {loss_value}")
        if self.scaler is None:
            grad_norm = self.clip()
            if not math.isfinite(grad_norm):
                raise Diverged(f"gradient norm became {grad_norm}")
            self.optimizer.step()
        else:  # fp16: the scaler skips steps whose gradients overflowed
            self.scaler.unscale_(self.optimizer)
            grad_norm = self.clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return StepResult(loss_value, grad_norm, carry, n_tokens, asked)

    def _backward(self, piece, carry, weight: float):
        """Forward and backward of one piece; its loss counts `weight` times in the gradient."""
        with precision.autocast(self.t["precision"], self.device):
            loss, carry, n_tokens = self.task.train_step(piece, carry)
        scaled = loss if weight == 1.0 else loss * weight
        (scaled if self.scaler is None else self.scaler.scale(scaled)).backward()  # every rank, even on NaN
        return loss.item(), carry, n_tokens

    def _backward_pieces(self, batch, carries: list, stop: Callable[[], bool]):
        pieces = self.task.shard(batch, self.parts)  # [(piece, count)] in part order
        total = sum(count for _, count in pieces)
        mine = pieces[self.rank * self.accumulate:(self.rank + 1) * self.accumulate]
        loss_sum, tokens, new_carries = 0.0, 0, []
        model, self.task.model = self.task.model, self.ddp or self.model  # the forward runs through DDP
        try:
            for k, (piece, count) in enumerate(mine):
                with distributed.no_sync(self.ddp, last=k == len(mine) - 1):
                    value, carry, n = self._backward(piece, carries[k], count / total * self.world)
                loss_sum += value * count / total
                tokens += n if count else 0
                new_carries.append(carry)
        finally:
            self.task.model = model
        loss_sum, tokens, asked = distributed.all_sum([loss_sum, float(tokens), float(stop())])
        return loss_sum, new_carries, int(tokens), asked > 0

    def clip(self) -> float:
        """Clip as configured; return the global gradient norm before clipping."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.t["clip_grad_norm"]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else math.inf)
        if self.t["clip_grad_value"] is not None:
            torch.nn.utils.clip_grad_value_(params, self.t["clip_grad_value"])
        return float(norm)
