"""Fused pointwise steps for the layer-normalised cells' hand-written BPTT (rnncli/nn/bptt_ln.py).

One C++ call per time step does everything between two matmuls of LN-LSTM / LN-GRU
(rnncli/nn/cells/ln_lstm.py, ln_gru.py): the layer norm of the recurrent matmul (row mean and
variance over all G*H features), the gates, the cell, the layer norm of c (LN-LSTM), the output,
and in the backward pass the same in reverse, both layer-norm backwards included. Gate blocks stay
in torch's order (i f g o; r z n). LN-LSTM's step also normalises its row of the input matmul
(in place: the normalised rows are what the backward needs) and its backward adds the step's gain
and beta gradients to float64 sums, so no (T, B, 4H) temporary is made for them. LN-GRU's input
layer norm runs once for all T*B rows in bptt_ln.py (torch's layer-norm kernels).

Templated on the scalar type (float and double), so the float64 exactness tests run this very code.
Compiled once per machine like rnncli/nn/fused_cpu.py (its own extension name, a hash of this
source); `kernels()` returns None where it cannot be built or RNNCLI_FUSED_CPU=0, and the layer
then runs the cells' autograd loop (rnncli/nn/recurrent.py says so in its fast-path report).
"""
from __future__ import annotations

import os
import time

from rnncli.nn import fused_cpu

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>

template <typename T> static inline T sig(T x) { return T(1) / (T(1) + std::exp(-x)); }
template <typename T> static inline T tnh(T x) { return T(2) * sig(T(2) * x) - T(1); }

// mean and 1 / sqrt(biased variance + eps) of v[0 .. n)
template <typename T> static inline void row_stats(const T* v, int64_t n, T eps, T& mean, T& rstd) {
  T s = 0, q = 0;
  #pragma omp simd reduction(+:s)
  for (int64_t k = 0; k < n; ++k) s += v[k];
  mean = s / T(n);
  #pragma omp simd reduction(+:q)
  for (int64_t k = 0; k < n; ++k) { T d = v[k] - mean; q += d * d; }
  rstd = T(1) / std::sqrt(q / T(n) + eps);
}

// layer-norm backward of one row: dx = rstd (dy g - mean(dy g) - xhat mean(dy g xhat))
template <typename T> static inline void ln_row_backward(const T* dy, const T* g, const T* xh, T rstd,
                                                          int64_t n, T* dx) {
  T s1 = 0, s2 = 0;
  #pragma omp simd reduction(+:s1, s2)
  for (int64_t k = 0; k < n; ++k) { T d = dy[k] * g[k]; s1 += d; s2 += d * xh[k]; }
  s1 /= T(n); s2 /= T(n);
  #pragma omp simd
  for (int64_t k = 0; k < n; ++k) dx[k] = rstd * (dy[k] * g[k] - s1 - xh[k] * s2);
}

template <typename T> static const T* opt(const torch::Tensor& t) {
  return t.numel() ? t.data_ptr<T>() : nullptr;
}

static void check(std::initializer_list<torch::Tensor> ts, const char* what) {
  for (const auto& t : ts) TORCH_CHECK(t.is_contiguous(), what, ": every tensor must be contiguous");
}

// LN-LSTM forward. xw (B, 4H) in: x W_ih^T; out: its normalised rows (rih (B) their rstd).
// hw (B, 4H) = h W_hh^T; out: xh (B, 4H) its normalised rows, rh (B). act (B, 4H) out: i f g o.
// z = g_ih xw^ + g_hh hw^ + beta (beta = beta_ih + beta_hh, or empty). c_prev (B, H) in; out: c,
// ch (normalised c), tu = tanh(LN(c)), h (B, H), rc (B). Gains g_ih, g_hh (4H), g_c (H); b_c or empty.
template <typename T>
static void lstm_fwd(torch::Tensor xw, torch::Tensor rih, torch::Tensor g_ih, torch::Tensor beta,
                     torch::Tensor act, torch::Tensor hw, torch::Tensor xh, torch::Tensor rh, torch::Tensor g_hh,
                     torch::Tensor c_prev, torch::Tensor c, torch::Tensor ch, torch::Tensor rc, torch::Tensor tu,
                     torch::Tensor h, torch::Tensor g_c, torch::Tensor b_c, double eps_) {
  const int64_t B = c.size(0), H = c.size(1), G = 4 * H;
  const T eps = T(eps_);
  T *XW = xw.data_ptr<T>(), *RI = rih.data_ptr<T>(), *A = act.data_ptr<T>(), *XH = xh.data_ptr<T>();
  T *RH = rh.data_ptr<T>(), *C = c.data_ptr<T>(), *CH = ch.data_ptr<T>(), *RC = rc.data_ptr<T>();
  T *TU = tu.data_ptr<T>(), *HO = h.data_ptr<T>();
  const T *HW = hw.data_ptr<T>(), *GI = g_ih.data_ptr<T>(), *BE = opt<T>(beta), *GH = g_hh.data_ptr<T>();
  const T *CP = c_prev.data_ptr<T>(), *GC = g_c.data_ptr<T>(), *BC = opt<T>(b_c);
  at::parallel_for(0, B, std::max<int64_t>(1, 8192 / G), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T *xi = XW + b * G, *r = A + b * G, *x = XH + b * G, *cc = C + b * H, *chr = CH + b * H, *tur = TU + b * H;
      const T *hwr = HW + b * G, *cp = CP + b * H;
      T mi, ri, mh, rr;
      row_stats(xi, G, eps, mi, ri);
      row_stats(hwr, G, eps, mh, rr);
      RI[b] = ri; RH[b] = rr;
      #pragma omp simd
      for (int64_t k = 0; k < G; ++k) {
        T u = (xi[k] - mi) * ri, v = (hwr[k] - mh) * rr;
        xi[k] = u; x[k] = v;
        r[k] = GI[k] * u + GH[k] * v + (BE ? BE[k] : T(0));
      }
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        T i = sig(r[k]), f = sig(r[H + k]), g = tnh(r[2 * H + k]), o = sig(r[3 * H + k]);
        r[k] = i; r[H + k] = f; r[2 * H + k] = g; r[3 * H + k] = o;
        cc[k] = f * cp[k] + i * g;
      }
      T mc, rcv;
      row_stats(cc, H, eps, mc, rcv);
      RC[b] = rcv;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        T n = (cc[k] - mc) * rcv, t = tnh(GC[k] * n + (BC ? BC[k] : T(0)));
        chr[k] = n; tur[k] = t; HO[b * H + k] = r[3 * H + k] * t;
      }
    }
  });
}

// LN-LSTM backward. dh (B, H) dL/dh_t; dc (B, H) in: dL/dc_t from later steps, out: dL/dc_{t-1}.
// Out: dxw, dhw (B, 4H) gradients of x W_ih^T and h W_hh^T. dz (B, 4H), du (B, H): scratch (of z and
// of LN(c)). Adds this step's parameter gradients to the float64 sums acc_gi, acc_gh, acc_b (4H: the
// gains and the betas, beta_ih's = beta_hh's), acc_gc, acc_bc (H).
template <typename T>
static void lstm_bwd(torch::Tensor act, torch::Tensor xih, torch::Tensor rih, torch::Tensor g_ih,
                     torch::Tensor xh, torch::Tensor rh, torch::Tensor g_hh, torch::Tensor c_prev, torch::Tensor ch,
                     torch::Tensor rc, torch::Tensor tu, torch::Tensor g_c, torch::Tensor dh, torch::Tensor dc,
                     torch::Tensor dz, torch::Tensor du, torch::Tensor dxw, torch::Tensor dhw,
                     torch::Tensor acc_gi, torch::Tensor acc_gh, torch::Tensor acc_b, torch::Tensor acc_gc,
                     torch::Tensor acc_bc) {
  const int64_t B = dc.size(0), H = dc.size(1), G = 4 * H;
  const T *A = act.data_ptr<T>(), *XI = xih.data_ptr<T>(), *RI = rih.data_ptr<T>(), *GI = g_ih.data_ptr<T>();
  const T *XH = xh.data_ptr<T>(), *RH = rh.data_ptr<T>(), *GH = g_hh.data_ptr<T>();
  const T *CP = c_prev.data_ptr<T>(), *CH = ch.data_ptr<T>(), *RC = rc.data_ptr<T>(), *TU = tu.data_ptr<T>();
  const T *GC = g_c.data_ptr<T>(), *DH = dh.data_ptr<T>();
  T *DC = dc.data_ptr<T>(), *DZ = dz.data_ptr<T>(), *DU = du.data_ptr<T>();
  T *DXW = dxw.data_ptr<T>(), *DHW = dhw.data_ptr<T>();
  double *SGI = acc_gi.data_ptr<double>(), *SGH = acc_gh.data_ptr<double>(), *SB = acc_b.data_ptr<double>();
  double *SGC = acc_gc.data_ptr<double>(), *SBC = acc_bc.data_ptr<double>();
  at::parallel_for(0, B, std::max<int64_t>(1, 8192 / G), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T *r = A + b * G, *cp = CP + b * H, *chr = CH + b * H, *tur = TU + b * H, *dhr = DH + b * H;
      T *q = DZ + b * G, *dcr = DC + b * H, *dur = DU + b * H;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {  // through h = o tanh(u), u = LN(c)
        T o = r[3 * H + k], t = tur[k], x = dhr[k];
        q[3 * H + k] = x * t * o * (T(1) - o);
        dur[k] = x * o * (T(1) - t * t);
      }
      T s1 = 0, s2 = 0;
      #pragma omp simd reduction(+:s1, s2)
      for (int64_t k = 0; k < H; ++k) { T d = dur[k] * GC[k]; s1 += d; s2 += d * chr[k]; }
      s1 /= T(H); s2 /= T(H);
      const T rcb = RC[b];
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        T dcv = dcr[k] + rcb * (dur[k] * GC[k] - s1 - chr[k] * s2);
        T i = r[k], f = r[H + k], g = r[2 * H + k];
        q[k] = dcv * g * i * (T(1) - i);
        q[H + k] = dcv * cp[k] * f * (T(1) - f);
        q[2 * H + k] = dcv * i * (T(1) - g * g);
        dcr[k] = dcv * f;
      }
      ln_row_backward(q, GH, XH + b * G, RH[b], G, DHW + b * G);
      ln_row_backward(q, GI, XI + b * G, RI[b], G, DXW + b * G);
    }
  });
  // the parameter sums: split over features (no two threads write one sum), rows in order
  at::parallel_for(0, G, 256, [&](int64_t k0, int64_t k1) {
    for (int64_t b = 0; b < B; ++b) {
      const T *q = DZ + b * G, *xi = XI + b * G, *x = XH + b * G;
      #pragma omp simd
      for (int64_t k = k0; k < k1; ++k) {
        SGI[k] += double(q[k] * xi[k]); SGH[k] += double(q[k] * x[k]); SB[k] += double(q[k]);
      }
      const T *dur = DU + b * H, *chr = CH + b * H;
      #pragma omp simd
      for (int64_t k = k0; k < std::min(k1, H); ++k) { SGC[k] += double(dur[k] * chr[k]); SBC[k] += double(dur[k]); }
    }
  });
}

// LN-GRU forward. a (B, 3H) in: LN_ih(x W_ih^T) = [a_r a_z a_n]; out: activations r z n.
// hw (B, 3H) = h W_hh^T; out: xh (B, 3H) normalised hw, rh (B). g_hh (3H), b_hh (3H) or empty.
// h_prev, h (B, H).
template <typename T>
static void gru_fwd(torch::Tensor a, torch::Tensor hw, torch::Tensor xh, torch::Tensor rh, torch::Tensor g_hh,
                    torch::Tensor b_hh, torch::Tensor h_prev, torch::Tensor h, double eps_) {
  const int64_t B = h.size(0), H = h.size(1), G = 3 * H;
  const T eps = T(eps_);
  T *A = a.data_ptr<T>(), *XH = xh.data_ptr<T>(), *RH = rh.data_ptr<T>(), *HO = h.data_ptr<T>();
  const T *HW = hw.data_ptr<T>(), *GH = g_hh.data_ptr<T>(), *BH = opt<T>(b_hh), *HP = h_prev.data_ptr<T>();
  at::parallel_for(0, B, std::max<int64_t>(1, 16384 / G), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T *r = A + b * G, *x = XH + b * G;
      const T *hwr = HW + b * G, *hp = HP + b * H;
      T mean, rstd;
      row_stats(hwr, G, eps, mean, rstd);
      RH[b] = rstd;
      #pragma omp simd
      for (int64_t k = 0; k < G; ++k) x[k] = (hwr[k] - mean) * rstd;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        T br = GH[k] * x[k] + (BH ? BH[k] : T(0)), bz = GH[H + k] * x[H + k] + (BH ? BH[H + k] : T(0));
        T bn = GH[2 * H + k] * x[2 * H + k] + (BH ? BH[2 * H + k] : T(0));
        T rr = sig(r[k] + br), z = sig(r[H + k] + bz), n = tnh(r[2 * H + k] + rr * bn);
        r[k] = rr; r[H + k] = z; r[2 * H + k] = n;
        HO[b * H + k] = n + z * (hp[k] - n);
      }
    }
  });
}

// LN-GRU backward. dh (B, H) in: dL/dh_t; out: dh z (the direct part of dL/dh_{t-1}).
// Out: da (B, 3H) gradient of LN_ih(xw), db (B, 3H) of LN_hh(hw), dhw (B, 3H) of h W_hh^T.
template <typename T>
static void gru_bwd(torch::Tensor act, torch::Tensor xh, torch::Tensor rh, torch::Tensor g_hh, torch::Tensor b_hh,
                    torch::Tensor h_prev, torch::Tensor dh, torch::Tensor da, torch::Tensor db, torch::Tensor dhw) {
  const int64_t B = dh.size(0), H = dh.size(1), G = 3 * H;
  const T *A = act.data_ptr<T>(), *XH = xh.data_ptr<T>(), *RH = rh.data_ptr<T>(), *GH = g_hh.data_ptr<T>();
  const T *BH = opt<T>(b_hh), *HP = h_prev.data_ptr<T>();
  T *DH = dh.data_ptr<T>(), *DA = da.data_ptr<T>(), *DB = db.data_ptr<T>(), *DHW = dhw.data_ptr<T>();
  at::parallel_for(0, B, std::max<int64_t>(1, 16384 / G), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const T *r = A + b * G, *x = XH + b * G, *hp = HP + b * H;
      T *pa = DA + b * G, *pb = DB + b * G, *dhr = DH + b * H;
      #pragma omp simd
      for (int64_t k = 0; k < H; ++k) {
        T rr = r[k], z = r[H + k], n = r[2 * H + k], y = dhr[k];
        T bn = GH[2 * H + k] * x[2 * H + k] + (BH ? BH[2 * H + k] : T(0));
        T dn = y * (T(1) - z) * (T(1) - n * n);
        T dzp = y * (hp[k] - n) * z * (T(1) - z);
        T drp = dn * bn * rr * (T(1) - rr);
        pa[k] = drp; pa[H + k] = dzp; pa[2 * H + k] = dn;
        pb[k] = drp; pb[H + k] = dzp; pb[2 * H + k] = dn * rr;
        dhr[k] = y * z;
      }
      ln_row_backward(pb, GH, x, RH[b], G, DHW + b * G);
    }
  });
}

void ln_lstm_forward(torch::Tensor xw, torch::Tensor rih, torch::Tensor g_ih, torch::Tensor beta,
                     torch::Tensor act, torch::Tensor hw, torch::Tensor xh, torch::Tensor rh, torch::Tensor g_hh,
                     torch::Tensor c_prev, torch::Tensor c, torch::Tensor ch, torch::Tensor rc, torch::Tensor tu,
                     torch::Tensor h, torch::Tensor g_c, torch::Tensor b_c, double eps) {
  check({xw, rih, g_ih, beta, act, hw, xh, rh, g_hh, c_prev, c, ch, rc, tu, h, g_c, b_c}, "ln_lstm_forward");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "ln_lstm_forward", [&] {
    lstm_fwd<scalar_t>(xw, rih, g_ih, beta, act, hw, xh, rh, g_hh, c_prev, c, ch, rc, tu, h, g_c, b_c, eps);
  });
}

void ln_lstm_backward(torch::Tensor act, torch::Tensor xih, torch::Tensor rih, torch::Tensor g_ih,
                      torch::Tensor xh, torch::Tensor rh, torch::Tensor g_hh, torch::Tensor c_prev, torch::Tensor ch,
                      torch::Tensor rc, torch::Tensor tu, torch::Tensor g_c, torch::Tensor dh, torch::Tensor dc,
                      torch::Tensor dz, torch::Tensor du, torch::Tensor dxw, torch::Tensor dhw,
                      torch::Tensor acc_gi, torch::Tensor acc_gh, torch::Tensor acc_b, torch::Tensor acc_gc,
                      torch::Tensor acc_bc) {
  check({act, xih, rih, g_ih, xh, rh, g_hh, c_prev, ch, rc, tu, g_c, dh, dc, dz, du, dxw, dhw,
         acc_gi, acc_gh, acc_b, acc_gc, acc_bc}, "ln_lstm_backward");
  TORCH_CHECK(acc_gi.scalar_type() == at::kDouble, "ln_lstm_backward: the sums are float64");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "ln_lstm_backward", [&] {
    lstm_bwd<scalar_t>(act, xih, rih, g_ih, xh, rh, g_hh, c_prev, ch, rc, tu, g_c, dh, dc, dz, du, dxw, dhw,
                       acc_gi, acc_gh, acc_b, acc_gc, acc_bc);
  });
}

void ln_gru_forward(torch::Tensor a, torch::Tensor hw, torch::Tensor xh, torch::Tensor rh, torch::Tensor g_hh,
                    torch::Tensor b_hh, torch::Tensor h_prev, torch::Tensor h, double eps) {
  check({a, hw, xh, rh, g_hh, b_hh, h_prev, h}, "ln_gru_forward");
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ln_gru_forward", [&] {
    gru_fwd<scalar_t>(a, hw, xh, rh, g_hh, b_hh, h_prev, h, eps);
  });
}

void ln_gru_backward(torch::Tensor act, torch::Tensor xh, torch::Tensor rh, torch::Tensor g_hh, torch::Tensor b_hh,
                     torch::Tensor h_prev, torch::Tensor dh, torch::Tensor da, torch::Tensor db, torch::Tensor dhw) {
  check({act, xh, rh, g_hh, b_hh, h_prev, dh, da, db, dhw}, "ln_gru_backward");
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "ln_gru_backward", [&] {
    gru_bwd<scalar_t>(act, xh, rh, g_hh, b_hh, h_prev, dh, da, db, dhw);
  });
}
"""

_FUNCTIONS = ["ln_lstm_forward", "ln_lstm_backward", "ln_gru_forward", "ln_gru_backward"]
_cache: dict = {}


def kernels():
    """The compiled module (the four functions above), or None where it cannot be had."""
    return fused_cpu.lazy_build(_cache, _build, "fused layer-norm kernels unavailable ({error}); the "
                                "layer-normalised cells run their autograd loop (same results, slower)")


def _build():
    import torch
    from torch.utils.cpp_extension import _get_build_directory, load_inline

    fused_cpu._ninja_on_path()
    flags = ["-O3", "-ffast-math", "-fopenmp-simd"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    name = fused_cpu.build_name("rnncli_fused_ln_", _SOURCE, flags)
    compiling = not any(f.endswith(".so") for f in os.listdir(_get_build_directory(name, False)))
    say = fused_cpu._notify[-1]
    if compiling:
        say("compiling the fused layer-norm C++ kernels (once per machine, about a minute; cached in "
            "~/.cache/torch_extensions)...")
    started = time.perf_counter()
    module = load_inline(name, cpp_sources=_SOURCE, functions=_FUNCTIONS, extra_cflags=flags, verbose=False)
    if compiling:
        say(f"compiled the fused layer-norm C++ kernels: done in {time.perf_counter() - started:.0f} s")
    return module
