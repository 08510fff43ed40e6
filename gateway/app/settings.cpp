#include "gateway/app/settings.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/ip/address.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "gateway/core/ascii.hpp"
#include "gateway/core/backend_list.hpp"
#include "gateway/core/units.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/proxy/backend_address.hpp"

namespace gateway::app {

namespace {

middleware::api_key_set load_keys(const core::config& cfg) {
  middleware::api_key_set keys;
  try {
    keys = middleware::api_key_set(cfg.api_keys);
  } catch (const std::exception& e) {
    throw config_error(std::string("--api-key: ") + e.what());
  }
  if (!cfg.api_keys_file.empty()) {
    std::string err;
    auto from_file = middleware::api_key_set::from_file(cfg.api_keys_file, err);
    if (!err.empty()) throw config_error("--api-keys-file: " + err);
    keys.merge(from_file);
  }
  return keys;
}

// The JWT verifier, with the --jwt-jwks file read now (at start-up, and
// again for each reload: a bad file throws and the reload is refused).
std::unique_ptr<middleware::jwt_verifier> make_jwt(const core::config& cfg) {
  if (cfg.jwt_secret.empty() && cfg.jwt_jwks.empty()) {
    if (!cfg.jwt_claim_headers.empty()) throw config_error("--jwt-claim-header needs --jwt-secret or --jwt-jwks");
    return nullptr;
  }
  middleware::jwt_options o;
  o.secret = cfg.jwt_secret;
  if (!cfg.jwt_jwks.empty()) {
    try {
      o.jwks = std::make_shared<const middleware::jwk_set>(middleware::jwk_set::load(cfg.jwt_jwks));
    } catch (const std::runtime_error& e) {
      throw config_error(std::string("--jwt-jwks: ") + e.what());
    }
  }
  for (const auto& [claim, header] : cfg.jwt_claim_headers) {
    try {
      middleware::check_request_header_name("--jwt-claim-header " + claim + "=" + header + ": header", header);
    } catch (const std::invalid_argument& e) {
      throw config_error(e.what());
    }
    o.claim_headers.push_back({claim, header});
  }
  o.leeway = std::chrono::duration_cast<std::chrono::seconds>(cfg.jwt_leeway);
  if (!cfg.jwt_issuer.empty()) o.issuer = cfg.jwt_issuer;
  if (!cfg.jwt_audience.empty()) o.audience = cfg.jwt_audience;
  return std::make_unique<middleware::jwt_verifier>(std::move(o));
}

std::shared_ptr<middleware::rate_limiter> make_limiter(const core::config& cfg) {
  middleware::rate_limit_options o;
  o.limit = cfg.rate_limit;
  o.window = cfg.rate_limit_window;
  o.max_keys = cfg.rate_limit_max_clients;
  o.shards = 64;
  return std::make_shared<middleware::rate_limiter>(o);
}

// The store's options, its host resolved once here with c-ares (it blocks,
// so never on a worker thread; and no NSS, so the static binary resolves too).
middleware::rate_limit_store_options make_store_options(const core::config& cfg) {
  core::store_url url;
  std::string err;
  if (!core::parse_store_url(cfg.rate_limit_store, url, err)) throw config_error("--rate-limit-store: " + err);
  std::string text = url.host;
  if (proxy::is_host_name(url.host)) {
    proxy::name_table names;
    try {
      proxy::resolve_names(names, {url.host}, dns_options_of(cfg));
    } catch (const std::exception& e) {
      throw config_error(std::string("--rate-limit-store: ") + e.what());
    }
    text = names.addresses(url.host).front().to_string();
  }
  middleware::rate_limit_store_options o;
  o.url = cfg.rate_limit_store;
  o.address = text;
  o.port = url.port;
  o.db = url.db;
  o.limit = cfg.rate_limit;
  o.window = cfg.rate_limit_window;
  o.timeout = cfg.rate_limit_store_timeout;
  o.connections = cfg.rate_limit_store_connections;
  o.failure_mode = cfg.rate_limit_store_failure;
  o.key_secret = cfg.rate_limit_store_secret;
  return o;
}

std::vector<route_settings> compile_routes(const core::config& cfg) {
  std::vector<route_settings> out;
  out.reserve(cfg.routes.size());
  for (const auto& r : cfg.routes) {
    try {
      route_settings rs;
      rs.headers = middleware::compile_header_rules(r);
      if (r.cors) rs.cors = middleware::compile_cors(*r.cors);
      out.push_back(std::move(rs));
    } catch (const std::invalid_argument& e) {
      throw config_error("route " + r.prefix + ": " + e.what());
    }
  }
  return out;
}

// Every member of a backend group parses (names are resolved apart);
// config_error naming `what` (the flag or the route) when one does not.
// Returns the number of members.
std::size_t check_group(const std::string& list, const std::string& what) {
  std::vector<core::backend_member> members;
  if (std::string err; !core::parse_backend_list(list, members, err)) throw config_error(what + ": " + err);
  // One backend spelled two ways ("HOST:021100" and "HOST:21100", a name in
  // two cases, a default port written and left out) would be two members
  // with twice the weight, where parse_backend_list's check sees two URLs.
  struct seen {
    bool tls;
    std::string host;  // the name, or the address as Asio writes it
    std::uint16_t port;
  };
  std::vector<seen> seen_members;
  try {
    for (const auto& m : members) {
      const auto a = proxy::parse_backend_url(m.url);
      seen s{a.tls, a.host.empty() ? a.endpoint.address().to_string() : a.host, a.port};
      for (std::size_t i = 0; i < seen_members.size(); ++i) {
        const auto& o = seen_members[i];
        if (o.tls == s.tls && o.port == s.port && core::iequals_ascii(o.host, s.host))
          throw config_error(what + ": '" + members[i].url + "' and '" + m.url + "' are the same backend");
      }
      seen_members.push_back(std::move(s));
    }
  } catch (const std::invalid_argument& e) {
    throw config_error(what + ": " + e.what());
  }
  return members.size();
}

void check_backends(const core::config& cfg) {
  std::size_t members = 0;
  if (!cfg.backend.empty()) members += check_group(cfg.backend, "--backend");
  for (const auto& r : cfg.routes) members += check_group(r.backend, "route " + r.prefix);
  if (members > max_backend_members)
    throw config_error("--backend, --route: " + std::to_string(members) + " backend group members in all, more than " +
                       std::to_string(max_backend_members));
}

// The host names of one backend list (a malformed list has none here: its
// error comes from check_group or make_proxy).
void add_names(const std::string& list, std::vector<std::string>& out) {
  std::vector<core::backend_member> members;
  if (std::string err; !core::parse_backend_list(list, members, err)) return;
  for (const auto& m : members) {
    try {
      auto a = proxy::parse_backend_url(m.url);
      if (!a.host.empty() && std::find(out.begin(), out.end(), a.host) == out.end()) out.push_back(a.host);
    } catch (const std::invalid_argument&) {
    }
  }
}

}  // namespace

std::vector<std::string> backend_host_names(const core::config& cfg) {
  std::vector<std::string> out;
  add_names(cfg.backend, out);
  for (const auto& r : cfg.routes) add_names(r.backend, out);
  return out;
}

proxy::dns_options dns_options_of(const core::config& cfg) {
  proxy::dns_options o;
  o.servers = cfg.dns_server;
  o.min_ttl = cfg.dns_min_ttl;
  o.max_ttl = std::max(cfg.dns_max_ttl, cfg.dns_min_ttl);
  return o;
}

void resolve_backend_names(const core::config& cfg, proxy::name_table& table) {
  const auto o = dns_options_of(cfg);
  auto resolve_list = [&](const std::string& list, const std::string& what) {
    std::vector<std::string> hosts;
    add_names(list, hosts);
    try {
      proxy::resolve_names(table, hosts, o);
    } catch (const std::exception& e) {
      throw config_error(what + " " + list + ": " + e.what());
    }
  };
  resolve_list(cfg.backend, "--backend");
  for (const auto& r : cfg.routes) resolve_list(r.backend, "route " + r.prefix);
}

core::config resolved(core::config cfg) {
  if (cfg.threads == 0) cfg.threads = std::max(1u, std::thread::hardware_concurrency());
  return cfg;
}

std::shared_ptr<const settings> make_settings(core::config cfg, std::shared_ptr<middleware::rate_limiter> reuse) {
  auto s = std::make_shared<settings>();
  s->cfg = std::move(cfg);
  check_backends(s->cfg);
  s->keys = load_keys(s->cfg);
  s->jwt = make_jwt(s->cfg);
  s->routes = compile_routes(s->cfg);
  if (s->cfg.rate_limit_enabled) s->limiter = reuse ? std::move(reuse) : make_limiter(s->cfg);
  if (s->cfg.rate_limit_enabled && !s->cfg.rate_limit_store.empty()) s->store = make_store_options(s->cfg);
  bool https = proxy::has_https_member(s->cfg.backend);
  for (const auto& r : s->cfg.routes) https = https || proxy::has_https_member(r.backend);
  // The --upstream-ca files are loaded whenever given, so a bad one stops
  // the start (or refuses the reload) before an https backend needs it;
  // the context is kept only when some member is https.
  if (https || !s->cfg.upstream_ca.empty()) {
    try {
      auto tls = std::make_shared<proxy::upstream_tls>(
          proxy::upstream_tls_options{s->cfg.upstream_ca, s->cfg.upstream_insecure});
      if (https) s->upstream_tls = std::move(tls);
    } catch (const std::invalid_argument& e) {
      throw config_error(e.what());
    }
  }
  return s;
}

bool same_limiter(const core::config& a, const core::config& b) noexcept {
  return a.rate_limit_enabled == b.rate_limit_enabled && a.rate_limit == b.rate_limit &&
         a.rate_limit_window == b.rate_limit_window && a.rate_limit_max_clients == b.rate_limit_max_clients;
}

std::string restart_only_changes(const core::config& a, const core::config& b) {
  std::string out;
  auto note = [&out](bool differs, const char* key) {
    if (!differs) return;
    if (!out.empty()) out += ", ";
    out += key;
  };
  note(a.listen.host != b.listen.host || a.listen.port != b.listen.port, "listen");
  note(a.threads != b.threads, "threads");
  note(a.io_backend != b.io_backend, "io_backend");
  note(a.sched_policy != b.sched_policy, "sched_policy");
  note(a.proxy_protocol != b.proxy_protocol, "proxy_protocol");
  note(a.tls_mode != b.tls_mode || net::tls_terminator::wanted(a) != net::tls_terminator::wanted(b) ||
           a.tls_self_signed_pem != b.tls_self_signed_pem,
       "tls (on or off, self-signed)");
  note(a.tls_ticket_rotation != b.tls_ticket_rotation, "tls_ticket_rotation");
  note(a.redirect_http != b.redirect_http, "redirect_http");
  note(a.max_body != b.max_body, "max_body");
  note(a.max_head != b.max_head, "max_head");
  note(a.max_target != b.max_target, "max_target");
  note(a.max_headers != b.max_headers, "max_headers");
  note(a.max_connections != b.max_connections, "max_connections");
  note(a.body_budget != b.body_budget, "body_budget");
  note(a.header_timeout != b.header_timeout, "header_timeout");
  note(a.body_timeout != b.body_timeout, "body_timeout");
  note(a.body_min_rate != b.body_min_rate, "body_min_rate");
  note(a.idle_timeout != b.idle_timeout, "idle_timeout");
  note(a.write_timeout != b.write_timeout, "write_timeout");
  note(a.drain_timeout != b.drain_timeout, "drain_timeout");
  note(a.tunnel_idle_timeout != b.tunnel_idle_timeout, "tunnel_idle_timeout");
  note(a.access_log != b.access_log, "access_log");
  note(a.log_capacity != b.log_capacity, "log_capacity");
  note(a.metrics_max_paths != b.metrics_max_paths, "metrics_max_paths");
  return out;
}

std::string describe_routes(const core::config& cfg) {
  std::string s;
  for (const auto& r : cfg.routes) {
    s += "\n  " + r.prefix + " -> " + r.backend + (r.strip_prefix ? " (prefix removed" : " (prefix kept") +
         (r.auth ? ", auth" : "") + (r.rate_limit ? ", rate limit" : "") + (r.cors ? ", CORS" : "") +
         (r.request_headers.empty() && r.response_headers.empty() ? "" : ", header rules") +
         (r.upstream_host ? ", Host upstream" : "") + ")";
  }
  return s;
}

void check_startup(const core::config& cfg, bool check_only) {
  std::error_code ec;
  asio::ip::make_address(cfg.listen.host, ec);
  if (ec) throw config_error("--listen: '" + cfg.listen.host + "' is not a numeric IP address");
  // Pairs of bounds that were silently raised to each other.
  if (cfg.eject_max < cfg.eject_time)
    throw config_error("--eject-max: shorter than --eject-time (" + core::format_duration(cfg.eject_max) + " < " +
                       core::format_duration(cfg.eject_time) + ")");
  if (cfg.dns_max_ttl < cfg.dns_min_ttl)
    throw config_error("--dns-max-ttl: shorter than --dns-min-ttl (" + core::format_duration(cfg.dns_max_ttl) + " < " +
                       core::format_duration(cfg.dns_min_ttl) + ")");
  // A rule no route serves would never run.
  for (const auto& v : cfg.validation) {
    bool served = route_prefix_covers(api_route_prefix, v.route);
    for (const auto& r : cfg.routes) served = served || route_prefix_covers(r.prefix, v.route);
    if (!served)
      throw config_error("--validate " + v.route +
                         ": no route serves this path (/api/ or a --route prefix): the rule "
                         "would never run");
  }
  const bool tls = net::tls_terminator::wanted(cfg);
  if (cfg.redirect_http && !tls)
    throw config_error("--redirect-http: needs TLS on the listener (--tls-cert and --tls-key, or --tls self-signed)");
  if (tls && cfg.proxy_protocol)
    throw config_error("--proxy-protocol: not supported together with TLS on the listener (--tls-cert, --tls)");
  if (cfg.tls_mode != "self-signed") return;
  if (!cfg.tls_certs.empty() || !cfg.tls_keys.empty())
    throw config_error("--tls self-signed: not together with --tls-cert/--tls-key");
  if (!check_only || cfg.tls_self_signed_pem.empty()) return;
  // The start writes PATH.tmp in PATH's directory and renames it over PATH.
  const std::string& path = cfg.tls_self_signed_pem;
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st {};
  int err = 0;
  if (::stat(dir.c_str(), &st) != 0) err = errno;
  else if (!S_ISDIR(st.st_mode)) err = ENOTDIR;
  else if (::access(dir.c_str(), W_OK | X_OK) != 0) err = errno;
  else if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) err = EISDIR;
  if (err != 0)
    throw config_error("--tls-self-signed-pem " + path + ": cannot write the certificate: " + std::strerror(err));
}

bool check_config(const core::config& given, std::string& message) {
  if (!given.check_error.empty()) {
    message = given.check_error;
    return false;
  }
  try {
    core::config cfg = resolved(given);
    check_startup(cfg, true);
    auto s = make_settings(cfg);
    std::string tls_note;
    if (cfg.tls_mode != "self-signed" && (!cfg.tls_certs.empty() || !cfg.tls_keys.empty())) {
      // The certificate files as a start would load them (nothing listens).
      net::tls_terminator tls(cfg);
      tls_note = ", TLS certificates: " + tls.current()->describe();
    } else if (cfg.tls_mode == "self-signed") {
      tls_note = ", TLS self-signed";
    }
    proxy::name_table names;
    resolve_backend_names(cfg, names);
    message = "configuration OK" + std::string(cfg.config_file.empty() ? "" : " (" + cfg.config_file + ")") +
              ": listen " + cfg.listen.host + ":" + std::to_string(cfg.listen.port) + ", /api/ -> " +
              (cfg.backend.empty() ? std::string("embedded echo backend") : cfg.backend) + tls_note +
              describe_routes(cfg);
    return true;
  } catch (const std::exception& e) {
    message = e.what();
    return false;
  }
}

}  // namespace gateway::app
