"""Everything the trainer shows: a live bar on a terminal, plain lines elsewhere, a summary table.

On a TTY (and not under CI) a tqdm bar shows loss, tokens/s, lr, gradient norm and ETA, with the
health line (rnncli/training/health_line.py) under it. Without a TTY it prints one plain line every
`log_every` steps, and the health line at each validation, so CI logs get no carriage-return spam.
"""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console
from rich.table import Table
from tqdm import tqdm


WIDE = 200  # columns for tables off a terminal (rich would draw 80 and cut them)


def duration(seconds: float) -> str:
    """4m12s, 1h03m, 9s."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def console(stderr: bool = False) -> Console:
    """A rich console that draws tables to the terminal's width, or WIDE columns into a pipe or file."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else WIDE)


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class Progress:
    """Messages from creation on; the bar (or the plain lines' clock for the ETA) from `start()`."""

    def __init__(self, total_steps: int | None, initial: int = 0, enabled: bool = True, epochs: int | None = None):
        self.console = console(stderr=True)
        self.enabled = enabled
        self.total, self.epochs, self.initial = total_steps, epochs, initial
        self.bar = self.status = None  # status: the health line under the bar
        self._start = (initial, time.perf_counter())

    def start(self) -> None:
        self._start = (self.initial, time.perf_counter())
        if self.enabled and interactive():
            self.bar = tqdm(total=self.total, initial=self.initial, unit="step", dynamic_ncols=True, file=sys.stderr)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def step(self, step: int, logged: dict | None) -> None:
        """Advance by one step; `logged` is the train record when this step was a log step."""
        if self.bar is not None:
            self.bar.update(1)
            if logged:  # loss first: what one reads the bar for
                self.bar.set_postfix(
                    loss=f"{logged['loss']:.3f}", epoch=f"{logged['epoch'] + 1}/{self.epochs}",
                    tok_s=f"{logged['tokens_per_s']:.0f}", lr=f"{logged['lr']:.2e}",
                    gnorm=f"{logged['grad_norm']:.2f}", refresh=False,
                )
        elif logged and self.enabled:
            width = len(str(self.total))
            self.message(
                f"step {step:>{width}}/{self.total}  epoch {logged['epoch'] + 1}/{self.epochs}  "
                f"loss {logged['loss']:.4f}  lr {logged['lr']:.2e}  grad_norm {logged['grad_norm']:.3f}  "
                f"tokens/s {logged['tokens_per_s']:.0f}  eta {self._eta(step)}"
            )

    def health(self, line: str, final: bool = False) -> None:
        """The health line (rnncli/training/health_line.py): on a terminal a status line under the bar,
        kept current; elsewhere printed as a log line when `final` (at validation, or a new warning)."""
        if not self.enabled:
            return
        if self.bar is not None:
            if self.status is None:
                self.status = tqdm(total=0, position=1, bar_format="{desc}", file=sys.stderr, leave=False)
            self.status.set_description_str(line)
        elif final:
            print(line, file=sys.stderr, flush=True)

    def _eta(self, step: int) -> str:
        first, started = self._start
        if step <= first or self.total is None:
            return "?"
        seconds = (time.perf_counter() - started) / (step - first) * (self.total - step)
        return duration(seconds)

    def validation(self, step: int, metrics: dict, improved: bool) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        self.message(f"step {step:>{len(str(self.total))}}/{self.total}  validation  {shown}"
                     + ("  (best)" if improved else ""))

    def close(self) -> None:
        if self.status is not None:
            self.status.close()
            self.status = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def summary(self, title: str, rows: dict) -> None:
        if self.enabled:
            self.console.print(metrics_table(title, rows))


def metrics_table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in rows.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table
