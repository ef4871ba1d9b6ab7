/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The one place airlockd writes its audit records. Every state transition
 * (session opened/ended, request submitted, decided, approved/denied by
 * someone, expired, executing, finished, interrupted; policy reloaded) is
 * written here, durably, before it takes effect; when the write fails the
 * broker refuses to act and reports why.
 */

#include <stddef.h>

#include <jansson.h>

/* Opens the audit log under state_dir. Returns 0 or -errno with a reason in err. */
int audit_sink_open(const char *state_dir, char *err, size_t err_size);
void audit_sink_close(void);

/*
 * Appends one record {"event": event, ...fields} and makes it durable before
 * returning. fields is borrowed (may be NULL). Thread-safe. Returns 0 or
 * -errno (the caller must then not perform the transition).
 */
int audit_sink_write(const char *event, json_t *fields);

/*
 * Appends a record without waiting for it to be durable: it becomes durable
 * with the next audit_sink_write(), which the caller must make before acting
 * on either. For two records of one step (submitted and executing). Returns
 * 0 or -errno.
 */
int audit_sink_write_deferred(const char *event, json_t *fields);
