#include "server/tls_credentials.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

namespace selu {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Certificate = std::unique_ptr<X509, X509Free>;
using PrivateKey = std::unique_ptr<EVP_PKEY, KeyFree>;

// "--tls-cert (SELU_TLS_CERT) '/path'": what the operator has to fix.
std::string Name(const char* flag, const char* env, const std::string& path) {
  return std::string(flag) + " (" + env + ") '" + path + "'";
}

core::StatusOr<std::string> ReadPem(const std::string& name, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::InvalidArgumentError(name + ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return core::InvalidArgumentError(name + ": cannot read the file");
  return text.str();
}

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of `pem` and how many there are (a chain or a bundle).
core::StatusOr<Certificate> ParseCertificates(const std::string& name, const std::string& pem,
                                              int* count) {
  Bio bio = MemoryBio(pem);
  Certificate first;
  *count = 0;
  while (Certificate cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    if (!first) first = std::move(cert);
    ++*count;
  }
  ERR_clear_error();  // the read that ended the loop
  if (*count == 0) {
    return core::InvalidArgumentError(name + ": no PEM certificate in the file");
  }
  return first;
}

core::Status CheckCertificateAndKey(const ServerOptions& o) {
  const std::string cert_name = Name("--tls-cert", "SELU_TLS_CERT", o.tls_cert);
  const std::string key_name = Name("--tls-key", "SELU_TLS_KEY", o.tls_key);
  SELU_ASSIGN_OR_RETURN(const std::string cert_pem, ReadPem(cert_name, o.tls_cert));
  SELU_ASSIGN_OR_RETURN(const std::string key_pem, ReadPem(key_name, o.tls_key));
  int count = 0;
  SELU_ASSIGN_OR_RETURN(Certificate cert, ParseCertificates(cert_name, cert_pem, &count));
  Bio key_bio = MemoryBio(key_pem);
  PrivateKey key{PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)};
  ERR_clear_error();
  if (!key) {
    return core::InvalidArgumentError(key_name +
                                      ": no PEM private key in the file (or it is encrypted)");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return core::InvalidArgumentError(key_name + ": the key does not belong to the certificate " +
                                      cert_name);
  }
  return core::OkStatus();
}

}  // namespace

core::Status CheckTlsFiles(const ServerOptions& o) {
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return core::InvalidArgumentError(
        "--tls-cert (SELU_TLS_CERT) and --tls-key (SELU_TLS_KEY) go together: give both or "
        "neither");
  }
  if (o.tls_cert.empty()) {
    if (!o.tls_client_ca.empty()) {
      return core::InvalidArgumentError(
          "--tls-client-ca (SELU_TLS_CLIENT_CA) needs --tls-cert and --tls-key (mutual TLS is "
          "TLS first)");
    }
    return core::OkStatus();
  }
  SELU_RETURN_IF_ERROR(CheckCertificateAndKey(o));
  if (!o.tls_client_ca.empty()) {
    const std::string name = Name("--tls-client-ca", "SELU_TLS_CLIENT_CA", o.tls_client_ca);
    SELU_ASSIGN_OR_RETURN(const std::string pem, ReadPem(name, o.tls_client_ca));
    int count = 0;
    SELU_ASSIGN_OR_RETURN(Certificate ca, ParseCertificates(name, pem, &count));
    (void)ca;
  }
  return core::OkStatus();
}

core::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& o) {
  SELU_RETURN_IF_ERROR(CheckTlsFiles(o));
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  // The provider reads the files once here, synchronously, then every
  // reload period on its own thread; an unchanged file is not re-applied.
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      o.tls_key, o.tls_cert, o.tls_client_ca, static_cast<unsigned int>(o.tls_reload_seconds));
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (o.tls_client_ca.empty()) {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

}  // namespace selu
