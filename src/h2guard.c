#include <netdb.h>
#include <stdlib.h>
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
    uint32_t reset_budget;
    uint32_t opened; /* client streams opened since watching began (plus those open then) */
    uint32_t reset;  /* client streams the client reset while they were still open */
};

#define FRAME_HEADER_SIZE 9

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
    return (int64_t)g->reset - finished > (int64_t)g->reset_budget;
}

/* Looks at one whole frame before libh2o handles it: counts new client streams and resets of
 * open ones. Returns 0, or an HTTP/2 error that ends the connection. Frames still incomplete are
 * left alone: libh2o will present them again once they are whole. */
static int inspect_frame(h2o_http2_conn_t *conn, struct h2guard_conn *g, const uint8_t *src, size_t len,
                         const char **err_desc)
{
    if (len < FRAME_HEADER_SIZE)
        return 0;
    size_t length = (size_t)src[0] << 16 | (size_t)src[1] << 8 | src[2];
    uint8_t type = src[3];
    uint32_t stream_id = ((uint32_t)src[5] << 24 | (uint32_t)src[6] << 16 | (uint32_t)src[7] << 8 | src[8]) & 0x7fffffff;
    if (len < FRAME_HEADER_SIZE + length || stream_id % 2 == 0)
        return 0;
    if (type == H2O_HTTP2_FRAME_TYPE_HEADERS && stream_id > conn->pull_stream_ids.max_open) {
        ++g->opened;
    } else if (type == H2O_HTTP2_FRAME_TYPE_RST_STREAM && h2o_http2_conn_get_stream(conn, stream_id) != NULL) {
        if (count_reset(conn, g)) {
            char peer[NI_MAXHOST] = "?";
            struct sockaddr_storage ss;
            socklen_t sslen = conn->super.callbacks->get_peername(&conn->super, (void *)&ss);
            if (sslen != 0)
                h2o_socket_getnumerichost((void *)&ss, sslen, peer);
            log_warn("h2guard", "client %s reset %u of its %u streams (limits.stream_resets: %u); closing the connection with "
                     "GOAWAY (ENHANCE_YOUR_CALM)", peer, g->reset, g->opened, g->reset_budget);
            *err_desc = "too many streams reset (limits.stream_resets)";
            return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
        }
    }
    return 0;
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
    if (conn->_read_expect != read_frame_guarded) {
        g->libh2o_read = conn->_read_expect;
        conn->_read_expect = read_frame_guarded;
    }
    return ret;
}

/* Starts (or keeps) h2guard in front of libh2o's frame reader for conn. */
static void watch_conn(h2o_http2_conn_t *conn, uint32_t reset_budget)
{
    if (conn->sock == NULL)
        return;
    struct h2guard_conn *g = guard_of(conn);
    if (g == NULL) {
        if (conn->sock->on_close.cb != NULL)
            return; /* not a socket libh2o left to us */
        g = h2o_mem_alloc(sizeof(*g));
        *g = (struct h2guard_conn){.reset_budget = reset_budget, .opened = conn->num_streams.pull.open};
        conn->sock->on_close.cb = free_guard;
        conn->sock->on_close.data = g;
    }
    /* a handler may run while libh2o has put its own reader back (inside a CONTINUATION sequence) */
    if (conn->_read_expect != read_frame_guarded) {
        g->libh2o_read = conn->_read_expect;
        conn->_read_expect = read_frame_guarded;
    }
}

void h2guard_watch(h2o_req_t *req, uint32_t reset_budget)
{
    if (req->version >= 0x200)
        watch_conn((h2o_http2_conn_t *)req->conn, reset_budget);
}

void h2guard_watch_new_connections(h2o_context_t *ctx, uint32_t reset_budget)
{
    /* libh2o appends each connection it creates to the list's tail */
    for (h2o_linklist_t *node = ctx->http2._conns.prev; node != &ctx->http2._conns; node = node->prev) {
        h2o_http2_conn_t *conn = H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, node);
        if (conn->sock != NULL && guard_of(conn) != NULL)
            break;
        watch_conn(conn, reset_budget);
    }
}
