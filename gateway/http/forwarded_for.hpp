#pragma once
// The client behind trusted proxies, from X-Forwarded-For (the de facto
// list each proxy appends its peer's address to; RFC 7239 section 5.2
// describes its successor's "for"). Only a proxy we trust can tell us who
// its client was, and only the entries a trusted proxy appended can be
// believed: the client is the right-most entry that is not itself a trusted
// proxy (what nginx's real_ip_recursive and HAProxy's and Envoy's
// trusted-hops walks pick).
//
//   peer not trusted             the peer (the header is ignored)
//   walk right to left           skip trusted entries; the first untrusted
//                                one is the client
//   every entry trusted          the left-most entry
//   a malformed entry            stop: the last good entry to its right, or
//                                the peer when there is none
//
// Entries are bare IPv4 or IPv6 addresses with optional whitespace (no
// ports, brackets or "unknown"); empty list elements are ignored (RFC 9110
// section 5.6.1). Several X-Forwarded-For fields are one list, in order.
// Pure: no allocation, any thread.
#include "gateway/core/ip_address.hpp"
#include "gateway/http/header_list.hpp"

namespace gateway::http {

struct forwarded_client {
  core::ip_address address;
  bool from_header = false;  // false: the peer itself
};

forwarded_client client_from_forwarded_for(const header_list& headers, const core::ip_address& peer,
                                           const core::cidr_set& trusted) noexcept;

}  // namespace gateway::http
