"""Data-parallel scaling on this machine: 1 process x all cores' threads against N processes x
(cores / N) threads (torchrun through `rnncli train --nproc N`, gloo on the CPU).

For each config, rounds alternate the two set-ups; each round trains `--steps` steps and reads
training tokens/s from metrics.jsonl (log records after the first, so start-up is excluded).
Prints medians, the ratio N-process / 1-process, and the scaling efficiency (the ratio over the
ideal, which on a fixed number of cores is 1.0: the same cores, split differently).

    python benchmarks/distributed_scaling.py [--steps 60] [--rounds 3] [--nproc 2] [CONFIG ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = ["configs/char_lm/lstm.yaml", "configs/ner/wnut17_bilstm_crf.yaml"]


def tokens_per_s(run_dir: Path) -> float:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in records if r["split"] == "train"][1:]
    return statistics.median(rates)


def train(config: str, steps: int, nproc: int, out: Path, name: str) -> float:
    cores = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // nproc))}
    args = [sys.executable, "-m", "rnncli", "train", config, "--quiet",
            "--set", f"trainer.max_steps={steps}", "--set", "trainer.epochs=null",
            "--set", f"trainer.log_every={max(1, steps // 6)}", "--set", f"trainer.val_every={10 * steps}",
            "--set", f"run.dir={out}", "--set", f"run.name={name}"]
    if nproc > 1:
        args += ["--nproc", str(nproc)]
    subprocess.run(args, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return tokens_per_s(out / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=DEFAULT)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=2)
    a = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} cores; 1 process x {cores} threads vs {a.nproc} processes x {max(1, cores // a.nproc)} threads; "
          f"{a.steps} steps, {a.rounds} alternating rounds, medians")
    with tempfile.TemporaryDirectory() as tmp:
        for config in a.configs:
            one, many = [], []
            for r in range(a.rounds):
                one.append(train(config, a.steps, 1, Path(tmp), f"{Path(config).stem}-one{r}"))
                many.append(train(config, a.steps, a.nproc, Path(tmp), f"{Path(config).stem}-many{r}"))
            m1, mn = statistics.median(one), statistics.median(many)
            print(f"{config:40s} 1 proc {m1:10,.0f} tokens/s   {a.nproc} procs {mn:10,.0f} tokens/s   "
                  f"ratio {mn / m1:.2f}   efficiency {mn / m1:.0%}")


if __name__ == "__main__":
    main()
