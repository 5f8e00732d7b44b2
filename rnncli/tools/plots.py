"""PNG plots (matplotlib, headless Agg backend): training curves, gradient flow, comparisons.

    plot_runs(runs, out_dir)          loss / metric / lr / grad-norm curves from metrics.jsonl
    plot_gradient_flow(report, path)  ‖∂L/∂h_t‖ over t (log scale) from a diagnose report
    plot_compare(curves, metric, path) validation curves of several cells (and seeds)

metrics.jsonl has one JSON record per line: step, split ("train" / "val"), loss, lr, grad_norm,
elapsed_s, and the task's metrics on validation records.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never opens a window, works without a display

import matplotlib.pyplot as plt  # noqa: E402

from rnncli.errors import RunError  # noqa: E402

DPI = 80  # small files: a 640 x 400 figure is ~30-60 KB


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl (RunError if there is none)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise RunError(f"{run_dir}: no metrics.jsonl here (is it a run directory? train one with rnncli train)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def series(records: list[dict], split: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one numeric key over the records of one split."""
    points = [(r["step"], r[key]) for r in records
              if r.get("split") == split and isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def _metric_keys(records: list[dict]) -> list[str]:
    """Scalar validation metrics other than the loss, in first-seen order."""
    keys = []
    for r in records:
        if r.get("split") == "val":
            keys += [k for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                     and k not in ("step", "epoch", "elapsed_s", "loss", "examples", *keys)]
    return keys


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_runs(runs: list[str], out_dir: str | Path) -> list[Path]:
    """loss.png, metrics.png, lr.png, grad_norm.png in out_dir, one line per run (and split)."""
    out_dir = Path(out_dir)
    logs = {str(run): read_metrics(run) for run in runs}
    written = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for run, records in logs.items():
        for split, style in (("train", "-"), ("val", "o-")):
            steps, values = series(records, split, "loss")
            if steps:
                ax.plot(steps, values, style, markersize=3, label=f"{Path(run).name} {split}")
    _finish(ax, "loss", log=True)
    written.append(_save(fig, out_dir / "loss.png"))
    keys = sorted({k for records in logs.values() for k in _metric_keys(records)})
    if keys:
        fig, axes = plt.subplots(len(keys), 1, figsize=(8, 2.6 * len(keys)), squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            for run, records in logs.items():
                steps, values = series(records, "val", key)
                if steps:
                    ax.plot(steps, values, "o-", markersize=3, label=Path(run).name)
            _finish(ax, f"val {key}")
        written.append(_save(fig, out_dir / "metrics.png"))
    for key, log in (("lr", False), ("grad_norm", True)):
        fig, ax = plt.subplots(figsize=(8, 4))
        for run, records in logs.items():
            steps, values = series(records, "train", key)
            if steps:
                ax.plot(steps, values, label=Path(run).name)
        _finish(ax, key + (" (before clipping)" if key == "grad_norm" else ""), log=log)
        written.append(_save(fig, out_dir / f"{key}.png"))
    return written


def _finish(ax, title: str, log: bool = False) -> None:
    ax.set_title(title)
    ax.set_xlabel("step")
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def plot_gradient_flow(report: dict, path: str | Path) -> Path:
    """‖∂L/∂h_t‖ against t, one line per stage (init / checkpoint) and row, log scale."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for stage, r in report["stages"].items():
        for row, norms in r["grad_norms"].items():
            ax.plot(range(1, len(norms) + 1), [max(n, 1e-30) for n in norms],
                    "--" if stage == "init" else "-", label=f"{stage}, {row}")
    _finish(ax, f"‖∂L/∂h_t‖ — {report['task']}, {report['cell']}", log=True)
    ax.set_xlabel("time step t")
    return _save(fig, Path(path))


def plot_compare(curves: dict[str, list[tuple[list[int], list[float]]]], metric: str, path: str | Path,
                 title: str = "", chance: float | None = None) -> Path:
    """Validation curves: cell -> one (steps, values) per seed; one colour per cell."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (cell, runs) in enumerate(curves.items()):
        for j, (steps, values) in enumerate(runs):
            ax.plot(steps, values, color=colours[i % len(colours)], alpha=0.9 if j == 0 else 0.5,
                    label=cell if j == 0 else None)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", label="chance")
    _finish(ax, title or f"validation {metric}", log=True)
    ax.set_ylabel(f"val {metric}")
    return _save(fig, Path(path))
