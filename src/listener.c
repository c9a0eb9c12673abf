#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "log.h"

struct listener {
    uv_tcp_t handle; /* first: the close callback frees the whole struct */
    const struct config_listen *conf;
    h2o_accept_ctx_t *accept_ctx;
};

size_t listener_num_connections;

static void on_connection_closed(uv_handle_t *handle)
{
    --listener_num_connections;
    free(handle);
}

static void on_accept(uv_stream_t *server, int status)
{
    struct listener *l = (struct listener *)server;
    if (status != 0)
        return;
    uv_tcp_t *conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(server->loop, conn);
    if (uv_accept(server, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    ++listener_num_connections;
    h2o_accept(l->accept_ctx, h2o_uv_socket_create((uv_stream_t *)conn, on_connection_closed));
}

struct listener *listener_open(uv_loop_t *loop, const struct config_listen *conf, h2o_accept_ctx_t *accept_ctx, char *err,
                               size_t errlen)
{
    struct listener *l = h2o_mem_alloc(sizeof(*l));
    l->conf = conf;
    l->accept_ctx = accept_ctx;
    uv_tcp_init(loop, &l->handle);
    int rc = uv_tcp_bind(&l->handle, (const struct sockaddr *)&conf->addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->handle, 1024, on_accept);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s%s", conf->address, uv_strerror(rc),
                 rc == UV_EADDRINUSE ? "; another process holds the port (choose another address in listen:)"
                                     : rc == UV_EACCES ? "; ports below 1024 need privileges" : "");
        uv_close((uv_handle_t *)&l->handle, (uv_close_cb)free);
        return NULL;
    }
    return l;
}

void listener_close(struct listener *l)
{
    uv_close((uv_handle_t *)&l->handle, (uv_close_cb)free);
}
