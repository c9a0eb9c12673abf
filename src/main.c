/*
 * h2front: HTTP/2 + TLS in front of the Ceph mgr dashboard.
 *
 * main reads the command line and the config, builds the front (which builds everything else),
 * runs the event loop, and turns SIGTERM/SIGINT into a graceful stop: listeners close, HTTP/2
 * clients get GOAWAY, requests in flight finish (for up to 10 s), then the process exits.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "h2front_version.h"
#include "config.h"
#include "front.h"
#include "log.h"

#define DRAIN_LIMIT_MS 10000

struct daemon {
    uv_loop_t loop;
    struct front *front;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_timer;
    uint64_t drain_started;
    int stopping;
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: h2front -c FILE [--check]\n"
                 "HTTP/2 and TLS front end for the Ceph mgr dashboard.\n\n"
                 "  -c, --config FILE  configuration file (YAML); see config/h2front.yaml\n"
                 "  -t, --check        validate the configuration and exit (0: valid, 1: errors printed)\n"
                 "  -v, --version      print the version and exit\n"
                 "  -h, --help         print this help and exit\n");
}

/* Waits for connections to finish after a stop signal, then ends the loop. */
static void on_drain_tick(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    front_close_idle_connections(d->front);
    size_t open = front_num_connections(d->front);
    if (open == 0 || uv_now(&d->loop) - d->drain_started >= DRAIN_LIMIT_MS) {
        if (open != 0)
            log_warn("main", "closing %zu connection(s) still open after %d ms", open, DRAIN_LIMIT_MS);
        uv_stop(&d->loop);
    }
}

static void on_stop_signal(uv_signal_t *handle, int signum)
{
    struct daemon *d = handle->data;
    if (d->stopping++) {
        log_warn("main", "second stop signal: exiting now");
        uv_stop(&d->loop);
        return;
    }
    log_info("main", "received %s: draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    front_begin_shutdown(d->front);
    d->drain_started = uv_now(&d->loop);
    uv_timer_start(&d->drain_timer, on_drain_tick, 100, 100);
}

static void watch_signals(struct daemon *d)
{
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_timer_init(&d->loop, &d->drain_timer);
    d->sigterm.data = d->sigint.data = d->drain_timer.data = d;
    uv_signal_start(&d->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_stop_signal, SIGINT);
}

/* Lets every handle's close callback run (they free memory), then closes the loop: a clean exit
 * is what lets LeakSanitizer vouch for the whole run. */
static void close_loop(struct daemon *d)
{
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->drain_timer, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d->loop) != 0)
        log_debug("main", "event loop closed with handles still open");
}

static int run(const struct config *cfg)
{
    struct daemon d;
    memset(&d, 0, sizeof(d));
    uv_loop_init(&d.loop);
    watch_signals(&d);
    if ((d.front = front_create(cfg, &d.loop)) == NULL) {
        close_loop(&d);
        return 1;
    }
    log_info("main", "h2front %s ready: %zu listener(s), backend %s (max %u connections)", H2FRONT_VERSION, cfg->listen.size,
             cfg->backends.entries[0].url, cfg->upstream.max_connections);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    if (front_num_connections(d.front) != 0) {
        /* requests still in flight own memory and timers: tearing down under them helps nobody,
         * and neither would a leak report about them */
        log_info("main", "stopped with %zu connection(s) still open", front_num_connections(d.front));
        _exit(0);
    }
    front_destroy(d.front);
    close_loop(&d);
    log_info("main", "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"check", no_argument, NULL, 't'},
                                             {"version", no_argument, NULL, 'v'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int check_only = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:tvh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check_only = 1;
            break;
        case 'v':
            printf("h2front %s (libh2o %s)\n", H2FRONT_VERSION, H2O_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct config cfg;
    if (config_load(&cfg, path, stderr) != 0)
        return 1;
    if (check_only) {
        printf("%s: configuration OK\n", path);
        config_free(&cfg);
        return 0;
    }
    log_level = cfg.log.level;
    int rc = run(&cfg);
    config_free(&cfg);
    return rc;
}
