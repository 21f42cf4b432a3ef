// The gRPC server credentials selu-serve listens with: plaintext, TLS, or
// mutual TLS, from ServerOptions' --tls-* flags.
//
// With TLS, gRPC's FileWatcherCertificateProvider re-reads the certificate,
// key and client CA files every --tls-reload-seconds; a changed file takes
// effect for new handshakes, and established connections keep the
// certificate they were made with. Rotating means replacing the files (as a
// Kubernetes Secret volume or cert-manager does, atomically); nothing restarts.
// A file that is bad at a later re-read is logged by gRPC and the previous
// certificate keeps being served.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "server/core/base/status.h"
#include "server/options.h"

namespace selu {

// INVALID_ARGUMENT naming the file (and its flag) when a TLS file is missing,
// unreadable or not PEM, when the key does not belong to the certificate, or
// when --tls-cert and --tls-key are not given together (or --tls-client-ca
// without them). OK when TLS is off.
core::Status CheckTlsFiles(const ServerOptions& options);

// InsecureServerCredentials when --tls-cert is empty; otherwise
// CheckTlsFiles(), then TLS credentials from a file-watching provider
// (requiring and verifying client certificates with --tls-client-ca).
core::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options);

}  // namespace selu
