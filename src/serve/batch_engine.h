#pragma once
// Continuous batching: concurrent generation requests share each decode step. A request that joins
// takes a free slot and its prompt is prefilled in chunks of at most prefill_chunk tokens, one chunk
// per step between the decode steps, so a long prompt does not stall the running requests for its
// whole length. Then it decodes one token per step together with every other running request
// (DecoderLM::decode_step: each weight read once for all rows, attention per sequence), and leaves
// the batch the step it ends, its slot going to the next waiting request. A prefix cache
// (prefix_cache.h) keeps finished sequences' keys and values for the requests that start alike.
// The engine is driven by one thread (run() or step()); submit() and stats() are thread-safe.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/rng.h"
#include "infer/sampler.h"
#include "model/decoder_lm.h"
#include "serve/prefix_cache.h"

namespace moe::serve {

enum class FinishReason {
  stop,     // sampled one of stop_ids
  length,   // max_tokens generated
  aborted,  // on_token returned false (a stop string matched, or the client went away)
  error     // the model threw: the message goes to on_finish
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, not empty
  int64_t max_tokens = 16;
  SamplerConfig sampler{};
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids{};
  // Both run on the engine's thread: on_token once per sampled token (false ends the request),
  // on_finish exactly once at the end.
  std::function<bool(int32_t)> on_token;
  std::function<void(FinishReason, const std::string& error)> on_finish;
  // Asked when the request leaves the queue and before each chunk of its prefill: true ends it
  // (aborted) there.
  std::function<bool()> cancelled;
};

struct BatchEngineConfig {
  int max_batch = 8;    // sequences decoding together; the others wait in the queue
  int64_t window = 0;   // context: prompt + max_tokens must fit; 0: max_position_embeddings
  int64_t prefix_cache_bytes = 0;  // finished sequences' KV caches kept for reuse; 0: none
  int64_t prefix_cache_entries = 0;  // at most this many of them; 0: as many as the bytes hold
  // Prompt tokens prefilled per step (shared by the requests being prefilled, first come first
  // served) before the step's decode; 0: each newcomer's whole prompt at once.
  int64_t prefill_chunk = 512;
};

struct BatchEngineStats {
  int64_t steps = 0;           // batched decode steps
  int64_t rows = 0;            // sequences summed over the steps (rows / steps: mean batch)
  int64_t max_rows = 0;        // the largest batch of a step
  int64_t prefill_tokens = 0;  // prompt tokens computed
  int64_t reused_tokens = 0;   // prompt tokens whose keys and values came from the prefix cache
  int64_t prefix_cache_bytes = 0;
  int64_t tokens = 0;          // sampled tokens
  int64_t completed = 0;       // requests ended (any reason)
  int64_t aborted = 0;         // of which on_token said stop
  int active = 0, queued = 0;
  int prefilling = 0;          // in a slot, prompt not all prefilled yet (not among the active)
};

class BatchEngine {
 public:
  BatchEngine(DecoderLM& model, const BatchEngineConfig& cfg);
  int64_t window() const { return window_; }
  // Queues r. Throws moe::Error (nothing queued) for an empty prompt, an id outside the vocabulary,
  // max_tokens < 0, or prompt + max_tokens past the window.
  void submit(std::shared_ptr<GenerationRequest> r);
  // Admits waiting requests into free slots, prefills up to prefill_chunk prompt tokens of those
  // that joined (first come first served), then one decode step of the requests past their prompt.
  // Returns false when there was nothing to do.
  bool step();
  // step() until stop is set; sleeps while idle (submit() wakes it).
  void run(const std::atomic<bool>& stop);
  void wake();  // makes run() check stop now
  BatchEngineStats stats() const;

 private:
  struct Sequence {
    std::shared_ptr<GenerationRequest> req;
    std::vector<LayerKVCache> caches;
    std::vector<int32_t> ids;  // the tokens whose keys and values caches hold
    Rng rng{0};
    int64_t generated = 0;
    int32_t last = 0;
    int64_t prefilled = 0;  // prompt tokens in caches; the request decodes once it is the whole prompt
  };
  // Samples from logits [V] for q; false when q ended (then finished).
  bool deliver(Sequence& q, const float* logits);
  void finish(Sequence& q, FinishReason why, const std::string& error = {});
  // finish(), then the sequence's caches go to the prefix cache.
  void retire(Sequence& q, FinishReason why);
  bool admit();    // waiting requests into free slots, caches made and restored from the prefix cache; false: none waited
  void prefill();  // up to prefill_chunk prompt tokens of the joining requests; a finished prompt samples its first token

  DecoderLM& model_;
  BatchEngineConfig cfg_;
  int64_t window_;
  std::vector<std::unique_ptr<Sequence>> joining_;  // in a slot, prompt being prefilled (in arrival order)
  std::vector<std::unique_ptr<Sequence>> active_;   // decoding
  std::vector<float> logits_;
  std::vector<int32_t> step_tokens_;  // a decode step's inputs, kept so steps do not allocate
  std::vector<std::vector<LayerKVCache>*> step_caches_;
  PrefixCache prefix_;  // used by the engine's thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GenerationRequest>> queue_;
  BatchEngineStats stats_;
};

}  // namespace moe::serve
