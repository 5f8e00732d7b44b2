"""fp32 against bf16 mixed precision: loss curves and tokens/s of a short char-LM run per cell.

Each cell trains twice from the same seed on the same data (tiny shakespeare when ../shared/data
is present, else data/demo.txt): `trainer.precision: fp32`, then `bf16`. The table shows the
training loss every `--every` steps, the final validation loss and tokens/s.

    python benchmarks/precision_curves.py                      # needs a CPU with native bf16 (or CUDA)
    python benchmarks/precision_curves.py --allow-emulated     # any CPU: checks the numbers, not speed

`rnncli train` refuses bf16 on a CPU without AVX-512 BF16 / AMX, where torch emulates it many
times slower than fp32; `--allow-emulated` lifts that check inside this script only.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from rnncli import api
from rnncli.training import precision

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def run(cell: str, prec: str, corpus: Path, tmp: Path, a) -> dict:
    cfg = {"task": "char_lm", "data": {"path": str(corpus), "split": [0.9, 0.05, 0.05]},
           "model": {"cell": cell, "embedding_dim": 32, "hidden_size": a.hidden, "num_layers": 2},
           "trainer": {"batch_size": 32, "bptt": 64, "lr": 3e-3, "max_steps": a.steps, "epochs": None,
                       "log_every": a.every, "val_every": a.steps, "precision": prec, "device": "cpu"},
           "run": {"dir": str(tmp), "name": f"{cell}-{prec}", "overwrite": True}}
    path = tmp / f"{cell}-{prec}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    api.train(str(path), show_progress=False)
    records = [json.loads(line) for line in open(tmp / f"{cell}-{prec}" / "metrics.jsonl")]
    train = [r for r in records if r["split"] == "train"]
    return {"losses": [r["loss"] for r in train], "val": [r["loss"] for r in records if r["split"] == "val"][-1],
            "tokens_per_s": sorted(r["tokens_per_s"] for r in train[1:])[len(train[1:]) // 2]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", default="lstm,peephole_lstm,cifg_lstm")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=40)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--allow-emulated", action="store_true", help="run bf16 even where it is emulated")
    a = p.parse_args()
    if a.allow_emulated:
        precision.hardware_support = lambda prec, device: (True, "emulated, allowed by --allow-emulated")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = SHAKESPEARE if SHAKESPEARE.exists() else REPO / "data" / "demo.txt"
        print(f"corpus {corpus.name}; 2 x {a.hidden}, batch 32, bptt 64, {a.steps} steps; "
              f"train loss (nats/char) every {a.every} steps")
        for cell in a.cells.split(","):
            for prec in ("fp32", "bf16"):
                r = run(cell, prec, corpus, tmp, a)
                curve = " ".join(f"{x:.3f}" for x in r["losses"])
                print(f"{cell:<14} {prec:<5} train {curve} | val {r['val']:.3f} | {r['tokens_per_s']:,.0f} tokens/s",
                      flush=True)


if __name__ == "__main__":
    main()
