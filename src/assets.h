/*
 * assets: the dashboard's frontend build (dist/), held in memory and precompressed.
 *
 * CherryPy serves the 5.9 MB Angular build uncompressed, with `Cache-Control: no-cache` and no
 * ETag. h2front loads the build once (start or reload): every file is read, hashed (sha256, for a
 * strong ETag) and compressed with brotli (quality 11) and gzip (level 9), keeping a compressed
 * variant only when it is smaller. Content-hashed names (main.35ec9db61bcbaf2e5786.js) are cached
 * for a year as immutable; the rest stays no-cache.
 *
 * URL mapping follows the dashboard's controllers/home.py exactly: the build holds one directory
 * per language (en-US/), a request's language comes from the `cd-lang` cookie or Accept-Language,
 * and the path is looked up in that language's directory under url_prefix. Whenever the dashboard
 * could answer differently from the stored file (its 400 for a malformed Accept-Language, an
 * ambiguous language choice, a path it would resolve otherwise, index.html with its per-language
 * headers), lookup answers "not an asset" and the request is forwarded: a miss is always safe.
 *
 * index.html is never served from memory (it is the document the dashboard negotiates), but it is
 * parsed at load for the critical set that Link preload, 103 Early Hints and HTTP/2 push announce.
 *
 * The store is immutable after assets_load and used from the event loop thread only. Responses
 * sent by assets_serve point into it without copying and hold a reference, so assets_free on
 * reload is safe while old responses are still being written. assets_load itself touches no
 * event-loop state, so a reload can run it on a worker thread and swap stores on the loop.
 */
#ifndef H2FRONT_ASSETS_H
#define H2FRONT_ASSETS_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>

struct assets;      /* the loaded build */
struct assets_lang; /* one language directory of it, e.g. en-US */

/* One stored representation of a file. */
struct assets_body {
    h2o_iovec_t data;     /* .base NULL: this coding was not kept (it did not save bytes) */
    h2o_iovec_t etag;     /* strong, from the content: "\"<22 chars base64url sha256>\"", "-gz"/"-br" appended for codings */
    const char *encoding; /* Content-Encoding: NULL (identity), "gzip" or "br" */
};

/* One file of the build. */
struct assets_file {
    h2o_iovec_t path;          /* URL path below url_prefix, e.g. "/main.35ec9db61bcbaf2e5786.js" */
    h2o_iovec_t content_type;  /* as the dashboard sends it, e.g. "text/javascript;charset=utf-8" */
    h2o_iovec_t cache_control; /* "public, max-age=31536000, immutable" or "no-cache" */
    int immutable;             /* the name has a content hash (a dot-separated component of >= 16 hex digits) */
    int vary_language;         /* another language answers this path differently: Vary on Accept-Language and Cookie */
    int render_blocking;       /* a script or stylesheet: the page cannot render before it */
    struct assets_body identity, gzip, br;
};

struct assets_stats {
    size_t languages;        /* language directories in root (home.py's LANGUAGES) */
    size_t files;            /* files held, index.html documents excluded */
    size_t skipped;          /* symlinks, special files, unknown types, unreachable names: left to the dashboard */
    uint64_t identity_bytes; /* sum of file sizes */
    uint64_t gzip_bytes;     /* what a gzip-only client downloads for every file (gzip variant, else identity) */
    uint64_t br_bytes;       /* the same for a br client (br variant, else gzip, else identity) */
    uint64_t memory_bytes;   /* every body held: identity plus kept variants */
    double load_seconds;
};

/*
 * Loads the build at `root` (the dist/ directory holding en-US/ etc.) for a dashboard mounted at
 * `url_prefix` ("" or "/prefix"). `preload` lists extra paths below url_prefix (with an optional
 * query) for every language's critical set; each must name a file of the build. Blocks while it
 * compresses (seconds for the real build; the work is spread over the CPUs). NULL and a message
 * in `err` on failure.
 */
struct assets *assets_load(const char *root, const char *url_prefix, char *const *preload, size_t num_preload, char *err,
                           size_t errlen);

/* Drops the caller's reference; memory goes once no response sent by assets_serve points into it. NULL is fine. */
void assets_free(struct assets *a);

const struct assets_stats *assets_get_stats(const struct assets *a);

/*
 * The language directory home.py would serve a request from. `cookie` is the request's Cookie
 * value (several Cookie headers joined with "; ", as forwarded), `accept_language` its
 * Accept-Language (several joined with ", "); {NULL, 0} when absent. NULL when the dashboard would
 * answer 400 (malformed Accept-Language) or its choice cannot be predicted: forward then.
 */
const struct assets_lang *assets_negotiate(const struct assets *a, h2o_iovec_t cookie, h2o_iovec_t accept_language);

/* "en-US": the directory name, which the dashboard also sends as Content-Language. */
const char *assets_lang_name(const struct assets_lang *lang);

/*
 * The file for a request path as sent (query string and url_prefix handled, percent-escapes
 * decoded) in `lang`; NULL if it is not an asset held in memory: index.html and "/", anything
 * outside url_prefix, traversal, dot segments, "%2F", NUL, non-ASCII. NULL lang gives NULL.
 * A binary search: O(log files).
 */
const struct assets_file *assets_lookup(const struct assets *a, const struct assets_lang *lang, h2o_iovec_t path);

/* True for the document itself (url_prefix + "/" or "/index.html"): forwarded, but the place for Early Hints and push. */
int assets_is_document(const struct assets *a, h2o_iovec_t path);

/* The body for an Accept-Encoding value: br, else gzip, else identity, honouring q=0 and "*"; never NULL. */
const struct assets_body *assets_choose_body(const struct assets_file *f, h2o_iovec_t accept_encoding);

/*
 * The critical set of a language as a ready Link header value, "" when empty: the stylesheets
 * index.html loads, then its scripts in document order, then what those stylesheets need (fonts,
 * only the woff2 of a multi-format @font-face; images), then what those scripts request once they
 * run (the webpack lazy chunks of their chunk maps, then the images named by url() in component
 * styles embedded in them and by <img src> in their compiled templates; files of the build only),
 * then the configured preload paths, e.g.
 *   </styles.x.css>; rel=preload; as=style, </main.x.js>; rel=preload; as=script,
 *   </fa.x.woff2?v=1>; rel=preload; as=font; crossorigin, </117.x.js>; rel=preload; as=script,
 *   </bg.x.gif>; rel=preload; as=image
 * URLs are absolute paths including url_prefix and the query the document uses, so they match
 * the browser's requests.
 */
h2o_iovec_t assets_preload_link(const struct assets_lang *lang);

/* The same set as paths (url_prefix and query included) for HTTP/2 push; returns the count. */
size_t assets_critical_paths(const struct assets_lang *lang, const h2o_iovec_t **paths);

/*
 * Answers a GET or HEAD for an asset from memory: 200 (or 304 for a matching If-None-Match) with
 * Content-Type, Content-Encoding, Vary, ETag, Cache-Control, Content-Length, the dashboard's
 * security headers (HSTS, CSP frame-ancestors, nosniff), and the body pointing into the store.
 * Returns 0 when it answered, -1 when the request is not for an asset (the caller forwards it).
 * Takes a reference on `a` for as long as the response is in flight.
 */
int assets_serve(struct assets *a, h2o_req_t *req);

#endif
