/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * airlockd's in-memory model: sessions, requests and their lifecycle.
 *
 *   pending -> approved -> executing -> succeeded | failed
 *   pending -> denied | expired          (allowed requests go straight to executing)
 *   pending | approved | executing -> interrupted   (the broker stopped; never rerun)
 *
 * One global mutex (broker_lock) guards all of it and the SQLite handle;
 * each request has a condition variable its waiters sleep on. Every
 * transition is written to the audit log and to SQLite before it takes
 * effect in memory.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "policy/policy.h"

typedef enum {
        REQ_PENDING = 0,
        REQ_APPROVED,
        REQ_EXECUTING,
        REQ_SUCCEEDED,
        REQ_FAILED,
        REQ_DENIED,
        REQ_EXPIRED,
        REQ_INTERRUPTED,
        _REQ_STATE_MAX,
} ReqState;

const char *req_state_to_string(ReqState s);
int req_state_from_string(const char *s, ReqState *ret);
bool req_state_is_final(ReqState s);

typedef struct {
        uint64_t id;
        char *agent, *workspace, *profile, *socket_path;
        uid_t starter_uid;
        char *starter_name;
        pid_t starter_pid;
        uint64_t started_usec, ended_usec;
        int listen_fd;
        unsigned n_conns;    /* open connections on its socket */
        unsigned n_pending;  /* requests waiting for approval */
        unsigned n_planning; /* requests being planned */
        bool ended;
        unsigned refs;
} Session;

enum { OUT_STDOUT = 0, OUT_STDERR = 1 };

typedef struct {
        int stream;
        size_t len;
        uint8_t data[];
} Chunk;

typedef struct {
        uid_t uid;
        char *user;
        char *why;
        uint64_t at_usec;
        bool deny;
} Verdict;

typedef struct Req {
        uint64_t id;
        unsigned refs;
        bool active;    /* on the active list (not final) */
        bool recording; /* on the active list, its first records not yet durable: hidden */

        /* who asks: the session (agent) or a human on the admin socket */
        uint64_t session_id; /* 0 = a human outside any sandbox */
        char *agent;
        char *session_workspace, *session_profile, *session_starter;
        uid_t session_starter_uid;
        uint64_t session_started_usec;
        uid_t requester_uid;
        char *requester_name;
        pid_t requester_pid;

        /* what runs, exactly (bound by digest) */
        char **argv, **env, **command;
        char *cwd, *host, *run_as;
        char *why; /* the agent's (or human's) words: never trusted, always escaped for display */
        char policy_digest[65];
        char digest[65];

        /* its plan (requests the policy did not allow outright): what the dry run saw */
        json_t *plan;         /* plan_result_to_json(), NULL if not planned */
        char plan_digest[65]; /* the plan's digest, bound into digest; "" if none */
        char *plan_error;     /* why planning failed, NULL if it did not */
        json_t *deviations;   /* after an approved execution: what deviation_check() found */

        /* the decision */
        PolicyAction action;
        unsigned approvers_needed;
        char *reason;

        ReqState state;
        char *detail;
        uint64_t created_usec, expires_usec, finished_usec;
        int exit_status; /* -1 until it ran */

        Verdict *verdicts;
        size_t n_verdicts;

        /* output, while and after it runs */
        Chunk **chunks;
        size_t n_chunks;
        size_t out_bytes[2];
        bool truncated;

        pthread_cond_t cond;
} Req;

Req *req_ref(Req *r);
void req_unref(Req *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Req *, req_unref)

/* The request as JSON for show/list/exec replies. New reference or NULL. */
json_t *req_to_json(const Req *r);
/* The same for the agent that asked (a session peer): a plan that read a secret is withheld. */
json_t *req_to_json_for_agent(const Req *r);
/* The same without the plan itself (plan_digest names it): for lists of requests. */
json_t *req_to_json_brief(const Req *r);

/* A plan is shown (sent) up to this size of JSON; a larger one is named by its digest. */
#define REQ_PLAN_SHOW_MAX (512 * 1024)

/* sha256 of the canonical JSON of what runs; writes r->digest. */
int req_compute_digest(Req *r);

size_t req_count_approvals(const Req *r);
