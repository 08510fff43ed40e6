#include "tests/support/tls_backend.hpp"

#include <openssl/ssl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <vector>

#include "tests/support/child_process.hpp"
#include "tests/support/files.hpp"

namespace gateway::test {

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

std::string find_openssl() {
  std::string p = find_program("openssl");
  if (p.empty()) throw std::runtime_error("the openssl command-line tool is missing (Debian package openssl)");
  return p;
}

void run_openssl(const std::string& openssl, std::vector<std::string> args) {
  args.insert(args.begin(), openssl);
  child_process p(args);
  auto status = p.wait_exit(std::chrono::seconds(30));
  if (!status || *status != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    throw std::runtime_error("openssl failed: " + cmd + "\n" + p.err());
  }
}

// The value of header `name` (lower case) in `head`, or "".
std::string header_value(const std::string& head, std::string_view name) {
  std::size_t at = head.find("\r\n");
  while (at != std::string::npos && at + 2 < head.size()) {
    const std::size_t start = at + 2;
    const std::size_t end = head.find("\r\n", start);
    if (end == std::string::npos || end == start) break;
    const std::string line = head.substr(start, end - start);
    const auto colon = line.find(':');
    if (colon == name.size()) {
      bool same = true;
      for (std::size_t i = 0; i < colon; ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) same = false;
      if (same) {
        std::string v = line.substr(colon + 1);
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        while (!v.empty() && v.back() == ' ') v.pop_back();
        return v;
      }
    }
    at = end;
  }
  return {};
}

}  // namespace

tls_material::tls_material() {
  const std::string openssl = find_openssl();
  ca = dir + "/ca.pem";
  other_ca = dir + "/other-ca.pem";
  cert = dir + "/server.pem";
  key = dir + "/server.key";
  wrong_cert = dir + "/wrong.pem";
  wrong_key = dir + "/wrong.key";
  const std::vector<std::string> ec = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"};
  auto make_ca = [&](const std::string& pem, const std::string& k, const std::string& cn) {
    std::vector<std::string> a = {"req", "-x509"};
    a.insert(a.end(), ec.begin(), ec.end());
    a.insert(a.end(), {"-keyout", k, "-out", pem, "-days", "2", "-subj", "/CN=" + cn});
    run_openssl(openssl, a);
  };
  auto make_leaf = [&](const std::string& pem, const std::string& k, const std::string& cn, const std::string& san) {
    const std::string csr = pem + ".csr", ext = pem + ".ext";
    std::vector<std::string> a = {"req"};
    a.insert(a.end(), ec.begin(), ec.end());
    a.insert(a.end(), {"-keyout", k, "-out", csr, "-subj", "/CN=" + cn});
    run_openssl(openssl, a);
    std::ofstream(ext) << "subjectAltName=" << san << "\nbasicConstraints=CA:FALSE\n";
    run_openssl(openssl, {"x509", "-req", "-in", csr, "-CA", ca, "-CAkey", dir + "/ca.key", "-CAcreateserial",
                          "-out", pem, "-days", "2", "-extfile", ext});
  };
  make_ca(ca, dir + "/ca.key", "gateway test CA");
  make_ca(other_ca, dir + "/other-ca.key", "gateway other CA");
  make_leaf(cert, key, "localhost", "DNS:localhost,IP:127.0.0.1");
  make_leaf(wrong_cert, wrong_key, "wrong.example", "DNS:wrong.example");
}

struct tls_backend::impl {
  explicit impl(tls_backend& o) : owner(o), ctx(asio::ssl::context::tls_server), acceptor(io) {}

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, sock] = co_await acceptor.async_accept(use_nothrow);
      if (ec) co_return;
      owner.connections.fetch_add(1);
      asio::co_spawn(io, serve(std::move(sock)), asio::detached);
    }
  }

  asio::awaitable<void> serve(asio::ip::tcp::socket sock) {
    asio::ssl::stream<asio::ip::tcp::socket> st(std::move(sock), ctx);
    live.insert(&st.next_layer());
    struct unlist {
      std::set<asio::ip::tcp::socket*>& s;
      asio::ip::tcp::socket* p;
      ~unlist() { s.erase(p); }
    } guard{live, &st.next_layer()};
    if (stopping) co_return;
    auto [hec] = co_await st.async_handshake(asio::ssl::stream_base::server, use_nothrow);
    if (hec) co_return;
    owner.handshakes.fetch_add(1);
    if (SSL_session_reused(st.native_handle()) == 1) owner.resumed.fetch_add(1);
    const char* sni = SSL_get_servername(st.native_handle(), TLSEXT_NAMETYPE_host_name);
    std::string buf;
    std::vector<char> tmp(64 * 1024);
    for (;;) {
      std::size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        auto [ec, n] = co_await st.async_read_some(asio::buffer(tmp), use_nothrow);
        if (ec || buf.size() > (1u << 20)) co_return;
        buf.append(tmp.data(), n);
      }
      const std::string head = buf.substr(0, end + 4);
      buf.erase(0, end + 4);
      const std::string line = head.substr(0, head.find("\r\n"));
      const std::string method = line.substr(0, line.find(' '));
      const auto t0 = line.find(' ') + 1;
      const std::string target = line.substr(t0, line.find(' ', t0) - t0);
      const std::string length_text = header_value(head, "content-length");
      const std::size_t length = length_text.empty() ? 0 : std::stoull(length_text);
      while (buf.size() < length) {
        auto [ec, n] = co_await st.async_read_some(asio::buffer(tmp), use_nothrow);
        if (ec) co_return;
        buf.append(tmp.data(), n);
      }
      const std::string body = buf.substr(0, length);
      buf.erase(0, length);
      owner.requests.fetch_add(1);
      if (!header_value(head, "upgrade").empty()) {
        const std::string resp =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + buf;
        auto [wec, wn] = co_await asio::async_write(st, asio::buffer(resp), use_nothrow);
        if (wec) co_return;
        for (;;) {
          auto [ec, n] = co_await st.async_read_some(asio::buffer(tmp), use_nothrow);
          if (ec) co_return;
          auto [e2, n2] = co_await asio::async_write(st, asio::buffer(tmp.data(), n), use_nothrow);
          if (e2) co_return;
        }
      }
      if (target.rfind("/eof?n=", 0) == 0 || target.rfind("/cut?n=", 0) == 0) {
        // A close-delimited response (no Content-Length, not chunked): /eof
        // ends it with close_notify, /cut with a bare TCP close.
        const std::size_t n = std::stoull(target.substr(7));
        std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
        for (std::size_t i = 0; i < n; ++i) resp.push_back(static_cast<char>('a' + i % 26));
        auto [e1, n1] = co_await asio::async_write(st, asio::buffer(resp), use_nothrow);
        if (e1) co_return;
        if (target[1] == 'e') {
          auto [e2] = co_await st.async_shutdown(use_nothrow);
          (void)e2;
        } else {
          std::error_code ignored;
          st.next_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        }
        co_return;
      }
      if (target.rfind("/big?n=", 0) == 0) {
        const std::size_t n = std::stoull(target.substr(7));
        const std::string h = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n";
        auto [e1, n1] = co_await asio::async_write(st, asio::buffer(h), use_nothrow);
        if (e1) co_return;
        std::vector<char> chunk(64 * 1024);
        for (std::size_t sent = 0; sent < n;) {
          const std::size_t k = std::min(chunk.size(), n - sent);
          for (std::size_t i = 0; i < k; ++i) chunk[i] = static_cast<char>('a' + (sent + i) % 26);
          auto [e2, n2] = co_await asio::async_write(st, asio::buffer(chunk.data(), k), use_nothrow);
          if (e2) co_return;
          sent += k;
        }
      } else {
        std::string payload = body;
        if (method != "POST") {
          {
            std::lock_guard lock(m);
            last_host = header_value(head, "host");
            last_sni = sni != nullptr ? sni : "";
            last_cipher = SSL_get_cipher_name(st.native_handle());
          }
          payload = "host=" + header_value(head, "host") + " sni=" + (sni != nullptr ? sni : "");
        }
        const std::string resp =
            "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(payload.size()) + "\r\n\r\n" + payload;
        auto [e1, n1] = co_await asio::async_write(st, asio::buffer(resp), use_nothrow);
        if (e1) co_return;
      }
      if (header_value(head, "connection") == "close") co_return;
    }
  }

  tls_backend& owner;
  asio::io_context io;
  asio::ssl::context ctx;
  asio::ip::tcp::acceptor acceptor;
  std::set<asio::ip::tcp::socket*> live;  // io thread only
  bool stopping = false;
  mutable std::mutex m;
  std::string last_host, last_sni, last_cipher;
};

tls_backend::tls_backend(const std::string& cert, const std::string& key) : impl_(std::make_unique<impl>(*this)) {
  impl_->ctx.use_certificate_chain_file(cert);
  impl_->ctx.use_private_key_file(key, asio::ssl::context::pem);
  asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  thread_ = std::thread([this] { impl_->io.run(); });
}

tls_backend::~tls_backend() {
  asio::post(impl_->io, [this] {
    impl_->stopping = true;
    std::error_code ignored;
    impl_->acceptor.close(ignored);
    for (auto* s : impl_->live) {
      s->shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      s->cancel(ignored);
    }
  });
  thread_.join();
}

std::string tls_backend::url(const std::string& host) const { return "https://" + host + ":" + std::to_string(port_); }

std::string tls_backend::last_host() const {
  std::lock_guard lock(impl_->m);
  return impl_->last_host;
}

std::string tls_backend::last_cipher() const {
  std::lock_guard lock(impl_->m);
  return impl_->last_cipher;
}

std::string tls_backend::last_sni() const {
  std::lock_guard lock(impl_->m);
  return impl_->last_sni;
}

}  // namespace gateway::test
