// SIGHUP reload of the real binary, as an operator does it: build/bin/gateway
// --config FILE runs as a child process, the test rewrites FILE and sends
// SIGHUP with kill(2). (dev_proxy_test.cpp calls the reload entry points
// in-process; this covers the signal handling, the file and the process.)
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/proxy/recording_backend.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/files.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/wait.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string get(std::string_view path) { return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n\r\n"; }

std::string routes_json(std::initializer_list<std::pair<std::string, std::string>> routes, std::string_view extra = {}) {
  std::string j = "{\"routes\": [";
  bool first = true;
  for (const auto& [prefix, url] : routes) {
    if (!first) j += ", ";
    first = false;
    j += "{\"prefix\": \"" + prefix + "\", \"backend\": \"" + url + "\"" + std::string(extra) + "}";
  }
  return j + "]}\n";
}

// Replaces the file's content in one step (a new file renamed over it), as
// editors do, so the gateway never reads half a file.
void write_config(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << text;
  REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0);
}

// Receives until `want` bytes are in `into` (true) or the peer closes or the
// socket's receive timeout passes (false).
bool receive_until(int fd, std::string& into, std::size_t want) {
  char buf[65536];
  while (into.size() < want) {
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - into.size()), 0);
    if (n <= 0) return false;
    into.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

std::optional<test::http_response> fetch(std::uint16_t port, std::string_view path) {
  return test::http_request(port, get(path));
}

}  // namespace

TEST_CASE("SIGHUP: the gateway rereads its config file, new routes answer at once, requests in flight finish, "
          "a bad file is refused and the old routes stay",
          "[integration][dev]") {
  constexpr std::uint64_t big = 64u << 20;  // a response still streaming while the reload happens
  test::recording_backend one, two;
  one.set_recording(false);
  one.set_script([](const test::recorded_request& r) {
    if (r.target == "/big")
      return test::reply{"HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big) + "\r\n\r\n", big};
    return test::reply{test::ok_response("one")};
  });
  two.set_script([](const test::recorded_request&) { return test::reply{test::ok_response("two")}; });

  char name[] = "/tmp/gateway-sighup-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string path = name;
  write_config(path, routes_json({{"/a/", one.url()}}));

  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--config", path, "--listen", "127.0.0.1:0",
                          "--threads", "2", "--access-log", "off"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);
  const auto port = static_cast<std::uint16_t>(test::port_after_listening_on(*listening));
  REQUIRE(port != 0);

  REQUIRE(fetch(port, "/a/x"));
  CHECK(fetch(port, "/a/x")->body == "one");
  CHECK(fetch(port, "/b/x")->status == 404);  // no such route yet: an unknown path

  // A request in flight across the reload: its head and the first MiB now,
  // the rest after the new configuration is serving.
  test::raw_client streaming(port, 10000ms);
  REQUIRE(streaming.send(get("/a/big")));
  std::string got;
  std::size_t head_end = std::string::npos;
  while (head_end == std::string::npos) {
    const std::size_t had = got.size();
    REQUIRE(receive_until(streaming.fd(), got, had + 1));
    head_end = got.find("\r\n\r\n");
  }
  head_end += 4;
  REQUIRE(got.substr(0, 12) == "HTTP/1.1 200");
  REQUIRE(receive_until(streaming.fd(), got, head_end + (1u << 20)));

  // And a steady load on keep-alive connections, some of them opened before
  // the reload and reused after it.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&, t] {
      while (!stop) {
        test::raw_client c(port, 5000ms);
        for (int i = 0; i < 25 + 20 * t && !stop; ++i) {
          auto r = c.send(get("/a/ping")) ? c.read_response() : std::nullopt;
          if (!r || r->status != 200 || r->body != "one") {
            ++failed;
            break;
          }
          ++ok;
        }
      }
    });
  }
  REQUIRE(test::wait_until([&] { return ok.load() > 200; }, 20s));

  write_config(path, routes_json({{"/a/", one.url()}, {"/b/", two.url()}}));
  std::size_t from = gw.err().size();
  REQUIRE(::kill(gw.pid(), SIGHUP) == 0);
  auto said = gw.wait_for_line("SIGHUP", true, 10s, from);
  REQUIRE(said);
  INFO("gateway: " << *said);
  CHECK(said->find("reloaded") != std::string::npos);
  CHECK(test::wait_until([&] { auto r = fetch(port, "/b/x"); return r && r->status == 200 && r->body == "two"; },
                         5000ms));
  const int at_reload = ok.load();
  REQUIRE(test::wait_until([&] { return ok.load() > at_reload + 200; }, 20s));

  // The response that started before the reload arrives whole and intact.
  REQUIRE(receive_until(streaming.fd(), got, head_end + big));
  std::size_t wrong = 0;
  for (std::uint64_t i = 0; i < big; ++i)
    if (got[head_end + i] != test::pattern_byte(i)) ++wrong;
  CHECK(wrong == 0);

  // A file with a typo: refused, named, and the running routes stay.
  write_config(path, routes_json({{"/c/", two.url()}}, ", \"auht\": false"));
  from = gw.err().size();
  REQUIRE(::kill(gw.pid(), SIGHUP) == 0);
  said = gw.wait_for_line("SIGHUP", true, 10s, from);
  REQUIRE(said);
  INFO("gateway: " << *said);
  CHECK(said->find("REFUSED") != std::string::npos);
  CHECK(said->find("unknown key 'auht'") != std::string::npos);
  CHECK(fetch(port, "/b/x")->body == "two");
  CHECK(fetch(port, "/a/x")->body == "one");
  CHECK(fetch(port, "/c/x")->status == 404);

  stop = true;
  for (auto& c : clients) c.join();
  CHECK(failed.load() == 0);
  CHECK(ok.load() > at_reload + 200);

  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
  std::remove(path.c_str());
}

namespace {

// A config file of `routes` routes, each a group of 32 members (the most a
// group takes) on loopback ports counting up from `first_port`; nothing
// listens there, and nothing is sent to them.
std::string many_members_json(int routes, int first_port) {
  std::string j = "{\"routes\": [";
  int port = first_port;
  for (int r = 0; r < routes; ++r) {
    if (r) j += ", ";
    j += "{\"prefix\": \"/r" + std::to_string(r) + "/\", \"backend\": [";
    for (int m = 0; m < 32; ++m)
      j += (m ? ", \"" : "\"") + std::string("http://127.0.0.1:") + std::to_string(port++) + "\"";
    j += "]}";
  }
  return j + "]}\n";
}

}  // namespace

TEST_CASE("SIGHUP: a reload that replaces every member of a large configuration is applied", "[integration][dev]") {
  // 17 groups of 32: 544 members, above half the 1,024 a configuration may
  // have, so the running members and the incoming ones together pass 1,024.
  test::temp_dir dir;
  const std::string path = dir.file("members.json");
  write_config(path, many_members_json(17, 20000));

  test::child_process gw({std::string(GATEWAY_BIN_DIR) + "/gateway", "--config", path, "--listen", "127.0.0.1:0",
                          "--threads", "2", "--access-log", "off"});
  const auto listening = gw.wait_for_line("listening on", true, 10s);
  REQUIRE(listening);

  for (const int first_port : {30000, 40000}) {
    write_config(path, many_members_json(17, first_port));
    const std::size_t from = gw.err().size();
    REQUIRE(::kill(gw.pid(), SIGHUP) == 0);
    const auto said = gw.wait_for_line("SIGHUP", true, 10s, from);
    REQUIRE(said);
    INFO("gateway: " << *said);
    CHECK(said->find("reloaded") != std::string::npos);
  }

  gw.signal(SIGTERM);
  const auto status = gw.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
}
