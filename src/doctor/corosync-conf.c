/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A strict reader for the parts of corosync.conf the doctor needs: the
 * cluster name, config_version, transport and the nodelist. The file is
 * untrusted input (an agent may have written it): every limit is checked
 * before use, and strings are escaped for display.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "doctor/doctor.h"

#define MAX_DEPTH 16
#define MAX_LINE  4096
#define MAX_NODES 1024

static char *trim(char *s)
{
        char *e;

        while (*s == ' ' || *s == '\t' || *s == '\r')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                *--e = '\0';
        return s;
}

static json_t *value_json(const char *key, const char *value)
{
        uint64_t u;

        if ((streq(key, "nodeid") || streq(key, "config_version") || streq(key, "quorum_votes")) &&
            parse_u64(value, UINT32_MAX, &u) == 0)
                return json_integer((json_int_t)u);
        {
                _cleanup_free_ char *e = escape_for_terminal(value);
                return e ? json_string(e) : NULL;
        }
}

int doctor_parse_corosync_conf(const char *text, size_t len, json_t **ret, char *why,
                               size_t why_size)
{
        char stack[MAX_DEPTH][64];
        unsigned depth = 0, lineno = 0;
        json_t *out = json_object(), *nodes = json_array(), *node = NULL;
        const char *p = text, *end = text + len;
        char line[MAX_LINE + 1];

        if (!out || !nodes)
                goto nomem;
        json_object_set_new(out, "nodes", nodes);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                char *s, *colon;

                lineno++;
                if (n > MAX_LINE) {
                        snprintf(why, why_size, "line %u: longer than %d bytes", lineno, MAX_LINE);
                        goto invalid;
                }
                if (memchr(p, '\0', n)) {
                        snprintf(why, why_size, "line %u: contains a NUL byte", lineno);
                        goto invalid;
                }
                memcpy(line, p, n);
                line[n] = '\0';
                p += n + (nl ? 1 : 0);
                s = trim(line);
                if (*s == '\0' || *s == '#')
                        continue;
                if (s[strlen(s) - 1] == '{') {
                        s[strlen(s) - 1] = '\0';
                        s = trim(s);
                        if (depth >= MAX_DEPTH) {
                                snprintf(why, why_size, "line %u: sections nested deeper than %d",
                                         lineno, MAX_DEPTH);
                                goto invalid;
                        }
                        if (*s == '\0' || strlen(s) >= sizeof(stack[0]) || strpbrk(s, ":{} \t")) {
                                snprintf(why, why_size, "line %u: invalid section name", lineno);
                                goto invalid;
                        }
                        snprintf(stack[depth++], sizeof(stack[0]), "%s", s);
                        if (depth == 2 && streq(stack[0], "nodelist") && streq(stack[1], "node")) {
                                if (json_array_size(nodes) >= MAX_NODES) {
                                        snprintf(why, why_size, "line %u: more than %d nodes",
                                                 lineno, MAX_NODES);
                                        goto invalid;
                                }
                                node = json_object();
                                if (!node || json_array_append_new(nodes, node) < 0)
                                        goto nomem;
                        }
                        continue;
                }
                if (streq(s, "}")) {
                        if (depth == 0) {
                                snprintf(why, why_size, "line %u: '}' without an open section",
                                         lineno);
                                goto invalid;
                        }
                        depth--;
                        if (depth < 2)
                                node = NULL;
                        continue;
                }
                colon = strchr(s, ':');
                if (!colon) {
                        snprintf(why, why_size,
                                 "line %u: expected 'key: value', 'section {' or '}'", lineno);
                        goto invalid;
                }
                *colon = '\0';
                {
                        char *key = trim(s), *value = trim(colon + 1);
                        json_t *v;

                        if (*key == '\0') {
                                snprintf(why, why_size, "line %u: empty key", lineno);
                                goto invalid;
                        }
                        if (depth == 1 && streq(stack[0], "totem") &&
                            (streq(key, "cluster_name") || streq(key, "config_version") ||
                             streq(key, "transport"))) {
                                v = value_json(key, value);
                                if (!v || json_object_set_new(out, key, v) < 0)
                                        goto nomem;
                        } else if (node && depth == 2) {
                                _cleanup_free_ char *k = escape_for_terminal(key);
                                v = value_json(key, value);
                                if (!k || !v || json_object_set_new(node, k, v) < 0)
                                        goto nomem;
                        }
                }
        }
        if (depth != 0) {
                /*
                 * The name comes from the file: escape it like every other string we
                 * return, and shorten it where that cannot split an escape or a UTF-8
                 * sequence, so the reason fits and stays displayable.
                 */
                _cleanup_free_ char *name = escape_for_terminal(stack[depth - 1]);
                size_t cut;

                if (!name)
                        goto nomem;
                cut = strlen(name);
                if (cut > 60) {
                        cut = 60;
                        while (cut > 0 && (((unsigned char)name[cut] & 0xc0) == 0x80 ||
                                           (cut >= 1 && name[cut - 1] == '\\') ||
                                           (cut >= 2 && name[cut - 2] == '\\') ||
                                           (cut >= 3 && name[cut - 3] == '\\')))
                                cut--;
                }
                snprintf(why, why_size, "section '%.*s%s' is not closed", (int)cut, name,
                         cut < strlen(name) ? "..." : "");
                goto invalid;
        }
        *ret = out;
        return 0;
invalid:
        json_decref(out);
        return -EINVAL;
nomem:
        json_decref(out);
        snprintf(why, why_size, "out of memory");
        return -ENOMEM;
}
