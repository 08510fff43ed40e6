// The design's central claim, a request body read once and shared by every
// middleware and the proxy, measured from outside the gateway's code: the
// real binary runs as a child process with tests/support/io_shim.c
// preloaded, which counts the bytes its sockets return (client sockets apart
// from the backend's) and, in plain builds, every byte malloc is asked for
// (operator new included), and, from inside, by the gateway's own count of
// the bytes it read from clients (/metrics), which also holds on the
// io_uring backend, whose reads make no read call the shim could see. The
// counters are read before and after one request, once its access-log line
// shows it is finished.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/io_shim.h"
#include "tests/support/report.hpp"
#include "tests/support/test_server.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

// The shim's counters, in a temporary file mapped here and in the child.
class shared_counts {
 public:
  shared_counts() {
    char name[] = "/tmp/gateway-io-shim-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    path_ = name;
    if (::ftruncate(fd, sizeof(gateway_io_counts)) != 0) throw std::runtime_error("ftruncate failed");
    void* p = ::mmap(nullptr, sizeof(gateway_io_counts), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    counts_ = static_cast<gateway_io_counts*>(p);
  }
  ~shared_counts() {
    ::munmap(counts_, sizeof(gateway_io_counts));
    std::remove(path_.c_str());
  }
  shared_counts(const shared_counts&) = delete;
  shared_counts& operator=(const shared_counts&) = delete;

  const std::string& path() const { return path_; }
  gateway_io_counts& operator*() const { return *counts_; }
  gateway_io_counts* operator->() const { return counts_; }

 private:
  std::string path_;
  gateway_io_counts* counts_ = nullptr;
};

struct snapshot {
  std::uint64_t client_read, other_read, alloc_calls, alloc_bytes;
};

snapshot take(const gateway_io_counts& c) {
  return {c.client_read_bytes.load(), c.other_read_bytes.load(), c.alloc_calls.load(), c.alloc_bytes.load()};
}

// A JSON object of `size` bytes that the route's rules accept: the fields
// they check, then one long string member.
std::string json_body(std::size_t size) {
  std::string head = R"({"name":"abc","email":"a@b.c","blob":")";
  std::string tail = "\"}";
  std::string body = head;
  body.reserve(size);
  for (std::size_t i = 0; body.size() + tail.size() < size; ++i) body += static_cast<char>('a' + i % 26);
  return body + tail;
}

// What test::counter sends to read /metrics.
constexpr const char* metrics_request = "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n";

#if defined(GATEWAY_SANITIZED)
constexpr bool heap_counted = false;  // the sanitizer owns malloc: the shim counts socket reads only
#else
constexpr bool heap_counted = true;
#endif

}  // namespace

TEST_CASE("a 1 MiB POST through the whole chain is read from the client socket once and allocated once",
          "[integration][middleware]") {
  constexpr std::size_t body_size = 1u << 20;
  // What one request may allocate besides its body: the access-log line and
  // /logs entry (the first 4,096 body bytes), the backend request head, the
  // response buffers, the validation rules' parse of the fields they check.
  constexpr std::uint64_t heap_overhead = 16u * 1024;

  test::recording_backend backend;
  const std::string backend_answer = test::ok_response("stored");
  backend.set_script([&](const test::recorded_request&) { return test::reply{backend_answer}; });
  shared_counts counts;

  std::vector<std::string> env{"LD_PRELOAD=" GATEWAY_IO_SHIM, "GATEWAY_IO_SHIM_FILE=" + counts.path()};
  if (!heap_counted) {
    // The shim comes before the sanitizer runtime in the library list.
    const char* asan = std::getenv("ASAN_OPTIONS");
    env.push_back(std::string("ASAN_OPTIONS=") + (asan ? std::string(asan) + ":" : "") + "verify_asan_link_order=0");
  }
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--backend",
                          backend.url(), "--threads", "1", "--api-key", "k", "--access-log", "text",
                          "--max-body", "2MiB", "--validate", "/api/users:name:required,min_len=2,max_len=5",
                          "--validate", "/api/users:email:required"},
                         env);
  const auto backend_line = gw.wait_for_line("I/O backend: ", true, 10s);
  REQUIRE(backend_line);
  const bool ring = backend_line->find("I/O backend: io_uring") != std::string::npos;
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(port != 0);
  counts->client_port = port;

  const std::string body = json_body(body_size);
  REQUIRE(body.size() == body_size);
  const std::string headers = "X-API-Key: k\r\nContent-Type: application/json\r\n";
  const std::string request = test::make_request("POST", "/api/users", body, headers);
  test::raw_client client(port, 10000ms);

  // Warm-up on the same connection: one-time costs (the backend connection,
  // the metrics and rate-limit entries, the worker's buffers) are not the
  // request's. Then one refused body (400), so validation is known to run.
  for (const char* small : {R"({"name":"abc","email":"x"})", R"({"name":"toolongname","email":"x"})"}) {
    REQUIRE(client.send(test::make_request("POST", "/api/users", small, headers)));
    REQUIRE(client.read_response());
  }
  std::size_t log_from = gw.out().size();
  REQUIRE(gw.wait_for_line("/api/users", false, 10s, log_from));
  REQUIRE(gw.wait_for_line(" 400 ", false, 10s, log_from));
  log_from = gw.out().size();
  // The gateway's own count of the bytes it read from client sockets, which
  // holds on either I/O backend; each reading of it is one GET /metrics,
  // read from a client socket too, before and after the shim's snapshots.
  const long long gateway_read_before = test::counter(port, "client_bytes_read");
  REQUIRE(gateway_read_before > 0);
  const snapshot before = take(*counts);

  REQUIRE(client.send(request));
  auto r = client.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "stored");
  REQUIRE(gw.wait_for_line("/api/users", false, 10s, log_from));  // the request is over, its log line written
  const snapshot after = take(*counts);
  const long long gateway_read_after = test::counter(port, "client_bytes_read");

  auto got = backend.requests();
  REQUIRE(got.size() == 2);  // the valid warm-up and this one
  CHECK(got.back().body == body);

  const std::uint64_t client_read = after.client_read - before.client_read;
  const std::uint64_t backend_read = after.other_read - before.other_read;
  const std::uint64_t heap = after.alloc_bytes - before.alloc_bytes;
  const std::uint64_t heap_calls = after.alloc_calls - before.alloc_calls;
  INFO("request " << request.size() << " bytes (body " << body_size << "); read from the client " << client_read
                  << ", from the backend " << backend_read << " (its answer is " << backend_answer.size()
                  << "); heap " << heap << " bytes in " << heap_calls << " allocations");
  // Every byte the client sent is read exactly once, and nothing else, as
  // the gateway's code counts it: this request and the second GET /metrics.
  CHECK(gateway_read_after - gateway_read_before ==
        static_cast<long long>(request.size() + std::string_view(metrics_request).size()));
  if (ring) {
    // On io_uring the kernel reads into the buffers the ring names: no read
    // call reaches the shim, neither for the client nor for the backend.
    CHECK(client_read == 0);
    CHECK(backend_read == 0);
  } else {
    // On epoll the shim sees each read call's bytes: the client's request
    // exactly once (no peeking, no second read); the backend's answer likewise.
    CHECK(client_read == request.size());
    CHECK(backend_read == backend_answer.size());
  }
  if (heap_counted) {
    // One buffer for the body, shared by every layer: the heap grows by the
    // body and a bounded overhead, never by a second copy.
    CHECK(heap >= body_size);  // the counter sees the body's own buffer
    CHECK(heap <= body_size + heap_overhead);
  }
  GATEWAY_REPORT("1 MiB POST through the chain on "
                 << (ring ? "io_uring" : "epoll") << ": read " << client_read << " bytes from the client (request "
                 << request.size() << "), heap " << heap << " bytes in " << heap_calls << " allocations (body "
                 << body_size << ")");

  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
}

TEST_CASE("validation checks 4 MiB bodies of many small values with no memory in proportion to them",
          "[integration][middleware]") {
  // The body is in the request arena; checking it must not add a tree of
  // it (a DOM of "[1,1,...]" is ~12 times the text): the gateway's peak
  // RSS may grow by the body and the buffers around it, not by a multiple.
  constexpr std::size_t body_size = 4u << 20;
  constexpr std::uint64_t allowed_growth = 2 * body_size + (4u << 20);
  test::recording_backend backend;
  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--listen", "127.0.0.1:0", "--backend",
                          backend.url(), "--threads", "1", "--api-key", "k", "--access-log", "off", "--validate",
                          "/api/users:name:required,min_len=3,max_len=10"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(port != 0);
  const std::string headers = "X-API-Key: k\r\nContent-Type: application/json\r\n";
  auto post = [&](const std::string& body) {
    auto r = test::http_request(port, test::make_request("POST", "/api/users", body, headers));
    REQUIRE(r);
    return *r;
  };
  // `head`, then `item` repeated, then `tail`: body_size bytes in all.
  auto filled = [&](std::string head, std::string_view item, std::string_view tail) {
    std::string body = std::move(head);
    body.reserve(body_size);
    while (body.size() + item.size() + tail.size() <= body_size) body += item;
    body.pop_back();  // the last item's ','
    body += tail;
    return body;
  };
  struct scenario {
    std::string name, body;
    int status;
    std::string message;
  };
  const std::vector<scenario> cases = {
      {"top-level array", filled("[", "1,", "]"), 400, "Invalid JSON\n"},
      {"array member", filled(R"({"name":"alice","n":[)", "1,", "]}"), 200, ""},
      {"many members", filled("{", R"("a":1,)", R"(,"name":"alice"})"), 200, ""},
      {"nested object", filled(R"({"name":"alice","o":{"p":[{)", R"("k":[1],)", "}]}}"), 200, ""},
      {"error at the end", filled(R"({"name":"alice","n":[)", "1,", ",]}"), 400, "Invalid JSON\n"},
      {"too short", filled(R"({"n":[)", "1,", R"(],"name":"al"})"), 400, "Field too short: name\n"},
  };
  REQUIRE(post(R"({"name":"alice"})").status == 200);  // warm-up: the backend connection and the worker's buffers
  const std::uint64_t base = test::peak_rss_of(gw.pid());
  REQUIRE(base > 0);
  for (const auto& c : cases) {
    INFO(c.name << " (" << c.body.size() << " bytes)");
    REQUIRE(c.body.size() <= body_size);
    REQUIRE(c.body.size() > body_size - 16);
    const auto r = post(c.body);
    CHECK(r.status == c.status);
    if (!c.message.empty()) CHECK(r.body == c.message);
    const std::uint64_t peak = test::peak_rss_of(gw.pid());
    INFO("peak RSS " << base / 1024 << " KiB before, " << peak / 1024 << " KiB after");
    if (test::rss_checks_apply) CHECK(peak - base <= allowed_growth);
    GATEWAY_REPORT("validation of a 4 MiB body, " << c.name << ": " << r.status << ", gateway peak RSS "
                                                   << base / 1024 << " -> " << peak / 1024 << " KiB");
  }
  CHECK(backend.request_count() == 4);  // the warm-up and the three valid bodies
  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
}
