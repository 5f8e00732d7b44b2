"""Task classify: tokenizer, config checks, padding invariance, pooling, freezing, metrics, commands."""

import json

import pytest
import torch
import yaml
from conftest import REPO
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.config import load_config
from rnncli.data.tokenize import tokenize
from rnncli.data.vocab import pad_batch
from rnncli.errors import ConfigError, DataError
from rnncli.metrics import classification_metrics
from rnncli.models.pooling import POOLINGS, last_states, pool
from rnncli.nn.cells import CELL_NAMES
from rnncli.tasks import classify
from rnncli.models.classifier import TextClassifier

SAMPLE = REPO / "data" / "sentiment" / "reviews.tsv"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread skips OpenMP hand-offs, several times faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def classify_config(tmp_path, **sections) -> dict:
    cfg = {
        "task": "classify",
        "data": {"path": str(SAMPLE), "split": [0.7, 0.15, 0.15]},
        "model": {"embedding_dim": 16, "hidden_size": 16, "bidirectional": True, "pooling": "max"},
        "trainer": {"batch_size": 16, "lr": 0.01, "epochs": 4, "val_every": 1000, "log_every": 1000,
                    "device": "cpu"},
        "run": {"dir": str(tmp_path / "runs"), "name": "clf"},
    }
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


def write_config(tmp_path, cfg, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --------------------------------------------------------------------------- tokenizer, config
def test_word_tokenizer_splits_clitics_and_punctuation_and_char_option():
    assert tokenize("Don't buy it -- it's $20!") == ["do", "n't", "buy", "it", "-", "-", "it", "'s", "$", "20", "!"]
    assert tokenize("I'M 'so' Good", lowercase=False) == ["I", "'M", "'", "so", "'", "Good"]
    assert tokenize("Ab  c", "char") == ["a", "b", " ", "c"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"train": "x.tsv"}, r"c.yaml:\d+: set either data.path .* or data.train .*not both and not neither"),
        ({"split": [0.5, 0.0, 0.5]}, r"data.split = \[0.5, 0.0, 0.5\]: expected \[train, val, test\] fractions"),
        ({"text_column": "review"}, r"data.text_column = 'review' is a column name, which needs data.header: true"),
        ({"label_column": 0}, r"data.text_column and data.label_column are both 0"),
        ({"label_column": -1}, r"data.label_column = -1: expected a 0-based index >= 0"),
        ({"label_column": 1.5}, r"data.label_column = 1.5: expected an integer or a string"),
        ({"path": []}, r"data.path = \[\]: expected a string or a non-empty list of strings"),
        ({"format": "per_class", "header": True}, r"'data.header' has no effect here: it applies only when "
                                                  r"data.format is tsv or csv"),
    ],
)
def test_config_errors_name_the_key_and_what_is_allowed(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, classify_config(tmp_path, data=data)))


def test_freeze_needs_embeddings_and_best_metric_is_configurable(tmp_path):
    with pytest.raises(ConfigError, match=r"'model.freeze' has no effect here: it applies only when model.embeddings"):
        load_config(write_config(tmp_path, classify_config(tmp_path, model={"freeze": True})))
    cfg = load_config(write_config(tmp_path, classify_config(tmp_path, trainer={"best_metric": "macro_f1"})))
    assert cfg["data"]["path"] == [str(SAMPLE)]  # one file becomes a list of one
    task = classify.build(cfg, torch.device("cpu"))
    assert (task.metric, task.higher_is_better) == ("macro_f1", True)


# --------------------------------------------------------------------------- model
def tiny_model(cell="lstm", pooling="last", num_layers=2, bidirectional=True) -> TextClassifier:
    torch.manual_seed(0)
    return TextClassifier(vocab_size=30, num_labels=3, embedding_dim=8, pooling=pooling, cell=cell, hidden_size=6,
                          num_layers=num_layers, bidirectional=bidirectional).eval()


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_sentence_scores_the_same_alone_and_padded_in_a_batch(cell, pooling):
    model = tiny_model(cell, pooling)
    sentence = [5, 9, 2]
    x, lengths = pad_batch([[3] * 7, sentence, [4, 8, 12, 16, 20, 24, 28, 1, 2]])
    alone = model(torch.tensor([sentence]), torch.tensor([3])).softmax(-1)
    batched = model(x, lengths).softmax(-1)
    torch.testing.assert_close(batched[1:2], alone, rtol=0, atol=1e-6)


def test_pooling_looks_at_real_steps_of_both_directions():
    torch.manual_seed(0)
    lengths = torch.tensor([2, 4])
    out = torch.randn(2, 4, 6)  # (B, T, D*H) with H = 3
    out[0, 2:] = 0  # padded outputs are zero, as Recurrent returns them
    mean = pool("mean", out, None, lengths, 2)
    torch.testing.assert_close(mean[0], out[0, :2].mean(0))
    out_neg = out - 10  # all real values negative: padding zeros must not win the max
    out_neg[0, 2:] = 0
    torch.testing.assert_close(pool("max", out_neg, None, lengths, 2)[0], out_neg[0, :2].max(0).values)

    # last: forward state at the last real step, backward state at step 0, from a real layer
    model = tiny_model("gru", "last", num_layers=1)
    x, lengths = pad_batch([[5, 9], [3, 4, 6, 7]])
    outputs, state = model.rnn(model.embedding(x), lengths)
    last = last_states(state, 2)
    h = 6
    torch.testing.assert_close(last[0, :h], outputs[0, 1, :h])  # forward: step len-1
    torch.testing.assert_close(last[0, h:], outputs[0, 0, h:])  # backward: step 0
    torch.testing.assert_close(last[1, :h], outputs[1, 3, :h])


def test_metrics_match_hand_computed_values():
    labels = ["a", "b", "c"]
    gold = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(gold, pred, labels)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # a: P 2/2 R 2/3 F1 0.8;  b: P 1/2 R 1/2 F1 0.5;  c: P 1/2 R 1/1 F1 2/3
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    never = classification_metrics([0, 1], [0, 0], ["a", "b"])
    assert never["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


# --------------------------------------------------------------------------- data and batches
def test_labels_vocab_and_batches_are_deterministic(tmp_path):
    cfg = load_config(write_config(tmp_path, classify_config(tmp_path, data={"min_freq": 2})))
    task = classify.build(cfg, torch.device("cpu"))
    assert task.labels == ["neg", "pos"] and task.vocab.itos[:2] == ["<pad>", "<unk>"]
    assert task.state() == {"itos": task.vocab.itos, "labels": ["neg", "pos"]}
    assert task.vocab.encode(["qwertyzzz"]) == [task.vocab.unk_id]
    a, b = task.train_batches(1), task.train_batches(1)
    assert len(a) == task.num_train_batches() and a == b
    assert task.train_batches(2) != a  # another epoch, another order
    assert sorted(i for index in a for i in index) == list(range(len(task.splits["train"])))  # each example once
    x, lengths, _ = task._collate(task.splits["train"], a[0])
    assert (x[torch.arange(x.shape[1]) >= lengths.unsqueeze(1)] == task.vocab.pad_id).all()


# --------------------------------------------------------------------------- training, freezing
def write_glove(tmp_path) -> str:
    words = ["the", "was", "soup", "cold", "great", "awful", "i", "is", "."]  # all in the sample
    torch.manual_seed(1)
    lines = [w + " " + " ".join(f"{v:.4f}" for v in torch.randn(16).tolist()) for w in words]
    path = tmp_path / "vectors.txt"
    path.write_bytes(("\n".join(lines)).encode() + b"\n\xff\xfe 1\n")  # plus an undecodable last line
    return str(path)


@pytest.mark.parametrize("freeze", [True, False])
def test_pretrained_embeddings_load_report_coverage_and_freeze_really_freezes(tmp_path, capsys, freeze):
    glove = write_glove(tmp_path)
    cfg = classify_config(tmp_path, model={"embeddings": glove, "freeze": freeze},
                          trainer={"epochs": 1, "max_steps": 3})
    api.train(str(write_config(tmp_path, cfg)), show_progress=False)
    err = capsys.readouterr().err
    assert "embeddings: 9 of" in err and "skipped 1 undecodable line(s)" in err
    assert ("(frozen)" in err) == freeze
    _, task, _ = api.load_run(str(tmp_path / "runs" / "clf"), "last")
    vectors = {line.split(" ")[0]: line for line in open(glove, encoding="utf-8", errors="replace")}
    row = task.model.embedding.weight[task.vocab.stoi["the"]]  # in nearly every training batch
    loaded = torch.tensor([float(v) for v in vectors["the"].split(" ")[1:]])
    assert torch.allclose(row, loaded) == freeze  # unchanged after training only when frozen


def test_embedding_size_must_match_the_vectors(tmp_path):
    cfg = classify_config(tmp_path, model={"embeddings": write_glove(tmp_path), "embedding_dim": 8})
    with pytest.raises(DataError, match=r"vectors.txt: the vectors are 16-d but model.embedding_dim is 8; "
                                        r"set model.embedding_dim: 16"):
        classify.build(load_config(write_config(tmp_path, cfg)), torch.device("cpu"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clf")
    cfg = classify_config(tmp, trainer={"epochs": 6})
    api.train(str(write_config(tmp, cfg)), show_progress=False)
    return tmp / "runs" / "clf"


def test_training_learns_the_sample_and_eval_reports_everything(trained_run):
    m = api.evaluate(str(trained_run), "test")
    assert m["accuracy"] >= 0.85 and m["examples"] == 48
    assert set(m["per_class"]) == {"neg", "pos"} and sum(map(sum, m["confusion"])) == 48
    lines = (trained_run / "metrics.jsonl").read_text().splitlines()
    assert any(json.loads(line).get("split") == "val" and "confusion" in json.loads(line) for line in lines)


def test_eval_on_a_file_with_an_unknown_label(trained_run, tmp_path):
    good = tmp_path / "more.tsv"
    good.write_text("The soup was delicious.\tpos\nThe room was dirty.\tneg\n")
    assert api.evaluate(str(trained_run), data_file=str(good))["examples"] == 2
    bad = tmp_path / "bad.tsv"
    bad.write_text("The soup was delicious.\tpos\nMeh.\tmeh\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: unknown label 'meh'; this run's labels are neg, pos "
                                        r"\(from the training split\) \(1 such line"):
        api.evaluate(str(trained_run), data_file=str(bad))


runner = CliRunner()


def test_predict_and_eval_commands(trained_run, tmp_path):
    run = str(trained_run)
    texts = ["Sadly, the soup was cold and bland. Never again.", "Happily, the coffee was delicious and the staff is lovely."]
    result = runner.invoke(app, ["predict", run, *texts])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("neg\t") and lines[1].startswith("pos\t")
    assert lines[1].endswith("\tHappily, the coffee was delicious and the staff is lovely.")
    inputs = tmp_path / "in.txt"
    inputs.write_text("What a waste of money!\n\nFive stars: the coffee was delicious.\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["predict", run, "--input", str(inputs), "--json", "--output", str(out)])
    assert result.exit_code == 0, result.output
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["label"] for p in preds] == ["neg", "pos"] and all(0.5 <= p["probability"] <= 1 for p in preds)
    result = runner.invoke(app, ["predict", run, "  "])
    assert result.exit_code == 1 and "input 1 is empty ('  '): nothing to classify" in result.stderr
    result = runner.invoke(app, ["eval", run, "--split", "test"])
    assert result.exit_code == 0 and "confusion matrix" in result.stdout and "macro_f1" in result.stdout


def test_other_formats_and_data_errors(tmp_path):
    csv_file = tmp_path / "train.csv"
    csv_file.write_text('id,review,stars\n1,"Good, really good",5\n2,"Bad, really bad",1\n')
    val = tmp_path / "val.csv"
    val.write_text('id,review,stars\n1,"Good",5\n2,"So-so",3\n')
    data = {"path": None, "train": str(csv_file), "val": str(val), "format": "csv", "header": True,
            "text_column": "review", "label_column": "stars"}
    raw = classify_config(tmp_path, data=data)
    del raw["data"]["split"]
    cfg = load_config(write_config(tmp_path, raw))
    with pytest.raises(DataError, match=r"val.csv:3: unknown label '3'; this run's labels are 1, 5"):
        classify.build(cfg, torch.device("cpu"))
    cfg["data"]["skip_bad_lines"] = True
    with pytest.warns(UserWarning, match=r"skipped 1 line\(s\) with unknown labels"):
        task = classify.build(cfg, torch.device("cpu"))
    assert task.labels == ["1", "5"] and len(task.splits["val"]) == 1
    with pytest.raises(DataError, match=r"this run has no test split \(or it is empty\)"):
        task.evaluate("test")

    folder = tmp_path / "per_class"
    folder.mkdir()
    (folder / "pos.txt").write_text("lovely\ngreat stuff\n")
    data = {"path": str(folder), "format": "per_class", "split": [0.5, 0.5, 0.0]}
    cfg = load_config(write_config(tmp_path, classify_config(tmp_path, data=data)))
    with pytest.raises(DataError, match=r"the training data has only one label \('pos'\); a classifier needs at "
                                        r"least two"):
        classify.build(cfg, torch.device("cpu"))
    (folder / "neg.txt").write_text("awful\n")
    cfg["data"]["split"] = [0.01, 0.99, 0.0]
    with pytest.raises(DataError, match=r"the training split is empty \(check data.path / data.split"):
        classify.build(cfg, torch.device("cpu"))


def test_resume_reproduces_the_straight_run(tmp_path):
    # word and embedding dropout draw from the RNG; the resume point (step 5) is mid-epoch
    model = {"word_dropout": 0.2, "embedding_dropout": 0.2, "dropout": 0.2}
    trainer = {"max_steps": 10, "epochs": None, "log_every": 1}
    straight = write_config(tmp_path, classify_config(tmp_path, model=model, trainer=trainer, run={"name": "a"}),
                            "a.yaml")
    api.train(str(straight), show_progress=False)
    halves = write_config(tmp_path, classify_config(tmp_path, model=model, trainer={**trainer, "max_steps": 5},
                                                    run={"name": "b"}), "b.yaml")
    api.train(str(halves), show_progress=False)
    api.train(str(halves), ["trainer.max_steps=10"], resume=str(tmp_path / "runs" / "b"), show_progress=False)

    def losses(name):
        records = [json.loads(line) for line in (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()]
        return [r["step_loss"] for r in records if r["split"] == "train"]

    assert len(losses("a")) == 10 and losses("a") == pytest.approx(losses("b"), abs=1e-6)


def test_character_vocabulary_and_attention_model_train(tmp_path):
    cfg = classify_config(tmp_path, data={"tokenizer": "char", "lowercase": False},
                          model={"pooling": "attention", "cell": "gru", "num_layers": 2},
                          trainer={"epochs": None, "max_steps": 2})
    api.train(str(write_config(tmp_path, cfg)), show_progress=False)
    _, task, _ = api.load_run(str(tmp_path / "runs" / "clf"))
    assert all(len(t) == 1 for t in task.vocab.itos[2:]) and "T" in task.vocab.stoi and " " in task.vocab.stoi
    assert api.predict(str(tmp_path / "runs" / "clf"), ["Tasty!"])[0]["label"] in ("neg", "pos")
