"""Training throughput of every cell through rnncli's trainer, against a plain PyTorch loop.

For each (batch size, hidden size) it times a hand-written `nn.LSTM` char-LM training loop
(embedding -> 2-layer nn.LSTM -> linear, Adam, clipping, stateful truncated BPTT) and the same
model shape with every zoo cell trained through `rnncli.api.train`. Each measurement skips
`--steps` warm-up steps, then times `--steps` steps. Variants alternate round by round
(`--rounds`), so slow drifts of the machine hit all of them alike; the table shows the median
tokens/s and the median of the per-round ratios to the plain loop.

    python benchmarks/char_lm_throughput.py                  # the full table (~15 min on 2 cores)
    python benchmarks/char_lm_throughput.py --quick          # batch 32, hidden 256 only

The corpus is tiny shakespeare when ../shared/data is present, else data/demo.txt repeated.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from statistics import median

import torch
import yaml
from torch import nn

from rnncli import api
from rnncli.data.text import BPTTWindows, CharVocab, batchify, read_text

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
CELLS = ("rnn", "lstm", "gru", "peephole_lstm", "cifg_lstm")
EMBEDDING, LAYERS, BPTT = 64, 2, 100


def corpus(tmp: Path) -> Path:
    if SHAKESPEARE.exists():
        return SHAKESPEARE
    path = tmp / "corpus.txt"
    path.write_text(read_text(REPO / "data" / "demo.txt") * 40)
    return path


def plain_loop(text: str, batch: int, hidden: int, steps: int) -> float:
    """Tokens/s of a hand-written nn.LSTM training loop (the baseline)."""
    torch.manual_seed(0)
    vocab = CharVocab.from_texts(text)
    windows = BPTTWindows(batchify(vocab.encode(text), batch), BPTT)
    emb, lstm, head = nn.Embedding(len(vocab), EMBEDDING), nn.LSTM(EMBEDDING, hidden, LAYERS, batch_first=True), nn.Linear(hidden, len(vocab))
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    state, tokens, start = None, 0, 0.0
    for i in range(2 * steps):
        if i == steps:
            tokens, start = 0, time.perf_counter()
        x, y = windows[i]
        out, state = lstm(emb(x), state)
        loss = nn.functional.cross_entropy(head(out).reshape(-1, len(vocab)), y.reshape(-1))
        state = tuple(s.detach() for s in state)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        tokens += x.numel()
    return tokens / (time.perf_counter() - start)


def through_trainer(path: Path, tmp: Path, cell: str, batch: int, hidden: int, steps: int) -> float:
    """Tokens/s of rnncli's trainer for one cell: the second logging window of 2 x steps."""
    cfg = {
        "task": "char_lm",
        "data": {"path": str(path), "split": [0.98, 0.01, 0.01]},
        "model": {"cell": cell, "embedding_dim": EMBEDDING, "hidden_size": hidden, "num_layers": LAYERS},
        "trainer": {"batch_size": batch, "bptt": BPTT, "max_steps": 2 * steps, "epochs": None,
                    "log_every": steps, "val_every": 10**9, "device": "cpu"},
        "run": {"dir": str(tmp / "runs"), "name": f"{cell}-{batch}-{hidden}", "overwrite": True},
    }
    config = tmp / "bench.yaml"
    config.write_text(yaml.safe_dump(cfg))
    api.train(str(config), show_progress=False)
    records = [json.loads(line) for line in (tmp / "runs" / cfg["run"]["name"] / "metrics.jsonl").open()]
    return [r for r in records if r["split"] == "train"][1]["tokens_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps (after as many warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are shown")
    parser.add_argument("--quick", action="store_true", help="batch 32, hidden 256 only")
    parser.add_argument("--sizes", default="32x256,64x256,32x512,64x512", help="BATCHxHIDDEN list")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = "32x256" if args.quick else args.sizes
    settings = [tuple(int(v) for v in size.split("x")) for size in sizes.split(",")]
    cells = args.cells.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = corpus(tmp)
        text = read_text(path)[: 2 * args.steps * BPTT * 64 + 10]
        print(f"corpus {path.name}; bptt {BPTT}, embedding {EMBEDDING}, {LAYERS} layers, "
              f"{args.threads} threads, torch {torch.__version__}")
        print(f"{args.rounds} rounds x {args.steps} timed steps; medians")
        print(f"{'batch':>5} {'hidden':>6} {'model':<22} {'tokens/s':>10} {'ratio':>7}")
        for batch, hidden in settings:
            rows = {"plain nn.LSTM loop": [], **{f"rnncli {cell}": [] for cell in cells}}
            for _ in range(args.rounds):
                base = plain_loop(text, batch, hidden, args.steps)
                rows["plain nn.LSTM loop"].append((base, 1.0))
                for cell in cells:
                    tps = through_trainer(path, tmp, cell, batch, hidden, args.steps)
                    rows[f"rnncli {cell}"].append((tps, tps / base))
            for name, values in rows.items():
                tps, ratio = median([v[0] for v in values]), median([v[1] for v in values])
                print(f"{batch:>5} {hidden:>6} {name:<22} {tps:>10.0f} {ratio:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
