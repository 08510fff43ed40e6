#include "gateway/proxy/upstream_tls.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <asio/ip/address.hpp>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <sys/stat.h>

#include "gateway/net/tls_context.hpp"

namespace gateway::proxy {

namespace {

// The SSL's ex_data slot that points at its pool's tls_session_cache.
int cache_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL's new-session callback (client side): runs inside the handshake
// or a read of the connection, so on its worker's thread. Returning 1 keeps
// the reference OpenSSL passed.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* cache = static_cast<tls_session_cache*>(SSL_get_ex_data(ssl, cache_index()));
  if (cache == nullptr) return 0;
  cache->remember(session);
  return 1;
}

bool is_file(const char* path) {
  struct stat st{};
  return path != nullptr && ::stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const char* path) {
  struct stat st{};
  return path != nullptr && ::stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// The system trust store. OpenSSL's default paths are compiled in
// (OPENSSLDIR: /usr/lib/ssl on Debian, whose cert.pem and certs/ link to
// /etc/ssl/certs) and honour SSL_CERT_FILE and SSL_CERT_DIR. A static binary
// in a scratch image has no /usr/lib/ssl: then the usual bundle locations
// of the distributions are tried, so mounting the host's /etc/ssl/certs is
// enough.
void load_system_store(SSL_CTX* ctx) {
  SSL_CTX_set_default_verify_paths(ctx);
  const char* env_file = std::getenv(X509_get_default_cert_file_env());
  const char* env_dir = std::getenv(X509_get_default_cert_dir_env());
  if (env_file != nullptr || env_dir != nullptr) return;
  if (is_file(X509_get_default_cert_file()) || is_dir(X509_get_default_cert_dir())) return;
  for (const char* bundle : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                             "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"}) {
    if (is_file(bundle) && SSL_CTX_load_verify_locations(ctx, bundle, nullptr) == 1) return;
  }
  if (is_dir("/etc/ssl/certs")) SSL_CTX_load_verify_locations(ctx, nullptr, "/etc/ssl/certs");
}

}  // namespace

tls_session_cache::~tls_session_cache() {
  if (last_ != nullptr) SSL_SESSION_free(last_);
}

void tls_session_cache::remember(SSL_SESSION* s) noexcept {
  if (last_ != nullptr) SSL_SESSION_free(last_);
  last_ = s;
}

upstream_tls::upstream_tls(const upstream_tls_options& o)
    : options_(o), insecure_(o.insecure), ctx_(asio::ssl::context::tls_client) {
  SSL_CTX* c = ctx_.native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  // Renegotiation is refused (a backend asking for it gets an alert).
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_ciphersuites(c, net::tls13_suites);
  if (insecure_) {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    load_system_store(c);
  }
  for (const auto& file : o.ca_files) {
    if (std::FILE* f = std::fopen(file.c_str(), "r")) {
      std::fclose(f);
    } else {
      throw std::invalid_argument("--upstream-ca " + file + ": cannot read the file");
    }
    if (SSL_CTX_load_verify_locations(c, file.c_str(), nullptr) != 1)
      throw std::invalid_argument("--upstream-ca " + file + ": no PEM certificate in it");
  }
  // Sessions are kept by the pools (one per member and worker), not in
  // OpenSSL's shared cache: no lock between workers.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, &on_new_session);
}

bool upstream_tls::prepare(SSL* ssl, const std::string& host, tls_session_cache& cache) const noexcept {
  SSL_set_ex_data(ssl, cache_index(), &cache);
  std::error_code ec;
  (void)asio::ip::make_address(host, ec);
  if (ec) {
    if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) return false;
    if (!insecure_) {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set1_host(ssl, host.c_str()) != 1) return false;
    }
  } else if (!insecure_) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1) return false;
  }
  if (cache.last() != nullptr) SSL_set_session(ssl, cache.last());
  return true;
}

bool has_https_member(std::string_view list) noexcept {
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    if (item.substr(0, 8) == "https://") return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace gateway::proxy
