"""The synthetic task: configs/seq2seq/reverse.yaml must reverse digit strings almost perfectly, fast.

This is the one slow seq2seq test (about 30 s on one CPU thread): it is the end-to-end check that
attention, teacher forcing, masking and greedy decoding work together.
"""

import json
import time
from pathlib import Path

from seq2seq_helpers import one_thread  # noqa: F401  (fixture)

from rnncli import api

REPO = Path(__file__).resolve().parents[1]


def test_reverse_config_reaches_95_percent_exact_match_within_a_minute(tmp_path, one_thread, monkeypatch):
    monkeypatch.chdir(REPO)  # config paths are relative to the repo root
    start = time.perf_counter()
    summary = api.train("configs/seq2seq/reverse.yaml", [f"run.dir={tmp_path}", "trainer.device=cpu"],
                        show_progress=False)
    seconds = time.perf_counter() - start
    assert summary["best_val_exact_match"] >= 0.95, summary
    assert seconds < 60, f"training took {seconds:.0f} s"
    test = api.evaluate(str(tmp_path / "reverse"), "test")
    assert test["exact_match"] >= 0.95 and test["token_accuracy"] >= 0.97
    example = test["examples"][0]
    assert example["hypothesis"] == example["reference"]
    records = [json.loads(line) for line in (tmp_path / "reverse" / "metrics.jsonl").read_text().splitlines()]
    val = [r["exact_match"] for r in records if r["split"] == "val"]
    assert val[-1] > val[0]  # it learned during training
