#pragma once
// Version 1 of the expert protocol (proto/expert.proto): the version constant both sides check, and
// the conversion between float rows and Matrix messages with every check a server applies to input
// it did not write (shape, dtype, byte size, finiteness).
#include <cstdint>
#include <string>
#include <vector>

#include "expert.pb.h"

namespace moe::net {

namespace pb = ::moe::expert::v1;

constexpr uint32_t kProtocolVersion = 1;

// m = rows [n, d] as f32.
void to_matrix(pb::Matrix& m, const float* rows, int64_t n, int64_t d);

// "" when m is an f32 matrix [n, cols] with 1 <= n <= max_rows, exactly n * cols * 4 bytes and only
// finite values; otherwise what is wrong, naming `what` ("input", "grad_output").
std::string check_matrix(const pb::Matrix& m, int64_t cols, int64_t max_rows, const char* what);

// The rows of a checked matrix (copied: protobuf's bytes carry no float alignment).
void from_matrix(float* dst, const pb::Matrix& m);

// A protocol version error's message, or "" when version is ours.
std::string check_version(uint32_t version);

}  // namespace moe::net
