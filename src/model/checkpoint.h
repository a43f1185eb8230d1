#pragma once
// Hugging Face-style checkpoint directories: config.json + model.safetensors (f32, Mixtral or
// Mistral tensor names). Loading accepts f32/bf16/f16 and sharded checkpoints written elsewhere.
#include <map>
#include <memory>
#include <string>

#include "model/decoder_lm.h"

namespace moe {

// Writes DIR/config.json and DIR/model.safetensors, each atomically (temp file, fsync, rename).
// metadata goes into the safetensors header's __metadata__ (e.g. the training step).
// A model whose experts are split over R > 1 ranks is saved by every rank of its world together
// (a collective call) in the Hugging Face sharded layout: model-<tag>-00001-of-<R+1>.safetensors
// holds the non-expert weights (world rank 0), shard s + 2 the experts of expert shard s (the
// ranks of the first data-parallel replica), and model.safetensors.index.json, written last and
// atomically by rank 0, commits the save. <tag> names the save (its step), so the files of the
// previous save stay whole until the index points away from them; then they are removed.
void save_pretrained(const std::string& dir, DecoderLM& model,
                     const std::map<std::string, std::string>& metadata = {});

// Reads DIR/config.json and the weights (one file or shards). Throws moe::Error naming the file and
// the tensor on a missing tensor, a wrong shape or a corrupt file. With a layout of expert
// parallelism R, each rank reads only its own experts (any checkpoint loads at any R).
struct LoadOptions {
  // false: for the commands that only run the model. The parameters get no gradient storage (half
  // the memory; backward() then throws), and with keep_16bit the bf16/f16 matrices stay as stored.
  bool for_training = true;
  // Inference only: the attention, expert and embedding matrices a checkpoint stores in bf16 or f16
  // are used in place in the memory-mapped file (Param::half; kernels/gemm_16bit.h): resident memory
  // is about the file size, pages are read as the model first touches them, and products run in
  // bf16. false widens every weight to f32 on load (f32 arithmetic, twice the memory).
  bool keep_16bit = true;
};
std::unique_ptr<DecoderLM> load_pretrained(const std::string& dir,
                                           std::map<std::string, std::string>* metadata = nullptr,
                                           const dist::ParallelLayout& layout = {}, const LoadOptions& options = {});

// The training step a checkpoint's metadata records (moe train writes "step"), or -1 when it
// records none. moe::Error naming dir when the value is not a step number.
int64_t checkpoint_step(const std::map<std::string, std::string>& metadata, const std::string& dir);

}  // namespace moe
