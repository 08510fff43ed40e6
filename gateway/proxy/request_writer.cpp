#include "gateway/proxy/request_writer.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "gateway/http/syntax.hpp"

namespace gateway::proxy {

namespace {

// Writes into an arena buffer sized beforehand for the longest head the
// request can give, so the head is built in one pass with no std::string.
// A write past `room` would mean that sizing is wrong (a bug): it stops the
// process instead of writing over the arena's next allocation, in every
// build (an assert is compiled out of Release and the sanitizer builds).
struct head_sink {
  char* out = nullptr;
  std::size_t room = 0;
  std::size_t n = 0;
  void put(std::string_view s) noexcept {
    if (s.size() > room - n) std::abort();
    if (!s.empty()) std::memcpy(out + n, s.data(), s.size());
    n += s.size();
  }
  void field(std::string_view name, std::string_view value) noexcept {
    put(name);
    put(": ");
    put(value);
    put("\r\n");
  }
};

bool is_forwarded_meta(std::string_view name) noexcept {
  return http::iequals(name, "x-forwarded-host") || http::iequals(name, "x-forwarded-proto") ||
         http::iequals(name, "forwarded");
}

// Expect (RFC 9110 section 10.1.1) was the gateway's to answer: it has read
// the whole body before forwarding, so a backend must not answer 100 or 417
// to a request whose body is already on its way.
bool is_answered_here(std::string_view name) noexcept { return http::iequals(name, "expect"); }

}  // namespace

std::string_view forwarded_path(const http::request& req, std::string_view strip_prefix) noexcept {
  std::string_view path = req.path;
  if (!strip_prefix.empty() && path.substr(0, strip_prefix.size()) == strip_prefix &&
      (path.size() == strip_prefix.size() || path[strip_prefix.size()] == '/'))
    path.remove_prefix(strip_prefix.size());
  return path;
}

std::string_view build_request_head(const http::request& req, const forward_params& p, core::arena& mem) {
  std::string_view path = forwarded_path(req, p.strip_prefix);
  if (path.empty()) path = "/";
  // The query exactly as sent, '?' included even when empty.
  std::string_view query;
  if (auto q = req.target.find('?'); q != std::string_view::npos) query = req.target.substr(q);

  char length_text[24];
  auto r = std::to_chars(length_text, length_text + sizeof length_text, req.body.size());
  std::string_view body_length(length_text, static_cast<std::size_t>(r.ptr - length_text));

  // Connection may name more hop-by-hop fields; without one (the usual
  // request) the fixed names are all there is to check. What it names is
  // removed from the fields the client sent (RFC 9110 section 7.6.1), never
  // from those the gateway added (a generated request id, a verified
  // claim), never Host, which every request needs and which the gateway
  // checked and logged, and never the request id the gateway kept from the
  // client (the backend sees the id the client and the log see).
  const bool has_connection = req.headers.find("connection") != nullptr;
  auto hop_by_hop = [&](const http::header_field& f) {
    if (!has_connection || !req.headers.received(f)) return http::is_hop_by_hop_name(f.name);
    return http::is_hop_by_hop(f.name, req.headers) && !http::iequals(f.name, "host") &&
           !http::iequals(f.name, "x-request-id");
  };
  std::string_view host;
  bool has_host = false;
  const http::header_field* first_xff = nullptr;
  for (const auto& f : req.headers) {
    if (http::iequals(f.name, "host")) {
      host = f.value;
      has_host = true;
    } else if (first_xff == nullptr && http::iequals(f.name, "x-forwarded-for") && !hop_by_hop(f)) {
      first_xff = &f;
    }
  }

  auto emit = [&](head_sink& s) {
    s.put(req.method);
    s.put(" ");
    s.put(path);
    s.put(query);
    s.put(" HTTP/1.1\r\n");
    bool has_length = false;
    for (const auto& f : req.headers) {
      if (hop_by_hop(f) || is_forwarded_meta(f.name) || is_answered_here(f.name)) continue;
      if (http::iequals(f.name, "content-length")) {
        // One Content-Length at most (the parser refused repeats); its value
        // may differ from the client's when a middleware decoded the body.
        s.field(f.name, body_length);
        has_length = true;
      } else if (p.upstream_host && http::iequals(f.name, "host")) {
        s.field(f.name, p.backend_authority);
      } else if (first_xff != nullptr && http::iequals(f.name, "x-forwarded-for")) {
        if (&f != first_xff) continue;  // joined into the first one
        s.put(f.name);
        s.put(": ");
        for (const http::header_field* g = &f; g != req.headers.end(); ++g) {
          if (g->value.empty() || !http::iequals(g->name, "x-forwarded-for")) continue;
          s.put(g->value);
          s.put(", ");
        }
        s.put(p.client_ip);
        s.put("\r\n");
      } else {
        s.field(f.name, f.value);
      }
    }
    if (!has_host) s.field("Host", p.backend_authority);
    if (!has_length && (!req.body.empty() || req.was_chunked)) s.field("Content-Length", body_length);
    if (first_xff == nullptr) s.field("X-Forwarded-For", p.client_ip);
    if (has_host) s.field("X-Forwarded-Host", host);
    s.field("X-Forwarded-Proto", p.client_tls ? "https" : "http");
    s.put("\r\n");
  };

  // The longest head: each field with the longest value it can be given
  // (its own, the backend's authority, the body's length, or its own plus
  // ", " and the client's address), and every field added at the end.
  const std::size_t longest_added_value = std::max(p.backend_authority.size(), body_length.size());
  std::size_t room = req.method.size() + 1 + path.size() + query.size() + 11;
  for (const auto& f : req.headers)
    room += f.name.size() + 4 + std::max(f.value.size() + 2 + p.client_ip.size(), longest_added_value);
  room += 6 + p.backend_authority.size() + 2;  // Host
  room += 16 + body_length.size() + 2;         // Content-Length
  room += 17 + p.client_ip.size() + 2;         // X-Forwarded-For
  room += 18 + host.size() + 2;                // X-Forwarded-Host
  room += 26 + 2;                              // X-Forwarded-Proto, the blank line
  head_sink write{static_cast<char*>(mem.allocate(room, 1)), room, 0};
  emit(write);
  return {write.out, write.n};
}

}  // namespace gateway::proxy
