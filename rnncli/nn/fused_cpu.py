"""Fused pointwise steps for the hand-written BPTT on the CPU: one C++ pass per time step.

The eager step in `rnncli/nn/bptt.py` is 8-15 small torch ops per step; at batch 32 x hidden 256
each costs 4-10 us of dispatch for ~1 us of arithmetic. These kernels do the same arithmetic in
one loop over (B, H) per step, forward and backward, for float32 on the CPU. They are compiled
once per machine with torch's C++ extension builder (cached under ~/.cache/torch_extensions)
and are optional: `kernels()` returns None when no compiler is available, the build fails, or
RNNCLI_FUSED_CPU=0 is set, and bptt.py then runs its eager step (the same equations).

A cell reaches these kernels through its class: `bptt_kind` picks the equations (the `kind`
argument is its index in `KINDS`) and `bptt_gates` is the order of the gate blocks in a row:
lstm [i f o g], peephole [i f g o], cifg [f o g] (see bptt.py). The forward receives
pre-activations with the g block doubled and writes the activations back in place
(g = 2 sigma(2x) - 1 = tanh(x)); the backward reads them.

Zoneout (any kind) is one more call per step on each side: `zone_forward` picks each unit of h and c
from the previous state or the step's new values, `zone_backward` splits dh, dc into the new state's
share and the carry to the previous step (rnncli/nn/bptt_zone.py).

The same extension carries the int8 inference kernels (`int8_linear`, `int8_lstm_step`), whose
source lives in rnncli/nn/int8_kernels.py: one build, one cache entry.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from contextlib import contextmanager
from typing import Callable

from rnncli.nn import int8_kernels

KINDS = ("lstm", "peephole", "cifg")  # the C++ `kind` 0, 1, 2: the cells' bptt_kind values

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>

// Arguments clamped where the result is already exact in float32: under -ffast-math (finite-math-only)
// exp(-x) may overflow and tanh(x) for large x may come out NaN instead of 0 / +-1; a peephole LSTM's
// cell state on a char-LM reached that range within 33 steps (loss NaN) while the eager step trained.
static inline float sig(float x) { return 1.f / (1.f + std::exp(-std::fmin(std::fmax(x, -60.f), 60.f))); }
static inline float safe_tanh(float x) { return std::tanh(std::fmin(std::fmax(x, -15.f), 15.f)); }

// a (B, ld) gate rows, in place: pre-activations -> activations; c_prev, c, tanh_c, h (B, H).
void forward_step(int64_t kind, torch::Tensor a, torch::Tensor c_prev, torch::Tensor c,
                  torch::Tensor tanh_c, torch::Tensor h, torch::Tensor w_cif, torch::Tensor w_co) {
  const int64_t B = c.size(0), H = c.size(1), ld = a.stride(0);
  TORCH_CHECK(a.stride(1) == 1 && c_prev.is_contiguous() && c.is_contiguous() &&
              tanh_c.is_contiguous() && h.is_contiguous(), "fused forward_step: layout");
  float* A = a.data_ptr<float>();
  const float* CP = c_prev.data_ptr<float>();
  float* C = c.data_ptr<float>();
  float* TC = tanh_c.data_ptr<float>();
  float* HO = h.data_ptr<float>();
  const float* WI = kind == 1 ? w_cif.data_ptr<float>() : nullptr;
  const float* WO = kind == 1 ? w_co.data_ptr<float>() : nullptr;
  const int64_t grain = std::max<int64_t>(1, 16384 / H);
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* r = A + b * ld;
      const float* cp = CP + b * H;
      float *cc = C + b * H, *tc = TC + b * H, *hh = HO + b * H;
      if (kind == 0) {  // [i f o g]
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          float i = sig(r[k]), f = sig(r[H + k]), o = sig(r[2 * H + k]);
          float g = 2.f * sig(r[3 * H + k]) - 1.f;
          float cn = f * cp[k] + i * g, t = safe_tanh(cn);
          r[k] = i; r[H + k] = f; r[2 * H + k] = o; r[3 * H + k] = g;
          cc[k] = cn; tc[k] = t; hh[k] = o * t;
        }
      } else if (kind == 1) {  // [i f g o], peepholes
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          float i = sig(r[k] + WI[k] * cp[k]), f = sig(r[H + k] + WI[H + k] * cp[k]);
          float g = 2.f * sig(r[2 * H + k]) - 1.f;
          float cn = f * cp[k] + i * g;
          float o = sig(r[3 * H + k] + WO[k] * cn), t = safe_tanh(cn);
          r[k] = i; r[H + k] = f; r[2 * H + k] = g; r[3 * H + k] = o;
          cc[k] = cn; tc[k] = t; hh[k] = o * t;
        }
      } else {  // [f o g], i = 1 - f
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          float f = sig(r[k]), o = sig(r[H + k]), g = 2.f * sig(r[2 * H + k]) - 1.f;
          float cn = g + f * (cp[k] - g), t = safe_tanh(cn);
          r[k] = f; r[H + k] = o; r[2 * H + k] = g;
          cc[k] = cn; tc[k] = t; hh[k] = o * t;
        }
      }
    }
  });
}

// d (B, ld) <- pre-activation gradients; dc (B, H) in: dL/dc_t from later steps, out: dL/dc_{t-1}.
void backward_step(int64_t kind, torch::Tensor a, torch::Tensor d, torch::Tensor c_prev,
                   torch::Tensor tanh_c, torch::Tensor dh, torch::Tensor dc,
                   torch::Tensor w_cif, torch::Tensor w_co) {
  const int64_t B = dc.size(0), H = dc.size(1), ld = a.stride(0), ldd = d.stride(0);
  TORCH_CHECK(a.stride(1) == 1 && d.stride(1) == 1 && c_prev.is_contiguous() &&
              tanh_c.is_contiguous() && dh.is_contiguous() && dc.is_contiguous(),
              "fused backward_step: layout");
  const float* A = a.data_ptr<float>();
  float* D = d.data_ptr<float>();
  const float* CP = c_prev.data_ptr<float>();
  const float* TC = tanh_c.data_ptr<float>();
  const float* DH = dh.data_ptr<float>();
  float* DC = dc.data_ptr<float>();
  const float* WI = kind == 1 ? w_cif.data_ptr<float>() : nullptr;
  const float* WO = kind == 1 ? w_co.data_ptr<float>() : nullptr;
  const int64_t grain = std::max<int64_t>(1, 16384 / H);
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* r = A + b * ld;
      float* q = D + b * ldd;
      const float *cp = CP + b * H, *tc = TC + b * H, *dhr = DH + b * H;
      float* dcr = DC + b * H;
      if (kind == 0) {  // [i f o g]
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          float i = r[k], f = r[H + k], o = r[2 * H + k], g = r[3 * H + k], t = tc[k], x = dhr[k];
          float dcv = dcr[k] + x * o * (1.f - t * t);
          q[k] = dcv * g * i * (1.f - i);
          q[H + k] = dcv * cp[k] * f * (1.f - f);
          q[2 * H + k] = x * t * o * (1.f - o);
          q[3 * H + k] = dcv * i * (1.f - g * g);
          dcr[k] = dcv * f;
        }
      } else if (kind == 1) {  // [i f g o]
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          float i = r[k], f = r[H + k], g = r[2 * H + k], o = r[3 * H + k], t = tc[k], x = dhr[k];
          float d_o = x * t * o * (1.f - o);
          float dcv = dcr[k] + x * o * (1.f - t * t) + d_o * WO[k];
          float d_i = dcv * g * i * (1.f - i), d_f = dcv * cp[k] * f * (1.f - f);
          q[k] = d_i; q[H + k] = d_f; q[2 * H + k] = dcv * i * (1.f - g * g); q[3 * H + k] = d_o;
          dcr[k] = dcv * f + d_i * WI[k] + d_f * WI[H + k];
        }
      } else {  // [f o g]
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) {
          float f = r[k], o = r[H + k], g = r[2 * H + k], t = tc[k], x = dhr[k];
          float dcv = dcr[k] + x * o * (1.f - t * t);
          q[k] = dcv * (cp[k] - g) * f * (1.f - f);
          q[H + k] = x * t * o * (1.f - o);
          q[2 * H + k] = dcv * (1.f - f) * (1.f - g * g);
          dcr[k] = dcv * f;
        }
      }
    }
  });
}

// Zoneout, keep (2, B, H) bool (row 0: h, row 1: c; true = keep the previous value); all (B, H).
// h (in: the step's new h, out: zoned); c (out) from c_prev or c_new.
void zone_forward(torch::Tensor keep, torch::Tensor h_prev, torch::Tensor h, torch::Tensor c_prev,
                  torch::Tensor c_new, torch::Tensor c) {
  TORCH_CHECK(keep.is_contiguous() && h_prev.is_contiguous() && h.is_contiguous() &&
              c_prev.is_contiguous() && c_new.is_contiguous() && c.is_contiguous(), "zone_forward: layout");
  const int64_t n = h.numel();
  const bool* KH = keep.data_ptr<bool>();
  const bool* KC = KH + n;
  const float *HP = h_prev.data_ptr<float>(), *CP = c_prev.data_ptr<float>(), *CN = c_new.data_ptr<float>();
  float *HO = h.data_ptr<float>(), *C = c.data_ptr<float>();
  #pragma omp simd
  for (int64_t k = 0; k < n; ++k) {
    HO[k] = KH[k] ? HP[k] : HO[k];
    C[k] = KC[k] ? CP[k] : CN[k];
  }
}

// dh, dc in: dL/dh_t, dL/dc_t; out: the new values' share (0 where kept). carry_h = kept dh (+ g_prev,
// dL/dh_{t-1} from the output, when given), carry_c = kept dc: what flows straight to step t-1.
void zone_backward(torch::Tensor keep, torch::Tensor dh, torch::Tensor dc, torch::Tensor g_prev,
                   torch::Tensor carry_h, torch::Tensor carry_c) {
  TORCH_CHECK(keep.is_contiguous() && dh.is_contiguous() && dc.is_contiguous() && carry_h.is_contiguous() &&
              carry_c.is_contiguous() && (g_prev.numel() == 0 || g_prev.is_contiguous()), "zone_backward: layout");
  const int64_t n = dh.numel();
  const bool* KH = keep.data_ptr<bool>();
  const bool* KC = KH + n;
  float *DH = dh.data_ptr<float>(), *DC = dc.data_ptr<float>();
  float *CH = carry_h.data_ptr<float>(), *CC = carry_c.data_ptr<float>();
  const float* G = g_prev.numel() ? g_prev.data_ptr<float>() : nullptr;
  #pragma omp simd
  for (int64_t k = 0; k < n; ++k) {
    float x = DH[k], y = DC[k];
    CH[k] = (KH[k] ? x : 0.f) + (G ? G[k] : 0.f);
    DH[k] = KH[k] ? 0.f : x;
    CC[k] = KC[k] ? y : 0.f;
    DC[k] = KC[k] ? 0.f : y;
  }
}
"""

_cache: dict = {}


def _to_stderr(text: str) -> None:
    print(f"rnncli: {text}", file=sys.stderr, flush=True)


_notify = [_to_stderr]  # who says that the kernels compile (the trainer: its progress display)


@contextmanager
def notifying(say: Callable[[str], None]):
    """Within this block, compile messages go to `say` (e.g. the trainer's progress messages)."""
    _notify.append(say)
    try:
        yield
    finally:
        _notify.pop()


def kernels():
    """The compiled module (forward_step, backward_step, zone_forward, zone_backward), or None where it
    cannot be had."""
    if "module" in _cache:
        return _cache["module"]
    module = None
    if os.environ.get("RNNCLI_FUSED_CPU", "1") != "0":
        try:
            module = _build()
        except Exception as error:  # no compiler, no headers, a failed build: run the eager step
            _notify[-1](f"fused CPU kernels unavailable ({type(error).__name__}); using the eager "
                        f"step (same results, slower)")
    _cache["module"] = module
    return module


def kind_id(bptt_kind: str) -> int:
    """The C++ `kind` argument for a cell's `bptt_kind`."""
    return KINDS.index(bptt_kind)


def _build():
    import torch
    from torch.utils.cpp_extension import _get_build_directory, load_inline

    _ninja_on_path()
    flags = ["-O3", "-ffast-math", "-fopenmp-simd"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    source = _SOURCE + int8_kernels.SOURCE  # + the int8 inference kernels (rnncli/nn/int8_kernels.py)
    name = build_name("rnncli_fused_cpu_", source, flags)
    compiling = not any(f.endswith(".so") for f in os.listdir(_get_build_directory(name, False)))
    if compiling:
        _notify[-1]("compiling the fused C++ kernels (once per machine, about a minute; cached in "
                    "~/.cache/torch_extensions)...")
    started = time.perf_counter()
    functions = ["forward_step", "backward_step", "zone_forward", "zone_backward", *int8_kernels.FUNCTIONS]
    module = load_inline(name, cpp_sources=source, functions=functions, extra_cflags=flags, verbose=False)
    if compiling:
        _notify[-1](f"compiled the fused C++ kernels: done in {time.perf_counter() - started:.0f} s")
    return module


def build_name(prefix: str, source: str, flags: list[str]) -> str:
    """The extension's cache name: `prefix` + a hash of the source, the flags and the include paths.
    Checkouts with other kernels, and environments with another torch or Python (whose paths the
    build commands name), each get their own cache, so they never rebuild (or lock) each other's."""
    import sysconfig

    from torch.utils.cpp_extension import include_paths

    key = "\n".join([source, " ".join(flags), *include_paths(), sysconfig.get_paths()["include"]])
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:12]


def _ninja_on_path() -> None:
    """torch's extension builder runs `ninja` from PATH; the `ninja` package ships one in the venv."""
    try:
        import ninja
    except ImportError:
        return  # a system ninja may still be on PATH
    if ninja.BIN_DIR not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
