/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes plan_fp_scan() on what a planned command could write. The first
 * byte picks the length of a secret taken from the input's next bytes; the
 * rest is the scanned data. Scanning any data must not crash or read out of
 * bounds; the secret itself, and the data with the secret appended, must be
 * found (a scan that misses an exact copy fails open); a scan of the data
 * must give the same answer twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool generic(const uint8_t *p, size_t n)
{
        /* the windows fingerprint.c documents it skips: few distinct bytes, PEM armour */
        uint8_t seen[256] = { 0 };
        size_t distinct = 0;

        if (memmem(p, n, "-----", 5))
                return true;
        for (size_t i = 0; i < n; i++)
                if (!seen[p[i]]++)
                        distinct++;
        return distinct < 6;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        PlanFingerprints *fp;
        size_t slen;
        const uint8_t *secret, *rest;
        size_t rlen;
        const char *a, *b;
        uint8_t *both;

        if (size < 2)
                return 0;
        slen = 8 + data[0] % 120;
        if (size - 1 < slen)
                return 0;
        secret = data + 1;
        rest = secret + slen;
        rlen = size - 1 - slen;

        fp = plan_fp_new();
        if (!fp || plan_fp_add(fp, "/s", secret, slen) != 0)
                abort();
        a = plan_fp_scan(fp, rest, rlen);
        b = plan_fp_scan(fp, rest, rlen);
        if (a != b)
                abort();
        if (!memmem(secret, slen, "-----", 5) && (slen < 32 || !generic(secret, 32))) {
                if (!plan_fp_scan(fp, secret, slen))
                        abort();
                both = malloc(rlen + slen + 1);
                if (!both)
                        abort();
                memcpy(both, rest, rlen);
                memcpy(both + rlen, secret, slen);
                if (!plan_fp_scan(fp, both, rlen + slen))
                        abort();
                free(both);
        }
        plan_fp_free(fp);
        return 0;
}
