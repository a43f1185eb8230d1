#include "text/tokenizer.h"

#include <unordered_map>

#include "core/error.h"
#include "io/atomic_file.h"
#include "text/bpe.h"
#include "text/decoder.h"
#include "text/json_node.h"
#include "text/normalizer.h"
#include "text/pretokenizer.h"
#include "text/utf8.h"

namespace moe::text {

namespace {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool lstrip = false, rstrip = false, special = false;
};

// The added tokens' contents as a byte trie: at each position the longest content starting there.
class Trie {
 public:
  void add(const std::string& s, int32_t value) {
    if (s.empty()) return;  // the reference's trie never reports an empty match
    int32_t n = 0;
    for (unsigned char c : s) {
      auto& kids = nodes_[size_t(n)].kids;
      auto it = kids.find(c);
      if (it == kids.end()) {
        nodes_.push_back({});
        it = nodes_[size_t(n)].kids.emplace(c, int32_t(nodes_.size() - 1)).first;
      }
      n = it->second;
    }
    nodes_[size_t(n)].value = value;
    first_[static_cast<unsigned char>(s[0])] = true;
  }
  // Length of the longest content at s[i], 0 when none; value receives its payload.
  size_t longest(std::string_view s, size_t i, int32_t& value) const {
    if (!first_[static_cast<unsigned char>(s[i])]) return 0;
    size_t best = 0;
    int32_t n = 0;
    for (size_t j = i; j < s.size(); ++j) {
      const auto& kids = nodes_[size_t(n)].kids;
      auto it = kids.find(static_cast<unsigned char>(s[j]));
      if (it == kids.end()) break;
      n = it->second;
      if (nodes_[size_t(n)].value >= 0) best = j + 1 - i, value = nodes_[size_t(n)].value;
    }
    return best;
  }

 private:
  struct Node {
    std::unordered_map<unsigned char, int32_t> kids;
    int32_t value = -1;
  };
  std::vector<Node> nodes_{Node{}};
  bool first_[256] = {};
};

// One step of the post-processor: a template of special tokens around the sequence (ByteLevel's
// post-processor changes offsets only and is no step).
struct Template {
  std::vector<int32_t> before, after;  // ids of the SpecialToken items either side of "A"
};

}  // namespace

struct Tokenizer::Impl {
  std::string name;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Decoder> decoder;
  DecoderTraits traits;
  std::vector<Template> post;
  std::unordered_map<std::string, AddedToken> added;  // by content; a later duplicate wins
  TokenSet added_contents, special_contents;
  Trie trie;
  std::unordered_map<int32_t, std::string> tokens;  // by id (ids may be sparse)
  int32_t size = 0;                                 // 1 + the largest id

  void parse(const JsonNode& root);
  void parse_post_processor(const JsonNode& j);
  const std::string& token(int32_t id) const {
    auto it = tokens.find(id);
    if (it == tokens.end())
      throw Error("[tokenizer] " + name + ": id " + std::to_string(id) + " is not in the vocabulary (size " +
                  std::to_string(size) + ")");
    return it->second;
  }
  std::string decode_tokens(std::vector<std::string> toks, DecodeSpan& span) const;
};

void Tokenizer::Impl::parse(const JsonNode& root) {
  root.only_keys({"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor",
                  "decoder", "model"});
  if (root.has("truncation")) root.at("truncation").fail("truncation is not supported (encode returns every id)");
  if (root.has("padding")) root.at("padding").fail("padding is not supported");
  model = std::make_unique<BpeModel>(root.at("model"));
  normalizer = Normalizer::from_json(root.at("normalizer"));
  pre_tokenizer = PreTokenizer::from_json(root.at("pre_tokenizer"));

  const JsonNode list = root.at("added_tokens");
  std::vector<AddedToken> in_order;
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonNode a = list[i];
    a.only_keys({"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
    AddedToken t;
    t.id = int32_t(a.at("id").integer(0, INT32_MAX - 1));
    t.content = a.at("content").str();
    t.lstrip = a.get_bool("lstrip", false);
    t.rstrip = a.get_bool("rstrip", false);
    t.special = a.get_bool("special", false);
    a.get_bool("single_word", false);  // type-checked; the reference ignores both
    a.get_bool("normalized", false);
    in_order.push_back(t);
  }
  // As the reference: added tokens join the model's token -> id map (so BPE may produce them) and
  // the id -> token table, later ones overriding earlier ones.
  TokenMap& vocab = model->vocab();
  tokens.reserve(vocab.size() + in_order.size());
  for (const auto& [tok, id] : vocab) {
    // Two tokens with one id: the same one every time (the greater), whatever the hash order.
    auto [it, fresh] = tokens.try_emplace(id, tok);
    if (!fresh && it->second < tok) it->second = tok;
    size = std::max(size, id + 1);
  }
  for (const auto& t : in_order) {
    vocab.insert_or_assign(t.content, t.id);
    tokens[t.id] = t.content;
    size = std::max(size, t.id + 1);
    added[t.content] = t;
    added_contents.insert(t.content);
    if (t.special) special_contents.insert(t.content);
    trie.add(t.content, 0);
  }
  model->finish();
  parse_post_processor(root.at("post_processor"));
  decoder = Decoder::from_json(root.at("decoder"), &added_contents);
  if (decoder) decoder->describe(traits);
  else traits.cut_safe = false;  // no decoder: tokens joined by spaces, which a cut would lose
}

void Tokenizer::Impl::parse_post_processor(const JsonNode& j) {
  if (j.is_null()) return;
  const JsonNode type = j.at("type");
  const std::string t = type.str();
  if (t == "ByteLevel") {
    j.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});  // offsets only
    return;
  }
  if (t == "Sequence") {
    j.only_keys({"type", "processors"});
    const JsonNode list = j.at("processors");
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].is_null()) list[i].fail("expected a post-processor, found null");
      parse_post_processor(list[i]);
    }
    return;
  }
  if (t != "TemplateProcessing")
    type.fail("post_processor type '" + t + "' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  j.only_keys({"type", "single", "pair", "special_tokens"});
  j.at("pair").expect_array();  // pairs of texts are not encoded here
  const JsonNode specials = j.at("special_tokens");
  specials.expect_object();
  const JsonNode single = j.at("single");
  Template tpl;
  bool seen_a = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonNode item = single[i];
    item.expect_object();
    if (item.json().size() != 1) item.fail("expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    if (item.json().contains("Sequence")) {
      const JsonNode seq = item.at("Sequence");
      seq.only_keys({"id", "type_id"});
      if (seq.at("id").str() != "A" || seen_a) seq.at("id").fail("a single-text template takes sequence A once");
      seen_a = true;
      continue;
    }
    const JsonNode sp = item.at("SpecialToken");
    sp.only_keys({"id", "type_id"});
    const std::string tok = sp.at("id").str();
    // The reference adds the token of that name (its id in the vocabulary); Hugging Face adds the
    // ids listed in special_tokens. They must agree.
    const int32_t id = [&] {
      auto it = model->vocab().find(tok);
      if (it == model->vocab().end()) sp.at("id").fail("special token '" + tok + "' is not in the vocabulary");
      return it->second;
    }();
    if (specials.json().contains(tok)) {
      const JsonNode entry = specials.at(tok.c_str());
      const JsonNode ids = entry.at("ids");
      if (ids.size() != 1 || ids[0].integer(0, INT32_MAX) != id)
        ids.fail("special token '" + tok + "' must map to its vocabulary id " + std::to_string(id) + " alone");
    }
    (seen_a ? tpl.after : tpl.before).push_back(id);
  }
  if (!seen_a) single.fail("the template has no sequence A");
  post.push_back(std::move(tpl));
}

std::string Tokenizer::Impl::decode_tokens(std::vector<std::string> toks, DecodeSpan& span) const {
  std::string out;
  if (!decoder) {
    // The reference joins the tokens with spaces when there is no decoder.
    for (size_t i = 0; i < toks.size(); ++i) out += (i ? " " : "") + toks[i];
    return out;
  }
  bool fused = false;
  decoder->apply(toks, span, fused);
  for (const auto& t : toks) out += t;
  return out;
}

Tokenizer Tokenizer::from_json(std::string_view text, const std::string& name) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error("[tokenizer] " + name + ": not valid JSON: " + e.what());
  }
  auto impl = std::make_shared<Impl>();
  impl->name = name;
  const JsonNode r(root, impl->name, "");
  r.expect_object();
  impl->parse(r);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::load(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error& e) {
    throw Error("[tokenizer] " + path + ": cannot read the file (" + e.what() + ")");
  }
  return from_json(text, path);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  if (const size_t bad = utf8_invalid_at(text); bad != std::string_view::npos)
    throw Error("[tokenizer] " + m.name + ": encode: the text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  // Pieces: added tokens and the text between them.
  std::vector<std::string_view> sections;
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t unused = 0;
    const size_t len = m.trie.longest(text, i, unused);
    if (len == 0) {
      ++i;
      continue;
    }
    if (i > start) sections.push_back(text.substr(start, i - start));
    sections.push_back(text.substr(i, len));
    i += len;
    start = i;
  }
  if (start < text.size()) sections.push_back(text.substr(start));
  // lstrip / rstrip trim the neighbouring pieces, in order, as the reference does.
  for (size_t i = 0; i < sections.size(); ++i) {
    auto it = m.added.find(std::string(sections[i]));
    if (it == m.added.end()) continue;
    if (it->second.lstrip && i > 0) sections[i - 1] = js_trim_end(sections[i - 1]);
    if (it->second.rstrip && i + 1 < sections.size()) sections[i + 1] = js_trim_start(sections[i + 1]);
  }
  std::vector<int32_t> ids;
  const std::string where = "[tokenizer] " + m.name + ": encode";
  std::vector<std::string> words;
  for (std::string_view s : sections) {
    if (s.empty()) continue;
    if (m.added.count(std::string(s))) {
      ids.push_back(m.model->vocab().find(s)->second);
      continue;
    }
    std::string piece(s);
    if (m.normalizer) piece = m.normalizer->normalize(std::move(piece));
    if (piece.empty()) continue;
    words.assign(1, std::move(piece));
    if (m.pre_tokenizer) m.pre_tokenizer->apply(words);
    m.model->encode(words, ids, where);
  }
  for (const Template& t : m.post) {
    if (!add_special_tokens) continue;
    std::vector<int32_t> wrapped(t.before);
    wrapped.insert(wrapped.end(), ids.begin(), ids.end());
    wrapped.insert(wrapped.end(), t.after.begin(), t.after.end());
    ids.swap(wrapped);
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string& t = m.token(id);
    if (!(skip_special_tokens && m.special_contents.count(t))) toks.push_back(t);
  }
  DecodeSpan span;
  return m.decode_tokens(std::move(toks), span);
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->model->vocab().find(token);
  return it == impl_->model->vocab().end() ? -1 : it->second;
}

const std::string& Tokenizer::id_to_token(int32_t id) const { return impl_->token(id); }

int32_t Tokenizer::vocab_size() const { return impl_->size; }

bool Tokenizer::is_special(int32_t id) const { return impl_->special_contents.count(impl_->token(id)) > 0; }

const std::string& Tokenizer::name() const { return impl_->name; }

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : impl_(tokenizer.impl_), skip_special_(skip_special_tokens) {}

std::string StreamingDecoder::push(int32_t id) {
  const Tokenizer::Impl& m = *impl_;
  const std::string& tok = m.token(id);
  if (skip_special_ && m.special_contents.count(tok)) return {};
  window_.push_back(tok);
  DecodeSpan span{.at_start = at_start_, .at_end = false};
  std::string text = m.decode_tokens(window_, span);
  // The decoders only hold back at the end, so the window's text only grows.
  MOE_ASSERT(text.compare(0, emitted_.size(), emitted_) == 0);
  std::string fresh = text.substr(emitted_.size());
  emitted_ = std::move(text);
  // Cut the window where the text so far cannot change: nothing held back, Strip's start behind
  // us (some text came out), not inside a run of byte-fallback tokens.
  if (m.traits.cut_safe && !span.held && (!at_start_ || !emitted_.empty()) && !(m.traits.byte_fallback && byte_token_value(tok) >= 0)) {
    window_.clear();
    emitted_.clear();
    at_start_ = false;
  }
  return fresh;
}

std::string StreamingDecoder::finish() {
  DecodeSpan span{.at_start = at_start_, .at_end = true};
  std::string text = impl_->decode_tokens(window_, span);
  MOE_ASSERT(text.compare(0, emitted_.size(), emitted_) == 0);
  std::string rest = text.substr(emitted_.size());
  window_.clear();
  emitted_.clear();
  at_start_ = true;
  return rest;
}

}  // namespace moe::text
