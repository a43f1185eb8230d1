#include "net/protocol.h"

#include <cmath>
#include <cstring>

namespace moe::net {

void to_matrix(pb::Matrix& m, const float* rows, int64_t n, int64_t d) {
  m.set_rows(n);
  m.set_cols(d);
  m.set_dtype("f32");
  m.set_data(reinterpret_cast<const char*>(rows), static_cast<size_t>(n * d) * sizeof(float));
}

std::string check_matrix(const pb::Matrix& m, int64_t cols, int64_t max_rows, const char* what) {
  const std::string w(what);
  if (m.dtype() != "f32") return w + ": dtype '" + m.dtype().substr(0, 16) + "', expected 'f32'";
  if (m.cols() != cols)
    return w + ": " + std::to_string(m.cols()) + " columns, the expert's width is " + std::to_string(cols);
  if (m.rows() < 1 || m.rows() > max_rows)
    return w + ": " + std::to_string(m.rows()) + " rows, expected 1.." + std::to_string(max_rows);
  const uint64_t want = static_cast<uint64_t>(m.rows()) * static_cast<uint64_t>(cols) * sizeof(float);
  if (m.data().size() != want)
    return w + ": " + std::to_string(m.data().size()) + " data bytes for [" + std::to_string(m.rows()) + ", " +
           std::to_string(cols) + "] f32 (" + std::to_string(want) + " expected)";
  const char* p = m.data().data();
  for (uint64_t i = 0; i < want; i += sizeof(float)) {
    float v;
    std::memcpy(&v, p + i, sizeof v);
    if (!std::isfinite(v)) return w + ": non-finite value at element " + std::to_string(i / sizeof(float));
  }
  return {};
}

void from_matrix(float* dst, const pb::Matrix& m) { std::memcpy(dst, m.data().data(), m.data().size()); }

std::string check_version(uint32_t version) {
  if (version == kProtocolVersion) return {};
  return "protocol version " + std::to_string(version) + ", this peer speaks moe.expert.v" +
         std::to_string(kProtocolVersion);
}

}  // namespace moe::net
