#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace moe::text {

namespace {
struct Tables {
  std::array<uint32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // the alphabet ends below U+0100 + 68
  std::array<std::string, 256> utf8;
  Tables() {
    to_byte.fill(-1);
    // bytes_to_unicode() of GPT-2: '!'..'~', '¡'..'¬', '®'..'ÿ' map to themselves, the rest in
    // byte order to 256, 257, ...
    auto kept = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) to_char[size_t(b)] = kept(b) ? uint32_t(b) : next++;
    for (int b = 0; b < 256; ++b) {
      to_byte[to_char[size_t(b)]] = int16_t(b);
      utf8_append(utf8[size_t(b)], to_char[size_t(b)]);
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}
}  // namespace

uint32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }

int char_to_byte(uint32_t cp) { return cp < tables().to_byte.size() ? tables().to_byte[cp] : -1; }

std::string bytes_to_chars(std::string_view s) {
  const Tables& t = tables();
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char b : s) out += t.utf8[b];
  return out;
}

}  // namespace moe::text
