/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes plan_meaning_exec_nth() and plan_meaning_socket() on what a
 * planned command could exec or connect to. The input is an argv split at
 * NUL bytes (at most 64 words). Every meaning returned must be a non-empty
 * string, every daemon too; the nth daemons end (0 past the last) within
 * the number of words; a socket name gives a static daemon name or NULL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *buf, *argv[65];
        size_t n = 0, start = 0;

        if (size > 4096)
                return 0;
        buf = malloc(size + 1);
        if (!buf)
                abort();
        memcpy(buf, data, size);
        buf[size] = 0;
        for (size_t i = 0; i <= size && n < 64; i++)
                if (buf[i] == 0) {
                        argv[n++] = buf + start;
                        start = i + 1;
                }
        argv[n] = NULL;

        for (size_t nth = 0;; nth++) {
                char *d = NULL, *m = NULL;
                int r = plan_meaning_exec_nth(argv, nth, &d, &m);

                if (r < 0)
                        abort();
                if (r == 0)
                        break;
                if (!d || !m || !d[0] || !m[0] || nth > n)
                        abort();
                free(d);
                free(m);
        }
        for (size_t i = 0; i < n; i++) {
                const char *d = plan_meaning_socket(argv[i]);

                if (d && !d[0])
                        abort();
        }
        free(buf);
        return 0;
}
