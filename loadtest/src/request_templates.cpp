#include "loadtest/src/request_templates.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>

namespace loadtest {

std::string make_body(std::uint64_t size) {
  std::string body;
  body.reserve(size);
  constexpr std::string_view open = "{\"data\":\"";
  constexpr std::string_view close = "\"}";
  if (size < open.size() + close.size() + 1) {
    body.assign(size, 'x');
    return body;
  }
  static constexpr std::array<std::string_view, 16> words = {
      "alpha ", "bravo ", "charlie ", "delta ", "echo ", "foxtrot ", "golf ", "hotel ",
      "india ", "juliet ", "kilo ", "lima ", "mike ", "november ", "oscar ", "papa "};
  body.append(open);
  const std::uint64_t fill = size - open.size() - close.size();
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  while (body.size() < open.size() + fill) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const std::string_view w = words[x % words.size()];
    const std::uint64_t room = open.size() + fill - body.size();
    body.append(w.substr(0, room < w.size() ? room : w.size()));
  }
  body.append(close);
  return body;
}

std::optional<std::string> gzip_compress(std::string_view data) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip wrapper rather than zlib's (RFC 1952).
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  std::size_t offset = 0;
  int rc = Z_OK;
  // Feed in pieces below UINT_MAX; the output buffer already holds the bound.
  while (rc == Z_OK) {
    const std::size_t piece = std::min<std::size_t>(data.size() - offset, 1u << 30);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + offset));
    zs.avail_in = static_cast<uInt>(piece);
    offset += piece;
    rc = deflate(&zs, offset == data.size() ? Z_FINISH : Z_NO_FLUSH);
  }
  const bool ok = rc == Z_STREAM_END;
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (!ok) return std::nullopt;
  return out;
}

namespace {

bool has_header(const loadtest_options& options, std::string_view lower_name) {
  for (const auto& h : options.headers) {
    if (h.first.size() != lower_name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < lower_name.size() && same; ++i) {
      const char c = h.first[i];
      same = (c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c) == lower_name[i];
    }
    if (same) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> build_request_templates(const loadtest_options& options,
                                                   std::vector<request_template>& out) {
  out.clear();
  if (options.requests.empty()) return std::string("no requests to send");
  std::string host_header = options.url.host;
  if (options.url.port != 80) {
    host_header += ':';
    host_header += std::to_string(options.url.port);
  }
  for (const request_spec& spec : options.requests) {
    request_template t;
    t.weight = spec.weight;
    t.expects_no_body = spec.method == "HEAD";
    const std::string& path = spec.path.empty() ? options.url.path : spec.path;
    std::string body = make_body(spec.body_size);
    t.plain_body_bytes = body.size();
    if (spec.gzip) {
      auto z = gzip_compress(body);
      if (!z) return std::string("gzip compression failed");
      body = std::move(*z);
    }
    t.body_bytes = body.size();

    std::string& w = t.wire;
    w.reserve(256 + body.size());
    w += spec.method;
    w += ' ';
    w += path;
    w += " HTTP/1.1\r\n";
    if (!has_header(options, "host")) {
      w += "Host: ";
      w += host_header;
      w += "\r\n";
    }
    if (!has_header(options, "user-agent")) w += "User-Agent: loadtest\r\n";
    for (const auto& [name, value] : options.headers) {
      w += name;
      w += ": ";
      w += value;
      w += "\r\n";
    }
    const bool has_body = spec.body_size > 0 || spec.method == "POST" || spec.method == "PUT" || spec.method == "PATCH";
    if (has_body) {
      w += "Content-Type: application/json\r\n";
      if (spec.gzip) w += "Content-Encoding: gzip\r\n";
      w += "Content-Length: ";
      w += std::to_string(body.size());
      w += "\r\n";
    }
    w += "\r\n";
    w += body;
    out.push_back(std::move(t));
  }
  return std::nullopt;
}

}  // namespace loadtest
