#pragma once
// TLS to backends (https:// members of --backend, --route and the config
// file's "backend").
//
//   upstream_tls       one client context (asio::ssl::context, an SSL_CTX)
//                      per configuration generation, built at start-up or
//                      reload only when some member is https, and shared by
//                      every worker (an SSL_CTX is safe to share; each
//                      connection has its own SSL). TLS 1.2 and 1.3 only;
//                      certificates are verified against the system trust
//                      store (OpenSSL's default paths, /etc/ssl/certs on
//                      Debian) plus every --upstream-ca file, unless
//                      --upstream-insecure turns verification off.
//   tls_session_cache  the last session a member's backend gave, one per
//                      member and worker (the pool's): a new connection
//                      offers it (SSL_set_session), so only the first
//                      connection pays the full handshake. OpenSSL hands
//                      new sessions (TLS 1.2 at the handshake, TLS 1.3
//                      tickets with the first read after it) to a callback
//                      that stores them in the cache of the connection's
//                      pool; the connection holds that cache by shared_ptr,
//                      so the cache outlives every SSL that points at it.
//
// Per connection, prepare() sets SNI (RFC 6066 section 3: names only, never
// an IP literal) and the identity the certificate must match (RFC 6125: the
// host name; for an IP literal, the address in an iPAddress SAN).
//
// Thread: upstream_tls is built on one thread and then only read;
// tls_session_cache is used on its worker's thread only.
#include <asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <vector>

namespace gateway::proxy {

struct upstream_tls_options {
  std::vector<std::string> ca_files;  // --upstream-ca: PEM files of CAs trusted besides the system store
  bool insecure = false;              // --upstream-insecure: no certificate verification (development only)
};

class tls_session_cache {
 public:
  tls_session_cache() = default;
  tls_session_cache(const tls_session_cache&) = delete;
  tls_session_cache& operator=(const tls_session_cache&) = delete;
  ~tls_session_cache();

  // The session to offer, or null; borrowed (SSL_set_session takes its own reference).
  SSL_SESSION* last() const noexcept { return last_; }
  // Keeps `s` (takes over the caller's reference), dropping the previous one.
  void remember(SSL_SESSION* s) noexcept;
  // Forgets the session (the backend refused to resume it, or it failed).
  void forget() noexcept { remember(nullptr); }

 private:
  SSL_SESSION* last_ = nullptr;
};

class upstream_tls {
 public:
  // Throws std::invalid_argument naming the flag ("--upstream-ca FILE: ...")
  // for a CA file that cannot be read or holds no certificate.
  explicit upstream_tls(const upstream_tls_options& o);
  upstream_tls(const upstream_tls&) = delete;
  upstream_tls& operator=(const upstream_tls&) = delete;

  asio::ssl::context& context() noexcept { return ctx_; }
  bool verifies() const noexcept { return !insecure_; }
  const upstream_tls_options& options() const noexcept { return options_; }

  // Readies a fresh connection's SSL before its handshake: SNI and the
  // certificate identity for `host` (a name or an IP literal), the cached
  // session if any, and the cache that receives the backend's new sessions.
  // False when OpenSSL refuses the host (it is then not a valid name).
  bool prepare(SSL* ssl, const std::string& host, tls_session_cache& cache) const noexcept;

 private:
  upstream_tls_options options_;
  bool insecure_;
  asio::ssl::context ctx_;
};

// True when some member of `backend_list` ("URL[;weight=N],URL...") is https.
bool has_https_member(std::string_view backend_list) noexcept;

}  // namespace gateway::proxy
