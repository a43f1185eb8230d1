#pragma once
// SelfAttention::decode_batch against one forward_cached per sequence: three sequences with 1, 4
// and 9 positions cached, each cache twice (one per path), three steps; outputs and caches must
// agree, on one thread and on two. The layer's parameters must be set already.
#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/threading.h"
#include "nn/self_attention.h"

namespace moe::test {

inline void check_decode_batch(SelfAttention& a, uint64_t seed) {
  const int64_t d = a.d_model(), S = 3;
  const int saved = num_threads();
  for (int threads : {1, 2}) {
    SCOPED_TRACE(testing::Message() << "threads " << threads);
    set_num_threads(threads);
    Rng rng(seed);
    std::vector<LayerKVCache> one(S), many(S);
    std::vector<LayerKVCache*> ptrs;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t past = s == 0 ? 1 : s == 1 ? 4 : 9;
      Tensor p({past, d}), scratch({past, d});
      fill_normal(p, rng);
      for (auto* c : {&one[s], &many[s]}) {
        a.init_cache(*c, 16);
        a.forward_cached(scratch.data(), p.data(), past, *c);
      }
      ptrs.push_back(&many[s]);
    }
    for (int step = 0; step < 3; ++step) {
      Tensor x({S, d}), y1({S, d}), yb({S, d});
      fill_normal(x, rng);
      for (int64_t s = 0; s < S; ++s) a.forward_cached(y1.data() + s * d, x.data() + s * d, 1, one[s]);
      a.decode_batch(yb.data(), x.data(), ptrs);
      for (int64_t i = 0; i < S * d; ++i) ASSERT_NEAR(yb.data()[i], y1.data()[i], 1e-5f) << "step " << step << " at " << i;
      for (int64_t s = 0; s < S; ++s) {
        ASSERT_EQ(many[s].len, one[s].len);
        for (int64_t i = 0; i < one[s].len * (one[s].k.numel() / one[s].capacity()); ++i) {
          ASSERT_NEAR(many[s].k.data()[i], one[s].k.data()[i], 1e-5f) << "sequence " << s << " key " << i;
          ASSERT_NEAR(many[s].v.data()[i], one[s].v.data()[i], 1e-5f) << "sequence " << s << " value " << i;
        }
      }
    }
  }
  set_num_threads(saved);
}

}  // namespace moe::test
