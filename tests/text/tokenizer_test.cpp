// Tokenizers from tokenizer.json files written by the tests: BPE merge order, GPT-2's byte alphabet,
// added tokens, the streaming decoder on characters split over tokens, the JavaScript regex
// semantics, and errors that name the file and the key. (tests/text/oracle_test.cpp compares the
// real Qwen3, DeepSeek-V3 and Llama-2 tokenizers with the reference implementation.)
#include "text/tokenizer.h"

#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "text/byte_level.h"
#include "text/regex.h"
#include "text/utf8.h"

namespace moe::text {
namespace {

using nlohmann::json;
using test::error_of;
using test::ScratchDir;

// A minimal tokenizer.json: a BPE model over vocab and merges, nothing else.
json bpe_json(const json& vocab, const json& merges) {
  return json{{"version", "1.0"},         {"truncation", nullptr},    {"padding", nullptr},
              {"added_tokens", json::array()}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr},
              {"post_processor", nullptr}, {"decoder", nullptr},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"vocab", vocab}, {"merges", merges}}}};
}

// GPT-2 style: the 256 byte characters as tokens 0..255, ByteLevel pre-tokenizer and decoder.
json byte_level_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    std::string c;
    utf8_append(c, byte_to_char(uint8_t(b)));
    vocab[c] = b;
  }
  json j = bpe_json(vocab, json::array());
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  return j;
}

// SentencePiece style (as Llama 2 and Mixtral): "▁" for spaces, byte fallback, a BOS template.
json byte_fallback_json() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int next = 259;
  for (const char* t : {"\u2581", "a", "b", "\u2581a", "\u2581b", "ab", "\u2581ab"}) vocab[t] = next++;
  json j = bpe_json(vocab, json::array({"\u2581 a", "\u2581 b", "a b", "\u2581a b"}));
  j["model"]["unk_token"] = "<unk>";
  j["model"]["byte_fallback"] = true;
  j["model"]["fuse_unk"] = true;
  j["added_tokens"] = json::array();
  for (int id = 0; id < 3; ++id)
    j["added_tokens"].push_back({{"id", id}, {"content", id == 0 ? "<unk>" : id == 1 ? "<s>" : "</s>"}, {"single_word", false},
                                 {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}});
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\u2581"}},
                                                  {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}})}};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                         {"pair", json::array()},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                            {{"type", "ByteFallback"}},
                                            {{"type", "Fuse"}},
                                            {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  return j;
}

Tokenizer load(const ScratchDir& dir, const json& j) {
  const std::string path = dir.file("tokenizer.json");
  std::ofstream(path) << j.dump();
  return Tokenizer::load(path);
}

// Streams ids through a StreamingDecoder; every piece must be whole characters.
std::string stream(const Tokenizer& t, const std::vector<int32_t>& ids, std::vector<std::string>* pieces = nullptr,
                   bool skip_special = false) {
  StreamingDecoder d(t, skip_special);
  std::string all;
  for (int32_t id : ids) {
    const std::string piece = d.push(id);
    EXPECT_EQ(utf8_invalid_at(piece), std::string::npos) << "a piece splits a character";
    if (pieces) pieces->push_back(piece);
    all += piece;
  }
  const std::string rest = d.finish();
  if (pieces) pieces->push_back(rest);
  return all + rest;
}

TEST(Tokenizer, BpeMergesLowestRankFirst) {
  ScratchDir dir;
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"aa", 6}, {"aaaa", 7}};
  // "b c" outranks "a b": a + bc, then "a bc" makes abc.
  EXPECT_EQ(load(dir, bpe_json(vocab, {"b c", "a b", "a bc"})).encode("abc"), (std::vector<int32_t>{5}));
  EXPECT_EQ(load(dir, bpe_json(vocab, {"b c", "a b"})).encode("abc"), (std::vector<int32_t>{0, 4}));
  EXPECT_EQ(load(dir, bpe_json(vocab, {"a b", "b c"})).encode("abc"), (std::vector<int32_t>{3, 2}));
  // The pair spelling of merges (tokenizers >= 0.20) means the same.
  EXPECT_EQ(load(dir, bpe_json(vocab, json::array({{"a", "b"}, {"b", "c"}}))).encode("abc"), (std::vector<int32_t>{3, 2}));
  // Equal ranks: leftmost first.
  const Tokenizer aa = load(dir, bpe_json(vocab, {"a a", "aa aa"}));
  EXPECT_EQ(aa.encode("aaa"), (std::vector<int32_t>{6, 0}));
  EXPECT_EQ(aa.encode("aaaa"), (std::vector<int32_t>{7}));
  EXPECT_EQ(aa.encode("aaaaa"), (std::vector<int32_t>{7, 0}));
  // A later duplicate of a merge overrides its rank (the reference's Map): "a b" now ranks after "b c".
  EXPECT_EQ(load(dir, bpe_json(vocab, {"a b", "b c", "a b"})).encode("abc"), (std::vector<int32_t>{0, 4}));
  // A piece outside the vocabulary without byte fallback or unk_token is an error naming the file.
  const std::string e = error_of([&] { load(dir, bpe_json(vocab, json::array())).encode("abd"); });
  EXPECT_NE(e.find(dir.file("tokenizer.json")), std::string::npos) << e;
  EXPECT_NE(e.find("'d' is not in the vocabulary"), std::string::npos) << e;
  // ignore_merges: a word that is a token is taken whole.
  json im = bpe_json(vocab, {"a b", "b c"});
  im["model"]["ignore_merges"] = true;
  EXPECT_EQ(load(dir, im).encode("abc"), (std::vector<int32_t>{5}));
}

TEST(Tokenizer, ByteLevelAlphabetRoundTrip) {
  std::set<uint32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const uint32_t c = byte_to_char(uint8_t(b));
    EXPECT_EQ(char_to_byte(c), b);
    seen.insert(c);
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(byte_to_char('A'), uint32_t('A'));
  EXPECT_EQ(byte_to_char(' '), 0x120u);   // "Ġ"
  EXPECT_EQ(byte_to_char('\n'), 0x10Au);  // "Ċ"
  EXPECT_EQ(byte_to_char(0xAD), 0x143u);  // the soft hyphen is not printable either
  EXPECT_EQ(char_to_byte(0x4E2D), -1);
  EXPECT_EQ(bytes_to_chars("a b"), "a\xC4\xA0" "b");

  ScratchDir dir;
  const Tokenizer t = load(dir, byte_level_json());
  EXPECT_EQ(t.vocab_size(), 256);
  for (const std::string s : {"Hello, world!", "  two  spaces\t\ttabs\r\n", "中文 and 日本語", "👨‍👩‍👧‍👦 👍🏽",
                              "e\u0301 \u00e9", "\x01\x7f controls", "I'll 12345", ""}) {
    const std::vector<int32_t> ids = t.encode(s);
    EXPECT_EQ(ids.size(), s.size()) << s;  // no merges: one token per byte
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], static_cast<unsigned char>(s[i]));
    EXPECT_EQ(t.decode(ids), s);
    EXPECT_EQ(stream(t, ids), s);
  }
}

TEST(Tokenizer, AddedTokensLongestFirstWithStrip) {
  ScratchDir dir;
  json j = byte_level_json();
  auto added = [&](int id, const char* content, bool special, bool lstrip, bool rstrip) {
    j["added_tokens"].push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", lstrip},
                                 {"rstrip", rstrip}, {"normalized", false}, {"special", special}});
  };
  added(256, "<sp>", true, false, false);
  added(257, "<sp>x", false, false, false);
  added(258, "[L]", false, true, false);
  added(259, "[R]", false, false, true);
  const Tokenizer t = load(dir, j);
  const int32_t a = 'a', b = 'b', x = 'x';  // byte ids; ' ' is byte 0x20 -> "Ġ" -> id 32
  EXPECT_EQ(t.encode("a<sp>b"), (std::vector<int32_t>{a, 256, b}));
  EXPECT_EQ(t.encode("<sp>x<sp>"), (std::vector<int32_t>{257, 256}));  // the longest content wins
  EXPECT_EQ(t.encode("x<sp>xb"), (std::vector<int32_t>{x, 257, b}));   // inside a word too
  EXPECT_EQ(t.encode("a  [L]  b"), (std::vector<int32_t>{a, 258, 32, 32, b}));
  EXPECT_EQ(t.encode("a  [R]  b"), (std::vector<int32_t>{a, 32, 32, 259, b}));
  EXPECT_EQ(t.encode("a\u00a0[L]"), (std::vector<int32_t>{a, 258}));  // JavaScript's trim: U+00A0 too
  EXPECT_EQ(t.token_to_id("<sp>"), 256);
  EXPECT_EQ(t.token_to_id("nope"), -1);
  EXPECT_EQ(t.id_to_token(257), "<sp>x");
  EXPECT_EQ(t.vocab_size(), 260);
  EXPECT_TRUE(t.is_special(256));
  EXPECT_FALSE(t.is_special(257));
  EXPECT_EQ(t.decode(std::vector<int32_t>{a, 256, b, 257}), "a<sp>b<sp>x");
  EXPECT_EQ(t.decode(std::vector<int32_t>{a, 256, b, 257}, true), "ab<sp>x");
  EXPECT_EQ(stream(t, {a, 256, b, 257}, nullptr, true), "ab<sp>x");
  EXPECT_NE(error_of([&] { t.id_to_token(260); }).find("id 260 is not in the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([&] { t.decode(std::vector<int32_t>{-1}); }).find("id -1"), std::string::npos);
  EXPECT_NE(error_of([&] { t.encode("ok \xff"); }).find("not valid UTF-8 (byte 3)"), std::string::npos);
}

TEST(Tokenizer, TemplateAddsBosAndNormalizerSpaces) {
  ScratchDir dir;
  const Tokenizer t = load(dir, byte_fallback_json());
  const int32_t bos = 1, sp_a = t.token_to_id("\u2581a"), sp_ab = t.token_to_id("\u2581ab"), sp = t.token_to_id("\u2581");
  EXPECT_EQ(t.encode("ab a"), (std::vector<int32_t>{bos, sp_ab, sp_a}));
  EXPECT_EQ(t.encode("ab a", false), (std::vector<int32_t>{sp_ab, sp_a}));
  EXPECT_EQ(t.encode(""), (std::vector<int32_t>{bos}));
  // Not in the vocabulary: UTF-8 bytes; each piece between added tokens gets its "▁".
  const std::vector<int32_t> zh = t.encode("a 中</s>b", false);
  EXPECT_EQ(zh, (std::vector<int32_t>{sp_a, sp, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD, 2, t.token_to_id("\u2581b")}));
  EXPECT_EQ(t.decode(zh), "a 中</s> b");
  EXPECT_EQ(t.decode(t.encode("ab a")), "<s> ab a");  // Strip removes one leading space only
  EXPECT_EQ(t.decode(t.encode("ab a", false)), "ab a");
}

TEST(Tokenizer, StreamingDecoderWaitsForWholeCharacters) {
  ScratchDir dir;
  const Tokenizer bl = load(dir, byte_level_json());
  std::vector<std::string> pieces;
  EXPECT_EQ(stream(bl, bl.encode("a中👍b"), &pieces), "a中👍b");
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "", "", "中", "", "", "", "👍", "b", ""}));
  // An ill-formed sequence comes out as U+FFFD once it is known to be ill-formed, or at finish().
  pieces.clear();
  EXPECT_EQ(stream(bl, {0xE4, 0xB8, 'a', 0xF0}, &pieces), "\uFFFDa\uFFFD");
  EXPECT_EQ(pieces, (std::vector<std::string>{"", "", "\uFFFDa", "", "\uFFFD"}));
  EXPECT_EQ(bl.decode(std::vector<int32_t>{0xE4, 0xB8, 'a', 0xF0}), "\uFFFDa\uFFFD");

  const Tokenizer bf = load(dir, byte_fallback_json());
  pieces.clear();
  const std::vector<int32_t> ids = bf.encode("a 中 ab", false);
  EXPECT_EQ(stream(bf, ids, &pieces), "a 中 ab");
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", " ", "", "", "中", " ab", ""}));
  // With the BOS first, Strip's leading space stays (the text starts with "<s>").
  EXPECT_EQ(stream(bf, bf.encode("a 中 ab")), "<s> a 中 ab");
  EXPECT_EQ(stream(bf, bf.encode("a 中 ab"), nullptr, true), "a 中 ab");
}

TEST(Tokenizer, StreamingDecoderMatchesDecodeOnRandomIds) {
  ScratchDir dir;
  std::mt19937 rng(7);
  // Decoders after Fuse see the whole text: a Replace there may match across tokens (a string
  // pattern, then a regex), and Strip trims both ends.
  auto after_fuse = [](const json& pattern) {
    json j = byte_fallback_json();
    j["decoder"]["decoders"] = json::array({{{"type", "ByteFallback"}},
                                            {{"type", "Fuse"}},
                                            {{"type", "Replace"}, {"pattern", pattern}, {"content", "<$&>"}},
                                            {{"type", "Strip"}, {"content", "\u2581"}, {"start", 2}, {"stop", 2}}});
    return j;
  };
  for (const json& j : {byte_level_json(), byte_fallback_json(), after_fuse({{"String", "\u2581ab"}}),
                        after_fuse({{"Regex", "a+b?"}})}) {
    const Tokenizer t = load(dir, j);
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<int32_t> ids(rng() % 40);
      for (auto& id : ids) id = int32_t(rng() % uint32_t(t.vocab_size()));
      for (bool skip : {false, true}) ASSERT_EQ(stream(t, ids, nullptr, skip), t.decode(ids, skip)) << trial;
    }
  }
}

TEST(Tokenizer, RegexFollowsJavaScript) {
  const std::string w = "[test]";
  std::vector<Regex::Match> m;
  Regex space("\\s+", false, w);
  space.find_all("a\uFEFFb", m);  // JavaScript's \s has U+FEFF ...
  EXPECT_EQ(m.size(), 1u);
  space.find_all("a\u0085b", m);  // ... and not U+0085
  EXPECT_EQ(m.size(), 0u);
  Regex contraction("(?i:'s|'t|'re|'ve|'m|'ll|'d)", false, w);
  contraction.find_all("it'S it\u2019s it'\u017F", m);  // ASCII case only, as the reference rewrites it
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].begin, 2u);
  Regex dot("a.b", false, w);
  dot.find_all("a\u2028b a\u00e9b", m);
  EXPECT_EQ(m.size(), 1u);
  Regex digits("\\d+", false, w);
  digits.find_all("12\u0663", m);  // ASCII digits only
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].end, 2u);
  Regex empty("", true, w);
  empty.find_all("a\u00e9", m);  // empty matches advance a whole character
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(js_replace_all(empty, "ab", "-"), "-a-b-");
  Regex x("x(y)?", false, w);
  EXPECT_EQ(js_replace_all(x, "axyb xc", "[$&|$1|$$|$2]"), "a[xy|y|$|$2]b [x||$|$2]c");
  EXPECT_NE(js_regex_to_pcre2("\\p{L}+|\\s", w).find("\\p{L}+"), std::string::npos);
  EXPECT_NE(error_of([&] { Regex r("[\\S]", false, w); }).find("not supported"), std::string::npos);
  EXPECT_NE(error_of([&] { Regex r("(unclosed", false, w); }).find("does not compile"), std::string::npos);
}

TEST(Tokenizer, Utf8DecodingAsTextDecoder) {
  std::string out;
  EXPECT_EQ(utf8_decode_lossy("\xF0\x9F\x91", out, true), 3u);
  EXPECT_EQ(out, "");
  EXPECT_EQ(utf8_decode_lossy("\xF0\x9F\x91", out, false), 0u);
  EXPECT_EQ(out, "\uFFFD");
  out.clear();
  utf8_decode_lossy("\xE0\x80|\xED\xA0\x80|\xC3", out);  // overlong, surrogate, truncated
  EXPECT_EQ(out, "\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD|\uFFFD");
  EXPECT_EQ(utf8_invalid_at("ok\xC0\xAF"), 2u);
  EXPECT_EQ(utf8_invalid_at("\xF4\x90\x80\x80"), 0u);
  EXPECT_EQ(utf8_invalid_at("\xF4\x8F\xBF\xBF \u00e9"), std::string::npos);
  EXPECT_EQ(js_trim_end("a \u3000\uFEFF"), "a");
  EXPECT_EQ(js_trim_start("\u00a0\n b "), "b ");
  EXPECT_EQ(utf16_length("a\u00e9中👍"), 5u);
}

// Each broken or unsupported tokenizer.json gives one moe::Error naming the file and the key.
TEST(Tokenizer, ErrorsNameTheFileAndTheKey) {
  ScratchDir dir;
  const std::string path = dir.file("tokenizer.json");
  auto error_for = [&](const std::function<void(json&)>& edit) {
    json j = byte_level_json();
    edit(j);
    return error_of([&] { load(dir, j); });
  };
  struct Case {
    std::function<void(json&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "pre_tokenizer.type: pre_tokenizer type 'Whitespace' is not supported"},
      {[](json& j) { j.erase("model"); }, "model: missing"},
      {[](json& j) { j["model"].erase("merges"); }, "model.merges: missing"},
      {[](json& j) { j["model"]["type"] = "WordPiece"; }, "model.type: model type 'WordPiece' is not supported"},
      {[](json& j) { j["model"]["vocab"]["a"] = -1; }, "model.vocab['a']: -1 is out of range"},
      {[](json& j) { j["model"]["vocab"]["a"] = "one"; }, "model.vocab['a']: expected an integer, found a string"},
      {[](json& j) { j["model"]["merges"] = {"a b", "ab"}; }, "model.merges[1]: 'ab' is not \"left right\""},
      {[](json& j) { j["model"]["merges"] = json::array({{"a", "b"}, "a b"}); }, "model.merges[1]: expected a pair of strings"},
      {[](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout: BPE dropout is not supported"},
      {[](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }, "model.end_of_word_suffix"},
      {[](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "model.continuing_subword_prefix"},
      {[](json& j) { j["model"]["extra"] = 1; }, "model.extra: unknown key (not supported)"},
      {[](json& j) { j["truncation"] = {{"max_length", 8}}; }, "truncation: truncation is not supported"},
      {[](json& j) { j["padding"] = {{"strategy", "BatchLongest"}}; }, "padding: padding is not supported"},
      {[](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, "normalizer.type: normalizer type 'Lowercase' is not supported"},
      {[](json& j) { j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "BertNormalizer"}}}}}; },
       "normalizer.normalizers[1].type: normalizer type 'BertNormalizer'"},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"},
                               {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "MergedWithPrevious"}, {"invert", false}}}}};
       },
       "pre_tokenizer.pretokenizers[0].behavior: Split behavior 'MergedWithPrevious' is not supported"},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}, {"invert", false}};
       },
       "pre_tokenizer.pattern.Regex: pattern '(a' does not compile"},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Isolated"}, {"invert", true}};
       },
       "pre_tokenizer.invert: Split with invert true is not supported"},
      {[](json& j) { j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Glob", "*"}}}, {"behavior", "Isolated"}}; },
       "pre_tokenizer.pattern: expected {\"String\": ...} or {\"Regex\": ...}"},
      {[](json& j) { j["decoder"] = {{"type", "Metaspace"}, {"replacement", "_"}}; }, "decoder.type: decoder type 'Metaspace' is not supported"},
      {[](json& j) { j["post_processor"] = {{"type", "BertProcessing"}}; }, "post_processor.type: post_processor type 'BertProcessing'"},
      {[](json& j) {
         j["post_processor"] = {{"type", "TemplateProcessing"},
                                {"single", json::array({{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                                {"pair", json::array()},
                                {"special_tokens", json::object()}};
       },
       "post_processor.single[0].SpecialToken.id: special token '<bos>' is not in the vocabulary"},
      {[](json& j) { j["added_tokens"] = {{{"id", 300}, {"special", true}}}; }, "added_tokens[0].content: missing"},
      {[](json& j) { j["added_tokens"] = {{{"id", 300}, {"content", "x"}, {"lstrip", "yes"}}}; }, "added_tokens[0].lstrip: expected true or false"},
      {[](json& j) { j["added_tokens"] = json::object(); }, "added_tokens: expected an array, found an object"},
      {[](json& j) { j.erase("decoder"); }, "decoder: missing"},
  };
  for (const Case& c : cases) {
    const std::string e = error_for(c.edit);
    EXPECT_EQ(e.rfind("[tokenizer] " + path + ": ", 0), 0u) << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << e;
  }
  // Not JSON, not an object, not there.
  std::ofstream(path) << "{\"model\": ";
  std::string e = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(e.find("[tokenizer] " + path + ": not valid JSON"), std::string::npos) << e;
  std::ofstream(path) << "[1, 2]";
  e = error_of([&] { Tokenizer::load(path); });
  EXPECT_NE(e.find("[tokenizer] " + path + ": expected an object, found an array"), std::string::npos) << e;
  e = error_of([&] { Tokenizer::load(dir.file("absent.json")); });
  EXPECT_NE(e.find("[tokenizer] " + dir.file("absent.json") + ": cannot read the file"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { Tokenizer::from_json("{}", "inline.json"); }).find("[tokenizer] inline.json: model: missing"), std::string::npos);
}

}  // namespace
}  // namespace moe::text
