#include "core/exact_sums.h"

#include <atomic>
#include <mutex>
#include <unordered_map>

#include "core/error.h"

namespace moe::exact {

namespace {

std::atomic<int> g_blocks{0}, g_per_rank{1};
thread_local const int64_t* t_counts = nullptr;
thread_local int t_n = 0;

// Registered once at set-up, then only read (from any thread).
std::unordered_map<const float*, double*>& registry() {
  static std::unordered_map<const float*, double*> m;
  return m;
}

}  // namespace

void configure(int blocks, int world) {
  MOE_ASSERT(blocks >= 0 && world >= 1 && (blocks == 0 || blocks % world == 0));
  g_blocks = blocks;
  g_per_rank = blocks ? blocks / world : 1;
}

bool enabled() { return g_blocks.load(std::memory_order_relaxed) > 0; }
int blocks_per_rank() { return g_per_rank.load(std::memory_order_relaxed); }

RowBlocks::RowBlocks(const int64_t* counts, int n) : prev_counts_(t_counts), prev_n_(t_n) {
  t_counts = counts;
  t_n = n;
}
RowBlocks::~RowBlocks() {
  t_counts = prev_counts_;
  t_n = prev_n_;
}

std::vector<int64_t> row_blocks(int64_t n) {
  if (t_counts) {
    std::vector<int64_t> c(t_counts, t_counts + t_n);
    int64_t s = 0;
    for (int64_t x : c) s += x;
    MOE_ASSERT(s == n);
    return c;
  }
  const int b = blocks_per_rank();
  MOE_ASSERT(n % b == 0);
  return std::vector<int64_t>(size_t(b), n / b);
}

void register_accumulator(const float* grad, double* acc) { registry()[grad] = acc; }
void clear_accumulators() { registry().clear(); }
double* accumulator(const float* grad) {
  auto it = registry().find(grad);
  return it == registry().end() ? nullptr : it->second;
}

}  // namespace moe::exact
