#pragma once
// Plots a person looks at, written as SVG next to a checkpoint from its metrics.jsonl:
//   loss.svg         training loss (per step) and validation loss (per validation) against step;
//   expert_load.svg  per MoE layer, a heat map of each expert's share of the routed slots over
//                    training (x: step, y: expert; white = none, dark = all; balanced = even shade).
#include <string>

namespace moe {

// Reads dir/metrics.jsonl and writes dir/loss.svg and (for MoE runs) dir/expert_load.svg,
// atomically. Throws moe::Error if the metrics file cannot be read.
void write_training_plots(const std::string& dir);

}  // namespace moe
