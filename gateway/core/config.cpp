#include "gateway/core/config.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <functional>
#include <string_view>

#include "gateway/core/backend_list.hpp"
#include "gateway/core/ascii.hpp"
#include "gateway/core/config_file.hpp"
#include "gateway/core/units.hpp"

namespace gateway::core {

namespace {

// One row per flag: parse_args and help_text both read this table, so the
// help cannot drift from what is accepted.
struct flag_spec {
  std::string_view name;
  std::string_view value_name;  // empty: takes no value
  std::string_view help;
  std::function<std::string(const config&)> show_default;
  std::function<bool(config&, std::string_view, std::string&)> apply;
};

bool parse_uint(std::string_view s, std::uint64_t& v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc{} && r.ptr == s.data() + s.size() && !s.empty();
}

bool parse_listen(std::string_view s, listen_address& out, std::string& err) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    err = "expected HOST:PORT";
    return false;
  }
  std::string_view host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    // "::1:8080" reads as the address ::1 and port 8080 and as the address
    // ::1:8080 with no port: the brackets say which.
    err = "an IPv6 address goes in brackets, like [::1]:8080";
    return false;
  }
  std::uint64_t port = 0;
  if (!parse_uint(s.substr(colon + 1), port) || port > 65535) {
    err = "port must be a number from 0 to 65535";
    return false;
  }
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(port);
  return true;
}

// "IP[:PORT],...", IPv6 addresses in brackets (c-ares's server list).
bool valid_dns_servers(std::string_view v) {
  if (v.empty() || v.size() > 1024) return false;
  std::size_t items = 0;
  for (bool more = true; more;) {
    const auto comma = v.find(',');
    std::string_view item = v.substr(0, comma);
    more = comma != std::string_view::npos;
    if (more) v = v.substr(comma + 1);
    if (++items > 8) return false;
    std::string_view host = item, port;
    if (!item.empty() && item.front() == '[') {
      const auto close = item.find(']');
      if (close == std::string_view::npos) return false;
      host = item.substr(1, close - 1);
      std::string_view after = item.substr(close + 1);
      if (!after.empty()) {
        if (after.front() != ':') return false;
        port = after.substr(1);
        if (port.empty()) return false;
      }
      if (!parse_ipv6(host)) return false;
    } else if (const auto colon = item.find(':'); colon != std::string_view::npos) {
      host = item.substr(0, colon);
      port = item.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (!parse_ip(host)) return false;
    std::uint64_t p = 0;
    if (!port.empty() && (!parse_uint(port, p) || p == 0 || p > 65535)) return false;
  }
  return true;
}

auto duration_flag(std::chrono::nanoseconds config::*member) {
  return [member](config& c, std::string_view v, std::string& err) {
    auto d = parse_duration(v);
    if (!d || d->count() <= 0) {
      err = "expected a positive duration like 5s or 500ms";
      return false;
    }
    c.*member = *d;
    return true;
  };
}

auto show_duration(std::chrono::nanoseconds config::*member) {
  return [member](const config& c) { return format_duration(c.*member); };
}

auto on_off_flag(bool config::*member) {
  return [member](config& c, std::string_view v, std::string& err) {
    if (v != "on" && v != "off") {
      err = "expected on or off";
      return false;
    }
    c.*member = v == "on";
    return true;
  };
}

auto show_on_off(bool config::*member) {
  return [member](const config& c) { return std::string(c.*member ? "on" : "off"); };
}

const std::vector<flag_spec>& flags() {
  static const std::vector<flag_spec> table = {
      {"--listen", "HOST:PORT", "address to accept client connections on",
       [](const config& c) { return c.listen.host + ":" + std::to_string(c.listen.port); },
       [](config& c, std::string_view v, std::string& err) { return parse_listen(v, c.listen, err); }},
      {"--backend", "URL",
       "backend that /api/ is proxied to (http://HOST:PORT, or https://HOST[:PORT] with TLS); several make a group: repeat the flag or give "
       "URL,URL..., each optionally URL;weight=N (1-1000); without it an embedded echo backend is started",
       [](const config&) { return std::string("embedded echo backend"); },
       [](config& c, std::string_view v, std::string& err) {
         std::vector<backend_member> members;
         const std::string joined = c.backend.empty() ? std::string(v) : c.backend + "," + std::string(v);
         if (!parse_backend_list(joined, members, err)) return false;
         c.backend = joined;
         return true;
       }},
      {"--io-backend", "auto|epoll|io_uring",
       "Asio's I/O backend for the workers: auto takes io_uring where the kernel allows it (a seccomp profile or "
       "sysctl kernel.io_uring_disabled may refuse it) and epoll otherwise; io_uring exits 2 where it is refused "
       "(Release builds have both backends, others epoll alone: --version lists them)",
       [](const config& c) { return std::string(to_string(c.io_backend)); },
       [](config& c, std::string_view v, std::string& err) {
         if (v == "auto") c.io_backend = io_backend_choice::automatic;
         else if (v == "epoll") c.io_backend = io_backend_choice::epoll;
         else if (v == "io_uring") c.io_backend = io_backend_choice::io_uring;
         else {
           err = "expected auto, epoll or io_uring";
           return false;
         }
         return true;
       }},
      {"--sched-policy", "normal|batch",
       "Linux scheduling policy of the gateway's threads: normal (SCHED_OTHER), or batch (SCHED_BATCH: a woken "
       "worker waits for the task running on its core instead of preempting it; less CPU per request and higher "
       "throughput where clients or backends share the gateway's cores, a longer tail where CPU-bound programs do)",
       [](const config& c) { return std::string(to_string(c.sched_policy)); },
       [](config& c, std::string_view v, std::string& err) {
         if (v == "normal") c.sched_policy = sched_policy_choice::normal;
         else if (v == "batch") c.sched_policy = sched_policy_choice::batch;
         else {
           err = "expected normal or batch";
           return false;
         }
         return true;
       }},
      {"--threads", "N", "worker threads, each with its own event loop (0: one per core)",
       [](const config& c) { return std::to_string(c.threads); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n > 256) {
           err = "expected a number from 0 to 256";
           return false;
         }
         c.threads = static_cast<unsigned>(n);
         return true;
       }},
      {"--max-body", "SIZE", "largest request body accepted (413 above it)",
       [](const config& c) { return format_size(c.max_body); },
       [](config& c, std::string_view v, std::string& err) {
         auto n = parse_size(v);
         if (!n || *n == 0 || *n > (1ull << 32)) {
           err = "expected a size from 1 byte to 4GiB, like 10MiB";
           return false;
         }
         c.max_body = *n;
         return true;
       }},
      {"--max-head", "SIZE", "largest request line plus headers (431 above it; 414 when the request line alone does not fit)",
       [](const config& c) { return format_size(c.max_head); },
       [](config& c, std::string_view v, std::string& err) {
         auto n = parse_size(v);
         if (!n || *n < 256 || *n > 1024 * 1024) {
           err = "expected a size from 256 bytes to 1MiB";
           return false;
         }
         c.max_head = *n;
         return true;
       }},
      {"--max-target", "SIZE", "longest request-target (path and query) accepted (414 above it; 431 stays for header fields)",
       [](const config& c) { return format_size(c.max_target); },
       [](config& c, std::string_view v, std::string& err) {
         auto n = parse_size(v);
         if (!n || *n < 64 || *n > 1024 * 1024) {
           err = "expected a size from 64 bytes to 1MiB";
           return false;
         }
         c.max_target = *n;
         return true;
       }},
      {"--max-connections", "N", "open client connections; beyond it new ones get 503 and are closed",
       [](const config& c) { return std::to_string(c.max_connections); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n == 0 || n > 10'000'000) {
           err = "expected a number from 1 to 10000000";
           return false;
         }
         c.max_connections = n;
         return true;
       }},
      {"--body-budget", "SIZE", "request-body bytes buffered at once across all clients (503 beyond)",
       [](const config& c) { return format_size(c.body_budget); },
       [](config& c, std::string_view v, std::string& err) {
         auto n = parse_size(v);
         if (!n || *n < 1024) {
           err = "expected a size of at least 1KiB, like 256MiB";
           return false;
         }
         c.body_budget = *n;
         return true;
       }},
      {"--header-timeout", "DURATION", "time allowed to send a request head once it starts (408 after it)",
       show_duration(&config::header_timeout), duration_flag(&config::header_timeout)},
      {"--body-timeout", "DURATION", "time allowed between two reads of a request body (408 after it)",
       show_duration(&config::body_timeout), duration_flag(&config::body_timeout)},
      {"--body-min-rate", "SIZE",
       "bytes per second a request body must average as a whole: a body may take --body-timeout plus one second "
       "for each SIZE received, so one that trickles in gets 408 however short its gaps (0: no minimum)",
       [](const config& c) { return format_size(c.body_min_rate); },
       [](config& c, std::string_view v, std::string& err) {
         auto n = parse_size(v);
         if (!n || *n > (1ull << 40)) {
           err = "expected a size per second, like 1KiB, or 0 for no minimum";
           return false;
         }
         c.body_min_rate = *n;
         return true;
       }},
      {"--idle-timeout", "DURATION", "how long an idle keep-alive connection is kept",
       show_duration(&config::idle_timeout), duration_flag(&config::idle_timeout)},
      {"--write-timeout", "DURATION", "time a client may take no response bytes before it is closed",
       show_duration(&config::write_timeout), duration_flag(&config::write_timeout)},
      {"--drain-timeout", "DURATION", "on SIGINT/SIGTERM, how long in-flight requests may finish",
       show_duration(&config::drain_timeout), duration_flag(&config::drain_timeout)},
      {"--proxy-protocol", "",
       "every connection must begin with a PROXY protocol v1 or v2 header (HAProxy send-proxy, AWS NLB, ...) "
       "within --header-timeout; its source address is the client's (LOCAL, UNKNOWN: the socket's peer); a "
       "connection without a valid one is closed and counted in proxy_protocol_rejected",
       show_on_off(&config::proxy_protocol), on_off_flag(&config::proxy_protocol)},
      {"--trusted-proxy", "CIDR",
       "a proxy whose X-Forwarded-For is believed (an address, or a range like 10.0.0.0/8 or fd00::/8): when the "
       "peer (the PROXY address, if any) is one, the client is the right-most address in X-Forwarded-For that is "
       "not a trusted proxy; repeatable",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         std::string_view why;
         auto range = parse_cidr(v, why);
         if (!range) {
           err = std::string(why);
           return false;
         }
         if (!c.trusted_proxies.add(*range)) {
           err = "at most " + std::to_string(cidr_set::max_size) + " trusted proxy ranges";
           return false;
         }
         return true;
       }},
      {"--tls-cert", "FILE",
       "serve HTTPS (TLS 1.2 and 1.3) with this PEM certificate (the leaf first, then its chain); repeatable, "
       "each with its --tls-key in the same order: the client's server name (SNI) picks the certificate whose "
       "names match, the first is the default; SIGHUP re-reads the files (a bad one is refused, the old stay)",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.empty()) {
           err = "expected a file name";
           return false;
         }
         if (c.tls_certs.size() >= 64) {
           err = "at most 64 certificates";
           return false;
         }
         c.tls_certs.emplace_back(v);
         return true;
       }},
      {"--tls-key", "FILE", "the PEM private key of the --tls-cert at the same position; repeatable",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.empty()) {
           err = "expected a file name";
           return false;
         }
         if (c.tls_keys.size() >= 64) {
           err = "at most 64 keys";
           return false;
         }
         c.tls_keys.emplace_back(v);
         return true;
       }},
      {"--tls", "off|self-signed",
       "self-signed: serve HTTPS for local development with a certificate made at start-up for localhost, "
       "127.0.0.1 and ::1 (printed: its SHA-256 fingerprint and the file its PEM is written to, for curl "
       "--cacert or a browser exception)",
       [](const config& c) { return c.tls_mode; },
       [](config& c, std::string_view v, std::string& err) {
         if (v != "off" && v != "self-signed") {
           err = "expected off or self-signed (certificates from files: --tls-cert and --tls-key)";
           return false;
         }
         c.tls_mode = std::string(v);
         return true;
       }},
      {"--tls-self-signed-pem", "FILE", "where --tls self-signed writes its certificate (PEM)",
       [](const config&) { return std::string("$TMPDIR/gateway-localhost.pem (TMPDIR unset: /tmp)"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.empty()) {
           err = "expected a file name";
           return false;
         }
         c.tls_self_signed_pem = std::string(v);
         return true;
       }},
      {"--tls-ticket-rotation", "DURATION",
       "session tickets (resumption without a full handshake) are encrypted with a key the gateway makes and "
       "replaces this often; the previous key still decrypts, so a ticket is good for one to two periods",
       show_duration(&config::tls_ticket_rotation),
       [](config& c, std::string_view v, std::string& err) {
         auto d = parse_duration(v);
         if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::hours(24 * 7)) {
           err = "expected a duration from 1s to 168h, like 12h";
           return false;
         }
         c.tls_ticket_rotation = *d;
         return true;
       }},
      {"--redirect-http", "PORT|off",
       "also listen for plain HTTP on PORT (same address as --listen) and answer every request there with 308 "
       "to https://HOST[:TLS port]/path; needs TLS on the listener",
       [](const config& c) { return c.redirect_http ? std::to_string(*c.redirect_http) : std::string("off"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v == "off") {
           c.redirect_http.reset();
           return true;
         }
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n > 65535) {
           err = "expected a port from 0 to 65535, or off";
           return false;
         }
         c.redirect_http = static_cast<std::uint16_t>(n);
         return true;
       }},
      {"--upstream-connect-timeout", "DURATION", "time allowed to connect to the backend (504 after it)",
       show_duration(&config::upstream_connect_timeout), duration_flag(&config::upstream_connect_timeout)},
      {"--upstream-timeout", "DURATION", "time allowed for the backend's response head, from the first send, a retry or failover to "
       "another member included (504 after it)",
       show_duration(&config::upstream_timeout), duration_flag(&config::upstream_timeout)},
      {"--upstream-idle-timeout", "DURATION", "how long an idle pooled backend connection is kept",
       show_duration(&config::upstream_idle_timeout), duration_flag(&config::upstream_idle_timeout)},
      {"--upstream-max-idle", "N|auto",
       "idle pooled backend connections kept per worker thread, at most (an idle one is closed after "
       "--upstream-idle-timeout unused; auto: the worker's share of --upstream-max-concurrent)",
       [](const config& c) {
         return c.upstream_max_idle == config::upstream_max_idle_auto ? std::string("auto")
                                                                       : std::to_string(c.upstream_max_idle);
       },
       [](config& c, std::string_view v, std::string& err) {
         if (v == "auto") {
           c.upstream_max_idle = config::upstream_max_idle_auto;
           return true;
         }
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n > 100000) {
           err = "expected auto or a number from 0 to 100000";
           return false;
         }
         c.upstream_max_idle = static_cast<std::uint32_t>(n);
         return true;
       }},
      {"--upstream-max-concurrent", "N", "requests in flight to each route's backend at once, split evenly between the workers (each admits N / threads, "
       "at least 1); others wait briefly, then 503",
       [](const config& c) { return std::to_string(c.upstream_max_concurrent); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n == 0 || n > 1'000'000) {
           err = "expected a number from 1 to 1000000";
           return false;
         }
         c.upstream_max_concurrent = static_cast<std::uint32_t>(n);
         return true;
       }},
      {"--upstream-ca", "FILE",
       "PEM file of CA certificates trusted for https:// backends besides the system trust store "
       "(/etc/ssl/certs); repeatable",
       [](const config&) { return std::string("system trust store only"); },
       [](config& c, std::string_view v, std::string& err) {
         const std::string path(v);
         if (std::FILE* f = std::fopen(path.c_str(), "r")) {
           std::fclose(f);
         } else {
           err = "cannot read the file";
           return false;
         }
         if (c.upstream_ca.size() >= 64) {
           err = "at most 64 CA files";
           return false;
         }
         c.upstream_ca.push_back(path);
         return true;
       }},
      {"--upstream-insecure", "",
       "do not verify the certificates of https:// backends (development only; a warning is printed at start)",
       show_on_off(&config::upstream_insecure), on_off_flag(&config::upstream_insecure)},
      {"--upstream-queue-timeout", "DURATION", "how long a request waits for a free backend slot before 503",
       show_duration(&config::upstream_queue_timeout), duration_flag(&config::upstream_queue_timeout)},
      {"--balance", "round_robin|least_request",
       "how a group's requests are spread: weighted round robin, or the member with fewer requests in flight "
       "per weight of two drawn by weight",
       [](const config& c) { return c.balance; },
       [](config& c, std::string_view v, std::string& err) {
         if (v != "round_robin" && v != "least_request") {
           err = "expected round_robin or least_request";
           return false;
         }
         c.balance = std::string(v);
         return true;
       }},
      {"--eject-after", "N",
       "a group member with N failures in a row (connect refused or timed out, reset, timeout, 5xx) is ejected "
       "(0: never); never the last available one, and with none available all take traffic",
       [](const config& c) { return std::to_string(c.eject_after); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n > 1000) {
           err = "expected a number from 0 to 1000";
           return false;
         }
         c.eject_after = static_cast<std::uint32_t>(n);
         return true;
       }},
      {"--eject-time", "DURATION", "first ejection of a member; each one that follows within --eject-max doubles it",
       show_duration(&config::eject_time), duration_flag(&config::eject_time)},
      {"--eject-max", "DURATION", "longest ejection", show_duration(&config::eject_max),
       duration_flag(&config::eject_max)},
      {"--health-check", "PATH|off",
       "GET PATH on every group member each --health-interval, on the worker threads (https members over TLS, "
       "verified as their requests are); 2xx passes",
       [](const config& c) { return c.health_check.empty() ? std::string("off") : c.health_check; },
       [](config& c, std::string_view v, std::string& err) {
         if (v == "off") {
           c.health_check.clear();
           return true;
         }
         if (v.empty() || v.front() != '/' || v.find_first_of(" \r\n") != std::string_view::npos) {
           err = "expected a path starting with '/' (no spaces), or off";
           return false;
         }
         c.health_check = std::string(v);
         return true;
       }},
      {"--health-interval", "DURATION", "time between two active checks of a member",
       show_duration(&config::health_interval), duration_flag(&config::health_interval)},
      {"--health-timeout", "DURATION", "an active check without a status line by then fails",
       show_duration(&config::health_timeout), duration_flag(&config::health_timeout)},
      {"--health-thresholds", "UP/DOWN",
       "passed checks in a row that mark a member up / failed ones that mark it down",
       [](const config& c) { return std::to_string(c.health_healthy) + "/" + std::to_string(c.health_unhealthy); },
       [](config& c, std::string_view v, std::string& err) {
         const auto slash = v.find('/');
         std::uint64_t up = 0, down = 0;
         if (slash == std::string_view::npos || !parse_uint(v.substr(0, slash), up) ||
             !parse_uint(v.substr(slash + 1), down) || up == 0 || down == 0 || up > 100 || down > 100) {
           err = "expected UP/DOWN, two numbers from 1 to 100, like 2/3";
           return false;
         }
         c.health_healthy = static_cast<std::uint32_t>(up);
         c.health_unhealthy = static_cast<std::uint32_t>(down);
         return true;
       }},
      {"--retry-budget", "PERCENT",
       "a request a group member refused, timed out connecting or reset before answering goes to another "
       "member once (idempotent methods, or nothing sent), while retries stay within PERCENT of the requests "
       "of the last second (at least 3 per second per worker); 0: no such retries",
       [](const config& c) { return std::to_string(c.retry_budget); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n > 100) {
           err = "expected a number from 0 to 100";
           return false;
         }
         c.retry_budget = static_cast<std::uint32_t>(n);
         return true;
       }},
      {"--dns-server", "IP[:PORT],...",
       "DNS servers for backend host names instead of /etc/resolv.conf's (/etc/hosts is read first either "
       "way); names are resolved with c-ares, off the request path, and re-resolved on their TTL",
       [](const config& c) { return c.dns_server.empty() ? std::string("/etc/resolv.conf") : c.dns_server; },
       [](config& c, std::string_view v, std::string& err) {
         if (!valid_dns_servers(v)) {
           err = "expected numeric addresses with optional ports, like 10.0.0.2,10.0.0.3:5353 or [::1]:53";
           return false;
         }
         c.dns_server = std::string(v);
         return true;
       }},
      {"--dns-min-ttl", "DURATION",
       "a backend host name is re-resolved no sooner than this (also the retry after a failed lookup, and the "
       "period for /etc/hosts entries, which have no TTL)",
       show_duration(&config::dns_min_ttl), duration_flag(&config::dns_min_ttl)},
      {"--dns-max-ttl", "DURATION", "a backend host name is re-resolved no later than this, whatever its TTL",
       show_duration(&config::dns_max_ttl), duration_flag(&config::dns_max_ttl)},
      {"--access-log", "auto|off|text|json|pretty",
       "one line per request on stdout, written by a background thread (auto: pretty on a terminal, else text)",
       [](const config& c) { return c.access_log; },
       [](config& c, std::string_view v, std::string& err) {
         if (v != "auto" && v != "off" && v != "text" && v != "json" && v != "pretty") {
           err = "expected auto, off, text, json or pretty";
           return false;
         }
         c.access_log = std::string(v);
         return true;
       }},
      {"--log-capacity", "N",
       "request-log entries kept for /logs (the newest), 1 to 100000; each takes 128 bytes at start-up and up to "
       "about 22 KiB once it holds a request (its body, headers and path are cut at 4, 4 and 2 KiB)",
       [](const config& c) { return std::to_string(c.log_capacity); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         // The ring's slots are allocated at start-up and fill up to their
         // cut sizes: 100,000 entries can reach about 2.2 GB.
         if (!parse_uint(v, n) || n == 0 || n > 100'000) {
           err = "expected a number from 1 to 100000";
           return false;
         }
         c.log_capacity = n;
         return true;
       }},
      {"--metrics-max-paths", "N", "distinct paths counted in /metrics; further paths count under \"other\"",
       [](const config& c) { return std::to_string(c.metrics_max_paths); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n == 0 || n > 1'000'000) {
           err = "expected a number from 1 to 1000000";
           return false;
         }
         c.metrics_max_paths = n;
         return true;
       }},
      {"--rate-limit", "N/UNIT|off", "requests per client per window, e.g. 100/min, 10/s, 5000/h, or off",
       [](const config& c) { return c.rate_limit_enabled ? std::to_string(c.rate_limit) + "/min" : std::string("off"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v == "off") {
           c.rate_limit_enabled = false;
           return true;
         }
         auto slash = v.find('/');
         std::uint64_t n = 0;
         if (slash == std::string_view::npos || !parse_uint(v.substr(0, slash), n) || n == 0 || n > 1'000'000'000) {
           err = "expected N/s, N/min, N/h (N from 1) or off";
           return false;
         }
         std::string_view unit = v.substr(slash + 1);
         std::chrono::nanoseconds window{};
         if (unit == "s" || unit == "sec") window = 1s;
         else if (unit == "m" || unit == "min") window = 60s;
         else if (unit == "h" || unit == "hour") window = 3600s;
         else if (auto d = parse_duration(unit); d && d->count() > 0) window = *d;
         else {
           err = "unknown window '" + std::string(unit) + "' (use s, min, h or a duration)";
           return false;
         }
         // The window is counted in 60 buckets and the limiter's clock moves
         // in ticks of up to 10 ms: below 600 ms a bucket is shorter than a
         // tick, and a window near a tick (1ns) is in effect no limit.
         if (window < 600ms) {
           err = "the window must be at least 600ms (60 buckets of one 10 ms clock tick or more)";
           return false;
         }
         c.rate_limit_enabled = true;
         c.rate_limit = static_cast<std::uint32_t>(n);
         c.rate_limit_window = window;
         return true;
       }},
      {"--rate-limit-key", "ip|api-key", "what a client is: its IP, or its API key when it presents a configured one",
       [](const config& c) { return c.rate_limit_key; },
       [](config& c, std::string_view v, std::string& err) {
         if (v != "ip" && v != "api-key") {
           err = "expected ip or api-key";
           return false;
         }
         c.rate_limit_key = std::string(v);
         return true;
       }},
      {"--rate-limit-max-clients", "N", "clients tracked by the rate limiter (idle ones are evicted first)",
       [](const config& c) { return std::to_string(c.rate_limit_max_clients); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n < 64 || n > 100'000'000) {
           err = "expected a number from 64 to 100000000";
           return false;
         }
         c.rate_limit_max_clients = n;
         return true;
       }},
      {"--rate-limit-exempt", "PATH",
       "an exact path the rate limit does not count, e.g. /health for a load balancer's probes; repeatable "
       "(every route is limited otherwise, /health and /metrics included)",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.empty() || v.front() != '/' || v.find('?') != std::string_view::npos) {
           err = "expected a path starting with '/', without a query";
           return false;
         }
         // Compared with the normalized request path: a spelling no request
         // path has would exempt nothing.
         if (std::string why = path_pattern_problem(v, "exempt path"); !why.empty()) {
           err = why;
           return false;
         }
         c.rate_limit_exempt.emplace_back(v);
         return true;
       }},
      {"--rate-limit-store", "redis://HOST:PORT[/DB]|off",
       "share the rate-limit budget with every instance using the same Redis (off: this instance counts alone)",
       [](const config& c) { return c.rate_limit_store.empty() ? std::string("off") : c.rate_limit_store; },
       [](config& c, std::string_view v, std::string& err) {
         if (v == "off") {
           c.rate_limit_store.clear();
           return true;
         }
         store_url u;
         if (!parse_store_url(v, u, err)) return false;
         c.rate_limit_store = std::string(v);
         return true;
       }},
      {"--rate-limit-store-timeout", "DURATION",
       "longest a request waits for the rate-limit store; then --rate-limit-store-failure decides",
       show_duration(&config::rate_limit_store_timeout),
       [](config& c, std::string_view v, std::string& err) {
         auto d = parse_duration(v);
         if (!d || *d < 100us || *d > 10s) {
           err = "expected a duration from 100us to 10s, e.g. 5ms";
           return false;
         }
         c.rate_limit_store_timeout = *d;
         return true;
       }},
      {"--rate-limit-store-failure", "open|closed",
       "when the store is slow or down: open counts in this instance's own table, closed answers 503",
       [](const config& c) { return c.rate_limit_store_failure; },
       [](config& c, std::string_view v, std::string& err) {
         if (v != "open" && v != "closed") {
           err = "expected open or closed";
           return false;
         }
         c.rate_limit_store_failure = std::string(v);
         return true;
       }},
      {"--rate-limit-store-connections", "N", "Redis connections per worker thread (commands are pipelined on them)",
       [](const config& c) { return std::to_string(c.rate_limit_store_connections); },
       [](config& c, std::string_view v, std::string& err) {
         std::uint64_t n = 0;
         if (!parse_uint(v, n) || n == 0 || n > 16) {
           err = "expected a number from 1 to 16";
           return false;
         }
         c.rate_limit_store_connections = static_cast<std::uint32_t>(n);
         return true;
       }},
      {"--rate-limit-store-secret", "SECRET",
       "with --rate-limit-key api-key: API keys are named in the store by their HMAC-SHA-256 under this secret "
       "(at least 16 bytes, the same on every instance) instead of their plain SHA-256",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.size() < 16) {
           err = "use at least 16 bytes of secret";
           return false;
         }
         c.rate_limit_store_secret = std::string(v);
         return true;
       }},
      {"--api-key", "KEY", "an accepted API key (X-API-Key header or api_key query); repeatable",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.empty()) {
           err = "an API key cannot be empty";
           return false;
         }
         // A header field's value is taken without its surrounding spaces
         // and tabs, so such a key could never match an X-API-Key field.
         if (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t') {
           err = "an API key cannot begin or end with a space or tab";
           return false;
         }
         c.api_keys.emplace_back(v);
         return true;
       }},
      {"--api-keys-file", "PATH", "file with one API key per line (# comments)",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.empty()) {
           err = "expected a file name";
           return false;
         }
         c.api_keys_file = std::string(v);
         return true;
       }},
      {"--jwt-secret", "SECRET",
       "HMAC secret for Bearer JWTs (HS256/384/512); without it or --jwt-jwks bearer tokens are refused",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.size() < 16) {
           err = "use at least 16 bytes of secret";
           return false;
         }
         c.jwt_secret = std::string(v);
         return true;
       }},
      {"--jwt-jwks", "FILE",
       "JWK Set file (RFC 7517) with the public keys of Bearer JWTs signed RS256/384/512, ES256/384 or EdDSA "
       "(Ed25519), chosen by the token's kid; SIGHUP re-reads it (a bad file is refused, the old keys stay)",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         if (v.empty()) {
           err = "expected a file name";
           return false;
         }
         c.jwt_jwks = std::string(v);
         return true;
       }},
      {"--jwt-claim-header", "CLAIM=HEADER",
       "send a verified JWT's claim (a string, number or boolean) to the backend as this request header, e.g. "
       "sub=X-User-Id; the header is removed from every proxied request that does not carry such a token, so "
       "clients cannot forge it; repeatable",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         const auto eq = v.find('=');
         if (eq == std::string_view::npos || eq == 0 || eq + 1 == v.size()) {
           err = "expected CLAIM=HEADER, e.g. sub=X-User-Id";
           return false;
         }
         const std::string_view header = v.substr(eq + 1);
         for (const auto& [claim, name] : c.jwt_claim_headers) {
           if (iequals_ascii(name, header)) {
             err = "header " + std::string(header) + " already carries claim " + claim;
             return false;
           }
         }
         if (c.jwt_claim_headers.size() >= 32) {
           err = "at most 32 claim headers";
           return false;
         }
         c.jwt_claim_headers.emplace_back(v.substr(0, eq), header);
         return true;
       }},
      {"--jwt-issuer", "ISS", "when set, a JWT's iss must equal it", [](const config&) { return std::string("any"); },
       [](config& c, std::string_view v, std::string&) {
         c.jwt_issuer = std::string(v);
         return true;
       }},
      {"--jwt-audience", "AUD", "when set, a JWT's aud must be or contain it",
       [](const config&) { return std::string("any"); },
       [](config& c, std::string_view v, std::string&) {
         c.jwt_audience = std::string(v);
         return true;
       }},
      {"--jwt-leeway", "DURATION", "clock skew allowed on exp and nbf (whole seconds)", show_duration(&config::jwt_leeway),
       [](config& c, std::string_view v, std::string& err) {
         auto d = parse_duration(v);
         if (!d) {
           err = "expected a duration like 30s";
           return false;
         }
         // exp and nbf are whole seconds (RFC 7519 NumericDate); so is the leeway.
         if (*d % std::chrono::seconds(1) != std::chrono::nanoseconds(0)) {
           err = "expected whole seconds, like 30s";
           return false;
         }
         c.jwt_leeway = *d;
         return true;
       }},
      {"--validate", "ROUTE:FIELD:RULES",
       "JSON body rule for POST/PUT under ROUTE, RULES from required,min_len=N,max_len=N; repeatable",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) { return parse_validation_rule(v, c.validation, err); }},
      {"--compress-responses", "on|off", "gzip responses when the client accepts it and the type is compressible",
       show_on_off(&config::compress_responses), on_off_flag(&config::compress_responses)},
      {"--route", "PREFIX=URL",
       "proxy paths under PREFIX to URL (http://HOST:PORT or https://HOST[:PORT], or a group URL,URL... as for --backend) with PREFIX "
       "removed, no auth, no rate limit; repeatable, longest prefix wins (per-route options, header rules and "
       "CORS: --config)",
       [](const config&) { return std::string("none"); },
       [](config& c, std::string_view v, std::string& err) {
         auto eq = v.find('=');
         if (eq == std::string_view::npos) {
           err = "expected PREFIX=URL, e.g. /app/=http://127.0.0.1:5173";
           return false;
         }
         return add_route(v.substr(0, eq), v.substr(eq + 1), c.routes, err);
       }},
      {"--tunnel-idle-timeout", "DURATION", "an upgraded (WebSocket) connection with no bytes either way is closed after this",
       show_duration(&config::tunnel_idle_timeout), duration_flag(&config::tunnel_idle_timeout)},
      {"--config", "FILE", "JSON file with any of these settings (flag names with '_' for '-') and \"routes\"; "
       "flags override it; SIGHUP re-reads it",
       [](const config&) { return std::string("none"); }, nullptr},
      {"--check-config", "", "check the settings (and the --config file), print the result, exit 0 or 1", nullptr,
       nullptr},
      {"--help", "", "print this help and exit", nullptr, nullptr},
      {"--version", "", "print the version and the I/O backends this binary has (see --io-backend) and exit", nullptr, nullptr},
  };
  return table;
}

}  // namespace

const char* to_string(io_backend_choice c) noexcept {
  switch (c) {
    case io_backend_choice::epoll:
      return "epoll";
    case io_backend_choice::io_uring:
      return "io_uring";
    case io_backend_choice::automatic:
      break;
  }
  return "auto";
}

const char* to_string(sched_policy_choice c) noexcept { return c == sched_policy_choice::batch ? "batch" : "normal"; }

bool parse_validation_rule(std::string_view text, std::vector<validation_rules>& out, std::string& err) {
  auto c1 = text.find(':');
  auto c2 = c1 == std::string_view::npos ? c1 : text.find(':', c1 + 1);
  if (c2 == std::string_view::npos) {
    err = "expected ROUTE:FIELD:RULES, e.g. /api/users:name:required,min_len=2";
    return false;
  }
  std::string_view route = text.substr(0, c1), field = text.substr(c1 + 1, c2 - c1 - 1), rules = text.substr(c2 + 1);
  if (route.empty() || route.front() != '/') {
    err = "the route must start with '/'";
    return false;
  }
  if (std::string why = path_pattern_problem(route, "route"); !why.empty()) {
    err = why;
    return false;
  }
  if (field.empty()) {
    err = "the field name is empty";
    return false;
  }
  if (rules.empty()) {
    err = "no rule after the field name (use required, min_len=N, max_len=N)";
    return false;
  }
  field_rule fr;
  fr.field = std::string(field);
  while (!rules.empty()) {
    auto comma = rules.find(',');
    std::string_view r = rules.substr(0, comma);
    rules = comma == std::string_view::npos ? std::string_view{} : rules.substr(comma + 1);
    std::uint64_t n = 0;
    if (r == "required") fr.required = true;
    else if (r.substr(0, 8) == "min_len=" && parse_uint(r.substr(8), n)) fr.min_len = n;
    else if (r.substr(0, 8) == "max_len=" && parse_uint(r.substr(8), n)) fr.max_len = n;
    else {
      err = "unknown rule '" + std::string(r) + "' (use required, min_len=N, max_len=N)";
      return false;
    }
  }
  if (fr.min_len && fr.max_len && *fr.min_len > *fr.max_len) {
    err = "min_len is larger than max_len: no value could pass";
    return false;
  }
  for (auto& v : out) {
    if (v.route == route) {
      v.fields.push_back(std::move(fr));
      return true;
    }
  }
  out.push_back({std::string(route), {std::move(fr)}});
  return true;
}

bool parse_store_url(std::string_view text, store_url& out, std::string& err) {
  constexpr std::string_view scheme = "redis://";
  if (text.substr(0, scheme.size()) != scheme) {
    err = "expected redis://HOST:PORT[/DB]";
    return false;
  }
  std::string_view rest = text.substr(scheme.size());
  std::string_view db_text;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    db_text = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  listen_address a;
  if (!parse_listen(rest, a, err) || a.host.empty() || a.port == 0) {
    err = "expected redis://HOST:PORT[/DB] with a host and a port from 1 to 65535";
    return false;
  }
  for (char ch : a.host) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
          ch == ':')) {
      err = "the host may hold letters, digits, '.', '-' (or an IPv6 address in brackets)";
      return false;
    }
  }
  std::uint64_t db = 0;
  if (!db_text.empty() && (!parse_uint(db_text, db) || db > 15)) {
    err = "the database after '/' must be a number from 0 to 15";
    return false;
  }
  out.host = a.host;
  out.port = a.port;
  out.db = static_cast<unsigned>(db);
  return true;
}

std::string path_pattern_problem(std::string_view path, std::string_view what) {
  const std::string the = "the " + std::string(what);
  for (char ch : path) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f) return the + " cannot hold spaces or control characters";
  }
  for (std::string_view rest = path; !rest.empty();) {
    const auto slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    std::size_t dots = 0;
    while (!seg.empty() && dots < 3) {
      if (seg.front() == '.') seg.remove_prefix(1);
      else if (seg.size() >= 3 && seg[0] == '%' && seg[1] == '2' && (seg[2] == 'e' || seg[2] == 'E')) seg.remove_prefix(3);
      else break;
      ++dots;
    }
    if (seg.empty() && (dots == 1 || dots == 2))
      return the + " cannot hold a '.' or '..' segment (request paths arrive with them resolved)";
  }
  if (path.find("//") != std::string_view::npos)
    return the + " cannot hold '//' (request paths arrive with runs of '/' merged)";
  for (std::size_t i = path.find('%'); i != std::string_view::npos && path.size() - i >= 3; i = path.find('%', i + 1)) {
    const int hi = hex_digit_value(path[i + 1]), lo = hex_digit_value(path[i + 2]);
    if (hi < 0 || lo < 0) continue;
    const char decoded = static_cast<char>(hi * 16 + lo);
    const std::string escape(path.substr(i, 3));
    if (is_unreserved(decoded))
      return the + " cannot hold '" + escape + "' (request paths arrive with it decoded: write '" + decoded + "')";
    if (escape[1] >= 'a' || escape[2] >= 'a') {
      static constexpr char upper[] = "0123456789ABCDEF";
      return the + " cannot hold '" + escape + "' (request paths arrive with escapes in upper case: write '%" +
             upper[hi] + upper[lo] + "')";
    }
  }
  return {};
}

bool add_route(std::string_view prefix, std::string_view backend, std::vector<route_config>& routes, std::string& err) {
  if (prefix.empty() || prefix.front() != '/') {
    err = "the route prefix must start with '/'";
    return false;
  }
  if (std::string why = path_pattern_problem(prefix, "route prefix"); !why.empty()) {
    err = why;
    return false;
  }
  std::string p(prefix);
  if (p.back() != '/') p.push_back('/');
  if (p == "/api/") {
    err = "/api/ is the built-in route: set its backend with --backend";
    return false;
  }
  std::vector<backend_member> members;
  if (!parse_backend_list(backend, members, err)) return false;
  // A route with this prefix (the config file's, or an earlier --route)
  // is replaced whole: the options it had were meant for its backend.
  for (auto& r : routes) {
    if (r.prefix == p) {
      r = route_config{};
      r.prefix = std::move(p);
      r.backend = std::string(backend);
      return true;
    }
  }
  route_config r;
  r.prefix = std::move(p);
  r.backend = std::string(backend);
  routes.push_back(std::move(r));
  return true;
}

bool is_repeatable_flag(std::string_view flag) noexcept {
  return flag == "--api-key" || flag == "--validate" || flag == "--route" || flag == "--rate-limit-exempt" ||
         flag == "--trusted-proxy" || flag == "--backend" || flag == "--jwt-claim-header" || flag == "--upstream-ca" ||
         flag == "--tls-cert" || flag == "--tls-key";
}

bool takes_boolean(std::string_view flag) noexcept {
  for (const auto& f : flags()) {
    if (f.name != flag) continue;
    if (!f.apply) return false;
    if (f.value_name.empty()) return true;  // a switch: on when given
    std::string_view rest = f.value_name;
    for (;;) {
      const auto bar = rest.find('|');
      const std::string_view alt = rest.substr(0, bar);
      if (alt == "on" || alt == "off") return true;
      if (bar == std::string_view::npos) return false;
      rest.remove_prefix(bar + 1);
    }
  }
  return false;
}

bool is_setting(std::string_view flag) noexcept {
  for (const auto& f : flags())
    if (f.name == flag) return static_cast<bool>(f.apply);
  return false;
}

apply_result apply_setting(std::string_view flag, std::string_view value, config& out, std::string& err) {
  for (const auto& f : flags()) {
    if (f.name != flag) continue;
    if (!f.apply) return apply_result::unknown;
    return f.apply(out, value, err) ? apply_result::ok : apply_result::bad_value;
  }
  return apply_result::unknown;
}

namespace {
parse_outcome parse_args_impl(int argc, const char* const* argv, config& out);
}

parse_outcome parse_args(int argc, const char* const* argv, config& out) {
  parse_outcome o = parse_args_impl(argc, argv, out);
  if (o.what == parse_outcome::action::error) {
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]) == "--check-config") {
        out.check_config = true;
        out.check_error = o.message;
        return {};
      }
    }
  }
  return o;
}

namespace {
parse_outcome parse_args_impl(int argc, const char* const* argv, config& out) {
  out.command_line.assign(argv + (argc > 0 ? 1 : 0), argv + std::max(argc, 1));
  // The file first, wherever --config appears, so every flag overrides it.
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    if (arg.substr(0, 9) == "--config=") {
      value = arg.substr(9);
    } else if (arg == "--config") {
      if (i + 1 >= argc) return {parse_outcome::action::error, "--config: missing value FILE"};
      value = argv[++i];
    } else {
      continue;
    }
    std::string err;
    out.config_file = std::string(value);
    if (!load_config_file(out.config_file, out, err)) return {parse_outcome::action::error, err};
  }
  bool backend_from_flags = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool has_inline_value = false;
    if (auto eq = arg.find('='); arg.substr(0, 2) == "--" && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline_value = true;
    }
    if (arg == "--help" || arg == "-h") return {parse_outcome::action::help, {}};
    if (arg == "--version") return {parse_outcome::action::version, {}};
    if (arg == "--check-config") {
      out.check_config = true;
      continue;
    }
    if (arg == "--config") {
      if (!has_inline_value) ++i;  // read above
      continue;
    }
    // --backend adds to a group: the command line's first one replaces
    // what the --config file gave.
    if (arg == "--backend" && !backend_from_flags) {
      backend_from_flags = true;
      out.backend.clear();
    }
    const flag_spec* spec = nullptr;
    for (const auto& f : flags())
      if (f.name == arg) spec = &f;
    if (spec == nullptr || !spec->apply) {
      return {parse_outcome::action::error, "unknown option '" + std::string(arg) + "' (see --help)"};
    }
    if (!has_inline_value && spec->value_name.empty()) {
      value = "on";  // a switch: the flag alone turns it on
    } else if (!has_inline_value) {
      if (i + 1 >= argc) {
        return {parse_outcome::action::error, std::string(arg) + ": missing value " + std::string(spec->value_name)};
      }
      value = argv[++i];
    }
    std::string err;
    if (!spec->apply(out, value, err)) {
      return {parse_outcome::action::error,
              std::string(arg) + ": invalid value '" + std::string(value) + "': " + err};
    }
  }
  return {};
}
}  // namespace

std::string help_text() {
  std::string s =
      "gateway - an HTTP/1.1 API gateway: request ids, metrics, logs, compression, rate\n"
      "limits, authentication and validation in front of proxied backends (/api/ and --route).\n\n"
      "Usage: gateway [OPTIONS]\n\nOptions:\n";
  config defaults;
  for (const auto& f : flags()) {
    std::string left(2, ' ');  // (built with append: g++ 12 warns falsely on "  " + string)
    left.append(f.name);
    if (!f.value_name.empty()) {
      left.push_back(' ');
      left.append(f.value_name);
    }
    if (left.size() < 28) {
      left.resize(28, ' ');
    } else {
      left.push_back('\n');
      left.append(28, ' ');
    }
    s += left + std::string(f.help);
    if (f.show_default) s += " [default: " + f.show_default(defaults) + "]";
    s += "\n";
  }
  s +=
      "\nRoutes:\n"
      "  /health       200 {\"status\":\"healthy\",\"timestamp\":...}, no auth, rate limit\n"
      "  /metrics      JSON counters and latency percentiles (Prometheus text for ?format=prometheus or an Accept\n"
      "                preferring text/plain), no auth, rate limit\n"
      "  /logs         newest request-log entries, credentials redacted (?limit=N), auth, rate limit; at most\n"
      "                8 MiB (the oldest left out, X-Logs-Truncated: N), two responses at once (else 503)\n"
      "  /logs/clear   POST or DELETE empties /logs, auth, rate limit\n"
      "  /api/         proxied to --backend without the /api prefix (auth, rate limit)\n"
      "  --route ones  proxied to their backend (no auth or rate limit unless the config file says so;\n"
      "                the config file also gives a route header rules, its Host and CORS)\n"
      "  anything else 404, before any auth or rate limit\n"
      "  (--rate-limit-exempt PATH takes an exact path out of the rate limit)\n"
      "\nSignals: SIGINT/SIGTERM stop accepting, drain in-flight requests, exit 0.\n"
      "         SIGHUP re-reads the --config file and the files flags name (--api-keys-file, --jwt-jwks,\n"
      "         --tls-cert, --tls-key);\n"
      "         a bad one is refused and the running settings stay.\n";
  return s;
}

}  // namespace gateway::core
