"""`rnncli compare`: train one config once per variant and seed, then tabulate and plot.

A variant is one value of one config key: a cell (`cells`, i.e. model.cell), or any key with
`vary="KEY=a,b,..."`, e.g. vary="model.ablate=none,no_forget_gate,no_output_gate" (Greff et al.'s
ablations) or vary="model.hidden_size=64,128".

    compare dir/
      runs/<variant>-seed<seed>/   ordinary run directories (resume / eval / plot them as usual)
      results.json              one record per finished run, written after each run
      compare.json              results + the per-cell summary
      compare.csv               one row per run
      validation_curves.png     validation metric against step, one colour per cell

Runs are sequential. A run already in results.json whose directory still holds best.pt is
skipped; a run that was interrupted (last.pt but no result) is resumed, so re-running the same
command finishes what is missing. An interrupted run (Ctrl-C, SIGTERM) is never tabulated: the
compare stops there and returns {"interrupted": run name, "run_dir", "dir"}. Every variant gets the same config plus its override (e.g.
`model.cell=...`), so the config may only use keys valid for every variant (comparing cells: no
model.forget_bias, model.nonlinearity).
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path
from typing import Callable

from rnncli.config import load_config
from rnncli.errors import ArgumentError, RnncliError, RunError, closest
from rnncli.nn.cells import CELL_NAMES
from rnncli.tasks.synthetic import count_parameters


def run_overrides(overrides: list[str], variant: str, seed: int, runs_dir: Path) -> list[str]:
    """The overrides of one run: the user's, the variant's own (KEY=value), the seed and where it goes."""
    return [*overrides, variant, f"trainer.seed={seed}", f"run.name={run_name(variant, seed)}",
            f"run.dir={runs_dir}", "run.overwrite=false"]


def run_name(variant: str, seed: int) -> str:
    """'model.cell=gru', 1234 -> 'gru-seed1234' (the value, made safe for a directory name)."""
    return re.sub(r"[^\w.+-]", "_", variant.split("=", 1)[1]) + f"-seed{seed}"


def variants(cells: list[str] | None, vary: str | None) -> tuple[str, list[str]]:
    """(the key compared, one override KEY=value per variant) from `cells` or `vary`."""
    if vary is None:
        cells = list(CELL_NAMES) if cells is None else cells
        check_cells(cells)
        return "cell", [f"model.cell={cell}" for cell in cells]
    if cells is not None:
        raise ArgumentError("vary", "cannot be combined with cells: set model.cell in the config (or an "
                            "override) and vary the other key")
    key, _, values = vary.partition("=")
    labels = [v.strip() for v in values.split(",") if v.strip()]
    if "." not in key or not labels:
        raise ArgumentError("vary", f"= {vary!r}: expected section.key=a,b,... (e.g. "
                            f"model.ablate=none,no_forget_gate)")
    if len(set(labels)) < len(labels):
        raise ArgumentError("vary", f"= {vary!r} lists a value twice")
    return key.strip(), [f"{key.strip()}={label}" for label in labels]


def check_cells(cells: list[str]) -> None:
    for cell in cells:
        if cell not in CELL_NAMES:
            raise ArgumentError("cells", f"has an unknown cell '{cell}'.{closest(cell, CELL_NAMES)} "
                                f"Allowed: {', '.join(CELL_NAMES)}")
    if not cells:
        raise ArgumentError("cells", f"is empty; give some of {', '.join(CELL_NAMES)}")


def compare(config: str, cells: list[str] | None = None, seeds: int = 3, overrides: list[str] = (),
            out_dir: str | None = None, show_progress: bool = False,
            on_run: Callable[[str, str], None] | None = None, vary: str | None = None) -> dict:
    """Train (or skip) every variant x seed run, then summarise; returns {"runs", "summary", files}.

    The variants are `cells` (default: every registered cell) or the values of `vary` = "KEY=a,b,...".
    """
    varied, plan_variants = variants(cells, vary)
    if seeds < 1:
        raise ArgumentError("seeds", f"must be >= 1 (got {seeds})")
    base = load_config(config, list(overrides), check_files=True)
    out = Path(out_dir) if out_dir else Path(base["run"]["dir"]) / f"compare-{Path(config).stem}"
    runs_dir = out / "runs"
    first_seed = base["trainer"]["seed"]
    plan = [(variant, first_seed + i) for variant in plan_variants for i in range(seeds)]
    for variant, seed in plan:  # every config must be valid before hours of training start
        load_config(config, run_overrides(list(overrides), variant, seed, runs_dir))
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for variant, seed in plan:
        name = run_name(variant, seed)
        status = _train_one(config, list(overrides), variant, seed, runs_dir, results.get(name), show_progress)
        if status == "interrupted":  # not a result: stop here; the same command resumes this run
            if on_run is not None:
                on_run(name, status)
            return {"interrupted": name, "run_dir": str(runs_dir / name), "dir": str(out)}
        if status != "skipped":
            results[name] = collect(runs_dir / name, variant.split("=", 1)[1], seed)
            results_path.write_text(json.dumps(results, indent=1))
        if on_run is not None:
            on_run(name, status)
    runs = [results[run_name(variant, seed)] for variant, seed in plan]
    return {**write_outputs(out, runs, base["task"]), "varied": varied}


def _train_one(config: str, overrides: list[str], variant: str, seed: int, runs_dir: Path, done: dict | None,
               show_progress: bool) -> str:
    from rnncli import api

    run_dir = runs_dir / run_name(variant, seed)
    sets = run_overrides(overrides, variant, seed, runs_dir)
    _check_same_config(run_dir, load_config(config, sets))
    if done is not None and (run_dir / "best.pt").exists():
        return "skipped"
    resume = (run_dir / "last.pt").exists()
    summary = api.train(config, sets, resume=str(run_dir) if resume else None, show_progress=show_progress)
    if summary["status"] == "interrupted":
        return "interrupted"
    return "resumed" if resume else "trained"


def _check_same_config(run_dir: Path, cfg: dict) -> None:
    """A run trained from another config must not be skipped or resumed as if it were this one."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        return
    saved = load_config(saved_path)
    changed = [f"{section}.{key}: {saved[section].get(key)!r} -> {cfg[section].get(key)!r}"
               for section in ("data", "model", "trainer") for key in saved[section].keys() | cfg[section].keys()
               if saved[section].get(key) != cfg[section].get(key)]
    if changed:
        raise RunError(f"{run_dir} was trained from a different config ({'; '.join(sorted(changed))}); "
                       f"compare into another directory, or delete that run directory to retrain it")


def collect(run_dir: Path, variant: str, seed: int) -> dict:
    """One finished run -> plain record: its variant (the varied value) and cell, final/best validation
    metric, test metric, speed, size."""
    from rnncli import api
    from rnncli.tools.plots import read_metrics

    cfg, task, ckpt = api.load_run(str(run_dir), "best", device="cpu")
    metric = task.metric
    records = read_metrics(run_dir)
    val = [r for r in records if r.get("split") == "val"]
    if not val:
        raise RunError(f"{run_dir}: finished without a validation record; cannot compare it")
    task.load_data()
    try:
        test = task.evaluate("test").get(metric)
    except RnncliError:  # a task without a test split: leave it out of the table
        test = None
    last = records[-1]
    return {"variant": variant, "cell": cfg["model"].get("cell"), "seed": seed, "run": str(run_dir),
            "metric": metric, "steps": last["step"],
            "final_val": val[-1][metric], "best_val": ckpt["trainer"]["best"], "test": test,
            "chance": val[-1].get(f"chance_{metric}"), "elapsed_s": last["elapsed_s"],
            "steps_per_s": last["step"] / max(last["elapsed_s"], 1e-9),
            "parameters": count_parameters(task.model),
            "curve": [[r["step"], r[metric]] for r in val]}


def _mean_std(values: list) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[dict]) -> list[dict]:
    """Per variant: runs, mean ± std (sample std, 0 for one run) of each metric, speed, parameters."""
    rows = []
    for variant in dict.fromkeys(_variant(r) for r in runs):
        mine = [r for r in runs if _variant(r) == variant]
        row = {"variant": variant, "cell": mine[0]["cell"], "runs": len(mine), "metric": mine[0]["metric"]}
        for key in ("final_val", "best_val", "test"):
            row[key], row[key + "_std"] = _mean_std([r[key] for r in mine])
        row["chance"] = mine[0]["chance"]
        row["steps_per_s"] = statistics.fmean(r["steps_per_s"] for r in mine)
        row["parameters"] = mine[0]["parameters"]
        rows.append(row)
    return rows


def _variant(record: dict) -> str:
    return record.get("variant", record["cell"])  # results.json of an older compare: one cell per variant


def write_outputs(out: Path, runs: list[dict], task: str) -> dict:
    from rnncli.tools.plots import plot_compare

    summary = summarise(runs)
    (out / "compare.json").write_text(json.dumps({"task": task, "summary": summary, "runs": runs}, indent=1))
    columns = ["variant", "cell", "seed", "metric", "final_val", "best_val", "test", "chance", "steps", "steps_per_s",
               "elapsed_s", "parameters", "run"]
    with (out / "compare.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    curves: dict[str, list] = {}
    for r in runs:
        curves.setdefault(_variant(r), []).append(([p[0] for p in r["curve"]], [p[1] for p in r["curve"]]))
    metric = runs[0]["metric"]
    plot = plot_compare(curves, metric, out / "validation_curves.png", f"{task}: validation {metric}",
                        runs[0]["chance"])
    return {"task": task, "runs": runs, "summary": summary, "dir": str(out), "plot": str(plot)}


def render(result: dict):
    """A rich table of the per-variant summary."""
    from rich.table import Table

    metric, varied = result["summary"][0]["metric"], result.get("varied", "cell")
    table = Table(title=f"{result['task']}: {metric} per {varied} (mean ± std over seeds)")
    for col in (varied, "runs", f"final val {metric}", f"test {metric} (best.pt)", "chance", "steps/s",
                "parameters"):
        table.add_column(col, justify="left" if col == varied else "right")
    for row in result["summary"]:
        table.add_row(row["variant"], str(row["runs"]), _pm(row["final_val"], row["final_val_std"]),
                      _pm(row["test"], row["test_std"]), _fmt(row["chance"]), f"{row['steps_per_s']:.1f}",
                      f"{row['parameters']:,}")
    return table


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def _pm(mean, std) -> str:
    return "-" if mean is None else f"{mean:.3g} ± {std:.2g}"
