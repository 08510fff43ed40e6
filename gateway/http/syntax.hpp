#pragma once
// HTTP syntax rules shared by every module that reads or writes messages
// (the request parser, the proxy's request writer and response reader, the
// tunnel, the codecs): tokens, optional whitespace, comma-separated lists
// and the hop-by-hop fields.
#include <array>
#include <string_view>

#include "gateway/core/ascii.hpp"
#include "gateway/http/header_list.hpp"

namespace gateway::http {

namespace detail {
constexpr std::array<bool, 256> make_tchar_table() noexcept {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
inline constexpr std::array<bool, 256> tchar_table = make_tchar_table();
}  // namespace detail

// RFC 9110 section 5.6.2: tchar. Inline: the request parser asks it for
// every byte of every field name.
constexpr bool is_tchar(unsigned char c) noexcept { return detail::tchar_table[c]; }

// A non-empty sequence of tchars (RFC 9110 section 5.6.2: token).
bool is_token(std::string_view s) noexcept;

// OWS (RFC 9110 section 5.6.3) removed from both ends: spaces and tabs.
constexpr std::string_view trim_ows(std::string_view v) noexcept {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// RFC 9110 section 5.5: a byte a field value may hold (VCHAR, obs-text, SP,
// HTAB; never CR, LF, NUL or another control byte).
constexpr bool is_field_value_byte(unsigned char c) noexcept { return c == '\t' || (c >= 0x20 && c != 0x7F); }

// A whole field value: such bytes only, no whitespace at either end.
constexpr bool is_field_value(std::string_view v) noexcept {
  for (unsigned char c : v)
    if (!is_field_value_byte(c)) return false;
  return v.empty() || (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t');
}

// True when every CR in `s` is followed by LF and every LF follows a CR:
// the line ends of a head framed as RFC 9112 section 2.2 requires of a proxy
// (no bare CR, no bare LF). Sixteen bytes a step where SSE2 is there.
bool line_ends_are_crlf(std::string_view s) noexcept;

// True when `s` holds a control byte other than HTAB, CR and LF (0x00-0x1F,
// 0x7F): what no field value, reason phrase or request line may carry
// (RFC 9110 section 5.5). Sixteen bytes a step where SSE2 is there.
bool has_control_byte(std::string_view s) noexcept;

// Does the comma-separated list (RFC 9110 section 5.6.1) contain `token`,
// compared case-insensitively, as in "Connection: keep-alive, Upgrade"?
bool has_token(std::string_view list, std::string_view token) noexcept;

// True for fields that describe one hop and are never forwarded (RFC 9110
// section 7.6.1: Connection and the fields it names, Keep-Alive,
// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade), given the
// message's own fields (whose Connection values name further ones).
// Content-Length is never one, whatever Connection names: it frames the
// forwarded body.
bool is_hop_by_hop(std::string_view name, const header_list& fields) noexcept;

// The same for a message without a Connection field: the fixed names only.
bool is_hop_by_hop_name(std::string_view name) noexcept;

}  // namespace gateway::http
