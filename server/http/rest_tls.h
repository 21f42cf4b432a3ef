// TlsFiles: the REST port's TLS material, read from the --tls-cert,
// --tls-key and --tls-client-ca files (the gRPC port's), and re-read every
// --tls-reload-seconds: a replaced certificate, key or client CA takes effect
// for new handshakes (each handshake picks the current material in OpenSSL's
// certificate callback); established connections keep theirs. A re-read
// that fails (a file half-written, a key that does not match) keeps the
// previous material.
//
// Thread safety: Reload() and handshakes may run concurrently.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>

#include "server/core/base/status.h"

namespace selu::http {

class TlsFiles {
 public:
  // INVALID_ARGUMENT naming the file when one cannot be read or parsed, or
  // the key does not belong to the certificate.
  static core::StatusOr<std::unique_ptr<TlsFiles>> Load(std::string cert, std::string key,
                                                        std::string client_ca);
  // Sets up a server context: TLS 1.2 or later, the certificate callback,
  // and, with a client CA, required and verified client certificates.
  bool Configure(SSL_CTX& ctx);
  // Re-reads the files; true if the material changed.
  bool Reload();

  struct Material;

 private:
  TlsFiles(std::string cert, std::string key, std::string client_ca)
      : cert_(std::move(cert)), key_(std::move(key)), client_ca_(std::move(client_ca)) {}
  core::StatusOr<std::shared_ptr<const Material>> Read() const;
  std::shared_ptr<const Material> current() const;
  static int OnCertificate(SSL* ssl, void* self);

  const std::string cert_, key_, client_ca_;
  mutable std::mutex mu_;
  std::shared_ptr<const Material> current_;  // guarded by mu_
};

}  // namespace selu::http
