"""Write a graph in one format and run the written file back: ONNX (run by onnxruntime) and TorchScript.

    onnx         torch.onnx.export of the traced wrapper (the TorchScript-based exporter: the scripted
                 time loops become ONNX `Loop`s, so the time axis stays dynamic; torch.export/dynamo
                 would freeze it), opset 17, dynamic batch / time axes; run with onnxruntime on the CPU
    torchscript  torch.jit.trace of the wrapper (the loops inside stay scripted); torch.jit.load runs it

onnx, onnxruntime and onnxscript come with the `export` extra; `require_onnx` says so in one line.
"""
from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np
import torch

from rnncli.errors import RnncliError

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17


class MissingExtra(RnncliError):
    """An optional feature whose packages are not installed."""


def require_onnx() -> None:
    """One line naming the extra when onnx / onnxruntime are missing."""
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtra(f"the onnx format needs {' and '.join(missing)}: pip install 'rnncli[export]'")


def _trace(module: torch.nn.Module, example: tuple) -> torch.jit.ScriptModule:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints: the loops are scripted
        return torch.jit.trace(module, example, check_trace=False)


def write(graph, example: tuple, fmt: str, path: Path) -> None:
    """Trace `graph.module` on `example` and write it to `path` in format `fmt`."""
    traced = _trace(graph.module, example)
    if fmt == "torchscript":
        torch.jit.save(traced, str(path))
        return
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated, and says so
        torch.onnx.export(traced, example, str(path), input_names=graph.inputs, output_names=graph.outputs,
                          dynamic_axes=graph.axes, opset_version=OPSET, dynamo=False)


def quantize_onnx(path: Path) -> Path:
    """Rewrite the ONNX file at `path` with int8 weights (onnxruntime's dynamic quantization: MatMul
    and Gemm weights int8 with one scale per row, activations uint8 quantized per call; subgraphs
    included, so the matmul inside the time loop is quantized too); returns `path`. reduce_range
    (7-bit weights): without VNNI the u8 x s8 pair sums saturate int16, as in torch's fbgemm."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = path.with_suffix(".fp32.onnx")
    path.rename(fp32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Gemm"], extra_options={"EnableSubgraph": True})
    fp32.unlink()
    return path


class Runner:
    """Runs a written file: `runner(*tensors) -> tuple of tensors`, outputs in the graph's order."""

    def __init__(self, fmt: str, path: Path, input_names: list[str], threads: int | None = None) -> None:
        self.fmt, self.input_names = fmt, input_names
        if fmt == "torchscript":
            self.module = torch.jit.load(str(path))
        else:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # errors only
            if threads is not None:
                options.intra_op_num_threads = options.inter_op_num_threads = threads
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.fmt == "torchscript":
            with torch.no_grad():
                out = self.module(*inputs)
            return out if isinstance(out, tuple) else (out,)
        feeds = {name: np.ascontiguousarray(t.numpy()) for name, t in zip(self.input_names, inputs)}
        return tuple(torch.from_numpy(a) for a in self.session.run(None, feeds))
