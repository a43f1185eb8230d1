// Multi-head latent attention: against a per-token double-precision forward written from the
// definition (interleaved rotary pairs, no padding), against finite differences (with and without
// the q low-rank path, with YaRN), and the KV-cached path against the full forward.
#include "nn/mla_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <complex>

#include "../test_util.h"
#include "decode_batch_check.h"
#include "layer_grad_check.h"

namespace moe {
namespace {

MLAConfig config(int q_lora_rank, bool yarn) {
  MLAConfig c{.d_model = 12, .n_heads = 3, .q_lora_rank = q_lora_rank, .kv_lora_rank = 6, .qk_nope_head_dim = 4,
              .qk_rope_head_dim = 4, .v_head_dim = 10, .rope_theta = 100.0f, .rope_scaling = {}, .norm_eps = 1e-6f};
  if (yarn) {
    c.rope_scaling.yarn = true;
    c.rope_scaling.factor = 4.0f;
    c.rope_scaling.original_max_position_embeddings = 8;
    c.rope_scaling.mscale = 1.0f;
    c.rope_scaling.mscale_all_dim = 0.7f;
  }
  return c;
}

void fill(MLAttention& a, uint64_t seed) {
  Rng rng(seed);
  ParamList ps;
  a.params(ps);
  for (Param* p : ps) test::fill_normal(p->w, rng, 0.4f), p->g.zero();
}

std::vector<double> matvec(const Param& W, const std::vector<double>& x) {  // W [out, in] x
  const int64_t out = W.w.dim(0), in = W.w.dim(1);
  std::vector<double> y(out, 0.0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) y[o] += double(W.w[o * in + i]) * x[i];
  return y;
}
std::vector<double> rmsnorm(const std::vector<double>& x, const Param& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v / double(x.size());
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * w.w[int64_t(i)];
  return y;
}

// Rotates pairs (2i, 2i+1) of v[off, off+R) by pos * inv_freq[i], times scale (complex product).
void rotate_pairs(std::vector<double>& v, int off, int R, int pos, const std::vector<float>& inv, double scale) {
  for (int i = 0; i < R / 2; ++i) {
    std::complex<double> z(v[off + 2 * i], v[off + 2 * i + 1]);
    z *= std::polar(scale, double(pos) * double(inv[i]));
    v[off + 2 * i] = z.real(), v[off + 2 * i + 1] = z.imag();
  }
}

TEST(MLAttention, MatchesAPerTokenForwardFromTheDefinition) {
  for (int rq : {0, 5}) {
    SCOPED_TRACE(rq);
    const MLAConfig c = config(rq, true);
    MLAttention a("attn", c);
    fill(a, 11 + rq);
    const int T = 6, d = c.d_model, H = c.n_heads, nope = c.qk_nope_head_dim, R = c.qk_rope_head_dim,
              Dv = c.v_head_dim, rkv = c.kv_lora_rank;
    Rng rng(2);
    Tensor x({T, d}), y({T, d});
    test::fill_normal(x, rng);
    a.forward(y.data(), x.data(), 1, T);
    const std::vector<float> inv = c.rope_scaling.inv_freq(R, c.rope_theta);
    const double rs = c.rope_scaling.cos_sin_scale();
    const double scale = c.rope_scaling.softmax_scale() / std::sqrt(double(nope + R));
    std::vector<std::vector<double>> q(T), k(T), v(T);  // [H * (nope + R)], [H * (nope + R)], [H * Dv]
    for (int t = 0; t < T; ++t) {
      std::vector<double> xt(x.data() + t * d, x.data() + (t + 1) * d);
      q[t] = rq ? matvec(*a.q_b_proj, rmsnorm(matvec(*a.q_a_proj, xt), a.q_a_layernorm->weight, c.norm_eps))
                : matvec(*a.q_proj, xt);
      const std::vector<double> ckv = matvec(a.kv_a_proj_with_mqa, xt);
      std::vector<double> kpe(ckv.begin() + rkv, ckv.end());
      rotate_pairs(kpe, 0, R, t, inv, rs);
      const std::vector<double> kv =
          matvec(a.kv_b_proj, rmsnorm(std::vector<double>(ckv.begin(), ckv.begin() + rkv), a.kv_a_layernorm.weight, c.norm_eps));
      for (int h = 0; h < H; ++h) {
        rotate_pairs(q[t], h * (nope + R) + nope, R, t, inv, rs);
        for (int i = 0; i < nope; ++i) k[t].push_back(kv[h * (nope + Dv) + i]);
        for (int i = 0; i < R; ++i) k[t].push_back(kpe[i]);
        for (int i = 0; i < Dv; ++i) v[t].push_back(kv[h * (nope + Dv) + nope + i]);
      }
    }
    for (int t = 0; t < T; ++t) {
      std::vector<double> o(H * Dv, 0.0);
      for (int h = 0; h < H; ++h) {
        std::vector<double> w(t + 1);
        double mx = -1e300, z = 0;
        for (int u = 0; u <= t; ++u) {
          double s = 0;
          for (int i = 0; i < nope + R; ++i) s += q[t][h * (nope + R) + i] * k[u][h * (nope + R) + i];
          w[u] = s * scale;
          mx = std::max(mx, w[u]);
        }
        for (int u = 0; u <= t; ++u) z += w[u] = std::exp(w[u] - mx);
        for (int u = 0; u <= t; ++u)
          for (int i = 0; i < Dv; ++i) o[h * Dv + i] += w[u] / z * v[u][h * Dv + i];
      }
      const std::vector<double> yt = matvec(a.o_proj, o);
      for (int i = 0; i < d; ++i) EXPECT_NEAR(y[t * d + i], yt[i], 2e-5 * (1 + std::abs(yt[i]))) << t << "," << i;
    }
  }
}

TEST(MLAttention, GradientsMatchFiniteDifferences) {
  for (int rq : {0, 5})
    for (bool yarn : {false, true}) {
      SCOPED_TRACE(std::to_string(rq) + (yarn ? " yarn" : ""));
      MLAttention a("attn", config(rq, yarn));
      ParamList ps;
      a.params(ps);
      EXPECT_EQ(ps.size(), rq ? 7u : 5u);
      test::check(a, ps, [&](float* y, const float* x) { a.forward(y, x, 2, 4); }, 8, 12, 3);
    }
}

// A prefill of 3, then one token at a time, gives the full forward's outputs.
TEST(MLAttention, CachedForwardMatchesFullForward) {
  for (int rq : {0, 5}) {
    MLAttention a("attn", config(rq, true));
    fill(a, 4);
    const int64_t T = 7, d = 12;
    Rng rng(4);
    Tensor x({T, d}), y({T, d}), yc({T, d});
    test::fill_normal(x, rng);
    a.forward(y.data(), x.data(), 1, T);
    LayerKVCache cache;
    a.init_cache(cache, T);
    a.forward_cached(yc.data(), x.data(), 3, cache);
    for (int64_t t = 3; t < T; ++t) a.forward_cached(yc.data() + t * d, x.data() + t * d, 1, cache);
    for (int64_t i = 0; i < T * d; ++i) EXPECT_NEAR(y[i], yc[i], 1e-5) << i;
  }
}

// A decode step of several sequences at once equals one token at a time per sequence (the
// projections batched over the rows), with and without the q low-rank path.
TEST(MLAttention, DecodeBatchMatchesOneSequenceAtATime) {
  for (int rq : {0, 5}) {
    SCOPED_TRACE(rq);
    MLAttention a("attn", config(rq, true));
    fill(a, 14);
    test::check_decode_batch(a, 15);
  }
}

TEST(MLAttention, TensorNamesAndShapes) {
  MLAttention a("model.layers.0.self_attn", config(5, false));
  ParamList ps;
  a.params(ps);
  std::map<std::string, Shape> got;
  for (Param* p : ps) got[p->name] = p->w.shape();
  const std::string p = "model.layers.0.self_attn.";
  EXPECT_EQ(got[p + "q_a_proj.weight"], (Shape{5, 12}));
  EXPECT_EQ(got[p + "q_a_layernorm.weight"], (Shape{5}));
  EXPECT_EQ(got[p + "q_b_proj.weight"], (Shape{3 * 8, 5}));
  EXPECT_EQ(got[p + "kv_a_proj_with_mqa.weight"], (Shape{6 + 4, 12}));
  EXPECT_EQ(got[p + "kv_a_layernorm.weight"], (Shape{6}));
  EXPECT_EQ(got[p + "kv_b_proj.weight"], (Shape{3 * (4 + 10), 6}));
  EXPECT_EQ(got[p + "o_proj.weight"], (Shape{12, 3 * 10}));
}

// YaRN: with factor 1 it is plain RoPE; otherwise the frequencies blend the original ones (high
// frequencies) with ones divided by the factor (low), and the two mscales are the formula's.
TEST(RopeScaling, YarnFrequenciesAndScales) {
  RopeScaling s;
  s.yarn = true;
  s.factor = 1.0f;
  const std::vector<float> plain = RopeScaling{}.inv_freq(64, 10000.0f), same = s.inv_freq(64, 10000.0f);
  // The blend f (1 - m) + f m of two equal frequencies is f up to a few ulps (exact or not depending on
  // the compiler's contraction: the sanitizer build differs from Release in the last bit).
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(same[i], plain[i], 5e-7 * plain[i]) << i;
  EXPECT_EQ(s.cos_sin_scale(), 1.0f);
  s.factor = 40.0f;  // DeepSeek-V3's settings
  s.original_max_position_embeddings = 4096;
  s.mscale = 1.0f;
  s.mscale_all_dim = 1.0f;
  const std::vector<float> f = s.inv_freq(64, 10000.0f);
  // Correction range: dims floor(64 ln(4096 / (32 * 2 pi)) / (2 ln 10000)) = 10 to ceil(... 1 ...) = 23.
  for (int i = 0; i < 32; ++i) {
    const double extra = std::pow(10000.0, -2.0 * i / 64), ramp = std::clamp((i - 10.0) / 13.0, 0.0, 1.0);
    EXPECT_NEAR(f[i], extra / 40.0 * ramp + extra * (1 - ramp), 1e-6 * extra) << i;
  }
  EXPECT_FLOAT_EQ(s.cos_sin_scale(), 1.0f);
  const double m = 0.1 * std::log(40.0) + 1;
  EXPECT_NEAR(s.softmax_scale(), m * m, 1e-6);
  s.mscale_all_dim = 0.0f;
  EXPECT_EQ(s.softmax_scale(), 1.0f);
  EXPECT_NEAR(s.cos_sin_scale(), m, 1e-6);
}

TEST(RopeScaling, ConfigErrorsNameTheKey) {
  EXPECT_FALSE(RopeScaling::from_json(nullptr, "c.json").yarn);
  EXPECT_TRUE(RopeScaling::from_json({{"type", "yarn"}, {"factor", 4}}, "c.json").yarn);
  EXPECT_NE(test::error_of([] { RopeScaling::from_json({{"type", "linear"}, {"factor", 2}}, "c.json"); })
                .find("c.json: rope_scaling type \"linear\" is not implemented (supported: \"yarn\")"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { RopeScaling::from_json({{"type", "yarn"}, {"factor", "4"}}, "c.json"); })
                .find("c.json: rope_scaling 'factor' must be a number"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { RopeScaling::from_json({{"type", "yarn"}, {"attn_factor", 2}}, "c.json"); })
                .find("'attn_factor' is not implemented for yarn"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { RopeScaling::from_json(3, "c.json"); }).find("must be null or an object"),
            std::string::npos);
}

}  // namespace
}  // namespace moe
