"""An export-friendly twin of `Recurrent`: the cells' reference step inside a TorchScript time loop.

`Recurrent` runs torch's kernels (with packing) or rnncli's hand-written BPTT, and neither survives
an export: packed sequences do not export, the BPTT is an autograd.Function with C++ kernels, and a
traced Python loop freezes the time axis. `ExportRecurrent` holds the same weights and runs each
cell's own `recurrent_step` (the autograd reference every fast path is tested against) in a loop
that is compiled with TorchScript, so the time axis stays dynamic (an ONNX `Loop`):

    x (B, T, I), lengths (B,), h (L*D, B, H), c (L*D, B, H)
        per layer and direction k = layer*D + direction:
            xw = x W_ih^T + b_ih                       (T, B, G*H), one matmul for all steps
            for t in 0..T-1:                           scripted loop (_TimeLoop)
                h', c' = cell.recurrent_step(xw[t], (h, c))     traced step (_Step)
                h, c = where(t < length, (h', c'), (h, c))     padded steps freeze the state
        -> output (B, T, D*H) zero at padding, final h (L*D, B, H), final c (L*D, B, H)

Cells whose state is h alone still take and return a `c`: it passes through unchanged, and the
export wrappers (rnncli/tools/export/) drop it from the graph's inputs and outputs.
The state is always explicit (no default): a caller streams a long text window by window.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnncli.nn.padding import reverse_padded
from rnncli.nn.recurrent import Recurrent


class _Step(nn.Module):
    """One cell step with a uniform signature: (xw (B, G*H), h, c) -> (h, c)."""

    def __init__(self, cell: nn.Module, has_c: bool) -> None:
        super().__init__()
        self.cell, self.has_c = cell, has_c

    def forward(self, xw: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        if self.has_c:
            return self.cell.recurrent_step(xw, (h, c))
        return self.cell.recurrent_step(xw, h), c


class _TimeLoop(nn.Module):
    """Scripted: the step over time; mask (T, B, 1) bool is True at real steps."""

    def __init__(self, step: nn.Module) -> None:
        super().__init__()
        self.step = step

    def forward(self, xw: Tensor, mask: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        outs: list[Tensor] = []
        for t in range(xw.size(0)):
            h_new, c_new = self.step(xw[t], h, c)
            h = torch.where(mask[t], h_new, h)  # a padded step leaves the state as it was
            c = torch.where(mask[t], c_new, c)
            outs.append(h)
        return torch.stack(outs, 0) * mask.to(h.dtype), h, c  # (T, B, H), zero at padding


class _ZoneoutTimeLoop(nn.Module):
    """`_TimeLoop` with a zoneout rate z, at evaluation's expectation (rnncli/nn/regularise.py):
    s = (1 - z) step + z s_prev. A separate class, not a branch: a scripted `if` on the rate would
    leave ONNX a graph whose state shapes it cannot infer."""

    def __init__(self, step: nn.Module, zoneout: float) -> None:
        super().__init__()
        self.step, self.keep = step, float(zoneout)

    def forward(self, xw: Tensor, mask: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        outs: list[Tensor] = []
        for t in range(xw.size(0)):
            h_new, c_new = self.step(xw[t], h, c)
            h_new = h_new * (1.0 - self.keep) + h * self.keep  # plain arithmetic: every ONNX opset has it
            c_new = c_new * (1.0 - self.keep) + c * self.keep
            h = torch.where(mask[t], h_new, h)
            c = torch.where(mask[t], c_new, c)
            outs.append(h)
        return torch.stack(outs, 0) * mask.to(h.dtype), h, c  # (T, B, H), zero at padding


class ExportRecurrent(nn.Module):
    """The weights of a `Recurrent`, run by the cells' reference step in a scripted loop (see above).

    Cells of the custom layers are shared with `recurrent`; rows of torch's kernels are copies
    (`Recurrent.step_cell`). Inference only: no dropout between layers (eval mode).
    """

    def __init__(self, recurrent: Recurrent) -> None:
        super().__init__()
        self.num_layers, self.num_directions = recurrent.num_layers, recurrent.num_directions
        self.hidden_size = recurrent.hidden_size
        self.has_c = recurrent.cell_class.state_kind == "hc"
        self.zoneout = float(recurrent.zoneout)  # evaluation's expectation; recurrent dropout is off at evaluation
        rows = recurrent.num_layers * recurrent.num_directions
        self.cells = nn.ModuleList(recurrent.step_cell(k) for k in range(rows))
        self.loops = nn.ModuleList(self._loop(cell, recurrent.hidden_size) for cell in self.cells)

    def _loop(self, cell: nn.Module, hidden_size: int) -> torch.jit.ScriptModule:
        """The step traced once (shape-generic pointwise ops), then the loop scripted around it."""
        xw = torch.zeros(2, cell.weight_ih.shape[0], dtype=cell.weight_ih.dtype, device=cell.weight_ih.device)
        h = xw.new_zeros(2, hidden_size)
        with torch.no_grad():
            step = torch.jit.trace(_Step(cell, self.has_c).eval(), (xw, h, h.clone()), check_trace=False)
        loop = _ZoneoutTimeLoop(step, self.zoneout) if self.zoneout > 0 else _TimeLoop(step)
        return torch.jit.script(loop)

    def forward(self, x: Tensor, lengths: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, T, I), lengths (B,) in 1..T, h and c (L*D, B, H) -> (B, T, D*H), h, c."""
        x = x.transpose(0, 1)  # (T, B, I)
        steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)  # (T, 1)
        mask = (steps < lengths.to(x.device).unsqueeze(0)).unsqueeze(2)  # (T, B, 1)
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                seq = reverse_padded(x, lengths, batch_first=False) if direction else x
                xw = F.linear(seq, self.cells[k].weight_ih, self.cells[k].bias_ih)  # (T, B, G*H)
                out, h_k, c_k = self.loops[k](xw, mask, h[k], c[k])
                outs.append(reverse_padded(out, lengths, batch_first=False) if direction else out)
                hs.append(h_k)
                cs.append(c_k)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)  # (T, B, D*H)
        return x.transpose(0, 1), torch.stack(hs), torch.stack(cs)

    def zero_state(self, like: Tensor) -> Tensor:
        """Zeros (L*D, B, H) for the batch of `like` (B, ...)."""
        rows = self.num_layers * self.num_directions
        return like.new_zeros(rows, like.shape[0], self.hidden_size, dtype=self.cells[0].weight_ih.dtype)
