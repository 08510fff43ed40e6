#pragma once
// base64url (RFC 4648 section 5) as JOSE uses it (RFC 7515 section 2): no
// padding, no whitespace, no characters outside the url-safe alphabet. The
// unused low bits of the last character must be zero, so that every byte
// string has exactly one accepted encoding (a token's signature cannot be
// re-spelled). Used by the JWT verifier and the JWK Set reader.
#include <string>
#include <string_view>

namespace gateway::core {

// Decodes `in` into `out` (replaced); false, with `out` unspecified, for
// anything but the canonical unpadded encoding.
bool base64url_decode(std::string_view in, std::string& out);

// The canonical unpadded encoding of `in`.
std::string base64url_encode(std::string_view in);

}  // namespace gateway::core
