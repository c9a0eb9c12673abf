/*
 * config: YAML file -> struct config, with every mistake reported at once and located (see config.h).
 *
 * The file is read into a ytree first; validation then walks it against key tables. Each table row names a key, the
 * shape its value must have (single value, list, map), the function that applies it, the parser and bounds for numbers,
 * where the result goes, and a hint saying what to write. Cross-key rules (redirect needs a TLS listener, ca_file needs
 * https) run after the keys they relate. Validation never stops at the first problem: a config is reported in full.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "log.h"
#include "ytree.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define SECOND 1000ull
#define MINUTE (60ull * SECOND)
#define HOUR (60ull * MINUTE)

/* A config file larger than this is certainly a mistake (e.g. -c pointing at a log or a device). */
#define CONFIG_MAX_FILE_SIZE (16 * MIB)
/* Dotted key paths are short; a longer (hostile) key is truncated in messages, never overflowed. */
#define PATH_SIZE 256
/* Values quoted in messages are cut after this many characters so one line stays one line. */
#define QUOTE_MAX 48
/* Keys longer than this are never close enough to a known key to suggest it. */
#define SUGGEST_MAX_LEN 64

struct loader {
    const char *name; /* file name for messages */
    FILE *err;
    unsigned errors;
};

/* How a number is written (count, size, duration) and how to print a bound back in the same notation. */
struct number_kind {
    int (*parse)(const char *s, uint64_t *out, const char **why);
    void (*format)(uint64_t value, char *buf, size_t size);
};

/* The shape a key's value must have; checked before the key's apply function runs. */
enum shape {
    SHAPE_SCALAR,
    SHAPE_LIST,
    SHAPE_MAP,
    SHAPE_SCALAR_OR_MAP,
    SHAPE_SCALAR_OR_NULL, /* optional settings whose default is "not set", written as ~ in the reference file */
};

struct key_spec;
typedef void apply_fn(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path, void *base);

/* One row of a key table. `base` (given to apply) is the struct the table fills: config, config_listen or config_backend. */
struct key_spec {
    const char *name;
    enum shape shape;
    apply_fn *apply;
    const struct number_kind *number; /* numbers: parser and bound format */
    size_t offset;                    /* where apply stores the value, from base */
    uint64_t min, max;                /* numbers: inclusive bounds */
    const struct key_spec *children;  /* maps: their keys; lists: the keys of each item */
    int required;
    const char *hint; /* what to write; ends "missing", "wrong type" and "empty" messages */
};

/* ---- allocation ---------------------------------------------------------------------------------------------------- */

/* Allocation failure while loading the configuration leaves nothing sensible to do but stop. */
static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count == 0 ? 1 : count, size);
    if (p == NULL) {
        fputs("h2front: out of memory while loading the configuration\n", stderr);
        abort();
    }
    return p;
}

/* realloc that cannot fail. */
static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (p == NULL) {
        fputs("h2front: out of memory while loading the configuration\n", stderr);
        abort();
    }
    return p;
}

/* strndup that cannot fail, for copying values out of the tree that is freed after loading. */
static char *xstrndup(const char *s, size_t len)
{
    char *copy = xcalloc(len + 1, 1);
    memcpy(copy, s, len);
    return copy;
}

/* strdup that cannot fail. */
static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* ---- messages ------------------------------------------------------------------------------------------------------ */

/* Every problem is one line `FILE:LINE:COL: key: what is wrong; what to do`, written here and counted. */
__attribute__((format(printf, 4, 5))) static void report(struct loader *ld, const struct ytree_node *at, const char *path,
                                                         const char *fmt, ...)
{
    va_list ap;
    fprintf(ld->err, "%s:%zu:%zu: %s: ", ld->name, at->line, at->column, path);
    va_start(ap, fmt);
    vfprintf(ld->err, fmt, ap);
    va_end(ap);
    fputc('\n', ld->err);
    ++ld->errors;
}

/* Values are echoed in double quotes, escaped and shortened, so a stray control character cannot break the line. */
static const char *quote(const char *text, char *buf, size_t size)
{
    size_t used = 0, shown = 0;
    buf[used++] = '"';
    for (; *text != '\0' && shown != QUOTE_MAX && used + 8 < size; ++text, ++shown) {
        unsigned char c = (unsigned char)*text;
        if (c == '"' || c == '\\')
            used += (size_t)snprintf(buf + used, size - used, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            used += (size_t)snprintf(buf + used, size - used, "\\x%02x", c);
        else
            buf[used++] = (char)c;
    }
    if (*text != '\0')
        used += (size_t)snprintf(buf + used, size - used, "...");
    snprintf(buf + used, size - used, "\"");
    return buf;
}

/* The common case: `key: "value" <why>`, where `why` already says what to do. */
static void report_value(struct loader *ld, const struct ytree_node *value, const char *path, const char *why)
{
    char quoted[QUOTE_MAX * 4 + 16];
    report(ld, value, path, "%s %s", quote(value->text, quoted, sizeof(quoted)), why);
}

/* Builds `parent.name` (or `name` at the top), replacing unprintable bytes so user-written keys stay on one line. */
static void join_path(char *buf, const char *parent, const char *name)
{
    size_t used = (size_t)snprintf(buf, PATH_SIZE, "%s%s", parent, parent[0] != '\0' ? "." : "");
    if (used >= PATH_SIZE)
        used = PATH_SIZE - 1;
    for (; *name != '\0' && used + 1 < PATH_SIZE; ++name)
        buf[used++] = (*name >= 0x20 && *name < 0x7f) ? *name : '?';
    buf[used] = '\0';
}

/* ---- numbers, sizes, durations ------------------------------------------------------------------------------------- */

/* A non-negative decimal as written: whole part and up to 9 fraction digits, kept exact (no floating point). */
struct decimal {
    uint64_t whole, fraction, fraction_scale; /* value = whole + fraction / fraction_scale */
    int overflow;                             /* the whole part does not fit in 64 bits */
    int inexact;                              /* a non-zero digit after the 9th decimal: never a whole byte or ms */
};

/* Reads digits[.digits] at `s`; returns where the unit starts, or NULL if `s` does not start with a number. */
static const char *scan_decimal(const char *s, struct decimal *d)
{
    memset(d, 0, sizeof(*d));
    d->fraction_scale = 1;
    if (*s < '0' || *s > '9')
        return NULL;
    for (; *s >= '0' && *s <= '9'; ++s) {
        if (d->whole > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            d->overflow = 1;
        d->whole = d->whole * 10 + (uint64_t)(*s - '0');
    }
    if (*s != '.')
        return s;
    if (*++s < '0' || *s > '9')
        return NULL;
    for (; *s >= '0' && *s <= '9'; ++s) {
        if (d->fraction_scale == 1000000000ull)
            d->inexact |= *s != '0';
        else
            d->fraction = d->fraction * 10 + (uint64_t)(*s - '0'), d->fraction_scale *= 10;
    }
    return s;
}

/* Multiplies by the unit exactly: -ERANGE when too large, -EDOM when the result is not a whole number of base units. */
static int scale_decimal(const struct decimal *d, uint64_t unit, uint64_t *out)
{
    uint64_t part;
    if (d->overflow || d->whole > UINT64_MAX / unit)
        return -ERANGE;
    if (d->inexact || d->fraction * unit % d->fraction_scale != 0) /* fraction < 1e9, unit < 2^32: no overflow */
        return -EDOM;
    part = d->fraction * unit / d->fraction_scale;
    if (d->whole * unit > UINT64_MAX - part)
        return -ERANGE;
    *out = d->whole * unit + part;
    return 0;
}

struct unit {
    const char *name;
    uint64_t factor;
};

static const struct unit size_units[] = {
    {"", 1}, {"B", 1}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB},
};

static const struct unit duration_units[] = {
    {"ms", 1},
    {"s", SECOND},
    {"m", MINUTE},
    {"h", HOUR},
};

/* Units are matched exactly as written (case included): "mb" could mean millibits, so guessing helps no one. */
static uint64_t find_unit(const struct unit *units, size_t count, const char *name)
{
    for (size_t i = 0; i != count; ++i)
        if (strcmp(units[i].name, name) == 0)
            return units[i].factor;
    return 0;
}

/* Says why text that does not start with a digit is not a number, for the given kind of value. */
static const char *explain_not_a_number(const char *s, const char *empty, const char *negative, const char *garbage)
{
    if (*s == '\0')
        return empty;
    if (*s == '-')
        return negative;
    return garbage;
}

/* Sizes: the whys below are complete sentences, so callers print `"value" <why>` as is. */
int config_parse_size(const char *s, uint64_t *out, const char **why)
{
    struct decimal d;
    const char *unit = scan_decimal(s, &d);
    uint64_t factor;
    int rc;

    if (unit == NULL) {
        *why = explain_not_a_number(s, "is empty; write a size like 64KiB or 16MiB", "is negative; write a size like 64KiB",
                                    "is not a size; write a number and a unit, like 64KiB or 1.5MB (a bare number is bytes)");
        return -1;
    }
    if ((factor = find_unit(size_units, sizeof(size_units) / sizeof(size_units[0]), unit)) == 0) {
        *why = *unit == ' ' ? "has a space before the unit; write the number and unit together, like 16MiB"
                            : "has an unknown unit; use B, KB, MB, GB (1000-based) or KiB, MiB, GiB (1024-based), case as shown";
        return -1;
    }
    if ((rc = scale_decimal(&d, factor, out)) != 0) {
        *why = rc == -EDOM ? "is not a whole number of bytes; use fewer decimals or a smaller unit"
                           : "is too large to count in bytes; use a smaller value";
        return -1;
    }
    return 0;
}

/* Durations in ms; the unit is mandatory because "10" is ambiguous between seconds and milliseconds. */
int config_parse_duration(const char *s, uint64_t *out, const char **why)
{
    struct decimal d;
    const char *unit = scan_decimal(s, &d);
    uint64_t factor;
    int rc;

    if (unit == NULL) {
        *why = explain_not_a_number(s, "is empty; write a duration like 10s or 500ms", "is negative; write a duration like 10s",
                                    "is not a duration; write a number and a unit (ms, s, m or h), like 10s or 500ms");
        return -1;
    }
    if (*unit == '\0') {
        *why = "has no unit; write it like 10s or 500ms";
        return -1;
    }
    if ((factor = find_unit(duration_units, sizeof(duration_units) / sizeof(duration_units[0]), unit)) == 0) {
        *why = *unit == ' ' ? "has a space before the unit; write the number and unit together, like 10s"
                            : "has an unknown unit; use ms, s, m or h, like 10s or 500ms";
        return -1;
    }
    if ((rc = scale_decimal(&d, factor, out)) != 0) {
        *why =
            rc == -EDOM ? "is finer than a millisecond; use whole milliseconds, like 1500ms" : "is too large; use a smaller value";
        return -1;
    }
    return 0;
}

/* Counts (connections, headers, streams) are plain digits: no sign, no unit, no decimals. */
static int parse_count(const char *s, uint64_t *out, const char **why)
{
    struct decimal d;
    const char *end = scan_decimal(s, &d);
    if (end == NULL || *end != '\0' || d.fraction_scale != 1) {
        *why = *s == '-' ? "is negative; write plain digits, like 10" : "is not a whole number; write plain digits, like 10";
        return -1;
    }
    if (d.overflow) {
        *why = "is too large; use a smaller value";
        return -1;
    }
    *out = d.whole;
    return 0;
}

/* Bounds are printed in the notation the key is written in, so "use 4KiB to 1GiB" can be copied back into the file. */
static void format_with_units(uint64_t value, const struct unit *units, size_t count, char *buf, size_t size)
{
    size_t best = 0;
    for (size_t i = 0; i != count; ++i)
        if (units[i].factor > units[best].factor && value % units[i].factor == 0)
            best = i;
    if (value == 0)
        snprintf(buf, size, "0");
    else
        snprintf(buf, size, "%" PRIu64 "%s", value / units[best].factor, units[best].name);
}

/* Prints a byte count with the largest exact binary unit (4096 -> 4KiB). */
static void format_size(uint64_t value, char *buf, size_t size)
{
    static const struct unit binary[] = {{"", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB}};
    format_with_units(value, binary, sizeof(binary) / sizeof(binary[0]), buf, size);
}

/* Prints milliseconds with the largest exact unit (600000 -> 10m). */
static void format_duration(uint64_t value, char *buf, size_t size)
{
    format_with_units(value, duration_units, sizeof(duration_units) / sizeof(duration_units[0]), buf, size);
}

/* Prints a count as plain digits. */
static void format_count(uint64_t value, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRIu64, value);
}

static const struct number_kind COUNT = {parse_count, format_count};
static const struct number_kind SIZE = {config_parse_size, format_size};
static const struct number_kind DURATION = {config_parse_duration, format_duration};

/* ---- addresses and URLs -------------------------------------------------------------------------------------------- */

/* Ports are 1-65535 in plain digits; 0 would mean "any port", which makes no sense in a config file. */
static int parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned value = 0;
    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i != len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        value = value * 10 + (unsigned)(s[i] - '0');
    }
    if (value == 0 || value > 65535)
        return -1;
    *port = (uint16_t)value;
    return 0;
}

/* Splits "host:port" or "[v6]:port"; host is copied into `host` (without brackets) and *port_at points at the port. */
static int split_host_port(const char *s, char *host, size_t size, int *bracketed, const char **port_at, const char **why)
{
    const char *end, *colon;
    *bracketed = s[0] == '[';
    if (*bracketed) {
        if ((end = strchr(s, ']')) == NULL) {
            *why = "has an unclosed [; write IPv6 addresses like [::1]:8443";
            return -1;
        }
        colon = end[1] == ':' ? end + 1 : NULL;
        ++s;
    } else {
        end = colon = strrchr(s, ':');
        if (colon != NULL && memchr(s, ':', (size_t)(colon - s)) != NULL) {
            *why = "looks like an IPv6 address without brackets; write it like [::1]:8443";
            return -1;
        }
    }
    if (colon == NULL) {
        *why = "has no port; write host:port, like [::]:8443 or 0.0.0.0:8080";
        return -1;
    }
    snprintf(host, size, "%.*s", (int)(end - s), s);
    *port_at = colon + 1;
    return 0;
}

/* Only numeric hosts, so loading never waits on DNS: IPv4, [IPv6], * (any IPv4) or localhost (127.0.0.1). */
static int host_to_sockaddr(const char *host, int bracketed, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    if (bracketed) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
        return inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1 ? 0 : -1;
    }
    if (strcmp(host, "*") == 0)
        host = "0.0.0.0";
    else if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *len = sizeof(*sin);
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

/* Listen addresses; numeric only, so loading never blocks on DNS and --check means the same everywhere. */
int config_parse_address(const char *s, struct sockaddr_storage *ss, socklen_t *len, const char **why)
{
    char host[INET6_ADDRSTRLEN + 8];
    const char *port_at;
    int bracketed;
    uint16_t port;

    if (*s == '\0') {
        *why = "is empty; write host:port, like [::]:8443 or 0.0.0.0:8080";
        return -1;
    }
    if (split_host_port(s, host, sizeof(host), &bracketed, &port_at, why) != 0)
        return -1;
    if (parse_port(port_at, strlen(port_at), &port) != 0) {
        *why = "has an invalid port; use a number from 1 to 65535";
        return -1;
    }
    if (host_to_sockaddr(host, bracketed, port, ss, len) != 0) {
        *why = bracketed ? "is not a valid IPv6 address; write it like [::]:8443 or [::1]:8443"
                         : "is not a numeric address; use an IPv4 address, [IPv6], * or localhost (names are not resolved)";
        return -1;
    }
    return 0;
}

/* Backend host names are resolved later, so only their spelling is checked here. */
static int is_host_name(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
              s[i] == '.' || s[i] == '_'))
            return 0;
    return len != 0;
}

/* "http://" or "https://" (any case, as RFC 3986 allows); returns the authority or NULL. */
static const char *parse_scheme(const char *url, int *is_tls, const char **why)
{
    if (strncasecmp(url, "http://", 7) == 0) {
        *is_tls = 0;
        return url + 7;
    }
    if (strncasecmp(url, "https://", 8) == 0) {
        *is_tls = 1;
        return url + 8;
    }
    *why = strstr(url, "://") != NULL ? "has an unsupported scheme; use http:// or https://, like http://127.0.0.1:8090"
                                      : "has no scheme; write it like http://127.0.0.1:8090";
    return NULL;
}

/* The part after the authority must be nothing or "/": h2front forwards each request's path unchanged. */
static const char *check_url_rest(const char *rest)
{
    if (*rest == '\0' || strcmp(rest, "/") == 0)
        return NULL;
    if (*rest == '/' && rest[1] != '?' && rest[1] != '#')
        return "has a path; h2front forwards request paths unchanged, so write only scheme, host and port, like "
               "http://127.0.0.1:8090";
    return "has a query or fragment; write only scheme, host and port, like http://127.0.0.1:8090";
}

/* "[v6]" or "[v6]:port": the address must be valid; sets where the host ends (at ']') and the port colon (or NULL). */
static const char *parse_ipv6_host(const char *a, size_t len, const char **host_end, const char **colon)
{
    char v6[INET6_ADDRSTRLEN + 8];
    struct in6_addr scratch;
    if ((*host_end = memchr(a, ']', len)) == NULL || (size_t)(*host_end - a) > sizeof(v6) - 1)
        return "has an invalid IPv6 host; write it like http://[::1]:8090";
    snprintf(v6, sizeof(v6), "%.*s", (int)(*host_end - a - 1), a + 1);
    if (inet_pton(AF_INET6, v6, &scratch) != 1)
        return "has an invalid IPv6 host; write it like http://[::1]:8090";
    *colon = *host_end + 1 < a + len ? *host_end + 1 : NULL;
    if (*colon != NULL && **colon != ':')
        return "has text after the ]; write it like http://[::1]:8090";
    return NULL;
}

/* "name", "1.2.3.4", optionally ":port"; a second colon means an IPv6 address that needed brackets. */
static const char *parse_plain_host(const char *a, size_t len, const char **host_end, const char **colon)
{
    *host_end = *colon = memchr(a, ':', len);
    if (*host_end == NULL)
        *host_end = a + len;
    else if (memchr(*colon + 1, ':', len - (size_t)(*colon + 1 - a)) != NULL)
        return "has an IPv6 host without brackets; write it like http://[::1]:8090";
    if (*host_end == a)
        return "has no host; write it like http://127.0.0.1:8090";
    if (!is_host_name(a, (size_t)(*host_end - a)))
        return "has an invalid host name; use letters, digits, '-' and '.', or a numeric address";
    return NULL;
}

/* Host and optional port of a URL authority (the part between :// and the path). */
static const char *parse_authority(const char *a, size_t len, struct config_backend *be)
{
    const char *host = a[0] == '[' ? a + 1 : a, *host_end, *colon, *why;
    if (memchr(a, '@', len) != NULL)
        return "contains user credentials; h2front does not send them, remove the user@ part";
    why = a[0] == '[' ? parse_ipv6_host(a, len, &host_end, &colon) : parse_plain_host(a, len, &host_end, &colon);
    if (why != NULL)
        return why;
    if (colon != NULL && parse_port(colon + 1, len - (size_t)(colon + 1 - a), &be->port) != 0)
        return "has an invalid port; use a number from 1 to 65535";
    be->host = xstrndup(host, (size_t)(host_end - host));
    return NULL;
}

/* Splits a backend URL into scheme, host and port (default 80/443); returns NULL or why it is wrong. */
static const char *parse_backend_url(const char *url, struct config_backend *be)
{
    const char *why = NULL, *authority = parse_scheme(url, &be->is_tls, &why);
    size_t len;
    if (authority == NULL)
        return why;
    len = strcspn(authority, "/?#");
    if ((why = check_url_rest(authority + len)) != NULL)
        return why;
    be->port = be->is_tls ? 443 : 80;
    return parse_authority(authority, len, be);
}

/* ---- generic walking ----------------------------------------------------------------------------------------------- */

/* Where a key's parsed value goes inside the struct its table fills. */
static void *field(void *base, const struct key_spec *spec)
{
    return (char *)base + spec->offset;
}

/* A value's shape as the user sees it, for "is a list, but it must be a map". */
static const char *shape_found(const struct ytree_node *value)
{
    switch (value->type) {
    case YTREE_SEQUENCE:
        return "is a list";
    case YTREE_MAPPING:
        return "is a map";
    default:
        return "is a single value";
    }
}

/* Null is accepted where a map or list is expected (an all-commented-out section), and means "nothing". */
static int shape_matches(enum shape shape, const struct ytree_node *value)
{
    switch (shape) {
    case SHAPE_SCALAR:
        return value->type == YTREE_SCALAR && !ytree_is_null(value);
    case SHAPE_LIST:
        return value->type == YTREE_SEQUENCE || ytree_is_null(value);
    case SHAPE_MAP:
        return value->type == YTREE_MAPPING || ytree_is_null(value);
    case SHAPE_SCALAR_OR_MAP:
        return (value->type == YTREE_SCALAR && !ytree_is_null(value)) || value->type == YTREE_MAPPING;
    default:
        return value->type == YTREE_SCALAR;
    }
}

/* "is a list, but it must be a map; <hint>", with the value echoed when it is a single value. */
static void report_shape(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path)
{
    static const char *const wanted[] = {"a single value", "a list", "a map", "self-signed or a map", "a single value"};
    char quoted[QUOTE_MAX * 4 + 16];
    if (ytree_is_null(value))
        report(ld, value, path, "has no value; %s", spec->hint);
    else if (value->type == YTREE_SCALAR)
        report(ld, value, path, "%s %s, but it must be %s; %s", quote(value->text, quoted, sizeof(quoted)), shape_found(value),
               wanted[spec->shape], spec->hint);
    else
        report(ld, value, path, "%s, but it must be %s; %s", shape_found(value), wanted[spec->shape], spec->hint);
}

/* Levenshtein distance, for "did you mean"; long strings are never close. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[SUGGEST_MAX_LEN + 1];
    if (la > SUGGEST_MAX_LEN || lb > SUGGEST_MAX_LEN)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; ++j)
        row[j] = j;
    for (size_t i = 1; i <= la; ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; ++j) {
            size_t above = row[j], best = diagonal + (a[i - 1] != b[j - 1]);
            if (above + 1 < best)
                best = above + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diagonal = above;
            row[j] = best;
        }
    }
    return row[lb];
}

/* The known key nearest to a misspelt one, if within 2 edits and not a total rewrite of a very short key. */
static const char *closest_key(const struct key_spec *table, const char *name)
{
    const char *best = NULL;
    size_t best_distance = 3, len = strlen(name);
    for (; table->name != NULL; ++table) {
        size_t d = edit_distance(name, table->name);
        if (d < best_distance && d < len && d < strlen(table->name)) {
            best = table->name;
            best_distance = d;
        }
    }
    return best;
}

/* An unknown key is an error (a typo would otherwise silently keep the default); suggest or list what is allowed. */
static void report_unknown(struct loader *ld, const struct key_spec *table, const struct ytree_node *key, const char *path)
{
    const char *suggestion = closest_key(table, key->text);
    char known[PATH_SIZE];
    size_t used = 0;
    if (suggestion != NULL) {
        report(ld, key, path, "unknown key; did you mean %s?", suggestion);
        return;
    }
    known[0] = '\0';
    for (; table->name != NULL && used < sizeof(known); ++table)
        used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s", used != 0 ? ", " : "", table->name);
    report(ld, key, path, "unknown key; the keys allowed here are: %s", known);
}

/* The table row for a key, or NULL. */
static const struct key_spec *find_key(const struct key_spec *table, const char *name)
{
    for (; table->name != NULL; ++table)
        if (strcmp(table->name, name) == 0)
            return table;
    return NULL;
}

/* Checks a value's shape and hands it to its row's apply function; values already reported by ytree are skipped. */
static void apply_key(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path, void *base)
{
    if (value->reported)
        return;
    if (!shape_matches(spec->shape, value)) {
        report_shape(ld, spec, value, path);
        return;
    }
    spec->apply(ld, spec, value, path, base);
}

/* True when a misspelt key in the map was already reported with "did you mean `name`?". */
static int misspelt_in(const struct key_spec *table, const struct ytree_node *map, const char *name)
{
    for (size_t i = 0; i != map->size && map->type == YTREE_MAPPING; ++i) {
        const struct ytree_node *key = map->pairs[i].key;
        if (!key->reported && find_key(table, key->text) == NULL && closest_key(table, key->text) == name)
            return 1;
    }
    return 0;
}

/* Required keys that are absent are reported at the map that should hold them, unless a typo of theirs already was. */
static void report_missing(struct loader *ld, const struct key_spec *table, const struct ytree_node *map, const char *path)
{
    char child[PATH_SIZE];
    for (const struct key_spec *spec = table; spec->name != NULL; ++spec) {
        if (spec->required && ytree_get(map, spec->name) == NULL && !misspelt_in(table, map, spec->name)) {
            join_path(child, path, spec->name);
            report(ld, map, child, "is required; %s", spec->hint);
        }
    }
}

/* Applies every key of a map through its table; a null map (empty section) just checks for required keys. */
static void walk_map(struct loader *ld, const struct key_spec *table, const struct ytree_node *map, const char *path, void *base)
{
    char child[PATH_SIZE];
    for (size_t i = 0; i != map->size && map->type == YTREE_MAPPING; ++i) {
        const struct ytree_pair *pair = &map->pairs[i];
        const struct key_spec *spec;
        if (pair->key->reported)
            continue;
        join_path(child, path, pair->key->text);
        if ((spec = find_key(table, pair->key->text)) == NULL)
            report_unknown(ld, table, pair->key, child);
        else
            apply_key(ld, spec, pair->value, child, base);
    }
    report_missing(ld, table, map, path);
}

/* The next list item that became an entry (a map not already reported); *index is the position as written. */
static const struct ytree_node *next_entry_item(const struct ytree_node *list, size_t *index)
{
    while (*index < list->size && list->type == YTREE_SEQUENCE) {
        const struct ytree_node *item = list->items[(*index)++];
        if (!item->reported && item->type == YTREE_MAPPING)
            return item;
    }
    return NULL;
}

typedef void load_item_fn(struct loader *ld, const struct key_spec *spec, const struct ytree_node *item, const char *path,
                          void *entry);

/* Turns a list of maps into an array of entries; non-map items are reported and skipped, an empty list is an error. */
static void *walk_list(struct loader *ld, const struct key_spec *spec, const struct ytree_node *list, const char *path,
                       size_t entry_size, size_t *count, load_item_fn *load_item)
{
    const struct key_spec item_spec = {.shape = SHAPE_MAP, .hint = spec->hint};
    char *entries = xcalloc(list->size, entry_size);
    char item_path[PATH_SIZE];
    for (size_t i = 0; i != list->size && list->type == YTREE_SEQUENCE; ++i) {
        const struct ytree_node *item = list->items[i];
        snprintf(item_path, sizeof(item_path), "%s[%zu]", path, i);
        if (!item->reported && item->type != YTREE_MAPPING)
            report_shape(ld, &item_spec, item, item_path);
        else if (!item->reported)
            load_item(ld, spec, item, item_path, entries + (*count)++ * entry_size);
    }
    if (list->size == 0)
        report(ld, list, path, "needs at least one entry; %s", spec->hint);
    return entries;
}

/* ---- apply functions ----------------------------------------------------------------------------------------------- */

/* Parses a number of the row's kind and checks its bounds; reports and returns -1 on either failure. */
static int parse_bounded(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                         uint64_t *out)
{
    const char *why;
    char lo[32], hi[32], range[96];
    if (spec->number->parse(value->text, out, &why) != 0) {
        report_value(ld, value, path, why);
        return -1;
    }
    if (*out >= spec->min && *out <= spec->max)
        return 0;
    spec->number->format(spec->min, lo, sizeof(lo));
    spec->number->format(spec->max, hi, sizeof(hi));
    snprintf(range, sizeof(range), "is out of range; use %s to %s", lo, hi);
    report_value(ld, value, path, range);
    return -1;
}

/* Numbers stored as `unsigned` (counts). */
static void apply_unsigned(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                           void *base)
{
    uint64_t n;
    if (parse_bounded(ld, spec, value, path, &n) == 0)
        *(unsigned *)field(base, spec) = (unsigned)n;
}

/* Numbers stored as `uint64_t` (sizes in bytes, durations in ms). */
static void apply_u64(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path, void *base)
{
    uint64_t n;
    if (parse_bounded(ld, spec, value, path, &n) == 0)
        *(uint64_t *)field(base, spec) = n;
}

/* Only true and false: YAML 1.1's yes/no/on/off are too easy to write by accident (think `country: no`). */
static void apply_bool(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path, void *base)
{
    if (strcmp(value->text, "true") == 0)
        *(int *)field(base, spec) = 1;
    else if (strcmp(value->text, "false") == 0)
        *(int *)field(base, spec) = 0;
    else
        report_value(ld, value, path, "is not a boolean; write true or false");
}

/* log.level: the names log.h knows. */
static void apply_log_level(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                            void *base)
{
    int level = log_level_from_name(value->text);
    if (level < 0)
        report_value(ld, value, path, "is not a log level; use error, warn, info or debug");
    else
        *(int *)field(base, spec) = level;
}

/* Certificate, key and CA files must be readable now, not at the first handshake hours later. */
static void apply_file(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path, void *base)
{
    char why[256];
    if (access(value->text, R_OK) != 0) {
        snprintf(why, sizeof(why), "cannot be read (%s); check the path and that the user h2front runs as may read it",
                 strerror(errno));
        report_value(ld, value, path, why);
        return;
    }
    *(char **)field(base, spec) = xstrdup(value->text);
}

/* A nested section: same base struct, the row's own key table. */
static void apply_map(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path, void *base)
{
    walk_map(ld, spec->children, value, path, base);
}

/* listen[].address: a numeric address, kept both as written (for logs) and parsed (for bind). */
static void apply_address(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                          void *base)
{
    struct config_listen *listen = base;
    const char *why;
    if (config_parse_address(value->text, &listen->addr, &listen->addrlen, &why) != 0) {
        report_value(ld, value, path, why);
        return;
    }
    listen->address = xstrdup(value->text);
}

/* listen[].tls: either the word self-signed or a map naming the certificate and key files. */
static void apply_tls(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path, void *base)
{
    struct config_listen *listen = base;
    if (value->type == YTREE_MAPPING) {
        listen->tls = CONFIG_TLS_FILES;
        walk_map(ld, spec->children, value, path, listen);
    } else if (strcmp(value->text, "self-signed") == 0) {
        listen->tls = CONFIG_TLS_SELF_SIGNED;
    } else {
        report_value(ld, value, path, "is not a TLS setting; write tls: self-signed, or a map with certificate and key files");
    }
}

/* backends[].url: http(s)://host[:port] with no path. */
static void apply_url(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path, void *base)
{
    struct config_backend *be = base;
    const char *why = parse_backend_url(value->text, be);
    if (why != NULL) {
        free(be->host);
        be->host = NULL;
        report_value(ld, value, path, why);
        return;
    }
    be->url = xstrdup(value->text);
}

/* The frontend build must be a readable directory now, so a typo fails --check instead of the first page load. */
static void apply_directory(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                            void *base)
{
    struct stat st;
    char why[256];
    if (ytree_is_null(value))
        return;
    if (stat(value->text, &st) == 0 && !S_ISDIR(st.st_mode)) {
        report_value(ld, value, path, "is not a directory; give the dashboard's frontend build directory (dist/)");
    } else if (stat(value->text, &st) != 0 || access(value->text, R_OK | X_OK) != 0) {
        snprintf(why, sizeof(why), "cannot be read (%s); check the path and that the user h2front runs as may read it",
                 strerror(errno));
        report_value(ld, value, path, why);
    } else {
        *(char **)field(base, spec) = xstrdup(value->text);
    }
}

/* Characters a URL path may hold as written (RFC 3986 pchar plus '/'); anything else is a typo or needs encoding. */
static int is_path_text(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              strchr("-._~!$&'()*+,;=:@%/", s[i]) != NULL))
            return 0;
    return 1;
}

/* "/path" or "/path?query": the path in URL characters, the query visible ASCII without '#'. */
static int is_preload_path(const char *s)
{
    size_t path_len = strcspn(s, "?");
    if (s[0] != '/' || !is_path_text(s, path_len))
        return 0;
    for (s += path_len; *s != '\0'; ++s)
        if (*s <= ' ' || *s >= 0x7f || *s == '#')
            return 0;
    return 1;
}

/* assets.url_prefix: "" or "/prefix", exactly as the dashboard's own url_prefix setting resolves. */
static void apply_url_prefix(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                             void *base)
{
    char **target = field(base, spec);
    size_t len = value->len;
    if (len != 0 && (value->text[0] != '/' || value->text[len - 1] == '/' || !is_path_text(value->text, len))) {
        report_value(
            ld, value, path,
            "is not a URL prefix; write \"\" or a path like /ceph (leading /, no trailing /), as the dashboard's url_prefix");
        return;
    }
    free(*target);
    *target = xstrdup(value->text);
}

/* health_check.path: what each backend is asked for; an absolute path, optionally with a query. */
static void apply_probe_path(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                             void *base)
{
    char **target = field(base, spec);
    if (!is_preload_path(value->text)) {
        report_value(ld, value, path, "is not an absolute path; write it like path: / or path: /ceph/");
        return;
    }
    free(*target);
    *target = xstrdup(value->text);
}

/* assets.preload: extra paths (below url_prefix, optionally with a query) for the critical set. */
static void apply_preload(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                          void *base)
{
    struct config *cfg = base;
    const struct key_spec item_spec = {.shape = SHAPE_SCALAR, .hint = spec->hint};
    char item_path[PATH_SIZE];
    cfg->assets.preload.entries = xcalloc(value->size, sizeof(*cfg->assets.preload.entries));
    for (size_t i = 0; i != value->size && value->type == YTREE_SEQUENCE; ++i) {
        const struct ytree_node *item = value->items[i];
        snprintf(item_path, sizeof(item_path), "%s[%zu]", path, i);
        if (item->reported)
            continue;
        if (!shape_matches(SHAPE_SCALAR, item))
            report_shape(ld, &item_spec, item, item_path);
        else if (!is_preload_path(item->text))
            report_value(ld, item, item_path, "is not a path; write it like /assets/logo.svg (below url_prefix, no #fragment)");
        else
            cfg->assets.preload.entries[cfg->assets.preload.size++] = xstrdup(item->text);
    }
}

/* ---- lists and the rules between keys ------------------------------------------------------------------------------ */

/* True when the listener item asks for TLS at all, so one bad tls value does not also trigger redirect errors. */
static int item_has_tls(const struct ytree_node *item)
{
    const struct ytree_node *tls = ytree_get(item, "tls");
    return tls != NULL && !ytree_is_null(tls);
}

/* Reports the value of `key` in `item` (used for rules that involve several keys). */
static void report_key_of_item(struct loader *ld, const struct ytree_node *item, const char *item_path, const char *key,
                               const char *why)
{
    const struct ytree_node *value = ytree_get(item, key);
    char path[PATH_SIZE];
    join_path(path, item_path, key);
    if (value != NULL && !value->reported)
        report(ld, value, path, "%s", why);
}

/* One listen[] item: its keys, then "redirect only on plain listeners". */
static void load_listener(struct loader *ld, const struct key_spec *spec, const struct ytree_node *item, const char *path,
                          void *entry)
{
    struct config_listen *listen = entry;
    listen->pos = (struct config_pos){item->line, item->column};
    walk_map(ld, spec->children, item, path, listen);
    if (listen->redirect && item_has_tls(item))
        report_key_of_item(ld, item, path, "redirect",
                           "only plain listeners redirect, and this one has tls; remove redirect here and put it on a listener "
                           "without tls");
}

/* Listeners that parsed to the same socket address. */
static int same_address(const struct config_listen *a, const struct config_listen *b)
{
    return a->address != NULL && b->address != NULL && a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* Two listeners on one address would fail at bind(); say which line the first one is on. */
static void check_unique_address(struct loader *ld, const struct config *cfg, size_t n, const struct ytree_node *item,
                                 const char *path)
{
    char why[128], address_path[PATH_SIZE];
    for (size_t i = 0; i != n; ++i) {
        if (same_address(&cfg->listen.entries[i], &cfg->listen.entries[n])) {
            snprintf(why, sizeof(why), "is also used by the listener at line %zu; give each listener its own port",
                     cfg->listen.entries[i].pos.line);
            join_path(address_path, path, "address");
            report_value(ld, ytree_get(item, "address"), address_path, why);
            return;
        }
    }
}

/* Rules across listeners: a redirect needs some TLS listener to point at, and addresses must be distinct. */
static void check_listeners(struct loader *ld, const struct config *cfg, const struct ytree_node *list, const char *path)
{
    const struct ytree_node *item;
    char item_path[PATH_SIZE];
    size_t index = 0, n;
    int any_tls = 0;
    while ((item = next_entry_item(list, &index)) != NULL)
        any_tls |= item_has_tls(item);
    for (index = 0, n = 0; (item = next_entry_item(list, &index)) != NULL; ++n) {
        snprintf(item_path, sizeof(item_path), "%s[%zu]", path, index - 1);
        if (!any_tls && cfg->listen.entries[n].redirect)
            report_key_of_item(ld, item, item_path, "redirect",
                               "no listener has tls, so there is nowhere to redirect to; add a TLS listener or remove redirect");
        check_unique_address(ld, cfg, n, item, item_path);
    }
}

/* The listen list as a whole. */
static void apply_listen(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                         void *base)
{
    struct config *cfg = base;
    cfg->listen.entries = walk_list(ld, spec, value, path, sizeof(*cfg->listen.entries), &cfg->listen.size, load_listener);
    check_listeners(ld, cfg, value, path);
}

/* One backends[] item: its keys (verify defaults to on), then "TLS options need an https:// url". */
static void load_backend(struct loader *ld, const struct key_spec *spec, const struct ytree_node *item, const char *path,
                         void *entry)
{
    struct config_backend *be = entry;
    be->verify = 1;
    be->pos = (struct config_pos){item->line, item->column};
    walk_map(ld, spec->children, item, path, be);
    if (be->url == NULL || be->is_tls)
        return;
    report_key_of_item(ld, item, path, "ca_file", "only applies to https:// backends; remove it or make the url https://");
    report_key_of_item(ld, item, path, "verify", "only applies to https:// backends; remove it or make the url https://");
}

/* The backends list as a whole. */
static void apply_backends(struct loader *ld, const struct key_spec *spec, const struct ytree_node *value, const char *path,
                           void *base)
{
    struct config *cfg = base;
    cfg->backends.entries = walk_list(ld, spec, value, path, sizeof(*cfg->backends.entries), &cfg->backends.size, load_backend);
}

/* ---- the schema ---------------------------------------------------------------------------------------------------- */

#define CFG(member) offsetof(struct config, member)
/* clang-format off */
#define NUMBER(key, apply, kind, offset, lo, hi, hint) {key, SHAPE_SCALAR, apply, &kind, offset, lo, hi, NULL, 0, hint}
#define SECTION(key, children, hint) {key, SHAPE_MAP, apply_map, NULL, 0, 0, 0, children, 0, hint}
/* clang-format on */

static const struct key_spec tls_keys[] = {
    {"certificate", SHAPE_SCALAR, apply_file, NULL, offsetof(struct config_listen, certificate), 0, 0, NULL, 1,
     "give the PEM certificate chain file, like certificate: /etc/h2front/cert.pem"},
    {"key", SHAPE_SCALAR, apply_file, NULL, offsetof(struct config_listen, key), 0, 0, NULL, 1,
     "give the PEM private key file, like key: /etc/h2front/key.pem"},
    {NULL},
};

static const struct key_spec listen_keys[] = {
    {"address", SHAPE_SCALAR, apply_address, NULL, 0, 0, 0, NULL, 1, "write it like address: \"[::]:8443\""},
    {"tls", SHAPE_SCALAR_OR_MAP, apply_tls, NULL, 0, 0, 0, tls_keys, 0,
     "write tls: self-signed, or a map with certificate and key files; leave tls out for plain HTTP"},
    {"redirect", SHAPE_SCALAR, apply_bool, NULL, offsetof(struct config_listen, redirect), 0, 0, NULL, 0,
     "write redirect: true or redirect: false"},
    {NULL},
};

static const struct key_spec backend_keys[] = {
    {"url", SHAPE_SCALAR, apply_url, NULL, 0, 0, 0, NULL, 1, "write it like url: http://127.0.0.1:8090"},
    {"ca_file", SHAPE_SCALAR, apply_file, NULL, offsetof(struct config_backend, ca_file), 0, 0, NULL, 0,
     "give the PEM file of CAs that sign the backend's certificate, like ca_file: /etc/h2front/backend-ca.pem"},
    {"verify", SHAPE_SCALAR, apply_bool, NULL, offsetof(struct config_backend, verify), 0, 0, NULL, 0,
     "write verify: true or verify: false"},
    {NULL},
};

static const struct key_spec queue_keys[] = {
    NUMBER("max", apply_unsigned, COUNT, CFG(upstream.queue_max), 0, 1000000, "write it like max: 1024"),
    NUMBER("timeout", apply_u64, DURATION, CFG(upstream.queue_timeout), 1, HOUR, "write it like timeout: 10s"),
    {NULL},
};

static const struct key_spec timeout_keys[] = {
    NUMBER("connect", apply_u64, DURATION, CFG(upstream.connect_timeout), 1, HOUR, "write it like connect: 3s"),
    NUMBER("first_byte", apply_u64, DURATION, CFG(upstream.first_byte_timeout), 1, HOUR, "write it like first_byte: 60s"),
    NUMBER("io", apply_u64, DURATION, CFG(upstream.io_timeout), 1, HOUR, "write it like io: 60s"),
    {NULL},
};

static const struct key_spec upstream_keys[] = {
    NUMBER("max_connections", apply_unsigned, COUNT, CFG(upstream.max_connections), 1, 1024, "write it like max_connections: 10"),
    SECTION("queue", queue_keys, "write it as a map, like queue: { max: 1024, timeout: 10s }"),
    NUMBER("idle_timeout", apply_u64, DURATION, CFG(upstream.idle_timeout), 100, HOUR, "write it like idle_timeout: 5s"),
    SECTION("timeouts", timeout_keys, "write it as a map, like timeouts: { connect: 3s, first_byte: 60s, io: 60s }"),
    NUMBER("response_buffer", apply_u64, SIZE, CFG(upstream.response_buffer), 4 * KIB, GIB, "write it like response_buffer: 1MiB"),
    {NULL},
};

static const struct key_spec limits_keys[] = {
    NUMBER("request_body", apply_u64, SIZE, CFG(limits.request_body), 0, GIB, "write it like request_body: 16MiB"),
    NUMBER("header_count", apply_unsigned, COUNT, CFG(limits.header_count), 1, 10000, "write it like header_count: 100"),
    NUMBER("header_bytes", apply_u64, SIZE, CFG(limits.header_bytes), KIB, MIB, "write it like header_bytes: 64KiB"),
    NUMBER("stream_resets", apply_unsigned, COUNT, CFG(limits.stream_resets), 1, 1000000, "write it like stream_resets: 200"),
    {NULL},
};

static const struct key_spec front_keys[] = {
    NUMBER("idle_timeout", apply_u64, DURATION, CFG(front.idle_timeout), SECOND, HOUR, "write it like idle_timeout: 60s"),
    NUMBER("stall_timeout", apply_u64, DURATION, CFG(front.stall_timeout), 100, HOUR, "write it like stall_timeout: 30s"),
    NUMBER("handshake_timeout", apply_u64, DURATION, CFG(front.handshake_timeout), 100, 10 * MINUTE,
           "write it like handshake_timeout: 10s"),
    NUMBER("max_streams", apply_unsigned, COUNT, CFG(front.max_streams), 1, 256, "write it like max_streams: 100"),
    {NULL},
};

static const struct key_spec health_keys[] = {
    {"path", SHAPE_SCALAR, apply_probe_path, NULL, CFG(health_check.path), 0, 0, NULL, 0, "write it like path: /"},
    NUMBER("interval", apply_u64, DURATION, CFG(health_check.interval), 100, HOUR, "write it like interval: 2s"),
    NUMBER("timeout", apply_u64, DURATION, CFG(health_check.timeout), 100, HOUR, "write it like timeout: 2s"),
    NUMBER("rise", apply_unsigned, COUNT, CFG(health_check.rise), 1, 100, "write it like rise: 2"),
    NUMBER("fall", apply_unsigned, COUNT, CFG(health_check.fall), 1, 100, "write it like fall: 2"),
    NUMBER("standby_status", apply_unsigned, COUNT, CFG(health_check.standby_status), 400, 599,
           "write it like standby_status: 500, the dashboard's standby_error_status_code"),
    {NULL},
};

static const struct key_spec assets_keys[] = {
    {"root", SHAPE_SCALAR_OR_NULL, apply_directory, NULL, CFG(assets.root), 0, 0, NULL, 0,
     "give the dashboard's frontend build directory, like root: /usr/share/ceph/mgr/dashboard/frontend/dist, or ~ for none"},
    {"url_prefix", SHAPE_SCALAR, apply_url_prefix, NULL, CFG(assets.url_prefix), 0, 0, NULL, 0,
     "write url_prefix: \"\" or url_prefix: /ceph, the same as the dashboard's url_prefix"},
    {"preload", SHAPE_LIST, apply_preload, NULL, 0, 0, 0, NULL, 0, "list paths below url_prefix, like preload: [/assets/logo.svg]"},
    {"push", SHAPE_SCALAR, apply_bool, NULL, CFG(assets.push), 0, 0, NULL, 0, "write push: true or push: false"},
    {"early_hints", SHAPE_SCALAR, apply_bool, NULL, CFG(assets.early_hints), 0, 0, NULL, 0,
     "write early_hints: true or early_hints: false"},
    {NULL},
};

static const struct key_spec log_keys[] = {
    {"level", SHAPE_SCALAR, apply_log_level, NULL, CFG(log.level), 0, 0, NULL, 0, "write it like level: info"},
    {NULL},
};

static const struct key_spec root_keys[] = {
    {"listen", SHAPE_LIST, apply_listen, NULL, 0, 0, 0, listen_keys, 1,
     "list the addresses to serve, like listen: [{ address: \"[::]:8443\", tls: self-signed }]"},
    {"backends", SHAPE_LIST, apply_backends, NULL, 0, 0, 0, backend_keys, 1,
     "list the dashboard URLs to forward to, like backends: [{ url: http://127.0.0.1:8090 }]"},
    SECTION("upstream", upstream_keys, "write it as a map, like upstream: { max_connections: 10 }"),
    SECTION("limits", limits_keys, "write it as a map, like limits: { request_body: 16MiB }"),
    SECTION("front", front_keys, "write it as a map, like front: { idle_timeout: 60s }"),
    SECTION("health_check", health_keys, "write it as a map, like health_check: { path: /, interval: 2s }"),
    SECTION("assets", assets_keys, "write it as a map, like assets: { root: /usr/share/ceph/mgr/dashboard/frontend/dist }"),
    SECTION("log", log_keys, "write it as a map, like log: { level: info }"),
    {NULL},
};

/* ---- public API ---------------------------------------------------------------------------------------------------- */

/* The one place defaults live; keep in step with the comments in config.h and config/h2front.yaml. */
void config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->upstream.max_connections = 10;
    cfg->upstream.queue_max = 1024;
    cfg->upstream.queue_timeout = 10 * SECOND;
    cfg->upstream.idle_timeout = 5 * SECOND;
    cfg->upstream.connect_timeout = 3 * SECOND;
    cfg->upstream.first_byte_timeout = 60 * SECOND;
    cfg->upstream.io_timeout = 60 * SECOND;
    cfg->upstream.response_buffer = MIB;
    cfg->limits.request_body = 16 * MIB;
    cfg->limits.header_count = 100;
    cfg->limits.header_bytes = 64 * KIB;
    cfg->limits.stream_resets = 200;
    cfg->front.idle_timeout = 60 * SECOND;
    cfg->front.stall_timeout = 30 * SECOND;
    cfg->front.handshake_timeout = 10 * SECOND;
    cfg->front.max_streams = 100;
    cfg->health_check.path = xstrdup("/");
    cfg->health_check.interval = 2 * SECOND;
    cfg->health_check.timeout = 2 * SECOND;
    cfg->health_check.rise = 2;
    cfg->health_check.fall = 2;
    cfg->health_check.standby_status = 500;
    cfg->assets.url_prefix = xstrdup(""); /* owned like any value read from the file, so config_free need not tell them apart */
    cfg->assets.early_hints = 1;
    cfg->log.level = LOG_LEVEL_INFO;
}

/* The assets section's strings and preload list. */
static void free_assets(struct config *cfg)
{
    for (size_t i = 0; i != cfg->assets.preload.size; ++i)
        free(cfg->assets.preload.entries[i]);
    free(cfg->assets.preload.entries);
    cfg->assets.preload.entries = NULL;
    cfg->assets.preload.size = 0;
    free(cfg->assets.root);
    cfg->assets.root = NULL;
    free(cfg->assets.url_prefix);
    cfg->assets.url_prefix = NULL;
}

/* Leaves every pointer NULL, so a second call (or one after a failed load) is harmless. */
void config_free(struct config *cfg)
{
    for (size_t i = 0; i != cfg->listen.size; ++i) {
        free(cfg->listen.entries[i].address);
        free(cfg->listen.entries[i].certificate);
        free(cfg->listen.entries[i].key);
    }
    free(cfg->listen.entries);
    cfg->listen.entries = NULL;
    cfg->listen.size = 0;
    for (size_t i = 0; i != cfg->backends.size; ++i) {
        free(cfg->backends.entries[i].url);
        free(cfg->backends.entries[i].host);
        free(cfg->backends.entries[i].ca_file);
    }
    free(cfg->backends.entries);
    cfg->backends.entries = NULL;
    cfg->backends.size = 0;
    free_assets(cfg);
    free(cfg->health_check.path);
    cfg->health_check.path = NULL;
    free(cfg->path);
    cfg->path = NULL;
}

/* The document must be a map of sections; an empty file is treated as an empty map so "listen is required" is shown. */
static void validate_root(struct loader *ld, const struct ytree_node *root, struct config *cfg)
{
    static const struct ytree_node empty = {.type = YTREE_MAPPING, .line = 1, .column = 1};
    if (root == NULL || ytree_is_null(root))
        root = &empty;
    if (root->reported)
        return;
    if (root->type != YTREE_MAPPING) {
        report(ld, root, "(top level)",
               "%s, but the file must be a map of sections; start with listen: and backends: "
               "(see config/h2front.yaml)",
               shape_found(root));
        return;
    }
    walk_map(ld, root_keys, root, "", cfg);
}

/* Parse, then validate whatever tree survived, so structural and value errors are reported in the same run. */
int config_load_string(struct config *cfg, const char *name, const char *yaml, size_t len, FILE *err)
{
    struct loader ld = {.name = name, .err = err != NULL ? err : stderr};
    struct ytree_node *root;

    config_init(cfg);
    cfg->path = xstrdup(name);
    ld.errors = ytree_parse(name, yaml, len, ld.err, &root);
    if (root != NULL || ld.errors == 0)
        validate_root(&ld, root, cfg);
    ytree_free(root);
    if (ld.errors == 0)
        return 0;
    config_free(cfg);
    return -1;
}

/* Reads a whole file; sets errno (EFBIG when it is implausibly large for a config file) and returns NULL on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    size_t capacity = 16 * KIB;
    char *text;
    if (fp == NULL)
        return NULL;
    text = xcalloc(capacity, 1);
    *len = 0;
    while ((*len += fread(text + *len, 1, capacity - *len, fp)) == capacity && capacity <= CONFIG_MAX_FILE_SIZE)
        text = xrealloc(text, capacity *= 2);
    if (ferror(fp) || *len > CONFIG_MAX_FILE_SIZE) {
        int saved = ferror(fp) ? errno : EFBIG;
        free(text);
        fclose(fp);
        errno = saved;
        return NULL;
    }
    fclose(fp);
    return text;
}

/* Reads the file whole (a config is small) and validates it from memory, naming the file as given. */
int config_load(struct config *cfg, const char *path, FILE *err)
{
    size_t len = 0;
    char *text = read_file(path, &len);
    int rc;
    if (text == NULL) {
        config_init(cfg);
        config_free(cfg);
        fprintf(err != NULL ? err : stderr, "%s: cannot read the configuration (%s); check the path given with -c\n", path,
                strerror(errno));
        return -1;
    }
    rc = config_load_string(cfg, path, text, len, err);
    free(text);
    return rc;
}
