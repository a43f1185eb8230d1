#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"

namespace moe::kernels {

// Per (batch, kv head) in parallel: the query heads of its group run Q K^T and P V as GEMMs on
// strided views (no copies). Each (b, g) owns its slices of dk/dv, so accumulation is race-free
// and in a fixed order. GEMMs inside the parallel region run single-threaded (no nesting).

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D) {
  const int64_t G = Hq / Hkv, qs = Hq * D, ks = Hkv * D;
  const float scale = 1.0f / std::sqrt(float(D));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / G;
      const float* qh = q + b * T * qs + h * D;
      const float* kg = k + b * T * ks + g * D;
      const float* vg = v + b * T * ks + g * D;
      float* P = probs + (b * Hq + h) * T * T;
      gemm(false, true, T, T, D, scale, qh, qs, kg, ks, 0.0f, P, T);
      for (int64_t i = 0; i < T; ++i) {
        float* row = P + i * T;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, row[j]);
        float s = 0;
        for (int64_t j = 0; j <= i; ++j) s += row[j] = std::exp(row[j] - mx);
        const float inv = 1.0f / s;
        for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
        for (int64_t j = i + 1; j < T; ++j) row[j] = 0.0f;
      }
      gemm(false, false, T, D, T, 1.0f, P, T, vg, ks, 0.0f, out + b * T * qs + h * D, qs);
    }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                        const float* q, const float* k, const float* v, int64_t B, int64_t T,
                        int64_t Hq, int64_t Hkv, int64_t D) {
  const int64_t G = Hq / Hkv, qs = Hq * D, ks = Hkv * D;
  const float scale = 1.0f / std::sqrt(float(D));
#pragma omp parallel
  {
    std::vector<float> dS(T * T);
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t g = 0; g < Hkv; ++g) {
        const float* kg = k + b * T * ks + g * D;
        const float* vg = v + b * T * ks + g * D;
        float* dkg = dk + b * T * ks + g * D;
        float* dvg = dv + b * T * ks + g * D;
        for (int64_t h = g * G; h < (g + 1) * G; ++h) {
          const float* P = probs + (b * Hq + h) * T * T;
          const float* dO = dout + b * T * qs + h * D;
          const float* qh = q + b * T * qs + h * D;
          const float beta = h == g * G ? 0.0f : 1.0f;  // first head of the group assigns
          // dV += P^T dO
          gemm(true, false, T, D, T, 1.0f, P, T, dO, qs, beta, dvg, ks);
          // dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) * scale
          gemm(false, true, T, T, D, 1.0f, dO, qs, vg, ks, 0.0f, dS.data(), T);
          for (int64_t i = 0; i < T; ++i) {
            float* row = dS.data() + i * T;
            const float* p = P + i * T;
            float s = 0;
            for (int64_t j = 0; j <= i; ++j) s += row[j] * p[j];
            for (int64_t j = 0; j <= i; ++j) row[j] = p[j] * (row[j] - s) * scale;
            for (int64_t j = i + 1; j < T; ++j) row[j] = 0.0f;
          }
          // dQ = dS K; dK += dS^T Q
          gemm(false, false, T, D, T, 1.0f, dS.data(), T, kg, ks, 0.0f, dq + b * T * qs + h * D, qs);
          gemm(true, false, T, D, T, 1.0f, dS.data(), T, qh, qs, beta, dkg, ks);
        }
      }
  }
}

void attention_decode(float* out, const float* q, const float* kcache, const float* vcache,
                      int64_t n_ctx, int64_t Hq, int64_t Hkv, int64_t D, float* scratch) {
  const int64_t G = Hq / Hkv, ks = Hkv * D;
  const float scale = 1.0f / std::sqrt(float(D));
  for (int64_t h = 0; h < Hq; ++h) {
    const int64_t g = h / G;
    const float* qh = q + h * D;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n_ctx; ++j) {
      const float* kj = kcache + j * ks + g * D;
      float s = 0;
      for (int64_t d = 0; d < D; ++d) s += qh[d] * kj[d];
      scratch[j] = s * scale;
      mx = std::max(mx, scratch[j]);
    }
    float sum = 0;
    for (int64_t j = 0; j < n_ctx; ++j) sum += scratch[j] = std::exp(scratch[j] - mx);
    const float inv = 1.0f / sum;
    float* o = out + h * D;
    std::memset(o, 0, D * sizeof(float));
    for (int64_t j = 0; j < n_ctx; ++j) {
      const float p = scratch[j] * inv;
      const float* vj = vcache + j * ks + g * D;
      for (int64_t d = 0; d < D; ++d) o[d] += p * vj[d];
    }
  }
}

}  // namespace moe::kernels
