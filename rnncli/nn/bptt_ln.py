"""Hand-written backpropagation through time for the layer-normalised cells (Ba et al. 2016):
LN-LSTM and LN-GRU (rnncli/nn/cells/ln_lstm.py, ln_gru.py, whose `bptt_kind` names them here).

One layer and direction is one `torch.autograd.Function`, as in rnncli/nn/bptt.py for the LSTM
family. What does not depend on h runs once for all T*B rows; the loop keeps one matmul and one
compiled pointwise call per step (rnncli/nn/fused_ln.py):

    forward                                          backward
    XW = X W_ih^T              (one matmul)           for t = T-1 .. 0:
    for t = 0 .. T-1:                                     dXW_t, dHW_t = fused step(dh, dc)
        HW_t = h_{t-1} W_hh^T  (one matmul)                   (both layer norms, LN(c); adds to the
        fused step: LN_ih(XW_t), LN_hh(HW_t),                  gain / beta gradient sums)
                    gates, c, LN(c), h                    dh = dHW_t W_hh + dy_{t-1}        (one matmul)
                    (one C++ call)                    dW_hh = dHW^T H_prev, dW_ih = dXW^T X, dX = dXW W_ih

Saved for the backward: the normalised rows of XW and HW_t with their rstd, the gate activations,
h and c, the normalised c with its rstd and tanh(LN(c)) — nothing else. (LN-GRU runs LN_ih once for
all T*B rows with torch's layer norm before the loop and its backward after it: the simpler form,
already at 0.9x nn.LSTM's speed or above in benchmarks/ln_paths.py.) The large buffers come from
`POOL` (rnncli/nn/buffers.py), reused from one training step to the next once nothing holds them:
at 64x512 fresh 52 MB buffers every step cost page faults worth 0.07-0.2x of nn.LSTM's speed.

Runs where the compiled kernels do (float32 / float64 on the CPU, no autocast): `unavailable()`
says why not, and the layer then runs the cells' autograd loop. Variable lengths (`mask` (T, B, 1))
and recurrent dropout (`h_mask` (B, H)) follow bptt.py. Proven equal to the autograd loop in
tests/test_bptt_ln.py (float64: outputs 1e-10, gradients 1e-6; gradcheck).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnncli.nn import fused_ln
from rnncli.nn.buffers import BufferPool
from rnncli.nn.onednn import FixedWeight

KINDS = ("ln_lstm", "ln_gru")  # the cells' bptt_kind values this module runs
EPS = 1e-5  # the cells' (F.layer_norm's default)
POOL = BufferPool()  # the large (T, B, G) and (T, B, H) buffers, reused across training steps when free


def unavailable(device_type: str, dtype: torch.dtype, autocast: bool) -> str | None:
    """Why the layer-normalised BPTT cannot run here, or None when it can."""
    if device_type != "cpu":
        return f"its compiled step is CPU-only (here: {device_type})"
    if autocast:
        return "autocast: the compiled step is float32 / float64 only"
    if dtype not in (torch.float32, torch.float64):
        return f"the compiled step is float32 / float64 only (here: {str(dtype).replace('torch.', '')})"
    if fused_ln.kernels() is None:
        return "no compiled layer-norm kernels (no C++ compiler, or RNNCLI_FUSED_CPU=0)"
    return None


def ln_layer(kind: str, x: Tensor, state, weight_ih: Tensor, weight_hh: Tensor, extra: tuple,
             mask: Tensor | None = None, h_mask: Tensor | None = None):
    """One layer and direction: x (T, B, I), state h or (h, c) (B, H) -> (hs (T, B, H), final state).

    `extra` = the cell's `extra_params` in its order (gains and betas; a beta may be None). hs[t] is
    the state after step t, carried through padding; hs[-1] is the final h.
    """
    module = fused_ln.kernels()
    if kind == "ln_lstm":
        h0, c0 = state
        g_ih, b_ih, g_hh, b_hh, g_c, b_c = extra
        hs, c = _LNLSTM.apply(module, x, h0, c0, weight_ih, weight_hh, g_ih, b_ih, g_hh, b_hh, g_c, b_c,
                              mask, h_mask)
        return hs, (hs[-1], c)
    if kind == "ln_gru":
        g_ih, b_ih, g_hh, b_hh = extra
        hs = _LNGRU.apply(module, x, state, weight_ih, weight_hh, g_ih, b_ih, g_hh, b_hh, mask, h_mask)
        return hs, hs[-1]
    raise ValueError(f"layer-normalised BPTT runs {', '.join(KINDS)}, not {kind!r}")


def _input_norm(x: Tensor, weight_ih: Tensor, gain: Tensor, beta: Tensor | None):
    """XW = X W_ih^T and LN_ih(XW) for all T*B rows: (xw (T*B, G), a (T*B, G), mean, rstd)."""
    steps, batch, _ = x.shape
    xw = POOL.empty((steps * batch, weight_ih.shape[0]), x)  # (T*B, G)
    torch.mm(x.reshape(steps * batch, -1), weight_ih.t(), out=xw)
    a, mean, rstd = POOL.empty(xw.shape, x), x.new_empty((xw.shape[0], 1)), x.new_empty((xw.shape[0], 1))
    torch.ops.aten.native_layer_norm.out(xw, [xw.shape[1]], gain, beta, EPS, out0=a, out1=mean, out2=rstd)
    return xw, a, mean, rstd


def _input_norm_backward(ctx, d_a: Tensor, x: Tensor, xw: Tensor, mean, rstd, weight_ih, gain, beta):
    """(dx, dW_ih, dγ_ih, dβ_ih) from d_a = dL/dLN_ih(XW) (T*B, G)."""
    needs_x, needs_w, needs_g, needs_b = ctx.input_needs
    steps, batch, _ = x.shape
    d_xw, d_gain, d_beta = torch.ops.aten.native_layer_norm_backward(
        d_a, xw, [xw.shape[1]], mean, rstd, gain, beta, [needs_x or needs_w, needs_g, needs_b and beta is not None])
    dx = torch.mm(d_xw, weight_ih).view(steps, batch, -1) if needs_x else None
    dw = torch.mm(d_xw.t(), x.reshape(steps * batch, -1)) if needs_w else None
    return dx, dw, d_gain, d_beta


def _empty(t: Tensor | None, like: Tensor) -> Tensor:
    return like.new_empty(0) if t is None else t.contiguous()


def _full_steps(mask: Tensor | None, steps: int) -> list[bool]:
    """Per step: True when no sequence is padded there (no masking work needed)."""
    return [True] * steps if mask is None else mask.reshape(steps, -1).all(dim=1).tolist()


class _LNLSTM(torch.autograd.Function):
    """LN-LSTM: the compiled step also normalises the step's row of XW (in place) and sums the
    gain / beta gradients, so the loop's only (T, B, 4H) buffers are XW, the activations and X̂_hh."""

    @staticmethod
    def forward(ctx, module, x, h0, c0, w_ih, w_hh, g_ih, b_ih, g_hh, b_hh, g_c, b_c, mask, h_mask):
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        x_rows = x.reshape(steps * batch, -1)  # (T*B, I)
        gates = w_ih.shape[0]
        xw = torch.mm(x_rows, w_ih.t(), out=POOL.empty((steps * batch, gates), x)).view(steps, batch, gates)
        # xw (T, B, 4H) is normalised in place below
        betas = [b for b in (b_ih, b_hh) if b is not None]
        beta = x.new_empty(0) if not betas else sum(betas[1:], betas[0]).contiguous()  # β_ih + β_hh
        act, xh = POOL.empty(xw.shape, x), POOL.empty(xw.shape, x)  # activations i f g o; X̂_hh
        rih, rh = x.new_empty((steps, batch)), x.new_empty((steps, batch))  # rstd of each row's LN
        hs, cs = POOL.empty((steps + 1, batch, hidden), x), POOL.empty((steps + 1, batch, hidden), x)
        hs[0], cs[0] = h0, c0
        ch, tu, rc = POOL.empty(hs[1:].shape, x), POOL.empty(hs[1:].shape, x), x.new_empty((steps, batch))
        full, recurrent = _full_steps(mask, steps), FixedWeight(w_hh, batch)
        g_ih_, g_hh_, g_c_, b_c_ = g_ih.contiguous(), g_hh.contiguous(), g_c.contiguous(), _empty(b_c, x)
        h_t, c_t = hs.unbind(0), cs.unbind(0)
        per_step = list(zip(xw.unbind(0), rih.unbind(0), act.unbind(0), xh.unbind(0), rh.unbind(0), c_t[:-1],
                            c_t[1:], ch.unbind(0), rc.unbind(0), tu.unbind(0), h_t[1:]))
        for t, (xw_t, ri_t, a_t, xh_t, rh_t, cp_t, c_new, ch_t, rc_t, tu_t, h_new) in enumerate(per_step):
            hw = recurrent(h_t[t] if h_mask is None else h_t[t] * h_mask)  # (B, 4H)
            module.ln_lstm_forward(xw_t, ri_t, g_ih_, beta, a_t, hw, xh_t, rh_t, g_hh_, cp_t, c_new, ch_t, rc_t,
                                   tu_t, h_new, g_c_, b_c_, EPS)
            if not full[t]:
                keep = mask[t]  # (B, 1) True at real steps
                h_new.copy_(torch.where(keep, h_new, h_t[t]))
                c_new.copy_(torch.where(keep, c_new, cp_t))
        ctx.module, ctx.full, ctx.h_mask = module, full, h_mask
        ctx.has_beta = (b_ih is not None, b_hh is not None, b_c is not None)
        ctx.save_for_backward(x_rows, w_ih, w_hh, g_ih, g_hh, g_c, xw, rih, act, xh, rh, hs, cs, ch, rc, tu, mask)
        return hs[1:], cs[steps].clone()

    @staticmethod
    def backward(ctx, grad_hs, grad_c):
        x_rows, w_ih, w_hh, g_ih, g_hh, g_c, xih, rih, act, xh, rh, hs, cs, ch, rc, tu, mask = ctx.saved_tensors
        steps, batch, gates = act.shape
        grad_hs = torch.zeros_like(hs[1:]) if grad_hs is None else grad_hs.contiguous()
        dc = torch.zeros_like(cs[0]) if grad_c is None else grad_c.clone().contiguous()
        dh = grad_hs[steps - 1].clone()
        dxw, dhw = POOL.empty(act.shape, act), POOL.empty(act.shape, act)
        dz, du = act.new_empty((batch, gates)), act.new_empty((batch, gates // 4))  # per-step scratch
        sums = [act.new_zeros(n, dtype=torch.float64) for n in (gates, gates, gates, gates // 4, gates // 4)]
        through, g_ih_, g_hh_, g_c_ = FixedWeight(w_hh.t(), batch), g_ih.contiguous(), g_hh.contiguous(), \
            g_c.contiguous()
        per_step = list(zip(act.unbind(0), xih.unbind(0), rih.unbind(0), xh.unbind(0), rh.unbind(0),
                            cs.unbind(0)[:-1], ch.unbind(0), rc.unbind(0), tu.unbind(0), dxw.unbind(0),
                            dhw.unbind(0)))
        g_t, full, h_mask = grad_hs.unbind(0), ctx.full, ctx.h_mask
        for t in range(steps - 1, -1, -1):
            a_t, xi_t, ri_t, xh_t, rh_t, cp_t, ch_t, rc_t, tu_t, dxw_t, dhw_t = per_step[t]
            if not full[t]:
                keep = mask[t].to(dh.dtype)  # (B, 1)
                carry_h, carry_c = dh * (1 - keep), dc * (1 - keep)
                dh, dc = dh * keep, dc * keep
            ctx.module.ln_lstm_backward(a_t, xi_t, ri_t, g_ih_, xh_t, rh_t, g_hh_, cp_t, ch_t, rc_t, tu_t, g_c_,
                                        dh, dc, dz, du, dxw_t, dhw_t, *sums)
            dh = through(dhw_t)  # dL/dh_{t-1} through the recurrent matmul
            dh = dh if h_mask is None else dh.mul_(h_mask)
            dh = dh if t == 0 else dh.add_(g_t[t - 1])
            if not full[t]:
                dh, dc = dh + carry_h, dc + carry_c
        rows, dtype = steps * batch, act.dtype
        dxw, dhw = dxw.view(rows, gates), dhw.view(rows, gates)
        dx = torch.mm(dxw, w_ih).view(steps, batch, -1) if ctx.needs_input_grad[1] else None
        dw_ih = torch.mm(dxw.t(), x_rows) if ctx.needs_input_grad[4] else None
        h_prev = hs[:steps] if h_mask is None else hs[:steps] * h_mask  # what the matmul read
        dw_hh = torch.mm(dhw.t(), h_prev.reshape(rows, -1))
        dg_ih, dg_hh, db, dg_c, db_c = (s.to(dtype) for s in sums)
        b_ih, b_hh, b_c = ctx.has_beta
        return (None, dx, dh, dc, dw_ih, dw_hh, dg_ih, db if b_ih else None, dg_hh, db if b_hh else None,
                dg_c, db_c if b_c else None, None, None)


class _LNGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, module, x, h0, w_ih, w_hh, g_ih, b_ih, g_hh, b_hh, mask, h_mask):
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        xw, a, mean, rstd = _input_norm(x, w_ih, g_ih, b_ih)
        a = a.view(steps, batch, -1)  # (T, B, 3H): LN_ih(xw), then the activations r z n
        hs = POOL.empty((steps + 1, batch, hidden), x)
        hs[0] = h0
        xh, rh = POOL.empty(a.shape, x), x.new_empty((steps, batch))
        full, recurrent = _full_steps(mask, steps), FixedWeight(w_hh, batch)
        g_hh_, b_hh_ = g_hh.contiguous(), _empty(b_hh, x)
        h_t = hs.unbind(0)
        for t, (a_t, xh_t, rh_t, h_new) in enumerate(zip(a.unbind(0), xh.unbind(0), rh.unbind(0), h_t[1:])):
            hw = recurrent(h_t[t] if h_mask is None else h_t[t] * h_mask)  # (B, 3H)
            module.ln_gru_forward(a_t, hw, xh_t, rh_t, g_hh_, b_hh_, h_t[t], h_new, EPS)
            if not full[t]:
                h_new.copy_(torch.where(mask[t], h_new, h_t[t]))
        ctx.module, ctx.full, ctx.h_mask = module, full, h_mask
        ctx.input_needs = (ctx.needs_input_grad[1], ctx.needs_input_grad[3], ctx.needs_input_grad[5],
                           ctx.needs_input_grad[6])
        ctx.has_beta = b_hh is not None
        ctx.save_for_backward(x, w_ih, w_hh, g_ih, b_ih, g_hh, b_hh, xw, mean, rstd, a, xh, rh, hs, mask)
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_hs):
        x, w_ih, w_hh, g_ih, b_ih, g_hh, b_hh, xw, mean, rstd, a, xh, rh, hs, mask = ctx.saved_tensors
        steps, batch, gates = a.shape
        grad_hs = torch.zeros_like(hs[1:]) if grad_hs is None else grad_hs.contiguous()
        dh = grad_hs[steps - 1].clone()
        da, db, dhw = (POOL.empty(a.shape, a) for _ in range(3))
        through, g_hh_, b_hh_ = FixedWeight(w_hh.t(), batch), g_hh.contiguous(), _empty(b_hh, x)
        per_step = list(zip(a.unbind(0), xh.unbind(0), rh.unbind(0), hs.unbind(0)[:-1], da.unbind(0),
                            db.unbind(0), dhw.unbind(0)))
        g_t, full, h_mask = grad_hs.unbind(0), ctx.full, ctx.h_mask
        for t in range(steps - 1, -1, -1):
            a_t, xh_t, rh_t, hp_t, da_t, db_t, dhw_t = per_step[t]
            if not full[t]:
                keep = mask[t].to(dh.dtype)  # (B, 1)
                carry_h, dh = dh * (1 - keep), dh * keep
            ctx.module.ln_gru_backward(a_t, xh_t, rh_t, g_hh_, b_hh_, hp_t, dh, da_t, db_t, dhw_t)  # dh := dh z
            d_mm = through(dhw_t)  # dL/dh_{t-1} through the recurrent matmul
            dh = dh.add_(d_mm if h_mask is None else d_mm.mul_(h_mask))
            dh = dh if t == 0 else dh.add_(g_t[t - 1])
            if not full[t]:
                dh = dh + carry_h
        rows = steps * batch
        dx, dw_ih, dg_ih, db_ih = _input_norm_backward(ctx, da.view(rows, gates), x, xw, mean, rstd, w_ih,
                                                       g_ih, b_ih)
        h_prev = hs[:steps] if h_mask is None else hs[:steps] * h_mask
        dw_hh = torch.mm(dhw.view(rows, gates).t(), h_prev.reshape(rows, -1))
        db_hh = db.view(rows, gates).sum(0) if ctx.has_beta else None
        dg_hh = db.mul_(xh).view(rows, gates).sum(0)  # db is scratch: no (T, B, 3H) temporary
        return (None, dx, dh, dw_ih, dw_hh, dg_ih, db_ih, dg_hh, db_hh, None, None)
