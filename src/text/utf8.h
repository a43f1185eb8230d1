#pragma once
// UTF-8 helpers for the tokenizers. The reference tokenizer (transformers.js) works on JavaScript
// strings, so the few places where JavaScript's definitions differ from Unicode's (what trim()
// strips, how TextDecoder replaces bad bytes) follow JavaScript here.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe::text {

// Offset of the first byte that is not part of well-formed UTF-8 (overlong forms, surrogates and
// code points above U+10FFFF are not), or npos when s is well formed.
size_t utf8_invalid_at(std::string_view s);

// The code point at s[i] (well-formed input only); i moves past it.
uint32_t utf8_next(std::string_view s, size_t& i);

// Byte length of the character that starts with lead byte b (1 for continuation bytes).
inline size_t utf8_length(unsigned char b) { return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

void utf8_append(std::string& out, uint32_t cp);

// JavaScript's WhiteSpace and LineTerminator: what String.prototype.trim() strips and what \s
// matches (it includes U+FEFF; Unicode's White_Space does not).
bool is_js_whitespace(uint32_t cp);
std::string_view js_trim_start(std::string_view s);
std::string_view js_trim_end(std::string_view s);

// Number of UTF-16 code units of s (JavaScript's String length).
size_t utf16_length(std::string_view s);

// Bytes to text as the WHATWG TextDecoder does (JavaScript's): each maximal ill-formed
// subsequence becomes one U+FFFD. With hold_tail, an incomplete but so far valid sequence at the
// end is not decoded: the return value is how many bytes were held back (0 when none), so a
// caller streaming bytes can decode them once the rest arrives. Appends to out.
size_t utf8_decode_lossy(std::string_view bytes, std::string& out, bool hold_tail = false);

}  // namespace moe::text
