#pragma once
// Layout-exact sums (opt-in: `moe train --exact-blocks G`). A run then gives the same losses at any
// number of ranks W that divides G, to the last bit in practice, at some cost in speed.
//
// Float sums depend on their order, so a gradient summed over a rank's tokens and then over ranks
// differs in its last bits from the same gradient summed over the whole batch in one process, and
// once two experts' scores are that close the routing flips (docs/distributed.md). In this mode:
//  - every sum over the batch's rows is cut into G fixed blocks (block b: sequences b B/G ..
//    (b+1) B/G - 1, so a rank holds whole blocks); a weight gradient is one GEMM per block, the
//    same call in every layout;
//  - the blocks' partial gradients, and every other per-row contribution (norm weights, embedding
//    rows), are added in double precision and summed over ranks in double; the float gradient is
//    rounded from that once. Double sums of the same terms in another order differ by ~1e-16
//    relative, which survives the rounding to float only in rare ties;
//  - products whose rows are independent (x W^T, dy W) run in fixed chunks of rows, so that a
//    row's result does not depend on how many rows the GEMM had (oneDNN picks its kernels by size).
// Shared by kernels/ and nn/, hence in core/.
#include <cstdint>
#include <vector>

namespace moe::exact {

// Off by default. blocks: G; world: the data-parallel ranks W (G % W == 0, checked by the caller).
void configure(int blocks, int world);
bool enabled();
int blocks_per_rank();  // G / W

// How the rows of the sum being computed split into blocks (row counts, in order). A scope sets
// them for the calling thread (the expert banks: an expert's rows per block); without one, a sum
// over n rows is cut into blocks_per_rank() equal blocks (n must divide).
class RowBlocks {
 public:
  explicit RowBlocks(const int64_t* counts, int n);
  ~RowBlocks();
  RowBlocks(const RowBlocks&) = delete;
  RowBlocks& operator=(const RowBlocks&) = delete;

 private:
  const int64_t* prev_counts_;
  int prev_n_;
};
// Row counts of the blocks of a sum over n rows (from the scope, else equal blocks).
std::vector<int64_t> row_blocks(int64_t n);

// The double accumulator of a float gradient buffer (registered by the trainer per parameter).
void register_accumulator(const float* grad, double* acc);
void clear_accumulators();
double* accumulator(const float* grad);  // nullptr: none registered

}  // namespace moe::exact
