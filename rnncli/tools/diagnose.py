"""Gradient flow through time, recurrent spectra and gate statistics (`rnncli diagnose`).

Why gates matter, measured on one batch (Bengio et al. 1994; Pascanu et al. 2013):

    h_t = f(W_ih x_t + W_hh h_{t-1})        ∂L/∂h_t = ∂L/∂out_t + J_{t+1}^T ∂L/∂h_{t+1}
                                             J_{t+1} = diag(f'(.)) W_hh

so for a vanilla RNN whose loss reads only h_T, ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ behaves like ρ(W_hh)^(T-1)
(exactly when f is the identity and W_hh = ρ·orthogonal): it vanishes for ρ < 1 and explodes
for ρ > 1. Gated cells add an additive path (c_t = f ⊙ c_{t-1} + ...) that can keep it near 1.

torch's fused kernels (nn.RNN / nn.LSTM / nn.GRU) hide h_t, so `unroll` re-runs the layer with
the step-level cells of `rnncli.nn.cells` (weights copied) and keeps every h_t as a graph tensor
whose gradient autograd retains. All sequences in the probe batch are full length.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.errors import ArgumentError, RunError
from rnncli.nn.cells import LSTM_FAMILY, make_cell, zero_state
from rnncli.tasks import spec_of, tasks_that
from rnncli.tasks.base import Probes

GATE_NAMES = {"rnn": ("h",), "lstm": ("i", "f", "g", "o"), "peephole_lstm": ("i", "f", "g", "o"),
              "gru": ("r", "z", "n"), "cifg_lstm": ("f", "g", "o")}  # blocks of weight_hh, in order
SATURATED_LOW, SATURATED_HIGH = 0.05, 0.95


# --------------------------------------------------------------------------- step cells
def step_cells(rnn: nn.Module) -> list[nn.Module]:
    """The step-level cells of a `rnncli.nn.recurrent.Recurrent`, row k = layer * D + direction.

    Custom cells are returned as they are; for fused layers, new cells get the weights
    `rnn.weight_hh_l{layer}{_reverse}` etc. (same layout, so a plain copy).
    """
    if not hasattr(rnn, "rnn"):
        return list(rnn.cells)
    fused = rnn.rnn
    nonlinearity = getattr(fused, "nonlinearity", "tanh")
    cells = []
    for layer in range(rnn.num_layers):
        for direction in range(rnn.num_directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            input_size = rnn.input_size if layer == 0 else rnn.output_size
            cell = make_cell(rnn.cell, input_size, rnn.hidden_size, nonlinearity).to(
                device=fused.weight_hh_l0.device, dtype=fused.weight_hh_l0.dtype)
            with torch.no_grad():
                for name, p in cell.named_parameters():
                    p.copy_(getattr(fused, name + suffix))
            cells.append(cell)
    return cells


def _row_name(rnn: nn.Module, k: int) -> str:
    layer, direction = divmod(k, rnn.num_directions)
    return f"layer {layer}" + (" reverse" if direction else "")


# --------------------------------------------------------------------------- gates
def gate_activations(cell_name: str, cell: nn.Module, xw: Tensor, prev, new) -> dict[str, Tensor]:
    """The sigmoid gates of one step, each (B, H); {} for the Elman RNN."""
    if cell_name == "rnn":
        return {}
    h = prev[0] if isinstance(prev, tuple) else prev
    pre = xw + F.linear(h, cell.weight_hh, cell.bias_hh)  # (B, G*H)
    if cell_name == "gru":
        r, z, _ = pre.chunk(3, 1)
        return {"reset r": torch.sigmoid(r), "update z": torch.sigmoid(z)}
    if cell_name == "cifg_lstm":
        f, _, o = pre.chunk(3, 1)
        return {"forget f (i = 1 - f)": torch.sigmoid(f), "output o": torch.sigmoid(o)}
    i, f, _, o = pre.chunk(4, 1)
    if cell_name == "peephole_lstm":  # the input/forget gates peek at c_{t-1}, the output gate at c_t
        i, f = i + cell.weight_ci * prev[1], f + cell.weight_cf * prev[1]
        o = o + cell.weight_co * new[1]
    return {"input i": torch.sigmoid(i), "forget f": torch.sigmoid(f), "output o": torch.sigmoid(o)}


def gate_statistics(gates: dict[str, list[Tensor]]) -> list[dict]:
    """Mean and saturated fractions (< 0.05, > 0.95) of each gate over batch, steps and units."""
    rows = []
    for name, values in gates.items():
        v = torch.stack(values)  # (T, B, H)
        low, high = float((v < SATURATED_LOW).float().mean()), float((v > SATURATED_HIGH).float().mean())
        rows.append({"gate": name, "mean": float(v.mean()), "saturated": low + high, "low": low, "high": high})
    return rows


# --------------------------------------------------------------------------- unrolling
def unroll(rnn: nn.Module, x: Tensor) -> tuple[Tensor, list[list[Tensor]], list[dict]]:
    """Run `rnn` (a Recurrent, batch_first, eval mode) step by step.

    x (B, T, I) -> output (B, T, D*H), h_t per row k (a list of T tensors (B, H) in time order,
    each retaining its gradient) and per-row gate values {gate: [T tensors (B, H)]}.
    """
    cells = step_cells(rnn)
    layer_in = x.transpose(0, 1)  # (T, B, I)
    hs, gates = [], []
    for layer in range(rnn.num_layers):
        outs = []
        for direction in range(rnn.num_directions):
            k = layer * rnn.num_directions + direction
            seq = layer_in.flip(0) if direction else layer_in
            h_list, g = _run_row(rnn.cell, cells[k], seq)
            if direction:
                h_list = h_list[::-1]
                g = {name: v[::-1] for name, v in g.items()}
            hs.append(h_list)
            gates.append(g)
            outs.append(torch.stack(h_list))  # (T, B, H)
        layer_in = torch.cat(outs, dim=-1)  # (T, B, D*H); no dropout: diagnose runs in eval mode
    return layer_in.transpose(0, 1), hs, gates


def _run_row(cell_name: str, cell: nn.Module, seq: Tensor) -> tuple[list[Tensor], dict]:
    """One cell over seq (T, B, I): the T hidden states and the gate values per step."""
    state = zero_state(cell_name, seq.shape[1], cell.hidden_size, seq.device, seq.dtype)
    xw = F.linear(seq, cell.weight_ih, cell.bias_ih)  # (T, B, G*H)
    h_list, gates = [], {}
    for xw_t in xw.unbind(0):
        new = cell.recurrent_step(xw_t, state)
        with torch.no_grad():
            for name, value in gate_activations(cell_name, cell, xw_t, state, new).items():
                gates.setdefault(name, []).append(value)
        h = new[0] if cell_name in LSTM_FAMILY else new
        h.retain_grad()
        h_list.append(h)
        state = new
    return h_list, gates


def gradient_flow(rnn: nn.Module, x: Tensor, loss_fn) -> dict:
    """‖∂L/∂h_t‖ for every step and row, plus the loss and gate statistics, for one batch.

    loss_fn(outputs (B, T, D*H)) -> scalar loss. Norms are Frobenius over the batch: (T,) per row.
    """
    was_training = rnn.training
    rnn.eval()
    try:
        with torch.enable_grad():
            out, hs, gates = unroll(rnn, x)
            loss = loss_fn(out)
            loss.backward()
    finally:
        rnn.train(was_training)
    norms = {}
    for k, h_list in enumerate(hs):
        norms[_row_name(rnn, k)] = [0.0 if h.grad is None else float(h.grad.norm()) for h in h_list]
    stats = {_row_name(rnn, k): gate_statistics(g) for k, g in enumerate(gates) if g}
    return {"loss": loss.item(), "grad_norms": norms, "ratio_first_last": _ratios(norms), "gates": stats}


def _ratios(norms: dict[str, list[float]]) -> dict[str, float | None]:
    """‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ per row (None when the last is 0)."""
    return {row: (n[0] / n[-1] if n[-1] > 0 else None) for row, n in norms.items()}


# --------------------------------------------------------------------------- spectra
@torch.no_grad()
def spectra(rnn: nn.Module) -> list[dict]:
    """Spectral radius and largest singular value of every H x H block of every W_hh."""
    rows = []
    for k, cell in enumerate(step_cells(rnn)):
        w = cell.weight_hh.detach().double()  # (G*H, H)
        for name, block in zip(GATE_NAMES[rnn.cell], w.chunk(len(GATE_NAMES[rnn.cell]), 0)):
            rows.append({"row": _row_name(rnn, k), "block": name,
                         "spectral_radius": float(torch.linalg.eigvals(block).abs().max()),
                         "max_singular": float(torch.linalg.matrix_norm(block, ord=2))})
    return rows


def stage_report(rnn: nn.Module, x: Tensor, loss_fn) -> dict:
    """Everything diagnose measures for one set of weights."""
    return {**gradient_flow(rnn, x, loss_fn), "spectra": spectra(rnn)}


# --------------------------------------------------------------------------- text rendering
SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 48) -> str:
    """log10 of positive values as a one-line bar chart, averaged down to `width` columns."""
    logs = [math.log10(v) if v > 0 else None for v in values]
    known = [v for v in logs if v is not None]
    if not known:
        return ""
    chunks = [logs[i * len(logs) // width:(i + 1) * len(logs) // width] for i in range(min(width, len(logs)))]
    cols = [[v for v in c if v is not None] for c in chunks]
    lo, hi = min(known), max(known)
    out = []
    for c in cols:
        if not c:
            out.append(" ")
            continue
        level = 0 if hi == lo else round((sum(c) / len(c) - lo) / (hi - lo) * (len(SPARKS) - 1))
        out.append(SPARKS[level])
    return "".join(out)


def render(report: dict) -> list:
    """rich tables for a diagnose report: gradient flow, spectra, gate statistics."""
    from rich.table import Table

    flow = Table(title=f"g_t = ‖∂L/∂h_t‖, t = 1..{report['steps']} ({report['batch']} sequences; "
                       f"sparkline: log scale)")
    for col in ("weights", "row", "loss", "g_1", "g_T", "g_1/g_T", "g_t, t = 1 … T"):
        flow.add_column(col, justify="left" if col in ("weights", "row", "g_t, t = 1 … T") else "right")
    spec = Table(title="recurrent matrix W_hh, per gate block")
    for col in ("weights", "row", "block", "spectral radius", "largest singular value"):
        spec.add_column(col)
    gates = Table(title=f"gates: mean and fraction saturated (< {SATURATED_LOW} or > {SATURATED_HIGH})")
    for col in ("weights", "row", "gate", "mean", "saturated", "< 0.05", "> 0.95"):
        gates.add_column(col)
    for stage, r in report["stages"].items():
        for row, norms in r["grad_norms"].items():
            ratio = r["ratio_first_last"][row]
            flow.add_row(stage, row, f"{r['loss']:.4g}", f"{norms[0]:.3g}", f"{norms[-1]:.3g}",
                         "-" if ratio is None else f"{ratio:.3g}", sparkline(norms, 24))
        for s in r["spectra"]:
            spec.add_row(stage, s["row"], s["block"], f"{s['spectral_radius']:.3f}", f"{s['max_singular']:.3f}")
        for row, stats in r["gates"].items():
            for g in stats:
                gates.add_row(stage, row, g["gate"], f"{g['mean']:.3f}", f"{g['saturated']:.3f}",
                              f"{g['low']:.3f}", f"{g['high']:.3f}")
    return [flow, spec] + ([gates] if gates.row_count else [])


# --------------------------------------------------------------------------- the command
def probe(task, batch_size: int):
    """(recurrent inputs (B, T, I), loss_fn(outputs)) for one validation batch: the task's own probe,
    for the tasks that declare one (`Probes` in rnncli/tasks/__init__.py)."""
    if batch_size < 1:
        raise ArgumentError("batch_size", f"must be >= 1 (got {batch_size})")
    spec = spec_of(task)
    if spec is None or not spec.can(Probes):
        raise RunError(f"diagnose works for the {', '.join(tasks_that(Probes))} tasks "
                       f"(this task's model, {type(task.model).__name__}, has no probe batch)")
    return task.probe(batch_size)


def diagnose(source: str, overrides: list[str] = (), batch_size: int = 32, out_dir: str | None = None,
             which: str = "best") -> dict:
    """Diagnose a config (at initialisation) or a run directory (at init and at its checkpoint).

    Writes diagnose.json and gradient_flow.png to `out_dir` (default: RUN/diagnose, or
    run.dir/diagnose-<task>-<cell> for a config) and returns the report.
    """
    from rnncli import api
    from rnncli.config import load_config
    from rnncli.tasks import task_module
    from rnncli.tools.plots import plot_gradient_flow
    from rnncli.training.trainer import seed_everything

    path = Path(source)
    if path.is_dir():
        cfg, trained, ckpt = api.load_run(source, which, device="cpu")
        trained.load_data()
        default_out = path / "diagnose"
    elif path.is_file():
        cfg, trained, ckpt = load_config(source, overrides), None, None
        default_out = Path(cfg["run"]["dir"]) / f"diagnose-{cfg['task']}-{cfg['model']['cell']}"
    else:
        raise RunError(f"{source}: no such config file or run directory")
    seed_everything(cfg["trainer"]["seed"])  # the same initial weights as `rnncli train`
    fresh = task_module(cfg["task"]).build(cfg, torch.device("cpu"))
    stages = {"init": _stage(fresh, batch_size)}
    if trained is not None:
        stages[f"step {ckpt['trainer']['step']}"] = _stage(trained, batch_size)
    first = next(iter(stages.values()))
    report = {"source": str(source), "task": cfg["task"], "cell": cfg["model"]["cell"],
              "steps": len(next(iter(first["grad_norms"].values()))), "batch": batch_size, "stages": stages}
    out = Path(out_dir) if out_dir else default_out
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnose.json").write_text(json.dumps(report, indent=1))
    report["plot"] = str(plot_gradient_flow(report, out / "gradient_flow.png"))
    return report


def _stage(task, batch_size: int) -> dict:
    x, loss_fn = probe(task, batch_size)
    return stage_report(task.model.rnn, x, loss_fn)
