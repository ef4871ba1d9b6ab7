/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Explains secret changes with the audit log: a secret that changed on host
 * H while an approved airlock request was running on H is accounted for (who
 * asked, who approved, what ran); one that changed with no such request did
 * not go through airlock, which is what the incident looked like. Pure: the
 * caller reads and parses the log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "common/util.h"
#include "doctor/doctor.h"

#define SLACK_SEC 2 /* file times have one-second granularity on some filesystems */

static const char *jstr(json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : "";
}

static int64_t record_time(json_t *rec)
{
        uint64_t usec;

        if (audit_parse_time_text(jstr(rec, "time"), &usec) < 0)
                return -1;
        return (int64_t)(usec / 1000000);
}

/* One executed request: its window and what the log says about it. */
typedef struct {
        const char *id, *target, *approver;
        json_t *argv;
        int64_t start, end;
} Run;

static void add_evidence(json_t *f, const char *s)
{
        json_array_append_new(json_object_get(f, "evidence"), json_string(s));
}

int doctor_explain_secret_changes(json_t *findings, json_t *records, const char *log_name)
{
        _cleanup_free_ Run *runs = NULL;
        size_t n_runs = 0, i, k;
        json_t *rec, *f;

        runs = calloc(json_array_size(records) + 1, sizeof(Run));
        if (!runs)
                return -ENOMEM;
        json_array_foreach(records, i, rec)
        {
                const char *ev = jstr(rec, "event"), *id = jstr(rec, "request");
                Run *r = NULL;

                if (!*id)
                        continue;
                for (k = 0; k < n_runs; k++)
                        if (streq(runs[k].id, id))
                                r = &runs[k];
                if (streq(ev, "exec_start")) {
                        if (!r) {
                                r = &runs[n_runs++];
                                r->id = id;
                                r->end = -1;
                        }
                        r->start = record_time(rec);
                        r->target = json_string_value(json_object_get(rec, "target"));
                        r->argv = json_object_get(rec, "argv");
                } else if (streq(ev, "exec_end") && r)
                        r->end = record_time(rec);
                else if (streq(ev, "request_approved")) {
                        /* Approvals come before exec_start: remember them by id. */
                        if (!r) {
                                r = &runs[n_runs++];
                                r->id = id;
                                r->start = r->end = -1;
                        }
                        r->approver = json_string_value(
                                json_object_get(json_object_get(rec, "details"), "approver_name"));
                }
        }

        json_array_foreach(findings, i, f)
        {
                const char *host = jstr(f, "host");
                json_int_t changed = json_integer_value(json_object_get(f, "changed"));
                const Run *match = NULL;
                char buf[1024];

                if (!streq(jstr(f, "kind"), "secret-changed"))
                        continue;
                for (k = 0; k < n_runs && !match; k++) {
                        const Run *r = &runs[k];
                        if (r->start < 0 || !r->target || !streq(r->target, host))
                                continue;
                        if (changed >= r->start - SLACK_SEC &&
                            (r->end < 0 || changed <= r->end + SLACK_SEC))
                                match = r;
                }
                if (match) {
                        _cleanup_strv_free_ char **argv = NULL;
                        _cleanup_free_ char *disp = NULL;
                        size_t a;
                        json_t *v;

                        json_array_foreach(match->argv, a, v)
                                strv_extend(&argv, json_string_value(v));
                        disp = argv ? argv_to_display(argv) : NULL;
                        snprintf(buf, sizeof(buf),
                                 "explained by airlock request %s on %s (%s), approved by %s, in "
                                 "the audit log %s",
                                 match->id, host, disp ? disp : "?",
                                 match->approver ? match->approver : "policy", log_name);
                        add_evidence(f, buf);
                        json_object_set_new(f, "severity", json_string("info"));
                        json_object_set_new(f, "explained_by", json_string(match->id));
                } else {
                        snprintf(buf, sizeof(buf),
                                 "no airlock request in the audit log %s ran on %s when it "
                                 "changed: this change "
                                 "did not go through airlock",
                                 log_name, host);
                        add_evidence(f, buf);
                }
        }
        return 0;
}
