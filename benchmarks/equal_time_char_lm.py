"""Quality at equal wall time on tiny shakespeare: which cell learns most in N minutes on this machine?

For each variant (a shipped char-LM config plus overrides) it measures training tokens/s with
`rnncli bench`, sets `trainer.max_steps` so that training takes `--minutes` at that rate (the cosine
schedule then anneals fully in the budget, as it would in a tuned run), trains, and reads the run's
`metrics.jsonl`. The table shows each run's validation loss at the last validation inside the budget
(`elapsed_s` <= the budget), its best validation loss, the steps it took and its wall time, so a
variant whose rate fell during the run is still compared at the same time.

    python benchmarks/equal_time_char_lm.py                      # 10 minutes per variant (~45 min)
    python benchmarks/equal_time_char_lm.py --minutes 1 --only lstm,mingru
    python benchmarks/equal_time_char_lm.py --table-only RUNS    # re-read finished runs

Run it alone on the machine (one heavy process at a time): a budget in seconds means nothing when
another process shares the cores.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rnncli import api
from rnncli.tools.bench import bench

REPO = Path(__file__).resolve().parents[1]
TOKENS_PER_STEP = 32 * 100  # the shipped char-LM configs: batch_size 32, bptt 100
VARIANTS = {  # name: (config, overrides)
    "lstm": ("configs/char_lm/lstm.yaml", []),
    "lstm + recurrent_dropout 0.2": ("configs/char_lm/lstm.yaml", ["model.recurrent_dropout=0.2"]),
    "mingru": ("configs/char_lm/mingru.yaml", []),
    "ln_lstm": ("configs/char_lm/ln_lstm.yaml", []),
}


def dir_name(variant: str) -> str:
    return "_".join(variant.replace("+", " ").split())


def steps_for(config: str, overrides: list[str], seconds: float) -> tuple[int, float]:
    rate = bench(str(REPO / config), overrides, steps=8)["train_tokens_per_s"]
    return max(1, round(seconds * rate / TOKENS_PER_STEP)), rate


def read_run(run_dir: Path, seconds: float) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    inside = [r for r in val if r["elapsed_s"] <= seconds] or val[:1]
    return {"at_budget": inside[-1]["loss"], "at_step": inside[-1]["step"], "best": min(r["loss"] for r in val),
            "steps": rows[-1]["step"], "elapsed": rows[-1]["elapsed_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--only", default=None, help="comma-separated variant names (default: all)")
    p.add_argument("--dir", default="runs/equal-time")
    p.add_argument("--table-only", action="store_true", help="read the runs in --dir, train nothing")
    args = p.parse_args()
    seconds, root = args.minutes * 60, Path(args.dir)
    names = args.only.split(",") if args.only else list(VARIANTS)
    for name in names:
        run_dir = root / dir_name(name)
        if not args.table_only:
            config, overrides = VARIANTS[name]
            steps, rate = steps_for(config, overrides, seconds)
            print(f"{name}: {rate:,.0f} tokens/s -> max_steps {steps}", flush=True)
            start = time.perf_counter()
            api.train(str(REPO / config), [*overrides, "trainer.epochs=null", f"trainer.max_steps={steps}",
                                           f"run.dir={run_dir.parent}", f"run.name={run_dir.name}",
                                           "run.overwrite=true"], show_progress=False)
            print(f"{name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"\nvalidation loss (nats/char) at {args.minutes:g} minutes of training on tiny shakespeare")
    print(f"{'variant':32} {'at budget':>10} {'(step)':>7} {'best':>8} {'steps':>6} {'train s':>8}")
    for name in names:
        run_dir = root / dir_name(name)
        r = read_run(run_dir, seconds)
        print(f"{name:32} {r['at_budget']:10.4f} {r['at_step']:7d} {r['best']:8.4f} {r['steps']:6d} {r['elapsed']:8.0f}")


if __name__ == "__main__":
    main()
