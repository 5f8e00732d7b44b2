"""`rnncli diagnose`: gradient flow through time, recurrent spectra and gate statistics of a
config (at initialisation) or a run (at init and at its checkpoint), as tables, JSON and a plot.

The measurements are `rnncli.nn.health`'s (the theory is in its docstring); this module picks the
probe batch of a task, renders the report and writes diagnose.json and gradient_flow.png.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from rnncli.errors import ArgumentError, RunError
from rnncli.nn.health import SATURATED_HIGH, SATURATED_LOW, stage_report
from rnncli.tasks import spec_of, tasks_that
from rnncli.tasks.base import Probes

# --------------------------------------------------------------------------- text rendering
SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 48) -> str:
    """log10 of positive values as a one-line bar chart, averaged down to `width` columns."""
    logs = [math.log10(v) if v > 0 else None for v in values]
    known = [v for v in logs if v is not None]
    if not known:
        return ""
    chunks = [logs[i * len(logs) // width:(i + 1) * len(logs) // width] for i in range(min(width, len(logs)))]
    cols = [[v for v in c if v is not None] for c in chunks]
    lo, hi = min(known), max(known)
    out = []
    for c in cols:
        if not c:
            out.append(" ")
            continue
        level = 0 if hi == lo else round((sum(c) / len(c) - lo) / (hi - lo) * (len(SPARKS) - 1))
        out.append(SPARKS[level])
    return "".join(out)


def render(report: dict) -> list:
    """rich tables for a diagnose report: gradient flow, spectra, gate statistics."""
    from rich.table import Table

    flow = Table(title=f"g_t = ‖∂L/∂h_t‖, t = 1..{report['steps']} ({report['batch']} sequences; "
                       f"sparkline: log scale)")
    for col in ("weights", "row", "loss", "g_1", "g_T", "g_1/g_T", "g_t, t = 1 … T"):
        flow.add_column(col, justify="left" if col in ("weights", "row", "g_t, t = 1 … T") else "right")
    spec = Table(title="recurrent matrix W_hh, per gate block")
    for col in ("weights", "row", "block", "spectral radius", "largest singular value"):
        spec.add_column(col)
    gates = Table(title=f"gates: mean and fraction saturated (< {SATURATED_LOW} or > {SATURATED_HIGH})")
    for col in ("weights", "row", "gate", "mean", "saturated", "< 0.05", "> 0.95"):
        gates.add_column(col)
    for stage, r in report["stages"].items():
        for row, norms in r["grad_norms"].items():
            ratio = r["ratio_first_last"][row]
            flow.add_row(stage, row, f"{r['loss']:.4g}", f"{norms[0]:.3g}", f"{norms[-1]:.3g}",
                         "-" if ratio is None else f"{ratio:.3g}", sparkline(norms, 24))
        for s in r["spectra"]:
            spec.add_row(stage, s["row"], s["block"], f"{s['spectral_radius']:.3f}", f"{s['max_singular']:.3f}")
        for row, stats in r["gates"].items():
            for g in stats:
                gates.add_row(stage, row, g["gate"], f"{g['mean']:.3f}", f"{g['saturated']:.3f}",
                              f"{g['low']:.3f}", f"{g['high']:.3f}")
    return [flow, spec] + ([gates] if gates.row_count else [])


# --------------------------------------------------------------------------- the command
def probe(task, batch_size: int):
    """(recurrent inputs (B, T, I), loss_fn(outputs)) for one validation batch: the task's own probe,
    for the tasks that declare one (`Probes` in rnncli/tasks/__init__.py)."""
    if batch_size < 1:
        raise ArgumentError("batch_size", f"must be >= 1 (got {batch_size})")
    spec = spec_of(task)
    if spec is None or not spec.can(Probes):
        raise RunError(f"diagnose works for the {', '.join(tasks_that(Probes))} tasks "
                       f"(this task's model, {type(task.model).__name__}, has no probe batch)")
    return task.probe(batch_size)


def diagnose(source: str, overrides: list[str] = (), batch_size: int = 32, out_dir: str | None = None,
             which: str = "best") -> dict:
    """Diagnose a config (at initialisation) or a run directory (at init and at its checkpoint).

    Writes diagnose.json and gradient_flow.png to `out_dir` (default: RUN/diagnose, or
    run.dir/diagnose-<task>-<cell> for a config) and returns the report.
    """
    from rnncli import api
    from rnncli.config import load_config
    from rnncli.tasks import task_module
    from rnncli.tools.plots import plot_gradient_flow
    from rnncli.training.trainer import seed_everything

    path = Path(source)
    if path.is_dir():
        cfg, trained, ckpt = api.load_run(source, which, device="cpu")
        trained.load_data()
        default_out = path / "diagnose"
    elif path.is_file():
        cfg, trained, ckpt = load_config(source, overrides, check_files=True), None, None
        default_out = Path(cfg["run"]["dir"]) / f"diagnose-{cfg['task']}-{cfg['model']['cell']}"
    else:
        raise RunError(f"{source}: no such config file or run directory")
    seed_everything(cfg["trainer"]["seed"])  # the same initial weights as `rnncli train`
    fresh = task_module(cfg["task"]).build(cfg, torch.device("cpu"))
    stages = {"init": _stage(fresh, batch_size)}
    if trained is not None:
        stages[f"step {ckpt['trainer']['step']}"] = _stage(trained, batch_size)
    first = next(iter(stages.values()))
    report = {"source": str(source), "task": cfg["task"], "cell": cfg["model"]["cell"],
              "steps": len(next(iter(first["grad_norms"].values()))), "batch": batch_size, "stages": stages}
    out = Path(out_dir) if out_dir else default_out
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose.json").write_text(json.dumps(report, indent=1))
    report["plot"] = str(plot_gradient_flow(report, out / "gradient_flow.png"))
    return report


def _stage(task, batch_size: int) -> dict:
    x, loss_fn = probe(task, batch_size)
    return stage_report(task.model.rnn, x, loss_fn)
