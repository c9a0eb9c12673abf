#include <string.h>

#include "http1.h"

/* ABI of picohttpparser as exported by libh2o 0.13.5 (deps/picohttpparser at h2o v2.2.5). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};
int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

_Static_assert(sizeof(struct http1_header) == sizeof(struct phr_header), "http1_header mirrors phr_header");
_Static_assert(sizeof(struct http1_chunked) == sizeof(struct phr_chunked_decoder), "http1_chunked mirrors the decoder");

int http1_parse_response(const char *buf, size_t len, struct http1_response *res)
{
    res->num_headers = HTTP1_MAX_HEADERS;
    return phr_parse_response(buf, len, &res->minor_version, &res->status, &res->reason, &res->reason_len,
                              (struct phr_header *)res->headers, &res->num_headers, 0);
}

ssize_t http1_decode_chunked(struct http1_chunked *dec, char *buf, size_t *len)
{
    return phr_decode_chunked((struct phr_chunked_decoder *)dec, buf, len);
}
