#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <h2o.h>

#include "log.h"
#include "tls.h"

/* TLS 1.2 suites for browsers that do not speak 1.3: ECDHE only (forward secrecy), AEAD only. */
static const char FRONT_CIPHERS_TLS12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                                          "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static void format_openssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(err, errlen, "%s: %s", what, reason);
    ERR_clear_error();
}

/* Adds one subjectAltName-style extension to a certificate we sign ourselves. */
static int add_extension(X509 *cert, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* `tls: self-signed` exists so that a first start works without any files; the certificate lives
 * only in memory, is valid for 30 days and names localhost, which is all a demo or a test needs. */
static int use_self_signed(SSL_CTX *ctx, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    int ret = -1;
    if (key == NULL || cert == NULL)
        goto Exit;
    X509_set_version(cert, 2);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"h2front self-signed", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (add_extension(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") != 0 ||
        add_extension(cert, NID_basic_constraints, "critical,CA:FALSE") != 0 || X509_sign(cert, key, EVP_sha256()) == 0 ||
        SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
        goto Exit;
    ret = 0;
Exit:
    if (ret != 0)
        format_openssl_error(err, errlen, "cannot generate the self-signed certificate");
    X509_free(cert);
    EVP_PKEY_free(key);
    return ret;
}

static int use_files(SSL_CTX *ctx, const struct config_listen *l, char *err, size_t errlen)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, l->certificate) != 1) {
        format_openssl_error(err, errlen, "cannot load the certificate chain (PEM expected)");
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, l->key, SSL_FILETYPE_PEM) != 1) {
        format_openssl_error(err, errlen, "cannot load the private key (PEM expected)");
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        format_openssl_error(err, errlen, "the private key does not match the certificate");
        return -1;
    }
    return 0;
}

/* libh2o 2.2.5 (libuv flavour) sends close_notify when it closes a TLS socket, and ignores the
 * error uv_write returns at once on a socket whose peer reset it (libuv stops a stream writing
 * after a read error): the write callback never comes and the connection is never freed. A
 * client that resets its connection is common (a tab closed mid-request), so h2front closes TLS
 * connections without close_notify; HTTP/1.1 and HTTP/2 framing already make truncation visible. */
static void no_close_notify(SSL_CTX *ctx)
{
    SSL_CTX_set_quiet_shutdown(ctx, 1);
}

SSL_CTX *tls_create_server_ctx(const struct config_listen *l, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        format_openssl_error(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* a dashboard tab's connection idles between polls; its 34 KB of record buffers need not */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    no_close_notify(ctx);
    SSL_CTX_set_cipher_list(ctx, FRONT_CIPHERS_TLS12);
    /* OpenSSL's default TLS 1.3 order puts AES-256 first and the server's preference wins: AES-128
     * is as safe here and costs a third less CPU per byte, which is most of what an asset costs */
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384");
    /* Resumption: a per-context session-id context keeps sessions from crossing certificates
     * (the CVE-2023-41337 class); OpenSSL 3 rotates ticket keys itself. */
    static const unsigned char sid_ctx[] = "h2front";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20480);
    int rc = l->tls == CONFIG_TLS_SELF_SIGNED ? use_self_signed(ctx, err, errlen) : use_files(ctx, l, err, errlen);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
}

SSL_CTX *tls_create_backend_ctx(const struct config_backend *b, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        format_openssl_error(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    no_close_notify(ctx);
    if (b->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = b->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, b->ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            format_openssl_error(err, errlen, "cannot load the CA certificates to verify the backend");
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

int tls_spki_fingerprint(SSL_CTX *ctx, char *out, size_t outlen)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    unsigned char *der = NULL, digest[32];
    if (cert == NULL)
        return -1;
    int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    if (len <= 0)
        return -1;
    SHA256(der, (size_t)len, digest);
    OPENSSL_free(der);
    if (outlen < 45)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, digest, sizeof(digest));
    return 0;
}
