/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "broker/audit-sink.h"
#include "common/log.h"
#include "common/util.h"

/*
 * Writers share the lock (so concurrent records share the audit writer's
 * syncs); closing takes it exclusively, so the writer is never freed under
 * a thread that is still appending.
 */
static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static AuditWriter *writer;

static bool audit_key_present(const char *state_dir)
{
        _cleanup_free_ char *p = NULL;

        if (asprintf(&p, "%s/%s", state_dir, AUDIT_KEY_FILE) < 0)
                return true; /* no memory: say nothing rather than something wrong */
        return access(p, F_OK) == 0;
}

int audit_sink_open(const char *state_dir, char *err, size_t err_size)
{
        AuditOptions o = { .state_dir = state_dir, .copy = AUDIT_COPY_AUTO };
        int r;

        r = audit_open(&o, &writer);
        if (r < 0) {
                snprintf(err, err_size, "cannot open the audit log %s/%s: %s", state_dir,
                         AUDIT_LOG_FILE, strerror(-r));
                return r;
        }
        /* Without a seal key the chain is all there is, and root can rebuild a chain. */
        if (!audit_key_present(state_dir))
                log_warning("the audit log %s/%s is not sealed — run 'airlock log setup-keys "
                            "--state-dir %s' once, keep the printed key off this host, and "
                            "restart airlockd",
                            state_dir, AUDIT_LOG_FILE, state_dir);
        return r;
}

void audit_sink_close(void)
{
        pthread_rwlock_wrlock(&sink_lock);
        (void)audit_close(writer);
        writer = NULL;
        pthread_rwlock_unlock(&sink_lock);
}

int audit_sink_write(const char *event, json_t *fields)
{
        json_t *rec;
        int r;

        rec = fields ? json_copy(fields) : json_object();
        if (!rec)
                return -ENOMEM;
        json_object_set_new(rec, "event", json_string(event));
        pthread_rwlock_rdlock(&sink_lock);
        r = writer ? audit_append(writer, rec, NULL) : -ESHUTDOWN;
        pthread_rwlock_unlock(&sink_lock);
        json_decref(rec);
        return r;
}

static int build_batch(const char *const *events, json_t *const *fields, size_t n,
                       json_t *recs[AUDIT_SINK_BATCH_MAX])
{
        if (n > AUDIT_SINK_BATCH_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                recs[i] = fields[i] ? json_copy(fields[i]) : json_object();
                if (!recs[i] || json_object_set_new(recs[i], "event", json_string(events[i])) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static void free_batch(json_t *recs[AUDIT_SINK_BATCH_MAX])
{
        for (size_t i = 0; i < AUDIT_SINK_BATCH_MAX; i++)
                json_decref(recs[i]);
}

int audit_sink_write_many(const char *const *events, json_t *const *fields, size_t n)
{
        json_t *recs[AUDIT_SINK_BATCH_MAX] = {};
        int r;

        r = build_batch(events, fields, n, recs);
        if (r == 0) {
                pthread_rwlock_rdlock(&sink_lock);
                r = writer ? audit_append_many(writer, recs, n, NULL) : -ESHUTDOWN;
                pthread_rwlock_unlock(&sink_lock);
        }
        free_batch(recs);
        return r;
}

int audit_sink_start_many(const char *const *events, json_t *const *fields, size_t n,
                          uint64_t *ret_ticket)
{
        json_t *recs[AUDIT_SINK_BATCH_MAX] = {};
        int r;

        r = build_batch(events, fields, n, recs);
        if (r == 0) {
                pthread_rwlock_rdlock(&sink_lock);
                r = writer ? audit_append_start(writer, recs, n, ret_ticket) : -ESHUTDOWN;
                pthread_rwlock_unlock(&sink_lock);
        }
        free_batch(recs);
        return r;
}

int audit_sink_wait(uint64_t ticket)
{
        int r;

        pthread_rwlock_rdlock(&sink_lock);
        r = writer ? audit_wait_durable(writer, ticket) : -ESHUTDOWN;
        pthread_rwlock_unlock(&sink_lock);
        return r;
}
