#pragma once
// A byte-level text corpus from files and directories (searched recursively; symlinked duplicates
// and fortune index files "*.dat" skipped). Each file's last `val_fraction` of bytes is held out for
// validation, so every file (every language of the fortune corpus) is in both splits.
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace moe {

struct CorpusConfig {
  double val_fraction = 0.05;
};

class TextCorpus {
 public:
  static TextCorpus load(const std::vector<std::string>& paths, const CorpusConfig& cfg = {});
  // The files a path list expands to, sorted (deterministic order).
  static std::vector<std::string> expand(const std::vector<std::string>& paths);

  const std::string& train() const { return train_; }
  const std::string& val() const { return val_; }
  const std::vector<std::string>& files() const { return files_; }

  // B random windows of T+1 bytes from the training split, drawn from rng: tokens[b,t] = w[t],
  // targets[b,t] = w[t+1]. tokens, targets: [B, T].
  void sample_batch(int32_t* tokens, int32_t* targets, int64_t B, int64_t T, Rng& rng) const;

 private:
  std::string train_, val_;
  std::vector<std::string> files_;
};

// The evaluation windows of the `moe eval` contract: consecutive non-overlapping windows of T
// tokens, the last possibly shorter; returns [start, length) pairs.
std::vector<std::pair<int64_t, int64_t>> eval_windows(int64_t n_tokens, int64_t T);

}  // namespace moe
