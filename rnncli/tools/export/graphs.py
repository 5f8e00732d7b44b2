"""The graphs `rnncli export` writes, one wrapper per task around the trained model's own modules.

Every recurrent stack is swapped for `rnncli.nn.export.ExportRecurrent` (the cells' reference step
in a scripted time loop); embeddings, heads, pooling, attention and the bridge are the model's own.
Inputs are padded batches plus lengths (B,); batch and time axes are dynamic. Recurrent state is
explicit where a caller carries it (h, plus c for cells whose state is (h, c)):

    char_lm       model         ids (B, T), lengths, h, [c]      -> logits (B, T, V), h, [c]
    adding, copy  model         inputs (B, T, I), lengths, h, [c] -> outputs (B, T, O), h, [c]
    classify      model         ids (B, T), lengths              -> logits (B, num_labels)
    ner           model         words (B, T), lengths, [chars (B, T, L), char_lengths (B, T)]
                                                                 -> emissions (B, T, K)
    seq2seq       encoder       src (B, S), src_lengths          -> memory (B, S, K), [projected], h, [c], [feed]
                  decoder_step  token (B,), src_lengths, memory, [projected], h, [c], [feed]
                                                                 -> logits (B, V), h, [c], [feed]

Classifier and tagger read whole sentences (often bidirectionally), so they start from zeros and
return no state. Each `Graph` also says how to draw random inputs and how the PyTorch model itself
(the trained `Recurrent`, packing and all) computes the same outputs: that is the parity reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from rnncli.models.pooling import pool
from rnncli.models.seq2seq import DecoderState, Memory
from rnncli.nn.export import ExportRecurrent
from rnncli.nn.state import lengths_mask


@dataclass
class Graph:
    name: str  # file stem: "model", "encoder", "decoder_step"
    module: nn.Module  # the wrapper that is traced / exported (eval mode)
    inputs: list[str]
    outputs: list[str]
    axes: dict[str, dict[int, str]]  # dynamic axes of each input and output
    sample: Callable[[int, int, bool, torch.Generator], tuple[Tensor, ...]]  # (batch, steps, padded, gen)
    reference: Callable[..., tuple[Tensor, ...]]  # the PyTorch model on the same inputs


def random_lengths(batch: int, steps: int, padded: bool, gen: torch.Generator) -> Tensor:
    """(B,) int64: all `steps`, or (padded) random in 1..steps with the first row full."""
    if not padded:
        return torch.full((batch,), steps, dtype=torch.long)
    lengths = torch.randint(1, steps + 1, (batch,), generator=gen)
    lengths[0] = steps
    return lengths


def _state_names(rnn: ExportRecurrent) -> list[str]:
    return ["h", "c"] if rnn.has_c else ["h"]


def _out(names: list[str]) -> list[str]:
    """Output names of the state inputs `names` (ONNX needs them distinct): h -> h_out."""
    return [f"{n}_out" for n in names]


def _state_axes(names: list[str]) -> dict[str, dict[int, str]]:
    return {n: {1: "batch"} for n in names + _out(names)}


def _random_state(rnn: ExportRecurrent, batch: int, gen: torch.Generator) -> tuple[Tensor, ...]:
    rows = rnn.num_layers * rnn.num_directions
    return tuple(torch.randn(rows, batch, rnn.hidden_size, generator=gen) for _ in _state_names(rnn))


def _as_state(parts) -> object:
    return tuple(parts) if len(parts) == 2 else parts[0]


def _flat_state(state) -> tuple[Tensor, ...]:
    return tuple(state) if isinstance(state, tuple) else (state,)


# --------------------------------------------------------------------------- streams
class StreamGraph(nn.Module):
    """Embedding (or none) -> recurrent stack with explicit state -> per-step head."""

    def __init__(self, embedding: nn.Module, rnn, head: nn.Module) -> None:
        super().__init__()
        self.embedding, self.rnn, self.head = embedding, ExportRecurrent(rnn), head

    def forward(self, x: Tensor, lengths: Tensor, *state: Tensor):
        c = state[1] if self.rnn.has_c else state[0]  # h-only cells: c passes through unused
        out, h, c = self.rnn(self.embedding(x), lengths, state[0], c)
        return (self.head(out), h, c) if self.rnn.has_c else (self.head(out), h)


def _stream(model, embedding: nn.Module, x_name: str, out_name: str, draw_x) -> Graph:
    graph = StreamGraph(embedding, model.rnn, model.head).eval()
    names = _state_names(graph.rnn)

    def sample(batch, steps, padded, gen):
        return (draw_x(batch, steps, gen), random_lengths(batch, steps, padded, gen),
                *_random_state(graph.rnn, batch, gen))

    def reference(x, lengths, *state):
        out, final = model.rnn(embedding(x), lengths, _as_state(state))
        return (model.head(out), *_flat_state(final))

    axes = {x_name: {0: "batch", 1: "time"}, "lengths": {0: "batch"}, out_name: {0: "batch", 1: "time"},
            **_state_axes(names)}
    return Graph("model", graph, [x_name, "lengths", *names], [out_name, *_out(names)], axes, sample, reference)


def char_lm_graphs(model, task) -> list[Graph]:
    vocab = model.embedding.num_embeddings
    return [_stream(model, model.embedding, "ids", "logits",
                    lambda b, t, g: torch.randint(0, vocab, (b, t), generator=g))]


def sequence_graphs(model, task) -> list[Graph]:
    size = model.input_size
    return [_stream(model, nn.Identity(), "inputs", "outputs",
                    lambda b, t, g: torch.rand(b, t, size, generator=g))]


# --------------------------------------------------------------------------- classify
class ClassifierGraph(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.rnn = model, ExportRecurrent(model.rnn)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        m = self.model
        zeros = self.rnn.zero_state(ids)
        out, h, c = self.rnn(m.embedding(ids), lengths, zeros, zeros)  # (B, T, D*H)
        state = (h, c) if self.rnn.has_c else h
        return m.head(pool(m.pooling, out, state, lengths, self.rnn.num_directions, m.attention))


def classify_graphs(model, task) -> list[Graph]:
    vocab = model.embedding.num_embeddings

    def sample(batch, steps, padded, gen):
        return torch.randint(0, vocab, (batch, steps), generator=gen), random_lengths(batch, steps, padded, gen)

    axes = {"ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
    return [Graph("model", ClassifierGraph(model).eval(), ["ids", "lengths"], ["logits"], axes, sample,
                  lambda ids, lengths: (model(ids, lengths),))]


# --------------------------------------------------------------------------- ner
class TaggerGraph(nn.Module):
    """Emission scores; the CRF's start / transition / end scores go to the sidecar (Viterbi in the caller)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.rnn = model, ExportRecurrent(model.rnn)
        chars = model.chars
        self.char_kind = None if chars is None else chars.kind
        self.char_rnn = ExportRecurrent(chars.rnn) if self.char_kind == "lstm" else None

    def _char_features(self, chars: Tensor, lengths: Tensor) -> Tensor:
        """chars (N, L), lengths (N,) -> (N, C), as CharEncoder (zero-length rows are padding words)."""
        enc = self.model.chars
        x = enc.embedding(chars)  # (N, L, E)
        if self.char_rnn is not None:
            zeros = self.char_rnn.zero_state(chars)
            _, h, _ = self.char_rnn(x, lengths, zeros, zeros)  # (2, N, H)
            return torch.cat([h[0], h[1]], dim=1)
        y = enc.conv(x.transpose(1, 2))[:, :, : chars.shape[1]]  # (N, C, L)
        pad = ~lengths_mask(lengths, chars.shape[1])
        return y.masked_fill(pad.unsqueeze(1), float("-inf")).max(dim=2).values

    def forward(self, words: Tensor, lengths: Tensor, *chars: Tensor) -> Tensor:
        m = self.model
        x = m.embedding(words)  # (B, T, E)
        if self.char_kind is not None:
            ids, char_lengths = chars  # (B, T, L), (B, T)
            per_word = self._char_features(ids.flatten(0, 1), char_lengths.flatten(0, 1))  # (B*T, C)
            per_word = per_word.reshape(words.shape[0], words.shape[1], per_word.shape[1])
            real = lengths_mask(lengths, words.shape[1]).unsqueeze(2)  # (B, T, 1)
            x = torch.cat([x, torch.where(real, per_word, torch.zeros_like(per_word))], dim=2)
        zeros = self.rnn.zero_state(words)
        out, _, _ = self.rnn(x, lengths, zeros, zeros)
        return m.head(out)  # (B, T, K)


def ner_graphs(model, task) -> list[Graph]:
    graph = TaggerGraph(model).eval()
    num_words = model.embedding.num_embeddings
    num_chars = model.chars.embedding.num_embeddings if model.chars is not None else 0

    def sample(batch, steps, padded, gen):
        lengths = random_lengths(batch, steps, padded, gen)
        words = torch.randint(1, num_words, (batch, steps), generator=gen)
        if graph.char_kind is None:
            return words, lengths
        width = 6
        char_lengths = torch.randint(1, width + 1, (batch, steps), generator=gen)
        char_lengths = char_lengths * lengths_mask(lengths, steps)  # padding words: length 0
        chars = torch.randint(1, num_chars, (batch, steps, width), generator=gen)
        chars = chars * lengths_mask(char_lengths.flatten(), width).view(batch, steps, width)
        return words, lengths, chars, char_lengths

    def reference(words, lengths, *chars):
        if not chars:
            return (model(words, lengths),)
        real = lengths_mask(lengths, words.shape[1])  # the real words, row-major, as the task packs them
        return (model(words, lengths, chars=(chars[0][real], chars[1][real])),)

    inputs = ["words", "lengths"] + ([] if graph.char_kind is None else ["chars", "char_lengths"])
    axes = {"words": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "emissions": {0: "batch", 1: "time"},
            "chars": {0: "batch", 1: "time", 2: "word_length"}, "char_lengths": {0: "batch", 1: "time"}}
    return [Graph("model", graph, inputs, ["emissions"], {k: v for k, v in axes.items() if k in inputs + ["emissions"]},
                  sample, reference)]


# --------------------------------------------------------------------------- seq2seq
class EncoderGraph(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.rnn = model, ExportRecurrent(model.encoder)
        self.projects = model.attention_kind in ("general", "additive")

    def forward(self, src: Tensor, src_lengths: Tensor):
        m = self.model
        zeros = self.rnn.zero_state(src)
        out, h, c = self.rnn(m.src_embedding(src), src_lengths, zeros, zeros)  # (B, S, D*H)
        state = m.bridge((h, c) if self.rnn.has_c else h, self.rnn.num_directions, src.shape[0], out)
        extra = (m.attention.project(out),) if self.projects else ()
        feed = (out.new_zeros(src.shape[0], m.decoder.hidden_size),) if m.input_feeding else ()
        return (out, *extra, *_flat_state(state), *feed)


class DecoderStepGraph(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.rnn = model, ExportRecurrent(model.decoder)
        self.projects = model.attention_kind in ("general", "additive")

    def forward(self, token: Tensor, *rest: Tensor):
        """token, [src_lengths, memory, [projected]] (with attention), h, [c], [feed]."""
        m = self.model
        attends = m.attention_kind != "none"
        src_lengths, memory = rest[:2] if attends else (None, None)
        projected = rest[2] if self.projects else None
        state = rest[2 + self.projects:] if attends else rest
        h = state[0]
        c = state[1] if self.rnn.has_c else h
        x = m.tgt_embedding(token).unsqueeze(1)  # (B, 1, E)
        if m.input_feeding:
            x = torch.cat([x, state[-1].unsqueeze(1)], dim=-1)
        out, h, c = self.rnn(x, torch.ones_like(token), h, c)  # (B, 1, H)
        if m.attention_kind != "none":
            mask = lengths_mask(src_lengths, memory.shape[1])
            _, context = m.attention(out, Memory(memory, projected, mask))
            out = torch.tanh(m.combine(torch.cat([context, out], dim=-1)))  # h̃ (B, 1, H)
        new_state = (h, c) if self.rnn.has_c else (h,)
        feed = (out.squeeze(1),) if m.input_feeding else ()
        return (m.out(out).squeeze(1), *new_state, *feed)


def seq2seq_graphs(model, task) -> list[Graph]:
    enc, dec = EncoderGraph(model).eval(), DecoderStepGraph(model).eval()
    src_vocab, tgt_vocab = model.src_embedding.num_embeddings, model.tgt_embedding.num_embeddings
    state = _state_names(dec.rnn) + (["feed"] if model.input_feeding else [])
    memory = ["memory"] + (["projected"] if enc.projects else [])
    axes = {"src": {0: "batch", 1: "src_time"}, "src_lengths": {0: "batch"}, "token": {0: "batch"},
            "logits": {0: "batch"}, "memory": {0: "batch", 1: "src_time"}, "projected": {0: "batch", 1: "src_time"},
            **_state_axes(_state_names(dec.rnn)), "feed": {0: "batch"}, "feed_out": {0: "batch"}}

    attends = ["src_lengths", *memory] if model.attention_kind != "none" else []  # no attention: no memory

    def pick(names):
        return {k: v for k, v in axes.items() if k in names}

    def sample_encoder(batch, steps, padded, gen):
        return (torch.randint(0, src_vocab, (batch, steps), generator=gen),
                random_lengths(batch, steps, padded, gen))

    def reference_encoder(src, src_lengths):
        mem, st = model.encode(src, src_lengths)
        extra = (mem.projected,) if enc.projects else ()
        feed = (st.feed,) if model.input_feeding else ()
        return (mem.keys, *extra, *_flat_state(st.rnn), *feed)

    def sample_step(batch, steps, padded, gen):
        lengths = random_lengths(batch, steps, padded, gen)
        keys = torch.randn(batch, steps, enc.rnn.hidden_size * enc.rnn.num_directions, generator=gen)
        keys = keys * lengths_mask(lengths, steps).unsqueeze(2)  # zero at padding, as the encoder gives
        extra = (model.attention.project(keys).detach(),) if enc.projects else ()
        hidden = [torch.randn(dec.rnn.num_layers, batch, dec.rnn.hidden_size, generator=gen)
                  for _ in _state_names(dec.rnn)]
        feed = [torch.randn(batch, dec.rnn.hidden_size, generator=gen)] if model.input_feeding else []
        memory_in = (lengths, keys, *extra) if attends else ()
        return (torch.randint(0, tgt_vocab, (batch,), generator=gen), *memory_in, *hidden, *feed)

    def reference_step(token, *rest):
        if attends:
            mem = Memory(rest[1], rest[2] if enc.projects else None, lengths_mask(rest[0], rest[1].shape[1]))
            rest = rest[2 + enc.projects:]
        else:  # the model attends over nothing: any memory will do
            mem = Memory(token.new_zeros(token.shape[0], 1, 1).float(), None, token.new_ones(token.shape[0], 1).bool())
        feed = rest[-1] if model.input_feeding else None
        rnn = _as_state(rest[:-1] if model.input_feeding else rest)
        logits, new, _ = model.step(token, DecoderState(rnn, feed), mem)
        return (logits, *_flat_state(new.rnn), *((new.feed,) if model.input_feeding else ()))

    enc_in, enc_out = ["src", "src_lengths"], memory + state
    step_in, step_out = ["token", *attends, *state], ["logits", *_out(state)]
    return [Graph("encoder", enc, enc_in, enc_out, pick(enc_in + enc_out), sample_encoder, reference_encoder),
            Graph("decoder_step", dec, step_in, step_out, pick(step_in + step_out), sample_step, reference_step)]


# The graphs of each task (tests/test_export.py checks that every registered task has an entry).
GRAPHS: dict[str, Callable[..., list[Graph]]] = {
    "char_lm": char_lm_graphs,
    "classify": classify_graphs,
    "ner": ner_graphs,
    "seq2seq": seq2seq_graphs,
    "adding": sequence_graphs,
    "copy_memory": sequence_graphs,
}
