"""What watching a run costs: TensorBoard at validation and the health line's gradient-flow probe.

Builds the char-LM of a config (default configs/demo.yaml) and times, round by round, alternating:

    step     one training step (rnncli.training.step.TrainingStep, what the trainer runs)
    probe    the health probe at validation: g_t = ‖∂L/∂h_t‖ and gate values over PROBE_SEQUENCES
             validation sequences (rnncli/training/health_line.py), what the health line and
             TensorBoard share
    tb       everything TensorBoard adds at a validation (TensorBoardWriter.validation: sample text,
             gate histograms, gradient-flow image; the probe included) plus one record of scalars

and prints the medians, and the training tokens/s with validation every `--val-every` steps, with
neither, with the health line and with TensorBoard (validation itself, which every run pays, left out).

    python benchmarks/watch_cost.py                     # configs/demo.yaml
    python benchmarks/watch_cost.py --val-every 100 --rounds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median

import torch

from rnncli.config import load_config
from rnncli.tasks import task_spec
from rnncli.training.health_line import ProbeAtValidation
from rnncli.training.step import TrainingStep
from rnncli.training.tensorboard import TensorBoardWriter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="configs/demo.yaml")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per round")
    parser.add_argument("--val-every", type=int, default=500, help="the config's default validation interval")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, ["trainer.device=cpu"])
    torch.manual_seed(0)
    task = task_spec(cfg["task"]).module.build(cfg, torch.device("cpu"))
    step = TrainingStep(task, cfg["trainer"], torch.device("cpu"))
    batches = task.train_batches(0)
    tokens = batches[0][0].numel()
    with tempfile.TemporaryDirectory() as tmp:
        writer = TensorBoardWriter(Path(tmp), samples=lambda: task.samples("val"),
                                   probe=ProbeAtValidation(task.model.rnn, task.probe))
        times = {"step": [], "probe": [], "tb": []}
        for r in range(args.rounds):
            carry, start = None, time.perf_counter()
            for k in range(args.steps):
                carry = step(batches[k % len(batches)], carry).carry
            times["step"].append((time.perf_counter() - start) / args.steps)
            start = time.perf_counter()
            ProbeAtValidation(task.model.rnn, task.probe).at(r)
            times["probe"].append(time.perf_counter() - start)
            start = time.perf_counter()
            writer.write({"step": r, "split": "val", "loss": 1.0})
            times["tb"].append(time.perf_counter() - start)
        writer.close()
    s, p, t = (median(times[k]) for k in ("step", "probe", "tb"))
    n = args.val_every
    plain = tokens / s
    print(f"{args.config}: {tokens} tokens per step, {torch.get_num_threads()} threads, medians of {args.rounds}")
    print(f"  training step          {1000 * s:8.1f} ms   {plain:10,.0f} tokens/s")
    print(f"  health probe           {1000 * p:8.1f} ms   per validation")
    print(f"  TensorBoard validation {1000 * t:8.1f} ms   per validation (probe included)")
    for name, extra in (("health line", p), ("TensorBoard", t)):
        rate = tokens * n / (n * s + extra)
        print(f"  with {name:<12} every {n} steps: {rate:10,.0f} tokens/s ({rate / plain:.4f} of plain)")


if __name__ == "__main__":
    main()
