#pragma once
// The gateway's settings: built once at start-up from flags (and later a
// config file), then read-only. Every tunable is here, none is a macro.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gateway/core/ip_address.hpp"

namespace gateway::core {

using namespace std::chrono_literals;

struct listen_address {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

// A validation rule for one JSON field of a route's POST/PUT bodies.
struct field_rule {
  std::string field;
  bool required = false;
  std::optional<std::size_t> min_len;  // in characters (code points), strings only
  std::optional<std::size_t> max_len;
};

struct validation_rules {
  std::string route;  // a path prefix, e.g. "/api/users"
  std::vector<field_rule> fields;
};

// A route's edits of one direction's header fields, as the config file
// states them: names and value templates ("${client_ip}", "${request_id}",
// "${route}"). Checked and compiled at start-up by middleware/header_rules.hpp.
struct header_edits {
  std::vector<std::pair<std::string, std::string>> set;  // replace every field of the name
  std::vector<std::pair<std::string, std::string>> add;  // append a field (a name may repeat)
  std::vector<std::string> remove;                       // drop every field of the name
  bool empty() const noexcept { return set.empty() && add.empty() && remove.empty(); }
};

// A route's CORS policy as the config file states it (checked at start-up
// by middleware/cors.hpp).
struct cors_config {
  std::vector<std::string> origins;  // exact origins ("https://app.example"), or the one entry "*"
  std::vector<std::string> methods{"GET", "HEAD", "POST"};
  std::vector<std::string> headers;  // request headers a preflight may name; "*": any
  std::vector<std::string> expose_headers;
  bool credentials = false;
  std::optional<std::chrono::seconds> max_age;
};

// One proxied route besides the built-in /api/ (--route PREFIX=URL, or a
// "routes" entry of the config file). Longest prefix wins.
struct route_config {
  std::string prefix;        // starts and ends with '/'
  std::string backend;       // "http://HOST:PORT", or a group "URL[;weight=N],URL..."
  std::optional<std::string> balance;  // else --balance
  bool strip_prefix = true;  // "/app/x" reaches the backend as "/x"
  bool auth = false;         // API key or JWT required (as for /api/)
  bool rate_limit = false;   // counted against the --rate-limit budget
  std::vector<validation_rules> validation;  // rules.route: a path prefix under `prefix`
  std::optional<std::chrono::nanoseconds> timeout;          // else --upstream-timeout
  std::optional<std::chrono::nanoseconds> connect_timeout;  // else --upstream-connect-timeout
  header_edits request_headers;   // to the backend
  header_edits response_headers;  // to the client
  bool upstream_host = false;     // Host sent upstream: the backend's authority (else the client's)
  std::optional<cors_config> cors;
};

// --io-backend: Asio's I/O backend for every worker. `automatic` takes
// io_uring where the binary has it and the kernel allows it, else epoll.
enum class io_backend_choice { automatic, epoll, io_uring };
const char* to_string(io_backend_choice c) noexcept;  // "auto", "epoll", "io_uring"

// --sched-policy: the Linux scheduling policy the gateway's threads run
// under. `batch` (SCHED_BATCH) keeps a woken worker from preempting the task
// running on its core: the worker runs when that task blocks or its slice
// ends, and finds more completed work waiting. Set once, at start-up, for
// every thread (threads inherit it).
enum class sched_policy_choice { normal, batch };
const char* to_string(sched_policy_choice c) noexcept;  // "normal", "batch"

struct config {
  listen_address listen;
  std::string backend;  // "http://host:port", a group "URL[;weight=N],URL...", or empty: the embedded demo backend
  unsigned threads = 0;  // 0: one per core
  io_backend_choice io_backend = io_backend_choice::automatic;
  sched_policy_choice sched_policy = sched_policy_choice::normal;

  // Request limits (RFC 9110 section 15.5.14, RFC 6585 section 5).
  std::uint64_t max_body = 10ull * 1024 * 1024;
  std::uint64_t max_head = 16 * 1024;
  std::uint64_t max_target = 8 * 1024;  // request-target (414 beyond; at most max_head in effect)
  std::uint32_t max_headers = 100;
  std::uint64_t max_connections = 20000;          // open client connections (503 beyond)
  std::uint64_t body_budget = 256ull * 1024 * 1024;  // request-body bytes buffered at once, all clients (503 beyond)

  std::chrono::nanoseconds header_timeout = 10s;  // first byte to end of head
  std::chrono::nanoseconds body_timeout = 30s;    // between body reads
  // Bytes per second a body must average, after a first --body-timeout of
  // grace, for the whole of it (408 below it); 0: only body_timeout holds.
  std::uint64_t body_min_rate = 1024;
  std::chrono::nanoseconds idle_timeout = 60s;    // keep-alive wait for the next request
  std::chrono::nanoseconds write_timeout = 30s;   // a stalled client reader
  std::chrono::nanoseconds drain_timeout = 5s;    // in-flight requests at shutdown

  // Client addresses behind a load balancer.
  bool proxy_protocol = false;  // every connection starts with a PROXY protocol v1/v2 header
  cidr_set trusted_proxies;     // peers whose X-Forwarded-For names the client

  // Client-side TLS (net/tls_context.hpp): the listener speaks HTTPS when
  // certificates are given or tls_mode is "self-signed".
  std::vector<std::string> tls_certs;  // PEM certificate (and chain) files, one per --tls-cert
  std::vector<std::string> tls_keys;   // PEM private keys, paired with tls_certs by position
  std::string tls_mode = "off";        // off (TLS when tls_certs is given) | self-signed
  std::string tls_self_signed_pem;     // where --tls self-signed writes its certificate (empty: the default)
  std::chrono::nanoseconds tls_ticket_rotation = 12h;  // session-ticket key lifetime (the previous one still decrypts)
  std::optional<std::uint16_t> redirect_http;  // a plain port answering 308 to https (0: any free port)

  // Upstream (proxy) settings.
  std::chrono::nanoseconds upstream_connect_timeout = 2s;
  std::chrono::nanoseconds upstream_timeout = 30s;       // request sent -> response head received (504 after)
  std::chrono::nanoseconds upstream_idle_timeout = 30s;  // pooled keep-alive connection kept this long
  // Idle pooled connections kept per worker, at most. auto: this worker's
  // share of upstream_max_concurrent, the most that can be busy at once, so
  // the pool holds whatever the load of the last upstream_idle_timeout needed.
  static constexpr std::uint32_t upstream_max_idle_auto = 0xffffffffu;
  std::uint32_t upstream_max_idle = upstream_max_idle_auto;
  std::uint32_t upstream_max_concurrent = 4096;           // requests in flight to one backend (all workers)
  std::chrono::nanoseconds upstream_queue_timeout = 100ms;  // wait for a free slot, then 503
  // https backends (proxy/upstream_tls.hpp): CA files trusted besides the
  // system store, and verification off (development only).
  std::vector<std::string> upstream_ca;
  bool upstream_insecure = false;

  // Upstream groups: a backend given as several URLs (proxy/upstream_group.hpp).
  std::string balance = "round_robin";        // round_robin | least_request
  std::uint32_t eject_after = 5;              // consecutive failures or 5xx that eject a member (0: never)
  std::chrono::nanoseconds eject_time = 1s;   // first ejection; doubles for each one that follows
  std::chrono::nanoseconds eject_max = 30s;   // longest ejection
  std::string health_check;                   // active check path ("/healthz"); empty: none
  std::chrono::nanoseconds health_interval = 5s;
  std::chrono::nanoseconds health_timeout = 1s;
  std::uint32_t health_healthy = 2;           // passed checks in a row that mark a member up
  std::uint32_t health_unhealthy = 3;         // failed checks in a row that mark it down
  std::uint32_t retry_budget = 20;            // retries on another member, % of requests per second (0: none)

  // Backend host names (proxy/name_resolver.hpp).
  std::string dns_server;                     // "IP[:PORT],..." instead of /etc/resolv.conf's; empty: resolv.conf
  std::chrono::nanoseconds dns_min_ttl = 1s;  // a name is re-resolved no sooner than this after an answer
  std::chrono::nanoseconds dns_max_ttl = 60s; // and no later than this, whatever its TTL

  // Middleware.
  std::string access_log = "auto";          // auto | off | text | json | pretty (auto: pretty on a terminal, else text)
  std::size_t log_capacity = 10000;          // entries kept for /logs
  std::size_t metrics_max_paths = 1000;      // distinct paths in the per-path maps; the rest is "other"
  bool rate_limit_enabled = true;
  std::uint32_t rate_limit = 100;            // requests per window per client
  std::chrono::nanoseconds rate_limit_window = 60s;
  std::string rate_limit_key = "ip";         // ip | api-key
  std::size_t rate_limit_max_clients = 100000;
  std::vector<std::string> rate_limit_exempt;  // exact paths the limiter lets through uncounted
  // Shared budget across instances: redis://HOST:PORT[/DB] (empty: each
  // instance counts alone). Checked by parse_store_url.
  std::string rate_limit_store;
  std::chrono::nanoseconds rate_limit_store_timeout = 5ms;  // longest a request waits on the store
  std::string rate_limit_store_failure = "open";             // open (local table) | closed (503)
  std::uint32_t rate_limit_store_connections = 2;            // Redis connections per worker
  std::string rate_limit_store_secret;                       // HMAC key naming API keys in Redis; empty: SHA-256
  std::vector<std::string> api_keys;
  std::string api_keys_file;
  std::string jwt_secret;
  std::string jwt_jwks;  // JWK Set file with public keys (RS*, ES*, EdDSA)
  std::vector<std::pair<std::string, std::string>> jwt_claim_headers;  // claim -> request header to the backend
  std::string jwt_issuer;
  std::string jwt_audience;
  std::chrono::nanoseconds jwt_leeway = 30s;
  std::vector<validation_rules> validation;
  bool compress_responses = false;

  // Dev proxy.
  std::vector<route_config> routes;  // besides /api/
  std::chrono::nanoseconds tunnel_idle_timeout = 300s;  // an upgraded (WebSocket) connection with no bytes either way

  // Where the settings came from, for --check-config and SIGHUP reloads:
  // the --config file (empty: none) and the command line (argv[1..]),
  // re-applied over the file on a reload so flags keep overriding it.
  std::string config_file;
  std::vector<std::string> command_line;
  bool check_config = false;  // --check-config: validate, print, exit
  // With --check-config, a flag or file error is reported by app::run (exit
  // 1) instead of failing parse_args, so the check has one exit code.
  std::string check_error;
};

// redis://HOST:PORT[/DB], the --rate-limit-store value. HOST is a name or
// an IPv4 address (a bracketed IPv6 address); PORT 1..65535; DB 0..15.
struct store_url {
  std::string host;
  std::uint16_t port = 0;
  unsigned db = 0;
};
bool parse_store_url(std::string_view text, store_url& out, std::string& err);

// Adds a route, or replaces the one with the same prefix whole (its options
// back to the defaults: prefix removed, no auth, no rate limit, no rules).
// PREFIX gets a trailing '/'. False with `err` set for a prefix not starting
// with '/', one no request path can match (path_pattern_problem), the
// built-in "/api/", or a backend list that does not parse.
bool add_route(std::string_view prefix, std::string_view backend, std::vector<route_config>& routes, std::string& err);

// Why no request path could match `path` (a route prefix or a validation
// route; `what` names it in the message: "route prefix"), or empty. Request
// paths arrive normalized (http/request_parser.hpp: escapes of unreserved
// characters decoded, other escapes' hex digits in upper case, runs of '/'
// merged, dot-segments resolved) and hold no space or control character,
// so a pattern holding any of these never matches.
std::string path_pattern_problem(std::string_view path, std::string_view what);

// Applies one flag ("--max-body") with a textual value, as the command line
// would. Unknown names and bad values
// are false with `err` naming the problem (not the flag).
enum class apply_result { ok, unknown, bad_value };
apply_result apply_setting(std::string_view flag, std::string_view value, config& out, std::string& err);

// True for a flag that takes a setting ("--max-body"; not --help, --config).
bool is_setting(std::string_view flag) noexcept;

// True for a setting whose values include on or off (--compress-responses,
// --rate-limit, --tls, ...) or that takes no value (--upstream-insecure):
// the ones a config file may give as true or false.
bool takes_boolean(std::string_view flag) noexcept;

// True for flags that take a list (--api-key, --validate, --route,
// --rate-limit-exempt, --trusted-proxy, --jwt-claim-header).
bool is_repeatable_flag(std::string_view flag) noexcept;

// Parses "ROUTE:FIELD:rule,rule" (rules: required, min_len=N, max_len=N)
// into `out`, merging with an existing entry for the same route. A ROUTE no
// request path can match (path_pattern_problem) is refused.
bool parse_validation_rule(std::string_view text, std::vector<validation_rules>& out, std::string& err);

struct parse_outcome {
  enum class action { run, help, version, error } what = action::run;
  std::string message;  // the error, naming the flag
};

// Parses argv into `out`. Unknown flags and bad values are errors that name
// the flag. Does not print.
parse_outcome parse_args(int argc, const char* const* argv, config& out);

// The --help text, generated from the same table parse_args uses.
std::string help_text();

}  // namespace gateway::core
