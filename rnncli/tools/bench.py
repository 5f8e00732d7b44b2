"""`rnncli bench CONFIG`: which implementation each recurrent layer runs on, and how fast the
config trains, evaluates and generates on this machine. Writes no run directory.

    $ rnncli bench configs/char_lm/peephole_lstm.yaml --steps 10
    rnn: 2 layers: hand-written BPTT (rnncli.nn.bptt) (custom cell: no torch kernel; fused C++ steps)
    train      15,210 tokens/s   (10 timed steps after 2 warm-up steps)
    eval       52,800 tokens/s   (forward only, no gradients)
    generate    2,950 chars/s    (batch 1, 300 characters)

A timed training step is the trainer's own `TrainingStep` (rnncli/training/step.py): autocast,
backward with the fp16 loss scaler, clipping by norm and by value, the optimizer update.
"""
from __future__ import annotations

import time

import torch

from rnncli.config import load_config
from rnncli.errors import ArgumentError
from rnncli.tasks import task_spec
from rnncli.tasks.base import SamplesText
from rnncli.training import precision
from rnncli.training.report import fast_paths
from rnncli.training.step import TrainingStep
from rnncli.training.trainer import seed_everything, select_device


def bench(config_path: str, overrides: list[str] = (), steps: int = 10, warmup: int = 2,
          generate_chars: int = 300) -> dict:
    """Measure training and eval tokens/s (and generation chars/s for text samplers) of a config."""
    if steps < 1:
        raise ArgumentError("steps", f"must be >= 1 (got {steps})")
    if warmup < 0:
        raise ArgumentError("warmup", f"must be >= 0 (got {warmup})")
    cfg = load_config(config_path, overrides, check_files=True)
    seed_everything(cfg["trainer"]["seed"])
    device = select_device(cfg["trainer"]["device"])
    prec = cfg["trainer"]["precision"]
    precision.check(prec, device, f"{config_path}: trainer.precision")
    spec = task_spec(cfg["task"])
    task = spec.module.build(cfg, device)
    result = {"config": config_path, "device": str(device), "precision": prec, "threads": torch.get_num_threads(),
              "paths": fast_paths(task.model, device, prec)}
    batches = _batches(task, warmup + steps)
    result["train_tokens_per_s"] = _time_train(task, cfg["trainer"], batches, warmup, device)
    result["eval_tokens_per_s"] = _time_eval(task, batches, warmup, device, prec)
    if spec.can(SamplesText):
        start = time.perf_counter()
        task.generate(task.vocab.chars[0], generate_chars, seed=0)
        result["generate_chars_per_s"] = generate_chars / (time.perf_counter() - start)
    result["timed_steps"], result["warmup_steps"] = steps, warmup
    return result


def _batches(task, count: int) -> list:
    """`count` training batches, cycling through the epoch if it is shorter."""
    epoch = task.train_batches(0)
    return [epoch[i % len(epoch)] for i in range(count)]


def _time_train(task, t: dict, batches: list, warmup: int, device) -> float:
    """Training steps exactly as the trainer runs them, at the config's (peak) learning rate."""
    train_step = TrainingStep(task, t, device)

    def step(batch, carry):
        result = train_step(batch, carry)
        return result.carry, result.tokens

    return _tokens_per_s(task, batches, warmup, device, step)


def _time_eval(task, batches: list, warmup: int, device, prec: str) -> float:
    """Forward passes with the loss, no gradients, in eval mode."""
    task.model.eval()

    @torch.no_grad()
    def eval_step(batch, carry):
        with precision.autocast(prec, device):
            _, carry, n = task.train_step(batch, carry)
        return carry, n

    return _tokens_per_s(task, batches, warmup, device, eval_step)


def _tokens_per_s(task, batches: list, warmup: int, device, step) -> float:
    """Run `step(batch, carry) -> (carry, tokens)` over the batches; time all but the warm-up."""
    carry, tokens, start = task.initial_carry(), 0, None
    for index, batch in enumerate(batches):
        if index == warmup:
            _sync(device)
            start, tokens = time.perf_counter(), 0
        carry, n = step(batch, carry)
        tokens += n
    _sync(device)
    return tokens / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
