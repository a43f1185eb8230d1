#pragma once
// Token embedding: out[i] = W[tok[i]].
#include "nn/param.h"

namespace moe {

class Embedding {
 public:
  Embedding(const std::string& name, int vocab, int dim) : weight(name, {vocab, dim}), vocab_(vocab), dim_(dim) {
    weight.may_stay_16bit = true;  // forward reads rows through matrix(); so does a tied LM head
  }
  Param weight;  // [vocab, dim]

  // out: [n, dim]; tokens: [n], each in [0, vocab)
  void forward(float* out, const int32_t* tokens, int64_t n) const;
  // weight.g[tok[i]] += dout[i]
  void backward(const float* dout, const int32_t* tokens, int64_t n);

 private:
  int vocab_, dim_;
};

}  // namespace moe
