#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#include "assets.h"
#include "forward.h"
#include "front.h"
#include "h2guard.h"
#include "health.h"
#include "listener.h"
#include "log.h"
#include "proxy.h"
#include "tls.h"
#include "upstream.h"

struct front {
    const struct config *cfg; /* borrowed */
    uv_loop_t *loop;
    h2o_globalconf_t globalconf;
    h2o_globalconf_t redirect_conf; /* plain listeners with `redirect: true` */
    h2o_context_t ctx;
    uv_check_t *guard_check; /* once per loop iteration: h2guard watches new HTTP/2 connections */
    struct h2guard_limits guard_limits; /* from cfg, for both ways h2guard starts watching */
    struct upstream *upstream;
    struct health *health;
    struct proxy *proxy;
    struct assets *assets; /* NULL until loaded (or without assets.root): then everything is forwarded */
    uv_work_t assets_work;
    struct assets *assets_loaded;
    char assets_error[512];
    int assets_loading;
    size_t num_listeners;
    h2o_accept_ctx_t *accept_ctxs; /* one per listener */
    struct listener **listeners;
};

struct limits_handler {
    h2o_handler_t super;
    const struct config *cfg;
    const struct h2guard_limits *guard; /* the front's */
};

struct redirect_handler {
    h2o_handler_t super;
    uint16_t https_port;
};

struct assets_handler {
    h2o_handler_t super;
    struct front *front;
};

static size_t request_header_bytes(h2o_req_t *req)
{
    size_t n = req->method.len + req->path.len + req->authority.len + 16;
    for (size_t i = 0; i != req->headers.size; ++i)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    return n;
}

/* libh2o 2.2.5 accepts control characters and spaces in :path; forwarded as is they would let a
 * client smuggle a second request line into the backend connection. */
static int path_is_clean(h2o_iovec_t path)
{
    for (size_t i = 0; i != path.len; ++i)
        if ((unsigned char)path.base[i] <= 0x20 || (unsigned char)path.base[i] == 0x7f)
            return 0;
    return path.len != 0;
}

/* Refuses a request the backend must never see, with the dashboard's security headers, and on
 * HTTP/1.1 closes the connection: what follows the request on it cannot be trusted. */
static int refuse_request(h2o_req_t *req, int status, const char *reason, const char *body)
{
    forward_add_dashboard_security_headers(req);
    h2o_send_error_generic(req, status, reason, body, H2O_SEND_ERROR_HTTP1_CLOSE_CONNECTION | H2O_SEND_ERROR_KEEP_HEADERS);
    return 0;
}

/* First handler of the chain: enforces what libh2o 2.2.5 does not (header count and size, stream
 * resets) before anything is forwarded. Passes the request on (-1) when it is within limits. */
static int on_req_check_limits(h2o_handler_t *self, h2o_req_t *req)
{
    struct limits_handler *limits = (struct limits_handler *)self;
    const struct config *cfg = limits->cfg;
    h2guard_watch(req, limits->guard);
    if (req->headers.size > cfg->limits.header_count || request_header_bytes(req) > cfg->limits.header_bytes)
        return refuse_request(req, 431, "Request Header Fields Too Large",
                              "h2front: request headers exceed limits.header_count or limits.header_bytes\n");
    if (req->entity.base != NULL && req->entity.len > cfg->limits.request_body)
        return refuse_request(req, 413, "Request Entity Too Large", "h2front: the request body exceeds limits.request_body\n");
    if (!path_is_clean(req->path))
        return refuse_request(req, 400, "Bad Request", "h2front: invalid characters in the request path\n");
    return -1;
}

/* A plain listener with `redirect: true` sends browsers to the same host on the TLS port. */
static int on_req_redirect(h2o_handler_t *self, h2o_req_t *req)
{
    uint16_t port = ((struct redirect_handler *)self)->https_port;
    h2o_iovec_t host;
    uint16_t ignored;
    if (h2o_url_parse_hostport(req->authority.base, req->authority.len, &host, &ignored) == NULL || host.len == 0) {
        h2o_send_error_400(req, "Bad Request", "h2front: a Host header is needed to redirect to https\n", 0);
        return 0;
    }
    int bracket = memchr(host.base, ':', host.len) != NULL;
    char *url = h2o_mem_alloc_pool(&req->pool, host.len + req->path.len + 32);
    int n = sprintf(url, "https://%s%.*s%s", bracket ? "[" : "", (int)host.len, host.base, bracket ? "]" : "");
    if (port != 443)
        n += sprintf(url + n, ":%u", port);
    memcpy(url + n, req->path.base, req->path.len);
    h2o_send_redirect(req, 308, "Permanent Redirect", url, (size_t)n + req->path.len);
    return 0;
}

/* The whole header value, several fields joined as HTTP says they may be. */
static h2o_iovec_t joined_header(h2o_req_t *req, const h2o_token_t *token, const char *separator)
{
    h2o_iovec_t joined = {NULL, 0};
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, token, i)) != -1;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        joined = joined.base == NULL ? v : h2o_concat(&req->pool, joined, h2o_iovec_init(separator, strlen(separator)), v);
    }
    return joined;
}

/* Tells the browser what the page will need while the backend is still producing the document:
 * a Link header on the final response, the same set in a 103 first over HTTP/2, and pushes for
 * clients that accept them (h2o's CASPer cookie keeps a browser from being pushed twice). */
static void announce_critical_set(struct front *f, h2o_req_t *req)
{
    const struct assets_lang *lang = assets_negotiate(f->assets, joined_header(req, H2O_TOKEN_COOKIE, "; "),
                                                      joined_header(req, H2O_TOKEN_ACCEPT_LANGUAGE, ", "));
    if (lang == NULL)
        return; /* the dashboard will refuse or pick a language h2front cannot predict */
    h2o_iovec_t link = assets_preload_link(lang);
    if (link.len == 0)
        return;
    if (req->version >= 0x200 && f->cfg->assets.early_hints)
        front_send_early_hints(req, link);
    if (req->version >= 0x200 && f->cfg->assets.push)
        h2o_push_path_in_link_header(req, link.base, link.len);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LINK, NULL, link.base, link.len);
}

/* Serves the dashboard's static files from memory; navigations go on to the backend, announced. */
static int on_req_assets(h2o_handler_t *self, h2o_req_t *req)
{
    struct front *f = ((struct assets_handler *)self)->front;
    if (f->assets == NULL)
        return -1;
    if (assets_serve(f->assets, req) == 0)
        return 0;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) && assets_is_document(f->assets, req->path))
        announce_critical_set(f, req);
    return -1;
}

/* Loading compresses every file at the best brotli level, which takes seconds for the dashboard's
 * 3.5 MB bundle; it runs on libuv's thread pool so that h2front serves (forwarding) meanwhile. */
static void load_assets_in_background(uv_work_t *work)
{
    struct front *f = work->data;
    const struct config *cfg = f->cfg;
    f->assets_loaded = assets_load(cfg->assets.root, cfg->assets.url_prefix, cfg->assets.preload.entries,
                                   cfg->assets.preload.size, f->assets_error, sizeof(f->assets_error));
}

static void on_assets_loaded(uv_work_t *work, int status)
{
    struct front *f = work->data;
    f->assets_loading = 0;
    if (f->assets_loaded == NULL) {
        log_error("assets", "%s; serving everything from the backend", f->assets_error);
        return;
    }
    f->assets = f->assets_loaded;
    const struct assets_stats *st = assets_get_stats(f->assets);
    log_info("assets", "loaded %zu files from %s in %.1fs: %llu bytes, %llu with brotli, %llu with gzip (%zu skipped)",
             st->files, f->cfg->assets.root, st->load_seconds, (unsigned long long)st->identity_bytes,
             (unsigned long long)st->br_bytes, (unsigned long long)st->gzip_bytes, st->skipped);
}

static void start_loading_assets(struct front *f)
{
    if (f->cfg->assets.root == NULL)
        return;
    f->assets_work.data = f;
    f->assets_loading = 1;
    uv_queue_work(f->loop, &f->assets_work, load_assets_in_background, on_assets_loaded);
}

static uint16_t first_tls_port(const struct config *cfg)
{
    for (size_t i = 0; i != cfg->listen.size; ++i) {
        const struct config_listen *l = &cfg->listen.entries[i];
        if (l->tls != CONFIG_TLS_NONE)
            return ntohs(l->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&l->addr)->sin6_port
                                                       : ((struct sockaddr_in *)&l->addr)->sin_port);
    }
    return 443;
}

/* HTTP/2 abuse limits. A header block gets twice limits.header_count fields (and room for the
 * pseudo-headers) before the connection ends: up to there a request over the limit still gets
 * its 431 from on_req_check_limits; beyond, it is a flood that must not be decoded at all. */
static struct h2guard_limits guard_limits_of(const struct config *cfg)
{
    return (struct h2guard_limits){.reset_budget = cfg->limits.stream_resets, .max_fields = 2 * cfg->limits.header_count + 16};
}

static void apply_front_settings(h2o_globalconf_t *gc, const struct config *cfg)
{
    h2o_config_init(gc);
    gc->server_name = h2o_iovec_init(H2O_STRLIT("")); /* the dashboard's own Server header passes through */
    /* libh2o counts chunked framing against its cap and answers HTTP/2 with REFUSED_STREAM instead
     * of 413; so its cap sits above the limit, and on_req_check_limits enforces the exact one */
    gc->max_request_entity_size = 2 * cfg->limits.request_body + 64 * 1024;
    gc->handshake_timeout = cfg->front.handshake_timeout;
    gc->http1.req_timeout = cfg->front.idle_timeout;
    gc->http1.upgrade_to_http2 = 0; /* no h2c on a TLS front */
    gc->http2.idle_timeout = cfg->front.idle_timeout;
    gc->http2.max_concurrent_requests_per_connection = cfg->front.max_streams;
}

static void build_configuration(struct front *f)
{
    apply_front_settings(&f->globalconf, f->cfg);
    h2o_hostconf_t *host = h2o_config_register_host(&f->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    host->http2.push_preload = f->cfg->assets.push;
    /* as the h2o server does by default: a client that gives its streams no dependencies (Safari,
     * h2load) gets stylesheets and scripts ahead of everything else; Chromium's dependency chain
     * is left alone */
    host->http2.reprioritize_blocking_assets = 1;
    if (f->cfg->assets.push) {
        host->http2.casper.capacity_bits = 13; /* h2o's default: a cookie of ~1 KB remembers what was pushed */
        host->http2.casper.track_all_types = 1;
    }
    h2o_pathconf_t *root = h2o_config_register_path(host, "/", 0);
    struct limits_handler *limits = (void *)h2o_create_handler(root, sizeof(*limits));
    limits->super.on_req = on_req_check_limits;
    limits->cfg = f->cfg;
    limits->guard = &f->guard_limits;
    struct assets_handler *assets = (void *)h2o_create_handler(root, sizeof(*assets));
    assets->super.on_req = on_req_assets;
    assets->front = f;
    proxy_register(root, &f->proxy);

    apply_front_settings(&f->redirect_conf, f->cfg);
    host = h2o_config_register_host(&f->redirect_conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    root = h2o_config_register_path(host, "/", 0);
    struct redirect_handler *redirect = (void *)h2o_create_handler(root, sizeof(*redirect));
    redirect->super.on_req = on_req_redirect;
    redirect->https_port = first_tls_port(f->cfg);
}

/* One accept context per listener: TLS or not, and which host table answers. */
static int open_listener(struct front *f, size_t i)
{
    const struct config_listen *conf = &f->cfg->listen.entries[i];
    h2o_accept_ctx_t *actx = &f->accept_ctxs[i];
    char err[512];
    *actx = (h2o_accept_ctx_t){.ctx = &f->ctx, .hosts = conf->redirect ? f->redirect_conf.hosts : f->globalconf.hosts};
    if (conf->tls != CONFIG_TLS_NONE) {
        if ((actx->ssl_ctx = tls_create_server_ctx(conf, err, sizeof(err))) == NULL) {
            log_error("front", "%s:%zu:%zu: listen %s: %s", f->cfg->path, conf->pos.line, conf->pos.column, conf->address, err);
            return -1;
        }
        if (conf->tls == CONFIG_TLS_SELF_SIGNED) {
            char spki[64] = "";
            tls_spki_fingerprint(actx->ssl_ctx, spki, sizeof(spki));
            log_warn("front", "listen %s: using a self-signed certificate generated at start (SPKI sha256/%s); "
                     "configure tls.certificate and tls.key for production", conf->address, spki);
        }
    }
    if ((f->listeners[i] = listener_open(f->loop, conf, actx, err, sizeof(err))) == NULL) {
        log_error("front", "%s:%zu:%zu: %s", f->cfg->path, conf->pos.line, conf->pos.column, err);
        return -1;
    }
    log_info("front", "listening on %s (%s)", conf->address,
             conf->tls != CONFIG_TLS_NONE ? "TLS, h2 and http/1.1" : conf->redirect ? "plain HTTP, redirects to https" : "plain HTTP");
    return 0;
}

static void on_loop_iteration(uv_check_t *check)
{
    struct front *f = check->data;
    h2guard_watch_new_connections(&f->ctx, &f->guard_limits);
}

/* Its own allocation: the handle outlives front_destroy until libuv has closed it. */
static void start_guard_check(struct front *f)
{
    f->guard_check = h2o_mem_alloc(sizeof(*f->guard_check));
    uv_check_init(f->loop, f->guard_check);
    f->guard_check->data = f;
    uv_check_start(f->guard_check, on_loop_iteration);
    uv_unref((uv_handle_t *)f->guard_check); /* never what keeps the loop running */
}

struct front *front_create(const struct config *cfg, uv_loop_t *loop)
{
    struct front *f = h2o_mem_alloc(sizeof(*f));
    memset(f, 0, sizeof(*f));
    f->cfg = cfg;
    f->loop = loop;
    f->guard_limits = guard_limits_of(cfg);
    build_configuration(f);
    h2o_context_init(&f->ctx, loop, &f->globalconf);
    start_guard_check(f);
    if ((f->upstream = upstream_create(&f->ctx, cfg)) == NULL)
        goto Error;
    f->health = health_create(f->upstream, cfg);
    f->proxy = proxy_create(&f->ctx, cfg, f->upstream, f->health);
    f->num_listeners = cfg->listen.size;
    f->accept_ctxs = h2o_mem_alloc(sizeof(*f->accept_ctxs) * f->num_listeners);
    f->listeners = h2o_mem_alloc(sizeof(*f->listeners) * f->num_listeners);
    memset(f->listeners, 0, sizeof(*f->listeners) * f->num_listeners);
    memset(f->accept_ctxs, 0, sizeof(*f->accept_ctxs) * f->num_listeners);
    for (size_t i = 0; i != f->num_listeners; ++i)
        if (open_listener(f, i) != 0)
            goto Error;
    start_loading_assets(f);
    return f;
Error:
    front_destroy(f);
    return NULL;
}

static void close_listeners(struct front *f)
{
    for (size_t i = 0; i != f->num_listeners; ++i) {
        if (f->listeners[i] != NULL) {
            listener_close(f->listeners[i]);
            f->listeners[i] = NULL;
        }
    }
}

void front_begin_shutdown(struct front *f)
{
    close_listeners(f);
    h2o_context_request_shutdown(&f->ctx);
    front_close_idle_connections(f);
}

void front_close_idle_connections(struct front *f)
{
    /* libh2o 2.2.5 has no shutdown hook for HTTP/1 (HTTP/2 gets GOAWAY); a keep-alive connection
     * waiting for its next request sits on http1.req_timeout, so expiring it closes exactly those */
    h2o_timeout_run(f->loop, &f->ctx.http1.req_timeout, UINT64_MAX);
}

size_t front_num_connections(struct front *f)
{
    return listener_num_connections;
}

void front_destroy(struct front *f)
{
    if (f == NULL)
        return;
    close_listeners(f);
    if (f->guard_check != NULL)
        uv_close((uv_handle_t *)f->guard_check, (uv_close_cb)free);
    for (size_t i = 0; i != f->num_listeners; ++i)
        if (f->accept_ctxs[i].ssl_ctx != NULL)
            SSL_CTX_free(f->accept_ctxs[i].ssl_ctx);
    if (f->assets_loading) {
        uv_cancel((uv_req_t *)&f->assets_work); /* if it already runs, wait for it: its result must be freed */
        while (f->assets_loading)
            uv_run(f->loop, UV_RUN_ONCE);
    }
    assets_free(f->assets_loaded);
    proxy_destroy(f->proxy);
    health_destroy(f->health);
    upstream_destroy(f->upstream);
    /* libh2o 2.2.5 leaves its GOAWAY timer linked after the last connection is gone */
    if (h2o_timeout_is_linked(&f->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&f->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&f->ctx);
    h2o_config_dispose(&f->globalconf);
    h2o_config_dispose(&f->redirect_conf);
    free(f->accept_ctxs);
    free(f->listeners);
    free(f);
}

void front_send_early_hints(h2o_req_t *req, h2o_iovec_t link)
{
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    /* while a handler runs, libh2o marks the stream SEND_HEADERS; the final HEADERS go out on the first h2o_send */
    if (req->version < 0x200 || stream->state != H2O_HTTP2_STREAM_STATE_SEND_HEADERS || h2o_http2_stream_is_push(stream->stream_id))
        return;
    h2o_res_t res = {.status = 103, .reason = "Early Hints", .content_length = SIZE_MAX};
    h2o_add_header(&req->pool, &res.headers, H2O_TOKEN_LINK, NULL, link.base, link.len);
    h2o_timestamp_t ts;
    h2o_get_timestamp(req->conn->ctx, &req->pool, &ts);
    static const h2o_iovec_t no_server_name = {NULL, 0};
    /* a HEADERS frame without END_STREAM: an interim response, ahead of the final HEADERS in the same buffer */
    h2o_hpack_flatten_response(&conn->_write.buf, &conn->_output_header_table, stream->stream_id,
                               conn->peer_settings.max_frame_size, &res, &ts, &no_server_name, SIZE_MAX);
    h2o_http2_conn_request_write(conn);
}

void front_abort_stream(h2o_req_t *req)
{
    if (req->version >= 0x200) {
        h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
        h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
        h2o_http2_encode_rst_stream_frame(&conn->_write.buf, stream->stream_id, -H2O_HTTP2_ERROR_CANCEL);
        h2o_http2_conn_request_write(conn);
        h2o_http2_stream_reset(conn, stream);
        return;
    }
    /* HTTP/1: the pending write fails, and libh2o closes the connection and the request itself */
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}
