"""Layer-normalised LSTM / GRU training throughput: the hand-written BPTT (rnncli/nn/bptt_ln.py)
and the autograd loop it replaces, against nn.LSTM in the same process.

The model and timing are benchmarks/zoo2.py's (embedding 64 -> 2-layer stack -> linear head over 65
symbols, cross-entropy, Adam, T = 100): per shape every variant runs `--steps` warm-up and `--steps`
timed steps, round after round in turn (`--rounds`); the table shows median tokens/s and the median
per-round ratio to nn.LSTM.

    python benchmarks/ln_paths.py                    # 32x256x2 and 64x512x2
    python benchmarks/ln_paths.py --shape 32x256     # one shape
    python benchmarks/ln_paths.py --autograd         # also the autograd loops (slow)
    python benchmarks/ln_paths.py --no-pool          # also the BPTT with fresh buffers every step

`--no-pool` times the hand-written BPTT without its buffer pool (rnncli/nn/buffers.py), so each
step allocates its large buffers afresh as before the pool (page faults and all).
"""

from __future__ import annotations

import argparse
from statistics import median

import torch
from zoo2 import LAYERS, T, VOCAB, Model, tokens_per_s

from rnncli.nn import bptt_ln
from rnncli.nn.buffers import BufferPool

FAST = {"nn.LSTM": None, "ln_lstm bptt": {"cell": "ln_lstm"}, "ln_gru bptt": {"cell": "ln_gru"}}
SLOW = {"ln_lstm autograd": {"cell": "ln_lstm", "impl": "autograd"},
        "ln_gru autograd": {"cell": "ln_gru", "impl": "autograd"}}
NO_POOL = {"ln_lstm (no pool)": {"cell": "ln_lstm"}, "ln_gru (no pool)": {"cell": "ln_gru"}}
POOLS = {"on": bptt_ln.POOL, "off": BufferPool(min_bytes=1 << 62)}  # "off" pools nothing


def measure(batch: int, hidden: int, steps: int, rounds: int, variants: dict) -> list[tuple]:
    torch.manual_seed(0)
    x, y = torch.randint(VOCAB, (batch, T)), torch.randint(VOCAB, (batch, T))
    models = {name: Model(kwargs, hidden).train() for name, kwargs in variants.items()}
    opts = {name: torch.optim.Adam(m.parameters(), 1e-3) for name, m in models.items()}
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name in variants:
            bptt_ln.POOL = POOLS["off" if name in NO_POOL else "on"]
            runs[name].append(tokens_per_s(models[name], opts[name], x, y, steps))
    rows = []
    for name in variants:
        ratio = median(a / b for a, b in zip(runs[name], runs["nn.LSTM"]))
        path = "torch" if variants[name] is None else models[name].rnn.path()
        rows.append((f"{batch}x{hidden}x{LAYERS}", name, path, median(runs[name]), ratio))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shape", action="append", help="BATCHxHIDDEN, e.g. 64x512 (repeatable)")
    parser.add_argument("--autograd", action="store_true", help="also time the autograd loops")
    parser.add_argument("--no-pool", action="store_true", help="also time the BPTT without its buffer pool")
    args = parser.parse_args()
    shapes = [(32, 256), (64, 512)]
    if args.shape:
        shapes = [tuple(int(v) for v in shape.split("x")) for shape in args.shape]
    variants = {**FAST, **(NO_POOL if args.no_pool else {}), **(SLOW if args.autograd else {})}
    print(f"{'shape':>10}  {'variant':<18} {'path':>8} {'tokens/s':>10}  ratio to nn.LSTM")
    for b, h in shapes:
        for shape, name, path, tps, ratio in measure(b, h, args.steps, args.rounds, variants):
            print(f"{shape:>10}  {name:<18} {path:>8} {tps:>10,.0f}  {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
