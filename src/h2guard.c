#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#include "h2guard.h"
#include "log.h"

typedef ssize_t (*frame_reader_t)(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);

/* One per watched connection; freed with its socket (on_close, which libh2o leaves unused for
 * server connections). */
struct h2guard_conn {
    frame_reader_t libh2o_read; /* the library's reader for the connection's current state */
    struct h2guard_limits limits;
    uint32_t opened; /* client streams opened since watching began (plus those open then) */
    uint32_t reset;  /* client streams the client reset while they were still open */
};

static ssize_t read_frame_guarded(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);

static void free_guard(void *data)
{
    free(data);
}

static struct h2guard_conn *guard_of(h2o_http2_conn_t *conn)
{
    return conn->sock->on_close.cb == free_guard ? conn->sock->on_close.data : NULL;
}

/* Counts a reset of an open stream; returns whether the client has now cancelled too many more
 * streams than it let finish. A stream has finished when it was neither reset by the client nor
 * is still open; the one being reset is still among the open ones. */
static int count_reset(h2o_http2_conn_t *conn, struct h2guard_conn *g)
{
    int64_t finished = (int64_t)g->opened - g->reset - conn->num_streams.pull.open;
    ++g->reset;
    return (int64_t)g->reset - finished > (int64_t)g->limits.reset_budget;
}

/* An HPACK integer with an N-bit prefix (RFC 7541 5.1); returns 0, or -1 if it runs past end or
 * needs more than five continuation bytes (no real length or index does). */
static int hpack_read_int(const uint8_t **p, const uint8_t *end, unsigned prefix_bits, uint64_t *value)
{
    if (*p == end)
        return -1;
    uint64_t max_prefix = (1u << prefix_bits) - 1, v = *(*p)++ & max_prefix;
    if (v < max_prefix) {
        *value = v;
        return 0;
    }
    for (unsigned shift = 0; shift <= 28; shift += 7) {
        if (*p == end)
            return -1;
        uint8_t b = *(*p)++;
        v += (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *value = v;
            return 0;
        }
    }
    return -1;
}

/* Steps over an HPACK string literal (length, then that many bytes, Huffman or not). */
static int hpack_skip_string(const uint8_t **p, const uint8_t *end)
{
    uint64_t len;
    if (hpack_read_int(p, end, 7, &len) != 0 || len > (uint64_t)(end - *p))
        return -1;
    *p += len;
    return 0;
}

size_t h2guard_count_header_fields(const uint8_t *block, size_t len, size_t max)
{
    const uint8_t *p = block, *end = block + len;
    size_t fields = 0;
    uint64_t index;
    while (p != end && fields <= max) {
        uint8_t first = *p;
        if (first & 0x80) { /* indexed field */
            if (hpack_read_int(&p, end, 7, &index) != 0)
                break;
            ++fields;
        } else if ((first & 0xe0) == 0x20) { /* dynamic table size update: no field */
            if (hpack_read_int(&p, end, 5, &index) != 0)
                break;
        } else { /* literal, with (01) or without (0000, 0001) indexing: name by index or as a string, then value */
            if (hpack_read_int(&p, end, (first & 0x40) ? 6 : 4, &index) != 0 || (index == 0 && hpack_skip_string(&p, end) != 0) ||
                hpack_skip_string(&p, end) != 0)
                break;
            ++fields;
        }
    }
    return fields;
}

/* The header block that a frame with END_HEADERS completes, counted. A HEADERS frame carries it
 * whole (after padding and priority); a CONTINUATION frame ends the block libh2o has buffered, so
 * both parts are joined (rare: a request's headers fit one 16 KB frame). */
static size_t count_fields_of_block(h2o_http2_conn_t *conn, uint8_t type, uint8_t flags, const uint8_t *payload, size_t length,
                                    size_t max)
{
    if (type == H2O_HTTP2_FRAME_TYPE_HEADERS) {
        size_t start = 0, padding = 0;
        if (flags & H2O_HTTP2_FRAME_FLAG_PADDED) {
            if (length == 0)
                return 0;
            padding = payload[0];
            start = 1;
        }
        if (flags & H2O_HTTP2_FRAME_FLAG_PRIORITY)
            start += 5;
        if (start + padding > length)
            return 0; /* malformed: libh2o answers it */
        return h2guard_count_header_fields(payload + start, length - padding - start, max);
    }
    if (conn->_headers_unparsed == NULL)
        return 0;
    size_t buffered = conn->_headers_unparsed->size;
    uint8_t *block = h2o_mem_alloc(buffered + length);
    memcpy(block, conn->_headers_unparsed->bytes, buffered);
    memcpy(block + buffered, payload, length);
    size_t fields = h2guard_count_header_fields(block, buffered + length, max);
    free(block);
    return fields;
}

static void peer_of(h2o_http2_conn_t *conn, char *buf)
{
    struct sockaddr_storage ss;
    socklen_t len = conn->super.callbacks->get_peername(&conn->super, (void *)&ss);
    if (len == 0 || h2o_socket_getnumerichost((void *)&ss, len, buf) == SIZE_MAX)
        strcpy(buf, "?");
}

/* Looks at one whole frame before libh2o handles it: counts new client streams and resets of
 * open ones, and the fields of each header block before libh2o decodes it. Returns 0, or an
 * HTTP/2 error that ends the connection. Frames still incomplete are left alone: libh2o will
 * present them again once they are whole. */
static int inspect_frame(h2o_http2_conn_t *conn, struct h2guard_conn *g, const uint8_t *src, size_t len,
                         const char **err_desc)
{
    if (len < H2O_HTTP2_FRAME_HEADER_SIZE)
        return 0;
    size_t length = (size_t)src[0] << 16 | (size_t)src[1] << 8 | src[2];
    uint8_t type = src[3], flags = src[4];
    uint32_t stream_id = ((uint32_t)src[5] << 24 | (uint32_t)src[6] << 16 | (uint32_t)src[7] << 8 | src[8]) & 0x7fffffff;
    if (len < H2O_HTTP2_FRAME_HEADER_SIZE + length || stream_id % 2 == 0)
        return 0;
    char peer[NI_MAXHOST];
    if ((type == H2O_HTTP2_FRAME_TYPE_HEADERS || type == H2O_HTTP2_FRAME_TYPE_CONTINUATION) &&
        (flags & H2O_HTTP2_FRAME_FLAG_END_HEADERS) != 0 &&
        count_fields_of_block(conn, type, flags, src + H2O_HTTP2_FRAME_HEADER_SIZE, length, g->limits.max_fields) > g->limits.max_fields) {
        peer_of(conn, peer);
        log_warn("h2guard", "client %s sent a header block of more than %u fields (limits.header_count); closing the connection "
                 "with GOAWAY (ENHANCE_YOUR_CALM)", peer, g->limits.max_fields);
        *err_desc = "too many header fields (limits.header_count)";
        return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
    }
    if (type == H2O_HTTP2_FRAME_TYPE_HEADERS && stream_id > conn->pull_stream_ids.max_open) {
        ++g->opened;
    } else if (type == H2O_HTTP2_FRAME_TYPE_RST_STREAM && h2o_http2_conn_get_stream(conn, stream_id) != NULL &&
               count_reset(conn, g)) {
        peer_of(conn, peer);
        log_warn("h2guard", "client %s reset %u of its %u streams (limits.stream_resets: %u); closing the connection with "
                 "GOAWAY (ENHANCE_YOUR_CALM)", peer, g->reset, g->opened, g->limits.reset_budget);
        *err_desc = "too many streams reset (limits.stream_resets)";
        return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
    }
    return 0;
}

/* Whatever reader libh2o has just set for the connection becomes the one h2guard hands frames
 * to, and h2guard's own goes back in front of it. */
static void stay_in_front(h2o_http2_conn_t *conn, struct h2guard_conn *g)
{
    if (conn->_read_expect != read_frame_guarded) {
        g->libh2o_read = conn->_read_expect;
        conn->_read_expect = read_frame_guarded;
    }
}

/* Stands in front of libh2o's frame reader: inspects the frame, hands it on, and takes the
 * library's next reader (libh2o switches readers for CONTINUATION frames) while staying in front. */
static ssize_t read_frame_guarded(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc)
{
    struct h2guard_conn *g = guard_of(conn);
    int err = inspect_frame(conn, g, src, len, err_desc);
    if (err != 0)
        return err;
    ssize_t ret = g->libh2o_read(conn, src, len, err_desc);
    stay_in_front(conn, g);
    return ret;
}

/* Starts (or keeps) h2guard in front of libh2o's frame reader for conn. */
static void watch_conn(h2o_http2_conn_t *conn, const struct h2guard_limits *limits)
{
    if (conn->sock == NULL)
        return;
    struct h2guard_conn *g = guard_of(conn);
    if (g == NULL) {
        if (conn->sock->on_close.cb != NULL)
            return; /* not a socket libh2o left to us */
        g = h2o_mem_alloc(sizeof(*g));
        *g = (struct h2guard_conn){.limits = *limits, .opened = conn->num_streams.pull.open};
        conn->sock->on_close.cb = free_guard;
        conn->sock->on_close.data = g;
    }
    /* a handler may run while libh2o has put its own reader back (inside a CONTINUATION sequence) */
    stay_in_front(conn, g);
}

void h2guard_watch(h2o_req_t *req, const struct h2guard_limits *limits)
{
    if (req->version >= 0x200)
        watch_conn((h2o_http2_conn_t *)req->conn, limits);
}

void h2guard_watch_new_connections(h2o_context_t *ctx, const struct h2guard_limits *limits)
{
    /* libh2o appends each connection it creates to the list's tail */
    for (h2o_linklist_t *node = ctx->http2._conns.prev; node != &ctx->http2._conns; node = node->prev) {
        h2o_http2_conn_t *conn = H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, node);
        if (conn->sock != NULL && guard_of(conn) != NULL)
            break;
        watch_conn(conn, limits);
    }
}
