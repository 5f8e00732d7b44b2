"""int8 CPU inference for a trained model: `quantize(model)` and `QuantizedRecurrent`.

    quantize(model)  a copy of the model for inference in which
        every nn.Linear        -> torch's dynamic-quantized Linear (int8 weights, one scale per row),
                                  except small ones (< SMALL_LINEAR weights: a char-LM head, a tagger's
                                  emission layer): they stay fp32, where int8 saves little memory, costs
                                  time (46 us vs 14 us a character for a 65 x 512 head at batch 1) and
                                  puts its rounding straight into the scores (the NER demo's 13 x 64
                                  emission layer in int8 cost 1.04 span F1; fp32: no loss)
        every Recurrent        -> QuantizedRecurrent:
            cells whose torch kernel torch can quantize (nn.LSTM, nn.GRU)
                               -> torch.ao.quantization.quantize_dynamic's LSTM / GRU, one weight
                                  scale per row (per channel)
            every other cell (custom cells, and nn.RNN, which quantize_dynamic does not cover)
                               -> the loop below: the input projection of all T steps in one int8
                                  matmul, then per step h @ W_hh^T with int8 weights (rnncli/nn/int8.py)
                                  and the cell's own pointwise step (the compiled one where it has it)
        embeddings, CRF transitions, peepholes stay fp32 (lookups and vectors, not matmuls)

`QuantizedRecurrent` keeps the fp32 layer it came from (`source`) and answers for it (cell,
sizes, `layer_weights`, `step_cell`), so the one-token `Stepper` (rnncli/nn/stepper.py) can be
built from it; it declares `int8 = True`, and the Stepper then packs int8 weights itself.
Activations are quantized per call (dynamic quantization): no calibration data is needed.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnncli.nn.int8 import Int8Weight
from rnncli.nn.padding import reverse_padded, time_mask
from rnncli.nn.recurrent import Recurrent
from rnncli.nn.state import State, hidden, join_state, keep_where, state_row
from rnncli.nn.stepper import input_projection, make_layer

SMALL_LINEAR = 1 << 16  # weights; smaller nn.Linear layers stay fp32
PER_ROW = torch.ao.quantization.per_channel_dynamic_qconfig  # int8 weights, one scale per output row
DYNAMIC_KERNELS = (nn.LSTM, nn.GRU)  # torch kernels that quantize_dynamic turns into int8 modules
_DELEGATED = ("cell", "cell_class", "impl", "nonlinearity", "input_size", "hidden_size", "num_layers",
              "bidirectional", "batch_first", "dropout", "num_directions", "output_size", "default_activations",
              "zoneout", "bptt_kind", "state_kind")


def _quiet_quantize_dynamic(module: nn.Module, spec: set | dict) -> nn.Module:
    with warnings.catch_warnings():  # torch.ao.quantization warns of its planned move to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module, spec, dtype=torch.qint8, inplace=True)


def _large_linears(model: nn.Module) -> dict:
    """quantize_dynamic's spec: every nn.Linear of >= SMALL_LINEAR weights, one weight scale per row."""
    return {name: PER_ROW for name, module in model.named_modules()
            if type(module) is nn.Linear and module.weight.numel() >= SMALL_LINEAR}


def quantize(model: nn.Module) -> nn.Module:
    """An int8 copy of `model` for CPU inference (eval mode); the model itself is left as it is.
    Recurrent layers of a cell that declares `int8 = False` (the layer-normalised cells) stay fp32."""
    model = copy.deepcopy(model).cpu().eval()
    for name, module in list(model.named_modules()):
        if type(module) is Recurrent and getattr(module.cell_class, "int8", True):  # cells may opt out
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, QuantizedRecurrent(module))
    return _quiet_quantize_dynamic(model, _large_linears(model))


def int8_modules(model: nn.Module) -> dict[str, int]:
    """Module type name -> count of the int8 modules in a model (what `quantize` put there)."""
    counts: dict[str, int] = {}
    for module in model.modules():
        kind = type(module)
        if kind.__module__.startswith("torch.ao.nn.quantized") or kind is QuantizedRecurrent:
            counts[kind.__name__] = counts.get(kind.__name__, 0) + 1
    return counts


class QuantizedRecurrent(nn.Module):
    """A `Recurrent` for inference with int8 weights; the same forward contract:
    forward(x, lengths=None, state=None) -> (output, final state), positions t >= length zero."""

    int8 = True

    def __init__(self, recurrent: Recurrent) -> None:
        super().__init__()
        self.source = recurrent.eval()  # fp32, for the Stepper and for `layer_weights`
        for name in _DELEGATED:
            setattr(self, name, getattr(recurrent, name))
        self.kernel = None
        if recurrent.cell_class.torch_kernel in DYNAMIC_KERNELS:
            wrapper = nn.Module()  # quantize_dynamic swaps children, so the kernel goes in a holder
            wrapper.rnn = copy.deepcopy(recurrent.rnn)
            self.kernel = _quiet_quantize_dynamic(wrapper, dict.fromkeys(DYNAMIC_KERNELS, PER_ROW)).rnn
        else:
            k_rows = recurrent.num_layers * recurrent.num_directions
            self._projections = [_int8_projection(recurrent, k) for k in range(k_rows)]
            self._layers = [make_layer(recurrent, k, projected=True, fixed=Int8Weight) for k in range(k_rows)]

    def path(self, device_type: str = "cpu") -> str:
        return "int8 torch kernel" if self.kernel is not None else "int8 loop"

    def initial_state(self, batch_size: int, device=None, dtype=None) -> State:
        return self.source.initial_state(batch_size, device, dtype)

    def layer_weights(self, k: int):
        return self.source.layer_weights(k)

    def step_cell(self, k: int) -> nn.Module:
        return self.source.step_cell(k)

    @torch.no_grad()
    def forward(self, x: Tensor, lengths: Tensor | None = None, state: State | None = None):
        lengths = _padded_lengths(lengths, x, self.batch_first)
        if self.kernel is None:
            return self._forward_loop(x, lengths, state)
        if lengths is None:
            return self.kernel(x, state)
        steps = x.shape[1] if self.batch_first else x.shape[0]
        packed = pack_padded_sequence(x, lengths.to("cpu", torch.int64), batch_first=self.batch_first,
                                      enforce_sorted=False)
        out, state = self.kernel(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=steps)
        return out, state  # padded positions are zero; the final state is each sequence's last real step

    def _forward_loop(self, x: Tensor, lengths: Tensor | None, state: State | None):
        x = x.transpose(0, 1) if self.batch_first else x  # (T, B, I)
        if state is None:
            state = self.initial_state(x.shape[1], x.device, x.dtype)
        mask = None if lengths is None else time_mask(lengths.to(x.device), x.shape[0])
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                seq = reverse_padded(x, lengths, batch_first=False) if direction else x
                out, final = self._run_row(k, seq, state_row(state, k), mask)
                outs.append(reverse_padded(out, lengths, batch_first=False) if direction else out)
                finals.append(final)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)  # (T, B, D*H)
        return (x.transpose(0, 1) if self.batch_first else x), join_state(finals)

    def _run_row(self, k: int, x: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
        """Row k over time: x (T, B, I) -> (outputs (T, B, H), final state)."""
        steps, batch = x.shape[0], x.shape[1]
        weight, bias = self._projections[k]
        xw = weight(x.reshape(steps * batch, -1), bias).view(steps, batch, -1)  # (T, B, G*H), one matmul
        layer, outputs = self._layers[k], []
        for t in range(steps):
            new = layer(xw[t], state)
            state = new if mask is None else keep_where(mask[t], new, state)
            outputs.append(hidden(state))
        out = torch.stack(outputs)
        return (out if mask is None else out * mask), state


def _int8_projection(recurrent: Recurrent, k: int) -> tuple[Int8Weight, Tensor | None]:
    weight, bias = input_projection(recurrent, k)
    return Int8Weight(weight), None if bias is None else bias.detach().clone()


def _padded_lengths(lengths: Tensor | None, x: Tensor, batch_first: bool) -> Tensor | None:
    """None when no sequence is padded (torch's kernel then runs unpacked), like Recurrent.forward."""
    if lengths is None:
        return None
    steps = x.shape[1] if batch_first else x.shape[0]
    return None if int(lengths.min()) == steps else lengths
