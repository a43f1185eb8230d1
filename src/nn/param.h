#pragma once
// A named trainable parameter: its value and the gradient that backward passes accumulate into.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm_16bit.h"

namespace moe {

// Sets a thread-local flag while alive and puts back the value it found, so scopes nest.
class ThreadFlagScope {
 public:
  ThreadFlagScope(const ThreadFlagScope&) = delete;
  ThreadFlagScope& operator=(const ThreadFlagScope&) = delete;

 protected:
  ThreadFlagScope(bool& flag, bool value) : flag_(flag), prev_(flag) { flag_ = value; }
  ~ThreadFlagScope() { flag_ = prev_; }

 private:
  bool& flag_;
  bool prev_;
};

// While one is alive (on this thread), new Params get no gradient storage: a model built only to
// run (generate, eval, chat, serve) then holds its weights once instead of twice.
class NoGradients : ThreadFlagScope {
 public:
  NoGradients();
};
bool params_get_gradients();  // false inside a NoGradients scope

// While one is alive (on this thread), new Params get their shape and no storage: load_pretrained
// then maps each 16-bit matrix in place or allocates and reads it, so a model loaded to run never
// holds an f32 copy of what it maps, not even for a moment.
class DeferredWeights : ThreadFlagScope {
 public:
  DeferredWeights();
};
bool params_deferred();  // true inside a DeferredWeights scope

struct Param {
  std::string name;  // checkpoint name, e.g. "model.layers.0.self_attn.q_proj.weight"
  Tensor w;
  Tensor g;           // same shape as w; accumulated (+=) by backward passes (row-sparse: see below)
  bool decay = true;  // weight decay applies (false for norms)
  // false: saved with the model but not updated by the optimizer (e.g. a router's load-balancing
  // bias, which has its own update rule).
  bool trainable = true;
  // Multiplies the optimizer's learning rate for this parameter (PEER's sub-keys: peer_key_lr_scale).
  float lr_scale = 1.0f;
  // Row-sparse gradient, for tables of which a step touches few rows (PEER's million experts): g is
  // then [rows.size(), cols], row r of g being the gradient of row rows[r] of w; rows is sorted and
  // unique. A dense gradient of such a table would cost O(table) per step to clear and to read.
  bool row_sparse = false;
  // Held by one rank of an expert-parallel group (an expert's weights): its gradient is summed over
  // the ranks holding the same shard, not over every rank, and it is saved in that rank's shard.
  bool sharded = false;
  std::vector<int64_t> rows;
  // Layout-exact mode (core/exact_sums.h): the gradient accumulates here, in double, and g is
  // rounded from it once per step (dist::all_reduce_gradients). Empty otherwise.
  std::vector<double> g64;
  // Set by layers that read this weight only through matrix() in their forward passes: a model
  // loaded to run may then keep it in the checkpoint's 16-bit dtype (load_pretrained).
  bool may_stay_16bit = false;
  // Kept 16-bit, in place in the memory-mapped checkpoint: w then has its shape and no storage.
  struct Half {
    const uint16_t* data = nullptr;
    DType dtype = DType::BF16;
    std::shared_ptr<const void> owner;  // keeps the mapping alive
  } half;

  Param() = default;
  Param(std::string n, Shape s, bool wd = true)
      : name(std::move(n)),
        w(params_deferred() ? Tensor::unallocated(s) : Tensor(s)),
        g(params_get_gradients() ? s : Shape{0}),
        decay(wd) {}
  kernels::MatrixRef matrix() const {
    return half.data ? kernels::MatrixRef(half.data, half.dtype) : kernels::MatrixRef(w.data());
  }
  bool has_gradient() const { return row_sparse || g.numel() == w.numel(); }

  int64_t cols() const { return w.ndim() == 0 ? 0 : w.numel() / w.dim(0); }
  void zero_grad() {
    if (row_sparse) {
      rows.clear();
      g.resize({0, cols()});
    } else {
      g.zero();
    }
    std::fill(g64.begin(), g64.end(), 0.0);
  }
  // Row-sparse only: adds gradient rows grad [new_rows.size(), cols] for the sorted unique rows
  // new_rows, merging with the rows already held.
  void add_row_grads(const std::vector<int64_t>& new_rows, const float* grad);
};

using ParamList = std::vector<Param*>;

}  // namespace moe
