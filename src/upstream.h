/*
 * upstream: the bounded pool of HTTP/1.1 keep-alive connections to each backend (mgr dashboard).
 *
 * CherryPy serves a request per thread from a pool of 10, and an idle keep-alive connection holds
 * one of those threads. So the pool is really bounded: a backend never has more than
 * `upstream.max_connections` connections open or opening, health probes included. A request that
 * finds no free connection waits in a FIFO queue (bounded in length and time); a released
 * connection goes straight to the head of that queue. libh2o 2.2.5's socketpool ignores its
 * capacity, so this module owns connections itself, on top of h2o sockets.
 */
#ifndef H2FRONT_UPSTREAM_H
#define H2FRONT_UPSTREAM_H

#include <h2o.h>
#include "config.h"

struct upstream;
struct upstream_backend;
struct upstream_conn;
struct upstream_request;

/* Called once per upstream_acquire: with a connection ready for one request, or with err set
 * (one of the upstream_err_* strings or a connect error) and conn NULL. May be called from within
 * upstream_acquire itself. */
typedef void (*upstream_acquire_cb)(struct upstream_request *ureq, struct upstream_conn *conn, const char *err);

/* Flags for upstream_acquire. */
enum {
    UPSTREAM_FRESH = 1,    /* a newly opened connection (the retry after a stale one failed) */
    UPSTREAM_NO_QUEUE = 2, /* fail with upstream_err_busy instead of waiting (health probes) */
};

/* A request's place in line for a connection; embedded in the caller's per-request state. */
struct upstream_request {
    struct upstream_backend *backend; /* NULL while waiting for an active backend */
    struct upstream *_owner;
    upstream_acquire_cb cb;
    h2o_linklist_t _queue_link;
    h2o_timeout_entry_t _queue_timeout;
    struct upstream_conn *_connecting; /* borrowed: a connection being opened for this request */
    int _flags;
};

/* What h2front knows of a backend (a mgr's dashboard), from health probes and proxied requests. */
enum upstream_state {
    UPSTREAM_UNKNOWN, /* not probed yet */
    UPSTREAM_ACTIVE,  /* serves the dashboard: requests go here */
    UPSTREAM_STANDBY, /* answers, but as a standby mgr (redirect, error status or refresh page) */
    UPSTREAM_DOWN,    /* does not answer usefully: refused, reset, timed out, broken responses */
};

/* One HTTP/1.1 connection to a backend. Between acquire and release it belongs to one request. */
struct upstream_conn {
    h2o_socket_t *sock; /* NULL while connecting */
    struct upstream_backend *backend;
    uint64_t served;    /* responses completed on it before this one: 0 means freshly opened */
    h2o_linklist_t _idle_link;
    h2o_timeout_entry_t _timeout; /* connect timeout, then idle timeout */
    struct upstream_request *_for;
    struct upstream_tcp *_tcp; /* while connecting */
};

/* Counters per backend, read by tests, logs and (later) metrics. */
struct upstream_stats {
    uint64_t connects;         /* connections established */
    uint64_t connect_failures; /* refused, unreachable, timed out, TLS failed */
    uint64_t reuses;           /* requests sent on an already used connection */
    uint64_t retries;          /* requests retried on a fresh connection after a stale one failed */
    uint64_t queued;           /* requests that had to wait for a connection */
    uint64_t queue_full;       /* rejected: the queue was full */
    uint64_t queue_timeouts;   /* rejected: waited longer than queue.timeout */
    uint64_t closed_idle;      /* idle connections closed (by us or by the backend) */
    uint64_t drained;          /* connections kept after their client left, by reading the answer to its end */
};

struct upstream_backend {
    const struct config_backend *conf; /* borrowed from the config */
    struct upstream *owner;
    enum upstream_state state;
    char state_reason[160]; /* why it is in that state, for logs and error pages */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    SSL_CTX *ssl_ctx;   /* owned; NULL for http:// */
    h2o_url_t url;      /* owned copy; scheme, authority and host of the backend as configured */
    size_t num_open;    /* connections open or opening: never above max_connections */
    size_t num_queued;
    h2o_linklist_t idle;  /* most recently used first */
    h2o_linklist_t connecting; /* connections being opened (through their _idle_link) */
    h2o_linklist_t queue; /* oldest first */
    struct upstream_stats stats;
};

struct upstream {
    h2o_context_t *ctx;
    const struct config *cfg; /* borrowed */
    struct upstream_backend *backends;
    size_t num_backends;
    struct upstream_backend *active; /* the backend requests go to; NULL during a failover */
    h2o_linklist_t waiting_active;   /* requests waiting for an active backend, oldest first */
    size_t num_waiting_active;
    h2o_timeout_t connect_timeout, queue_timeout, idle_timeout;
};

extern const char upstream_err_queue_full[];
extern const char upstream_err_queue_timeout[];
extern const char upstream_err_connect_timeout[];
extern const char upstream_err_busy[];
extern const char upstream_err_no_active[];
extern const char upstream_err_all_down[];

/* "active", "standby", "down" or "unknown". */
const char *upstream_state_name(enum upstream_state state);

/* Resolves every backend and prepares its TLS context. Returns NULL and prints why on failure. */
struct upstream *upstream_create(h2o_context_t *ctx, const struct config *cfg);
/* Closes idle connections and frees the backends; requests in flight must be gone. */
void upstream_destroy(struct upstream *up);

/* The backend requests go to: the active mgr, or NULL when none is known to be active. */
struct upstream_backend *upstream_pick_active(struct upstream *up);

/* Gets a connection for one request: an idle one, a new one within the bound, or a place in the
 * queue (flags: UPSTREAM_FRESH, UPSTREAM_NO_QUEUE). */
void upstream_acquire(struct upstream_backend *backend, struct upstream_request *ureq, upstream_acquire_cb cb, int flags);
/* The same on the active backend. While none is active but one may become so (standby or not yet
 * probed), the request waits for it, bounded like the queue; when every backend is down it fails
 * at once with upstream_err_all_down. */
void upstream_acquire_active(struct upstream *up, struct upstream_request *ureq, upstream_acquire_cb cb, int flags);
/* Records a backend's new state (health module only) and, when one became active, hands it the
 * requests that were waiting for an active backend. */
void upstream_set_state(struct upstream_backend *backend, enum upstream_state state, const char *reason);
/* Gives up waiting (the client went away); the callback will not be called. */
void upstream_cancel(struct upstream_request *ureq);
/* Returns a connection after one exchange. reusable: the response was complete and framed, so the
 * connection may serve the next request; otherwise it is closed. */
void upstream_release(struct upstream_conn *conn, int reusable);
/* Makes cb receive the connection's input from now on. The connection keeps reading while it is
 * idle (to notice the backend closing it), so handing it over only swaps the callback: no
 * epoll_ctl calls per request. */
void upstream_conn_read(struct upstream_conn *conn, h2o_socket_cb cb);
/* Writes what the kernel takes at once of bufs on a plain connection with no write in flight and
 * returns the bytes written (0 on TLS, while a write is in flight, or on any error: the caller
 * then hands the rest to h2o_socket_write, which reports errors as usual). libuv re-arms a
 * socket's epoll registration after every queued write it completes, one epoll_ctl per proxied
 * request; a request head almost always goes out whole this way, with one sendmsg. */
size_t upstream_conn_write_now(struct upstream_conn *conn, const h2o_iovec_t *bufs, size_t nbufs);

/* Takes the connection out of the pool for good (a WebSocket tunnel) and hands over its socket;
 * it stops counting against the bound. */
h2o_socket_t *upstream_detach(struct upstream_conn *conn);

#endif
