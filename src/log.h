/*
 * log: one line per event on stderr, with time, level and module.
 *
 * The level test happens before formatting, so a filtered-out debug line costs one comparison.
 * Access logs (one line per request) are a separate sink, added with the metrics module.
 */
#ifndef H2FRONT_LOG_H
#define H2FRONT_LOG_H

enum {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

extern int log_level;

/* Parses "error", "warn", "info" or "debug"; returns the level or -1. */
int log_level_from_name(const char *name);

void log_write(int level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(module, ...) log_write(LOG_LEVEL_ERROR, module, __VA_ARGS__)
#define log_warn(module, ...)                                                                                                      \
    do {                                                                                                                           \
        if (log_level >= LOG_LEVEL_WARN)                                                                                           \
            log_write(LOG_LEVEL_WARN, module, __VA_ARGS__);                                                                        \
    } while (0)
#define log_info(module, ...)                                                                                                      \
    do {                                                                                                                           \
        if (log_level >= LOG_LEVEL_INFO)                                                                                           \
            log_write(LOG_LEVEL_INFO, module, __VA_ARGS__);                                                                        \
    } while (0)
#define log_debug(module, ...)                                                                                                     \
    do {                                                                                                                           \
        if (log_level >= LOG_LEVEL_DEBUG)                                                                                          \
            log_write(LOG_LEVEL_DEBUG, module, __VA_ARGS__);                                                                       \
    } while (0)

#endif
