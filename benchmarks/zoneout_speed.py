"""Zoneout on the hand-written BPTT: training tokens/s of an LSTM with zoneout against the same cell
on the same path without it, and against nn.LSTM, in one process.

Model (as benchmarks/zoo2.py): embedding 64 -> 2-layer LSTM stack -> linear head over 65 symbols,
cross-entropy, Adam, T = 100, random tokens. Per (batch, hidden) every variant runs `--steps` warm-up
steps then `--steps` timed steps, round after round in turn (`--rounds`), so drifts of a shared
machine hit all alike; the table shows median tokens/s and the median per-round ratios.

    python benchmarks/zoneout_speed.py                  # 32x256x2 and 64x512x2
    python benchmarks/zoneout_speed.py --shape 32x256   # one shape
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import torch
from torch import nn

from rnncli.nn.recurrent import Recurrent

VOCAB, EMBEDDING, LAYERS, T = 65, 64, 2, 100
VARIANTS = {  # name -> Recurrent keyword arguments, or None for plain nn.LSTM
    "nn.LSTM": None,
    "lstm bptt": {"cell": "lstm", "impl": "bptt"},
    "lstm bptt + zoneout 0.1": {"cell": "lstm", "zoneout": 0.1},
    "lstm autograd + zoneout 0.1": {"cell": "lstm", "zoneout": 0.1, "impl": "autograd"},
}
SAME_CELL = "lstm bptt"  # the same cell and path without zoneout


class Model(nn.Module):
    def __init__(self, kwargs: dict | None, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMBEDDING)
        if kwargs is None:
            self.rnn = nn.LSTM(EMBEDDING, hidden, LAYERS, batch_first=True)
        else:
            self.rnn = Recurrent(input_size=EMBEDDING, hidden_size=hidden, num_layers=LAYERS, **kwargs)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, x):  # (B, T) -> (B, T, VOCAB)
        return self.head(self.rnn(self.emb(x))[0])


def tokens_per_s(model: Model, opt, x, y, steps: int) -> float:
    """`steps` warm-up training steps, then the wall time of `steps` timed ones."""
    start = 0.0
    for i in range(2 * steps):
        if i == steps:
            start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * x.numel() / (time.perf_counter() - start)


def measure(batch: int, hidden: int, steps: int, rounds: int) -> list[dict]:
    torch.manual_seed(0)
    x, y = torch.randint(VOCAB, (batch, T)), torch.randint(VOCAB, (batch, T))
    models = {name: Model(kwargs, hidden).train() for name, kwargs in VARIANTS.items()}
    opts = {name: torch.optim.Adam(m.parameters(), 1e-3) for name, m in models.items()}
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name in VARIANTS:
            runs[name].append(tokens_per_s(models[name], opts[name], x, y, steps))
    rows = []
    for name in VARIANTS:
        path = "torch" if isinstance(models[name].rnn, nn.LSTM) else models[name].rnn.path()
        rows.append({"shape": f"{batch}x{hidden}x{LAYERS}", "variant": name, "path": path,
                     "tokens_per_s": median(runs[name]),
                     "vs_same": median(a / b for a, b in zip(runs[name], runs[SAME_CELL])),
                     "vs_lstm": median(a / b for a, b in zip(runs[name], runs["nn.LSTM"]))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shape", action="append", help="BATCHxHIDDEN, e.g. 64x512 (repeatable)")
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shape] if args.shape else [(32, 256), (64, 512)]
    print(f"{'shape':>9}  {'variant':<28} {'path':>8} {'tokens/s':>9}  {'vs lstm bptt':>12}  {'vs nn.LSTM':>10}")
    for batch, hidden in shapes:
        for r in measure(batch, hidden, args.steps, args.rounds):
            print(f"{r['shape']:>9}  {r['variant']:<28} {r['path']:>8} {r['tokens_per_s']:>9,.0f}  "
                  f"{r['vs_same']:>11.2f}x  {r['vs_lstm']:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
