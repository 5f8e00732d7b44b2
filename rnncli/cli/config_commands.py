"""`rnncli config show` and `rnncli config keys`: the resolved config as YAML, and every key of a task."""

from __future__ import annotations

import json
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from rnncli.cli.base import SET_HELP, api, examples
from rnncli.training.progress import console as wide_console

config_app = typer.Typer(no_args_is_help=True, help="Inspect configs: the resolved config, every key.")


@config_app.command("show", epilog=examples(
        "rnncli config show configs/demo.yaml --set model.cell=gru",
        "rnncli config show configs/demo.yaml --comments > my.yaml   # a commented template"))
def config_show(
    config: str = typer.Argument(..., help="YAML config file"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    comments: bool = typer.Option(False, "--comments", help="each key's help (and allowed values) as a comment"),
):
    """Print the fully resolved config, defaults included (block style; it loads back as a config)."""
    typer.echo(api.show_config(config, set_, comments), nl=False)


@config_app.command("keys", epilog=examples("rnncli config keys char_lm", "rnncli config keys seq2seq --json"))
def config_keys(
    task: Optional[str] = typer.Argument(None, help="task name (default: every task)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
):
    """Every config key: type, default, allowed values, when it applies, and its help."""
    from rnncli.tasks import TASK_NAMES

    keys = {name: api.config_keys(name) for name in ([task] if task else TASK_NAMES)}
    if as_json:
        typer.echo(json.dumps(keys if task is None else keys[task], indent=1))
        return
    console = wide_console()
    for name, rows in keys.items():
        table = Table(title=f"config keys of task {name}", header_style="bold")
        for column in ("key", "type", "default", "allowed", "applies", "help"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape("null" if v is None else str(v)) for v in row.values()))
        console.print(table)
