#include "gateway/http/syntax.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <string>

using namespace gateway;

namespace {

// The rule byte by byte: a CR is followed by LF, an LF follows a CR.
bool reference(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 >= s.size() || s[i + 1] != '\n')) return false;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("line_ends_are_crlf agrees with the byte-by-byte rule at every length and block edge",
          "[unit][http][syntax]") {
  CHECK(http::line_ends_are_crlf(""));
  CHECK(http::line_ends_are_crlf("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  CHECK_FALSE(http::line_ends_are_crlf("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"));
  CHECK_FALSE(http::line_ends_are_crlf("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r"));
  CHECK_FALSE(http::line_ends_are_crlf("\n"));
  // A CR as the 16th byte and its LF as the 17th: the pair spans two blocks.
  CHECK(http::line_ends_are_crlf(std::string(15, 'a') + "\r\n" + std::string(20, 'b')));
  CHECK_FALSE(http::line_ends_are_crlf(std::string(15, 'a') + "\r" + std::string(20, 'b')));
  CHECK_FALSE(http::line_ends_are_crlf(std::string(16, 'a') + "\n" + std::string(20, 'b')));

  // Random strings over {CR, LF, 'a'} of every length 0-80: every
  // placement of the bytes relative to the 16-byte blocks.
  std::mt19937 rng(12345);
  const char alphabet[] = {'\r', '\n', 'a', 'a'};
  std::size_t valid = 0, invalid = 0;
  for (std::size_t len = 0; len <= 80; ++len) {
    for (int round = 0; round < 400; ++round) {
      std::string s(len, 'a');
      for (auto& c : s) c = alphabet[rng() % 4];
      // Half of them repaired into valid CRLF text, so both answers occur often.
      if (round % 2 == 0) {
        for (std::size_t i = 0; i < s.size(); ++i) {
          if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) s[i] = 'a';
          if (s[i] == '\r') {
            if (i + 1 < s.size()) s[i + 1] = '\n', ++i;
            else s[i] = 'a';
          }
        }
      }
      const bool want = reference(s);
      (want ? valid : invalid) += 1;
      INFO("length " << len << " round " << round);
      REQUIRE(http::line_ends_are_crlf(s) == want);
    }
  }
  CHECK(valid > 10000);
  CHECK(invalid > 10000);
}

TEST_CASE("has_control_byte finds every control byte but HTAB, CR and LF, at every position",
          "[unit][http][syntax]") {
  CHECK_FALSE(http::has_control_byte(""));
  CHECK_FALSE(http::has_control_byte("HTTP/1.1 200 OK\r\nX: a\tb \x80\xff~\r\n\r\n"));
  for (int c = 0; c < 256; ++c) {
    const bool control = (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7F;
    // The byte at each position of a 40-byte string: inside the first
    // block, the second, and the scalar tail.
    for (std::size_t at = 0; at < 40; ++at) {
      std::string s(40, 'a');
      s[at] = static_cast<char>(c);
      INFO("byte " << c << " at " << at);
      REQUIRE(http::has_control_byte(s) == control);
    }
  }
}
