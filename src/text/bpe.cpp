#include "text/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "core/error.h"
#include "text/utf8.h"

namespace moe::text {

BpeModel::BpeModel(const JsonNode& j) {
  j.only_keys({"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
               "byte_fallback", "ignore_merges", "vocab", "merges"});
  const JsonNode type = j.at("type");
  if (type.str() != "BPE") type.fail("model type '" + type.str() + "' is not supported (supported: BPE)");
  if (j.has("dropout") && j.at("dropout").number() != 0.0) j.at("dropout").fail("BPE dropout is not supported");
  if (!j.get_str("continuing_subword_prefix", "").empty())
    j.at("continuing_subword_prefix").fail("a non-empty continuing_subword_prefix is not supported");
  if (!j.get_str("end_of_word_suffix", "").empty()) j.at("end_of_word_suffix").fail("a non-empty end_of_word_suffix is not supported");
  has_unk_ = j.has("unk_token");
  if (has_unk_) unk_token_ = j.at("unk_token").str();
  byte_fallback_ = j.get_bool("byte_fallback", false);
  fuse_unk_ = j.get_bool("fuse_unk", false);
  ignore_merges_ = j.get_bool("ignore_merges", false);

  const JsonNode vocab = j.at("vocab");
  vocab.expect_object();
  vocab_.reserve(vocab.json().size() * 2);
  for (auto it = vocab.json().begin(); it != vocab.json().end(); ++it) {
    const JsonNode v(it.value(), vocab.file(), vocab.key() + "['" + it.key() + "']");
    vocab_.insert_or_assign(it.key(), int32_t(v.integer(0, INT32_MAX - 1)));
  }

  const JsonNode merges = j.at("merges");
  const size_t n = merges.size();
  merge_list_.reserve(n);
  // Two spellings: "left right" (tokenizers < 0.20) or ["left", "right"]; the first merge decides.
  const bool pairs = n > 0 && merges.json()[0].is_array();
  for (size_t i = 0; i < n; ++i) {
    const nlohmann::json& m = merges.json()[i];
    if (pairs) {
      if (!m.is_array() || m.size() != 2 || !m[0].is_string() || !m[1].is_string())
        merges[i].fail("expected a pair of strings [\"left\", \"right\"], like the first merge");
      merge_list_.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      if (!m.is_string()) merges[i].fail("expected a string \"left right\", like the first merge");
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) merges[i].fail("'" + s + "' is not \"left right\"");
      // JavaScript's s.split(" ", 2): anything after a second space is dropped.
      const size_t sp2 = s.find(' ', sp + 1);
      merge_list_.emplace_back(s.substr(0, sp), s.substr(sp + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp - 1));
    }
  }
}

int32_t BpeModel::symbol(std::string_view s) const {
  auto it = symbols_.find(s);
  return it == symbols_.end() ? -1 : it->second;
}

int32_t BpeModel::add_symbol(const std::string& s) {
  auto [it, fresh] = symbols_.try_emplace(s, int32_t(symbol_text_.size()));
  if (fresh) {
    symbol_text_.push_back(s);
    auto v = vocab_.find(s);
    symbol_id_.push_back(v == vocab_.end() ? -1 : v->second);
  }
  return it->second;
}

void BpeModel::finish() {
  symbols_.clear();
  symbol_text_.clear();
  symbol_id_.clear();
  merges_.clear();
  symbols_.reserve(vocab_.size() + merge_list_.size());
  for (const auto& [tok, id] : vocab_) add_symbol(tok);
  merges_.reserve(merge_list_.size());
  for (size_t r = 0; r < merge_list_.size(); ++r) {
    const auto& [a, b] = merge_list_[r];
    const int32_t sa = add_symbol(a), sb = add_symbol(b), res = add_symbol(a + b);
    // A later duplicate overrides: the reference builds its rank table with new Map(entries).
    merges_[(uint64_t(uint32_t(sa)) << 32) | uint32_t(sb)] = Merge{int32_t(r), res};
  }
  auto u = has_unk_ ? vocab_.find(unk_token_) : vocab_.end();
  unk_id_ = u == vocab_.end() ? -1 : u->second;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
}

void BpeModel::piece_ids(int32_t sym, std::string_view text, std::vector<int32_t>& ids, const std::string& where) const {
  if (sym >= 0 && symbol_id_[size_t(sym)] >= 0) {
    ids.push_back(symbol_id_[size_t(sym)]);
    return;
  }
  if (byte_fallback_) {
    bool all = true;
    for (unsigned char c : text) all = all && byte_ids_[c] >= 0;
    if (all) {
      for (unsigned char c : text) ids.push_back(byte_ids_[c]);
      return;
    }
  }
  if (unk_id_ >= 0) {
    ids.push_back(unk_id_);
    return;
  }
  throw Error(where + ": '" + std::string(text) + "' is not in the vocabulary and the model has no unk_token" +
              (has_unk_ ? " in its vocabulary" : ""));
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids, const std::string& where) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  // One node per code point: its symbol (-1: not a symbol, never merges) and its span of word.
  struct Node {
    int32_t sym;
    uint32_t begin, end;
    int32_t prev, next;
    uint32_t version;
  };
  std::vector<Node> nodes;
  for (size_t i = 0; i < word.size();) {
    const size_t b = i;
    i += utf8_length(static_cast<unsigned char>(word[i]));
    const int32_t n = int32_t(nodes.size());
    nodes.push_back(Node{symbol(word.substr(b, i - b)), uint32_t(b), uint32_t(std::min(i, word.size())), n - 1, n + 1, 0});
  }
  nodes.back().next = -1;
  if (nodes.size() > 1) {
    // (rank, position of the left node): the lowest rank first, the leftmost among equals, as the
    // reference's score rank + position / length orders them. Entries go stale when a node merges.
    struct Entry {
      int32_t rank;
      uint32_t pos;
      int32_t left, right;
      uint32_t lv, rv;
      bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
    auto push_pair = [&](int32_t l) {
      const int32_t r = nodes[size_t(l)].next;
      if (r < 0 || nodes[size_t(l)].sym < 0 || nodes[size_t(r)].sym < 0) return;
      auto it = merges_.find((uint64_t(uint32_t(nodes[size_t(l)].sym)) << 32) | uint32_t(nodes[size_t(r)].sym));
      if (it == merges_.end()) return;
      heap.push(Entry{it->second.rank, nodes[size_t(l)].begin, l, r, nodes[size_t(l)].version, nodes[size_t(r)].version});
    };
    for (int32_t l = 0; l + 1 < int32_t(nodes.size()); ++l) push_pair(l);
    while (!heap.empty()) {
      const Entry e = heap.top();
      heap.pop();
      Node& L = nodes[size_t(e.left)];
      Node& R = nodes[size_t(e.right)];
      if (L.next != e.right || L.version != e.lv || R.version != e.rv || R.sym < 0) continue;
      const Merge& m = merges_.find((uint64_t(uint32_t(L.sym)) << 32) | uint32_t(R.sym))->second;
      L.sym = m.result;
      L.end = R.end;
      L.next = R.next;
      ++L.version;
      R.sym = -1;
      ++R.version;
      if (L.next >= 0) nodes[size_t(L.next)].prev = e.left;
      if (L.prev >= 0) push_pair(L.prev);
      push_pair(e.left);
    }
  }
  for (int32_t i = 0; i >= 0; i = nodes[size_t(i)].next) {
    const Node& n = nodes[size_t(i)];
    piece_ids(n.sym, word.substr(n.begin, n.end - n.begin), ids, where);
  }
}

void BpeModel::encode(const std::vector<std::string>& words, std::vector<int32_t>& ids, const std::string& where) const {
  const size_t start = ids.size();
  for (const std::string& w : words) encode_word(w, ids, where);
  if (fuse_unk_ && unk_id_ >= 0) {
    // The reference fuses over all the words of a piece of text, not word by word.
    auto end = std::unique(ids.begin() + std::ptrdiff_t(start), ids.end(),
                           [&](int32_t a, int32_t b) { return a == unk_id_ && b == unk_id_; });
    ids.erase(end, ids.end());
  }
}

}  // namespace moe::text
