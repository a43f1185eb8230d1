#pragma once
// GPT-2's byte-level alphabet: every byte is shown as one printable code point (printable Latin-1
// bytes as themselves, the others as U+0100 + k), so byte-level BPE vocabularies are text.
#include <cstdint>
#include <string>
#include <string_view>

namespace moe::text {

// The code point that stands for byte b.
uint32_t byte_to_char(uint8_t b);
// The byte a code point stands for, or -1 for code points outside the alphabet.
int char_to_byte(uint32_t cp);
// Each byte of s as its character (UTF-8).
std::string bytes_to_chars(std::string_view s);

}  // namespace moe::text
