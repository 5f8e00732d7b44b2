"""`impl` says which path runs (auto | bptt | autograd); its old spelling 'fused' still works, with a
FutureWarning, in the Python API, in configs, and in old runs' saved configs and checkpoints."""

from __future__ import annotations

import warnings

import pytest
import torch
import yaml

from rnncli import api
from rnncli.config import load_config, upgrade
from rnncli.nn.recurrent import Recurrent
from rnncli.training import checkpoint


@pytest.mark.parametrize("cell", ["lstm", "gru", "cifg_lstm"])
def test_old_impl_spelling_warns_once_and_runs_the_auto_paths(cell):
    torch.manual_seed(0)
    new = Recurrent(cell, 3, 4, num_layers=2)
    with pytest.warns(FutureWarning, match=r"impl='fused' is deprecated: write impl='auto'") as record:
        old = Recurrent(cell, 3, 4, num_layers=2, impl="fused")
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller's line
    old.load_state_dict(new.state_dict())
    assert old.impl == new.impl == "auto" and old.path() == new.path()
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 3])
    for a, b in zip(old(x, lengths), new(x, lengths)):
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            assert torch.equal(u, v)


def test_old_impl_in_a_config_file_names_the_file_and_line(make_config):
    path = make_config(model={"cell": "peephole_lstm", "impl": "fused"})
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines()) if "impl:" in text)
    with pytest.warns(FutureWarning, match=r"model\.impl = 'fused' is deprecated: write 'bptt'") as record:
        cfg = load_config(path)
    assert cfg["model"]["impl"] == "bptt"
    assert (record[0].filename, record[0].lineno) == (str(path), line)


def test_old_impl_from_set_names_the_override(make_config):
    with pytest.warns(FutureWarning, match=r"^override model\.impl=fused: model\.impl = 'fused' is deprecated"):
        cfg = load_config(make_config(model={"cell": "cifg_lstm"}), ["model.impl=fused"])
    assert cfg["model"]["impl"] == "bptt"


def test_upgrade_renames_silently_and_leaves_the_input_alone(make_config):
    saved = load_config(make_config(model={"cell": "peephole_lstm"}))
    saved["model"]["impl"] = "fused"  # as rnncli wrote it before the rename
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        now = upgrade(saved)
    assert now["model"]["impl"] == "bptt" and saved["model"]["impl"] == "fused"
    assert {k: v for k, v in now.items() if k != "model"} == {k: v for k, v in saved.items() if k != "model"}


def test_a_run_saved_with_the_old_spelling_evaluates_and_resumes(make_config, tmp_path):
    path = make_config(model={"cell": "peephole_lstm"}, trainer={"epochs": None, "max_steps": 4, "val_every": 2})
    api.train(str(path), show_progress=False)
    run = tmp_path / "runs" / "tiny"
    for name in ("best.pt", "last.pt"):  # make the run look as an older rnncli wrote it
        ckpt = checkpoint.load(run / name)
        ckpt["config"]["model"]["impl"] = "fused"
        checkpoint.save_atomic(ckpt, run / name)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["model"]["impl"] = "fused"
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    before = api.evaluate(str(run))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # evaluating an old run is silent
        assert api.evaluate(str(run)) == before
    with pytest.warns(FutureWarning, match="'fused' is deprecated") as record:  # resuming reads config.yaml
        api.train(resume=str(run), overrides=["trainer.max_steps=6"], show_progress=False)
    assert [w.filename for w in record] == [str(run / "config.yaml")]
    assert checkpoint.load(run / "last.pt")["trainer"]["step"] == 6
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["impl"] == "bptt"
