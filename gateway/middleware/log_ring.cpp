#include "gateway/middleware/log_ring.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
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

// One entry, laid out in one buffer that the slot keeps and reuses: the
// method, client, request id, body and redacted path back to back, then each
// header field as its name's and value's lengths (two native 32-bit words)
// followed by the name and the value. Filling it is a few plain copies into
// memory that is already there once the ring has wrapped; the headers object
// is built from it only when /logs is read.
struct alignas(64) log_ring::slot {
  mutable std::mutex mu;
  std::uint64_t seq = no_entry;  // the ticket of the entry held, or no_entry
  std::chrono::system_clock::time_point timestamp{};
  std::int64_t duration_ns = 0;
  int status = 0;
  bool body_truncated = false;
  std::uint32_t method_size = 0;
  std::uint32_t client_size = 0;
  std::uint32_t request_id_size = 0;
  std::uint32_t path_size = 0;
  std::uint32_t body_size = 0;
  std::uint32_t header_count = 0;
  std::uint32_t used = 0;      // bytes of buf the entry fills
  std::uint32_t capacity = 0;  // bytes of buf
  std::unique_ptr<char[]> buf;

  std::string_view part(std::size_t offset, std::size_t size) const noexcept {
    return std::string_view(buf.get() + offset, size);
  }
};

namespace {

// Appends to a slot's buffer, growing it (to at least twice its size, so a
// slot reaches its traffic's size in a few steps) when a piece does not fit.
// Growing throws std::bad_alloc, which push() turns into a dropped entry.
struct slot_writer {
  std::unique_ptr<char[]>& owner;
  std::uint32_t& capacity;
  char* data = owner.get();
  std::uint32_t used = 0;

  void reserve(std::size_t extra) {
    const std::size_t need = used + extra;
    if (need <= capacity) return;
    const std::size_t grown = std::max<std::size_t>({need, std::size_t{capacity} * 2, 256});
    auto fresh = std::make_unique<char[]>(grown);
    if (used != 0) std::memcpy(fresh.get(), owner.get(), used);
    owner = std::move(fresh);
    data = owner.get();
    capacity = static_cast<std::uint32_t>(grown);
  }
  void put(std::string_view s) {
    reserve(s.size());
    put_reserved(s);
  }
  // For pieces a reserve() already made room for.
  void put_reserved(std::string_view s) noexcept {
    if (!s.empty()) std::memcpy(data + used, s.data(), s.size());
    used += static_cast<std::uint32_t>(s.size());
  }
  void put_sizes_reserved(std::uint32_t first, std::uint32_t second) noexcept {
    const std::uint32_t v[2] = {first, second};
    std::memcpy(data + used, v, sizeof v);
    used += sizeof v;
  }
};

// The redacted target, cut at `max` bytes, handed to `put` piece by piece.
// Returns the bytes written.
template <class Put>
std::size_t put_redacted_target(Put&& put_piece, std::string_view target, std::size_t max) {
  std::size_t used = 0;
  auto put = [&](std::string_view s) {
    if (used >= max) return;
    s = s.substr(0, max - used);
    put_piece(s);
    used += s.size();
  };
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) {
    put(target);
    return used;
  }
  std::string_view rest = target.substr(q + 1);
  // A parameter name that decodes to "api_key" holds a '_' or a
  // percent-escape of it: a query with neither has nothing to redact.
  if (rest.find('_') == std::string_view::npos && rest.find('%') == std::string_view::npos) {
    put(target);
    return used;
  }
  put(target.substr(0, q + 1));
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
  return used;
}

}  // namespace

bool is_credential_header(std::string_view name) noexcept {
  static constexpr std::array<std::string_view, 5> names = {
      "authorization", "proxy-authorization", "x-api-key", "cookie", "set-cookie"};
  for (auto n : names)
    if (http::iequals(name, n)) return true;
  return false;
}

void append_redacted_target(std::string& out, std::string_view target, std::size_t max) {
  put_redacted_target([&](std::string_view s) { out.append(s); }, target, max);
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
  const std::string_view method = e.method.substr(0, opts_.max_field);
  const std::string_view client = e.client.substr(0, opts_.max_field);
  const std::string_view request_id = e.request_id.substr(0, opts_.max_field);
  const std::string_view body = e.body.substr(0, opts_.max_body);
  s.body_truncated = e.body.size() > opts_.max_body;
  slot_writer w{s.buf, s.capacity};
  // The fixed-size parts and the path's likely size in one check.
  w.reserve(method.size() + client.size() + request_id.size() + body.size() +
            std::min(e.path.size(), opts_.max_path));
  w.put_reserved(method);
  w.put_reserved(client);
  w.put_reserved(request_id);
  w.put_reserved(body);
  const std::uint32_t path_start = w.used;
  put_redacted_target([&](std::string_view piece) { w.put(piece); }, e.path, opts_.max_path);
  s.path_size = w.used - path_start;
  s.method_size = static_cast<std::uint32_t>(method.size());
  s.client_size = static_cast<std::uint32_t>(client.size());
  s.request_id_size = static_cast<std::uint32_t>(request_id.size());
  s.body_size = static_cast<std::uint32_t>(body.size());

  std::uint32_t count = 0;
  std::size_t header_bytes = 0;  // names and values, against max_header_bytes
  for (const http::header_field& h : e.headers) {
    if (count >= opts_.max_headers) break;
    const std::string_view name = h.name.substr(0, opts_.max_header_name);
    const std::string_view value =
        is_credential_header(h.name) ? redacted : h.value.substr(0, opts_.max_header_value);
    if (header_bytes + name.size() + value.size() > opts_.max_header_bytes) break;
    header_bytes += name.size() + value.size();
    w.reserve(2 * sizeof(std::uint32_t) + name.size() + value.size());
    w.put_sizes_reserved(static_cast<std::uint32_t>(name.size()), static_cast<std::uint32_t>(value.size()));
    w.put_reserved(name);
    w.put_reserved(value);
    ++count;
  }
  s.header_count = count;
  s.used = w.used;
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
    n += s.capacity;
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
  // The fields' names and values, read back from the slot's buffer.
  std::array<http::header_field, 64> small;
  std::vector<http::header_field> large;
  http::header_field* fields = small.data();
  if (s.header_count > small.size()) {
    large.resize(s.header_count);
    fields = large.data();
  }
  std::size_t off = std::size_t{s.method_size} + s.client_size + s.request_id_size + s.path_size + s.body_size;
  for (std::uint32_t i = 0; i < s.header_count; ++i) {
    std::uint32_t sizes[2];
    std::memcpy(sizes, s.buf.get() + off, sizeof sizes);
    off += sizeof sizes;
    fields[i].name = s.part(off, sizes[0]);
    fields[i].value = s.part(off + sizes[0], sizes[1]);
    off += std::size_t{sizes[0]} + sizes[1];
  }
  const std::size_t n = s.header_count;
  std::string name, joined;
  out += '{';
  for (std::size_t i = 0; i < n; ++i) {
    const std::string_view name_i = fields[i].name;
    // Already written with an earlier field of the same name?
    bool seen = false;
    for (std::size_t j = 0; j < i && !seen; ++j) seen = http::iequals(fields[j].name, name_i);
    if (seen) continue;
    joined.assign(fields[i].value);
    for (std::size_t k = i + 1; k < n; ++k) {
      if (!http::iequals(fields[k].name, name_i)) continue;
      joined += ", ";
      joined.append(fields[k].value);
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

void log_ring::append_entry(std::string& out, const slot& s) {
  out += "{\"timestamp\":\"";
  append_rfc3339_ms(out, s.timestamp);
  const std::size_t client_at = s.method_size;
  const std::size_t id_at = client_at + s.client_size;
  const std::size_t body_at = id_at + s.request_id_size;
  const std::size_t path_at = body_at + s.body_size;
  out += "\",\"method\":";
  json::append_string(out, s.part(0, s.method_size));
  out += ",\"path\":";
  json::append_string(out, s.part(path_at, s.path_size));
  out += ",\"status_code\":";
  json::append_number(out, static_cast<std::int64_t>(s.status));
  out += ",\"duration\":";
  json::append_number(out, s.duration_ns);
  out += ",\"client_ip\":";
  json::append_string(out, s.part(client_at, s.client_size));
  out += ",\"headers\":";
  append_headers_object(out, s);
  out += ",\"body\":";
  json::append_string(out, s.part(body_at, s.body_size));
  out += ",\"request_id\":";
  json::append_string(out, s.part(id_at, s.request_id_size));
  out += ",\"body_truncated\":";
  out += s.body_truncated ? "true" : "false";
  out += '}';
}

log_render_stats log_ring::render_json(std::string& out, std::size_t limit, std::size_t max_bytes) const {
  const std::uint64_t cleared = cleared_.load(std::memory_order_acquire);
  const std::uint64_t head = next_.load(std::memory_order_acquire);
  const std::uint64_t n = std::min<std::uint64_t>({limit, capacity_, head - cleared});
  log_render_stats stats;
  const std::size_t start = out.size();
  out += '[';
  // Newest first, so that the cut at max_bytes leaves out the oldest
  // entries; the entries are put back in order (oldest first) below. An
  // entry that does not fit is rendered and taken back: its size is known
  // only once rendered, and it is at most a few tens of kilobytes.
  std::vector<std::uint32_t> sizes;
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t seq = head - 1 - i;
    const slot& s = slots_[seq % capacity_];
    std::lock_guard lock(s.mu);
    if (s.seq != seq) continue;  // still being written, or already overwritten
    const std::size_t before = out.size();
    if (!sizes.empty()) out += ',';
    const std::size_t entry_at = out.size();
    append_entry(out, s);
    if (out.size() - start + 1 > max_bytes) {  // + 1: the closing bracket
      out.resize(before);
      stats.omitted = static_cast<std::size_t>(n - i);
      break;
    }
    sizes.push_back(static_cast<std::uint32_t>(out.size() - entry_at));
  }
  // "C,B,A" (newest first) reversed as a whole is "A',B',C'" with each entry
  // reversed in place; reversing each entry again gives "A,B,C".
  auto first = out.begin() + static_cast<std::ptrdiff_t>(start + 1);
  std::reverse(first, out.end());
  for (auto k = sizes.rbegin(); k != sizes.rend(); ++k) {
    std::reverse(first, first + *k);
    first += *k;
    if (first != out.end()) ++first;  // the comma
  }
  out += ']';
  stats.entries = sizes.size();
  return stats;
}

}  // namespace gateway::middleware
