/*
 * config: h2front's configuration as plain data.
 *
 * One YAML file is parsed (ytree.h) into a tree that remembers where every node stood, then
 * validated here into the structs below. Runtime code reads these structs and never asks
 * whether a value was set: every field has exactly one default, applied by config_init().
 * config/h2front.yaml documents every key; this header is the C side of that contract.
 */
#ifndef H2FRONT_CONFIG_H
#define H2FRONT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* Where a key or value was written, for runtime messages that point back into the file. */
struct config_pos {
    size_t line, column; /* 1-based; 0 when the value is a default */
};

enum config_tls_mode {
    CONFIG_TLS_NONE,        /* plain HTTP listener */
    CONFIG_TLS_FILES,       /* certificate + key from PEM files */
    CONFIG_TLS_SELF_SIGNED, /* generated in memory at start (a warning is logged) */
};

struct config_listen {
    char *address;                /* owned; as written, e.g. "[::]:8443" */
    struct sockaddr_storage addr; /* parsed numeric address (no DNS at load) */
    socklen_t addrlen;
    enum config_tls_mode tls;
    char *certificate; /* owned; PEM chain; set only for CONFIG_TLS_FILES */
    char *key;         /* owned; PEM private key; set only for CONFIG_TLS_FILES */
    int redirect;      /* plain listener only: answer every request with 308 to the first TLS listener */
    struct config_pos pos;
};

struct config_backend {
    char *url;  /* owned; as written */
    int is_tls; /* https:// */
    char *host; /* owned; host name or numeric address, without brackets */
    uint16_t port;
    char *ca_file; /* owned; NULL = system trust store (https only) */
    int verify;    /* https only: verify the backend certificate; default 1 */
    struct config_pos pos;
};

struct config {
    char *path; /* owned; the file this was loaded from */

    struct {
        struct config_listen *entries; /* owned */
        size_t size;
    } listen;

    struct {
        struct config_backend *entries; /* owned */
        size_t size;
    } backends;

    struct {
        unsigned max_connections; /* per backend, never exceeded; default 10 */
        unsigned queue_max;       /* requests waiting for a connection; default 1024 */
        uint64_t queue_timeout;   /* ms; default 10000 */
        uint64_t idle_timeout;    /* ms an idle keep-alive connection is kept; default 5000 */
        uint64_t connect_timeout; /* ms; default 3000 */
        uint64_t first_byte_timeout; /* ms from request sent to response head; default 60000 */
        uint64_t io_timeout;         /* ms without progress while sending or receiving; default 60000 */
        uint64_t response_buffer;    /* bytes of a response read ahead of a slow client; default 1 MiB */
    } upstream;

    struct {
        uint64_t request_body; /* bytes; default 16 MiB */
        unsigned header_count; /* default 100 */
        uint64_t header_bytes; /* request line + headers; default 64 KiB */
        unsigned stream_resets; /* HTTP/2 streams a client may reset beyond those it lets finish; default 200 */
    } limits;

    struct {
        uint64_t idle_timeout;      /* ms a client connection may sit idle; default 60000 */
        uint64_t stall_timeout;     /* ms a response may wait for its client to read; default 30000 */
        uint64_t handshake_timeout; /* ms for the TLS handshake; default 10000 */
        unsigned max_streams;       /* concurrent HTTP/2 streams per connection; default 100 */
    } front;

    struct {
        char *path;              /* owned; probed with GET on every backend; default "/" */
        uint64_t interval;       /* ms between probes of one backend; default 2000 */
        uint64_t timeout;        /* ms for one probe (connect + answer); default 2000 */
        unsigned rise;           /* consecutive "active" results to become active; default 2 */
        unsigned fall;           /* consecutive other results (or passive failures) to stop being active; default 2 */
        unsigned standby_status; /* the dashboard's standby_error_status_code; default 500 */
    } health_check;

    struct {
        char *root;       /* owned; the dashboard's frontend build (dist/); NULL: everything goes to the backend */
        char *url_prefix; /* owned; "" or "/prefix" (the dashboard's url_prefix); default "" */
        struct {
            char **entries; /* owned; extra paths for the critical set, e.g. "/assets/logo.svg" */
            size_t size;
        } preload;
        int push;        /* HTTP/2 server push of the critical set (cache-aware); default 0 */
        int early_hints; /* 103 Early Hints on navigations over HTTP/2; default 1 */
    } assets;

    struct {
        int level; /* LOG_LEVEL_*; default info */
    } log;
};

/* Fills every field with its documented default; lists are empty. */
void config_init(struct config *cfg);

/*
 * Loads and validates `path` into `cfg` (which config_load initialises itself).
 * On success returns 0. On any error returns -1, prints one line per problem to `err` in the form
 * `FILE:LINE:COL: key: what is wrong` (key is the dotted path, e.g. `upstream.queue.timeout`),
 * and leaves `cfg` freed (safe to pass to config_free again).
 */
int config_load(struct config *cfg, const char *path, FILE *err);

/* Same as config_load, from a string in memory; `name` stands in for the file name in messages. */
int config_load_string(struct config *cfg, const char *name, const char *yaml, size_t len, FILE *err);

/* Frees everything config_load allocated; accepts an initialised or already freed config. */
void config_free(struct config *cfg);

/* "16MiB", "64KiB", "1.5MB", "512" (bytes) -> bytes. Returns 0 or -1 (message in *why). */
int config_parse_size(const char *s, uint64_t *out, const char **why);

/* "30s", "500ms", "2m", "1h" -> milliseconds; a bare number is an error (say the unit). */
int config_parse_duration(const char *s, uint64_t *out, const char **why);

/* "host:port", "[v6]:port", "*:port" -> numeric sockaddr. Returns 0 or -1 (message in *why). */
int config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len, const char **why);

#endif
