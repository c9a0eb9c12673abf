/*
 * forward: what a request and a response look like on the other side of h2front.
 *
 * The unchanged dashboard needs an HTTP/1.1 request it can serve (Host preserved, a
 * Content-Length on every body: CherryPy answers 411 otherwise) and h2front decides what the
 * backend may learn of the client (X-Forwarded-*, set by us, never trusted from the client).
 * On the way back, hop-by-hop headers go, and what points at the backend is made to point at the
 * address the browser used (Location, Refresh), with Secure added to cookies set over TLS.
 * Pure functions over h2o requests: unit-testable without sockets.
 */
#ifndef H2FRONT_FORWARD_H
#define H2FRONT_FORWARD_H

#include <h2o.h>
#include "http1.h"

/* How the body of a backend response is delimited. */
struct forward_framing {
    int has_body;          /* 0 for HEAD, 1xx, 204 and 304 */
    int chunked;           /* Transfer-Encoding: chunked */
    size_t content_length; /* SIZE_MAX when absent */
    int keepalive;         /* the backend keeps the connection open after this response */
};

/* Builds the HTTP/1.1 request head for the backend in req->pool. websocket asks for the
 * Upgrade handshake instead of a keep-alive exchange. */
h2o_iovec_t forward_build_request(h2o_req_t *req, int websocket);

/* Whether the request may be sent twice: retried after a stale connection failed. */
int forward_is_idempotent(h2o_req_t *req);

/* Is `url` on one of the backends (scheme http or https, same host and port)? */
typedef int (*forward_is_backend_cb)(void *ctx, h2o_iovec_t host, uint16_t port);

/* Copies the backend's response head into req->res, rewriting as described above, and says how
 * the body is framed. Returns NULL, or what is wrong with the response (the caller answers 502). */
const char *forward_copy_response(h2o_req_t *req, const struct http1_response *res, forward_is_backend_cb is_backend,
                                  void *cb_ctx, struct forward_framing *framing);

/* Adds the security headers the dashboard puts on every response (HSTS, CSP frame-ancestors,
 * nosniff) to an answer h2front makes itself, a file from memory or its own error, so that a
 * scanner checking them finds no response without them. */
void forward_add_dashboard_security_headers(h2o_req_t *req);

/* Rewrites an absolute URL that points at a backend to the scheme and authority the client used;
 * returns the value unchanged otherwise. Exposed for the unit tests. */
h2o_iovec_t forward_rewrite_url(h2o_req_t *req, h2o_iovec_t value, forward_is_backend_cb is_backend, void *cb_ctx);

#endif
