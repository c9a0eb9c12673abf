/*
 * health: which backend is the active mgr.
 *
 * A Ceph cluster runs several mgr daemons and only the active one serves the dashboard; the
 * others answer as standbys (a redirect to the active mgr, an error status, or a self-refreshing
 * "no active mgr" page), and all of them accept TCP. So h2front asks each backend over HTTP, on a
 * timer, and also learns from every proxied exchange (refused, reset, timed out, a standby's
 * redirect). Results move a backend between active, standby and down with rise/fall counts; each
 * change is logged once with its reason and handed to the upstream pool, which routes requests
 * to the active backend. Probes borrow connections from the same bounded pool as requests, so
 * CherryPy never sees more than upstream.max_connections connections from h2front.
 */
#ifndef H2FRONT_HEALTH_H
#define H2FRONT_HEALTH_H

#include "config.h"
#include "upstream.h"

struct health;

/* Starts probing every backend at once, then every health_check.interval. */
struct health *health_create(struct upstream *up, const struct config *cfg);
void health_destroy(struct health *health);

/* What a proxied exchange observed of its backend: UPSTREAM_ACTIVE for an ordinary answer,
 * UPSTREAM_DOWN for a failure, UPSTREAM_STANDBY for a standby's redirect (conclusive at once). */
void health_report(struct health *health, struct upstream_backend *backend, enum upstream_state observed, const char *why);

/* Classifies one backend answer the way probes do; exposed for the unit tests. */
enum upstream_state health_classify(const struct config *cfg, int status, const char *body, size_t body_len, const char **why);

#endif
