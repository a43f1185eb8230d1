// PEER never materialises a [tokens, heads, k, d] tensor: the peak resident memory of a forward
// and backward grows by far less than such a tensor's size. Its own process (one test per binary),
// so the peak is this layer's.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "moe/peer_layer.h"
#include "../test_util.h"

namespace moe {
namespace {

int64_t status_kb(const std::string& key) {  // VmRSS / VmHWM from /proc/self/status
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  return -1;
}

TEST(PEERMemory, NoTokensHeadsKDTensor) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine and redzones make resident memory measure the allocator, not the layer.
  GTEST_SKIP() << "peak memory is not meaningful under AddressSanitizer";
#endif
  const PEERConfig c{.d_model = 512, .n_experts = 4096, .heads = 8, .top_k = 16, .key_dim = 64};
  const int64_t n = 1024;
  const double forbidden = double(n) * c.heads * c.top_k * c.d_model * sizeof(float);  // 268 MB
  PEERLayer layer("peer", c);
  Rng rng(1);
  ParamList ps;
  layer.params(ps);
  for (Param* p : ps) test::fill_normal(p->w, rng, 0.1f);
  Tensor x({n, c.d_model}), y({n, c.d_model}), dx({n, c.d_model});
  test::fill_normal(x, rng);
  const int64_t before = status_kb("VmRSS");
  ASSERT_GT(before, 0);
  for (int step = 0; step < 2; ++step) {  // two training steps, each clearing its gradients first
    for (Param* p : ps) p->zero_grad();
    layer.forward(y.data(), x.data(), n);
    layer.backward(dx.data(), y.data());
  }
  const double grown = double(status_kb("VmHWM") - before) * 1024.0;
  EXPECT_LT(grown, forbidden / 4) << "peak grew by " << grown / 1e6 << " MB; [n, h, k, d] is " << forbidden / 1e6 << " MB";
}

}  // namespace
}  // namespace moe
