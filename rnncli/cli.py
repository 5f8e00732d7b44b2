"""The `rnncli` command line: a thin skin over `rnncli.api`.

Each command parses its arguments, calls one API function and prints the result. One error
boundary, `RnncliApp` (the command group), turns every error the user can fix into one line on
stderr and an exit code, without a traceback:

    RnncliError     its message; an ArgumentError's argument spelled as its flag
                    (`temperature must be > 0` -> `--temperature must be > 0`)      exit 1 (ConfigError: 2)
    usage errors    typer's message for a value it cannot parse or a missing argument  exit 2
"""

from __future__ import annotations

import json
import sys
import warnings
from contextlib import contextmanager
from typing import List, Optional, Tuple

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from rnncli import api
from rnncli.errors import ArgumentError, RnncliError
from rnncli.nn.cells import CELL_NAMES
from rnncli.tasks.base import Translates
from rnncli.training.progress import metrics_table

try:  # newer typer ships its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import UsageError

# API argument -> the flag (or argument) of the CLI that sets it, where it is not `--arg-name`
FLAGS = {"config_path": "CONFIG", "data_file": "--data", "which": "--checkpoint", "batch_size": "--batch"}


def flag(argument: str) -> str:
    return FLAGS.get(argument, "--" + argument.replace("_", "-"))


def error_line(error: Exception) -> str:
    """The one line the CLI prints for a user error."""
    if isinstance(error, ArgumentError):
        return f"{flag(error.argument)} {error.problem}"
    if isinstance(error, UsageError):
        ctx = error.ctx
        return error.format_message() + (f" (see '{ctx.command_path} --help')" if ctx is not None else "")
    return str(error)


class RnncliApp(TyperGroup):
    """The command group, the CLI's one error boundary: options are parsed in `make_context`, every
    command runs inside `invoke`; a user error from either becomes one line and an exit code."""

    def make_context(self, *args, **kwargs):
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_errors():
            return super().invoke(ctx)


@contextmanager
def _one_line_errors():
    try:
        yield
    except (RnncliError, UsageError) as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # `rnncli` or `rnncli config` alone: the help
            raise
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(error_line(error))}",
                                                    soft_wrap=True)
        raise typer.Exit(error.exit_code) from None


app = typer.Typer(cls=RnncliApp, name="rnncli", add_completion=False, no_args_is_help=True,
                  help="Train, evaluate and sample RNNs from YAML configs.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect configs.")
app.add_typer(config_app, name="config")

SET_HELP = "Override a config key, e.g. --set trainer.lr=0.003 (repeatable)"


@app.command()
def train(
    config: Optional[str] = typer.Argument(None, help="YAML config file"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run directory exactly"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    nproc: Optional[int] = typer.Option(
        None, "--nproc", help="data-parallel: start N processes on this machine through torchrun"),
    max_restarts: Optional[int] = typer.Option(
        None, "--max-restarts", help="with --nproc: restart the group this often when a process dies"),
):
    """Train a model from CONFIG (or continue a run with --resume RUN_DIR)."""
    if nproc is not None:
        code = api.train_processes(nproc, config, set_, resume, max_restarts or 0, quiet)
        raise typer.Exit(code)
    if max_restarts is not None:
        raise ArgumentError("max_restarts", "needs nproc (torchrun restarts a group of processes)")
    summary = api.train(config, set_, resume, show_progress=not quiet)
    if summary["status"] != "interrupted" or summary.get("rank", 0):
        return
    if not quiet:
        processes = [f"--nproc {summary['processes']}"] if "processes" in summary else []
        command = " ".join(["rnncli train", *([config] if config else []), "--resume", summary["run directory"],
                            *processes])
        print(f"Resume with:\n  {command}", file=sys.stderr, flush=True)
    if not summary.get("processes"):  # under torchrun a worker exits 0, or torchrun would restart it
        raise typer.Exit(130)


@app.command("eval")
def eval_(
    run: Optional[str] = typer.Argument(None, help="run directory (none with --compare)"),
    split: str = typer.Option("val", "--split", help="val or test"),
    data: Optional[str] = typer.Option(None, "--data", help="score this file instead of a split"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    beam: Optional[int] = typer.Option(None, "--beam", help="seq2seq: decode with this beam size"),
    attention_plot: Optional[str] = typer.Option(
        None, "--attention-plot", help="seq2seq: PNG heat-map of the first sentence's attention "
        "(a terminal heat-map when matplotlib is missing)"),
    compare: Optional[Tuple[str, str]] = typer.Option(
        None, "--compare", metavar="RUN_A RUN_B", help="paired-bootstrap comparison of two runs on --split"),
    resamples: int = typer.Option(1000, "--resamples", help="--compare: bootstrap resamples"),
    seed: int = typer.Option(12345, "--seed", help="--compare: bootstrap seed"),
):
    """Metrics of a trained run on a split or a file (or --compare RUN_A RUN_B: B - A with a 95% CI)."""
    if compare is not None:
        _compare(run, compare, split, data, checkpoint, resamples, seed, as_json, beam, attention_plot)
        return
    if run is None:
        raise UsageError("Missing argument 'RUN' (or give --compare RUN_A RUN_B)")
    metrics = api.evaluate(run, split, data, checkpoint, beam=beam)
    if attention_plot is not None:
        _attention_plot(run, split, data, checkpoint, attention_plot)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    console = Console()
    scalars = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    console.print(metrics_table(f"{run}  ({metrics['split']})", scalars))
    for table in api.metric_tables(metrics["task"], metrics):
        console.print(table)


def _compare(run, runs, split, data, checkpoint, resamples, seed, as_json, beam, attention_plot) -> None:
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


def _attention_plot(run: str, split: str, data: Optional[str], checkpoint: str, path: str) -> None:
    from rnncli.tools.attention_plot import attention_table, plot_attention

    amap = api.attention(run, split, data, checkpoint)
    if plot_attention(amap, path):
        Console(stderr=True).print(f"attention heat-map written to {path}")
    else:
        Console(stderr=True).print(attention_table(amap))
        Console(stderr=True).print(f"matplotlib is not installed: no PNG written to {path}; terminal heat-map above")


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
    beam: Optional[int] = typer.Option(None, "--beam", help="seq2seq: beam size (default: the run's trainer.beam_size)"),
    n_best: int = typer.Option(1, "--n-best", help="seq2seq: print the N best translations with scores"),
    input_file: Optional[str] = typer.Option(None, "--input", help="seq2seq: translate each line of this file"),
    output: Optional[str] = typer.Option(None, "--output", help="seq2seq: write translations here"),
):
    """Sample text from a trained language model (it streams), or translate with a seq2seq run."""
    spec = api.task_of(run)  # None: no run here; api.generate names the problem
    if spec is not None and spec.can(Translates):
        _translate(run, prompt, input_file, output, beam, n_best, checkpoint)
        return
    if spec is not None and (input_file or output or beam is not None or n_best != 1):
        raise RnncliError(f"{run} is a '{spec.name}' run; translation (--beam, --n-best, --input, --output) "
                          f"works for seq2seq runs")
    started = False

    def stream(text: str) -> None:
        nonlocal started
        if not started:  # the prompt is echoed once sampling has begun (after any error)
            sys.stdout.write(prompt)
            started = True
        sys.stdout.write(text)
        sys.stdout.flush()

    api.generate(run, prompt, length, temperature, top_k, top_p, greedy, seed, stream, checkpoint)
    sys.stdout.write("\n")


def _translate(run: str, prompt: str, input_file: Optional[str], output: Optional[str], beam: Optional[int],
               n_best: int, checkpoint: str) -> None:
    sentences = api.read_lines(input_file) if input_file else [prompt] if prompt.strip() else []
    if not sentences:
        raise RnncliError("give a sentence to translate with --prompt TEXT, or a file with --input FILE")
    results = api.translate(run, sentences, beam, n_best, checkpoint)
    if n_best == 1:
        lines = [r["translations"][0]["text"] for r in results]
    else:  # n-best lists: sentence number (0-based), score, translation
        lines = [f"{i}\t{t['score']:.4f}\t{t['text']}" for i, r in enumerate(results) for t in r["translations"]]
    _write_lines(lines, output)


@app.command()
def predict(
    run: str = typer.Argument(..., help="run directory"),
    texts: List[str] = typer.Argument(None, help="texts to predict for"),
    input_file: Optional[str] = typer.Option(None, "--input", help="one text per line"),
    output: Optional[str] = typer.Option(None, "--output", help="write here (ner: CoNLL) instead of stdout"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
):
    """Predict labels (classify) or entities (ner) for texts or a file of texts."""
    if input_file is not None:
        texts = [*(texts or []), *api.read_lines(input_file)]
    if not texts:
        raise RnncliError("give texts to predict for, or --input FILE")
    predictions = api.predict(run, texts, checkpoint)
    if output is not None and not as_json and api.write_predictions(run, predictions, output):
        return  # the task's own file format (ner: CoNLL)
    lines = [json.dumps(p, ensure_ascii=False) if as_json else api.format_prediction(run, p)
             for p in predictions]
    _write_lines(lines, output)


@config_app.command("show")
def config_show(
    config: str = typer.Argument(..., help="YAML config file"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
):
    """Print the fully resolved config, defaults included."""
    typer.echo(api.show_config(config, set_), nl=False)


@app.command()
def diagnose(
    source: str = typer.Argument(..., help="YAML config (at init) or run directory (init + checkpoint)"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    batch: int = typer.Option(32, "--batch", help="validation sequences in the probe batch"),
    out: Optional[str] = typer.Option(None, "--out", help="directory for diagnose.json and gradient_flow.png"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
):
    """Gradient flow through time, W_hh spectra and gate saturation, at init and after training."""
    from rnncli.tools import diagnose as diag

    report = diag.diagnose(source, set_, batch, out, checkpoint)
    console = Console()
    for table in diag.render(report):
        console.print(table)
    console.print(f"plot: {report['plot']}")


@app.command()
def compare(
    config: str = typer.Argument(..., help="YAML config (only keys valid for every cell)"),
    cells: Optional[str] = typer.Option(None, "--cells",
                                        help=f"comma-separated cells [default: {','.join(CELL_NAMES)}]"),
    vary: Optional[str] = typer.Option(None, "--vary", help="KEY=a,b,...: vary this key instead of the cell, "
                                       "e.g. model.ablate=none,no_forget_gate"),
    seeds: int = typer.Option(3, "--seeds", help="runs per cell: trainer.seed, seed+1, ..."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    out: Optional[str] = typer.Option(None, "--dir", help="compare directory (default run.dir/compare-<config>)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no training progress"),
):
    """Train CONFIG once per cell (or --vary value) and seed; mean ± std table, steps/s, parameters; curves."""
    from rnncli.tools import compare as cmp

    console = Console()
    cell_list = None if cells is None else [c.strip() for c in cells.split(",") if c.strip()]
    result = cmp.compare(config, cell_list, seeds, set_, out, vary=vary,
                         show_progress=not quiet, on_run=lambda name, status: console.print(f"{name}: {status}"))
    console.print(cmp.render(result))
    console.print(f"saved: {result['dir']}/compare.json, compare.csv, {result['plot']}")


@app.command()
def plot(
    runs: List[str] = typer.Argument(..., help="run directories"),
    out: Optional[str] = typer.Option(None, "--out", help="output directory (default: RUN/plots for one run)"),
):
    """Loss / metric / learning-rate / gradient-norm curves from metrics.jsonl, as PNG files."""
    from rnncli.tools.plots import plot_runs

    if out is None and len(runs) > 1:
        raise RnncliError("several runs: give --out DIR for the combined plots")
    written = plot_runs(runs, out or f"{runs[0]}/plots")
    for path in written:
        typer.echo(str(path))


@app.command()
def bench(
    config: str = typer.Argument(..., help="YAML config"),
    steps: int = typer.Option(10, "--steps", help="timed training steps (after 2 warm-up steps)"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
):
    """Which implementation each layer runs on; training and eval tokens/s, generation chars/s.

    Runs a few steps of CONFIG on this machine without writing a run directory.
    """
    from rnncli.tools.bench import bench as run_bench

    result = run_bench(config, set_, steps)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(f"{config} on {result['device']} ({result['threads']} threads), precision {result['precision']}")
    for line in result["paths"]:
        typer.echo(f"  {line}")
    typer.echo(f"  train     {result['train_tokens_per_s']:>10,.0f} tokens/s  "
               f"({steps} timed steps after {result['warmup_steps']} warm-up steps)")
    typer.echo(f"  eval      {result['eval_tokens_per_s']:>10,.0f} tokens/s  (forward only, no gradients)")
    if "generate_chars_per_s" in result:
        typer.echo(f"  generate  {result['generate_chars_per_s']:>10,.0f} chars/s   (batch 1)")


@app.command("export")
def export_(
    run: str = typer.Argument(..., help="run directory"),
    fmt: str = typer.Option("onnx", "--format", help="onnx or torchscript"),
    output: Optional[str] = typer.Option(None, "--output", help="folder for the graphs and model.json "
                                         "(default RUN/export/FORMAT)"),
    int8: bool = typer.Option(False, "--int8", help="int8 weights (not supported by export yet)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
):
    """Write the run as ONNX or TorchScript graphs (explicit state, dynamic batch and time) plus a JSON
    sidecar, after checking them against the PyTorch model on random padded batches."""
    from rnncli.tools.export import export

    result = export(run, fmt, output, int8, checkpoint)
    for name, diff in result["parity"].items():
        typer.echo(f"parity {name}: max abs diff {diff:.2e} (tolerance {result['tolerance']:g}; "
                   f"3 lengths x 2 batch sizes, padded)")
    for path in result["files"]:
        typer.echo(f"wrote {path}")


def _write_lines(lines: List[str], output: Optional[str]) -> None:
    """One line each, to stdout or to the file `output`."""
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. a deprecated config spelling) as one line: where, and what to write instead."""
    print(f"rnncli: {category.__name__}: {filename}:{lineno}: {message}", file=sys.stderr, flush=True)


def main() -> None:
    warnings.showwarning = _one_line_warning
    app(prog_name="rnncli")  # also under `python -m rnncli`


if __name__ == "__main__":
    main()
