/*
 * listener: the TCP sockets browsers connect to. Each accepted connection is handed to libh2o
 * (h2o_accept), which does TLS, ALPN and HTTP/1.1 or HTTP/2 from there.
 */
#ifndef H2FRONT_LISTENER_H
#define H2FRONT_LISTENER_H

#include <stddef.h>
#include <h2o.h>
#include "config.h"

struct listener;

/* Binds and listens on conf->addr; accepted connections go to accept_ctx (borrowed).
 * Returns NULL and fills err (what failed, on which address, what to do). */
struct listener *listener_open(uv_loop_t *loop, const struct config_listen *conf, h2o_accept_ctx_t *accept_ctx, char *err,
                               size_t errlen);
/* Stops accepting; connections already accepted go on. Frees the listener. */
void listener_close(struct listener *listener);

/* Client connections accepted and not yet closed, over all listeners. */
extern size_t listener_num_connections;

#endif
