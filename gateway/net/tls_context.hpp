#pragma once
// Client-side TLS settings as OpenSSL contexts (the gateway terminating
// HTTPS): which certificates, protocol versions, ciphers, ALPN, session
// tickets. net/tls_stream.hpp runs one connection over a context.
//
// - tls_context: one generation, immutable once built: an SSL_CTX per
//   certificate/key pair, the first the default, the others chosen by the
//   server name the client sends (SNI) against each certificate's DNS names
//   (subjectAltName, else the subject's CN; "*.example.com" matches one label;
//   an exact name in any pair wins over a wildcard).
//   TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, ALPN http/1.1,
//   no renegotiation, buffers released while idle.
// - tls_ticket_keys: the keys that encrypt session tickets (RFC 5077,
//   RFC 8446 section 4.6.1), made by the gateway from random bytes, shared by
//   every worker and every generation, replaced every rotation period; the
//   previous key still decrypts (its tickets are renewed), so a ticket lives
//   at least one period.
// - tls_terminator: what the workers use: the current generation (a new
//   connection takes it; a reload installs another and connections already
//   open keep theirs), and the self-signed certificate of --tls self-signed.
//
// Errors at start-up and reload are tls_error, whose message names the flag
// and the file.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "gateway/core/config.hpp"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct evp_mac_ctx_st EVP_MAC_CTX;

namespace gateway::net {

// TLS 1.3's three suites in Mozilla's "intermediate" order, AES-128-GCM
// first where OpenSSL's own order puts AES-256-GCM first; the listeners
// prefer it and the upstream connections offer it first. The suite also
// picks the handshake's hash: AES-128-GCM's key schedule and transcript run
// on SHA-256, which x86 CPUs with the SHA extensions compute in hardware,
// while SHA-384 is computed in software; both ends of every handshake pay it.
inline constexpr const char* tls13_suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

class tls_stream;

struct tls_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thread-safe: any worker's handshake may call it.
class tls_ticket_keys {
 public:
  explicit tls_ticket_keys(std::chrono::nanoseconds rotation);
  ~tls_ticket_keys();
  tls_ticket_keys(const tls_ticket_keys&) = delete;
  tls_ticket_keys& operator=(const tls_ticket_keys&) = delete;
  // OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb).
  int on_ticket(unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc);
  std::chrono::nanoseconds rotation() const noexcept { return rotation_; }
  // Makes the next rotation happen now (tests).
  void rotate_for_test();

 private:
  struct key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
  };
  static key make_key();
  void rotate_if_due(std::chrono::steady_clock::time_point now);

  // AES-256-CBC fetched from the provider once: a built-in EVP_CIPHER
  // (EVP_aes_256_cbc()) is looked up by name again on every init.
  EVP_CIPHER* aes_ = nullptr;
  std::mutex mu_;
  std::chrono::nanoseconds rotation_;
  key current_{};
  key previous_{};
  bool has_previous_ = false;
  std::chrono::steady_clock::time_point current_since_;
};

// A certificate/key pair given to the gateway (paths as the flags named them).
struct tls_cert_files {
  std::string cert;
  std::string key;
};

class tls_context {
 public:
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  // Loads every pair; throws tls_error naming --tls-cert or --tls-key and
  // the file for a missing or unreadable file, a file that is not PEM, or a
  // key that does not match its certificate.
  static std::shared_ptr<const tls_context> from_files(const std::vector<tls_cert_files>& pairs,
                                                       std::shared_ptr<tls_ticket_keys> keys);
  // From PEM text in memory (the self-signed certificate).
  static std::shared_ptr<const tls_context> from_pem(const std::string& cert_pem, const std::string& key_pem,
                                                     std::shared_ptr<tls_ticket_keys> keys);

  // A new server-side SSL on the default certificate (SNI may switch it
  // during the handshake); null when OpenSSL is out of memory.
  SSL* new_ssl() const noexcept;
  // "name, name (FILE); ..." for the start-up and reload messages.
  std::string describe() const;
  // The SSL_CTX for `server_name`: of the first pair with that exact name
  // (ASCII case aside), else of the first whose wildcard covers it, else
  // the default's. Runs in every handshake that sends SNI; allocates nothing.
  SSL_CTX* context_for(std::string_view server_name) const noexcept;

 private:
  struct entry {
    SSL_CTX* ctx = nullptr;
    std::vector<std::string> names;  // compared without regard to ASCII case
    std::string source;
  };
  tls_context() = default;
  void add(SSL_CTX* ctx, std::string source);  // takes `ctx` (its certificate set)

  std::vector<entry> entries_;
  std::shared_ptr<tls_ticket_keys> keys_;
};

class tls_terminator {
 public:
  // From cfg.tls_certs/tls_keys or cfg.tls_mode == "self-signed"; throws
  // tls_error (start-up: exit 2).
  explicit tls_terminator(const core::config& cfg);

  // True when the config asks for TLS on the listener.
  static bool wanted(const core::config& cfg) noexcept;

  // A stream for an accepted socket on the current generation; null when
  // OpenSSL cannot make one (the connection is then closed). Worker threads.
  std::unique_ptr<tls_stream> open(asio::ip::tcp::socket& socket) const;

  // Reload: builds the generation `cfg` names (throws tls_error; nothing
  // changes then), and installs one. Connections already open keep theirs.
  // The self-signed certificate is kept as it is.
  std::shared_ptr<const tls_context> prepare(const core::config& cfg) const;
  void install(std::shared_ptr<const tls_context> next) noexcept;
  std::shared_ptr<const tls_context> current() const noexcept { return current_.load(); }

  // --tls self-signed: the certificate's SHA-256 fingerprint ("AB:CD:...")
  // and the file its PEM was written to (empty if it could not be written:
  // self_signed_warning() says why).
  const std::string& self_signed_fingerprint() const noexcept { return fingerprint_; }
  const std::string& self_signed_pem_path() const noexcept { return pem_path_; }
  const std::string& self_signed_warning() const noexcept { return warning_; }
  tls_ticket_keys& ticket_keys() noexcept { return *keys_; }

 private:
  std::shared_ptr<tls_ticket_keys> keys_;
  std::atomic<std::shared_ptr<const tls_context>> current_;
  bool self_signed_ = false;
  std::string fingerprint_;
  std::string pem_path_;
  std::string warning_;
};

// --tls self-signed: an EC P-256 key and a certificate for localhost,
// 127.0.0.1 and ::1, valid for 30 days from an hour ago, as PEM.
struct self_signed_pem {
  std::string cert;
  std::string key;
  std::string fingerprint;  // SHA-256 of the DER certificate, "AB:CD:..."
};
self_signed_pem make_self_signed();

// Where --tls self-signed writes the certificate unless
// --tls-self-signed-pem says: $TMPDIR (else /tmp) / gateway-localhost.pem.
std::string default_self_signed_pem_path();

}  // namespace gateway::net
