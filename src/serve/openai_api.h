#pragma once
// The OpenAI-compatible request and response formats of `moe serve` (/v1/completions,
// /v1/chat/completions): parsing with clear 4xx errors, the responses and the streamed chunks, and
// stop strings over streamed text. No networking here (serve/http_server.h).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::serve {

// JSON text of j; bytes that are not UTF-8 (a parser's message quoting a bad body) become U+FFFD
// instead of an exception.
std::string dump_json(const nlohmann::ordered_json& j);

// A request the server refuses: HTTP status, OpenAI's error type, the offending field.
class ApiError : public std::runtime_error {
 public:
  ApiError(int http_status, const std::string& message, std::string field = {},
           std::string error_type = "invalid_request_error")
      : std::runtime_error(message), status(http_status), param(std::move(field)), type(std::move(error_type)) {}
  int status;
  std::string param, type;
  // {"error": {"message", "type", "param", "code"}}
  std::string body() const;
};

struct CompletionParams {
  bool chat = false;
  std::string prompt;                                           // /v1/completions
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // /v1/chat/completions
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();  // chat_template_kwargs
  std::string model;              // "" when absent
  int64_t max_tokens = -1;        // -1: absent (the server picks: the rest of the context)
  float temperature = 1.0f;       // 0: greedy
  float top_p = 1.0f;
  int top_k = 0;
  bool has_seed = false;
  uint64_t seed = 0;
  std::vector<std::string> stop;  // at most 4, not empty strings
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage: a last chunk with the usage
};

// Parses a request body; throws ApiError (400) naming the field for anything malformed.
CompletionParams parse_completion_request(const std::string& body, bool chat);

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

// The whole response of a non-streamed request.
nlohmann::ordered_json completion_response(const CompletionParams& p, const std::string& id, int64_t created,
                                           const std::string& model, const std::string& text,
                                           const std::string& finish_reason, const Usage& usage);
// One streamed chunk: text (the delta) and finish_reason ("" while running). The first chat chunk
// (first = true) also carries the role.
nlohmann::ordered_json completion_chunk(const CompletionParams& p, const std::string& id, int64_t created,
                                        const std::string& model, const std::string& text,
                                        const std::string& finish_reason, bool first);
// The last chunk when include_usage: no choices, the usage.
nlohmann::ordered_json usage_chunk(const CompletionParams& p, const std::string& id, int64_t created,
                                   const std::string& model, const Usage& usage);

// Stop strings over text that arrives in pieces: push() returns what can be shown now, holding
// back a tail that may be the start of a stop string; after a match, stopped() and the text
// before it has been returned (the stop string itself never is).
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  std::string push(const std::string& piece);
  std::string flush();  // the held-back tail, at the end of generation
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace moe::serve
