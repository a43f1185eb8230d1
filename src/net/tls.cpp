#include "net/tls.h"

#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "core/error.h"
#include "net/identity.h"

namespace moe::net {
namespace {

// Checks the server certificate's key after the handshake (synchronously: a parse and a compare).
class PinnedKeyVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit PinnedKeyVerifier(std::string key_id) : key_id_(std::move(key_id)) {}
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request, std::function<void(grpc::Status)>,
              grpc::Status* sync_status) override {
    const grpc::string_ref pem = request->peer_cert();
    std::string got;
    try {
      dht::crypto::Certificate cert(std::string_view(pem.data(), pem.size()));
      got = cert.getPublicKey().getLongId().toString();
    } catch (const std::exception&) {
    }
    *sync_status = got == key_id_ ? grpc::Status::OK
                                  : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                                 "the server's certificate is not the key of its record");
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  std::string key_id_;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> tls_server_credentials(const NodeIdentity& id) {
  const dht::Blob key = id.dht().first->serialize();
  grpc::SslServerCredentialsOptions o(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  o.pem_key_cert_pairs.push_back({std::string(key.begin(), key.end()), id.dht().second->toString(false)});
  return grpc::SslServerCredentials(o);
}

std::shared_ptr<grpc::ChannelCredentials> pinned_channel_credentials(const std::string& key_id) {
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_verify_server_certs(false);  // no certificate authority: the verifier checks the key
  o.set_check_call_host(false);      // the address is not in the certificate; the key is
  o.set_certificate_verifier(grpc::experimental::ExternalCertificateVerifier::Create<PinnedKeyVerifier>(key_id));
  auto c = grpc::experimental::TlsCredentials(o);
  if (!c) throw Error("[net] cannot make TLS channel credentials");
  return c;
}

void ServerPins::pin(const std::string& address, const std::string& key_id) {
  std::lock_guard<std::mutex> lk(mu_);
  keys_[address] = key_id;
}

std::string ServerPins::key(const std::string& address) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = keys_.find(address);
  return it == keys_.end() ? "" : it->second;
}

}  // namespace moe::net
