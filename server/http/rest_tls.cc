#include "server/http/rest_tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

namespace selu::http {

struct TlsFiles::Material {
  std::string text;  // the files' contents, to notice a change
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  STACK_OF(X509) * chain = nullptr;  // intermediates after the first certificate
  X509_STORE* store = nullptr;       // client CA (null: no client certificates)
  STACK_OF(X509_NAME) * ca_names = nullptr;

  ~Material() {
    X509_free(cert);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    X509_STORE_free(store);
    sk_X509_NAME_pop_free(ca_names, X509_NAME_free);
  }
};

namespace {

core::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().empty()) {
    return core::InvalidArgumentError(std::string(flag) + ": cannot read '" + path + "'");
  }
  return text.str();
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

}  // namespace

core::StatusOr<std::unique_ptr<TlsFiles>> TlsFiles::Load(std::string cert, std::string key,
                                                         std::string client_ca) {
  std::unique_ptr<TlsFiles> files(
      new TlsFiles(std::move(cert), std::move(key), std::move(client_ca)));
  SELU_ASSIGN_OR_RETURN(files->current_, files->Read());
  return files;
}

core::StatusOr<std::shared_ptr<const TlsFiles::Material>> TlsFiles::Read() const {
  SELU_ASSIGN_OR_RETURN(std::string cert_text, ReadFile(cert_, "--tls-cert"));
  SELU_ASSIGN_OR_RETURN(std::string key_text, ReadFile(key_, "--tls-key"));
  std::string ca_text;
  if (!client_ca_.empty()) {
    SELU_ASSIGN_OR_RETURN(ca_text, ReadFile(client_ca_, "--tls-client-ca"));
  }
  auto m = std::make_shared<Material>();
  m->text = cert_text + '\0' + key_text + '\0' + ca_text;
  {
    Bio bio = MemoryBio(cert_text);
    m->cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (m->cert == nullptr) return core::InvalidArgumentError("--tls-cert: no PEM certificate");
    m->chain = sk_X509_new_null();
    while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      sk_X509_push(m->chain, extra);
    }
  }
  {
    Bio bio = MemoryBio(key_text);
    m->key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    if (m->key == nullptr) return core::InvalidArgumentError("--tls-key: no PEM private key");
  }
  if (X509_check_private_key(m->cert, m->key) != 1) {
    ERR_clear_error();
    return core::InvalidArgumentError("--tls-key does not belong to --tls-cert");
  }
  if (!ca_text.empty()) {
    m->store = X509_STORE_new();
    m->ca_names = sk_X509_NAME_new_null();
    Bio bio = MemoryBio(ca_text);
    int count = 0;
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(m->store, ca);
      sk_X509_NAME_push(m->ca_names, X509_NAME_dup(X509_get_subject_name(ca)));
      X509_free(ca);
      ++count;
    }
    if (count == 0) return core::InvalidArgumentError("--tls-client-ca: no PEM certificate");
  }
  ERR_clear_error();  // the end of each PEM list leaves an error queued
  return std::shared_ptr<const Material>(std::move(m));
}

std::shared_ptr<const TlsFiles::Material> TlsFiles::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

bool TlsFiles::Reload() {
  auto next = Read();
  if (!next.ok()) return false;
  std::lock_guard lock(mu_);
  if ((*next)->text == current_->text) return false;
  current_ = std::move(next).value();
  return true;
}

int TlsFiles::OnCertificate(SSL* ssl, void* self) {
  const std::shared_ptr<const Material> m = static_cast<TlsFiles*>(self)->current();
  if (SSL_use_certificate(ssl, m->cert) != 1 || SSL_use_PrivateKey(ssl, m->key) != 1 ||
      SSL_set1_chain(ssl, m->chain) != 1) {
    return 0;
  }
  if (m->store != nullptr) {
    SSL_set1_verify_cert_store(ssl, m->store);
    STACK_OF(X509_NAME)* names = sk_X509_NAME_deep_copy(m->ca_names, X509_NAME_dup, X509_NAME_free);
    SSL_set_client_CA_list(ssl, names);
  }
  return 1;
}

bool TlsFiles::Configure(SSL_CTX& ctx) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_cert_cb(&ctx, &TlsFiles::OnCertificate, this);
  if (!client_ca_.empty()) {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return true;
}

}  // namespace selu::http
