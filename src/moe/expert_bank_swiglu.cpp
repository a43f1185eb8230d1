#include "moe/expert_bank_swiglu.h"

#include "core/exact_sums.h"
#include "moe/expert_schedule.h"

namespace moe {

SwiGLUExpertBank::SwiGLUExpertBank(const std::string& prefix, const SwiGLUBankConfig& c) : c_(c) {
  for (int e = 0; e < c.n_experts; ++e) {
    const std::string p = prefix + ".experts." + std::to_string(c.first_expert + e);
    w1.push_back(std::make_unique<Param>(p + "." + c.gate_name + ".weight", Shape{c.d_ff, c.d_model}));
    w3.push_back(std::make_unique<Param>(p + "." + c.up_name + ".weight", Shape{c.d_ff, c.d_model}));
    w2.push_back(std::make_unique<Param>(p + "." + c.down_name + ".weight", Shape{c.d_model, c.d_ff}));
    for (auto* v : {&w1, &w3, &w2}) v->back()->may_stay_16bit = true;  // read through weights()
  }
}

void SwiGLUExpertBank::params(ParamList& out) {
  for (int e = 0; e < c_.n_experts; ++e) out.insert(out.end(), {w1[e].get(), w2[e].get(), w3[e].get()});
}

SwiGLUWeights SwiGLUExpertBank::weights(int e) const {
  return {.w1 = w1[e]->matrix(), .w3 = w3[e]->matrix(), .w2 = w2[e]->matrix(), .d = c_.d_model, .f = c_.d_ff};
}


void SwiGLUExpertBank::forward(float* ys, const float* xs, const std::vector<int64_t>& offsets) {
  const int64_t M = offsets.back(), d = c_.d_model, F = c_.d_ff;
  xs_ = xs;
  offsets_ = offsets;
  g_.resize({M, F});
  u_.resize({M, F});
  h_.resize({M, F});
  // One GEMM group per expert over its contiguous rows; oneDNN threads each GEMM.
  for_each_expert(offsets, [&](int e) {
    const int64_t r0 = offsets[e], m = offsets[e + 1] - r0;
    swiglu_mlp_forward(ys + r0 * d, g_.data() + r0 * F, u_.data() + r0 * F, h_.data() + r0 * F,
                       xs + r0 * d, m, weights(e));
  });
}

void SwiGLUExpertBank::backward(float* dxs, const float* dys) {
  const int64_t d = c_.d_model, F = c_.d_ff;
  for_each_expert(offsets_, [&](int e) {
    const int64_t r0 = offsets_[e], m = offsets_[e + 1] - r0;
    SwiGLUGrads gr{.w1 = w1[e]->g.data(), .w3 = w3[e]->g.data(), .w2 = w2[e]->g.data()};
    // Layout-exact mode: the expert's weight gradients sum its rows block by block.
    const bool blocked = n_blocks_ > 0 && exact::enabled();
    exact::RowBlocks scope(blocked ? row_blocks_.data() + int64_t(e) * n_blocks_ : nullptr, blocked ? n_blocks_ : 0);
    swiglu_mlp_backward(dxs + r0 * d, gr, dys + r0 * d, xs_ + r0 * d, g_.data() + r0 * F,
                        u_.data() + r0 * F, h_.data() + r0 * F, m, weights(e));
  });
}

}  // namespace moe
