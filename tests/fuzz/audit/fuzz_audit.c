/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the audit log's reader and verifier. Input: an optional first line
 * holding a verification key ("alvk1-..."), then log bytes. Runs the
 * verifier with and without the key (and with an external head taken from
 * the input), parses every line with both the strict parser and the fast
 * scanner, and checks that the two agree: every line the strict parser
 * accepts, the scanner accepts with the same seq, prev and event.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit-internal.h"
#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_lines(const char *d, size_t n)
{
        size_t pos = 0;

        while (pos < n) {
                const char *nl = memchr(d + pos, '\n', n - pos);
                size_t len = nl ? (size_t)(nl - (d + pos)) : n - pos;
                json_t *rec = NULL;
                AuditScan sc;

                if (audit_parse_record(d + pos, len, &rec) == 0) {
                        if (audit_scan_record(d + pos, len, &sc) < 0 ||
                            sc.seq != audit_rec_seq(rec) ||
                            strcmp(sc.prev, audit_rec_str(rec, "prev")) != 0 ||
                            strcmp(sc.event, audit_rec_str(rec, "event")) != 0)
                                abort();
                        json_decref(rec);
                } else
                        (void)audit_scan_record(d + pos, len, &sc);
                pos += len + 1;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *d = (const char *)data;
        char vkey[AUDIT_VKEY_MAX] = "";
        AuditVerifyOptions o = { 0 };
        AuditVerifyResult r;
        size_t skip = 0;

        if (size > 6 && memcmp(d, "alvk1-", 6) == 0) {
                const char *nl = memchr(d, '\n', size);

                if (nl && (size_t)(nl - d) < sizeof(vkey)) {
                        memcpy(vkey, d, (size_t)(nl - d));
                        skip = (size_t)(nl - d) + 1;
                }
        }
        d += skip;
        size -= skip;
        check_lines(d, size);

        if (audit_verify_buffer(d, size, &o, &r) != 0)
                abort(); /* without a key, verification always produces a result */
        if (r.problem == AUDIT_OK && r.records == 0)
                abort();
        if (vkey[0]) {
                o.vkey = vkey;
                (void)audit_verify_buffer(d, size, &o, &r);
        }
        /* A head string made of the input's first bytes. */
        {
                char head[128];
                size_t k = size < sizeof(head) - 1 ? size : sizeof(head) - 1;

                memcpy(head, d, k);
                head[k] = '\0';
                if (audit_parse_head(head, &o) == 0)
                        (void)audit_verify_buffer(d, size, &o, &r);
        }
        return 0;
}
