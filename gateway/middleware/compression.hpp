#pragma once
// Compression middleware. Requests with Content-Encoding gzip, x-gzip or
// deflate are decompressed once, before the rest of the chain, into a
// buffer owned by the request (destroyed with its arena); the header is
// removed so the backend sees the plain body (the proxy recomputes
// Content-Length). The decompressed size is capped at the body limit:
// crossing it stops zlib at once and answers 413, so a small bomb costs at
// most the limit. Corrupt data: 400. An unknown coding: 415.
#include <cstdint>

#include "gateway/http/layer.hpp"

namespace gateway::middleware {

// With `compress_responses`, the same layer also gzips responses on the way
// out when the client accepts gzip (RFC 9110 section 12.5.3), the response
// is not already encoded, its type is compressible and it has a body of at
// least 256 bytes. Buffered bodies are compressed at once; streamed
// (proxied) bodies are compressed piece by piece, each piece flushed so the
// client is never kept waiting, and re-framed as chunked.
http::layer_ptr make_compression(std::uint64_t max_body, bool compress_responses = false);

}  // namespace gateway::middleware
