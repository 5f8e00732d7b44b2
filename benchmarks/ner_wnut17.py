"""Train the two WNUT-17 NER configs and print dev / test span F1 and training time.

    flock /tmp/rnncli-cpu.lock .venv/bin/python benchmarks/ner_wnut17.py [--threads 1] [--set k=v ...] [CONFIG ...]

Needs ../shared/data/wnut17/ (see configs/ner/wnut17_*.yaml). Runs go to runs/bench-ner/.
Span F1 is entity-level, conlleval default mode (and strict mode), in percent.
"""

from __future__ import annotations

import argparse
import time

import torch

from rnncli import api

CONFIGS = ("configs/ner/wnut17_bilstm.yaml", "configs/ner/wnut17_bilstm_crf.yaml")


def run(config: str, overrides: list[str]) -> dict:
    sets = ["run.dir=runs/bench-ner", "run.overwrite=true", *overrides]
    start = time.perf_counter()
    summary = api.train(config, sets, show_progress=False)
    seconds = time.perf_counter() - start
    run_dir = summary["run_dir"]
    dev, test = api.evaluate(run_dir, "val"), api.evaluate(run_dir, "test")
    return {"config": config, "epochs": summary["epochs"], "status": summary["status"], "seconds": seconds,
            "dev": dev, "test": test}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: small models, shared cores)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override for both configs")
    parser.add_argument("configs", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    print(f"{'config':40} {'epochs':>6} {'time':>8} {'dev F1':>7} {'test F1':>7} {'test P':>7} {'test R':>7} "
          f"{'strict':>7}")
    for config in args.configs:
        r = run(config, args.overrides)
        d, t = r["dev"], r["test"]
        print(f"{config:40} {r['epochs']:6.1f} {r['seconds'] / 60:7.1f}m {100 * d['f1']:7.2f} {100 * t['f1']:7.2f} "
              f"{100 * t['precision']:7.2f} {100 * t['recall']:7.2f} {100 * t['strict_f1']:7.2f}", flush=True)


if __name__ == "__main__":
    main()
