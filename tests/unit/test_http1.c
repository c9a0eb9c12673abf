/* Unit tests for the backend response reader (http1.c): heads, interim responses, chunked bodies. */
#include <stdio.h>
#include <string.h>

#include "http1.h"

#include "check.h"

static void test_complete_head(void)
{
    const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: Ceph-Dashboard\r\n\r\nhello";
    struct http1_response res;
    int len = http1_parse_response(resp, sizeof(resp) - 1, &res);
    CHECK(len == (int)(sizeof(resp) - 1 - 5));
    CHECK(res.status == 200);
    CHECK(res.minor_version == 1);
    CHECK(res.num_headers == 2);
    CHECK(res.headers[1].value_len == 14 && memcmp(res.headers[1].value, "Ceph-Dashboard", 14) == 0);
}

static void test_partial_and_invalid_heads(void)
{
    const char partial[] = "HTTP/1.1 200 OK\r\nContent-Le";
    struct http1_response res;
    CHECK(http1_parse_response(partial, sizeof(partial) - 1, &res) == -2);
    const char garbage[] = "SSH-2.0-OpenSSH\r\n\r\n";
    CHECK(http1_parse_response(garbage, sizeof(garbage) - 1, &res) == -1);
}

static void test_too_many_headers(void)
{
    char resp[HTTP1_MAX_HEADERS * 8 + 64];
    size_t n = (size_t)sprintf(resp, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i <= HTTP1_MAX_HEADERS; ++i)
        n += (size_t)sprintf(resp + n, "a: b\r\n");
    n += (size_t)sprintf(resp + n, "\r\n");
    struct http1_response res;
    CHECK(http1_parse_response(resp, n, &res) == -1);
}

static void test_chunked_in_pieces(void)
{
    const char body[] = "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    char out[64];
    size_t out_len = 0;
    struct http1_chunked dec;
    memset(&dec, 0, sizeof(dec));
    dec.consume_trailer = 1;
    ssize_t rc = -2;
    /* feed three bytes at a time, as a slow backend would */
    for (size_t off = 0; off < sizeof(body) - 1 && rc == -2; off += 3) {
        char piece[3];
        size_t len = sizeof(body) - 1 - off < 3 ? sizeof(body) - 1 - off : 3;
        memcpy(piece, body + off, len);
        rc = http1_decode_chunked(&dec, piece, &len);
        memcpy(out + out_len, piece, len);
        out_len += len;
    }
    CHECK(rc == 0);
    CHECK(out_len == 11 && memcmp(out, "hello world", 11) == 0);
}

static void test_chunked_errors_and_leftover(void)
{
    char bad[] = "zz\r\nhello\r\n";
    size_t len = sizeof(bad) - 1;
    struct http1_chunked dec;
    memset(&dec, 0, sizeof(dec));
    CHECK(http1_decode_chunked(&dec, bad, &len) == -1);

    char extra[] = "3\r\nabc\r\n0\r\n\r\nHTTP/1.1";
    len = sizeof(extra) - 1;
    memset(&dec, 0, sizeof(dec));
    dec.consume_trailer = 1;
    CHECK(http1_decode_chunked(&dec, extra, &len) == 8); /* bytes after the body: not ours */
    CHECK(len == 3 && memcmp(extra, "abc", 3) == 0);
}

int main(void)
{
    test_complete_head();
    test_partial_and_invalid_heads();
    test_too_many_headers();
    test_chunked_in_pieces();
    test_chunked_errors_and_leftover();
    return check_summary();
}
