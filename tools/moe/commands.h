#pragma once
// Each subcommand registers its flags on the CLI11 app and returns the function that runs it.
#include <functional>

#include <CLI/CLI.hpp>

namespace moe::cli {

using Runner = std::function<int()>;

Runner add_train(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_generate(CLI::App& app);
Runner add_info(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_experts(CLI::App& app);
Runner add_grow(CLI::App& app);
Runner add_serve_experts(CLI::App& app);
Runner add_swarm_status(CLI::App& app);
Runner add_fit(CLI::App& app);
Runner add_predict(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_serve(CLI::App& app);
Runner add_chat(CLI::App& app);

}  // namespace moe::cli
