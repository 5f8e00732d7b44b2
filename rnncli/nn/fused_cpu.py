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

Zoneout (any kind) rides in the same pass (`forward_step_zoned` / `backward_step_zoned`, one call per
step as without it): after a row's pointwise part the forward picks each unit of h and c from the
previous state or the step's new values; before it the backward splits dh, dc into the new state's
share and the carry to the previous step (rnncli/nn/bptt_zone.py). `zone_masks` draws the masks for
every path on the CPU (rnncli/nn/regularise.py `zoneout_masks`): a counter-based hash, 32 bits a draw.

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

// One row b of the forward pointwise part: r (G*H) pre-activations -> activations, in place; cp c_{t-1};
// cc, tc, hh (H) <- c_t, tanh(c_t), h_t.
static inline void forward_row(int64_t kind, float* r, const float* cp, float* cc, float* tc, float* hh,
                               const float* WI, const float* WO, int64_t H) {
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

// One row b of the backward pointwise part: r (G*H) activations; q (G*H) <- pre-activation gradients;
// dhr dL/dh_t; dcr (H) in: dL/dc_t from later steps, out: dL/dc_{t-1}.
static inline void backward_row(int64_t kind, const float* r, float* q, const float* cp, const float* tc,
                                const float* dhr, float* dcr, const float* WI, const float* WO, int64_t H) {
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

static inline int64_t grain_of(int64_t H) { return std::max<int64_t>(1, 16384 / H); }

// a (B, ld) gate rows, in place: pre-activations -> activations; c_prev, c, tanh_c, h (B, H).
void forward_step(int64_t kind, torch::Tensor a, torch::Tensor c_prev, torch::Tensor c,
                  torch::Tensor tanh_c, torch::Tensor h, torch::Tensor w_cif, torch::Tensor w_co) {
  const int64_t B = c.size(0), H = c.size(1), ld = a.stride(0);
  TORCH_CHECK(a.stride(1) == 1 && c_prev.is_contiguous() && c.is_contiguous() &&
              tanh_c.is_contiguous() && h.is_contiguous(), "fused forward_step: layout");
  float* A = a.data_ptr<float>();
  const float* CP = c_prev.data_ptr<float>();
  float *C = c.data_ptr<float>(), *TC = tanh_c.data_ptr<float>(), *HO = h.data_ptr<float>();
  const float* WI = kind == 1 ? w_cif.data_ptr<float>() : nullptr;
  const float* WO = kind == 1 ? w_co.data_ptr<float>() : nullptr;
  at::parallel_for(0, B, grain_of(H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      forward_row(kind, A + b * ld, CP + b * H, C + b * H, TC + b * H, HO + b * H, WI, WO, H);
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
  const float *CP = c_prev.data_ptr<float>(), *TC = tanh_c.data_ptr<float>(), *DH = dh.data_ptr<float>();
  float* DC = dc.data_ptr<float>();
  const float* WI = kind == 1 ? w_cif.data_ptr<float>() : nullptr;
  const float* WO = kind == 1 ? w_co.data_ptr<float>() : nullptr;
  at::parallel_for(0, B, grain_of(H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      backward_row(kind, A + b * ld, D + b * ldd, CP + b * H, TC + b * H, DH + b * H, DC + b * H, WI, WO, H);
  });
}

// forward_step with zoneout in the same pass. keep (2, B, H) bool (row 0: h, row 1: c; true = keep the
// previous value), read as bytes (bool loads do not vectorise); c_new (B, H) <- the step's c before
// zoneout; h (in: -, out: zoned h_t); c (B, H) <- zoned c_t.
void forward_step_zoned(int64_t kind, torch::Tensor a, torch::Tensor c_prev, torch::Tensor c_new,
                        torch::Tensor tanh_c, torch::Tensor h, torch::Tensor w_cif, torch::Tensor w_co,
                        torch::Tensor keep, torch::Tensor h_prev, torch::Tensor c) {
  const int64_t B = c.size(0), H = c.size(1), ld = a.stride(0), n = B * H;
  TORCH_CHECK(a.stride(1) == 1 && c_prev.is_contiguous() && c_new.is_contiguous() && tanh_c.is_contiguous() &&
              h.is_contiguous() && keep.is_contiguous() && h_prev.is_contiguous() && c.is_contiguous(),
              "fused forward_step_zoned: layout");
  float* A = a.data_ptr<float>();
  const float *CP = c_prev.data_ptr<float>(), *HP = h_prev.data_ptr<float>();
  float *CN = c_new.data_ptr<float>(), *TC = tanh_c.data_ptr<float>(), *HO = h.data_ptr<float>();
  float* C = c.data_ptr<float>();
  const uint8_t* KH = reinterpret_cast<const uint8_t*>(keep.data_ptr<bool>());
  const float* WI = kind == 1 ? w_cif.data_ptr<float>() : nullptr;
  const float* WO = kind == 1 ? w_co.data_ptr<float>() : nullptr;
  at::parallel_for(0, B, grain_of(H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t o = b * H;
      forward_row(kind, A + b * ld, CP + o, CN + o, TC + o, HO + o, WI, WO, H);
      const uint8_t *kh = KH + o, *kc = KH + n + o;
      const float *hp = HP + o, *cp = CP + o, *cn = CN + o;
      float *hh = HO + o, *cc = C + o;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        hh[k] = kh[k] ? hp[k] : hh[k];
        cc[k] = kc[k] ? cp[k] : cn[k];
      }
    }
  });
}

// backward_step with zoneout in the same pass. dh, dc in: dL/dh_t, dL/dc_t; the kept units' share goes
// straight to step t-1: carry_h <- kept dh + g_prev (dL/dh_{t-1} from the output; none when empty), and
// dc out = dL/dc_{t-1} = the step's + kept dc. dh out: the new h's share (0 where kept). carry_c (B, H)
// is scratch.
void backward_step_zoned(int64_t kind, torch::Tensor a, torch::Tensor d, torch::Tensor c_prev,
                         torch::Tensor tanh_c, torch::Tensor dh, torch::Tensor dc, torch::Tensor w_cif,
                         torch::Tensor w_co, torch::Tensor keep, torch::Tensor g_prev, torch::Tensor carry_h,
                         torch::Tensor carry_c) {
  const int64_t B = dc.size(0), H = dc.size(1), ld = a.stride(0), ldd = d.stride(0), n = B * H;
  TORCH_CHECK(a.stride(1) == 1 && d.stride(1) == 1 && c_prev.is_contiguous() && tanh_c.is_contiguous() &&
              dh.is_contiguous() && dc.is_contiguous() && keep.is_contiguous() && carry_h.is_contiguous() &&
              carry_c.is_contiguous() && (g_prev.numel() == 0 || g_prev.is_contiguous()),
              "fused backward_step_zoned: layout");
  const float* A = a.data_ptr<float>();
  float* D = d.data_ptr<float>();
  const float *CP = c_prev.data_ptr<float>(), *TC = tanh_c.data_ptr<float>();
  float *DH = dh.data_ptr<float>(), *DC = dc.data_ptr<float>();
  float *CH = carry_h.data_ptr<float>(), *CC = carry_c.data_ptr<float>();
  const float* G = g_prev.numel() ? g_prev.data_ptr<float>() : nullptr;
  const uint8_t* KH = reinterpret_cast<const uint8_t*>(keep.data_ptr<bool>());
  const float* WI = kind == 1 ? w_cif.data_ptr<float>() : nullptr;
  const float* WO = kind == 1 ? w_co.data_ptr<float>() : nullptr;
  at::parallel_for(0, B, grain_of(H), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t o = b * H;
      const uint8_t *kh = KH + o, *kc = KH + n + o;
      float *dhr = DH + o, *dcr = DC + o, *ch = CH + o, *cc = CC + o;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        const float x = dhr[k], y = dcr[k];
        ch[k] = kh[k] ? x : 0.f;
        dhr[k] = kh[k] ? 0.f : x;
        cc[k] = kc[k] ? y : 0.f;
        dcr[k] = kc[k] ? 0.f : y;
      }
      if (G) {
        const float* g = G + o;
        #pragma omp simd
        for (int64_t k = 0; k < H; ++k) ch[k] += g[k];
      }
      backward_row(kind, A + b * ld, D + b * ldd, CP + o, TC + o, dhr, dcr, WI, WO, H);
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) dcr[k] += cc[k];
    }
  });
}

// Zoneout masks: keep (any shape, bool, contiguous) <- Bernoulli(z) per element, from a counter-based
// hash instead of a generator's stream (torch.rand < z cost 6 ms per (100, 2, 32, 256) block on 2 cores):
// word j is splitmix64's output at position j of the stream seeded by `seed`, mix(seed + (j + 1) golden);
// its low and high 32 bits are the uniforms u of elements 2j and 2j + 1, keep = u < round(z 2^32).
// The draw depends on (seed, j) only, never on the threads' split.
static inline uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

void zone_masks(int64_t seed, double z, torch::Tensor keep) {
  TORCH_CHECK(keep.is_contiguous() && keep.scalar_type() == torch::kBool && z >= 0 && z <= 1, "zone_masks: layout");
  const int64_t n = keep.numel(), pairs = (n + 1) / 2;
  const uint64_t s = static_cast<uint64_t>(seed), golden = 0x9E3779B97F4A7C15ULL;
  const uint64_t thr = static_cast<uint64_t>(std::llround(z * 4294967296.0));  // z = 1: every u < 2^32
  bool* K = keep.data_ptr<bool>();
  at::parallel_for(0, pairs, 65536, [&](int64_t j0, int64_t j1) {
    const int64_t whole = std::min(j1, n / 2);  // pairs with both elements in the tensor
    #pragma omp simd
    for (int64_t j = j0; j < whole; ++j) {
      const uint64_t w = mix64(s + static_cast<uint64_t>(j + 1) * golden);
      K[2 * j] = (w & 0xFFFFFFFFULL) < thr;
      K[2 * j + 1] = (w >> 32) < thr;
    }
    if (j1 > whole) K[2 * whole] = (mix64(s + static_cast<uint64_t>(whole + 1) * golden) & 0xFFFFFFFFULL) < thr;
  });
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
    """The compiled module (forward_step, backward_step, their _zoned variants, zone_masks, the int8
    kernels), or None where it cannot be had."""
    return lazy_build(_cache, _build, "fused CPU kernels unavailable ({error}); using the eager step "
                                      "(same results, slower)")


def lazy_build(cache: dict, build, unavailable: str):
    """`build()`'s module, built once and kept in `cache`; None when RNNCLI_FUSED_CPU=0 or the build
    fails (no compiler, no headers), said once through the notifier (`unavailable`, with {error})."""
    if "module" not in cache:
        module = None
        if os.environ.get("RNNCLI_FUSED_CPU", "1") != "0":
            try:
                module = build()
            except Exception as error:  # the caller's eager path runs instead
                _notify[-1](unavailable.format(error=type(error).__name__))
        cache["module"] = module
    return cache["module"]


def kind_id(bptt_kind: str) -> int:
    """The C++ `kind` argument for a cell's `bptt_kind`."""
    return KINDS.index(bptt_kind)


def step_args(spec, peep) -> tuple:
    """What the C++ steps take besides the per-step tensors, for a cell class `spec` with a bptt_kind:
    (kind id, the number of views leading a step's arguments (bptt_steps.py `step_views`), w_cif, w_co);
    `peep` = (w_ci and w_cf stacked, w_co), or None for cells without peepholes (empty tensors)."""
    import torch

    w_cif, w_co = (torch.empty(0), torch.empty(0)) if peep is None else (peep[0].contiguous(), peep[1].contiguous())
    return kind_id(spec.bptt_kind), 3 + spec.num_gates, w_cif, w_co


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
    functions = ["forward_step", "backward_step", "forward_step_zoned", "backward_step_zoned", "zone_masks",
                 *int8_kernels.FUNCTIONS]
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
