#pragma once
// Proactive content negotiation (RFC 9110 section 12): the weights clients
// put on the elements of Accept and Accept-Encoding, and the choice of a
// media type among the ones a handler can produce.
#include <cstddef>
#include <span>
#include <string_view>

namespace gateway::http {

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) (RFC 9110
// section 12.4.2), in thousandths; -1 if invalid.
int parse_qvalue(std::string_view v) noexcept;

// The weight of one list element of Accept or Accept-Encoding, given what
// follows its first ';' (its parameters, empty when it has none): the q
// parameter's value in thousandths, 1000 without one, -1 if it is invalid.
int element_weight(std::string_view params) noexcept;

// The media type, of `offers` ("type/subtype" each), that an Accept field
// value (RFC 9110 section 12.5.1) prefers, as its index. Each offer takes
// the weight of the most specific media range that matches it
// ("type/subtype" over "type/*" over "*/*"; names case-insensitive;
// parameters other than q are ignored); the highest weight wins; a tie goes
// to the offer whose range comes first in the field, then to the earlier
// offer. Elements with an invalid qvalue are ignored. npos when no offer
// has a weight above 0. An empty field value accepts anything: 0. Commas
// inside quoted parameter values are not understood (no media type we
// offer is chosen by such a parameter).
std::size_t preferred_media_type(std::string_view accept, std::span<const std::string_view> offers) noexcept;

}  // namespace gateway::http
