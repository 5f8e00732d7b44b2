"""int8 against fp32 inference speed: char-LM generation at batch 1 and a classifier-sized forward.

For each cell it builds a random-init char-LM (vocab 65, embedding 64; by default 2 layers of
512, the issue's 2x512 LSTM) and times, alternating round by round (`--rounds`, so slow drifts of
a shared machine hit both alike):

    generate  fp32   `rnncli.tasks.char_lm.generate` as `rnncli generate` runs it (the fp32 Stepper)
              int8   the same on `rnncli.nn.quantize.quantize(model)` (`rnncli generate --int8`):
                     the Stepper on int8 weights, each LSTM-family layer step one call of
                     rnncli/nn/int8_kernels.py's int8_lstm_step; the (small) head stays fp32
    forward   fp32 / int8: the whole model over a (--batch, --seq) batch of ids, as eval/predict do

The table shows median chars/s (tokens/s for forward) and the median of the per-round ratios;
`same` is the share of the first 200 greedy characters int8 and fp32 agree on (random weights:
near-ties flip, trained runs agree more).

    python benchmarks/int8_speed.py                              # lstm, 2 x 512, 2 threads
    python benchmarks/int8_speed.py --cells lstm,gru,peephole_lstm,cifg_lstm,rnn --chars 1000
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import torch

from rnncli.data.text import CharVocab
from rnncli.models.char_lm import CharLM
from rnncli.nn.quantize import int8_modules, quantize
from rnncli.tasks.char_lm import generate

VOCAB = CharVocab([chr(c) for c in range(32, 97)])  # 65 characters
EMBEDDING, PROMPT, SEED = 64, "THE ", 0


def gen_rate(model: CharLM, chars: int) -> float:
    generate(model, VOCAB, PROMPT, 20, seed=SEED)  # warm-up
    start = time.perf_counter()
    generate(model, VOCAB, PROMPT, chars, seed=SEED)
    return chars / (time.perf_counter() - start)


@torch.inference_mode()
def forward_rate(model: CharLM, ids: torch.Tensor) -> float:
    model(ids[:, :8])  # warm-up
    start = time.perf_counter()
    model(ids)
    return ids.numel() / (time.perf_counter() - start)


def agreement(fp32: CharLM, int8: CharLM, n: int = 200) -> float:
    a = generate(fp32, VOCAB, PROMPT, n, greedy=True)
    b = generate(int8, VOCAB, PROMPT, n, greedy=True)
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), n) / n


def bench_cell(cell: str, args) -> list[str]:
    torch.manual_seed(SEED)
    model = CharLM(vocab_size=len(VOCAB), embedding_dim=EMBEDDING, cell=cell, hidden_size=args.hidden,
                   num_layers=args.layers).eval()
    q = quantize(model)
    ids = torch.randint(len(VOCAB), (args.batch, args.seq))
    gen = {"fp32": [], "int8": []}
    fwd = {"fp32": [], "int8": []}
    for _ in range(args.rounds):
        for name, m in (("fp32", model), ("int8", q)):
            gen[name].append(gen_rate(m, args.chars))
            fwd[name].append(forward_rate(m, ids))
    g_ratio = median(b / a for a, b in zip(gen["fp32"], gen["int8"]))
    f_ratio = median(b / a for a, b in zip(fwd["fp32"], fwd["int8"]))
    same = agreement(model, q)
    print(f"  {cell}: int8 modules {int8_modules(q)}", flush=True)
    return [f"{cell:<14} {median(gen['fp32']):>9,.0f} {median(gen['int8']):>9,.0f} {g_ratio:>6.2f}x "
            f"{median(fwd['fp32']):>10,.0f} {median(fwd['int8']):>10,.0f} {f_ratio:>6.2f}x  {same:>5.0%}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", default="lstm")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--chars", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32, help="forward: batch size")
    p.add_argument("--seq", type=int, default=64, help="forward: sequence length")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.layers} x {args.hidden}, {args.threads} threads, {args.rounds} alternating rounds, "
          f"generate {args.chars} chars at batch 1, forward ({args.batch}, {args.seq})")
    rows = [row for cell in args.cells.split(",") for row in bench_cell(cell.strip(), args)]
    print(f"{'cell':<14} {'gen fp32':>9} {'gen int8':>9} {'ratio':>7} {'fwd fp32':>10} {'fwd int8':>10} "
          f"{'ratio':>7}  same")
    print("\n".join(rows))
    print("gen: chars/s at batch 1; fwd: tokens/s; medians; ratio = median per-round int8 / fp32")


if __name__ == "__main__":
    main()
