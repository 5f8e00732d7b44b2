"""The `rnncli` command line: a thin skin over `rnncli.api`.

Each command parses its arguments, calls one API function and prints the result. Errors the
user can fix (`RnncliError`) print one clear message and exit non-zero, without a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer
from rich.console import Console

from rnncli import api
from rnncli.errors import RnncliError
from rnncli.progress import metrics_table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, evaluate and sample RNNs from YAML configs.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect configs.")
app.add_typer(config_app, name="config")

SET_HELP = "Override a config key, e.g. --set trainer.lr=0.003 (repeatable)"


def _fail(error: RnncliError) -> None:
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {error}", markup=True, soft_wrap=True)
    raise typer.Exit(error.exit_code)


@app.command()
def train(
    config: Optional[str] = typer.Argument(None, help="YAML config file"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run directory exactly"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
):
    """Train a model from CONFIG (or continue a run with --resume RUN_DIR)."""
    try:
        api.train(config, set_, resume, show_progress=not quiet)
    except RnncliError as e:
        _fail(e)


@app.command("eval")
def eval_(
    run: str = typer.Argument(..., help="run directory"),
    split: str = typer.Option("val", "--split", help="val or test"),
    data: Optional[str] = typer.Option(None, "--data", help="score this file instead of a split"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
):
    """Metrics of a trained run on a split or a file."""
    if split not in ("val", "test", "train"):
        _fail(RnncliError(f"--split {split!r}: expected val, test or train"))
    try:
        metrics = api.evaluate(run, split, data, checkpoint)
    except RnncliError as e:
        _fail(e)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    console = Console()
    scalars = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    console.print(metrics_table(f"{run}  ({metrics['split']})", scalars))
    for table in api.metric_tables(metrics["task"], metrics):
        console.print(table)


@app.command()
def generate(
    run: str = typer.Argument(..., help="run directory"),
    prompt: str = typer.Option("\n", "--prompt", help="text that primes the state"),
    length: int = typer.Option(500, "--length", help="characters to generate"),
    temperature: float = typer.Option(1.0, "--temperature", help="<1 sharper, >1 more random"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="sample among the k likeliest"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="nucleus sampling mass"),
    greedy: bool = typer.Option(False, "--greedy", help="always take the likeliest character"),
    seed: Optional[int] = typer.Option(None, "--seed", help="make sampling repeatable"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
):
    """Sample text from a trained language model; it streams as it is produced."""
    started = False

    def stream(text: str) -> None:
        nonlocal started
        if not started:  # the prompt is echoed once sampling has begun (after any error)
            sys.stdout.write(prompt)
            started = True
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        api.generate(run, prompt, length, temperature, top_k, top_p, greedy, seed, stream, checkpoint)
    except RnncliError as e:
        _fail(e)
    sys.stdout.write("\n")


@app.command()
def predict(
    run: str = typer.Argument(..., help="run directory"),
    texts: List[str] = typer.Argument(None, help="texts to predict for"),
    input_file: Optional[str] = typer.Option(None, "--input", help="one text per line"),
    output: Optional[str] = typer.Option(None, "--output", help="write here instead of stdout"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
):
    """Predict labels (classify) or entities (ner) for texts or a file of texts."""
    try:
        if input_file is not None:
            texts = [*(texts or []), *api.read_lines(input_file)]
        if not texts:
            raise RnncliError("give texts to predict for, or --input FILE")
        predictions = api.predict(run, texts, checkpoint)
        lines = [json.dumps(p, ensure_ascii=False) if as_json else api.format_prediction(run, p)
                 for p in predictions]
    except RnncliError as e:
        _fail(e)
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)


@config_app.command("show")
def config_show(
    config: str = typer.Argument(..., help="YAML config file"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
):
    """Print the fully resolved config, defaults included."""
    try:
        typer.echo(api.show_config(config, set_), nl=False)
    except RnncliError as e:
        _fail(e)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
