// A model directory's tokens: bytes without tokenizer.json (vocab_size 256 only), the tokenizer's
// ids with it (its ids within vocab_size), and the end-of-text ids from tokenizer_config.json and
// config.json in each of their published forms; every bad file an error naming it.
#include "text/model_tokenizer.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "../test_util.h"

namespace moe::text {
namespace {

using nlohmann::json;
using test::error_of;
using test::ScratchDir;

// A tokenizer.json of 6 tokens: "a", "b", "ab" and the specials <s>, </s>, <|end|>.
json small_tokenizer() {
  auto added = [](int id, const char* s) {
    return json{{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                {"normalized", false}, {"special", true}};
  };
  return json{{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
              {"added_tokens", json::array({added(3, "<s>"), added(4, "</s>"), added(5, "<|end|>")})},
              {"normalizer", nullptr}, {"pre_tokenizer", nullptr}, {"post_processor", nullptr}, {"decoder", nullptr},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                         {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", json::array({"a b"})}}}};
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(ModelTokenizer, BytesWithoutTokenizerJson) {
  ScratchDir d;
  const ModelTokenizer m = load_model_tokenizer(d.path, 256);
  EXPECT_FALSE(m.tokenizer.has_value());
  EXPECT_TRUE(m.stop_ids.empty());
  // A larger vocabulary means token ids that are not bytes: it needs its tokenizer.
  EXPECT_NE(error_of([&] { load_model_tokenizer(d.path, 32000); }).find("vocab_size 32000 needs a tokenizer.json"), std::string::npos);
}

TEST(ModelTokenizer, LoadsTheTokenizerAndItsStopIds) {
  ScratchDir d;
  write(d.file("tokenizer.json"), small_tokenizer().dump());
  {
    const ModelTokenizer m = load_model_tokenizer(d.path, 300);
    ASSERT_TRUE(m.tokenizer.has_value());
    EXPECT_EQ(m.tokenizer->encode("aab", false), (std::vector<int32_t>{0, 2}));
    EXPECT_TRUE(m.stop_ids.empty());  // neither file names one
  }
  // eos_token as a string (Llama 2, Qwen3) and config.json's id list (Qwen3's generation ids).
  write(d.file("tokenizer_config.json"), R"({"eos_token": "</s>", "bos_token": "<s>"})");
  write(d.file("config.json"), R"({"model_type": "mixtral", "eos_token_id": [5, 4]})");
  EXPECT_EQ(load_model_tokenizer(d.path, 6).stop_ids, (std::vector<int32_t>{4, 5}));
  // eos_token as an AddedToken object (DeepSeek-V3), config.json's single id.
  write(d.file("tokenizer_config.json"), R"({"eos_token": {"__type": "AddedToken", "content": "<|end|>", "lstrip": false}})");
  write(d.file("config.json"), R"({"eos_token_id": 4})");
  EXPECT_EQ(load_model_tokenizer(d.path, 6).stop_ids, (std::vector<int32_t>{5, 4}));
  write(d.file("tokenizer_config.json"), R"({"eos_token": null})");
  write(d.file("config.json"), R"({"eos_token_id": null})");
  EXPECT_TRUE(load_model_tokenizer(d.path, 6).stop_ids.empty());
}

TEST(ModelTokenizer, ClearErrors) {
  ScratchDir d;
  write(d.file("tokenizer.json"), small_tokenizer().dump());
  // The tokenizer's ids must fit the model's embedding.
  EXPECT_NE(error_of([&] { load_model_tokenizer(d.path, 5); }).find("has ids up to 5, beyond the model's vocab_size 5"), std::string::npos);
  const std::vector<std::pair<std::string, std::string>> bad_config = {
      {R"({"eos_token": "<none>"})", "eos_token '<none>' is not a token"},
      {R"({"eos_token": 4})", "eos_token must be a string"},
      {R"({"eos_token": {"id": 4}})", "eos_token must be a string"},
      {R"({"eos_token": )", "tokenizer_config.json: not valid JSON"},
  };
  for (const auto& [text, want] : bad_config) {
    write(d.file("tokenizer_config.json"), text);
    const std::string e = error_of([&] { load_model_tokenizer(d.path, 6); });
    EXPECT_NE(e.find(want), std::string::npos) << text << " -> " << e;
  }
  write(d.file("tokenizer_config.json"), "{}");
  for (const char* text : {R"({"eos_token_id": 6})", R"({"eos_token_id": [4, -1]})", R"({"eos_token_id": "4"})"}) {
    write(d.file("config.json"), text);
    EXPECT_NE(error_of([&] { load_model_tokenizer(d.path, 6); }).find("config.json: eos_token_id must be ids below vocab_size 6"), std::string::npos) << text;
  }
  write(d.file("tokenizer.json"), "{\"model\": ");
  EXPECT_NE(error_of([&] { load_model_tokenizer(d.path, 6); }).find("tokenizer.json"), std::string::npos);
}

}  // namespace
}  // namespace moe::text
