"""plot: PNG files from metrics.jsonl; the CLI wires them up and names missing runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_config
from test_synthetic import synthetic_config
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.errors import RunError
from rnncli.tools.plots import plot_runs, series

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("plots")
    out = []
    for cell in ("rnn", "gru"):
        cfg = synthetic_config(tmp_path, "adding", cell=cell)
        out.append(api.train(str(write_config(tmp_path, cfg, f"{cell}.yaml")), show_progress=False)["run_dir"])
    return out


def test_plot_runs_writes_valid_pngs(runs, tmp_path):
    written = plot_runs(runs, tmp_path / "plots")
    assert [p.name for p in written] == ["loss.png", "metrics.png", "lr.png", "grad_norm.png"]
    for path in written:
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000


def test_series_reads_one_split(runs):
    from rnncli.tools.plots import read_metrics

    steps, values = series(read_metrics(runs[0]), "val", "accuracy")  # every 3 steps (val_every: 3)
    assert steps == [3, 6] and all(0 <= v <= 1 for v in values)


def test_plot_cli_defaults_to_run_plots_and_names_a_missing_run(runs, tmp_path):
    result = CliRunner().invoke(app, ["plot", runs[0]])
    assert result.exit_code == 0, result.output
    assert (Path(runs[0]) / "plots" / "grad_norm.png").exists()
    result = CliRunner().invoke(app, ["plot", *runs])
    assert result.exit_code != 0 and "several runs: give --output DIR" in result.output
    with pytest.raises(RunError, match="nowhere: no metrics.jsonl here"):
        plot_runs([str(tmp_path / "nowhere")], tmp_path / "p")
