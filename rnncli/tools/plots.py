"""PNG plots (matplotlib, headless Agg backend): training curves, gradient flow, comparisons.

    plot_runs(runs, out_dir)          loss / metric / lr / grad-norm curves from metrics.jsonl
    plot_gradient_flow(report, path)  ‖∂L/∂h_t‖ over t (log scale) from a diagnose report
    plot_compare(curves, metric, path) validation curves of several cells (and seeds)

metrics.jsonl has one JSON record per line: step, split ("train" / "val"), loss, lr, grad_norm,
elapsed_s, and the task's metrics on validation records.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never opens a window, works without a display

import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from matplotlib import ticker  # noqa: E402

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


COUNTS = ("step", "epoch", "elapsed_s", "loss", "examples", "chars", "tokens", "sentences")
LOSS_UNITS = {"char_lm": "nats/char", "copy_memory": "nats/step", "adding": "MSE", "seq2seq": "nats/token",
              "classify": "nats/example", "ner": "nats"}  # what a task's loss is measured in


def _metric_keys(records: list[dict]) -> list[str]:
    """Validation metrics worth a panel: not the loss, not counts, not a chance baseline (drawn as a
    dashed line on its metric's panel), not a value that never changes."""
    values: dict[str, set] = {}
    for r in records:
        if r.get("split") == "val":
            for k, v in r.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in COUNTS:
                    values.setdefault(k, set()).add(v)
    return [k for k, seen in values.items() if not k.startswith("chance_") and len(seen) > 1]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _saved_config(run: str) -> dict:
    try:
        return yaml.safe_load((Path(run) / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def plot_runs(runs: list[str], out_dir: str | Path) -> list[Path]:
    """loss.png, metrics.png, lr.png, grad_norm.png in out_dir: one colour per run, solid lines for
    training, dashed with dots for validation; each line's last value printed at its end."""
    out_dir = Path(out_dir)
    logs = {str(run): read_metrics(run) for run in runs}
    configs = {run: _saved_config(run) for run in logs}
    colours = dict(zip(logs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * len(logs)))
    tasks = {c.get("task") for c in configs.values()}
    unit = LOSS_UNITS.get(tasks.pop(), "") if len(tasks) == 1 else ""
    fig, ax = plt.subplots(figsize=(8, 5))
    for run, records in logs.items():
        _lines(ax, run, records, "loss", colours[run], splits=("train", "val"))
        _chance(ax, records, "chance_loss", colours[run])
    _finish(ax, "loss", log=True, ylabel=f"loss ({unit})" if unit else "loss")
    written = [_save(fig, out_dir / "loss.png")]
    keys = sorted({k for records in logs.values() for k in _metric_keys(records)})
    if keys:
        fig, axes = plt.subplots(len(keys), 1, figsize=(8, 2.6 * len(keys)), squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            for run, records in logs.items():
                _lines(ax, run, records, key, colours[run], splits=("val",))
                _chance(ax, records, f"chance_{key}", colours[run])
            _finish(ax, f"validation {key}", ylabel=key)
        written.append(_save(fig, out_dir / "metrics.png"))
    for key, ylabel in (("lr", "learning rate"), ("grad_norm", "gradient norm (before clipping)")):
        fig, ax = plt.subplots(figsize=(8, 4))
        for run, records in logs.items():
            _lines(ax, run, records, key, colours[run], splits=("train",))
            clip = configs[run].get("trainer", {}).get("clip_grad_norm") if key == "grad_norm" else None
            if clip:
                ax.axhline(clip, color=colours[run], linestyle=":", label=f"{Path(run).name} clip_grad_norm {clip:g}")
        _finish(ax, ylabel, log=key == "grad_norm", ylabel=ylabel)
        written.append(_save(fig, out_dir / f"{key}.png"))
    return written


def _lines(ax, run: str, records: list[dict], key: str, colour: str, splits: tuple[str, ...]) -> None:
    """One run's curve(s) of `key`, with the last value written at the end of each line (the higher
    of two last values just above, the lower just below, so they do not overlap)."""
    curves = {split: series(records, split, key) for split in splits}
    curves = {split: (steps, values) for split, (steps, values) in curves.items() if steps}
    top = max((values[-1] for _, values in curves.values()), default=None)
    for split, (steps, values) in curves.items():
        style = {"linestyle": "-"} if split == "train" else {"linestyle": "--", "marker": "o", "markersize": 3}
        ax.plot(steps, values, color=colour, label=f"{Path(run).name} {split}", **style)
        if key != "lr":  # (a schedule's last value says nothing)
            up = values[-1] == top
            ax.annotate(f"{values[-1]:.4g}", (steps[-1], values[-1]), textcoords="offset points",
                        xytext=(4, 4 if up else -4), fontsize=8, color=colour, va="bottom" if up else "top")


def _chance(ax, records: list[dict], key: str, colour: str) -> None:
    """A chance baseline (e.g. chance_mse) as a dotted horizontal line."""
    values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    if values:
        ax.axhline(values[-1], color=colour, linestyle=":", alpha=0.7, label=f"{key} {values[-1]:.3g}")


def _finish(ax, title: str, log: bool = False, ylabel: str | None = None) -> None:
    ax.set_title(title)
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel)
    if log:  # a log axis with labelled minor ticks, so values between the decades can be read
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        shown = (1, 2, 3, 4, 5, 6, 7, 8, 9) if high / low <= 10 else (2, 5) if high / low <= 1000 else ()
        mantissa = lambda v: round(v / 10 ** math.floor(math.log10(v)))  # noqa: E731  3e-2 -> 3
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.2g}" if mantissa(v) in shown else ""))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.2g}"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.08)  # room for the last values
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
