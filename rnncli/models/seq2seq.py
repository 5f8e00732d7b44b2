"""Encoder-decoder with optional attention, for the `seq2seq` task.

References: Sutskever et al. 2014 (encoder-decoder), Bahdanau et al. 2015 (additive attention),
Luong et al. 2015 (dot / general scores, attentional hidden state, input feeding).

    source ids (B, S) ─► Encoder: embedding ─► Recurrent (any zoo cell, stacked, bi?) ─► memory (B, S, K)
                                                          └─ final state ─► Bridge ─► decoder state
    decoder, one step (Luong order; the score function is the `attention` kind):
        y_{t-1} (B,) ─► embedding ─┬─► [ ; h̃_{t-1} if input_feeding] ─► Recurrent, 1 step ─► h_t (B, H)
                                   context c_t = Σ_s a_ts memory_s,   a_t = softmax(score(h_t, memory))
                                   h̃_t = tanh(W_c [c_t ; h_t])        (h̃_t = h_t without attention)
                                   logits = W_out dropout(h̃_t)        (B, V)

Padded source positions get a score of -inf, hence a weight of exactly 0.
Recurrent state is explicit: `step(token, state, memory) -> (logits, state, weights)`; the
decoder state is a `DecoderState` (rnn state, previous h̃ for input feeding).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from rnncli.nn.recurrent import Recurrent
from rnncli.nn.state import State, lengths_mask
from rnncli.models.names import ATTENTIONS  # noqa: F401  (re-exported)



class Memory(NamedTuple):
    """What the decoder attends over, computed once per source batch."""

    keys: Tensor  # (B, S, K) encoder outputs, zero at padding
    projected: Optional[Tensor]  # (B, S, A) keys after W (general) or U (additive); None otherwise
    mask: Tensor  # (B, S) True at real source positions


class DecoderState(NamedTuple):
    rnn: State  # h (L, B, H), or (h, c) for the LSTM family
    feed: Optional[Tensor]  # (B, H) previous attentional state h̃ (input feeding), else None


def index_state(state: DecoderState, index: Tensor) -> DecoderState:
    """Pick / reorder batch rows of a decoder state (beam search)."""
    rnn = tuple(h.index_select(1, index) for h in state.rnn) if isinstance(state.rnn, tuple) \
        else state.rnn.index_select(1, index)
    feed = None if state.feed is None else state.feed.index_select(0, index)
    return DecoderState(rnn, feed)


def index_memory(memory: Memory, index: Tensor) -> Memory:
    return Memory(*(None if t is None else t.index_select(0, index) for t in memory))


class Attention(nn.Module):
    """score(h_t, memory) -> weights (B, S) that are exactly 0 on padding, and context (B, K)."""

    def __init__(self, kind: str, query_size: int, key_size: int):
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.key_proj = nn.Linear(key_size, query_size, bias=False)  # W
        elif kind == "additive":
            self.key_proj = nn.Linear(key_size, query_size, bias=False)  # U
            self.query_proj = nn.Linear(query_size, query_size, bias=True)  # W
            self.v = nn.Linear(query_size, 1, bias=False)

    def project(self, keys: Tensor) -> Optional[Tensor]:
        """The query-independent part, once per source batch."""
        return self.key_proj(keys) if self.kind in ("general", "additive") else None

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """query (B, T, H) -> weights (B, T, S), context (B, T, K)."""
        if self.kind == "dot":
            scores = query @ memory.keys.transpose(1, 2)  # (B, T, S)
        elif self.kind == "general":
            scores = query @ memory.projected.transpose(1, 2)
        else:  # additive: v^T tanh(W q_t + U k_s)
            hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + memory.projected.unsqueeze(1))  # (B,T,S,A)
            scores = self.v(hidden).squeeze(-1)
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # exp(-inf) = 0 exactly
        return weights, weights @ memory.keys


class Bridge(nn.Module):
    """Final encoder state (top layer, both directions) -> initial decoder state (any sizes)."""

    def __init__(self, kind: str, enc_size: int, dec_hidden: int, dec_layers: int, lstm: bool):
        super().__init__()
        self.kind, self.dec_hidden, self.dec_layers, self.lstm = kind, dec_hidden, dec_layers, lstm
        if kind == "linear":
            self.h = nn.Linear(enc_size, dec_hidden * dec_layers)
            self.c = nn.Linear(enc_size, dec_hidden * dec_layers) if lstm else None

    def _map(self, layer: nn.Linear, final: Tensor, num_directions: int) -> Tensor:
        top = final[-num_directions:]  # (D, B, H) the last layer, both directions
        flat = top.transpose(0, 1).reshape(top.size(1), -1)  # (B, D*H)
        out = torch.tanh(layer(flat))  # (B, L*H_dec)
        return out.view(-1, self.dec_layers, self.dec_hidden).transpose(0, 1).contiguous()  # (L, B, H_dec)

    def forward(self, enc_state: State, num_directions: int, batch: int, like: Tensor) -> State:
        if self.kind == "zeros":
            h = like.new_zeros(self.dec_layers, batch, self.dec_hidden)
            return (h, torch.zeros_like(h)) if self.lstm else h
        h_enc = enc_state[0] if isinstance(enc_state, tuple) else enc_state
        h = self._map(self.h, h_enc, num_directions)
        if not self.lstm:
            return h
        c_enc = enc_state[1] if isinstance(enc_state, tuple) else h_enc
        return h, self._map(self.c, c_enc, num_directions)


class Seq2Seq(nn.Module):
    """Encoder, bridge, decoder and attention (see the module docstring).

    `recurrent` are the encoder's `Recurrent` keyword arguments (cell, hidden_size, num_layers,
    bidirectional, dropout, ...). The decoder takes the same ones, except its own size
    (`decoder_hidden_size`, `decoder_num_layers`; None: the encoder's) and one direction.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embedding_dim: int, attention: str = "additive",
                 input_feeding: bool = False, decoder_hidden_size: int | None = None,
                 decoder_num_layers: int | None = None, bridge: str = "linear", pad_id: int = 0, **recurrent):
        super().__init__()
        self.attention_kind, self.input_feeding = attention, input_feeding and attention != "none"
        self.src_embedding = nn.Embedding(src_vocab, embedding_dim, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embedding_dim, padding_idx=pad_id)
        self.encoder = Recurrent(input_size=embedding_dim, **recurrent)
        enc_size, cell, dropout = self.encoder.output_size, self.encoder.cell, self.encoder.dropout
        decoder_hidden_size = decoder_hidden_size or self.encoder.hidden_size
        decoder_num_layers = decoder_num_layers or self.encoder.num_layers
        has_c = self.encoder.cell_class.state_kind == "hc"  # the state is (h, c): the bridge maps c too
        self.bridge = Bridge(bridge, enc_size, decoder_hidden_size, decoder_num_layers, has_c)
        dec_in = embedding_dim + (decoder_hidden_size if self.input_feeding else 0)
        self.decoder = Recurrent(**{**recurrent, "input_size": dec_in, "hidden_size": decoder_hidden_size,
                                    "num_layers": decoder_num_layers, "bidirectional": False})
        if attention != "none":
            self.attention = Attention(attention, decoder_hidden_size, enc_size)
            self.combine = nn.Linear(enc_size + decoder_hidden_size, decoder_hidden_size, bias=False)  # W_c
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(decoder_hidden_size, tgt_vocab)

    # ---- encoder
    def encode(self, src: Tensor, lengths: Tensor) -> tuple[Memory, DecoderState]:
        """src (B, S) ids, lengths (B,) -> memory over the source and the initial decoder state."""
        out, final = self.encoder(self.dropout(self.src_embedding(src)), lengths)  # (B, S, D*H)
        mask = lengths_mask(lengths.to(src.device), src.size(1))  # (B, S)
        projected = self.attention.project(out) if self.attention_kind != "none" else None
        rnn = self.bridge(final, self.encoder.num_directions, src.size(0), out)
        feed = out.new_zeros(src.size(0), self.decoder.hidden_size) if self.input_feeding else None
        return Memory(out, projected, mask), DecoderState(rnn, feed)

    # ---- decoder
    def _attend(self, h: Tensor, memory: Memory) -> tuple[Tensor, Optional[Tensor]]:
        """h (B, T, H) -> attentional state h̃ (B, T, H) and weights (B, T, S) (None without attention)."""
        if self.attention_kind == "none":
            return h, None
        weights, context = self.attention(h, memory)
        return torch.tanh(self.combine(torch.cat([context, h], dim=-1))), weights

    def step(self, token: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState, Optional[Tensor]]:
        """One decoder step: token (B,) -> logits (B, V), new state, attention weights (B, S) or None."""
        x = self.dropout(self.tgt_embedding(token)).unsqueeze(1)  # (B, 1, E)
        if self.input_feeding:
            x = torch.cat([x, state.feed.unsqueeze(1)], dim=-1)
        h, rnn = self.decoder(x, state=state.rnn)  # (B, 1, H)
        h_tilde, weights = self._attend(h, memory)
        logits = self.out(self.dropout(h_tilde)).squeeze(1)
        feed = h_tilde.squeeze(1) if self.input_feeding else None
        return logits, DecoderState(rnn, feed), None if weights is None else weights.squeeze(1)

    def forward(self, src: Tensor, lengths: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Optional[Tensor]]:
        """Training / scoring: tgt_in (B, T) starts with <bos> -> logits (B, T, V), weights (B, T, S).

        With full teacher forcing and no input feeding the decoder RNN runs over all T steps in one
        call; otherwise step by step, feeding back the model's own argmax with prob 1 - teacher_forcing.
        """
        memory, state = self.encode(src, lengths)
        if teacher_forcing >= 1.0 and not self.input_feeding:
            h, _ = self.decoder(self.dropout(self.tgt_embedding(tgt_in)), state=state.rnn)  # (B, T, H)
            h_tilde, weights = self._attend(h, memory)
            return self.out(self.dropout(h_tilde)), weights
        logits, weights, token = [], [], tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            step_logits, state, w = self.step(token, state, memory)
            logits.append(step_logits)
            weights.append(w)
            if t + 1 < tgt_in.size(1):
                token = tgt_in[:, t + 1]
                if teacher_forcing < 1.0:
                    own = torch.rand(token.shape, generator=generator, device=token.device) >= teacher_forcing
                    token = torch.where(own, step_logits.argmax(-1), token)
        stacked = None if weights[0] is None else torch.stack(weights, 1)
        return torch.stack(logits, 1), stacked
