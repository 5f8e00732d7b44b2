"""Diagnose: unrolled cells match the layer, per-step gradient norms match autograd and theory."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_config
from test_synthetic import synthetic_config

from rnncli import api
from rnncli.errors import RunError
from rnncli.nn.cells import CELL_NAMES, cell_class, cells_where
from rnncli.nn.health import gradient_flow, spectra, unroll
from rnncli.nn.recurrent import Recurrent
from rnncli.tools.diagnose import diagnose, sparkline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_unroll_reproduces_the_layer_for_every_cell(cell, num_layers, bidirectional):
    torch.manual_seed(0)
    # float64: the layer's fast paths (e.g. the compiled layer-norm step) against the cells' own steps
    rnn = Recurrent(cell, 3, 5, num_layers, bidirectional=bidirectional).eval().double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    out, hs, gates = unroll(rnn, x)
    torch.testing.assert_close(out, rnn(x)[0], rtol=0, atol=1e-10)
    assert len(hs) == num_layers * (2 if bidirectional else 1) and all(len(h) == 7 for h in hs)
    assert bool(gates[0]) == bool(cell_class(cell).sigmoid_gates)


@pytest.mark.parametrize("cell", cells_where(lambda c: c.sequence_kind == "loop"))
def test_unroll_runs_zoneout_as_evaluation_does(cell):
    """Zoneout's expectation (s = z s_prev + (1 - z) s_new) in the unrolled steps too, as the layer in eval."""
    torch.manual_seed(0)
    rnn = Recurrent(cell, 3, 5, 2, bidirectional=True, zoneout=0.4, recurrent_dropout=0.3).eval().double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    plain = Recurrent(cell, 3, 5, 2, bidirectional=True, recurrent_dropout=0.3).eval().double()  # same modules
    plain.load_state_dict(rnn.state_dict())
    assert (rnn(x)[0] - plain(x)[0]).abs().max() > 1e-3  # zoneout changes the layer's output
    torch.testing.assert_close(unroll(rnn, x)[0], rnn(x)[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradient_flow_runs_on_every_cell_with_sane_statistics(cell):
    torch.manual_seed(0)
    rnn = Recurrent(cell, 3, 6, 2)
    report = gradient_flow(rnn, torch.randn(4, 9, 3), lambda out: out[:, -1].pow(2).sum())
    assert set(report["grad_norms"]) == {"layer 0", "layer 1"}
    assert all(len(n) == 9 and all(v > 0 for v in n) for n in report["grad_norms"].values())
    for stats in report["gates"].values():
        for g in stats:
            assert 0 < g["mean"] < 1 and g["saturated"] == pytest.approx(g["low"] + g["high"])
    rows = spectra(rnn)
    blocks = cell_class(cell).num_gates if cell_class(cell).sequence_kind == "loop" else 0  # scan: no W_hh
    assert len(rows) == 2 * blocks
    # orthogonal init (the default) -> every block has all singular values 1
    assert all(r["max_singular"] == pytest.approx(1.0, abs=1e-5) for r in rows)


def test_per_step_norms_equal_a_direct_autograd_computation():
    """An independent Elman loop, torch.autograd.grad over every h_t, against diagnose."""
    torch.manual_seed(1)
    rnn = Recurrent("rnn", 3, 4).double()
    x = torch.randn(2, 6, 3, dtype=torch.double)
    target = torch.randn(2, 6, 4, dtype=torch.double)
    loss_fn = lambda out: (out - target).pow(2).mean()  # noqa: E731  (every step feeds the loss)
    report = gradient_flow(rnn, x, loss_fn)
    p = {n: getattr(rnn.rnn, n + "_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    h, hs = torch.zeros(2, 4, dtype=torch.double), []
    for t in range(6):
        h = torch.tanh(x[:, t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"])
        hs.append(h)
    grads = torch.autograd.grad(loss_fn(torch.stack(hs, 1)), hs)
    assert report["grad_norms"]["layer 0"] == pytest.approx([float(g.norm()) for g in grads], rel=1e-10)


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5])
def test_linear_regime_gradient_ratio_is_radius_to_the_T_minus_1(radius):
    """Tiny inputs keep tanh' = 1, so ∂L/∂h_1 = (W_hh^T)^(T-1) ∂L/∂h_T with W_hh = radius * Q."""
    torch.manual_seed(2)
    T, H = 20, 8
    rnn = Recurrent("rnn", 2, H).double()
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.double))
        rnn.rnn.weight_hh_l0.copy_(radius * q)
    x = 1e-7 * torch.randn(3, T, 2, dtype=torch.double)
    report = gradient_flow(rnn, x, lambda out: out[:, -1].sum())  # the loss reads h_T only
    assert report["ratio_first_last"]["layer 0"] == pytest.approx(radius ** (T - 1), rel=1e-6)
    norms = report["grad_norms"]["layer 0"]
    assert norms[-1] == pytest.approx((3 * H) ** 0.5)  # ∂L/∂h_T = ones (B, H)
    assert norms[T // 2] / norms[-1] == pytest.approx(radius ** (T - 1 - T // 2), rel=1e-6)
    assert spectra(rnn)[0]["spectral_radius"] == pytest.approx(radius)


def test_diagnose_a_run_writes_json_and_png_for_init_and_checkpoint(tmp_path):
    path = write_config(tmp_path, synthetic_config(tmp_path, "adding", cell="gru"))
    run = api.train(str(path), show_progress=False)["run_dir"]
    report = diagnose(run, batch_size=4)
    assert list(report["stages"]) == ["init", "step 6"]
    assert report["steps"] == 8 and report["batch"] == 4
    saved = json.loads((tmp_path / "runs" / "adding-gru" / "diagnose" / "diagnose.json").read_text())
    assert saved["stages"]["init"]["grad_norms"] == report["stages"]["init"]["grad_norms"]
    assert open(report["plot"], "rb").read(8) == PNG_SIGNATURE
    # the init stage of a config equals the init stage of the run trained from it (same seed)
    again = diagnose(str(path), batch_size=4, out_dir=str(tmp_path / "d"))
    assert again["stages"]["init"]["grad_norms"] == report["stages"]["init"]["grad_norms"]
    assert list(again["stages"]) == ["init"]


def test_diagnose_names_a_missing_source(tmp_path):
    with pytest.raises(RunError, match="nope: no such config file or run directory"):
        diagnose(str(tmp_path / "nope"))


def test_sparkline_spans_low_to_high_on_a_log_scale():
    assert sparkline([1e-6, 1e-3, 1.0], width=3) == "▁▅█"
    assert len(sparkline([1.0] * 100, width=10)) == 10


def test_diagnose_names_tasks_without_a_probe_batch():
    from types import SimpleNamespace

    from rnncli.tools.diagnose import probe

    with pytest.raises(RunError, match="diagnose works for the char_lm, adding, copy_memory tasks "
                                       r"\(this task's model, Linear, has no probe batch\)"):
        probe(SimpleNamespace(model=torch.nn.Linear(1, 1)), 4)


def test_diagnose_a_char_lm_config_probes_one_bptt_window(make_config, tmp_path):
    report = diagnose(str(make_config()), batch_size=2, out_dir=str(tmp_path / "d"))
    assert report["steps"] == 16 and set(report["stages"]) == {"init"}
    assert {g["gate"] for g in report["stages"]["init"]["gates"]["layer 0"]} == {"input i", "forget f", "output o"}
