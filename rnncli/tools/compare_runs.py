"""Paired bootstrap comparison of two runs on the same examples (`rnncli eval --compare A B`).

Both runs score the same split; each task gives per-example statistics that sum over any subset
of examples (`rnncli.metrics.ExampleScores`: sentences for span F1, segments for BLEU / chrF,
windows of characters for a char LM, examples elsewhere). The bootstrap draws R resamples of the
N example indices (with replacement, numpy's generator seeded with `seed`), the same resamples
for both runs, and computes each metric on each resample:

    delta_r = metric_B(resample r) - metric_A(resample r)        r = 1..R
    95% CI  = the 2.5th and 97.5th percentiles of delta_r
    p-value = (1 + #{ |delta_r| - mean_r |delta_r|  >=  |metric_B - metric_A| }) / (R + 1)

The p-value is sacrebleu's paired bootstrap test (Koehn 2004; Moses'
bootstrap-hypothesis-difference-significance.pl) with >= where sacrebleu has > (so two identical
runs get p = 1, not 1 / (R + 1)); for BLEU and chrF the per-resample scores are sacrebleu's own, from
its sentence statistics, so with the same seed and resamples the p-value is the one `sacrebleu
--paired-bs` reports (barring exact ties). A small p says the difference is unlikely to be resampling noise.
"""

from __future__ import annotations

from rnncli import api
from rnncli.errors import ArgumentError, RunError
from rnncli.metrics import ExampleScores, aggregate

MAX_RESAMPLES = 100_000
DEFAULT_SEED = 12345  # sacrebleu's default bootstrap seed


def compare_runs(run_a: str, run_b: str, split: str = "val", resamples: int = 1000, seed: int = DEFAULT_SEED,
                 which: str = "best") -> dict:
    """Each metric of run_a and run_b on `split`, B - A with its paired-bootstrap 95% CI and p-value."""
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise ArgumentError("resamples", f"must be between 1 and {MAX_RESAMPLES:,} (got {resamples})")
    if not 0 <= seed < 2**32:
        raise ArgumentError("seed", f"must be between 0 and 2**32 - 1 (got {seed})")
    task = _same_task(run_a, run_b)
    a, b = api.example_scores(run_a, split, which), api.example_scores(run_b, split, which)
    if a.fingerprint != b.fingerprint or len(a) != len(b):
        raise RunError(f"{run_a} and {run_b} scored different {split} data ({len(a)} vs {len(b)} {a.unit}s, "
                       f"fingerprints {a.fingerprint} vs {b.fingerprint}): a paired comparison needs the same "
                       f"examples")
    return {"runs": [run_a, run_b], "task": task, "split": split, "unit": a.unit, "examples": len(a),
            "resamples": resamples, "seed": seed, "metrics": paired_bootstrap(a, b, resamples, seed)}


def _same_task(run_a: str, run_b: str) -> str:
    spec_a, spec_b = api.task_of(run_a), api.task_of(run_b)
    for run, spec in ((run_a, spec_a), (run_b, spec_b)):
        if spec is None:
            raise RunError(f"{run}: no readable config.yaml (is it a run directory?)")
    if spec_a.name != spec_b.name:
        raise RunError(f"{run_a} is a '{spec_a.name}' run and {run_b} a '{spec_b.name}' run: a paired comparison "
                       f"needs two runs of the same task")
    return spec_a.name


def paired_bootstrap(a: ExampleScores, b: ExampleScores, resamples: int, seed: int) -> dict:
    """metric -> {a, b, difference (b - a), ci_low, ci_high, p_value, higher_is_better}."""
    import numpy as np

    n = len(a)
    index = np.random.default_rng(seed).choice(n, size=(resamples, n), replace=True)  # as sacrebleu draws them
    counts = np.stack([np.bincount(row, minlength=n) for row in index]).astype(np.float64)  # (R, N)
    out = {}
    for name, stats_a in a.metrics.items():
        stats_b = b.metrics.get(name)
        if stats_b is None:
            continue
        rows_a, rows_b = np.asarray(stats_a.rows, np.float64), np.asarray(stats_b.rows, np.float64)  # (N, K)
        score_a, score_b = (float(aggregate(stats_a.aggregate, rows.sum(0, keepdims=True))[0])
                            for rows in (rows_a, rows_b))
        delta = aggregate(stats_b.aggregate, counts @ rows_b) - aggregate(stats_a.aggregate, counts @ rows_a)  # (R,)
        low, high = np.percentile(delta, [2.5, 97.5])
        spread = np.abs(delta) - np.abs(delta).mean()
        p_value = (int((spread >= abs(score_b - score_a)).sum()) + 1) / (resamples + 1)
        out[name] = {"a": score_a, "b": score_b, "difference": score_b - score_a, "ci_low": float(low),
                     "ci_high": float(high), "p_value": p_value, "higher_is_better": stats_a.higher_is_better}
    return out


def render(result: dict):
    """The comparison as a rich table: one row per metric."""
    from rich.table import Table

    run_a, run_b = result["runs"]
    table = Table(title=f"{run_b} vs {run_a}  ({result['split']}, {result['examples']} {result['unit']}s, "
                        f"{result['resamples']} paired resamples, seed {result['seed']})", header_style="bold")
    for column in ("metric", "A", "B", "B - A", "95% CI", "p", "better"):
        table.add_column(column, justify="left" if column in ("metric", "better") else "right")
    for name, m in result["metrics"].items():
        better = "B" if (m["difference"] > 0) == m["higher_is_better"] else "A"
        significant = m["ci_low"] > 0 or m["ci_high"] < 0
        table.add_row(name, f"{m['a']:.4f}", f"{m['b']:.4f}", f"{m['difference']:+.4f}",
                      f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]", f"{m['p_value']:.4f}",
                      (better if m["difference"] else "=") + ("" if significant else " (CI spans 0)"))
    return table
