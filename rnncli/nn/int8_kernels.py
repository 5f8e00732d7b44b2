"""C++ for int8-weight inference at small batch: compiled into rnncli/nn/fused_cpu.py's extension.

    int8_linear(x (B, K), wq (R, K) int8, scale (R,), bias (R,) | empty) -> y (B, R) fp32
        y[b, r] = scale[r] * sx[b] * sum_k wq[r, k] xq[b, k] + bias[r]

    int8_lstm_step(kind, add, x, h, c, wq, scale, bias, w_cif, w_co) -> (h', c')
        one whole LSTM-family layer step in one call; the gate rows of wq are in the kernel's
        `bptt_gates` order with the candidate doubled (as fused_cpu's forward_step takes them):
        pre[b, r] = add[b, r] + bias[r] + scale[r] * sx[b] * wq[r] . xq[b],  xq[b] ~ [x[b] | h[b]] / sx[b]
        (add, x, bias may be empty), then gates, c' and h' for hidden unit j from rows j, H + j, 2H + j (, 3H + j).

Activations: each row of [x | h] is rounded to int16 with one scale per call, |xq| <= 2^14
(sx = max|x| / 2^14): the rounding error is at most sx / 2 per element, 1/32768 of the largest
|x|, so the result is the dequantized-weight matmul to ~1e-4 relative (tests/test_int8_kernel.py
checks the bound), while the products run in integers: AVX2 widens 16 int8 weights to int16
(vpmovsxbw) and vpmaddwd makes 8 int32 pair sums, 3 instructions per 16 multiply-adds. Widening
int8 to fp32 and FMA with fp32 activations (exact, 3 instructions per 8) measured 93 + 143 us for
the two layers of a 2x512 LSTM step; see the note of issue 13 for this one. 8-bit activations
(vpmaddubsw) would halve the instructions again but cost ~1/256 of max|x| per element.

Why a kernel of our own: at batch 1 torch's dynamic int8 linear quantizes the activation to 7 bits
and sets fbgemm up on every call. The work is split over hidden units (at::parallel_for), so each
thread computes every gate row of its units and finishes their c and h itself: no second pass, no
barrier. Built without AVX2, a scalar integer loop does the same arithmetic.
"""

FUNCTIONS = ["int8_linear", "int8_lstm_step"]

SOURCE = r"""
#include <vector>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define RNNCLI_AVX2 1
#endif

constexpr float XMAX = 16383.f;  // |x| <= 2^14 after quantizing: int32 sums of 4096 products cannot overflow
constexpr int64_t CHUNK = 4096;   // per int32 lane 512 products x 127 x 2^14 < 2^31

// xq[k] = round(x[k] / s) with s = max|x| / XMAX; returns s (one scale for the whole vector).
static float quantize_x(const float* x, int64_t K, int16_t* xq) {
  float m = 0.f;
  for (int64_t k = 0; k < K; ++k) m = std::max(m, std::abs(x[k]));
  const float s = m > 0.f ? m / XMAX : 1.f, inv = 1.f / s;
  for (int64_t k = 0; k < K; ++k) xq[k] = int16_t(std::nearbyint(x[k] * inv));
  return s;
}

#ifdef RNNCLI_AVX2
static inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
#endif

// out[g] = w[g] . xq over K (integers, exact), for N rows (N <= 4) sharing the loads of xq.
// AVX2: 16 weights widened to int16 (vpmovsxbw), vpmaddwd with 16 activations -> 8 int32 pair sums.
template <int N>
static inline void dot_rows(const int8_t* const* w, const int16_t* x, int64_t K, float* out) {
  for (int g = 0; g < N; ++g) out[g] = 0.f;
  int64_t k = 0;
#ifdef RNNCLI_AVX2
  while (k + 16 <= K) {
    __m256i acc[N];
    for (int g = 0; g < N; ++g) acc[g] = _mm256_setzero_si256();
    for (const int64_t end = std::min(K, k + CHUNK); k + 16 <= end; k += 16) {
      const __m256i xv = _mm256_loadu_si256((const __m256i*)(x + k));
      for (int g = 0; g < N; ++g) {
        const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(w[g] + k)));
        acc[g] = _mm256_add_epi32(acc[g], _mm256_madd_epi16(wv, xv));
      }
    }
    for (int g = 0; g < N; ++g) out[g] += float(hsum_epi32(acc[g]));
  }
#endif
  int64_t tail[N] = {};
  for (; k < K; ++k)
    for (int g = 0; g < N; ++g) tail[g] += int64_t(w[g][k]) * x[k];
  for (int g = 0; g < N; ++g) out[g] += float(tail[g]);
}

torch::Tensor int8_linear(torch::Tensor x, torch::Tensor wq, torch::Tensor scale, torch::Tensor bias) {
  TORCH_CHECK(x.dim() == 2 && wq.dim() == 2 && x.size(1) == wq.size(1), "int8_linear: shapes");
  x = x.contiguous(); bias = bias.contiguous();
  TORCH_CHECK(x.scalar_type() == at::kFloat && wq.is_contiguous() && scale.is_contiguous(), "int8_linear: layout");
  const int64_t B = x.size(0), K = x.size(1), R = wq.size(0);
  auto y = torch::empty({B, R}, x.options());
  std::vector<int16_t> xq(B * K);
  std::vector<float> sx(B);
  for (int64_t b = 0; b < B; ++b) sx[b] = quantize_x(x.data_ptr<float>() + b * K, K, xq.data() + b * K);
  const int8_t* W = wq.data_ptr<int8_t>();
  const float* S = scale.data_ptr<float>();
  const float* BI = bias.numel() ? bias.data_ptr<float>() : nullptr;
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, (R + 3) / 4, 16, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t r0 = 4 * q, n = std::min<int64_t>(4, R - r0);
      const int8_t* rows[4];
      for (int g = 0; g < 4; ++g) rows[g] = W + (r0 + std::min<int64_t>(g, n - 1)) * K;
      for (int64_t b = 0; b < B; ++b) {
        float d[4];
        dot_rows<4>(rows, xq.data() + b * K, K, d);
        for (int64_t g = 0; g < n; ++g) Y[b * R + r0 + g] = d[g] * (S[r0 + g] * sx[b]) + (BI ? BI[r0 + g] : 0.f);
      }
    }
  });
  return y;
}

static inline float sg(float v) { return 1.f / (1.f + std::exp(-v)); }

// n hidden units from their gate pre-activations P (G blocks of n, the kernel's order) -> c', h'.
// One loop per kind, as fused_cpu's forward_step, so the compiler vectorizes exp and tanh.
static void lstm_points(int64_t kind, int64_t n, const float* P, const float* cp, const float* wi,
                        const float* wf, const float* wo, float* cn, float* hn) {
  if (kind == 0) {  // [i f o g]
    #pragma omp simd
    for (int64_t k = 0; k < n; ++k) {
      float i = sg(P[k]), f = sg(P[n + k]), o = sg(P[2 * n + k]), g = 2.f * sg(P[3 * n + k]) - 1.f;
      float c = f * cp[k] + i * g;
      cn[k] = c; hn[k] = o * std::tanh(c);
    }
  } else if (kind == 1) {  // [i f g o], peepholes
    #pragma omp simd
    for (int64_t k = 0; k < n; ++k) {
      float i = sg(P[k] + wi[k] * cp[k]), f = sg(P[n + k] + wf[k] * cp[k]), g = 2.f * sg(P[2 * n + k]) - 1.f;
      float c = f * cp[k] + i * g, o = sg(P[3 * n + k] + wo[k] * c);
      cn[k] = c; hn[k] = o * std::tanh(c);
    }
  } else {  // [f o g], i = 1 - f
    #pragma omp simd
    for (int64_t k = 0; k < n; ++k) {
      float f = sg(P[k]), o = sg(P[n + k]), g = 2.f * sg(P[2 * n + k]) - 1.f;
      float c = g + f * (cp[k] - g);
      cn[k] = c; hn[k] = o * std::tanh(c);
    }
  }
}

std::vector<torch::Tensor> int8_lstm_step(int64_t kind, torch::Tensor add, torch::Tensor x,
                                          torch::Tensor h, torch::Tensor c, torch::Tensor wq,
                                          torch::Tensor scale, torch::Tensor bias,
                                          torch::Tensor w_cif, torch::Tensor w_co) {
  h = h.contiguous(); c = c.contiguous(); bias = bias.contiguous();
  TORCH_CHECK(scale.is_contiguous() && (!x.numel() || x.size(0) == h.size(0)), "int8_lstm_step: layout");
  const int64_t B = h.size(0), H = h.size(1), I = x.numel() ? x.size(1) : 0, K = I + H;
  const int64_t G = kind == 2 ? 3 : 4;
  TORCH_CHECK(wq.size(0) == G * H && wq.size(1) == K && wq.is_contiguous(), "int8_lstm_step: weight shape");
  TORCH_CHECK(!add.numel() || (add.size(0) == B && add.size(1) == G * H), "int8_lstm_step: add shape");
  std::vector<float> xh(K);  // [x | h] of one batch row, so each weight row is one dot product
  std::vector<int16_t> xq(B * K);
  std::vector<float> sx(B);
  auto xc = I ? x.contiguous() : x;
  for (int64_t b = 0; b < B; ++b) {
    if (I) std::copy_n(xc.data_ptr<float>() + b * I, I, xh.data());
    std::copy_n(h.data_ptr<float>() + b * H, H, xh.data() + I);
    sx[b] = quantize_x(xh.data(), K, xq.data() + b * K);
  }
  auto h_new = torch::empty_like(h), c_new = torch::empty_like(c);
  auto addc = add.numel() ? add.contiguous() : add;
  const float* AD = add.numel() ? addc.data_ptr<float>() : nullptr;
  const float* BI = bias.numel() ? bias.data_ptr<float>() : nullptr;
  const float* S = scale.data_ptr<float>();
  const int8_t* W = wq.data_ptr<int8_t>();
  const float* CP = c.data_ptr<float>();
  const float* WI = kind == 1 ? w_cif.data_ptr<float>() : nullptr;
  const float* WO = kind == 1 ? w_co.data_ptr<float>() : nullptr;
  float *HN = h_new.data_ptr<float>(), *CN = c_new.data_ptr<float>();
  at::parallel_for(0, H, 16, [&](int64_t j0, int64_t j1) {
    const int64_t n = j1 - j0;
    std::vector<float> P(G * n);  // this thread's gate pre-activations, G blocks of n
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = j0; j < j1; ++j) {
        const int8_t* rows[4];
        for (int64_t g = 0; g < 4; ++g) rows[g] = W + (std::min(g, G - 1) * H + j) * K;
        float p[4];
        if (G == 4) dot_rows<4>(rows, xq.data() + b * K, K, p);
        else dot_rows<3>(rows, xq.data() + b * K, K, p);
        for (int64_t g = 0; g < G; ++g) {
          const int64_t r = g * H + j;
          P[g * n + j - j0] = p[g] * (S[r] * sx[b]) + (BI ? BI[r] : 0.f) + (AD ? AD[b * G * H + r] : 0.f);
        }
      }
      lstm_points(kind, n, P.data(), CP + b * H + j0, WI ? WI + j0 : nullptr, WI ? WI + H + j0 : nullptr,
                  WO ? WO + j0 : nullptr, CN + b * H + j0, HN + b * H + j0);
    }
  });
  return {h_new, c_new};
}
"""
