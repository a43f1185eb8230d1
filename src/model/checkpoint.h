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
void save_pretrained(const std::string& dir, DecoderLM& model,
                     const std::map<std::string, std::string>& metadata = {});

// Reads DIR/config.json and the weights. Throws moe::Error naming the file and the tensor on a
// missing tensor, a wrong shape or a corrupt file.
std::unique_ptr<DecoderLM> load_pretrained(const std::string& dir,
                                           std::map<std::string, std::string>* metadata = nullptr);

}  // namespace moe
