#include "gateway/http/negotiation.hpp"

#include <catch2/catch.hpp>

#include <string_view>

using namespace gateway;

namespace {

constexpr std::size_t none = static_cast<std::size_t>(-1);
// The offers of /metrics, JSON first.
constexpr std::string_view metrics_offers[] = {"application/json", "text/plain", "application/openmetrics-text"};

std::size_t pick(std::string_view accept) { return http::preferred_media_type(accept, metrics_offers); }

}  // namespace

TEST_CASE("parse_qvalue reads RFC 9110 qvalues in thousandths and refuses the rest", "[unit][http][negotiation]") {
  CHECK(http::parse_qvalue("1") == 1000);
  CHECK(http::parse_qvalue("1.000") == 1000);
  CHECK(http::parse_qvalue("0") == 0);
  CHECK(http::parse_qvalue("0.5") == 500);
  CHECK(http::parse_qvalue("0.125") == 125);
  CHECK(http::parse_qvalue("0.001") == 1);
  CHECK(http::parse_qvalue("1.5") == -1);
  CHECK(http::parse_qvalue("0.1234") == -1);
  CHECK(http::parse_qvalue("2") == -1);
  CHECK(http::parse_qvalue("") == -1);
  CHECK(http::parse_qvalue(".5") == -1);
  CHECK(http::parse_qvalue("0,5") == -1);
}

TEST_CASE("preferred_media_type honours weights, then the order of the field, then the order of the offers",
          "[unit][http][negotiation]") {
  // Browser libraries' default (axios, Angular): JSON listed first wins the tie.
  CHECK(pick("application/json, text/plain, */*") == 0);
  CHECK(pick("text/plain, application/json") == 1);
  CHECK(pick("application/json;q=1, text/plain;q=0.1") == 0);
  CHECK(pick("text/plain;q=0.9, application/json;q=0.8") == 1);
  // text/plain refused and nothing else acceptable.
  CHECK(pick("text/plain;q=0") == none);
  CHECK(pick("image/png") == none);
  // "*/*" alone, or no field at all: the first offer.
  CHECK(pick("*/*") == 0);
  CHECK(pick("") == 0);
  CHECK(pick("  ") == 0);
  // Prometheus' own scrape header.
  CHECK(pick("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
             "text/plain;version=0.0.4;q=0.5,*/*;q=0.1") == 2);
  CHECK(pick("text/plain;version=0.0.4") == 1);
  // The most specific range decides, whatever its place.
  CHECK(pick("*/*;q=0.1, text/plain") == 1);
  CHECK(pick("text/*, application/json;q=0.5") == 1);
  CHECK(pick("*/*, application/json;q=0") == 1);
  CHECK(pick("application/*;q=0.2, application/json;q=0.9, text/plain;q=0.5") == 0);
  // Case-insensitive names, whitespace around elements and parameters.
  CHECK(pick("TEXT/Plain ; Q=0.7 ,  Application/JSON ; q=0.6") == 1);
  // An element with a broken weight is ignored; so is one that is not a media range.
  CHECK(pick("text/plain;q=2, application/json;q=0.1") == 0);
  CHECK(pick("plain, application/json") == 0);
  CHECK(pick(",,text/plain,") == 1);
  // No offers, nothing to choose.
  CHECK(http::preferred_media_type("*/*", {}) == none);
}
