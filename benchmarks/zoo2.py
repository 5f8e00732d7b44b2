"""Zoo II training throughput: the layer-normalised LSTM, recurrent dropout and zoneout, against
nn.LSTM in the same process.

Model: embedding 64 -> 2-layer recurrent stack -> linear head over 65 symbols, cross-entropy, Adam,
T = 100, random tokens (throughput does not depend on the text). Per (batch, hidden) every variant
runs `--steps` warm-up steps then `--steps` timed steps, round after round in turn (`--rounds`), so
drifts of a shared machine hit all alike; the table shows median tokens/s and the median per-round
ratio to its baseline (nn.LSTM, or for the regularisers the same cell without them).

    python benchmarks/zoo2.py                   # 32x256x2 and 64x512x2 (~10 min on 2 busy cores)
    python benchmarks/zoo2.py --quick           # 32x256x2 only
    python benchmarks/zoo2.py --shape 64x512    # one shape
"""

from __future__ import annotations

import argparse
import json
import time
from statistics import median

import torch
from torch import nn

from rnncli.nn.recurrent import Recurrent

VOCAB, EMBEDDING, LAYERS, T = 65, 64, 2, 100
# name -> (Recurrent keyword arguments or None for plain nn.LSTM, baseline name)
VARIANTS = {
    "nn.LSTM": (None, "nn.LSTM"),
    "ln_lstm": ({"cell": "ln_lstm"}, "nn.LSTM"),
    "lstm (rnncli)": ({"cell": "lstm"}, "nn.LSTM"),
    "lstm + recurrent_dropout 0.25": ({"cell": "lstm", "recurrent_dropout": 0.25}, "lstm (rnncli)"),
    "lstm bptt (no dropout)": ({"cell": "lstm", "impl": "bptt"}, "lstm (rnncli)"),
    "lstm + zoneout 0.1": ({"cell": "lstm", "zoneout": 0.1}, "lstm (rnncli)"),
    "ln_lstm + recurrent_dropout 0.25": ({"cell": "ln_lstm", "recurrent_dropout": 0.25}, "ln_lstm"),
}


class Model(nn.Module):
    def __init__(self, kwargs: dict | None, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, EMBEDDING)
        if kwargs is None:
            self.rnn = nn.LSTM(EMBEDDING, hidden, LAYERS, batch_first=True)
        else:
            self.rnn = Recurrent(input_size=EMBEDDING, hidden_size=hidden, num_layers=LAYERS, **kwargs)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, x):
        return self.head(self.rnn(self.emb(x))[0])


def tokens_per_s(model: Model, opt, x, y, steps: int) -> float:
    """Median-free: `steps` warm-up steps, then wall time of `steps` timed ones."""
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
    models = {name: Model(kwargs, hidden).train() for name, (kwargs, _) in VARIANTS.items()}
    opts = {name: torch.optim.Adam(m.parameters(), 1e-3) for name, m in models.items()}
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name in VARIANTS:
            runs[name].append(tokens_per_s(models[name], opts[name], x, y, steps))
    rows = []
    for name, (_, base) in VARIANTS.items():
        ratios = [a / b for a, b in zip(runs[name], runs[base])]
        rows.append({"batch": batch, "hidden": hidden, "variant": name, "baseline": base,
                     "tokens_per_s": median(runs[name]), "ratio": median(ratios),
                     "path": "torch" if models[name].rnn.__class__ is nn.LSTM else models[name].rnn.path()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="32x256 only")
    parser.add_argument("--shape", action="append", help="BATCHxHIDDEN, e.g. 64x512 (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shapes = [(32, 256)] if args.quick else [(32, 256), (64, 512)]
    if args.shape:
        shapes = [tuple(int(v) for v in shape.split("x")) for shape in args.shape]
    rows = [r for b, h in shapes for r in measure(b, h, args.steps, args.rounds)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'shape':>10}  {'variant':<34} {'path':>8} {'tokens/s':>10}  ratio to baseline")
    for r in rows:
        print(f"{r['batch']:>4}x{r['hidden']}x{LAYERS}  {r['variant']:<34} {r['path']:>8} {r['tokens_per_s']:>10,.0f}"
              f"  {r['ratio']:.2f}x {r['baseline']}")


if __name__ == "__main__":
    main()
