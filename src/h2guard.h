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
 * libh2o reads frames through one function pointer per connection (_read_expect); h2guard puts
 * its own in front of the library's and hands every frame on. That is libh2o's internal layout,
 * which is why the build is pinned to libh2o 0.13.5 (meson.build).
 */
#ifndef H2FRONT_H2GUARD_H
#define H2FRONT_H2GUARD_H

#include <stdint.h>
#include <h2o.h>

/* Watches the HTTP/2 connections libh2o created since the last call. Called once per event-loop
 * iteration: a connection's first read is handled inside libh2o's accept, before any h2front code
 * runs, so from its second read on every frame passes h2guard.
 * reset_budget: how many more streams a client may reset than it lets finish. */
void h2guard_watch_new_connections(h2o_context_t *ctx, uint32_t reset_budget);

/* Watches the HTTP/2 connection that carries req (once per connection; later calls only keep
 * h2guard's frame reader in place). Called for every request, so that the requests of a
 * connection's first read are counted too. Does nothing for HTTP/1. */
void h2guard_watch(h2o_req_t *req, uint32_t reset_budget);

#endif
