/*
 * proxy: the h2o handler that forwards a request to the active backend and streams the answer.
 *
 * One exchange per request, a small state machine driven by socket callbacks:
 *   wait for a connection (upstream) -> write the request -> read the response head
 *   -> send the head to the client at once -> stream the body with back-pressure -> release.
 * Up to `upstream.response_buffer` bytes are read ahead of the client, so a typical dashboard
 * answer frees its backend connection at once; beyond that h2front stops reading the backend
 * until the client catches up, and a client that stalls past `front.stall_timeout` loses its
 * stream (and the backend connection is freed). A stale keep-alive connection that fails before
 * any response byte is retried once, on a fresh connection, for idempotent requests.
 */
#ifndef H2FRONT_PROXY_H
#define H2FRONT_PROXY_H

#include <h2o.h>
#include "config.h"
#include "upstream.h"

struct health;

struct proxy {
    const struct config *cfg; /* borrowed */
    struct upstream *upstream;
    struct health *health; /* borrowed; told what each exchange learned of its backend */
    h2o_context_t *ctx;
    h2o_timeout_t first_byte_timeout, io_timeout, stall_timeout;
    h2o_timeout_t websocket_timeout;
    h2o_timeout_t hold_timeout; /* 20 ms: how long a small answer waits for its body before its head goes out */
    h2o_linklist_t drains;      /* answers read to their end after their client left (see proxy.c) */
};

/* Creates the proxy state for one event loop; the upstream pool and health checker are borrowed. */
struct proxy *proxy_create(h2o_context_t *ctx, const struct config *cfg, struct upstream *upstream, struct health *health);
void proxy_destroy(struct proxy *proxy);

/* Registers the forwarding handler on a path; it serves every request that reaches it.
 * The proxy it uses is read from *proxy at request time (set once the loop is up). */
void proxy_register(h2o_pathconf_t *pathconf, struct proxy **proxy);

#endif
