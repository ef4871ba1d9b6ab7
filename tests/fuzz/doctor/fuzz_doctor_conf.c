/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the doctor's corosync.conf reader, doctor_parse_corosync_conf().
 * Any bytes either parse into the documented shape ({"cluster_name",
 * "config_version", "transport", "nodes": [...]}, every string escaped for
 * display) or fail with -EINVAL and a non-empty, NUL-terminated, displayable
 * reason that stays inside why_size; on failure nothing is returned. The
 * result must not depend on line endings or indentation (CRLF files and tabs
 * are common), must not change when an unknown section is appended, and
 * must not change between two runs. Leaks are LeakSanitizer's job.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "doctor/doctor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINE  4096 /* the reader's documented line limit */
#define MAX_NODES 1024 /* the reader's documented node limit */
#define WHY_SIZE  256
#define CANARY    0xa5

/* The reader's result for one input, with the why buffer's guard bytes. */
typedef struct {
        int r;
        json_t *j;
        char why[WHY_SIZE + 16];
} Parsed;

static void parse(const char *text, size_t len, size_t why_size, Parsed *out)
{
        memset(out->why, CANARY, sizeof(out->why));
        out->j = NULL;
        out->r = doctor_parse_corosync_conf(text, len, &out->j, out->why, why_size);
}

/*
 * A string is safe to show on a terminal and to put in JSON: valid UTF-8
 * (json_string() refuses anything else, and facts.c stores why with it), no
 * C0 or C1 control, DEL or bidi override (U+202A..U+202E, U+2066..U+2069),
 * and a backslash only as the "\xHH" escape that escape_for_terminal()
 * writes.
 */
static void check_displayable(const char *s)
{
        json_t *probe = json_string(s);

        if (!probe)
                abort();
        json_decref(probe);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p < 0x20 || *p == 0x7f)
                        abort();
                if ((p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) ||
                    (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
                    (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9))
                        abort();
                if (*p == '\\') {
                        if (p[1] != 'x' || !p[2] || !p[3] || !strchr("0123456789abcdef", p[2]) ||
                            !strchr("0123456789abcdef", p[3]))
                                abort();
                        p += 3;
                }
        }
}

static bool is_uint32_text(const char *s)
{
        uint64_t u;

        return parse_u64(s, UINT32_MAX, &u) == 0;
}

/* A value in the output: a displayable string, or an integer where the reader converts one. */
static void check_value(const char *key, json_t *v, bool numeric_key)
{
        check_displayable(key);
        if (json_is_integer(v)) {
                if (!numeric_key || json_integer_value(v) < 0 ||
                    json_integer_value(v) > (json_int_t)UINT32_MAX)
                        abort();
                return;
        }
        if (!json_is_string(v))
                abort();
        check_displayable(json_string_value(v));
        /* A number the reader can read is returned as a number, never as text. */
        if (numeric_key && is_uint32_text(json_string_value(v)))
                abort();
}

static void check_success(json_t *j)
{
        const char *key;
        json_t *v, *nodes;
        size_t i;

        if (!json_is_object(j))
                abort();
        nodes = json_object_get(j, "nodes");
        if (!json_is_array(nodes) || json_array_size(nodes) > MAX_NODES)
                abort();
        json_object_foreach(j, key, v)
        {
                if (streq(key, "nodes"))
                        continue;
                if (!streq(key, "cluster_name") && !streq(key, "config_version") &&
                    !streq(key, "transport"))
                        abort();
                check_value(key, v, streq(key, "config_version"));
        }
        json_array_foreach(nodes, i, v)
        {
                const char *nkey;
                json_t *nv;

                if (!json_is_object(v))
                        abort();
                json_object_foreach(v, nkey, nv)
                        check_value(nkey, nv,
                                    streq(nkey, "nodeid") || streq(nkey, "quorum_votes") ||
                                            streq(nkey, "config_version"));
        }
}

static void check_failure(const Parsed *p, size_t why_size)
{
        size_t n;

        if (p->j)
                abort(); /* nothing returned on failure */
        n = strnlen(p->why, why_size);
        if (n == 0 || n >= why_size)
                abort(); /* a reason, NUL-terminated inside the buffer */
        for (size_t i = why_size; i < sizeof(p->why); i++)
                if ((unsigned char)p->why[i] != CANARY)
                        abort(); /* nothing written past why_size */
        if (p->r == -EINVAL)
                check_displayable(p->why);
}

/* Two results are the same: same return, same JSON or the same reason. */
static void check_same(const Parsed *a, const Parsed *b)
{
        if (a->r != b->r)
                abort();
        if (a->r == 0 ? !json_equal(a->j, b->j) : !streq(a->why, b->why))
                abort();
}

/* Every line indented with a tab and ended with CRLF; NULL when a line would cross MAX_LINE. */
static char *to_crlf_indented(const char *d, size_t size, size_t *ret_len)
{
        char *out = malloc(size * 3 + 1), *o = out;
        size_t pos = 0;

        if (!out)
                abort();
        while (pos < size) {
                const char *nl = memchr(d + pos, '\n', size - pos);
                size_t len = nl ? (size_t)(nl - (d + pos)) : size - pos;

                if (len + 2 > MAX_LINE) {
                        free(out);
                        return NULL;
                }
                *o++ = '\t';
                memcpy(o, d + pos, len);
                o += len;
                *o++ = '\r';
                if (nl)
                        *o++ = '\n';
                pos += len + (nl ? 1 : 0);
        }
        *ret_len = (size_t)(o - out);
        return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char unknown[] = "\n# appended by the fuzzer\n"
                                      "airlock_fuzz_unknown {\n"
                                      "  cluster_name: not-this-one\n"
                                      "  node {\n"
                                      "    nodeid: 99\n"
                                      "  }\n"
                                      "}\n";
        const char *d = (const char *)data;
        Parsed a, b;
        char *alt;
        size_t alt_len;

        parse(d, size, WHY_SIZE, &a);
        if (a.r == 0)
                check_success(a.j);
        else if (a.r == -EINVAL || a.r == -ENOMEM)
                check_failure(&a, WHY_SIZE);
        else
                abort();

        /* The same input again gives the same answer. */
        parse(d, size, WHY_SIZE, &b);
        check_same(&a, &b);
        json_decref(b.j);

        /* A small why buffer truncates the reason but never overruns it. */
        parse(d, size, 8, &b);
        if (b.r != a.r)
                abort();
        if (b.r < 0) {
                check_failure(&b, 8);
                if (strncmp(a.why, b.why, 7) != 0)
                        abort();
        }
        json_decref(b.j);

        /* Line endings and indentation do not matter. */
        alt = to_crlf_indented(d, size, &alt_len);
        if (alt) {
                parse(alt, alt_len, WHY_SIZE, &b);
                check_same(&a, &b);
                json_decref(b.j);
                free(alt);
        }

        /* An unknown section after a valid file is skipped. */
        if (a.r == 0) {
                alt = malloc(size + sizeof(unknown));
                if (!alt)
                        abort();
                memcpy(alt, d, size);
                memcpy(alt + size, unknown, sizeof(unknown));
                parse(alt, size + sizeof(unknown) - 1, WHY_SIZE, &b);
                check_same(&a, &b);
                json_decref(b.j);
                free(alt);
        }
        json_decref(a.j);
        return 0;
}
