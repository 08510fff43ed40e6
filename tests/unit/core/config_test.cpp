#include "gateway/core/config.hpp"
#include "gateway/core/config_file.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace gateway::core;
using namespace std::chrono_literals;

namespace {

// Each FLAG VALUE pair, alone on the command line, is refused with a
// message that names the flag.
void check_refused(const std::vector<std::pair<const char*, const char*>>& cases) {
  for (auto [flag, value] : cases) {
    config b;
    const char* argv[] = {"gateway", flag, value};
    auto r = parse_args(3, argv, b);
    INFO(flag << " " << value);
    CHECK(r.what == parse_outcome::action::error);
    CHECK(r.message.find(flag) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("flags are parsed and bad values name the flag", "[unit][core]") {
  config c;
  const char* ok[] = {"gateway", "--listen", "127.0.0.1:9000", "--max-body=1MiB", "--threads", "3",
                      "--header-timeout", "250ms"};
  auto r = parse_args(8, ok, c);
  CHECK(r.what == parse_outcome::action::run);
  CHECK(c.listen.port == 9000);
  CHECK(c.max_body == 1024u * 1024);
  CHECK(c.threads == 3);
  CHECK(c.header_timeout == std::chrono::nanoseconds(250ms));

  const char* bad_port[] = {"gateway", "--listen", "127.0.0.1:99999"};
  auto e1 = parse_args(3, bad_port, c);
  CHECK(e1.what == parse_outcome::action::error);
  CHECK(e1.message.find("--listen") != std::string::npos);

  const char* bad_dur[] = {"gateway", "--idle-timeout", "forever"};
  auto e2 = parse_args(3, bad_dur, c);
  CHECK(e2.what == parse_outcome::action::error);
  CHECK(e2.message.find("--idle-timeout") != std::string::npos);

  const char* unknown[] = {"gateway", "--frobnicate"};
  auto e3 = parse_args(2, unknown, c);
  CHECK(e3.what == parse_outcome::action::error);
  CHECK(e3.message.find("--frobnicate") != std::string::npos);

  const char* missing[] = {"gateway", "--backend"};
  CHECK(parse_args(2, missing, c).what == parse_outcome::action::error);

  const char* help[] = {"gateway", "--help"};
  CHECK(parse_args(2, help, c).what == parse_outcome::action::help);
  auto text = help_text();
  for (const char* flag : {"--listen", "--backend", "--threads", "--max-body", "--header-timeout", "--idle-timeout",
                           "--drain-timeout", "--help", "--version"})
    CHECK(text.find(flag) != std::string::npos);
}

TEST_CASE("the io-backend flag takes auto, epoll or io_uring, defaults to auto and is a config-file key", "[unit][core]") {
  config c;
  CHECK(c.io_backend == io_backend_choice::automatic);
  const char* ring[] = {"gateway", "--io-backend", "io_uring"};
  REQUIRE(parse_args(3, ring, c).what == parse_outcome::action::run);
  CHECK(c.io_backend == io_backend_choice::io_uring);
  const char* epoll[] = {"gateway", "--io-backend=epoll"};
  REQUIRE(parse_args(2, epoll, c).what == parse_outcome::action::run);
  CHECK(c.io_backend == io_backend_choice::epoll);
  check_refused({{"--io-backend", "uring"}, {"--io-backend", ""}, {"--io-backend", "EPOLL"}});
  config f;
  std::string err;
  REQUIRE(apply_config_text("{\"io_backend\": \"epoll\"}", "c.json", f, err));
  CHECK(f.io_backend == io_backend_choice::epoll);
  CHECK(std::string(to_string(io_backend_choice::automatic)) == "auto");
  const std::string text = help_text();
  CHECK(text.find("--io-backend auto|epoll|io_uring") != std::string::npos);
  CHECK(text.find("[default: auto]") != std::string::npos);
}

TEST_CASE("the sched-policy flag takes normal or batch, defaults to normal and is a config-file key", "[unit][core]") {
  config c;
  CHECK(c.sched_policy == sched_policy_choice::normal);
  const char* batch[] = {"gateway", "--sched-policy", "batch"};
  REQUIRE(parse_args(3, batch, c).what == parse_outcome::action::run);
  CHECK(c.sched_policy == sched_policy_choice::batch);
  const char* normal[] = {"gateway", "--sched-policy=normal"};
  REQUIRE(parse_args(2, normal, c).what == parse_outcome::action::run);
  CHECK(c.sched_policy == sched_policy_choice::normal);
  check_refused({{"--sched-policy", "idle"}, {"--sched-policy", ""}, {"--sched-policy", "BATCH"}});
  config f;
  std::string err;
  REQUIRE(apply_config_text("{\"sched_policy\": \"batch\"}", "c.json", f, err));
  CHECK(f.sched_policy == sched_policy_choice::batch);
  const std::string text = help_text();
  CHECK(text.find("--sched-policy normal|batch") != std::string::npos);
}

TEST_CASE("the rate-limit-exempt flag takes exact paths, repeatable, and the config file's list", "[unit][core]") {
  config c;
  const char* ok[] = {"gateway", "--rate-limit-exempt", "/health", "--rate-limit-exempt=/metrics"};
  REQUIRE(parse_args(4, ok, c).what == parse_outcome::action::run);
  CHECK(c.rate_limit_exempt == std::vector<std::string>{"/health", "/metrics"});
  check_refused({{"--rate-limit-exempt", "health"}, {"--rate-limit-exempt", ""},
                 {"--rate-limit-exempt", "/health?x=1"}, {"--rate-limit-exempt", "/a//health"},
                 {"--rate-limit-exempt", "/%68ealth"}, {"--rate-limit-exempt", "/x/../health"}});
  config f;
  std::string err;
  REQUIRE(apply_config_text("{\"rate_limit_exempt\": [\"/health\", \"/ready\"]}", "c.json", f, err));
  CHECK(f.rate_limit_exempt == std::vector<std::string>{"/health", "/ready"});
  CHECK_FALSE(apply_config_text("{\"rate_limit_exempt\": [\"ready\"]}", "c.json", f, err));
  CHECK(err.find("'rate_limit_exempt'") != std::string::npos);
  // --help says what it does, and that every route is limited otherwise.
  const std::string text = help_text();
  CHECK(text.find("--rate-limit-exempt PATH") != std::string::npos);
  CHECK(text.find("/health and /metrics included") != std::string::npos);
}

TEST_CASE("the proxy-protocol flag is a switch, trusted-proxy a repeatable CIDR, both config-file keys",
          "[unit][core]") {
  config c;
  CHECK_FALSE(c.proxy_protocol);
  CHECK(c.trusted_proxies.empty());
  const char* ok[] = {"gateway", "--proxy-protocol", "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy=::1",
                      "--threads", "1"};
  REQUIRE(parse_args(7, ok, c).what == parse_outcome::action::run);
  CHECK(c.proxy_protocol);
  CHECK(c.threads == 1);  // the switch took no value from the next argument
  REQUIRE(c.trusted_proxies.size() == 2);
  CHECK(c.trusted_proxies.contains(*parse_ip("10.2.3.4")));
  CHECK(c.trusted_proxies.contains(*parse_ip("::1")));
  CHECK_FALSE(c.trusted_proxies.contains(*parse_ip("::2")));

  config off;
  const char* explicit_off[] = {"gateway", "--proxy-protocol=off"};
  REQUIRE(parse_args(2, explicit_off, off).what == parse_outcome::action::run);
  CHECK_FALSE(off.proxy_protocol);

  check_refused({{"--trusted-proxy", "10.0.0.0/33"},
                 {"--trusted-proxy", "10.0.0.1/8"},
                 {"--trusted-proxy", "lb.internal"},
                 {"--trusted-proxy", ""},
                 {"--trusted-proxy", "10.0.0.0/8,10.1.0.0/16"}});
  config b;
  const char* bad_switch[] = {"gateway", "--proxy-protocol=yes"};
  auto r = parse_args(2, bad_switch, b);
  CHECK(r.what == parse_outcome::action::error);
  CHECK(r.message.find("--proxy-protocol") != std::string::npos);

  config f;
  std::string err;
  REQUIRE(apply_config_text(R"({"proxy_protocol": true, "trusted_proxy": ["192.0.2.0/24", "2001:db8::/32"]})",
                            "c.json", f, err));
  CHECK(f.proxy_protocol);
  CHECK(f.trusted_proxies.size() == 2);
  CHECK(f.trusted_proxies.contains(*parse_ip("2001:db8::5")));
  config g;
  CHECK_FALSE(apply_config_text("{\n\"trusted_proxy\": [\"192.0.2.1/24\"]}", "c.json", g, err));
  CHECK(err.find("c.json:2: 'trusted_proxy'") != std::string::npos);

  const std::string text = help_text();
  CHECK(text.find("  --proxy-protocol ") != std::string::npos);
  CHECK(text.find("--trusted-proxy CIDR") != std::string::npos);
  CHECK(text.find("right-most address in X-Forwarded-For") != std::string::npos);
}

TEST_CASE("a config-file route takes header rules, a Host choice and CORS settings", "[unit][core]") {
  config c;
  std::string err;
  const std::string text = R"({"routes": [{"prefix": "/app/", "backend": "http://127.0.0.1:5173",
    "request_headers": {"set": {"X-Client": "${client_ip}"}, "add": {"X-Tag": ["a", "b"], "X-One": "1"},
                        "remove": ["Cookie"]},
    "response_headers": {"remove": ["Server"], "set": {"Cache-Control": "no-store"}},
    "host": "upstream",
    "cors": {"origins": ["https://app.example"], "methods": ["GET"], "headers": "*", "credentials": true,
             "max_age": "10m", "expose_headers": ["X-Request-Id"]}}]})";
  REQUIRE(apply_config_text(text, "c.json", c, err));
  INFO(err);
  REQUIRE(c.routes.size() == 1);
  const auto& r = c.routes[0];
  using field = std::pair<std::string, std::string>;
  CHECK(r.request_headers.set == std::vector<field>{{"X-Client", "${client_ip}"}});
  CHECK(r.request_headers.add == std::vector<field>{{"X-Tag", "a"}, {"X-Tag", "b"}, {"X-One", "1"}});
  CHECK(r.request_headers.remove == std::vector<std::string>{"Cookie"});
  CHECK(r.response_headers.set == std::vector<field>{{"Cache-Control", "no-store"}});
  CHECK(r.response_headers.remove == std::vector<std::string>{"Server"});
  CHECK(r.upstream_host);
  REQUIRE(r.cors);
  CHECK(r.cors->origins == std::vector<std::string>{"https://app.example"});
  CHECK(r.cors->methods == std::vector<std::string>{"GET"});
  CHECK(r.cors->headers == std::vector<std::string>{"*"});
  CHECK(r.cors->credentials);
  CHECK(r.cors->max_age == std::chrono::seconds(600));
  CHECK(r.cors->expose_headers == std::vector<std::string>{"X-Request-Id"});

  // Defaults: the client's Host, no rules, no CORS; methods default to the simple ones.
  config d;
  REQUIRE(apply_config_text(R"({"routes": [{"prefix": "/a/", "backend": "http://127.0.0.1:1",
                                 "cors": {"origins": "*", "max_age": 5}}]})",
                            "d.json", d, err));
  CHECK_FALSE(d.routes[0].upstream_host);
  CHECK(d.routes[0].request_headers.empty());
  CHECK(d.routes[0].cors->origins == std::vector<std::string>{"*"});
  CHECK(d.routes[0].cors->methods == std::vector<std::string>{"GET", "HEAD", "POST"});
  CHECK(d.routes[0].cors->max_age == std::chrono::seconds(5));
}

TEST_CASE("a config-file route's header rules and CORS settings must have their shape", "[unit][core]") {
  auto error_of = [](const std::string& route_keys) {
    config c;
    std::string err;
    const std::string text =
        "{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"http://127.0.0.1:1\",\n" + route_keys + "}]}";
    return apply_config_text(text, "c.json", c, err) ? std::string() : err;
  };
  CHECK_THAT(error_of(R"("request_headers": ["X-A"])"), Catch::Contains("c.json:2: 'request_headers': expected an object"));
  CHECK_THAT(error_of(R"("request_headers": {"sett": {}})"), Catch::Contains("unknown key 'sett'"));
  CHECK_THAT(error_of(R"("response_headers": {"set": {"X-A": 1}})"),
             Catch::Contains("'response_headers.set' 'X-A': expected a string"));
  CHECK_THAT(error_of(R"("request_headers": {"set": {"X-A": ["1", "2"]}})"),
             Catch::Contains("'request_headers.set' 'X-A': expected a string"));
  CHECK_THAT(error_of(R"("request_headers": {"remove": "Cookie"})"), Catch::Contains("expected a list of strings"));
  CHECK_THAT(error_of(R"("host": "backend")"), Catch::Contains("'host': expected \"client\""));
  CHECK_THAT(error_of(R"("cors": {"methods": ["GET"]})"), Catch::Contains("'cors': needs \"origins\""));
  CHECK_THAT(error_of(R"("cors": {"origins": "*", "allow": []})"), Catch::Contains("unknown key 'allow'"));
  CHECK_THAT(error_of(R"("cors": {"origins": "*", "max_age": -1})"), Catch::Contains("'max_age'"));
  CHECK_THAT(error_of(R"("cors": {"origins": "*", "credentials": "yes"})"), Catch::Contains("'credentials'"));
  CHECK(error_of(R"("host": "client")").empty());
}

TEST_CASE("a backend group: --backend repeats or takes a list, with weights, routes and the config file take lists",
          "[unit][core]") {
  config c;
  const char* ok[] = {"gateway", "--backend", "http://127.0.0.1:1", "--backend=http://127.0.0.1:2;weight=3,http://h:3",
                      "--route", "/svc/=http://127.0.0.1:4,http://127.0.0.1:5", "--balance", "least_request",
                      "--eject-after", "3", "--eject-time", "200ms", "--health-check", "/healthz",
                      "--health-thresholds", "1/4", "--retry-budget", "10"};
  REQUIRE(parse_args(18, ok, c).what == parse_outcome::action::run);
  CHECK(c.backend == "http://127.0.0.1:1,http://127.0.0.1:2;weight=3,http://h:3");
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].backend == "http://127.0.0.1:4,http://127.0.0.1:5");
  CHECK(c.balance == "least_request");
  CHECK(c.eject_after == 3);
  CHECK(c.eject_time == 200ms);
  CHECK(c.health_check == "/healthz");
  CHECK(c.health_healthy == 1);
  CHECK(c.health_unhealthy == 4);
  CHECK(c.retry_budget == 10);
  check_refused({
           {"--backend", "http://a:1;weight=0"}, {"--backend", "http://a:1,http://a:1"}, {"--backend", "ftp://a:1"},
           {"--route", "/x/=http://a:1,"}, {"--balance", "random"}, {"--health-check", "healthz"},
           {"--health-thresholds", "0/3"}, {"--retry-budget", "101"}, {"--eject-after", "x"}});
  config f;
  std::string err;
  REQUIRE(apply_config_text("{\"backend\": [\"http://127.0.0.1:1\", \"http://127.0.0.1:2;weight=2\"], \"routes\": "
                            "[{\"prefix\": \"/svc/\", \"backend\": [\"http://127.0.0.1:4\", \"http://127.0.0.1:5\"], "
                            "\"balance\": \"least_request\"}]}",
                            "c.json", f, err));
  CHECK(f.backend == "http://127.0.0.1:1,http://127.0.0.1:2;weight=2");
  REQUIRE(f.routes.size() == 1);
  CHECK(f.routes[0].backend == "http://127.0.0.1:4,http://127.0.0.1:5");
  CHECK(f.routes[0].balance == std::optional<std::string>("least_request"));
  CHECK_FALSE(apply_config_text("{\"routes\": [{\"prefix\": \"/s/\", \"backend\": [\"http://a:1\", 3]}]}", "c.json", f,
                                err));
  CHECK(err.find("'backend'") != std::string::npos);
  CHECK_FALSE(apply_config_text("{\"routes\": [{\"prefix\": \"/s/\", \"backend\": \"http://a:1\", \"balance\": \"x\"}]}",
                                "c.json", f, err));
  CHECK(err.find("'balance'") != std::string::npos);
  // The command line's first --backend replaces the file's group.
  const std::string path = "/tmp/gateway_config_test_group_" + std::to_string(::getpid()) + ".json";
  {
    std::FILE* out = std::fopen(path.c_str(), "w");
    REQUIRE(out != nullptr);
    std::fputs("{\"backend\": [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]}", out);
    std::fclose(out);
  }
  config g;
  const char* over[] = {"gateway", "--config", path.c_str(), "--backend", "http://127.0.0.1:7", "--backend",
                        "http://127.0.0.1:8"};
  REQUIRE(parse_args(7, over, g).what == parse_outcome::action::run);
  CHECK(g.backend == "http://127.0.0.1:7,http://127.0.0.1:8");
  std::remove(path.c_str());
  const std::string text = help_text();
  for (const char* flag : {"--balance", "--eject-after", "--health-check", "--retry-budget", "URL;weight=N"})
    CHECK(text.find(flag) != std::string::npos);
}

TEST_CASE("the jwt-jwks flag takes a file, jwt-claim-header repeatable CLAIM=HEADER pairs, both config-file keys",
          "[unit][core]") {
  config c;
  const char* ok[] = {"gateway", "--jwt-jwks", "/etc/gateway/keys.json", "--jwt-claim-header", "sub=X-User-Id",
                      "--jwt-claim-header=https://example.com/tenant=X-Tenant"};
  REQUIRE(parse_args(6, ok, c).what == parse_outcome::action::run);
  CHECK(c.jwt_jwks == "/etc/gateway/keys.json");
  REQUIRE(c.jwt_claim_headers.size() == 2);
  CHECK(c.jwt_claim_headers[0] == std::pair<std::string, std::string>{"sub", "X-User-Id"});
  // The claim is everything before the first '=' (a URL claim name may not hold one).
  CHECK(c.jwt_claim_headers[1].first == "https://example.com/tenant");
  CHECK(c.jwt_claim_headers[1].second == "X-Tenant");

  for (const char* bad : {"sub", "=X-User", "sub=", ""}) {
    config b;
    const char* argv[] = {"gateway", "--jwt-claim-header", bad};
    auto r = parse_args(3, argv, b);
    INFO(bad);
    CHECK(r.what == parse_outcome::action::error);
    CHECK(r.message.find("--jwt-claim-header: invalid value") == 0);
  }
  config twice;
  const char* same_header[] = {"gateway", "--jwt-claim-header", "sub=X-User", "--jwt-claim-header", "email=x-user"};
  auto r = parse_args(5, same_header, twice);
  CHECK(r.what == parse_outcome::action::error);
  CHECK(r.message.find("header x-user already carries claim sub") != std::string::npos);
  config many;
  std::string err;
  for (int i = 0; i < 32; ++i)
    REQUIRE(apply_setting("--jwt-claim-header", "c" + std::to_string(i) + "=X-C" + std::to_string(i), many, err) ==
            apply_result::ok);
  CHECK(apply_setting("--jwt-claim-header", "c=X-C", many, err) == apply_result::bad_value);
  CHECK(err == "at most 32 claim headers");
  config empty;
  const char* no_file[] = {"gateway", "--jwt-jwks="};
  CHECK(parse_args(2, no_file, empty).what == parse_outcome::action::error);

  config f;
  REQUIRE(apply_config_text(R"({"jwt_jwks": "keys.json", "jwt_claim_header": ["sub=X-User-Id", "tid=X-Tenant"]})",
                            "c.json", f, err));
  CHECK(f.jwt_jwks == "keys.json");
  CHECK(f.jwt_claim_headers.size() == 2);

  const std::string text = help_text();
  CHECK(text.find("  --jwt-jwks FILE ") != std::string::npos);
  CHECK(text.find("--jwt-claim-header CLAIM=HEADER") != std::string::npos);
  CHECK(text.find("clients cannot forge it") != std::string::npos);
  CHECK(text.find("SIGHUP re-reads the --config file and the files flags name (--api-keys-file, --jwt-jwks,\n"
                  "         --tls-cert, --tls-key)") != std::string::npos);
  CHECK(text.find("  --tls-cert FILE ") != std::string::npos);
  CHECK(text.find("  --tls-key FILE ") != std::string::npos);
  CHECK(text.find("  --tls off|self-signed ") != std::string::npos);
  CHECK(text.find("  --tls-self-signed-pem FILE\n") != std::string::npos);
  CHECK(text.find("  --tls-ticket-rotation DURATION\n") != std::string::npos);
}

TEST_CASE("the rate-limit store flags take redis://HOST:PORT[/DB] (flag and config file) and says what is wrong",
          "[unit][core]") {
  store_url u;
  std::string err;
  REQUIRE(parse_store_url("redis://127.0.0.1:6379", u, err));
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == 6379);
  CHECK(u.db == 0);
  REQUIRE(parse_store_url("redis://redis.internal:6380/3", u, err));
  CHECK(u.host == "redis.internal");
  CHECK(u.port == 6380);
  CHECK(u.db == 3);
  REQUIRE(parse_store_url("redis://[::1]:6379/0", u, err));
  CHECK(u.host == "::1");
  for (const char* bad : {"127.0.0.1:6379", "http://127.0.0.1:6379", "redis://127.0.0.1", "redis://:6379",
                          "redis://127.0.0.1:0", "redis://127.0.0.1:70000", "redis://127.0.0.1:6379/16",
                          "redis://127.0.0.1:6379/x", "redis://a b:6379", "redis://h@st:6379"}) {
    INFO(bad);
    CHECK_FALSE(parse_store_url(bad, u, err));
    CHECK_FALSE(err.empty());
  }

  config c;
  const char* ok[] = {"gateway", "--rate-limit-store", "redis://127.0.0.1:6379/2", "--rate-limit-store-timeout",
                      "20ms", "--rate-limit-store-failure", "closed", "--rate-limit-store-connections", "3"};
  REQUIRE(parse_args(9, ok, c).what == parse_outcome::action::run);
  CHECK(c.rate_limit_store == "redis://127.0.0.1:6379/2");
  CHECK(c.rate_limit_store_timeout == std::chrono::nanoseconds(20ms));
  CHECK(c.rate_limit_store_failure == "closed");
  CHECK(c.rate_limit_store_connections == 3);
  check_refused({
           {"--rate-limit-store", "localhost:6379"},
           {"--rate-limit-store-timeout", "0s"},
           {"--rate-limit-store-timeout", "1h"},
           {"--rate-limit-store-failure", "maybe"},
           {"--rate-limit-store-connections", "0"},
           {"--rate-limit-store-connections", "17"}});
  config f;
  REQUIRE(apply_config_text(R"({"rate_limit_store": "redis://10.0.0.5:6379", "rate_limit_store_timeout": "3ms",
                                "rate_limit_store_failure": "open"})",
                            "c.json", f, err));
  CHECK(f.rate_limit_store == "redis://10.0.0.5:6379");
  CHECK(f.rate_limit_store_timeout == std::chrono::nanoseconds(3ms));
  const std::string text = help_text();
  CHECK(text.find("--rate-limit-store redis://HOST:PORT[/DB]|off") != std::string::npos);
  CHECK(text.find("--rate-limit-store-failure open|closed") != std::string::npos);
}

TEST_CASE("the dns flags take numeric servers with ports and TTL bounds (flag and config file), in the help",
          "[unit][core]") {
  config c;
  CHECK(c.dns_server.empty());
  CHECK(c.dns_min_ttl == std::chrono::nanoseconds(1s));
  CHECK(c.dns_max_ttl == std::chrono::nanoseconds(60s));
  const char* ok[] = {"gateway", "--dns-server", "10.0.0.2,127.0.0.1:5353,[::1]:53", "--dns-min-ttl", "5s",
                      "--dns-max-ttl", "10m"};
  REQUIRE(parse_args(7, ok, c).what == parse_outcome::action::run);
  CHECK(c.dns_server == "10.0.0.2,127.0.0.1:5353,[::1]:53");
  CHECK(c.dns_min_ttl == std::chrono::nanoseconds(5s));
  CHECK(c.dns_max_ttl == std::chrono::nanoseconds(600s));
  check_refused({
           {"--dns-server", "dns.example"},
           {"--dns-server", "10.0.0.2:0"},
           {"--dns-server", "10.0.0.2:"},
           {"--dns-server", "10.0.0.2,"},
           {"--dns-server", "::1"},
           {"--dns-server", "[10.0.0.2]:53"},
           {"--dns-server", "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9"},
           {"--dns-min-ttl", "0s"},
           {"--dns-max-ttl", "soon"}});
  config f;
  std::string err;
  REQUIRE(apply_config_text(R"({"dns_server": "127.0.0.1:5353", "dns_min_ttl": "2s", "dns_max_ttl": "30s"})", "c.json",
                            f, err));
  CHECK(f.dns_server == "127.0.0.1:5353");
  CHECK(f.dns_min_ttl == std::chrono::nanoseconds(2s));
  CHECK(f.dns_max_ttl == std::chrono::nanoseconds(30s));
  const std::string text = help_text();
  CHECK(text.find("--dns-server IP[:PORT],...") != std::string::npos);
  CHECK(text.find("--dns-min-ttl DURATION") != std::string::npos);
  CHECK(text.find("--dns-max-ttl DURATION") != std::string::npos);
}

TEST_CASE("https backends: URLs accepted everywhere, upstream-ca repeatable and checked, upstream-insecure a switch",
          "[unit][core]") {
  config c;
  const char* ok[] = {"gateway",           "--backend",     "https://api.example.com", "--route",
                      "/s/=https://10.0.0.5:8443,http://10.0.0.6:80", "--upstream-ca", "/etc/hostname",
                      "--upstream-ca=/etc/hostname", "--upstream-insecure", "--threads", "1"};
  REQUIRE(parse_args(11, ok, c).what == parse_outcome::action::run);
  CHECK(c.backend == "https://api.example.com");
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].backend == "https://10.0.0.5:8443,http://10.0.0.6:80");
  CHECK(c.upstream_ca == std::vector<std::string>{"/etc/hostname", "/etc/hostname"});
  CHECK(c.upstream_insecure);
  CHECK(c.threads == 1);  // the switch took no value from the next argument

  config b;
  const char* missing[] = {"gateway", "--upstream-ca", "/nonexistent/ca.pem"};
  auto r = parse_args(3, missing, b);
  CHECK(r.what == parse_outcome::action::error);
  CHECK(r.message.find("--upstream-ca") != std::string::npos);
  CHECK(r.message.find("cannot read the file") != std::string::npos);
  config d;
  const char* bad_scheme[] = {"gateway", "--backend", "ftp://10.0.0.5"};
  r = parse_args(3, bad_scheme, d);
  CHECK(r.what == parse_outcome::action::error);
  CHECK(r.message.find("https://HOST:PORT") != std::string::npos);

  config f;
  std::string err;
  REQUIRE(apply_config_text(R"({"backend": "https://api.example.com", "upstream_ca": ["/etc/hostname"],
                               "upstream_insecure": true,
                               "routes": [{"prefix": "/x/", "backend": "https://x.example:444", "host": "upstream"}]})",
                            "c.json", f, err));
  CHECK(f.backend == "https://api.example.com");
  CHECK(f.upstream_ca.size() == 1);
  CHECK(f.upstream_insecure);
  REQUIRE(f.routes.size() == 1);
  CHECK(f.routes[0].upstream_host);

  const std::string text = help_text();
  CHECK(text.find("--upstream-ca FILE") != std::string::npos);
  CHECK(text.find("  --upstream-insecure ") != std::string::npos);
}

TEST_CASE("the log-capacity flag takes 1 to 100000 and --help states each entry's memory", "[unit][core]") {
  config c;
  const char* most[] = {"gateway", "--log-capacity", "100000"};
  REQUIRE(parse_args(3, most, c).what == parse_outcome::action::run);
  CHECK(c.log_capacity == 100000);
  check_refused({{"--log-capacity", "100001"}, {"--log-capacity", "10000000"}, {"--log-capacity", "0"}});
  config b;
  const char* over[] = {"gateway", "--log-capacity", "1000000"};
  CHECK(parse_args(3, over, b).message.find("1 to 100000") != std::string::npos);
  const std::string text = help_text();
  const std::size_t at = text.find("--log-capacity");
  REQUIRE(at != std::string::npos);
  CHECK(text.find("22 KiB", at) != std::string::npos);
}

TEST_CASE("a config-file key given twice in one object is refused with its line, at every level", "[unit][core]") {
  auto error_of = [](const std::string& text) {
    config c;
    std::string err;
    return apply_config_text(text, "c.json", c, err) ? std::string("(accepted)") : err;
  };
  CHECK(error_of("{\"backend\": \"http://127.0.0.1:37677\", \"rate_limit\": \"off\",\n"
                 " \"backend\": \"http://127.0.0.1:42123\"}") == "c.json:2: 'backend' given twice");
  CHECK(error_of("{\"listen\": \"127.0.0.1:1\",\n\"listen\": \"127.0.0.1:2\"}") == "c.json:2: 'listen' given twice");
  CHECK(error_of("{\"api_key\": [\"a\"],\n\"api_key\": [\"b\"]}") == "c.json:2: 'api_key' given twice");
  CHECK(error_of("{\"routes\": [],\n\"routes\": []}") == "c.json:2: 'routes' given twice");
  const std::string route = "{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"http://127.0.0.1:1\",\n";
  CHECK(error_of(route + "\"backend\": \"http://127.0.0.1:2\"}]}") == "c.json:2: 'backend' given twice");
  CHECK(error_of(route + "\"prefix\": \"/b/\"}]}") == "c.json:2: 'prefix' given twice");
  CHECK(error_of(route + "\"auth\": true, \"auth\": false}]}") == "c.json:2: 'auth' given twice");
  CHECK(error_of(route + "\"validate\": [{\"field\": \"a\",\n\"field\": \"b\"}]}]}") == "c.json:3: 'field' given twice");
  CHECK(error_of(route + "\"cors\": {\"origins\": \"*\",\n\"origins\": [\"https://a.example\"]}}]}") ==
        "c.json:3: 'origins' given twice");
  CHECK(error_of(route + "\"request_headers\": {\"set\": {\"X-A\": \"1\",\n\"X-A\": \"2\"}}}]}") ==
        "c.json:3: 'X-A' given twice");
  CHECK(error_of(route + "\"response_headers\": {\"remove\": [\"A\"],\n\"remove\": [\"B\"]}}]}") ==
        "c.json:3: 'remove' given twice");
  // The first repeat in the file is named, whatever the keys' order.
  CHECK(error_of("{\"threads\": 1, \"listen\": \"127.0.0.1:1\",\n\"threads\": 2,\n\"listen\": \"127.0.0.1:2\"}") ==
        "c.json:2: 'threads' given twice");
  // Distinct keys, and the same key in different objects, are fine.
  CHECK(error_of(R"({"routes": [{"prefix": "/a/", "backend": "http://127.0.0.1:1"},
                                {"prefix": "/b/", "backend": "http://127.0.0.1:1"}]})") == "(accepted)");
}

TEST_CASE("an API key with a space or tab at either end is refused (flag and config file)", "[unit][core]") {
  check_refused({{"--api-key", "k1 "}, {"--api-key", " k1"}, {"--api-key", "k1\t"}, {"--api-key", "\tk1"}});
  config c;
  std::string err;
  CHECK_FALSE(apply_config_text("{\n\"api_key\": [\"ok\", \"k1 \"]}", "c.json", c, err));
  CHECK(err == "c.json:2: 'api_key': invalid value 'k1 ': an API key cannot begin or end with a space or tab");
  config d;
  const char* inner[] = {"gateway", "--api-key", "k 1"};  // inside a key, a space is kept and must match
  CHECK(parse_args(3, inner, d).what == parse_outcome::action::run);
  CHECK(d.api_keys == std::vector<std::string>{"k 1"});
}

TEST_CASE("values that could never work are refused: rate-limit windows under 600ms, min_len above max_len, "
          "route prefixes no path can match, an empty key-file name",
          "[unit][core]") {
  check_refused({{"--rate-limit", "1/1ns"},
                 {"--rate-limit", "5/599ms"},
                 {"--validate", "/api/x:f:min_len=5,max_len=2"},
                 {"--route", "/x/../y/=http://127.0.0.1:1"},
                 {"--route", "/x/./=http://127.0.0.1:1"},
                 {"--route", "/x/%2e%2E/=http://127.0.0.1:1"},
                 {"--route", "/x/..=http://127.0.0.1:1"},
                 {"--route", "/a\tb/=http://127.0.0.1:1"},
                 {"--route", "/a b/=http://127.0.0.1:1"},
                 {"--api-keys-file", ""}});
  // Their neighbours that can work are kept.
  config c;
  const char* ok[] = {"gateway", "--rate-limit", "5/600ms", "--validate", "/api/x:f:min_len=2,max_len=2",
                      "--route", "/x/...y/=http://127.0.0.1:1", "--route", "/v1.2/=http://127.0.0.1:1"};
  REQUIRE(parse_args(9, ok, c).what == parse_outcome::action::run);
  CHECK(c.rate_limit_window == std::chrono::nanoseconds(600ms));
  CHECK(c.validation.size() == 1);
  CHECK(c.routes.size() == 2);

  auto error_of = [](const std::string& text) {
    config d;
    std::string err;
    return apply_config_text(text, "c.json", d, err) ? std::string("(accepted)") : err;
  };
  CHECK_THAT(error_of("{\"routes\": [{\"prefix\": \"/a/\\tb/\",\n \"backend\": \"http://127.0.0.1:1\"}]}"),
             Catch::Contains("c.json:1: the route prefix cannot hold spaces or control characters"));
  CHECK_THAT(error_of("{\"routes\": [{\"prefix\": \"/a/../b/\", \"backend\": \"http://127.0.0.1:1\"}]}"),
             Catch::Contains("c.json:1: the route prefix cannot hold a '.' or '..' segment"));
  CHECK(error_of("{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"http://127.0.0.1:1\",\n \"validate\": "
                 "[{\"field\": \"f\", \"min_len\": 5, \"max_len\": 2}]}]}") ==
        "c.json:2: 'min_len' is larger than 'max_len': no value could pass");
  CHECK_THAT(error_of("{\"rate_limit\": \"1/1ns\"}"), Catch::Contains("the window must be at least 600ms"));
  CHECK_THAT(error_of("{\"api_keys_file\": \"\"}"), Catch::Contains("'api_keys_file': invalid value '': expected a file name"));

  // --help shows the ticket rotation as the README does.
  CHECK_THAT(help_text(), Catch::Contains("[default: 12h]"));
}

TEST_CASE("route prefixes and validation routes the path normalization makes unmatchable are refused: '//', "
          "an escaped unreserved character, a dot-segment",
          "[unit][core]") {
  // Request paths arrive with runs of '/' merged, escapes of unreserved
  // characters decoded and dot-segments resolved (http/request_parser.hpp).
  check_refused({{"--route", "/a//b/=http://127.0.0.1:1"},
                 {"--route", "//a/=http://127.0.0.1:1"},
                 {"--route", "/a//=http://127.0.0.1:1"},
                 {"--route", "/%61pi/=http://127.0.0.1:1"},
                 {"--route", "/a/%7E/=http://127.0.0.1:1"},
                 {"--route", "/a%2db/=http://127.0.0.1:1"},
                 {"--validate", "/api//users:f:required"},
                 {"--validate", "/api/%75sers:f:required"},
                 {"--validate", "/api/x/../users:f:required"},
                 {"--validate", "/api/./users:f:required"},
                 {"--validate", "/api/%2e%2E/users:f:required"},
                 {"--validate", "/api/a b:f:required"},
                 {"--route", "/a%2fb/=http://127.0.0.1:1"},
                 {"--validate", "/api/a%2fb:f:required"},
                 {"--validate", "/api/%C3%a9:f:required"}});
  const auto message_of = [](const char* flag, const char* value) {
    config c;
    const char* argv[] = {"gateway", flag, value};
    return parse_args(3, argv, c).message;
  };
  CHECK(message_of("--route", "/a//b/=http://127.0.0.1:1") ==
        "--route: invalid value '/a//b/=http://127.0.0.1:1': the route prefix cannot hold '//' (request paths "
        "arrive with runs of '/' merged)");
  CHECK(message_of("--route", "/%61pi/=http://127.0.0.1:1") ==
        "--route: invalid value '/%61pi/=http://127.0.0.1:1': the route prefix cannot hold '%61' (request paths "
        "arrive with it decoded: write 'a')");
  CHECK(message_of("--route", "/a%2fb/=http://127.0.0.1:1") ==
        "--route: invalid value '/a%2fb/=http://127.0.0.1:1': the route prefix cannot hold '%2f' (request paths "
        "arrive with escapes in upper case: write '%2F')");
  CHECK(message_of("--validate", "/api/x/../users:f:required") ==
        "--validate: invalid value '/api/x/../users:f:required': the route cannot hold a '.' or '..' segment "
        "(request paths arrive with them resolved)");
  CHECK(message_of("--validate", "/api//users:f:required") ==
        "--validate: invalid value '/api//users:f:required': the route cannot hold '//' (request paths arrive "
        "with runs of '/' merged)");

  // Escapes of other characters stay escaped in request paths: they can match.
  config ok;
  const char* fine[] = {"gateway", "--route", "/a%2Fb/=http://127.0.0.1:1", "--route", "/a%20b/=http://127.0.0.1:1",
                        "--validate", "/api/a%2Fb:f:required", "--validate", "/api/x.y/z:f:required"};
  REQUIRE(parse_args(9, fine, ok).what == parse_outcome::action::run);
  CHECK(ok.routes.size() == 2);
  CHECK(ok.validation.size() == 2);

  auto error_of = [](const std::string& text) {
    config d;
    std::string err;
    return apply_config_text(text, "c.json", d, err) ? std::string("(accepted)") : err;
  };
  CHECK_THAT(error_of("{\"routes\": [{\"prefix\": \"/a//b/\", \"backend\": \"http://127.0.0.1:1\"}]}"),
             Catch::Contains("c.json:1: the route prefix cannot hold '//'"));
  CHECK_THAT(error_of("{\"routes\": [{\"prefix\": \"/%61/\", \"backend\": \"http://127.0.0.1:1\"}]}"),
             Catch::Contains("c.json:1: the route prefix cannot hold '%61'"));
  CHECK(error_of("{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"http://127.0.0.1:1\",\n \"validate\": "
                 "[{\"field\": \"f\",\n \"path\": \"/a//b\"}]}]}") ==
        "c.json:3: 'path': the route cannot hold '//' (request paths arrive with runs of '/' merged)");
  CHECK(error_of("{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"http://127.0.0.1:1\",\n \"validate\": "
                 "[{\"field\": \"f\",\n \"path\": \"/a/%62\"}]}]}") ==
        "c.json:3: 'path': the route cannot hold '%62' (request paths arrive with it decoded: write 'b')");
  CHECK(error_of("{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"http://127.0.0.1:1\",\n \"validate\": "
                 "[{\"field\": \"f\",\n \"path\": \"/a/../b\"}]}]}") ==
        "c.json:3: 'path': the route cannot hold a '.' or '..' segment (request paths arrive with them resolved)");
  CHECK(error_of("{\"routes\": [{\"prefix\": \"/a/\", \"backend\": \"http://127.0.0.1:1\",\n \"validate\": "
                 "[{\"field\": \"f\", \"required\": true,\n \"path\": \"/a/b%2Fc\"}]}]}") == "(accepted)");
}

TEST_CASE("a --route with a config-file route's prefix replaces that route whole, options back to the defaults",
          "[unit][core]") {
  char path[] = "/tmp/gateway-route-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string text = R"({"routes": [{"prefix": "/app/", "backend": "http://127.0.0.1:1", "auth": true,
    "rate_limit": true, "strip_prefix": false, "timeout": "9s", "host": "upstream", "balance": "least_request",
    "validate": [{"field": "f", "required": true}], "request_headers": {"remove": ["Cookie"]},
    "cors": {"origins": "*"}},
    {"prefix": "/other/", "backend": "http://127.0.0.1:3", "auth": true}]})";
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  config c;
  const char* argv[] = {"gateway", "--config", path, "--route", "/app=http://127.0.0.1:2"};
  const auto r = parse_args(5, argv, c);
  std::remove(path);
  INFO(r.message);
  REQUIRE(r.what == parse_outcome::action::run);
  REQUIRE(c.routes.size() == 2);
  const route_config& app = c.routes[0];
  const route_config defaults;
  CHECK(app.prefix == "/app/");
  CHECK(app.backend == "http://127.0.0.1:2");
  CHECK(app.strip_prefix == defaults.strip_prefix);
  CHECK(app.auth == defaults.auth);
  CHECK(app.rate_limit == defaults.rate_limit);
  CHECK_FALSE(app.timeout);
  CHECK_FALSE(app.balance);
  CHECK(app.upstream_host == defaults.upstream_host);
  CHECK(app.validation.empty());
  CHECK(app.request_headers.empty());
  CHECK_FALSE(app.cors);
  // The file's other route keeps what the file gave it.
  CHECK(c.routes[1].prefix == "/other/");
  CHECK(c.routes[1].auth);
}

TEST_CASE("a validation rule that checks nothing is refused (flag and config file)", "[unit][core]") {
  config c;
  const char* argv[] = {"gateway", "--validate", "/api/x:name:"};
  const auto r = parse_args(3, argv, c);
  INFO(r.message);
  CHECK(r.what == parse_outcome::action::error);
  CHECK(r.message.find("--validate") != std::string::npos);
  CHECK(r.message.find("no rule after the field name (use required, min_len=N, max_len=N)") != std::string::npos);
  config f;
  std::string err;
  CHECK_FALSE(apply_config_text(R"({"routes": [{"prefix": "/a/", "backend": "http://127.0.0.1:1",
    "validate": [{"field": "name", "required": false}]}]})",
                                "c.json", f, err));
  CHECK(err.find("a validation rule needs \"required\": true, \"min_len\" or \"max_len\" (it checks nothing)") !=
        std::string::npos);
  // An optional field with a length bound checks something.
  config g;
  CHECK(apply_config_text(R"({"routes": [{"prefix": "/a/", "backend": "http://127.0.0.1:1",
    "validate": [{"field": "name", "required": false, "max_len": 3}]}]})",
                          "c.json", g, err));
}

TEST_CASE("the listen flag takes an IPv6 address in brackets only", "[unit][core]") {
  config c;
  const char* ok[] = {"gateway", "--listen", "[::1]:9000"};
  REQUIRE(parse_args(3, ok, c).what == parse_outcome::action::run);
  CHECK(c.listen.host == "::1");
  CHECK(c.listen.port == 9000);
  // "::1:0" is the address ::1 on port 0, or the address ::1:0 with no port.
  for (const char* v : {"::1:0", "fe80::1:8080"}) {
    config b;
    const char* argv[] = {"gateway", "--listen", v};
    const auto r = parse_args(3, argv, b);
    INFO(v << ": " << r.message);
    CHECK(r.what == parse_outcome::action::error);
    CHECK(r.message.find("--listen") != std::string::npos);
    CHECK(r.message.find("an IPv6 address goes in brackets, like [::1]:8080") != std::string::npos);
  }
}

TEST_CASE("a config-file route's timeouts take a number of seconds, as the top-level durations do", "[unit][core]") {
  config top;
  std::string err;
  REQUIRE(apply_config_text(R"({"upstream_timeout": 5})", "c.json", top, err));
  config f;
  INFO(err);
  REQUIRE(apply_config_text(R"({"routes": [{"prefix": "/a/", "backend": "http://127.0.0.1:1", "timeout": 5,
    "connect_timeout": 0.5}]})",
                            "c.json", f, err));
  REQUIRE(f.routes.size() == 1);
  REQUIRE(f.routes[0].timeout);
  CHECK(*f.routes[0].timeout == std::chrono::nanoseconds(5s));
  REQUIRE(f.routes[0].connect_timeout);
  CHECK(*f.routes[0].connect_timeout == std::chrono::nanoseconds(500ms));
  for (const char* bad : {"0", "-1", "true", "\"soon\""}) {
    config b;
    const std::string text =
        std::string(R"({"routes": [{"prefix": "/a/", "backend": "http://127.0.0.1:1", "timeout": )") + bad + "}]}";
    INFO(text);
    CHECK_FALSE(apply_config_text(text, "c.json", b, err));
    CHECK(err.find("'timeout': expected a duration like \"5s\" (a number: seconds)") != std::string::npos);
  }
}

TEST_CASE("the body-min-rate flag takes a size per second or 0, defaults to 1KiB and is a config-file key",
          "[unit][core]") {
  config c;
  CHECK(c.body_min_rate == 1024);
  const char* rate[] = {"gateway", "--body-min-rate", "4KiB"};
  REQUIRE(parse_args(3, rate, c).what == parse_outcome::action::run);
  CHECK(c.body_min_rate == 4096);
  const char* off[] = {"gateway", "--body-min-rate=0"};
  REQUIRE(parse_args(2, off, c).what == parse_outcome::action::run);
  CHECK(c.body_min_rate == 0);
  check_refused({{"--body-min-rate", "fast"}, {"--body-min-rate", ""}, {"--body-min-rate", "-1"}});
  config f;
  std::string err;
  REQUIRE(apply_config_text("{\"body_min_rate\": \"512\"}", "c.json", f, err));
  CHECK(f.body_min_rate == 512);
  const std::string text = help_text();
  CHECK(text.find("--body-min-rate SIZE") != std::string::npos);
  CHECK(text.find("[default: 1KiB]") != std::string::npos);
}
