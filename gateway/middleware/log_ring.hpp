#pragma once
// The request log served on /logs: the newest `capacity` entries (the seed
// kept 10,000), copied out of each request and redacted on the way in.
//
// Ownership: push() copies everything it keeps from the views it is given
// (the request's memory dies with the request); nothing in the ring points
// into a request. Memory is bounded: `capacity` slots, each holding its
// entry in one buffer, every part cut to the limits in log_ring_options (a
// buffer stays below twice the sum of the limits). A slot's buffer is reused
// when the ring wraps, so once the ring is full and the slots have grown to
// the sizes of the traffic, push() allocates nothing.
//
// Redaction (the seed served credentials on /logs in clear text): the values
// of the headers Authorization, Proxy-Authorization, X-API-Key, Cookie and
// Set-Cookie (names compared case-insensitively) and of every `api_key`
// query parameter (name compared after percent-decoding, case-insensitively;
// parameters split on '&' and ';') are replaced by "[REDACTED]". Redaction
// happens before anything is cut, so a cut never leaves part of a secret.
//
// Threads: every member function may be called from any thread. push()
// takes a ticket with one atomic increment and then locks only the slot the
// ticket names, so pushes from several workers proceed in parallel (they
// contend only when the ring is smaller than the number of concurrent
// pushers). render_json() locks one slot at a time, never the whole ring.
// Entries are ordered by ticket: an entry whose push is still in progress
// when the ring is rendered is left out of that rendering.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "gateway/http/header_list.hpp"

namespace gateway::middleware {

// What the logging middleware knows about a finished request. Views only:
// valid for the duration of push().
struct log_entry_view {
  std::chrono::system_clock::time_point timestamp{};
  std::string_view method;
  std::string_view path;  // request-target: path with query
  int status = 0;
  std::chrono::nanoseconds duration{0};
  std::string_view client;  // client address and port, "ADDRESS:PORT" ("[v6]:PORT")
  std::string_view request_id;
  std::span<const http::header_field> headers;  // request headers, as received
  std::string_view body;
};

struct log_ring_options {
  std::size_t capacity = 10000;
  std::size_t max_body = 4096;          // longer bodies are cut; body_truncated says so
  std::size_t max_headers = 64;         // further header fields are left out
  std::size_t max_header_name = 256;    // bytes; longer names are cut
  std::size_t max_header_value = 1024;  // bytes; longer values are cut
  std::size_t max_header_bytes = 4096;  // names + values of one entry; the rest left out
  std::size_t max_path = 2048;          // bytes, after redaction
  std::size_t max_field = 128;          // method, client and request id, bytes each
};

// What one render_json() call wrote.
struct log_render_stats {
  std::size_t entries = 0;  // entries in the array
  std::size_t omitted = 0;  // older entries asked for but left out to stay within max_bytes
};

class log_ring {
 public:
  // Throws std::invalid_argument if capacity is 0 (start-up only).
  explicit log_ring(log_ring_options opts = {});
  ~log_ring();
  log_ring(const log_ring&) = delete;
  log_ring& operator=(const log_ring&) = delete;

  // Copies (and redacts) one entry, overwriting the oldest when full.
  // Never throws; if memory runs out the entry is dropped and counted.
  void push(const log_entry_view& e) noexcept;

  // Forgets every entry (what POST /logs/clear does). Slot storage is kept
  // for reuse.
  void clear() noexcept;

  // Entries currently held (at most capacity()).
  std::size_t size() const noexcept;
  std::size_t capacity() const noexcept { return capacity_; }
  // Entries dropped because an allocation failed.
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  // Bytes held by the slots and their buffers (walks and locks every slot: for tests
  // and occasional gauges, not per request).
  std::size_t storage_bytes() const;

  // Appends a JSON array of the newest `limit` entries, oldest first, with
  // the seed's field names and types first (the consumers of /logs read
  // them), then ours:
  //   {"timestamp":"2024-05-01T12:00:00.123Z","method":"GET",
  //    "path":"/api/x?api_key=[REDACTED]","status_code":200,
  //    "duration":1234567,"client_ip":"10.0.0.1:53211",
  //    "headers":{"Host":"example","Accept":"a/b, c/d","Authorization":"[REDACTED]"},
  //    "body":"...","request_id":"...","body_truncated":false}
  // timestamp: RFC 3339 UTC with milliseconds; duration: integer
  // nanoseconds (Go's time.Duration); client_ip: the seed's RemoteAddr,
  // address and port; headers: one member per name in Go's canonical
  // spelling, a repeated field's values joined with ", ". Bytes that are
  // not UTF-8 are rendered as U+FFFD.
  //
  // At most `max_bytes` are appended (the array's brackets included; at
  // least 2): when the entries asked for do not fit, the oldest are left
  // out, whole, and counted in the result. While rendering, `out` may grow
  // past max_bytes by one entry (which is then taken back).
  log_render_stats render_json(std::string& out, std::size_t limit,
                               std::size_t max_bytes = std::numeric_limits<std::size_t>::max()) const;

 private:
  struct slot;
  void fill(slot& s, const log_entry_view& e);
  static void append_entry(std::string& out, const slot& s);
  static void append_headers_object(std::string& out, const slot& s);

  log_ring_options opts_;
  std::size_t capacity_;
  std::unique_ptr<slot[]> slots_;
  std::atomic<std::uint64_t> next_{0};     // tickets handed out
  std::atomic<std::uint64_t> cleared_{0};  // tickets below this were cleared
  std::atomic<std::uint64_t> dropped_{0};
};

// RFC 3339 "YYYY-MM-DDThh:mm:ss.mmmZ" (UTC, milliseconds), appended to out.
void append_rfc3339_ms(std::string& out, std::chrono::system_clock::time_point t);

// Copies `target` into `out` with every api_key query value replaced by
// "[REDACTED]", keeping at most `max` bytes. Exposed for tests.
void append_redacted_target(std::string& out, std::string_view target, std::size_t max);

// `name` in Go's canonical header spelling (textproto.CanonicalMIMEHeaderKey:
// "x-api-KEY" -> "X-Api-Key"), appended to out.
void append_canonical_header_name(std::string& out, std::string_view name);

// True for the header names whose values are never logged.
bool is_credential_header(std::string_view name) noexcept;

}  // namespace gateway::middleware
