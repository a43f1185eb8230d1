// The request bodies of moe serve's /v1/completions and /v1/chat/completions (serve/openai_api.h):
// any bytes parse or give an ApiError with a 4xx status, and a parsed request's stop strings run
// over the same bytes cut into pieces, the matcher never showing a stop string.
#include <cstdint>
#include <string>

#include "serve/openai_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const moe::serve::CompletionParams p = moe::serve::parse_completion_request(body, chat);
    moe::serve::StopMatcher m(p.stop);
    std::string shown;
    for (size_t i = 0; i < body.size(); i += 1 + (uint8_t(body[i]) % 7)) shown += m.push(body.substr(i, 1 + (uint8_t(body[i]) % 7)));
    shown += m.flush();
    for (const auto& s : p.stop)
      if (shown.find(s) != std::string::npos) __builtin_trap();
    (void)moe::serve::dump_json(moe::serve::completion_response(p, "id", 0, "m", shown, "stop", {}));
  } catch (const moe::serve::ApiError& e) {
    if (e.status < 400 || e.status >= 500) __builtin_trap();
    (void)e.body();
  }
  return 0;
}
