/* Unit tests for how health probes read a backend's answer (health_classify): the three faces of a
 * Ceph mgr (active, standby redirect/error/refresh page) and what counts as down. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "health.h"

#include "check.h"

static enum upstream_state classify(const struct config *cfg, int status, const char *body)
{
    const char *why = NULL;
    enum upstream_state s = health_classify(cfg, status, body, strlen(body), &why);
    CHECK(why != NULL && why[0] != '\0');
    return s;
}

int main(void)
{
    struct config cfg;
    config_init(&cfg);

    /* the active dashboard's index.html, and an active one refusing an unauthenticated API path */
    CHECK(classify(&cfg, 200, "<!doctype html><html lang=\"en-US\"><head><base href=\"/\">") == UPSTREAM_ACTIVE);
    CHECK(classify(&cfg, 401, "{\"detail\": \"You are not authorized\"}") == UPSTREAM_ACTIVE);
    CHECK(classify(&cfg, 404, "{}") == UPSTREAM_ACTIVE);

    /* standby_behaviour: redirect (303; 302 to HTTP/1.0 clients) */
    CHECK(classify(&cfg, 303, "This resource can be found at http://mgr-b:8443/") == UPSTREAM_STANDBY);
    CHECK(classify(&cfg, 302, "") == UPSTREAM_STANDBY);
    /* the standby that knows no active mgr: a 200 that refreshes itself */
    CHECK(classify(&cfg, 200, "<html><head><meta http-equiv=\"refresh\" content=\"5\"></head>No active ceph-mgr") ==
          UPSTREAM_STANDBY);
    CHECK(classify(&cfg, 200, "<META HTTP-EQUIV=\"Refresh\" CONTENT=\"5\">") == UPSTREAM_STANDBY);
    /* standby_behaviour: error, with Ceph's default 500 */
    CHECK(classify(&cfg, 500, "{\"status\": \"500 Internal Server Error\", \"detail\": \"Keep on looking\"}") == UPSTREAM_STANDBY);

    /* with standby_error_status_code 503 configured, 500 is a real error and 503 the standby */
    cfg.health_check.standby_status = 503;
    CHECK(classify(&cfg, 503, "{\"detail\": \"Keep on looking\"}") == UPSTREAM_STANDBY);
    CHECK(classify(&cfg, 500, "Internal Server Error") == UPSTREAM_DOWN);
    CHECK(classify(&cfg, 502, "") == UPSTREAM_DOWN);
    cfg.health_check.standby_status = 429;
    CHECK(classify(&cfg, 429, "") == UPSTREAM_STANDBY);

    config_free(&cfg);
    return check_summary();
}
