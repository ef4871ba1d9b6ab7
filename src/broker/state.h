/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * airlockd's durable state: one SQLite database in the state directory (WAL,
 * synchronous=FULL, so a committed transition survives a kill -9 or a power
 * cut). Thread-safe: each call, and each transaction from state_begin() to
 * state_commit()/state_rollback(), holds the state's own lock (taken after
 * the broker's lock, never before it).
 */

#include "broker/broker.h"

typedef struct State State;

/* Opens (creating) STATE_DIR/airlockd.db. Returns 0 and *ret, or -errno with a reason in err. */
int state_open(const char *state_dir, State **ret, char *err, size_t err_size);
void state_close(State *s);

int state_begin(State *s);
int state_commit(State *s);
void state_rollback(State *s);

/*
 * After a restart: requests that were approved or executing when the broker
 * stopped become interrupted (never rerun), sessions that were open are
 * ended. Returns the number of interrupted requests via *ret_ids (caller
 * frees) or -errno.
 */
int state_recover(State *s, uint64_t now_usec, uint64_t **ret_ids, size_t *ret_n);

int state_insert_session(State *s, Session *sess); /* sets sess->id */
int state_end_session(State *s, uint64_t id, uint64_t now_usec);

int state_insert_request(State *s, Req *r); /* with r->id, or sets it when 0 */
/* The next request id to assign: above every id ever used. */
int state_next_request_id(State *s, uint64_t *ret);
int state_update_request(State *s, const Req *r);
/* Removes a request that never took effect (its audit records failed). */
int state_delete_request(State *s, uint64_t id);
int state_insert_verdict(State *s, uint64_t req_id, const Verdict *v);
int state_save_output(State *s, uint64_t req_id, const uint8_t *out, size_t out_len,
                      const uint8_t *err, size_t err_len, bool truncated);

/* Loads a request (with its verdicts). Returns 0, -ENOENT or -errno. */
int state_load_request(State *s, uint64_t id, Req **ret);
/* Loads the stored output. Returns 0 (buffers may be NULL when empty), -ENOENT or -errno. */
int state_load_output(State *s, uint64_t id, uint8_t **ret_out, size_t *ret_out_len,
                      uint8_t **ret_err, size_t *ret_err_len);

/* Ids of requests, newest first: all of them (up to limit) or only the non-final ones. */
int state_list_requests(State *s, bool all, size_t limit, uint64_t **ret_ids, size_t *ret_n);
