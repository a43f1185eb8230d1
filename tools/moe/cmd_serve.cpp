// moe serve: an OpenAI-compatible HTTP server over one model (src/serve/http_server.h), with
// continuous batching; SIGINT or SIGTERM stops it (running generations end, then it exits).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "commands.h"
#include "core/error.h"
#include "core/stop_signals.h"
#include "core/threading.h"
#include "io/atomic_file.h"
#include "model/checkpoint.h"
#include "serve/http_server.h"
#include "text/model_tokenizer.h"
#include "weights_option.h"

namespace moe::cli {

namespace {
struct HttpServeArgs {
  std::string model, listen = "127.0.0.1:8080", name, port_file;
  std::string weights = "stored";
  serve::ServerConfig cfg;
  int threads = 0;
};

int run_http_serve(HttpServeArgs& a) {
  set_num_threads(a.threads);
  const size_t colon = a.listen.rfind(':');
  if (colon == std::string::npos) throw Error("[serve] --listen " + a.listen + ": expected HOST:PORT");
  a.cfg.host = a.listen.substr(0, colon);
  try {
    size_t used = 0;
    a.cfg.port = std::stoi(a.listen.substr(colon + 1), &used);
    if (used != a.listen.size() - colon - 1 || a.cfg.port < 0 || a.cfg.port > 65535) throw std::invalid_argument("port");
  } catch (const std::exception&) {
    throw Error("[serve] --listen " + a.listen + ": the port must be a number in [0, 65535]");
  }
  if (a.cfg.max_batch < 1 || a.cfg.max_queue < 0) throw Error("[serve] --max-batch must be >= 1 and --max-queue >= 0");
  if (a.cfg.prefix_cache_mb < 0 || a.cfg.prefix_cache_mb > (int64_t(1) << 30))
    throw Error("[serve] --prefix-cache-mb must be between 0 and 2^30");
  if (a.cfg.prefill_chunk < 0) throw Error("[serve] --prefill-chunk must be >= 0 (0: each prompt whole)");
  auto model = load_pretrained(a.model, nullptr, {}, run_load_options(a.weights));
  model->set_data_group(dist::Communicator());
  text::ModelTokenizer tokens = text::load_model_tokenizer(a.model, model->config().vocab_size);
  std::optional<text::ChatTemplate> tmpl;
  const std::filesystem::path tc = std::filesystem::path(a.model) / "tokenizer_config.json";
  if (std::filesystem::exists(tc)) {
    try {
      tmpl = text::ChatTemplate::load(a.model);
    } catch (const Error& e) {
      // No chat template is normal (a base model): /v1/chat/completions then says so. A broken
      // one is the user's to fix.
      if (std::string(e.what()).find("no chat_template") == std::string::npos) throw;
    }
  }
  a.cfg.model_id = a.name.empty() ? std::filesystem::path(a.model).lexically_normal().filename().string() : a.name;
  if (a.cfg.model_id.empty()) a.cfg.model_id = std::filesystem::absolute(a.model).parent_path().filename().string();
  serve::Server server(*model, std::move(tokens), std::move(tmpl), a.cfg);
  const int port = server.bind();
  if (!a.port_file.empty()) atomic_write_file(a.port_file, std::to_string(port) + "\n");
  std::fprintf(stderr, "moe serve: %s on http://%s:%d (context %lld, batch %d, chat template: %s)\n",
               a.cfg.model_id.c_str(), a.cfg.host.c_str(), port,
               (long long)(a.cfg.window > 0 ? a.cfg.window : model->config().max_position_embeddings),
               a.cfg.max_batch, std::filesystem::exists(tc) ? "tokenizer_config.json" : "none");
  std::atomic<bool> stop{false};  // set by SIGINT or SIGTERM
  StopOnSignal stop_on_signal(stop);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load() && !stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  server.run();
  done.store(true);
  watcher.join();
  std::fprintf(stderr, "moe serve: stopped\n");
  return 0;
}
}  // namespace

Runner add_serve(CLI::App& app) {
  auto a = std::make_shared<HttpServeArgs>();
  CLI::App* c = app.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, streaming; continuous batching)");
  c->add_option("--model", a->model, "model directory (config.json, weights; tokenizer.json and tokenizer_config.json when it has them)")->required();
  add_weights_option(c, a->weights);
  c->add_option("--listen", a->listen, "HOST:PORT to listen on (port 0: any free port)")->capture_default_str();
  c->add_option("--name", a->name, "the model's name in /v1/models and responses (default: the directory's name)");
  c->add_option("--max-batch", a->cfg.max_batch, "sequences that decode together")->capture_default_str();
  c->add_option("--max-queue", a->cfg.max_queue, "requests that may wait for a slot; beyond: 429")->capture_default_str();
  c->add_option("--max-body", a->cfg.max_body, "largest request body in bytes; beyond: 413")->capture_default_str();
  c->add_option("--context", a->cfg.window, "context in tokens (prompt + max_tokens); 0: max_position_embeddings")->capture_default_str();
  c->add_option("--default-max-tokens", a->cfg.default_max_tokens, "max_tokens of a request that gives none")->capture_default_str();
  c->add_option("--prefix-cache-mb", a->cfg.prefix_cache_mb,
                "MiB of finished requests' keys and values kept, so a prompt that starts alike (a chat's next turn) "
                "prefills only the rest; 0: off")->capture_default_str();
  c->add_option("--prefill-chunk", a->cfg.prefill_chunk,
                "prompt tokens prefilled per step between decode steps, so a long prompt does not stall the "
                "running requests; 0: each prompt whole")->capture_default_str();
  c->add_option("--port-file", a->port_file, "write the port listened on to this file (useful with port 0)");
  c->add_option("--threads", a->threads, "compute threads (0: all cores)");
  return [a] { return run_http_serve(*a); };
}

}  // namespace moe::cli
