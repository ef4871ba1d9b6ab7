/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes plan_diff() and plan_is_text() on the contents a planned command
 * could write. The input is "MAXBYTE OLD \xff NEW": the diff of OLD to NEW
 * must succeed, stay within the cap (then end at a line), and when not cut
 * it must apply back to OLD giving NEW exactly (checked by the strict
 * patcher below; inputs without NUL bytes, as files.c diffs only text).
 * Equal inputs give "". The binary summary never fails.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The lines of a from *ai up to line number target (0-based count of lines consumed). */
static bool apply(const char *a, size_t a_len, const char *d, char *out, size_t *ret_len)
{
        size_t len = 0, ai = 0, line = 0;
        const char *p = d;

        for (int i = 0; i < 2; i++) {
                p = strchr(p, '\n');
                if (!p)
                        return false;
                p++;
        }
        while (*p) {
                unsigned long as, ac = 1;
                char *e;

                if (strncmp(p, "@@ -", 4) != 0)
                        return false;
                as = strtoul(p + 4, &e, 10);
                if (*e == ',')
                        ac = strtoul(e + 1, &e, 10);
                p = strstr(e, " @@\n");
                if (!p)
                        return false;
                p += 4;
                size_t target = ac == 0 ? as : as - 1;
                if (target < line)
                        return false;
                while (line < target) {
                        const char *nl = memchr(a + ai, '\n', a_len - ai);
                        size_t l = nl ? (size_t)(nl - (a + ai)) + 1 : a_len - ai;

                        if (l == 0)
                                return false;
                        memcpy(out + len, a + ai, l);
                        len += l;
                        ai += l;
                        line++;
                }
                while (*p == ' ' || *p == '-' || *p == '+') {
                        char op = *p++;
                        const char *nl = strchr(p, '\n');
                        size_t l;
                        bool no_nl;

                        if (!nl)
                                return false;
                        l = (size_t)(nl - p) + 1;
                        no_nl = strncmp(nl + 1, "\\ No newline at end of file\n", 28) == 0;
                        size_t real = no_nl ? l - 1 : l;
                        if (op != '+') {
                                if (ai + real > a_len || memcmp(a + ai, p, real) != 0)
                                        return false;
                                ai += real;
                                line++;
                        }
                        if (op != '-') {
                                memcpy(out + len, p, real);
                                len += real;
                        }
                        p += l + (no_nl ? 28 : 0);
                }
        }
        memcpy(out + len, a + ai, a_len - ai);
        len += a_len - ai;
        *ret_len = len;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *sep;
        const char *a, *b;
        size_t a_len, b_len, max, out_len = 0;
        char *d = NULL, *out, *s;
        bool trunc = false;

        if (size < 1)
                return 0;
        max = (size_t)data[0] * 16 + 64;
        data++;
        size--;
        sep = memchr(data, 0xff, size);
        a = (const char *)data;
        a_len = sep ? (size_t)(sep - data) : size;
        b = sep ? (const char *)sep + 1 : "";
        b_len = sep ? size - a_len - 1 : 0;

        (void)plan_is_text(a, a_len);
        s = plan_binary_summary(a, a_len, true, b, b_len, b_len > 0);
        if (!s)
                abort();
        free(s);

        /* the whole diff, uncut: must apply */
        if (plan_diff(a, a_len, b, b_len, "/f", "/f", SIZE_MAX, &d, &trunc) != 0 || trunc)
                abort();
        if (a_len == b_len && memcmp(a, b, a_len) == 0) {
                if (d[0] != 0)
                        abort();
        } else if (!memchr(a, 0, a_len) && !memchr(b, 0, b_len)) {
                /* (the patcher reads the diff as a C string: text without NUL only) */
                out = malloc(a_len + b_len + 1);
                if (!out || !apply(a, a_len, d, out, &out_len) || out_len != b_len ||
                    memcmp(out, b, b_len) != 0) {
                        fprintf(stderr, "diff does not apply:\n%s\n", d);
                        abort();
                }
                free(out);
        }
        free(d);

        /* cut: within the cap, whole lines */
        d = NULL;
        if (plan_diff(a, a_len, b, b_len, "/f", "/f", max, &d, &trunc) != 0)
                abort();
        if (!memchr(a, 0, a_len) && !memchr(b, 0, b_len) &&
            (strlen(d) > max || (trunc && d[0] && d[strlen(d) - 1] != '\n')))
                abort();
        free(d);
        return 0;
}
