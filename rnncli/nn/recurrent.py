"""Sequence-level recurrent layer: a whole padded batch, stacked and optionally bidirectional.

`Recurrent` runs a stack on one of three paths (`impl`; `paths()` says which and why):

    fused    rnn / lstm / gru: torch's fused `nn.RNN` / `nn.LSTM` / `nn.GRU` (one submodule
             `self.rnn` holding all layers); peephole_lstm / cifg_lstm: our hand-written BPTT
             (`rnncli.nn.bptt`, one autograd.Function per layer and direction). lstm under bf16 /
             fp16 autocast on the CPU also takes the hand-written path (nn.LSTM is slower there).
    bptt     the hand-written BPTT for any LSTM-family cell, lstm included (benchmarks, tests).
    autograd the cells' own step (`run_cell`) under plain autograd: the reference path for
             peephole_lstm / cifg_lstm (input projection in one matmul, a loop over the rest).

Every path shares one contract:

    x (B, T, I) ──► layer 0 ──► dropout ──► layer 1 ──► ... ──► output (B, T, D*H)
                     │ forward:  t = 0 .. len-1
                     │ backward: t = len-1 .. 0 (each sequence reversed within its own length)
                     └ final state: h (L*D, B, H), or (h, c) for the LSTM family,
                       row layer*D + direction, taken at each sequence's last REAL step

    a padded batch, lengths = (3, 5):    x = [a b c . .]    output = [A B C 0 0]
                                             [d e f g h]             [D E F G H]

Positions t >= length are exactly zero in the output and never change the state.
"""
from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnncli.nn import fused_cpu
from rnncli.nn.bptt import lstm_family_layer
from rnncli.nn.cells import LSTM_FAMILY, check_cell_name, check_nonlinearity, make_cell
from rnncli.nn.init import init_recurrent_

State = Union[Tensor, tuple[Tensor, Tensor]]

_FUSED = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
IMPLS = ("fused", "bptt", "autograd")
# model-config keys that become `Recurrent` keyword arguments when present
CELL_OPTIONS = ("nonlinearity", "recurrent_init", "input_init", "forget_bias", "impl")


def cell_options(model_cfg: dict) -> dict:
    """The `Recurrent` keyword arguments found in a resolved `model` config section."""
    return {k: model_cfg[k] for k in CELL_OPTIONS if k in model_cfg}


class Recurrent(nn.Module):
    """Sequence-level layer: a whole (padded) batch; stacked, bidirectional, batch_first.

    forward(x, lengths=None, state=None) -> (output, final_state)
      x        (B, T, I) if batch_first else (T, B, I)
      lengths  (B,) integer tensor on any device, each in 1..T; None = every sequence is T long
      state    like torch: h (L*D, B, H) for rnn / gru, (h, c) for the LSTM family; None = zeros
      output   (B, T, D*H) if batch_first else (T, B, D*H), zero where t >= length
    Dropout is applied to the outputs of every layer but the last, in training mode only
    (so none with num_layers=1; a model may still use the same rate before its output head).
    Weights are initialised by `rnncli.nn.init.init_recurrent_` with the given options.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        nonlinearity: str = "tanh",
        batch_first: bool = True,
        recurrent_init: str = "orthogonal",
        input_init: str = "xavier_uniform",
        forget_bias: float = 1.0,
        impl: str = "fused",
    ) -> None:
        super().__init__()
        check_cell_name(cell)
        check_nonlinearity(cell, nonlinearity)
        _check_sizes(input_size, hidden_size, num_layers, dropout)
        _check_impl(cell, impl)
        self.cell, self.impl = cell, impl
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.batch_first, self.dropout = bidirectional, batch_first, dropout
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions
        if cell in _FUSED:
            extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
            self.rnn = _FUSED[cell](
                input_size, hidden_size, num_layers, batch_first=batch_first,
                dropout=dropout if num_layers > 1 else 0.0,  # 0 silences torch's warning
                bidirectional=bidirectional, **extra,
            )
        else:  # one cell per layer and direction, row k = layer * D + direction
            self.cells = nn.ModuleList(
                make_cell(cell, input_size if layer == 0 else self.output_size, hidden_size)
                for layer in range(num_layers)
                for _ in range(self.num_directions)
            )
        init_recurrent_(self, cell, hidden_size, recurrent_init, input_init, forget_bias)

    def initial_state(self, batch_size: int, device=None, dtype=None) -> State:
        """All-zeros state: h (L*D, B, H), or (h, c) for the LSTM family."""
        ref = next(self.parameters())
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        device = ref.device if device is None else device
        h = torch.zeros(shape, device=device, dtype=ref.dtype if dtype is None else dtype)
        return (h, torch.zeros_like(h)) if self.cell in LSTM_FAMILY else h

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, state: State | None = None
    ) -> tuple[Tensor, State]:
        if x.dim() != 3:
            raise ValueError(f"Recurrent expects a 3-D input, got shape {tuple(x.shape)}")
        batch, steps = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if _all_full(lengths, batch, steps):
            lengths = None  # no masking, no packing: the fast path
        path = self.path(x.device.type)
        if path == "torch":
            return self._forward_fused(x, lengths, state)
        return self._forward_custom(x, lengths, state, path)

    def path(self, device_type: str = "cpu") -> str:
        """'torch' (fused kernel), 'bptt' (hand-written) or 'autograd', as forward would now run.

        Depends on autocast: lstm under bf16 / fp16 autocast on the CPU runs the hand-written path.
        """
        if self.cell in LSTM_FAMILY and self.impl == "bptt":
            return "bptt"
        if self.cell in _FUSED:
            low = autocast_dtype(device_type) is not None
            return "bptt" if self.cell == "lstm" and low and device_type == "cpu" else "torch"
        return "autograd" if self.impl == "autograd" else "bptt"

    def paths(self, device_type: str = "cpu") -> list[tuple[str, str, str]]:
        """(layers, implementation, why) for the fast-path report, as forward would now run."""
        path, low = self.path(device_type), autocast_dtype(device_type)
        layers = f"{self.num_layers} layer{'s' if self.num_layers > 1 else ''}" + \
            (" x 2 directions" if self.bidirectional else "")
        if path == "torch":
            kernel = {"rnn": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU"}[self.cell]
            return [(layers, f"fused torch kernel ({kernel})", "standard cell: torch's own kernel")]
        if path == "autograd":
            return [(layers, "plain autograd loop", "model.impl: autograd (the reference path)")]
        low_name = None if low is None else str(low).replace("torch.", "")  # e.g. bfloat16
        if self.cell not in _FUSED:
            why = "custom cell: no torch kernel"
        elif self.impl == "bptt":
            why = "impl='bptt'"
        else:
            why = f"{low_name} on the CPU: nn.LSTM under autocast is slower"
        if low_name is not None:
            why += f"; {low_name} matmuls, fp32 cell state"
        elif device_type == "cpu":  # float32 on the CPU: compiled pointwise steps if available
            why += "; fused C++ steps" if fused_cpu.kernels() is not None else "; eager steps (no C++ kernels)"
        return [(layers, "hand-written BPTT (rnncli.nn.bptt)", why)]

    def _forward_fused(
        self, x: Tensor, lengths: Tensor | None, state: State | None
    ) -> tuple[Tensor, State]:
        """torch's kernels; packing makes the final state each sequence's last real step."""
        if lengths is None:
            return self.rnn(x, state)
        steps = x.shape[1] if self.batch_first else x.shape[0]
        packed = pack_padded_sequence(
            x, lengths.to("cpu", torch.int64), batch_first=self.batch_first, enforce_sorted=False
        )
        out, state = self.rnn(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=steps)
        return out, state  # padded positions are zero

    def _forward_custom(
        self, x: Tensor, lengths: Tensor | None, state: State | None, path: str
    ) -> tuple[Tensor, State]:
        """Our loops, time-major inside: x (T, B, I) -> layers -> (T, B, D*H)."""
        x = x.transpose(0, 1) if self.batch_first else x  # (T, B, I)
        if state is None:
            state = self.initial_state(x.shape[1], x.device, x.dtype)
        mask = None if lengths is None else time_mask(lengths.to(x.device), x.shape[0])
        finals = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)
            outs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                reverse = direction == 1
                seq = reverse_padded(x, lengths, batch_first=False) if reverse else x
                if path == "bptt":
                    out, final = self._run_bptt(k, seq, _state_row(state, k), mask)
                else:
                    out, final = run_cell(self.cells[k], seq, _state_row(state, k), mask)
                outs.append(reverse_padded(out, lengths, batch_first=False) if reverse else out)
                finals.append(final)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)  # (T, B, D*H)
        out = x.transpose(0, 1) if self.batch_first else x
        return out, _stack_states(finals)

    def _run_bptt(self, k: int, x: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
        """Layer/direction k on the hand-written path; same contract as `run_cell`."""
        low = autocast_dtype(x.device.type)
        with torch.autocast(x.device.type, enabled=False):
            hs, c = lstm_family_layer(self.cell, x, *state, *self._weights(k), mask=mask,
                                      compute_dtype=low)
        return (hs if mask is None else hs * mask), (hs[-1], c)

    def _weights(self, k: int) -> tuple:
        """(weight_ih, weight_hh, bias_ih, bias_hh, peepholes or None) of layer/direction k."""
        if self.cell in _FUSED:  # lstm: the weights live in nn.LSTM, named per layer
            suffix = f"_l{k // self.num_directions}" + ("_reverse" if k % self.num_directions else "")
            return tuple(getattr(self.rnn, name + suffix) for name in
                         ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) + (None,)
        cell = self.cells[k]
        peep = (cell.weight_ci, cell.weight_cf, cell.weight_co) if hasattr(cell, "weight_ci") else None
        return cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, peep

    def extra_repr(self) -> str:
        return (
            f"{self.cell!r}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}" + (f", impl={self.impl!r}" if self.impl != "fused" else "")
        )


def run_cell(
    cell: nn.Module, x: Tensor, state: State, mask: Tensor | None = None
) -> tuple[Tensor, State]:
    """Run one cell over time: x (T, B, I) -> (outputs (T, B, H), final state).

    The input projection of all T steps is one matmul; the loop does only `recurrent_step`.
    mask (T, B, 1) bool, True at real steps: elsewhere the state keeps its value, output is 0.
    """
    xw = F.linear(x, cell.weight_ih, cell.bias_ih)  # (T, B, G*H)
    outputs = []
    if mask is None:
        for xw_t in xw.unbind(0):  # unbind: one backward op, not T zero-filled selects
            state = cell.recurrent_step(xw_t, state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outputs), state
    for xw_t, m_t in zip(xw.unbind(0), mask.unbind(0)):
        state = _keep_where(m_t, cell.recurrent_step(xw_t, state), state)
        outputs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outputs) * mask, state  # zero the padded positions


def time_mask(lengths: Tensor, steps: int) -> Tensor:
    """(T, B, 1) bool, True where t < length."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)  # (T, 1)
    return (t < lengths.unsqueeze(0)).unsqueeze(-1)


def reverse_padded(x: Tensor, lengths: Tensor | None, batch_first: bool = True) -> Tensor:
    """Reverse each sequence within its own length; padding stays at the end. Self-inverse.

    x (B, T, *) if batch_first else (T, B, *); lengths (B,) or None (= plain flip over time).
        [a b c . .] -> [c b a . .]
    """
    time_dim = 1 if batch_first else 0
    if lengths is None:
        return x.flip(time_dim)
    t = torch.arange(x.shape[time_dim], device=x.device).unsqueeze(0)  # (1, T)
    length = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(t < length, length - 1 - t, t)  # (B, T)
    if not batch_first:
        index = index.t()  # (T, B)
    index = index.reshape(index.shape + (1,) * (x.dim() - 2)).expand_as(x)
    return x.gather(time_dim, index)


def detach_state(state: State | None) -> State | None:
    """Cut the graph behind a state (truncated BPTT). Tensor, (h, c) tuple or None."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def select_state(state: State | None, index) -> State | None:
    """Index the batch dim (dim 1) of a layer state, e.g. to reorder beams in generation.

    `index` is anything tensor indexing takes: a LongTensor or slice keeps the batch dim,
    an int drops it.
    """
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s[:, index] for s in state)
    return state[:, index]


def _keep_where(mask_t: Tensor, new: State, old: State) -> State:
    """new where mask_t (B, 1) is True, else old."""
    if isinstance(new, tuple):
        return tuple(torch.where(mask_t, n, o) for n, o in zip(new, old))
    return torch.where(mask_t, new, old)


def _state_row(state: State, k: int) -> State:
    """Row k of an (L*D, B, H) layer state -> a step-level state (B, H)."""
    return tuple(s[k] for s in state) if isinstance(state, tuple) else state[k]


def _stack_states(states: list[State]) -> State:
    """List of step-level states -> layer state (L*D, B, H)."""
    if isinstance(states[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*states))
    return torch.stack(states)


def _all_full(lengths: Tensor | None, batch: int, steps: int) -> bool:
    """Validate lengths; True when there is no padding (lengths None or all == T)."""
    if lengths is None:
        return True
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > steps:
        raise ValueError(
            f"lengths must lie in 1..{steps} (the padded length), got min {lo}, max {hi}"
        )
    return lo == steps


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The lower-precision dtype autocast is running for `device_type`, or None."""
    if device_type not in ("cpu", "cuda"):
        return None
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def _check_impl(cell: str, impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    if impl == "bptt" and cell not in LSTM_FAMILY:
        raise ValueError(f"impl='bptt' is for the LSTM family ({', '.join(LSTM_FAMILY)}), not {cell!r}")
    if impl == "autograd" and cell in _FUSED:
        raise ValueError(f"impl='autograd' is for peephole_lstm and cifg_lstm; {cell!r} runs torch's kernel")


def _check_sizes(input_size: int, hidden_size: int, num_layers: int, dropout: float) -> None:
    """Raise a ValueError naming the first bad size or dropout rate."""
    for key, value in (("input_size", input_size), ("hidden_size", hidden_size),
                       ("num_layers", num_layers)):
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
