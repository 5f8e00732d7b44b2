"""Train the two Tatoeba French -> English configs and print test BLEU / chrF (greedy and beam 5).

    flock /tmp/rnncli-cpu.lock .venv/bin/python benchmarks/seq2seq_tatoeba.py [--threads 1] [--set k=v ...]

Needs ../shared/data/tatoeba-eng-fra/fra.txt (see configs/seq2seq/tatoeba_*.yaml). Runs go to
runs/bench-seq2seq/. BLEU and chrF are sacrebleu corpus scores on detokenized, lowercased text;
both configs use the same seeded test split. `time` is training time (validation included).
"""

from __future__ import annotations

import argparse
import time

import torch

from rnncli import api

CONFIGS = ("configs/seq2seq/tatoeba_fra_eng_gru.yaml", "configs/seq2seq/tatoeba_fra_eng_gru_attention.yaml")


def run(config: str, overrides: list[str], beams: list[int]) -> dict:
    sets = ["run.dir=runs/bench-seq2seq", "run.overwrite=true", *overrides]
    start = time.perf_counter()
    summary = api.train(config, sets, show_progress=False)
    seconds = time.perf_counter() - start
    run_dir = summary["run_dir"]
    scores = {}
    for beam in beams:
        t0 = time.perf_counter()
        scores[beam] = api.evaluate(run_dir, "test", beam=beam)
        scores[beam]["decode_s"] = time.perf_counter() - t0
    return {"config": config, "epochs": summary["epochs"], "seconds": seconds,
            "best_val_bleu": summary["best_val_bleu"] if "best_val_bleu" in summary else None, "test": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these sizes)")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override for both configs")
    parser.add_argument("configs", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    print(f"{'config':52} {'epochs':>6} {'train':>7} {'val BLEU':>8} "
          + " ".join(f"{'BLEU b' + str(b):>8} {'chrF b' + str(b):>8}" for b in args.beams))
    for config in args.configs:
        r = run(config, args.overrides, args.beams)
        cells = " ".join(f"{r['test'][b]['bleu']:8.2f} {r['test'][b]['chrf']:8.2f}" for b in args.beams)
        print(f"{config:52} {r['epochs']:6.1f} {r['seconds'] / 60:6.1f}m {r['best_val_bleu'] or 0:8.2f} {cells}",
              flush=True)
        for b in args.beams:
            t = r["test"][b]
            print(f"  beam {b}: exact match {t['exact_match']:.3f}, token accuracy {t['token_accuracy']:.3f}, "
                  f"ppl {t['ppl']:.2f}, {t['sentences']} sentences decoded in {t['decode_s']:.1f}s", flush=True)


if __name__ == "__main__":
    main()
