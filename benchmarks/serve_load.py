"""A bounded load run against `rnncli serve` on loopback: requests/s and p50 / p99 latency for
predict and generate, fp32 against int8 in the same run.

It trains two small runs (a classifier on data/sentiment/reviews.tsv and a char-LM on
data/demo.txt; a few dozen steps: speed does not depend on how well they are trained), starts
`rnncli serve` twice on free loopback ports (fp32, then --int8), and sends a fixed number of
requests (`--requests`) from `--clients` concurrent clients to each endpoint, then stops by itself.

    python benchmarks/serve_load.py                        # 200 requests, 4 clients
    python benchmarks/serve_load.py --requests 400 --clients 8 --hidden 512 --layers 2
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import quantiles

import httpx

from rnncli import api

REPO = Path(__file__).resolve().parents[1]


def train_runs(root: Path, hidden: int, layers: int) -> dict[str, Path]:
    common = ["trainer.epochs=1", "trainer.max_steps=20", "trainer.device=cpu", f"run.dir={root}"]
    api.train(str(REPO / "configs/classify/demo.yaml"),
              [*common, f"model.hidden_size={hidden}", f"data.path={REPO}/data/sentiment/reviews.tsv",
               "run.name=cls"], show_progress=False)
    api.train(str(REPO / "configs/demo.yaml"),
              [*common, f"model.hidden_size={hidden}", f"model.num_layers={layers}",
               f"data.path={REPO}/data/demo.txt", "run.name=lm"], show_progress=False)
    return {"cls": root / "cls", "lm": root / "lm"}


def start(runs: dict[str, Path], int8: bool) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "rnncli", "serve", *map(str, runs.values()), "--port", str(port)]
    proc = subprocess.Popen(cmd + (["--int8"] if int8 else []), stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def load(url: str, path: str, body: dict, requests: int, clients: int) -> dict:
    def one(_):
        start = time.perf_counter()
        r = client.post(url + path, json=body, timeout=60)
        r.raise_for_status()
        return time.perf_counter() - start

    with httpx.Client() as client:
        one(0)  # warm-up
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            latencies = sorted(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - start
    cuts = quantiles(latencies, n=100)
    return {"rps": requests / elapsed, "p50": cuts[49] * 1000, "p99": cuts[98] * 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--length", type=int, default=100, help="characters per generate request")
    args = p.parse_args()
    bodies = {"predict": ("/models/cls/predict", {"texts": ["the soup was cold and the waiter was rude",
                                                            "the view is lovely"]}),
              "generate": ("/models/lm/generate", {"prompt": "The ", "length": args.length, "seed": 1})}
    with tempfile.TemporaryDirectory() as tmp:
        runs = train_runs(Path(tmp), args.hidden, args.layers)
        rows = []
        for int8 in (False, True):
            proc, url = start(runs, int8)
            try:
                for name, (path, body) in bodies.items():
                    r = load(url, path, body, args.requests, args.clients)
                    rows.append(f"{name:<9} {'int8' if int8 else 'fp32':<5} {r['rps']:>8.1f} {r['p50']:>9.1f} "
                                f"{r['p99']:>9.1f}")
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    print(f"{args.requests} requests per row, {args.clients} clients, models {args.layers} x {args.hidden} "
          f"(char-LM) / {args.hidden} (classifier), generate {args.length} chars, {os.cpu_count()} CPUs")
    print(f"{'endpoint':<9} {'model':<5} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
