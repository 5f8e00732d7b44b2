"""The trainer: exact resume, NaN handling, Ctrl-C, atomic checkpoints, schedules, clipping, logs."""

import json
import math
import signal

import pytest
import torch

from rnncli import api
from rnncli.errors import RunError, TrainingError
from rnncli.tasks import char_lm
from rnncli.training import checkpoint
from rnncli.training.trainer import scheduled_lr


def train_losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["step_loss"]) for r in records if r["split"] == "train"]


def test_resume_reproduces_the_straight_run_step_for_step(tmp_path, make_config):
    # dropout > 0 so that the RNG states matter; 2 layers; the resume point is mid-epoch
    model = {"num_layers": 2, "dropout": 0.2}
    straight = make_config(model=model, run={"name": "straight"}, trainer={"max_steps": 16, "epochs": None})
    api.train(str(straight), show_progress=False)
    first = make_config(model=model, run={"name": "halves"}, trainer={"max_steps": 8, "epochs": None})
    api.train(str(first), show_progress=False)
    run_dir = tmp_path / "runs" / "halves"
    assert checkpoint.load(run_dir / "last.pt")["trainer"]["batch_index"] == 8  # mid-epoch: state is carried
    api.train(str(first), ["trainer.max_steps=16"], resume=str(run_dir), show_progress=False)
    a, b = train_losses(tmp_path / "runs" / "straight"), train_losses(run_dir)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, 17))
    for (_, la), (_, lb) in zip(a, b):
        assert la == pytest.approx(lb, abs=1e-6)


def test_resume_refuses_a_changed_model(tmp_path, make_config):
    path = make_config(trainer={"max_steps": 2, "epochs": None})
    api.train(str(path), show_progress=False)
    with pytest.raises(RunError, match=r"model.hidden_size: 16 -> 32"):
        api.train(str(path), ["model.hidden_size=32"], resume=str(tmp_path / "runs" / "tiny"), show_progress=False)


def test_existing_run_dir_is_not_overwritten_by_accident(tmp_path, make_config):
    path = make_config(trainer={"max_steps": 2, "epochs": None})
    api.train(str(path), show_progress=False)
    with pytest.raises(RunError, match=r"already holds a trained run. Resume it, start afresh with run.overwrite=true"):
        api.train(str(path), show_progress=False)
    api.train(str(path), ["run.overwrite=true"], show_progress=False)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_good_checkpoint(tmp_path, make_config, monkeypatch):
    path = make_config(trainer={"max_steps": 30, "epochs": None, "val_every": 5})
    original = char_lm.CharLMTask.train_step
    calls = {"n": 0}

    def poisoned(self, batch, carry):
        calls["n"] += 1
        loss, carry, n = original(self, batch, carry)
        return (loss * float("nan") if calls["n"] == 8 else loss), carry, n

    monkeypatch.setattr(char_lm.CharLMTask, "train_step", poisoned)
    with pytest.raises(TrainingError) as e:
        api.train(str(path), show_progress=False)
    last = tmp_path / "runs" / "tiny" / "last.pt"
    assert "loss became nan at step 8" in str(e.value) and f"the last good checkpoint is {last}" in str(e.value)
    ckpt = checkpoint.load(last)
    assert ckpt["trainer"]["step"] == 5
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_ctrl_c_saves_last_and_the_run_resumes(tmp_path, make_config, monkeypatch, capsys):
    path = make_config(trainer={"max_steps": 12, "epochs": None, "val_every": 100})
    original = char_lm.CharLMTask.train_step
    calls = {"n": 0}

    def interrupted(self, batch, carry):
        calls["n"] += 1
        if calls["n"] == 4:
            signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during step 4
        return original(self, batch, carry)

    monkeypatch.setattr(char_lm.CharLMTask, "train_step", interrupted)
    summary = api.train(str(path), show_progress=True)
    run_dir = tmp_path / "runs" / "tiny"
    assert summary["status"] == "interrupted" and summary["steps"] == 4
    assert checkpoint.load(run_dir / "last.pt")["trainer"]["step"] == 4
    assert f"Interrupted at step 4; saved {run_dir / 'last.pt'}." in capsys.readouterr().err
    summary = api.train(str(path), resume=str(run_dir), show_progress=False)
    assert summary["status"] == "finished" and summary["steps"] == 12


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    checkpoint.save_atomic({"format_version": checkpoint.FORMAT_VERSION, "x": torch.ones(3)}, target)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_atomic({"x": torch.zeros(3)}, target)
    assert torch.equal(checkpoint.load(target)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_schedules():
    t = {"lr": 1.0, "warmup_steps": 4, "schedule": "constant"}
    assert [scheduled_lr(t, s, 100, 1.0) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    t = {"lr": 1.0, "warmup_steps": 0, "schedule": "step", "step_size": 10, "gamma": 0.5}
    assert [scheduled_lr(t, s, 100, 1.0) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    t = {"lr": 1.0, "warmup_steps": 0, "schedule": "cosine", "min_lr": 0.1}
    assert scheduled_lr(t, 0, 100, 1.0) == 1.0 and scheduled_lr(t, 100, 100, 1.0) == pytest.approx(0.1)
    assert scheduled_lr(t, 50, 100, 1.0) == pytest.approx(0.55)
    assert scheduled_lr(t, 50, 100, 0.5) == pytest.approx(0.275)  # plateau factor multiplies


def test_plateau_and_early_stopping(tmp_path, make_config, monkeypatch):
    # validation never improves after the first: lr halves after `plateau_patience` + 1 bad ones,
    # early stopping after 3
    scores = iter([1.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    monkeypatch.setattr(char_lm.CharLMTask, "evaluate", lambda self, split: {"loss": next(scores)})
    path = make_config(trainer={"max_steps": 100, "epochs": None, "val_every": 2, "schedule": "plateau",
                                "plateau_patience": 1, "early_stopping": 3})
    summary = api.train(str(path), show_progress=False)
    assert summary["status"] == "early stopping" and summary["steps"] == 8
    records = [json.loads(x) for x in (tmp_path / "runs/tiny/metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["split"] == "train"]
    assert lrs[:6] == [0.01] * 6 and lrs[6:8] == [0.005] * 2


def test_grad_norm_is_logged_before_clipping_and_clipping_holds(tmp_path, make_config):
    path = make_config(trainer={"max_steps": 5, "epochs": None, "clip_grad_norm": 1e-4, "lr": 0.0})
    api.train(str(path), show_progress=False)
    records = [json.loads(x) for x in (tmp_path / "runs/tiny/metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert len(train) == 5 and all(r["grad_norm"] > 1e-3 for r in train)  # the pre-clip norm
    assert all(r["tokens_per_s"] > 0 and r["lr"] == 0.0 for r in train)
    val = [r for r in records if r["split"] == "val"]
    assert val and val[-1]["bpc"] == pytest.approx(val[-1]["loss"] / math.log(2))


def test_plain_progress_lines_without_a_tty(tmp_path, make_config, capsys):
    path = make_config(trainer={"max_steps": 4, "epochs": None, "log_every": 2})
    api.train(str(path), show_progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.count("step 2/4  epoch 1/1  loss ") == 1 and err.count("step 4/4  epoch 1/1  loss ") == 1
    assert " eta 0s" in err and "step 4/4  validation  loss " in err
    assert "validation" in err and "training summary" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_asking_for_a_missing_device_says_so():
    from rnncli.training.trainer import select_device

    with pytest.raises(TrainingError, match="trainer.device = cuda, but torch sees no CUDA device"):
        select_device("cuda")
    assert select_device("auto").type in ("cpu", "cuda", "mps")


def test_live_bar_on_a_terminal(tmp_path, make_config, capsys, monkeypatch):
    from rnncli.training import progress

    monkeypatch.setattr(progress, "interactive", lambda: True)
    path = make_config(trainer={"max_steps": 4, "epochs": None, "log_every": 2})
    api.train(str(path), show_progress=True)
    err = capsys.readouterr().err
    assert "\r" in err and "4/4" in err  # tqdm redraws one line
    assert "loss=" in err and "tok_s=" in err and "gnorm=" in err
