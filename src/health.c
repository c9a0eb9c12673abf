#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "health.h"
#include "http1.h"
#include "log.h"
#include "timeouts.h"

/* A probe reads at most this much of the body; the standby page is a few hundred bytes. */
#define MAX_PROBE_BODY (64 * 1024)

/* One backend's probing state. */
struct probe {
    struct health *owner;
    struct upstream_backend *backend;
    uv_timer_t timer;
    h2o_timeout_entry_t deadline;
    struct upstream_request ureq;
    struct upstream_conn *conn;
    h2o_iovec_t request; /* the probe request, built once */
    int in_flight;
    /* the head of the answer, once parsed */
    int status;
    int head_done;
    int chunked;
    int keepalive; /* the backend keeps the connection after this answer */
    size_t body_left; /* SIZE_MAX: until close */
    struct http1_chunked decoder;
    h2o_buffer_t *body;
    /* consecutive results that disagree with the current state */
    enum upstream_state streak_state;
    unsigned streak;
};

struct health {
    struct upstream *up;
    const struct config *cfg;
    h2o_timeout_t probe_timeout;
    struct probe *probes;
    size_t num_probes;
    size_t timers_open; /* timer handles not yet closed: the last close frees everything */
};

static void start_probe(struct probe *p);
static void on_probe_timer(uv_timer_t *timer);

static struct probe *probe_of(struct health *h, struct upstream_backend *b)
{
    return &h->probes[b - h->up->backends];
}

/* How many agreeing results a change needs: the first result decides an unknown backend, and a
 * standby or down backend carries no traffic, so only becoming or ceasing to be active waits. */
static unsigned threshold(const struct health *h, enum upstream_state from, enum upstream_state to, int conclusive)
{
    if (from == UPSTREAM_UNKNOWN || conclusive)
        return 1;
    if (to == UPSTREAM_ACTIVE)
        return h->cfg->health_check.rise;
    if (from == UPSTREAM_ACTIVE)
        return h->cfg->health_check.fall;
    return 1;
}

/* When the active backend is lost, the others are asked at once instead of at their next tick:
 * this is what makes a `ceph mgr fail` switch in well under a probe interval. */
static void probe_others_now(struct health *h, struct upstream_backend *except)
{
    for (size_t i = 0; i != h->num_probes; ++i) {
        struct probe *p = &h->probes[i];
        if (p->backend != except && !p->in_flight)
            uv_timer_start(&p->timer, on_probe_timer, 0, h->cfg->health_check.interval);
    }
}

static void apply_result(struct health *h, struct upstream_backend *b, enum upstream_state observed, const char *why,
                         int conclusive)
{
    struct probe *p = probe_of(h, b);
    enum upstream_state from = b->state;
    if (observed == from) {
        p->streak = 0;
        return;
    }
    if (p->streak_state != observed) {
        p->streak_state = observed;
        p->streak = 0;
    }
    if (++p->streak < threshold(h, from, observed, conclusive))
        return;
    p->streak = 0;
    if (observed == UPSTREAM_ACTIVE || from == UPSTREAM_ACTIVE || from == UPSTREAM_UNKNOWN)
        log_warn("health", "backend %s: %s -> %s (%s)", b->conf->url, upstream_state_name(from), upstream_state_name(observed), why);
    else
        log_info("health", "backend %s: %s -> %s (%s)", b->conf->url, upstream_state_name(from), upstream_state_name(observed), why);
    upstream_set_state(b, observed, why);
    if (from == UPSTREAM_ACTIVE && h->up->active == NULL)
        probe_others_now(h, b);
}

void health_report(struct health *h, struct upstream_backend *b, enum upstream_state observed, const char *why)
{
    apply_result(h, b, observed, why, observed == UPSTREAM_STANDBY);
}

static int contains_nocase(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; ++i)
        if (h2o_lcstris(hay + i, n, needle, n))
            return 1;
    return 0;
}

enum upstream_state health_classify(const struct config *cfg, int status, const char *body, size_t body_len, const char **why)
{
    if (status >= 200 && status < 300) {
        /* the standby's "no active ceph-mgr instance" page is a 200 that refreshes itself */
        if (contains_nocase(body, body_len, "http-equiv=\"refresh\"") || contains_nocase(body, body_len, "http-equiv=refresh")) {
            *why = "answers with the standby's self-refreshing page (no active mgr known to it)";
            return UPSTREAM_STANDBY;
        }
        *why = "answers as the active dashboard";
        return UPSTREAM_ACTIVE;
    }
    if (status >= 300 && status < 400) {
        *why = "redirects, as a standby mgr does";
        return UPSTREAM_STANDBY;
    }
    if ((unsigned)status == cfg->health_check.standby_status) {
        *why = "answers health_check.standby_status, as a standby mgr does";
        return UPSTREAM_STANDBY;
    }
    if (status >= 400 && status < 500) {
        /* a standby answers every path alike; a 401 or 404 is the active dashboard refusing this one */
        *why = "answers as the active dashboard (a client error for the probe path)";
        return UPSTREAM_ACTIVE;
    }
    *why = "answers with a server error";
    return UPSTREAM_DOWN;
}

static void finish_probe(struct probe *p, enum upstream_state observed, const char *why, int reusable)
{
    if (h2o_timeout_is_linked(&p->deadline))
        h2o_timeout_unlink(&p->deadline);
    upstream_cancel(&p->ureq);
    if (p->conn != NULL) {
        struct upstream_conn *conn = p->conn;
        p->conn = NULL;
        upstream_release(conn, reusable);
    }
    h2o_buffer_consume(&p->body, p->body->size);
    p->in_flight = 0;
    char reason[160];
    if (observed == UPSTREAM_ACTIVE || observed == UPSTREAM_STANDBY || p->status == 0)
        snprintf(reason, sizeof(reason), "probe: %s", why);
    else
        snprintf(reason, sizeof(reason), "probe: %s %d", why, p->status);
    apply_result(p->owner, p->backend, observed, reason, 0);
}

static void classify_and_finish(struct probe *p, int reusable)
{
    const char *why;
    enum upstream_state observed = health_classify(p->owner->cfg, p->status, p->body->bytes, p->body->size, &why);
    finish_probe(p, observed, why, reusable);
}

/* Collects the body (bounded); returns 1 when the answer is complete. */
static int take_body(struct probe *p, h2o_buffer_t **input, int eof, int *reusable)
{
    h2o_buffer_t *in = *input;
    size_t len = in->size;
    int done;
    *reusable = 0;
    if (p->chunked) {
        ssize_t rest = http1_decode_chunked(&p->decoder, in->bytes, &len);
        if (rest == -1)
            return -1;
        done = rest >= 0;
        *reusable = rest == 0;
    } else {
        if (len > p->body_left)
            len = p->body_left;
        if (p->body_left != SIZE_MAX)
            p->body_left -= len;
        done = p->body_left == 0 || (eof && p->body_left == SIZE_MAX);
        *reusable = p->body_left == 0 && len == in->size;
    }
    if (len == 0) {
        /* nothing to keep */
    } else if (p->body->size + len <= MAX_PROBE_BODY) {
        h2o_iovec_t dst = h2o_buffer_reserve(&p->body, len);
        memcpy(dst.base, in->bytes, len);
        p->body->size += len;
    } else {
        done = 1; /* enough to judge; the rest is not worth the connection */
        *reusable = 0;
    }
    h2o_buffer_consume(input, in->size);
    return done;
}

static int parse_head(struct probe *p, h2o_socket_t *sock)
{
    struct http1_response res;
    int len = http1_parse_response(sock->input->bytes, sock->input->size, &res);
    if (len < 0)
        return len;
    p->status = res.status;
    p->body_left = SIZE_MAX;
    p->chunked = 0;
    p->keepalive = res.minor_version >= 1;
    memset(&p->decoder, 0, sizeof(p->decoder));
    p->decoder.consume_trailer = 1;
    for (size_t i = 0; i != res.num_headers; ++i) {
        const struct http1_header *hd = &res.headers[i];
        if (h2o_lcstris(hd->name, hd->name_len, H2O_STRLIT("content-length")))
            p->body_left = h2o_strtosize(hd->value, hd->value_len);
        else if (h2o_lcstris(hd->name, hd->name_len, H2O_STRLIT("transfer-encoding")))
            p->chunked = 1;
        else if (h2o_lcstris(hd->name, hd->name_len, H2O_STRLIT("connection")))
            p->keepalive = !h2o_contains_token(hd->value, hd->value_len, H2O_STRLIT("close"), ',');
    }
    if (res.status == 204 || res.status == 304 || res.status < 200)
        p->body_left = 0;
    h2o_buffer_consume(&sock->input, (size_t)len);
    p->head_done = 1;
    return len;
}

static void on_probe_read(h2o_socket_t *sock, const char *err)
{
    struct probe *p = sock->data;
    if (!p->head_done) {
        int len = err != NULL ? -1 : parse_head(p, sock);
        if (len == -2 && sock->input->size < 64 * 1024)
            return;
        if (len < 0) {
            finish_probe(p, UPSTREAM_DOWN, err != NULL ? "connection closed before an answer" : "invalid HTTP answer", 0);
            return;
        }
    }
    int reusable, done = take_body(p, &sock->input, err != NULL, &reusable);
    if (done < 0 || (done == 0 && err != NULL)) {
        finish_probe(p, UPSTREAM_DOWN, "answer cut short", 0);
        return;
    }
    if (done)
        classify_and_finish(p, reusable && p->keepalive);
}

static void on_probe_written(h2o_socket_t *sock, const char *err)
{
    struct probe *p = sock->data;
    if (err != NULL)
        finish_probe(p, UPSTREAM_DOWN, "could not send the probe", 0);
}

static void on_probe_connection(struct upstream_request *ureq, struct upstream_conn *conn, const char *err)
{
    struct probe *p = H2O_STRUCT_FROM_MEMBER(struct probe, ureq, ureq);
    if (err == upstream_err_busy) {
        /* every connection is serving requests: those report on the backend, the probe stands aside */
        if (h2o_timeout_is_linked(&p->deadline))
            h2o_timeout_unlink(&p->deadline);
        p->in_flight = 0;
        return;
    }
    if (err != NULL) {
        finish_probe(p, UPSTREAM_DOWN, err, 0);
        return;
    }
    p->conn = conn;
    p->head_done = 0;
    p->status = 0;
    conn->sock->data = p;
    h2o_socket_write(conn->sock, &p->request, 1, on_probe_written);
    upstream_conn_read(conn, on_probe_read);
}

static void on_probe_deadline(h2o_timeout_entry_t *entry)
{
    struct probe *p = H2O_STRUCT_FROM_MEMBER(struct probe, deadline, entry);
    finish_probe(p, UPSTREAM_DOWN, "no answer within health_check.timeout", 0);
}

static void start_probe(struct probe *p)
{
    if (p->in_flight)
        return;
    p->in_flight = 1;
    p->status = 0;
    h2o_timeout_link(p->owner->up->ctx->loop, &p->owner->probe_timeout, &p->deadline);
    upstream_acquire(p->backend, &p->ureq, on_probe_connection, UPSTREAM_NO_QUEUE);
}

static void on_probe_timer(uv_timer_t *timer)
{
    start_probe(timer->data);
}

static h2o_iovec_t build_probe_request(const struct config *cfg, struct upstream_backend *b)
{
#define PROBE_FORMAT "GET %s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: h2front-health-check\r\nAccept: text/html\r\n\r\n"
    size_t len = sizeof(PROBE_FORMAT) + strlen(cfg->health_check.path) + b->url.authority.len;
    char *buf = h2o_mem_alloc(len);
    int n = snprintf(buf, len, PROBE_FORMAT, cfg->health_check.path, (int)b->url.authority.len, b->url.authority.base);
#undef PROBE_FORMAT
    return h2o_iovec_init(buf, (size_t)n);
}

struct health *health_create(struct upstream *up, const struct config *cfg)
{
    struct health *h = h2o_mem_alloc(sizeof(*h));
    *h = (struct health){.up = up, .cfg = cfg, .num_probes = up->num_backends};
    h2o_timeout_init(up->ctx->loop, &h->probe_timeout, cfg->health_check.timeout);
    h->probes = h2o_mem_alloc(sizeof(*h->probes) * up->num_backends);
    for (size_t i = 0; i != up->num_backends; ++i) {
        struct probe *p = &h->probes[i];
        *p = (struct probe){.owner = h, .backend = &up->backends[i]};
        p->deadline.cb = on_probe_deadline;
        p->request = build_probe_request(cfg, p->backend);
        h2o_buffer_init(&p->body, &h2o_socket_buffer_prototype);
        uv_timer_init(up->ctx->loop, &p->timer);
        p->timer.data = p;
        uv_timer_start(&p->timer, on_probe_timer, 0, cfg->health_check.interval);
    }
    return h;
}

/* Counts down the timers health_destroy closed (one per probe, and the probe timeout's); the
 * last one frees what they lived in. */
static void release_closed_timer(struct health *h)
{
    if (--h->timers_open == 0) {
        free(h->probes);
        free(h);
    }
}

static void on_probe_timer_closed(uv_handle_t *handle)
{
    release_closed_timer(((struct probe *)handle->data)->owner);
}

static void on_probe_timeout_closed(void *data)
{
    release_closed_timer(data);
}

void health_destroy(struct health *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i != h->num_probes; ++i) {
        struct probe *p = &h->probes[i];
        if (p->in_flight)
            finish_probe(p, p->backend->state, "shutting down", 0);
        h2o_buffer_dispose(&p->body);
        free(p->request.base);
    }
    h->timers_open = h->num_probes + 1;
    for (size_t i = 0; i != h->num_probes; ++i)
        uv_close((uv_handle_t *)&h->probes[i].timer, on_probe_timer_closed);
    h2o_timeout_t *const probe_timeout = &h->probe_timeout;
    timeouts_close(&probe_timeout, 1, on_probe_timeout_closed, h);
}
