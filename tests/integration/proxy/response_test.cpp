// Backend responses as the client sees them: unchanged, streamed, framed right.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <stdexcept>
#include <thread>

#include "gateway/core/memory.hpp"
#include "tests/integration/proxy/proxy_fixture.hpp"
#include "tests/support/report.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

using field_list = std::vector<std::pair<std::string, std::string>>;

// A backend of a test's own, for what recording_backend cannot do: a
// loopback listener and a thread that accepts `connections` connections in
// turn, reads each one's request head and hands the socket to `answer`,
// then closes it.
class raw_backend {
 public:
  raw_backend(int connections, std::function<void(int fd)> answer) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener_, 4) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("raw_backend: no loopback listener");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, connections, answer = std::move(answer)] {
      for (int i = 0; i < connections; ++i) {
        const int fd = ::accept(listener_, nullptr, nullptr);
        if (fd < 0) return;
        timeval tv{10, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        std::string head;
        char b[4096];
        while (head.find("\r\n\r\n") == std::string::npos) {
          const ssize_t n = ::recv(fd, b, sizeof b, 0);
          if (n <= 0) break;
          head.append(b, static_cast<std::size_t>(n));
        }
        answer(fd);
        ::close(fd);
      }
    });
  }
  raw_backend(const raw_backend&) = delete;
  raw_backend& operator=(const raw_backend&) = delete;
  ~raw_backend() {
    ::shutdown(listener_, SHUT_RDWR);  // ends an accept still waiting
    thread_.join();
    ::close(listener_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

void send_all(int fd, std::string_view bytes) { ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); }

}  // namespace

TEST_CASE("status, reason and headers come back unchanged, minus hop-by-hop ones", "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request&) {
    return test::reply{
        "HTTP/1.1 299 Custom Reason Phrase\r\n"
        "Date: Tue, 01 Jan 2030 00:00:00 GMT\r\n"
        "X-Mixed-Case: A b  C\r\n"
        "Set-Cookie: a=1; Path=/\r\n"
        "set-cookie: b=2\r\n"
        "Connection: keep-alive, X-Secret\r\n"
        "X-Secret: s\r\n"
        "Keep-Alive: timeout=5\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "Trailer: X-T\r\n"
        "Upgrade: h2c\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: 5\r\n"
        "\r\n"
        "hello"};
  });
  f.start();
  test::raw_client c(f.port());
  REQUIRE(c.send("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 299);
  CHECK(r->reason == "Custom Reason Phrase");
  CHECK(r->headers == field_list{{"Date", "Tue, 01 Jan 2030 00:00:00 GMT"},
                                 {"X-Mixed-Case", "A b  C"},
                                 {"Set-Cookie", "a=1; Path=/"},
                                 {"set-cookie", "b=2"},
                                 {"Content-Type", "text/plain"},
                                 {"Content-Length", "5"}});
  CHECK(r->body == "hello");
}

TEST_CASE("a backend Connection that names Content-Length leaves the response framed", "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 200 OK\r\nConnection: close, Content-Length\r\nContent-Length: 5\r\n\r\nhello"};
  });
  f.start();
  test::raw_client c(f.port());
  for (int i = 0; i < 2; ++i) {
    INFO("request " << i);
    REQUIRE(c.send("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Content-Length") == "5");
    CHECK(r->body == "hello");
  }
}

TEST_CASE("a chunked backend response arrives intact and the connections stay usable", "[integration][proxy]") {
  test::proxy_fixture f;
  std::string big(70000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = test::pattern_byte(i);
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Before: 1\r\n\r\n";
  chunked += "1\r\na\r\n";
  chunked += "64;name=value\r\n" + std::string(100, 'b') + "\r\n";
  chunked += "11170\r\n" + big + "\r\n";  // 0x11170 = 70000, more than the proxy's buffer
  for (int i = 0; i < 300; ++i) chunked += "1\r\nc\r\n";  // many tiny chunks in one read
  chunked += "0\r\nX-Trailer: dropped\r\n\r\n";
  const std::string expected = "a" + std::string(100, 'b') + big + std::string(300, 'c');
  f.backend.set_script([&](const test::recorded_request&) { return test::reply{chunked}; });
  f.start();
  test::raw_client c(f.port());
  for (int i = 0; i < 3; ++i) {
    REQUIRE(c.send("GET /api/chunked HTTP/1.1\r\nHost: h\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Transfer-Encoding") == "chunked");
    CHECK(r->header("X-Before") == "1");
    CHECK(r->count("Content-Length") == 0);
    CHECK(r->body.size() == expected.size());
    CHECK(r->body == expected);
  }
  CHECK(f.backend.connections_accepted() == 1);  // the upstream connection was reused
}

TEST_CASE("a close-delimited backend response arrives intact", "[integration][proxy]") {
  test::proxy_fixture f;
  std::string body(100000, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = test::pattern_byte(i * 7);
  f.backend.set_script([&](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + body, 0,
                       test::reply::then::close};
  });
  f.start();
  SECTION("an HTTP/1.1 client gets it chunked and keeps its connection") {
    test::raw_client c(f.port());
    for (int i = 0; i < 2; ++i) {
      REQUIRE(c.send("GET /api/eof HTTP/1.1\r\nHost: h\r\n\r\n"));
      auto r = c.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
      CHECK(r->header("Transfer-Encoding") == "chunked");
      CHECK(r->body == body);
    }
    CHECK(f.backend.connections_accepted() == 2);  // never pooled: it ended by closing
  }
  SECTION("an HTTP/1.0 client gets it close-delimited") {
    test::raw_client c(f.port());
    REQUIRE(c.send("GET /api/eof HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->count("Transfer-Encoding") == 0);
    CHECK(r->body == body);
  }
}

TEST_CASE("HEAD, 204 and 304 responses have no body and leave the connections clean", "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request& rq) {
    if (rq.method == "HEAD") return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n"};
    if (rq.target == "/204") return test::reply{"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"};
    if (rq.target == "/304") return test::reply{"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"};
    // A 304 may carry the Content-Length of the 200 it stands for (RFC 9110 section 8.6): still no body.
    if (rq.target == "/304-length")
      return test::reply{"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n"};
    if (rq.target == "/204-length") return test::reply{"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"};
    return test::reply{test::ok_response("after")};
  });
  f.start();
  test::raw_client c(f.port());
  struct step {
    const char* request;
    int status;
    const char* length;  // expected Content-Length, "" for none
  } steps[] = {
      {"HEAD /api/x HTTP/1.1\r\nHost: h\r\n\r\n", 200, "1234"},
      {"GET /api/204 HTTP/1.1\r\nHost: h\r\n\r\n", 204, ""},
      {"GET /api/304 HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\n", 304, ""},
      {"GET /api/304-length HTTP/1.1\r\nHost: h\r\n\r\n", 304, ""},
      {"GET /api/204-length HTTP/1.1\r\nHost: h\r\n\r\n", 204, ""},
  };
  for (const auto& s : steps) {
    INFO(s.request);
    REQUIRE(c.send(s.request));
    auto r = c.read_response(std::string_view(s.request).substr(0, 4) == "HEAD");
    REQUIRE(r);
    CHECK(r->status == s.status);
    CHECK(r->body.empty());
    CHECK(r->header("Content-Length") == s.length);
    // The next response on the same connection must start right after the head.
    REQUIRE(c.send("GET /api/after HTTP/1.1\r\nHost: h\r\n\r\n"));
    auto next = c.read_response();
    REQUIRE(next);
    CHECK(next->status == 200);
    CHECK(next->body == "after");
  }
  CHECK(f.backend.connections_accepted() == 1);
}

TEST_CASE("interim 1xx backend responses are skipped", "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" +
                       test::ok_response("final")};
  });
  f.start();
  auto r = test::http_request(f.port(), "GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "final");
  CHECK(r->count("Link") == 0);
}

TEST_CASE("a backend's endless 1xx heads cost no memory that grows with them", "[integration][proxy]") {
  // 10 MiB of "102 Processing" heads (about 370,000), then the final response.
  constexpr std::size_t interim_bytes = 10u * 1024 * 1024;
  raw_backend backend(1, [](int fd) {
    std::string block;
    while (block.size() < 64 * 1024) block += "HTTP/1.1 102 Processing\r\n\r\n";
    for (std::size_t sent = 0; sent < interim_bytes; sent += block.size())
      if (::send(fd, block.data(), block.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(block.size())) break;
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone");
  });
  test::proxy_fixture f;
  f.start(backend.url());
  const std::size_t before = test::rss_bytes();
  test::raw_client c(f.port(), 30000ms);
  REQUIRE(c.send("GET /api/slow HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto r = c.read_response();
  const std::size_t after = test::rss_bytes();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "done");
  INFO("RSS before " << before / 1024 << " KiB, after " << after / 1024 << " KiB");
  if (test::rss_checks_apply) CHECK(after < before + 4u * 1024 * 1024);
}

TEST_CASE("a backend that answers and closes before taking the whole body has its answer forwarded",
          "[integration][proxy]") {
  // It reads the head of a 4 MiB upload, answers 413 and closes with the
  // body unread (its kernel then resets the connection).
  raw_backend backend(2, [](int fd) {
    send_all(fd, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!");
  });
  test::proxy_fixture f;
  f.cfg.max_body = 8u * 1024 * 1024;
  f.start(backend.url());
  for (int i = 0; i < 2; ++i) {
    INFO("upload " << i);
    test::raw_client c(f.port(), 10000ms);
    REQUIRE(c.send("POST /api/upload HTTP/1.1\r\nHost: h\r\nContent-Length: 4194304\r\n\r\n" +
                   std::string(4u * 1024 * 1024, 'u')));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->body == "too big!");
  }
  CHECK(f.stats->bad_gateway.load() == 0);
}

TEST_CASE("malformed or oversized backend response heads get 502", "[integration][proxy]") {
  test::proxy_fixture f;
  f.backend.set_script([](const test::recorded_request& rq) {
    if (rq.target == "/dup-length")
      return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"};
    if (rq.target == "/huge-head")
      return test::reply{"HTTP/1.1 200 OK\r\nX-Big: " + std::string(70 * 1024, 'x') + "\r\n\r\n"};
    if (rq.target == "/garbage") return test::reply{"SSH-2.0-OpenSSH\r\n\r\n"};
    if (rq.target == "/obs-fold") return test::reply{"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"};
    if (rq.target == "/obs-fold-empty")  // the folded field's first line empty
      return test::reply{"HTTP/1.1 200 OK\r\nX-A:\r\n folded\r\nContent-Length:\r\n 0\r\n\r\n"};
    if (rq.target == "/bad-chunk")  // broken right after the head: still in time for a 502
      return test::reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n"};
    if (rq.target == "/chunk-no-crlf")  // chunk data not followed by CRLF (llhttp takes it)
      return test::reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n"};
    if (rq.target == "/gzip-te") return test::reply{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", 0,
                                                    test::reply::then::close};
    return test::reply{test::ok_response("fine")};
  });
  f.start();
  for (const char* path : {"/api/dup-length", "/api/huge-head", "/api/garbage", "/api/obs-fold", "/api/obs-fold-empty",
                           "/api/gzip-te", "/api/bad-chunk", "/api/chunk-no-crlf"}) {
    INFO(path);
    auto r = test::http_request(f.port(), std::string("GET ") + path + " HTTP/1.1\r\nHost: h\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 502);
  }
  auto r = test::http_request(f.port(), "GET /api/ok HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(r);
  CHECK(r->body == "fine");
  CHECK(f.stats->bad_gateway.load() == 8);
}

TEST_CASE("a 200 MiB backend response streams through with bounded memory", "[integration][proxy]") {
  core::configure_process_memory();
  test::proxy_fixture f;
  constexpr std::uint64_t size = 200ull * 1024 * 1024;
  f.backend.set_script([](const test::recorded_request&) {
    return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n", size};
  });
  f.start();
  // Warm up once (thread stacks, first arena blocks, pool), then measure.
  {
    auto r = test::http_request(f.port(), "GET /api/small HTTP/1.1\r\nHost: h\r\n\r\n");
    (void)r;
  }
  test::raw_client c(f.port(), 30000ms);
  const std::size_t before = test::rss_bytes();
  REQUIRE(c.send("GET /api/big HTTP/1.1\r\nHost: h\r\n\r\n"));
  std::string head;
  std::string rest;
  char buf[64 * 1024];
  while (head.empty()) {
    ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    REQUIRE(n > 0);
    rest.append(buf, static_cast<std::size_t>(n));
    auto end = rest.find("\r\n\r\n");
    if (end != std::string::npos) {
      head = rest.substr(0, end + 4);
      rest.erase(0, end + 4);
    }
  }
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head.find("Content-Length: " + std::to_string(size) + "\r\n") != std::string::npos);
  std::uint64_t got = 0;
  std::uint64_t mismatches = 0;
  std::size_t peak = before;
  auto consume = [&](const char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) mismatches += p[i] != test::pattern_byte(got + i);
    got += n;
  };
  consume(rest.data(), rest.size());
  std::uint64_t next_sample = 0;
  while (got < size) {
    ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    if (n <= 0) break;
    consume(buf, static_cast<std::size_t>(n));
    if (got >= next_sample) {
      peak = std::max(peak, test::rss_bytes());
      next_sample += 4u * 1024 * 1024;
    }
  }
  peak = std::max(peak, test::rss_bytes());
  CHECK(got == size);
  CHECK(mismatches == 0);
  INFO("RSS before " << before / 1024 << " KiB, peak " << peak / 1024 << " KiB");
  CHECK(peak - before < 16u * 1024 * 1024);
  GATEWAY_REPORT("200 MiB through the proxy: RSS growth " << (peak - before) / 1024 << " KiB");
}
