"""`rnncli export`: a trained run as ONNX or TorchScript graphs plus one JSON sidecar, parity-checked.

    export(run_dir, fmt) ──► api.load_run ──► graphs.GRAPHS[task] (wrappers with explicit state)
        ──► backends.write each graph into a temporary folder ──► run the written files back
        ──► parity: max |exported - PyTorch| over random inputs of 3 lengths x 2 batch sizes
            (the larger batch padded); above the tolerance nothing is written
        ──► move the graphs and `model.json` (sidecar.py) into the output folder

The PyTorch side of the parity check is the trained model itself (torch's kernels with packing,
or rnncli's hand-written BPTT), so the check covers the swap to the reference step too.
Beam search is not a graph: the decoder-step graph is what a beam loop calls (reorder the state
rows with the beams); the shipped loop is greedy.

With `int8` (ONNX only) each graph that passed the fp32 check is quantized by onnxruntime's
`quantize_dynamic` (backends.quantize_onnx: int8 weights one scale per row, uint8 activations
quantized per call) and checked again against the same fp32 PyTorch model with a looser tolerance,
INT8_TOLERANCE relative to the largest output magnitude (int8 rounding, not a bug, is what it allows).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from rnncli import api
from rnncli.errors import ArgumentError, RnncliError, RunError
from rnncli.nn.recurrent import Recurrent
from rnncli.tools.export import backends, graphs, sidecar
from rnncli.tools.export.backends import FORMATS, MissingExtra

TOLERANCE = 1e-4  # float32
INT8_TOLERANCE = 0.05  # int8 graphs: max |int8 - fp32| <= INT8_TOLERANCE * max(1, max |fp32 output|)
SIDECAR = "model.json"
PARITY_CASES = ((1, 1), (1, 6), (1, 17), (4, 1), (4, 6), (4, 17))  # (batch, steps); batch > 1 is padded

__all__ = ["FORMATS", "INT8_TOLERANCE", "MissingExtra", "ParityError", "TOLERANCE", "export", "export_task"]


class ParityError(RnncliError):
    """The exported graph does not compute what the PyTorch model computes."""


def _check_arguments(fmt: str, int8: bool, tolerance: float) -> None:
    if fmt not in FORMATS:
        raise ArgumentError("format", f"must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if int8 and fmt != "onnx":
        raise ArgumentError("int8", f"applies to the onnx format only (got format {fmt!r}): TorchScript "
                                    f"cannot hold rnncli's int8 kernels; use format 'onnx'")
    if not tolerance > 0:
        raise ArgumentError("tolerance", f"must be > 0 (got {tolerance})")
    if fmt == "onnx":
        backends.require_onnx()


def parity(graph, runner, seed: int = 0, relative: bool = False) -> dict:
    """Max abs difference between the written graph and the PyTorch model over PARITY_CASES
    (`relative`: divided by max(1, the largest |output| of the case))."""
    gen = torch.Generator().manual_seed(seed)
    worst, cases = 0.0, []
    for batch, steps in PARITY_CASES:
        inputs = graph.sample(batch, steps, batch > 1, gen)
        with torch.no_grad():
            expected = graph.reference(*inputs)
        got = runner(*inputs)
        diff = max(float((g.float() - e.float()).abs().max()) for g, e in zip(got, expected))
        if relative:  # int8: the difference in units of the largest output magnitude (at least 1)
            diff /= max([1.0] + [float(e.float().abs().max()) for e in expected])
        worst = max(worst, diff)
        cases.append({"batch": batch, "steps": steps, "padded": batch > 1, "max_abs_diff": diff})
    return {"max_abs_diff": worst, "cases": cases}


def default_output(run_dir: str, fmt: str) -> Path:
    return Path(run_dir) / "export" / fmt


def export(run_dir: str, fmt: str = "onnx", output: str | None = None, int8: bool = False, which: str = "best",
           tolerance: float = TOLERANCE) -> dict:
    """Export a trained run; returns {"output", "files", "parity": {graph: max abs diff}, "tolerance"}.

    `output` is a folder (default RUN/export/FORMAT): one file per graph plus model.json. Raises
    ParityError (and writes nothing) when a graph differs from the model by more than `tolerance`.
    """
    _check_arguments(fmt, int8, tolerance)
    cfg, task, ckpt = api.load_run(run_dir, which, device="cpu")
    if any(isinstance(m, Recurrent) and m.state_kind == "hc+gates" for m in task.model.modules()):
        raise RunError(f"{run_dir}: model.ablate full_gate_recurrence carries the gates in the recurrent state; "
                       f"export handles (h, c) states only, so this run cannot be exported yet")
    out_dir = Path(output) if output is not None else default_output(run_dir, fmt)
    return export_task(cfg, task, fmt, out_dir, str(run_dir), ckpt["trainer"]["step"], tolerance, int8)


def export_task(cfg: dict, task, fmt: str, out_dir: Path, run: str = "", step: int = 0,
                tolerance: float = TOLERANCE, int8: bool = False) -> dict:
    """Export a task object (a restored run, or a freshly built one in tests) into `out_dir`;
    `int8`: then quantize each graph and check it again (INT8_TOLERANCE, relative)."""
    _check_arguments(fmt, int8, tolerance)
    model = task.model.eval()
    if out_dir.exists() and not out_dir.is_dir():
        raise ArgumentError("output", f"must be a folder (got the file {out_dir})")
    entries, report = {}, {}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".export-") as tmp:
        for graph in graphs.GRAPHS[cfg["task"]](model, task):
            file = graph.name + backends.SUFFIX[fmt]
            example = graph.sample(2, 3, True, torch.Generator().manual_seed(1))
            backends.write(graph, example, fmt, Path(tmp) / file)
            runner = backends.Runner(fmt, Path(tmp) / file, graph.inputs)
            result = parity(graph, runner)
            _refuse_above(result, tolerance, f"{graph.name}: the exported {fmt} graph")
            if int8:
                runner = backends.Runner(fmt, backends.quantize_onnx(Path(tmp) / file), graph.inputs)
                result = {"fp32": result, **parity(graph, runner, relative=True)}
                _refuse_above(result, INT8_TOLERANCE, f"{graph.name}: the int8 {fmt} graph", "relative ")
            entries[graph.name] = sidecar.graph_entry(graph, file, example, runner(*example))
            report[graph.name] = result
        limits = {"tolerance": tolerance, **({"int8": True, "int8_tolerance": INT8_TOLERANCE} if int8 else {})}
        meta = sidecar.sidecar(fmt, cfg, run, step, task, model, entries, {**limits, **report})
        (Path(tmp) / SIDECAR).write_text(json.dumps(meta, ensure_ascii=False, indent=1))
        out_dir.mkdir(exist_ok=True)
        files = [e["file"] for e in entries.values()] + [SIDECAR]
        for name in files:
            shutil.move(str(Path(tmp) / name), str(out_dir / name))
    return {"output": str(out_dir), "files": [str(out_dir / f) for f in files],
            "parity": {name: r["max_abs_diff"] for name, r in report.items()},
            "tolerance": INT8_TOLERANCE if int8 else tolerance, "int8": int8}


def _refuse_above(result: dict, tolerance: float, what: str, kind: str = "") -> None:
    if result["max_abs_diff"] > tolerance:
        raise ParityError(f"{what} differs from the PyTorch model by {kind}{result['max_abs_diff']:.3g} "
                          f"(tolerance {tolerance:g}); nothing was written")
