"""Hand-written backpropagation through time for the cells that declare a `bptt_kind`
(rnncli/nn/cells/: lstm, the peephole LSTM and the CIFG LSTM).

One layer and direction is one `torch.autograd.Function`: the forward loop runs without autograd
bookkeeping and saves what the backward needs; the backward runs the reverse loop by hand and
computes the weight gradients after the loop as single large matmuls over all T*B rows:

    forward                                   backward
    A = X W_ih^T + b          (one matmul)    for t = T-1 .. 0:
    for t = 0 .. T-1:                             dA_t = gate gradients from (dh, dc)   (pointwise)
        A_t += h_{t-1} W_hh^T (one matmul)        dh   = dA_t W_hh + dy_{t-1}          (one matmul)
        gates, c_t, h_t       (pointwise,     dW_hh = dA^T H_prev   dW_ih = dA^T X     (one each)
                               in place)      dX = dA W_ih          db = sum(dA)

The equations are the cells' (see `rnncli/nn/cells/lstm.py`, `peephole.py`, `cifg.py`); the cell
class names them (`bptt_kind`) and gives the order its gate blocks take inside (`bptt_gates`, the
one layout of that cell here, in rnncli/nn/fused_cpu.py and in the stepper's compiled step):
the sigmoid gates side by side, then the candidate g, then any gate that sees c_t, so that one op
activates them all:

    bptt_kind   torch order     bptt_gates        one sigmoid call (forward)
    lstm        i, f, g, o      i, f, o, g        i f o g
    peephole    i, f, g, o      i, f, g, o        i f g, then o (it sees c_t)
    cifg        f, g, o         f, o, g           f o g   (i = 1 - f, no weights)

The candidate g goes through the sigmoid too: its weights are doubled for the forward pass and
g = 2 σ(2x) - 1 = tanh(x) (the CPU's sigmoid is ~2x cheaper than its tanh).

Variable lengths: `mask` (T, B, 1) bool; at a padded step the state is carried unchanged and the
step's gate gradients are zero, so the final state is each sequence's last real step.

Zoneout: `zones` (T, 2, B, H), or a float rate at evaluation; the equations and the per-step
closures are in rnncli/nn/bptt_zone.py.

Precision: `compute_dtype` (bfloat16 / float16) is the dtype of the matmul operands only; gates,
cell state, h and every gradient stay float32 (mixed precision).

On the CPU in float32 the per-step matmul uses a weight packed once for oneDNN (`_StepMatmul`,
rnncli/nn/onednn.py) and the pointwise step is one compiled C++ call per step where available
(rnncli/nn/fused_cpu.py); `forward_step` / `backward_step` (rnncli/nn/bptt_steps.py) are the eager form
of the same step.

Exactness against the plain autograd loop is proven in tests/test_bptt.py (float64, 1e-6).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnncli.nn import onednn
from rnncli.nn.bptt_steps import (backward_step, compiled_kernels, forward_step, fused_backward, fused_forward,
                                   step_views)
from rnncli.nn.bptt_zone import zone_backward, zone_forward
from rnncli.nn.cells import cell_class, cells_where
from rnncli.nn.onednn import FixedWeight


def block_permutation(cell: str, hidden_size: int, device=None) -> Tensor:
    """Row index taking torch's gate order to the cell's `bptt_gates` order, (G*H,)."""
    spec, h = cell_class(cell), hidden_size
    order = (spec.gate_names.index(gate) for gate in spec.bptt_gates)
    return torch.cat([torch.arange(b * h, (b + 1) * h, device=device) for b in order])


def double_candidate(cell: str, w: Tensor, hidden: int) -> Tensor:
    """A copy of rows in `bptt_gates` order with the candidate block g times 2, for g = 2 σ(2x) - 1."""
    k = cell_class(cell).bptt_gates.index("g")
    w = w.clone()
    w[k * hidden:(k + 1) * hidden] *= 2
    return w


def lstm_family_layer(
    cell: str, x: Tensor, h0: Tensor, c0: Tensor, weight_ih: Tensor, weight_hh: Tensor,
    bias_ih: Tensor | None, bias_hh: Tensor | None, peepholes: tuple[Tensor, Tensor, Tensor] | None = None,
    mask: Tensor | None = None, compute_dtype: torch.dtype | None = None, h_mask: Tensor | None = None,
    zones: Tensor | float | None = None,
) -> tuple[Tensor, Tensor]:
    """Run one layer and direction: x (T, B, I), h0, c0 (B, H) -> (hs (T, B, H), c_T (B, H)).

    `cell` is a registered cell name with a `bptt_kind`. Weights in torch's layout and gate order
    (as `nn.LSTM` / our cells hold them). `peepholes` = the cell's `extra_params` (weight_ci,
    weight_cf, weight_co of the peephole LSTM), None for cells without. hs[t] is the state after
    step t (carried through padding when `mask` is given; multiply by the mask for zero-padded
    outputs), so hs[-1] is the final h. `h_mask` (B, H): variational recurrent dropout, the recurrent
    matmul reads h_mask ⊙ h_{t-1} at every step (rnncli/nn/regularise.py). `zones`: zoneout, (T, 2, B, H)
    bool (True: the unit of h / c keeps its previous value) or the rate at evaluation (module docstring).
    """
    spec = cell_class(cell)
    if spec.bptt_kind is None:
        supported = ", ".join(cells_where(lambda c: c.bptt_kind is not None))
        raise ValueError(f"hand-written BPTT supports {supported}, not {cell!r}")
    if bool(spec.extra_params) != (peepholes is not None):
        raise ValueError(f"cell {cell!r} takes {len(spec.extra_params)} peephole weights "
                         f"({', '.join(spec.extra_params) or 'none'}), got "
                         f"{'none' if peepholes is None else len(peepholes)}")
    w_ci, w_cf, w_co = peepholes if peepholes is not None else (None, None, None)
    return _LSTMFamily.apply(spec, compute_dtype, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh,
                             w_ci, w_cf, w_co, mask, h_mask, zones)


class _LSTMFamily(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec, compute_dtype, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh,
                w_ci, w_cf, w_co, mask, h_mask, zones):
        steps, batch, _ = x.shape
        hidden = weight_hh.shape[1]
        dtype = torch.promote_types(h0.dtype, torch.float32)  # state / pointwise dtype
        low = compute_dtype if compute_dtype not in (None, dtype) else None
        perm = block_permutation(spec.name, hidden, x.device)
        w_ih = weight_ih.to(dtype)[perm]  # (G*H, I), in bptt_gates order
        w_hh = weight_hh.to(dtype)[perm]  # (G*H, H)
        bias = _combined_bias(bias_ih, bias_hh, w_hh)
        x_mm = x.to(low or dtype)
        w_ih_mm, w_hh_mm = (w_ih.to(low), w_hh.to(low)) if low else (w_ih, w_hh)
        w_ih_2g = double_candidate(spec.name, w_ih_mm, hidden)
        w_hh_2g = double_candidate(spec.name, w_hh_mm, hidden)
        x_rows = x_mm.reshape(steps * batch, -1)  # (T*B, I)
        if bias is None:
            gates = torch.mm(x_rows, w_ih_2g.t()).to(dtype)  # (T*B, G*H)
        elif low:
            gates = torch.mm(x_rows, w_ih_2g.t()).to(dtype) + double_candidate(spec.name, bias[perm], hidden)
        else:  # the bias add rides inside the GEMM
            gates = torch.addmm(double_candidate(spec.name, bias[perm], hidden), x_rows, w_ih_2g.t())
        gates = gates.view(steps, batch, -1)
        hs = x.new_empty((steps + 1, batch, hidden), dtype=dtype)
        cs = torch.empty_like(hs)
        tanh_c = x.new_empty((steps, batch, hidden), dtype=dtype)
        hs[0], cs[0] = h0, c0
        c_new = cs[1:] if zones is None else torch.empty_like(tanh_c)  # c before zoneout (T, B, H)
        full = _full_steps(mask, steps)
        peep = None if w_ci is None else (torch.stack((w_ci, w_cf)).to(dtype), w_co.to(dtype))
        fused = compiled_kernels(h0, low)  # the C++ step where it can run, else the eager closure
        step = forward_step(spec.bptt_kind, peep) if fused is None else fused_forward(fused, spec, peep)
        recurrent = _StepMatmul(w_hh_2g, batch, low)  # h (B, H) -> h W_hh^T (B, G*H)
        views = step_views(spec, gates, hidden)
        h_t, c_t, tc_t = hs.unbind(0), cs.unbind(0), tanh_c.unbind(0)
        per_step = list(zip(*views, c_t[:-1], c_new.unbind(0), tc_t, h_t[1:]))  # views made once, not per step
        zone = None if zones is None else zone_forward(fused, spec, peep, zones, step, hs, cs, c_new)
        for t, args in enumerate(per_step):
            a = args[0]  # (B, G*H): pre-activations, then (in place) activations
            recurrent.add_to(a, h_t[t] if h_mask is None else h_t[t] * h_mask)
            step(*args) if zone is None else zone(t, args)  # zone: the step with zoneout
            if not full[t]:
                keep = mask[t]  # (B, 1) True at real steps
                h_t[t + 1].copy_(torch.where(keep, h_t[t + 1], h_t[t]))
                c_t[t + 1].copy_(torch.where(keep, c_t[t + 1], c_t[t]))
        ctx.spec, ctx.low, ctx.full, ctx.hidden = spec, low, full, hidden
        ctx.peep, ctx.dtypes = peep, (x.dtype, h0.dtype, weight_ih.dtype)
        ctx.has_bias = (bias_ih is not None, bias_hh is not None)
        ctx.h_mask = None if h_mask is None else h_mask.to(dtype)
        ctx.zone_rate = zones if isinstance(zones, float) else None
        zone_masks = zones if isinstance(zones, Tensor) else None
        ctx.save_for_backward(x_mm, w_ih_mm, w_hh_mm, gates, hs, cs, tanh_c, mask, perm, c_new, zone_masks)
        return hs[1:], cs[steps].clone()

    @staticmethod
    def backward(ctx, grad_hs, grad_c):
        x_mm, w_ih_mm, w_hh_mm, gates, hs, cs, tanh_c, mask, perm, c_new, zone_masks = ctx.saved_tensors
        spec, low, full, hidden, peep = ctx.spec, ctx.low, ctx.full, ctx.hidden, ctx.peep
        steps, batch, _ = gates.shape
        dtype = gates.dtype
        grad_hs = torch.zeros_like(hs[1:]) if grad_hs is None else grad_hs.to(dtype).contiguous()
        dc = torch.zeros_like(cs[0]) if grad_c is None else grad_c.to(dtype).clone()
        dh = grad_hs[steps - 1].clone()
        d_pre = torch.empty_like(gates)  # (T, B, G*H) gradients of the pre-activations
        tmp = torch.empty_like(dc)
        fused = compiled_kernels(gates, low)
        step = backward_step(spec.bptt_kind, peep) if fused is None else fused_backward(fused, spec, peep)
        views, d_views = step_views(spec, gates, hidden), step_views(spec, d_pre, hidden)
        c_t, tc_t, g_t = cs.unbind(0), tanh_c.unbind(0), grad_hs.unbind(0)
        per_step = list(zip(*views, *d_views, c_t[:-1], tc_t))
        through = _StepMatmul(w_hh_mm.t(), batch, low)  # d (B, G*H) -> d W_hh (B, H)
        zoned = ctx.zone_rate is not None or zone_masks is not None
        unzone = zone_backward(fused, spec, peep, zone_masks, ctx.zone_rate, step, dc) if zoned else None
        for t in range(steps - 1, -1, -1):
            if not full[t]:
                keep = mask[t].to(dtype)  # (B, 1)
                carry_h, carry_c = dh * (1 - keep), dc * (1 - keep)
                dh, dc = dh * keep, dc * keep
            g_prev = g_t[t - 1] if t > 0 else None  # dL/dh_{t-1} through the output
            if unzone is None:
                step(*per_step[t], dh, dc, tmp)
            else:  # the step with zoneout: dc gets c's kept share, g_prev h's
                g_prev = unzone(t, (*per_step[t], dh, dc, tmp), g_prev)
            if ctx.h_mask is None:
                dh = through.plus(d_views[0][t], g_prev)  # dL/dh_{t-1}
            else:  # the matmul read h_mask ⊙ h_{t-1}
                dh = through.plus(d_views[0][t], None).mul_(ctx.h_mask)
                dh = dh if g_prev is None else dh.add_(g_prev)
            if not full[t]:
                dh = dh + carry_h
                dc = dc + carry_c
        return (None, None) + _weight_grads(ctx, d_pre, x_mm, w_ih_mm, hs, cs, c_new, perm, dh, dc)


class _StepMatmul:
    """The per-step matmul x (B, in) -> x W^T (B, out), W (out, in) fixed for the whole loop.

    On the CPU in float32, W is packed once for oneDNN (`rnncli/nn/onednn.py`, what nn.LSTM's kernel
    does): 25-35% faster per step at hidden 512 than `addmm`, which re-packs W on every call.
    Elsewhere (CUDA, float64, bf16/fp16 operands cast to `low`) it is a plain matmul.
    """

    def __init__(self, weight: Tensor, batch: int, low: torch.dtype | None) -> None:
        self.low = low
        self.fixed = FixedWeight(weight, batch) if low is None and onednn.AVAILABLE and \
            weight.device.type == "cpu" and weight.dtype == torch.float32 else None
        self.weight_t = (weight.to(low) if low else weight).t()  # (in, out)

    def _mm(self, x: Tensor) -> Tensor:
        if self.fixed is not None:
            return self.fixed(x)
        return torch.mm(x.to(self.low) if self.low else x, self.weight_t)

    def add_to(self, out: Tensor, x: Tensor) -> None:
        """out += x W^T, in place."""
        if self.fixed is None and self.low is None:
            out.addmm_(x, self.weight_t)
        else:
            out += self._mm(x)

    def plus(self, x: Tensor, other: Tensor | None) -> Tensor:
        """x W^T + other (a new float tensor)."""
        y = self._mm(x)
        y = y.float() if self.low else y
        return y if other is None else y.add_(other)


def _weight_grads(ctx, d_pre, x_mm, w_ih_mm, hs, cs, c_new, perm, dh0, dc0):
    """Gradients of x, h0, c0 and every weight, as single matmuls over all T*B rows.

    The input and forget peepholes saw c_{t-1} = cs[t] (the state, zoned); the output peephole saw
    c_new[t], the step's new cell state before zoneout (= cs[t + 1] without zoneout)."""
    steps, batch, gh = d_pre.shape
    needs = ctx.needs_input_grad[2:]  # x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_ci, w_cf, w_co
    x_dtype, h_dtype, w_dtype = ctx.dtypes
    low = ctx.low
    rows = d_pre.view(steps * batch, gh)  # (T*B, G*H)
    rows_mm = rows.to(low) if low else rows
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)

    def to_torch_order(grad_internal: Tensor) -> Tensor:
        return grad_internal[inverse].to(w_dtype)

    dx = dw_ih = dw_hh = db = None
    if needs[0]:
        dx = torch.mm(rows_mm, w_ih_mm).view(steps, batch, -1).to(x_dtype)
    if needs[3]:
        dw_ih = to_torch_order(torch.mm(rows_mm.t(), x_mm.reshape(steps * batch, -1)).to(d_pre.dtype))
    if needs[4]:
        h_prev = hs[:steps] if ctx.h_mask is None else hs[:steps] * ctx.h_mask  # what the matmul read
        h_prev = h_prev.reshape(steps * batch, -1)
        h_prev = h_prev.to(low) if low else h_prev
        dw_hh = to_torch_order(torch.mm(rows_mm.t(), h_prev).to(d_pre.dtype))
    if needs[5] or needs[6]:
        db = to_torch_order(rows.sum(0))
    peep_grads = (None, None, None)
    if ctx.peep is not None and any(needs[7:]):
        h = ctx.hidden
        d_i, d_f, d_o = d_pre[..., :h], d_pre[..., h:2 * h], d_pre[..., 3 * h:]  # memory i f g o
        peep_grads = tuple(
            (dg * c).sum((0, 1)).to(w_dtype)
            for dg, c in ((d_i, cs[:steps]), (d_f, cs[:steps]), (d_o, c_new))
        )
    grads = (dx, dh0.to(h_dtype) if needs[1] else None, dc0.to(h_dtype) if needs[2] else None,
             dw_ih, dw_hh, db if ctx.has_bias[0] else None, db if ctx.has_bias[1] else None)
    return grads + peep_grads + (None, None, None)  # mask, h_mask, zones


def _combined_bias(bias_ih: Tensor | None, bias_hh: Tensor | None, like: Tensor) -> Tensor | None:
    if bias_ih is None and bias_hh is None:
        return None
    parts = [b.to(like.dtype) for b in (bias_ih, bias_hh) if b is not None]
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


def _full_steps(mask: Tensor | None, steps: int) -> list[bool]:
    """Per step: True when no sequence is padded there (no masking work needed)."""
    if mask is None:
        return [True] * steps
    return mask.reshape(steps, -1).all(dim=1).tolist()
