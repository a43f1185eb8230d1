#pragma once
// Data-parallel gradients: after backward, each rank holds its share of the gradient of the whole
// batch's objective (DecoderLM::set_data_group). Summing the shares gives the gradient one process
// would compute. Non-expert weights are replicated on every rank and sum over the world; an
// expert's weights live on one rank per replica (Param::sharded) and sum over the ranks that hold
// the same shard.
#include "dist/communicator.h"
#include "nn/param.h"

namespace moe::dist {

// Sums every trainable gradient over its group (one packed, deterministic all-reduce per group).
// Row-sparse gradients (PEER) are gathered and merged in rank order.
void all_reduce_gradients(const ParamList& params, const ParallelLayout& layout);

// The L2 norm of the whole model's gradient (the sharded experts' squares summed over the expert
// group), and the scale that clips it to max_norm, applied on every rank alike. Returns the norm.
double clip_grad_norm(const ParamList& params, double max_norm, const ParallelLayout& layout);

}  // namespace moe::dist
