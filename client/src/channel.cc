// MakeChannel: plaintext, TLS, mutual TLS or TLS without verification, with
// ghz's flags (--insecure, --cacert, --cert, --key, --cname, --skipTLS).
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "client/src/client_common.h"

namespace selu::client {
namespace {

void CheckTlsFlags(const TlsOptions& tls) {
  if (tls.plaintext && tls.enabled()) {
    throw UsageError(
        "--insecure (plaintext) conflicts with --cacert, --cert, --key, --cname and "
        "--skipTLS");
  }
  if (tls.cert.empty() != tls.key.empty()) {
    throw UsageError("--cert and --key go together (the client certificate and its key)");
  }
}

// Verifies the server: its chain against --cacert (or the system's roots) and
// its name against the target host (or --cname, set as a channel argument).
std::shared_ptr<grpc::ChannelCredentials> VerifyingCredentials(const TlsOptions& tls) {
  grpc::SslCredentialsOptions ssl;
  if (!tls.cacert.empty()) ssl.pem_root_certs = ReadFileOrThrow(tls.cacert);
  if (!tls.cert.empty()) {
    ssl.pem_cert_chain = ReadFileOrThrow(tls.cert);
    ssl.pem_private_key = ReadFileOrThrow(tls.key);
  }
  return grpc::SslCredentials(ssl);
}

// --skipTLS: the handshake encrypts but accepts any server certificate (for
// tests and self-signed set-ups; a man in the middle goes unnoticed).
std::shared_ptr<grpc::ChannelCredentials> UnverifiedCredentials(const TlsOptions& tls) {
  using grpc::experimental::IdentityKeyCertPair;
  std::vector<IdentityKeyCertPair> identity;
  if (!tls.cert.empty()) {
    identity.push_back(IdentityKeyCertPair{.private_key = ReadFileOrThrow(tls.key),
                                           .certificate_chain = ReadFileOrThrow(tls.cert)});
  }
  const std::string roots = tls.cacert.empty() ? std::string() : ReadFileOrThrow(tls.cacert);
  grpc::experimental::TlsChannelCredentialsOptions options;
  if (!roots.empty() || !identity.empty()) {
    options.set_certificate_provider(
        std::make_shared<grpc::experimental::StaticDataCertificateProvider>(roots, identity));
    if (!roots.empty()) options.watch_root_certs();
    if (!identity.empty()) options.watch_identity_key_cert_pairs();
  }
  options.set_verify_server_certs(false);
  options.set_check_call_host(false);
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& connection, int channel_id) {
  const TlsOptions& tls = connection.tls;
  CheckTlsFlags(tls);
  grpc::ChannelArguments args;
  // Distinct arguments and a local subchannel pool: each channel is its own
  // TCP connection (bench --connections).
  args.SetInt("grpc.channel_id", channel_id);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (!tls.enabled()) {
    credentials = grpc::InsecureChannelCredentials();
  } else if (tls.skip_verify) {
    credentials = UnverifiedCredentials(tls);
  } else {
    if (!tls.cname.empty()) args.SetSslTargetNameOverride(tls.cname);
    credentials = VerifyingCredentials(tls);
  }
  if (!credentials) throw UsageError("cannot create the TLS credentials (see the gRPC log)");
  return grpc::CreateCustomChannel(connection.address, credentials, args);
}

}  // namespace selu::client
