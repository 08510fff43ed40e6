#include "gateway/middleware/access_log.hpp"

#include <charconv>

#include "gateway/json/writer.hpp"

namespace gateway::middleware {

bool parse_access_log_format(std::string_view s, access_log_format& out) noexcept {
  if (s == "off") out = access_log_format::off;
  else if (s == "text") out = access_log_format::text;
  else if (s == "json") out = access_log_format::json;
  else if (s == "pretty") out = access_log_format::pretty;
  else return false;
  return true;
}

access_log::access_log(access_log_format format, std::FILE* out, std::size_t buffer_bytes)
    : format_(format), out_(out), cap_(buffer_bytes) {
  if (format_ == access_log_format::off) return;
  pending_.reserve(cap_);
  writer_ = std::jthread([this](std::stop_token st) { run(st); });
}

access_log::~access_log() {
  if (writer_.joinable()) {
    writer_.request_stop();
    writer_.join();
  }
}

void access_log::format_line(access_log_format f, const access_log_line& line, std::string& out) {
  const log_entry_view& e = *line.entry;
  double ms = static_cast<double>(e.duration.count()) / 1e6;
  if (f == access_log_format::json) {
    out += "{\"time\":\"";
    append_rfc3339_ms(out, e.timestamp);
    out += "\",\"client\":";
    json::append_string(out, e.client);
    out += ",\"method\":";
    json::append_string(out, e.method);
    out += ",\"path\":";
    std::string target;
    append_redacted_target(target, e.path, 2048);
    json::append_string(out, target);
    out += ",\"status\":";
    json::append_number(out, static_cast<std::int64_t>(e.status));
    out += ",\"duration_ms\":";
    json::append_number(out, ms, 3);
    out += ",\"request_id\":";
    json::append_string(out, e.request_id);
    out += ",\"upstream\":";
    json::append_string(out, line.upstream);
    out += "}\n";
    return;
  }
  const bool color = f == access_log_format::pretty;
  append_rfc3339_ms(out, e.timestamp);
  out += ' ';
  if (color) {
    out += e.status >= 500 ? "\x1b[31m" : e.status >= 400 ? "\x1b[33m" : e.status >= 300 ? "\x1b[36m" : "\x1b[32m";
  }
  char num[32];
  auto r = std::to_chars(num, num + sizeof num, e.status);
  out.append(num, r.ptr);
  if (color) out += "\x1b[0m";
  out += ' ';
  out.append(e.method);
  out += ' ';
  append_redacted_target(out, e.path, 2048);
  out += ' ';
  r = std::to_chars(num, num + sizeof num, ms, std::chars_format::fixed, 3);
  out.append(num, r.ptr);
  out += "ms ";
  out.append(e.client.empty() ? std::string_view("-") : e.client);
  if (!line.upstream.empty()) {
    out += " -> ";
    out.append(line.upstream);
  }
  if (!e.request_id.empty()) {
    out += " id=";
    out.append(e.request_id);
  }
  // Control bytes from the request (in the path) must not reach a terminal.
  for (char& c : out)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\x1b') || c == 0x7f) c = '?';
  out += '\n';
}

void access_log::write(const access_log_line& line) noexcept {
  if (format_ == access_log_format::off) return;
  thread_local std::string buf;
  try {
    buf.clear();
    format_line(format_, line, buf);
  } catch (...) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  bool wake = false;
  {
    std::lock_guard lock(m_);
    if (pending_.size() + buf.size() > cap_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    pending_.append(buf);  // within the reserved capacity: no allocation
    wake = pending_.size() > cap_ / 2;
  }
  written_.fetch_add(1, std::memory_order_relaxed);
  // The writer polls every 50 ms; waking it per line would cost a futex
  // call per request. Only a half-full buffer is worth a wake-up.
  if (wake) cv_.notify_one();
}

void access_log::run(std::stop_token st) {
  std::string batch;
  batch.reserve(cap_);
  for (;;) {
    {
      std::unique_lock lock(m_);
      cv_.wait_for(lock, st, std::chrono::milliseconds(50), [this] { return pending_.size() > cap_ / 2; });
      batch.swap(pending_);
    }
    if (!batch.empty()) {
      std::fwrite(batch.data(), 1, batch.size(), out_);
      std::fflush(out_);
      batch.clear();
    }
    if (st.stop_requested()) {
      std::lock_guard lock(m_);
      if (pending_.empty()) break;
    }
  }
}

}  // namespace gateway::middleware
