/*
 * ytree: libyaml's event stream folded into a located tree (see ytree.h).
 *
 * The builder keeps a stack of the collections still open; every new node is attached to the innermost one. Because
 * an open collection is always the last child of its parent, the dotted path of the node being attached can be read
 * off the stack, which is what lets structural errors name the key they are about.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "ytree.h"

/* Deeper nesting than this is certainly not a configuration file; the limit keeps the stack a fixed array. */
#define YTREE_MAX_DEPTH 64

struct builder {
    const char *name; /* file name for messages */
    const char *text; /* the input, to turn a reader error's byte offset into a line and column */
    size_t len;
    FILE *err;
    unsigned errors;
    int documents;
    struct ytree_node *root;
    struct ytree_node *stack[YTREE_MAX_DEPTH]; /* open collections, innermost last */
    size_t depth;
};

enum step { STEP_CONTINUE, STEP_DONE, STEP_ABORT };

/* Allocation failure while reading a config file leaves nothing sensible to do but stop. */
static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (p == NULL && size != 0) {
        fputs("h2front: out of memory while reading the configuration\n", stderr);
        abort();
    }
    return p;
}

/* Every error line has the same shape, so it is written in one place. */
__attribute__((format(printf, 5, 6))) static void report(struct builder *b, size_t line, size_t column, const char *what,
                                                         const char *fmt, ...)
{
    va_list ap;
    fprintf(b->err, "%s:%zu:%zu: %s: ", b->name, line, column, what);
    va_start(ap, fmt);
    vfprintf(b->err, fmt, ap);
    va_end(ap);
    fputc('\n', b->err);
    ++b->errors;
}

/* Appends `s` to the path buffer with anything unprintable replaced, so a hostile key cannot garble the message. */
static void path_append(char *buf, size_t size, size_t *used, const char *s)
{
    for (; *s != '\0' && *used + 1 < size; ++s)
        buf[(*used)++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    buf[*used] = '\0';
}

/* The dotted path (e.g. `listen[0].tls`) of the node attached last, read off the stack of open collections. */
static const char *current_path(const struct builder *b, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i != b->depth; ++i) {
        const struct ytree_node *parent = b->stack[i];
        char index[32];
        if (parent->type == YTREE_SEQUENCE) {
            snprintf(index, sizeof(index), "[%zu]", parent->size - 1);
            path_append(buf, size, &used, index);
        } else if (parent->size != 0) {
            const struct ytree_node *key = parent->pairs[parent->size - 1].key;
            if (used != 0)
                path_append(buf, size, &used, ".");
            path_append(buf, size, &used, key->type == YTREE_SCALAR ? key->text : "?");
        }
    }
    return used != 0 ? buf : "(top level)";
}

/* libyaml marks are 0-based; people (and editors) count from 1. */
static struct ytree_node *new_node(enum ytree_type type, yaml_mark_t mark)
{
    struct ytree_node *node = xrealloc(NULL, sizeof(*node));
    memset(node, 0, sizeof(*node));
    node->type = type;
    node->line = mark.line + 1;
    node->column = mark.column + 1;
    return node;
}

/* Recursive; depth is bounded by YTREE_MAX_DEPTH. */
void ytree_free(struct ytree_node *node)
{
    if (node == NULL)
        return;
    for (size_t i = 0; i != node->size; ++i) {
        if (node->type == YTREE_SEQUENCE) {
            ytree_free(node->items[i]);
        } else {
            ytree_free(node->pairs[i].key);
            ytree_free(node->pairs[i].value);
        }
    }
    free(node->items);
    free(node->pairs);
    free(node->text);
    free(node);
}

/* Capacity doubles at powers of two, so the size alone says when to grow. */
static int needs_growth(size_t size)
{
    return size == 0 || (size & (size - 1)) == 0;
}

/* Sequences just collect their items in order. */
static void append_item(struct ytree_node *seq, struct ytree_node *item)
{
    if (needs_growth(seq->size))
        seq->items = xrealloc(seq->items, (seq->size == 0 ? 1 : seq->size * 2) * sizeof(*seq->items));
    seq->items[seq->size++] = item;
}

/* A mapping receives a key first; its value fills the same pair when it arrives. */
static void append_key(struct ytree_node *map, struct ytree_node *key)
{
    if (needs_growth(map->size))
        map->pairs = xrealloc(map->pairs, (map->size == 0 ? 1 : map->size * 2) * sizeof(*map->pairs));
    map->pairs[map->size].key = key;
    map->pairs[map->size].value = NULL;
    ++map->size;
}

/* A duplicate key would silently override the first one in most YAML loaders; here it is an error pointing at both. */
static const struct ytree_node *find_earlier_key(const struct ytree_node *map, const struct ytree_node *key)
{
    for (size_t i = 0; i + 1 < map->size; ++i) {
        const struct ytree_node *k = map->pairs[i].key;
        if (!k->reported && k->type == YTREE_SCALAR && strcmp(k->text, key->text) == 0)
            return k;
    }
    return NULL;
}

/* Keys must be plain names: no collections as keys, no merge keys, no repeats. */
static void check_key(struct builder *b, const struct ytree_node *map, struct ytree_node *key)
{
    char path[256];
    const struct ytree_node *first;
    if (key->type != YTREE_SCALAR) {
        report(b, key->line, key->column, current_path(b, path, sizeof(path)),
               "a key must be a plain name, not a list or a map; write key: value");
        key->reported = 1;
    } else if (key->plain && strcmp(key->text, "<<") == 0) {
        report(b, key->line, key->column, current_path(b, path, sizeof(path)),
               "merge keys (<<) are not supported; write the keys out in full");
        key->reported = 1;
    } else if ((first = find_earlier_key(map, key)) != NULL) {
        report(b, key->line, key->column, current_path(b, path, sizeof(path)),
               "duplicate key, already set at line %zu, column %zu; keep only one of them", first->line, first->column);
        key->reported = 1;
    }
}

/* Hangs a finished or just-opened node under the innermost open collection (or makes it the root). */
static void attach(struct builder *b, struct ytree_node *node)
{
    struct ytree_node *parent;
    if (b->depth == 0) {
        b->root = node;
        return;
    }
    parent = b->stack[b->depth - 1];
    if (parent->type == YTREE_SEQUENCE) {
        append_item(parent, node);
    } else if (parent->size != 0 && parent->pairs[parent->size - 1].value == NULL) {
        parent->pairs[parent->size - 1].value = node;
    } else {
        append_key(parent, node);
        check_key(b, parent, node);
    }
}

/* Anchors only make sense together with aliases, which are rejected; say so where the anchor is written. */
static void reject_anchor(struct builder *b, const yaml_char_t *anchor, yaml_mark_t mark)
{
    char path[256];
    if (anchor != NULL)
        report(b, mark.line + 1, mark.column + 1, current_path(b, path, sizeof(path)),
               "anchors (&%s) are not supported; write the value out in full", (const char *)anchor);
}

/* An alias stands in for a node written elsewhere; it becomes an empty, already-reported placeholder. */
static void on_alias(struct builder *b, const yaml_event_t *ev)
{
    char path[256];
    struct ytree_node *node = new_node(YTREE_SCALAR, ev->start_mark);
    node->text = xrealloc(NULL, 1);
    node->text[0] = '\0';
    node->reported = 1;
    attach(b, node);
    report(b, node->line, node->column, current_path(b, path, sizeof(path)),
           "aliases (*%s) are not supported; write the value out in full", (const char *)ev->data.alias.anchor);
}

/* Scalars are copied with their style, because an unquoted empty value means null while "" does not. */
static void on_scalar(struct builder *b, const yaml_event_t *ev)
{
    char path[256];
    struct ytree_node *node = new_node(YTREE_SCALAR, ev->start_mark);
    size_t len = ev->data.scalar.length;
    node->text = xrealloc(NULL, len + 1);
    memcpy(node->text, ev->data.scalar.value, len);
    node->text[len] = '\0';
    node->len = len;
    node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    attach(b, node);
    reject_anchor(b, ev->data.scalar.anchor, ev->start_mark);
    if (memchr(node->text, '\0', len) != NULL) {
        report(b, node->line, node->column, current_path(b, path, sizeof(path)),
               "the value contains a NUL character (\\0); remove it");
        node->reported = 1;
        node->len = strlen(node->text);
    }
}

/* Sequences and mappings are attached when they open, so their children find them on the stack. */
static enum step on_collection_start(struct builder *b, const yaml_event_t *ev, enum ytree_type type, const yaml_char_t *anchor)
{
    struct ytree_node *node = new_node(type, ev->start_mark);
    attach(b, node);
    reject_anchor(b, anchor, ev->start_mark);
    if (b->depth == YTREE_MAX_DEPTH) {
        report(b, node->line, node->column, "yaml", "nested more than %d levels deep; this is not an h2front configuration",
               YTREE_MAX_DEPTH);
        return STEP_ABORT;
    }
    b->stack[b->depth++] = node;
    return STEP_CONTINUE;
}

/* A second document would be ignored by most loaders; h2front reads exactly one, so say so. */
static enum step on_document_start(struct builder *b, const yaml_event_t *ev)
{
    if (++b->documents == 1)
        return STEP_CONTINUE;
    report(b, ev->start_mark.line + 1, ev->start_mark.column + 1, "yaml",
           "a second document starts here; h2front reads one document, remove this --- and what follows");
    return STEP_DONE;
}

/* Dispatches one libyaml event to the builder. */
static enum step on_event(struct builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return STEP_DONE;
    case YAML_DOCUMENT_START_EVENT:
        return on_document_start(b, ev);
    case YAML_ALIAS_EVENT:
        on_alias(b, ev);
        return STEP_CONTINUE;
    case YAML_SCALAR_EVENT:
        on_scalar(b, ev);
        return STEP_CONTINUE;
    case YAML_SEQUENCE_START_EVENT:
        return on_collection_start(b, ev, YTREE_SEQUENCE, ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(b, ev, YTREE_MAPPING, ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        --b->depth;
        return STEP_CONTINUE;
    default:
        return STEP_CONTINUE;
    }
}

/* Reader errors carry a byte offset instead of a mark; count lines up to it. */
static void offset_to_position(const struct builder *b, size_t offset, size_t *line, size_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i != offset && i != b->len; ++i) {
        if (b->text[i] == '\n') {
            ++*line;
            *column = 1;
        } else {
            ++*column;
        }
    }
}

/* The usual cause behind libyaml's wording: unquoted "*:8080" is an alias, unquoted "[::]:8443" a flow list, and a
 * stray colon usually means the line above lacks its own colon or this line is indented too far. */
static const char *syntax_hint(const char *problem, const char *context)
{
    if (strcmp(problem, "mapping values are not allowed in this context") == 0)
        return "check this line's indentation, and that the line above is written key: value (a space after the colon)";
    if (context == NULL)
        return "check the indentation and quoting";
    if (strstr(context, "alias") != NULL || strstr(context, "anchor") != NULL)
        return "quote values that start with * or &, like address: \"*:8080\"";
    if (strstr(context, "flow") != NULL)
        return "quote values that start with [ or {, like address: \"[::]:8443\", and check brackets are closed";
    return "check the indentation and quoting";
}

/* Turns libyaml's error state into one located line, keeping its own wording of the problem. */
static void report_syntax(struct builder *b, const yaml_parser_t *parser)
{
    size_t line = parser->problem_mark.line + 1, column = parser->problem_mark.column + 1;
    const char *problem = parser->problem != NULL ? parser->problem : "cannot parse the file";
    if (parser->error == YAML_MEMORY_ERROR) {
        report(b, 1, 1, "yaml", "out of memory while parsing; the file is probably not a configuration file");
    } else if (parser->error == YAML_READER_ERROR) {
        offset_to_position(b, parser->problem_offset, &line, &column);
        if (parser->problem_value != -1)
            report(b, line, column, "yaml", "%s (byte 0x%02x); save the file as UTF-8 text", problem, parser->problem_value);
        else
            report(b, line, column, "yaml", "%s; save the file as UTF-8 text", problem);
    } else if (parser->problem_mark.index < b->len && b->text[parser->problem_mark.index] == '\t') {
        report(b, line, column, "yaml", "%s (a tab); YAML indents with spaces only, replace the tab with spaces", problem);
    } else if (parser->context != NULL) {
        report(b, line, column, "yaml", "%s (%s at line %zu, column %zu); %s", problem, parser->context,
               parser->context_mark.line + 1, parser->context_mark.column + 1, syntax_hint(problem, parser->context));
    } else {
        report(b, line, column, "yaml", "%s; %s", problem, syntax_hint(problem, NULL));
    }
}

/* Feeds libyaml's events to the builder until the stream ends, a document is complete or something is wrong. */
static enum step build(struct builder *b, yaml_parser_t *parser)
{
    enum step step = STEP_CONTINUE;
    while (step == STEP_CONTINUE) {
        yaml_event_t ev;
        if (!yaml_parser_parse(parser, &ev)) {
            report_syntax(b, parser);
            return STEP_ABORT;
        }
        step = on_event(b, &ev);
        yaml_event_delete(&ev);
    }
    return step;
}

/* A syntax error discards the partial tree: after one, libyaml has stopped and the tree is incomplete. */
unsigned ytree_parse(const char *name, const char *text, size_t len, FILE *err, struct ytree_node **root)
{
    struct builder b = {.name = name, .text = text, .len = len, .err = err};
    yaml_parser_t parser;

    *root = NULL;
    if (!yaml_parser_initialize(&parser)) {
        report(&b, 1, 1, "yaml", "cannot initialise the YAML parser (out of memory)");
        return b.errors;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (build(&b, &parser) == STEP_ABORT) {
        ytree_free(b.root);
        b.root = NULL;
    }
    yaml_parser_delete(&parser);
    *root = b.root;
    return b.errors;
}

/* Linear scan: configuration maps have a handful of keys. */
const struct ytree_node *ytree_get(const struct ytree_node *mapping, const char *key)
{
    if (mapping == NULL || mapping->type != YTREE_MAPPING)
        return NULL;
    for (size_t i = 0; i != mapping->size; ++i) {
        const struct ytree_pair *pair = &mapping->pairs[i];
        if (!pair->key->reported && strcmp(pair->key->text, key) == 0)
            return pair->value;
    }
    return NULL;
}

/* YAML 1.1 null spellings, only when unquoted: "" and "null" in quotes are strings. */
int ytree_is_null(const struct ytree_node *node)
{
    if (node->type != YTREE_SCALAR || !node->plain)
        return 0;
    return node->len == 0 || strcmp(node->text, "~") == 0 || strcmp(node->text, "null") == 0 || strcmp(node->text, "Null") == 0 ||
           strcmp(node->text, "NULL") == 0;
}
