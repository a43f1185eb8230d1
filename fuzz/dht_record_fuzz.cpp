// Expert records off the DHT: a value's bytes, stored by any peer, read as a per-uid record, as a
// prefix record, and by a storing node's signature check (src/net/record_codec.h). The first byte
// picks the reader. (The seed corpus holds unsigned and half-signed records, no valid signature.)
#include "net/record_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  moe::net::RecordDrop why;
  std::string key;
  switch (data[0] % 3) {
    case 0:
      if (auto r = moe::net::parse_expert_record(text, 1'000'000, why); r && why != moe::net::RecordDrop::None)
        __builtin_trap();  // a record always comes with None
      break;
    case 1:
      if (auto c = moe::net::parse_child_record(text, "ffn.0", 1'000'000, why); c && c->coord < 0) __builtin_trap();
      break;
    default:
      moe::net::record_signature_holds(text, key);
  }
  return 0;
}
