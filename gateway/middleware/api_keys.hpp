#pragma once
// The set of configured API keys (for `X-API-Key` and the `api_key` query
// parameter), checked in time that does not depend on the keys' contents.
//
// Built once at start-up, immutable afterwards: `contains` is const and safe
// to call from any number of threads at once; it allocates nothing, throws
// nothing and never blocks.
//
// Only keyed digests of the keys are kept, not the keys themselves: SipHash
// with its 128-bit output (core/siphash.hpp) under a key drawn from the
// operating system's random source once per process. `contains` hashes the
// presented key once and compares the digest with every stored digest
// (CRYPTO_memcmp, no early exit), so its running time depends on the
// presented key's length and on the number of stored keys only, never on
// how many leading bytes of a stored key a guess got right: without the
// process's key, a guess's digest is unrelated to the key it resembles.
// (A cryptographic hash such as SHA-256 gives the same guarantee at about
// seven times the instructions per request; the digests are compared, not
// published, so a keyed PRF is all the comparison needs.) The first set built
// draws the process's key: its constructor and from_file throw
// std::runtime_error in the unlikely case that the OS has no random bytes.
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gateway::middleware {

class api_key_set {
 public:
  // Longer keys are refused at load time; longer presented keys never match.
  static constexpr std::size_t max_key_size = 4096;

  // An empty set: `contains` is always false.
  api_key_set() = default;

  // Start-up only. Throws std::invalid_argument if a key is invalid (see
  // `check_key`); the message names the key's index, never its content.
  // Duplicates are kept once.
  explicit api_key_set(const std::vector<std::string>& keys);

  // Reads one key per line. Surrounding whitespace is trimmed; blank lines
  // and lines whose first non-blank character is '#' are ignored; a UTF-8
  // byte-order mark at the start of the file is ignored; "\r\n" line ends
  // are fine. On failure (unreadable file, invalid key) returns an empty set
  // and sets `error` to a message naming the file and line (but not the
  // key); on success clears `error`. A file without keys is not an error:
  // the caller decides whether an empty set is acceptable.
  static api_key_set from_file(const std::string& path, std::string& error);

  // Why `key` cannot be an API key (empty, longer than max_key_size, or has
  // a control character: bytes 0x00-0x1f and 0x7f), or nullopt if it can.
  static std::optional<std::string> check_key(std::string_view key);

  // Adds the keys of `other` (start-up only).
  void merge(const api_key_set& other);

  bool contains(std::string_view presented) const noexcept;

  // The keyed digest `contains` compares: SipHash-128 of `presented` under
  // the process's digest key. The first call draws that key (and may throw
  // std::runtime_error as the constructor does); later calls never throw.
  using digest = std::array<unsigned char, 16>;
  static digest digest_of(std::string_view presented);

  // contains(presented) for a caller that already holds
  // digest_of(presented): the same length rule, the same comparison.
  bool contains(std::string_view presented, const digest& d) const noexcept;

  std::size_t size() const noexcept { return digests_.size(); }
  bool empty() const noexcept { return digests_.empty(); }

 private:
  void add(std::string_view key);

  std::vector<digest> digests_;
};

}  // namespace gateway::middleware
