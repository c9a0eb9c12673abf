#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <uv.h>

#include "log.h"
#include "timeouts.h"
#include "tls.h"
#include "upstream.h"

const char upstream_err_queue_full[] = "the request queue is full";
const char upstream_err_queue_timeout[] = "no connection became free within queue.timeout";
const char upstream_err_connect_timeout[] = "connect timed out";
const char upstream_err_busy[] = "every connection is busy";
const char upstream_err_no_active[] = "no backend became active within queue.timeout";
const char upstream_err_all_down[] = "every backend is down";

const char *upstream_state_name(enum upstream_state state)
{
    static const char *const names[] = {"unknown", "active", "standby", "down"};
    return names[state];
}

/* A TCP handle while its connect is in flight. libuv reports why a connect failed (refused,
 * unreachable), which h2o_socket_connect would reduce to "connection failure"; so h2front connects
 * with libuv itself and wraps the handle into an h2o socket once it is up. */
struct upstream_tcp {
    uv_tcp_t handle; /* first member: the close callback frees the whole struct */
    uv_connect_t req;
    struct upstream_conn *conn; /* NULL once the connect was abandoned */
};

static void open_connection(struct upstream_backend *b, struct upstream_request *ureq);
static void serve_queue(struct upstream_backend *b);

static h2o_loop_t *loop_of(struct upstream_backend *b)
{
    return b->owner->ctx->loop;
}

static void free_tcp(uv_handle_t *handle)
{
    free(handle);
}

/* Hands a ready connection (or a failure) to the request waiting for it. */
static void deliver(struct upstream_request *ureq, struct upstream_conn *conn, const char *err)
{
    ureq->_connecting = NULL;
    ureq->cb(ureq, conn, err);
}

static void destroy_conn(struct upstream_conn *conn)
{
    struct upstream_backend *b = conn->backend;
    if (h2o_timeout_is_linked(&conn->_timeout))
        h2o_timeout_unlink(&conn->_timeout);
    if (h2o_linklist_is_linked(&conn->_idle_link))
        h2o_linklist_unlink(&conn->_idle_link);
    if (conn->sock != NULL)
        h2o_socket_close(conn->sock);
    free(conn);
    --b->num_open;
}

/* A connection could not be opened: fail the request it was for, and let the queue use the slot. */
static void on_connect_failed(struct upstream_conn *conn, const char *err)
{
    struct upstream_backend *b = conn->backend;
    struct upstream_request *ureq = conn->_for;
    ++b->stats.connect_failures;
    log_debug("upstream", "%s: %s", b->conf->url, err);
    destroy_conn(conn);
    if (ureq != NULL)
        deliver(ureq, NULL, err);
    serve_queue(b);
}

/* The connection is usable: give it to the request it was opened for, or to the pool. */
static void on_connected(struct upstream_conn *conn)
{
    h2o_timeout_unlink(&conn->_timeout);
    h2o_linklist_unlink(&conn->_idle_link);
    ++conn->backend->stats.connects;
    struct upstream_request *ureq = conn->_for;
    conn->_for = NULL;
    if (ureq != NULL)
        deliver(ureq, conn, NULL);
    else
        upstream_release(conn, 1);
}

static void on_tls_handshake(h2o_socket_t *sock, const char *err)
{
    struct upstream_conn *conn = sock->data;
    int name_or_chain_error = err == h2o_socket_error_ssl_cert_name_mismatch || err == h2o_socket_error_ssl_cert_invalid ||
                              err == h2o_socket_error_ssl_no_cert;
    if (err != NULL && !(name_or_chain_error && !conn->backend->conf->verify)) {
        on_connect_failed(conn, err);
        return;
    }
    on_connected(conn);
}

static void on_tcp_connect(uv_connect_t *req, int status)
{
    struct upstream_tcp *tcp = H2O_STRUCT_FROM_MEMBER(struct upstream_tcp, req, req);
    struct upstream_conn *conn = tcp->conn;
    if (status == UV_ECANCELED || conn == NULL)
        return;
    conn->_tcp = NULL;
    if (status != 0) {
        uv_close((uv_handle_t *)&tcp->handle, free_tcp);
        on_connect_failed(conn, uv_strerror(status));
        return;
    }
    conn->sock = h2o_uv_socket_create((uv_stream_t *)&tcp->handle, free_tcp);
    conn->sock->data = conn;
    uv_tcp_nodelay(&tcp->handle, 1);
    if (conn->backend->ssl_ctx != NULL) {
        h2o_socket_ssl_handshake(conn->sock, conn->backend->ssl_ctx, conn->backend->conf->host, on_tls_handshake);
        return;
    }
    on_connected(conn);
}

/* Stops opening a connection: its TCP handle is closed (libuv then cancels the connect). */
static void abandon_connect(struct upstream_conn *conn)
{
    if (conn->_tcp != NULL) {
        conn->_tcp->conn = NULL;
        uv_close((uv_handle_t *)&conn->_tcp->handle, free_tcp);
        conn->_tcp = NULL;
    }
}

static void on_connect_timeout(h2o_timeout_entry_t *entry)
{
    struct upstream_conn *conn = H2O_STRUCT_FROM_MEMBER(struct upstream_conn, _timeout, entry);
    abandon_connect(conn);
    on_connect_failed(conn, upstream_err_connect_timeout);
}

/* Opens a new connection for ureq (or for the pool when ureq is NULL); the caller checked the bound. */
static void open_connection(struct upstream_backend *b, struct upstream_request *ureq)
{
    struct upstream_conn *conn = h2o_mem_alloc(sizeof(*conn));
    *conn = (struct upstream_conn){.backend = b, ._for = ureq};
    conn->_timeout.cb = on_connect_timeout;
    ++b->num_open;
    if (ureq != NULL)
        ureq->_connecting = conn;
    h2o_linklist_insert(&b->connecting, &conn->_idle_link);
    h2o_timeout_link(loop_of(b), &b->owner->connect_timeout, &conn->_timeout);

    struct upstream_tcp *tcp = h2o_mem_alloc(sizeof(*tcp));
    tcp->conn = conn;
    conn->_tcp = tcp;
    uv_tcp_init(loop_of(b), &tcp->handle);
    int rc = uv_tcp_connect(&tcp->req, &tcp->handle, (struct sockaddr *)&b->addr, on_tcp_connect);
    if (rc != 0) {
        tcp->conn = NULL;
        conn->_tcp = NULL;
        uv_close((uv_handle_t *)&tcp->handle, free_tcp);
        on_connect_failed(conn, uv_strerror(rc));
    }
}

/* An idle connection must stay silent; any input (or EOF: the backend's idle timeout) ends it. */
static void on_idle_event(h2o_socket_t *sock, const char *err)
{
    struct upstream_conn *conn = sock->data;
    ++conn->backend->stats.closed_idle;
    destroy_conn(conn);
}

static void on_idle_timeout(h2o_timeout_entry_t *entry)
{
    struct upstream_conn *conn = H2O_STRUCT_FROM_MEMBER(struct upstream_conn, _timeout, entry);
    ++conn->backend->stats.closed_idle;
    destroy_conn(conn);
}

static struct upstream_conn *take_idle(struct upstream_backend *b, int most_recent)
{
    h2o_linklist_t *link = most_recent ? b->idle.next : b->idle.prev;
    struct upstream_conn *conn = H2O_STRUCT_FROM_MEMBER(struct upstream_conn, _idle_link, link);
    h2o_linklist_unlink(&conn->_idle_link);
    h2o_timeout_unlink(&conn->_timeout);
    return conn; /* still reading: the next owner swaps in its callback (upstream_conn_read) */
}

/* Gives ureq a connection if the bound allows one now; returns 0 when it must keep waiting. */
static int try_serve(struct upstream_backend *b, struct upstream_request *ureq)
{
    size_t max = b->owner->cfg->upstream.max_connections;
    int want_fresh = (ureq->_flags & UPSTREAM_FRESH) != 0;
    if (!want_fresh && !h2o_linklist_is_empty(&b->idle)) {
        struct upstream_conn *conn = take_idle(b, 1);
        ++b->stats.reuses;
        deliver(ureq, conn, NULL);
        return 1;
    }
    if (b->num_open < max) {
        open_connection(b, ureq);
        return 1;
    }
    if (want_fresh && !h2o_linklist_is_empty(&b->idle)) {
        /* trade the least recently used idle connection for a fresh one */
        destroy_conn(take_idle(b, 0));
        open_connection(b, ureq);
        return 1;
    }
    return 0;
}

static void dequeue(struct upstream_request *ureq)
{
    h2o_linklist_unlink(&ureq->_queue_link);
    h2o_timeout_unlink(&ureq->_queue_timeout);
    if (ureq->backend != NULL)
        --ureq->backend->num_queued;
    else
        --ureq->_owner->num_waiting_active;
}

/* Serves waiting requests, oldest first, while connections are free or may be opened. */
static void serve_queue(struct upstream_backend *b)
{
    while (!h2o_linklist_is_empty(&b->queue)) {
        struct upstream_request *ureq = H2O_STRUCT_FROM_MEMBER(struct upstream_request, _queue_link, b->queue.next);
        size_t max = b->owner->cfg->upstream.max_connections;
        if (h2o_linklist_is_empty(&b->idle) && b->num_open >= max)
            return;
        dequeue(ureq);
        if (!try_serve(b, ureq))
            return; /* cannot happen: the check above guarantees a connection */
    }
}

static void on_queue_timeout(h2o_timeout_entry_t *entry)
{
    struct upstream_request *ureq = H2O_STRUCT_FROM_MEMBER(struct upstream_request, _queue_timeout, entry);
    int waited_for_active = ureq->backend == NULL;
    if (!waited_for_active)
        ++ureq->backend->stats.queue_timeouts;
    dequeue(ureq);
    deliver(ureq, NULL, waited_for_active ? upstream_err_no_active : upstream_err_queue_timeout);
}

void upstream_acquire(struct upstream_backend *b, struct upstream_request *ureq, upstream_acquire_cb cb, int flags)
{
    *ureq = (struct upstream_request){.backend = b, ._owner = b->owner, .cb = cb, ._flags = flags};
    ureq->_queue_timeout.cb = on_queue_timeout;
    /* first come, first served: a newcomer may not overtake requests already waiting */
    if ((h2o_linklist_is_empty(&b->queue) || (flags & UPSTREAM_NO_QUEUE) != 0) && try_serve(b, ureq))
        return;
    if ((flags & UPSTREAM_NO_QUEUE) != 0) {
        deliver(ureq, NULL, upstream_err_busy);
        return;
    }
    if (b->num_queued >= b->owner->cfg->upstream.queue_max) {
        ++b->stats.queue_full;
        deliver(ureq, NULL, upstream_err_queue_full);
        return;
    }
    ++b->num_queued;
    ++b->stats.queued;
    /* a retry has waited once already, so it goes to the front */
    h2o_linklist_insert((flags & UPSTREAM_FRESH) != 0 ? b->queue.next : &b->queue, &ureq->_queue_link);
    h2o_timeout_link(loop_of(b), &b->owner->queue_timeout, &ureq->_queue_timeout);
}

/* Whether some backend may still become active: one that answers as a standby, or one not probed yet. */
static int failover_possible(struct upstream *up)
{
    for (size_t i = 0; i != up->num_backends; ++i)
        if (up->backends[i].state != UPSTREAM_DOWN)
            return 1;
    return 0;
}

void upstream_acquire_active(struct upstream *up, struct upstream_request *ureq, upstream_acquire_cb cb, int flags)
{
    struct upstream_backend *b = upstream_pick_active(up);
    if (b != NULL) {
        upstream_acquire(b, ureq, cb, flags);
        return;
    }
    *ureq = (struct upstream_request){._owner = up, .cb = cb, ._flags = flags};
    ureq->_queue_timeout.cb = on_queue_timeout;
    if (!failover_possible(up)) {
        deliver(ureq, NULL, upstream_err_all_down);
        return;
    }
    if (up->num_waiting_active >= up->cfg->upstream.queue_max) {
        deliver(ureq, NULL, upstream_err_queue_full);
        return;
    }
    ++up->num_waiting_active;
    h2o_linklist_insert(&up->waiting_active, &ureq->_queue_link);
    h2o_timeout_link(up->ctx->loop, &up->queue_timeout, &ureq->_queue_timeout);
}

/* Moves the requests that waited for an active backend into that backend's queue, oldest first;
 * or fails them when the last hope went down. */
static void release_waiting_active(struct upstream *up)
{
    while (!h2o_linklist_is_empty(&up->waiting_active)) {
        struct upstream_request *ureq = H2O_STRUCT_FROM_MEMBER(struct upstream_request, _queue_link, up->waiting_active.next);
        dequeue(ureq);
        if (up->active != NULL)
            upstream_acquire(up->active, ureq, ureq->cb, ureq->_flags);
        else
            deliver(ureq, NULL, upstream_err_all_down);
    }
}

void upstream_set_state(struct upstream_backend *b, enum upstream_state state, const char *reason)
{
    struct upstream *up = b->owner;
    b->state = state;
    snprintf(b->state_reason, sizeof(b->state_reason), "%s", reason);
    if (state == UPSTREAM_ACTIVE) {
        up->active = b;
    } else if (up->active == b) {
        up->active = NULL;
        for (size_t i = 0; i != up->num_backends && up->active == NULL; ++i)
            if (up->backends[i].state == UPSTREAM_ACTIVE)
                up->active = &up->backends[i];
    }
    if (up->active != NULL || !failover_possible(up))
        release_waiting_active(up);
}

void upstream_cancel(struct upstream_request *ureq)
{
    if (h2o_linklist_is_linked(&ureq->_queue_link))
        dequeue(ureq);
    if (ureq->_connecting != NULL) {
        ureq->_connecting->_for = NULL; /* the connection joins the pool when it is up */
        ureq->_connecting = NULL;
    }
}

void upstream_release(struct upstream_conn *conn, int reusable)
{
    struct upstream_backend *b = conn->backend;
    if (!reusable || conn->sock == NULL) {
        destroy_conn(conn);
    } else {
        ++conn->served;
        h2o_linklist_insert(b->idle.next, &conn->_idle_link);
        conn->_timeout.cb = on_idle_timeout;
        h2o_timeout_link(loop_of(b), &b->owner->idle_timeout, &conn->_timeout);
        conn->sock->data = conn;
        upstream_conn_read(conn, on_idle_event);
    }
    serve_queue(b);
}

void upstream_conn_read(struct upstream_conn *conn, h2o_socket_cb cb)
{
    if (h2o_socket_is_reading(conn->sock))
        conn->sock->_cb.read = cb; /* libh2o 0.13.5's socket keeps its read callback here */
    else
        h2o_socket_read_start(conn->sock, cb);
}

h2o_socket_t *upstream_detach(struct upstream_conn *conn)
{
    struct upstream_backend *b = conn->backend;
    h2o_socket_t *sock = conn->sock;
    conn->sock = NULL;
    destroy_conn(conn);
    serve_queue(b);
    return sock;
}

struct upstream_backend *upstream_pick_active(struct upstream *up)
{
    return up->active;
}

/* Backends are resolved once, at start: the event loop must never block on DNS. */
static int resolve_backend(struct upstream_backend *b)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
    char port[8];
    snprintf(port, sizeof(port), "%u", b->conf->port);
    int rc = getaddrinfo(b->conf->host, port, &hints, &res);
    if (rc != 0) {
        log_error("upstream", "backend %s: cannot resolve %s: %s; check the host name or use an address", b->conf->url,
                  b->conf->host, gai_strerror(rc));
        return -1;
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int init_backend(struct upstream *up, struct upstream_backend *b, const struct config_backend *conf)
{
    *b = (struct upstream_backend){.conf = conf, .owner = up};
    h2o_linklist_init_anchor(&b->idle);
    h2o_linklist_init_anchor(&b->connecting);
    h2o_linklist_init_anchor(&b->queue);
    h2o_url_t parsed;
    if (h2o_url_parse(conf->url, SIZE_MAX, &parsed) != 0) {
        log_error("upstream", "backend %s: not a URL h2front understands", conf->url);
        return -1;
    }
    h2o_url_copy(NULL, &b->url, &parsed);
    if (resolve_backend(b) != 0)
        return -1;
    if (conf->is_tls) {
        char err[512];
        if ((b->ssl_ctx = tls_create_backend_ctx(conf, err, sizeof(err))) == NULL) {
            log_error("upstream", "backend %s: %s", conf->url, err);
            return -1;
        }
    }
    return 0;
}

struct upstream *upstream_create(h2o_context_t *ctx, const struct config *cfg)
{
    struct upstream *up = h2o_mem_alloc(sizeof(*up));
    *up = (struct upstream){.ctx = ctx, .cfg = cfg, .num_backends = cfg->backends.size};
    up->backends = h2o_mem_alloc(sizeof(*up->backends) * cfg->backends.size);
    h2o_linklist_init_anchor(&up->waiting_active);
    h2o_timeout_init(ctx->loop, &up->connect_timeout, cfg->upstream.connect_timeout);
    h2o_timeout_init(ctx->loop, &up->queue_timeout, cfg->upstream.queue_timeout);
    h2o_timeout_init(ctx->loop, &up->idle_timeout, cfg->upstream.idle_timeout);
    for (size_t i = 0; i != cfg->backends.size; ++i) {
        if (init_backend(up, &up->backends[i], &cfg->backends.entries[i]) != 0) {
            up->num_backends = i + 1;
            upstream_destroy(up);
            return NULL;
        }
    }
    return up;
}

/* The last step of upstream_destroy, once libuv has closed the timers inside up. */
static void free_upstream(void *data)
{
    struct upstream *up = data;
    free(up->backends);
    free(up);
}

void upstream_destroy(struct upstream *up)
{
    if (up == NULL)
        return;
    for (size_t i = 0; i != up->num_backends; ++i) {
        struct upstream_backend *b = &up->backends[i];
        while (!h2o_linklist_is_empty(&b->idle))
            destroy_conn(take_idle(b, 1));
        while (!h2o_linklist_is_empty(&b->connecting)) {
            struct upstream_conn *conn = H2O_STRUCT_FROM_MEMBER(struct upstream_conn, _idle_link, b->connecting.next);
            abandon_connect(conn);
            destroy_conn(conn); /* a TLS handshake in progress ends with its socket */
        }
        if (b->ssl_ctx != NULL)
            SSL_CTX_free(b->ssl_ctx);
        free(b->url.authority.base);
        free(b->url.host.base);
        free(b->url.path.base);
    }
    h2o_timeout_t *const timeouts[] = {&up->connect_timeout, &up->queue_timeout, &up->idle_timeout};
    timeouts_close(timeouts, sizeof(timeouts) / sizeof(timeouts[0]), free_upstream, up);
}

size_t upstream_conn_write_now(struct upstream_conn *conn, const h2o_iovec_t *bufs, size_t nbufs)
{
    struct iovec iov[4];
    if (conn->sock->ssl != NULL || h2o_socket_is_writing(conn->sock) || nbufs > sizeof(iov) / sizeof(iov[0]))
        return 0;
    for (size_t i = 0; i != nbufs; ++i)
        iov[i] = (struct iovec){bufs[i].base, bufs[i].len};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = nbufs};
    ssize_t n;
    while ((n = sendmsg(h2o_socket_get_fd(conn->sock), &msg, MSG_DONTWAIT | MSG_NOSIGNAL)) == -1 && errno == EINTR)
        ;
    return n > 0 ? (size_t)n : 0;
}
