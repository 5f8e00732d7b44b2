"""The live health line under the progress bar; `Watchers`, what the trainer hands its records to;
the gradient-flow probe at validation that the health line and TensorBoard share.

    health  grad_norm 4.21 (clipped 12/50 steps)  gates saturated 7.5%  g_1/g_T 3.2e-05 VANISHING

On a terminal the line sits under the progress bar and changes at each log step; elsewhere it is a
plain log line at each validation (and whenever a warning starts or ends). Its parts:

    grad_norm        the pre-clip global gradient norm of the last step (metrics.jsonl's grad_norm)
    clipped k/n      steps since the last line whose norm exceeded trainer.clip_grad_norm
    gates saturated  fraction of sigmoid-gate values < 0.05 or > 0.95       } at each validation, on
    g_1/g_T          ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ over the BPTT window, worst row  } a few validation sequences
                     (rnncli/nn/health.py); tasks with a probe batch only (char_lm, adding, copy_memory)

Warnings: g_1/g_T < VANISHING (1e-3: the first step of the window gets less than a thousandth of the
gradient the last one gets, so the window is effectively much shorter than trainer.bptt / the
sequence) -> VANISHING; g_1/g_T > EXPLODING (1e3) -> EXPLODING.
"""

from __future__ import annotations

import math
from typing import Callable

from rnncli.nn.health import gradient_flow

VANISHING, EXPLODING = 1e-3, 1e3
PROBE_SEQUENCES = 4  # validation sequences the gradient-flow probe unrolls (a few: it runs step by step)


def probe_health(rnn, probe: Callable, sequences: int = PROBE_SEQUENCES) -> dict:
    """Gradient flow and gate values of the recurrent stack `rnn` on the task's probe batch, plus
    `saturated`: the fraction of sigmoid-gate values below 0.05 or above 0.95 over every row and gate."""
    x, loss_fn = probe(sequences)
    report = gradient_flow(rnn, x, loss_fn, keep_gates=True)
    stats = [g for rows in report["gates"].values() for g in rows]
    report["saturated"] = sum(g["saturated"] for g in stats) / len(stats) if stats else None
    return report


class ProbeAtValidation:
    """`probe_health` of the recurrent stack once per validation step, shared by every watcher."""

    def __init__(self, rnn, probe: Callable):
        self.rnn, self.probe, self.step, self.report = rnn, probe, None, None

    def at(self, step: int) -> dict:
        if self.step != step:
            self.step, self.report = step, probe_health(self.rnn, self.probe)
        return self.report


def flow_warning(ratio: float | None) -> str:
    if ratio is None:
        return ""
    if ratio < VANISHING:
        return "VANISHING"
    return "EXPLODING" if ratio > EXPLODING else ""


class HealthLine:
    """Builds the health line from metrics.jsonl records (and the probe at validation)."""

    def __init__(self, probe: ProbeAtValidation | None = None, clip_grad_norm: float | None = None):
        self.probe, self.clip = probe, clip_grad_norm
        self.progress = None
        self.train: dict | None = None
        self.gates: str = ""
        self.warning = ""

    def attach(self, progress) -> None:
        self.progress = progress

    def write(self, record: dict) -> None:
        changed = False
        if record.get("split") == "val" and self.probe is not None:
            report = self.probe.at(record["step"])
            ratios = [r for r in report["ratio_first_last"].values() if r is not None]
            worst = _worst(ratios)
            warning = flow_warning(worst)
            changed = warning != self.warning
            self.warning = warning
            saturated = "" if report["saturated"] is None else f"gates saturated {100 * report['saturated']:.1f}%  "
            self.gates = saturated + ("" if worst is None else f"g_1/g_T {worst:.1e}")
        elif record.get("split") == "train":
            self.train = record
        if self.progress is not None:
            self.progress.health(self.line(), final=record.get("split") == "val" or changed)

    def line(self) -> str:
        parts = ["health"]
        if self.train is not None:
            clip = ""
            if self.clip is not None and "clipped" in self.train:
                clip = f" (clipped {self.train['clipped']}/{self.train['steps']} steps)"
            parts.append(f"grad_norm {self.train['grad_norm']:.3g}{clip}")
        if self.gates:
            parts.append(self.gates)
        if self.warning:
            parts.append(self.warning)
        return "  ".join(parts)


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else -math.inf


def _worst(ratios: list[float]) -> float | None:
    """The ratio furthest from 1 on a log scale (the row most vanishing or exploding)."""
    return max(ratios, key=lambda r: abs(_log10(r))) if ratios else None


class Watchers:
    """What the trainer hands every metrics.jsonl record to: the health line, TensorBoard."""

    def __init__(self, *watchers):
        self.watchers = [w for w in watchers if w is not None]

    def attach(self, progress) -> None:
        for w in self.watchers:
            w.attach(progress)

    def write(self, record: dict) -> None:
        for w in self.watchers:
            w.write(record)
