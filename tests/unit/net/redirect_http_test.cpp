#include "gateway/net/redirect_http.hpp"

#include <catch2/catch.hpp>

using gateway::net::redirect_response;

TEST_CASE("redirect_response answers 308 to the same host and target over https", "[unit][net]") {
  CHECK(redirect_response("GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", 443) ==
        "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://example.com/a/b?x=1\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n");
  CHECK(redirect_response("POST / HTTP/1.1\r\nhost:  example.com:8080 \r\n\r\n", 8443).find(
            "Location: https://example.com:8443/\r\n") != std::string::npos);
  CHECK(redirect_response("GET /x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 9443).find(
            "Location: https://[::1]:9443/x\r\n") != std::string::npos);
}

TEST_CASE("redirect_response refuses a missing, doubled or malformed Host and a target not in origin form",
          "[unit][net]") {
  for (std::string_view head : {"GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                                "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
                                "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "GET\r\n\r\n",
                                "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"}) {
    INFO(head);
    CHECK(redirect_response(head, 443).rfind("HTTP/1.1 400 ", 0) == 0);
  }
}
