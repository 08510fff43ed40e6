#pragma once
// Compression middleware: two layers.
#include <cstdint>

#include "gateway/http/layer.hpp"

namespace gateway::middleware {

// A route layer, after the route's rate limit and auth and before the
// layers that read the body (validation, the proxy), so that a request
// refused by them costs no decompression. Requests with Content-Encoding
// gzip, x-gzip or deflate are decompressed once into a buffer owned by the
// request (destroyed with its arena); the header is removed so the backend
// sees the plain body (the proxy recomputes Content-Length). The
// decompressed size is capped at `max_body`: crossing it stops zlib at once
// and answers 413, so a small bomb costs at most the limit. Corrupt data:
// 400. An unknown coding or a list of codings: 415. The decoded bytes are
// taken from the request's share of --body-budget (its context's
// body_budget, when a connection serves it) as the output grows, and given
// back with the rest of the request's bytes when the request is over and
// its arena freed; a refusal answers 503 with Retry-After, as a raw body
// over the budget gets.
http::layer_ptr make_request_decoding(std::uint64_t max_body);

// An outer layer (--compress-responses on) that gzips responses on the way
// out when the client accepts gzip (RFC 9110 section 12.5.3, every
// Accept-Encoding line read; q=0 refuses), the response is not already
// encoded, Cache-Control does not say no-transform, its type is
// compressible and its body is at least 256 bytes (a streamed body's
// Content-Length counts; one of unknown length is compressed). Buffered
// bodies are compressed at once; streamed (proxied) bodies are compressed
// piece by piece, each piece flushed so the client is never kept waiting,
// and re-framed as chunked. A gzipped response gets Accept-Encoding in its
// Vary, a weak ETag in place of a strong one, and no Accept-Ranges.
http::layer_ptr make_response_compression();

}  // namespace gateway::middleware
