#include "serve/openai_api.h"

#include <algorithm>
#include <cmath>

namespace moe::serve {

using ojson = nlohmann::ordered_json;

std::string dump_json(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string ApiError::body() const {
  ojson e = {{"message", what()}, {"type", type}, {"param", param.empty() ? ojson(nullptr) : ojson(param)},
             {"code", status}};
  return dump_json(ojson{{"error", e}});
}

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& what) {
  throw ApiError(400, "'" + field + "' " + what, field);
}

double number(const ojson& j, const char* key, double lo, double hi) {
  const ojson& v = j[key];
  if (!v.is_number()) bad(key, "must be a number, got " + v.dump());
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad(key, "must be in [" + ojson(lo).dump() + ", " + ojson(hi).dump() + "], got " + v.dump());
  return x;
}

int64_t integer(const ojson& j, const char* key, int64_t lo) {
  const ojson& v = j[key];
  if (!v.is_number_integer()) bad(key, "must be an integer, got " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < lo) bad(key, "must be >= " + std::to_string(lo) + ", got " + v.dump());
  return x;
}

bool present(const ojson& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

}  // namespace

CompletionParams parse_completion_request(const std::string& body, bool chat) {
  ojson j;
  try {
    j = ojson::parse(body);
  } catch (const ojson::exception& e) {
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object");
  CompletionParams p;
  p.chat = chat;
  if (chat) {
    if (!present(j, "messages")) bad("messages", "is required");
    if (!j["messages"].is_array() || j["messages"].empty()) bad("messages", "must be a non-empty list of messages");
    for (const auto& m : j["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        bad("messages", "must hold objects with a string \"role\"");
      if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null())
        bad("messages", "content must be a string (content parts are not supported)");
    }
    p.messages = j["messages"];
    if (present(j, "chat_template_kwargs")) {
      if (!j["chat_template_kwargs"].is_object()) bad("chat_template_kwargs", "must be an object");
      p.template_kwargs = j["chat_template_kwargs"];
    }
  } else {
    if (!present(j, "prompt")) bad("prompt", "is required");
    const ojson& pr = j["prompt"];
    if (pr.is_string()) {
      p.prompt = pr.get<std::string>();
    } else if (pr.is_array() && pr.size() == 1 && pr[0].is_string()) {
      p.prompt = pr[0].get<std::string>();
    } else {
      bad("prompt", "must be a string (or a list of one string)");
    }
    if (p.prompt.empty()) bad("prompt", "must not be empty");
  }
  if (present(j, "model")) {
    if (!j["model"].is_string()) bad("model", "must be a string");
    p.model = j["model"].get<std::string>();
  }
  for (const char* k : {"max_tokens", "max_completion_tokens"})
    if (present(j, k)) p.max_tokens = integer(j, k, 0);
  if (present(j, "temperature")) p.temperature = float(number(j, "temperature", 0, 2));
  if (present(j, "top_p")) {
    p.top_p = float(number(j, "top_p", 0, 1));
    if (p.top_p <= 0) bad("top_p", "must be > 0");
  }
  if (present(j, "top_k")) p.top_k = int(std::min<int64_t>(integer(j, "top_k", 0), 1 << 30));
  if (present(j, "seed")) {
    if (!j["seed"].is_number_integer()) bad("seed", "must be an integer");
    p.has_seed = true;
    p.seed = uint64_t(j["seed"].get<int64_t>());
  }
  if (present(j, "n") && !(j["n"].is_number_integer() && j["n"].get<int64_t>() == 1)) bad("n", "must be 1");
  if (present(j, "stop")) {
    const ojson& s = j["stop"];
    if (s.is_string()) {
      p.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const auto& x : s) {
        if (!x.is_string()) bad("stop", "must be a string or a list of up to 4 strings");
        p.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "must be a string or a list of up to 4 strings");
    }
    for (const auto& x : p.stop)
      if (x.empty()) bad("stop", "must not hold empty strings");
  }
  if (present(j, "stream")) {
    if (!j["stream"].is_boolean()) bad("stream", "must be true or false");
    p.stream = j["stream"].get<bool>();
  }
  if (present(j, "stream_options")) {
    const ojson& so = j["stream_options"];
    if (!so.is_object()) bad("stream_options", "must be an object");
    if (so.contains("include_usage")) {
      if (!so["include_usage"].is_boolean()) bad("stream_options", "include_usage must be true or false");
      p.include_usage = so["include_usage"].get<bool>();
    }
  }
  return p;
}

namespace {
ojson usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens}, {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}
ojson finish(const std::string& r) { return r.empty() ? ojson(nullptr) : ojson(r); }
}  // namespace

ojson completion_response(const CompletionParams& p, const std::string& id, int64_t created, const std::string& model,
                          const std::string& text, const std::string& finish_reason, const Usage& usage) {
  ojson choice = p.chat ? ojson{{"index", 0},
                                {"message", {{"role", "assistant"}, {"content", text}}},
                                {"finish_reason", finish(finish_reason)}}
                        : ojson{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}};
  return {{"id", id}, {"object", p.chat ? "chat.completion" : "text_completion"}, {"created", created},
          {"model", model}, {"choices", ojson::array({choice})}, {"usage", usage_json(usage)}};
}

ojson completion_chunk(const CompletionParams& p, const std::string& id, int64_t created, const std::string& model,
                       const std::string& text, const std::string& finish_reason, bool first) {
  ojson choice;
  if (p.chat) {
    ojson delta = ojson::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || first) delta["content"] = text;
    choice = {{"index", 0}, {"delta", delta}, {"finish_reason", finish(finish_reason)}};
  } else {
    choice = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}};
  }
  return {{"id", id}, {"object", p.chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
          {"model", model}, {"choices", ojson::array({choice})}};
}

ojson usage_chunk(const CompletionParams& p, const std::string& id, int64_t created, const std::string& model,
                  const Usage& usage) {
  return {{"id", id}, {"object", p.chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
          {"model", model}, {"choices", ojson::array()}, {"usage", usage_json(usage)}};
}

std::string StopMatcher::push(const std::string& piece) {
  if (stopped_) return {};
  held_ += piece;
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold back the longest tail that begins some stop string.
  size_t keep = 0;
  for (const auto& s : stops_)
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(held_);
  return stopped_ ? std::string() : out;
}

}  // namespace moe::serve
