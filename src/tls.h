/*
 * tls: OpenSSL contexts for the front (browser side) and for https:// backends.
 *
 * The front accepts TLS 1.2 and 1.3 only, with forward-secret AEAD ciphers, session resumption
 * (tickets and a server-side cache) and ALPN `h2` then `http/1.1`. A listener configured with
 * `tls: self-signed` gets a certificate generated in memory at start.
 */
#ifndef H2FRONT_TLS_H
#define H2FRONT_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "config.h"

/* Builds the server context for one listener. Returns NULL and fills err (what, and what to do). */
SSL_CTX *tls_create_server_ctx(const struct config_listen *listen, char *err, size_t errlen);

/* Builds the client context used to reach an https:// backend (verification per its config). */
SSL_CTX *tls_create_backend_ctx(const struct config_backend *backend, char *err, size_t errlen);

/* The SHA-256 of the certificate's public key, base64: what Chromium's
 * --ignore-certificate-errors-spki-list and curl's --pinnedpubkey take. */
int tls_spki_fingerprint(SSL_CTX *ctx, char *out, size_t outlen);

#endif
