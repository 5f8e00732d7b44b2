"""What `rnncli eval` does besides scoring one run: `--compare RUN_A RUN_B` (a paired bootstrap) and
`--attention-plot PATH` (one sentence's attention heat-map, greedy or beam search's own)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from rnncli.cli.base import api
from rnncli.errors import RnncliError


def compare_runs_command(run, runs, split, data, checkpoint, resamples, seed, as_json, beam, attention_plot) -> None:
    from rnncli.tools.compare_runs import compare_runs, render

    extra = [name for name, value in (("RUN", run), ("--data", data), ("--beam", beam),
                                      ("--attention-plot", attention_plot)) if value is not None]
    if extra:
        raise RnncliError(f"--compare RUN_A RUN_B takes no {', '.join(extra)}: both runs score their own --split")
    result = compare_runs(*runs, split=split, resamples=resamples, seed=seed, which=checkpoint)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        Console().print(render(result))


def attention_plot_command(run: str, split: str, data: Optional[str], checkpoint: str, path: str, index: int,
                           beam: Optional[int]) -> None:
    from rnncli.tools.attention_plot import attention_table, plot_attention

    amap = api.attention(run, split, data, checkpoint, index, beam)
    title = (f"{Path(run).name}, {checkpoint}.pt, {amap['decoder']} decoding\n"
             f"{data or split} sentence {index}: {' '.join(amap['source'])}")
    if plot_attention(amap, path, title):
        print(f"attention heat-map written to {path}", file=sys.stderr)
    else:
        Console(stderr=True).print(attention_table(amap))
        print(f"matplotlib is not installed: no PNG written to {path}; terminal heat-map above", file=sys.stderr)
