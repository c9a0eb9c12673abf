#include <string.h>

#include "forward.h"

/* A growing string in the request's memory pool: requests are built once and die with it. */
struct strbuf {
    h2o_mem_pool_t *pool;
    char *base;
    size_t len, cap;
};

static void sb_reserve(struct strbuf *sb, size_t extra)
{
    if (sb->len + extra <= sb->cap)
        return;
    size_t cap = sb->cap * 2;
    while (cap < sb->len + extra)
        cap *= 2;
    char *p = h2o_mem_alloc_pool(sb->pool, cap);
    memcpy(p, sb->base, sb->len);
    sb->base = p;
    sb->cap = cap;
}

static void sb_append(struct strbuf *sb, const char *s, size_t len)
{
    sb_reserve(sb, len);
    memcpy(sb->base + sb->len, s, len);
    sb->len += len;
}

/* lit must be a string literal: sizeof of anything else is a pointer's size */
#define sb_lit(sb, lit) sb_append((sb), "" lit, sizeof(lit) - 1)

static void sb_header(struct strbuf *sb, const char *name, size_t name_len, const char *value, size_t value_len)
{
    sb_reserve(sb, name_len + value_len + 4);
    sb_append(sb, name, name_len);
    sb_lit(sb, ": ");
    sb_append(sb, value, value_len);
    sb_lit(sb, "\r\n");
}

static int name_is(const h2o_header_t *h, const char *lit, size_t len)
{
    return h2o_memis(h->name->base, h->name->len, lit, len);
}

/* Headers that describe one hop (RFC 7230 6.1) or that h2front sets itself and must not trust. */
static int drop_for_request(const h2o_header_t *h, h2o_iovec_t connection_value)
{
    if (h2o_iovec_is_token(h->name)) {
        const h2o_token_t *token = (const h2o_token_t *)h->name;
        if (token->proxy_should_drop_for_req || token == H2O_TOKEN_CONTENT_LENGTH || token == H2O_TOKEN_HOST ||
            token == H2O_TOKEN_EXPECT || token == H2O_TOKEN_X_FORWARDED_FOR || token == H2O_TOKEN_COOKIE ||
            token == H2O_TOKEN_VIA)
            return 1;
    }
    if (name_is(h, H2O_STRLIT("x-forwarded-proto")) || name_is(h, H2O_STRLIT("x-forwarded-host")) ||
        name_is(h, H2O_STRLIT("forwarded")) || name_is(h, H2O_STRLIT("x-real-ip")) || name_is(h, H2O_STRLIT("proxy-connection")))
        return 1;
    return connection_value.base != NULL && h2o_contains_token(connection_value.base, connection_value.len, h->name->base,
                                                               h->name->len, ',');
}

static h2o_iovec_t find_header_value(const h2o_headers_t *headers, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(headers, token, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : headers->entries[i].value;
}

/* HTTP/2 splits cookies into one header per crumb; HTTP/1.1 wants them on one line. */
static void append_cookies(struct strbuf *sb, const h2o_headers_t *headers)
{
    int first = 1;
    for (ssize_t i = -1; (i = h2o_find_header(headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        if (first)
            sb_lit(sb, "cookie: ");
        else
            sb_lit(sb, "; ");
        sb_append(sb, headers->entries[i].value.base, headers->entries[i].value.len);
        first = 0;
    }
    if (!first)
        sb_lit(sb, "\r\n");
}

static void append_forwarded(struct strbuf *sb, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t sslen = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    char addr[NI_MAXHOST];
    size_t addr_len = sslen != 0 ? h2o_socket_getnumerichost((struct sockaddr *)&ss, sslen, addr) : SIZE_MAX;
    if (addr_len != SIZE_MAX)
        sb_header(sb, H2O_STRLIT("x-forwarded-for"), addr, addr_len);
    sb_header(sb, H2O_STRLIT("x-forwarded-proto"), req->scheme->name.base, req->scheme->name.len);
    sb_header(sb, H2O_STRLIT("x-forwarded-host"), req->authority.base, req->authority.len);
}

/* Methods that carry a body by definition get a Content-Length even when empty: CherryPy's
 * json_in answers 411 to a POST without one, and an HTTP/2 request often has none. */
static int method_expects_body(h2o_iovec_t method)
{
    return h2o_memis(method.base, method.len, H2O_STRLIT("POST")) || h2o_memis(method.base, method.len, H2O_STRLIT("PUT")) ||
           h2o_memis(method.base, method.len, H2O_STRLIT("PATCH"));
}

h2o_iovec_t forward_build_request(h2o_req_t *req, int websocket)
{
    struct strbuf sb = {&req->pool, NULL, 0, 0};
    sb.cap = req->method.len + req->path.len + req->authority.len + 256;
    sb.base = h2o_mem_alloc_pool(&req->pool, sb.cap);

    sb_append(&sb, req->method.base, req->method.len);
    sb_lit(&sb, " ");
    sb_append(&sb, req->path.base, req->path.len);
    sb_lit(&sb, " HTTP/1.1\r\n");
    sb_header(&sb, H2O_STRLIT("host"), req->authority.base, req->authority.len);
    if (websocket) {
        sb_lit(&sb, "connection: upgrade\r\nupgrade: websocket\r\n");
    } else if (req->entity.base != NULL || method_expects_body(req->method)) {
        char len[32];
        int n = snprintf(len, sizeof(len), "%zu", req->entity.base != NULL ? req->entity.len : 0);
        sb_header(&sb, H2O_STRLIT("content-length"), len, (size_t)n);
    }
    h2o_iovec_t connection = find_header_value(&req->headers, H2O_TOKEN_CONNECTION);
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = &req->headers.entries[i];
        if (drop_for_request(h, connection))
            continue;
        sb_header(&sb, h->orig_name != NULL ? h->orig_name : h->name->base, h->name->len, h->value.base, h->value.len);
    }
    append_cookies(&sb, &req->headers);
    append_forwarded(&sb, req);
    sb_lit(&sb, "\r\n");
    return h2o_iovec_init(sb.base, sb.len);
}

int forward_is_idempotent(h2o_req_t *req)
{
    static const h2o_iovec_t safe[] = {{H2O_STRLIT("GET")}, {H2O_STRLIT("HEAD")}, {H2O_STRLIT("OPTIONS")},
                                       {H2O_STRLIT("PUT")}, {H2O_STRLIT("DELETE")}, {H2O_STRLIT("TRACE")}};
    for (size_t i = 0; i != sizeof(safe) / sizeof(safe[0]); ++i)
        if (h2o_memis(req->method.base, req->method.len, safe[i].base, safe[i].len))
            return 1;
    return 0;
}

h2o_iovec_t forward_rewrite_url(h2o_req_t *req, h2o_iovec_t value, forward_is_backend_cb is_backend, void *cb_ctx)
{
    h2o_url_t url;
    if (h2o_url_parse(value.base, value.len, &url) != 0 || !is_backend(cb_ctx, url.host, h2o_url_get_port(&url)))
        return value;
    /* keep only the path (with its query): the scheme and authority become what the client used */
    return h2o_concat(&req->pool, req->scheme->name, h2o_iovec_init(H2O_STRLIT("://")), req->authority, url.path);
}

/* Refresh: "5; url=http://mgr:8080/": only the URL part is rewritten. */
static h2o_iovec_t rewrite_refresh(h2o_req_t *req, h2o_iovec_t value, forward_is_backend_cb is_backend, void *cb_ctx)
{
    for (size_t i = 0; i + 4 <= value.len; ++i) {
        if (h2o_lcstris(value.base + i, 4, H2O_STRLIT("url="))) {
            h2o_iovec_t url = h2o_iovec_init(value.base + i + 4, value.len - i - 4);
            h2o_iovec_t rewritten = forward_rewrite_url(req, url, is_backend, cb_ctx);
            if (rewritten.base == url.base)
                return value;
            return h2o_concat(&req->pool, h2o_iovec_init(value.base, i + 4), rewritten);
        }
    }
    return value;
}

/* The dashboard marks its token cookie Secure only when it runs TLS itself; behind a TLS front
 * talking plain HTTP to the mgr the browser must still never send it in the clear. */
static h2o_iovec_t secure_cookie(h2o_req_t *req, h2o_iovec_t value)
{
    if (req->scheme != &H2O_URL_SCHEME_HTTPS)
        return value;
    h2o_iovec_t iter = value, attr;
    size_t attr_len;
    const char *token;
    while ((token = h2o_next_token(&iter, ';', &attr_len, &attr)) != NULL)
        if (h2o_lcstris(token, attr_len, H2O_STRLIT("secure")))
            return value;
    return h2o_concat(&req->pool, value, h2o_iovec_init(H2O_STRLIT("; Secure")));
}

static int drop_for_response(const h2o_token_t *token, const char *name, size_t name_len, h2o_iovec_t connection, int status)
{
    if (token == H2O_TOKEN_UPGRADE && status == 101)
        return 0;
    if (token != NULL && (token->proxy_should_drop_for_res || token == H2O_TOKEN_CONTENT_LENGTH || token == H2O_TOKEN_TE))
        return 1;
    if (h2o_memis(name, name_len, H2O_STRLIT("proxy-connection")) || h2o_memis(name, name_len, H2O_STRLIT("trailer")))
        return 1;
    return connection.base != NULL && h2o_contains_token(connection.base, connection.len, name, name_len, ',');
}

/* Reads the framing headers first: they decide what the other headers mean. */
static const char *read_framing(const struct http1_response *res, h2o_req_t *req, struct forward_framing *f, h2o_iovec_t *connection)
{
    *f = (struct forward_framing){.has_body = 1, .content_length = SIZE_MAX, .keepalive = res->minor_version >= 1};
    *connection = h2o_iovec_init(NULL, 0);
    for (size_t i = 0; i != res->num_headers; ++i) {
        const struct http1_header *h = &res->headers[i];
        if (h2o_lcstris(h->name, h->name_len, H2O_STRLIT("content-length"))) {
            size_t v = h2o_strtosize(h->value, h->value_len);
            if (v == SIZE_MAX || (f->content_length != SIZE_MAX && f->content_length != v))
                return "invalid content-length in the backend's response";
            f->content_length = v;
        } else if (h2o_lcstris(h->name, h->name_len, H2O_STRLIT("transfer-encoding"))) {
            if (!h2o_lcstris(h->value, h->value_len, H2O_STRLIT("chunked")))
                return "unsupported transfer-encoding in the backend's response";
            f->chunked = 1;
        } else if (h2o_lcstris(h->name, h->name_len, H2O_STRLIT("connection"))) {
            *connection = h2o_iovec_init(h->value, h->value_len); /* h2o_contains_token ignores case */
            if (h2o_contains_token(connection->base, connection->len, H2O_STRLIT("close"), ','))
                f->keepalive = 0;
            else if (h2o_contains_token(connection->base, connection->len, H2O_STRLIT("keep-alive"), ','))
                f->keepalive = 1;
        }
    }
    int status = res->status;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) || status == 204 || status == 304 || status < 200)
        f->has_body = 0;
    if (f->chunked)
        f->content_length = SIZE_MAX;
    else if (f->has_body && f->content_length == SIZE_MAX)
        f->keepalive = 0; /* delimited by close */
    return NULL;
}

/* Adds one backend header to the client's response; `name` is lower-case, `token` its libh2o
 * token or NULL. */
static void add_response_header(h2o_req_t *req, const h2o_token_t *token, const char *name, size_t name_len,
                                const struct http1_header *h, forward_is_backend_cb is_backend, void *cb_ctx)
{
    h2o_iovec_t value = h2o_strdup(&req->pool, h->value, h->value_len);
    if (token == H2O_TOKEN_LOCATION || token == H2O_TOKEN_CONTENT_LOCATION)
        value = forward_rewrite_url(req, value, is_backend, cb_ctx);
    else if (token == H2O_TOKEN_SET_COOKIE)
        value = secure_cookie(req, value);
    else if (h2o_memis(name, name_len, H2O_STRLIT("refresh")))
        value = rewrite_refresh(req, value, is_backend, cb_ctx);
    if (token != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, token, NULL, value.base, value.len);
    } else {
        h2o_iovec_t copy = h2o_strdup(&req->pool, name, name_len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, copy.base, copy.len, 0, NULL, value.base, value.len);
    }
}

const char *forward_copy_response(h2o_req_t *req, const struct http1_response *res, forward_is_backend_cb is_backend,
                                  void *cb_ctx, struct forward_framing *framing)
{
    h2o_iovec_t connection;
    const char *err = read_framing(res, req, framing, &connection);
    if (err != NULL)
        return err;
    req->res.status = res->status;
    req->res.reason = h2o_strdup(&req->pool, res->reason, res->reason_len).base;
    req->res.content_length = framing->has_body ? framing->content_length : SIZE_MAX;
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + res->num_headers);
    for (size_t i = 0; i != res->num_headers; ++i) {
        const struct http1_header *h = &res->headers[i];
        /* header names are short; a longer one is lowered into the pool */
        char stack_name[64], *lower = h->name_len <= sizeof(stack_name) ? stack_name : h2o_mem_alloc_pool(&req->pool, h->name_len);
        for (size_t j = 0; j != h->name_len; ++j)
            lower[j] = (char)h2o_tolower(h->name[j]);
        const h2o_token_t *token = h2o_lookup_token(lower, h->name_len);
        if (drop_for_response(token, lower, h->name_len, connection, res->status))
            continue;
        add_response_header(req, token, lower, h->name_len, h, is_backend, cb_ctx);
    }
    return NULL;
}

/* The values are the dashboard's own (services/auth.py sets them in CherryPy's global config, so
 * its static files, 304s and errors all carry them). */
void forward_add_dashboard_security_headers(h2o_req_t *req)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                          H2O_STRLIT("frame-ancestors 'self';"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL, H2O_STRLIT("nosniff"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL,
                   H2O_STRLIT("max-age=63072000; includeSubDomains; preload"));
}
