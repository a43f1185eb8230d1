#pragma once
// --weights of the commands that run a model (generate, chat, eval, serve, experts, bench generate):
// "stored" keeps a checkpoint's bf16/f16 matrices as stored, memory-mapped; "f32" widens them.
#include <string>

#include <CLI/CLI.hpp>

#include "model/checkpoint.h"

namespace moe::cli {

void add_weights_option(CLI::App* cmd, std::string& value);
// The load options of a command that only runs the model.
LoadOptions run_load_options(const std::string& weights);

}  // namespace moe::cli
