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
import shlex
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import typer

from rnncli.cli.base import (  # noqa: F401  (flag, error_line: re-exported)
    EXIT_INTERRUPTED,
    INT8_OPTION,
    SET_HELP,
    RnncliApp,
    UsageError,
    api,
    error_line,
    examples,
    flag,
)
from rnncli.cli.config_commands import config_app
from rnncli.cli.evaluation import attention_plot_command, compare_runs_command
from rnncli.errors import ArgumentError, RnncliError
from rnncli.training.progress import console as wide_console

app = typer.Typer(cls=RnncliApp, name="rnncli", no_args_is_help=True,
                  help="Train, evaluate and sample RNNs from YAML configs.",
                  epilog=examples("rnncli train configs/demo.yaml --set run.name=my-demo",
                                  "rnncli generate runs/my-demo --prompt 'MARROW:' --length 300 --seed 1",
                                  "rnncli config keys char_lm"))
app.add_typer(config_app, name="config")



def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"rnncli {version('rnncli')}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
):
    """Train, evaluate and sample RNNs from YAML configs."""


@app.command(epilog=examples("rnncli train configs/demo.yaml --set run.name=my-demo",
                             "rnncli train configs/demo.yaml --set trainer.lr=0.001 --set run.name=demo-slow",
                             "rnncli train --resume runs/my-demo --set trainer.epochs=60   # the run, trained longer"))
def train(
    config: Optional[str] = typer.Argument(None, help="YAML config file (optional with --resume)"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run directory exactly"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    nproc: Optional[int] = typer.Option(
        None, "--nproc", help="data-parallel: start N processes on this machine through torchrun"),
    max_restarts: Optional[int] = typer.Option(
        None, "--max-restarts", help="with --nproc: restart the group this often when a process dies"),
):
    """Train a model from CONFIG (or continue a run with --resume RUN_DIR)."""
    if config is not None and resume is None and Path(config).is_dir():
        raise RnncliError(f"{config} is a directory, not a config file; to continue a run: "
                          f"{resume_command(config)}")
    if nproc is not None:
        code = api.train_processes(nproc, config, set_, resume, max_restarts or 0, quiet)
        raise typer.Exit(code)
    if max_restarts is not None:
        raise ArgumentError("max_restarts", "needs nproc (torchrun restarts a group of processes)")
    summary = api.train(config, set_, resume, show_progress=not quiet)
    if summary["status"] != "interrupted" or summary.get("rank", 0):
        return
    if not quiet:
        processes = ["--nproc", str(summary["processes"])] if "processes" in summary else []
        print(f"Resume with:\n  {resume_command(summary['run_dir'], *processes)}", file=sys.stderr, flush=True)
    if not summary.get("processes"):  # under torchrun a worker exits 0, or torchrun would restart it
        raise typer.Exit(EXIT_INTERRUPTED)


def resume_command(run_dir: str, *extra: str) -> str:
    """The command that continues a run where it stopped; the one place this line is built
    (`extra`: more arguments a run needs to continue, e.g. the processes of a distributed run)."""
    return " ".join(["rnncli", "train", "--resume", shlex.quote(str(run_dir)), *extra])


@app.command("eval", epilog=examples("rnncli eval runs/demo --split test",
                                     "rnncli eval runs/demo --data data/demo.txt --json"))
def eval_(
    run: Optional[str] = typer.Argument(None, help="run directory (none with --compare)"),
    split: str = typer.Option("val", "--split", help="val or test"),
    data: Optional[str] = typer.Option(None, "--data", help="score this file instead of a split"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    beam: Optional[int] = typer.Option(None, "--beam", help="seq2seq: decode with this beam size"),
    attention_plot: Optional[str] = typer.Option(
        None, "--attention-plot", help="seq2seq: PNG heat-map of one sentence's attention, greedy "
        "decoding or with --beam the beam's best hypothesis (a terminal heat-map when matplotlib is missing)"),
    index: int = typer.Option(0, "--index", help="seq2seq: which sentence --attention-plot draws (0: the first)"),
    compare: Optional[Tuple[str, str]] = typer.Option(
        None, "--compare", metavar="RUN_A RUN_B", help="paired-bootstrap comparison of two runs on --split"),
    resamples: int = typer.Option(1000, "--resamples", help="--compare: bootstrap resamples"),
    seed: int = typer.Option(12345, "--seed", help="--compare: bootstrap seed"),
    int8: bool = INT8_OPTION,
):
    """Metrics of a trained run on a split or a file (or --compare RUN_A RUN_B: B - A with a 95% CI)."""
    if compare is not None:
        compare_runs_command(run, compare, split, data, checkpoint, resamples, seed, as_json, beam, attention_plot)
        return
    if run is None:
        raise UsageError("Missing argument 'RUN' (or give --compare RUN_A RUN_B)")
    if attention_plot is not None:
        api.check_output_path(attention_plot, "attention_plot")
    metrics = api.evaluate(run, split, data, checkpoint, beam=beam, int8=int8)
    if attention_plot is not None:
        attention_plot_command(run, split, data, checkpoint, attention_plot, index, beam)
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    from rnncli.training.progress import metrics_table

    console = wide_console()
    scalars = {k: v for k, v in metrics.items() if v is not None and not isinstance(v, (dict, list))}
    console.print(metrics_table(f"{run}  ({metrics['split']})", scalars))
    for table in api.metric_tables(metrics["task"], metrics):
        console.print(table)


@app.command(epilog=examples("rnncli generate runs/demo --prompt 'MARROW:' --length 300 --temperature 0.8 --seed 1",
                             "rnncli generate runs/demo --prompt 'PIP:' --top-k 5 --length 200",
                             "rnncli generate runs/tatoeba_fra_eng_gru_attention --prompt 'il est grand .' --beam 5"))
def generate(
    run: str = typer.Argument(..., help="run directory"),
    prompt: str = typer.Option("\n", "--prompt", help="text that primes the state", show_default="a newline"),
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
    int8: bool = INT8_OPTION,
):
    """Sample text from a trained language model (it streams), or translate with a seq2seq run."""
    if output is not None:
        api.check_output_path(output)
    from rnncli.tasks.base import Translates

    spec = api.task_of(run)  # None: no run here; api.generate names the problem
    if spec is not None and spec.can(Translates):
        _translate(run, prompt, input_file, output, beam, n_best, checkpoint, int8)
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

    api.generate(run, prompt, length, temperature, top_k, top_p, greedy, seed, stream, checkpoint, int8=int8)
    sys.stdout.write("\n")


def _translate(run: str, prompt: str, input_file: Optional[str], output: Optional[str], beam: Optional[int],
               n_best: int, checkpoint: str, int8: bool = False) -> None:
    sentences = api.read_lines(input_file) if input_file else [prompt] if prompt.strip() else []
    if not sentences:
        raise RnncliError("give a sentence to translate with --prompt TEXT, or a file with --input FILE")
    results = api.translate(run, sentences, beam, n_best, checkpoint, int8=int8)
    if n_best == 1:
        lines = [r["translations"][0]["text"] for r in results]
    else:  # n-best lists: sentence number (0-based), score, translation
        lines = [f"{i}\t{t['score']:.4f}\t{t['text']}" for i, r in enumerate(results) for t in r["translations"]]
    _write_lines(lines, output)


@app.command(epilog=examples(
    "rnncli predict runs/classify-demo 'the soup was cold and the waiter was rude' 'the view is lovely'",
    "rnncli predict runs/classify-demo --input reviews.txt --json --output preds.jsonl",
    "rnncli predict runs/ner-demo 'Ada Lovelace was born in London .' --output tagged.conll"))
def predict(
    run: str = typer.Argument(..., help="run directory"),
    texts: List[str] = typer.Argument(None, help="texts to predict for"),
    input_file: Optional[str] = typer.Option(None, "--input", help="one text per line"),
    output: Optional[str] = typer.Option(None, "--output", help="write here (ner: CoNLL) instead of stdout"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    int8: bool = INT8_OPTION,
):
    """Predict labels (classify) or entities (ner) for texts or a file of texts."""
    if output is not None:
        api.check_output_path(output)
    if input_file is not None:
        texts = [*(texts or []), *api.read_lines(input_file)]
    if not texts:
        raise RnncliError("give texts to predict for, or --input FILE")
    predictions = api.predict(run, texts, checkpoint, int8=int8)
    if output is not None and not as_json and api.write_predictions(run, predictions, output):
        _wrote(f"{len(predictions)} prediction{'s' * (len(predictions) != 1)} (CoNLL)", output)  # (ner's format)
        return
    lines = [json.dumps(p, ensure_ascii=False) if as_json else api.format_prediction(run, p)
             for p in predictions]
    _write_lines(lines, output)


@app.command(epilog=examples("rnncli diagnose runs/demo", "rnncli diagnose configs/adding/rnn.yaml --output diag"))
def diagnose(
    source: str = typer.Argument(..., help="YAML config (at init) or run directory (init + checkpoint)"),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    batch: int = typer.Option(32, "--batch", help="validation sequences in the probe batch"),
    output: Optional[str] = typer.Option(None, "--output", "-o",
                                         help="directory for diagnose.json and gradient_flow.png",
                                         show_default="RUN/diagnose"),
    out: Optional[str] = typer.Option(None, "--out", hidden=True),  # the old name of --output
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
):
    """Gradient flow through time, W_hh spectra and gate saturation, at init and after training."""
    from rnncli.tools import diagnose as diag

    report = diag.diagnose(source, set_, batch, output or out, checkpoint)
    console = wide_console()
    for table in diag.render(report):
        console.print(table)
    console.print(f"plot: {report['plot']}")


@app.command(epilog=examples("rnncli compare configs/adding/lstm.yaml --cells lstm,gru,rnn --seeds 3 -q"))
def compare(
    config: str = typer.Argument(..., help="YAML config (only keys valid for every cell)"),
    cells: Optional[str] = typer.Option(None, "--cells", help="comma-separated cells",
                                       show_default="every registered cell"),
    vary: Optional[str] = typer.Option(None, "--vary", help="KEY=a,b,...: vary this key instead of the cell, "
                                       "e.g. model.ablate=none,no_forget_gate"),
    seeds: int = typer.Option(3, "--seeds", help="runs per cell: trainer.seed, seed+1, ..."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    output: Optional[str] = typer.Option(None, "--output", "-o",
                                         help="compare directory",
                                         show_default="run.dir/compare-CONFIG"),
    out: Optional[str] = typer.Option(None, "--dir", hidden=True),  # the old name of --output
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no training progress"),
):
    """Train CONFIG once per cell (or --vary value) and seed; mean ± std table, steps/s, parameters; curves."""
    from rnncli.tools import compare as cmp

    console = wide_console()
    cell_list = None if cells is None else [c.strip() for c in cells.split(",") if c.strip()]
    result = cmp.compare(config, cell_list, seeds, set_, output or out, vary=vary,
                         show_progress=not quiet, on_run=lambda name, status: console.print(f"{name}: {status}"))
    if "interrupted" in result:
        print(f"compare interrupted during {result['interrupted']}; finished runs are in {result['dir']}/results.json."
              f" Run the same command again to resume it and train the rest.", file=sys.stderr, flush=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    console.print(cmp.render(result))
    console.print(f"saved: {result['dir']}/compare.json, compare.csv, {result['plot']}")


@app.command(epilog=examples("rnncli plot runs/demo", "rnncli plot runs/demo runs/demo-slow --output plots"))
def plot(
    runs: List[str] = typer.Argument(..., help="run directories"),
    output: Optional[str] = typer.Option(None, "--output", "-o",
                                         help="output directory",
                                         show_default="RUN/plots for one run"),
    out: Optional[str] = typer.Option(None, "--out", hidden=True),  # the old name of --output
):
    """Loss / metric / learning-rate / gradient-norm curves from metrics.jsonl, as PNG files."""
    from rnncli.tools.plots import plot_runs

    output = output or out
    if output is None and len(runs) > 1:
        raise RnncliError("several runs: give --output DIR for the combined plots")
    written = plot_runs(runs, output or f"{runs[0]}/plots")
    for path in written:
        typer.echo(str(path))


@app.command(epilog=examples("rnncli bench configs/demo.yaml --set model.cell=peephole_lstm --steps 3"))
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
    int8: bool = typer.Option(False, "--int8", help="int8 weights (onnx only; parity checked at a looser tolerance)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
):
    """Write the run as ONNX or TorchScript graphs (explicit state, dynamic batch and time) plus a JSON
    sidecar, after checking them against the PyTorch model on random padded batches."""
    from rnncli.tools.export import export

    result = export(run, fmt, output, int8, checkpoint)
    kind = "int8 vs fp32 model: max abs diff / max(1, max |output|)" if result["int8"] else "max abs diff"
    for name, diff in result["parity"].items():
        typer.echo(f"parity {name}: {kind} {diff:.2e} (tolerance {result['tolerance']:g}; "
                   f"3 lengths x 2 batch sizes, padded)")
    for path in result["files"]:
        typer.echo(f"wrote {path}")


@app.command()
def serve(
    runs: List[str] = typer.Argument(..., help="run directories (or NAME=RUN_DIR)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (default: loopback only)"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    int8: bool = INT8_OPTION,
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
):
    """Serve trained runs over HTTP (JSON): generate, predict, translate, /health, /info."""
    from rnncli.tools.serve import serve as run_server

    def ready(models: dict, url: str) -> None:
        for name, run in models.items():
            typer.echo(f"  {url}/models/{name}  ({run.spec.name}{', int8' if run.int8 else ''})", err=True)
        typer.echo(f"rnncli serve: {len(models)} model(s) on {url} (SIGTERM or Ctrl-C stops)", err=True)

    run_server(runs, host, port, int8, checkpoint, on_ready=ready)


def _write_lines(lines: List[str], output: Optional[str]) -> None:
    """One line each, to stdout or to the file `output`."""
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        _wrote(f"{len(lines)} line{'s' * (len(lines) != 1)}", output)


def _wrote(what: str, path: str) -> None:
    """Say on stderr what an --output file received (stdout stays the data's)."""
    print(f"wrote {what} to {path}", file=sys.stderr, flush=True)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. a deprecated config spelling) as one line: where, and what to write instead."""
    print(f"rnncli: {category.__name__}: {filename}:{lineno}: {message}", file=sys.stderr, flush=True)


def main() -> None:
    warnings.showwarning = _one_line_warning
    app(prog_name="rnncli")  # also under `python -m rnncli`


if __name__ == "__main__":
    main()
