#pragma once
// Compression middleware. Requests with Content-Encoding gzip, x-gzip or
// deflate are decompressed once, before the rest of the chain, into a
// buffer owned by the request (destroyed with its arena); the header is
// removed so the backend sees the plain body (the proxy recomputes
// Content-Length). The decompressed size is capped at the body limit:
// crossing it stops zlib at once and answers 413, so a small bomb costs at
// most the limit. Corrupt data: 400. An unknown coding: 415.
#include <cstdint>

#include "gateway/http/handler.hpp"

namespace gateway::middleware {

http::middleware make_request_decompression(std::uint64_t max_body);

}  // namespace gateway::middleware
