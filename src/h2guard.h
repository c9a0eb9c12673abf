/*
 * h2guard: HTTP/2 abuse that Debian's libh2o 2.2.5 does not stop by itself.
 *
 * Rapid Reset (CVE-2023-44487): a client opens streams and cancels them at once, so that the
 * concurrent-stream limit never bites while every request still costs h2front a handler run and,
 * for the dashboard's API, a request CherryPy must answer. libh2o 2.2.5 (2018) has no defence.
 * h2guard counts, per connection, the streams the client opened and the ones it reset while
 * they were still open; once resets exceed the streams it let finish by more than the budget,
 * the connection ends with GOAWAY (ENHANCE_YOUR_CALM). Browsers cancel a few streams when the
 * user navigates away; they let far more finish.
 *
 * Header floods: libh2o 2.2.5 has no cap on header fields. A header block of up to 417 KB
 * (H2O_MAX_REQLEN) of one-byte references to HPACK's static table decodes into 200,000 fields,
 * some 26 MB of allocations held by a stream whose body never comes (measured: 4 such streams,
 * +106 MB RSS), and a connection may hold 100 such streams. h2front's 431 comes only when the
 * request is complete. h2guard counts a block's fields from its HPACK structure before libh2o
 * decodes it, and ends the connection when there are more than max_fields.
 *
 * libh2o reads frames through one function pointer per connection (_read_expect); h2guard puts
 * its own in front of the library's and hands every frame on. That is libh2o's internal layout,
 * which is why the build is pinned to libh2o 0.13.5 (meson.build).
 */
#ifndef H2FRONT_H2GUARD_H
#define H2FRONT_H2GUARD_H

#include <stdint.h>
#include <h2o.h>

/* What h2guard enforces, copied into each connection when it starts watching it. */
struct h2guard_limits {
    uint32_t reset_budget; /* streams a client may reset beyond those it lets finish */
    uint32_t max_fields;   /* fields in one header block, pseudo-headers included */
};

/* Watches the HTTP/2 connections libh2o created since the last call. Called once per event-loop
 * iteration: a connection's first read is handled inside libh2o's accept, before any h2front code
 * runs, so from its second read on every frame passes h2guard.
 * limits is copied; it may go after the call. */
void h2guard_watch_new_connections(h2o_context_t *ctx, const struct h2guard_limits *limits);

/* Watches the HTTP/2 connection that carries req (once per connection; later calls only keep
 * h2guard's frame reader in place). Called for every request, so that the requests of a
 * connection's first read are counted too. Does nothing for HTTP/1. */
void h2guard_watch(h2o_req_t *req, const struct h2guard_limits *limits);

/* The header fields in an HPACK block, counted from its structure alone (RFC 7541 section 6): no
 * Huffman decoding and no table, so it costs next to nothing and can run before libh2o decodes
 * the block into one allocation per field. Stops counting past max. A malformed block counts
 * what it could; libh2o rejects it. */
size_t h2guard_count_header_fields(const uint8_t *block, size_t len, size_t max);

#endif
