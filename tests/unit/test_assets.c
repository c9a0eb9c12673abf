/*
 * Unit tests for the in-memory asset store (assets.c): a small fake build in a temporary directory (two languages,
 * hashed and unhashed names, a stylesheet with @font-face, symlinks), and, when ASSETS_REAL_DIST names the real
 * dashboard build, a round trip of every file in it plus its totals and critical set.
 */
#define _GNU_SOURCE /* nftw's FTW_PHYS, mkdtemp */
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <brotli/decode.h>
#include <zlib.h>

#include "assets.h"

#include "check.h"

#define H_HASH "0123456789abcdef0123"
#define STYLES "styles." H_HASH ".css"
#define RUNTIME "runtime.1111111111111111aaaa.js"
#define MAIN_EN "main.2222222222222222bbbb.js"
#define MAIN_DE "main.7777777777777777abcd.js"
#define WOFF2 "fa.3333333333333333cccc.woff2"
#define WOFF "fa.4444444444444444dddd.woff"
#define EOT "fa.5555555555555555eeee.eot"
#define GIF "bg.6666666666666666ffff.gif"
#define CHUNK "42.8888888888888888aaaa.js"          /* lazy chunks named in RUNTIME's chunk map, en-US only */
#define CHUNK_NAMED "about.9999999999999999bbbb.js"
#define DECOY "7.8888888888888888aaaa.js"         /* exists, but only x7:"..." names it: not a chunk map entry */
#define LOGIN_GIF "login.aaaaaaaaaaaaaaaa1111.gif" /* named by a component style in MAIN_EN */
#define LOGO_SVG "assets/logo-white.svg"           /* named by <img src> in a template in MAIN_EN (minified) */
#define BRAND_PNG "assets/brand.png"               /* the same, unminified */
#define DECOY_SVG "assets/decoy.svg"               /* in MAIN_EN only where no <img src> names it */

static char root[256], dist[300];

/* The core links only the brotli encoder; the test loads the decoder at run time rather than add a build dependency. */
typedef BrotliDecoderResult (*brotli_decompress_fn)(size_t, const uint8_t *, size_t *, uint8_t *);
static brotli_decompress_fn brotli_decompress;

static void load_brotli_decoder(void)
{
    void *lib = dlopen("libbrotlidec.so.1", RTLD_NOW);
    if (lib != NULL)
        *(void **)&brotli_decompress = dlsym(lib, "BrotliDecoderDecompress");
    CHECK(brotli_decompress != NULL);
}

static h2o_iovec_t iov(const char *s)
{
    return s != NULL ? h2o_iovec_init(s, strlen(s)) : h2o_iovec_init(NULL, 0);
}

static int iov_eq(h2o_iovec_t v, const char *s)
{
    return v.base != NULL && h2o_memis(v.base, v.len, s, strlen(s));
}

static void write_file(const char *rel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    FILE *fp = fopen(path, "wb");
    if (fp == NULL || fwrite(data, 1, len, fp) != len) {
        perror(path);
        exit(2);
    }
    fclose(fp);
}

static void write_text(const char *rel, const char *text)
{
    write_file(rel, text, strlen(text));
}

static void make_dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    if (mkdir(path, 0755) != 0) {
        perror(path);
        exit(2);
    }
}

/* Bytes no compressor shrinks, as in a woff2 or gif. */
static void write_random(const char *rel, size_t len, unsigned seed)
{
    unsigned char *buf = malloc(len);
    for (size_t i = 0; i != len; ++i) {
        seed = seed * 1103515245 + 12345;
        buf[i] = (unsigned char)(seed >> 16);
    }
    write_file(rel, buf, len);
    free(buf);
}

/* `lines` of compressible code, then `tail`. */
static void write_script(const char *rel, int lines, const char *tail)
{
    size_t cap = (size_t)lines * 48 + strlen(tail) + 1, n = 0;
    char *buf = malloc(cap);
    for (int i = 0; i != lines; ++i)
        n += (size_t)snprintf(buf + n, cap - n, "function f%d(a){return a*%d+\"x\";}\n", i, i % 97);
    n += (size_t)snprintf(buf + n, cap - n, "%s", tail);
    write_file(rel, buf, n);
    free(buf);
}

/* webpack's chunk map: 42 and "about" exist in en-US only, 43 nowhere; a short hash, a key glued to an identifier (x7),
 * and main's own name and hash (already in the set) add nothing. */
static const char runtime_tail[] =
    "o={x7:\"8888888888888888aaaa\"};r.u=e=>e+\".\"+{42:\"8888888888888888aaaa\",43:\"0123456789abcdef0123\","
    "\"about\":'9999999999999999bbbb',44:\"abcdef\"}[e]+\".js\",y={\"main\":\"2222222222222222bbbb\"};\n";

/* Angular's component styles: an image of the build (twice, once in capitals), a missing one, data:, an empty url(), a font,
 * one the stylesheet already has, another origin, and a JavaScript URL() call. */
static const char main_tail[] =
    "const styles=[\".login[_ngcontent-%COMP%]{background:url(" LOGIN_GIF ") no-repeat}\","
    "\".a{background:url('missing.0123456789abcdef4444.png')}.b{background:url(data:image/gif;base64,R0lGOD)}\","
    "\".c{background:url()}.d{src:url(\\\"" WOFF "\\\")}.e{src:url('" WOFF2 "')}.f{background:url(" GIF ")}\","
    "\".g{background:url(https://cdn.example/x.gif)}.h{background:URL( " LOGIN_GIF " )}\"],u=new URL(\"" GIF "\",base);\n"
/* Angular's template consts: <img src> of an image of the build (minified, then unminified in single quotes), the same
 * again, one the set already has, a script, a missing file, another origin, an escape (not decoded), no string after the comma,
 * srcset and data-src (not "src"), and "src" not followed by a comma. Only the first two are taken: DECOY_SVG exists. */
    "const consts=[[1,\"row\"],[\"src\",\"" LOGO_SVG "\",\"alt\",\"Ceph\",1,\"img-fluid\"],['src', '" BRAND_PNG "'],"
    "[\"src\",\"" LOGO_SVG "\"],[\"src\",\"" GIF "\"],[\"src\",\"" RUNTIME "\"],[\"src\",\"assets/none.svg\"],"
    "[\"src\",\"https://cdn.example/y.svg\"],[\"src\",\"assets\\/decoy.svg\"],[\"src\",e.logo],"
    "[\"srcset\",\"assets/decoy.svg\"],[\"data-src\",\"assets/decoy.svg\"],\"src\"+\"assets/decoy.svg\"];\n";

static const char index_en[] = "<!DOCTYPE html><html lang=\"en-US\"><head>\n"
                               "<meta charset=\"utf-8\"><title>Ceph <script src=\"" MAIN_EN "\"></script></title>\n"
                               "<link rel=\"icon\" type=\"image/x-icon\" href=\"favicon.ico\">\n"
                               "<!-- <script src=\"" MAIN_EN "\"></script> -->\n"
                               "<style>body{background:url(assets/x.svg)}</style>"
                               "<link rel=\"stylesheet\" href=\"" STYLES "\" media=\"print\" onload=\"this.media='all'\">"
                               "<noscript><link rel=\"stylesheet\" href=\"noscript.css\"></noscript>\n"
                               "</head><body><cd-root></cd-root>\n"
                               "<script src=\"" RUNTIME "\" defer></script><SCRIPT SRC='" MAIN_EN "' defer></SCRIPT>\n"
                               "<script src=\"https://cdn.example/x.js\"></script><script nomodule src=\"legacy.js\"></script>\n"
                               "<script src=\"missing.0123456789abcdef0000.js\"></script>\n"
                               "</body></html>\n";

static const char styles[] =
    "@charset \"UTF-8\";/* url(" GIF "?commented) */\n"
    "@font-face{font-family:FA;src:url(" EOT "?v=1);src:url(" EOT "?#iefix&v=1) format(\"embedded-opentype\"),"
    "url(" WOFF "?v=1) format(\"woff\"),url(" WOFF2 "?v=1) format('woff2');font-weight:400}\n"
    ".bg{background:url(\"" GIF "\")}.d{background:url(data:image/png;base64,AAAA)}\n"
    ".s:before{content:\"url(favicon.ico)\"}.m{background:url(missing.png)}.x{background:url(" GIF ")}\n";

/* en-US: the build as Angular makes it; de-DE: a second language sharing runtime, with its own main and favicon. */
static void make_build(void)
{
    strcpy(root, "/tmp/test_assets.XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(dist, sizeof(dist), "%s/dist", root);
    write_text("package.json", "{\"name\": \"ceph-dashboard\", \"config\": {\"locale\": \"en-US\"}}\n");
    make_dir("dist");
    make_dir("dist/en-US");
    make_dir("dist/en-US/assets");
    make_dir("dist/de-DE");
    write_text("dist/en-US/index.html", index_en);
    write_text("dist/en-US/" STYLES, styles);
    write_script("dist/en-US/" RUNTIME, 40, runtime_tail);
    write_script("dist/en-US/" MAIN_EN, 2000, main_tail);
    write_script("dist/en-US/" CHUNK, 20, "");
    write_script("dist/en-US/" CHUNK_NAMED, 20, "");
    write_script("dist/en-US/" DECOY, 20, "");
    write_random("dist/en-US/" LOGIN_GIF, 2000, 5);
    write_random("dist/en-US/" WOFF2, 4096, 1);
    write_random("dist/en-US/" WOFF, 5000, 2);
    write_random("dist/en-US/" EOT, 6000, 3);
    write_random("dist/en-US/" GIF, 3000, 4);
    char ico[1150] = {0, 0, 1, 0, 1, 0, 16, 16};
    write_file("dist/en-US/favicon.ico", ico, sizeof(ico));
    write_text("dist/en-US/assets/x.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"10\" height=\"10\"/>"
                                          "<rect width=\"10\" height=\"10\"/><rect width=\"10\" height=\"10\"/></svg>\n");
    write_text("dist/en-US/assets/logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>\n");
    write_text("dist/en-US/" LOGO_SVG, "<svg xmlns=\"http://www.w3.org/2000/svg\"><circle r=\"5\"/></svg>\n");
    write_random("dist/en-US/" BRAND_PNG, 300, 6);
    write_text("dist/en-US/" DECOY_SVG, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n");
    write_text("dist/en-US/notes.unknownext", "not a type the dashboard names\n");
    write_text("dist/en-US/empty.txt", "");
    make_dir("dist/en-US/api");
    write_text("dist/en-US/api/summary.json", "{}"); /* the dashboard routes /api to its controllers */
    char path[512];
    snprintf(path, sizeof(path), "%s/dist/en-US/link.js", root);
    CHECK(symlink("/etc/passwd", path) == 0);
    snprintf(path, sizeof(path), "%s/dist/en-US/linkdir", root);
    CHECK(symlink("/etc", path) == 0);
    write_text("dist/de-DE/index.html", "<html><body><script src=\"" RUNTIME "\"></script><script src=\"" MAIN_DE
                                        "\" type=module crossorigin></script></body></html>");
    write_script("dist/de-DE/" RUNTIME, 40, runtime_tail);
    write_script("dist/de-DE/" MAIN_DE, 300, "");
    ico[10] = 1;
    write_file("dist/de-DE/favicon.ico", ico, sizeof(ico));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_build(void)
{
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *preload_extra[] = {"/assets/logo.svg", "/" STYLES};

static struct assets *load_fake(const char *prefix)
{
    char err[512] = "";
    struct assets *a = assets_load(dist, prefix, preload_extra, 2, err, sizeof(err));
    if (a == NULL)
        fprintf(stderr, "assets_load: %s\n", err);
    return a;
}

/* Loads a small build written under the test's root directory, without url_prefix or preload paths. */
static struct assets *load_tree(const char *dir)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof(path), "%s/%s", root, dir);
    struct assets *a = assets_load(path, "", NULL, 0, err, sizeof(err));
    if (a == NULL)
        fprintf(stderr, "assets_load %s: %s\n", path, err);
    return a;
}

static const struct assets_lang *negotiate(const struct assets *a, const char *cookie, const char *al)
{
    return assets_negotiate(a, iov(cookie), iov(al));
}

static const char *lang_of(const struct assets *a, const char *cookie, const char *al)
{
    const struct assets_lang *lang = negotiate(a, cookie, al);
    return lang != NULL ? assets_lang_name(lang) : "(forward)";
}

static void test_negotiation(const struct assets *a)
{
    CHECK(strcmp(lang_of(a, NULL, NULL), "en-US") == 0);
    CHECK(strcmp(lang_of(a, NULL, ""), "en-US") == 0);
    CHECK(strcmp(lang_of(a, NULL, "de"), "de-DE") == 0);
    CHECK(strcmp(lang_of(a, NULL, "de-DE,en;q=0.5"), "de-DE") == 0);
    CHECK(strcmp(lang_of(a, NULL, "fr, en;q=0.8"), "en-US") == 0);
    CHECK(strcmp(lang_of(a, NULL, "fr"), "en-US") == 0);
    CHECK(strcmp(lang_of(a, NULL, "de;q=0.5, en-US;q=0.9"), "en-US") == 0);
    CHECK(strcmp(lang_of(a, NULL, "en;q=0.5, de;q=0.5"), "de-DE") == 0); /* equal weights: alphabetical */
    CHECK(strcmp(lang_of(a, NULL, "*, de"), "de-DE") == 0);
    /* home.py answers 400 for these: forwarded */
    CHECK(negotiate(a, NULL, "en-US;q=1") == NULL);
    CHECK(negotiate(a, NULL, "en-US ,de") == NULL);
    CHECK(negotiate(a, NULL, "en-US; q=0.5") == NULL);
    CHECK(negotiate(a, NULL, "en_US") == NULL);
    CHECK(negotiate(a, NULL, "en-US;q=0.1234") == NULL);
    CHECK(negotiate(a, NULL, "toolongtag") == NULL);
    CHECK(strcmp(lang_of(a, NULL, "a,b,c,d,e,f,g,h,i,de,not valid"), "de-DE") == 0); /* the 11th tag is never looked at */
    /* the cd-lang cookie wins, and Accept-Language is not even parsed then */
    CHECK(strcmp(lang_of(a, "cd-lang=de-DE", "en-US"), "de-DE") == 0);
    CHECK(strcmp(lang_of(a, "token=abc.def-ghi_j; cd-lang=DE", NULL), "de-DE") == 0);
    CHECK(strcmp(lang_of(a, "cd-lang=de-DE; cd-lang=en-US", NULL), "en-US") == 0);
    CHECK(strcmp(lang_of(a, "cd-lang=\"de-de\"", NULL), "de-DE") == 0);
    CHECK(strcmp(lang_of(a, "cd-lang=xx", "de"), "en-US") == 0);
    CHECK(strcmp(lang_of(a, "cd-lang=de-DE", "en-US;q=1"), "de-DE") == 0);
    CHECK(strcmp(lang_of(a, "token=x", "de"), "de-DE") == 0);
    CHECK(negotiate(a, "token=x", "en-US;q=1") == NULL);
    /* cookies SimpleCookie would read otherwise, or refuse: forwarded */
    CHECK(negotiate(a, "a b=c; cd-lang=de-DE", NULL) == NULL);
    CHECK(negotiate(a, "a,b=1", NULL) == NULL);
    CHECK(negotiate(a, "$Version=1; cd-lang=de", NULL) == NULL);
    CHECK(negotiate(a, "path=/; cd-lang=de", NULL) == NULL);
}

static const struct assets_file *lookup(const struct assets *a, const struct assets_lang *lang, const char *path)
{
    return assets_lookup(a, lang, iov(path));
}

static void test_lookup(const struct assets *a)
{
    const struct assets_lang *en = negotiate(a, NULL, NULL), *de = negotiate(a, NULL, "de");
    const struct assets_file *f;
    CHECK((f = lookup(a, en, "/" MAIN_EN)) != NULL && iov_eq(f->path, "/" MAIN_EN));
    CHECK((f = lookup(a, en, "/favicon.ico?x=1")) != NULL && iov_eq(f->path, "/favicon.ico"));
    CHECK((f = lookup(a, en, "/" WOFF2 "?v=1.1.7")) != NULL && iov_eq(f->path, "/" WOFF2));
    CHECK((f = lookup(a, en, "/assets/x.svg")) != NULL && iov_eq(f->path, "/assets/x.svg"));
    CHECK((f = lookup(a, en, "/%66avicon.ico")) != NULL && iov_eq(f->path, "/favicon.ico"));
    CHECK(lookup(a, en, "/assets%2Fx.svg") == NULL);
    CHECK(lookup(a, en, "/assets%2fx.svg") == NULL);
    CHECK(lookup(a, en, "/assets/./x.svg") == NULL);
    CHECK(lookup(a, en, "//favicon.ico") == NULL);
    CHECK(lookup(a, en, "/favicon.ico/") == NULL);
    CHECK(lookup(a, en, "/../etc/passwd") == NULL);
    CHECK(lookup(a, en, "/%2e%2e/etc/passwd") == NULL);
    CHECK(lookup(a, en, "/%2E%2E/%2E%2E/etc/passwd") == NULL);
    CHECK(lookup(a, en, "/assets/..%2f..%2fetc/passwd") == NULL);
    CHECK(lookup(a, en, "/assets/%2e%2e/favicon.ico") == NULL);
    CHECK(lookup(a, en, "/assets/../favicon.ico") == NULL);
    CHECK(lookup(a, en, "/favicon.ic%") == NULL);
    CHECK(lookup(a, en, "/favicon.ico%00") == NULL);
    CHECK(lookup(a, en, "/favicon.ico%zz") == NULL);
    CHECK(lookup(a, en, "/fav%C3%AFcon.ico") == NULL);
    CHECK(lookup(a, en, "favicon.ico") == NULL);
    CHECK(lookup(a, en, "/index.html") == NULL);
    CHECK(lookup(a, en, "/index.html?x") == NULL);
    CHECK(lookup(a, en, "/") == NULL);
    CHECK(lookup(a, en, "") == NULL);
    CHECK(assets_lookup(a, en, h2o_iovec_init(NULL, 0)) == NULL);
    CHECK(lookup(a, en, "/link.js") == NULL);          /* symlink out of root */
    CHECK(lookup(a, en, "/linkdir/passwd") == NULL);   /* symlinked directory */
    CHECK(lookup(a, en, "/notes.unknownext") == NULL); /* a type we do not know: the dashboard decides */
    CHECK(lookup(a, en, "/api/summary.json") == NULL); /* routed to the API, not home.py */
    CHECK(lookup(a, NULL, "/favicon.ico") == NULL);
    /* each language answers from its own directory, as home.py does */
    CHECK(lookup(a, de, "/" STYLES) == NULL);
    CHECK(lookup(a, de, "/" MAIN_DE) != NULL);
    CHECK(lookup(a, en, "/" MAIN_DE) == NULL);
    CHECK(lookup(a, de, "/" RUNTIME) != NULL && !lookup(a, de, "/" RUNTIME)->vary_language);
    CHECK(lookup(a, de, "/favicon.ico")->vary_language && lookup(a, en, "/favicon.ico")->vary_language);
    CHECK(lookup(a, en, "/" STYLES)->vary_language);
    CHECK(assets_is_document(a, iov("/")));
    CHECK(assets_is_document(a, iov("/index.html")));
    CHECK(assets_is_document(a, iov("/?lang=x")));
    CHECK(!assets_is_document(a, iov("/" MAIN_EN)));
    CHECK(!assets_is_document(a, iov("/assets/index.html")));
}

static void test_prefix(void)
{
    struct assets *a = load_fake("/ceph/");
    CHECK(a != NULL);
    if (a == NULL)
        return;
    const struct assets_lang *en = negotiate(a, NULL, NULL);
    CHECK(lookup(a, en, "/ceph/favicon.ico") != NULL);
    CHECK(lookup(a, en, "/%63eph/favicon.ico") != NULL);
    CHECK(lookup(a, en, "/ceph/assets/x.svg?v=2") != NULL);
    CHECK(lookup(a, en, "/favicon.ico") == NULL);
    CHECK(lookup(a, en, "/cephx/favicon.ico") == NULL);
    CHECK(lookup(a, en, "/ceph") == NULL);
    CHECK(lookup(a, en, "/ceph/") == NULL);
    CHECK(lookup(a, en, "/ceph/../favicon.ico") == NULL);
    CHECK(assets_is_document(a, iov("/ceph/")));
    CHECK(!assets_is_document(a, iov("/ceph")));
    CHECK(!assets_is_document(a, iov("/")));
    h2o_iovec_t link = assets_preload_link(en);
    CHECK(link.len > 7 && memcmp(link.base, "</ceph/" STYLES ">", 7 + strlen(STYLES) + 1) == 0);
    const h2o_iovec_t *paths;
    size_t n = assets_critical_paths(en, &paths);
    CHECK(n == 12 && iov_eq(paths[0], "/ceph/" STYLES) && iov_eq(paths[4], "/ceph/" WOFF2 "?v=1") &&
          iov_eq(paths[6], "/ceph/" CHUNK) && iov_eq(paths[8], "/ceph/" LOGIN_GIF) && iov_eq(paths[9], "/ceph/" LOGO_SVG));
    assets_free(a);
}

static int inflate_equals(h2o_iovec_t gz, h2o_iovec_t expected)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return 0;
    unsigned char *out = malloc(expected.len + 16);
    z.next_in = (unsigned char *)gz.base;
    z.avail_in = (uInt)gz.len;
    z.next_out = out;
    z.avail_out = (uInt)expected.len + 16;
    int rc = inflate(&z, Z_FINISH);
    int ok = rc == Z_STREAM_END && z.total_out == expected.len && memcmp(out, expected.base, expected.len) == 0;
    inflateEnd(&z);
    free(out);
    return ok;
}

static int unbrotli_equals(h2o_iovec_t br, h2o_iovec_t expected)
{
    size_t n = expected.len + 16;
    uint8_t *out = malloc(n);
    int ok = brotli_decompress != NULL &&
             brotli_decompress(br.len, (const uint8_t *)br.base, &n, out) == BROTLI_DECODER_RESULT_SUCCESS && n == expected.len &&
             memcmp(out, expected.base, n) == 0;
    free(out);
    return ok;
}

/* A file's variants decode to exactly its bytes and are smaller, or are absent. */
static int round_trips(const struct assets_file *f)
{
    const h2o_iovec_t id = f->identity.data;
    if (f->gzip.data.base != NULL && (f->gzip.data.len >= id.len || !inflate_equals(f->gzip.data, id)))
        return 0;
    if (f->br.data.base != NULL && (f->br.data.len >= id.len || !unbrotli_equals(f->br.data, id)))
        return 0;
    return 1;
}

static void test_bodies(const struct assets *a)
{
    const struct assets_lang *en = negotiate(a, NULL, NULL);
    static const char *const paths[] = {"/" STYLES, "/" RUNTIME,    "/" MAIN_EN,     "/" WOFF2,          "/" WOFF,    "/" EOT,
                                        "/" GIF,    "/favicon.ico", "/assets/x.svg", "/assets/logo.svg", "/empty.txt"};
    for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        const struct assets_file *f = lookup(a, en, paths[i]);
        CHECK(f != NULL && round_trips(f));
    }
    const struct assets_file *main_js = lookup(a, en, "/" MAIN_EN), *woff2 = lookup(a, en, "/" WOFF2),
                             *empty = lookup(a, en, "/empty.txt");
    CHECK(main_js->gzip.data.base != NULL && main_js->br.data.base != NULL);
    CHECK(main_js->br.data.len < main_js->gzip.data.len && main_js->gzip.data.len < main_js->identity.data.len / 4);
    CHECK(woff2->gzip.data.base == NULL && woff2->br.data.base == NULL); /* incompressible: no variants */
    CHECK(empty->identity.data.len == 0 && empty->gzip.data.base == NULL && empty->br.data.base == NULL);
    CHECK(inflate_equals(lookup(a, en, "/favicon.ico")->gzip.data, lookup(a, en, "/favicon.ico")->identity.data));
}

static const char *encoding_for(const struct assets_file *f, const char *accept_encoding)
{
    const char *e = assets_choose_body(f, iov(accept_encoding))->encoding;
    return e != NULL ? e : "identity";
}

static void test_encoding_choice(const struct assets *a)
{
    const struct assets_lang *en = negotiate(a, NULL, NULL);
    const struct assets_file *f = lookup(a, en, "/" MAIN_EN), *woff2 = lookup(a, en, "/" WOFF2);
    CHECK(strcmp(encoding_for(f, "gzip, deflate, br, zstd"), "br") == 0);
    CHECK(strcmp(encoding_for(f, "br;q=0, gzip"), "gzip") == 0);
    CHECK(strcmp(encoding_for(f, "br; q=0.0, gzip;q=0.5"), "gzip") == 0);
    CHECK(strcmp(encoding_for(f, "gzip"), "gzip") == 0);
    CHECK(strcmp(encoding_for(f, "x-gzip"), "gzip") == 0);
    CHECK(strcmp(encoding_for(f, "BR"), "br") == 0);
    CHECK(strcmp(encoding_for(f, "identity"), "identity") == 0);
    CHECK(strcmp(encoding_for(f, "*"), "br") == 0);
    CHECK(strcmp(encoding_for(f, "*;q=0"), "identity") == 0);
    CHECK(strcmp(encoding_for(f, "*;q=0, gzip"), "gzip") == 0);
    CHECK(strcmp(encoding_for(f, "br;q=0, *"), "gzip") == 0);
    CHECK(strcmp(encoding_for(f, "gzip;q=0.000, br;q=0"), "identity") == 0);
    CHECK(strcmp(encoding_for(f, ""), "identity") == 0);
    CHECK(strcmp(encoding_for(f, NULL), "identity") == 0);
    CHECK(strcmp(encoding_for(woff2, "br, gzip"), "identity") == 0);
    CHECK(assets_choose_body(f, iov("br"))->data.base == f->br.data.base);
    CHECK(assets_choose_body(f, iov("identity"))->data.base == f->identity.data.base);
}

static int is_base64url(const char *p, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (!(isalnum((unsigned char)p[i]) || p[i] == '-' || p[i] == '_'))
            return 0;
    return 1;
}

static void test_headers(const struct assets *a, const struct assets *b)
{
    const struct assets_lang *en = negotiate(a, NULL, NULL), *en_b = negotiate(b, NULL, NULL);
    const struct assets_file *f = lookup(a, en, "/" MAIN_EN), *g = lookup(b, en_b, "/" MAIN_EN);
    const struct assets_file *ico = lookup(a, en, "/favicon.ico"), *svg = lookup(a, en, "/assets/x.svg");
    /* strong, from the content, 22 base64url characters, one per representation, stable across loads */
    CHECK(f->identity.etag.len == 24 && f->identity.etag.base[0] == '"' && f->identity.etag.base[23] == '"');
    CHECK(is_base64url(f->identity.etag.base + 1, 22));
    CHECK(f->gzip.etag.len == 27 && memcmp(f->gzip.etag.base, f->identity.etag.base, 23) == 0 &&
          memcmp(f->gzip.etag.base + 23, "-gz\"", 4) == 0);
    CHECK(f->br.etag.len == 27 && memcmp(f->br.etag.base + 23, "-br\"", 4) == 0);
    CHECK(h2o_memis(f->identity.etag.base, f->identity.etag.len, g->identity.etag.base, g->identity.etag.len));
    CHECK(h2o_memis(f->br.etag.base, f->br.etag.len, g->br.etag.base, g->br.etag.len));
    CHECK(!h2o_memis(f->identity.etag.base, f->identity.etag.len, ico->identity.etag.base, ico->identity.etag.len));
    CHECK(lookup(a, en, "/" WOFF2)->gzip.etag.base == NULL);
    /* caching by name */
    CHECK(f->immutable && iov_eq(f->cache_control, "public, max-age=31536000, immutable"));
    CHECK(lookup(a, en, "/" GIF)->immutable && lookup(a, en, "/" STYLES)->immutable);
    CHECK(!ico->immutable && iov_eq(ico->cache_control, "no-cache"));
    CHECK(!svg->immutable && iov_eq(svg->cache_control, "no-cache"));
    /* the dashboard's own content types */
    CHECK(iov_eq(f->content_type, "text/javascript;charset=utf-8"));
    CHECK(iov_eq(lookup(a, en, "/" STYLES)->content_type, "text/css;charset=utf-8"));
    CHECK(iov_eq(lookup(a, en, "/" WOFF2)->content_type, "font/woff2"));
    /* CherryPy maps .ico to image/x-icon itself (cherrypy/lib/static.py); the dashboard sends that */
    CHECK(iov_eq(ico->content_type, "image/x-icon"));
    CHECK(iov_eq(svg->content_type, "image/svg+xml"));
    CHECK(iov_eq(lookup(a, en, "/empty.txt")->content_type, "text/plain;charset=utf-8"));
}

static void test_critical_set(const struct assets *a)
{
    const struct assets_lang *en = negotiate(a, NULL, NULL), *de = negotiate(a, NULL, "de");
    static const char expected[] = "</" STYLES ">; rel=preload; as=style, "
                                   "</" RUNTIME ">; rel=preload; as=script, "
                                   "</" MAIN_EN ">; rel=preload; as=script, "
                                   "</assets/x.svg>; rel=preload; as=image, "
                                   "</" WOFF2 "?v=1>; rel=preload; as=font; crossorigin, "
                                   "</" GIF ">; rel=preload; as=image, "
                                   "</" CHUNK ">; rel=preload; as=script, "
                                   "</" CHUNK_NAMED ">; rel=preload; as=script, "
                                   "</" LOGIN_GIF ">; rel=preload; as=image, "
                                   "</" LOGO_SVG ">; rel=preload; as=image, "
                                   "</" BRAND_PNG ">; rel=preload; as=image, "
                                   "</assets/logo.svg>; rel=preload; as=image";
    h2o_iovec_t link = assets_preload_link(en);
    CHECK(iov_eq(link, expected));
    if (!iov_eq(link, expected))
        fprintf(stderr, "  got:      %.*s\n  expected: %s\n", (int)link.len, link.base, expected);
    const h2o_iovec_t *paths;
    size_t n = assets_critical_paths(en, &paths);
    CHECK(n == 12);
    CHECK(n == 12 && iov_eq(paths[0], "/" STYLES) && iov_eq(paths[1], "/" RUNTIME) && iov_eq(paths[2], "/" MAIN_EN) &&
          iov_eq(paths[4], "/" WOFF2 "?v=1") && iov_eq(paths[6], "/" CHUNK) && iov_eq(paths[8], "/" LOGIN_GIF) &&
          iov_eq(paths[9], "/" LOGO_SVG) && iov_eq(paths[10], "/" BRAND_PNG) && iov_eq(paths[11], "/assets/logo.svg"));
    /* the same runtime, but de-DE has no chunk files: nothing is added */
    static const char expected_de[] = "</" RUNTIME ">; rel=preload; as=script, </" MAIN_DE ">; rel=modulepreload; crossorigin";
    CHECK(iov_eq(assets_preload_link(de), expected_de));
    CHECK(iov_eq(assets_preload_link(NULL), ""));
}

/* A build whose runtime names 20 chunks and whose main.js names 10 images: the set takes the first 16 and the first 8. */
static void test_script_bounds(void)
{
    char map[2048] = "r.u=e=>e+\".\"+{", css[2048] = "const styles=[\"", name[64];
    size_t m = strlen(map), k = strlen(css);
    make_dir("bounds");
    make_dir("bounds/en-US");
    write_text("bounds/en-US/index.html", "<script src=\"runtime.js\"></script><script src=\"main.js\"></script>");
    for (int i = 0; i != 20; ++i) {
        m += (size_t)snprintf(map + m, sizeof(map) - m, "%d:\"%016d\",", i, i);
        snprintf(name, sizeof(name), "bounds/en-US/%d.%016d.js", i, i);
        write_text(name, "0");
    }
    for (int i = 0; i != 10; ++i) {
        k += (size_t)snprintf(css + k, sizeof(css) - k, ".i%d{background:url(img%d.png)}", i, i);
        snprintf(name, sizeof(name), "bounds/en-US/img%d.png", i);
        write_random(name, 100, (unsigned)i);
    }
    snprintf(map + m, sizeof(map) - m, "}[e]+\".js\";");
    snprintf(css + k, sizeof(css) - k, "\"];");
    write_text("bounds/en-US/runtime.js", map);
    write_text("bounds/en-US/main.js", css);
    struct assets *a = load_tree("bounds");
    CHECK(a != NULL);
    if (a == NULL)
        return;
    const h2o_iovec_t *paths;
    size_t n = assets_critical_paths(negotiate(a, NULL, NULL), &paths);
    CHECK(n == 2 + 16 + 8 && iov_eq(paths[2], "/0.0000000000000000.js") && iov_eq(paths[17], "/15.0000000000000015.js") &&
          iov_eq(paths[18], "/img0.png") && iov_eq(paths[25], "/img7.png"));
    assets_free(a);
}

/* Scripts in a subdirectory: chunks and component style images resolve against the page, as webpack (empty public
 * path) and Angular (styles in <style>) load them; the same names beside the scripts are not what the browser asks for.
 * A name ending in url( (myurl() is no url() call, in a stylesheet or a script. */
static void test_script_refs_resolve_against_the_page(void)
{
    make_dir("paged");
    make_dir("paged/en-US");
    make_dir("paged/en-US/js");
    write_text("paged/en-US/index.html", "<link rel=\"stylesheet\" href=\"s.css\"><script src=\"js/runtime.js\"></script>"
                                         "<script src=\"js/main.js\"></script>");
    write_text("paged/en-US/s.css", ".y{background:myurl(dec.gif)}");
    write_text("paged/en-US/js/runtime.js", "r.u=e=>e+\".\"+{5:\"5555555555555555\"}[e]+\".js\";");
    write_text("paged/en-US/js/main.js", "const styles=[\".bg{background:url(bg.gif)}.x{mask:myurl(dec.gif)}\"];");
    write_random("paged/en-US/dec.gif", 100, 9);
    write_text("paged/en-US/5.5555555555555555.js", "0");
    write_text("paged/en-US/js/5.5555555555555555.js", "0");
    write_random("paged/en-US/bg.gif", 100, 7);
    write_random("paged/en-US/js/bg.gif", 100, 8);
    struct assets *a = load_tree("paged");
    CHECK(a != NULL);
    if (a == NULL)
        return;
    const h2o_iovec_t *paths;
    size_t n = assets_critical_paths(negotiate(a, NULL, NULL), &paths);
    CHECK(n == 5 && iov_eq(paths[0], "/s.css") && iov_eq(paths[1], "/js/runtime.js") && iov_eq(paths[2], "/js/main.js") &&
          iov_eq(paths[3], "/5.5555555555555555.js") && iov_eq(paths[4], "/bg.gif"));
    assets_free(a);
}

static void test_load_errors(void)
{
    char err[512] = "", path[512];
    char *bad_preload[] = {"/assets/nope.svg"};
    CHECK(assets_load(dist, "", bad_preload, 1, err, sizeof(err)) == NULL && strstr(err, "/assets/nope.svg") != NULL);
    snprintf(path, sizeof(path), "%s/en-US", dist);
    CHECK(assets_load(path, "", NULL, 0, err, sizeof(err)) == NULL && strstr(err, "index.html") != NULL);
    snprintf(path, sizeof(path), "%s/nonexistent", dist);
    CHECK(assets_load(path, "", NULL, 0, err, sizeof(err)) == NULL && strstr(err, "nonexistent") != NULL);
    CHECK(assets_load(dist, "ceph", NULL, 0, err, sizeof(err)) == NULL && strstr(err, "url_prefix") != NULL);
    snprintf(path, sizeof(path), "%s/empty", root);
    make_dir("empty");
    CHECK(assets_load(path, "", NULL, 0, err, sizeof(err)) == NULL && strstr(err, "no language directory") != NULL);
}

static void test_fake_build(void)
{
    make_build();
    struct assets *a = load_fake(""), *b = load_fake("");
    CHECK(a != NULL && b != NULL);
    if (a != NULL && b != NULL) {
        const struct assets_stats *s = assets_get_stats(a);
        CHECK(s->languages == 2 && s->files == 21 && s->skipped == 4);
        CHECK(s->gzip_bytes < s->identity_bytes && s->br_bytes < s->gzip_bytes);
        test_negotiation(a);
        test_lookup(a);
        test_bodies(a);
        test_encoding_choice(a);
        test_headers(a, b);
        test_critical_set(a);
    }
    assets_free(a);
    assets_free(b);
    test_prefix();
    test_script_bounds();
    test_script_refs_resolve_against_the_page();
    test_load_errors();
    remove_build();
}

/* -- the real build -- */

struct walk {
    const struct assets *a;
    const struct assets_lang *lang;
    size_t files, failures;
};

/* Every file under a language directory of the real build must be found and round-trip. */
static void walk_dir(struct walk *w, const char *dir, const char *url)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    CHECK(d != NULL);
    while (d != NULL && (de = readdir(d)) != NULL) {
        char path[1024], sub[1024];
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        snprintf(sub, sizeof(sub), "%s/%s", url, de->d_name);
        if (lstat(path, &st) != 0 || S_ISLNK(st.st_mode))
            continue;
        if (S_ISDIR(st.st_mode)) {
            walk_dir(w, path, sub);
        } else if (strcmp(sub, "/index.html") != 0) {
            const struct assets_file *f = assets_lookup(w->a, w->lang, h2o_iovec_init(sub, strlen(sub)));
            ++w->files;
            if (f == NULL || f->identity.data.len != (size_t)st.st_size || !round_trips(f)) {
                ++w->failures;
                fprintf(stderr, "real build: %s does not round-trip\n", sub);
            }
            if (f != NULL)
                printf("  %-56s %9zu %9zu %9zu  %s\n", sub, f->identity.data.len, f->gzip.data.len, f->br.data.len,
                       f->immutable ? "immutable" : "no-cache");
        }
    }
    if (d != NULL)
        closedir(d);
}

static void test_real_build(const char *real)
{
    char err[512] = "", dir[1024];
    struct assets *a = assets_load(real, "", NULL, 0, err, sizeof(err));
    CHECK(a != NULL);
    if (a == NULL) {
        fprintf(stderr, "real build %s: %s\n", real, err);
        return;
    }
    const struct assets_stats *s = assets_get_stats(a);
    struct walk w = {a, assets_negotiate(a, h2o_iovec_init(NULL, 0), h2o_iovec_init(NULL, 0)), 0, 0};
    printf("real build %s (%s):\n  %-56s %9s %9s %9s\n", real, assets_lang_name(w.lang), "file", "identity", "gzip", "br");
    snprintf(dir, sizeof(dir), "%s/%s", real, assets_lang_name(w.lang));
    walk_dir(&w, dir, "");
    CHECK(w.files == s->files && w.failures == 0);
    printf("  totals: %zu languages, %zu files (%zu skipped); identity %llu B, gzip %llu B, br %llu B; memory %llu B; "
           "loaded in %.2f s\n",
           s->languages, s->files, s->skipped, (unsigned long long)s->identity_bytes, (unsigned long long)s->gzip_bytes,
           (unsigned long long)s->br_bytes, (unsigned long long)s->memory_bytes, s->load_seconds);
    h2o_iovec_t link = assets_preload_link(w.lang);
    const h2o_iovec_t *paths;
    size_t n = assets_critical_paths(w.lang, &paths);
    printf("  critical set (%zu):\n", n);
    for (size_t i = 0; i != n; ++i)
        printf("    %.*s\n", (int)paths[i].len, paths[i].base);
    printf("  Link: %.*s\n", (int)link.len, link.base);
    CHECK(n >= 6);
    assets_free(a);
}

int main(void)
{
    load_brotli_decoder();
    test_fake_build();
    const char *real = getenv("ASSETS_REAL_DIST");
    if (real != NULL && real[0] != '\0')
        test_real_build(real);
    return check_summary();
}
