#include "serve/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unistd.h>

#include "core/error.h"
#include "serve/batch_engine.h"
#include "serve/openai_api.h"
#include "text/utf8.h"

namespace moe::serve {

namespace {

using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

std::string status_message(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "no such endpoint";
    case 405: return "method not allowed";
    case 413: return "the request body is larger than the server accepts";
    case 414: return "the request URI is too long";
    default: return "HTTP error " + std::to_string(status);
  }
}

// One generation's state, shared by the HTTP handler's thread and the engine's.
struct RequestState {
  RequestState(const text::ModelTokenizer& tokens, std::vector<std::string> stop)
      : stops(std::move(stop)) {
    if (tokens.tokenizer) dec.emplace(*tokens.tokenizer, /*skip_special_tokens=*/true);
  }
  std::mutex mu;
  std::condition_variable cv;
  std::string pending;  // text generated and not yet sent
  bool done = false;
  std::string finish_reason, error;
  int64_t completion_tokens = 0;
  double ttft = -1;  // seconds from submission to the first token
  std::atomic<bool> cancelled{false};
  Clock::time_point submitted = Clock::now();
  StopMatcher stops;
  std::optional<text::StreamingDecoder> dec;
  std::string bytes;  // byte-level models: bytes not yet decoded (an incomplete character)

  std::string decode(int32_t id) {
    if (dec) return dec->push(id);
    bytes.push_back(char(uint8_t(id)));
    std::string out;
    const size_t held = text::utf8_decode_lossy(bytes, out, /*hold_tail=*/true);
    bytes.erase(0, bytes.size() - held);
    return out;
  }
  std::string decode_end() {
    if (dec) return dec->finish();
    std::string out;
    text::utf8_decode_lossy(bytes, out);
    bytes.clear();
    return out;
  }
  // Engine thread.
  bool on_token(int32_t id) {
    if (cancelled.load()) return false;
    const std::string out = stops.push(decode(id));
    std::lock_guard<std::mutex> lk(mu);
    if (ttft < 0) ttft = std::chrono::duration<double>(Clock::now() - submitted).count();
    ++completion_tokens;
    pending += out;
    cv.notify_all();
    return !stops.stopped();
  }
  void on_finish(FinishReason why, const std::string& err) {
    std::string out = stops.push(decode_end());
    out += stops.flush();
    std::lock_guard<std::mutex> lk(mu);
    pending += out;
    finish_reason = why == FinishReason::stop     ? "stop"
                    : why == FinishReason::length ? "length"
                    : why == FinishReason::error  ? "error"
                    : stops.stopped()             ? "stop"
                                                  : "cancelled";
    error = err;
    done = true;
    cv.notify_all();
  }
};

// Recent time-to-first-token samples for the summary's quantiles.
struct Metrics {
  std::mutex mu;
  std::map<std::pair<std::string, int>, int64_t> requests;  // (endpoint, status) -> count
  std::deque<double> ttft;                                  // the last 4096
  double ttft_sum = 0;
  int64_t ttft_count = 0, prompt_tokens = 0, completion_tokens = 0, cancelled = 0;

  void request(const std::string& endpoint, int status) {
    std::lock_guard<std::mutex> lk(mu);
    ++requests[{endpoint, status}];
  }
  void generation(const RequestState& s, int64_t prompt) {
    std::lock_guard<std::mutex> lk(mu);
    prompt_tokens += prompt;
    completion_tokens += s.completion_tokens;
    if (s.finish_reason == "cancelled") ++cancelled;
    if (s.ttft >= 0) {
      ttft.push_back(s.ttft);
      if (ttft.size() > 4096) ttft.pop_front();
      ttft_sum += s.ttft;
      ++ttft_count;
    }
  }
};

int64_t resident_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return int64_t(resident) * int64_t(sysconf(_SC_PAGESIZE));
}

}  // namespace

struct Server::Impl {
  Impl(DecoderLM& m, text::ModelTokenizer t, std::optional<text::ChatTemplate> tp, ServerConfig c)
      : model(m), tokens(std::move(t)), tmpl(std::move(tp)), cfg(std::move(c)),
        // The prefix cache keeps as many requests as 4 full batches: its memory settles within the
        // first few batches instead of growing until the bytes are used.
        engine(m, BatchEngineConfig{.max_batch = c.max_batch,
                                    .window = c.window,
                                    .prefix_cache_bytes = c.prefix_cache_mb << 20,
                                    .prefix_cache_entries = 4 * int64_t(c.max_batch),
                                    .prefill_chunk = c.prefill_chunk}) {}

  DecoderLM& model;
  text::ModelTokenizer tokens;
  std::optional<text::ChatTemplate> tmpl;
  ServerConfig cfg;
  BatchEngine engine;
  httplib::Server svr;
  Metrics metrics;
  std::atomic<bool> stopping{false};
  std::atomic<int> inflight{0};
  std::atomic<int64_t> next_id{1};

  void json_reply(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/json");
  }

  // Runs fn; errors become JSON bodies; the request is counted under its endpoint and status.
  void guarded(const std::string& endpoint, httplib::Response& res, const std::function<void()>& fn) {
    try {
      fn();
    } catch (const ApiError& e) {
      json_reply(res, e.status, e.body());
    } catch (const Error& e) {
      json_reply(res, 400, ApiError(400, e.what()).body());
    } catch (const std::exception& e) {
      json_reply(res, 500, ApiError(500, e.what(), "", "server_error").body());
    }
    metrics.request(endpoint, res.status);
  }

  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const {
    if (tokens.tokenizer) return tokens.tokenizer->encode(text, add_special_tokens);
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(int32_t(c));
    return ids;
  }

  void completion(const httplib::Request& req, httplib::Response& res, bool chat) {
    const CompletionParams p = parse_completion_request(req.body, chat);
    if (!p.model.empty() && p.model != cfg.model_id)
      throw ApiError(404, "the model '" + p.model + "' is not served here (this server serves '" + cfg.model_id + "')",
                     "model", "not_found_error");
    std::string prompt_text = p.prompt;
    if (chat) {
      if (!tmpl) throw ApiError(400, "this model has no chat template (tokenizer_config.json): use /v1/completions");
      prompt_text = tmpl->render(p.messages, /*add_generation_prompt=*/true, p.template_kwargs);
    }
    // A chat prompt holds its special tokens already (as transformers' apply_chat_template).
    const std::vector<int32_t> ids = encode(prompt_text, !chat);
    if (ids.empty()) throw ApiError(400, "the prompt has no tokens", chat ? "messages" : "prompt");
    const int64_t window = engine.window(), n = int64_t(ids.size());
    if (n >= window)
      throw ApiError(400, "the prompt's " + std::to_string(n) + " tokens fill the context of " + std::to_string(window) +
                              " tokens", chat ? "messages" : "prompt");
    const int64_t max_tokens = p.max_tokens >= 0 ? p.max_tokens : std::min(cfg.default_max_tokens, window - n);
    if (n + max_tokens > window)
      throw ApiError(400, "max_tokens " + std::to_string(max_tokens) + " plus the prompt's " + std::to_string(n) +
                              " tokens exceed the context of " + std::to_string(window) + " tokens",
                     "max_tokens");
    if (inflight.load() >= cfg.max_batch + cfg.max_queue)
      throw ApiError(429, "the server is busy (" + std::to_string(inflight.load()) + " requests running or waiting)", "",
                     "rate_limit_error");
    auto st = std::make_shared<RequestState>(tokens, p.stop);
    auto r = std::make_shared<GenerationRequest>();
    r->prompt = ids;
    r->max_tokens = max_tokens;
    r->sampler = SamplerConfig{.temperature = p.temperature, .top_k = p.top_k, .top_p = p.top_p};
    r->seed = p.has_seed ? p.seed : std::random_device{}();
    r->stop_ids = tokens.stop_ids;
    r->on_token = [st](int32_t id) { return st->on_token(id); };
    r->cancelled = [st] { return st->cancelled.load(); };
    Metrics* m = &metrics;
    std::atomic<int>* in = &inflight;
    r->on_finish = [st, m, in, n](FinishReason why, const std::string& err) {
      st->on_finish(why, err);
      m->generation(*st, n);
      in->fetch_sub(1);
    };
    inflight.fetch_add(1);
    try {
      engine.submit(r);
    } catch (...) {
      inflight.fetch_sub(1);
      throw;
    }
    const std::string id = std::string(chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id.fetch_add(1));
    const int64_t created = int64_t(std::time(nullptr));
    const std::string model_id = cfg.model_id;
    if (!p.stream) {
      std::unique_lock<std::mutex> lk(st->mu);
      st->cv.wait(lk, [&] { return st->done; });
      if (st->finish_reason == "error") throw ApiError(500, "generation failed: " + st->error, "", "server_error");
      const Usage u{.prompt_tokens = n, .completion_tokens = st->completion_tokens};
      json_reply(res, 200, dump_json(completion_response(p, id, created, model_id, st->pending, st->finish_reason, u)));
      return;
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    auto first = std::make_shared<bool>(true);
    res.set_chunked_content_provider(
        "text/event-stream",
        [st, p, id, created, model_id, first, n](size_t, httplib::DataSink& sink) {
          std::string out, reason, error;
          bool done = false;
          int64_t generated = 0;
          {
            std::unique_lock<std::mutex> lk(st->mu);
            st->cv.wait_for(lk, std::chrono::milliseconds(500), [&] { return !st->pending.empty() || st->done; });
            out.swap(st->pending);
            done = st->done;
            reason = st->finish_reason;
            error = st->error;
            generated = st->completion_tokens;
          }
          auto event = [](const ojson& j) { return "data: " + dump_json(j) + "\n\n"; };
          std::string frame;
          if (!out.empty() || *first) frame += event(completion_chunk(p, id, created, model_id, out, "", *first));
          *first = false;
          if (done) {
            if (reason == "error")
              frame += "data: " + ApiError(500, "generation failed: " + error, "", "server_error").body() + "\n\n";
            frame += event(completion_chunk(p, id, created, model_id, "", reason, false));
            if (p.include_usage)
              frame += event(usage_chunk(p, id, created, model_id, Usage{.prompt_tokens = n, .completion_tokens = generated}));
            frame += "data: [DONE]\n\n";
          }
          if (frame.empty()) frame = ": waiting\n\n";  // a comment: finds a client that has gone
          if (!sink.write(frame.data(), frame.size())) {
            st->cancelled.store(true);
            return false;
          }
          if (done) sink.done();
          return true;
        },
        [st](bool success) {
          if (!success) st->cancelled.store(true);
        });
  }

  std::string metrics_text() {
    const BatchEngineStats es = engine.stats();
    std::string s;
    auto metric = [&](const char* name, const char* type, const char* help) {
      s += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    std::lock_guard<std::mutex> lk(metrics.mu);
    metric("moe_requests_total", "counter", "HTTP requests by endpoint and status");
    for (const auto& [k, v] : metrics.requests)
      s += "moe_requests_total{endpoint=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"} " +
           std::to_string(v) + "\n";
    auto value = [&](const char* name, const char* type, const char* help, int64_t v) {
      metric(name, type, help);
      s += std::string(name) + " " + std::to_string(v) + "\n";
    };
    value("moe_prompt_tokens_total", "counter", "prompt tokens of finished generations", metrics.prompt_tokens);
    value("moe_generated_tokens_total", "counter", "tokens generated by finished generations", metrics.completion_tokens);
    value("moe_requests_cancelled_total", "counter", "generations stopped because their client went away",
          metrics.cancelled);
    value("moe_requests_active", "gauge", "sequences in the decoding batch", es.active);
    value("moe_requests_prefilling", "gauge", "requests in a batch slot whose prompt is being prefilled", es.prefilling);
    value("moe_requests_queued", "gauge", "requests waiting for a batch slot", es.queued);
    value("moe_decode_steps_total", "counter", "batched decode steps", es.steps);
    value("moe_decode_rows_total", "counter", "sequences summed over the decode steps (rows / steps: mean batch)",
          es.rows);
    value("moe_decode_batch_max", "gauge", "the largest batch of one decode step", es.max_rows);
    value("moe_prefill_tokens_total", "counter", "prompt tokens computed", es.prefill_tokens);
    value("moe_prefix_reused_tokens_total", "counter", "prompt tokens whose keys and values came from the prefix cache",
          es.reused_tokens);
    value("moe_prefix_cache_bytes", "gauge", "size of the kept prefixes' keys and values", es.prefix_cache_bytes);
    metric("moe_time_to_first_token_seconds", "summary", "from submission to the first token (last 4096 requests)");
    std::vector<double> t(metrics.ttft.begin(), metrics.ttft.end());
    std::sort(t.begin(), t.end());
    for (double q : {0.5, 0.9, 0.99}) {
      const double v = t.empty() ? 0.0 : t[std::min(t.size() - 1, size_t(q * double(t.size())))];
      char line[128];
      std::snprintf(line, sizeof line, "moe_time_to_first_token_seconds{quantile=\"%g\"} %.6f\n", q, v);
      s += line;
    }
    char tail[160];
    std::snprintf(tail, sizeof tail, "moe_time_to_first_token_seconds_sum %.6f\nmoe_time_to_first_token_seconds_count %lld\n",
                  metrics.ttft_sum, (long long)metrics.ttft_count);
    s += tail;
    value("moe_resident_memory_bytes", "gauge", "resident set size of the server process", resident_bytes());
    return s;
  }

  void routes() {
    // Each streaming client holds a worker thread: room for every request the limits admit.
    const int threads = cfg.max_batch + cfg.max_queue + 8;
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second server on the
    // same port starts silently and takes half the connections.
    svr.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    svr.set_payload_max_length(cfg.max_body);
    svr.set_read_timeout(cfg.read_timeout_s, 0);
    svr.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty()) res.set_content(ApiError(res.status, status_message(res.status)).body(), "application/json");
      metrics.request("other", res.status);
    });
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      guarded("/health", res, [&] { json_reply(res, 200, R"({"status":"ok"})"); });
    });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      guarded("/v1/models", res, [&] {
        ojson m = {{"id", cfg.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "moe"},
                   {"context_length", engine.window()}};
        json_reply(res, 200, dump_json(ojson{{"object", "list"}, {"data", ojson::array({m})}}));
      });
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      guarded("/metrics", res, [&] { res.set_content(metrics_text(), "text/plain; version=0.0.4"); });
    });
    svr.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      guarded("/tokenize", res, [&] {
        ojson j;
        try {
          j = ojson::parse(req.body);
        } catch (const ojson::exception& e) {
          throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
        }
        const char* key = j.is_object() && j.contains("content") ? "content" : "text";
        if (!j.is_object() || !j.contains(key) || !j[key].is_string())
          throw ApiError(400, "'content' must be a string", "content");
        bool special = false;
        if (j.contains("add_special_tokens")) {
          if (!j["add_special_tokens"].is_boolean()) throw ApiError(400, "'add_special_tokens' must be true or false");
          special = j["add_special_tokens"].get<bool>();
        }
        const std::vector<int32_t> ids = encode(j[key].get<std::string>(), special);
        json_reply(res, 200, dump_json(ojson{{"tokens", ids}, {"count", ids.size()}}));
      });
    });
    svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded("/v1/completions", res, [&] { completion(req, res, false); });
    });
    svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      guarded("/v1/chat/completions", res, [&] { completion(req, res, true); });
    });
  }
};

Server::Server(DecoderLM& model, text::ModelTokenizer tokens, std::optional<text::ChatTemplate> tmpl, ServerConfig cfg)
    : impl_(std::make_unique<Impl>(model, std::move(tokens), std::move(tmpl), std::move(cfg))) {
  impl_->routes();
}

Server::~Server() = default;

int Server::bind() {
  Impl& s = *impl_;
  int port = s.cfg.port;
  const bool ok = port == 0 ? (port = s.svr.bind_to_any_port(s.cfg.host)) > 0 : s.svr.bind_to_port(s.cfg.host, port);
  if (!ok) throw Error("[serve] cannot listen on " + s.cfg.host + ":" + std::to_string(s.cfg.port) +
                       " (in use, or not an address of this machine)");
  s.cfg.port = port;
  return port;
}

void Server::run() {
  Impl& s = *impl_;
  std::thread engine([&] { s.engine.run(s.stopping); });
  s.svr.listen_after_bind();
  s.stopping.store(true);
  s.engine.wake();
  engine.join();
}

void Server::stop() {
  impl_->stopping.store(true);
  impl_->svr.stop();
  impl_->engine.wake();
}

}  // namespace moe::serve
