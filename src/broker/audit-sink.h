/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The one place airlockd writes audit records: every state transition
 * (session started/ended, request submitted and decided, each approval,
 * approved, denied, expired, executing, finished, interrupted; policy
 * loaded) goes through here, durably, before it takes effect; when the write
 * fails the broker refuses to act and says why. Backed by the audit module's
 * hash-chained, sealed log (STATE_DIR/audit.log, see airlock-log(5)).
 */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Opens the audit log under state_dir. Returns 0 or -errno with a reason in err. */
int audit_sink_open(const char *state_dir, char *err, size_t err_size);

/* Writes the closing record and closes the log. */
void audit_sink_close(void);

/*
 * Appends one record and returns once it is durable. event is one of the
 * audit vocabulary's AUDIT_EVENT_*; fields (borrowed, may be NULL) holds the
 * other keys audit_append() takes: "request" (string), "agent" (object),
 * "argv", "target", "details". Thread-safe. Returns 0 or -errno: the caller
 * must then not perform the transition.
 */
int audit_sink_write(const char *event, json_t *fields);

/* The most records audit_sink_write_many() takes at once. */
#define AUDIT_SINK_BATCH_MAX 8

/*
 * Writes n records (events[i] with fields[i], borrowed, as for
 * audit_sink_write()) as one batch: consecutive in the chain, durable with
 * one sync, all before this returns. For transitions decided at once. Returns
 * 0, or -errno: then none of them may take effect.
 */
int audit_sink_write_many(const char *const *events, json_t *const *fields, size_t n);

/*
 * The first half of audit_sink_write_many(): queues the batch and starts its
 * write and sync in the background, returning at once with a ticket. The
 * caller may commit its database meanwhile, and must get 0 from
 * audit_sink_wait(ticket) before any of the transitions takes effect (the
 * command runs, the requester or anyone else hears of it). Returns 0 or
 * -errno: then none of them may take effect.
 */
int audit_sink_start_many(const char *const *events, json_t *const *fields, size_t n,
                          uint64_t *ret_ticket);

/* Returns once the batch of ticket is durable: 0, or -errno (do not act on it). */
int audit_sink_wait(uint64_t ticket);
