#include "serve/batch_engine.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/error.h"

namespace moe::serve {

BatchEngine::BatchEngine(DecoderLM& model, const BatchEngineConfig& cfg)
    : model_(model),
      cfg_(cfg),
      window_(cfg.window > 0 ? cfg.window : model.config().max_position_embeddings),
      prefix_({.max_bytes = cfg.prefix_cache_bytes, .max_entries = cfg.prefix_cache_entries}) {
  if (cfg.max_batch < 1) throw Error("[serve] the batch must hold at least one sequence");
  if (!model.causal())
    throw Error("[serve] this model's router (" + model.config().router + ") is not causal: it cannot generate text");
}

void BatchEngine::submit(std::shared_ptr<GenerationRequest> r) {
  const int64_t V = model_.config().vocab_size;
  if (r->prompt.empty()) throw Error("the prompt has no tokens");
  for (int32_t id : r->prompt)
    if (id < 0 || id >= V)
      throw Error("prompt token id " + std::to_string(id) + " is outside the model's vocabulary of " + std::to_string(V));
  if (r->max_tokens < 0) throw Error("max_tokens must be >= 0");
  if (int64_t(r->prompt.size()) + r->max_tokens > window_)
    throw Error("the prompt's " + std::to_string(r->prompt.size()) + " tokens plus max_tokens " +
                std::to_string(r->max_tokens) + " exceed the context of " + std::to_string(window_) + " tokens");
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back(std::move(r));
    stats_.queued = int(queue_.size());
  }
  cv_.notify_one();
}

void BatchEngine::finish(Sequence& q, FinishReason why, const std::string& error) {
  if (q.req->on_finish) q.req->on_finish(why, error);
  std::lock_guard<std::mutex> lk(mu_);
  ++stats_.completed;
  if (why == FinishReason::aborted) ++stats_.aborted;
}

void BatchEngine::retire(Sequence& q, FinishReason why) {
  finish(q, why);
  prefix_.store(std::move(q.ids), std::move(q.caches));
  std::lock_guard<std::mutex> lk(mu_);
  stats_.prefix_cache_bytes = prefix_.bytes();
}

bool BatchEngine::deliver(Sequence& q, const float* logits) {
  const GenerationRequest& r = *q.req;
  const int32_t tok = sample_token(logits, model_.config().vocab_size, r.sampler, q.rng);
  ++q.generated;
  q.last = tok;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.tokens;
  }
  if (r.on_token && !r.on_token(tok)) return retire(q, FinishReason::aborted), false;
  if (std::find(r.stop_ids.begin(), r.stop_ids.end(), tok) != r.stop_ids.end()) return retire(q, FinishReason::stop), false;
  if (q.generated >= r.max_tokens) return retire(q, FinishReason::length), false;
  return true;
}

bool BatchEngine::admit() {
  bool any = false;
  while (int(joining_.size() + active_.size()) < cfg_.max_batch) {
    std::shared_ptr<GenerationRequest> r;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (queue_.empty()) break;
      r = std::move(queue_.front());
      queue_.pop_front();
      stats_.queued = int(queue_.size());
    }
    any = true;
    auto q = std::make_unique<Sequence>();
    q->req = r;
    q->rng = Rng(r->seed);
    if (r->cancelled && r->cancelled()) {
      finish(*q, FinishReason::aborted);
      continue;
    }
    if (r->max_tokens == 0) {
      finish(*q, FinishReason::length);
      continue;
    }
    try {
      model_.init_cache(q->caches, int64_t(r->prompt.size()) + r->max_tokens);
      q->prefilled = prefix_.restore(r->prompt, q->caches);  // at most all but the last prompt token
    } catch (const std::exception& e) {
      finish(*q, FinishReason::error, e.what());
      continue;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.reused_tokens += q->prefilled;
    }
    joining_.push_back(std::move(q));
  }
  return any;
}

void BatchEngine::prefill() {
  const int64_t V = model_.config().vocab_size;
  int64_t budget = cfg_.prefill_chunk > 0 ? cfg_.prefill_chunk : std::numeric_limits<int64_t>::max();
  size_t kept = 0;
  for (size_t i = 0; i < joining_.size(); ++i) {
    std::unique_ptr<Sequence>& q = joining_[i];
    const GenerationRequest& r = *q->req;
    bool stays = true;
    if (budget > 0) {
      const int64_t n = int64_t(r.prompt.size()), m = std::min(budget, n - q->prefilled);
      stays = false;
      if (r.cancelled && r.cancelled()) {
        finish(*q, FinishReason::aborted);
      } else {
        bool ok = true;
        try {
          logits_.resize(V);
          model_.forward_cached(logits_.data(), r.prompt.data() + q->prefilled, m, q->caches);
        } catch (const std::exception& e) {
          finish(*q, FinishReason::error, e.what());
          ok = false;
        }
        if (ok) {
          q->prefilled += m;
          budget -= m;
          {
            std::lock_guard<std::mutex> lk(mu_);
            stats_.prefill_tokens += m;
          }
          if (q->prefilled < n) {
            stays = true;
          } else {
            // The whole prompt is in: its last position's logits give the first token.
            q->ids = r.prompt;
            if (deliver(*q, logits_.data())) active_.push_back(std::move(q));
          }
        }
      }
    }
    if (stays) {
      if (kept != i) joining_[kept] = std::move(q);
      ++kept;
    }
  }
  joining_.resize(kept);
}

bool BatchEngine::step() {
  const int64_t V = model_.config().vocab_size;
  bool worked = admit();
  if (!joining_.empty()) {
    worked = true;
    prefill();
  }
  // One decode step for the whole batch.
  const int64_t S = int64_t(active_.size());
  if (S > 0) {
    worked = true;
    step_tokens_.resize(size_t(S));
    step_caches_.resize(size_t(S));
    for (int64_t s = 0; s < S; ++s) {
      step_tokens_[s] = active_[s]->last, step_caches_[s] = &active_[s]->caches;
      active_[s]->ids.push_back(active_[s]->last);
    }
    logits_.resize(S * V);
    try {
      model_.decode_step(logits_.data(), step_tokens_.data(), step_caches_);
    } catch (const std::exception& e) {
      for (auto& q : active_) finish(*q, FinishReason::error, e.what());
      active_.clear();
      return true;
    }
    // Finished sequences leave; the others keep their order.
    int64_t kept = 0;
    for (int64_t s = 0; s < S; ++s)
      if (deliver(*active_[s], logits_.data() + s * V)) {
        if (kept != s) active_[size_t(kept)] = std::move(active_[s]);
        ++kept;
      }
    active_.resize(size_t(kept));
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.steps;
    stats_.rows += S;
    stats_.max_rows = std::max(stats_.max_rows, S);
  }
  std::lock_guard<std::mutex> lk(mu_);
  stats_.active = int(active_.size());
  stats_.prefilling = int(joining_.size());
  return worked;
}

void BatchEngine::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    if (step()) continue;
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(200), [&] { return !queue_.empty() || stop.load(); });
  }
  // Ends what is still running or waiting, so no caller waits forever.
  for (auto* list : {&joining_, &active_}) {
    for (auto& q : *list) finish(*q, FinishReason::aborted, "the server is shutting down");
    list->clear();
  }
  std::deque<std::shared_ptr<GenerationRequest>> left;
  {
    std::lock_guard<std::mutex> lk(mu_);
    left.swap(queue_);
  }
  for (auto& r : left)
    if (r->on_finish) r->on_finish(FinishReason::aborted, "the server is shutting down");
}

void BatchEngine::wake() { cv_.notify_all(); }

BatchEngineStats BatchEngine::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

}  // namespace moe::serve
