#pragma once
// gRPC and protobuf write their own diagnostics to stderr; the library never prints, so the net
// layer silences them once (their failures reach the caller as statuses and moe::Error anyway).
namespace moe::net {
void quiet_third_party_logs();
}
