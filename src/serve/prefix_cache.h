#pragma once
// Prompt prefixes shared across requests: the KV caches of finished sequences, kept under the ids
// they hold, so that a request starting with the same ids (a chat client resends the whole
// conversation each turn; many clients send one system prompt) prefills only what follows. A
// position's keys and values depend only on the ids up to it, so a kept prefix equals a recomputed
// one up to float rounding (the prefill and the one-token decode sum in different orders).
#include <cstdint>
#include <vector>

#include "nn/kv_cache.h"

namespace moe::serve {

struct PrefixCacheConfig {
  int64_t max_bytes = 0;    // the kept caches' total size; 0: keep nothing
  int64_t max_entries = 0;  // sequences kept; 0: as many as max_bytes holds
  int64_t min_tokens = 16;  // a shorter common prefix is recomputed (copying it saves little)
};

class PrefixCache {
 public:
  explicit PrefixCache(const PrefixCacheConfig& cfg) : cfg_(cfg) {}
  // Keeps caches (moved in; cut to ids.size() positions when they have room for over a quarter
  // more) as the keys and values of `ids`. Drops
  // kept entries whose ids are a prefix of `ids` (this one covers them), then the least recently
  // used until the total fits max_bytes and max_entries; an entry larger than max_bytes alone, or with fewer than
  // min_tokens ids, is not kept.
  void store(std::vector<int32_t> ids, std::vector<LayerKVCache> caches);
  // The longest kept prefix of prompt, of at least min_tokens and at most prompt.size() - 1 ids
  // (the last prompt token is computed for its logits): copied into caches (from the model's
  // init_cache, with room for it), whose len it sets. Returns its length; 0 leaves caches alone.
  int64_t restore(const std::vector<int32_t>& prompt, std::vector<LayerKVCache>& caches);
  int64_t bytes() const { return bytes_; }
  int64_t entries() const { return int64_t(entries_.size()); }

 private:
  struct Entry {
    std::vector<int32_t> ids;
    std::vector<LayerKVCache> caches;
    int64_t bytes = 0;
    uint64_t used = 0;  // clock_ at the last store or restore
  };
  void drop(size_t i);

  PrefixCacheConfig cfg_;
  std::vector<Entry> entries_;  // few (bounded by max_bytes): scanned linearly
  int64_t bytes_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace moe::serve
