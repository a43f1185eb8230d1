#pragma once
// TLS for expert calls, pinned to the key in a server's signed record instead of a certificate
// authority: the server presents the self-signed certificate of its identity (identity.h); the
// client accepts the handshake only if that certificate's public key is the key the record named.
// A server that cannot prove the key fails every call, and the ban list does the rest.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

namespace moe::net {

class NodeIdentity;

// The server's credentials: its identity's certificate and private key. Clients may present a
// certificate of their own (self-signed, not verified against any authority: the handshake proves
// they hold its key), which names them for rate limits and the gradient guard.
std::shared_ptr<grpc::ServerCredentials> tls_server_credentials(const NodeIdentity& id);
// A channel's credentials that accept only a server whose certificate carries key_id (hex);
// `client`: the identity this client presents (nullptr: none).
std::shared_ptr<grpc::ChannelCredentials> pinned_channel_credentials(const std::string& key_id,
                                                                     const NodeIdentity* client = nullptr);
// The key id of the certificate a TLS client presented on this call; "" for none (or plaintext).
std::string client_key_id(const grpc::ServerContext& ctx);

// Which key each server address must prove (from the records a client accepted); thread-safe.
class ServerPins {
 public:
  void pin(const std::string& address, const std::string& key_id);
  std::string key(const std::string& address) const;  // "": none (plain channel)

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> keys_;
};

}  // namespace moe::net
