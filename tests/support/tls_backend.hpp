#pragma once
// Test support for https:// upstreams: TLS material made at test time with
// the openssl CLI (never committed), and an HTTPS backend (Asio SSL) on
// loopback that counts what TLS costs it.
//
//   tls_material  a fresh directory with a CA, a server certificate for
//                 localhost and 127.0.0.1 signed by it, a certificate for
//                 another name (wrong.example) signed by it, and a second
//                 CA that signed nothing the servers use. Removed with
//                 the object. Throws when openssl is missing or fails (the
//                 test then fails, naming it).
//   tls_backend   HTTP/1.1 over TLS on 127.0.0.1:0, on a thread of its own:
//                 keep-alive; GET /big?n=N answers N bytes (written 64 KiB
//                 at a time); GET /eof?n=N answers N bytes close-delimited
//                 and ends with close_notify, GET /cut?n=N the same but
//                 ends with a TCP close and no close_notify; POST answers the request body back; an
//                 Upgrade request gets 101 and then every byte echoed until
//                 the peer closes; anything else answers "host=<Host>
//                 sni=<SNI>". Takes the client's order of TLS suites
//                 (OpenSSL's default, as most servers). Counts connections, handshakes and resumed
//                 handshakes (SSL_session_reused).
//
// Thread: the backend runs on its own thread; its counters are atomics
// read from the test's thread; the destructor stops and joins it.
#include <asio/io_context.hpp>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tests/support/files.hpp"

namespace gateway::test {

struct tls_material {
  tls_material();

  temp_dir files;  // removed with its files when the material goes
  std::string dir = files.path();
  std::string ca;           // CA certificate (PEM)
  std::string cert, key;    // localhost, 127.0.0.1
  std::string wrong_cert, wrong_key;  // wrong.example only
  std::string other_ca;     // a CA that signed neither
};

class tls_backend {
 public:
  tls_backend(const std::string& cert, const std::string& key);
  ~tls_backend();
  tls_backend(const tls_backend&) = delete;
  tls_backend& operator=(const tls_backend&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  // "https://localhost:PORT" (or another host spelling for the same port).
  std::string url(const std::string& host = "localhost") const;

  std::atomic<long long> connections{0};  // TCP connections accepted
  std::atomic<long long> handshakes{0};   // TLS handshakes completed
  std::atomic<long long> resumed{0};      // of which resumed a session
  std::atomic<long long> requests{0};

  // The Host header and SNI of the last plain GET.
  std::string last_host() const;
  std::string last_sni() const;
  // The TLS suite of the connection that carried the last plain GET.
  std::string last_cipher() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace gateway::test
