"""Issue 7's benchmark: every recurrent implementation against nn.LSTM, on one machine, in one run.

Part 1, the grid. For batch 32/64 x hidden 256/512 x 1/2 layers (T = 100, embedding 64, vocab 65)
a char-LM training step (embedding -> stack -> linear, cross-entropy, backward, Adam) with:
    nn.LSTM, nn.GRU, nn.RNN          torch's kernels
    lstm (bptt)                      rnncli's hand-written BPTT running the standard LSTM
    peephole_lstm, cifg_lstm         rnncli's hand-written BPTT (the default path)
    peephole (autograd)              the plain autograd loop, for reference (--autograd)
each in fp32, and in bf16 where the CPU has native bf16 (--bf16 force measures it anyway).
Variants alternate round by round (--rounds), so a slow spell of the machine hits all of them;
the table shows median tokens/s and the median of the per-round ratios to nn.LSTM fp32.

Part 2: rnncli's Trainer against a bare PyTorch loop on the same model, batches and optimizer.
Part 3: generation chars/s at batch 1 with a 2 x 512 char-LM, every cell.

    python benchmarks/fast_paths.py                      # everything (~15 min on 2 cores)
    python benchmarks/fast_paths.py --sizes 64x512x2 --rounds 5
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from statistics import median

import torch
import yaml
from torch import nn

from rnncli.api import train
from rnncli.data.text import CharVocab
from rnncli.nn.recurrent import Recurrent
from rnncli.models.char_lm import CharLM
from rnncli.tasks.char_lm import generate
from rnncli.training import precision

VOCAB, EMBEDDING, STEPS_T = 65, 64, 100
GRID = [(b, h, n) for b in (32, 64) for h in (256, 512) for n in (1, 2)]
VARIANTS = {  # name -> (cell, impl)
    "nn.LSTM": ("lstm", "auto"), "nn.GRU": ("gru", "auto"), "nn.RNN": ("rnn", "auto"),
    "lstm (bptt)": ("lstm", "bptt"), "peephole_lstm": ("peephole_lstm", "auto"),
    "cifg_lstm": ("cifg_lstm", "auto"), "peephole (autograd)": ("peephole_lstm", "autograd"),
}


class Step:
    """One training step of a char-LM built around a `Recurrent` stack."""

    def __init__(self, cell: str, impl: str, batch: int, hidden: int, layers: int, prec: str):
        torch.manual_seed(0)
        self.model = nn.ModuleDict({"emb": nn.Embedding(VOCAB, EMBEDDING),
                                    "rnn": Recurrent(cell, EMBEDDING, hidden, layers, impl=impl),
                                    "head": nn.Linear(hidden, VOCAB)})
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.x = torch.randint(VOCAB, (batch, STEPS_T))
        self.y = torch.randint(VOCAB, (batch, STEPS_T))
        self.prec, self.tokens = prec, batch * STEPS_T

    def __call__(self) -> None:
        m = self.model
        with precision.autocast(self.prec, torch.device("cpu")):
            out, _ = m["rnn"](m["emb"](self.x))
            loss = nn.functional.cross_entropy(m["head"](out).reshape(-1, VOCAB), self.y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def grid(sizes, variants, precisions, rounds: int, steps: int) -> None:
    print(f"{'batch':>5} {'hidden':>6} {'layers':>6} {'variant':<20} {'prec':<5} {'path':<8} {'tokens/s':>9} "
          f"{'ratio':>6}")
    for batch, hidden, layers in sizes:
        runs = {(v, p): Step(*VARIANTS[v], batch, hidden, layers, p) for v in variants for p in precisions}
        rates = {k: [] for k in runs}
        for _ in range(rounds):
            for key, step in runs.items():
                step()  # warm-up (allocator, oneDNN primitives)
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                rates[key].append(step.tokens * steps / (time.perf_counter() - start))
        base = rates[("nn.LSTM", "fp32")]
        for (variant, prec), r in rates.items():
            ratio = median(a / b for a, b in zip(r, base))
            with precision.autocast(prec, torch.device("cpu")):
                path = runs[variant, prec].model["rnn"].path("cpu")  # what actually ran
            print(f"{batch:>5} {hidden:>6} {layers:>6} {variant:<20} {prec:<5} {path:<8} {median(r):>9,.0f} "
                  f"{ratio:>6.2f}", flush=True)


def trainer_vs_bare(cell: str, batch: int, hidden: int, layers: int, rounds: int, steps: int) -> None:
    """rnncli's Trainer (char_lm task) vs a bare loop: same model, batches, optimizer, clipping."""
    text = "".join(chr(32 + (i * 7919 + i // 13) % 65) for i in range(batch * STEPS_T * (2 * steps + 2)))
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/corpus.txt"
        with open(path, "w") as f:
            f.write(text)
        cfg = {"task": "char_lm", "data": {"path": path, "split": [0.98, 0.01, 0.01]},
               "model": {"cell": cell, "embedding_dim": EMBEDDING, "hidden_size": hidden, "num_layers": layers},
               "trainer": {"batch_size": batch, "bptt": STEPS_T, "max_steps": 2 * steps, "log_every": steps,
                           "val_every": 10 ** 6, "device": "cpu"},
               "run": {"dir": tmp, "name": "t", "overwrite": True}}
        with open(f"{tmp}/cfg.yaml", "w") as f:
            yaml.safe_dump(cfg, f)
        ours, bare = [], []
        for r in range(rounds):  # alternate which goes first, so drifts hit both alike
            for which in (("trainer", "bare") if r % 2 == 0 else ("bare", "trainer")):
                if which == "bare":
                    bare.append(_bare_loop(path, cell, batch, hidden, layers, steps))
                    continue
                train(f"{tmp}/cfg.yaml", show_progress=False)
                records = [json.loads(line) for line in open(f"{tmp}/t/metrics.jsonl")]
                ours.append([r for r in records if r["split"] == "train"][-1]["tokens_per_s"])  # steps+1 .. 2*steps
    ratio = median(a / b for a, b in zip(ours, bare))
    print(f"trainer vs bare loop ({cell}, batch {batch}, hidden {hidden}, {layers} layers): "
          f"trainer {median(ours):,.0f} tokens/s, bare {median(bare):,.0f} tokens/s, ratio {ratio:.3f}")


def _bare_loop(path: str, cell: str, batch: int, hidden: int, layers: int, steps: int) -> float:
    from rnncli.data.text import BPTTWindows, batchify, read_text
    from rnncli.nn.state import detach_state

    torch.manual_seed(1234)
    text = read_text(path)
    vocab = CharVocab.from_texts(text)
    windows = BPTTWindows(batchify(vocab.encode(text[:int(len(text) * 0.98)]), batch), STEPS_T)
    model = CharLM(vocab_size=len(vocab), embedding_dim=EMBEDDING, cell=cell, hidden_size=hidden, num_layers=layers)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    state, tokens, start = None, 0, 0.0
    for i in range(2 * steps):
        if i == steps:
            tokens, start = 0, time.perf_counter()
        x, y = windows[i]
        logits, state = model(x, state)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        state = detach_state(state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        tokens += x.numel()
    return tokens / (time.perf_counter() - start)


def generation(chars: int = 500) -> None:
    vocab = CharVocab.from_texts("".join(chr(65 + i) for i in range(VOCAB)))
    for cell in ("lstm", "gru", "rnn", "peephole_lstm", "cifg_lstm"):
        torch.manual_seed(0)
        model = CharLM(vocab_size=len(vocab), embedding_dim=EMBEDDING, cell=cell, hidden_size=512, num_layers=2)
        generate(model, vocab, "A", 50, seed=0)  # warm-up
        start = time.perf_counter()
        generate(model, vocab, "A", chars, seed=0)
        print(f"generation {cell:<14} 2 x 512, batch 1: {chars / (time.perf_counter() - start):8,.0f} chars/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default=",".join(f"{b}x{h}x{n}" for b, h, n in GRID), help="BATCHxHIDDENxLAYERS,...")
    p.add_argument("--variants", default="nn.LSTM,nn.GRU,nn.RNN,lstm (bptt),peephole_lstm,cifg_lstm")
    p.add_argument("--bf16", choices=("auto", "force", "off"), default="auto")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parts", default="grid,trainer,generation")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cpu = torch.device("cpu")
    native, why = precision.hardware_support("bf16", cpu)
    precisions = ["fp32"] + (["bf16"] if a.bf16 == "force" or (a.bf16 == "auto" and native) else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; bf16: {why}"
          + ("" if "bf16" in precisions else " (bf16 rows skipped; --bf16 force measures them)"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    parts = a.parts.split(",")
    if "grid" in parts:
        grid(sizes, a.variants.split(","), precisions, a.rounds, a.steps)
    if "trainer" in parts:
        trainer_vs_bare("lstm", 64, 256, 2, max(a.rounds, 4), 10)
        trainer_vs_bare("peephole_lstm", 64, 256, 2, max(a.rounds, 4), 10)
    if "generation" in parts:
        generation()


if __name__ == "__main__":
    main()
