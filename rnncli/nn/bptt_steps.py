"""The pointwise part of one step of the LSTM family's hand-written BPTT (rnncli/nn/bptt.py), in its
two forms: the eager closures `forward_step` / `backward_step` (one per cell kind, the equations in
torch ops) and `fused_forward` / `fused_backward`, the compiled C++ step (rnncli/nn/fused_cpu.py)
behind the same signature; `step_views` makes the per-step views of the gate buffer both take.
"""
from __future__ import annotations

import torch
from torch import Tensor

from rnncli.nn import fused_cpu


def compiled_kernels(like: Tensor, low):
    """The compiled fused-step kernels (rnncli/nn/fused_cpu.py) for float32 CPU tensors, else None."""
    if low is not None or like.dtype != torch.float32 or like.device.type != "cpu":
        return None
    return fused_cpu.kernels()


def fused_forward(module, spec, peep):
    """The C++ forward step behind the eager step's signature: (*views, c_prev, c, tanh_c, h)."""
    kid, _, w_cif, w_co = fused_cpu.step_args(spec, peep)

    def step(*args):
        module.forward_step(kid, args[0], *args[-4:], w_cif, w_co)
    return step


def fused_backward(module, spec, peep):
    """The C++ backward step: (*views, *d_views, c_prev, tanh_c, dh, dc, tmp)."""
    kid, n_views, w_cif, w_co = fused_cpu.step_args(spec, peep)

    def step(*args):
        module.backward_step(kid, args[0], args[n_views], args[-5], args[-4], args[-3], args[-2], w_cif, w_co)
    return step


def step_views(spec, buf: Tensor, hidden: int) -> list[tuple[Tensor, ...]]:
    """Per-step views of a (T, B, G*H) gate buffer, made once (slicing per step costs more than
    the ops), each a tuple over t: [all, forward-sigmoid block, backward-sigmoid block, gates...].

    Gates are listed in `bptt_gates` order. The forward-sigmoid block runs up to g included (g's
    rows are doubled), the backward-sigmoid block up to g excluded (g's gradient is tanh's).
    """
    h, g_at = hidden, spec.bptt_gates.index("g")
    blocks = [buf[..., k * h:(k + 1) * h] for k in range(spec.num_gates)]
    views = [buf, buf[..., :(g_at + 1) * h], buf[..., :g_at * h]] + blocks
    return [v.unbind(0) for v in views]


def forward_step(kind: str, peep):
    """The pointwise part of one forward step (a closure per kind keeps the loop free of ifs).

    On entry `a` holds the pre-activations, with the g block doubled (its weights were scaled
    by 2), so one sigmoid serves every gate: tanh(x) = 2 σ(2x) - 1, and σ is ~2x cheaper.
    """
    if kind == "cifg":  # rows [f o g]
        def step(a, fsig, bsig, f, o, g, c_prev, c, tanh_c, h):
            fsig.sigmoid_()
            g.mul_(2).sub_(1)  # tanh of the candidate
            torch.sub(c_prev, g, out=c)  # c_t = f c + (1 - f) g = g + f (c - g)
            c.mul_(f).add_(g)
            torch.tanh(c, out=tanh_c)
            torch.mul(o, tanh_c, out=h)
    elif kind == "lstm":  # rows [i f o g]
        def step(a, fsig, bsig, i, f, o, g, c_prev, c, tanh_c, h):
            fsig.sigmoid_()
            g.mul_(2).sub_(1)
            torch.mul(f, c_prev, out=c)
            c.addcmul_(i, g)
            torch.tanh(c, out=tanh_c)
            torch.mul(o, tanh_c, out=h)
    else:  # peephole, rows [i f g o]; i, f see c_{t-1}; o sees c_t
        w_cif, w_co = peep
        hidden = w_co.shape[0]

        def step(a, fsig, bsig, i, f, g, o, c_prev, c, tanh_c, h):
            bsig.view(-1, 2, hidden).addcmul_(w_cif, c_prev.unsqueeze(1))
            fsig.sigmoid_()  # i, f, g
            g.mul_(2).sub_(1)
            torch.mul(f, c_prev, out=c)
            c.addcmul_(i, g)
            o.addcmul_(w_co, c).sigmoid_()
            torch.tanh(c, out=tanh_c)
            torch.mul(o, tanh_c, out=h)
    return step


def backward_step(kind: str, peep):
    """One reverse step: write the pre-activation gradients into the d_* views; dc -> dc_{t-1}.

    dh, dc (B, H) hold dL/dh_t and dL/dc_t (the latter from later steps only) on entry.
    Gradients are with respect to the unscaled pre-activations (g as tanh).
    """
    sig_bw = torch.ops.aten.sigmoid_backward.grad_input  # grad * y * (1 - y), one kernel
    tanh_bw = torch.ops.aten.tanh_backward.grad_input  # grad * (1 - y^2), one kernel
    if kind == "cifg":
        def step(a, fsig, bsig, f, o, g, d, d_fsig, d_bsig, d_f, d_o, d_g, c_prev, tanh_c, dh, dc, tmp):
            torch.mul(dh, tanh_c, out=d_o)  # dL/do
            torch.mul(dh, o, out=tmp)
            dc.add_(tanh_bw(tmp, tanh_c, grad_input=tmp))  # through h = o tanh(c)
            torch.sub(c_prev, g, out=d_f).mul_(dc)  # dL/df = dc (c_{t-1} - g)
            torch.mul(dc, f, out=d_g)
            torch.sub(dc, d_g, out=d_g)  # dL/dg = dc (1 - f)
            sig_bw(d_bsig, bsig, grad_input=d_bsig)  # f, o
            tanh_bw(d_g, g, grad_input=d_g)
            dc.mul_(f)  # dc_{t-1} = dc f
    elif kind == "lstm":
        def step(a, fsig, bsig, i, f, o, g, d, d_fsig, d_bsig, d_i, d_f, d_o, d_g, c_prev, tanh_c,
                 dh, dc, tmp):
            torch.mul(dh, tanh_c, out=d_o)
            torch.mul(dh, o, out=tmp)
            dc.add_(tanh_bw(tmp, tanh_c, grad_input=tmp))
            torch.mul(dc, g, out=d_i)
            torch.mul(dc, c_prev, out=d_f)
            torch.mul(dc, i, out=d_g)
            sig_bw(d_bsig, bsig, grad_input=d_bsig)  # i, f, o
            tanh_bw(d_g, g, grad_input=d_g)
            dc.mul_(f)
    else:  # peephole
        w_cif, w_co = peep

        def step(a, fsig, bsig, i, f, g, o, d, d_fsig, d_bsig, d_i, d_f, d_g, d_o, c_prev, tanh_c,
                 dh, dc, tmp):
            torch.mul(dh, tanh_c, out=d_o)
            sig_bw(d_o, o, grad_input=d_o)  # o = σ(... + w_co c_t): d_o feeds dc
            torch.mul(dh, o, out=tmp)
            dc.add_(tanh_bw(tmp, tanh_c, grad_input=tmp)).addcmul_(d_o, w_co)
            torch.mul(dc, g, out=d_i)
            torch.mul(dc, c_prev, out=d_f)
            torch.mul(dc, i, out=d_g)
            sig_bw(d_bsig, bsig, grad_input=d_bsig)  # i, f
            tanh_bw(d_g, g, grad_input=d_g)
            dc.mul_(f).addcmul_(d_i, w_cif[0]).addcmul_(d_f, w_cif[1])  # i, f saw c_{t-1}
    return step
