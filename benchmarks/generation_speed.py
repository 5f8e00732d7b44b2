"""Generation speed at batch 1: chars/s of the old per-token forward against the stepper.

For each cell it builds a random-init char-LM (vocab 65, embedding 64; by default 2 layers of
512) and samples `--chars` characters after `--warmup` untimed ones, two ways:

    forward  the loop `generate` ran before rnncli/nn/stepper.py: a length-1 model forward per
             character, model(token.view(1, 1), state), through nn.LSTM / our layer loop
    stepper  `rnncli.tasks.char_lm.generate` as it is now, end to end: one forward over the
             prompt, the Stepper built, then one Stepper step per character

Variants alternate round by round (`--rounds`), so slow drifts of the machine hit both alike;
the table shows the median chars/s and the median of the per-round ratios. `same text` checks
that both loops sampled the same characters from the same seed.

    python benchmarks/generation_speed.py                           # 2 x 512, every cell
    python benchmarks/generation_speed.py --hidden 256 --layers 1 --threads 1
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import torch

from rnncli.data.text import CharVocab
from rnncli.decoding.sampling import next_token
from rnncli.models.char_lm import CharLM
from rnncli.tasks.char_lm import generate

CELLS = (("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"),
         ("peephole_lstm", "tanh"), ("cifg_lstm", "tanh"))
VOCAB = CharVocab([chr(c) for c in range(32, 97)])  # 65 characters
EMBEDDING, PROMPT, SEED = 64, "THE ", 0


@torch.no_grad()
def per_token_forward(model: CharLM, length: int) -> str:
    """The pre-stepper generate loop: sample, then a whole-model forward over one token."""
    generator = torch.Generator().manual_seed(SEED)
    logits, state = model(VOCAB.encode(PROMPT).unsqueeze(0))
    out = []
    for _ in range(length):
        token = next_token(logits[:, -1], generator=generator)
        out.append(VOCAB.chars[token.item()])
        logits, state = model(token.view(1, 1), state)
    return "".join(out)


def stepper(model: CharLM, length: int) -> str:
    return generate(model, VOCAB, PROMPT, length, seed=SEED)


def chars_per_s(run, model: CharLM, chars: int, warmup: int) -> tuple[float, str]:
    run(model, warmup)
    start = time.perf_counter()
    text = run(model, chars)
    return chars / (time.perf_counter() - start), text


def measure(cell: str, nonlinearity: str, args) -> dict:
    torch.manual_seed(0)
    model = CharLM(vocab_size=len(VOCAB), embedding_dim=EMBEDDING, cell=cell, hidden_size=args.hidden,
                   num_layers=args.layers, nonlinearity=nonlinearity).eval()
    speeds = {"forward": [], "stepper": []}
    texts = {}
    for _ in range(args.rounds):
        for name, run in (("forward", per_token_forward), ("stepper", stepper)):
            speed, texts[name] = chars_per_s(run, model, args.chars, args.warmup)
            speeds[name].append(speed)
    ratios = [s / f for f, s in zip(speeds["forward"], speeds["stepper"])]
    return {"forward": median(speeds["forward"]), "stepper": median(speeds["stepper"]),
            "ratio": median(ratios), "same": texts["forward"] == texts["stepper"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chars", type=int, default=500, help="timed characters per measurement")
    parser.add_argument("--warmup", type=int, default=50, help="untimed characters before each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cells", nargs="+", default=[f"{c}-{n}" if c == "rnn" else c for c, n in CELLS],
                        help="e.g. lstm gru rnn-relu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, vocab {len(VOCAB)}, embedding {EMBEDDING}, "
          f"{args.chars} chars after {args.warmup} warm-up, median of {args.rounds} rounds")
    print(f"{'cell':<14} {'layers':>6} {'hidden':>6} {'forward c/s':>12} {'stepper c/s':>12} {'ratio':>6}"
          "  same text")
    for name in args.cells:
        cell, _, nonlinearity = name.partition("-")
        r = measure(cell, nonlinearity or "tanh", args)
        print(f"{name:<14} {args.layers:>6} {args.hidden:>6} {r['forward']:>12,.0f} {r['stepper']:>12,.0f} "
              f"{r['ratio']:>5.1f}x  {'yes' if r['same'] else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
