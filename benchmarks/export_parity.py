"""Exported graphs against the PyTorch model: parity and ms per batch, ONNX Runtime vs PyTorch.

For each task and cell it builds the task from a shipped config (random weights: speed and parity do
not depend on training), exports it to ONNX with `rnncli.tools.export.export_task` (which checks
parity on its own random cases), then times one padded batch (`--batch` sequences of up to
`--steps` steps) through

    pytorch   the model itself, as `rnncli eval` / `predict` run it (torch's kernels with packing,
              or the hand-written BPTT's forward for the custom cells), no gradients
    ort       the exported graph in onnxruntime (CPU, default session options)

alternating round by round (`--rounds`), and prints the medians, the median per-round ratio and the
max abs difference on the timed batch. Threads: torch and onnxruntime both get `--threads`.

    python benchmarks/export_parity.py                                  # every task x every cell
    python benchmarks/export_parity.py --tasks char_lm --cells lstm,peephole_lstm --set model.hidden_size=512
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from statistics import median

import torch

from rnncli.config import load_config
from rnncli.nn.cells import CELL_NAMES
from rnncli.tasks import task_module
from rnncli.tools.export import backends, export_task, graphs

CONFIGS = {"char_lm": "configs/demo.yaml", "classify": "configs/classify/demo.yaml", "ner": "configs/ner/demo.yaml",
           "seq2seq": "configs/seq2seq/demo.yaml", "adding": "configs/adding/lstm.yaml"}


def build(task_name: str, cell: str, overrides: list[str]):
    cfg = load_config(CONFIGS[task_name], [f"model.cell={cell}", "trainer.device=cpu", *overrides])
    torch.manual_seed(0)
    task = task_module(task_name).build(cfg, torch.device("cpu"))
    return cfg, task


def timed(fn, inputs) -> float:
    start = time.perf_counter()
    fn(*inputs)
    return (time.perf_counter() - start) * 1000


def bench(task_name: str, cell: str, args) -> dict:
    cfg, task = build(task_name, cell, args.set)
    with tempfile.TemporaryDirectory() as tmp:
        result = export_task(cfg, task, "onnx", Path(tmp) / "out")
        graph = graphs.GRAPHS[task_name](task.model.eval(), task)[0]  # the first graph (seq2seq: the encoder)
        runner = backends.Runner("onnx", Path(tmp) / "out" / f"{graph.name}.onnx", graph.inputs, args.threads)
        inputs = graph.sample(args.batch, args.steps, args.batch > 1, torch.Generator().manual_seed(0))
        with torch.no_grad():
            reference = torch.no_grad()(graph.reference)
            diff = max(float((a - b).abs().max()) for a, b in zip(runner(*inputs), reference(*inputs)))
            for fn in (reference, runner):  # warm-up
                fn(*inputs)
            ms = {"pytorch": [], "ort": []}
            for _ in range(args.rounds):
                ms["pytorch"].append(timed(reference, inputs))
                ms["ort"].append(timed(runner, inputs))
    ratios = [p / o for p, o in zip(ms["pytorch"], ms["ort"])]
    return {"task": task_name, "cell": cell, "graph": graph.name, "export_parity": max(result["parity"].values()),
            "timed_diff": diff, "pytorch_ms": median(ms["pytorch"]), "ort_ms": median(ms["ort"]),
            "speedup": median(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(CONFIGS))
    parser.add_argument("--cells", default=",".join(CELL_NAMES))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. model.hidden_size=256")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import os

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    warnings.simplefilter("ignore")
    print(f"batch {args.batch} (padded), up to {args.steps} steps, {args.rounds} alternating rounds, "
          f"{args.threads} thread(s); ms per batch, medians")
    print(f"{'task':<9} {'cell':<14} {'graph':<8} {'export parity':>13} {'diff here':>9} "
          f"{'pytorch ms':>10} {'ort ms':>8} {'pytorch/ort':>11}")
    for task_name in args.tasks.split(","):
        for cell in args.cells.split(","):
            r = bench(task_name, cell, args)
            print(f"{r['task']:<9} {r['cell']:<14} {r['graph']:<8} {r['export_parity']:>13.2e} {r['timed_diff']:>9.1e} "
                  f"{r['pytorch_ms']:>10.2f} {r['ort_ms']:>8.2f} {r['speedup']:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
