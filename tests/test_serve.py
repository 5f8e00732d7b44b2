"""`rnncli serve` over real HTTP: a server subprocess on a free loopback port, tiny trained runs of
every servable task, httpx as the client. Success paths, every validation error, concurrent
requests, SIGTERM shutdown with a request in flight."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_helpers import shared_tiny_runs  # noqa: E402

from rnncli import api  # noqa: E402
from rnncli.errors import RnncliError  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return shared_tiny_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def server(runs):
    """A running `rnncli serve` of the four runs: (base url, process)."""
    port = _free_port()
    # RNNCLI_FUSED_CPU=0: the eager step (same equations), so no test waits on a kernel build
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "RNNCLI_FUSED_CPU": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "rnncli", "serve", *map(str, runs.values()), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90  # a loaded 2-core machine can take a while to import torch
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {proc.stderr.read()}")
    yield url, proc
    if proc.poll() is None:  # SIGTERM, not SIGKILL: a killed process can leave torch's build lock behind
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout=10)


def post(url: str, path: str, body=None, **kwargs):
    return httpx.post(url + path, json=body, timeout=20, **kwargs)


# --------------------------------------------------------------------------- success paths
def test_health_and_info(server):
    url, _ = server
    assert httpx.get(url + "/health").json() == {"status": "ok", "models": ["lm", "cls", "ner", "s2s"]}
    models = httpx.get(url + "/info").json()["models"]
    assert {n: m["task"] for n, m in models.items()} == {"lm": "char_lm", "cls": "classify", "ner": "ner",
                                                         "s2s": "seq2seq"}
    assert models["lm"]["endpoints"] == ["/models/lm/generate"]
    assert models["ner"]["endpoints"] == ["/models/ner/predict"] and models["cls"]["int8"] is False
    one = httpx.get(url + "/models/s2s").json()
    assert one["endpoints"] == ["/models/s2s/translate"] and one["parameters"] > 0 and one["checkpoint_step"] >= 1


def test_generate_matches_the_api(server, runs, monkeypatch):
    from rnncli.nn import fused_cpu

    monkeypatch.setitem(fused_cpu._cache, "module", None)  # the server's eager step, here too
    url, _ = server
    r = post(url, "/models/lm/generate", {"prompt": "The ", "length": 40, "greedy": True})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == api.generate(str(runs["lm"]), "The ", 40, greedy=True)
    seeded = [post(url, "/models/lm/generate", {"prompt": "a", "length": 30, "seed": 7}).json()["text"] for _ in "ab"]
    assert seeded[0] == seeded[1] and len(seeded[0]) == 30


def test_generate_streams_one_event_per_character(server):
    url, _ = server
    with httpx.stream("POST", url + "/models/lm/generate", json={"prompt": "The ", "length": 25, "stream": True},
                      timeout=20) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [block for block in r.read().decode().split("\n\n") if block]
    chars = [json.loads(e.removeprefix("data: "))["text"] for e in events if e.startswith("data: ")]
    assert len(chars) == 25 and events[-1].startswith("event: done")
    assert json.loads(events[-1].split("data: ", 1)[1])["text"] == "".join(chars)


def test_predict_labels_and_entities(server, runs):
    url, _ = server
    texts = ["the soup was cold", "a lovely view"]
    r = post(url, "/models/cls/predict", {"texts": texts})
    assert r.status_code == 200
    assert r.json()["predictions"] == api.predict(str(runs["cls"]), texts)
    r = post(url, "/models/ner/predict", {"texts": ["Ada Lovelace was born in London ."]})
    (pred,) = r.json()["predictions"]
    assert pred["tokens"] == "Ada Lovelace was born in London .".split() and len(pred["tags"]) == 7
    assert isinstance(pred["entities"], list)


def test_translate_beam_n_best(server):
    url, _ = server
    r = post(url, "/models/s2s/translate", {"sentences": ["I am here .", "go ."], "beam": 3, "n_best": 2})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [res["source"] for res in results] == ["I am here .", "go ."]
    for res in results:
        scores = [t["score"] for t in res["translations"]]
        assert len(scores) == 2 and scores == sorted(scores, reverse=True)


# --------------------------------------------------------------------------- every validation error
LONG = "a" * 2001
BAD = [  # (path, body, status, field)
    ("/models/lm/generate", {"prompt": "a", "colour": 1}, 422, "colour"),  # unknown field
    ("/models/lm/generate", {"prompt": "a", "length": "5"}, 422, "length"),  # wrong type
    ("/models/lm/generate", {"prompt": 5}, 422, "prompt"),
    ("/models/lm/generate", {}, 422, "prompt"),  # missing
    ("/models/lm/generate", {"prompt": ""}, 422, "prompt"),  # empty
    ("/models/lm/generate", {"prompt": LONG}, 422, "prompt"),  # too long
    ("/models/lm/generate", {"prompt": "a", "length": 5001}, 422, "length"),
    ("/models/lm/generate", {"prompt": "a", "temperature": 0}, 422, "temperature"),
    ("/models/lm/generate", {"prompt": "a", "top_p": 1.5}, 422, "top_p"),
    ("/models/lm/generate", {"prompt": "a", "top_k": 0}, 422, "top_k"),
    ("/models/lm/generate", {"prompt": "\u2603"}, 400, None),  # a character outside the vocabulary
    ("/models/cls/predict", {"texts": []}, 422, "texts"),  # empty list
    ("/models/cls/predict", {"texts": ["  "]}, 422, "texts.0"),  # blank text
    ("/models/cls/predict", {"texts": ["ok", LONG]}, 422, "texts.1"),
    ("/models/cls/predict", {"texts": ["x"] * 65}, 422, "texts"),  # too many
    ("/models/cls/predict", {"texts": "one text"}, 422, "texts"),
    ("/models/cls/predict", [1, 2], 422, "body"),
    ("/models/s2s/translate", {"sentences": ["go ."], "beam": 0}, 422, "beam"),
    ("/models/s2s/translate", {"sentences": ["go ."], "beam": 2, "n_best": 3}, 422, "n_best"),
    ("/models/s2s/translate", {"sentences": ["go ."], "beam": 99}, 422, "beam"),
    ("/models/cls/generate", {"prompt": "a"}, 404, None),  # the task has no such endpoint
    ("/models/nope/predict", {"texts": ["a"]}, 404, None),  # no such model
]


@pytest.mark.parametrize("path, body, status, field", BAD, ids=[f"{p.split('/')[-1]}-{i}" for i, (p, *_) in
                                                                enumerate(BAD)])
def test_bad_requests_are_4xx_naming_the_field(server, path, body, status, field):
    url, _ = server
    r = post(url, path, body)
    assert r.status_code == status, r.text
    reply = r.json()
    assert reply.get("field") == field and "Traceback" not in r.text and reply["error"]
    if field is not None:
        assert reply["error"].startswith(field)


def test_invalid_json_and_unknown_route(server):
    url, _ = server
    r = post(url, "/models/lm/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body"
    r = post(url, "/models/lm/generate", {"prompt": "a", "colour": 1})
    assert "allowed: prompt, length" in r.json()["error"]
    assert httpx.get(url + "/nowhere").status_code == 404
    assert "no model 'nope'; models: lm, cls, ner, s2s" in post(url, "/models/nope/predict", {"texts": ["a"]}).text


# --------------------------------------------------------------------------- concurrency, shutdown
def test_concurrent_requests_get_their_own_answers(server, runs, monkeypatch):
    from rnncli.nn import fused_cpu

    monkeypatch.setitem(fused_cpu._cache, "module", None)  # the server's eager step, here too
    url, _ = server
    expected_gen = api.generate(str(runs["lm"]), "The ", 60, greedy=True)
    texts = [f"review number {i} was fine" for i in range(8)]
    expected_pred = api.predict(str(runs["cls"]), texts)
    got, errors = {}, []

    def call(i: int) -> None:
        try:
            if i % 2:
                got[i] = post(url, "/models/lm/generate", {"prompt": "The ", "length": 60, "greedy": True}).json()["text"]
            else:
                got[i] = post(url, "/models/cls/predict", {"texts": [texts[i]]}).json()["predictions"][0]
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert all(got[i] == (expected_gen if i % 2 else expected_pred[i]) for i in range(8))


def test_sigterm_finishes_the_request_in_flight_then_exits(server):
    url, proc = server
    done = {}

    def stream() -> None:
        with httpx.stream("POST", url + "/models/lm/generate", json={"prompt": "a", "length": 3000, "stream": True},
                          timeout=20) as r:
            done["body"] = r.read().decode()

    thread = threading.Thread(target=stream)
    thread.start()
    time.sleep(0.3)  # the stream has begun
    proc.send_signal(signal.SIGTERM)
    thread.join(20)
    assert proc.wait(timeout=15) == 0
    assert "event: done" in done["body"]  # the request in flight completed
    assert "rnncli serve: shut down" in proc.stderr.read()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)


# --------------------------------------------------------------------------- set-up errors
def test_missing_extra_is_one_line_naming_it(monkeypatch):
    from rnncli.tools.serve import require_extra

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    with pytest.raises(RnncliError, match=r"pip install 'rnncli\[serve\]' \(fastapi is not installed\)"):
        require_extra()


def test_cli_errors_before_binding(runs, tmp_path):
    from typer.testing import CliRunner

    from rnncli.cli import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "run directory not found" in result.stderr and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["serve", str(runs["lm"]), f"x={runs['cls']}", f"x={runs['ner']}"])
    assert result.exit_code == 1 and "RUN two runs are named 'x'" in result.stderr
