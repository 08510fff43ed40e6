#include "tests/support/tls_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "tests/support/child_process.hpp"

namespace gateway::test {

void make_certificate(const std::vector<std::string>& names, const std::string& cert_file, const std::string& key_file) {
  const std::string openssl = find_program("openssl");
  if (openssl.empty()) throw std::runtime_error("the openssl program is not installed (apt-get install openssl)");
  std::string san = "subjectAltName=";
  for (std::size_t i = 0; i < names.size(); ++i) san += (i ? ",DNS:" : "DNS:") + names[i];
  child_process p({openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-keyout", key_file, "-out", cert_file, "-days", "2", "-subj", "/CN=" + names.front(), "-addext",
                   san});
  const auto status = p.wait_exit(std::chrono::seconds(20));
  if (status != 0) throw std::runtime_error("openssl req failed: " + p.err());
}

certificate_chain make_certificate_chain(const std::vector<std::string>& names, const std::string& dir) {
  const std::string openssl = find_program("openssl");
  if (openssl.empty()) throw std::runtime_error("the openssl program is not installed (apt-get install openssl)");
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), openssl);
    child_process p(args);
    if (p.wait_exit(std::chrono::seconds(20)) != 0) throw std::runtime_error("openssl " + args[1] + " failed: " + p.err());
  };
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"};
  certificate_chain c{dir + "/chain-ca.pem", dir + "/chain-intermediate.pem", dir + "/chain-leaf.pem",
                      dir + "/chain-leaf.key"};
  const std::string ca_key = dir + "/chain-ca.key", int_key = dir + "/chain-intermediate.key";
  std::vector<std::string> a = {"req", "-x509"};
  a.insert(a.end(), ec.begin(), ec.end());
  a.insert(a.end(), {"-keyout", ca_key, "-out", c.ca, "-days", "2", "-subj", "/CN=gateway test root CA", "-addext",
                     "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
  run(a);
  // Signs `csr` with `issuer`/`issuer_key` into `out` with the extensions in `ext_text`.
  auto sign = [&](const std::string& csr, const std::string& issuer, const std::string& issuer_key,
                  const std::string& out, const std::string& ext_text) {
    const std::string ext = out + ".ext";
    if (!(std::ofstream(ext) << ext_text)) throw std::runtime_error("cannot write " + ext);
    run({"x509", "-req", "-in", csr, "-CA", issuer, "-CAkey", issuer_key, "-set_serial",
         std::to_string(std::random_device{}() & 0x7fffffff), "-out", out, "-days", "2", "-extfile", ext});
  };
  const std::string int_csr = dir + "/chain-intermediate.csr", leaf_csr = dir + "/chain-leaf.csr";
  a = {"req"};
  a.insert(a.end(), ec.begin(), ec.end());
  a.insert(a.end(), {"-keyout", int_key, "-out", int_csr, "-subj", "/CN=gateway test intermediate CA"});
  run(a);
  sign(int_csr, c.ca, ca_key, c.intermediate, "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n");
  a = {"req"};
  a.insert(a.end(), ec.begin(), ec.end());
  a.insert(a.end(), {"-keyout", c.key, "-out", leaf_csr, "-subj", "/CN=" + names.front()});
  run(a);
  std::string san = "subjectAltName=";
  for (std::size_t i = 0; i < names.size(); ++i) san += (i ? ",DNS:" : "DNS:") + names[i];
  sign(leaf_csr, c.intermediate, int_key, c.leaf, san + "\nbasicConstraints=CA:FALSE\n");
  return c;
}

tls_client::tls_client(std::uint16_t port, const tls_client_options& o) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (o.min_version) SSL_CTX_set_min_proto_version(ctx_, o.min_version);
  if (o.max_version) SSL_CTX_set_max_proto_version(ctx_, o.max_version);
  // An old-protocol client must really offer the old protocol (the
  // library's default security level refuses TLS 1.0 and 1.1 itself).
  if (o.max_version != 0 && o.max_version < TLS1_2_VERSION) SSL_CTX_set_security_level(ctx_, 0);
  if (!o.tls13_suites.empty()) SSL_CTX_set_ciphersuites(ctx_, o.tls13_suites.c_str());
  if (!o.ca_file.empty()) {
    SSL_CTX_load_verify_locations(ctx_, o.ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  }
  static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx_, alpn, sizeof alpn);
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{};
  tv.tv_sec = static_cast<long>(o.timeout.count() / 1000);
  tv.tv_usec = static_cast<long>((o.timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    error_ = "connect failed";
    return;
  }
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  SSL_set_msg_callback(ssl_, &tls_client::on_message);
  SSL_set_msg_callback_arg(ssl_, this);
  if (!o.server_name.empty()) SSL_set_tlsext_host_name(ssl_, o.server_name.c_str());
  if (o.session != nullptr) SSL_set_session(ssl_, o.session);
  if (SSL_connect(ssl_) != 1) {
    char b[256] = "handshake failed";
    if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, b, sizeof b);
    error_ = b;
    ERR_clear_error();
    return;
  }
  ok_ = true;
}

tls_client::~tls_client() {
  // A session freed without close_notify is marked not resumable.
  if (ssl_ != nullptr && ok_ && (SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) == 0) SSL_shutdown(ssl_);
  ERR_clear_error();
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

void tls_client::on_message(int write_p, int, int content_type, const void* buf, std::size_t len, SSL* ssl,
                            void* arg) {
  if (write_p != 0 || len < 1) return;
  const auto first = static_cast<const unsigned char*>(buf)[0];
  // TLS 1.3 wraps every record as application data and reports the real
  // type apart (SSL3_RT_INNER_CONTENT_TYPE); TLS 1.2 reports it in the header.
  const bool tls13 = SSL_version(ssl) == TLS1_3_VERSION;
  const bool counted = tls13 ? content_type == SSL3_RT_INNER_CONTENT_TYPE : content_type == SSL3_RT_HEADER;
  if (counted && first == SSL3_RT_APPLICATION_DATA) ++static_cast<tls_client*>(arg)->app_records_;
  if (content_type == SSL3_RT_HANDSHAKE && first == SSL3_MT_KEY_UPDATE) ++static_cast<tls_client*>(arg)->key_updates_;
}

bool tls_client::resumed() const { return ssl_ != nullptr && SSL_session_reused(ssl_) == 1; }
std::string tls_client::protocol() const { return ssl_ != nullptr ? SSL_get_version(ssl_) : ""; }

std::string tls_client::cipher() const {
  const SSL_CIPHER* c = ssl_ != nullptr ? SSL_get_current_cipher(ssl_) : nullptr;
  return c != nullptr ? SSL_CIPHER_get_name(c) : "";
}

std::string tls_client::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  if (ssl_ != nullptr) SSL_get0_alpn_selected(ssl_, &p, &n);
  return p != nullptr ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

std::string tls_client::peer_common_name() const {
  if (ssl_ == nullptr) return {};
  X509* x = SSL_get1_peer_certificate(ssl_);
  if (x == nullptr) return {};
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
  X509_free(x);
  return cn;
}

SSL_SESSION* tls_client::take_session() const { return ssl_ != nullptr ? SSL_get1_session(ssl_) : nullptr; }

bool tls_client::renegotiate() {
  if (!ok_ || SSL_renegotiate(ssl_) != 1) return false;
  const bool done = SSL_do_handshake(ssl_) == 1 && SSL_renegotiate_pending(ssl_) == 0;
  ERR_clear_error();
  return done;
}

bool tls_client::request_key_update() {
  const bool ok = ok_ && SSL_key_update(ssl_, SSL_KEY_UPDATE_REQUESTED) == 1;
  ERR_clear_error();
  return ok;
}

bool tls_client::send(std::string_view bytes) {
  if (!ok_) return false;
  std::size_t written = 0;
  return SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written) == 1 && written == bytes.size();
}

bool tls_client::fill() {
  char b[16384];
  std::size_t n = 0;
  if (SSL_read_ex(ssl_, b, sizeof b, &n) != 1) {
    ERR_clear_error();
    return false;
  }
  buf_.append(b, n);
  return true;
}

std::optional<http_response> tls_client::read_response() {
  if (!ok_) return std::nullopt;
  std::size_t end = 0;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return std::nullopt;
  http_response r;
  const std::string head = buf_.substr(0, end + 2);
  const std::size_t eol = head.find("\r\n");
  const std::string status_line = head.substr(0, eol);
  if (status_line.size() < 12) return std::nullopt;
  std::from_chars(status_line.data() + 9, status_line.data() + 12, r.status);
  r.reason = status_line.size() > 13 ? status_line.substr(13) : "";
  std::size_t at = eol + 2;
  while (at < head.size()) {
    const std::size_t e = head.find("\r\n", at);
    const std::string line = head.substr(at, e - at);
    at = e + 2;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers.emplace_back(line.substr(0, colon), value);
  }
  buf_.erase(0, end + 4);
  const std::string cl = r.header("content-length");
  if (!cl.empty()) {
    const std::size_t len = std::stoul(cl);
    while (buf_.size() < len)
      if (!fill()) return std::nullopt;
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
  } else {
    while (fill()) {
    }
    r.body = std::move(buf_);
    buf_.clear();
  }
  return r;
}

std::optional<std::string> tls_client::read_head() {
  if (!ok_) return std::nullopt;
  std::size_t end = 0;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return std::nullopt;
  std::string head = buf_.substr(0, end + 4);
  buf_.erase(0, end + 4);
  return head;
}

std::optional<std::string> tls_client::read_exact(std::size_t n) {
  if (!ok_) return std::nullopt;
  while (buf_.size() < n)
    if (!fill()) return std::nullopt;
  std::string out = buf_.substr(0, n);
  buf_.erase(0, n);
  return out;
}

bool tls_client::wait_closed() {
  if (!ok_) return true;
  char b[4096];
  std::size_t n = 0;
  for (int i = 0; i < 1000; ++i) {
    if (SSL_read_ex(ssl_, b, sizeof b, &n) != 1) {
      const int e = SSL_get_error(ssl_, 0);
      ERR_clear_error();
      // A receive timeout is not a close: the socket BIO reports SO_RCVTIMEO's
      // EAGAIN as a read to retry (SSL_ERROR_WANT_READ).
      return !(e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)));
    }
  }
  return false;
}

bool tls_client::send_close_notify() {
  if (!ok_) return false;
  // 0: sent, the peer's has not come; 1: both done.
  const int r = SSL_shutdown(ssl_);
  ERR_clear_error();
  return r >= 0;
}

void tls_client::close_socket() {
  // ok_ off: the destructor sends no close_notify on a descriptor that may
  // be another's by then.
  ok_ = false;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool tls_client::received_close_notify() const {
  return ssl_ != nullptr && (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
}

long long tls_metric(std::uint16_t port, std::string_view kind, std::string_view name) {
  tls_client c(port, tls_client_options{});
  if (!c.connected() || !c.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")) return -1;
  return metric_in(c.read_response(), kind, name);
}

}  // namespace gateway::test
