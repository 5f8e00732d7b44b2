"""int8 weights for inference: `Int8Weight`, a drop-in for `FixedWeight` (rnncli/nn/onednn.py).

Two kernels read the same int8 weights W (out, in), one symmetric scale per row:

  batch <= SMALL_BATCH (the one-token stepper): rnncli's own (rnncli/nn/int8_kernels.py)
    x (B, in) fp32 ──► each int8 weight widened to fp32 in registers ──► fp32 FMA ──► * row scale + bias
    = the dequantized-weight matmul up to fp32 summation order; no per-call set-up.
  larger batches (sequences: eval, predict): torch's dynamic-quantized linear
    x (B, in) ──► quantize to uint8 (one scale per call) ──► int32 accumulation ──► fp32 (B, out) + bias
    (`torch.ops.quantized.linear_dynamic`, fbgemm / x86 engine, the kernel
    `torch.ao.quantization.quantize_dynamic` puts behind nn.Linear, nn.LSTM and nn.GRU).

 Why: at batch 1 a recurrent step reads every weight once, and
that memory traffic is the cost; int8 weights are a quarter of the fp32 bytes (2x512 LSTM: 16 MB
of fp32 -> 4 MB, which fits the last-level cache). Weights are quantized symmetrically per
output row (per channel), so one large gate row does not coarsen every other row.

`Int8Weight` is a snapshot of the weight (rebuild it if W changes); the one-token stepper
(rnncli/nn/stepper.py) and the int8 sequence layer (rnncli/nn/quantize.py) use it.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

from rnncli.nn import fused_cpu

SMALL_BATCH = 4  # up to this many rows, our kernel (no activation quantization, no fbgemm set-up)


def _quantized_rows(weight: Tensor) -> Tensor:
    """(out, in) float -> per-row symmetric qint8 tensor (zero point 0)."""
    w = weight.detach().float().contiguous()
    scales = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()  # (out,)
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # torch marks quantized tensor creation deprecated; the kernels remain
        warnings.simplefilter("ignore")
        return torch.quantize_per_channel(w, scales, zero, 0, torch.qint8)


_EMPTY = torch.empty(0)  # "no bias" for the C++ kernels


class Int8Weight:
    """x (B, in) -> x W^T (+ bias), with W (out, in) held as int8 rows; x and the result are fp32.

    Same call as `FixedWeight`. CPU only (the quantized kernels run there).
    """

    def __init__(self, weight: Tensor, batch: int = 1) -> None:  # batch: FixedWeight's signature
        if weight.device.type != "cpu":
            raise ValueError(f"int8 weights run on the CPU, not {weight.device.type}")
        self.out_features, self.in_features = weight.shape
        quantized = _quantized_rows(weight)
        self.qweight = quantized.int_repr().contiguous()  # (out, in) int8, for our kernel
        self.scale = quantized.q_per_channel_scales().float().contiguous()  # (out,)
        self.kernels = fused_cpu.kernels()  # None without a compiler: fbgemm for every batch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.packed = torch.ops.quantized.linear_prepack(quantized, None)

    def __call__(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        if self.kernels is not None and x.shape[0] <= SMALL_BATCH and x.dtype == torch.float32:
            return self.kernels.int8_linear(x, self.qweight, self.scale, _EMPTY if bias is None else bias)
        # reduce_range: 7-bit activations, so fbgemm's u8 x s8 pair sums cannot overflow int16
        y = torch.ops.quantized.linear_dynamic(x.contiguous(), self.packed, True)  # (B, out)
        return y if bias is None else y.add_(bias)

    def dequantized(self) -> Tensor:
        """The weight as the kernel sees it, back in fp32 (out, in): for tests and error reports."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qweight, _ = torch.ops.quantized.linear_unpack(self.packed)
        return qweight.dequantize()
