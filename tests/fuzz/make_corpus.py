#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets into tests/fuzz/corpus/.

The files are committed; run this again only to change the seeds. A few
small, valid (and some deliberately invalid) inputs per target are enough:
libFuzzer mutates from there. Each file's layout matches its target's
comment (for example chunked_fuzz's two leading control bytes).
"""
import gzip
import os
import shutil
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def gzip_bytes(data: bytes) -> bytes:
    # mtime=0 keeps the output reproducible.
    return gzip.compress(data, compresslevel=6, mtime=0)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


HEAD = {
    "get_simple": b"GET /api/users?id=7 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n",
    "post_content_length": b"POST /api/orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 13\r\n\r\n{\"qty\": 1234}",
    "post_chunked": b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    "chunked_expect_continue": b"PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
    "http10_keep_alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "absolute_form": b"GET http://backend:8080/a/b?c=d HTTP/1.1\r\nHost: backend:8080\r\n\r\n",
    "options_asterisk": b"\r\nOPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n",
    "smuggle_cl_te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
    "dot_segments": b"GET /api/./a/%2e%2E/.%2e/logs?x=/../y HTTP/1.1\r\nHost: a\r\n\r\n",
    "cl_tab_ows": b"POST /x HTTP/1.2\r\nHost: a\r\nContent-Length: \t3\t\r\n\r\nabc",
}

# chunked_fuzz: byte 0 = cut point (scaled), byte 1 = cap (< 128: none).
CHUNKED = {
    "two_chunks": bytes([128, 0]) + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "extensions_trailer": bytes([40, 0]) + b"4;a=b;c=\"d\"\r\nwiki\r\n0\r\nExpires: never\r\nX-A: b\r\n\r\n",
    "upper_hex_capped": bytes([200, 130]) + b"A\r\n0123456789\r\n0\r\n\r\n",
    "no_crlf_after_data": bytes([10, 0]) + b"3\r\nabcXY\r\n0\r\n\r\n",
    "bare_lf": bytes([90, 0]) + b"3\nabc\n0\n\n",
    "trailing_bytes": bytes([250, 0]) + b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
}

JSON = {
    "object": b'{"name": "gateway", "port": 8080, "tls": false, "tags": ["a", "b"], "ratio": -0.5e-3}',
    "nested": b'[[[{"a": [{"b": {"c": null}}]}]], {}, []]',
    "escapes": b'"tab\\t quote\\" slash\\/ \\u00e9 \\ud83d\\ude00 nul\\u0000 end"',
    "utf8": '{"ключ": "значение", "emoji": "😀", "cjk": "漢字"}'.encode(),
    "numbers": b"[0, -0, 1e2, 1E+2, 1.0, 9223372036854775807, 9223372036854775808, 123456789012345678901234567890]",
    "duplicate_keys": b' \t\r\n{"a": 1, "a": 2}\n',
    "scalar": b"true",
}

TEXT = b'{"users": [{"id": 1, "name": "alice"}, {"id": 2, "name": "bob"}]}\n' * 8
GZIP = {
    "gzip_json": bytes([0]) + gzip_bytes(TEXT),
    "x_gzip_two_members": bytes([1]) + gzip_bytes(b"first\n") + gzip_bytes(b"second\n"),
    "deflate_zlib": bytes([2]) + zlib.compress(TEXT, 6),
    "deflate_raw": bytes([2]) + raw_deflate(TEXT),
    "gzip_bomb_small": bytes([3]) + gzip_bytes(b"\0" * (200 * 1024)),
    "gzip_truncated": bytes([0]) + gzip_bytes(TEXT)[:-6],
    "round_trip_text": bytes([5]) + b"line one\nline two\n\nafter a flush\n",
    "round_trip_level9": bytes([5 | (10 << 3)]) + TEXT,
}

# response_head_fuzz: byte 0 = bit 0 HEAD request, bits 1-7 cut point.
RESPONSE = {
    "ok_content_length": bytes([128]) + b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    "chunked_trailer": bytes([64]) + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n",
    "continue_then_ok": bytes([200]) + b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi",
    "no_content": bytes([2]) + b"HTTP/1.1 204 No Content\r\nServer: b\r\n\r\n",
    "head_request": bytes([1]) + b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
    "until_close": bytes([100]) + b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>body</html>",
    "extra_after_body": bytes([30]) + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
    "bare_lf_head": bytes([50]) + b"HTTP/1.1 502 Bad Gateway\nContent-Length: 0\n\n",
    "not_modified": bytes([80]) + b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n",
}


def proxy_v2(ver_cmd: int, family: int, payload: bytes) -> bytes:
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    return sig + bytes([ver_cmd, family, len(payload) >> 8, len(payload) & 0xFF]) + payload


INET = bytes([203, 0, 113, 7, 10, 0, 0, 1, 0xC7, 0x38, 0x01, 0xBB])
INET6 = bytes([0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [5] + [0x20, 0x01, 0x0D, 0xB8] + [0] * 11 + [1]) + bytes(
    [0xC7, 0x38, 0x01, 0xBB])

PROXY = {
    "v1_tcp4": b"PROXY TCP4 198.51.100.22 10.0.0.1 35646 80\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "v1_tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n",
    "v1_unknown": b"PROXY UNKNOWN ffff:: ffff:: 1 2\r\nGET",
    "v1_bad_port": b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    "v1_bare_lf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    "v2_inet": proxy_v2(0x21, 0x11, INET) + b"GET / HTTP/1.1\r\n",
    "v2_inet6_tlvs": proxy_v2(0x21, 0x21, INET6 + bytes([0x01, 0x00, 0x02]) + b"h2" + bytes([0x04, 0x00, 0x01, 0])),
    "v2_local": proxy_v2(0x20, 0x00, b""),
    "v2_unix": proxy_v2(0x21, 0x31, bytes(216)),
    "v2_short_tlv": proxy_v2(0x21, 0x11, INET + bytes([0x01, 0x00])),
    "plain_http": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
}


def write(target: str, files: dict) -> None:
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("head_fuzz", HEAD)
    write("chunked_fuzz", CHUNKED)
    write("json_fuzz", JSON)
    write("gzip_fuzz", GZIP)
    write("response_head_fuzz", RESPONSE)
    write("proxy_header_fuzz", PROXY)
