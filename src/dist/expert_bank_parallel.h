#pragma once
// Experts sharded over the R ranks of an expert-parallel group (GShard / Switch / DeepSpeed-MoE
// style), behind the ExpertBank interface so that MoELayer does not change. Rank r holds experts
// [r E/R, (r+1) E/R) in a local bank. Forward: the rows each rank routed to rank r's experts go to
// r in one uneven all-to-all (per-expert counts exchanged first), r regroups them by expert (rows
// of rank 0 first, then rank 1, ...: with the batch split in rank order this is the single-process
// row order), runs its local bank's grouped GEMMs and sends the outputs back. Backward mirrors it
// with the same counts. Expert gradients stay on their owner.
#include <memory>

#include "core/tensor.h"
#include "dist/communicator.h"
#include "moe/expert_bank.h"
#include "moe/expert_bank_swiglu.h"

namespace moe::dist {

class ExpertParallelBank final : public ExpertBank {
 public:
  // local: this rank's E / R experts (experts rank E/R .. (rank+1) E/R - 1 of the group).
  ExpertParallelBank(Communicator group, int n_experts, int d_model, std::unique_ptr<ExpertBank> local);

  int n_experts() const override { return E_; }
  // xs, ys: [M, d] rows of every expert of the model, grouped by expert (offsets: [E+1]).
  void forward(float* ys, const float* xs, const std::vector<int64_t>& offsets) override;
  void backward(float* dxs, const float* dys) override;
  // The local experts' parameters, marked Param::sharded.
  void params(ParamList& out) override;
  // Layout-exact mode: the counts per block travel with the per-expert counts; the owner's blocks
  // of an expert are [source rank][block].
  void set_row_blocks(const std::vector<int64_t>& counts, int blocks) override {
    block_counts_ = counts, n_blocks_ = blocks;
  }

 private:
  // recv order [source rank][local expert] <-> grouped order [local expert][source rank]
  void build_permutation();
  void to_grouped(float* grouped, const float* received) const;
  void from_grouped(float* received, const float* grouped) const;

  Communicator group_;
  int E_, El_, R_;
  int64_t d_;
  std::unique_ptr<ExpertBank> local_;
  std::vector<int64_t> send_rows_, recv_rows_;  // [R]
  std::vector<int64_t> recv_counts_;            // [R, El]: rows from rank s for local expert e
  std::vector<int64_t> local_offsets_{0};       // [El+1]
  std::vector<int64_t> grouped_of_recv_;        // [M_local]: grouped row of each received row
  std::vector<int64_t> block_counts_;           // [E, n_blocks_] (layout-exact mode)
  int n_blocks_ = 0;
  Tensor recv_;        // [M_local, d] rows as received (and as sent back)
  Tensor gx_, gy_;     // [M_local, d] grouped inputs (kept for the local backward) and outputs
};

// The SwiGLU experts of one MoE layer (cfg.n_experts = E of them) as this rank holds them: all E
// for expert parallelism 1, else its E / R in an ExpertParallelBank over layout.experts. Throws
// moe::Error naming the layer (prefix) when R does not divide E.
std::unique_ptr<ExpertBank> make_swiglu_experts(const std::string& prefix, SwiGLUBankConfig cfg,
                                                const ParallelLayout& layout);

}  // namespace moe::dist
