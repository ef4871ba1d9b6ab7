/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small YAML tree built from libyaml's event API, so that every node keeps
 * the line and column where it starts and so that the things a policy never
 * needs (aliases, which also make "billion laughs" possible, tags, several
 * documents, complex keys) are refused up front.
 */
#include <stdarg.h>
#include <stdio.h>
#include <yaml.h>

#include "policy/policy-internal.h"

YNode *ynode_free(YNode *n)
{
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_items; i++)
                ynode_free(n->items[i]);
        free(n->items);
        free(n->value);
        free(n);
        return NULL;
}

static int ynode_append(YNode *parent, YNode *child)
{
        if (parent->n_items == parent->cap) {
                size_t cap = parent->cap ? parent->cap * 2 : 8;
                YNode **t = reallocarray(parent->items, cap, sizeof(YNode *));

                if (!t)
                        return -ENOMEM;
                parent->items = t;
                parent->cap = cap;
        }
        parent->items[parent->n_items++] = child;
        return 0;
}

typedef struct {
        unsigned *line, *column;
        char *msg;
        size_t msg_size;
} YErr;

static int yerr(YErr *e, const yaml_mark_t *m, const char *fmt, ...) _printf_(3, 4);
static int yerr(YErr *e, const yaml_mark_t *m, const char *fmt, ...)
{
        va_list ap;

        *e->line = m ? (unsigned)m->line + 1 : 0;
        *e->column = m ? (unsigned)m->column + 1 : 0;
        va_start(ap, fmt);
        vsnprintf(e->msg, e->msg_size, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static void yaml_parser_deletep(yaml_parser_t *p)
{
        yaml_parser_delete(p);
}

static void yaml_event_deletep(yaml_event_t *e)
{
        yaml_event_delete(e);
}

int ynode_parse(const char *text, size_t len, YNode **ret, unsigned *ret_line, unsigned *ret_column,
                char *msg, size_t msg_size)
{
        _cleanup_(yaml_parser_deletep) yaml_parser_t parser = {};
        _cleanup_(ynode_freep) YNode *root = NULL;
        YNode *stack[POLICY_MAX_YAML_DEPTH + 1];
        size_t depth = 0, n_nodes = 0;
        unsigned documents = 0;
        YErr e = { ret_line, ret_column, msg, msg_size };
        bool done = false;

        *ret_line = *ret_column = 0;
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

        while (!done) {
                _cleanup_(yaml_event_deletep) yaml_event_t ev = {};
                YNode *n = NULL;
                int r;

                if (!yaml_parser_parse(&parser, &ev)) {
                        if (parser.error == YAML_MEMORY_ERROR)
                                return -ENOMEM;
                        if (parser.context)
                                return yerr(&e, &parser.problem_mark,
                                            "YAML syntax error: %s %s (line %zu) — check the "
                                            "indentation, the quoting and the ':' and '-' "
                                            "markers here",
                                            parser.problem ?: "invalid input", parser.context,
                                            parser.context_mark.line + 1);
                        return yerr(&e, &parser.problem_mark,
                                    "YAML syntax error: %s — check the indentation, the quoting "
                                    "and the ':' and '-' markers here",
                                    parser.problem ?: "invalid input");
                }

                switch (ev.type) {
                case YAML_STREAM_START_EVENT:
                case YAML_NO_EVENT:
                        continue;
                case YAML_STREAM_END_EVENT:
                        done = true;
                        continue;
                case YAML_DOCUMENT_START_EVENT:
                        if (++documents > 1)
                                return yerr(&e, &ev.start_mark,
                                            "a second YAML document ('---') — a policy is one "
                                            "document; remove the separator and merge the "
                                            "documents");
                        continue;
                case YAML_DOCUMENT_END_EVENT:
                        continue;
                case YAML_ALIAS_EVENT:
                        return yerr(&e, &ev.start_mark,
                                    "YAML aliases ('*name') are not supported in a policy — "
                                    "write the value out in full");
                case YAML_SCALAR_EVENT:
                case YAML_SEQUENCE_START_EVENT:
                case YAML_MAPPING_START_EVENT: {
                        const yaml_char_t *tag = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.tag
                                                 : ev.type == YAML_SEQUENCE_START_EVENT
                                                         ? ev.data.sequence_start.tag
                                                         : ev.data.mapping_start.tag;
                        const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT
                                                            ? ev.data.scalar.anchor
                                                    : ev.type == YAML_SEQUENCE_START_EVENT
                                                            ? ev.data.sequence_start.anchor
                                                            : ev.data.mapping_start.anchor;

                        if (anchor)
                                return yerr(&e, &ev.start_mark,
                                            "YAML anchors ('&name') are not supported in a "
                                            "policy — remove the anchor and write values out");
                        if (tag)
                                return yerr(&e, &ev.start_mark,
                                            "YAML tags ('!tag') are not supported in a policy — "
                                            "remove the tag; quote the value if it should be "
                                            "text");
                        if (++n_nodes > POLICY_MAX_YAML_NODES)
                                return yerr(&e, &ev.start_mark,
                                            "more than %d YAML nodes — split or shorten the "
                                            "policy",
                                            POLICY_MAX_YAML_NODES);
                        n = calloc(1, sizeof(YNode));
                        if (!n)
                                return -ENOMEM;
                        n->line = (unsigned)ev.start_mark.line + 1;
                        n->column = (unsigned)ev.start_mark.column + 1;
                        if (ev.type == YAML_SCALAR_EVENT) {
                                n->type = YNODE_SCALAR;
                                n->len = ev.data.scalar.length;
                                if (memchr(ev.data.scalar.value, 0, n->len)) {
                                        ynode_free(n);
                                        return yerr(&e, &ev.start_mark,
                                                    "a NUL character in a value — remove it");
                                }
                                n->value = strndup((const char *)ev.data.scalar.value, n->len);
                                if (!n->value) {
                                        ynode_free(n);
                                        return -ENOMEM;
                                }
                                n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                        } else
                                n->type = ev.type == YAML_SEQUENCE_START_EVENT ? YNODE_SEQUENCE
                                                                               : YNODE_MAPPING;
                        break;
                }
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        if (depth == 0)
                                return yerr(&e, &ev.start_mark, "unbalanced YAML structure");
                        depth--;
                        continue;
                }

                /* attach n to its parent, or make it the root */
                if (depth == 0) {
                        if (root) {
                                ynode_free(n);
                                return yerr(&e, &ev.start_mark, "unexpected second root node");
                        }
                        root = n;
                } else {
                        YNode *parent = stack[depth - 1];

                        if (parent->type == YNODE_MAPPING && parent->n_items % 2 == 0 &&
                            n->type != YNODE_SCALAR) {
                                unsigned l = n->line, c = n->column;

                                ynode_free(n);
                                *ret_line = l;
                                *ret_column = c;
                                snprintf(msg, msg_size,
                                         "a mapping key must be a plain name, not a list or "
                                         "mapping — write 'name: value'");
                                return -EINVAL;
                        }
                        r = ynode_append(parent, n);
                        if (r < 0) {
                                ynode_free(n);
                                return r;
                        }
                }
                if (n->type != YNODE_SCALAR) {
                        if (depth >= POLICY_MAX_YAML_DEPTH)
                                return yerr(&e, &ev.start_mark,
                                            "YAML nested deeper than %d levels — flatten the "
                                            "policy",
                                            POLICY_MAX_YAML_DEPTH);
                        stack[depth++] = n;
                }
        }
        if (!root) {
                *ret_line = 1;
                *ret_column = 1;
                snprintf(msg, msg_size,
                         "the policy is empty — start from 'airlock policy show-default'");
                return -EINVAL;
        }
        *ret = TAKE_PTR(root);
        return 0;
}
