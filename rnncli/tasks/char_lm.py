"""Task `char_lm`: character-level language modelling (one-to-many generation).

    data    one text file cut in order into train/val/test fractions, or separate files;
            a character vocabulary; B parallel streams cut into BPTT windows (data/text.py)
    model   embedding -> recurrent stack (any zoo cell) -> dropout -> linear over characters
            (rnncli/models/char_lm.py)
    loss    cross-entropy of the next character, hidden state carried across windows and
            detached (stateful truncated BPTT), reset at each epoch
    metrics loss in nats/char, bits per char (loss / ln 2), perplexity (exp loss)
    decode  `generate`: the prompt primes the state, then sample one character at a time
    probe   one BPTT window of the validation text, for `rnncli diagnose`
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from rnncli.data.text import BPTTWindows, CharVocab, batchify, read_text, split_text
from rnncli.decoding.sampling import check_sampling, next_token
from rnncli.errors import ArgumentError, ConfigError, DataError
from rnncli.metrics import ExampleScores, ExampleStats, fingerprint
from rnncli.models.char_lm import CharLM
from rnncli.nn.state import detach_state, split_state
from rnncli.nn.stepper import Stepper
from rnncli.schema import recurrent_kwargs
from rnncli.tasks.schemas.char_lm import SCHEMA, check  # noqa: F401  (the task contract)

WINDOW = 100  # characters per resampled window of `rnncli eval --compare`


# --------------------------------------------------------------------------- data
def load_splits(data: dict) -> dict[str, str]:
    """split name -> text, as the data section describes."""
    if data["path"] is not None:
        text = read_text(data["path"], data["encoding"])
        return dict(zip(("train", "val", "test"), split_text(text, data["split"])))
    return {s: read_text(data[s], data["encoding"]) for s in ("train", "val", "test") if data[s] is not None}


# --------------------------------------------------------------------------- model
def build_model(vocab_size: int, m: dict) -> CharLM:
    return CharLM(vocab_size=vocab_size, embedding_dim=m["embedding_dim"], **recurrent_kwargs(m))


# --------------------------------------------------------------------------- the task
@dataclass
class CharLMTask:
    model: CharLM
    vocab: CharVocab
    data: dict  # the config's data section
    splits: dict[str, torch.Tensor]  # split -> ids (N,) on the device
    batch_size: int
    bptt: int
    metric: str = "loss"
    higher_is_better: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def load_data(self, data_file: str | None = None) -> None:
        if data_file is not None:
            text = read_text(data_file, self.data["encoding"])
            self.splits = {"file": self.vocab.encode(text, source=data_file).to(self.device)}
        else:
            self.splits = {s: self.vocab.encode(t, source=f"{s} split").to(self.device)
                           for s, t in load_splits(self.data).items() if t}

    def num_train_batches(self) -> int:
        return len(self.train_batches(0))

    def train_batches(self, epoch: int) -> BPTTWindows:
        return BPTTWindows(batchify(self.splits["train"], self.batch_size), self.bptt)

    def initial_carry(self):
        return None

    def shard(self, batch, parts: int) -> list[tuple[tuple[torch.Tensor, torch.Tensor], int]]:
        """Each piece is a contiguous block of the batch_size streams (its own carried state); the
        global batch is batch_size streams however many processes share it."""
        x, y = batch  # (B, n) each
        if x.size(0) % parts:
            raise ConfigError(f"trainer.batch_size = {x.size(0)} streams cannot be shared equally by {parts} "
                              f"pieces (processes x trainer.accumulate): use a multiple of {parts}")
        b = x.size(0) // parts
        return [((x[p * b:(p + 1) * b], y[p * b:(p + 1) * b]), b * x.size(1)) for p in range(parts)]

    def train_step(self, batch, carry):
        x, y = batch
        logits, state = self.model(x, carry)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        return loss, detach_state(state), x.numel()

    def evaluate(self, split: str) -> dict[str, float]:
        return stream_metrics(self.model, self._split(split), self.batch_size, self.bptt)

    def example_scores(self, split: str) -> ExampleScores:
        """Per window of WINDOW characters of the split (fixed, whatever the run's bptt): summed
        next-character loss and the number of characters scored (the first of each stream is not)."""
        ids = self._split(split)
        losses = stream_losses(self.model, ids, self.batch_size, self.bptt)  # (B, L - 1)
        streams, length = losses.size(0), losses.size(1) + 1
        windows = -(-ids.numel() // WINDOW)
        per_char = torch.zeros(windows * WINDOW, dtype=torch.float64)  # loss of predicting char i
        scored = torch.zeros(windows * WINDOW, dtype=torch.float64)
        per_char[: streams * length].view(streams, length)[:, 1:] = losses.double().cpu()
        scored[: streams * length].view(streams, length)[:, 1:] = 1.0
        loss, count = per_char.view(windows, WINDOW).sum(1), scored.view(windows, WINDOW).sum(1)  # (W,) each
        rows = torch.stack([loss, count], 1)
        return ExampleScores("window", fingerprint(self.vocab.decode(ids.tolist())), {
            "loss": ExampleStats(rows.tolist(), "ratio", False),
            "bpc": ExampleStats((rows / torch.tensor([math.log(2), 1.0], dtype=torch.float64)).tolist(), "ratio",
                                False)})

    def samples(self, split: str, count: int = 3) -> str:
        """`count` lines of 80 characters sampled (temperature 0.8, seed 0) after the split's first 20."""
        prompt = self.vocab.decode(self._split(split)[:20].tolist())
        text = generate(self.model, self.vocab, prompt, 80 * count, temperature=0.8, seed=0)
        return "    " + (prompt + text).replace("\n", "\n    ")  # a markdown code block keeps line breaks

    def _split(self, split: str) -> torch.Tensor:
        if split not in self.splits or self.splits[split].numel() < 2:
            raise DataError(f"this run has no {split} split (or it is shorter than 2 characters)")
        return self.splits[split]

    def state(self) -> dict:
        return {"chars": self.vocab.chars}

    def generate(self, prompt: str, length: int = 500, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, greedy: bool = False, seed: int | None = None,
                 on_text: Callable[[str], None] | None = None) -> str:
        return generate(self.model, self.vocab, prompt, length, temperature, top_k, top_p, greedy, seed, on_text)

    def probe(self, batch_size: int):
        """For `rnncli diagnose`: the first BPTT window of the validation text (the training text
        when there is none) as embeddings (B, bptt, E), and loss(outputs (B, bptt, H))."""
        ids = self.splits.get("val", self.splits.get("train"))
        x, y = BPTTWindows(batchify(ids, batch_size), self.bptt)[0]  # (B, bptt) each
        head = self.model.head
        return self.model.embedding(x).detach(), lambda out: F.cross_entropy(
            head(out).reshape(-1, head.out_features), y.reshape(-1))


def stream_metrics(model: CharLM, ids: torch.Tensor, batch_size: int, bptt: int) -> dict[str, float]:
    """Average next-character loss over a whole stream, state carried across windows."""
    losses = stream_losses(model, ids, batch_size, bptt)
    count = losses.numel()
    loss = float(losses.double().sum()) / count
    return {"loss": loss, "bpc": loss / math.log(2), "ppl": math.exp(loss), "chars": count}


@torch.no_grad()
def stream_losses(model: CharLM, ids: torch.Tensor, batch_size: int, bptt: int) -> torch.Tensor:
    """Next-character loss of every scored character, (B, L - 1): the text cut into B streams of L
    characters (batchify); row b scores ids[b*L + 1 : (b+1)*L], state carried across BPTT windows."""
    model.eval()
    streams = max(1, min(batch_size, (ids.numel() - 1) // bptt))
    out, state = [], None
    for x, y in BPTTWindows(batchify(ids, streams), bptt):
        logits, state = model(x, state)  # (B, n, V)
        out.append(F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none").view(y.shape))
    return torch.cat(out, 1)


def build(cfg: dict, device: torch.device) -> CharLMTask:
    """Config -> data, vocabulary, model and task, ready to train."""
    texts = load_splits(cfg["data"])
    _check_lengths(texts, cfg["trainer"]["batch_size"])
    vocab = CharVocab.from_texts(*texts.values())
    splits = {s: vocab.encode(t).to(device) for s, t in texts.items() if t}
    model = build_model(len(vocab), cfg["model"]).to(device)
    return CharLMTask(model, vocab, cfg["data"], splits, cfg["trainer"]["batch_size"], cfg["trainer"]["bptt"])


def _check_lengths(texts: dict[str, str], batch_size: int) -> None:
    """Found when the data is read, not at the first validation: enough text for the batches."""
    n = len(texts["train"])
    if n < 2 * batch_size:  # each of the batch_size streams needs an input and a next character
        raise DataError(f"the training text has {n} characters, too few for trainer.batch_size = {batch_size} "
                        f"streams of at least 2 characters each (need {2 * batch_size}): give more text or "
                        f"lower trainer.batch_size (check data.path / data.split)")
    if len(texts.get("val", "")) < 2:
        raise DataError(f"the validation text has {len(texts.get('val', ''))} characters; it needs at least 2 "
                        f"(check data.val, or data.split for data.path)")


def restore(cfg: dict, task_state: dict, model_state: dict, device: torch.device) -> CharLMTask:
    """Rebuild a trained task from a checkpoint: the saved vocabulary and weights; data on demand."""
    vocab = CharVocab(task_state["chars"])
    model = build_model(len(vocab), cfg["model"]).to(device)
    model.load_state_dict(model_state)
    return CharLMTask(model, vocab, cfg["data"], {}, cfg["trainer"]["batch_size"], cfg["trainer"]["bptt"])


# --------------------------------------------------------------------------- decode
@torch.inference_mode()
def generate(model: CharLM, vocab: CharVocab, prompt: str, length: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
             seed: int | None = None, on_text: Callable[[str], None] | None = None) -> str:
    """Prime the state with `prompt`, then sample `length` characters; `on_text` streams them.

    The prompt goes through the model in one forward call; each new character then takes one
    `Stepper` step (rnncli/nn/stepper.py) instead of a length-1 model forward: 5-13x the chars/s
    for a 2x512 LSTM on 2 CPU cores, same samples (benchmarks/generation_speed.py).
    """
    check_sampling(temperature, top_k, top_p, greedy)
    if seed is not None and not 0 <= seed < 2**64:  # what a torch.Generator takes
        raise ArgumentError("seed", f"must be in [0, 2**64 - 1] (got {seed})")
    if length < 0:
        raise ArgumentError("length", f"must be >= 0 (got {length})")
    if not prompt:
        raise DataError("the prompt is empty: give at least one character to start from")
    missing = vocab.missing(prompt)
    if missing:
        raise DataError(f"prompt characters not in the run's vocabulary: {' '.join(map(repr, missing))} "
                        f"(the vocabulary has {len(vocab)} characters)")
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else torch.seed())
    ids = vocab.encode(prompt).to(device).unsqueeze(0)  # (1, P)
    logits, state = model(ids)
    logits, state = logits[:, -1], split_state(state)  # (1, V), one state per layer
    stepper = Stepper(model.rnn, model.embedding)
    chars, out = vocab.chars, []
    for _ in range(length):
        token = next_token(logits, temperature, top_k, top_p, greedy, generator)  # (1,)
        char = chars[token.item()]
        out.append(char)
        if on_text is not None:
            on_text(char)
        h, state = stepper.step(token, state)  # (1, H)
        logits = model.head(h)  # (1, V); model.dropout is the identity in eval mode
    return "".join(out)
