"""No user input loses a run or prints a traceback (issue 15, section 2): one regression test per
failure class the fuzzing found, each failing on the main of the time."""

from __future__ import annotations

import errno
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY_TEXT, tiny_config, write_config
from typer.testing import CliRunner
from test_classify import classify_config
from test_ner import ner_config

from rnncli import api
from rnncli.cli import app
from rnncli.config import load_config
from rnncli.data import parallel
from rnncli.data.tabular import TableFormat, read_table
from rnncli.errors import ConfigError, DataError, RunError, TrainingError
from rnncli.tasks import char_lm, classify, ner
from rnncli.training import checkpoint


def _files(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


# --------------------------------------------------------------------------- data loss
@pytest.mark.parametrize("bad, error, message", [
    ("typo.txt", ConfigError, r"data.path.*typo.txt.*file not found"),  # found at config time
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


# --------------------------------------------------------------------------- config files and values
BASE = "task: char_lm\ndata:\n  path: {corpus}\nmodel:\n  hidden_size: 8\n"


def _config(tmp_path, text: str | bytes, name="c.yaml"):
    path = tmp_path / name
    (tmp_path / "corpus.txt").write_text(TINY_TEXT)
    body = text.format(corpus=tmp_path / "corpus.txt") if isinstance(text, str) else text
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


@pytest.mark.parametrize("text, message", [
    (BASE + "model:\n  hidden_size: 9\n", r"c.yaml:6: duplicate key 'model' \(first at line 4\)"),
    (BASE + "  hidden_size: 9\n", r"c.yaml:6: duplicate key 'hidden_size' \(first at line 5\)"),
    (b"task: char_lm\n# caf\xe9\n", r"c.yaml:2: not UTF-8 text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", r"c.yaml: not a YAML config: a binary file"),
    ("a: " + "[" * 1000 + "]" * 1000, r"nested too deeply"),
])
def test_config_files_that_are_not_yaml_configs(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, text))


def test_a_directory_as_config_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"is a directory; give a YAML config file"):
        load_config(tmp_path)


@pytest.mark.parametrize("override, message", [
    ("model.embedding_dim=1e30", r"model.embedding_dim = '1e30': expected an integer in \[1, 32768\]"),
    ("model.hidden_size=100000000000000000000", r"model.hidden_size = 10+: expected an integer in \[1, 32768\]"),
    ("trainer.seed=1000000000000000000000000000000", r"trainer.seed = 10+: expected an integer in \[0, 4294967295\]"),
    ("model.forget_bias=1e300", r"model.forget_bias = 1e\+300: expected a number in \[-100.0, 100.0\]"),
    ("trainer.bptt=99999999999", r"trainer.bptt = 99999999999: expected an integer in \[1, 1048576\]"),
    ("trainer.lr=1e200", r"trainer.lr = 1e\+200: expected a number in \[0, 1000.0\]"),
    ("trainer.max_steps=10000000000000000000000", r"trainer.max_steps = 10+: expected an integer in"),
    ("data.encoding=''", r"data.encoding = '' is not a text encoding"),
    ("data.encoding=utf-9", r"data.encoding = 'utf-9' is not a text encoding"),
    ("data.encoding=rot13", r"data.encoding = 'rot13' is not a text encoding"),
    ("run.name=" + "x" * 300, r"run.name = 'x+\.\.\.' is longer than 255 bytes"),
    ("run.name=a/b", r"run.name = 'a/b' holds a path separator"),
    ("run.name=..", r"run.name = '..' is not a directory name"),
    ("run.name=a\0b", r"run.name = 'a\\x00b' holds a control character"),
    ("data.val=x.txt", r"key 'data.val' has no effect here: it applies only when data.path is not set"),
])
def test_values_out_of_range_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, BASE), [override])


def test_epochs_and_max_steps_both_null_is_an_error_not_an_overflow(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: trainer.epochs and trainer.max_steps are both null"):
        load_config(_config(tmp_path, BASE + "trainer:\n  epochs: null\n  max_steps: null\n"))


@pytest.mark.parametrize("data, message", [
    ("  source_path: {s}\n  target_path: {s}\n  source_column: 1\n", r"'data.source_column' has no effect here"),
    ("  path: {s}\n  test: {s}\n", r"'data.test' has no effect here"),
    ("  path: {s}\ntrainer:\n  length_penalty: 0.6\n", r"'trainer.length_penalty' has no effect here: it applies "
                                                         r"only when trainer.beam_size > 1"),
])
def test_seq2seq_keys_that_would_be_ignored_are_refused(tmp_path, data, message):
    sample = REPO / "data/seq2seq/sample.tsv"
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, "task: seq2seq\ndata:\n" + data.format(s=sample)))
    load_config(_config(tmp_path, f"task: seq2seq\ndata:\n  path: {sample}\ntrainer:\n  beam_size: 3\n"
                                  f"  length_penalty: 0.6\n"))  # with a beam it applies


def test_path_keys_are_checked_when_a_run_starts(tmp_path):
    path = _config(tmp_path, BASE)
    with pytest.raises(ConfigError, match=r"override data.path=.*: data.path = '.*' is a directory; expected a file"):
        api.train(str(path), [f"data.path={tmp_path}"], show_progress=False)
    with pytest.raises(ConfigError, match=r"c.yaml:3: data.path: file not found: .*nope.txt"):
        api.train(str(_config(tmp_path, BASE.replace("{corpus}", "nope.txt"))), show_progress=False)


# --------------------------------------------------------------------------- readers
def test_a_lone_cr_is_not_a_line_break_in_aligned_files(tmp_path):
    (tmp_path / "src.txt").write_bytes(b"one\rtwo\nthree\r\n")
    (tmp_path / "tgt.txt").write_bytes(b"un deux\ntrois\n")
    pairs = parallel.read_aligned(str(tmp_path / "src.txt"), str(tmp_path / "tgt.txt"))
    assert pairs == [("one\rtwo", "un deux"), ("three", "trois")]


def test_a_tab_inside_a_tsv_text_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("good film\tpos\nbad\tfilm\tneg\nok\tpos\n")
    with pytest.raises(DataError, match=r"t.tsv:2: 3 columns, but line 1 has 2 \(a stray tab inside a text\?\)"):
        read_table(path, TableFormat())


def _ner_files(tmp_path, dev_tags=("B-PER", "I-PER"), train_tags=("B-PER", "I-PER")):
    conll = "{}\t{}\n{}\t{}\nsaid\tO\n\n"
    (tmp_path / "train.conll").write_text(conll.format("Ann", train_tags[0], "Lee", train_tags[1]) * 8)
    dev = conll.format("Bo", "B-PER", "Li", "I-PER") + conll.format("Al", dev_tags[0], "Wu", dev_tags[1])
    (tmp_path / "dev.conll").write_text(dev)
    return {"train": str(tmp_path / "train.conll"), "val": str(tmp_path / "dev.conll"), "test": None}


def test_an_iobes_tag_in_an_iob2_dev_file_is_found_when_the_data_is_read(tmp_path):
    cfg = ner_config(tmp_path, data=_ner_files(tmp_path, dev_tags=("B-PER", "E-PER")))
    with pytest.raises(DataError, match=r"dev.conll:6: tag 'E-PER' is not an iob2 tag; the run reads its files as "
                                        r"iob2 \(detected from .*train.conll: B-/I- tags, no E-/S-\)"):
        ner.build(load_config(write_config(tmp_path, cfg)), torch.device("cpu"))


def test_mixed_tag_schemes_in_a_training_file_are_refused(tmp_path):
    files = _ner_files(tmp_path)
    with open(files["train"], "a") as f:
        f.write("Cy\tS-PER\nsaid\tO\n\n")
    cfg = ner_config(tmp_path, data=files)
    with pytest.raises(DataError, match=r"train.conll:\d+: tag 'S-PER' is BIOES, but .*train.conll:2 ends an entity "
                                        r"on 'I-PER' as IOB2 does: the file mixes tag schemes"):
        ner.build(load_config(write_config(tmp_path, cfg)), torch.device("cpu"))


def test_a_text_shorter_than_two_batches_is_a_data_error(tmp_path, make_config):
    (tmp_path / "short.txt").write_text("abcdef")
    with pytest.raises(DataError, match=r"the training text has \d characters, too few for trainer.batch_size = 4"):
        api.train(str(make_config(data={"path": str(tmp_path / "short.txt")})), show_progress=False)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match=r"the training text has 0 characters"):
        api.train(str(make_config(data={"path": str(tmp_path / "empty.txt")})), show_progress=False)


# --------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained char-LM run, shared (tests copy it before they change anything)."""
    tmp = tmp_path_factory.mktemp("trained")
    # gru: no compiled kernel, so these tests never wait on the C++ extension cache
    path = write_config(tmp, tiny_config(tmp, model={"cell": "gru"}, trainer={"max_steps": 4, "epochs": None,
                                                                             "val_every": 2}))
    api.train(str(path), show_progress=False)
    return tmp / "runs" / "tiny"


def _copy(run_dir, tmp_path):
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def _edit(run_dir, change):
    path = run_dir / "best.pt"
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("model"), r"damaged checkpoint: model missing"),
    (lambda c: c.pop("config"), r"damaged checkpoint: config missing"),
    (lambda c: c.pop("task_state"), r"damaged checkpoint: task_state missing"),
    (lambda c: c.update(format_version=99), r"checkpoint format 99, this rnncli reads format 1"),
    (lambda c: c["config"].update(task="translate"), r"checkpoint of task 'translate', which this rnncli does not"),
    (lambda c: c["config"]["model"].update(hidden_size=32), r"the checkpoint does not fit its config \(RuntimeError"),
    (lambda c: c["task_state"].pop("chars"), r"the checkpoint does not fit its config \(KeyError"),
])
def test_a_malformed_checkpoint_is_one_run_error(trained, tmp_path, change, message):
    run_dir = _copy(trained, tmp_path)
    _edit(run_dir, change)
    with pytest.raises(RunError, match=message):
        api.evaluate(str(run_dir))


def test_a_failed_save_says_why_and_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    run_dir = _copy(trained, tmp_path)
    before = (run_dir / "last.pt").read_bytes()

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(RunError, match=r"cannot save checkpoint .*last.pt: the disk is full; the previous last.pt "
                                       r"is intact"):
        checkpoint.save_atomic({"x": 1}, run_dir / "last.pt")
    assert (run_dir / "last.pt").read_bytes() == before
    assert not list(run_dir.glob("*.tmp"))


def test_resume_tolerates_a_torn_last_metrics_line(trained, tmp_path):
    run_dir = _copy(trained, tmp_path)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "spl')
    api.train(None, ["trainer.max_steps=5"], resume=str(run_dir), show_progress=False)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 5


# --------------------------------------------------------------------------- the command line
runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["predict", "{run}", "hello", "--output", "{tmp}/missing/out.txt"], "--output .*: the directory .*missing does"),
    (["eval", "{run}", "--attention-plot", "{tmp}"], "--attention-plot '.*' is a directory; give a file name"),
    (["diagnose", "{run}", "--batch", "0"], "--batch must be >= 1"),
    (["generate", "{run}", "--seed", str(2**70)], r"--seed must be in \[0, 2\*\*64 - 1\]"),
])
def test_cli_misuse_is_one_line(trained, tmp_path, args, message):
    result = runner.invoke(app, [a.format(run=trained, tmp=tmp_path) for a in args])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert re.search(message, result.output), result.output


def test_greedy_accepts_temperature_zero(trained):
    result = runner.invoke(app, ["generate", str(trained), "--prompt", "the", "--length", "5", "--greedy",
                                 "--temperature", "0"])
    assert result.exit_code == 0, result.output


def test_the_usage_line_names_rnncli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rnncli", "train", "c.yaml", "--set", "trainer.lr", "0.01"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "'rnncli train --help'" in result.stderr and "root" not in result.stderr


def test_an_empty_validation_split_is_found_when_the_data_is_read(tmp_path):
    (tmp_path / "two.tsv").write_text("good\tpos\nbad\tneg\n")
    cfg = classify_config(tmp_path, data={"path": str(tmp_path / "two.tsv"), "split": [0.9, 0.1, 0.0]})
    with pytest.raises(DataError, match=r"the validation split is empty \(check .*: 2 examples in all\)"):
        classify.build(load_config(write_config(tmp_path, cfg)), torch.device("cpu"))
