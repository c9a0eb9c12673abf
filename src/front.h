/*
 * front: what the browser talks to. Builds libh2o's configuration from ours (hosts, paths and
 * the handler chain), owns the event loop's context, starts the listeners, and holds the few
 * things h2front must do inside libh2o's HTTP/2 layer because 2.2.5 has no API for them.
 *
 * The handler chain for every request: request limits -> proxy (later: asset store first).
 */
#ifndef H2FRONT_FRONT_H
#define H2FRONT_FRONT_H

#include <h2o.h>
#include "config.h"

struct front;

/* Builds everything from a validated config. Returns NULL after logging why. */
struct front *front_create(const struct config *cfg, uv_loop_t *loop);
/* Stops accepting, asks HTTP/2 clients to go away (GOAWAY), lets requests in flight finish. */
void front_begin_shutdown(struct front *front);
/* Closes HTTP/1.1 connections that wait for a next request (called while draining). */
void front_close_idle_connections(struct front *front);
/* Number of client connections still open. */
size_t front_num_connections(struct front *front);
void front_destroy(struct front *front);

/* Sends a 103 Early Hints carrying `link` on an HTTP/2 stream whose final response has not
 * started; does nothing otherwise. libh2o 2.2.5 has no API for 103 (h2o_send_informational came
 * in 2.3): this writes the interim HEADERS frame with the library's own HPACK encoder, which is
 * why the build is pinned to libh2o 0.13.5. */
void front_send_early_hints(h2o_req_t *req, h2o_iovec_t link);

/* Ends one response abruptly: RST_STREAM for HTTP/2 (other streams go on), the connection for
 * HTTP/1. May dispose the request before it returns. */
void front_abort_stream(h2o_req_t *req);

#endif
