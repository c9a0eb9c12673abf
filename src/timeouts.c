#include <assert.h>
#include <stdlib.h>
#include <uv.h>

#include "timeouts.h"

struct closing {
    size_t open;
    void (*on_closed)(void *data);
    void *data;
};

static void on_timer_closed(uv_handle_t *timer)
{
    struct closing *c = timer->data;
    if (--c->open != 0)
        return;
    c->on_closed(c->data);
    free(c);
}

void timeouts_close(h2o_timeout_t *const *timeouts, size_t n, void (*on_closed)(void *data), void *data)
{
    assert(n != 0);
    struct closing *c = h2o_mem_alloc(sizeof(*c));
    *c = (struct closing){.open = n, .on_closed = on_closed, .data = data};
    for (size_t i = 0; i != n; ++i) {
        assert(h2o_linklist_is_empty(&timeouts[i]->_entries));
        timeouts[i]->_backend.timer.data = c;
        uv_close((uv_handle_t *)&timeouts[i]->_backend.timer, on_timer_closed);
    }
}
