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
#include <map>
#include <regex>

#include "gateway/json/reader.hpp"
#include "tests/integration/proxy/recording_backend.hpp"
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
  // A key of the same length that is not configured has no budget of its
  // own: counted under the client's address (untouched so far, every
  // request above presented a configured key), then refused by the key
  // check, request after request.
  for (const char* remaining : {"2", "1", "0"})
    CHECK(status(get("/logs?limit=0", "X-API-Key: key-six\r\n")) == std::pair{401, std::string(remaining)});
  // Other made-up keys, and no key, share that spent address budget, on
  // routes with auth and without.
  for (const char* guess : {"key-sev", "guess1", "guess2", "key-six"}) {
    INFO(guess);
    CHECK(status(get("/logs?limit=0", std::string("X-API-Key: ") + guess + "\r\n")).first == 429);
    CHECK(status(get("/health", std::string("X-API-Key: ") + guess + "\r\n")).first == 429);
    CHECK(status(get(std::string("/metrics?api_key=") + guess)).first == 429);
  }
  CHECK(status(get("/health")).first == 429);
  // key-two again after the wrong keys: still its own budget.
  CHECK(status(get("/logs?limit=0", "X-API-Key: key-two\r\n")) == std::pair{200, std::string("1")});
  // Another address with a made-up key: that address's budget.
  {
    test::raw_client other(srv.port(), 5000ms, "127.0.0.2");
    REQUIRE(other.send(get("/health", "X-API-Key: guess3\r\n")));
    auto r = other.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("RateLimit-Remaining") == "2");
  }
  // The query form, percent-encoded: counted as the key check reads it,
  // decoded, so every spelling of a key spends that key's one budget.
  CHECK(status(get("/logs?limit=0&api_key=key%2Dtwo")) == std::pair{200, std::string("0")});
  for (const char* spelling : {"%6Bey-two", "k%65y-two", "key%2dtwo", "%6b%65%79%2d%74%77%6f", "key-two"}) {
    INFO(spelling);
    CHECK(status(get(std::string("/logs?limit=0&api_key=") + spelling)).first == 429);
  }
  for (const char* spelling : {"%6Bey-one", "key%2Done"}) {
    INFO(spelling);
    CHECK(status(get(std::string("/logs?limit=0&api_key=") + spelling)).first == 429);
  }
  CHECK(status(get("/logs?limit=0&api_key=key%2Dsix")).first == 429);
}

TEST_CASE("rate limit by API key: made-up keys cannot fill the table and evict a real key's count",
          "[integration][middleware]") {
  auto cfg = gateway_config();
  cfg.rate_limit_key = "api-key";
  cfg.rate_limit = 3;
  cfg.rate_limit_max_clients = 64;  // the smallest table
  test::running_server srv(cfg);
  test::raw_client c(srv.port());
  const auto status = [&](const std::string& request) {
    REQUIRE(c.send(request));
    auto r = c.read_response();
    REQUIRE(r);
    return r->status;
  };
  for (int i = 0; i < 3; ++i) CHECK(status(get("/logs?limit=0", "X-API-Key: key-one\r\n")) == 200);
  CHECK(status(get("/logs?limit=0", "X-API-Key: key-one\r\n")) == 429);
  // 300 distinct made-up keys, pipelined on one connection: one address.
  std::string burst;
  for (int i = 0; i < 300; ++i) burst += get("/health", "X-API-Key: junk" + std::to_string(i) + "\r\n");
  REQUIRE(c.send(burst));
  std::map<int, int> seen;
  for (int i = 0; i < 300; ++i) {
    auto r = c.read_response();
    REQUIRE(r);
    ++seen[r->status];
  }
  CHECK(seen[200] == 3);
  CHECK(seen[429] == 297);
  // key-one's count survived: still refused.
  CHECK(status(get("/logs?limit=0", "X-API-Key: key-one\r\n")) == 429);
  CHECK(status(get("/logs?limit=0&api_key=key%2Done")) == 429);
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

TEST_CASE("logs: a log of large entries is served within the byte cap, the newest entries whole and oldest first",
          "[integration][middleware]") {
  auto cfg = gateway_config();
  cfg.log_capacity = 2000;
  test::running_server srv(cfg);
  // Entries as large as the ring keeps them, and larger still once
  // escaped: a 4 KiB body of control bytes (\u0001, six bytes each) and
  // four 1000-byte tab-filled header values (\t, two bytes each).
  const std::string body(4096, '\x01');
  const std::string tabs = "a" + std::string(998, '\t') + "b";
  std::string headers;
  for (int h = 0; h < 4; ++h) headers += "X-Tabs-" + std::to_string(h) + ": " + tabs + "\r\n";
  test::raw_client c(srv.port(), 10000ms);
  constexpr int total = 2000, batch = 50;
  for (int sent = 0; sent < total; sent += batch) {
    std::string burst;
    for (int i = sent; i < sent + batch; ++i)
      burst += test::make_request("POST", "/nope/" + std::to_string(i), body, headers);
    REQUIRE(c.send(burst));
    for (int i = 0; i < batch; ++i) {
      auto r = c.read_response();
      REQUIRE(r);
      REQUIRE(r->status == 404);
    }
  }
  const std::size_t before = test::rss_bytes();
  auto r = test::http_request(srv.port(), get("/logs", "X-API-Key: key-one\r\n"));
  const std::size_t after = test::rss_bytes();
  REQUIRE(r);
  REQUIRE(r->status == 200);
  INFO("body bytes " << r->body.size() << ", X-Logs-Truncated " << r->header("X-Logs-Truncated"));
  CHECK(r->body.size() <= 8u * 1024 * 1024);
  CHECK(r->body.size() > 7u * 1024 * 1024);  // filled up to the cap, less than one entry short
  auto doc = json::parse(r->body);
  REQUIRE(doc);
  REQUIRE(doc.value().is_array());
  const auto& items = doc.value().items();
  REQUIRE(!items.empty());
  CHECK(items.size() < static_cast<std::size_t>(total));
  CHECK(items.back().find("path")->as_string() == "/nope/" + std::to_string(total - 1));
  CHECK(items.front().find("path")->as_string() == "/nope/" + std::to_string(total - items.size()));
  CHECK(r->header("X-Logs-Truncated") == std::to_string(total - items.size()));
  // The whole log rendered was about 50 MB; the cut one, the client's copy
  // and the gateway's string (twice its size at most, while it grows) fit
  // well below that.
  if (test::rss_checks_apply) CHECK(after < before + 40u * 1024 * 1024);

  // ?limit=N still returns the newest N, unmarked when they fit.
  auto few = test::http_request(srv.port(), get("/logs?limit=5", "X-API-Key: key-one\r\n"));
  REQUIRE(few);
  CHECK(json::parse(few->body).value().size() == 5);
  CHECK(few->header("X-Logs-Truncated").empty());
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
  // Accept's weights and order decide; JSON, the seed's answer, unless the
  // client prefers the text format.
  for (const char* accept : {"application/json, text/plain, */*", "application/json;q=1, text/plain;q=0.1",
                             "text/plain;q=0", "*/*"}) {
    auto r = test::http_request(srv.port(), get("/metrics", "Accept: " + std::string(accept) + "\r\n"));
    REQUIRE(r);
    INFO("Accept: " << accept);
    CHECK(r->header("Content-Type") == "application/json");
    CHECK(json::parse(r->body));
  }
  auto scrape = test::http_request(
      srv.port(), get("/metrics", "Accept: application/openmetrics-text;version=1.0.0;q=0.75,"
                                  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"));
  REQUIRE(scrape);
  CHECK(scrape->header("Content-Type").find("text/plain; version=0.0.4") == 0);

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

TEST_CASE("request ids: of several X-Request-Id fields the first sane one is kept and the backend gets only it",
          "[integration][middleware]") {
  test::recording_backend backend;
  auto cfg = gateway_config();
  cfg.backend = backend.url();
  test::running_server srv(cfg);
  const auto ids_at_backend = [&] {
    auto all = backend.requests();
    REQUIRE(!all.empty());
    std::size_t n = 0;
    const std::string& head = all.back().head;
    for (auto at = head.find("\r\n"); at != std::string::npos; at = head.find("\r\n", at + 2))
      n += head.size() >= at + 2 + 14 && http::iequals(std::string_view(head).substr(at + 2, 14), "x-request-id: ");
    return std::pair{n, head};
  };
  const std::string key = "X-API-Key: key-one\r\n";

  // Two sane ids: the first is kept, everywhere.
  auto r = test::http_request(srv.port(),
                              get("/api/a", key + "X-Request-Id: abc\r\nX-Request-Id: injected-other-id\r\n"));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("X-Request-Id") == "abc");
  auto [count, head] = ids_at_backend();
  INFO(head);
  CHECK(count == 1);
  CHECK(head.find("X-Request-Id: abc\r\n") != std::string::npos);
  CHECK(head.find("injected") == std::string::npos);

  // Three, spelled differently: still the first one only.
  r = test::http_request(srv.port(),
                         get("/api/b", key + "x-request-id: first\r\nX-REQUEST-ID: second\r\nX-Request-Id: third\r\n"));
  REQUIRE(r);
  CHECK(r->header("X-Request-Id") == "first");
  std::tie(count, head) = ids_at_backend();
  CHECK(count == 1);
  CHECK(head.find(": first\r\n") != std::string::npos);
  CHECK(head.find("second") == std::string::npos);
  CHECK(head.find("third") == std::string::npos);

  // An insane first id: a generated one replaces every field.
  r = test::http_request(srv.port(), get("/api/c", key + "X-Request-Id: has space\r\nX-Request-Id: sane-two\r\n"));
  REQUIRE(r);
  const std::string generated = r->header("X-Request-Id");
  CHECK(generated.size() == 32);
  std::tie(count, head) = ids_at_backend();
  CHECK(count == 1);
  CHECK(head.find("X-Request-Id: " + generated + "\r\n") != std::string::npos);

  // One sane id: passed on as it came.
  r = test::http_request(srv.port(), get("/api/d", key + "X-Request-Id: only-one\r\n"));
  REQUIRE(r);
  CHECK(r->header("X-Request-Id") == "only-one");
  std::tie(count, head) = ids_at_backend();
  CHECK(count == 1);
  CHECK(head.find("X-Request-Id: only-one\r\n") != std::string::npos);

  // The log shows the kept id.
  auto logs = test::http_request(srv.port(), get("/logs", key));
  REQUIRE(logs);
  CHECK(logs->body.find("\"request_id\":\"abc\"") != std::string::npos);
  CHECK(logs->body.find("\"request_id\":\"injected-other-id\"") == std::string::npos);
}

TEST_CASE("Connection removes the client's fields it names, never Host, the request id or a verified claim",
          "[integration][middleware]") {
  test::recording_backend backend;
  auto cfg = gateway_config();
  cfg.backend = backend.url();
  cfg.jwt_claim_headers = {{"sub", "X-User"}};
  test::running_server srv(cfg);
  const auto last_head = [&] {
    auto all = backend.requests();
    REQUIRE(!all.empty());
    return all.back().head;
  };
  const std::string names = "Connection: keep-alive, X-Request-Id, Host, X-User, X-Private\r\nX-Private: p\r\n";

  // A generated id and the Host the client sent (and the gateway checked) reach the backend;
  // the client's own hop-by-hop field does not.
  auto r = test::http_request(srv.port(), get("/api/a", "X-API-Key: key-one\r\n" + names));
  REQUIRE(r);
  CHECK(r->status == 200);
  std::string head = last_head();
  INFO(head);
  CHECK(head.find("X-Request-Id: " + r->header("X-Request-Id") + "\r\n") != std::string::npos);
  CHECK(head.find("\r\nHost: test\r\n") != std::string::npos);
  CHECK(head.find("\r\nX-Forwarded-Host: test\r\n") != std::string::npos);
  CHECK(head.find("X-Private") == std::string::npos);

  // An id the client sent and the gateway kept is the backend's too.
  r = test::http_request(srv.port(), get("/api/b", "X-API-Key: key-one\r\nX-Request-Id: kept-id\r\n" + names));
  REQUIRE(r);
  CHECK(r->header("X-Request-Id") == "kept-id");
  head = last_head();
  CHECK(head.find("X-Request-Id: kept-id\r\n") != std::string::npos);

  // A claim header comes from the verified token, whatever Connection says.
  const std::string token =
      hs256_token(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"alice","exp":)" + std::to_string(now_s() + 600) + "}",
                  cfg.jwt_secret);
  r = test::http_request(srv.port(), get("/api/c", "Authorization: Bearer " + token + "\r\n" + names));
  REQUIRE(r);
  CHECK(r->status == 200);
  head = last_head();
  CHECK(head.find("X-User: alice\r\n") != std::string::npos);
  CHECK(head.find("X-Private") == std::string::npos);
}
