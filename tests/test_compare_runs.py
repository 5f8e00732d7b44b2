"""`rnncli eval --compare`: per-example statistics (the ScoresExamples capability) and the paired
bootstrap over them (rnncli/tools/compare_runs.py), checked against hand-computed cases,
an independent loop, sacrebleu's own paired bootstrap, and each task's `evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.config import load_config
from rnncli.data import tags as tagging
from rnncli.metrics import ExampleScores, ExampleStats, aggregate, classification_metrics, macro_f1_rows
from rnncli.tasks import TASK_NAMES, task_spec
from rnncli.tasks.base import ScoresExamples
from rnncli.tools.compare_runs import compare_runs, paired_bootstrap

from conftest import REPO, tiny_config, write_config


def _accuracy(correct: list[int], fp: str = "same") -> ExampleScores:
    return ExampleScores("example", fp, {"accuracy": ExampleStats([[float(c), 1.0] for c in correct], "ratio", True)})


# --------------------------------------------------------------------------- the bootstrap, by hand
def test_a_run_right_everywhere_against_one_wrong_everywhere():
    """Every resample has B - A = 1: the CI is [1, 1] and no resample beats the observed difference."""
    m = paired_bootstrap(_accuracy([0] * 5), _accuracy([1] * 5), resamples=200, seed=0)["accuracy"]
    assert (m["a"], m["b"], m["difference"], m["ci_low"], m["ci_high"]) == (0.0, 1.0, 1.0, 1.0, 1.0)
    assert m["p_value"] == pytest.approx(1 / 201)


def test_identical_runs_differ_by_zero_with_p_one():
    m = paired_bootstrap(_accuracy([1, 0, 1, 1]), _accuracy([1, 0, 1, 1]), resamples=100, seed=3)["accuracy"]
    assert (m["difference"], m["ci_low"], m["ci_high"], m["p_value"]) == (0.0, 0.0, 0.0, 1.0)


def test_the_interval_matches_an_independent_loop():
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 2, 40).tolist(), rng.integers(0, 2, 40).tolist()
    m = paired_bootstrap(_accuracy(a), _accuracy(b), resamples=300, seed=11)["accuracy"]
    index = np.random.default_rng(11).choice(40, size=(300, 40), replace=True)
    deltas = [np.mean([b[i] for i in row]) - np.mean([a[i] for i in row]) for row in index]
    low, high = np.percentile(deltas, [2.5, 97.5])
    observed = abs(np.mean(b) - np.mean(a))
    spread = np.abs(deltas) - np.mean(np.abs(deltas))
    assert m["ci_low"] == pytest.approx(low) and m["ci_high"] == pytest.approx(high)
    assert m["p_value"] == pytest.approx((np.sum(spread >= observed) + 1) / 301)
    assert m["difference"] == pytest.approx(np.mean(b) - np.mean(a))


def test_macro_f1_of_summed_rows_is_classification_metrics_on_any_subset():
    gold, pred = [0, 0, 1, 2, 2, 1, 0, 2], [0, 1, 1, 2, 0, 1, 0, 0]
    rows = np.array(macro_f1_rows(gold, pred, 3))
    for subset in ([0, 1, 2, 3, 4, 5, 6, 7], [0, 0, 3, 4], [2, 2, 5], [1, 4, 4, 7, 7]):
        expected = classification_metrics([gold[i] for i in subset], [pred[i] for i in subset], ["a", "b", "c"])
        assert aggregate("macro_f1", rows[subset].sum(0, keepdims=True))[0] == pytest.approx(expected["macro_f1"])


def test_span_f1_of_summed_sentence_counts_is_span_scores():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O", "B-ORG"], ["O", "O"]]
    pred = [["B-PER", "I-PER", "O"], ["B-LOC", "O", "O"], ["B-LOC", "O"]]
    rows = []
    for g, p in zip(gold, pred):
        gs, ps = set(tagging.spans(g)), set(tagging.spans(p))
        rows.append([len(gs & ps), len(ps), len(gs)])
    f1 = aggregate("f1", np.array(rows).sum(0, keepdims=True))[0]
    assert f1 == pytest.approx(tagging.span_scores(gold, pred)["f1"]) == pytest.approx(2 * 2 / (3 + 3))


def test_bleu_p_value_is_sacrebleus_paired_bootstrap():
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import _paired_bs_test

    from rnncli.metrics import translation_rows

    refs = ["the cat sat on the mat", "a dog barks at night", "it is raining today", "we like green tea",
            "she reads a long book", "the sun is bright"]
    hyp_a = ["the cat sat on a mat", "a dog barks", "it rains today", "we like tea", "she reads a book", "sun bright"]
    hyp_b = ["the cat sat on the mat", "a dog barks at night", "it is raining", "we like green tea",
             "she reads books", "the sun is bright"]
    a, b = (ExampleScores("segment", "x", {"bleu": ExampleStats(translation_rows(h, refs)["bleu"], "bleu", True)})
            for h in (hyp_a, hyp_b))
    m = paired_bootstrap(a, b, resamples=500, seed=12345)["bleu"]
    metric = BLEU()
    stats_a = metric._extract_corpus_statistics(hyp_a, [refs])
    _, result = _paired_bs_test({"BLEU": (stats_a, metric._aggregate_and_compute(stats_a))}, "b", hyp_b, [refs],
                                {"BLEU": metric}, n_samples=500, seed=12345)
    assert m["b"] == pytest.approx(result["BLEU"].score)
    assert m["p_value"] == pytest.approx(result["BLEU"].p_value)


# --------------------------------------------------------------------------- every task
def _task_config(name: str, tmp_path) -> dict:
    if name == "char_lm":
        return load_config(write_config(tmp_path, tiny_config(tmp_path)))
    shipped = {"classify": "configs/classify/demo.yaml", "ner": "configs/ner/demo.yaml",
               "seq2seq": "configs/seq2seq/reverse.yaml", "adding": "configs/adding/lstm.yaml",
               "copy_memory": "configs/copy/lstm.yaml"}[name]
    small = ["model.hidden_size=8", "trainer.device=cpu"]
    small += {"adding": ["data.T=10", "data.val_size=50"], "copy_memory": ["data.T=5", "data.val_size=50"],
              "seq2seq": ["data.max_pairs=300"]}.get(name, [])
    return load_config(REPO / shipped, small)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_scores_examples_that_sum_to_its_evaluate(name, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert task_spec(name).can(ScoresExamples)
    torch.manual_seed(0)
    task = task_spec(name).module.build(_task_config(name, tmp_path), torch.device("cpu"))
    metrics, scores = task.evaluate("val"), task.example_scores("val")
    assert len(scores) > 1 and scores.metrics
    for key, stats in scores.metrics.items():
        whole = aggregate(stats.aggregate, np.asarray(stats.rows).sum(0, keepdims=True))[0]
        assert whole == pytest.approx(metrics[key], rel=1e-5, abs=1e-6), key
    assert task.example_scores("val").fingerprint == scores.fingerprint


# --------------------------------------------------------------------------- the command
runner = CliRunner()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    runs = []
    for name, cell in (("a", "rnn"), ("b", "lstm")):
        cfg = tiny_config(tmp, model={"cell": cell}, trainer={"epochs": 1}, run={"name": name})
        api.train(str(write_config(tmp, cfg, f"{name}.yaml")), show_progress=False)
        runs.append(str(tmp / "runs" / name))
    return tmp, runs


def test_eval_compare_prints_a_table_and_json(two_runs):
    _, (a, b) = two_runs
    result = runner.invoke(app, ["eval", "--compare", a, b, "--split", "val", "--resamples", "200", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["unit"] == "window" and out["resamples"] == 200 and set(out["metrics"]) == {"loss", "bpc"}
    loss = out["metrics"]["loss"]
    assert loss["a"] == pytest.approx(api.evaluate(a, "val")["loss"], rel=1e-6)
    assert loss["ci_low"] <= loss["difference"] <= loss["ci_high"] and 0 < loss["p_value"] <= 1
    assert out == compare_runs(a, b, "val", resamples=200)  # seeded: the same numbers again
    table = runner.invoke(app, ["eval", "--compare", a, b, "--split", "val", "--resamples", "50"])
    assert table.exit_code == 0 and "95% CI" in table.stdout and "bpc" in table.stdout


def test_eval_compare_refuses_different_data_tasks_and_bad_values(two_runs):
    tmp, (a, b) = two_runs
    other = tmp / "other"
    other.mkdir()
    cfg = tiny_config(other, trainer={"epochs": 1, "max_steps": 2}, run={"name": "c"})
    (other / "corpus.txt").write_text("a different corpus, line after line.\n" * 40)
    api.train(str(write_config(other, cfg)), show_progress=False)
    c = str(other / "runs" / "c")
    cases = [
        (["--compare", a, c], "scored different val data"),
        (["--compare", a, str(REPO / "configs")], "no readable config.yaml"),
        (["--compare", a, b, "--resamples", "0"], "--resamples must be between 1"),
        (["--compare", a, b, "--data", "x.txt"], "takes no --data"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["eval", *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    classify = tmp / "clf"
    classify.mkdir()
    (classify / "config.yaml").write_text("task: classify\n")
    result = runner.invoke(app, ["eval", "--compare", a, str(classify)])
    assert result.exit_code == 1 and "needs two runs of the same task" in result.output
