// Grouped-query attention (causal, and bidirectional for encoders) against naive double-precision references (forward and
// backward), central finite differences, causality, GQA, the decode and prefill-after-a-cache
// kernels against the reference, and determinism.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "../test_util.h"
#include "core/threading.h"

namespace moe::kernels {
namespace {

struct Shape {
  int64_t B, T, Hq, Hkv, D;
  int64_t nq() const { return B * T * Hq * D; }
  int64_t nkv() const { return B * T * Hkv * D; }
  int64_t np() const { return B * Hq * T * T; }
};

// Shapes: a single position, MHA, GQA, MQA with many (b, head) units, and sequences longer than
// the kernel's 64-row blocks (70: a partial second block; 130: three blocks).
const std::vector<Shape> kShapes = {{1, 1, 1, 1, 4},  {2, 7, 2, 2, 6},  {2, 9, 4, 2, 8},
                                    {3, 5, 4, 1, 4},  {1, 70, 4, 2, 8}, {1, 130, 2, 1, 16}};

struct Inputs {
  std::vector<float> q, k, v;  // [B, T, Hq, D], [B, T, Hkv, D] x2
};

Inputs random_inputs(const Shape& s, Rng& rng) {
  Inputs in{std::vector<float>(s.nq()), std::vector<float>(s.nkv()), std::vector<float>(s.nkv())};
  test::fill_normal(in.q.data(), s.nq(), rng);
  test::fill_normal(in.k.data(), s.nkv(), rng);
  test::fill_normal(in.v.data(), s.nkv(), rng);
  return in;
}

struct Ref {
  std::vector<double> out, probs, dq, dk, dv;
};

// Naive GQA in double (causal, or bidirectional): forward, and the backward of loss = sum(out * dout).
Ref attention_ref(const Shape& s, const Inputs& in, const std::vector<float>* dout, bool causal = true) {
  const auto [B, T, Hq, Hkv, D] = s;
  const int64_t G = Hq / Hkv;
  const double scale = 1.0 / std::sqrt(double(D));
  Ref r{std::vector<double>(s.nq(), 0.0), std::vector<double>(s.np(), 0.0),
        std::vector<double>(s.nq(), 0.0), std::vector<double>(s.nkv(), 0.0),
        std::vector<double>(s.nkv(), 0.0)};
  auto Q = [&](int64_t b, int64_t t, int64_t h, int64_t d) { return double(in.q[((b * T + t) * Hq + h) * D + d]); };
  auto K = [&](int64_t b, int64_t t, int64_t g, int64_t d) { return double(in.k[((b * T + t) * Hkv + g) * D + d]); };
  auto V = [&](int64_t b, int64_t t, int64_t g, int64_t d) { return double(in.v[((b * T + t) * Hkv + g) * D + d]); };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / G;
      double* P = &r.probs[(b * Hq + h) * T * T];
      for (int64_t i = 0; i < T; ++i) {
        const int64_t lim = causal ? i + 1 : T;
        double mx = -std::numeric_limits<double>::infinity(), z = 0;
        for (int64_t j = 0; j < lim; ++j) {
          double a = 0;
          for (int64_t d = 0; d < D; ++d) a += Q(b, i, h, d) * K(b, j, g, d);
          P[i * T + j] = a * scale;
          mx = std::max(mx, P[i * T + j]);
        }
        for (int64_t j = 0; j < lim; ++j) z += P[i * T + j] = std::exp(P[i * T + j] - mx);
        for (int64_t j = 0; j < lim; ++j) P[i * T + j] /= z;
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < lim; ++j) acc += P[i * T + j] * V(b, j, g, d);
          r.out[((b * T + i) * Hq + h) * D + d] = acc;
        }
      }
      if (!dout) continue;
      auto dO = [&](int64_t t, int64_t d) { return double((*dout)[((b * T + t) * Hq + h) * D + d]); };
      for (int64_t i = 0; i < T; ++i) {
        const int64_t lim = causal ? i + 1 : T;
        std::vector<double> dS(lim);
        double rowsum = 0;
        for (int64_t j = 0; j < lim; ++j) {
          double dp = 0;
          for (int64_t d = 0; d < D; ++d) dp += dO(i, d) * V(b, j, g, d);
          dS[j] = dp;
          rowsum += dp * P[i * T + j];
        }
        for (int64_t j = 0; j < lim; ++j) {
          dS[j] = P[i * T + j] * (dS[j] - rowsum);
          for (int64_t d = 0; d < D; ++d) {
            r.dq[((b * T + i) * Hq + h) * D + d] += dS[j] * K(b, j, g, d) * scale;
            r.dk[((b * T + j) * Hkv + g) * D + d] += dS[j] * Q(b, i, h, d) * scale;
            r.dv[((b * T + j) * Hkv + g) * D + d] += P[i * T + j] * dO(i, d);
          }
        }
      }
    }
  return r;
}

// Forward: out within 1e-5 absolute (unit-normal inputs: |out| <~ 3), probs within 1e-6; every
// probs entry above the diagonal is exactly 0 (probs starts as NaN: all of it is written) and each
// row sums to 1 within 1e-5.
TEST(Attention, ForwardMatchesReferenceIncludingGQA) {
  Rng rng(81);
  for (const Shape& s : kShapes) {
    const Inputs in = random_inputs(s, rng);
    std::vector<float> out(s.nq()), probs(s.np(), std::numeric_limits<float>::quiet_NaN());
    attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T,
                      s.Hq, s.Hkv, s.D);
    const Ref ref = attention_ref(s, in, nullptr);
    for (int64_t i = 0; i < s.nq(); ++i) ASSERT_NEAR(out[i], ref.out[i], 1e-5) << "T=" << s.T << " out " << i;
    for (int64_t bh = 0; bh < s.B * s.Hq; ++bh)
      for (int64_t i = 0; i < s.T; ++i) {
        double sum = 0;
        for (int64_t j = 0; j < s.T; ++j) {
          const int64_t e = (bh * s.T + i) * s.T + j;
          if (j > i)
            ASSERT_EQ(probs[e], 0.0f) << "above the diagonal, T=" << s.T << " " << i << "," << j;
          else
            ASSERT_NEAR(probs[e], ref.probs[e], 1e-6) << "T=" << s.T << " " << i << "," << j;
          sum += probs[e];
        }
        ASSERT_NEAR(sum, 1.0, 1e-5);
      }
  }
}

// GQA is MHA with each kv head repeated for its query heads: same output (1e-6), and the GQA
// dk/dv are the sums of the repeated heads' gradients (1e-5).
TEST(Attention, GQAEqualsMHAWithRepeatedKVHeads) {
  Rng rng(82);
  const Shape gqa{2, 11, 4, 2, 8}, mha{2, 11, 4, 4, 8};
  const Inputs in = random_inputs(gqa, rng);
  Inputs rep{in.q, std::vector<float>(mha.nkv()), std::vector<float>(mha.nkv())};
  for (int64_t bt = 0; bt < gqa.B * gqa.T; ++bt)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t d = 0; d < 8; ++d) {
        rep.k[(bt * 4 + h) * 8 + d] = in.k[(bt * 2 + h / 2) * 8 + d];
        rep.v[(bt * 4 + h) * 8 + d] = in.v[(bt * 2 + h / 2) * 8 + d];
      }
  std::vector<float> dout(gqa.nq());
  test::fill_normal(dout.data(), gqa.nq(), rng);
  std::vector<float> o1(gqa.nq()), o2(gqa.nq()), p1(gqa.np()), p2(gqa.np());
  attention_forward(o1.data(), p1.data(), in.q.data(), in.k.data(), in.v.data(), 2, 11, 4, 2, 8);
  attention_forward(o2.data(), p2.data(), rep.q.data(), rep.k.data(), rep.v.data(), 2, 11, 4, 4, 8);
  for (int64_t i = 0; i < gqa.nq(); ++i) ASSERT_NEAR(o1[i], o2[i], 1e-6) << i;
  std::vector<float> dq1(gqa.nq()), dk1(gqa.nkv()), dv1(gqa.nkv()), dq2(mha.nq()), dk2(mha.nkv()), dv2(mha.nkv());
  attention_backward(dq1.data(), dk1.data(), dv1.data(), dout.data(), p1.data(), in.q.data(), in.k.data(),
                     in.v.data(), 2, 11, 4, 2, 8);
  attention_backward(dq2.data(), dk2.data(), dv2.data(), dout.data(), p2.data(), rep.q.data(), rep.k.data(),
                     rep.v.data(), 2, 11, 4, 4, 8);
  for (int64_t i = 0; i < gqa.nq(); ++i) ASSERT_NEAR(dq1[i], dq2[i], 1e-5) << i;
  for (int64_t bt = 0; bt < gqa.B * gqa.T; ++bt)
    for (int64_t g = 0; g < 2; ++g)
      for (int64_t d = 0; d < 8; ++d) {
        const int64_t e = (bt * 2 + g) * 8 + d, e0 = (bt * 4 + 2 * g) * 8 + d, e1 = e0 + 8;
        ASSERT_NEAR(dk1[e], dk2[e0] + dk2[e1], 1e-5) << e;
        ASSERT_NEAR(dv1[e], dv2[e0] + dv2[e1], 1e-5) << e;
      }
}

// Changing the key, value or query of a future position leaves every earlier output bit-identical
// (masked scores get exactly zero probability).
TEST(Attention, IsCausal) {
  Rng rng(83);
  const Shape s{2, 70, 4, 2, 8};
  const Inputs in = random_inputs(s, rng);
  std::vector<float> out(s.nq()), probs(s.np());
  attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D);
  for (int64_t t0 : {int64_t(3), int64_t(40), s.T - 1}) {
    Inputs ch = in;
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t e = 0; e < s.Hkv * s.D; ++e) {
        ch.k[(b * s.T + t0) * s.Hkv * s.D + e] += 1.5f;
        ch.v[(b * s.T + t0) * s.Hkv * s.D + e] -= 2.0f;
      }
      for (int64_t e = 0; e < s.Hq * s.D; ++e) ch.q[(b * s.T + t0) * s.Hq * s.D + e] *= -3.0f;
    }
    std::vector<float> out2(s.nq());
    attention_forward(out2.data(), probs.data(), ch.q.data(), ch.k.data(), ch.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D);
    bool later_changed = false;
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = 0; t < s.T; ++t)
        for (int64_t e = 0; e < s.Hq * s.D; ++e) {
          const int64_t i = (b * s.T + t) * s.Hq * s.D + e;
          if (t < t0)
            ASSERT_EQ(out2[i], out[i]) << "t0=" << t0 << " changed output at t=" << t;
          else
            later_changed |= out2[i] != out[i];
        }
    EXPECT_TRUE(later_changed) << t0;
  }
}

// Backward against the double reference: dq, dk, dv within 2e-5 * (1 + |ref|) (float GEMMs and
// softmax over <= 130 keys, unit-normal inputs). dq/dk/dv start as NaN: they are assigned.
TEST(Attention, BackwardMatchesReference) {
  Rng rng(84);
  for (const Shape& s : kShapes) {
    const Inputs in = random_inputs(s, rng);
    std::vector<float> dout(s.nq()), out(s.nq()), probs(s.np());
    test::fill_normal(dout.data(), s.nq(), rng);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> dq(s.nq(), nan), dk(s.nkv(), nan), dv(s.nkv(), nan);
    attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D);
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), probs.data(), in.q.data(), in.k.data(),
                       in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D);
    const Ref ref = attention_ref(s, in, &dout);
    for (int64_t i = 0; i < s.nq(); ++i)
      ASSERT_NEAR(dq[i], ref.dq[i], 2e-5 * (1 + std::abs(ref.dq[i]))) << "T=" << s.T << " dq " << i;
    for (int64_t i = 0; i < s.nkv(); ++i) {
      ASSERT_NEAR(dk[i], ref.dk[i], 2e-5 * (1 + std::abs(ref.dk[i]))) << "T=" << s.T << " dk " << i;
      ASSERT_NEAR(dv[i], ref.dv[i], 2e-5 * (1 + std::abs(ref.dv[i]))) << "T=" << s.T << " dv " << i;
    }
  }
}

// Without the mask (encoders): every row is a softmax over all T keys; forward and backward
// against the double reference at the tolerances above.
TEST(Attention, BidirectionalMatchesReference) {
  Rng rng(86);
  for (const Shape& s : kShapes) {
    const Inputs in = random_inputs(s, rng);
    std::vector<float> dout(s.nq()), out(s.nq()), probs(s.np(), std::numeric_limits<float>::quiet_NaN());
    test::fill_normal(dout.data(), s.nq(), rng);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> dq(s.nq(), nan), dk(s.nkv(), nan), dv(s.nkv(), nan);
    attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D, false);
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), probs.data(), in.q.data(), in.k.data(),
                       in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D, false);
    const Ref ref = attention_ref(s, in, &dout, false);
    for (int64_t i = 0; i < s.nq(); ++i) ASSERT_NEAR(out[i], ref.out[i], 1e-5) << "T=" << s.T << " out " << i;
    for (int64_t i = 0; i < s.np(); ++i) ASSERT_NEAR(probs[i], ref.probs[i], 1e-6) << "T=" << s.T << " probs " << i;
    for (int64_t i = 0; i < s.nq(); ++i)
      ASSERT_NEAR(dq[i], ref.dq[i], 2e-5 * (1 + std::abs(ref.dq[i]))) << "T=" << s.T << " dq " << i;
    for (int64_t i = 0; i < s.nkv(); ++i) {
      ASSERT_NEAR(dk[i], ref.dk[i], 2e-5 * (1 + std::abs(ref.dk[i]))) << "T=" << s.T << " dk " << i;
      ASSERT_NEAR(dv[i], ref.dv[i], 2e-5 * (1 + std::abs(ref.dv[i]))) << "T=" << s.T << " dv " << i;
    }
    if (s.T > 1) {  // a future key does matter
      ASSERT_GT(probs[1], 0.0f);
    }
  }
}

// Central differences of loss = sum(out * r) through the float32 forward, GQA (Hq=4, Hkv=2),
// every element of q, k, v: eps 1e-3, |analytic - numeric| <= 2e-3 + 1e-2 * max(|a|, |n|).
TEST(Attention, BackwardMatchesFiniteDifferences) {
  Rng rng(85);
  const Shape s{2, 5, 4, 2, 4};
  Inputs in = random_inputs(s, rng);
  std::vector<float> out(s.nq()), probs(s.np()), r(s.nq()), dq(s.nq()), dk(s.nkv()), dv(s.nkv());
  test::fill_normal(r.data(), s.nq(), rng);
  auto loss = [&] {
    attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D);
    double l = 0;
    for (int64_t i = 0; i < s.nq(); ++i) l += double(out[i]) * r[i];
    return l;
  };
  loss();
  attention_backward(dq.data(), dk.data(), dv.data(), r.data(), probs.data(), in.q.data(), in.k.data(),
                     in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D);
  for (auto [x, g, name] : {std::tuple{&in.q, &dq, "dq"}, {&in.k, &dk, "dk"}, {&in.v, &dv, "dv"}})
    for (size_t i = 0; i < x->size(); ++i)
      EXPECT_TRUE(test::close((*g)[i], test::finite_diff(&(*x)[i], loss, 1e-3f), 1e-2, 2e-3)) << name << "[" << i << "]";
}

// The decode kernel over a cache of the first t+1 positions equals row t of the full forward
// (1e-5 absolute; both are float, summed in different orders).
TEST(Attention, DecodeEqualsLastRowOfForward) {
  Rng rng(86);
  for (auto [T, Hq, Hkv, D] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 4, 2, 8}, {9, 4, 2, 8},
                               {70, 4, 2, 8}, {9, 3, 1, 16}}) {
    const Shape s{1, T, Hq, Hkv, D};
    const Inputs in = random_inputs(s, rng);
    std::vector<float> out(s.nq()), probs(s.np()), dec(Hq * D), scratch(T);
    attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), 1, T, Hq, Hkv, D);
    for (int64_t t = 0; t < T; ++t) {
      attention_decode(dec.data(), in.q.data() + t * Hq * D, in.k.data(), in.v.data(), t + 1, Hq, Hkv, D,
                       scratch.data());
      for (int64_t i = 0; i < Hq * D; ++i)
        ASSERT_NEAR(dec[i], out[t * Hq * D + i], 1e-5) << "T=" << T << " t=" << t << " " << i;
    }
  }
}

// A prefill of the last n positions after `past` cached ones equals the naive reference's last n
// rows: within a 64-row block, across blocks (70, 130 rows), after no cache (past 0, a fresh
// prompt) and after one longer than the prompt; on one thread and on three.
TEST(Attention, PrefillAfterACacheMatchesReference) {
  Rng rng(88);
  const int saved = num_threads();
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    for (auto [past, n, Hq, Hkv, D] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{0, 1, 4, 2, 8},
                                       {0, 9, 4, 2, 8}, {5, 1, 4, 2, 8}, {5, 9, 4, 2, 8}, {0, 70, 4, 2, 8},
                                       {100, 70, 3, 1, 16}, {7, 130, 2, 2, 6}}) {
      const Shape s{1, past + n, Hq, Hkv, D};
      const Inputs in = random_inputs(s, rng);
      const Ref ref = attention_ref(s, in, nullptr);
      std::vector<float> out(n * Hq * D);
      attention_prefill(out.data(), in.q.data() + past * Hq * D, in.k.data(), in.v.data(), n, past, Hq, Hkv, D);
      for (int64_t i = 0; i < n * Hq * D; ++i)
        ASSERT_NEAR(out[i], ref.out[past * Hq * D + i], 1e-5)
            << "threads " << threads << " past " << past << " n " << n << " at " << i;
    }
  }
  set_num_threads(saved);
}

// Repeated runs are bit-identical; one thread agrees with three within 1e-5 (GEMM
// blocking may reassociate sums).
TEST(Attention, DeterministicAndThreadCountIndependent) {
  Rng rng(87);
  const Shape s{2, 70, 4, 2, 8};
  const Inputs in = random_inputs(s, rng);
  std::vector<float> dout(s.nq());
  test::fill_normal(dout.data(), s.nq(), rng);
  auto run = [&] {
    std::vector<float> out(s.nq()), probs(s.np()), dq(s.nq()), dk(s.nkv()), dv(s.nkv());
    attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D);
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), probs.data(), in.q.data(), in.k.data(),
                       in.v.data(), s.B, s.T, s.Hq, s.Hkv, s.D);
    out.insert(out.end(), dq.begin(), dq.end());
    out.insert(out.end(), dk.begin(), dk.end());
    out.insert(out.end(), dv.begin(), dv.end());
    return out;
  };
  const int saved = num_threads();
  set_num_threads(3);  // not the default: ctest runs every test on one thread
  const auto a = run(), b = run();
  EXPECT_EQ(a, b);
  set_num_threads(1);
  const auto c = run();
  set_num_threads(saved);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], c[i], 1e-5 * (1 + std::abs(a[i]))) << i;
}

}  // namespace
}  // namespace moe::kernels
