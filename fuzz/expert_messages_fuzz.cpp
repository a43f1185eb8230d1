// Expert protocol messages off the wire (moe.expert.v1): the first byte picks the message a peer
// would receive (a server: Info/Forward/Backward requests; a client: Forward/Backward replies), the
// rest is parsed as it, then put through the checks the server and client apply before using
// any of it (src/net/expert_server.cpp call(), src/net/expert_client.cpp), and the rows copied
// out when those accept them.
#include <cmath>
#include <vector>

#include "net/protocol.h"

namespace {

constexpr int64_t kD = 8, kMaxRows = 64;

// The server's and the client's matrix path: check, then copy out what passed.
void take(const moe::net::pb::Matrix& m, int64_t max_rows, const char* what) {
  if (!moe::net::check_matrix(m, kD, max_rows, what).empty()) return;
  std::vector<float> rows(static_cast<size_t>(m.rows() * kD));
  moe::net::from_matrix(rows.data(), m);
  for (float v : rows)
    if (!std::isfinite(v)) __builtin_trap();  // check_matrix promised finite values
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace pb = moe::net::pb;
  if (size < 1) return 0;
  const uint8_t kind = data[0] % 5;
  const void* p = data + 1;
  const int n = static_cast<int>(size - 1);
  switch (kind) {
    case 0: {
      pb::InfoRequest r;
      if (r.ParseFromArray(p, n)) moe::net::check_version(r.version());
      break;
    }
    case 1: {
      pb::ForwardRequest r;
      if (!r.ParseFromArray(p, n) || !moe::net::check_version(r.version()).empty()) break;
      take(r.input(), kMaxRows, "input");
      break;
    }
    case 2: {
      pb::BackwardRequest r;
      if (!r.ParseFromArray(p, n) || !moe::net::check_version(r.version()).empty()) break;
      if (!moe::net::check_matrix(r.input(), kD, kMaxRows, "input").empty()) break;
      if (r.grad_output().rows() != r.input().rows() || !(r.lr() >= 0) || !std::isfinite(r.lr())) break;
      take(r.input(), kMaxRows, "input");
      take(r.grad_output(), kMaxRows, "grad_output");
      break;
    }
    case 3: {  // the client sent 4 rows
      pb::ForwardReply r;
      if (r.ParseFromArray(p, n) && moe::net::check_version(r.version()).empty()) take(r.output(), 4, "reply");
      break;
    }
    default: {
      pb::BackwardReply r;
      if (r.ParseFromArray(p, n) && moe::net::check_version(r.version()).empty()) take(r.grad_input(), 4, "reply");
      break;
    }
  }
  return 0;
}
