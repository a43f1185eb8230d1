#include "net/tls.h"

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <string_view>

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
  grpc::SslServerCredentialsOptions o(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  o.pem_key_cert_pairs.push_back({std::string(key.begin(), key.end()), id.dht().second->toString(false)});
  return grpc::SslServerCredentials(o);
}

std::shared_ptr<grpc::ChannelCredentials> pinned_channel_credentials(const std::string& key_id,
                                                                     const NodeIdentity* client) {
  grpc::experimental::TlsChannelCredentialsOptions o;
  if (client) {
    const dht::Blob key = client->dht().first->serialize();
    o.set_certificate_provider(std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
        std::vector<grpc::experimental::IdentityKeyCertPair>{
            {std::string(key.begin(), key.end()), client->dht().second->toString(false)}}));
    o.watch_identity_key_cert_pairs();
  }
  o.set_verify_server_certs(false);  // no certificate authority: the verifier checks the key
  o.set_check_call_host(false);      // the address is not in the certificate; the key is
  o.set_certificate_verifier(grpc::experimental::ExternalCertificateVerifier::Create<PinnedKeyVerifier>(key_id));
  auto c = grpc::experimental::TlsCredentials(o);
  if (!c) throw Error("[net] cannot make TLS channel credentials");
  return c;
}

std::string client_key_id(const grpc::ServerContext& ctx) {
  const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth) return {};
  const std::vector<grpc::string_ref> pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) return {};
  const std::string_view pem(pems.front().data(), pems.front().size());
  // Parsing a certificate per call costs more than the call's bookkeeping: remember the last few
  // (looked up by view: no copy of the certificate per call).
  static std::mutex mu;
  static std::map<std::string, std::string, std::less<>> cache;
  {
    std::lock_guard<std::mutex> lk(mu);
    if (auto it = cache.find(pem); it != cache.end()) return it->second;
  }
  std::string id;
  try {
    id = dht::crypto::Certificate(pem).getPublicKey().getLongId().toString();
  } catch (const std::exception&) {
    return {};
  }
  std::lock_guard<std::mutex> lk(mu);
  if (cache.size() >= 4096) cache.clear();
  cache.emplace(std::string(pem), id);
  return id;
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
