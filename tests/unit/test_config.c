/*
 * Unit tests for the configuration loader (config.c, ytree.c).
 *
 * Every error class is checked with the exact FILE:LINE:COL and key the user would see, because the position is the
 * point of the message. Errors are captured from an in-memory FILE (open_memstream). Runs under ASan/UBSan/LSan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "log.h"

static unsigned passed, failed;

/* Counts a result and, on failure, says where and what, so the test output points at the broken expectation. */
static void check_at(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        ++passed;
        return;
    }
    ++failed;
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
}

#define CHECK(cond) check_at((cond) ? 1 : 0, __FILE__, __LINE__, #cond)

/* The smallest valid file: lines 1-5. Error tests append to it, so their own lines start at 6 (BASE adds backends,
 * BASE_LISTEN adds listeners, as the last section is the one that continues). */
#define BASE                                                                                                                       \
    "listen:\n"                                                                                                                    \
    "  - address: \"[::]:8443\"\n"                                                                                                 \
    "    tls: self-signed\n"                                                                                                       \
    "backends:\n"                                                                                                                  \
    "  - url: http://127.0.0.1:8090\n"
#define BASE_LISTEN                                                                                                                \
    "backends:\n"                                                                                                                  \
    "  - url: http://127.0.0.1:8090\n"                                                                                             \
    "listen:\n"                                                                                                                    \
    "  - address: \"[::]:8443\"\n"                                                                                                 \
    "    tls: self-signed\n"

/* Loads `yaml` as "t.yaml", capturing error output into *errors (always a malloc'd string; caller frees). */
static int load(struct config *cfg, const char *yaml, char **errors)
{
    size_t size = 0;
    FILE *err = open_memstream(errors, &size);
    int rc;
    if (err == NULL) {
        perror("open_memstream");
        exit(2);
    }
    rc = config_load_string(cfg, "t.yaml", yaml, strlen(yaml), err);
    fclose(err);
    return rc;
}

/* Number of lines in captured error output. */
static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text != '\0'; ++text)
        n += *text == '\n';
    return n;
}

/* True when some line of `text` starts with `prefix`. */
static int has_line(const char *text, const char *prefix)
{
    size_t len = strlen(prefix);
    for (const char *line = text; *line != '\0'; line = strchr(line, '\n') + 1) {
        if (strncmp(line, prefix, len) == 0)
            return 1;
        if (strchr(line, '\n') == NULL)
            break;
    }
    return 0;
}

/*
 * Loads a bad config and checks: load fails, exactly `expected_lines` error lines were printed, one of them starts with
 * `prefix`, the config was left freed, and config_free on it is still safe.
 */
static int fails_with(const char *yaml, size_t expected_lines, const char *prefix)
{
    struct config cfg;
    char *errors = NULL;
    int rc = load(&cfg, yaml, &errors);
    int ok = rc == -1 && count_lines(errors) == expected_lines && has_line(errors, prefix) && cfg.listen.entries == NULL &&
             cfg.backends.entries == NULL && cfg.path == NULL;
    if (!ok)
        fprintf(stderr, "  expected %zu line(s), one starting: %s\n  got (rc %d):\n%s", expected_lines, prefix, rc, errors);
    config_free(&cfg);
    config_free(&cfg);
    free(errors);
    return ok;
}

#define EXPECT_ERROR(yaml, prefix) CHECK(fails_with(yaml, 1, prefix))
#define EXPECT_ERRORS(yaml, n, prefix) CHECK(fails_with(yaml, n, prefix))

/* Loads a config that must be valid; prints the errors if it is not. */
static int loads(struct config *cfg, const char *yaml)
{
    char *errors = NULL;
    int rc = load(cfg, yaml, &errors);
    if (rc != 0 || errors[0] != '\0')
        fprintf(stderr, "  unexpected errors (rc %d):\n%s", rc, errors);
    free(errors);
    return rc == 0;
}

/* A temporary file with some content, for certificate and key paths that must be readable. */
static void make_temp_file(char *path)
{
    int fd;
    strcpy(path, "/tmp/h2front-test-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, "x\n", 2) != 2) {
        perror("mkstemp");
        exit(2);
    }
    close(fd);
}

static void test_defaults(void)
{
    struct config cfg;
    config_init(&cfg);
    CHECK(cfg.path == NULL);
    CHECK(cfg.listen.size == 0 && cfg.listen.entries == NULL);
    CHECK(cfg.backends.size == 0 && cfg.backends.entries == NULL);
    CHECK(cfg.upstream.max_connections == 10);
    CHECK(cfg.upstream.queue_max == 1024);
    CHECK(cfg.upstream.queue_timeout == 10000);
    CHECK(cfg.upstream.idle_timeout == 5000);
    CHECK(cfg.upstream.connect_timeout == 3000);
    CHECK(cfg.upstream.first_byte_timeout == 60000);
    CHECK(cfg.upstream.io_timeout == 60000);
    CHECK(cfg.upstream.response_buffer == 1024 * 1024);
    CHECK(cfg.limits.request_body == 16 * 1024 * 1024);
    CHECK(cfg.limits.header_count == 100);
    CHECK(cfg.limits.header_bytes == 64 * 1024);
    CHECK(cfg.limits.stream_resets == 200);
    CHECK(cfg.front.idle_timeout == 60000);
    CHECK(cfg.front.stall_timeout == 30000);
    CHECK(cfg.front.handshake_timeout == 10000);
    CHECK(cfg.front.max_streams == 100);
    CHECK(cfg.assets.root == NULL);
    CHECK(cfg.assets.url_prefix != NULL && strcmp(cfg.assets.url_prefix, "") == 0);
    CHECK(cfg.assets.preload.size == 0 && cfg.assets.preload.entries == NULL);
    CHECK(cfg.assets.push == 0 && cfg.assets.early_hints == 1);
    CHECK(cfg.log.level == LOG_LEVEL_INFO);
    config_free(&cfg);
    CHECK(cfg.assets.url_prefix == NULL);
    config_free(&cfg);
}

static void test_minimal_config_keeps_defaults(void)
{
    struct config cfg;
    CHECK(loads(&cfg, BASE "upstream:\nlimits: ~\n"));
    CHECK(cfg.path != NULL && strcmp(cfg.path, "t.yaml") == 0);
    CHECK(cfg.listen.size == 1 && cfg.backends.size == 1);
    CHECK(cfg.listen.entries[0].tls == CONFIG_TLS_SELF_SIGNED);
    CHECK(cfg.listen.entries[0].redirect == 0);
    CHECK(cfg.listen.entries[0].pos.line == 2 && cfg.listen.entries[0].pos.column == 5);
    CHECK(cfg.backends.entries[0].verify == 1);
    CHECK(cfg.backends.entries[0].is_tls == 0);
    CHECK(cfg.backends.entries[0].port == 8090);
    CHECK(strcmp(cfg.backends.entries[0].host, "127.0.0.1") == 0);
    CHECK(cfg.backends.entries[0].ca_file == NULL);
    CHECK(cfg.upstream.max_connections == 10 && cfg.limits.header_count == 100);
    config_free(&cfg);
    config_free(&cfg);
}

/* Every key set to a non-default value, checked field by field. */
static void test_full_config(void)
{
    char cert[64], key[64], ca[64], yaml[2048];
    struct config cfg;
    make_temp_file(cert);
    make_temp_file(key);
    make_temp_file(ca);
    snprintf(yaml, sizeof(yaml),
             "listen:\n"
             "  - address: \"[::1]:8443\"\n"
             "    tls:\n"
             "      certificate: %s\n"
             "      key: %s\n"
             "  - address: 0.0.0.0:8080\n"
             "    redirect: true\n"
             "  - { address: \"localhost:9000\", redirect: false }\n"
             "backends:\n"
             "  - url: https://mgr.example:8443/\n"
             "    ca_file: %s\n"
             "    verify: false\n"
             "  - url: http://[::1]\n"
             "  - url: HTTPS://10.0.0.1\n"
             "upstream:\n"
             "  max_connections: 20\n"
             "  queue: { max: 0, timeout: 1.5s }\n"
             "  idle_timeout: 2s\n"
             "  timeouts: { connect: 500ms, first_byte: 2m, io: 1h }\n"
             "  response_buffer: 4KiB\n"
             "limits:\n"
             "  request_body: 0\n"
             "  header_count: 10000\n"
             "  header_bytes: 1.5KiB\n"
             "  stream_resets: 1\n"
             "front:\n"
             "  idle_timeout: 1s\n"
             "  stall_timeout: 100ms\n"
             "  handshake_timeout: 10m\n"
             "  max_streams: 256\n"
             "assets:\n"
             "  root: /tmp\n"
             "  url_prefix: /ceph\n"
             "  preload: [/assets/logo.svg, \"/assets/font.woff2?v=2\"]\n"
             "  push: true\n"
             "  early_hints: false\n"
             "log:\n"
             "  level: debug\n",
             cert, key, ca);
    CHECK(loads(&cfg, yaml));
    CHECK(cfg.listen.size == 3);
    if (cfg.listen.size == 3) {
        const struct config_listen *l = cfg.listen.entries;
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&l[0].addr;
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&l[2].addr;
        CHECK(strcmp(l[0].address, "[::1]:8443") == 0);
        CHECK(v6->sin6_family == AF_INET6 && ntohs(v6->sin6_port) == 8443 && l[0].addrlen == sizeof(*v6));
        CHECK(IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr));
        CHECK(l[0].tls == CONFIG_TLS_FILES && strcmp(l[0].certificate, cert) == 0 && strcmp(l[0].key, key) == 0);
        CHECK(l[1].tls == CONFIG_TLS_NONE && l[1].redirect == 1 && l[1].certificate == NULL);
        CHECK(l[1].pos.line == 6 && l[1].pos.column == 5);
        CHECK(v4->sin_family == AF_INET && ntohl(v4->sin_addr.s_addr) == INADDR_LOOPBACK && ntohs(v4->sin_port) == 9000);
        CHECK(l[2].redirect == 0 && l[2].pos.line == 8 && l[2].pos.column == 5);
    }
    CHECK(cfg.backends.size == 3);
    if (cfg.backends.size == 3) {
        const struct config_backend *b = cfg.backends.entries;
        CHECK(b[0].is_tls == 1 && strcmp(b[0].host, "mgr.example") == 0 && b[0].port == 8443);
        CHECK(strcmp(b[0].url, "https://mgr.example:8443/") == 0);
        CHECK(b[0].ca_file != NULL && strcmp(b[0].ca_file, ca) == 0 && b[0].verify == 0);
        CHECK(b[0].pos.line == 10 && b[0].pos.column == 5);
        CHECK(b[1].is_tls == 0 && strcmp(b[1].host, "::1") == 0 && b[1].port == 80 && b[1].verify == 1);
        CHECK(b[2].is_tls == 1 && strcmp(b[2].host, "10.0.0.1") == 0 && b[2].port == 443);
    }
    CHECK(cfg.upstream.max_connections == 20);
    CHECK(cfg.upstream.queue_max == 0 && cfg.upstream.queue_timeout == 1500);
    CHECK(cfg.upstream.idle_timeout == 2000);
    CHECK(cfg.upstream.connect_timeout == 500 && cfg.upstream.first_byte_timeout == 120000);
    CHECK(cfg.upstream.io_timeout == 3600000);
    CHECK(cfg.upstream.response_buffer == 4096);
    CHECK(cfg.limits.request_body == 0 && cfg.limits.header_count == 10000 && cfg.limits.header_bytes == 1536);
    CHECK(cfg.limits.stream_resets == 1);
    CHECK(cfg.front.idle_timeout == 1000 && cfg.front.stall_timeout == 100);
    CHECK(cfg.front.handshake_timeout == 600000 && cfg.front.max_streams == 256);
    CHECK(cfg.assets.root != NULL && strcmp(cfg.assets.root, "/tmp") == 0);
    CHECK(cfg.assets.url_prefix != NULL && strcmp(cfg.assets.url_prefix, "/ceph") == 0);
    CHECK(cfg.assets.preload.size == 2);
    if (cfg.assets.preload.size == 2)
        CHECK(strcmp(cfg.assets.preload.entries[0], "/assets/logo.svg") == 0 &&
              strcmp(cfg.assets.preload.entries[1], "/assets/font.woff2?v=2") == 0);
    CHECK(cfg.assets.push == 1 && cfg.assets.early_hints == 0);
    CHECK(cfg.log.level == LOG_LEVEL_DEBUG);
    config_free(&cfg);
    config_free(&cfg);
    unlink(cert);
    unlink(key);
    unlink(ca);
}

static void test_config_load_file(void)
{
    char path[64], *errors = NULL;
    size_t size = 0;
    struct config cfg;
    FILE *fp, *err;
    make_temp_file(path);
    fp = fopen(path, "w");
    fputs(BASE, fp);
    fclose(fp);
    CHECK(config_load(&cfg, path, stderr) == 0);
    CHECK(cfg.path != NULL && strcmp(cfg.path, path) == 0 && cfg.listen.size == 1);
    config_free(&cfg);
    unlink(path);

    err = open_memstream(&errors, &size);
    CHECK(config_load(&cfg, path, err) == -1);
    fclose(err);
    CHECK(strstr(errors, "cannot read the configuration (No such file or directory)") != NULL);
    CHECK(strncmp(errors, path, strlen(path)) == 0);
    config_free(&cfg);
    free(errors);
}

static void test_yaml_errors(void)
{
    EXPECT_ERROR(BASE "upstream:\n  queue: {max: 1\n", "t.yaml:8:1: yaml: ");
    EXPECT_ERROR("listen:\n  - address: \"[::]:8443\n", "t.yaml:3:1: yaml: found unexpected end of stream");
    EXPECT_ERROR(BASE_LISTEN "  - address: *:8080\n",
                 "t.yaml:6:15: yaml: did not find expected alphabetic or numeric character "
                 "(while scanning an alias at line 6, column 14); quote values that start with *");
    EXPECT_ERROR(BASE_LISTEN "  - address: [::]:8080\n", "t.yaml:6:15: yaml: did not find expected node content (while parsing a "
                                                         "flow node at line 6, column 15); quote values that start with [ or {");
    EXPECT_ERROR(BASE "upstream: x\n  y: z\n", "t.yaml:7:4: yaml: mapping values are not allowed");
    EXPECT_ERROR(BASE "upstream:\n\tmax_connections: 1\n", "t.yaml:7:1: yaml: found character that cannot start any token (a tab)");
    EXPECT_ERROR(BASE "log:\n  level: \"\xff\"\n", "t.yaml:7:11: yaml: invalid leading UTF-8 octet (byte 0xff)");
    EXPECT_ERROR(BASE "---\nlog: {}\n", "t.yaml:6:1: yaml: a second document starts here");
    EXPECT_ERROR(BASE "log: &a {level: info}\n", "t.yaml:6:6: log: anchors (&a) are not supported");
    EXPECT_ERRORS(BASE "log: &a {level: info}\nfront: *a\n", 2, "t.yaml:7:8: front: aliases (*a) are not supported");
    EXPECT_ERROR(BASE "upstream:\n  <<: {max_connections: 2}\n", "t.yaml:7:3: upstream.<<: merge keys (<<) are not supported");
    EXPECT_ERROR(BASE "upstream:\n  max_connections: 2\n  max_connections: 3\n",
                 "t.yaml:8:3: upstream.max_connections: duplicate key, already set at line 7, column 3;");
    EXPECT_ERROR(BASE "listen: []\n", "t.yaml:6:1: listen: duplicate key, already set at line 1, column 1;");
    EXPECT_ERROR(BASE "? [a]\n: b\n", "t.yaml:6:3: ?: a key must be a plain name");
    EXPECT_ERROR(BASE "log: {level: \"in\\0fo\"}\n", "t.yaml:6:14: log.level: the value contains a NUL character");
}

static void test_structure_errors(void)
{
    EXPECT_ERRORS("", 2, "t.yaml:1:1: listen: is required;");
    EXPECT_ERRORS("# only a comment\n", 2, "t.yaml:1:1: backends: is required;");
    EXPECT_ERROR("- listen\n", "t.yaml:1:1: (top level): is a list, but the file must be a map of sections;");
    EXPECT_ERROR("listen:\n  - address: \"[::]:8443\"\n    tls: self-signed\n",
                 "t.yaml:1:1: backends: is required; list the dashboard URLs to forward to");
    EXPECT_ERROR("backends:\n  - url: http://h\n", "t.yaml:1:1: listen: is required;");
    EXPECT_ERROR("listen: []\nbackends: [{url: http://h}]\n", "t.yaml:1:9: listen: needs at least one entry;");
    EXPECT_ERROR("listen: [{address: \"*:1\"}]\nbackends:\n", "t.yaml:2:10: backends: needs at least one entry;");
    EXPECT_ERROR("listen:\n  - tls: self-signed\nbackends: [{url: http://h}]\n",
                 "t.yaml:2:5: listen[0].address: is required; write it like address: \"[::]:8443\"");
    EXPECT_ERROR(BASE "  - verify: true\n", "t.yaml:6:5: backends[1].url: is required;");
}

static void test_unknown_keys(void)
{
    EXPECT_ERROR(BASE "upstream:\n  max_conections: 10\n",
                 "t.yaml:7:3: upstream.max_conections: unknown key; did you mean max_connections?");
    EXPECT_ERROR(BASE "Log: {level: info}\n", "t.yaml:6:1: Log: unknown key; did you mean log?");
    EXPECT_ERROR(BASE "upstream:\n  timeouts: {conect: 1s}\n",
                 "t.yaml:7:14: upstream.timeouts.conect: unknown key; did you mean connect?");
    EXPECT_ERROR("lisen:\n  - address: \"*:1\"\nbackends: [{url: http://h}]\n",
                 "t.yaml:1:1: lisen: unknown key; did you mean listen?");
    EXPECT_ERROR(
        BASE "frontend: {}\n",
        "t.yaml:6:1: frontend: unknown key; the keys allowed here are: listen, backends, upstream, limits, front, health_check, assets, log");
    EXPECT_ERROR(BASE "upstream: {ab: 1}\n", "t.yaml:6:12: upstream.ab: unknown key; the keys allowed here are: max_connections,");
    EXPECT_ERROR(BASE "  - url: http://h\n    verfy: true\n", "t.yaml:7:5: backends[1].verfy: unknown key; did you mean verify?");
    EXPECT_ERROR(BASE "  - url: http://h\n    \"ca\\x01\": x\n", "t.yaml:7:5: backends[1].ca?: unknown key");
}

static void test_wrong_types(void)
{
    EXPECT_ERROR(BASE "upstream:\n  queue: 5\n", "t.yaml:7:10: upstream.queue: \"5\" is a single value, but it must be a map;");
    EXPECT_ERROR(BASE "upstream:\n  queue: [5]\n", "t.yaml:7:10: upstream.queue: is a list, but it must be a map;");
    EXPECT_ERROR(BASE "limits:\n  header_count: [1]\n",
                 "t.yaml:7:17: limits.header_count: is a list, but it must be a single value;");
    EXPECT_ERROR(BASE "limits:\n  header_count: {a: 1}\n",
                 "t.yaml:7:17: limits.header_count: is a map, but it must be a single value;");
    EXPECT_ERROR(BASE "limits:\n  header_count:\n",
                 "t.yaml:7:16: limits.header_count: has no value; write it like header_count: 100");
    EXPECT_ERROR("listen: {address: \"[::]:1\"}\nbackends: [{url: http://h}]\n",
                 "t.yaml:1:9: listen: is a map, but it must be a list;");
    EXPECT_ERROR(BASE "  - http://h\n", "t.yaml:6:5: backends[1]: \"http://h\" is a single value, but it must be a map;");
}

static void test_bad_numbers(void)
{
    EXPECT_ERROR(BASE "upstream:\n  queue: { max: 1024, timeout: 10 }\n",
                 "t.yaml:7:32: upstream.queue.timeout: \"10\" has no unit; write it like 10s or 500ms");
    EXPECT_ERROR(BASE "upstream:\n  max_connections: ten\n",
                 "t.yaml:7:20: upstream.max_connections: \"ten\" is not a whole number;");
    EXPECT_ERROR(BASE "upstream:\n  max_connections: 1.5\n",
                 "t.yaml:7:20: upstream.max_connections: \"1.5\" is not a whole number;");
    EXPECT_ERROR(BASE "limits:\n  stream_resets: 0\n",
                 "t.yaml:7:18: limits.stream_resets: \"0\" is out of range; use 1 to 1000000");
    EXPECT_ERROR(BASE "front:\n  max_streams: -1\n", "t.yaml:7:16: front.max_streams: \"-1\" is negative;");
    EXPECT_ERROR(BASE "front:\n  max_streams: 99999999999999999999999\n",
                 "t.yaml:7:16: front.max_streams: \"99999999999999999999999\" is too large;");
    EXPECT_ERROR(BASE "limits:\n  request_body: 16mib\n", "t.yaml:7:17: limits.request_body: \"16mib\" has an unknown unit;");
    EXPECT_ERROR(BASE "limits:\n  request_body: lots\n", "t.yaml:7:17: limits.request_body: \"lots\" is not a size;");
    EXPECT_ERROR(BASE "front:\n  idle_timeout: 10 s\n", "t.yaml:7:17: front.idle_timeout: \"10 s\" has a space before the unit;");
    EXPECT_ERROR(BASE "front:\n  idle_timeout: 1.0005s\n",
                 "t.yaml:7:17: front.idle_timeout: \"1.0005s\" is finer than a millisecond;");
}

static void test_out_of_range(void)
{
    EXPECT_ERROR(BASE "upstream:\n  max_connections: 0\n",
                 "t.yaml:7:20: upstream.max_connections: \"0\" is out of range; use 1 to 1024");
    EXPECT_ERROR(BASE "upstream:\n  max_connections: 1025\n",
                 "t.yaml:7:20: upstream.max_connections: \"1025\" is out of range; use 1 to 1024");
    EXPECT_ERROR(BASE "upstream:\n  idle_timeout: 50ms\n",
                 "t.yaml:7:17: upstream.idle_timeout: \"50ms\" is out of range; use 100ms to 1h");
    EXPECT_ERROR(BASE "upstream:\n  response_buffer: 2GiB\n",
                 "t.yaml:7:20: upstream.response_buffer: \"2GiB\" is out of range; use 4KiB to 1GiB");
    EXPECT_ERROR(BASE "upstream:\n  queue: {max: 1000001}\n",
                 "t.yaml:7:16: upstream.queue.max: \"1000001\" is out of range; use 0 to 1000000");
    EXPECT_ERROR(BASE "front:\n  handshake_timeout: 11m\n",
                 "t.yaml:7:22: front.handshake_timeout: \"11m\" is out of range; use 100ms to 10m");
    EXPECT_ERROR(BASE "limits:\n  header_bytes: 1023\n",
                 "t.yaml:7:17: limits.header_bytes: \"1023\" is out of range; use 1KiB to 1MiB");
    EXPECT_ERROR(BASE "upstream:\n  timeouts: {io: 0ms}\n",
                 "t.yaml:7:18: upstream.timeouts.io: \"0ms\" is out of range; use 1ms to 1h");
}

static void test_bad_addresses(void)
{
    EXPECT_ERROR(BASE_LISTEN "  - address: 127.0.0.1\n", "t.yaml:6:14: listen[1].address: \"127.0.0.1\" has no port;");
    EXPECT_ERROR(BASE_LISTEN "  - address: \"::1:80\"\n",
                 "t.yaml:6:14: listen[1].address: \"::1:80\" looks like an IPv6 address without brackets;");
    EXPECT_ERROR(BASE_LISTEN "  - address: example.com:80\n",
                 "t.yaml:6:14: listen[1].address: \"example.com:80\" is not a numeric address;");
    EXPECT_ERROR(BASE_LISTEN "  - address: \"[::1]:99999\"\n",
                 "t.yaml:6:14: listen[1].address: \"[::1]:99999\" has an invalid port;");
    EXPECT_ERROR(BASE_LISTEN "  - address: \"[::]:8443\"\n",
                 "t.yaml:6:14: listen[1].address: \"[::]:8443\" is also used by the listener at line 4;");
}

static void test_bad_urls(void)
{
    EXPECT_ERROR(BASE "  - url: ftp://h\n",
                 "t.yaml:6:10: backends[1].url: \"ftp://h\" has an unsupported scheme; use http:// or https://");
    EXPECT_ERROR(BASE "  - url: 127.0.0.1:8090\n", "t.yaml:6:10: backends[1].url: \"127.0.0.1:8090\" has no scheme;");
    EXPECT_ERROR(BASE "  - url: http://h/api\n",
                 "t.yaml:6:10: backends[1].url: \"http://h/api\" has a path; h2front forwards request paths unchanged");
    EXPECT_ERROR(BASE "  - url: http://h/?x=1\n", "t.yaml:6:10: backends[1].url: \"http://h/?x=1\" has a query or fragment;");
    EXPECT_ERROR(BASE "  - url: http://:80\n", "t.yaml:6:10: backends[1].url: \"http://:80\" has no host;");
    EXPECT_ERROR(BASE "  - url: https://\n", "t.yaml:6:10: backends[1].url: \"https://\" has no host;");
    EXPECT_ERROR(BASE "  - url: http://h:0\n",
                 "t.yaml:6:10: backends[1].url: \"http://h:0\" has an invalid port; use a number from 1 to 65535");
    EXPECT_ERROR(BASE "  - url: http://h:65536\n", "t.yaml:6:10: backends[1].url: \"http://h:65536\" has an invalid port;");
    EXPECT_ERROR(BASE "  - url: \"http://h:\"\n", "t.yaml:6:10: backends[1].url: \"http://h:\" has an invalid port;");
    EXPECT_ERROR(BASE "  - url: http://u@h\n", "t.yaml:6:10: backends[1].url: \"http://u@h\" contains user credentials;");
    EXPECT_ERROR(BASE "  - url: \"http://[::1\"\n", "t.yaml:6:10: backends[1].url: \"http://[::1\" has an invalid IPv6 host;");
    EXPECT_ERROR(BASE "  - url: \"http://::1:80\"\n",
                 "t.yaml:6:10: backends[1].url: \"http://::1:80\" has an IPv6 host without brackets;");
    EXPECT_ERROR(BASE "  - url: http://h$x\n", "t.yaml:6:10: backends[1].url: \"http://h$x\" has an invalid host name;");
}

static void test_tls_errors(void)
{
    EXPECT_ERROR(BASE_LISTEN "  - address: \"[::]:1\"\n    tls: yes\n",
                 "t.yaml:7:10: listen[1].tls: \"yes\" is not a TLS setting; write tls: self-signed, or a map");
    EXPECT_ERROR(BASE_LISTEN "  - address: \"[::]:1\"\n    tls: [a]\n",
                 "t.yaml:7:10: listen[1].tls: is a list, but it must be self-signed or a map;");
    EXPECT_ERROR(BASE_LISTEN "  - address: \"[::]:1\"\n    tls:\n", "t.yaml:7:9: listen[1].tls: has no value;");
    EXPECT_ERRORS(BASE_LISTEN "  - address: \"[::]:1\"\n    tls: {}\n", 2, "t.yaml:7:10: listen[1].tls.key: is required;");
    EXPECT_ERROR(BASE_LISTEN "  - address: \"[::]:1\"\n    tls:\n      certificate: /dev/null\n      keyy: /dev/null\n",
                 "t.yaml:9:7: listen[1].tls.keyy: unknown key; did you mean key?");
}

static void test_unreadable_files(void)
{
    char key[64], yaml[512];
    make_temp_file(key);
    snprintf(yaml, sizeof(yaml),
             BASE_LISTEN "  - address: \"[::]:1\"\n    tls:\n      certificate: /nonexistent/cert.pem\n      key: %s\n", key);
    EXPECT_ERROR(yaml,
                 "t.yaml:8:20: listen[1].tls.certificate: \"/nonexistent/cert.pem\" cannot be read (No such file or directory);");
    snprintf(yaml, sizeof(yaml), BASE_LISTEN "  - address: \"[::]:1\"\n    tls: {certificate: %s, key: /nonexistent/key.pem}\n",
             key);
    EXPECT_ERROR(yaml, "t.yaml:7:55: listen[1].tls.key: \"/nonexistent/key.pem\" cannot be read");
    if (geteuid() != 0) { /* root reads anything, so a mode-000 file only tests something for other users */
        chmod(key, 0);
        snprintf(yaml, sizeof(yaml),
                 "listen: [{address: \"*:1\", tls: self-signed}]\nbackends:\n  - url: https://h\n    ca_file: %s\n", key);
        EXPECT_ERROR(yaml, "t.yaml:4:14: backends[0].ca_file: ");
    }
    unlink(key);
}

static void test_health_check(void)
{
    struct config cfg;
    CHECK(loads(&cfg, BASE));
    CHECK(strcmp(cfg.health_check.path, "/") == 0 && cfg.health_check.interval == 2000 && cfg.health_check.timeout == 2000);
    CHECK(cfg.health_check.rise == 2 && cfg.health_check.fall == 2 && cfg.health_check.standby_status == 500);
    config_free(&cfg);
    CHECK(loads(&cfg, BASE "health_check: { path: /api/health/minimal, interval: 500ms, rise: 1, standby_status: 503 }\n"));
    CHECK(strcmp(cfg.health_check.path, "/api/health/minimal") == 0 && cfg.health_check.interval == 500);
    CHECK(cfg.health_check.rise == 1 && cfg.health_check.standby_status == 503);
    config_free(&cfg);
    EXPECT_ERROR(BASE "health_check:\n  path: health\n", "t.yaml:7:9: health_check.path: \"health\" is not an absolute path;");
    EXPECT_ERROR(BASE "health_check:\n  standby_status: 200\n", "t.yaml:7:19: health_check.standby_status: ");
    EXPECT_ERROR(BASE "health_check:\n  interval: 10\n", "t.yaml:7:13: health_check.interval: ");
    EXPECT_ERROR(BASE "health_check:\n  fal: 3\n", "t.yaml:7:3: health_check.fal: unknown key; did you mean fall?");
}

static void test_assets(void)
{
    struct config cfg;
    CHECK(loads(&cfg, BASE "assets:\n  root: ~\n  url_prefix: \"\"\n  preload: []\n"));
    CHECK(cfg.assets.root == NULL && strcmp(cfg.assets.url_prefix, "") == 0 && cfg.assets.preload.size == 0);
    config_free(&cfg);
    EXPECT_ERROR(BASE "assets:\n  root: /nonexistent/dist\n",
                 "t.yaml:7:9: assets.root: \"/nonexistent/dist\" cannot be read (No such file or directory);");
    EXPECT_ERROR(BASE "assets:\n  root: /dev/null\n", "t.yaml:7:9: assets.root: \"/dev/null\" is not a directory;");
    EXPECT_ERROR(BASE "assets:\n  root: [/tmp]\n", "t.yaml:7:9: assets.root: is a list, but it must be a single value;");
    EXPECT_ERROR(BASE "assets:\n  url_prefix: ceph\n", "t.yaml:7:15: assets.url_prefix: \"ceph\" is not a URL prefix;");
    EXPECT_ERROR(BASE "assets:\n  url_prefix: /ceph/\n", "t.yaml:7:15: assets.url_prefix: \"/ceph/\" is not a URL prefix;");
    EXPECT_ERROR(BASE "assets:\n  url_prefix:\n", "t.yaml:7:14: assets.url_prefix: has no value;");
    EXPECT_ERROR(BASE "assets:\n  preload: [/a.svg, logo.svg]\n", "t.yaml:7:21: assets.preload[1]: \"logo.svg\" is not a path;");
    EXPECT_ERROR(BASE "assets:\n  preload: [\"/a b\"]\n", "t.yaml:7:13: assets.preload[0]: \"/a b\" is not a path;");
    EXPECT_ERROR(BASE "assets:\n  preload: [\"/a?x#y\"]\n", "t.yaml:7:13: assets.preload[0]: \"/a?x#y\" is not a path;");
    EXPECT_ERROR(BASE "assets:\n  preload: [{a: 1}]\n", "t.yaml:7:13: assets.preload[0]: is a map, but it must be a single value;");
    EXPECT_ERROR(BASE "assets:\n  preload: /a.svg\n",
                 "t.yaml:7:12: assets.preload: \"/a.svg\" is a single value, but it must be a list;");
    EXPECT_ERROR(BASE "assets:\n  push: 1\n", "t.yaml:7:9: assets.push: \"1\" is not a boolean;");
}

static void test_cross_key_rules(void)
{
    EXPECT_ERROR(BASE_LISTEN "  - address: \"[::]:1\"\n    tls: self-signed\n    redirect: true\n",
                 "t.yaml:8:15: listen[1].redirect: only plain listeners redirect, and this one has tls;");
    EXPECT_ERROR("listen:\n  - address: \"[::]:8080\"\n    redirect: true\nbackends: [{url: http://h}]\n",
                 "t.yaml:3:15: listen[0].redirect: no listener has tls, so there is nowhere to redirect to;");
    EXPECT_ERROR(BASE "    ca_file: /dev/null\n",
                 "t.yaml:6:14: backends[0].ca_file: only applies to https:// backends; remove it or make the url https://");
    EXPECT_ERROR(BASE "    verify: false\n", "t.yaml:6:13: backends[0].verify: only applies to https:// backends;");
    EXPECT_ERROR(BASE "  - url: https://h\n    verify: no\n",
                 "t.yaml:7:13: backends[1].verify: \"no\" is not a boolean; write true or false");
    EXPECT_ERROR(BASE_LISTEN "  - address: \"[::]:1\"\n    redirect: True\n",
                 "t.yaml:7:15: listen[1].redirect: \"True\" is not a boolean;");
}

/* All problems in a file are reported in one run, in file order, and nothing is half-loaded. */
static void test_reports_all_errors(void)
{
    const char *yaml = "listen:\n"
                       "  - address: 1.2.3.4\n"
                       "    redirect: yes\n"
                       "backends:\n"
                       "  - url: ftp://x\n"
                       "upstream:\n"
                       "  max_conections: 10\n"
                       "  queue: { max: 1024, timeout: 10 }\n"
                       "log: {level: loud}\n";
    struct config cfg;
    char *errors = NULL;
    CHECK(load(&cfg, yaml, &errors) == -1);
    CHECK(count_lines(errors) == 6);
    CHECK(has_line(errors, "t.yaml:2:14: listen[0].address: "));
    CHECK(has_line(errors, "t.yaml:3:15: listen[0].redirect: "));
    CHECK(has_line(errors, "t.yaml:5:10: backends[0].url: "));
    CHECK(has_line(errors, "t.yaml:7:3: upstream.max_conections: "));
    CHECK(has_line(errors, "t.yaml:8:32: upstream.queue.timeout: "));
    CHECK(has_line(errors, "t.yaml:9:14: log.level: \"loud\" is not a log level; use error, warn, info or debug"));
    CHECK(strstr(errors, "t.yaml:2:14") < strstr(errors, "t.yaml:9:14"));
    config_free(&cfg);
    free(errors);
}

/* Values echoed in messages cannot break the one-line format or run on forever. */
static void test_messages_stay_one_line(void)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), BASE "log: {level: \"a\\nb\\\"c%0200d\"}\n", 0);
    EXPECT_ERROR(yaml, "t.yaml:6:14: log.level: \"a\\x0ab\\\"c000");
    CHECK(fails_with(yaml, 1, "t.yaml:6:14: log.level: \"a\\x0ab\\\"c0000000000000000000000000000000000000000000...\" is not"));
}

static void test_parse_size(void)
{
    uint64_t v = 7;
    const char *why = NULL;
    CHECK(config_parse_size("0", &v, &why) == 0 && v == 0);
    CHECK(config_parse_size("512", &v, &why) == 0 && v == 512);
    CHECK(config_parse_size("1B", &v, &why) == 0 && v == 1);
    CHECK(config_parse_size("1KB", &v, &why) == 0 && v == 1000);
    CHECK(config_parse_size("1KiB", &v, &why) == 0 && v == 1024);
    CHECK(config_parse_size("64KiB", &v, &why) == 0 && v == 65536);
    CHECK(config_parse_size("16MiB", &v, &why) == 0 && v == 16777216);
    CHECK(config_parse_size("1.5MB", &v, &why) == 0 && v == 1500000);
    CHECK(config_parse_size("1.5KiB", &v, &why) == 0 && v == 1536);
    CHECK(config_parse_size("2GB", &v, &why) == 0 && v == 2000000000);
    CHECK(config_parse_size("1GiB", &v, &why) == 0 && v == 1073741824);
    CHECK(config_parse_size("0.5KiB", &v, &why) == 0 && v == 512);
    CHECK(config_parse_size("2.0", &v, &why) == 0 && v == 2);
    CHECK(config_parse_size("1.5000000000000KiB", &v, &why) == 0 && v == 1536);
    CHECK(config_parse_size("18446744073709551615", &v, &why) == 0 && v == UINT64_MAX);
    CHECK(config_parse_size("17179869183GiB", &v, &why) == 0 && v == 17179869183ull * 1073741824ull);

    v = 7;
    CHECK(config_parse_size("", &v, &why) == -1 && strstr(why, "is empty") != NULL && v == 7);
    CHECK(config_parse_size("-1", &v, &why) == -1 && strstr(why, "is negative") != NULL);
    CHECK(config_parse_size("abc", &v, &why) == -1 && strstr(why, "is not a size") != NULL);
    CHECK(config_parse_size("+1", &v, &why) == -1 && strstr(why, "is not a size") != NULL);
    CHECK(config_parse_size(".5KiB", &v, &why) == -1 && strstr(why, "is not a size") != NULL);
    CHECK(config_parse_size("1.KiB", &v, &why) == -1 && strstr(why, "is not a size") != NULL);
    CHECK(config_parse_size("16mib", &v, &why) == -1 && strstr(why, "unknown unit") != NULL);
    CHECK(config_parse_size("16kb", &v, &why) == -1 && strstr(why, "unknown unit") != NULL);
    CHECK(config_parse_size("1e3", &v, &why) == -1 && strstr(why, "unknown unit") != NULL);
    CHECK(config_parse_size("16MiB ", &v, &why) == -1 && strstr(why, "unknown unit") != NULL);
    CHECK(config_parse_size("16 MiB", &v, &why) == -1 && strstr(why, "space before the unit") != NULL);
    CHECK(config_parse_size("1.5", &v, &why) == -1 && strstr(why, "whole number of bytes") != NULL);
    CHECK(config_parse_size("1.0001KB", &v, &why) == -1 && strstr(why, "whole number of bytes") != NULL);
    CHECK(config_parse_size("1.0000000001KiB", &v, &why) == -1 && strstr(why, "whole number of bytes") != NULL);
    CHECK(config_parse_size("18446744073709551616", &v, &why) == -1 && strstr(why, "too large") != NULL);
    CHECK(config_parse_size("17179869184GiB", &v, &why) == -1 && strstr(why, "too large") != NULL);
    CHECK(config_parse_size("99999999999999999999999999MiB", &v, &why) == -1 && strstr(why, "too large") != NULL);
    CHECK(config_parse_size("18446744073709551615.5", &v, &why) == -1);
    CHECK(v == 7);
}

static void test_parse_duration(void)
{
    uint64_t v = 7;
    const char *why = NULL;
    CHECK(config_parse_duration("500ms", &v, &why) == 0 && v == 500);
    CHECK(config_parse_duration("0ms", &v, &why) == 0 && v == 0);
    CHECK(config_parse_duration("30s", &v, &why) == 0 && v == 30000);
    CHECK(config_parse_duration("1.5s", &v, &why) == 0 && v == 1500);
    CHECK(config_parse_duration("0.001s", &v, &why) == 0 && v == 1);
    CHECK(config_parse_duration("2m", &v, &why) == 0 && v == 120000);
    CHECK(config_parse_duration("1h", &v, &why) == 0 && v == 3600000);
    CHECK(config_parse_duration("1.5h", &v, &why) == 0 && v == 5400000);
    CHECK(config_parse_duration("5124095576030h", &v, &why) == 0 && v == 5124095576030ull * 3600000ull);

    v = 7;
    CHECK(config_parse_duration("10", &v, &why) == -1 && strcmp(why, "has no unit; write it like 10s or 500ms") == 0);
    CHECK(config_parse_duration("1.5", &v, &why) == -1 && strstr(why, "has no unit") != NULL);
    CHECK(config_parse_duration("", &v, &why) == -1 && strstr(why, "is empty") != NULL);
    CHECK(config_parse_duration("-1s", &v, &why) == -1 && strstr(why, "is negative") != NULL);
    CHECK(config_parse_duration("s", &v, &why) == -1 && strstr(why, "is not a duration") != NULL);
    CHECK(config_parse_duration("10sec", &v, &why) == -1 && strstr(why, "unknown unit") != NULL);
    CHECK(config_parse_duration("10S", &v, &why) == -1 && strstr(why, "unknown unit") != NULL);
    CHECK(config_parse_duration("1d", &v, &why) == -1 && strstr(why, "unknown unit") != NULL);
    CHECK(config_parse_duration("10 s", &v, &why) == -1 && strstr(why, "space before the unit") != NULL);
    CHECK(config_parse_duration("0.5ms", &v, &why) == -1 && strstr(why, "finer than a millisecond") != NULL);
    CHECK(config_parse_duration("1.0001s", &v, &why) == -1 && strstr(why, "finer than a millisecond") != NULL);
    CHECK(config_parse_duration("5124095576031h", &v, &why) == -1 && strstr(why, "too large") != NULL);
    CHECK(config_parse_duration("99999999999999999999ms", &v, &why) == -1 && strstr(why, "too large") != NULL);
    CHECK(v == 7);
}

/* Parses an address that must be valid and returns its family/port/text form for comparison. */
static int address_is(const char *s, int family, const char *host, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    const char *why = NULL;
    char text[64] = "";
    const void *addr;
    unsigned got_port;
    if (config_parse_address(s, &ss, &len, &why) != 0) {
        fprintf(stderr, "  %s: %s\n", s, why);
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        got_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        addr = &((struct sockaddr_in *)&ss)->sin_addr;
        got_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    inet_ntop(ss.ss_family, addr, text, sizeof(text));
    return ss.ss_family == family && strcmp(text, host) == 0 && got_port == port &&
           len == (family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
}

/* Parses an address that must be rejected, with a message containing `expected`. */
static int address_fails(const char *s, const char *expected)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    const char *why = NULL;
    if (config_parse_address(s, &ss, &len, &why) == 0)
        return 0;
    if (strstr(why, expected) == NULL)
        fprintf(stderr, "  %s: %s\n", s, why);
    return strstr(why, expected) != NULL;
}

static void test_parse_address(void)
{
    CHECK(address_is("[::]:8443", AF_INET6, "::", 8443));
    CHECK(address_is("[::1]:1", AF_INET6, "::1", 1));
    CHECK(address_is("[2001:db8::7]:65535", AF_INET6, "2001:db8::7", 65535));
    CHECK(address_is("0.0.0.0:8080", AF_INET, "0.0.0.0", 8080));
    CHECK(address_is("*:80", AF_INET, "0.0.0.0", 80));
    CHECK(address_is("localhost:9000", AF_INET, "127.0.0.1", 9000));
    CHECK(address_is("192.0.2.10:443", AF_INET, "192.0.2.10", 443));
    CHECK(address_is("[::ffff:127.0.0.1]:80", AF_INET6, "::ffff:127.0.0.1", 80));

    CHECK(address_fails("", "is empty"));
    CHECK(address_fails("127.0.0.1", "has no port"));
    CHECK(address_fails("[::1]", "has no port"));
    CHECK(address_fails("[::1]80", "has no port"));
    CHECK(address_fails("[::1", "unclosed ["));
    CHECK(address_fails("::1:80", "without brackets"));
    CHECK(address_fails("[::1]:", "invalid port"));
    CHECK(address_fails("127.0.0.1:0", "invalid port"));
    CHECK(address_fails("127.0.0.1:65536", "invalid port"));
    CHECK(address_fails("127.0.0.1:080000", "invalid port"));
    CHECK(address_fails("127.0.0.1:80x", "invalid port"));
    CHECK(address_fails("127.0.0.1:-1", "invalid port"));
    CHECK(address_fails("[zz]:80", "not a valid IPv6 address"));
    CHECK(address_fails("[127.0.0.1]:80", "not a valid IPv6 address"));
    CHECK(address_fails("[fe80::1%eth0]:80", "not a valid IPv6 address"));
    CHECK(address_fails("example.com:80", "not a numeric address"));
    CHECK(address_fails("1.2.3:80", "not a numeric address"));
    CHECK(address_fails("256.0.0.1:80", "not a numeric address"));
    CHECK(address_fails(":80", "not a numeric address"));
    CHECK(address_fails("[0000000000000000000000000000000000000000000000000000000000000:1]:80", "not a valid IPv6 address"));
}

int main(void)
{
    test_defaults();
    test_minimal_config_keeps_defaults();
    test_full_config();
    test_config_load_file();
    test_yaml_errors();
    test_structure_errors();
    test_unknown_keys();
    test_wrong_types();
    test_bad_numbers();
    test_out_of_range();
    test_bad_addresses();
    test_bad_urls();
    test_tls_errors();
    test_unreadable_files();
    test_cross_key_rules();
    test_health_check();
    test_assets();
    test_reports_all_errors();
    test_messages_stay_one_line();
    test_parse_size();
    test_parse_duration();
    test_parse_address();
    printf("%u passed, %u failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
