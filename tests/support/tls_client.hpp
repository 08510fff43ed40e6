#pragma once
// Test support for HTTPS: certificates made at test time with the openssl
// CLI (no private key is committed), and a blocking TLS client on OpenSSL
// with a receive timeout, so a missing answer fails the test instead of
// hanging it.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/files.hpp"
#include "tests/support/test_server.hpp"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;

namespace gateway::test {

// Makes a self-signed EC P-256 certificate for `names` (the first is the
// CN, all are DNS subjectAltNames) into cert_file and key_file with the
// openssl CLI. Throws std::runtime_error with its output on failure.
void make_certificate(const std::vector<std::string>& names, const std::string& cert_file, const std::string& key_file);

// A three-level chain made with the openssl CLI in `dir`: a root CA
// (ca), an intermediate CA it signed (intermediate), and a leaf for `names`
// signed by the intermediate (leaf, key); each file holds one PEM block.
// A client trusting only `ca` verifies the leaf only when the server also
// sends the intermediate. Throws std::runtime_error with openssl's output.
struct certificate_chain {
  std::string ca, intermediate, leaf, key;
};
certificate_chain make_certificate_chain(const std::vector<std::string>& names, const std::string& dir);

// One TLS connection to 127.0.0.1:port, verified against `ca_file` (empty:
// not verified), with `server_name` as SNI (empty: none), resuming
// `session` when given, limited to TLS versions [min_version, max_version]
// (OpenSSL's TLS1_2_VERSION, ...; 0: the library's bounds).
struct tls_client_options {
  std::string ca_file;
  std::string server_name;
  SSL_SESSION* session = nullptr;
  int min_version = 0;
  int max_version = 0;
  // TLS 1.3 suites offered, in the client's order (empty: OpenSSL's).
  std::string tls13_suites;
  std::chrono::milliseconds timeout{10000};
};

class tls_client {
 public:
  tls_client(std::uint16_t port, const tls_client_options& o);
  ~tls_client();
  tls_client(const tls_client&) = delete;
  tls_client& operator=(const tls_client&) = delete;

  bool connected() const noexcept { return ok_; }
  const std::string& error() const noexcept { return error_; }
  bool resumed() const;
  std::string protocol() const;       // "TLSv1.3"
  std::string alpn() const;           // "http/1.1" or empty
  std::string cipher() const;         // "TLS_AES_128_GCM_SHA256"; OpenSSL's name for TLS 1.2 suites
  std::string peer_common_name() const;
  // The session to resume later (owned by the caller: SSL_SESSION_free).
  SSL_SESSION* take_session() const;

  // Asks for a renegotiation (TLS 1.2) and runs its handshake; true if the
  // server took part in it.
  bool renegotiate();
  // TLS 1.3: sends a KeyUpdate that asks the server for one in return
  // (RFC 8446 section 4.6.3) with the next write; true if OpenSSL took it.
  bool request_key_update();
  // KeyUpdate messages received from the server so far.
  std::size_t key_updates_received() const noexcept { return key_updates_; }
  bool send(std::string_view bytes);
  // One response with Content-Length (or none: the body up to close).
  std::optional<http_response> read_response();
  // Raw reads (a WebSocket after its 101): a head up to its blank line, or
  // exactly `n` bytes; nullopt on close or timeout first.
  std::optional<std::string> read_head();
  std::optional<std::string> read_exact(std::size_t n);
  // True if the server closed the connection within the timeout.
  bool wait_closed();
  // Sends close_notify (RFC 8446 section 6.1) and keeps the socket open: the
  // TLS end of this side's data without a FIN. True if it was sent; the
  // destructor then sends no second one.
  bool send_close_notify();
  // Closes the socket (a FIN) and sends no close_notify of its own: a
  // client that drops the connection, or ends it after send_close_notify().
  // The client is unusable after.
  void close_socket();
  // The server's close_notify alert has been read.
  bool received_close_notify() const;
  // The connection's socket, to look at what has arrived (poll, FIONREAD)
  // without reading it.
  int fd() const noexcept { return fd_; }
  // TLS records of application data received so far (TLS 1.3: by the
  // inner content type, so session tickets and alerts are not counted).
  std::size_t application_records() const noexcept { return app_records_; }

 private:
  bool fill();
  static void on_message(int write_p, int version, int content_type, const void* buf, std::size_t len, SSL* ssl,
                         void* arg);
  int fd_ = -1;
  std::size_t app_records_ = 0;
  std::size_t key_updates_ = 0;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
  std::string error_;
  std::string buf_;
};

// A series of the gateway's /metrics over HTTPS: `kind` is "counters" or
// "gauges" (as test::counter() and test::gauge() over plain HTTP), read on
// a TLS connection of its own that verifies no certificate; -1 if the
// request fails or the series is missing.
long long tls_metric(std::uint16_t port, std::string_view kind, std::string_view name);

}  // namespace gateway::test
