#include "dist/expert_bank_parallel.h"

#include <cstring>

namespace moe::dist {

ExpertParallelBank::ExpertParallelBank(Communicator group, int n_experts, int d_model, std::unique_ptr<ExpertBank> local)
    : group_(std::move(group)), E_(n_experts), R_(group_.size()), d_(d_model), local_(std::move(local)) {
  if (n_experts % R_ != 0)
    throw Error("[dist] --expert-parallel " + std::to_string(R_) + " does not divide the " + std::to_string(n_experts) +
                " experts of a MoE layer");
  El_ = n_experts / R_;
  MOE_ASSERT(local_ && local_->n_experts() == El_);
}

void ExpertParallelBank::params(ParamList& out) {
  const size_t from = out.size();
  local_->params(out);
  for (size_t i = from; i < out.size(); ++i) out[i]->sharded = R_ > 1;
}

void ExpertParallelBank::build_permutation() {
  // local_offsets_[e]: first grouped row of local expert e; within it, source ranks in order.
  local_offsets_.assign(El_ + 1, 0);
  for (int e = 0; e < El_; ++e) {
    int64_t n = 0;
    for (int s = 0; s < R_; ++s) n += recv_counts_[s * El_ + e];
    local_offsets_[e + 1] = local_offsets_[e] + n;
  }
  grouped_of_recv_.resize(local_offsets_.back());
  std::vector<int64_t> next(local_offsets_.begin(), local_offsets_.end() - 1);
  int64_t r = 0;
  for (int s = 0; s < R_; ++s)
    for (int e = 0; e < El_; ++e)
      for (int64_t i = 0; i < recv_counts_[s * El_ + e]; ++i) grouped_of_recv_[r++] = next[e]++;
}

void ExpertParallelBank::to_grouped(float* grouped, const float* received) const {
  const int64_t M = int64_t(grouped_of_recv_.size());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < M; ++r)
    std::memcpy(grouped + grouped_of_recv_[r] * d_, received + r * d_, size_t(d_) * sizeof(float));
}

void ExpertParallelBank::from_grouped(float* received, const float* grouped) const {
  const int64_t M = int64_t(grouped_of_recv_.size());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < M; ++r)
    std::memcpy(received + r * d_, grouped + grouped_of_recv_[r] * d_, size_t(d_) * sizeof(float));
}

void ExpertParallelBank::forward(float* ys, const float* xs, const std::vector<int64_t>& offsets) {
  MOE_ASSERT(int(offsets.size()) == E_ + 1);
  if (R_ == 1) {
    if (n_blocks_ > 0) local_->set_row_blocks(block_counts_, n_blocks_);
    local_->forward(ys, xs, offsets);
    return;
  }
  // Per-expert counts to each owner; the rows for rank r's experts are contiguous in xs.
  std::vector<int64_t> counts(E_);
  for (int e = 0; e < E_; ++e) counts[e] = offsets[e + 1] - offsets[e];
  if (n_blocks_ > 0) {
    // Layout-exact mode: per-block counts instead ([E, nb], so rank r's block of them is contiguous).
    const int nb = n_blocks_;
    MOE_ASSERT(int64_t(block_counts_.size()) == int64_t(E_) * nb);
    const std::vector<int64_t> rb = group_.all_to_all_counts(block_counts_);  // [R, El, nb]
    recv_counts_.assign(size_t(R_) * El_, 0);
    std::vector<int64_t> local(size_t(El_) * R_ * nb);  // [El, R, nb]
    for (int s = 0; s < R_; ++s)
      for (int e = 0; e < El_; ++e)
        for (int b = 0; b < nb; ++b) {
          const int64_t c = rb[(size_t(s) * El_ + e) * nb + b];
          recv_counts_[size_t(s) * El_ + e] += c;
          local[(size_t(e) * R_ + s) * nb + b] = c;
        }
    local_->set_row_blocks(local, R_ * nb);
  } else {
    recv_counts_ = group_.all_to_all_counts(counts);
  }
  send_rows_.assign(R_, 0);
  recv_rows_.assign(R_, 0);
  for (int r = 0; r < R_; ++r)
    for (int e = 0; e < El_; ++e) send_rows_[r] += counts[r * El_ + e], recv_rows_[r] += recv_counts_[r * El_ + e];
  build_permutation();
  const int64_t M = local_offsets_.back();
  recv_.resize({M, d_});
  gx_.resize({M, d_});
  gy_.resize({M, d_});
  group_.all_to_all_rows(xs, send_rows_, recv_.data(), recv_rows_, d_);
  to_grouped(gx_.data(), recv_.data());
  local_->forward(gy_.data(), gx_.data(), local_offsets_);
  from_grouped(recv_.data(), gy_.data());
  group_.all_to_all_rows(recv_.data(), recv_rows_, ys, send_rows_, d_);
}

void ExpertParallelBank::backward(float* dxs, const float* dys) {
  if (R_ == 1) {
    local_->backward(dxs, dys);
    return;
  }
  // Output gradients travel like the inputs did; the input gradients come back like the outputs.
  group_.all_to_all_rows(dys, send_rows_, recv_.data(), recv_rows_, d_);
  to_grouped(gy_.data(), recv_.data());
  local_->backward(gx_.data(), gy_.data());  // dxs over xs, as the ExpertBank contract allows
  from_grouped(recv_.data(), gx_.data());
  group_.all_to_all_rows(recv_.data(), recv_rows_, dxs, send_rows_, d_);
}

std::unique_ptr<ExpertBank> make_swiglu_experts(const std::string& prefix, SwiGLUBankConfig cfg,
                                                const ParallelLayout& layout) {
  const int R = layout.expert_parallel, E = cfg.n_experts;
  if (E % R != 0)
    throw Error("[dist] --expert-parallel " + std::to_string(R) + " does not divide the " + std::to_string(E) +
                " experts of " + prefix);
  cfg.n_experts = E / R;
  cfg.first_expert = layout.shard() * (E / R);
  auto local = std::make_unique<SwiGLUExpertBank>(prefix, cfg);
  if (R == 1) return local;
  return std::make_unique<ExpertParallelBank>(layout.experts, E, cfg.d_model, std::move(local));
}

}  // namespace moe::dist
