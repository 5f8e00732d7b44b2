"""Layer-normalised LSTM and GRU (Ba et al. 2016): the written-out equations in float64, the layer
under bf16 autocast, the char-LM config. (Layer gradcheck, stepper, diagnose and every task run them
through the tests that enumerate the registry.)"""

from __future__ import annotations

import torch
from conftest import REPO

from rnncli.config import load_config
from rnncli.nn.recurrent import Recurrent

H = 4


def ln(a, gain, beta, eps=1e-5):
    """Layer normalisation over the last axis, written out."""
    mean = a.mean(-1, keepdim=True)
    var = (a - mean).pow(2).mean(-1, keepdim=True)
    return gain * (a - mean) / torch.sqrt(var + eps) + beta


def reference_ln_lstm(x, p):
    h = c = x.new_zeros(x.shape[0], H)
    outs = []
    for x_t in x.unbind(1):
        z = ln(x_t @ p["weight_ih"].t(), p["ln_ih_weight"], p["ln_ih_bias"]) + \
            ln(h @ p["weight_hh"].t(), p["ln_hh_weight"], p["ln_hh_bias"])
        i, f, g, o = z.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ln(c, p["ln_c_weight"], p["ln_c_bias"]))
        outs.append(h)
    return torch.stack(outs, 1), (h, c)


def reference_ln_gru(x, p):
    h, outs = x.new_zeros(x.shape[0], H), []
    for x_t in x.unbind(1):
        a_r, a_z, a_n = ln(x_t @ p["weight_ih"].t(), p["ln_ih_weight"], p["ln_ih_bias"]).chunk(3, 1)
        b_r, b_z, b_n = ln(h @ p["weight_hh"].t(), p["ln_hh_weight"], p["ln_hh_bias"]).chunk(3, 1)
        r, z = torch.sigmoid(a_r + b_r), torch.sigmoid(a_z + b_z)
        h = (1 - z) * torch.tanh(a_n + r * b_n) + z * h
        outs.append(h)
    return torch.stack(outs, 1), h


def _randomised(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, 3, H).double()
    with torch.no_grad():  # gains and betas away from 1 and 0, so each one is tested
        for name, p in layer.cells[0].named_parameters():
            if name.startswith("ln_"):
                p.add_(0.3 * torch.randn_like(p))
    return layer, dict(layer.cells[0].named_parameters())


def test_ln_lstm_follows_ba_et_al_in_float64():
    layer, params = _randomised("ln_lstm")
    x = torch.randn(2, 7, 3, dtype=torch.double)
    out, (h, c) = layer(x)
    ref_out, (ref_h, ref_c) = reference_ln_lstm(x, params)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-10)
    torch.testing.assert_close(c[0], ref_c, rtol=0, atol=1e-10)
    grads = torch.autograd.grad(out.pow(2).sum(), list(params.values()))
    ref_grads = torch.autograd.grad(ref_out.pow(2).sum(), list(params.values()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-6)


def test_ln_gru_follows_ba_et_al_in_float64():
    layer, params = _randomised("ln_gru")
    x = torch.randn(2, 7, 3, dtype=torch.double)
    out, h = layer(x)
    ref_out, ref_h = reference_ln_gru(x, params)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-10)
    torch.testing.assert_close(h[0], ref_h, rtol=0, atol=1e-10)


def test_ln_cells_train_under_bf16_autocast():
    torch.manual_seed(0)
    for cell in ("ln_lstm", "ln_gru"):
        layer = Recurrent(cell, 3, H, num_layers=2)
        with torch.autocast("cpu", torch.bfloat16):
            out, _ = layer(torch.randn(2, 5, 3), torch.tensor([5, 3]))
            assert layer.paths()[0][1] == "plain autograd loop"  # the compiled LN step is fp32 / fp64 only
        out.float().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_the_shipped_ln_lstm_config_resolves():
    cfg = load_config(REPO / "configs" / "char_lm" / "ln_lstm.yaml")
    assert cfg["model"]["cell"] == "ln_lstm" and cfg["model"]["forget_bias"] == 1.0
