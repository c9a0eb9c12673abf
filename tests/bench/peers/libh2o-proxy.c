/*
 * libh2o 2.2.5's own reverse proxy (lib/handler/proxy.c) behind a TLS + HTTP/2 listener, and
 * nothing else: the benchmark's experiment targets `libh2o-uv` and `libh2o-evloop`.
 *
 * Why it exists: h2front links libh2o's libuv flavour, the `h2o` binary its own event loop
 * (evloop). Built once per flavour from this one file, the same handler code on both loops tells
 * whether the loop accounts for a difference between h2front and h2o. Given a directory instead
 * of a URL, it serves that directory with libh2o's file handler (precompressed .br/.gz files
 * next to the originals, as the `h2o` binary's `file.send-compressed`): the targets
 * `libh2o-uv-files` and `libh2o-evloop-files` of the static-asset load. tests/bench/targets.py
 * compiles it on demand (`--targets libh2o-uv,libh2o-evloop,...`); it is not part of h2front.
 *
 *   libh2o-proxy PORT CERT KEY UPSTREAM_URL|/DIRECTORY
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include "h2o.h"

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;

#if H2O_USE_LIBUV

static void on_accept(uv_stream_t *listener, int status)
{
    if (status != 0)
        return;
    uv_tcp_t *conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    h2o_accept(&accept_ctx, h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

static int listen_on(int port)
{
    static uv_tcp_t listener;
    struct sockaddr_in addr;
    uv_tcp_init(ctx.loop, &listener);
    uv_ip4_addr("127.0.0.1", port, &addr);
    return uv_tcp_bind(&listener, (struct sockaddr *)&addr, 0) == 0 &&
           uv_listen((uv_stream_t *)&listener, 1024, on_accept) == 0;
}

static void run_loop(void)
{
    uv_run(ctx.loop, UV_RUN_DEFAULT);
}

#else

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;
    if (err == NULL && (sock = h2o_evloop_socket_accept(listener)) != NULL)
        h2o_accept(&accept_ctx, sock);
}

static int listen_on(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 1024) != 0)
        return 0;
    h2o_socket_read_start(h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ), on_accept);
    return 1;
}

static void run_loop(void)
{
    while (h2o_evloop_run(ctx.loop, INT32_MAX) == 0)
        ;
}

#endif

/* A directory is served by libh2o's file handler, anything else proxied to as a URL. */
static int register_handler(h2o_pathconf_t *path, const char *target)
{
    static h2o_url_t upstream;
    if (target[0] == '/') {
        h2o_file_register(path, target, NULL, NULL, H2O_FILE_FLAG_SEND_COMPRESSED);
        return 1;
    }
    if (h2o_url_parse(target, SIZE_MAX, &upstream) != 0)
        return 0;
    /* as tests/bench/peers/h2o.yaml.in sets the h2o binary's proxy: Host kept, pooled keep-alive */
    h2o_proxy_config_vars_t proxy = {.io_timeout = 60000, .preserve_host = 1, .keepalive_timeout = 5000};
    h2o_proxy_register_reverse_proxy(path, &upstream, &proxy);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT CERT KEY UPSTREAM_URL|/DIRECTORY\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    h2o_config_init(&config);
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    if (!register_handler(h2o_config_register_path(host, "/", 0), argv[4])) {
        fprintf(stderr, "%s: neither an http:// URL nor a /directory: %s\n", argv[0], argv[4]);
        return 2;
    }
#if H2O_USE_LIBUV
    static uv_loop_t loop;
    uv_loop_init(&loop);
    h2o_context_init(&ctx, &loop, &config);
#else
    h2o_context_init(&ctx, h2o_evloop_create(), &config);
#endif
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;
    accept_ctx.ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(accept_ctx.ssl_ctx, argv[2]) != 1 ||
        SSL_CTX_use_PrivateKey_file(accept_ctx.ssl_ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "%s: cannot load %s and %s\n", argv[0], argv[2], argv[3]);
        return 2;
    }
    h2o_ssl_register_alpn_protocols(accept_ctx.ssl_ctx, h2o_http2_alpn_protocols);
    if (!listen_on(atoi(argv[1]))) {
        perror("listen");
        return 1;
    }
    run_loop();
    return 0;
}
