#pragma once
// `moe serve`: an OpenAI-compatible HTTP server (cpp-httplib, Debian's libcpp-httplib-dev) over
// one model, with continuous batching (serve/batch_engine.h).
//   POST /v1/completions, /v1/chat/completions  (stream: server-sent events, "data: [DONE]")
//   GET  /v1/models, /health, /metrics (Prometheus text)   POST /tokenize {"content": TEXT}
// Limits: a request body above max_body is refused (413); more than max_batch + max_queue requests
// at once are refused (429); prompt + max_tokens past the context is refused (400). Every error
// is a JSON body {"error": {...}}. A streamed generation stops when its client disconnects.
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "model/decoder_lm.h"
#include "text/chat_template.h"
#include "text/model_tokenizer.h"

namespace moe::serve {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port (bind() returns it)
  std::string model_id = "moe";  // the name in /v1/models and in responses
  int max_batch = 8;             // sequences decoding together
  int max_queue = 64;            // requests waiting for a slot
  size_t max_body = 1 << 20;     // bytes
  int64_t window = 0;            // context; 0: max_position_embeddings
  int64_t default_max_tokens = 256;  // when a request gives none (capped by the context)
  int read_timeout_s = 10;       // a client that stops sending its request is dropped
  int64_t prefix_cache_mb = 512;  // finished sequences' keys and values kept for prompts that start alike
  int64_t prefill_chunk = 512;   // prompt tokens prefilled per engine step between decode steps; 0: whole prompts
};

class Server {
 public:
  // tmpl: the model's chat template (none: /v1/chat/completions answers 400).
  Server(DecoderLM& model, text::ModelTokenizer tokens, std::optional<text::ChatTemplate> tmpl, ServerConfig cfg);
  ~Server();
  // Binds the socket; throws moe::Error when it cannot. Returns the port.
  int bind();
  // Serves until stop(); the generation engine runs on this thread's companion.
  void run();
  void stop();  // from another thread (or a signal watcher)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::serve
