#define _GNU_SOURCE /* memmem, memrchr */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <brotli/encode.h>
#include <openssl/evp.h>
#include <zlib.h>
#include <h2o.h>

#include "assets.h"
#include "forward.h"
#include "log.h"

#define IMMUTABLE "public, max-age=31536000, immutable"
#define MAX_DEPTH 16          /* directory levels below a language directory */
#define MAX_URL_PATH 2048     /* longest request path looked up; longer ones are forwarded */
#define MAX_ACCEPTED_LANGS 10 /* home.py's MAX_ACCEPTED_LANGS */
#define MAX_CSS_RESOURCES 16  /* fonts and images taken from stylesheets into a critical set */
#define MAX_STYLESHEETS 16    /* stylesheets followed (index.html's and their @imports) */
#define MAX_CHUNKS 16         /* webpack lazy chunks taken from critical scripts' chunk maps */
#define MAX_SCRIPT_IMAGES 8   /* images taken from component styles embedded in critical scripts */
#define MAX_CHUNK_ID 64       /* longest chunk id (number or quoted name) in a chunk map */
#define MAX_TAG_ATTRS 24
#define MAX_WORKERS 8
#define ETAG_SIZE 32

enum kind { KIND_OTHER, KIND_SCRIPT, KIND_STYLE, KIND_FONT, KIND_IMAGE };

/* What the dashboard sends for an extension: Python's mimetypes on Debian (media-types' /etc/mime.types), with the
 * ";charset=utf-8" CherryPy's encode tool adds to text/ types. Files of other types are left to the dashboard. */
struct type {
    const char *ext;
    const char *content_type;
    enum kind kind;
    BrotliEncoderMode mode;
};

static const struct type types[] = {
    {"js", "text/javascript;charset=utf-8", KIND_SCRIPT, BROTLI_MODE_TEXT},
    {"mjs", "text/javascript;charset=utf-8", KIND_SCRIPT, BROTLI_MODE_TEXT},
    {"css", "text/css;charset=utf-8", KIND_STYLE, BROTLI_MODE_TEXT},
    {"html", "text/html;charset=utf-8", KIND_OTHER, BROTLI_MODE_TEXT},
    {"txt", "text/plain;charset=utf-8", KIND_OTHER, BROTLI_MODE_TEXT},
    {"json", "application/json", KIND_OTHER, BROTLI_MODE_TEXT},
    {"xml", "application/xml", KIND_OTHER, BROTLI_MODE_TEXT},
    {"webmanifest", "application/manifest+json", KIND_OTHER, BROTLI_MODE_TEXT},
    {"svg", "image/svg+xml", KIND_IMAGE, BROTLI_MODE_TEXT},
    {"png", "image/png", KIND_IMAGE, BROTLI_MODE_GENERIC},
    {"gif", "image/gif", KIND_IMAGE, BROTLI_MODE_GENERIC},
    {"jpg", "image/jpeg", KIND_IMAGE, BROTLI_MODE_GENERIC},
    {"jpeg", "image/jpeg", KIND_IMAGE, BROTLI_MODE_GENERIC},
    {"webp", "image/webp", KIND_IMAGE, BROTLI_MODE_GENERIC},
    {"avif", "image/avif", KIND_IMAGE, BROTLI_MODE_GENERIC},
    {"ico", "image/x-icon", KIND_IMAGE, BROTLI_MODE_GENERIC},
    {"woff2", "font/woff2", KIND_FONT, BROTLI_MODE_FONT},
    {"woff", "font/woff", KIND_FONT, BROTLI_MODE_FONT},
    {"ttf", "font/ttf", KIND_FONT, BROTLI_MODE_FONT},
    {"otf", "font/otf", KIND_FONT, BROTLI_MODE_FONT},
    {"eot", "application/vnd.ms-fontobject", KIND_FONT, BROTLI_MODE_FONT},
    {"wasm", "application/wasm", KIND_OTHER, BROTLI_MODE_GENERIC},
};

struct assets_lang {
    char *name;                /* directory name, e.g. "en-US" */
    int readable;              /* a real directory; a symlinked one is a language too, but left to the dashboard */
    struct assets_file *files; /* sorted by path */
    size_t num_files;
    size_t files_cap;      /* load time only */
    h2o_iovec_t document;  /* load time only: index.html */
    h2o_iovec_t link;      /* the critical set as a Link value */
    h2o_iovec_t *critical; /* its URLs, pointing into link */
    size_t num_critical;
};

/* home.py's LANGUAGES_PATH_MAP: lower-cased directory names and their primary subtags. */
struct lang_key {
    char *key;
    int lang; /* index in langs; -1 when Python's set order decides (two directories claim the key) */
};

struct assets {
    unsigned refs;
    h2o_iovec_t prefix; /* "" or "/prefix" */
    struct assets_lang *langs;
    size_t num_langs;
    struct lang_key *keys; /* sorted by key */
    size_t num_keys;
    int default_lang; /* package.json's config.locale */
    struct assets_stats stats;
};

/* A growable NUL-terminated string. */
struct sbuf {
    char *base;
    size_t len, cap;
};

static void sb_add(struct sbuf *sb, const char *s, size_t n)
{
    if (sb->len + n + 1 > sb->cap) {
        sb->cap = (sb->len + n + 1) * 2;
        sb->base = h2o_mem_realloc(sb->base, sb->cap);
    }
    memcpy(sb->base + sb->len, s, n);
    sb->len += n;
    sb->base[sb->len] = '\0';
}

static void sb_str(struct sbuf *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

static void sb_truncate(struct sbuf *sb, size_t len)
{
    sb->len = len;
    if (sb->base != NULL)
        sb->base[len] = '\0';
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(int c)
{
    if (is_digit(c))
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Python's \s on the ASCII input we accept (other control characters are refused before). */
static int is_space(int c)
{
    return c == ' ' || c == '\t';
}

static int is_html_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static h2o_iovec_t trim(h2o_iovec_t v)
{
    while (v.len != 0 && is_html_space(v.base[0])) {
        ++v.base;
        --v.len;
    }
    while (v.len != 0 && is_html_space(v.base[v.len - 1]))
        --v.len;
    return v;
}

/* Case-insensitive test that `s` (of `len` bytes) starts with the lower-case `lit`. */
static int starts_ci(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (len < n)
        return 0;
    for (size_t i = 0; i != n; ++i)
        if (lower((unsigned char)s[i]) != lit[i])
            return 0;
    return 1;
}

static int eq_ci(h2o_iovec_t v, const char *lit)
{
    return v.len == strlen(lit) && starts_ci(v.base, v.len, lit);
}

static const char *basename_of(const char *path, size_t len)
{
    const char *slash = memrchr(path, '/', len);
    return slash != NULL ? slash + 1 : path;
}

/* The dashboard's type for a file name, by extension (case-insensitive, as mimetypes tries it); NULL if unknown. */
static const struct type *type_of(const char *name, size_t len)
{
    const char *dot = memrchr(name, '.', len);
    if (dot == NULL)
        return NULL;
    h2o_iovec_t ext = h2o_iovec_init(dot + 1, name + len - dot - 1);
    for (size_t i = 0; i != sizeof(types) / sizeof(types[0]); ++i)
        if (eq_ci(ext, types[i].ext))
            return &types[i];
    return NULL;
}

/* main.35ec9db61bcbaf2e5786.js: a dot-separated component of at least 16 hex digits is a content hash (webpack's). */
static int has_content_hash(const char *name, size_t len)
{
    size_t run = 0;
    int all_hex = 1;
    for (size_t i = 0; i <= len; ++i) {
        if (i == len || name[i] == '.') {
            if (all_hex && run >= 16)
                return 1;
            run = 0;
            all_hex = 1;
        } else {
            ++run;
            all_hex &= hex_value((unsigned char)name[i]) >= 0;
        }
    }
    return 0;
}

/* ---- request paths ---- */

/* Percent-decodes `len` bytes into buf. -1 for what a table lookup cannot answer the dashboard's way: a bad escape, "%2F"
 * (cheroot keeps it as three characters), control characters, NUL and non-ASCII (CherryPy re-decodes those). */
static ssize_t percent_decode(const char *s, size_t len, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i != len; ++i) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hex_value((unsigned char)s[i + 1])) < 0 || (lo = hex_value((unsigned char)s[i + 2])) < 0)
                return -1;
            c = hi * 16 + lo;
            if (c == '/')
                return -1;
            i += 2;
        }
        if (c <= 0x20 || c >= 0x7f || n == size)
            return -1;
        buf[n++] = (char)c;
    }
    return (ssize_t)n;
}

/* A decoded path a file table answers like the file system: "/a/b", no empty, "." or ".." segments. */
static int path_is_plain(const char *p, size_t len)
{
    if (len < 2 || p[0] != '/')
        return 0;
    size_t seg = 1;
    for (size_t i = 1; i <= len; ++i) {
        if (i == len || p[i] == '/') {
            size_t n = i - seg;
            if (n == 0 || (n == 1 && p[seg] == '.') || (n == 2 && p[seg] == '.' && p[seg + 1] == '.'))
                return 0;
            seg = i + 1;
        }
    }
    return 1;
}

/* The path below url_prefix that a request target names (query string dropped), decoded into buf; -1 if outside. */
static ssize_t request_path(const struct assets *a, h2o_iovec_t target, char *buf, size_t size)
{
    if (target.base == NULL)
        return -1;
    const char *q = memchr(target.base, '?', target.len);
    ssize_t n = percent_decode(target.base, q != NULL ? (size_t)(q - target.base) : target.len, buf, size);
    size_t plen = a->prefix.len;
    if (n < 0 || (size_t)n <= plen || memcmp(buf, a->prefix.base, plen) != 0 || buf[plen] != '/')
        return -1;
    memmove(buf, buf + plen, (size_t)n - plen);
    return n - (ssize_t)plen;
}

static int cmp_path(const char *p, size_t len, h2o_iovec_t path)
{
    int c = memcmp(p, path.base, len < path.len ? len : path.len);
    return c != 0 ? c : len < path.len ? -1 : len > path.len ? 1 : 0;
}

/* Binary search of a language's sorted files. */
static const struct assets_file *find_file(const struct assets_lang *lang, const char *p, size_t len)
{
    size_t lo = 0, hi = lang->num_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_path(p, len, lang->files[mid].path);
        if (c == 0)
            return &lang->files[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct assets_file *assets_lookup(const struct assets *a, const struct assets_lang *lang, h2o_iovec_t path)
{
    char buf[MAX_URL_PATH];
    ssize_t n;
    if (a == NULL || lang == NULL || (n = request_path(a, path, buf, sizeof(buf))) < 0 || !path_is_plain(buf, (size_t)n))
        return NULL;
    return find_file(lang, buf, (size_t)n); /* the top-level index.html is never in the table */
}

int assets_is_document(const struct assets *a, h2o_iovec_t path)
{
    char buf[MAX_URL_PATH];
    ssize_t n;
    if (a == NULL || (n = request_path(a, path, buf, sizeof(buf))) < 0)
        return 0;
    return h2o_memis(buf, (size_t)n, H2O_STRLIT("/")) || h2o_memis(buf, (size_t)n, H2O_STRLIT("/index.html"));
}

/* ---- language negotiation (home.py) ---- */

enum cookie_result { COOKIE_ABSENT, COOKIE_FOUND, COOKIE_UNSURE };

/* Python's http.cookies legal key characters (Morsel refuses others with a CookieError, which CherryPy turns into 400). */
static int is_cookie_key_char(int c)
{
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~:", c) != NULL);
}

static int is_cookie_value_char(int c)
{
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#%&'~_`><@,:/$*+-.^|)(?}{=[]", c) != NULL);
}

static int is_reserved_cookie_key(h2o_iovec_t key)
{
    static const char *const reserved[] = {"expires", "path",     "comment", "domain",  "max-age",
                                           "secure",  "httponly", "version", "samesite"};
    for (size_t i = 0; i != sizeof(reserved) / sizeof(reserved[0]); ++i)
        if (eq_ci(key, reserved[i]))
            return 1;
    return 0;
}

/* One "name=value" of a Cookie header, accepted only in the plain form SimpleCookie reads unambiguously. */
static int parse_cookie_pair(h2o_iovec_t part, h2o_iovec_t *name, h2o_iovec_t *value)
{
    const char *eq = memchr(part.base, '=', part.len);
    if (eq == NULL)
        return -1;
    *name = trim(h2o_iovec_init(part.base, eq - part.base));
    *value = trim(h2o_iovec_init(eq + 1, part.base + part.len - eq - 1));
    if (name->len == 0 || name->base[0] == '$' || is_reserved_cookie_key(*name))
        return -1;
    for (size_t i = 0; i != name->len; ++i)
        if (!is_cookie_key_char((unsigned char)name->base[i]))
            return -1;
    if (value->len >= 2 && value->base[0] == '"' && value->base[value->len - 1] == '"') {
        *value = h2o_iovec_init(value->base + 1, value->len - 2);
        return memchr(value->base, '"', value->len) == NULL && memchr(value->base, '\\', value->len) == NULL ? 0 : -1;
    }
    for (size_t i = 0; i != value->len; ++i)
        if (!is_cookie_value_char((unsigned char)value->base[i]))
            return -1;
    return 0;
}

/* The cd-lang cookie as CherryPy's SimpleCookie sees it (the last one wins). A header it would read differently, drop in
 * part, or refuse with 400 is COOKIE_UNSURE: the request is then forwarded. */
static enum cookie_result find_cd_lang(h2o_iovec_t cookie, h2o_iovec_t *value)
{
    enum cookie_result result = COOKIE_ABSENT;
    if (cookie.base == NULL)
        return result;
    cookie = trim(cookie);
    const char *p = cookie.base, *end = p + cookie.len;
    while (p < end) {
        const char *semi = memchr(p, ';', end - p);
        h2o_iovec_t part = trim(h2o_iovec_init(p, (semi != NULL ? semi : end) - p)), name, v;
        p = semi != NULL ? semi + 1 : end;
        if (part.len == 0 && p == end)
            break;
        if (parse_cookie_pair(part, &name, &v) != 0)
            return COOKIE_UNSURE;
        if (h2o_memis(name.base, name.len, H2O_STRLIT("cd-lang"))) {
            *value = v;
            result = COOKIE_FOUND;
        }
    }
    return result;
}

struct lang_pref {
    h2o_iovec_t locale;
    int weight; /* thousandths */
};

/* A run of 1 to 8 characters of a class, as [a-zA-Z]{1,8} or [a-zA-Z0-9]{1,8} match it before '-', ';' or the end. */
static size_t subtag_len(const char *p, const char *end, int alnum)
{
    size_t n = 0;
    while (p + n < end && (is_alpha(p[n]) || (alnum && is_digit(p[n]))))
        ++n;
    return n >= 1 && n <= 8 ? n : 0;
}

/* home.py's LANG_TAG_RE: ^(locale|\*)(;q=[01]\.\d{0,3})?$ ; -1 where it does not match (the dashboard answers 400). */
static int parse_lang_tag(h2o_iovec_t tag, struct lang_pref *pref)
{
    const char *p = tag.base, *end = p + tag.len;
    size_t n;
    if (p < end && *p == '*') {
        ++p;
    } else {
        if ((n = subtag_len(p, end, 0)) == 0)
            return -1;
        for (p += n; p < end && *p == '-'; p += n + 1)
            if ((n = subtag_len(p + 1, end, 1)) == 0)
                return -1;
    }
    pref->locale = h2o_iovec_init(tag.base, p - tag.base);
    pref->weight = 1000;
    if (p == end)
        return 0;
    if (end - p < 5 || memcmp(p, ";q=", 3) != 0 || (p[3] != '0' && p[3] != '1') || p[4] != '.' || end - p > 8)
        return -1;
    pref->weight = (p[3] - '0') * 1000;
    for (int i = 5, scale = 100; p + i < end; ++i, scale /= 10) {
        if (!is_digit(p[i]))
            return -1;
        pref->weight += (p[i] - '0') * scale;
    }
    return 0;
}

/* home.py's _parse_accept_language, re.finditer(r'\s*([^,]+)\s*,?\s*') included: at most 10 tags, each must match or the
 * dashboard answers 400 (-1). Refuses (-1) bytes Python would treat otherwise (controls, non-ASCII). */
static int parse_accept_language(h2o_iovec_t v, struct lang_pref *prefs, size_t *num)
{
    for (size_t i = 0; i != v.len; ++i)
        if (((unsigned char)v.base[i] < 0x20 && v.base[i] != '\t') || (unsigned char)v.base[i] >= 0x7f)
            return -1;
    v = trim(v);
    size_t pos = 0;
    *num = 0;
    while (pos < v.len && *num < MAX_ACCEPTED_LANGS) {
        size_t start = pos, end;
        while (start < v.len && is_space(v.base[start]))
            ++start;
        if (start == v.len || v.base[start] == ',') {
            if (start == pos) { /* no match here: finditer moves on */
                ++pos;
                continue;
            }
            --start; /* the regex backtracks: the last blank is the tag */
        }
        for (end = start; end < v.len && v.base[end] != ','; ++end)
            ;
        if (parse_lang_tag(h2o_iovec_init(v.base + start, end - start), &prefs[*num]) != 0)
            return -1;
        ++*num;
        pos = end < v.len ? end + 1 : end;
        while (pos < v.len && is_space(v.base[pos]))
            ++pos;
    }
    return 0;
}

/* Python sorts by locale, then (stably) by weight descending: weight first, then the lower-cased locale. */
static int pref_before(const struct lang_pref *x, const struct lang_pref *y)
{
    if (x->weight != y->weight)
        return x->weight > y->weight;
    for (size_t i = 0; i != x->locale.len && i != y->locale.len; ++i) {
        int cx = lower((unsigned char)x->locale.base[i]), cy = lower((unsigned char)y->locale.base[i]);
        if (cx != cy)
            return cx < cy;
    }
    return x->locale.len < y->locale.len;
}

static void sort_prefs(struct lang_pref *prefs, size_t num)
{
    for (size_t i = 1; i < num; ++i) {
        struct lang_pref p = prefs[i];
        size_t j = i;
        for (; j != 0 && pref_before(&p, &prefs[j - 1]); --j)
            prefs[j] = prefs[j - 1];
        prefs[j] = p;
    }
}

/* LANGUAGES_PATH_MAP lookup of a language as given (lower-cased): the language index, -1 ambiguous, -2 absent. */
static int find_lang_key(const struct assets *a, h2o_iovec_t name)
{
    char key[NAME_MAX + 1];
    if (name.len > NAME_MAX)
        return -2;
    for (size_t i = 0; i != name.len; ++i)
        key[i] = (char)lower((unsigned char)name.base[i]);
    key[name.len] = '\0';
    size_t lo = 0, hi = a->num_keys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, a->keys[mid].key);
        if (c == 0)
            return a->keys[mid].lang;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -2;
}

/* home.py's _language_dir for one candidate list: the first known one, else the default language. */
static const struct assets_lang *language_dir(const struct assets *a, const h2o_iovec_t *langs, size_t num)
{
    for (size_t i = 0; i != num; ++i) {
        int k = find_lang_key(a, langs[i]);
        if (k == -1)
            return NULL;
        if (k >= 0)
            return &a->langs[k];
    }
    return &a->langs[a->default_lang];
}

const struct assets_lang *assets_negotiate(const struct assets *a, h2o_iovec_t cookie, h2o_iovec_t accept_language)
{
    h2o_iovec_t langs[MAX_ACCEPTED_LANGS];
    struct lang_pref prefs[MAX_ACCEPTED_LANGS];
    size_t num;
    if (a == NULL)
        return NULL;
    switch (find_cd_lang(cookie, &langs[0])) {
    case COOKIE_UNSURE:
        return NULL;
    case COOKIE_FOUND:
        return language_dir(a, langs, 1);
    default:
        break;
    }
    if (accept_language.base == NULL) { /* home.py: [DEFAULT_LANGUAGE.lower()], looked up in the map like any */
        langs[0] = h2o_iovec_init(a->langs[a->default_lang].name, strlen(a->langs[a->default_lang].name));
        return language_dir(a, langs, 1);
    }
    if (parse_accept_language(accept_language, prefs, &num) != 0)
        return NULL;
    sort_prefs(prefs, num);
    for (size_t i = 0; i != num; ++i)
        langs[i] = prefs[i].locale;
    return language_dir(a, langs, num);
}

const char *assets_lang_name(const struct assets_lang *lang)
{
    return lang != NULL ? lang->name : NULL;
}

/* ---- content coding ---- */

/* q > 0 for a qvalue ("1", "0.5", "0.000" is 0); a malformed one counts as 0. */
static int q_positive(h2o_iovec_t q)
{
    if (q.len == 0 || q.len > 5 || (q.base[0] != '0' && q.base[0] != '1') || (q.len > 1 && q.base[1] != '.'))
        return 0;
    int positive = q.base[0] == '1';
    for (size_t i = 2; i < q.len; ++i) {
        if (!is_digit(q.base[i]))
            return 0;
        positive |= q.base[i] != '0';
    }
    return positive;
}

/* Splits one Accept-Encoding element "coding;q=x" into the coding and whether its q is above 0. */
static void parse_coding(h2o_iovec_t elem, h2o_iovec_t *coding, int *accepted)
{
    const char *semi = memchr(elem.base, ';', elem.len);
    *coding = trim(h2o_iovec_init(elem.base, semi != NULL ? (size_t)(semi - elem.base) : elem.len));
    *accepted = 1;
    while (semi != NULL) {
        const char *p = semi + 1, *end = elem.base + elem.len;
        semi = memchr(p, ';', end - p);
        h2o_iovec_t param = trim(h2o_iovec_init(p, (semi != NULL ? semi : end) - p));
        const char *eq = memchr(param.base, '=', param.len);
        if (eq != NULL && eq_ci(trim(h2o_iovec_init(param.base, eq - param.base)), "q"))
            *accepted = q_positive(trim(h2o_iovec_init(eq + 1, param.base + param.len - eq - 1)));
    }
}

/* Whether Accept-Encoding allows a coding: its own entry if listed (q=0 refuses), else "*", else no. */
static int coding_accepted(h2o_iovec_t ae, const char *name, const char *alias)
{
    int own = -1, star = -1;
    const char *p = ae.base, *end = ae.base + ae.len;
    while (p != NULL && p < end) {
        const char *comma = memchr(p, ',', end - p);
        h2o_iovec_t coding;
        int accepted;
        parse_coding(h2o_iovec_init(p, (comma != NULL ? comma : end) - p), &coding, &accepted);
        if (own < 0 && (eq_ci(coding, name) || (alias != NULL && eq_ci(coding, alias))))
            own = accepted;
        else if (star < 0 && h2o_memis(coding.base, coding.len, H2O_STRLIT("*")))
            star = accepted;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return own >= 0 ? own : star > 0;
}

const struct assets_body *assets_choose_body(const struct assets_file *f, h2o_iovec_t accept_encoding)
{
    if (accept_encoding.base != NULL) {
        if (f->br.data.base != NULL && coding_accepted(accept_encoding, "br", NULL))
            return &f->br;
        if (f->gzip.data.base != NULL && coding_accepted(accept_encoding, "gzip", "x-gzip"))
            return &f->gzip;
    }
    return &f->identity;
}

/* ---- loading: files ---- */

struct loader {
    struct assets *a;
    const char *root;
    char *err;
    size_t errlen;
};

static int fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first error of a load; returns -1 for `return fail(...)`. */
static int fail(struct loader *l, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(l->err, l->errlen, fmt, args);
    va_end(args);
    return -1;
}

/* Reads a regular file without following a symlink (O_NOFOLLOW): nothing outside root is ever read. */
static int read_file(int dirfd, const char *name, h2o_iovec_t *out)
{
    struct stat st;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    size_t size = (size_t)st.st_size, n = 0;
    char *buf = h2o_mem_alloc(size != 0 ? size : 1);
    while (n < size) {
        ssize_t r = read(fd, buf + n, size - n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break; /* a file that shrank while read: keep what is there */
        }
        n += (size_t)r;
    }
    close(fd);
    *out = h2o_iovec_init(buf, n);
    return 0;
}

/* A file name a URL can reach the way the dashboard would serve it: printable ASCII (no '/', by construction). */
static int name_is_reachable(const char *name)
{
    for (const char *p = name; *p != '\0'; ++p)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

static void add_file(struct assets_lang *lang, const struct sbuf *url, const struct type *type, h2o_iovec_t data)
{
    if (lang->num_files == lang->files_cap) {
        lang->files_cap = lang->files_cap != 0 ? lang->files_cap * 2 : 64;
        lang->files = h2o_mem_realloc(lang->files, lang->files_cap * sizeof(*lang->files));
    }
    struct assets_file *f = &lang->files[lang->num_files++];
    memset(f, 0, sizeof(*f));
    f->path = h2o_strdup(NULL, url->base, url->len);
    f->content_type = h2o_iovec_init(type->content_type, strlen(type->content_type));
    f->render_blocking = type->kind == KIND_SCRIPT || type->kind == KIND_STYLE;
    const char *name = basename_of(url->base, url->len);
    f->immutable = has_content_hash(name, url->base + url->len - name);
    f->cache_control = f->immutable ? h2o_iovec_init(H2O_STRLIT(IMMUTABLE)) : h2o_iovec_init(H2O_STRLIT("no-cache"));
    f->identity.data = data;
}

static int read_dir(struct loader *l, struct assets_lang *lang, int fd, struct sbuf *url, unsigned depth);

/* One regular file: the language's index.html is kept aside as the document; files of known types go into the table. */
static int read_regular(struct loader *l, struct assets_lang *lang, int dirfd, const char *name, struct sbuf *url, unsigned depth)
{
    int is_document = depth == 0 && strcmp(name, "index.html") == 0;
    const struct type *type = type_of(name, strlen(name));
    h2o_iovec_t data;
    if (!is_document && type == NULL) {
        log_debug("assets", "%s/%s%s: unknown type, left to the dashboard", l->root, lang->name, url->base);
        ++l->a->stats.skipped;
        return 0;
    }
    if (read_file(dirfd, name, &data) != 0)
        return fail(l, "%s/%s%s: %s", l->root, lang->name, url->base, strerror(errno));
    if (is_document)
        lang->document = data;
    else
        add_file(lang, url, type, data);
    return 0;
}

/* Top-level names the dashboard routes to its own controllers before home.py's catch-all "/{path:.*}" (APIRouter,
 * UIRouter, docs.py, saml2.py): a file of the build there is never what the dashboard answers. */
static int is_routed(const char *name, unsigned depth)
{
    static const char *const routed[] = {"api", "ui-api", "docs", "auth"};
    for (size_t i = 0; depth == 0 && i != sizeof(routed) / sizeof(routed[0]); ++i)
        if (strcmp(name, routed[i]) == 0)
            return 1;
    return 0;
}

/* One directory entry, with url holding its URL path; symlinks and special files are skipped (the dashboard would follow
 * a symlink, so such a path is simply forwarded). */
static int read_entry(struct loader *l, struct assets_lang *lang, int dirfd, const char *name, struct sbuf *url, unsigned depth)
{
    struct stat st;
    int fd;
    if (!name_is_reachable(name) || is_routed(name, depth) || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !(S_ISREG(st.st_mode) || (S_ISDIR(st.st_mode) && depth < MAX_DEPTH))) {
        log_debug("assets", "%s/%s%s: not a regular file or directory, left to the dashboard", l->root, lang->name, url->base);
        ++l->a->stats.skipped;
        return 0;
    }
    if (S_ISREG(st.st_mode))
        return read_regular(l, lang, dirfd, name, url, depth);
    if ((fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return fail(l, "%s/%s%s: %s", l->root, lang->name, url->base, strerror(errno));
    return read_dir(l, lang, fd, url, depth + 1);
}

/* Reads a directory (taking ownership of fd) into the language's table; url is its URL path ("" for the language). */
static int read_dir(struct loader *l, struct assets_lang *lang, int fd, struct sbuf *url, unsigned depth)
{
    DIR *dir = fdopendir(fd);
    struct dirent *de;
    int rc = 0;
    if (dir == NULL) {
        close(fd);
        return fail(l, "%s/%s%s: %s", l->root, lang->name, url->base, strerror(errno));
    }
    size_t url_len = url->len;
    while (rc == 0 && (errno = 0, de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        sb_str(url, "/");
        sb_str(url, de->d_name);
        rc = read_entry(l, lang, dirfd(dir), de->d_name, url, depth);
        sb_truncate(url, url_len);
    }
    if (rc == 0 && errno != 0)
        rc = fail(l, "%s/%s%s: %s", l->root, lang->name, url->base, strerror(errno));
    closedir(dir);
    return rc;
}

static int cmp_lang(const void *x, const void *y)
{
    return strcmp(((const struct assets_lang *)x)->name, ((const struct assets_lang *)y)->name);
}

/* home.py's LANGUAGES: every directory in root (os.path.isdir follows symlinks, so a symlinked one counts, unread). */
static int list_languages(struct loader *l, int rootfd)
{
    struct assets *a = l->a;
    DIR *dir = fdopendir(dup(rootfd));
    struct dirent *de;
    struct stat st;
    if (dir == NULL)
        return fail(l, "%s: %s", l->root, strerror(errno));
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || fstatat(rootfd, de->d_name, &st, 0) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        a->langs = h2o_mem_realloc(a->langs, (a->num_langs + 1) * sizeof(*a->langs));
        memset(&a->langs[a->num_langs], 0, sizeof(*a->langs));
        a->langs[a->num_langs].name = h2o_strdup(NULL, de->d_name, SIZE_MAX).base;
        a->langs[a->num_langs].readable =
            fstatat(rootfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) && name_is_reachable(de->d_name);
        ++a->num_langs;
    }
    closedir(dir);
    if (faccessat(rootfd, "index.html", F_OK, 0) == 0)
        return fail(l,
                    "%s: holds index.html itself; root must be the dist/ directory that holds the language directories "
                    "(en-US/...)",
                    l->root);
    if (a->num_langs == 0)
        return fail(l, "%s: no language directory (en-US/...) in it", l->root);
    qsort(a->langs, a->num_langs, sizeof(*a->langs), cmp_lang);
    return 0;
}

/* home.py's DEFAULT_LANGUAGE: config.locale of ../package.json (not a JSON parser: the "locale" string is all it needs);
 * "en-US" when the file is missing, as in a bare copy of dist/. */
static int find_default_language(struct loader *l, int rootfd)
{
    char name[64] = "en-US";
    h2o_iovec_t json;
    if (read_file(rootfd, "../package.json", &json) == 0) {
        const char *p = json.len != 0 ? memmem(json.base, json.len, "\"locale\"", 8) : NULL, *end = json.base + json.len;
        if (p != NULL) {
            for (p += 8; p < end && (is_html_space(*p) || *p == ':'); ++p)
                ;
            const char *q = p < end && *p == '"' ? memchr(p + 1, '"', end - p - 1) : NULL;
            if (q != NULL && (size_t)(q - p - 1) < sizeof(name))
                snprintf(name, sizeof(name), "%.*s", (int)(q - p - 1), p + 1);
        }
        free(json.base);
    }
    for (size_t i = 0; i != l->a->num_langs; ++i) {
        if (strcmp(l->a->langs[i].name, name) == 0) {
            l->a->default_lang = (int)i;
            return 0;
        }
    }
    return fail(l, "%s: no directory for the dashboard's default language %s", l->root, name);
}

static int read_languages(struct loader *l, int rootfd)
{
    struct sbuf url = {NULL};
    int rc = 0;
    sb_str(&url, "");
    for (size_t i = 0; rc == 0 && i != l->a->num_langs; ++i) {
        struct assets_lang *lang = &l->a->langs[i];
        int fd;
        if (!lang->readable)
            continue;
        if ((fd = openat(rootfd, lang->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
            rc = fail(l, "%s/%s: %s", l->root, lang->name, strerror(errno));
        else
            rc = read_dir(l, lang, fd, &url, 0);
    }
    free(url.base);
    return rc;
}

/* ---- loading: hashing and compression (spread over threads) ---- */

static h2o_iovec_t gzip_compress(h2o_iovec_t in)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (in.len == 0 || in.len > UINT_MAX || deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return h2o_iovec_init(NULL, 0);
    size_t bound = deflateBound(&z, (uLong)in.len);
    unsigned char *out = h2o_mem_alloc(bound);
    z.next_in = (unsigned char *)in.base;
    z.avail_in = (uInt)in.len;
    z.next_out = out;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END || n >= in.len) {
        free(out);
        return h2o_iovec_init(NULL, 0);
    }
    return h2o_iovec_init(h2o_mem_realloc(out, n), n);
}

static h2o_iovec_t brotli_compress(h2o_iovec_t in, BrotliEncoderMode mode)
{
    size_t n = BrotliEncoderMaxCompressedSize(in.len);
    if (in.len == 0 || n == 0)
        return h2o_iovec_init(NULL, 0);
    uint8_t *out = h2o_mem_alloc(n);
    if (!BrotliEncoderCompress(BROTLI_MAX_QUALITY, BROTLI_DEFAULT_WINDOW, mode, in.len, (const uint8_t *)in.base, &n, out) ||
        n >= in.len) {
        free(out);
        return h2o_iovec_init(NULL, 0);
    }
    return h2o_iovec_init(h2o_mem_realloc(out, n), n);
}

/* Strong ETags from the content: the first 22 characters (132 bits) of the base64url sha256, one per representation
 * (a strong validator names exactly one sequence of bytes, so gzip and br get their own). */
static void set_etags(struct assets_file *f)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    char b64[64];
    EVP_Digest(f->identity.data.base, f->identity.data.len, md, &md_len, EVP_sha256(), NULL);
    h2o_base64_encode(b64, md, md_len, 1);
    char *tags = h2o_mem_alloc(3 * ETAG_SIZE);
    f->identity.etag = h2o_iovec_init(tags, (size_t)sprintf(tags, "\"%.22s\"", b64));
    if (f->gzip.data.base != NULL)
        f->gzip.etag = h2o_iovec_init(tags + ETAG_SIZE, (size_t)sprintf(tags + ETAG_SIZE, "\"%.22s-gz\"", b64));
    if (f->br.data.base != NULL)
        f->br.etag = h2o_iovec_init(tags + 2 * ETAG_SIZE, (size_t)sprintf(tags + 2 * ETAG_SIZE, "\"%.22s-br\"", b64));
}

static void compress_file(struct assets_file *f)
{
    const char *name = basename_of(f->path.base, f->path.len);
    const struct type *type = type_of(name, f->path.base + f->path.len - name);
    f->gzip.data = gzip_compress(f->identity.data);
    f->br.data = brotli_compress(f->identity.data, type->mode);
    f->gzip.encoding = f->gzip.data.base != NULL ? "gzip" : NULL;
    f->br.encoding = f->br.data.base != NULL ? "br" : NULL;
    set_etags(f);
}

struct job_queue {
    struct assets_file **files; /* largest first, so the long ones start early */
    size_t num;
    size_t next; /* taken atomically */
};

static void *compress_worker(void *arg)
{
    struct job_queue *q = arg;
    size_t i;
    while ((i = __atomic_fetch_add(&q->next, 1, __ATOMIC_RELAXED)) < q->num)
        compress_file(q->files[i]);
    return NULL;
}

static int cmp_size_desc(const void *x, const void *y)
{
    size_t a = (*(struct assets_file *const *)x)->identity.data.len, b = (*(struct assets_file *const *)y)->identity.data.len;
    return a < b ? 1 : a > b ? -1 : 0;
}

/* Brotli at quality 11 is slow (about 5 s for main.js alone), so files are compressed by up to one thread per CPU; the
 * loading thread takes part, and joins them all before anything reads the results. */
static void compress_all(struct assets *a)
{
    struct job_queue q = {NULL, 0, 0};
    for (size_t i = 0; i != a->num_langs; ++i)
        q.num += a->langs[i].num_files;
    q.files = h2o_mem_alloc((q.num != 0 ? q.num : 1) * sizeof(*q.files));
    for (size_t i = 0, n = 0; i != a->num_langs; ++i)
        for (size_t j = 0; j != a->langs[i].num_files; ++j)
            q.files[n++] = &a->langs[i].files[j];
    qsort(q.files, q.num, sizeof(*q.files), cmp_size_desc);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t want = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (size_t)cpus, started = 0;
    pthread_t threads[MAX_WORKERS];
    while (started + 1 < want && started + 1 < q.num && pthread_create(&threads[started], NULL, compress_worker, &q) == 0)
        ++started;
    compress_worker(&q);
    for (size_t i = 0; i != started; ++i)
        pthread_join(threads[i], NULL);
    free(q.files);
}

static int cmp_file(const void *x, const void *y)
{
    const struct assets_file *f = x, *g = y;
    return cmp_path(f->path.base, f->path.len, g->path);
}

/* A path answers differently by language when another language directory lacks it or holds other bytes. */
static void mark_vary_language(struct assets *a)
{
    for (size_t i = 0; i != a->num_langs; ++i) {
        for (size_t j = 0; j != a->langs[i].num_files; ++j) {
            struct assets_file *f = &a->langs[i].files[j];
            for (size_t k = 0; k != a->num_langs && !f->vary_language; ++k) {
                const struct assets_file *g = k != i ? find_file(&a->langs[k], f->path.base, f->path.len) : f;
                f->vary_language = g == NULL || !h2o_memis(g->identity.etag.base, g->identity.etag.len, f->identity.etag.base,
                                                           f->identity.etag.len);
            }
        }
    }
}

/* ---- loading: language keys ---- */

static void set_key(struct assets *a, const char *key, size_t len, int lang, int override)
{
    for (size_t i = 0; i != a->num_keys; ++i) {
        if (strlen(a->keys[i].key) == len && memcmp(a->keys[i].key, key, len) == 0) {
            if (override == 1 || a->keys[i].lang != lang)
                a->keys[i].lang = override == 1 ? lang : -1;
            return;
        }
    }
    a->keys = h2o_mem_realloc(a->keys, (a->num_keys + 1) * sizeof(*a->keys));
    a->keys[a->num_keys].key = h2o_strdup(NULL, key, len).base;
    a->keys[a->num_keys++].lang = lang;
}

static int cmp_key(const void *x, const void *y)
{
    return strcmp(((const struct lang_key *)x)->key, ((const struct lang_key *)y)->key);
}

/* LANGUAGES_PATH_MAP: lower-cased names, then each primary subtag ("en" for en-US), which replaces an exact entry. Where
 * Python's set iteration order picks the winner (two directories claiming one key), the key is ambiguous (-1). */
static void build_lang_keys(struct assets *a)
{
    char key[NAME_MAX + 1];
    for (size_t i = 0; i != a->num_langs; ++i) {
        size_t len = strlen(a->langs[i].name);
        for (size_t j = 0; j <= len; ++j)
            key[j] = (char)lower((unsigned char)a->langs[i].name[j]);
        set_key(a, key, len, (int)i, 0);
    }
    size_t num_exact = a->num_keys;
    int *primary_lang = h2o_mem_alloc((num_exact + 1) * sizeof(int));
    for (size_t i = 0; i != num_exact; ++i) {
        const char *dash = strchr(a->keys[i].key, '-');
        if (dash == NULL)
            continue;
        size_t len = dash - a->keys[i].key;
        int seen = 0;
        for (size_t j = 0; j != i; ++j)
            seen |= strchr(a->keys[j].key, '-') != NULL && strncmp(a->keys[j].key, a->keys[i].key, len + 1) == 0 &&
                    primary_lang[j] != a->keys[i].lang;
        primary_lang[i] = a->keys[i].lang;
        set_key(a, a->keys[i].key, len, seen ? -1 : a->keys[i].lang, 1);
    }
    free(primary_lang);
    qsort(a->keys, a->num_keys, sizeof(*a->keys), cmp_key);
}

/* ---- loading: the critical set ---- */

/* The parts of a critical set in Link order: what the page needs first goes first. RANK_CHUNK and RANK_SCRIPT_IMAGE are what
 * the critical scripts request once they run, so they never go ahead of what the document and its stylesheets need. */
enum rank { RANK_STYLE, RANK_SCRIPT, RANK_RESOURCE, RANK_CHUNK, RANK_SCRIPT_IMAGE, RANK_EXTRA, NUM_RANKS };

struct entry {
    char *url; /* path below url_prefix, with "?query" when the reference has one */
    enum rank rank;
    enum kind kind;
    const char *crossorigin; /* NULL: none; else the attribute value ("" is anonymous) */
    int module;
    const struct assets_file *file;
};

struct critical {
    const struct assets *a;
    struct assets_lang *lang;
    struct entry *entries;
    size_t num, per_rank[NUM_RANKS]; /* entries in all, and in each rank */
    h2o_iovec_t doc_base; /* where relative references in index.html resolve (a <base href> moves it); .base NULL: unknown */
};

/* Characters a reference may hold to be copied into a Link header as is (no ',' so naive Link parsers stay right). */
static int ref_chars_ok(const char *p, size_t len)
{
    for (size_t i = 0; i != len; ++i) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= len || hex_value((unsigned char)p[i + 1]) < 0 || hex_value((unsigned char)p[i + 2]) < 0)
                return 0;
        } else if (!(is_alpha(c) || is_digit(c) || (c != '\0' && strchr("-._~!$&'()*+;=:@/?", c) != NULL))) {
            return 0;
        }
    }
    return 1;
}

static int has_scheme(const char *p, size_t len)
{
    if (len == 0 || !is_alpha(p[0]))
        return 0;
    for (size_t i = 1; i != len; ++i) {
        if (p[i] == ':')
            return 1;
        if (!(is_alpha(p[i]) || is_digit(p[i]) || p[i] == '+' || p[i] == '-' || p[i] == '.'))
            return 0;
    }
    return 0;
}

/* RFC 3986 remove_dot_segments for an absolute path; -1 if ".." climbs above url_prefix. */
static int remove_dot_segments(const char *p, size_t len, struct sbuf *out)
{
    size_t seg = 1;
    for (size_t i = 1; i <= len; ++i) {
        if (i != len && p[i] != '/')
            continue;
        size_t n = i - seg;
        if (n == 2 && p[seg] == '.' && p[seg + 1] == '.') {
            const char *slash = out->len != 0 ? memrchr(out->base, '/', out->len) : NULL;
            if (slash == NULL)
                return -1;
            sb_truncate(out, slash - out->base);
        } else if (!(n == 1 && p[seg] == '.')) {
            sb_str(out, "/");
            sb_add(out, p + seg, n);
        }
        seg = i + 1;
    }
    return out->len != 0 ? 0 : -1;
}

/* Resolves a reference found in the resource at `base` (a path below url_prefix) to a path below url_prefix plus its query.
 * Fragments are dropped; other origins, schemes (data:), and odd characters are not ours (-1). */
static int resolve_ref(const struct assets *a, h2o_iovec_t base, h2o_iovec_t ref, struct sbuf *out)
{
    if (ref.base == NULL)
        return -1;
    const char *hash = memchr(ref.base, '#', ref.len);
    size_t len = hash != NULL ? (size_t)(hash - ref.base) : ref.len, plen = a->prefix.len;
    if (base.base == NULL || len == 0 || !ref_chars_ok(ref.base, len) || has_scheme(ref.base, len) ||
        (len >= 2 && ref.base[0] == '/' && ref.base[1] == '/'))
        return -1;
    const char *q = memchr(ref.base, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - ref.base) : len;
    struct sbuf joined = {NULL};
    if (path_len == 0)
        return -1;
    if (ref.base[0] == '/') {
        if (path_len <= plen || memcmp(ref.base, a->prefix.base, plen) != 0 || ref.base[plen] != '/')
            return -1;
        sb_add(&joined, ref.base + plen, path_len - plen);
    } else {
        sb_add(&joined, base.base, basename_of(base.base, base.len) - base.base);
        sb_add(&joined, ref.base, path_len);
    }
    int rc = remove_dot_segments(joined.base, joined.len, out);
    free(joined.base);
    if (rc == 0 && q != NULL)
        sb_add(out, q, len - path_len);
    return rc;
}

/* The file a resolved URL (path and query, still percent-encoded) names in the language. */
static const struct assets_file *find_url(const struct assets_lang *lang, const char *url)
{
    char buf[MAX_URL_PATH];
    const char *q = strchr(url, '?');
    ssize_t n = percent_decode(url, q != NULL ? (size_t)(q - url) : strlen(url), buf, sizeof(buf));
    return n > 0 && path_is_plain(buf, (size_t)n) ? find_file(lang, buf, (size_t)n) : NULL;
}

static int has_entry(const struct critical *c, const char *url)
{
    for (size_t i = 0; i != c->num; ++i)
        if (strcmp(c->entries[i].url, url) == 0)
            return 1;
    return 0;
}

/* Whether a file of this kind belongs in this part of the set. */
static int rank_takes(enum rank rank, enum kind kind)
{
    switch (rank) {
    case RANK_STYLE:
        return kind == KIND_STYLE;
    case RANK_SCRIPT:
        return kind == KIND_SCRIPT;
    case RANK_RESOURCE:
        return kind == KIND_FONT || kind == KIND_IMAGE;
    case RANK_CHUNK:
        return kind == KIND_SCRIPT;
    case RANK_SCRIPT_IMAGE:
        return kind == KIND_IMAGE;
    default:
        return 1;
    }
}

/* How many entries a part of the set may hold, so that a huge build cannot blow up the Link header; SIZE_MAX: no limit. */
static size_t rank_limit(enum rank rank)
{
    switch (rank) {
    case RANK_STYLE:
        return MAX_STYLESHEETS;
    case RANK_RESOURCE:
        return MAX_CSS_RESOURCES;
    case RANK_CHUNK:
        return MAX_CHUNKS;
    case RANK_SCRIPT_IMAGE:
        return MAX_SCRIPT_IMAGES;
    default:
        return SIZE_MAX;
    }
}

/* Resolves `ref` against `base` and appends it to the critical set when it names a file of the language that fits the
 * rank; NULL when it is not ours, missing, a duplicate, or over a limit. */
static struct entry *add_ref(struct critical *c, h2o_iovec_t base, h2o_iovec_t ref, enum rank rank)
{
    struct sbuf url = {NULL};
    const struct assets_file *f = NULL;
    if (c->per_rank[rank] == rank_limit(rank) || resolve_ref(c->a, base, ref, &url) != 0 ||
        (f = find_url(c->lang, url.base)) == NULL || has_entry(c, url.base)) {
        free(url.base);
        return NULL;
    }
    const char *name = basename_of(f->path.base, f->path.len);
    enum kind kind = type_of(name, f->path.base + f->path.len - name)->kind;
    if (!rank_takes(rank, kind)) {
        free(url.base);
        return NULL;
    }
    c->entries = h2o_mem_realloc(c->entries, (c->num + 1) * sizeof(*c->entries));
    struct entry *e = &c->entries[c->num++];
    *e = (struct entry){url.base, rank, kind, kind == KIND_FONT || kind == KIND_OTHER ? "" : NULL, 0, f};
    ++c->per_rank[rank];
    return e;
}

/* -- CSS -- */

static const char *skip_css_comment(const char *p, const char *end)
{
    const char *close = memmem(p + 2, end - p - 2, "*/", 2);
    return close != NULL ? close + 2 : end;
}

static const char *skip_css_string(const char *p, const char *end)
{
    char quote = *p++;
    while (p < end && *p != quote && *p != '\n')
        p += *p == '\\' && p + 1 < end ? 2 : 1;
    return p < end ? p + 1 : end;
}

/* White space between tokens in CSS and in JavaScript alike (ASCII space, tab, CR, LF, FF). */
static const char *skip_space(const char *p, const char *end)
{
    while (p < end && is_html_space(*p))
        ++p;
    return p;
}

/* Reads the inside of url(...) (p after the parenthesis); ref.base NULL if it uses escapes or is malformed. */
static const char *css_url(const char *p, const char *end, h2o_iovec_t *ref)
{
    *ref = h2o_iovec_init(NULL, 0);
    p = skip_space(p, end);
    const char *start = p, *stop;
    if (p < end && (*p == '"' || *p == '\'')) {
        stop = skip_css_string(p, end);
        if (stop - start < 2 || stop[-1] != *start || memchr(start, '\\', stop - start) != NULL)
            return stop;
        h2o_iovec_t s = h2o_iovec_init(start + 1, stop - start - 2);
        p = skip_space(stop, end);
        if (p < end && *p == ')')
            *ref = s;
        return p < end ? p + 1 : end;
    }
    while (p < end && *p != ')' && !is_html_space(*p) && *p != '"' && *p != '\'' && *p != '(' && *p != '\\')
        ++p;
    stop = p;
    p = skip_space(p, end);
    if (p < end && *p == ')') {
        *ref = h2o_iovec_init(start, stop - start);
        return p + 1;
    }
    return p;
}

/* After url(...): a format("woff2") hint, lower-cased into fmt; "" when absent. */
static const char *css_format(const char *p, const char *end, char *fmt, size_t size)
{
    fmt[0] = '\0';
    p = skip_space(p, end);
    if (!starts_ci(p, end - p, "format("))
        return p;
    p = skip_space(p + 7, end);
    if (p < end && (*p == '"' || *p == '\''))
        ++p;
    size_t n = 0;
    for (; p < end && (is_alpha(*p) || is_digit(*p) || *p == '-'); ++p)
        if (n + 1 < size)
            fmt[n++] = (char)lower((unsigned char)*p);
    fmt[n] = '\0';
    while (p < end && *p != ')' && *p != ';' && *p != '}') /* the closing quote */
        ++p;
    return p < end && *p == ')' ? p + 1 : p;
}

static int is_ident_char(int c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c >= 0x80;
}

/* Whether p, inside text, starts a CSS url( call rather than the end of a longer name (myurl(). */
static int is_url_call(const char *text, const char *p, const char *end)
{
    return starts_ci(p, end - p, "url(") && (p == text || !is_ident_char((unsigned char)p[-1]));
}

static int ends_ci(h2o_iovec_t v, const char *lit)
{
    size_t n = strlen(lit);
    return v.len > n && starts_ci(v.base + v.len - n, n, lit);
}

/* How much a browser wants a font source: 2 for woff2 (by format() hint, else by extension), 1 for woff, else 0. */
static int font_score(h2o_iovec_t ref, const char *fmt)
{
    const char *q = memchr(ref.base, '?', ref.len);
    h2o_iovec_t path = h2o_iovec_init(ref.base, q != NULL ? (size_t)(q - ref.base) : ref.len);
    if (fmt[0] != '\0')
        return strncmp(fmt, "woff2", 5) == 0 ? 2 : strcmp(fmt, "woff") == 0;
    return ends_ci(path, ".woff2") ? 2 : ends_ci(path, ".woff");
}

/* An @font-face block: of its sources only one is preloaded, the woff2 (by format() hint, else by extension), else a
 * woff, else the first. */
static const char *css_font_face(struct critical *c, h2o_iovec_t base, const char *p, const char *end)
{
    h2o_iovec_t best = {NULL}, first = {NULL};
    int best_score = 0;
    while (p < end && *p != '{' && *p != ';' && *p != '}')
        ++p;
    if (p == end || *p != '{')
        return p;
    const char *block = p;
    for (++p; p < end && *p != '}';) {
        if (*p == '/' && p + 1 < end && p[1] == '*') {
            p = skip_css_comment(p, end);
        } else if (*p == '"' || *p == '\'') {
            p = skip_css_string(p, end);
        } else if (is_url_call(block, p, end)) {
            h2o_iovec_t ref;
            char fmt[32];
            p = css_format(css_url(p + 4, end, &ref), end, fmt, sizeof(fmt));
            int score = ref.base != NULL ? font_score(ref, fmt) : 0;
            if (ref.base != NULL && first.base == NULL)
                first = ref;
            if (score > best_score) {
                best = ref;
                best_score = score;
            }
        } else {
            ++p;
        }
    }
    if (best.base != NULL || first.base != NULL)
        add_ref(c, base, best.base != NULL ? best : first, RANK_RESOURCE);
    return p < end ? p + 1 : end;
}

/* @import url(x.css) or @import "x.css": another stylesheet, scanned after this one. */
static const char *css_import(struct critical *c, h2o_iovec_t base, const char *p, const char *end)
{
    h2o_iovec_t ref = {NULL};
    p = skip_space(p, end);
    if (starts_ci(p, end - p, "url(")) {
        p = css_url(p + 4, end, &ref);
    } else if (p < end && (*p == '"' || *p == '\'')) {
        const char *stop = skip_css_string(p, end);
        if (stop - p >= 2 && stop[-1] == *p && memchr(p, '\\', stop - p) == NULL)
            ref = h2o_iovec_init(p + 1, stop - p - 2);
        p = stop;
    }
    if (ref.base != NULL)
        add_ref(c, base, ref, RANK_STYLE);
    return p;
}

/* Collects what a stylesheet at `base` needs: url() images, one font per @font-face, @import-ed sheets. */
static void scan_css(struct critical *c, h2o_iovec_t base, h2o_iovec_t css)
{
    const char *p = css.base, *end = css.base + css.len;
    while (p < end) {
        if (*p == '/' && p + 1 < end && p[1] == '*') {
            p = skip_css_comment(p, end);
        } else if (*p == '"' || *p == '\'') {
            p = skip_css_string(p, end);
        } else if (*p == '@' && starts_ci(p, end - p, "@import")) {
            p = css_import(c, base, p + 7, end);
        } else if (*p == '@' && starts_ci(p, end - p, "@font-face")) {
            p = css_font_face(c, base, p + 10, end);
        } else if (is_url_call(css.base, p, end)) {
            h2o_iovec_t ref;
            p = css_url(p + 4, end, &ref);
            if (ref.base != NULL)
                add_ref(c, base, ref, RANK_RESOURCE);
        } else {
            ++p;
        }
    }
}

/* -- scripts -- */

/* What a webpack chunk name may hold; anything else (a '/', a quote) makes the pair not a chunk map entry. */
static int is_chunk_name_char(int c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* The value of a chunk map entry at p (just after the ':'): "HASH" or 'HASH' of 16+ hex digits; .base NULL otherwise. */
static h2o_iovec_t chunk_hash(const char *p, const char *end)
{
    if (p == end || (*p != '"' && *p != '\''))
        return h2o_iovec_init(NULL, 0);
    const char *q = p + 1;
    while (q != end && hex_value((unsigned char)*q) >= 0)
        ++q;
    if (q == end || *q != *p || q - p - 1 < 16)
        return h2o_iovec_init(NULL, 0);
    return h2o_iovec_init(p + 1, q - p - 1);
}

/* The key in front of a chunk map entry's ':' (colon): a decimal number (117:) or a quoted name ("about":); .base NULL
 * otherwise. It looks back at most MAX_CHUNK_ID bytes, which keeps a scan of the whole script linear. */
static h2o_iovec_t chunk_id(const char *start, const char *colon)
{
    const char *p = colon;
    if (p != start && (p[-1] == '"' || p[-1] == '\'')) {
        const char *close = --p;
        while (p != start && close - p < MAX_CHUNK_ID && is_chunk_name_char((unsigned char)p[-1]))
            --p;
        if (p == close || p == start || p[-1] != *close)
            return h2o_iovec_init(NULL, 0);
        return h2o_iovec_init(p, close - p);
    }
    while (p != start && colon - p < MAX_CHUNK_ID && is_digit(p[-1]))
        --p;
    if (p == colon || (p != start && (is_ident_char((unsigned char)p[-1]) || p[-1] == '$' || p[-1] == '.')))
        return h2o_iovec_init(NULL, 0);
    return h2o_iovec_init(p, colon - p);
}

/* Webpack's runtime holds the hashes of the lazy chunks, r.u=e=>e+"."+{117:"9781bbf8cc6a4aaa7e8e",...}[e]+".js": the page
 * requests those only once main.js has run, a round trip later. Every ID:"HASH" pair whose ID.HASH.js is a file of the
 * build (resolved against `base`) is taken; any other pair names no file, so a false match costs nothing. */
static void scan_chunk_map(struct critical *c, h2o_iovec_t base, h2o_iovec_t js, int module)
{
    const char *p = js.base, *end = js.base + js.len;
    for (; p != end && c->per_rank[RANK_CHUNK] != MAX_CHUNKS && (p = memchr(p, ':', end - p)) != NULL; ++p) {
        h2o_iovec_t hash = chunk_hash(p + 1, end), id;
        if (hash.base == NULL || (id = chunk_id(js.base, p)).base == NULL)
            continue;
        struct sbuf ref = {NULL};
        sb_add(&ref, id.base, id.len);
        sb_str(&ref, ".");
        sb_add(&ref, hash.base, hash.len);
        sb_str(&ref, ".js");
        struct entry *e = add_ref(c, base, h2o_iovec_init(ref.base, ref.len), RANK_CHUNK);
        if (e != NULL)
            e->module = module; /* a module runtime loads its chunks with import() */
        free(ref.base);
    }
}

/* Angular embeds component styles in main.js as strings, "...background:url(ceph_background.e82dd79127290ddbe8cb.gif)...":
 * the images they name are requested only once main.js has run and rendered, a round trip later. Fonts are left out (a
 * component's @font-face is rare and not worth a guess), as is what does not resolve to an image of the build. */
static void scan_script_urls(struct critical *c, h2o_iovec_t base, h2o_iovec_t js)
{
    const char *p = js.base, *end = js.base + js.len;
    while (p != end && c->per_rank[RANK_SCRIPT_IMAGE] != MAX_SCRIPT_IMAGES && (p = memchr(p, '(', end - p)) != NULL) {
        if (p - js.base < 3 || !is_url_call(js.base, p - 3, end)) {
            ++p;
            continue;
        }
        h2o_iovec_t ref;
        p = css_url(p + 1, end, &ref);
        if (ref.base != NULL)
            add_ref(c, base, ref, RANK_SCRIPT_IMAGE);
    }
}

/* A string literal's content at p, which must be the opening quote; .base NULL when it holds an escape or runs past end. */
static h2o_iovec_t js_string(const char *p, const char *end)
{
    if (p == end || (*p != '"' && *p != '\''))
        return h2o_iovec_init(NULL, 0);
    const char *start = p + 1, *q = start;
    for (; q != end && *q != *p; ++q)
        if (*q == '\\' || *q == '\n')
            return h2o_iovec_init(NULL, 0);
    return q == end ? h2o_iovec_init(NULL, 0) : h2o_iovec_init(start, q - start);
}

/* Angular compiles a template's static attributes into arrays, <img src="assets/logo.svg" alt="Ceph"> into
 * ["src","assets/logo.svg","alt","Ceph"] (minified) or ['src', 'assets/logo.svg', ...]: the login page's logo is requested
 * only once main.js has run and rendered the login component, and the page's load event waits for it. Only a "src"
 * string followed by a comma and a string counts; add_ref keeps what names an image of the build. */
static void scan_template_images(struct critical *c, h2o_iovec_t base, h2o_iovec_t js)
{
    const char *p = js.base, *end = js.base + js.len;
    while (p != end && c->per_rank[RANK_SCRIPT_IMAGE] != MAX_SCRIPT_IMAGES && (p = memmem(p, end - p, "src", 3)) != NULL) {
        const char *after = p + 3;
        int quoted = p != js.base && after != end && (p[-1] == '"' || p[-1] == '\'') && *after == p[-1];
        p = after;
        if (!quoted)
            continue;
        const char *comma = skip_space(after + 1, end);
        if (comma == end || *comma != ',')
            continue;
        h2o_iovec_t ref = js_string(skip_space(comma + 1, end), end);
        if (ref.base != NULL && ref.len != 0)
            add_ref(c, base, ref, RANK_SCRIPT_IMAGE);
    }
}

/* What a critical script (one index.html loads) requests as soon as it runs: webpack lazy chunks, component style images,
 * template images. All resolve against the document, not the script: webpack loads chunks from its public path, which is
 * empty in the dashboard's build (r.p="": relative to the page), and Angular puts component styles into the page as
 * <style> and template elements into the page's DOM. */
static void scan_script(struct critical *c, size_t i)
{
    const struct entry *script = &c->entries[i];
    h2o_iovec_t js = script->file->identity.data;
    int module = script->module; /* add_ref moves the entries: nothing of `script` is read after it */
    scan_chunk_map(c, c->doc_base, js, module);
    scan_script_urls(c, c->doc_base, js);
    scan_template_images(c, c->doc_base, js);
}

/* -- HTML -- */

struct attr {
    h2o_iovec_t name, value;
};

struct tag {
    h2o_iovec_t name;
    struct attr attrs[MAX_TAG_ATTRS];
    size_t num_attrs;
};

/* Parses a start tag's name and attributes (p just after '<'); returns the position after '>' or NULL at end of input. */
static const char *parse_tag(const char *p, const char *end, struct tag *tag)
{
    tag->name.base = (char *)p;
    while (p < end && !is_html_space(*p) && *p != '>' && *p != '/')
        ++p;
    tag->name.len = p - tag->name.base;
    tag->num_attrs = 0;
    for (;;) {
        while (p < end && (is_html_space(*p) || *p == '/'))
            ++p;
        if (p == end)
            return NULL;
        if (*p == '>')
            return p + 1;
        struct attr at = {{(char *)p, 0}, {NULL, 0}};
        do
            ++p;
        while (p < end && !is_html_space(*p) && *p != '>' && *p != '/' && *p != '=');
        at.name.len = p - at.name.base;
        while (p < end && is_html_space(*p))
            ++p;
        if (p < end && *p == '=') {
            for (++p; p < end && is_html_space(*p); ++p)
                ;
            const char *start = p;
            if (p < end && (*p == '"' || *p == '\'')) {
                const char *close = memchr(p + 1, *p, end - p - 1);
                if (close == NULL)
                    return NULL;
                at.value = h2o_iovec_init(start + 1, close - start - 1);
                p = close + 1;
            } else {
                while (p < end && !is_html_space(*p) && *p != '>')
                    ++p;
                at.value = h2o_iovec_init(start, p - start);
            }
        }
        if (tag->num_attrs != MAX_TAG_ATTRS)
            tag->attrs[tag->num_attrs++] = at;
    }
}

static const struct attr *find_attr(const struct tag *tag, const char *name)
{
    for (size_t i = 0; i != tag->num_attrs; ++i)
        if (eq_ci(tag->attrs[i].name, name))
            return &tag->attrs[i];
    return NULL;
}

/* A URL attribute value with "&amp;" decoded into out; -1 for other character references (not worth decoding). */
static int attr_url(const struct attr *at, struct sbuf *out)
{
    h2o_iovec_t v = trim(at->value);
    for (size_t i = 0; i != v.len; ++i) {
        if (v.base[i] == '&' && starts_ci(v.base + i, v.len - i, "&amp;")) {
            sb_str(out, "&");
            i += 4;
        } else if (v.base[i] == '&' && i + 1 < v.len && (is_alpha(v.base[i + 1]) || v.base[i + 1] == '#')) {
            return -1;
        } else {
            sb_add(out, v.base + i, 1);
        }
    }
    return out->len != 0 ? 0 : -1;
}

/* Whether a space-separated attribute value (rel) holds a token, case-insensitively. */
static int has_token(const struct attr *at, const char *token)
{
    const char *p = at->value.base, *end = p + at->value.len;
    while (p < end) {
        while (p < end && is_html_space(*p))
            ++p;
        const char *start = p;
        while (p < end && !is_html_space(*p))
            ++p;
        if (p != start && eq_ci(h2o_iovec_init(start, p - start), token))
            return 1;
    }
    return 0;
}

/* Adds the URL in attribute `name` of a tag to the set; the entry or NULL. */
static struct entry *add_attr_ref(struct critical *c, const struct tag *tag, const char *name, enum rank rank)
{
    const struct attr *at = find_attr(tag, name);
    struct sbuf url = {NULL};
    struct entry *e = NULL;
    if (at != NULL && attr_url(at, &url) == 0)
        e = add_ref(c, c->doc_base, h2o_iovec_init(url.base, url.len), rank);
    free(url.base);
    if (e != NULL && (at = find_attr(tag, "crossorigin")) != NULL)
        e->crossorigin = eq_ci(at->value, "use-credentials") ? "use-credentials" : "";
    return e;
}

/* <base href> moves where the document's relative references resolve; one that leaves url_prefix makes them not ours. */
static void on_base_tag(struct critical *c, const struct tag *tag, struct sbuf *doc_base)
{
    const struct attr *at = find_attr(tag, "href");
    struct sbuf href = {NULL}, resolved = {NULL};
    if (at == NULL)
        return;
    if (attr_url(at, &href) == 0 && resolve_ref(c->a, c->doc_base, h2o_iovec_init(href.base, href.len), &resolved) == 0 &&
        strchr(resolved.base, '?') == NULL) {
        if (href.base[href.len - 1] == '/' && resolved.base[resolved.len - 1] != '/')
            sb_str(&resolved, "/");
        sb_truncate(doc_base, 0);
        sb_add(doc_base, resolved.base, resolved.len);
        c->doc_base = h2o_iovec_init(doc_base->base, doc_base->len);
    } else {
        c->doc_base = h2o_iovec_init(NULL, 0);
    }
    free(href.base);
    free(resolved.base);
}

/* Stylesheets (<link rel=stylesheet>) and scripts (<script src>, not nomodule) a browser fetches for the document. */
static void on_tag(struct critical *c, const struct tag *tag, struct sbuf *doc_base)
{
    const struct attr *at;
    if (eq_ci(tag->name, "base")) {
        on_base_tag(c, tag, doc_base);
    } else if (eq_ci(tag->name, "link")) {
        if ((at = find_attr(tag, "rel")) != NULL && has_token(at, "stylesheet") && !has_token(at, "alternate"))
            add_attr_ref(c, tag, "href", RANK_STYLE);
    } else if (eq_ci(tag->name, "script") && find_attr(tag, "nomodule") == NULL) {
        at = find_attr(tag, "type");
        h2o_iovec_t type = at != NULL ? trim(at->value) : h2o_iovec_init(NULL, 0);
        int module = eq_ci(type, "module");
        if (type.len == 0 || module || eq_ci(type, "text/javascript") || eq_ci(type, "application/javascript")) {
            struct entry *e = add_attr_ref(c, tag, "src", RANK_SCRIPT);
            if (e != NULL)
                e->module = module;
        }
    }
}

/* Where a raw-text element's content ends: at "</name" (case-insensitive), or the end of input. */
static const char *find_end_tag(const char *p, const char *end, h2o_iovec_t name)
{
    for (; (p = memchr(p, '<', end - p)) != NULL; ++p) {
        if (end - p < (ptrdiff_t)name.len + 3 || p[1] != '/')
            continue;
        size_t i = 0;
        while (i != name.len && lower((unsigned char)p[2 + i]) == lower((unsigned char)name.base[i]))
            ++i;
        if (i == name.len && (is_html_space(p[2 + i]) || p[2 + i] == '>' || p[2 + i] == '/'))
            return p;
    }
    return end;
}

static int is_raw_text(h2o_iovec_t name)
{
    static const char *const raw[] = {"script", "style", "noscript", "template", "textarea",
                                      "title",  "xmp",   "iframe",   "noembed",  "noframes"};
    for (size_t i = 0; i != sizeof(raw) / sizeof(raw[0]); ++i)
        if (eq_ci(name, raw[i]))
            return 1;
    return 0;
}

/* Walks index.html's tags; comments and raw-text content are skipped (<noscript> and <template> content is not fetched by
 * a browser running scripts), except <style>, whose CSS is scanned too. */
static void scan_html(struct critical *c, h2o_iovec_t doc)
{
    const char *p = doc.base, *end = doc.base + doc.len;
    struct sbuf doc_base = {NULL};
    struct tag tag;
    while (p != NULL && p < end && (p = memchr(p, '<', end - p)) != NULL) {
        if (starts_ci(p, end - p, "<!--")) {
            const char *close = memmem(p + 4, end - p - 4, "-->", 3);
            p = close != NULL ? close + 3 : end;
            continue;
        }
        if (p + 1 == end || !is_alpha(p[1])) {
            ++p;
            continue;
        }
        if ((p = parse_tag(p + 1, end, &tag)) == NULL)
            break;
        on_tag(c, &tag, &doc_base);
        if (is_raw_text(tag.name)) {
            const char *close = find_end_tag(p, end, tag.name);
            if (eq_ci(tag.name, "style") && c->doc_base.base != NULL)
                scan_css(c, c->doc_base, h2o_iovec_init(p, close - p));
            p = close;
        }
    }
    free(doc_base.base);
}

/* A configured preload path ("/assets/logo.svg", below url_prefix, query allowed) as a reference relative to the root. */
static h2o_iovec_t extra_ref(const char *path)
{
    return path[0] == '/' ? h2o_iovec_init(path + 1, strlen(path + 1)) : h2o_iovec_init(NULL, 0);
}

/* The configured preload paths that this language has. */
static void add_extras(struct critical *c, char *const *preload, size_t num_preload)
{
    for (size_t i = 0; i != num_preload; ++i)
        add_ref(c, h2o_iovec_init(H2O_STRLIT("/")), extra_ref(preload[i]), RANK_EXTRA);
}

static const char *link_params(const struct entry *e)
{
    switch (e->kind) {
    case KIND_STYLE:
        return "; rel=preload; as=style";
    case KIND_SCRIPT:
        return e->module ? "; rel=modulepreload" : "; rel=preload; as=script";
    case KIND_FONT:
        return "; rel=preload; as=font";
    case KIND_IMAGE:
        return "; rel=preload; as=image";
    default:
        return "; rel=preload; as=fetch";
    }
}

/* Writes the Link value in rank order and points the language's critical paths into it. */
static void build_link(struct critical *c)
{
    struct sbuf link = {NULL};
    size_t *offsets = h2o_mem_alloc((c->num + 1) * sizeof(*offsets)), n = 0;
    for (int rank = 0; rank != NUM_RANKS; ++rank) {
        for (size_t i = 0; i != c->num; ++i) {
            const struct entry *e = &c->entries[i];
            if (e->rank != (enum rank)rank)
                continue;
            sb_str(&link, link.len != 0 ? ", <" : "<");
            offsets[n++] = link.len;
            sb_add(&link, c->a->prefix.base, c->a->prefix.len);
            sb_str(&link, e->url);
            sb_str(&link, ">");
            sb_str(&link, link_params(e));
            if (e->crossorigin != NULL)
                sb_str(&link, strcmp(e->crossorigin, "use-credentials") == 0 ? "; crossorigin=use-credentials" : "; crossorigin");
        }
    }
    c->lang->link = h2o_iovec_init(link.base, link.len);
    c->lang->critical = h2o_mem_alloc((n + 1) * sizeof(*c->lang->critical));
    for (size_t i = 0; i != n; ++i) {
        const char *close = memchr(link.base + offsets[i], '>', link.len - offsets[i]);
        c->lang->critical[i] = h2o_iovec_init(link.base + offsets[i], close - link.base - offsets[i]);
    }
    c->lang->num_critical = n;
    free(offsets);
}

/* index.html's critical set for one language: its stylesheets and scripts, what the stylesheets need, what the scripts
 * request once they run (lazy chunks, images of component styles), the extras. */
static void build_critical_set(struct assets *a, struct assets_lang *lang, char *const *preload, size_t num_preload)
{
    struct critical c = {.a = a, .lang = lang, .doc_base = h2o_iovec_init(H2O_STRLIT("/"))};
    if (lang->document.base == NULL)
        return;
    scan_html(&c, lang->document);
    for (size_t i = 0; i != c.num; ++i) /* grows as @import adds sheets */
        if (c.entries[i].rank == RANK_STYLE)
            scan_css(&c, h2o_iovec_init(c.entries[i].url, strcspn(c.entries[i].url, "?")), c.entries[i].file->identity.data);
    for (size_t i = 0; i != c.num; ++i) /* what this adds is not RANK_SCRIPT: chunks are not scanned in turn */
        if (c.entries[i].rank == RANK_SCRIPT)
            scan_script(&c, i);
    add_extras(&c, preload, num_preload);
    build_link(&c);
    for (size_t i = 0; i != c.num; ++i)
        free(c.entries[i].url);
    free(c.entries);
}

/* Every configured preload path must name a file of some language: a typo fails the load instead of silently doing nothing. */
static int check_preload(struct loader *l, char *const *preload, size_t num_preload)
{
    for (size_t i = 0; i != num_preload; ++i) {
        struct sbuf url = {NULL};
        int found = 0;
        if (resolve_ref(l->a, h2o_iovec_init(H2O_STRLIT("/")), extra_ref(preload[i]), &url) == 0)
            for (size_t j = 0; j != l->a->num_langs && !found; ++j)
                found = find_url(&l->a->langs[j], url.base) != NULL;
        free(url.base);
        if (!found)
            return fail(l, "%s: preload path %s names no file of the build (a path below url_prefix, e.g. /assets/logo.svg)",
                        l->root, preload[i]);
    }
    return 0;
}

/* ---- load and free ---- */

static void compute_stats(struct assets *a)
{
    struct assets_stats *s = &a->stats;
    s->languages = a->num_langs;
    for (size_t i = 0; i != a->num_langs; ++i) {
        for (size_t j = 0; j != a->langs[i].num_files; ++j) {
            const struct assets_file *f = &a->langs[i].files[j];
            size_t id = f->identity.data.len, gz = f->gzip.data.base != NULL ? f->gzip.data.len : id;
            ++s->files;
            s->identity_bytes += id;
            s->gzip_bytes += gz;
            s->br_bytes += f->br.data.base != NULL ? f->br.data.len : gz;
            s->memory_bytes += id + f->gzip.data.len + f->br.data.len;
        }
    }
}

static int set_prefix(struct loader *l, const char *url_prefix)
{
    size_t len = url_prefix != NULL ? strlen(url_prefix) : 0;
    while (len != 0 && url_prefix[len - 1] == '/')
        --len;
    if (len != 0 && url_prefix[0] != '/')
        return fail(l, "url_prefix %s: must be empty or start with '/'", url_prefix);
    l->a->prefix = h2o_strdup(NULL, len != 0 ? url_prefix : "", len);
    return 0;
}

/* Reads, compresses and indexes the build; the steps after reading cannot fail. */
static int load(struct loader *l, char *const *preload, size_t num_preload)
{
    struct assets *a = l->a;
    int rootfd = open(l->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return fail(l, "%s: %s", l->root, strerror(errno));
    int rc = list_languages(l, rootfd) == 0 && find_default_language(l, rootfd) == 0 && read_languages(l, rootfd) == 0 ? 0 : -1;
    close(rootfd);
    if (rc != 0)
        return -1;
    compress_all(a);
    for (size_t i = 0; i != a->num_langs; ++i)
        qsort(a->langs[i].files, a->langs[i].num_files, sizeof(*a->langs[i].files), cmp_file);
    mark_vary_language(a);
    build_lang_keys(a);
    if (check_preload(l, preload, num_preload) != 0)
        return -1;
    for (size_t i = 0; i != a->num_langs; ++i) {
        build_critical_set(a, &a->langs[i], preload, num_preload);
        free(a->langs[i].document.base);
        a->langs[i].document = h2o_iovec_init(NULL, 0);
    }
    compute_stats(a);
    return 0;
}

static void destroy(struct assets *a)
{
    for (size_t i = 0; i != a->num_langs; ++i) {
        struct assets_lang *lang = &a->langs[i];
        for (size_t j = 0; j != lang->num_files; ++j) {
            struct assets_file *f = &lang->files[j];
            free(f->path.base);
            free(f->identity.data.base);
            free(f->gzip.data.base);
            free(f->br.data.base);
            free(f->identity.etag.base);
        }
        free(lang->files);
        free(lang->name);
        free(lang->document.base);
        free(lang->link.base);
        free(lang->critical);
    }
    for (size_t i = 0; i != a->num_keys; ++i)
        free(a->keys[i].key);
    free(a->keys);
    free(a->langs);
    free(a->prefix.base);
    free(a);
}

struct assets *assets_load(const char *root, const char *url_prefix, char *const *preload, size_t num_preload, char *err,
                           size_t errlen)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct assets *a = h2o_mem_alloc(sizeof(*a));
    memset(a, 0, sizeof(*a));
    a->refs = 1;
    struct loader l = {a, root, err, errlen};
    if (set_prefix(&l, url_prefix) != 0 || load(&l, preload, num_preload) != 0) {
        destroy(a);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    a->stats.load_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return a;
}

void assets_free(struct assets *a)
{
    if (a != NULL && --a->refs == 0)
        destroy(a);
}

const struct assets_stats *assets_get_stats(const struct assets *a)
{
    return &a->stats;
}

h2o_iovec_t assets_preload_link(const struct assets_lang *lang)
{
    return lang != NULL && lang->link.base != NULL ? lang->link : h2o_iovec_init(H2O_STRLIT(""));
}

size_t assets_critical_paths(const struct assets_lang *lang, const h2o_iovec_t **paths)
{
    *paths = lang != NULL ? lang->critical : NULL;
    return lang != NULL ? lang->num_critical : 0;
}

/* ---- serving ---- */

/* Several headers of one name as the backend would get them: joined with `sep`; {NULL, 0} when absent. */
static h2o_iovec_t joined_header(h2o_req_t *req, const h2o_token_t *token, const char *sep)
{
    h2o_iovec_t v = {NULL, 0};
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, token, i)) != -1;) {
        h2o_iovec_t next = req->headers.entries[i].value;
        if (v.base == NULL) {
            v = next;
        } else {
            h2o_iovec_t parts[] = {v, h2o_iovec_init(sep, strlen(sep)), next};
            v = h2o_concat_list(&req->pool, parts, 3);
        }
    }
    return v;
}

/* If-None-Match with weak comparison (RFC 9110 13.1.2): "*" or a listed tag with the same opaque-tag. */
static int etag_listed(h2o_iovec_t inm, h2o_iovec_t etag)
{
    const char *p = inm.base, *end = inm.base + inm.len;
    while (p < end) {
        while (p < end && (is_space(*p) || *p == ','))
            ++p;
        if (p < end && *p == '*')
            return 1;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *close = p < end && *p == '"' ? memchr(p + 1, '"', end - p - 1) : NULL;
        if (close == NULL)
            return 0;
        if (h2o_memis(p, close + 1 - p, etag.base, etag.len))
            return 1;
        p = close + 1;
    }
    return 0;
}

static int not_modified(h2o_req_t *req, h2o_iovec_t etag)
{
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, i)) != -1;)
        if (etag_listed(req->headers.entries[i].value, etag))
            return 1;
    return 0;
}

static void release_on_dispose(void *p)
{
    assets_free(*(struct assets **)p);
}

/* The response points into the store: keep it alive until the request's pool goes, after the last byte is written. */
static void hold_until_done(struct assets *a, h2o_req_t *req)
{
    struct assets **ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), release_on_dispose);
    *ref = a;
    ++a->refs;
}

static void add_response_headers(h2o_req_t *req, const struct assets_file *f, const struct assets_body *body)
{
    static const char *const vary[] = {NULL, "Accept-Encoding", "Accept-Language, Cookie",
                                       "Accept-Encoding, Accept-Language, Cookie"};
    const char *v = vary[(f->gzip.data.base != NULL || f->br.data.base != NULL) | (f->vary_language << 1)];
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, body->etag.base, body->etag.len);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, f->cache_control.base, f->cache_control.len);
    if (v != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, v, strlen(v));
    forward_add_dashboard_security_headers(req);
}

/* What libh2o reads to send render-blocking files first to HTTP/2 clients that give no stream
 * dependencies (front.c turns http2.reprioritize_blocking_assets on, as h2o does). */
static h2o_mime_attributes_t render_blocking_attr = {.is_compressible = 1, .priority = H2O_MIME_ATTRIBUTE_PRIORITY_HIGHEST};

int assets_serve(struct assets *a, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (a == NULL || (!is_head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))))
        return -1;
    const struct assets_lang *lang =
        assets_negotiate(a, joined_header(req, H2O_TOKEN_COOKIE, "; "), joined_header(req, H2O_TOKEN_ACCEPT_LANGUAGE, ", "));
    const struct assets_file *f = assets_lookup(a, lang, req->path);
    if (f == NULL)
        return -1;
    const struct assets_body *body = assets_choose_body(f, joined_header(req, H2O_TOKEN_ACCEPT_ENCODING, ", "));
    hold_until_done(a, req);
    add_response_headers(req, f, body);
    if (not_modified(req, body->etag)) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_start_response(req, &generator);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 0;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body->data.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, f->content_type.base, f->content_type.len);
    if (body->encoding != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_ENCODING, NULL, body->encoding, strlen(body->encoding));
    if (f->render_blocking) /* libh2o looks up "text/javascript" in its own MIME map, which has only application/javascript */
        req->res.mime_attr = &render_blocking_attr;
    h2o_iovec_t buf = body->data;
    h2o_start_response(req, &generator);
    h2o_send(req, &buf, is_head ? 0 : 1, H2O_SEND_STATE_FINAL);
    return 0;
}
