/*
 * check.h: the unit tests' one assertion. A failed CHECK prints where and what, and the run goes on,
 * so one run reports every failure; check_summary() prints the closing "N passed, N failed" line
 * that CI reads and returns the exit status.
 */
#ifndef H2FRONT_TESTS_CHECK_H
#define H2FRONT_TESTS_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (cond) {                                                                                                                \
            ++passed;                                                                                                              \
        } else {                                                                                                                   \
            ++failed;                                                                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                                               \
        }                                                                                                                          \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

#endif
