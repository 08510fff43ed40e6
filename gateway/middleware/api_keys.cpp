#include "gateway/middleware/api_keys.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "gateway/core/siphash.hpp"

namespace gateway::middleware {

namespace {

// A key file is a short list; the cap stops a mistaken path (a log file,
// /dev/zero) from being read without end.
constexpr std::size_t max_key_file_size = 16 * 1024 * 1024;

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

// The process's digest key: random, drawn once, before the first key set
// is built (start-up), and the same for every set, so that sets can merge.
const core::siphash_key& digest_key() {
  static const core::siphash_key key = [] {
    core::siphash_key k{};
    if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1)
      throw std::runtime_error("API keys: no random bytes from the operating system for the digest key");
    return k;
  }();
  return key;
}

}  // namespace

std::optional<std::string> api_key_set::check_key(std::string_view key) {
  if (key.empty()) return std::string("empty key");
  if (key.size() > max_key_size) return "key longer than " + std::to_string(max_key_size) + " bytes";
  for (std::size_t i = 0; i < key.size(); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    // A key must survive a trip through a header field value (RFC 9110
    // section 5.5 forbids CTLs there) and a log line.
    if (c < 0x20 || c == 0x7f) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "control character 0x%02x at column %zu", c, i + 1);
      return std::string(buf);
    }
  }
  return std::nullopt;
}

void api_key_set::add(std::string_view key) {
  const digest d = core::siphash128(digest_key(), key);
  if (std::find(digests_.begin(), digests_.end(), d) == digests_.end()) digests_.push_back(d);
}

api_key_set::api_key_set(const std::vector<std::string>& keys) {
  digests_.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (auto why = check_key(keys[i])) {
      throw std::invalid_argument("API key #" + std::to_string(i + 1) + ": " + *why);
    }
    add(keys[i]);
  }
}

void api_key_set::merge(const api_key_set& other) {
  for (const auto& d : other.digests_)
    if (std::find(digests_.begin(), digests_.end(), d) == digests_.end()) digests_.push_back(d);
}

api_key_set api_key_set::from_file(const std::string& path, std::string& error) {
  error.clear();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open: " + std::strerror(errno);
    return {};
  }
  std::string text;
  char chunk[16 * 1024];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_key_file_size) {
      error = path + ": larger than " + std::to_string(max_key_file_size) + " bytes";
      return {};
    }
  }
  if (in.bad()) {  // e.g. a directory: opening succeeds, reading fails
    error = path + ": cannot read";
    return {};
  }

  std::string_view rest = text;
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // editors add a BOM
  api_key_set set;
  std::size_t line_no = 0;
  while (!rest.empty()) {
    ++line_no;
    const std::size_t nl = rest.find('\n');
    const std::string_view line = trim(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    // The message names the line, never the key: it ends up in logs.
    if (auto why = check_key(line)) {
      error = path + ":" + std::to_string(line_no) + ": invalid API key: " + *why;
      return {};
    }
    set.add(line);
  }
  return set;
}

api_key_set::digest api_key_set::digest_of(std::string_view presented) {
  return core::siphash128(digest_key(), presented);
}

bool api_key_set::contains(std::string_view presented) const noexcept {
  // The length cap is public, so refusing early on it leaks nothing.
  if (presented.empty() || presented.size() > max_key_size || digests_.empty()) return false;
  return contains(presented, core::siphash128(digest_key(), presented));
}

bool api_key_set::contains(std::string_view presented, const digest& d) const noexcept {
  if (presented.empty() || presented.size() > max_key_size || digests_.empty()) return false;
  // Every stored digest is compared, with no early exit, and CRYPTO_memcmp
  // takes the same time wherever the first differing byte is. Comparing
  // digests rather than keys also hides the stored keys' lengths.
  int found = 0;
  for (const digest& stored : digests_) {
    found |= static_cast<int>(CRYPTO_memcmp(stored.data(), d.data(), d.size()) == 0);
  }
  return found != 0;
}

}  // namespace gateway::middleware
