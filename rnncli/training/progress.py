"""Everything the trainer shows: a live bar on a terminal, plain lines elsewhere, a summary table.

On a TTY (and not under CI) a tqdm bar shows loss, tokens/s, lr, gradient norm and ETA, with the
health line (rnncli/training/health_line.py) under it. Without a TTY it prints one plain line every
`log_every` steps, and the health line at each validation, so CI logs get no carriage-return spam.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Table
from tqdm import tqdm


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class Progress:
    def __init__(self, total_steps: int | None, initial: int = 0, enabled: bool = True):
        self.console = Console(stderr=True, highlight=False)
        self.enabled = enabled
        self.bar = self.status = None  # status: the health line under the bar
        if enabled and interactive():
            self.bar = tqdm(total=total_steps, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)

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
            if logged:
                self.bar.set_postfix(
                    loss=f"{logged['loss']:.3f}", tok_s=f"{logged['tokens_per_s']:.0f}",
                    lr=f"{logged['lr']:.2e}", gnorm=f"{logged['grad_norm']:.2f}", refresh=False,
                )
        elif logged and self.enabled:
            self.message(
                f"step {step:>7}  epoch {logged['epoch']:>3}  loss {logged['loss']:.4f}  "
                f"lr {logged['lr']:.2e}  grad_norm {logged['grad_norm']:.3f}  "
                f"tokens/s {logged['tokens_per_s']:.0f}"
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

    def validation(self, step: int, metrics: dict, improved: bool) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        self.message(f"step {step:>7}  validation  {shown}" + ("  (best)" if improved else ""))

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
