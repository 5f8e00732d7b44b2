"""Training precision: fp32, or bf16 / fp16 mixed precision (`trainer.precision`).

Mixed precision keeps fp32 master weights and optimizer state; only the matmuls run in the lower
precision. Embeddings, linear heads and losses go through `torch.autocast`; the LSTM family runs
our hand-written BPTT (`rnncli/nn/bptt.py`) with bf16/fp16 matmul operands and an fp32 cell state
(nn.LSTM under CPU autocast is slower than in fp32). fp16 needs loss scaling (`GradScaler`);
bf16 has fp32's exponent range and does not.

Where it runs fast:
    bf16  CUDA GPUs with bf16 (Ampere and newer); CPUs with AVX-512 BF16 or AMX (oneDNN)
    fp16  CUDA GPUs; CPUs with AVX-512 FP16 / AMX-FP16
On other CPUs torch emulates these types in software, several times slower than fp32, so rnncli
refuses them with a message instead of silently training slower.
"""
from __future__ import annotations

import contextlib

import torch

from rnncli.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def hardware_support(precision: str, device: torch.device) -> tuple[bool, str]:
    """(supported, why): whether `device` runs `precision` natively."""
    if precision == "fp32":
        return True, "fp32 runs everywhere"
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return False, f"{torch.cuda.get_device_name(device)} has no bf16 support"
        return True, f"CUDA {precision}"
    if device.type == "cpu":
        probe = torch.ops.mkldnn._is_mkldnn_bf16_supported if precision == "bf16" else \
            torch.ops.mkldnn._is_mkldnn_fp16_supported
        if probe():
            return True, f"this CPU has native {precision} matmuls (oneDNN)"
        need = "AVX-512 BF16 or AMX" if precision == "bf16" else "AVX-512 FP16 or AMX-FP16"
        return False, (f"this CPU ({torch.backends.cpu.get_cpu_capability()}) lacks {need}: torch would "
                       f"emulate {precision} in software, several times slower than fp32")
    return False, f"rnncli supports {precision} on cpu and cuda, not {device.type}"


def check(precision: str, device: torch.device, where: str = "trainer.precision") -> None:
    """Raise a ConfigError naming the key when `device` cannot run `precision` well."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}: {precision!r} is not one of {', '.join(PRECISIONS)}")
    ok, why = hardware_support(precision, device)
    if not ok:
        raise ConfigError(f"{where}: {precision} — {why}. Use precision: fp32 here, or train on a "
                          f"machine that has it.")


def autocast(precision: str, device: torch.device):
    """The context to run forward passes (and losses) in."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device):
    """A GradScaler for fp16 (gradients would underflow without it); None otherwise."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)
