"""Gradient flow through time, gate statistics and recurrent spectra of a `Recurrent` stack.

The numbers behind `rnncli diagnose` (which adds the probe batch, the report and the plot), for any
caller that holds a model and a batch. Why they matter (Bengio et al. 1994; Pascanu et al. 2013):

    h_t = f(W_ih x_t + W_hh h_{t-1})        ∂L/∂h_t = ∂L/∂out_t + J_{t+1}^T ∂L/∂h_{t+1}
                                             J_{t+1} = diag(f'(.)) W_hh

so for a vanilla RNN whose loss reads only h_T, ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ behaves like ρ(W_hh)^(T-1)
(exactly when f is the identity and W_hh = ρ·orthogonal): it vanishes for ρ < 1 and explodes
for ρ > 1. Gated cells add an additive path (c_t = f ⊙ c_{t-1} + ...) that can keep it near 1.

torch's kernels (nn.RNN / nn.LSTM / nn.GRU) hide h_t, so `unroll` re-runs the layer with its
step-level cells (`Recurrent.step_cell`: weights copied) and keeps every h_t as a graph tensor
whose gradient autograd retains. All sequences in the batch are full length. Gate values come
from each cell's own `gate_activations` (its sigmoid gates). As in evaluation, recurrent dropout is
off and zoneout is its expectation, s_t = z s_{t-1} + (1 - z) s_new (rnncli/nn/regularise.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn.regularise import zone
from rnncli.nn.state import hidden, zero_state

SATURATED_LOW, SATURATED_HIGH = 0.05, 0.95


def row_name(rnn: nn.Module, k: int) -> str:
    """'layer 0', 'layer 1 reverse', ... for row k = layer * D + direction."""
    layer, direction = divmod(k, rnn.num_directions)
    return f"layer {layer}" + (" reverse" if direction else "")


# --------------------------------------------------------------------------- gates
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
    layer_in = x.transpose(0, 1)  # (T, B, I)
    hs, gates = [], []
    for layer in range(rnn.num_layers):
        outs = []
        for direction in range(rnn.num_directions):
            k = layer * rnn.num_directions + direction
            seq = layer_in.flip(0) if direction else layer_in
            h_list, g = _run_row(rnn.step_cell(k), seq, float(rnn.zoneout))
            if direction:
                h_list = h_list[::-1]
                g = {name: v[::-1] for name, v in g.items()}
            hs.append(h_list)
            gates.append(g)
            outs.append(torch.stack(h_list))  # (T, B, H)
        layer_in = torch.cat(outs, dim=-1)  # (T, B, D*H); no dropout: diagnose runs in eval mode
    return layer_in.transpose(0, 1), hs, gates


def _run_row(cell: nn.Module, seq: Tensor, zoneout: float = 0.0) -> tuple[list[Tensor], dict]:
    """One cell over seq (T, B, I): the T hidden states and the gate values per step (zoneout: the
    evaluation's expectation, as the layer runs it)."""
    state = zero_state(cell.state_kind, (seq.shape[1], cell.hidden_size), seq.device, seq.dtype)
    xw = F.linear(seq, cell.weight_ih, cell.bias_ih)  # (T, B, G*H)
    h_list, gates = [], {}
    for xw_t in xw.unbind(0):
        new = cell.recurrent_step(xw_t, state)
        new = zone(new, state, zoneout) if zoneout else new
        with torch.no_grad():
            for name, value in cell.gate_activations(xw_t, state, new).items():
                gates.setdefault(name, []).append(value)
        h = hidden(new)
        h.retain_grad()
        h_list.append(h)
        state = new
    return h_list, gates


def gradient_flow(rnn: nn.Module, x: Tensor, loss_fn, keep_gates: bool = False) -> dict:
    """‖∂L/∂h_t‖ for every step and row, plus the loss and gate statistics, for one batch.

    loss_fn(outputs (B, T, D*H)) -> scalar loss. Norms are Frobenius over the batch: (T,) per row.
    keep_gates: also return the gate values themselves, {row: {gate: (T, B, H)}}, as "gate_values".
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
        norms[row_name(rnn, k)] = [0.0 if h.grad is None else float(h.grad.norm()) for h in h_list]
    stats = {row_name(rnn, k): gate_statistics(g) for k, g in enumerate(gates) if g}
    report = {"loss": loss.item(), "grad_norms": norms, "ratio_first_last": _ratios(norms), "gates": stats}
    if keep_gates:
        report["gate_values"] = {row_name(rnn, k): {name: torch.stack(v) for name, v in g.items()}
                                 for k, g in enumerate(gates) if g}
    return report


def _ratios(norms: dict[str, list[float]]) -> dict[str, float | None]:
    """‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ per row (None when the last is 0)."""
    return {row: (n[0] / n[-1] if n[-1] > 0 else None) for row, n in norms.items()}


# --------------------------------------------------------------------------- spectra
@torch.no_grad()
def spectra(rnn: nn.Module) -> list[dict]:
    """Spectral radius and largest singular value of every H x H gate block of every W_hh (none
    for scan cells, which have no W_hh)."""
    rows, names = [], rnn.cell_class.gate_names
    if rnn.cell_class.sequence_kind == "scan":  # no W_hh: nothing recurrent to take the spectrum of
        return rows
    for k in range(rnn.num_layers * rnn.num_directions):
        w = rnn.layer_weights(k)[1].detach().double()  # (G*H, H)
        for name, block in zip(names, w.chunk(len(names), 0)):
            rows.append({"row": row_name(rnn, k), "block": name,
                         "spectral_radius": float(torch.linalg.eigvals(block).abs().max()),
                         "max_singular": float(torch.linalg.matrix_norm(block, ord=2))})
    return rows


def stage_report(rnn: nn.Module, x: Tensor, loss_fn) -> dict:
    """Everything diagnose measures for one set of weights."""
    return {**gradient_flow(rnn, x, loss_fn), "spectra": spectra(rnn)}
