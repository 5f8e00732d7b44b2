"""Training speed of minGRU / minLSTM (parallel scan and sequential loop) against `nn.GRU`.

One training step = forward of a 2-layer stack over x (B, T, 64), a mean-square loss on its
outputs, backward and an Adam step. For each size (batch x hidden: 32x256, 64x512) and each T
(100, 400) it times

    nn.GRU                      torch's kernel, the baseline
    mingru scan / minlstm scan  rnncli.nn.Recurrent, impl='scan' (what 'auto' runs): on the CPU the
                                sequential linear scan with its hand-written backward
    mingru log / minlstm log    the same, with the scan in its parallel log-space form (the form
                                'auto' runs off the CPU), forced here on the CPU
    mingru loop / minlstm loop  rnncli.nn.Recurrent, impl='autograd' (the sequential reference)

Variants alternate round by round (`--rounds`), so slow drifts of the machine hit all alike; the
table shows median tokens/s (B*T per second of training steps) and the median of the per-round
ratios to nn.GRU, so you can see how the ratio grows with T (the scan is parallel over time).

    python benchmarks/min_cells.py             # the full table (~10 min on 2 busy cores)
    python benchmarks/min_cells.py --quick     # 32x256 only, T=100 and 400
"""
from __future__ import annotations

import argparse
import time
from statistics import median

import torch
from torch import nn

from rnncli.nn import scan
from rnncli.nn.recurrent import Recurrent

EMBEDDING, LAYERS = 64, 2
VARIANTS = ("nn.GRU", "mingru scan", "mingru log", "mingru loop", "minlstm scan", "minlstm log", "minlstm loop")


def build(variant: str, hidden: int) -> nn.Module:
    if variant == "nn.GRU":
        return nn.GRU(EMBEDDING, hidden, LAYERS, batch_first=True)
    cell, path = variant.split()
    return Recurrent(cell, EMBEDDING, hidden, num_layers=LAYERS, impl="autograd" if path == "loop" else "scan")


def tokens_per_s(model: nn.Module, x: torch.Tensor, steps: int) -> float:
    """Training tokens/s over `steps` timed steps after one warm-up step."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = 0.0
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        out, _ = model(x)
        loss = out.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * x.shape[0] * x.shape[1] / (time.perf_counter() - start)


def measure(batch: int, hidden: int, steps_t: int, rounds: int, steps: int) -> dict[str, list[float]]:
    torch.manual_seed(0)
    x = torch.randn(batch, steps_t, EMBEDDING)
    models = {v: build(v, hidden) for v in VARIANTS}
    speeds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):  # alternate: each round times every variant once
        for v in VARIANTS:
            scan.FORMS["cpu"] = "log" if v.endswith(" log") else "linear"
            speeds[v].append(tokens_per_s(models[v], x, steps))
    scan.FORMS["cpu"] = "linear"
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    parser.add_argument("--quick", action="store_true", help="batch 32, hidden 256 only")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [(32, 256)] if args.quick else [(32, 256), (64, 512)]
    print(f"2-layer stacks, input {EMBEDDING}, {args.rounds} rounds x {args.steps} steps, "
          f"{torch.get_num_threads()} threads; tokens/s (median), ratio to nn.GRU (median of rounds)")
    print(f"{'B x H':>9} {'T':>4}  " + "  ".join(f"{v:>20}" for v in VARIANTS))
    for batch, hidden in sizes:
        for steps_t in (100, 400):
            speeds = measure(batch, hidden, steps_t, args.rounds, args.steps)
            base = speeds["nn.GRU"]
            cells = []
            for v in VARIANTS:
                ratio = median(s / b for s, b in zip(speeds[v], base))
                cells.append(f"{median(speeds[v]):>10,.0f} ({ratio:5.2f}x)")
            print(f"{batch:>4} x{hidden:>4} {steps_t:>4}  " + "  ".join(f"{c:>20}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
