// End-to-end tests of the middleware chain through the whole gateway
// (app::instance on loopback): the contract's route and middleware tables.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "gateway/json/reader.hpp"
#include "tests/support/test_server.hpp"
#include "tests/support/skip.hpp"

using namespace gateway;
using namespace std::chrono_literals;

namespace {

std::string base64url(std::string_view in) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  auto b = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(in[k])); };
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (in.size() - i == 1) {
    unsigned v = b(i) << 16;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    unsigned v = (b(i) << 16) | (b(i + 1) << 8);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
  }
  return out;
}

std::string hs256_token(std::string_view header, std::string_view payload, std::string_view secret) {
  std::string input = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url(std::string_view(reinterpret_cast<char*>(mac), len));
}

long long now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

core::config gateway_config() {
  auto cfg = test::test_config();
  cfg.api_keys = {"key-one", "key-two"};
  cfg.jwt_secret = "0123456789abcdef0123456789abcdef";
  return cfg;
}

std::string get(std::string_view target, std::string_view extra = {}) {
  return test::make_request("GET", target, {}, extra);
}

}  // namespace

TEST_CASE("auth: API keys in header or query pass, others get 401 with WWW-Authenticate", "[integration][middleware]") {
  test::running_server srv(gateway_config());
  auto ok_header = test::http_request(srv.port(), get("/logs?limit=1", "X-API-Key: key-two\r\n"));
  REQUIRE(ok_header);
  CHECK(ok_header->status == 200);
  auto ok_query = test::http_request(srv.port(), get("/logs?limit=1&api_key=key-one"));
  REQUIRE(ok_query);
  CHECK(ok_query->status == 200);
  for (std::string extra : {std::string(""), std::string("X-API-Key: wrong\r\n"), std::string("X-API-Key: key-one-extra\r\n"),
                            std::string("Authorization: Basic a2V5LW9uZTo=\r\n")}) {
    INFO("headers: " << extra);
    auto r = test::http_request(srv.port(), get("/logs", extra));
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->header("WWW-Authenticate").find("Bearer") != std::string::npos);
  }
  // /health and /metrics skip auth.
  CHECK(test::http_request(srv.port(), get("/health"))->status == 200);
  CHECK(test::http_request(srv.port(), get("/metrics"))->status == 200);
}

TEST_CASE("auth: a valid HS256 token passes, expired, tampered, alg none and wrongly signed ones get 401",
          "[integration][middleware]") {
  auto cfg = gateway_config();
  test::running_server srv(cfg);
  const std::string secret = cfg.jwt_secret;
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  auto bearer = [&](const std::string& token) { return "Authorization: Bearer " + token + "\r\n"; };
  auto status_with = [&](const std::string& token) {
    auto r = test::http_request(srv.port(), get("/logs?limit=1", bearer(token)));
    return r ? r->status : -1;
  };
  std::string good = hs256_token(header, R"({"sub":"u1","exp":)" + std::to_string(now_s() + 600) + "}", secret);
  CHECK(status_with(good) == 200);

  std::string expired = hs256_token(header, R"({"sub":"u1","exp":)" + std::to_string(now_s() - 3600) + "}", secret);
  CHECK(status_with(expired) == 401);

  std::string tampered = good;
  auto dot = tampered.find('.');
  tampered[dot + 3] = tampered[dot + 3] == 'A' ? 'B' : 'A';
  CHECK(status_with(tampered) == 401);

  std::string none = base64url(R"({"alg":"none","typ":"JWT"})") + "." + base64url(R"({"sub":"u1"})") + ".";
  CHECK(status_with(none) == 401);

  std::string wrong_key = hs256_token(header, R"({"sub":"u1"})", "another-secret-another-secret!!");
  CHECK(status_with(wrong_key) == 401);

  std::string not_before = hs256_token(header, R"({"nbf":)" + std::to_string(now_s() + 3600) + "}", secret);
  CHECK(status_with(not_before) == 401);
}

TEST_CASE("rate limit: the 100th request passes, the 101st gets 429 with Retry-After", "[integration][middleware]") {
  test::running_server srv(gateway_config());
  test::raw_client c(srv.port());
  for (int i = 1; i <= 100; ++i) {
    REQUIRE(c.send(get("/logs?limit=0", "X-API-Key: key-one\r\n")));
    auto r = c.read_response();
    REQUIRE(r);
    REQUIRE(r->status == 200);
    CHECK(r->header("RateLimit-Limit") == "100");
    CHECK(r->header("RateLimit-Remaining") == std::to_string(100 - i));
    CHECK(!r->header("RateLimit-Reset").empty());
  }
  REQUIRE(c.send(get("/logs?limit=0", "X-API-Key: key-one\r\n")));
  auto limited = c.read_response();
  REQUIRE(limited);
  CHECK(limited->status == 429);
  int retry_after = std::atoi(limited->header("Retry-After").c_str());
  CHECK(retry_after >= 1);
  CHECK(retry_after <= 61);  // a window plus the limiter's granularity (1 s)
  CHECK(limited->header("RateLimit-Remaining") == "0");
  // Every route shares the client's budget, /health and /metrics included
  // (as in the seed, where the limiter ran before auth on every route).
  for (const char* path : {"/health", "/metrics"}) {
    INFO(path);
    REQUIRE(c.send(get(path)));
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 429);
    CHECK(r->header("RateLimit-Remaining") == "0");
  }
  // Another client IP has its own budget.
  test::raw_client other(srv.port(), 5000ms, "127.0.0.2");
  REQUIRE(other.send(get("/logs?limit=0", "X-API-Key: key-one\r\n")));
  CHECK(other.read_response()->status == 200);

  test::raw_client third(srv.port(), 5000ms, "127.0.0.3");
  REQUIRE(third.send(get("/metrics")));
  auto m = third.read_response();
  REQUIRE(m);
  auto doc = json::parse(m->body);
  REQUIRE(doc);
  CHECK(doc.value().find("counters")->find("rate_limited")->as_int64() == 3);
}

TEST_CASE("rate limit by API key: one budget per key however it is sent, and the key check still decides",
          "[integration][middleware]") {
  auto cfg = gateway_config();
  cfg.rate_limit_key = "api-key";
  cfg.rate_limit = 3;
  test::running_server srv(cfg);
  test::raw_client c(srv.port());
  const auto status = [&](const std::string& request) {
    REQUIRE(c.send(request));
    auto r = c.read_response();
    REQUIRE(r);
    return std::pair{r->status, r->header("RateLimit-Remaining")};
  };
  // key-one in the header and in the query: one budget of 3.
  CHECK(status(get("/logs?limit=0", "X-API-Key: key-one\r\n")) == std::pair{200, std::string("2")});
  CHECK(status(get("/logs?limit=0&api_key=key-one")) == std::pair{200, std::string("1")});
  CHECK(status(get("/logs?limit=0", "X-API-Key: key-one\r\n")) == std::pair{200, std::string("0")});
  CHECK(status(get("/logs?limit=0", "X-API-Key: key-one\r\n")).first == 429);
  // key-two, on the same connection, has its own.
  CHECK(status(get("/logs?limit=0", "X-API-Key: key-two\r\n")) == std::pair{200, std::string("2")});
  // A key of the same length that is not configured: counted under its
  // own budget, then refused by the key check, request after request.
  for (const char* remaining : {"2", "1", "0"})
    CHECK(status(get("/logs?limit=0", "X-API-Key: key-six\r\n")) == std::pair{401, std::string(remaining)});
  // key-two again after the wrong key: still accepted.
  CHECK(status(get("/logs?limit=0", "X-API-Key: key-two\r\n")) == std::pair{200, std::string("1")});
  // The query form, percent-encoded: the rate limit counts the bytes as
  // sent (a budget of their own), the key check the decoded key.
  CHECK(status(get("/logs?limit=0&api_key=key%2Dtwo")) == std::pair{200, std::string("2")});
  CHECK(status(get("/logs?limit=0&api_key=key%2Dsix")) == std::pair{401, std::string("2")});
}

TEST_CASE("rate limit: --rate-limit-exempt takes exact paths out of the budget, nothing else",
          "[integration][middleware]") {
  auto cfg = gateway_config();
  cfg.rate_limit = 3;
  cfg.rate_limit_exempt = {"/health", "/api/status"};
  test::running_server srv(cfg);
  test::raw_client c(srv.port());
  auto status_of = [&](const std::string& target, std::string* limit_header = nullptr) {
    REQUIRE(c.send(get(target, "X-API-Key: key-one\r\n")));
    auto r = c.read_response();
    REQUIRE(r);
    if (limit_header) *limit_header = r->header("RateLimit-Limit");
    return r->status;
  };
  std::string limit;
  // Exempt paths are neither counted nor refused, and carry no RateLimit-*.
  for (int i = 0; i < 10; ++i) {
    CHECK(status_of("/health", &limit) == 200);
    CHECK(limit.empty());
    CHECK(status_of("/health?probe=" + std::to_string(i)) == 200);  // the query is not part of the path
    CHECK(status_of("/api/status", &limit) == 200);
    CHECK(limit.empty());
  }
  // The budget is still whole for everything else.
  CHECK(status_of("/metrics", &limit) == 200);
  CHECK(limit == "3");
  CHECK(status_of("/api/status/more") == 200);  // exact paths only, not prefixes
  CHECK(status_of("/logs?limit=0") == 200);
  CHECK(status_of("/api/statuses") == 429);
  CHECK(status_of("/metrics") == 429);
  CHECK(status_of("/health") == 200);
}

TEST_CASE("logs: /logs needs auth and shows no credential, /logs/clear takes POST and DELETE only",
          "[integration][middleware]") {
  auto cfg = gateway_config();
  test::running_server srv(cfg);
  std::string token = hs256_token(R"({"alg":"HS256"})", R"({"sub":"x"})", cfg.jwt_secret);
  // Requests carrying every kind of credential.
  test::http_request(srv.port(), get("/health?api_key=key-one&x=1", "Authorization: Bearer " + token +
                                                                       "\r\nCookie: session=s3cr3t\r\nX-API-Key: key-two\r\n"));
  test::http_request(srv.port(), test::make_request("POST", "/nothing", "body-text",
                                                    "Proxy-Authorization: Basic cHJveHk6cGFzcw==\r\n"));

  CHECK(test::http_request(srv.port(), get("/logs"))->status == 401);
  auto r = test::http_request(srv.port(), get("/logs", "X-API-Key: key-one\r\n"));
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->header("Content-Type") == "application/json");
  auto doc = json::parse(r->body);
  REQUIRE(doc);
  REQUIRE(doc.value().is_array());
  CHECK(doc.value().size() >= 3);
  for (const char* secret : {"key-one", "key-two", "s3cr3t", "cHJveHk6cGFzcw==", token.c_str()})
    CHECK(r->body.find(secret) == std::string::npos);
  CHECK(r->body.find("[REDACTED]") != std::string::npos);
  CHECK(r->body.find("body-text") != std::string::npos);
  const auto& first = doc.value().items()[0];
  for (const char* field : {"timestamp", "method", "path", "status_code", "duration", "client_ip", "headers", "body"})
    CHECK(first.find(field) != nullptr);

  auto limited = test::http_request(srv.port(), get("/logs?limit=1", "X-API-Key: key-one\r\n"));
  CHECK(json::parse(limited->body).value().size() == 1);

  auto wrong = test::http_request(srv.port(), get("/logs/clear", "X-API-Key: key-one\r\n"));
  CHECK(wrong->status == 405);
  for (const char* method : {"POST", "DELETE"}) {
    auto cleared = test::http_request(srv.port(), test::make_request(method, "/logs/clear", {}, "X-API-Key: key-one\r\n"));
    REQUIRE(cleared);
    CHECK(cleared->status == 200);
    CHECK(cleared->body == R"({"status":"cleared"})");
  }
  auto after = test::http_request(srv.port(), get("/logs", "X-API-Key: key-one\r\n"));
  // Only the clear request itself (logged after it ran) may be there.
  CHECK(json::parse(after->body).value().size() <= 1);
}

TEST_CASE("logs: entries keep the seed's field names and types, client_ip is the client's address and port",
          "[integration][middleware]") {
  test::running_server srv(gateway_config());
  test::raw_client c(srv.port(), 5000ms, "127.0.0.7");
  sockaddr_in local{};
  socklen_t len = sizeof local;
  REQUIRE(::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&local), &len) == 0);
  const std::string address = "127.0.0.7:" + std::to_string(ntohs(local.sin_port));
  REQUIRE(c.send(test::make_request("PUT", "/api/things?x=1", "{\"a\":1}",
                                    "X-API-Key: key-one\r\nx-multi: one\r\nX-Multi: two\r\n")));
  auto put = c.read_response();
  REQUIRE(put);
  REQUIRE(put->status == 200);
  REQUIRE(c.send(get("/logs?limit=1", "X-API-Key: key-one\r\n")));
  auto r = c.read_response();
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto doc = json::parse(r->body);
  REQUIRE(doc);
  REQUIRE(doc.value().size() == 1);
  const auto& e = doc.value().items()[0];
  const char* seed_fields[] = {"timestamp", "method", "path", "status_code", "duration", "client_ip", "headers", "body"};
  REQUIRE(e.members().size() >= 8);
  for (std::size_t i = 0; i < 8; ++i) CHECK(e.members()[i].key == seed_fields[i]);
  // timestamp: RFC 3339 UTC with a fraction, "2026-01-02T03:04:05.678Z".
  const std::string ts(e.find("timestamp")->as_string());
  CHECK(std::regex_match(ts, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)")));
  CHECK(e.find("method")->as_string() == "PUT");
  CHECK(e.find("path")->as_string() == "/api/things?x=1");
  CHECK(e.find("status_code")->as_int64() == 200);
  // duration: integer nanoseconds (Go's time.Duration), not a float.
  REQUIRE(e.find("duration")->as_int64());
  CHECK(*e.find("duration")->as_int64() > 0);
  CHECK(r->body.find("\"duration\":" + std::to_string(*e.find("duration")->as_int64()) + ",") != std::string::npos);
  CHECK(e.find("client_ip")->as_string() == address);
  const auto* h = e.find("headers");
  REQUIRE(h->is_object());
  CHECK(h->find("X-Multi")->as_string() == "one, two");
  CHECK(h->find("X-Api-Key")->as_string() == "[REDACTED]");
  CHECK(h->find("Host")->as_string() == "test");
  CHECK(e.find("body")->as_string() == "{\"a\":1}");
}

TEST_CASE("compression: a corrupt gzip body gets 400, a gzip bomb gets 413 with bounded memory",
          "[integration][middleware]") {
  test::running_server srv(gateway_config());
  auto corrupt = test::http_request(
      srv.port(), test::make_request("POST", "/api/nothing", "not gzip at all", "Content-Encoding: gzip\r\nX-API-Key: key-one\r\n"));
  REQUIRE(corrupt);
  CHECK(corrupt->status == 400);
  auto unknown = test::http_request(
      srv.port(), test::make_request("POST", "/api/nothing", "abc", "Content-Encoding: br\r\nX-API-Key: key-one\r\n"));
  CHECK(unknown->status == 415);

  // 1 GiB of zeros compresses to about 1 MiB; it must cost no more than the 10 MiB limit.
  std::string zeros(64u << 20, '\0');
  std::string bomb64 = test::gzip_bytes(zeros, 9);
  zeros.clear();
  zeros.shrink_to_fit();
  std::string bomb;
  for (int i = 0; i < 16; ++i) bomb += bomb64;  // concatenated members: 1 GiB in all
  INFO("bomb size " << bomb.size());
  std::size_t before = test::rss_bytes();
  auto r = test::http_request(srv.port(),
                              test::make_request("POST", "/api/nothing", bomb, "Content-Encoding: gzip\r\nX-API-Key: key-one\r\n"));
  REQUIRE(r);
  CHECK(r->status == 413);
  std::size_t after = test::rss_bytes();
  if (test::rss_checks_apply) CHECK(after < before + 16u * 1024 * 1024);
}

TEST_CASE("metrics: JSON has the seed's fields, Prometheus text parses and agrees with it",
          "[integration][middleware]") {
  test::running_server srv(gateway_config());
  for (int i = 0; i < 30; ++i) test::http_request(srv.port(), get("/health"));
  for (int i = 0; i < 7; ++i) test::http_request(srv.port(), get("/nothing"));  // 404s, before auth
  auto j = test::http_request(srv.port(), get("/metrics"));
  REQUIRE(j);
  CHECK(j->header("Content-Type") == "application/json");
  auto doc = json::parse(j->body);
  REQUIRE(doc);
  const auto& m = doc.value();
  for (const char* f : {"total_requests", "total_errors", "avg_latency_ms", "requests_by_path", "errors_by_path", "latency_ms"})
    CHECK(m.find(f) != nullptr);
  CHECK(m.find("total_requests")->as_int64() == 37);
  CHECK(m.find("total_errors")->as_int64() == 7);
  CHECK(m.find("requests_by_path")->find("/health")->as_int64() == 30);
  CHECK(m.find("errors_by_path")->find("/nothing")->as_int64() == 7);
  CHECK(m.find("counters")->find("auth_rejected")->as_int64() == 0);

  auto p = test::http_request(srv.port(), get("/metrics?format=prometheus"));
  REQUIRE(p);
  CHECK(p->header("Content-Type").find("text/plain; version=0.0.4") == 0);
  auto via_accept = test::http_request(srv.port(), get("/metrics", "Accept: text/plain;version=0.0.4\r\n"));
  CHECK(via_accept->header("Content-Type").find("text/plain") == 0);

  // The numbers agree (this scrape also counts the JSON request before it).
  std::smatch sm;
  REQUIRE(std::regex_search(p->body, sm, std::regex("\ngateway_requests_total (\\d+)\n")));
  CHECK(std::stoll(sm[1]) == 38);
  REQUIRE(std::regex_search(p->body, sm, std::regex("\ngateway_errors_total (\\d+)\n")));
  CHECK(std::stoll(sm[1]) == 7);
  REQUIRE(std::regex_search(p->body, sm, std::regex("gateway_path_requests_total\\{path=\"/health\"\\} (\\d+)")));
  CHECK(std::stoll(sm[1]) == 30);

  // A real parser (scripts/deps.sh installs Debian's prometheus for promtool).
  GATEWAY_REQUIRE_AVAILABLE(std::system("command -v promtool >/dev/null 2>&1") == 0,
                            "promtool not found (Debian package prometheus)");
  std::string path = "/tmp/gateway_metrics_" + std::to_string(::getpid()) + ".txt";
  {
    std::ofstream f(path);
    f << p->body;
  }
  int rc = std::system(("promtool check metrics < " + path + " > " + path + ".out 2>&1").c_str());
  std::ifstream out(path + ".out");
  std::string report((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  INFO("promtool said: " << report);
  CHECK(rc == 0);
  std::remove(path.c_str());
  std::remove((path + ".out").c_str());
}

TEST_CASE("request ids: a sane client id is kept, others are replaced, and /logs shows them",
          "[integration][middleware]") {
  test::running_server srv(gateway_config());
  auto kept = test::http_request(srv.port(), get("/health", "X-Request-Id: abc-123.def\r\n"));
  REQUIRE(kept);
  CHECK(kept->header("X-Request-Id") == "abc-123.def");
  auto generated = test::http_request(srv.port(), get("/health"));
  REQUIRE(generated);
  std::string id = generated->header("X-Request-Id");
  CHECK(id.size() == 32);
  auto generated2 = test::http_request(srv.port(), get("/health"));
  CHECK(generated2->header("X-Request-Id") != id);
  auto replaced = test::http_request(srv.port(), get("/health", "X-Request-Id: has spaces\"and quotes\r\n"));
  CHECK(replaced->header("X-Request-Id").size() == 32);
  auto logs = test::http_request(srv.port(), get("/logs", "X-API-Key: key-one\r\n"));
  REQUIRE(logs);
  CHECK(logs->body.find("\"request_id\":\"abc-123.def\"") != std::string::npos);
  CHECK(logs->body.find("\"request_id\":\"" + id + "\"") != std::string::npos);
}
