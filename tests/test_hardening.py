"""No user input loses a run or prints a traceback (issue 15, section 2): one regression test per
failure class the fuzzing found, each failing on the main of the time."""

from __future__ import annotations

import pytest

from rnncli import api
from rnncli.errors import ConfigError, DataError, TrainingError
from rnncli.tasks import char_lm
from rnncli.training import checkpoint


def _files(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


# --------------------------------------------------------------------------- data loss
@pytest.mark.parametrize("bad, error, message", [
    ("typo.txt", ConfigError, "data.path = .*typo.txt': no such file"),  # found at config time
    ("latin1.txt", DataError, "cannot decode"),  # found when the data is read, after the run dir check
])
def test_overwrite_with_a_bad_data_path_leaves_the_old_run_intact(tmp_path, make_config, bad, error, message):
    path = make_config(trainer={"max_steps": 4, "epochs": None, "val_every": 2})
    api.train(str(path), show_progress=False)
    run_dir = tmp_path / "runs" / "tiny"
    before = _files(run_dir)
    assert {"last.pt", "best.pt", "metrics.jsonl", "config.yaml"} <= before.keys()
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(error, match=message):
        api.train(str(path), ["run.overwrite=true", f"data.path={tmp_path / bad}"], show_progress=False)
    assert _files(run_dir) == before
    assert not list(run_dir.glob(".previous-*"))


def test_overwrite_moves_the_old_run_aside_and_says_so(tmp_path, make_config, capsys):
    path = make_config(trainer={"max_steps": 4, "epochs": None, "val_every": 2})
    api.train(str(path), show_progress=False)
    run_dir = tmp_path / "runs" / "tiny"
    before = _files(run_dir)
    api.train(str(path), ["run.overwrite=true", "trainer.max_steps=2"], show_progress=False)
    (aside,) = run_dir.glob(".previous-*")
    assert _files(aside) == before
    assert checkpoint.load(run_dir / "last.pt")["trainer"]["step"] == 2
    assert f"were moved to {aside}" in capsys.readouterr().err


def test_a_failed_validation_keeps_the_epochs_work(tmp_path, make_config, monkeypatch):
    path = make_config(trainer={"max_steps": 6, "epochs": None, "val_every": 3})

    def broken(self, split, **options):
        raise DataError("dev.txt:3: broken")

    monkeypatch.setattr(char_lm.CharLMTask, "evaluate", broken)
    with pytest.raises(TrainingError, match=r"validation at step 3 failed: dev.txt:3: broken.*saved in .*last.pt"):
        api.train(str(path), show_progress=False)
    assert checkpoint.load(tmp_path / "runs" / "tiny" / "last.pt")["trainer"]["step"] == 3


def test_stale_temporary_checkpoints_are_removed_and_reported(tmp_path, make_config, capsys):
    path = make_config(trainer={"max_steps": 2, "epochs": None})
    api.train(str(path), show_progress=False)
    run_dir = tmp_path / "runs" / "tiny"
    stale = run_dir / "last.pt.k9x_2a.tmp"
    stale.write_bytes(b"half a checkpoint")
    api.train(str(path), ["trainer.max_steps=3"], resume=str(run_dir), show_progress=False)
    assert not stale.exists()
    assert f"removed {stale}" in capsys.readouterr().err
