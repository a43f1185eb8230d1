// The OpenAI request parser (every malformed field a 400 naming it), the response shapes, and stop
// strings over streamed pieces.
#include "serve/openai_api.h"

#include <gtest/gtest.h>

namespace moe::serve {
namespace {

std::string error_of(const std::string& body, bool chat = false, int status = 400) {
  try {
    parse_completion_request(body, chat);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, status) << body;
    return e.what();
  }
  return "no error";
}

TEST(OpenAIApi, ParsesTheFieldsOfACompletion) {
  const CompletionParams p = parse_completion_request(
      R"({"model":"m","prompt":["hi"],"max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,"seed":9,)"
      R"("stop":["a","bc"],"stream":true,"stream_options":{"include_usage":true},"n":1,"user":"x"})",
      false);
  EXPECT_EQ(p.prompt, "hi");
  EXPECT_EQ(p.model, "m");
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_EQ(p.temperature, 0.0f);
  EXPECT_EQ(p.top_p, 0.5f);
  EXPECT_EQ(p.top_k, 3);
  EXPECT_TRUE(p.has_seed);
  EXPECT_EQ(p.seed, 9u);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(p.stream && p.include_usage);
  const CompletionParams c = parse_completion_request(
      R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],"max_completion_tokens":3,)"
      R"("chat_template_kwargs":{"enable_thinking":false}})",
      true);
  EXPECT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(c.max_tokens, 3);
  EXPECT_EQ(c.template_kwargs["enable_thinking"], false);
  EXPECT_EQ(c.max_tokens, 3);
  EXPECT_EQ(parse_completion_request(R"({"prompt":"x"})", false).max_tokens, -1);
}

TEST(OpenAIApi, MalformedRequestsAre400sNamingTheField) {
  EXPECT_NE(error_of("{\"prompt\": ").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("[1]").find("must be a JSON object"), std::string::npos);
  EXPECT_NE(error_of("{}").find("'prompt' is required"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":""})").find("'prompt' must not be empty"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":3})").find("'prompt' must be a string"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x","max_tokens":-1})").find("'max_tokens' must be >= 0"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x","max_tokens":"5"})").find("'max_tokens' must be an integer"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x","temperature":3})").find("'temperature' must be in [0.0, 2.0]"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x","top_p":0})").find("'top_p' must be > 0"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x","n":2})").find("'n' must be 1"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x","stop":["a","b","c","d","e"]})").find("'stop' must be a string or a list of up to 4"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x","stop":""})").find("'stop' must not hold empty strings"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x","stream":"yes"})").find("'stream' must be true or false"), std::string::npos);
  EXPECT_NE(error_of(R"({"prompt":"x"})", true).find("'messages' is required"), std::string::npos);
  EXPECT_NE(error_of(R"({"messages":[]})", true).find("'messages' must be a non-empty list"), std::string::npos);
  EXPECT_NE(error_of(R"({"messages":[{"content":"x"}]})", true).find("string \"role\""), std::string::npos);
  EXPECT_NE(error_of(R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})", true).find("content parts"),
            std::string::npos);
  const ApiError e(413, "too big");
  EXPECT_EQ(nlohmann::json::parse(e.body())["error"]["code"], 413);
}

TEST(OpenAIApi, ResponsesAndChunksHaveOpenAIsShape) {
  CompletionParams chat;
  chat.chat = true;
  const auto r = completion_response(chat, "id1", 5, "m", "hello", "stop", {.prompt_tokens = 3, .completion_tokens = 2});
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["usage"]["total_tokens"], 5);
  const auto first = completion_chunk(chat, "id1", 5, "m", "", "", true);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const auto last = completion_chunk(chat, "id1", 5, "m", "", "length", false);
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  CompletionParams text;
  EXPECT_EQ(completion_chunk(text, "id2", 5, "m", "ab", "", false)["choices"][0]["text"], "ab");
  EXPECT_EQ(usage_chunk(text, "id2", 5, "m", {.prompt_tokens = 1, .completion_tokens = 1})["choices"].size(), 0u);
}

TEST(StopMatcher, StopsAcrossPiecesAndHoldsBackPossibleStarts) {
  StopMatcher m({"END", "xy"});
  EXPECT_EQ(m.push("abc E"), "abc ");  // "E" may start END
  EXPECT_EQ(m.push("N"), "");          // "EN" still may
  EXPECT_EQ(m.push("x"), "EN");  // "x" may start "xy"
  EXPECT_EQ(m.push("z"), "xz");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push("1EN"), "1");
  EXPECT_EQ(m.push("Dtail"), "");  // the stop string and what follows are never shown
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.flush(), "");
  StopMatcher none({});
  EXPECT_EQ(none.push("a"), "a");
  StopMatcher tail({"STOP"});
  EXPECT_EQ(tail.push("abST"), "ab");
  EXPECT_EQ(tail.flush(), "ST");  // the end came first: the held tail is text
  StopMatcher multi({"é!"});  // multi-byte stop strings
  EXPECT_EQ(multi.push("café"), "caf");
  EXPECT_EQ(multi.push("!x"), "");
  EXPECT_TRUE(multi.stopped());
}

}  // namespace
}  // namespace moe::serve
