#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/tunnel.h>

#include "forward.h"
#include "health.h"
#include "front.h"
#include "http1.h"
#include "log.h"
#include "proxy.h"
#include "timeouts.h"

/* A response head larger than this is not a dashboard answer. */
#define MAX_RESPONSE_HEAD (64 * 1024)

struct proxy_handler {
    h2o_handler_t super;
    struct proxy **proxy;
};

/* One request forwarded to a backend; lives in the request's pool and dies with it. */
struct exchange {
    h2o_generator_t super; /* first: h2o hands it back to proceed/stop */
    h2o_req_t *req;
    struct proxy *proxy;
    struct upstream_request ureq;
    struct upstream_conn *conn; /* owned between acquire and release */
    h2o_iovec_t head;           /* the request head for the backend */
    h2o_timeout_entry_t backend_timer;
    h2o_timeout_entry_t stall_timer;
    h2o_timeout_entry_t hold_timer;
    const char *last_error; /* the failure that made the last attempt go again */
    struct forward_framing framing;
    struct http1_chunked chunked;
    size_t body_left;
    h2o_buffer_t *pending;  /* body bytes read from the backend, not yet handed to the client */
    h2o_buffer_t *inflight; /* body bytes handed to h2o_send, until proceed */
    unsigned websocket : 1;
    unsigned got_byte : 1;     /* the backend sent something for this exchange: no retry past this */
    unsigned started : 1;      /* h2o_start_response was called */
    unsigned backend_done : 1; /* the whole body was read */
    unsigned backend_failed : 1;
    unsigned sending : 1;   /* an h2o_send awaits its proceed */
    unsigned read_paused : 1;
    unsigned finished : 1; /* the last h2o_send (final or error) was made */
    unsigned holding : 1;  /* a small answer read whole before the client sees it (see should_hold) */
    unsigned request_sent : 1; /* the whole request reached the backend's socket */
    unsigned head_parsed : 1;  /* framing, body_left and chunked describe the response being read */
    unsigned no_retry : 1; /* a timeout: a slow backend is not a stale or dying one */
    unsigned attempts; /* tries beyond the first: connect failures, stale connections, dying or standby backends */
};

/* A dying mgr can fail a request several ways before health marks it down (connect refused,
 * accepted then reset); an attempt per failure that health needs to see, plus the one that
 * reaches the new active mgr. */
static unsigned max_attempts(struct exchange *ex)
{
    return ex->proxy->cfg->health_check.fall + 2;
}

static void start_exchange(struct exchange *ex, int flags);
static void on_body_read(h2o_socket_t *sock, const char *err);
static void flush_to_client(struct exchange *ex);
static void begin_client_response(struct exchange *ex);

/* Response bodies travel in buffers of this prototype: the backend socket reads into one (up to
 * 64 KiB per read instead of the 8 KiB of libh2o's socket buffers), it becomes the pending body
 * without a copy when nothing is pending (take_body_bytes), and freed ones are recycled. */
static h2o_buffer_prototype_t body_buffer_prototype = {{16}, {64 * 1024}, NULL};

static void buffer_append(h2o_buffer_t **buf, const char *src, size_t len)
{
    if (len == 0)
        return;
    h2o_iovec_t dst = h2o_buffer_reserve(buf, len);
    memcpy(dst.base, src, len);
    (*buf)->size += len;
}

static struct upstream_backend *backend_of(struct exchange *ex)
{
    return ex->ureq.backend;
}

static void set_backend_timer(struct exchange *ex, h2o_timeout_t *timeout)
{
    if (h2o_timeout_is_linked(&ex->backend_timer))
        h2o_timeout_unlink(&ex->backend_timer);
    if (timeout != NULL)
        h2o_timeout_link(ex->proxy->ctx->loop, timeout, &ex->backend_timer);
}

/* Ends the exchange's claim on its backend connection. */
static void release_conn(struct exchange *ex, int reusable)
{
    set_backend_timer(ex, NULL);
    if (ex->conn != NULL) {
        struct upstream_conn *conn = ex->conn;
        ex->conn = NULL;
        upstream_release(conn, reusable);
    }
}

static void add_header_lit(h2o_req_t *req, const h2o_token_t *token, const char *value)
{
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, value, strlen(value));
}

/* "http://a:8443 (down: connection refused); http://b:8443 (standby: ...)": what an operator needs
 * to read on an error page when no backend could take the request. */
static size_t describe_backends(struct upstream *up, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i != up->num_backends && n < size; ++i) {
        const struct upstream_backend *b = &up->backends[i];
        n += (size_t)snprintf(buf + n, size - n, "%s  %s: %s (%s)\n", i == 0 ? "\n" : "", b->conf->url,
                              upstream_state_name(b->state), b->state_reason[0] != '\0' ? b->state_reason : "not probed yet");
    }
    return n;
}

/* Answers the client when no usable response came from the backend: says which backend, what
 * happened, and (503) when to try again. */
static void send_gateway_error(struct exchange *ex, int status, const char *what)
{
    h2o_req_t *req = ex->req;
    static const char *const reasons[] = {[2] = "Bad Gateway", [3] = "Service Unavailable", [4] = "Gateway Timeout"};
    size_t size = 2048;
    char *body = h2o_mem_alloc_pool(&req->pool, size);
    const char *url = backend_of(ex) != NULL ? backend_of(ex)->conf->url : NULL;
    int n = url != NULL ? snprintf(body, size, "h2front: %d %s: backend %s: %s\n", status, reasons[status - 500], url, what)
                        : snprintf(body, size, "h2front: %d %s: %s; backends:", status, reasons[status - 500], what);
    if (url == NULL)
        describe_backends(ex->proxy->upstream, body + n, size - (size_t)n);
    log_warn("proxy", "%.*s %.*s -> %d: %s%s%s", (int)req->method.len, req->method.base, (int)req->path.len, req->path.base,
             status, url != NULL ? url : "", url != NULL ? ": " : "", what);
    memset(&req->res.headers, 0, sizeof(req->res.headers));
    if (status == 503)
        add_header_lit(req, H2O_TOKEN_RETRY_AFTER, "5");
    add_header_lit(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    forward_add_dashboard_security_headers(req);
    h2o_send_error_generic(req, status, reasons[status - 500], body, H2O_SEND_ERROR_KEEP_HEADERS);
}

/* Picks the status that tells the client the truth about a failed exchange. */
static int status_for_error(const char *err)
{
    if (err == upstream_err_queue_full || err == upstream_err_queue_timeout || err == upstream_err_no_active)
        return 503;
    if (err == upstream_err_connect_timeout)
        return 504;
    return 502;
}

static const char *describe_error(const char *err)
{
    if (err == h2o_socket_error_closed)
        return "the backend closed the connection before answering";
    if (err == h2o_socket_error_io)
        return "I/O error talking to the backend";
    return err;
}

/* Forgets what a failed attempt read, so that the next one starts clean. */
static void reset_for_retry(struct exchange *ex)
{
    memset(&ex->req->res, 0, sizeof(ex->req->res));
    ex->req->res.content_length = SIZE_MAX;
    h2o_buffer_consume(&ex->pending, ex->pending->size);
    memset(&ex->chunked, 0, sizeof(ex->chunked));
    if (h2o_timeout_is_linked(&ex->hold_timer))
        h2o_timeout_unlink(&ex->hold_timer);
    ex->got_byte = ex->holding = ex->backend_done = ex->read_paused = ex->request_sent = ex->head_parsed = 0;
}

/* The backend side failed. Until the client has seen the response begin, an idempotent request
 * goes again on a fresh connection (the stale keep-alive race, or a mgr dying under it: the retry
 * then waits for the new active one), a bounded number of times; others get 502 when a reused
 * connection had simply gone stale, 503 with Retry-After when the backend itself failed. */
static void on_backend_failure(struct exchange *ex, const char *err, int status)
{
    int was_reused = ex->conn != NULL && ex->conn->served != 0;
    int stale_race = was_reused && !ex->got_byte;
    release_conn(ex, 0);
    /* a timeout is left to the probes: a slow API call must not take a busy mgr out of service */
    if (!stale_race && !ex->no_retry)
        health_report(ex->proxy->health, backend_of(ex), UPSTREAM_DOWN, describe_error(err));
    if (ex->started) {
        ex->backend_failed = 1;
        ex->backend_done = 1;
        log_warn("proxy", "backend %s: response to %.*s cut short: %s", backend_of(ex)->conf->url, (int)ex->req->path.len,
                 ex->req->path.base, describe_error(err));
        flush_to_client(ex);
        return;
    }
    if ((!ex->got_byte || ex->holding) && !ex->no_retry && ex->attempts < max_attempts(ex) && forward_is_idempotent(ex->req)) {
        ++ex->attempts;
        ++backend_of(ex)->stats.retries;
        ex->last_error = describe_error(err);
        log_debug("proxy", "retrying %.*s on a fresh connection: %s", (int)ex->req->path.len, ex->req->path.base,
                  describe_error(err));
        reset_for_retry(ex);
        start_exchange(ex, UPSTREAM_FRESH);
        return;
    }
    if (!ex->got_byte && !stale_race)
        status = 503;
    send_gateway_error(ex, status, describe_error(err));
}

/* A standby mgr answered (its backend was active a moment ago: a failover is under way). Its
 * redirect points at an address the browser usually cannot reach, so it never goes out: the
 * request waits for the new active mgr if it may be sent twice, or is refused with a retry hint. */
static void on_standby_answer(struct exchange *ex)
{
    release_conn(ex, 0);
    health_report(ex->proxy->health, backend_of(ex), UPSTREAM_STANDBY, "answers with a standby's redirect");
    h2o_req_t *req = ex->req;
    if (forward_is_idempotent(req) && ex->attempts < max_attempts(ex)) {
        ++ex->attempts;
        reset_for_retry(ex);
        start_exchange(ex, 0);
        return;
    }
    send_gateway_error(ex, 503, "the backend is a standby mgr (failover in progress); retry");
}

/* The standby's answer: a redirect to the active mgr's root URL, whatever was asked. The
 * dashboard itself never redirects elsewhere to a bare "/". */
static int is_standby_redirect(struct exchange *ex, const struct http1_response *res)
{
    if (!(res->status == 301 || res->status == 302 || res->status == 303 || res->status == 307 || res->status == 308))
        return 0;
    for (size_t i = 0; i != res->num_headers; ++i) {
        const struct http1_header *h = &res->headers[i];
        if (!h2o_lcstris(h->name, h->name_len, H2O_STRLIT("location")))
            continue;
        h2o_url_t url;
        if (h2o_url_parse(h->value, h->value_len, &url) != 0)
            return 0;
        return url.path.len <= 1 && !(ex->req->path.len == 1 && url.host.len != 0 &&
                                      h2o_lcstris(url.host.base, url.host.len, backend_of(ex)->url.host.base,
                                                  backend_of(ex)->url.host.len) &&
                                      h2o_url_get_port(&url) == h2o_url_get_port(&backend_of(ex)->url));
    }
    return 0;
}

static void on_backend_timeout(h2o_timeout_entry_t *entry)
{
    struct exchange *ex = H2O_STRUCT_FROM_MEMBER(struct exchange, backend_timer, entry);
    const char *what = ex->got_byte ? "no progress within upstream.timeouts.io" : "no answer within upstream.timeouts.first_byte";
    ex->got_byte = 1;
    ex->no_retry = 1; /* a slow backend is not a stale connection: never retry a timeout */
    on_backend_failure(ex, what, 504);
}

/* Hands buffered body bytes to the client, one h2o_send at a time (h2o's back-pressure contract:
 * the next send waits for proceed). */
static void flush_to_client(struct exchange *ex)
{
    if (!ex->started || ex->sending || ex->finished || (ex->pending->size == 0 && !ex->backend_done))
        return;
    h2o_buffer_t *tmp = ex->inflight;
    ex->inflight = ex->pending;
    ex->pending = tmp;
    h2o_iovec_t buf = h2o_iovec_init(ex->inflight->bytes, ex->inflight->size);
    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (ex->backend_done)
        state = ex->backend_failed ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
    if (state != H2O_SEND_STATE_IN_PROGRESS) {
        ex->finished = 1;
    } else {
        ex->sending = 1;
        h2o_timeout_link(ex->proxy->ctx->loop, &ex->proxy->stall_timeout, &ex->stall_timer);
    }
    h2o_send(ex->req, &buf, buf.len != 0 ? 1 : 0, state);
}

/* Resumes reading the backend once the read-ahead buffer has room again. */
static void resume_backend(struct exchange *ex)
{
    if (ex->read_paused && ex->conn != NULL && ex->pending->size < ex->proxy->cfg->upstream.response_buffer) {
        ex->read_paused = 0;
        upstream_conn_read(ex->conn, on_body_read);
    }
}

static void on_client_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    struct exchange *ex = (struct exchange *)generator;
    ex->sending = 0;
    h2o_timeout_unlink(&ex->stall_timer);
    h2o_buffer_consume(&ex->inflight, ex->inflight->size);
    resume_backend(ex);
    flush_to_client(ex);
}

/* The client has not taken the last bytes for front.stall_timeout: give the backend connection
 * back (CherryPy has few threads) and reset the stream. */
static void on_client_stall(h2o_timeout_entry_t *entry)
{
    struct exchange *ex = H2O_STRUCT_FROM_MEMBER(struct exchange, stall_timer, entry);
    log_warn("proxy", "client stalled for front.stall_timeout on %.*s; resetting the stream", (int)ex->req->path.len,
             ex->req->path.base);
    release_conn(ex, 0);
    ex->backend_done = ex->backend_failed = 1;
    front_abort_stream(ex->req);
}

/* Moves the first n bytes of the backend's input to the pending body and drops the rest (bytes
 * after a complete body make the connection unusable; the caller has seen them). When nothing is
 * pending and all of the input is body, the buffers trade places instead of being copied. */
static void take_input(struct exchange *ex, h2o_buffer_t **input, size_t n)
{
    if (ex->pending->size == 0 && n == (*input)->size && n != 0) {
        h2o_buffer_t *empty = ex->pending;
        ex->pending = *input;
        *input = empty;
        return;
    }
    buffer_append(&ex->pending, (*input)->bytes, n);
    h2o_buffer_consume(input, (*input)->size);
}

/* Moves what the backend sent into the read-ahead buffer, undoing its framing. Returns 1 once the
 * body is complete, 0 while it continues, -1 on a framing error. Sets *reusable on completion. */
static int take_body_bytes(struct exchange *ex, h2o_buffer_t **input, int eof, int *reusable)
{
    h2o_buffer_t *in = *input;
    *reusable = 0;
    if (ex->framing.chunked) {
        size_t len = in->size;
        ssize_t rest = http1_decode_chunked(&ex->chunked, in->bytes, &len);
        if (rest == -1)
            return -1;
        buffer_append(&ex->pending, in->bytes, len);
        h2o_buffer_consume(input, in->size);
        *reusable = rest == 0 && ex->framing.keepalive;
        return rest >= 0 ? 1 : eof ? -1 : 0;
    }
    if (ex->framing.content_length != SIZE_MAX) {
        size_t take = in->size < ex->body_left ? in->size : ex->body_left;
        ex->body_left -= take;
        *reusable = ex->body_left == 0 && in->size == take && ex->framing.keepalive;
        take_input(ex, input, take);
        return ex->body_left == 0 ? 1 : eof ? -1 : 0;
    }
    take_input(ex, input, in->size); /* delimited by the backend closing */
    return eof ? 1 : 0;
}

static void process_body(struct exchange *ex, const char *err)
{
    int reusable, rc = take_body_bytes(ex, &ex->conn->sock->input, err != NULL, &reusable);
    if (rc < 0) {
        on_backend_failure(ex, err != NULL ? err : "invalid chunked encoding from the backend", 502);
        return;
    } else if (rc == 1) {
        ex->backend_done = 1;
        release_conn(ex, reusable);
    } else {
        set_backend_timer(ex, &ex->proxy->io_timeout);
        if (ex->pending->size >= ex->proxy->cfg->upstream.response_buffer) {
            ex->read_paused = 1;
            h2o_socket_read_stop(ex->conn->sock);
        }
    }
    if (!ex->started && (ex->backend_done || !ex->holding) && !ex->finished)
        begin_client_response(ex);
    else
        flush_to_client(ex);
}

static void on_body_read(h2o_socket_t *sock, const char *err)
{
    process_body(sock->data, err);
}

/* Sends the response head to the client, with whatever body is already here; the head goes out
 * at once even without a body byte (libh2o 2.2.5's own proxy waits for one). */
static void begin_client_response(struct exchange *ex)
{
    ex->started = 1;
    ex->holding = 0;
    if (h2o_timeout_is_linked(&ex->hold_timer))
        h2o_timeout_unlink(&ex->hold_timer);
    h2o_start_response(ex->req, &ex->super);
    if (ex->backend_done || ex->pending->size != 0) {
        flush_to_client(ex);
        return;
    }
    ex->sending = 1;
    h2o_timeout_link(ex->proxy->ctx->loop, &ex->proxy->stall_timeout, &ex->stall_timer);
    h2o_send(ex->req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
}

/* A small answer of known length (every dashboard API answer) is read whole before the client
 * sees its head, for at most proxy->hold_timeout: should the mgr die mid-answer, the request can
 * still go to the new active one. A body slower than that, a stream or a large body goes out as
 * it comes, head first. */
static void on_hold_timeout(h2o_timeout_entry_t *entry)
{
    struct exchange *ex = H2O_STRUCT_FROM_MEMBER(struct exchange, hold_timer, entry);
    begin_client_response(ex);
}

static int should_hold(struct exchange *ex)
{
    uint64_t limit = ex->proxy->cfg->upstream.response_buffer < 65536 ? ex->proxy->cfg->upstream.response_buffer : 65536;
    return !ex->framing.chunked && ex->framing.content_length <= limit;
}

static void start_response(struct exchange *ex)
{
    health_report(ex->proxy->health, backend_of(ex), UPSTREAM_ACTIVE, "answers requests");
    ex->body_left = ex->framing.content_length;
    ex->chunked.consume_trailer = 1; /* trailers are not forwarded; the connection must end clean */
    if (!ex->framing.has_body) {
        ex->backend_done = 1;
        if (h2o_memis(ex->req->method.base, ex->req->method.len, H2O_STRLIT("HEAD")))
            ex->req->res.content_length = ex->framing.content_length;
        release_conn(ex, ex->framing.keepalive && ex->conn->sock->input->size == 0);
        begin_client_response(ex);
        return;
    }
    ex->holding = should_hold(ex);
    if (ex->holding)
        h2o_timeout_link(ex->proxy->ctx->loop, &ex->proxy->hold_timeout, &ex->hold_timer);
    if (ex->conn->sock->input->bytes == NULL) /* nothing buffered: the next reads go into body-sized buffers */
        h2o_buffer_init(&ex->conn->sock->input, &body_buffer_prototype);
    upstream_conn_read(ex->conn, on_body_read);
    if (ex->conn->sock->input->size != 0 || ex->framing.content_length == 0)
        process_body(ex, NULL);
    else if (!ex->holding)
        begin_client_response(ex);
}

static int is_backend_url(void *ctx, h2o_iovec_t host, uint16_t port)
{
    struct upstream *up = ctx;
    for (size_t i = 0; i != up->num_backends; ++i) {
        const h2o_url_t *u = &up->backends[i].url;
        if (h2o_url_get_port(u) == port && h2o_lcstris(host.base, host.len, u->host.base, u->host.len))
            return 1;
    }
    return 0;
}

/* What the tunnel needs once the client's socket is handed over; the request is gone by then. */
struct tunnel_start {
    h2o_context_t *ctx;
    h2o_timeout_t *timeout;
    h2o_socket_t *backend_sock;
};

static void on_websocket_upgraded(void *data, h2o_socket_t *client_sock, size_t reqsize)
{
    struct tunnel_start *ts = data;
    if (client_sock == NULL) {
        h2o_socket_close(ts->backend_sock);
    } else {
        h2o_buffer_consume(&client_sock->input, reqsize);
        h2o_tunnel_establish(ts->ctx, client_sock, ts->backend_sock, ts->timeout);
    }
    free(ts);
}

/* 101 from the backend to a WebSocket handshake: from here on the two sockets are a tunnel. */
static void start_tunnel(struct exchange *ex)
{
    set_backend_timer(ex, NULL);
    struct tunnel_start *ts = h2o_mem_alloc(sizeof(*ts));
    *ts = (struct tunnel_start){ex->proxy->ctx, &ex->proxy->websocket_timeout, upstream_detach(ex->conn)};
    ex->conn = NULL;
    /* bytes the backend sent after its 101 belong to the tunnel */
    h2o_iovec_t early = h2o_iovec_init(ts->backend_sock->input->bytes, ts->backend_sock->input->size);
    h2o_iovec_t copy = h2o_strdup(&ex->req->pool, early.base, early.len);
    h2o_buffer_consume(&ts->backend_sock->input, early.len);
    h2o_http1_upgrade(ex->req, &copy, copy.len != 0 ? 1 : 0, on_websocket_upgraded, ts);
}

/* Parses the response head; 1xx interim responses other than 101 are skipped. */
static void on_head_read(h2o_socket_t *sock, const char *err)
{
    struct exchange *ex = sock->data;
    if (err != NULL) {
        on_backend_failure(ex, err, 502);
        return;
    }
    ex->got_byte = 1;
    for (;;) {
        struct http1_response res;
        int len = http1_parse_response(sock->input->bytes, sock->input->size, &res);
        if (len == -2 && sock->input->size < MAX_RESPONSE_HEAD)
            return;
        if (len < 0) {
            on_backend_failure(ex, len == -2 ? "response head too large" : "invalid HTTP response from the backend", 502);
            return;
        }
        if (res.status == 101 && ex->websocket) {
            forward_copy_response(ex->req, &res, is_backend_url, ex->proxy->upstream, &ex->framing);
            h2o_buffer_consume(&sock->input, (size_t)len);
            start_tunnel(ex);
            return;
        }
        if (res.status >= 100 && res.status < 200) {
            h2o_buffer_consume(&sock->input, (size_t)len);
            continue;
        }
        if (is_standby_redirect(ex, &res)) {
            on_standby_answer(ex);
            return;
        }
        const char *bad = forward_copy_response(ex->req, &res, is_backend_url, ex->proxy->upstream, &ex->framing);
        h2o_buffer_consume(&sock->input, (size_t)len);
        ex->head_parsed = bad == NULL;
        if (bad != NULL) {
            on_backend_failure(ex, bad, 502);
            return;
        }
        start_response(ex);
        return;
    }
}

static void on_request_written(h2o_socket_t *sock, const char *err)
{
    struct exchange *ex = sock->data;
    if (err != NULL) {
        on_backend_failure(ex, err, 502);
        return;
    }
    ex->request_sent = 1;
    if (!ex->got_byte)
        set_backend_timer(ex, &ex->proxy->first_byte_timeout);
}

/* Drops the first n bytes of bufs, which went out already. */
static size_t skip_written(h2o_iovec_t *bufs, size_t nbufs, size_t n)
{
    size_t i = 0;
    for (; i != nbufs && n >= bufs[i].len; ++i)
        n -= bufs[i].len;
    if (i != nbufs) {
        bufs[i].base += n;
        bufs[i].len -= n;
    }
    memmove(bufs, bufs + i, (nbufs - i) * sizeof(*bufs));
    return nbufs - i;
}

static void send_request(struct exchange *ex)
{
    h2o_socket_t *sock = ex->conn->sock;
    h2o_iovec_t bufs[2] = {ex->head, ex->req->entity};
    size_t nbufs = ex->req->entity.len != 0 ? 2 : 1;
    sock->data = ex;
    set_backend_timer(ex, &ex->proxy->io_timeout);
    nbufs = skip_written(bufs, nbufs, upstream_conn_write_now(ex->conn, bufs, nbufs));
    if (nbufs != 0)
        h2o_socket_write(sock, bufs, nbufs, on_request_written);
    upstream_conn_read(ex->conn, on_head_read);
    if (nbufs == 0)
        on_request_written(sock, NULL); /* all of it went out at once */
}

static int is_connect_error(const char *err)
{
    return !(err == upstream_err_queue_full || err == upstream_err_queue_timeout || err == upstream_err_no_active ||
             err == upstream_err_all_down || err == upstream_err_busy);
}

static void on_connection(struct upstream_request *ureq, struct upstream_conn *conn, const char *err)
{
    struct exchange *ex = H2O_STRUCT_FROM_MEMBER(struct exchange, ureq, ureq);
    if (err == upstream_err_all_down && ex->last_error != NULL) {
        /* the backends went down under this request: report what it met, not just the outcome */
        char *what = h2o_mem_alloc_pool(&ex->req->pool, 256);
        snprintf(what, 256, "%s (now every backend is down)", ex->last_error);
        send_gateway_error(ex, status_for_error(ex->last_error), what);
        return;
    }
    if (err != NULL && is_connect_error(err)) {
        ex->last_error = err;
        /* nothing was sent, so any request may go again: to the same backend until health marks it
         * down (fall), then to the new active one, or it fails once every backend is down */
        health_report(ex->proxy->health, ureq->backend, UPSTREAM_DOWN, err);
        if (ex->attempts++ < max_attempts(ex)) {
            start_exchange(ex, 0);
            return;
        }
    }
    if (err != NULL) {
        send_gateway_error(ex, status_for_error(err), err);
        return;
    }
    ex->conn = conn;
    send_request(ex);
}

static void start_exchange(struct exchange *ex, int flags)
{
    upstream_acquire_active(ex->proxy->upstream, &ex->ureq, on_connection, flags);
}

/* A response nobody waits for any more (the client reset its stream or left), read to its end
 * and thrown away, so that its connection goes back to the pool instead of being closed:
 * CherryPy's threads are few, and a browser closing a tab mid-poll must not make h2front open
 * new connections. Bounded in bytes (upstream.response_buffer) and time (the upstream timeouts). */
struct drain {
    struct upstream_conn *conn;
    struct proxy *proxy;
    h2o_linklist_t link; /* in proxy->drains, so that shutdown can end them */
    h2o_timeout_entry_t timer;
    int head_parsed, is_head, chunked, keepalive;
    size_t body_left; /* SIZE_MAX: not known yet, or until close (then not drained) */
    size_t budget;
    struct http1_chunked decoder;
};

static void end_drain(struct drain *d, int reusable)
{
    h2o_linklist_unlink(&d->link);
    if (h2o_timeout_is_linked(&d->timer))
        h2o_timeout_unlink(&d->timer);
    if (reusable)
        ++d->conn->backend->stats.drained;
    upstream_release(d->conn, reusable);
    free(d);
}

static void on_drain_timeout(h2o_timeout_entry_t *entry)
{
    end_drain(H2O_STRUCT_FROM_MEMBER(struct drain, timer, entry), 0);
}

/* Reads the framing of a response head for draining; returns 0, or -1 when it cannot be drained. */
static int drain_parse_head(struct drain *d, h2o_buffer_t **input)
{
    struct http1_response res;
    int len;
    while ((len = http1_parse_response((*input)->bytes, (*input)->size, &res)) > 0 && res.status >= 100 && res.status < 200) {
        if (res.status == 101)
            return -1;
        h2o_buffer_consume(input, (size_t)len);
    }
    if (len < 0)
        return len == -2 ? 0 : -1;
    d->keepalive = res.minor_version >= 1;
    d->body_left = SIZE_MAX;
    for (size_t i = 0; i != res.num_headers; ++i) {
        const struct http1_header *h = &res.headers[i];
        if (h2o_lcstris(h->name, h->name_len, H2O_STRLIT("content-length")))
            d->body_left = h2o_strtosize(h->value, h->value_len);
        else if (h2o_lcstris(h->name, h->name_len, H2O_STRLIT("transfer-encoding")))
            d->chunked = 1;
        else if (h2o_lcstris(h->name, h->name_len, H2O_STRLIT("connection")))
            d->keepalive = !h2o_contains_token(h->value, h->value_len, H2O_STRLIT("close"), ',');
    }
    if (d->is_head || res.status == 204 || res.status == 304)
        d->body_left = 0, d->chunked = 0;
    if (!d->keepalive || (!d->chunked && d->body_left == SIZE_MAX))
        return -1;
    h2o_buffer_consume(input, (size_t)len);
    d->head_parsed = 1;
    return 0;
}

/* Discards body bytes; returns 1 when the response ended cleanly, 0 while it goes on, -1 if not drainable. */
static int drain_body(struct drain *d, h2o_buffer_t **input)
{
    size_t len = (*input)->size;
    if (len > d->budget)
        return -1;
    d->budget -= len;
    if (d->chunked) {
        ssize_t rest = http1_decode_chunked(&d->decoder, (*input)->bytes, &len);
        h2o_buffer_consume(input, (*input)->size);
        return rest == -2 ? 0 : rest == 0 ? 1 : -1;
    }
    if (len > d->body_left)
        return -1;
    d->body_left -= len;
    h2o_buffer_consume(input, len);
    return d->body_left == 0 ? 1 : 0;
}

static void on_drain_read(h2o_socket_t *sock, const char *err)
{
    struct drain *d = sock->data;
    int rc = 0;
    if (err != NULL)
        rc = -1;
    else if (!d->head_parsed)
        rc = drain_parse_head(d, &sock->input);
    if (rc == 0 && d->head_parsed)
        rc = drain_body(d, &sock->input);
    if (rc != 0) {
        end_drain(d, rc == 1);
        return;
    }
    h2o_timeout_unlink(&d->timer);
    h2o_timeout_link(d->proxy->ctx->loop, d->head_parsed ? &d->proxy->io_timeout : &d->proxy->first_byte_timeout, &d->timer);
}

/* Whether the exchange's connection can be drained rather than closed: the request went out
 * whole, and what remains of the response is delimited and within the read-ahead bound. */
static int can_drain(struct exchange *ex)
{
    if (ex->conn == NULL || ex->conn->sock == NULL || !ex->request_sent || ex->websocket || ex->backend_failed)
        return 0;
    if (!ex->head_parsed)
        return 1;
    if (!ex->framing.keepalive || (!ex->framing.chunked && ex->framing.content_length == SIZE_MAX))
        return 0;
    return ex->framing.chunked || ex->body_left <= ex->proxy->cfg->upstream.response_buffer;
}

static void start_drain(struct exchange *ex)
{
    struct drain *d = h2o_mem_alloc(sizeof(*d));
    *d = (struct drain){.conn = ex->conn, .proxy = ex->proxy, .head_parsed = ex->head_parsed,
                        .is_head = h2o_memis(ex->req->method.base, ex->req->method.len, H2O_STRLIT("HEAD")),
                        .chunked = ex->framing.chunked, .keepalive = 1, .body_left = ex->body_left,
                        .budget = ex->proxy->cfg->upstream.response_buffer, .decoder = ex->chunked};
    d->timer.cb = on_drain_timeout;
    h2o_linklist_insert(&d->proxy->drains, &d->link);
    set_backend_timer(ex, NULL);
    ex->conn = NULL;
    d->conn->sock->data = d;
    h2o_timeout_link(d->proxy->ctx->loop, d->head_parsed ? &d->proxy->io_timeout : &d->proxy->first_byte_timeout, &d->timer);
    upstream_conn_read(d->conn, on_drain_read);
    if (d->conn->sock->input->size != 0)
        on_drain_read(d->conn->sock, NULL);
}

/* The client went away while the backend was still answering. */
static void abandon_backend(struct exchange *ex)
{
    if (can_drain(ex))
        start_drain(ex);
    else
        release_conn(ex, 0);
}

/* The client is gone (or the response is complete): whatever is still in progress stops. */
static void on_exchange_dispose(void *p)
{
    struct exchange *ex = p;
    if (h2o_timeout_is_linked(&ex->stall_timer))
        h2o_timeout_unlink(&ex->stall_timer);
    if (h2o_timeout_is_linked(&ex->hold_timer))
        h2o_timeout_unlink(&ex->hold_timer);
    upstream_cancel(&ex->ureq);
    abandon_backend(ex);
    h2o_buffer_dispose(&ex->pending);
    h2o_buffer_dispose(&ex->inflight);
}

static void on_client_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    abandon_backend((struct exchange *)generator);
}

static int is_websocket_request(h2o_req_t *req)
{
    return req->version < 0x200 && req->upgrade.base != NULL &&
           h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket"));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct proxy *proxy = *((struct proxy_handler *)self)->proxy;
    struct exchange *ex = h2o_mem_alloc_shared(&req->pool, sizeof(*ex), on_exchange_dispose);
    *ex = (struct exchange){.super = {on_client_proceed, on_client_stop}, .req = req, .proxy = proxy};
    ex->backend_timer.cb = on_backend_timeout;
    ex->stall_timer.cb = on_client_stall;
    ex->hold_timer.cb = on_hold_timeout;
    h2o_buffer_init(&ex->pending, &body_buffer_prototype);
    h2o_buffer_init(&ex->inflight, &body_buffer_prototype);
    ex->websocket = is_websocket_request(req);
    ex->head = forward_build_request(req, ex->websocket);
    start_exchange(ex, 0);
    return 0;
}

void proxy_register(h2o_pathconf_t *pathconf, struct proxy **proxy)
{
    struct proxy_handler *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->proxy = proxy;
}

struct proxy *proxy_create(h2o_context_t *ctx, const struct config *cfg, struct upstream *upstream, struct health *health)
{
    struct proxy *p = h2o_mem_alloc(sizeof(*p));
    *p = (struct proxy){.cfg = cfg, .upstream = upstream, .health = health, .ctx = ctx};
    h2o_timeout_init(ctx->loop, &p->first_byte_timeout, cfg->upstream.first_byte_timeout);
    h2o_timeout_init(ctx->loop, &p->io_timeout, cfg->upstream.io_timeout);
    h2o_timeout_init(ctx->loop, &p->stall_timeout, cfg->front.stall_timeout);
    h2o_timeout_init(ctx->loop, &p->websocket_timeout, cfg->front.idle_timeout);
    h2o_timeout_init(ctx->loop, &p->hold_timeout, 20);
    h2o_linklist_init_anchor(&p->drains);
    return p;
}

void proxy_destroy(struct proxy *p)
{
    if (p == NULL)
        return;
    while (!h2o_linklist_is_empty(&p->drains))
        end_drain(H2O_STRUCT_FROM_MEMBER(struct drain, link, p->drains.next), 0);
    h2o_timeout_t *const timeouts[] = {&p->first_byte_timeout, &p->io_timeout, &p->stall_timeout, &p->websocket_timeout,
                                       &p->hold_timeout};
    timeouts_close(timeouts, sizeof(timeouts) / sizeof(timeouts[0]), free, p);
}
