#include "train/text_corpus.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe {

namespace fs = std::filesystem;

std::vector<std::string> TextCorpus::expand(const std::vector<std::string>& paths) {
  std::set<std::string> seen;
  std::vector<std::string> out;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    const fs::path canon = fs::canonical(p, ec);
    if (ec || !fs::is_regular_file(canon)) return;
    if (p.extension() == ".dat") return;  // strfile index of a fortune file: binary
    if (seen.insert(canon.string()).second) out.push_back(canon.string());
  };
  for (const auto& s : paths) {
    std::error_code ec;
    fs::path p(s);
    if (!fs::exists(p, ec)) throw Error("[data] " + s + ": no such file or directory");
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::follow_directory_symlink, ec);
           it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) break;
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') continue;
        found.push_back(it->path());
      }
      std::sort(found.begin(), found.end());
      for (auto& f : found) add(f);
    } else {
      const size_t before = out.size();
      add(p);
      if (out.size() == before && !seen.count(fs::canonical(p, ec).string()))
        throw Error("[data] " + s + ": not a regular text file");
    }
  }
  if (out.empty()) throw Error("[data] no data files found in the given paths");
  return out;
}

TextCorpus TextCorpus::load(const std::vector<std::string>& paths, const CorpusConfig& cfg) {
  if (cfg.val_fraction < 0 || cfg.val_fraction >= 1)
    throw Error("[data] validation fraction must be in [0, 1)");
  TextCorpus c;
  c.files_ = expand(paths);
  for (const auto& f : c.files_) {
    std::string text = read_file(f);
    const size_t n_val = size_t(double(text.size()) * cfg.val_fraction);
    c.train_.append(text, 0, text.size() - n_val);
    c.val_.append(text, text.size() - n_val, n_val);
  }
  return c;
}

void TextCorpus::sample_batch(int32_t* tokens, int32_t* targets, int64_t B, int64_t T, Rng& rng) const {
  const int64_t n = int64_t(train_.size());
  if (n < T + 1)
    throw Error("[data] the training split has " + std::to_string(n) + " bytes; a context of " +
                std::to_string(T) + " needs at least " + std::to_string(T + 1));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = int64_t(rng.below(uint64_t(n - T)));
    for (int64_t t = 0; t < T; ++t) {
      tokens[b * T + t] = uint8_t(train_[start + t]);
      targets[b * T + t] = uint8_t(train_[start + t + 1]);
    }
  }
}

std::vector<std::pair<int64_t, int64_t>> eval_windows(int64_t n_tokens, int64_t T) {
  std::vector<std::pair<int64_t, int64_t>> w;
  for (int64_t s = 0; s < n_tokens; s += T) w.emplace_back(s, std::min(T, n_tokens - s));
  return w;
}

}  // namespace moe
