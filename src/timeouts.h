/*
 * timeouts: closing libh2o timeouts that live inside a struct the caller frees.
 *
 * libh2o 2.2.5's h2o_timeout_dispose closes the libuv timer inside the h2o_timeout_t with no
 * callback; libuv touches that timer again on its next pass over closing handles. A struct that
 * holds timeouts may therefore be freed only after that pass, which h2o_timeout_dispose cannot
 * tell. timeouts_close closes a struct's timeouts and calls back once libuv is done with all of
 * them: that callback is where the struct is freed.
 */
#ifndef H2FRONT_TIMEOUTS_H
#define H2FRONT_TIMEOUTS_H

#include <stddef.h>
#include <h2o.h>

/* Closes the n timeouts (none may have an entry linked) and calls on_closed(data) once libuv has
 * finished closing the last of them, from the event loop. */
void timeouts_close(h2o_timeout_t *const *timeouts, size_t n, void (*on_closed)(void *data), void *data);

#endif
