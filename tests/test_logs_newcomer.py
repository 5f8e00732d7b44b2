"""A newcomer's logs: validation at a rate (or at epoch ends), NER input tokenized as CoNLL files are,
no BLEU where it cannot be non-zero, --output files announced, kernel-compile messages routed."""

import json

import pytest
from conftest import tiny_config, write_config
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.config import load_config
from rnncli.data.tokenize import conll_tokens
from rnncli.errors import ConfigError
from rnncli.metrics import translation_metrics
from rnncli.nn import fused_cpu

runner = CliRunner()


def validation_steps(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if r["split"] == "val"]


@pytest.mark.parametrize("val_every", ["epoch", 4])
def test_val_every_is_a_rate_or_epoch_ends_and_the_last_step_is_scored(tmp_path, val_every):
    summary = api.train(tiny_config(tmp_path, trainer={"val_every": val_every, "epochs": 2}), show_progress=False)
    n = summary["steps"]
    expected = [n // 2, n] if val_every == "epoch" else [*range(4, n + 1, 4), *([n] if n % 4 else [])]
    assert validation_steps(tmp_path / "runs" / "tiny") == expected


def test_val_every_names_what_it_takes(tmp_path):
    with pytest.raises(ConfigError, match=r"^override trainer.val_every=epch: trainer.val_every = 'epch': expected an "
                                          r"integer >= 1 or epoch. Did you mean 'epoch'\?$"):
        load_config(write_config(tmp_path, tiny_config(tmp_path)), ["trainer.val_every=epch"])


def test_ner_input_is_tokenized_as_conll_files_are():
    assert conll_tokens('Ada Lovelace was born in London. "Hi," said O\'Neil #rnn') == [
        "Ada", "Lovelace", "was", "born", "in", "London", ".", '"', "Hi", ",", '"', "said", "O'Neil", "#rnn"]


def test_no_bleu_where_it_cannot_be_non_zero():
    assert translation_metrics(["54321", "123"], ["54321", "321"])["bleu"] is None
    assert translation_metrics(["a b c d e"], ["a b c d e"])["bleu"] == pytest.approx(100)


def test_an_output_file_is_announced(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "predict", lambda run, texts, which, **k: [{"label": "pos"} for _ in texts])
    monkeypatch.setattr(api, "write_predictions", lambda *a: False)
    monkeypatch.setattr(api, "format_prediction", lambda run, p: p["label"])
    out = tmp_path / "preds.txt"
    result = runner.invoke(app, ["predict", "RUN", "good", "bad", "--output", str(out)])
    assert result.exit_code == 0 and out.read_text() == "pos\npos\n"
    assert result.stderr == f"wrote 2 lines to {out}\n" and result.stdout == ""


def test_kernel_messages_go_where_the_trainer_says(monkeypatch):
    def no_compiler():
        raise OSError("no c++")

    monkeypatch.setattr(fused_cpu, "_build", no_compiler)
    monkeypatch.setattr(fused_cpu, "_cache", {})
    said = []
    with fused_cpu.notifying(said.append):
        assert fused_cpu.kernels() is None
    assert said == ["fused CPU kernels unavailable (OSError); using the eager step (same results, slower)"]
