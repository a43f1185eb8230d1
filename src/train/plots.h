#pragma once
// Plots a person looks at, written as SVG next to a checkpoint from its metrics.jsonl:
//   loss.svg         training loss (per step) and validation loss (per validation) against step;
//   expert_load.svg  per MoE layer, a heat map of each expert's share of the routed slots over
//                    training (x: step, y: expert; white = balanced, red = overloaded, blue = underused).
#include <cstdint>
#include <string>
#include <vector>

namespace moe {

// Reads dir/metrics.jsonl and writes dir/loss.svg and (for MoE runs) dir/expert_load.svg,
// atomically. Throws moe::Error if the metrics file cannot be read.
void write_training_plots(const std::string& dir);

// Which experts each input's tokens go to: one heat-map panel per MoE layer, a row per input, a
// column per expert, shade = the expert's share of that input's routed slots.
// usage: [input][layer][expert] slot counts.
void write_expert_usage_svg(const std::string& path, const std::vector<std::string>& inputs,
                            const std::vector<std::vector<std::vector<int64_t>>>& usage);

}  // namespace moe
