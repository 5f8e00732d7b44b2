"""Task `seq2seq`: config rules, data pipeline, batching, masked loss, metrics, API and CLI wiring."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from seq2seq_helpers import one_thread  # noqa: F401  (fixture)
from typer.testing import CliRunner

from rnncli import api
from rnncli.cli import app
from rnncli.config import load_config
from rnncli.errors import ConfigError, DataError, RunError
from rnncli.tasks import seq2seq

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "seq2seq" / "sample.tsv"
runner = CliRunner()


def s2s_config(tmp_path, **sections) -> dict:
    cfg = {
        "task": "seq2seq",
        "data": {"path": str(SAMPLE), "split": [0.8, 0.1, 0.1]},
        "model": {"cell": "gru", "embedding_dim": 8, "hidden_size": 8, "attention": "additive"},
        "trainer": {"batch_size": 8, "lr": 0.01, "max_steps": 4, "epochs": None, "val_every": 2, "log_every": 1,
                    "device": "cpu"},
        "run": {"dir": str(tmp_path / "runs"), "name": "s2s"},
    }
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


def write(tmp_path, cfg) -> str:
    path = tmp_path / "s2s.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


@pytest.fixture
def trained(tmp_path, one_thread):
    api.train(write(tmp_path, s2s_config(tmp_path)), show_progress=False)
    return str(tmp_path / "runs" / "s2s")


# --------------------------------------------------------------------------- config rules
@pytest.mark.parametrize("data,message", [
    ({"train": "x.tsv"}, "set exactly one of data.path"),
    ({"path": None, "source_path": "a.txt"}, "set both data.source_path and data.target_path"),
    ({"split": [0.5, 0.5]}, r"data.split = \[0.5, 0.5\]: expected \[train, val, test\]"),
    ({"shared_vocab": True, "target_tokenizer": "char"}, "data.shared_vocab needs the same tokenizer"),
])
def test_data_config_errors_name_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, s2s_config(tmp_path, data=data)))


def test_dot_attention_with_mismatched_sizes_is_a_config_error(tmp_path):
    cfg = s2s_config(tmp_path, model={"attention": "dot", "bidirectional": True})
    with pytest.raises(ConfigError, match=r"s2s.yaml:\d+: model.attention = dot needs the decoder size \(8\) to "
                                          r"equal the encoder output size \(16"):
        load_config(write(tmp_path, cfg))
    load_config(write(tmp_path, s2s_config(tmp_path, model={"attention": "dot", "decoder_hidden_size": 16,
                                                            "bidirectional": True})))


def test_input_feeding_without_attention_is_rejected(tmp_path):
    cfg = s2s_config(tmp_path, model={"attention": "none", "input_feeding": True})
    with pytest.raises(ConfigError, match="'model.input_feeding' has no effect here: it applies only when "
                                          "model.attention is not none"):
        load_config(write(tmp_path, cfg))


def test_filters_that_leave_nothing_are_a_data_error(tmp_path):
    cfg = load_config(write(tmp_path, s2s_config(tmp_path, data={"prefixes": ["zzz"]})))
    with pytest.raises(DataError, match=r"sample.tsv: only 0 sentence pairs pass the filters"):
        seq2seq.build(cfg, torch.device("cpu"))


# --------------------------------------------------------------------------- data, vocab, batches, loss
def test_vocabularies_have_the_specials_first_and_respect_min_freq_and_sharing(tmp_path):
    cfg = load_config(write(tmp_path, s2s_config(tmp_path, data={"min_freq": 2})))
    task = seq2seq.build(cfg, torch.device("cpu"))
    assert task.vocabs.src.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert "i" in task.vocabs.src and "garden" not in task.vocabs.src  # seen once -> <unk>
    assert "je" in task.vocabs.tgt and "je" not in task.vocabs.src
    shared = seq2seq.build(load_config(write(tmp_path, s2s_config(tmp_path, data={"shared_vocab": True}))), "cpu")
    assert shared.vocabs.src is shared.vocabs.tgt and "je" in shared.vocabs.src


def test_two_file_corpus_builds_the_same_task_as_the_tsv(tmp_path):
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    (tmp_path / "en.txt").write_text("\n".join(line.split("\t")[0] for line in lines) + "\n", encoding="utf-8")
    (tmp_path / "fr.txt").write_text("\n".join(line.split("\t")[1] for line in lines) + "\n", encoding="utf-8")
    two = s2s_config(tmp_path, data={"path": None, "source_path": str(tmp_path / "en.txt"),
                                     "target_path": str(tmp_path / "fr.txt")})
    a = seq2seq.load_splits(load_config(write(tmp_path, two))["data"])
    b = seq2seq.load_splits(load_config(write(tmp_path, s2s_config(tmp_path)))["data"])
    assert a == b


def test_train_batches_are_deterministic_per_epoch_bucketed_and_cover_the_data(tmp_path):
    cfg = load_config(write(tmp_path, s2s_config(tmp_path, trainer={"batch_size": 4})))
    task = seq2seq.build(cfg, torch.device("cpu"))
    e0, again, e1 = task.train_batches(0), task.train_batches(0), task.train_batches(1)
    assert e0 == again and e0 != e1 and len(e0) == task.num_train_batches()
    assert sorted(i for _, b in e0 for i in b) == list(range(len(task.splits["train"])))
    lengths = [len(s) for s in task.splits["train"].src]
    assert all(lengths[b[0]] <= lengths[b[-1]] for _, b in e0)  # sorted within a batch


def test_batch_shapes_bos_eos_and_masked_loss_ignores_padding(tmp_path):
    cfg = load_config(write(tmp_path, s2s_config(tmp_path)))
    task = seq2seq.build(cfg, torch.device("cpu"))
    pairs, v = task.splits["train"], task.vocabs.tgt
    short, long = sorted(range(len(pairs)), key=lambda i: len(pairs.tgt[i]))[::len(pairs) - 1]
    b = seq2seq.make_batch(pairs, [short, long], task.vocabs, "cpu")
    n = len(pairs.tgt[short])
    assert b["tgt_in"][0, 0] == v.stoi["<bos>"] and b["tgt_out"][0, n] == v.stoi["<eos>"]
    assert (b["tgt_out"][0, n + 1:] == v.pad_id).all()
    task.model.eval()
    loss_pair, _, tokens = task.train_step((0, [short, long]), None)
    loss_short, _, _ = task.train_step((0, [short]), None)
    loss_long, _, _ = task.train_step((0, [long]), None)
    assert tokens == n + 1 + len(pairs.tgt[long]) + 1
    weighted = (loss_short * (n + 1) + loss_long * (len(pairs.tgt[long]) + 1)) / tokens
    assert loss_pair.item() == pytest.approx(weighted.item(), rel=1e-5)


def test_teacher_forcing_decays_per_epoch_down_to_the_floor():
    t = {"teacher_forcing": 1.0, "teacher_forcing_decay": 0.25, "teacher_forcing_min": 0.4}
    assert [seq2seq.teacher_forcing_ratio(t, e) for e in range(4)] == [1.0, 0.75, 0.5, 0.4]


def test_bleu_chrf_and_exact_match_on_detokenized_text():
    vocab = seq2seq.Vocab(["<pad>", "<unk>", "<bos>", "<eos>", "je", "suis", "content", "."])
    refs = [["je", "suis", "content", "."], ["je", "suis", "."]]
    perfect = seq2seq.decoding_scores([[4, 5, 6, 7], [4, 5, 7]], refs, vocab, "word")
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["exact_match"] == 1.0
    assert perfect["examples"][0] == {"hypothesis": "je suis content.", "reference": "je suis content."}
    half = seq2seq.decoding_scores([[4, 5, 6, 7], [6, 7]], refs, vocab, "word")
    assert 0 < half["bleu"] < 100 and half["chrf"] < 100 and half["exact_match"] == 0.5


# --------------------------------------------------------------------------- API and CLI
def test_train_saves_both_vocabularies_and_evaluates_with_bleu(trained):
    vocab = json.loads((Path(trained) / "task_state.json").read_text())
    assert vocab["source"][:4] == vocab["target"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    records = [json.loads(x) for x in (Path(trained) / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert val and {"bleu", "chrf", "loss", "ppl", "token_accuracy", "exact_match"} <= val[0].keys()
    metrics = api.evaluate(trained, "test", beam=3)
    assert metrics["beam_size"] == 3 and 0 <= metrics["bleu"] <= 100 and metrics["sentences"] == 4


def test_cli_generate_translates_a_prompt_and_n_best_lists(trained):
    result = runner.invoke(app, ["generate", trained, "--prompt", "I am happy ."])
    assert result.exit_code == 0, result.output
    best = result.stdout.strip()
    assert best and "\n" not in best and "I am happy" not in best  # a translation, no echoed prompt
    result = runner.invoke(app, ["generate", trained, "--prompt", "I am happy .", "--beam", "4", "--n-best", "3"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 3 and all(r[0] == "0" for r in rows)
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_cli_generate_translates_a_file(trained, tmp_path):
    (tmp_path / "in.txt").write_text("I am tired.\n\nHe is tall.\n")
    out = tmp_path / "out.txt"
    result = runner.invoke(app, ["generate", trained, "--input", str(tmp_path / "in.txt"), "--output", str(out),
                                 "--beam", "2"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 2
    assert out.read_text().splitlines() == [r["translations"][0]["text"] for r in
                                            api.translate(trained, ["I am tired.", "He is tall."], beam=2)]


def test_cli_translation_errors(trained, make_config, tmp_path):
    result = runner.invoke(app, ["generate", trained, "--beam", "2", "--n-best", "3", "--prompt", "hi"])
    assert result.exit_code == 1 and "--n-best must not exceed the beam size (2)" in result.stderr
    result = runner.invoke(app, ["generate", trained, "--prompt", "   "])
    assert result.exit_code == 1 and "give a sentence to translate with --prompt TEXT" in result.stderr
    result = runner.invoke(app, ["train", str(make_config(trainer={"max_steps": 2, "epochs": None})), "--quiet"])
    char_run = str(tmp_path / "runs" / "tiny")
    result = runner.invoke(app, ["generate", char_run, "--beam", "2"])
    assert result.exit_code == 1 and "is a 'char_lm' run; translation (--beam, --n-best, --input, --output)" in result.stderr
    result = runner.invoke(app, ["eval", char_run, "--beam", "2"])
    assert result.exit_code == 1 and "--beam applies to translation runs (seq2seq)" in result.stderr


def test_cli_eval_json_with_beam_and_attention_plot(trained, tmp_path):
    png = tmp_path / "att.png"
    result = runner.invoke(app, ["eval", trained, "--json", "--beam", "2", "--attention-plot", str(png)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["beam_size"] == 2 and "bleu" in metrics and "chrf" in metrics
    result = runner.invoke(app, ["eval", trained, "--json", "--data", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    on_file = json.loads(result.stdout)
    assert on_file["split"] == str(SAMPLE) and on_file["sentences"] == 45 and on_file["beam_size"] == 1
    amap = api.attention(trained, "val")
    assert len(amap["weights"]) == len(amap["output"]) and all(len(r) == len(amap["source"]) for r in amap["weights"])
    assert all(abs(sum(r) - 1) < 1e-3 for r in amap["weights"]) and amap["decoder"] == "greedy"
    beamed = api.attention(trained, "val", beam=2)  # what --beam 2 --attention-plot draws
    assert beamed["decoder"] == "beam 2" and len(beamed["weights"]) == len(beamed["output"])
    assert all(abs(sum(r) - 1) < 1e-3 for r in beamed["weights"])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "terminal heat-map above" in result.stderr
    else:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_attention_plot_of_a_run_without_attention_is_a_clear_error(tmp_path, one_thread):
    cfg = s2s_config(tmp_path, model={"attention": "none"})
    api.train(write(tmp_path, cfg), show_progress=False)
    with pytest.raises(RunError, match="model.attention = none: there are no attention weights to plot"):
        api.attention(str(tmp_path / "runs" / "s2s"), "val")


def test_resume_reproduces_an_uninterrupted_run(tmp_path, one_thread):
    cfg = s2s_config(tmp_path, trainer={"max_steps": 6, "teacher_forcing": 0.5, "val_every": 3})
    api.train(write(tmp_path, cfg), show_progress=False)
    full = torch.load(tmp_path / "runs" / "s2s" / "last.pt", weights_only=True)["model"]
    cfg["run"]["name"] = "half"
    cfg["trainer"]["max_steps"] = 3
    api.train(write(tmp_path, cfg), show_progress=False)
    api.train(None, ["trainer.max_steps=6"], resume=str(tmp_path / "runs" / "half"), show_progress=False)
    resumed = torch.load(tmp_path / "runs" / "half" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_without_matplotlib_eval_prints_a_terminal_heat_map(trained, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "att.png"
    result = runner.invoke(app, ["eval", trained, "--attention-plot", str(png)])
    assert result.exit_code == 0, result.output
    assert not png.exists()
    assert "matplotlib is not installed: no PNG written" in result.stderr
    amap = api.attention(trained, "val")
    assert "attention (rows: output, columns: source)" in result.stderr
    assert all(token in result.stderr for token in amap["source"])
