"""Task ner: config rules, batching, padding invariance, training, eval, predict and their output."""

import json

import pytest
import torch
import yaml
from conftest import REPO, write_config
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.config import load_config
from rnncli.data import tags as tagging
from rnncli.data.vocab import Vocab
from rnncli.errors import ConfigError, DataError
from rnncli.tasks import ner


def ner_config(tmp_path, **sections) -> dict:
    """The demo config, made smaller: a couple of seconds of training."""
    cfg = yaml.safe_load((REPO / "configs/ner/demo.yaml").read_text())
    for key in ("train", "val", "test"):
        cfg["data"][key] = str((REPO / "configs/ner" / cfg["data"][key]).resolve())  # relative to the config
    cfg["trainer"].update(epochs=2, log_every=50)
    cfg["run"] = {"dir": str(tmp_path / "runs"), "name": "ner"}
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


def test_config_rules_name_the_key(tmp_path):
    cfg = ner_config(tmp_path)
    del cfg["data"]["val"]
    with pytest.raises(ConfigError, match=r"config.yaml:\d+: data.val is required: a CoNLL file"):
        load_config(write_config(tmp_path, cfg))
    cfg = ner_config(tmp_path, data={"token_column": 1, "tag_column": 1})
    with pytest.raises(ConfigError, match="data.token_column and data.tag_column are both 1"):
        load_config(write_config(tmp_path, cfg))
    cfg = ner_config(tmp_path, model={"crf": False, "constraints": True})
    with pytest.raises(ConfigError, match="'model.constraints' has no effect here: it applies only when "
                                          "model.crf is true"):
        load_config(write_config(tmp_path, cfg))


def test_batches_are_deterministic_per_seed_and_epoch(tmp_path):
    task = ner.build(load_config(write_config(tmp_path, ner_config(tmp_path))), torch.device("cpu"))
    assert task.train_batches(3) == task.train_batches(3) != task.train_batches(4)
    assert sorted(i for b in task.train_batches(0) for i in b) == list(range(240))
    assert task.num_train_batches() == len(task.train_batches(0)) == 15
    assert task.initial_carry() is None
    assert task.vocabs.scheme == "iob2" and task.vocabs.tags[:5] == ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


def test_pretrained_vectors_fill_the_word_embedding(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("ada 1 2 3 4\nlondon 5 6 7 8\n")
    cfg = ner_config(tmp_path, data={"vectors": str(glove), "lowercase": True},
                     model={"embedding_dim": 4, "freeze_embeddings": True})
    task = ner.build(load_config(write_config(tmp_path, cfg)), torch.device("cpu"))
    emb = task.model.embedding.weight
    assert emb[task.vocabs.words.stoi["london"]].tolist() == [5, 6, 7, 8] and not emb.requires_grad
    cfg["model"]["embedding_dim"] = 8
    with pytest.raises(DataError, match=r"glove.txt: the vectors are 4-d but model.embedding_dim is 8; "
                                        r"set model.embedding_dim: 4"):
        ner.build(load_config(write_config(tmp_path, cfg)), torch.device("cpu"))


def test_a_missing_split_is_named(tmp_path):
    task = ner.build(load_config(write_config(tmp_path, ner_config(tmp_path, data={"test": None}))), "cpu")
    with pytest.raises(DataError, match=r"this run has no test split \(set data.test in the config, or score "
                                        r"a file\)"):
        task.evaluate("test")


# --------------------------------------------------------------------------- padding invariance
def _tiny_vocabs(scheme="iob2") -> ner.Vocabs:
    words = Vocab.build([["a", "b", "c", "d"]])
    chars = Vocab.build(["abcd"])
    return ner.Vocabs(words, chars, tagging.scheme_tags(["X", "Y"], scheme), "iob2", scheme, False)


MODELS = [
    {"cell": "lstm", "char_features": "lstm", "crf": True, "constraints": True, "bidirectional": True},
    {"cell": "gru", "char_features": "cnn", "crf": False, "bidirectional": True},
    {"cell": "peephole_lstm", "char_features": "none", "crf": True, "constraints": False, "bidirectional": False},
]


@pytest.mark.parametrize("options", MODELS, ids=lambda o: f"{o['cell']}-{o['char_features']}-crf{o['crf']}")
def test_a_sentence_alone_or_in_a_padded_batch_gets_the_same_tags_and_scores(options):
    torch.manual_seed(0)
    vocabs = _tiny_vocabs("bioes")
    m = {"embedding_dim": 8, "char_embedding_dim": 4, "char_hidden_size": 5, "char_kernel_size": 3,
         "hidden_size": 6, "num_layers": 2, "dropout": 0.0, **options}
    model = ner.build_model(vocabs, m).eval()
    sentences = [["a", "bb", "c"], ["dd", "a", "b", "cc", "d", "a", "b"], ["c"]]
    data = vocabs.encode(sentences, [["O"] * len(s) for s in sentences])
    with torch.no_grad():
        together = ner.decode(model, ner.make_batch(data, [0, 1, 2], "cpu"))
        for i in range(3):
            alone = ner.decode(model, ner.make_batch(data, [i], "cpu"))
            assert alone[0][0] == together[0][i]
            assert alone[1][0].item() == pytest.approx(together[1][i].item(), abs=1e-5)


# --------------------------------------------------------------------------- a trained run
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    # One thread: a tiny model gains nothing from two, and two threads on a busy 2-core
    # machine spin against each other (20x slower here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("ner")
    try:
        yield api.train(str(write_config(tmp, ner_config(tmp))), show_progress=False)["run_dir"]
    finally:
        torch.set_num_threads(threads)


def test_training_learns_the_sample_and_eval_reports_span_scores(trained_run):
    metrics = api.evaluate(trained_run, "test")
    assert metrics["f1"] > 0.9 and metrics["token_accuracy"] > 0.95
    assert set(metrics["per_type"]) == {"PER", "LOC", "ORG"}
    assert set(metrics["per_type"]["PER"]) == {"precision", "recall", "f1", "support"}
    saved = json.loads(open(f"{trained_run}/task_state.json").read())
    assert saved["scheme"] == "iob2" and saved["train_scheme"] == "bioes" and saved["tags"][0] == "O"


def test_eval_on_another_file_and_the_per_type_table(trained_run, tmp_path):
    other = tmp_path / "other.conll"
    other.write_text("Ada\tB-PER\nLovelace\tI-PER\nvisited\tO\nParis\tB-LOC\n")
    result = CliRunner().invoke(app, ["eval", trained_run, "--data", str(other)])
    assert result.exit_code == 0, result.output
    assert "entities by type" in result.stdout and "PER" in result.stdout and "all (micro)" in result.stdout
    result = CliRunner().invoke(app, ["eval", trained_run, "--data", str(other), "--json"])
    assert json.loads(result.stdout)["f1"] == 1.0


def test_predict_finds_entities_with_token_spans(trained_run):
    preds = api.predict(trained_run, ["Ada Lovelace was born in London .", "   "])
    assert preds[0]["entities"] == [
        {"text": "Ada Lovelace", "type": "PER", "start": 0, "end": 2},
        {"text": "London", "type": "LOC", "start": 5, "end": 6}]
    assert preds[0]["tags"] == ["B-PER", "I-PER", "O", "O", "O", "B-LOC", "O"]  # the files' scheme
    assert preds[1]["entities"] == [] and ner.NERTask.format_prediction(preds[1]) == "(no entities)"
    assert ner.NERTask.format_prediction(preds[0]) == "Ada Lovelace  PER [0:2]  |  London  LOC [5:6]"
    result = CliRunner().invoke(app, ["predict", trained_run, "Grace Hopper worked for IBM ."])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Grace Hopper  PER [0:2]  |  IBM  ORG [4:5]\n"


def test_write_conll_is_readable_back(trained_run, tmp_path):
    from rnncli.data.conll import read_conll

    _, task, _ = api.load_run(trained_run)
    gold = read_conll(REPO / "data/ner/test.tsv")[:5]
    preds = ner.predict_tokens(task, [s.tokens for s in gold], [s.tags for s in gold])
    ner.write_conll(preds, tmp_path / "out.conll")
    back = read_conll(tmp_path / "out.conll", tag_column=1)  # token, gold, predicted
    assert [s.tokens for s in back] == [s.tokens for s in gold] and [s.tags for s in back] == [s.tags for s in gold]
    assert [s.tags for s in read_conll(tmp_path / "out.conll")] == [p["tags"] for p in preds]
    result = CliRunner().invoke(app, ["predict", trained_run, "Ada Lovelace was born in London .",
                                      "--output", str(tmp_path / "cli.conll")])
    assert result.exit_code == 0 and result.stdout == ""
    assert (tmp_path / "cli.conll").read_text().splitlines()[:3] == ["Ada\tB-PER", "Lovelace\tI-PER", "was\tO"]
    raw = api.predict(trained_run, ["Ada Lovelace was born in London ."])
    ner.write_conll(raw, tmp_path / "raw.conll")  # no gold: token, predicted
    assert (tmp_path / "raw.conll").read_text().splitlines()[:2] == ["Ada\tB-PER", "Lovelace\tI-PER"]


def test_resume_reproduces_the_straight_run(tmp_path):
    """Word dropout and dropout use the RNG, and the resume point is mid-epoch (15 batches per epoch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        small = {"embedding_dim": 8, "char_hidden_size": 4, "hidden_size": 8, "word_dropout": 0.1}
        losses = {}
        for name, steps in (("straight", 20), ("halves", 12)):
            cfg = ner_config(tmp_path, model=small, run={"name": name},
                             trainer={"max_steps": steps, "epochs": None, "log_every": 1, "val_every": 100})
            api.train(str(write_config(tmp_path, cfg, f"{name}.yaml")), show_progress=False)
        run_dir = tmp_path / "runs" / "halves"
        api.train(str(tmp_path / "halves.yaml"), ["trainer.max_steps=20"], resume=str(run_dir), show_progress=False)
        for name in ("straight", "halves"):
            records = [json.loads(line) for line in (tmp_path / "runs" / name / "metrics.jsonl").open()]
            losses[name] = [r["step_loss"] for r in records if r["split"] == "train"]
        assert len(losses["straight"]) == 20
        assert losses["halves"] == pytest.approx(losses["straight"], abs=1e-6)
    finally:
        torch.set_num_threads(threads)
