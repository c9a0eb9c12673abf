/*
 * ytree: a YAML document as a small tree that remembers where every node was written.
 *
 * libyaml's event stream is turned into scalars, sequences and mappings; each node keeps its 1-based line and column
 * so the configuration validator can point at the exact value that is wrong. Only the plain-data subset of YAML that a
 * configuration file needs is accepted: anchors, aliases, merge keys (<<), non-scalar keys, duplicate keys and more than
 * one document are reported as located errors instead of being silently interpreted.
 */
#ifndef H2FRONT_YTREE_H
#define H2FRONT_YTREE_H

#include <stddef.h>
#include <stdio.h>

enum ytree_type {
    YTREE_SCALAR,
    YTREE_SEQUENCE,
    YTREE_MAPPING,
};

struct ytree_pair {
    struct ytree_node *key; /* always a scalar unless key->reported */
    struct ytree_node *value;
};

struct ytree_node {
    enum ytree_type type;
    size_t line, column;       /* 1-based position of the node's first character */
    char *text;                /* scalars: the value, NUL-terminated (never contains a NUL); NULL otherwise */
    size_t len;                /* scalars: strlen(text) */
    int plain;                 /* scalars: written without quotes or block style, so "~" or "" mean null */
    int reported;              /* an error about this node was already printed; consumers skip it silently */
    size_t size;               /* sequences: number of items; mappings: number of pairs */
    struct ytree_node **items; /* sequences only */
    struct ytree_pair *pairs;  /* mappings only, in the order written */
};

/*
 * Parses one YAML document from `text` (`len` bytes; need not be NUL-terminated). `name` is the file name used in messages.
 * Every problem is printed to `err` as one line `NAME:LINE:COL: what: why; what to do`, and the number of problems is
 * returned (0 = clean). *root receives the tree, or NULL when the file is empty or has a YAML syntax error (nothing
 * after a syntax error can be trusted). Problems that leave the structure intact (duplicate key, alias, merge key) still
 * produce a tree in which the offending nodes have `reported` set. Free *root with ytree_free in every case.
 */
unsigned ytree_parse(const char *name, const char *text, size_t len, FILE *err, struct ytree_node **root);

/* Frees a node and everything below it; NULL is fine. */
void ytree_free(struct ytree_node *node);

/* The value stored under `key` in a mapping (keys whose own error was reported are ignored), or NULL. */
const struct ytree_node *ytree_get(const struct ytree_node *mapping, const char *key);

/* True for a plain scalar that YAML reads as null: empty, "~" or "null" (any common case). */
int ytree_is_null(const struct ytree_node *node);

#endif
