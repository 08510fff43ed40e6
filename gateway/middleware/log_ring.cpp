#include "gateway/middleware/log_ring.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "gateway/json/writer.hpp"

namespace gateway::middleware {

namespace {

constexpr std::uint64_t no_entry = std::numeric_limits<std::uint64_t>::max();
constexpr std::string_view redacted = "[REDACTED]";

// assign() reuses the string's buffer when it is big enough, which is what
// makes a wrapped ring allocation-free.
void assign_cut(std::string& dst, std::string_view src, std::size_t max) {
  dst.assign(src.data(), std::min(src.size(), max));
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Query parameter names are compared as a server would see them after
// decoding (RFC 3986 section 2.1: "api%5Fkey" is "api_key"), and without
// regard to case: redacting a little too much is harmless, too little leaks.
bool is_api_key_name(std::string_view name) noexcept {
  constexpr std::string_view want = "api_key";
  std::size_t k = 0;
  for (std::size_t i = 0; i < name.size();) {
    auto c = static_cast<unsigned char>(name[i]);
    int hi = 0, lo = 0;
    if (c == '%' && i + 2 < name.size() && (hi = hex_value(name[i + 1])) >= 0 &&
        (lo = hex_value(name[i + 2])) >= 0) {
      c = static_cast<unsigned char>(hi * 16 + lo);
      i += 3;
    } else {
      ++i;
    }
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c + ('a' - 'A'));
    if (k >= want.size() || c != static_cast<unsigned char>(want[k])) return false;
    ++k;
  }
  return k == want.size();
}

void append_padded(std::string& out, long long v, int width) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  for (auto n = r.ptr - buf; n < width; ++n) out += '0';
  out.append(buf, r.ptr);
}

}  // namespace

struct alignas(64) log_ring::slot {
  mutable std::mutex mu;
  std::uint64_t seq = no_entry;  // the ticket of the entry held, or no_entry
  std::chrono::system_clock::time_point timestamp{};
  std::int64_t duration_ns = 0;
  int status = 0;
  bool body_truncated = false;
  std::string method;
  std::string path;
  std::string client;
  std::string request_id;
  std::string body;
  std::string header_text;  // name0 value0 name1 value1 ... back to back
  std::vector<std::pair<std::uint32_t, std::uint32_t>> header_lengths;  // (name, value)
};

bool is_credential_header(std::string_view name) noexcept {
  static constexpr std::array<std::string_view, 5> names = {
      "authorization", "proxy-authorization", "x-api-key", "cookie", "set-cookie"};
  for (auto n : names)
    if (http::iequals(name, n)) return true;
  return false;
}

void append_redacted_target(std::string& out, std::string_view target, std::size_t max) {
  const std::size_t start = out.size();
  auto put = [&](std::string_view s) {
    const std::size_t used = out.size() - start;
    if (used < max) out.append(s.substr(0, max - used));
  };
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) {
    put(target);
    return;
  }
  put(target.substr(0, q + 1));
  std::string_view rest = target.substr(q + 1);
  // Split on '&' and ';' (some servers accept both as separators), so that
  // whatever a backend or our auth treats as a parameter gets redacted.
  for (;;) {
    std::size_t end = 0;  // the next '&' or ';' (one pass; find_first_of searches the set per byte)
    while (end < rest.size() && rest[end] != '&' && rest[end] != ';') ++end;
    if (end == rest.size()) end = std::string_view::npos;
    const std::string_view param = rest.substr(0, end);
    const std::size_t eq = param.find('=');
    if (eq != std::string_view::npos && is_api_key_name(param.substr(0, eq))) {
      put(param.substr(0, eq + 1));
      put(redacted);
    } else {
      put(param);
    }
    if (end == std::string_view::npos) break;
    put(rest.substr(end, 1));
    rest = rest.substr(end + 1);
  }
}

void append_rfc3339_ms(std::string& out, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const auto in_day = (ms - day).count();  // [0, 86'400'000)
  append_padded(out, std::clamp(static_cast<int>(ymd.year()), 0, 9999), 4);
  out += '-';
  append_padded(out, static_cast<unsigned>(ymd.month()), 2);
  out += '-';
  append_padded(out, static_cast<unsigned>(ymd.day()), 2);
  out += 'T';
  append_padded(out, in_day / 3'600'000, 2);
  out += ':';
  append_padded(out, in_day / 60'000 % 60, 2);
  out += ':';
  append_padded(out, in_day / 1000 % 60, 2);
  out += '.';
  append_padded(out, in_day % 1000, 3);
  out += 'Z';
}

log_ring::log_ring(log_ring_options opts) : opts_(opts), capacity_(opts.capacity) {
  if (capacity_ == 0) throw std::invalid_argument("log ring capacity must be at least 1");
  slots_ = std::make_unique<slot[]>(capacity_);
}

log_ring::~log_ring() = default;

void log_ring::fill(slot& s, const log_entry_view& e) {
  s.timestamp = e.timestamp;
  s.duration_ns = static_cast<std::int64_t>(e.duration.count());
  s.status = e.status;
  assign_cut(s.method, e.method, opts_.max_field);
  assign_cut(s.client, e.client, opts_.max_field);
  assign_cut(s.request_id, e.request_id, opts_.max_field);
  s.path.clear();
  append_redacted_target(s.path, e.path, opts_.max_path);
  s.body_truncated = e.body.size() > opts_.max_body;
  assign_cut(s.body, e.body, opts_.max_body);

  s.header_text.clear();
  s.header_lengths.clear();
  for (const http::header_field& h : e.headers) {
    if (s.header_lengths.size() >= opts_.max_headers) break;
    const std::string_view name = h.name.substr(0, opts_.max_header_name);
    const std::string_view value =
        is_credential_header(h.name) ? redacted : h.value.substr(0, opts_.max_header_value);
    if (s.header_text.size() + name.size() + value.size() > opts_.max_header_bytes) break;
    s.header_text.append(name);
    s.header_text.append(value);
    s.header_lengths.emplace_back(static_cast<std::uint32_t>(name.size()),
                                  static_cast<std::uint32_t>(value.size()));
  }
}

void log_ring::push(const log_entry_view& e) noexcept {
  const std::uint64_t ticket = next_.fetch_add(1, std::memory_order_acq_rel);
  slot& s = slots_[ticket % capacity_];
  std::lock_guard lock(s.mu);
  // A pusher that stalled between its ticket and this lock may find the
  // slot already holding a newer entry (the ring went round meanwhile):
  // its own entry is older than anything the ring keeps, so it goes.
  if (s.seq != no_entry && s.seq > ticket) return;
  try {
    fill(s, e);
    s.seq = ticket;
  } catch (...) {
    s.seq = no_entry;
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

void log_ring::clear() noexcept {
  const std::uint64_t head = next_.load(std::memory_order_acquire);
  std::uint64_t cur = cleared_.load(std::memory_order_relaxed);
  while (cur < head && !cleared_.compare_exchange_weak(cur, head, std::memory_order_acq_rel)) {
  }
}

std::size_t log_ring::size() const noexcept {
  // cleared_ first: it never passes next_, so head - cleared cannot wrap.
  const std::uint64_t cleared = cleared_.load(std::memory_order_acquire);
  const std::uint64_t head = next_.load(std::memory_order_acquire);
  return static_cast<std::size_t>(std::min<std::uint64_t>(head - cleared, capacity_));
}

std::size_t log_ring::storage_bytes() const {
  std::size_t n = sizeof(slot) * capacity_;
  for (std::size_t i = 0; i < capacity_; ++i) {
    const slot& s = slots_[i];
    std::lock_guard lock(s.mu);
    n += s.method.capacity() + s.path.capacity() + s.client.capacity() + s.request_id.capacity() +
         s.body.capacity() + s.header_text.capacity() +
         s.header_lengths.capacity() * sizeof(s.header_lengths[0]);
  }
  return n;
}

void append_canonical_header_name(std::string& out, std::string_view name) {
  bool upper = true;
  for (char c : name) {
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - ('a' - 'A'));
    else if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    out += c;
    upper = c == '-';
  }
}

// The headers as the seed's map did: one member per name (in Go's
// canonical spelling, "X-Api-Key"), in the order names first appear, a
// repeated field's values joined with ", " (RFC 9110 section 5.3). Done
// here, when /logs is read, not on every request: at most max_headers
// fields per entry, compared pairwise.
void log_ring::append_headers_object(std::string& out, const slot& s) {
  const std::string_view text = s.header_text;
  const std::size_t n = s.header_lengths.size();
  std::string name, joined;
  out += '{';
  std::size_t off_i = 0;
  for (std::size_t i = 0; i < n; off_i += s.header_lengths[i].first + s.header_lengths[i].second, ++i) {
    const std::string_view name_i = text.substr(off_i, s.header_lengths[i].first);
    // Already written with an earlier field of the same name?
    bool seen = false;
    for (std::size_t j = 0, off_j = 0; j < i && !seen; off_j += s.header_lengths[j].first + s.header_lengths[j].second, ++j)
      seen = http::iequals(text.substr(off_j, s.header_lengths[j].first), name_i);
    if (seen) continue;
    joined.assign(text.substr(off_i + name_i.size(), s.header_lengths[i].second));
    std::size_t off_k = off_i + name_i.size() + s.header_lengths[i].second;
    for (std::size_t k = i + 1; k < n; off_k += s.header_lengths[k].first + s.header_lengths[k].second, ++k) {
      if (!http::iequals(text.substr(off_k, s.header_lengths[k].first), name_i)) continue;
      joined += ", ";
      joined.append(text.substr(off_k + s.header_lengths[k].first, s.header_lengths[k].second));
    }
    if (out.back() != '{') out += ',';
    name.clear();
    append_canonical_header_name(name, name_i);
    json::append_string(out, name);
    out += ':';
    json::append_string(out, joined);
  }
  out += '}';
}

void log_ring::render_json(std::string& out, std::size_t limit) const {
  const std::uint64_t cleared = cleared_.load(std::memory_order_acquire);
  const std::uint64_t head = next_.load(std::memory_order_acquire);
  const std::uint64_t n = std::min<std::uint64_t>({limit, capacity_, head - cleared});
  out += '[';
  bool first = true;
  for (std::uint64_t seq = head - n; seq < head; ++seq) {
    const slot& s = slots_[seq % capacity_];
    std::lock_guard lock(s.mu);
    if (s.seq != seq) continue;  // still being written, or already overwritten
    if (!first) out += ',';
    first = false;
    out += "{\"timestamp\":\"";
    append_rfc3339_ms(out, s.timestamp);
    out += "\",\"method\":";
    json::append_string(out, s.method);
    out += ",\"path\":";
    json::append_string(out, s.path);
    out += ",\"status_code\":";
    json::append_number(out, static_cast<std::int64_t>(s.status));
    out += ",\"duration\":";
    json::append_number(out, s.duration_ns);
    out += ",\"client_ip\":";
    json::append_string(out, s.client);
    out += ",\"headers\":";
    append_headers_object(out, s);
    out += ",\"body\":";
    json::append_string(out, s.body);
    out += ",\"request_id\":";
    json::append_string(out, s.request_id);
    out += ",\"body_truncated\":";
    out += s.body_truncated ? "true" : "false";
    out += '}';
  }
  out += ']';
}

}  // namespace gateway::middleware
