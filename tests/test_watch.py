"""Watching a run: TensorBoard event files (read back with tensorboard's EventAccumulator) and the
health line (gradient norm, clipping, saturated gates, g_1/g_T warnings)."""

from __future__ import annotations

import sys

import pytest

from rnncli import api
from rnncli.errors import ConfigError
from rnncli.training.health_line import HealthLine, flow_warning
from rnncli.training.progress import Progress

from conftest import REPO, tiny_config, write_config


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc.Tags()


def test_a_char_lm_run_writes_scalars_text_histograms_and_gradient_flow(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = tiny_config(tmp_path, model={"cell": "gru"}, trainer={"epochs": 1, "val_every": 5, "clip_grad_norm": 0.5},
                      run={"tensorboard": True})  # gru: no C++ kernels to build for the sample
    api.train(str(write_config(tmp_path, cfg)), show_progress=False)
    tags = _events(tmp_path / "runs" / "tiny")
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/clipped", "val/loss",
                "val/bpc", "val/ppl", "health/saturated_gates", "health/g1_over_gT/layer_0"):
        assert tag in tags["scalars"], (tag, tags["scalars"])
    assert {"gates/layer_0/reset_r", "gates/layer_0/update_z"} <= set(tags["histograms"])
    assert "gradient_flow" in tags["images"]
    assert any(t.startswith("samples") for t in tags["tensors"])  # text summaries are tensors


def test_a_seq2seq_run_writes_its_attention_map_and_translations(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    monkeypatch.chdir(REPO)
    overrides = ["data.max_pairs=120", "model.hidden_size=8", "model.embedding_dim=8", "trainer.epochs=1",
                 "trainer.device=cpu", f"run.dir={tmp_path}", "run.name=s2s", "run.tensorboard=true"]
    api.train("configs/seq2seq/reverse.yaml", overrides, show_progress=False)
    tags = _events(tmp_path / "s2s")
    assert "attention" in tags["images"] and "val/bleu" in tags["scalars"]
    assert any(t.startswith("samples") for t in tags["tensors"])


def test_a_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    cfg = tiny_config(tmp_path, run={"tensorboard": True})
    with pytest.raises(ConfigError, match=r"run.tensorboard: true needs .*pip install 'rnncli\[tensorboard\]'"):
        api.train(str(write_config(tmp_path, cfg)), show_progress=False)
    assert not (tmp_path / "runs" / "tiny").exists()  # refused before any work


# --------------------------------------------------------------------------- the health line
class _Probe:
    def __init__(self, ratio, saturated):
        self.report = {"ratio_first_last": {"layer 0": ratio}, "saturated": saturated}

    def at(self, step):
        return self.report


class _Shown:
    def __init__(self):
        self.lines = []

    def health(self, line, final=False):
        self.lines.append((line, final))


@pytest.mark.parametrize("ratio, warning", [(1e-5, "VANISHING"), (0.5, ""), (2e4, "EXPLODING")])
def test_health_line_shows_clipping_saturation_and_warns_on_vanishing_or_exploding_flow(ratio, warning):
    shown = _Shown()
    line = HealthLine(_Probe(ratio, 0.125), clip_grad_norm=1.0)
    line.attach(shown)
    line.write({"step": 10, "split": "train", "grad_norm": 4.2, "clipped": 7, "steps": 10})
    assert shown.lines[-1] == ("health  grad_norm 4.2 (clipped 7/10 steps)", False)
    line.write({"step": 10, "split": "val", "loss": 1.0})
    text, final = shown.lines[-1]
    assert final and "gates saturated 12.5%" in text and f"g_1/g_T {ratio:.1e}" in text
    assert text.endswith(warning) and flow_warning(ratio) == warning


def test_without_a_terminal_the_health_line_is_a_log_line_at_validation(capsys):
    progress = Progress(10, enabled=True)  # pytest's stderr is not a TTY
    progress.health("health  grad_norm 1", final=False)
    progress.health("health  grad_norm 2  VANISHING", final=True)
    progress.close()
    assert capsys.readouterr().err == "health  grad_norm 2  VANISHING\n"
