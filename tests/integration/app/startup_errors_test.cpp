// Start-up errors of the gateway binary: --check-config refuses (exit 1)
// what a start refuses (exit 2), with the same message naming the flag.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <string>
#include <vector>

#include "gateway/app/settings.hpp"
#include "gateway/core/config.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/files.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/tls_client.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

const std::string gateway_bin = std::string(GATEWAY_BIN_DIR) + "/gateway";

struct outcome {
  int status = -1;
  std::string err;
};

// The gateway on loopback with one thread and `args`; killed (and the test
// failed) when it is still running after 10 s: it was meant to refuse.
outcome run_gateway(const std::vector<std::string>& args, bool check) {
  std::vector<std::string> argv{gateway_bin, "--listen", "127.0.0.1:0", "--threads", "1"};
  if (check) argv.push_back("--check-config");
  argv.insert(argv.end(), args.begin(), args.end());
  test::child_process gw(argv);
  const auto status = gw.wait_exit(10s);
  return {status ? *status : -1, gw.err()};
}

struct refused_case {
  std::vector<std::string> args;
  std::string expect;  // in stderr, both times
};

// Each case: a start exits 2 and --check-config exits 1, both saying `expect`.
void check_refused_alike(const std::vector<refused_case>& cases) {
  for (const auto& c : cases) {
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    INFO(shown << "-> " << c.expect);
    const outcome started = run_gateway(c.args, false);
    INFO("start stderr: " << started.err);
    CHECK(started.status == 2);
    CHECK(started.err.find(c.expect) != std::string::npos);
    const outcome checked = run_gateway(c.args, true);
    INFO("--check-config stderr: " << checked.err);
    CHECK(checked.status == 1);
    CHECK(checked.err.find(c.expect) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("start-up: --check-config refuses the flag combinations a start refuses", "[integration][startup]") {
  test::temp_dir dir;
  const std::string cert = dir.file("a.pem"), key = dir.file("a.key");
  test::make_certificate({"localhost"}, cert, key);
  check_refused_alike({
      {{"--redirect-http", "0"}, "--redirect-http: needs TLS on the listener"},
      {{"--proxy-protocol", "--tls-cert", cert, "--tls-key", key}, "--proxy-protocol: not supported together with TLS"},
      {{"--proxy-protocol", "--tls", "self-signed", "--tls-self-signed-pem", dir.file("s.pem")},
       "--proxy-protocol: not supported together with TLS"},
      {{"--tls", "self-signed", "--tls-cert", cert, "--tls-key", key},
       "--tls self-signed: not together with --tls-cert/--tls-key"},
      {{"--tls", "self-signed", "--tls-self-signed-pem", dir.file("no/such/dir/x.pem")},
       "--tls-self-signed-pem " + dir.file("no/such/dir/x.pem") + ": cannot write the certificate"},
      {{"--tls", "self-signed", "--tls-self-signed-pem", dir.path()},
       "--tls-self-signed-pem " + dir.path() + ": cannot write the certificate"},
  });
}

TEST_CASE("start-up: --check-config finds a writable --tls-self-signed-pem file OK and does not write it",
          "[integration][startup]") {
  test::temp_dir dir;
  core::config cfg;
  cfg.listen.host = "127.0.0.1";
  cfg.listen.port = 0;
  cfg.tls_mode = "self-signed";
  cfg.tls_self_signed_pem = dir.file("s.pem");
  std::string message;
  const bool ok = app::check_config(cfg, message);
  INFO(message);
  CHECK(ok);
  CHECK_THAT(message, Catch::Contains("configuration OK"));
  struct stat st {};
  CHECK(::stat(cfg.tls_self_signed_pem.c_str(), &st) != 0);
  CHECK(::stat((cfg.tls_self_signed_pem + ".tmp").c_str(), &st) != 0);
}

TEST_CASE("start-up: a bad listen address, API key, key file or backend URL exits 2 naming the flag or route",
          "[integration][startup]") {
  check_refused_alike({
      {{"--listen", "localhost:0"}, "--listen: 'localhost' is not a numeric IP address"},
      {{"--api-keys-file", "/nonexistent/keys"}, "--api-keys-file: "},
      {{"--api-key", "a\x01" "b"}, "--api-key: API key #1: "},
      {{"--backend", "http://127.0.0.1:99999"}, "--backend: backend URL 'http://127.0.0.1:99999': invalid port"},
      {{"--backend", "http://127.0.0.1:1/path"}, "--backend: backend URL 'http://127.0.0.1:1/path': only http(s)"},
      {{"--backend", "http://127.0.0.1:1", "--backend", "http://127.0.0.1:0"},
       "--backend: backend URL 'http://127.0.0.1:0': invalid port"},
      {{"--route", "/x/=http://127.0.0.1:70000"}, "route /x/: backend URL 'http://127.0.0.1:70000': invalid port"},
  });
}

TEST_CASE(
    "start-up: more backend group members in all than the gateway keeps states for exit 2, as --check-config says",
    "[integration][startup]") {
  // 33 routes of 32 members (each route's most): 1,056 and /api/'s, past the 1,024 member states kept across reloads.
  std::vector<std::string> args;
  for (int r = 0; r < 33; ++r) {
    std::string list = "/r" + std::to_string(r) + "/=";
    for (int m = 0; m < 32; ++m)
      list += (m ? ",http://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(20000 + r * 32 + m);
    args.insert(args.end(), {"--route", list});
  }
  check_refused_alike({{args, " backend group members in all, more than 1024"}});
}

TEST_CASE("start-up: bounds given the wrong way round exit 2 naming the flag instead of being raised silently",
          "[integration][startup]") {
  check_refused_alike({
      {{"--eject-time", "5s", "--eject-max", "1s"}, "--eject-max: shorter than --eject-time (1s < 5s)"},
      {{"--dns-min-ttl", "2m", "--dns-max-ttl", "30s"}, "--dns-max-ttl: shorter than --dns-min-ttl (30s < 120s)"},
      {{"--jwt-leeway", "500ms"}, "--jwt-leeway: invalid value '500ms': expected whole seconds, like 30s"},
  });
}

TEST_CASE("start-up: a body budget smaller than the largest body is warned about, and such a body gets 503",
          "[integration][startup]") {
  test::child_process g(
      {gateway_bin, "--listen", "127.0.0.1:0", "--threads", "1", "--max-body", "64KiB", "--body-budget", "32KiB"});
  const auto listening = g.wait_for_line("listening on", true, 10s);
  INFO("stderr: " << g.err());
  REQUIRE(listening);
  CHECK(g.wait_for_line(
      "WARNING: --body-budget 32KiB is smaller than --max-body 64KiB: every body between the two gets 503", true, 5s));
  const unsigned port = test::port_after_listening_on(*listening);
  REQUIRE(port != 0);
  auto r = test::http_request(static_cast<std::uint16_t>(port),
                              test::make_request("POST", "/health", std::string(48u * 1024, 'x')));
  REQUIRE(r);
  CHECK(r->status == 503);
  g.signal(SIGTERM);
  CHECK(g.wait_exit(10s) == 0);
  // With the budget at least the limit, no warning.
  test::child_process quiet(
      {gateway_bin, "--listen", "127.0.0.1:0", "--threads", "1", "--max-body", "64KiB", "--body-budget", "64KiB"});
  REQUIRE(quiet.wait_for_line("listening on", true, 10s));
  CHECK_FALSE(quiet.wait_for_line("--body-budget", true, 1s));
  quiet.signal(SIGTERM);
  CHECK(quiet.wait_exit(10s) == 0);
}

TEST_CASE("start-up: a --validate rule for a path no route serves exits 2 instead of never running",
          "[integration][startup]") {
  check_refused_alike({
      {{"--validate", "/users:name:required"},
       "--validate /users: no route serves this path (/api/ or a --route prefix): the rule would never run"},
      {{"--route", "/app/=http://127.0.0.1:1", "--validate", "/apps/x:name:required"},
       "--validate /apps/x: no route serves this path"},
  });
  // Under a --route prefix, or the prefix itself without its '/', it is taken.
  for (const char* rule : {"/app/users:name:required", "/app:name:required", "/api:name:required"}) {
    const outcome checked =
        run_gateway({"--route", "/app/=http://127.0.0.1:1", "--api-key", "k", "--validate", rule}, true);
    INFO(rule << ": " << checked.err);
    CHECK(checked.status == 0);
  }
}

TEST_CASE("start-up: one backend written two ways in one group exits 2 instead of counting twice",
          "[integration][startup]") {
  check_refused_alike({
      {{"--backend", "http://127.0.0.1:021100,http://127.0.0.1:21100"},
       "--backend: 'http://127.0.0.1:021100' and 'http://127.0.0.1:21100' are the same backend"},
      {{"--backend", "http://Backend.Example:80", "--backend", "http://backend.example"},
       "--backend: 'http://Backend.Example:80' and 'http://backend.example' are the same backend"},
      {{"--route", "/x/=https://[::1],https://[0:0::1]:443"},
       "route /x/: 'https://[::1]' and 'https://[0:0::1]:443' are the same backend"},
      {{"--backend", "http://::1:8080"},
       "--backend: backend URL 'http://::1:8080': an IPv6 address goes in brackets, like http://[::1]:8080"},
  });
}

TEST_CASE("start-up: a route prefix or validation route no normalized path can match exits 2 naming the flag and "
          "the value",
          "[integration][startup]") {
  check_refused_alike({
      {{"--route", "/a//b/=http://127.0.0.1:1"},
       "--route: invalid value '/a//b/=http://127.0.0.1:1': the route prefix cannot hold '//'"},
      {{"--route", "/%61pi/=http://127.0.0.1:1"},
       "--route: invalid value '/%61pi/=http://127.0.0.1:1': the route prefix cannot hold '%61'"},
      {{"--validate", "/api//users:name:required"},
       "--validate: invalid value '/api//users:name:required': the route cannot hold '//'"},
      {{"--validate", "/api/%75sers:name:required"},
       "--validate: invalid value '/api/%75sers:name:required': the route cannot hold '%75'"},
      {{"--validate", "/api/x/../users:name:required"},
       "--validate: invalid value '/api/x/../users:name:required': the route cannot hold a '.' or '..' segment"},
  });
}

TEST_CASE("start-up: a port another gateway (or any program) listens on is refused, never shared",
          "[integration][startup]") {
  // Several workers share their port with SO_REUSEPORT; a second gateway of the same user must not
  // join the first one's group and take a share of its connections.
  test::child_process first({gateway_bin, "--listen", "127.0.0.1:0", "--threads", "2", "--api-key", "k"});
  const auto listening = first.wait_for_line("listening on", true, 10s);
  INFO("first: " << first.err());
  REQUIRE(listening);
  const unsigned port = test::port_after_listening_on(*listening);
  REQUIRE(port != 0);
  const std::string at = "127.0.0.1:" + std::to_string(port);
  for (const char* threads : {"2", "1"}) {
    test::child_process second({gateway_bin, "--listen", at, "--threads", threads, "--api-key", "k"});
    const auto status = second.wait_exit(10s);
    INFO("threads " << threads << ", second: " << second.err());
    REQUIRE(status);  // it stopped instead of serving
    CHECK(*status == 1);
    CHECK(second.err().find("gateway: --listen " + at + ": cannot listen: Address already in use") !=
          std::string::npos);
    CHECK(second.err().find("listening on") == std::string::npos);
  }
  first.signal(SIGTERM);
  const auto status = first.wait_exit(15s);
  REQUIRE(status);
  CHECK(*status == 0);
}
