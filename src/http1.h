/*
 * http1: reading HTTP/1.1 responses from a backend.
 *
 * libh2o 0.13.5 links picohttpparser and exports it, but Debian does not install its header; the
 * declarations live in http1.c, pinned by meson.build to exactly that library version. This
 * module is the only place that knows about them.
 */
#ifndef H2FRONT_HTTP1_H
#define H2FRONT_HTTP1_H

#include <stddef.h>
#include <sys/types.h>

#define HTTP1_MAX_HEADERS 128

struct http1_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct http1_response {
    int minor_version;
    int status;
    const char *reason;
    size_t reason_len;
    struct http1_header headers[HTTP1_MAX_HEADERS];
    size_t num_headers;
};

/* Parses a response head at the start of buf. Returns its length in bytes, -2 when more bytes
 * are needed, or -1 when the bytes are not an HTTP/1.x response (or carry too many headers). */
int http1_parse_response(const char *buf, size_t len, struct http1_response *res);

/* State of a chunked body being decoded. Zero it to start. */
struct http1_chunked {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char hex_count_;
    char state_;
};

/* Decodes chunked framing in place: on return buf[0..*len) holds the payload bytes found.
 * Returns -2 when the body continues, -1 on a framing error, or, once the last chunk and the
 * trailers are complete, the number of bytes that followed them (left undecoded at buf+*len). */
ssize_t http1_decode_chunked(struct http1_chunked *dec, char *buf, size_t *len);

#endif
