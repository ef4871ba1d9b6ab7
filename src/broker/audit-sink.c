/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "broker/audit-sink.h"
#include "common/util.h"

/*
 * Until the audit module's hash-chained writer is linked in here, records go
 * to STATE_DIR/broker-audit.jsonl, one JSON object per line, each written
 * whole and fdatasync()ed before audit_sink_write() returns, so the
 * "durable before it takes effect" contract holds either way.
 */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static int sink_fd = -EBADF;

int audit_sink_open(const char *state_dir, char *err, size_t err_size)
{
        _cleanup_free_ char *path = NULL;
        int fd;

        if (asprintf(&path, "%s/broker-audit.jsonl", state_dir) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                int r = -errno;

                snprintf(err, err_size, "cannot open the audit log %s: %s", path, strerror(-r));
                return r;
        }
        pthread_mutex_lock(&sink_lock);
        safe_close(sink_fd);
        sink_fd = fd;
        pthread_mutex_unlock(&sink_lock);
        return 0;
}

void audit_sink_close(void)
{
        pthread_mutex_lock(&sink_lock);
        sink_fd = safe_close(sink_fd);
        pthread_mutex_unlock(&sink_lock);
}

static int sink_write(const char *event, json_t *fields, bool sync)
{
        _cleanup_free_ char *line = NULL;
        json_t *rec;
        size_t len;
        int r;

        rec = fields ? json_deep_copy(fields) : json_object();
        if (!rec)
                return -ENOMEM;
        json_object_set_new(rec, "event", json_string(event));
        json_object_set_new(rec, "time_usec", json_integer((json_int_t)now_realtime_usec()));
        line = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(rec);
        if (!line)
                return -ENOMEM;
        len = strlen(line);
        line[len] = '\n'; /* replaces the NUL; written with an explicit length */

        pthread_mutex_lock(&sink_lock);
        if (sink_fd < 0)
                r = -EBADF;
        else {
                r = write_all(sink_fd, line, len + 1);
                if (r >= 0 && sync && fdatasync(sink_fd) < 0)
                        r = -errno;
        }
        pthread_mutex_unlock(&sink_lock);
        return r;
}

int audit_sink_write(const char *event, json_t *fields)
{
        return sink_write(event, fields, true);
}

int audit_sink_write_deferred(const char *event, json_t *fields)
{
        return sink_write(event, fields, false);
}
