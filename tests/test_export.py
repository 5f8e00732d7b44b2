"""`rnncli export`: every task x every cell to ONNX and TorchScript with parity; the sidecar; refusal
above the tolerance; the missing extra; a char-LM streamed by plain onnxruntime in a subprocess (no
rnncli import) against `rnncli generate --greedy`; the README's onnxruntime snippet; the greedy
seq2seq loop over the exported graphs against rnncli's greedy search."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from export_helpers import REPO, build_task
from rnncli import api
from rnncli.cli import app
from rnncli.nn.cells import CELL_NAMES, cell_class
from rnncli.tasks import TASK_NAMES
from rnncli.tools import export as ex
from rnncli.tools.export import backends, graphs

pytest.importorskip("onnxruntime")
runner = CliRunner()


@pytest.fixture(autouse=True)
def quiet_and_eager(monkeypatch):
    monkeypatch.setenv("RNNCLI_FUSED_CPU", "0")  # the reference side needs no compiled kernels here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_every_task_has_graphs():
    assert set(graphs.GRAPHS) == set(TASK_NAMES)


def _check_sidecar(out: Path, fmt: str, task_name: str) -> dict:
    meta = json.loads((out / ex.SIDECAR).read_text())
    assert meta["format"] == fmt and meta["task"] == task_name
    assert meta["parity"]["tolerance"] == ex.TOLERANCE
    for name, graph in meta["graphs"].items():
        assert (out / graph["file"]).is_file()
        assert len(meta["parity"][name]["cases"]) == len(ex.PARITY_CASES)
        if fmt == "onnx":  # the names in the sidecar are the session's
            import onnxruntime

            session = onnxruntime.InferenceSession(str(out / graph["file"]), providers=["CPUExecutionProvider"])
            assert [i.name for i in session.get_inputs()] == [i["name"] for i in graph["inputs"]]
            assert [o.name for o in session.get_outputs()] == [o["name"] for o in graph["outputs"]]
    return meta


# ONNX: every task x every cell; TorchScript (the same traced graphs): every cell on char_lm, and the
# two-input tasks (ner with char features, seq2seq's two graphs) on a custom cell: the time budget.
CASES = [("onnx", t, c) for t in TASK_NAMES for c in CELL_NAMES] + \
    [("torchscript", "char_lm", c) for c in CELL_NAMES] + \
    [("torchscript", t, "peephole_lstm") for t in ("ner", "seq2seq")]


@pytest.mark.parametrize("fmt,task_name,cell", CASES)
def test_every_task_and_cell_exports_with_parity(tmp_path, fmt, task_name, cell):
    cfg, task = build_task(tmp_path, task_name, cell)
    result = ex.export_task(cfg, task, fmt, tmp_path / "out")
    assert all(diff <= ex.TOLERANCE for diff in result["parity"].values())
    meta = _check_sidecar(tmp_path / "out", fmt, task_name)
    state = meta["state"]["inputs"]
    if task_name not in ("classify", "ner"):  # whole-sentence tasks start from zeros and take no state
        assert ("c" in state) == (cell_class(cell).state_kind == "hc") and "h" in state


VARIANTS = [
    ("classify", {"pooling": "attention", "num_layers": 2}),
    ("classify", {"pooling": "max", "bidirectional": False}),
    ("ner", {"crf": False, "char_features": "lstm", "num_layers": 2}),
    ("seq2seq", {"attention": "none", "bidirectional": True}),
    ("seq2seq", {"attention": "additive", "num_layers": 2, "bridge": "zeros"}),
]


@pytest.mark.parametrize("task_name,model", VARIANTS)
def test_model_variants_export_with_parity(tmp_path, task_name, model):
    cfg, task = build_task(tmp_path, task_name, "peephole_lstm", **model)
    result = ex.export_task(cfg, task, "onnx", tmp_path / "out")
    assert all(diff <= ex.TOLERANCE for diff in result["parity"].values())


def test_a_graph_that_differs_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    cfg, task = build_task(tmp_path, "classify", "gru")
    build = graphs.GRAPHS["classify"]

    def off_by_a_little(model, task):
        found = build(model, task)
        reference = found[0].reference
        found[0].reference = lambda *xs: tuple(t + 1e-3 for t in reference(*xs))
        return found

    monkeypatch.setitem(graphs.GRAPHS, "classify", off_by_a_little)
    with pytest.raises(ex.ParityError, match=r"differs from the PyTorch model by 0\.001.*nothing was written"):
        ex.export_task(cfg, task, "onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".export-*"))


def test_bad_arguments_and_a_missing_extra_are_one_line_errors(tmp_path, monkeypatch):
    result = runner.invoke(app, ["export", str(tmp_path), "--format", "tflite"])
    assert result.exit_code == 1 and "--format must be one of onnx, torchscript (got 'tflite')" in result.output
    result = runner.invoke(app, ["export", str(tmp_path), "--int8", "--format", "torchscript"])
    assert result.exit_code == 1 and "--int8 applies to the onnx format only (got format 'torchscript')" in result.output
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda n: None if n == "onnxruntime" else real(n))
    result = runner.invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == "error: the onnx format needs onnxruntime: pip install 'rnncli[export]'"


@pytest.mark.parametrize("task, cell", [("char_lm", "lstm"), ("ner", "peephole_lstm"), ("seq2seq", "gru")])
def test_int8_onnx_export_has_int8_weights_and_stays_close(task, cell, tmp_path):
    import onnx

    cfg, built = build_task(tmp_path, task, cell, hidden_size=16)
    result = ex.export_task(cfg, built, "onnx", tmp_path / "out", int8=True)
    assert result["int8"] and result["tolerance"] == ex.INT8_TOLERANCE
    meta = json.loads((tmp_path / "out" / ex.SIDECAR).read_text())["parity"]
    for name, diff in result["parity"].items():
        assert 0 < diff <= ex.INT8_TOLERANCE  # quantized: not equal to fp32, but close
        assert meta[name]["fp32"]["max_abs_diff"] <= ex.TOLERANCE  # the fp32 graph passed first
        graph = onnx.load(str(tmp_path / "out" / f"{name}.onnx"))
        ints = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8]
        assert ints, f"{name}: no int8 weights in the graph"


def test_int8_export_refuses_above_its_tolerance(tmp_path, monkeypatch):
    cfg, built = build_task(tmp_path, "classify", "lstm")
    monkeypatch.setattr(ex, "INT8_TOLERANCE", 1e-9)
    with pytest.raises(ex.ParityError, match=r"the int8 onnx graph differs .* by relative .*nothing was written"):
        ex.export_task(cfg, built, "onnx", tmp_path / "out", int8=True)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- a trained char-LM
TEXT = "The cat sat on the mat. The dog sat on the log.\n" * 30


@pytest.fixture(scope="module")
def char_lm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    (tmp / "corpus.txt").write_text(TEXT)
    cfg = {"task": "char_lm", "data": {"path": str(tmp / "corpus.txt"), "split": [0.8, 0.1, 0.1]},
           "model": {"cell": "lstm", "embedding_dim": 8, "hidden_size": 24, "num_layers": 2},
           "trainer": {"batch_size": 4, "bptt": 16, "lr": 0.02, "epochs": 3, "val_every": 1000, "device": "cpu"},
           "run": {"dir": str(tmp / "runs"), "name": "lm"}}
    (tmp / "lm.yaml").write_text(json.dumps(cfg))
    api.train(str(tmp / "lm.yaml"), show_progress=False)
    run = str(tmp / "runs" / "lm")
    result = runner.invoke(app, ["export", run, "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert re.search(r"parity model: max abs diff \d\.\d\de-\d\d \(tolerance 0\.0001", result.output)
    return run


def _greedy_cli(run: str, prompt: str, length: int) -> str:
    result = runner.invoke(app, ["generate", run, "--prompt", prompt, "--greedy", "--length", str(length)])
    assert result.exit_code == 0, result.output
    return result.output.rstrip("\n")


STREAM = r'''
import json, sys
import numpy as np, onnxruntime as ort
folder, prompt, length = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = json.load(open(folder + "/model.json"))
chars, names = meta["task_state"]["chars"], meta["state"]["inputs"]
session = ort.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
shapes = {i["name"]: i["shape"] for i in meta["graphs"]["model"]["inputs"]}
def zeros(batch):
    return {n: np.zeros([batch if d == "batch" else d for d in shapes[n]], np.float32) for n in names}
def run(ids, state):  # one window (B, T) with the state carried in and out
    lengths = np.full(len(ids), len(ids[0]), dtype=np.int64)
    logits, *new = session.run(None, {"ids": np.array(ids, dtype=np.int64), "lengths": lengths, **state})
    return logits, dict(zip(names, new))
ids = [chars.index(c) for c in prompt]
state = zeros(1)
for start in range(0, len(ids), 3):  # the prompt, window by window
    logits, state = run([ids[start:start + 3]], state)
out = []
for _ in range(length):  # then one character per window
    token = int(logits[0, -1].argmax())
    out.append(chars[token])
    logits, state = run([[token]], state)
# a long text in windows of 5 equals one pass over it
text = [chars.index(c) for c in "".join(out)[:60]]
whole, _ = run([text], zeros(1))
state, parts = zeros(1), []
for start in range(0, len(text), 5):
    part, state = run([text[start:start + 5]], state)
    parts.append(part)
assert np.abs(np.concatenate(parts, 1) - whole).max() < 1e-4
assert not any(m.startswith(("rnncli", "torch")) for m in sys.modules), "imported rnncli or torch"
print(prompt + "".join(out))
'''


def test_onnxruntime_alone_streams_the_same_200_characters_as_generate_greedy(char_lm_run, tmp_path):
    script = tmp_path / "stream.py"
    script.write_text(STREAM)
    folder = str(Path(char_lm_run) / "export" / "onnx")
    done = subprocess.run([sys.executable, "-I", str(script), folder, "The c", "200"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    streamed = done.stdout.rstrip("\n")
    assert len(streamed) == len("The c") + 200
    assert streamed == _greedy_cli(char_lm_run, "The c", 200)


def readme_snippet() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Ship a model"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_onnxruntime_snippet_runs_and_matches_generate(char_lm_run, tmp_path):
    code = readme_snippet()
    assert len([line for line in code.splitlines() if line.strip()]) <= 13
    assert "import rnncli" not in code and "from rnncli" not in code
    (tmp_path / "snippet.py").write_text(code.replace("runs/demo", char_lm_run))
    done = subprocess.run([sys.executable, "-I", "snippet.py"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    prompt, length = re.search(r'for c in "(.*?)"\].*?range\((\d+)\)', code, re.S).groups()
    assert done.stdout.rstrip("\n") == _greedy_cli(char_lm_run, prompt, int(length))


# --------------------------------------------------------------------------- seq2seq greedy loop
def test_the_exported_greedy_loop_translates_as_rnncli_greedy(tmp_path):
    import onnxruntime

    from rnncli.decoding.search import greedy, max_lengths
    from rnncli.tools.export.onnx_greedy import greedy_translate

    cfg, task = build_task(tmp_path, "seq2seq", "gru", attention="general", input_feeding=True)
    ex.export_task(cfg, task, "onnx", tmp_path / "out")
    meta = json.loads((tmp_path / "out" / ex.SIDECAR).read_text())
    session = {n: onnxruntime.InferenceSession(str(tmp_path / "out" / f"{n}.onnx")) for n in meta["graphs"]}
    tgt = task.vocabs.tgt
    for sentence in [["a", "b"], ["je", "suis", "content", "."], list("abcdefg")]:
        ids = task.vocabs.src.encode(sentence)
        src, lengths = torch.tensor([ids]), torch.tensor([len(ids)])
        limit = max_lengths(lengths, meta["max_length_ratio"], meta["max_length_extra"])
        want = greedy(task.model, src, lengths, tgt.stoi["<bos>"], tgt.stoi["<eos>"],
                      [tgt.pad_id, tgt.stoi["<bos>"]], limit)[0].tokens
        assert greedy_translate(session["encoder"], session["decoder_step"], meta, ids) == want


# --------------------------------------------------------------------------- ner: Viterbi in the caller
def _viterbi(emissions, start, trans, end):
    """The decoding rule model.json documents, in numpy: emissions (T, K) of one sentence -> tags."""
    import numpy as np

    score, back = start + emissions[0], []
    for row in emissions[1:]:
        total = score[:, None] + trans  # (K from, K to)
        back.append(total.argmax(0))
        score = total.max(0) + row
    path = [int((score + end).argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    return path[::-1]


def test_viterbi_over_exported_emissions_and_sidecar_scores_tags_as_the_crf(tmp_path):
    import numpy as np
    import onnxruntime

    cfg, task = build_task(tmp_path, "ner", "gru", char_features="lstm")
    ex.export_task(cfg, task, "onnx", tmp_path / "out")
    meta = json.loads((tmp_path / "out" / ex.SIDECAR).read_text())
    crf = {k: np.array(v, dtype=np.float32) for k, v in meta["crf"].items()}
    graph = graphs.GRAPHS["ner"](task.model, task)[0]
    inputs = graph.sample(3, 7, True, torch.Generator().manual_seed(3))
    session = onnxruntime.InferenceSession(str(tmp_path / "out" / "model.onnx"))
    emissions = session.run(None, {n: t.numpy() for n, t in zip(graph.inputs, inputs)})[0]
    lengths = inputs[1]
    want, _ = task.model.crf.decode(graph.reference(*inputs)[0], lengths)
    got = [_viterbi(e[:n], crf["start"], crf["transitions"], crf["end"]) for e, n in zip(emissions, lengths)]
    assert got == want
