"""Data-parallel training (rnncli/training/distributed.py): every distributed path is checked
against one process. The torchrun tests start real gloo process groups on the CPU (2 processes,
tiny models, timeouts); the accumulation tests run in this process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rnncli import api
from rnncli.data.batching import split_index
from rnncli.errors import ConfigError
from rnncli.training import checkpoint
from tests.conftest import REPO

NER_DEMO = REPO / "configs" / "ner" / "demo.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def records(run_dir: Path, split: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def assert_same_losses(a: Path, b: Path, tol: float) -> None:
    for split in ("train", "val"):
        ra, rb = records(a, split), records(b, split)
        assert [r["step"] for r in ra] == [r["step"] for r in rb] and ra
        for x, y in zip(ra, rb):
            keys = ["step_loss"] if split == "train" else [
                k for k, v in x.items() if k != "elapsed_s" and isinstance(v, (int, float))]
            for key in keys:
                assert x[key] == pytest.approx(y[key], abs=tol), (split, x["step"], key)


def torchrun(args: list[str], timeout: float = 120, worker: str = "-m rnncli") -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           *worker.split(), *args]
    return subprocess.run(cmd, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def ner_config(tmp_path: Path, name: str, **trainer) -> Path:
    cfg = yaml.safe_load(NER_DEMO.read_text())
    for key in ("train", "val", "test"):
        cfg["data"][key] = str(REPO / cfg["data"][key])
    cfg["model"].update(dropout=0.0, hidden_size=16)
    cfg["trainer"].update(epochs=None, max_steps=36, val_every=12, log_every=1, **trainer)
    cfg["run"] = {"dir": str(tmp_path / "runs"), "name": name}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# --------------------------------------------------------------------------- sharding, in one process
@pytest.mark.parametrize("parts", [2, 3, 4])
@pytest.mark.parametrize("size", [1, 2, 5, 7, 16])
def test_split_index_covers_each_example_once_and_pads_with_stand_ins(parts, size):
    index = list(range(100, 100 + size))
    pieces = split_index(index, parts)
    assert len(pieces) == parts  # every rank / accumulation step gets a piece
    real = [i for piece, is_real in pieces if is_real for i in piece]
    assert sorted(real) == index
    assert all(piece == index[:1] for piece, is_real in pieces if not is_real)
    sizes = [len(piece) for piece, is_real in pieces if is_real]
    assert max(sizes) - min(sizes) <= 1


def test_char_lm_streams_that_do_not_divide_are_a_config_error(tmp_path, make_config):
    path = make_config(trainer={"batch_size": 4, "accumulate": 3, "max_steps": 2, "epochs": None})
    with pytest.raises(ConfigError, match=r"trainer.batch_size = 4 .* multiple of 3"):
        api.train(str(path), show_progress=False)


def test_accumulation_equals_the_whole_batch_on_a_crf_tagger(tmp_path):
    # batch 7 on 240 sentences leaves a last batch of 2: with 4 pieces, two are weight-0 stand-ins
    whole, pieces = ner_config(tmp_path, "whole", batch_size=7), ner_config(tmp_path, "acc", batch_size=7, accumulate=4)
    api.train(str(whole), show_progress=False)
    api.train(str(pieces), show_progress=False)
    assert_same_losses(tmp_path / "runs" / "whole", tmp_path / "runs" / "acc", 1e-5)


def test_accumulation_equals_the_whole_batch_on_seq2seq(tmp_path):
    cfg = yaml.safe_load((REPO / "configs" / "seq2seq" / "reverse.yaml").read_text())
    for key in ("path", "train", "val", "test", "source_path", "target_path"):
        if isinstance(cfg["data"].get(key), str):
            cfg["data"][key] = str(REPO / cfg["data"][key])
    cfg["model"].update(dropout=0.0, hidden_size=16, embedding_dim=8)
    cfg["trainer"].update(epochs=None, max_steps=6, val_every=3, log_every=1, batch_size=10,
                          teacher_forcing=1.0, beam_size=1)
    runs = {}
    for name, acc in (("whole", 1), ("acc", 3)):
        cfg["trainer"]["accumulate"] = acc
        cfg["run"] = {"dir": str(tmp_path / "runs"), "name": name}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        runs[name] = api.train(str(tmp_path / f"{name}.yaml"), show_progress=False)
    assert_same_losses(tmp_path / "runs" / "whole", tmp_path / "runs" / "acc", 1e-5)


# --------------------------------------------------------------------------- torchrun, 2 processes
def test_two_processes_equal_one_and_agree_on_every_weight(tmp_path, make_config):
    sets = {"model": {"hidden_size": 16, "dropout": 0.0}, "trainer": {"max_steps": 12, "epochs": None,
                                                                    "val_every": 4, "log_every": 1}}
    one = make_config(run={"name": "one", "dir": str(tmp_path / "runs")}, **sets)
    api.train(str(one), show_progress=False)
    two = make_config(run={"name": "two", "dir": str(tmp_path / "runs")}, **sets)
    out = tmp_path / "digests.json"
    done = torchrun([str(out), "train", str(two), "--quiet"], worker="tests/ddp_worker.py")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_losses(tmp_path / "runs" / "one", tmp_path / "runs" / "two", 1e-5)
    report = json.loads(out.read_text())
    assert report["step"] == 12 and len(report["digests"]) == 2 and len(set(report["digests"])) == 1
    ckpt = checkpoint.load(tmp_path / "runs" / "two" / "last.pt")
    assert ckpt["ranks"]["world"] == 2 and len(ckpt["ranks"]["rng"]) == 2 and len(ckpt["ranks"]["carry"]) == 2


def test_uneven_buckets_on_two_processes_with_accumulation_equal_one_process(tmp_path):
    one = ner_config(tmp_path, "one", batch_size=7)
    api.train(str(one), show_progress=False)
    two = ner_config(tmp_path, "two", batch_size=7, accumulate=2)  # 4 pieces; the last batch has 2 sentences
    done = torchrun(["train", str(two), "--quiet"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_losses(tmp_path / "runs" / "one", tmp_path / "runs" / "two", 1e-5)


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        path = run_dir / "metrics.jsonl"
        if path.exists() and any(r["step"] >= step for r in map(json.loads, path.read_text().splitlines())):
            return
        time.sleep(0.2)
    raise AssertionError(f"no step {step} within {timeout} s")


def _rnncli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rnncli", *args], env=ENV, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_ctrl_c_on_two_processes_then_resume_continues_step_for_step(tmp_path, make_config):
    sets = {"model": {"hidden_size": 16, "dropout": 0.3}, "trainer": {"max_steps": 40, "epochs": None,
                                                                    "val_every": 10, "log_every": 1}}
    straight = make_config(run={"name": "straight", "dir": str(tmp_path / "runs")}, **sets)
    done = torchrun(["train", str(straight), "--quiet"])
    assert done.returncode == 0, done.stderr[-2000:]
    halves = make_config(run={"name": "halves", "dir": str(tmp_path / "runs")}, **sets)
    run_dir = tmp_path / "runs" / "halves"
    proc = _rnncli(["train", str(halves), "--nproc", "2"])
    _wait_for_step(run_dir, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and f"--resume {run_dir} --nproc 2" in err
    stopped = checkpoint.load(run_dir / "last.pt")["trainer"]["step"]
    assert 3 <= stopped < 40
    proc = _rnncli(["train", "--resume", str(run_dir), "--nproc", "2", "--quiet"])
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err[-2000:]
    assert_same_losses(tmp_path / "runs" / "straight", run_dir, 1e-6)  # dropout masks too: per-rank RNG kept


def test_a_killed_rank_under_max_restarts_recovers_and_finishes(tmp_path, make_config):
    cfg = make_config(model={"hidden_size": 16}, run={"name": "killed", "dir": str(tmp_path / "runs")},
                      trainer={"max_steps": 60, "epochs": None, "val_every": 5, "log_every": 1})
    run_dir = tmp_path / "runs" / "killed"
    proc = _rnncli(["train", str(cfg), "--nproc", "2", "--max-restarts", "1"])
    _wait_for_step(run_dir, 6, proc)
    agent = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    workers = subprocess.run(["pgrep", "-P", agent[0]], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[-1]), signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "torchrun restarted the group (restart 1): continuing from" in err
    for name in ("last.pt", "best.pt"):
        assert checkpoint.load(run_dir / name)["trainer"]["step"] <= 60
    assert checkpoint.load(run_dir / "last.pt")["trainer"]["step"] == 60
    steps = [r["step"] for r in records(run_dir, "train")]
    assert steps == list(range(1, 61))  # the log was cut back to the checkpoint and continued
