#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/softmax.h"

namespace moe::kernels {

// Each (batch, head) is a pair of GEMMs on strided views of q/k/v (no copies), in blocks of query
// rows: with the causal mask the block [i0, i1) only needs keys [0, i1), which halves the work of a
// long sequence; without it every block takes all T keys.
// Parallel over (b, head) in the forward and over (b, kv head) in the backward, where a kv head's
// query heads run one after another inside the loop, so that dk/dv accumulate without races and in
// a fixed order. GEMMs inside the parallel region run single-threaded (nested parallelism is off);
// when there are fewer units than threads the units run one at a time and each GEMM is threaded.

namespace {

constexpr int64_t kRowBlock = 64;  // query rows per GEMM

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, bool causal) {
  MOE_ASSERT(Hkv > 0 && Hq % Hkv == 0);
  const int64_t G = Hq / Hkv, qs = Hq * D, ks = Hkv * D;
  const float scale = 1.0f / std::sqrt(float(D));
  const int64_t units = B * Hq;
#pragma omp parallel for schedule(static) if (units > 1 && units >= max_threads())
  for (int64_t u = 0; u < units; ++u) {
    const int64_t b = u / Hq, h = u % Hq, g = h / G;
    const float* qh = q + b * T * qs + h * D;  // [T, D], row stride qs
    const float* kg = k + b * T * ks + g * D;  // [T, D], row stride ks
    const float* vg = v + b * T * ks + g * D;  // [T, D], row stride ks
    float* oh = out + b * T * qs + h * D;      // [T, D], row stride qs
    float* P = probs + u * T * T;              // [T, T]
    for (int64_t i0 = 0; i0 < T; i0 += kRowBlock) {
      const int64_t i1 = std::min(T, i0 + kRowBlock), m = i1 - i0, keys = causal ? i1 : T;
      // S[i0:i1, 0:keys] = Q[i0:i1] K[0:keys]^T / sqrt(D)
      gemm(false, true, m, keys, D, scale, qh + i0 * qs, qs, kg, ks, 0.0f, P + i0 * T, T);
      for (int64_t i = i0; i < i1; ++i) {
        float* row = P + i * T;
        const int64_t seen = causal ? i + 1 : T;  // causal: keys 0..i
        softmax_forward(row, row, 1, seen);
        std::fill(row + seen, row + T, 0.0f);
      }
      // O[i0:i1] = P[i0:i1, 0:keys] V[0:keys]
      gemm(false, false, m, D, keys, 1.0f, P + i0 * T, T, vg, ks, 0.0f, oh + i0 * qs, qs);
    }
  }
}

// With S = Q K^T / sqrt(D), P = softmax(S) (causal), O = P V:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),
//   dQ = dS K / sqrt(D),  dK = dS^T Q / sqrt(D),
// dK and dV summed over the query heads of each kv head.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                        const float* q, const float* k, const float* v, int64_t B, int64_t T,
                        int64_t Hq, int64_t Hkv, int64_t D, bool causal) {
  MOE_ASSERT(Hkv > 0 && Hq % Hkv == 0);
  const int64_t G = Hq / Hkv, qs = Hq * D, ks = Hkv * D;
  const float scale = 1.0f / std::sqrt(float(D));
  const int64_t units = B * Hkv;
#pragma omp parallel if (units > 1 && units >= max_threads())
  {
    std::vector<float> dS(std::min(T, kRowBlock) * T);  // [m, keys] of the current block
#pragma omp for schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t b = u / Hkv, g = u % Hkv;
      const float* kg = k + b * T * ks + g * D;  // [T, D], row stride ks
      const float* vg = v + b * T * ks + g * D;
      float* dkg = dk + b * T * ks + g * D;
      float* dvg = dv + b * T * ks + g * D;
      for (int64_t t = 0; t < T; ++t) {
        std::fill(dkg + t * ks, dkg + t * ks + D, 0.0f);
        std::fill(dvg + t * ks, dvg + t * ks + D, 0.0f);
      }
      for (int64_t h = g * G; h < (g + 1) * G; ++h) {
        const float* P = probs + (b * Hq + h) * T * T;  // [T, T]
        const float* dO = dout + b * T * qs + h * D;    // [T, D], row stride qs
        const float* qh = q + b * T * qs + h * D;
        float* dqh = dq + b * T * qs + h * D;
        for (int64_t i0 = 0; i0 < T; i0 += kRowBlock) {
          const int64_t i1 = std::min(T, i0 + kRowBlock), m = i1 - i0, keys = causal ? i1 : T;
          const float* Pb = P + i0 * T;  // rows i0..i1, keys 0..keys (row stride T)
          // dV[0:keys] += P[i0:i1, 0:keys]^T dO[i0:i1]
          gemm(true, false, keys, D, m, 1.0f, Pb, T, dO + i0 * qs, qs, 1.0f, dvg, ks);
          // dP[i0:i1, 0:keys] = dO[i0:i1] V[0:keys]^T, then dS in place
          gemm(false, true, m, keys, D, 1.0f, dO + i0 * qs, qs, vg, ks, 0.0f, dS.data(), keys);
          for (int64_t i = i0; i < i1; ++i) {
            float* row = dS.data() + (i - i0) * keys;
            const float* p = P + i * T;
            const int64_t seen = causal ? i + 1 : T;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int64_t j = 0; j < seen; ++j) s += row[j] * p[j];
#pragma omp simd
            for (int64_t j = 0; j < seen; ++j) row[j] = p[j] * (row[j] - s);
            std::fill(row + seen, row + keys, 0.0f);
          }
          // dQ[i0:i1] = dS K[0:keys] / sqrt(D)
          gemm(false, false, m, D, keys, scale, dS.data(), keys, kg, ks, 0.0f, dqh + i0 * qs, qs);
          // dK[0:keys] += dS^T Q[i0:i1] / sqrt(D)
          gemm(true, false, keys, D, m, scale, dS.data(), keys, qh + i0 * qs, qs, 1.0f, dkg, ks);
        }
      }
    }
  }
}

// Units are (head, block of query rows), so a prompt shorter than a block still spreads over the
// threads by head, and a long one by block.
void attention_prefill(float* out, const float* q, const float* k, const float* v, int64_t n, int64_t past,
                       int64_t Hq, int64_t Hkv, int64_t D) {
  MOE_ASSERT(Hkv > 0 && Hq % Hkv == 0 && n > 0 && past >= 0);
  const int64_t G = Hq / Hkv, qs = Hq * D, ks = Hkv * D, T = past + n;
  const float scale = 1.0f / std::sqrt(float(D));
  const int64_t blocks = (n + kRowBlock - 1) / kRowBlock, units = Hq * blocks;
#pragma omp parallel if (units > 1 && units >= max_threads())
  {
    // [m, keys] scores, then probabilities; kept per thread, as this runs per layer per chunk.
    static thread_local std::vector<float> S;
    if (S.size() < size_t(std::min(n, kRowBlock) * T)) S.resize(size_t(std::min(n, kRowBlock) * T));
#pragma omp for schedule(dynamic)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t h = u / blocks, g = h / G, i0 = (u % blocks) * kRowBlock;
      const int64_t i1 = std::min(n, i0 + kRowBlock), m = i1 - i0, keys = past + i1;
      // S = Q[i0:i1] K[0:keys]^T / sqrt(D)
      gemm(false, true, m, keys, D, scale, q + i0 * qs + h * D, qs, k + g * D, ks, 0.0f, S.data(), keys);
      for (int64_t i = 0; i < m; ++i) {
        float* row = S.data() + i * keys;
        const int64_t seen = past + i0 + i + 1;
        softmax_forward(row, row, 1, seen);
        std::fill(row + seen, row + keys, 0.0f);
      }
      // O[i0:i1] = S V[0:keys]
      gemm(false, false, m, D, keys, 1.0f, S.data(), keys, v + g * D, ks, 0.0f, out + i0 * qs + h * D, qs);
    }
  }
}

// Scores into scratch, a softmax over the n_ctx positions, then the weighted sum of values. Heads
// run one after another: scratch holds one head's scores only.
void attention_decode(float* out, const float* q, const float* kcache, const float* vcache,
                      int64_t n_ctx, int64_t Hq, int64_t Hkv, int64_t D, float* scratch) {
  MOE_ASSERT(Hkv > 0 && Hq % Hkv == 0 && n_ctx > 0);
  const int64_t G = Hq / Hkv, ks = Hkv * D;
  const float scale = 1.0f / std::sqrt(float(D));
  for (int64_t h = 0; h < Hq; ++h) {
    const int64_t g = h / G;
    const float* qh = q + h * D;
    for (int64_t j = 0; j < n_ctx; ++j) {
      const float* kj = kcache + j * ks + g * D;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t d = 0; d < D; ++d) s += qh[d] * kj[d];
      scratch[j] = s * scale;
    }
    softmax_forward(scratch, scratch, 1, n_ctx);
    float* o = out + h * D;
    std::fill(o, o + D, 0.0f);
    for (int64_t j = 0; j < n_ctx; ++j) {
      const float p = scratch[j];
      const float* vj = vcache + j * ks + g * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] += p * vj[d];
    }
  }
}

}  // namespace moe::kernels
