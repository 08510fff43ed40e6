#pragma once
// The requests the load generator sends, built once at start-up: each is the
// complete wire form (head and body, gzip-compressed if asked) in one string
// that every connection of every thread writes from, read-only.
#include "loadtest/src/options.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loadtest {

struct request_template {
  std::string wire;             // head + body, ready to write
  std::uint32_t weight = 1;
  bool expects_no_body = false;  // HEAD: the response carries no body
  std::uint64_t body_bytes = 0;  // body bytes on the wire
  std::uint64_t plain_body_bytes = 0;
};

// Builds one template per options.requests entry. Returns an error message on
// failure (gzip failure, empty mix).
std::optional<std::string> build_request_templates(const loadtest_options& options,
                                                   std::vector<request_template>& out);

// A JSON object of exactly `size` bytes ({"data":"..."}), its filler words
// chosen pseudo-randomly from 16 words so gzip has real work to do;
// below 12 bytes, `size` letters. Deterministic. (Measured: 1 KiB gzips to
// about 1/3, 100 KiB to about 1/7.)
std::string make_body(std::uint64_t size);

// gzip (RFC 1952) of `data` at the default level; nullopt if zlib fails.
std::optional<std::string> gzip_compress(std::string_view data);

}  // namespace loadtest
