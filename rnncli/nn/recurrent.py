"""Sequence-level recurrent layer: a whole padded batch, stacked and optionally bidirectional.

`Recurrent` runs a stack on one of four paths, chosen by `impl` and by what the cell class declares
(`paths()` says which and why):

    torch     cells with a `torch_kernel` (rnn, lstm, gru): torch's `nn.RNN` / `nn.LSTM` / `nn.GRU`,
              one submodule `self.rnn` holding all layers
    bptt      cells with a `bptt_kind` (the LSTM family): our hand-written BPTT (`rnncli.nn.bptt`,
              one autograd.Function per layer and direction); the layer-normalised cells' own
              (`rnncli.nn.bptt_ln`) where its compiled step runs (float32 / float64 on the CPU,
              no autocast), else their autograd loop
    autograd  the cells' own step (`run_cell`) under plain autograd: the reference path for cells
              without a torch kernel (input projection in one matmul, a loop over the rest)
    scan      cells whose class says `sequence_kind = "scan"` (mingru, minlstm): gates read only the
              input, so a, b of h_t = a_t ⊙ h_{t-1} + b_t come for all steps at once (`rnncli.nn.scan`):
              on the CPU a sequential linear scan with a hand-written backward, elsewhere the
              parallel log-space scan

    impl='auto'      torch's kernel where the cell has one (but lstm under bf16 / fp16 autocast on the
                     CPU takes the bptt path: nn.LSTM is slower there), else bptt, else autograd
    impl='bptt'      the hand-written BPTT for any cell with a bptt_kind, lstm included (benchmarks, tests)
    impl='autograd'  the reference loop, for cells without a torch kernel
    impl='scan'      the scan, for scan cells; 'auto' picks it for them (benchmarks/min_cells.py)
    gate_activation / activation other than sigmoid / tanh (rnncli/nn/activations.py): the autograd loop
    ablate=(...)     Greff et al.'s ablations (rnncli/nn/cells/ablation.py): the autograd loop, whatever the cell
    recurrent_dropout, zoneout  (rnncli/nn/regularise.py): our cells, never torch's kernel; both run
                     inside the hand-written BPTT (masks drawn here, applied in its step), else the
                     autograd loop; neither applies to scan cells (their step does not read h_{t-1}
                     through a matmul)
    (impl='fused', the old name of 'auto', still works with a FutureWarning)

Every path shares one contract:

    x (B, T, I) ──► layer 0 ──► dropout ──► layer 1 ──► ... ──► output (B, T, D*H)
                     │ forward:  t = 0 .. len-1
                     │ backward: t = len-1 .. 0 (each sequence reversed within its own length)
                     └ final state: h (L*D, B, H), or (h, c) for cells with a memory cell,
                       row layer*D + direction, taken at each sequence's last REAL step

    a padded batch, lengths = (3, 5):    x = [a b c . .]    output = [A B C 0 0]
                                             [d e f g h]             [D E F G H]

Positions t >= length are exactly zero in the output and never change the state.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnncli.nn import fused_cpu
from rnncli.nn import bptt_ln
from rnncli.nn.bptt import lstm_family_layer
from rnncli.nn.activations import activations_repr, is_default
from rnncli.nn.cells import cell_class, check_ablate, check_cell_activations, check_nonlinearity, make_cell
from rnncli.nn.impls import IMPLS, check_impl, check_regularisers, impls_for  # noqa: F401 (re-exported)
from rnncli.nn.init import init_recurrent_
from rnncli.nn.padding import _all_full, reverse_padded, time_mask  # noqa: F401 (re-exported)
from rnncli.nn.regularise import dropout_mask, run_cell_regularised, zoneout_masks
from rnncli.nn.scan import run_scan, scan_form
from rnncli.nn.state import State, hidden, join_state, keep_where, state_row, zero_state

_TORCH_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class Recurrent(nn.Module):
    """Sequence-level layer: a whole (padded) batch; stacked, bidirectional, batch_first.

    forward(x, lengths=None, state=None) -> (output, final_state)
      x        (B, T, I) if batch_first else (T, B, I)
      lengths  (B,) integer tensor on any device, each in 1..T; None = every sequence is T long
      state    like torch: h (L*D, B, H), or (h, c) for cells whose state_kind is 'hc'; None = zeros
      output   (B, T, D*H) if batch_first else (T, B, D*H), zero where t >= length
    Dropout is applied to the outputs of every layer but the last, in training mode only
    (so none with num_layers=1; a model may still use the same rate before its output head).
    Weights are initialised by `rnncli.nn.init.init_recurrent_` with the given options.
    """

    int8 = False  # weights in fp32 (rnncli/nn/quantize.py's QuantizedRecurrent says True)

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
        impl: str = "auto",
        ablate: tuple[str, ...] | list[str] = (),
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        gate_activation: str = "sigmoid",
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.cell_class = spec = cell_class(cell)
        check_nonlinearity(cell, nonlinearity)
        check_cell_activations(cell, gate_activation, activation)
        _check_sizes(input_size, hidden_size, num_layers, dropout)
        check_regularisers(cell, recurrent_dropout, zoneout)
        self.ablate = check_ablate(cell, ablate)
        # full gate recurrence carries the gates in the state (rnncli/nn/cells/ablation.py)
        self.state_kind = "hc+gates" if "full_gate_recurrence" in self.ablate else spec.state_kind
        self.recurrent_dropout, self.zoneout = recurrent_dropout, zoneout
        self.default_activations = is_default(gate_activation, activation)  # else no kernel computes them
        switches = [f"ablate={list(self.ablate)}"] if self.ablate else []  # what the hand-written BPTT cannot run
        if zoneout and spec.bptt_kind in bptt_ln.KINDS:  # the layer-normalised BPTT has no zoneout
            switches.append(f"zoneout={zoneout}")
        regularised = bool(recurrent_dropout or zoneout)  # torch's kernels have neither
        impl = check_impl(cell, impl, self.default_activations, switches, own_cells=bool(switches) or regularised)
        # torch's kernel, or None: our cells (custom cells, and any cell with a switch torch lacks)
        plain = not (switches or regularised) and self.default_activations
        self.torch_kernel = spec.torch_kernel if plain else None
        # the hand-written BPTT's equations (sigmoid gates and tanh, no ablation), or None
        self.bptt_kind = spec.bptt_kind if not switches and self.default_activations else None
        self.cell, self.impl, self.nonlinearity = cell, impl, nonlinearity
        self.gate_activation, self.activation = gate_activation, activation
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.batch_first, self.dropout = bidirectional, batch_first, dropout
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions
        if self.torch_kernel is not None:
            extra = {"nonlinearity": nonlinearity} if len(spec.nonlinearities) > 1 else {}
            self.rnn = self.torch_kernel(
                input_size, hidden_size, num_layers, batch_first=batch_first,
                dropout=dropout if num_layers > 1 else 0.0,  # 0 silences torch's warning
                bidirectional=bidirectional, **extra,
            )
        else:  # one cell per layer and direction, row k = layer * D + direction
            self.cells = nn.ModuleList(
                make_cell(cell, input_size if layer == 0 else self.output_size, hidden_size, nonlinearity,
                          ablate=self.ablate, gate_activation=gate_activation, activation=activation)
                for layer in range(num_layers)
                for _ in range(self.num_directions)
            )
        init_recurrent_(self, cell, hidden_size, recurrent_init, input_init, forget_bias)

    def initial_state(self, batch_size: int, device=None, dtype=None) -> State:
        """All-zeros state: h (L*D, B, H), or (h, c) for cells whose state_kind is 'hc' ((h, c, i, f, o)
        with full gate recurrence)."""
        ref = next(self.parameters())
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        device = ref.device if device is None else device
        return zero_state(self.state_kind, shape, device, ref.dtype if dtype is None else dtype)

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
            return self._forward_torch(x, lengths, state)
        return self._forward_custom(x, lengths, state, path)

    def path(self, device_type: str = "cpu") -> str:
        """'torch' (torch's kernel), 'bptt' (hand-written), 'scan' or 'autograd', as forward would now run.

        Depends on autocast: lstm under bf16 / fp16 autocast on the CPU runs the hand-written path.
        """
        spec = self.cell_class
        if self.bptt_kind in bptt_ln.KINDS and self.impl in ("auto", "bptt"):
            return "autograd" if self._ln_unavailable(device_type) else "bptt"
        if self.impl != "auto":
            return self.impl
        if spec.sequence_kind == "scan":
            return "scan"
        if self.torch_kernel is not None:
            low = autocast_dtype(device_type) is not None
            return "bptt" if spec.bptt_kind is not None and low and device_type == "cpu" else "torch"
        return "autograd" if self.bptt_kind is None else "bptt"

    def _ln_unavailable(self, device_type: str) -> str | None:
        """Why the layer-normalised BPTT cannot run here (rnncli/nn/bptt_ln.py), or None."""
        dtype = next(self.parameters()).dtype
        return bptt_ln.unavailable(device_type, dtype, autocast_dtype(device_type) is not None)

    def paths(self, device_type: str = "cpu") -> list[tuple[str, str, str]]:
        """(layers, implementation, why) for the fast-path report, as forward would now run."""
        spec, path, low = self.cell_class, self.path(device_type), autocast_dtype(device_type)
        layers = f"{self.num_layers} layer{'s' if self.num_layers > 1 else ''}" + \
            (" x 2 directions" if self.bidirectional else "")
        if path == "torch":
            kernel = f"nn.{spec.torch_kernel.__name__}"
            return [(layers, f"torch kernel ({kernel})", "standard cell: torch's own kernel")]
        if path == "autograd":
            return [(layers, "plain autograd loop", self._why_autograd(device_type))]
        if path == "scan":
            why = "model.impl: scan" if self.impl == "scan" else "gates read only the input"
            form = ("sequential linear scan, hand-written backward" if scan_form(device_type) == "linear"
                    else "parallel log-space scan over time")
            return [(layers, f"{form} (rnncli.nn.scan)", why + "; float32 scan")]
        if self.bptt_kind in bptt_ln.KINDS:
            why = "custom cell: no torch kernel; fused C++ layer-norm steps" + \
                ("; model.recurrent_dropout inside it" if self.recurrent_dropout else "")
            return [(layers, "hand-written BPTT (rnncli.nn.bptt_ln)", why)]
        low_name = None if low is None else str(low).replace("torch.", "")  # e.g. bfloat16
        if spec.torch_kernel is None:
            why = "custom cell: no torch kernel"
        elif self.recurrent_dropout or self.zoneout:
            why = f"{self._regularisers()}: nn.{spec.torch_kernel.__name__} has none"
        elif self.impl == "bptt":
            why = "impl='bptt'"
        else:
            why = f"{low_name} on the CPU: nn.LSTM under autocast is slower"
        if low_name is not None:
            why += f"; {low_name} matmuls, fp32 cell state"
        elif device_type == "cpu":  # float32 on the CPU: compiled pointwise steps if available
            why += "; fused C++ steps" if fused_cpu.kernels() is not None else "; eager steps (no C++ kernels)"
        if (self.recurrent_dropout or self.zoneout) and spec.torch_kernel is None:
            why += f"; {self._regularisers()} inside it"
        return [(layers, "hand-written BPTT (rnncli.nn.bptt)", why)]

    def _why_autograd(self, device_type: str = "cpu") -> str:
        """Why the layer runs the plain autograd loop: every reason that holds, '; '-joined."""
        spec = self.cell_class
        if self.impl == "autograd":
            return "model.impl: autograd (the reference path)"
        why = []
        if not self.default_activations:
            why.append(f"gate_activation={self.gate_activation}, activation={self.activation}: no kernel "
                       f"computes them, so the cell's own step")
        if self.ablate:
            why.append("model.ablate: the hand-written BPTT has no ablations")
        if not why and self.bptt_kind in bptt_ln.KINDS:
            why.append(f"the layer-normalised BPTT cannot run here: {self._ln_unavailable(device_type)}")
        if not why and spec.torch_kernel is not None:
            why.append(f"{self._regularisers()}: nn.{spec.torch_kernel.__name__} has none")
        return "; ".join(why) or "custom cell without a hand-written BPTT"

    def _regularisers(self) -> str:
        """The recurrent regularisers set, as config keys ('model.zoneout', ...)."""
        keys = [key for key, rate in (("recurrent_dropout", self.recurrent_dropout), ("zoneout", self.zoneout)) if rate]
        return " and ".join(f"model.{key}" for key in keys)

    def layer_weights(self, k: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """Row k's (weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh), torch's gate order.

        Row k = layer * D + direction; the parameters themselves (not copies).
        """
        if self.torch_kernel is None:
            cell = self.cells[k]
            return cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
        layer, direction = divmod(k, self.num_directions)
        suffix = f"_l{layer}" + ("_reverse" if direction else "")  # torch's names
        return tuple(getattr(self.rnn, name + suffix, None) for name in _TORCH_WEIGHTS)

    def step_cell(self, k: int) -> nn.Module:
        """Row k's step-level cell: the layer's own where it keeps cells, else a new cell holding a
        copy of row k of torch's kernel (same names and layout), for stepping or unrolling by hand."""
        if self.torch_kernel is None:
            return self.cells[k]
        input_size = self.input_size if k < self.num_directions else self.output_size
        ref = self.rnn.weight_hh_l0
        with torch.device("meta"):  # no init work and no RNG draws: the weights are copied in below
            cell = make_cell(self.cell, input_size, self.hidden_size, self.nonlinearity)
        cell = cell.to_empty(device=ref.device).to(ref.dtype)
        with torch.no_grad():
            for name, weight in zip(_TORCH_WEIGHTS, self.layer_weights(k)):
                getattr(cell, name).copy_(weight)
        return cell

    def _forward_torch(
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
                out, final = self._run_row(k, seq, state_row(state, k), mask, path)
                outs.append(reverse_padded(out, lengths, batch_first=False) if reverse else out)
                finals.append(final)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)  # (T, B, D*H)
        out = x.transpose(0, 1) if self.batch_first else x
        return out, join_state(finals)

    def _run_row(self, k: int, x: Tensor, state: State, mask: Tensor | None, path: str) -> tuple[Tensor, State]:
        """Layer/direction k over x (T, B, I) on `path`, with this call's recurrent dropout / zoneout
        masks (rnncli/nn/regularise.py); same contract as `run_cell`."""
        h_mask = dropout_mask(hidden(state), self.recurrent_dropout, self.training)  # (B, H) or None
        if self.state_kind == "hc+gates" and len(state) == 2:  # a plain (h, c): the gates start at zero
            state = tuple(state) + tuple(torch.zeros_like(state[0]) for _ in range(3))
        if path == "scan":  # scan cells take neither regulariser (check_regularisers)
            return run_scan(self.cells[k], x, state, mask)
        zones = zoneout_masks(x.shape[0], state, self.zoneout, self.training)  # (T, S, B, H), z or None
        if path == "bptt":
            return self._run_bptt(k, x, state, mask, h_mask, zones)
        if h_mask is None and zones is None:
            return run_cell(self.cells[k], x, state, mask)
        return run_cell_regularised(self.cells[k], self.cell_class.folds_b_hh, x, state, mask, h_mask, zones)

    def _run_bptt(self, k: int, x: Tensor, state: State, mask: Tensor | None,
                  h_mask: Tensor | None = None, zones: Tensor | float | None = None) -> tuple[Tensor, State]:
        """Layer/direction k on the hand-written path; same contract as `run_cell`."""
        low = autocast_dtype(x.device.type)
        names = self.cell_class.extra_params  # e.g. the peepholes, which only our cells hold
        extra = tuple(getattr(self.cells[k], n) for n in names) if names else None
        if self.bptt_kind in bptt_ln.KINDS:  # gains and betas; no autocast here (path() saw to it)
            hs, final = bptt_ln.ln_layer(self.bptt_kind, x, state, self.cells[k].weight_ih,
                                         self.cells[k].weight_hh, extra, mask=mask, h_mask=h_mask)
            return (hs if mask is None else hs * mask), final
        with torch.autocast(x.device.type, enabled=False):
            hs, c = lstm_family_layer(self.cell, x, *state, *self.layer_weights(k), extra, mask=mask,
                                      compute_dtype=low, h_mask=h_mask, zones=zones)
        return (hs if mask is None else hs * mask), (hs[-1], c)

    def extra_repr(self) -> str:
        return (
            f"{self.cell!r}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}, "
            f"batch_first={self.batch_first}" + (f", impl={self.impl!r}" if self.impl != "auto" else "")
            + (f", ablate={list(self.ablate)}" if self.ablate else "")
            + (f", recurrent_dropout={self.recurrent_dropout}" if self.recurrent_dropout else "")
            + (f", zoneout={self.zoneout}" if self.zoneout else "")
            + activations_repr(self.gate_activation, self.activation)
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
            outputs.append(hidden(state))
        return torch.stack(outputs), state
    for xw_t, m_t in zip(xw.unbind(0), mask.unbind(0)):
        state = keep_where(m_t, cell.recurrent_step(xw_t, state), state)
        outputs.append(hidden(state))
    return torch.stack(outputs) * mask, state  # zero the padded positions


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The lower-precision dtype autocast is running for `device_type`, or None."""
    if device_type not in ("cpu", "cuda"):
        return None
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def _check_sizes(input_size: int, hidden_size: int, num_layers: int, dropout: float) -> None:
    """Raise a ValueError naming the first bad size or dropout rate."""
    for key, value in (("input_size", input_size), ("hidden_size", hidden_size),
                       ("num_layers", num_layers)):
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
