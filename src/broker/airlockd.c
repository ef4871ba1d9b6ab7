/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlockd: the broker. The only process that makes changes on behalf of an
 * agent: it takes requests on session sockets (one per sandbox: the socket is
 * the agent's identity) and on the admin socket (humans, outside every
 * sandbox), decides by policy, keeps pending requests until enough distinct
 * approvers say yes over the admin socket, runs approved commands itself and
 * records every transition in the audit log and in SQLite first.
 *
 * Threads: the main thread accepts connections and handles signals and
 * expiry; each connection gets a thread, which also runs the requests the
 * policy allows at once; each approved request gets a thread to run it. One
 * mutex (B.lock) guards the policy, the sessions, the active requests and the
 * database handle.
 */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <pwd.h>

#include <sodium.h>

#include <systemd/sd-daemon.h>

#include "audit/audit.h"
#include "broker/audit-sink.h"
#include "broker/broker.h"
#include "broker/exec.h"
#include "broker/peer.h"
#include "broker/proto.h"
#include "broker/state.h"
#include "common/json.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/util.h"
#include "config.h"
#include "plan/plan.h"

#define MAX_CONNECTIONS_TOTAL    4096
#define MAX_ADMIN_CONN_PER_UID   64
#define MAX_SESSIONS_PER_UID     1024
#define MAX_CONN_PER_SESSION     32
#define MAX_PENDING_PER_SESSION  32
#define MAX_PENDING_PER_UID      32
#define MAX_LIST                 200
#define DEFAULT_TTL_USEC         (15ULL * 60 * 1000000)
#define DEFAULT_EXEC_TIMEOUT_SEC 600
#define OUTPUT_MAX_PER_STREAM    (1024 * 1024)
#define MAX_PLANS                4 /* plans at once: each is a snapshot with up to 1 GiB of tmpfs */
#define MAX_PLANS_PER_REQUESTER  2 /* per session, or per human's uid */
#define PLAN_WAIT_SEC            300 /* longest wait for a free plan slot (--plan-wait) */

#define EPOLL_ADMIN  0
#define EPOLL_SIGNAL UINT64_MAX

typedef struct {
        uid_t uid;
        unsigned admin_conns;
        unsigned sessions;
        unsigned pending;
        unsigned planning;
        /* refused verdicts: a token bucket for their audit records (refusal_recordable) */
        double refusal_tokens;
        uint64_t refusal_refill_usec;
        unsigned refusals_unrecorded;
} UidCount;

/*
 * A policy that a request in planning still uses (without the lock): a reload
 * replaces B.pin, and the old policy is freed when its last user is done.
 */
typedef struct {
        Policy *policy;
        unsigned refs; /* under B.lock */
} PolicyPin;

static struct {
        pthread_mutex_t lock;
        Policy *policy; /* the one in force: B.pin->policy */
        PolicyPin *pin;
        const char *policy_path;
        bool policy_standard;
        char *state_dir, *runtime_dir, *sessions_dir, *admin_path;
        State *state;
        int epoll_fd;
        int admin_fd;
        uint64_t exec_timeout_usec;
        unsigned plan_wait_sec; /* --plan-wait */
        uint64_t next_id;       /* request ids are assigned here, before the records are written */

        Session **sessions;
        size_t n_sessions;
        Req **active;
        size_t n_active;
        UidCount *uids;
        size_t n_uids;
        unsigned n_connections;
        unsigned n_planning;      /* plans running */
        pthread_cond_t plan_cond; /* a plan ended */
} B = { .lock = PTHREAD_MUTEX_INITIALIZER,
        .plan_cond = PTHREAD_COND_INITIALIZER,
        .plan_wait_sec = PLAN_WAIT_SEC,
        .epoll_fd = -EBADF,
        .admin_fd = -EBADF };

typedef struct {
        int fd;
        ProtoChannel channel;
        Peer peer;
        Session *session; /* the session this socket is (session channel) or holds (holder) */
        bool counted_admin;
} Conn;

/* ---- small helpers (callers hold B.lock where noted) ---- */

static UidCount *uid_count(uid_t uid)
{
        UidCount *n;

        for (size_t i = 0; i < B.n_uids; i++)
                if (B.uids[i].uid == uid)
                        return &B.uids[i];
        n = realloc(B.uids, sizeof(UidCount) * (B.n_uids + 1));
        if (!n)
                return NULL;
        B.uids = n;
        B.uids[B.n_uids] = (UidCount){ .uid = uid };
        return &B.uids[B.n_uids++];
}

static Session *session_find(uint64_t id)
{
        for (size_t i = 0; i < B.n_sessions; i++)
                if (B.sessions[i]->id == id)
                        return B.sessions[i];
        return NULL;
}

static void session_unref(Session *s)
{
        if (!s || --s->refs > 0)
                return;
        free(s->agent);
        free(s->workspace);
        free(s->profile);
        free(s->socket_path);
        free(s->starter_name);
        safe_close(s->listen_fd);
        free(s);
}

/* Caller holds B.lock. */
static PolicyPin *policy_pin(void)
{
        B.pin->refs++;
        return B.pin;
}

/* Caller holds B.lock. */
static void policy_unpin(PolicyPin *p)
{
        if (!p || --p->refs > 0)
                return;
        policy_free(p->policy);
        free(p);
}

static Req *active_find(uint64_t id)
{
        for (size_t i = 0; i < B.n_active; i++)
                if (B.active[i]->id == id)
                        return B.active[i];
        return NULL;
}

static int active_add(Req *r)
{
        Req **n = realloc(B.active, sizeof(Req *) * (B.n_active + 1));

        if (!n)
                return -ENOMEM;
        B.active = n;
        B.active[B.n_active++] = req_ref(r);
        r->active = true;
        return 0;
}

/* Removes a request that reached a final state from the active list; wakes its waiters. */
static void active_remove(Req *r)
{
        for (size_t i = 0; i < B.n_active; i++)
                if (B.active[i] == r) {
                        B.active[i] = B.active[--B.n_active];
                        break;
                }
        if (r->active) {
                r->active = false;
                pthread_cond_broadcast(&r->cond);
                req_unref(r);
        }
}

/* Pending-count bookkeeping for the limits: called when a request leaves "pending". */
static void pending_release(Req *r)
{
        if (r->session_id) {
                Session *s = session_find(r->session_id);

                if (s && s->n_pending > 0)
                        s->n_pending--;
        } else {
                UidCount *u = uid_count(r->requester_uid);

                if (u && u->pending > 0)
                        u->pending--;
        }
}

/* Effects in an audit record: one record is at most 64 KiB, the plan's digest names the rest. */
#define PLANNED_RECORD_BUDGET (32 * 1024)

/*
 * The strings of l as a JSON array, as many as *budget bytes allow (it is
 * shared by all the lists of one record); *cut is set when some were left
 * out. Returns a new array or NULL.
 */
static json_t *strv_budgeted(char *const *l, size_t *budget, bool *cut)
{
        json_t *a = json_array();

        STRV_FOREACH (x, l) {
                size_t n = strlen(*x) + 8;

                if (!a)
                        break;
                if (n > *budget) {
                        *cut = true;
                        break;
                }
                *budget -= n;
                json_array_append_new(a, json_string(*x));
        }
        return a;
}

/* The audit record's common part for a request: id, who (the agent), argv, target. */
static json_t *record_for(const Req *r)
{
        json_t *j, *argv = json_array();
        char id[32];

        if (!argv)
                return NULL;
        STRV_FOREACH (a, r->argv)
                json_array_append_new(argv, json_string(*a));
        snprintf(id, sizeof(id), "%llu", (unsigned long long)r->id);
        j = json_pack("{s:s, s:o}", "request", id, "argv", argv);
        if (j && r->host)
                json_object_set_new(j, "target", json_string(r->host));
        if (j && r->session_id) {
                char sid[32];

                snprintf(sid, sizeof(sid), "%llu", (unsigned long long)r->session_id);
                json_object_set_new(j, "agent",
                                    /* uid: the agent's, as the kernel reported it on its socket */
                                    json_pack("{s:s, s:s, s:I, s:s}", "name", r->agent, "session",
                                              sid, "uid", (json_int_t)r->requester_uid,
                                              "started_by", r->session_starter));
        }
        return j;
}

/*
 * Writes one record about r to the audit log, with details (borrowed, may
 * be NULL). Returns 0 or -errno: the caller must not make the transition
 * when this fails.
 */
static int audit_transition(const char *event, const Req *r, json_t *details)
{
        _cleanup_(json_decrefp) json_t *j = record_for(r);
        int k;

        if (!j)
                return -ENOMEM;
        json_object_set_new(j, "details", details ? json_deep_copy(details) : json_object());
        k = audit_sink_write(event, j);
        if (k < 0)
                log_error("cannot write the audit log (%s): refusing the transition '%s' of "
                          "request %llu",
                          strerror(-k), event, (unsigned long long)r->id);
        return k;
}

/*
 * Writes n records about r (events[i] with details[i], borrowed, may be NULL)
 * as one batch. With ret_ticket NULL, returns once they are durable (one
 * sync); otherwise it only starts their write and sync and returns a ticket
 * for audit_sink_wait(), so that the caller can commit the database
 * meanwhile. Returns 0 or -errno: then none of them may take effect.
 */
static int audit_transitions_begin(size_t n, const char *const *events, const Req *r,
                                   json_t *const *details, uint64_t *ret_ticket)
{
        json_t *recs[AUDIT_SINK_BATCH_MAX] = {};
        int k = n <= AUDIT_SINK_BATCH_MAX ? 0 : -E2BIG;

        for (size_t i = 0; k >= 0 && i < n; i++) {
                recs[i] = record_for(r);
                if (!recs[i])
                        k = -ENOMEM;
                else
                        json_object_set_new(recs[i], "details",
                                            details[i] ? json_deep_copy(details[i])
                                                       : json_object());
        }
        if (k >= 0)
                k = ret_ticket ? audit_sink_start_many(events, recs, n, ret_ticket)
                               : audit_sink_write_many(events, recs, n);
        for (size_t i = 0; i < n && i < AUDIT_SINK_BATCH_MAX; i++)
                json_decref(recs[i]);
        if (k < 0)
                log_error("cannot write the audit log (%s): refusing the transitions '%s'..'%s' "
                          "of request %llu",
                          strerror(-k), n ? events[0] : "", n ? events[n - 1] : "",
                          (unsigned long long)r->id);
        return k;
}

/* Waits for a batch started by audit_transitions_begin(); logs a failure. */
static int audit_transitions_end(uint64_t ticket, const Req *r)
{
        int k = audit_sink_wait(ticket);

        if (k < 0)
                log_error("cannot write the audit log (%s): request %llu's transition did not "
                          "take effect",
                          strerror(-k), (unsigned long long)r->id);
        return k;
}

static const char *audit_event_for(ReqState to)
{
        switch (to) {
        case REQ_APPROVED:
                return AUDIT_EVENT_REQUEST_DECIDED; /* the approvals reached the quorum */
        case REQ_EXECUTING:
                return AUDIT_EVENT_EXEC_START;
        case REQ_SUCCEEDED:
        case REQ_FAILED:
        case REQ_INTERRUPTED:
                return AUDIT_EVENT_EXEC_END;
        case REQ_DENIED:
                return AUDIT_EVENT_REQUEST_DENIED;
        case REQ_EXPIRED:
                return AUDIT_EVENT_REQUEST_EXPIRED;
        case REQ_PENDING:
        case _REQ_STATE_MAX:
                break;
        }
        return NULL;
}

/*
 * Moves r to a new state: audit record first, then the database, then
 * memory. Caller holds B.lock. On failure nothing changed.
 */
static int transition_full(Req *r, ReqState to, const char *detail, json_t *extra, bool write_audit,
                           bool write_db)
{
        ReqState from = r->state;
        char *old_detail = r->detail, *nd = NULL;
        uint64_t old_finished = r->finished_usec;
        _cleanup_(json_decrefp) json_t *ex = extra ? json_incref(extra) : json_object();
        int k;

        if (detail) {
                nd = strdup(detail);
                if (!nd)
                        return -ENOMEM;
        }
        if (!audit_event_for(to) || !ex) {
                free(nd);
                return -EINVAL;
        }
        json_object_set_new(ex, "from", json_string(req_state_to_string(from)));
        json_object_set_new(ex, "state", json_string(req_state_to_string(to)));
        if (detail)
                json_object_set_new(ex, "detail", json_string(detail));
        if (to == REQ_APPROVED) {
                json_object_set_new(ex, "decision", json_string("approved"));
                json_object_set_new(ex, "approvals",
                                    json_integer((json_int_t)req_count_approvals(r)));
        }
        if (to == REQ_EXPIRED)
                json_object_set_new(
                        ex, "ttl_sec",
                        json_integer((json_int_t)((r->expires_usec - r->created_usec) / 1000000)));
        if (to == REQ_INTERRUPTED)
                json_object_set_new(ex, "interrupted", json_true());
        r->state = to;
        if (req_state_is_final(to))
                r->finished_usec = now_realtime_usec();
        if (nd)
                r->detail = nd;
        if ((to == REQ_SUCCEEDED || to == REQ_FAILED) && r->exit_status >= 0) {
                json_object_set_new(ex, "exit_status", json_integer(r->exit_status));
                json_object_set_new(ex, "output_bytes",
                                    json_integer((json_int_t)(r->out_bytes[0] + r->out_bytes[1])));
        }
        k = write_audit ? audit_transition(audit_event_for(to), r, ex) : 0;
        if (k >= 0 && write_db)
                k = state_update_request(B.state, r);
        if (k < 0) {
                r->state = from;
                r->finished_usec = old_finished;
                if (nd) {
                        r->detail = old_detail;
                        free(nd);
                }
                return k;
        }
        if (nd)
                free(old_detail);
        if (from == REQ_PENDING)
                pending_release(r);
        pthread_cond_broadcast(&r->cond);
        if (req_state_is_final(to))
                active_remove(r);
        return 0;
}

static int transition(Req *r, ReqState to, const char *detail, json_t *extra)
{
        return transition_full(r, to, detail, extra, true, true);
}

static int send_json(int fd, json_t *j)
{
        int k;

        if (!j)
                return -ENOMEM;
        k = proto_write(fd, j);
        json_decref(j);
        return k;
}

static int reply_error(Conn *c, const char *code, const char *fmt, ...) _printf_(3, 4);
static int reply_error(Conn *c, const char *code, const char *fmt, ...)
{
        _cleanup_free_ char *m = NULL;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        return proto_write_error(c->fd, code, m);
}

/* A request as this peer may see it (see req_to_json_for_agent()). */
static json_t *req_json_for(const Conn *c, const Req *r)
{
        return c->channel == PROTO_CHANNEL_SESSION ? req_to_json_for_agent(r) : req_to_json(r);
}

static int send_request(const Conn *c, const char *type, const Req *r)
{
        return send_json(c->fd,
                         json_pack("{s:s, s:o}", "type", type, "request", req_json_for(c, r)));
}

/* ---- execution ---- */

/* Who runs a request: an executor thread, or the requester's own connection thread. */
typedef struct {
        Req *r;
        int stream_fd;      /* the requester's connection when it runs there, else -EBADF */
        size_t sent;        /* chunks already streamed to stream_fd */
        bool stream_broken; /* a send failed: the rest goes when the command is done */
} ExecRun;

static int send_output(int fd, int stream, const uint8_t *buf, size_t len);

static void on_output(void *userdata, int stream, const uint8_t *buf, size_t len)
{
        ExecRun *x = userdata;
        Req *r = x->r;
        Chunk *c, **n;
        size_t room;

        pthread_mutex_lock(&B.lock);
        room = OUTPUT_MAX_PER_STREAM - r->out_bytes[stream];
        if (len > room) {
                r->truncated = true;
                len = room;
        }
        if (len == 0)
                goto out;
        c = malloc(sizeof(Chunk) + len);
        n = c ? realloc(r->chunks, sizeof(Chunk *) * (r->n_chunks + 1)) : NULL;
        if (!n) {
                free(c);
                r->truncated = true;
                goto out;
        }
        c->stream = stream;
        c->len = len;
        memcpy(c->data, buf, len);
        r->chunks = n;
        r->chunks[r->n_chunks++] = c;
        r->out_bytes[stream] += len;
        pthread_cond_broadcast(&r->cond);
out:
        /*
         * Running on the requester's connection: stream it now. Only this
         * thread adds chunks, so they stay put while it sends without the
         * lock. A requester that does not read is cut off by the socket's
         * send timeout; the command runs on and its output is kept.
         */
        while (x->stream_fd >= 0 && !x->stream_broken && x->sent < r->n_chunks) {
                Chunk *ch = r->chunks[x->sent++];

                pthread_mutex_unlock(&B.lock);
                if (send_output(x->stream_fd, ch->stream, ch->data, ch->len) < 0)
                        x->stream_broken = true;
                pthread_mutex_lock(&B.lock);
        }
        pthread_mutex_unlock(&B.lock);
}

/*
 * Runs r (approved or executing) to its end: records exec_start for an
 * approved one, runs the command, records the result. Takes x->r's
 * reference.
 */
/*
 * The deviation check of an approved request: what the execution did (as
 * recorded) against the plan that was approved. Returns {"deviations":
 * [lines]} (empty: none) or {"error": why it could not be checked}.
 */
static json_t *deviation_check(const Req *r, int exec_result, const PlanResult *observed)
{
        _cleanup_(plan_result_freep) PlanResult *approved = NULL;
        _cleanup_strv_free_ char **lines = NULL;
        json_t *a;
        int n;

        if (exec_result < 0)
                return json_pack("{s:s}", "error", "the command did not run");
        if (!observed)
                return json_pack("{s:s}", "error", "the recording of the execution failed");
        if (plan_result_from_json(r->plan, &approved) < 0)
                return json_pack("{s:s}", "error", "the approved plan cannot be read back");
        n = plan_compare(approved, observed, &lines);
        if (n < 0)
                return NULL;
        {
                /* as many lines as fit the exec_end record; count says how many there were */
                size_t budget = PLANNED_RECORD_BUDGET;
                bool cut = false;

                a = strv_budgeted(lines, &budget, &cut);
                return a ? json_pack("{s:o, s:I, s:b, s:b}", "deviations", a, "count",
                                     (json_int_t)n, "truncated", cut, "complete",
                                     observed->complete)
                         : NULL;
        }
}

static void execute(ExecRun *x)
{
        Req *r = x->r;
        char detail[512];
        _cleanup_free_ uint8_t *out = NULL, *err = NULL;
        _cleanup_(plan_result_freep) PlanResult *observed = NULL;
        _cleanup_(json_decrefp) json_t *deviations = NULL;
        PolicyPin *pin = NULL;
        bool check = false;
        size_t lens[2] = {};
        int status = -1, k;
        ExecSpec spec;

        pthread_mutex_lock(&B.lock);
        /*
         * A request with a plan (approved, or allowed by an effect rule once
         * planned): record what it does, to compare with the plan. Requests
         * the policy allows outright were never planned.
         */
        check = r->plan != NULL;
        /*
         * Allowed requests were recorded as executing when they were
         * submitted; approved ones start here. Only this thread moves an
         * approved or executing request on, so its records can be written
         * without holding the lock (concurrent requests share the syncs).
         */
        if (r->state == REQ_APPROVED) {
                _cleanup_(json_decrefp) json_t *ex =
                        json_pack("{s:s, s:s}", "from", "approved", "state", "executing");

                pthread_mutex_unlock(&B.lock);
                k = ex ? audit_transition(AUDIT_EVENT_EXEC_START, r, ex) : -ENOMEM;
                pthread_mutex_lock(&B.lock);
                if (k >= 0)
                        k = transition_full(r, REQ_EXECUTING, NULL, NULL, false, true);
                if (k < 0) {
                        log_error("request %llu stays approved and did not run: the transition "
                                  "to executing could not be recorded",
                                  (unsigned long long)r->id);
                        pthread_mutex_unlock(&B.lock);
                        req_unref(r);
                        return;
                }
        } else if (r->state != REQ_EXECUTING) {
                pthread_mutex_unlock(&B.lock);
                req_unref(r);
                return;
        }
        spec = (ExecSpec){
                .command = r->command,
                .env = r->env,
                .cwd = r->cwd,
                .user = r->run_as,
                .timeout_usec = B.exec_timeout_usec,
                .on_output = on_output,
                .userdata = x,
        };
        if (check) {
                pin = policy_pin(); /* its secrets and inventory name what the recorder sees */
                spec.record_policy = pin->policy;
                spec.ret_observed = &observed;
        }
        pthread_mutex_unlock(&B.lock);

        k = exec_run(&spec, &status, detail, sizeof(detail));
        if (check) {
                deviations = deviation_check(r, k, observed);
                if (!deviations)
                        deviations = json_pack("{s:s}", "error", "out of memory");
        }

        pthread_mutex_lock(&B.lock);
        policy_unpin(pin);
        if (deviations) {
                json_decref(r->deviations);
                r->deviations = json_incref(deviations);
        }
        out = malloc(r->out_bytes[0] + 1);
        err = malloc(r->out_bytes[1] + 1);
        if (out && err)
                for (size_t i = 0; i < r->n_chunks; i++) {
                        Chunk *c = r->chunks[i];

                        memcpy((c->stream ? err : out) + lens[c->stream], c->data, c->len);
                        lens[c->stream] += c->len;
                }
        r->exit_status = k < 0 ? 127 : status;
        {
                ReqState to = k >= 0 && status == 0 ? REQ_SUCCEEDED : REQ_FAILED;
                _cleanup_(json_decrefp) json_t *ex =
                        json_pack("{s:s, s:s, s:i, s:I}", "from", "executing", "state",
                                  req_state_to_string(to), "exit_status", r->exit_status,
                                  "output_bytes", (json_int_t)(lens[0] + lens[1]));
                int a;

                if (ex && detail[0])
                        json_object_set_new(ex, "detail", json_string(detail));
                if (ex && deviations)
                        json_object_set(ex, "deviation_check", deviations);
                Req row = *r; /* what the database row becomes; r changes under the lock */
                bool truncated = r->truncated;

                row.state = to;
                row.detail = detail[0] ? detail : r->detail;
                row.finished_usec = now_realtime_usec();
                pthread_mutex_unlock(&B.lock);
                /*
                 * Only this thread moves an executing request: record without the
                 * lock, the audit record and the database commit at once (their
                 * syncs overlap). Nobody hears of the result before both are
                 * durable. Should the audit log fail after the database took the
                 * result, the requester is told the result could not be recorded,
                 * and the broker refuses everything after (the writer stays failed).
                 */
                {
                        const char *ev = AUDIT_EVENT_EXEC_END;
                        uint64_t ticket = 0;
                        int db;

                        a = ex ? audit_transitions_begin(1, &ev, r, &ex, &ticket) : -ENOMEM;
                        if (a >= 0) {
                                db = state_begin(B.state);
                                /* no output, no row: reading it back finds none, same thing */
                                if (db >= 0 && (lens[0] > 0 || lens[1] > 0 || truncated))
                                        db = state_save_output(B.state, r->id, out, lens[0], err,
                                                               lens[1], truncated);
                                if (db >= 0)
                                        db = state_update_request(B.state, &row);
                                if (db >= 0)
                                        db = state_commit(B.state);
                                if (db < 0)
                                        state_rollback(B.state);
                                a = audit_transitions_end(ticket, r);
                                if (a >= 0)
                                        a = db;
                        }
                }
                pthread_mutex_lock(&B.lock);
                /* the database has it: now memory (no audit, no database: both done) */
                if (a >= 0)
                        a = transition_full(r, to, detail[0] ? detail : NULL, NULL, false, false);
                if (a < 0) {
                        log_error("request %llu ran (exit status %d) but its result could not be "
                                  "recorded in the audit log and the database; it is reported as "
                                  "failed",
                                  (unsigned long long)r->id, r->exit_status);
                        /* the command ran: release waiters with what happened, in memory */
                        r->state = REQ_FAILED;
                        active_remove(r);
                }
        }
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&B.lock);
        req_unref(r);
}

static void *executor_thread(void *userdata)
{
        ExecRun x = { .r = userdata, .stream_fd = -EBADF };

        execute(&x);
        return NULL;
}

static int start_executor(Req *r)
{
        pthread_attr_t a;
        pthread_t t;
        int k;

        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 512 * 1024);
        k = -pthread_create(&t, &a, executor_thread, req_ref(r));
        pthread_attr_destroy(&a);
        if (k < 0) {
                req_unref(r);
                (void)transition(r, REQ_FAILED, "the broker could not start a thread to run it",
                                 NULL);
        }
        return k;
}

/* ---- waiting and streaming ---- */

static bool client_gone(int fd)
{
        struct pollfd p = { .fd = fd, .events = POLLRDHUP };

        return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static int send_output(int fd, int stream, const uint8_t *buf, size_t len)
{
        for (size_t off = 0; off < len || len == 0;) {
                size_t n = len - off > PROTO_OUTPUT_CHUNK ? PROTO_OUTPUT_CHUNK : len - off;
                _cleanup_free_ char *b64 = proto_base64_encode(buf + off, n);
                int k;

                if (!b64)
                        return -ENOMEM;
                k = send_json(fd, json_pack("{s:s, s:s, s:s}", "type", "output", "stream",
                                            stream ? "stderr" : "stdout", "data", b64));
                if (k < 0)
                        return k;
                off += n;
                if (len == 0)
                        break;
        }
        return 0;
}

/*
 * Streams r's output to the client and ends with "done" (final state) or
 * "still-pending" (deadline passed while pending). Called with B.lock held
 * and a reference on r; returns with B.lock released.
 */
static int wait_and_stream_from(Conn *c, Req *r, uint64_t deadline_usec, size_t sent)
{
        int k;

        for (;;) {
                while (sent < r->n_chunks) {
                        Chunk *ch = r->chunks[sent++];

                        pthread_mutex_unlock(&B.lock);
                        k = send_output(c->fd, ch->stream, ch->data, ch->len);
                        pthread_mutex_lock(&B.lock);
                        if (k < 0) {
                                pthread_mutex_unlock(&B.lock);
                                return k;
                        }
                }
                if (req_state_is_final(r->state)) {
                        json_t *j = req_json_for(c, r);

                        pthread_mutex_unlock(&B.lock);
                        return send_json(c->fd,
                                         json_pack("{s:s, s:o}", "type", "done", "request", j));
                }
                if (r->state == REQ_PENDING && now_realtime_usec() >= deadline_usec) {
                        json_t *j = req_json_for(c, r);

                        pthread_mutex_unlock(&B.lock);
                        return send_json(c->fd, json_pack("{s:s, s:o}", "type", "still-pending",
                                                          "request", j));
                }
                {
                        uint64_t until = now_realtime_usec() + 500000;
                        struct timespec ts;

                        if (r->state == REQ_PENDING && deadline_usec < until)
                                until = deadline_usec;
                        ts.tv_sec = (time_t)(until / 1000000);
                        ts.tv_nsec = (long)(until % 1000000) * 1000;
                        pthread_cond_timedwait(&r->cond, &B.lock, &ts);
                }
                if (client_gone(c->fd)) {
                        pthread_mutex_unlock(&B.lock);
                        return -ECONNRESET;
                }
        }
}

static int wait_and_stream(Conn *c, Req *r, uint64_t deadline_usec)
{
        return wait_and_stream_from(c, r, deadline_usec, 0);
}

/* A final request from the database: its stored output, then "done". Caller holds no lock. */
static int stream_stored(Conn *c, Req *r)
{
        _cleanup_free_ uint8_t *out = NULL, *err = NULL;
        size_t ol = 0, el = 0;
        int k;

        pthread_mutex_lock(&B.lock);
        k = state_load_output(B.state, r->id, &out, &ol, &err, &el);
        pthread_mutex_unlock(&B.lock);
        if (k >= 0) {
                if (ol > 0 && (k = send_output(c->fd, OUT_STDOUT, out, ol)) < 0)
                        return k;
                if (el > 0 && (k = send_output(c->fd, OUT_STDERR, err, el)) < 0)
                        return k;
        }
        return send_request(c, "done", r);
}

/* ---- visibility ---- */

static bool conn_is_approver(Conn *c)
{
        return peer_is_approver(B.policy, &c->peer);
}

/* Whether c may see r. Caller holds B.lock. */
static bool may_see(Conn *c, const Req *r)
{
        if (c->channel == PROTO_CHANNEL_SESSION)
                return c->session && r->session_id == c->session->id;
        if (conn_is_approver(c))
                return true;
        if (r->session_id)
                return r->session_starter_uid == c->peer.uid;
        return r->requester_uid == c->peer.uid;
}

/* Finds a request in memory (new reference) or loads it. Caller holds B.lock. */
static int lookup(uint64_t id, Req **ret)
{
        Req *r = active_find(id);

        if (r && r->recording)
                return -ENOENT; /* not recorded yet: it does not exist for anyone else */
        if (r) {
                *ret = req_ref(r);
                return 0;
        }
        return state_load_request(B.state, id, ret);
}

/* ---- handlers ---- */

static const char *host_default_connect[] = { "ssh", "-T", "-o", "BatchMode=yes", "--" };

static int build_command(const Policy *p, const char *host, char *const *argv, char ***ret,
                         char *err, size_t err_size)
{
        _cleanup_strv_free_ char **cmd = calloc(1, sizeof(char *));
        const PolicyHost *h;

        if (!cmd)
                return -ENOMEM;
        if (!host) {
                STRV_FOREACH (a, argv)
                        if (strv_extend(&cmd, *a) < 0)
                                return -ENOMEM;
                *ret = TAKE_PTR(cmd);
                return 0;
        }
        h = policy_find_host(p, host);
        if (!h) {
                _cleanup_free_ char *esc = escape_for_terminal(host);

                snprintf(err, err_size,
                         "unknown host '%s' — the hosts: section of the policy lists the hosts "
                         "requests may name",
                         esc ? esc : "?");
                return -ENOENT;
        }
        if (h->connect) {
                /* the inventory's own argv prefix; the command's argv follows unchanged */
                STRV_FOREACH (a, h->connect)
                        if (strv_extend(&cmd, *a) < 0)
                                return -ENOMEM;
                STRV_FOREACH (a, argv)
                        if (strv_extend(&cmd, *a) < 0)
                                return -ENOMEM;
        } else {
                _cleanup_free_ char *dest = NULL, *line = NULL;

                /* ssh joins its arguments for the remote shell: send one quoted line */
                for (size_t i = 0; i < ELEMENTSOF(host_default_connect) - 1; i++)
                        if (strv_extend(&cmd, host_default_connect[i]) < 0)
                                return -ENOMEM;
                if (asprintf(&dest, "root@%s", h->address) < 0)
                        return -ENOMEM;
                line = argv_to_display(argv);
                if (!line || strv_extend(&cmd, "--") < 0 || strv_extend(&cmd, dest) < 0 ||
                    strv_extend(&cmd, line) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(cmd);
        return 0;
}

/*
 * Plans r (a dry run in a copy-on-write snapshot: the host does not change)
 * and judges it again with what the plan saw: *d becomes the decision with
 * effects. Sets r->plan and r->plan_digest (bound into r->digest), or
 * r->plan_error when planning failed; then *d stays the decision without
 * effects, so a request that needed approval still does, and the approver
 * sees that there is no plan. Returns the details of the request_planned
 * record (new reference), or NULL on allocation failure. Runs without the
 * lock, on the pinned policy p.
 */
static json_t *plan_request(Req *r, const Policy *p, PolicyRequest *pr, PolicyDecision *d)
{
        _cleanup_(plan_result_freep) PlanResult *plan = NULL;
        PlanPolicyEffects pe = {};
        PolicyDecision d2 = {};
        PlanOptions o = {
                .argv = r->argv,
                .envp = r->env,
                .cwd = r->cwd,
                .host = r->host,
                .policy = p,
        };
        struct passwd pw, *res = NULL;
        char err[1024] = "", buf[4096];
        json_t *j, *conns;
        int k;

        if (getpwnam_r(r->run_as, &pw, buf, sizeof(buf), &res) != 0 || !res) {
                snprintf(err, sizeof(err), "the user '%s' to run as does not exist", r->run_as);
                k = -ESRCH;
        } else {
                o.uid = res->pw_uid;
                o.gid = res->pw_gid;
                /* in a new image of airlockd: no fork() of this threaded process */
                k = plan_run_isolated(&o, "/proc/self/exe", &plan, err, sizeof(err));
        }
        if (k >= 0 && !(r->plan = plan_result_to_json(plan)))
                k = -ENOMEM;
        if (k >= 0)
                k = plan_policy_effects(plan, &pe);
        if (k < 0) {
                json_decref(r->plan);
                r->plan = NULL;
                r->plan_error = strdup(err[0] ? err : strerror(-k));
                if (!r->plan_error)
                        return NULL;
                {
                        /* before it has an id: name it by its command */
                        _cleanup_free_ char *cmd = argv_to_display(r->argv);
                        _cleanup_free_ char *esc = cmd ? escape_for_terminal(cmd) : NULL;

                        log_warning("could not plan '%s' (asked by %s): %s", esc ? esc : "?",
                                    r->agent ? r->agent : r->requester_name, r->plan_error);
                }
                return json_pack("{s:s}", "error", r->plan_error);
        }
        memcpy(r->plan_digest, plan->digest, sizeof(r->plan_digest));
        pr->effects = &pe.effects;
        (void)policy_evaluate(p, pr, &d2);
        pr->effects = NULL;
        *d = d2;

        {
                size_t budget = PLANNED_RECORD_BUDGET;
                bool cut = false;
                /* the ones a reader looks for first go first */
                json_t *sr = strv_budgeted(pe.effects.secrets_read, &budget, &cut);
                json_t *sw = strv_budgeted(pe.effects.secret_content_written, &budget, &cut);
                json_t *ct = strv_budgeted(pe.effects.contacts, &budget, &cut);
                json_t *wr, *de;

                conns = json_array();
                for (size_t i = 0; conns && i < pe.effects.n_connections; i++) {
                        const PolicyConnection *c = &pe.effects.connections[i];
                        size_t n = (c->host ? strlen(c->host) : 0) +
                                   (c->address ? strlen(c->address) : 0) + 32;

                        if (n > budget) {
                                cut = true;
                                break;
                        }
                        budget -= n;
                        json_array_append_new(conns, json_pack("{s:s?, s:s?, s:i}", "host", c->host,
                                                               "address", c->address, "port",
                                                               (int)c->port));
                }
                wr = strv_budgeted(pe.effects.writes, &budget, &cut);
                de = strv_budgeted(pe.effects.deletes, &budget, &cut);
                j = json_pack("{s:s, s:b, s:{s:o*, s:o*, s:o*, s:o*, s:o*, s:o*}}", "plan_sha256",
                              plan->digest, "complete", plan->complete, "effects", "secrets_read",
                              sr, "secret_content_written", sw, "writes", wr, "deletes", de,
                              "connections", conns, "contacts", ct);
                /* the plan itself, kept with the request, has every effect */
                if (j && cut)
                        json_object_set_new(json_object_get(j, "effects"), "truncated",
                                            json_true());
        }
        plan_policy_effects_done(&pe);
        return j;
}

static bool path_is_clean_absolute(const char *p)
{
        if (!p || p[0] != '/')
                return false;
        for (const char *s = p; *s; s++)
                if (s[0] == '/' && s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == '\0'))
                        return false;
        return true;
}

static int handle_exec(Conn *c, const ProtoRequest *q)
{
        _cleanup_(req_unrefp) Req *r = NULL;
        _cleanup_(json_decrefp) json_t *planned = NULL;
        PolicyPin *pin;
        PolicyDecision d = {};
        PolicyRequest pr;
        char err[512] = "";
        uint64_t now = now_realtime_usec();
        int k;

        if (!path_is_clean_absolute(q->cwd))
                return reply_error(c, "bad-request",
                                   "the working directory must be an absolute path without '..'");
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->refs = 1;
        r->exit_status = -1;
        pthread_cond_init(&r->cond, NULL);
        r->requester_uid = c->peer.uid;
        r->requester_pid = c->peer.pid;
        r->requester_name = strdup(c->peer.user);
        r->argv = strv_copy((char *const *)q->argv);
        r->run_as = strdup("root");
        r->cwd = strdup(q->host ? "/" : q->cwd);
        r->host = q->host ? strdup(q->host) : NULL;
        r->why = q->why ? strdup(q->why) : NULL;
        r->env = exec_clean_env("root", 0);
        if (!r->requester_name || !r->argv || !r->run_as || !r->cwd || !r->env ||
            (q->host && !r->host) || (q->why && !r->why))
                return -ENOMEM;

        pthread_mutex_lock(&B.lock);
        if (c->channel == PROTO_CHANNEL_SESSION) {
                Session *s = c->session;

                if (s->ended) {
                        pthread_mutex_unlock(&B.lock);
                        return reply_error(c, "session-ended",
                                           "session %llu has ended — start a new sandbox with "
                                           "'airlock run'",
                                           (unsigned long long)s->id);
                }
                r->session_id = s->id;
                r->agent = strdup(s->agent);
                r->session_workspace = strdup(s->workspace);
                r->session_profile = strdup(s->profile);
                r->session_starter = strdup(s->starter_name);
                r->session_starter_uid = s->starter_uid;
                r->session_started_usec = s->started_usec;
                if (!r->agent || !r->session_workspace || !r->session_profile ||
                    !r->session_starter) {
                        pthread_mutex_unlock(&B.lock);
                        return -ENOMEM;
                }
        }
        k = build_command(B.policy, q->host, r->argv, &r->command, err, sizeof(err));
        if (k < 0) {
                pthread_mutex_unlock(&B.lock);
                return k == -ENOENT ? reply_error(c, "unknown-host", "%s", err) : k;
        }
        pr = (PolicyRequest){ .argv = r->argv,
                              .host = r->host,
                              .agent = r->agent,
                              .profile = r->session_profile,
                              .cwd = r->cwd };
        (void)policy_evaluate(B.policy, &pr, &d);
        pin = policy_pin();
        if (d.action == POLICY_APPROVE) {
                unsigned *mine;

                if (c->session)
                        mine = &c->session->n_planning;
                else {
                        UidCount *u = uid_count(c->peer.uid);

                        if (!u) {
                                policy_unpin(pin);
                                pthread_mutex_unlock(&B.lock);
                                return -ENOMEM;
                        }
                        mine = &u->planning;
                }
                if (*mine >= MAX_PLANS_PER_REQUESTER) {
                        policy_unpin(pin);
                        pthread_mutex_unlock(&B.lock);
                        return reply_error(c, "limit",
                                           "%u of your requests are being planned already — wait "
                                           "for their answers, then ask again",
                                           *mine);
                }
                (*mine)++;
                /*
                 * A bounded number of snapshots at once; the others wait
                 * their turn, but not for ever: past the deadline the
                 * requester hears that the broker is busy.
                 */
                {
                        struct timespec until;
                        int w = 0;

                        clock_gettime(CLOCK_REALTIME, &until);
                        until.tv_sec += B.plan_wait_sec;
                        while (B.n_planning >= MAX_PLANS && w != ETIMEDOUT)
                                w = pthread_cond_timedwait(&B.plan_cond, &B.lock, &until);
                        if (B.n_planning >= MAX_PLANS) {
                                (*mine)--;
                                policy_unpin(pin);
                                pthread_mutex_unlock(&B.lock);
                                return reply_error(c, "limit",
                                                   "airlockd is planning %u other requests and "
                                                   "none ended within %u s — ask again later",
                                                   B.n_planning, B.plan_wait_sec);
                        }
                }
                B.n_planning++;
                /*
                 * Neither allowed nor denied outright: plan it (a dry run,
                 * which changes nothing on the host) and judge what it did;
                 * the approver sees the plan. A request denied by its argv is
                 * not planned: nothing it does could be shown to anyone, and
                 * planning it would only spend the host's time. Without the
                 * lock: a plan takes as long as the command; the policy that
                 * judged it stays pinned meanwhile.
                 */
                pthread_mutex_unlock(&B.lock);
                planned = plan_request(r, pin->policy, &pr, &d);
                pthread_mutex_lock(&B.lock);
                B.n_planning--;
                pthread_cond_signal(&B.plan_cond);
                if (c->session)
                        c->session->n_planning--;
                else
                        uid_count(c->peer.uid)->planning--;
                if (!planned) {
                        policy_unpin(pin);
                        pthread_mutex_unlock(&B.lock);
                        return -ENOMEM;
                }
        }
        r->action = d.action;
        r->approvers_needed = d.action == POLICY_APPROVE ? (d.approvers ?: 1) : 0;
        r->reason = strdup(d.reason);
        memcpy(r->policy_digest, pin->policy->digest, sizeof(r->policy_digest));
        r->created_usec = now;
        /* the approvers' time counts from when they can see the plan, not from before it */
        r->expires_usec =
                (planned ? now_realtime_usec() : now) +
                (pin->policy->request_ttl_usec ? pin->policy->request_ttl_usec : DEFAULT_TTL_USEC);
        policy_unpin(pin);
        r->state = d.action == POLICY_ALLOW     ? REQ_EXECUTING
                   : d.action == POLICY_APPROVE ? REQ_PENDING
                                                : REQ_DENIED;
        if (r->state == REQ_DENIED)
                r->finished_usec = now;
        if (!r->reason || req_compute_digest(r) < 0) {
                pthread_mutex_unlock(&B.lock);
                return -ENOMEM;
        }
        if (r->state == REQ_PENDING) {
                unsigned *pending;
                UidCount *u = NULL;

                if (r->session_id)
                        pending = &c->session->n_pending;
                else {
                        u = uid_count(c->peer.uid);
                        if (!u) {
                                pthread_mutex_unlock(&B.lock);
                                return -ENOMEM;
                        }
                        pending = &u->pending;
                }
                if (*pending >= (r->session_id ? MAX_PENDING_PER_SESSION : MAX_PENDING_PER_UID)) {
                        pthread_mutex_unlock(&B.lock);
                        return reply_error(c, "limit",
                                           "%u requests are already waiting for approval — wait "
                                           "for them to be decided or to expire ('airlock "
                                           "requests')",
                                           *pending);
                }
        }

        /*
         * Record first: the audit log and the database (outside the lock, so
         * that concurrent requests share the syncs), then act. From here the
         * request is on the active list but hidden (lookup() skips it until
         * it is recorded): no other thread finds its database row meanwhile
         * and acts on a copy. Its pending slot is reserved meanwhile.
         */
        if (r->state == REQ_PENDING) {
                if (r->session_id)
                        c->session->n_pending++;
                else
                        uid_count(c->peer.uid)->pending++;
        }
        r->id = B.next_id++;
        r->recording = true;
        if (active_add(r) < 0) {
                if (r->state == REQ_PENDING)
                        pending_release(r);
                pthread_mutex_unlock(&B.lock);
                return -ENOMEM;
        }
        pthread_mutex_unlock(&B.lock);
        {
                /* submitted (what, by whom, the requester's words), decided, and for an
                 * allowed request: executing */
                _cleanup_(json_decrefp) json_t *sub = json_pack(
                        "{s:s?, s:s, s:s, s:o, s:s, s:I, s:s, s:I}", "why", r->why, "cwd", r->cwd,
                        "run_as", r->run_as, "command", json_from_strv(r->command), "digest",
                        r->digest, "uid", (json_int_t)r->requester_uid, "user", r->requester_name,
                        "pid", (json_int_t)r->requester_pid);
                _cleanup_(json_decrefp) json_t *dec = json_pack(
                        "{s:s, s:s, s:i, s:s}", "decision", policy_action_to_string(r->action),
                        "rules", r->reason, "approvers_needed", (int)r->approvers_needed,
                        "policy_sha256", r->policy_digest);
                _cleanup_(json_decrefp) json_t *start = json_pack("{s:s}", "from", "submitted");

                /*
                 * These transitions are decided together, before any of them takes
                 * effect: one batch, on disk with one sync before the command runs
                 * and before the client (or anyone) hears of it.
                 */
                const char *events[4] = { AUDIT_EVENT_REQUEST_SUBMITTED };
                json_t *details[4] = { sub };
                size_t n = 1;
                uint64_t ticket = 0;

                if (planned) {
                        events[n] = AUDIT_EVENT_REQUEST_PLANNED;
                        details[n++] = planned;
                }
                events[n] = AUDIT_EVENT_REQUEST_DECIDED;
                details[n++] = dec;
                details[n] = start;
                k = sub && dec && start ? 0 : -ENOMEM;
                if (k >= 0 && r->state == REQ_DENIED) {
                        json_object_set_new(start, "by", json_string("policy"));
                        json_object_set_new(start, "why", json_string(r->reason));
                        events[n++] = AUDIT_EVENT_REQUEST_DENIED;
                } else if (k >= 0 && r->state == REQ_EXECUTING)
                        events[n++] = AUDIT_EVENT_EXEC_START;
                if (k >= 0)
                        k = audit_transitions_begin(n, events, r, details, &ticket);
                /*
                 * The database commits while the audit batch syncs (the two syncs
                 * overlap); nothing is acted on until both are durable.
                 */
                if (k >= 0) {
                        int db, au;

                        if (r->state == REQ_PENDING) {
                                /*
                                 * A pending row outlives a crash and can be
                                 * approved after a restart: it may exist only
                                 * once the log holds its submission. (An
                                 * executing row found at restart is marked
                                 * interrupted and never runs, so that path
                                 * keeps the overlap.)
                                 */
                                au = audit_transitions_end(ticket, r);
                                db = au >= 0 ? state_insert_request(B.state, r) : -ECANCELED;
                        } else {
                                db = state_insert_request(B.state, r);
                                au = audit_transitions_end(ticket, r);
                        }

                        if (au < 0 && db >= 0 && state_delete_request(B.state, r->id) < 0)
                                /* nothing ran; a restart shows what the database kept */
                                log_error("request %llu is in the database but not in the audit "
                                          "log, and could not be removed from the database",
                                          (unsigned long long)r->id);
                        if (au >= 0 && db < 0) {
                                /* on record as submitted: close it there too (best effort) */
                                _cleanup_(json_decrefp) json_t *why =
                                        json_pack("{s:s, s:s}", "by", "broker", "why",
                                                  "the database refused it");

                                (void)audit_transition(AUDIT_EVENT_REQUEST_DENIED, r, why);
                        }
                        k = au < 0 ? au : db;
                }
        }
        pthread_mutex_lock(&B.lock);
        r->recording = false;
        if (k < 0) {
                if (r->state == REQ_PENDING)
                        pending_release(r);
                active_remove(r);
                pthread_mutex_unlock(&B.lock);
                return reply_error(c, "audit-failed",
                                   "the broker could not record the request (%s), so it did not "
                                   "act on it — see the broker's log",
                                   strerror(-k));
        }
        if (req_state_is_final(r->state))
                active_remove(r);
        /* first reply: the request as recorded (the client learns its id) */
        {
                json_t *j = req_json_for(c, r);
                bool run_here = r->state == REQ_EXECUTING;

                pthread_mutex_unlock(&B.lock);
                k = send_json(c->fd, json_pack("{s:s, s:o}", "type", "request", "request", j));
                if (run_here) {
                        /*
                         * An allowed request runs on this thread: the requester
                         * waits for it here anyway, and a thread started for it
                         * would only cost time. Its output streams as it comes; it
                         * runs to its end whatever the requester does.
                         */
                        ExecRun x = { .r = req_ref(r), .stream_fd = k < 0 ? -EBADF : c->fd };

                        execute(&x);
                        if (k < 0 || x.stream_broken)
                                return k < 0 ? k : -EPIPE;
                        pthread_mutex_lock(&B.lock);
                        return wait_and_stream_from(c, r, now + q->wait_ms * 1000, x.sent);
                }
                if (k < 0)
                        return k;
        }
        pthread_mutex_lock(&B.lock);
        return wait_and_stream(c, r, now + q->wait_ms * 1000);
}

static int handle_wait_or_show(Conn *c, const ProtoRequest *q)
{
        _cleanup_(req_unrefp) Req *r = NULL;
        int k;

        pthread_mutex_lock(&B.lock);
        k = lookup(q->id, &r);
        if (k < 0 || !may_see(c, r)) {
                pthread_mutex_unlock(&B.lock);
                if (k < 0 && k != -ENOENT)
                        return reply_error(c, "internal", "cannot read request %llu: %s",
                                           (unsigned long long)q->id, strerror(-k));
                return reply_error(c, "not-found",
                                   "no request %llu that you may see — 'airlock requests --all' "
                                   "lists yours",
                                   (unsigned long long)q->id);
        }
        if (q->type == PROTO_REQ_SHOW) {
                json_t *j = req_json_for(c, r);

                pthread_mutex_unlock(&B.lock);
                return send_json(c->fd, json_pack("{s:s, s:o}", "type", "request", "request", j));
        }
        if (r->active)
                return wait_and_stream(c, r, now_realtime_usec() + q->wait_ms * 1000);
        pthread_mutex_unlock(&B.lock);
        return stream_stored(c, r);
}

static int handle_list(Conn *c, const ProtoRequest *q)
{
        _cleanup_free_ uint64_t *ids = NULL;
        json_t *list;
        size_t n = 0;
        int k;

        list = json_array();
        if (!list)
                return -ENOMEM;
        pthread_mutex_lock(&B.lock);
        k = state_list_requests(B.state, q->all, MAX_LIST, &ids, &n);
        for (size_t i = 0; k >= 0 && i < n; i++) {
                _cleanup_(req_unrefp) Req *r = NULL;

                if (lookup(ids[i], &r) < 0)
                        continue;
                if (may_see(c, r))
                        json_array_append_new(list, req_to_json_brief(r));
        }
        pthread_mutex_unlock(&B.lock);
        if (k < 0) {
                json_decref(list);
                return reply_error(c, "internal", "cannot list requests: %s", strerror(-k));
        }
        return send_json(c->fd, json_pack("{s:s, s:o}", "type", "requests", "requests", list));
}

static bool is_digest(const char *s)
{
        size_t n = 0;

        for (; s && s[n]; n++)
                if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
                        return false;
        return n == 64;
}

/*
 * Any local user may connect to the admin socket and try verdicts it will
 * be refused; each refusal recorded is a synced audit record. So each user
 * gets a burst of REFUSAL_BURST records, refilled at REFUSAL_PER_SEC; past
 * that the refusals still happen, and are counted instead of recorded. The
 * next record of that user carries the count (unrecorded_before), so the
 * log still says how many there were. Returns whether to record this one,
 * and in *ret_unrecorded the count to attach.
 */
#define REFUSAL_BURST   20.0
#define REFUSAL_PER_SEC 1.0

static bool refusal_recordable(uid_t uid, unsigned *ret_unrecorded)
{
        uint64_t now = now_monotonic_usec();
        bool ok = true;
        UidCount *u;

        *ret_unrecorded = 0;
        pthread_mutex_lock(&B.lock);
        u = uid_count(uid);
        if (u) {
                if (u->refusal_refill_usec == 0)
                        u->refusal_tokens = REFUSAL_BURST;
                else
                        u->refusal_tokens +=
                                (double)(now - u->refusal_refill_usec) / 1e6 * REFUSAL_PER_SEC;
                if (u->refusal_tokens > REFUSAL_BURST)
                        u->refusal_tokens = REFUSAL_BURST;
                u->refusal_refill_usec = now;
                if (u->refusal_tokens >= 1.0) {
                        u->refusal_tokens -= 1.0;
                        *ret_unrecorded = u->refusals_unrecorded;
                        u->refusals_unrecorded = 0;
                } else {
                        u->refusals_unrecorded++;
                        ok = false;
                }
        }
        pthread_mutex_unlock(&B.lock);
        return ok;
}

/*
 * Refuses an approval or denial: first the audit log gets who tried what on
 * which request and why it was refused (r: the request, NULL when the peer
 * may not see it or it does not exist), then the peer gets the error code
 * and message. Caller holds no lock. A refusal that cannot be recorded is
 * still a refusal: the failure goes to the broker's log.
 */
static int refuse_verdict(Conn *c, const ProtoRequest *q, const Req *r, const char *code,
                          const char *fmt, ...) _printf_(5, 6);
static int refuse_verdict(Conn *c, const ProtoRequest *q, const Req *r, const char *code,
                          const char *fmt, ...)
{
        bool approve = q->type == PROTO_REQ_APPROVE;
        _cleanup_(json_decrefp) json_t *j = NULL, *d = NULL;
        _cleanup_free_ char *m = NULL;
        unsigned unrecorded;
        char id[32];
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        if (!refusal_recordable(c->peer.uid, &unrecorded))
                return proto_write_error(c->fd, code, m); /* counted, recorded with the next */
        snprintf(id, sizeof(id), "%llu", (unsigned long long)q->id);
        j = r ? record_for(r) : json_pack("{s:s}", "request", id);
        d = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I}", "verdict", approve ? "approve" : "deny",
                      "reason", code, "message", m, "uid", (json_int_t)c->peer.uid, "user",
                      c->peer.user, "pid", (json_int_t)c->peer.pid);
        if (d && approve && q->digest)
                json_object_set_new(d, "shown_sha256", json_string(q->digest));
        if (d && q->why)
                json_object_set_new(d, "why", json_string(q->why));
        if (d && unrecorded)
                json_object_set_new(d, "unrecorded_before", json_integer(unrecorded));
        if (!j || !d || json_object_set(j, "details", d) < 0 ||
            audit_sink_write(AUDIT_EVENT_APPROVAL_REFUSED, j) < 0)
                log_error("cannot record in the audit log that %s (uid %u, pid %d) was refused %s "
                          "request %llu (%s)",
                          c->peer.user, (unsigned)c->peer.uid, (int)c->peer.pid,
                          approve ? "approving" : "denying", (unsigned long long)q->id, code);
        log_warning("refused %s of request %llu by %s (uid %u, pid %d): %s",
                    approve ? "an approval" : "a denial", (unsigned long long)q->id, c->peer.user,
                    (unsigned)c->peer.uid, (int)c->peer.pid, m);
        return proto_write_error(c->fd, code, m);
}

/* The checks every verdict (approve or deny) passes, whatever the outcome. */
static int check_verdict_peer(Conn *c, const ProtoRequest *q)
{
        char why[512] = "";
        int k;

        k = peer_check_unconfined(&c->peer, why, sizeof(why));
        if (k < 0) {
                (void)refuse_verdict(c, q, NULL, "confined",
                                     "%s — approvals come only from a terminal outside every "
                                     "sandbox",
                                     why);
                return -EPERM;
        }
        return 0;
}

static int add_verdict(Req *r, Conn *c, const char *why, bool deny)
{
        Verdict v = { .uid = c->peer.uid, .deny = deny, .at_usec = now_realtime_usec() };
        Verdict *n;

        v.user = strdup(c->peer.user);
        v.why = why ? strdup(why) : NULL;
        n = realloc(r->verdicts, sizeof(Verdict) * (r->n_verdicts + 1));
        if (!v.user || (why && !v.why) || !n) {
                free(v.user);
                free(v.why);
                if (n)
                        r->verdicts = n;
                return -ENOMEM;
        }
        r->verdicts = n;
        r->verdicts[r->n_verdicts++] = v;
        return 0;
}

static int expire_if_due(Req *r, uint64_t now)
{
        if (r->state == REQ_PENDING && !r->recording && now >= r->expires_usec)
                return transition(r, REQ_EXPIRED, "nobody approved it before it expired", NULL);
        return 0;
}

static int handle_verdict(Conn *c, const ProtoRequest *q)
{
        _cleanup_(req_unrefp) Req *r = NULL;
        bool approve = q->type == PROTO_REQ_APPROVE;
        _cleanup_(json_decrefp) json_t *ex = NULL;
        bool approver, requester;
        int k;

        if (check_verdict_peer(c, q) < 0)
                return 0;
        pthread_mutex_lock(&B.lock);
        k = lookup(q->id, &r);
        if (k < 0 || !may_see(c, r)) {
                pthread_mutex_unlock(&B.lock);
                return refuse_verdict(c, q, NULL, "not-found",
                                      "no request %llu — 'airlock requests' lists them",
                                      (unsigned long long)q->id);
        }
        approver = conn_is_approver(c);
        requester = r->session_id ? false : r->requester_uid == c->peer.uid;
        if (approve && !approver) {
                pthread_mutex_unlock(&B.lock);
                return refuse_verdict(c, q, r, "not-approver",
                                      "%s (uid %u) is not an approver — the policy's approvers: "
                                      "section lists who may approve",
                                      c->peer.user, (unsigned)c->peer.uid);
        }
        if (!approve && !approver && !requester &&
            !(r->session_id && r->session_starter_uid == c->peer.uid)) {
                pthread_mutex_unlock(&B.lock);
                return refuse_verdict(c, q, r, "not-approver",
                                      "%s (uid %u) may deny only requests it made — ask an "
                                      "approver",
                                      c->peer.user, (unsigned)c->peer.uid);
        }
        (void)expire_if_due(r, now_realtime_usec());
        if (r->state != REQ_PENDING) {
                ReqState st = r->state;

                pthread_mutex_unlock(&B.lock);
                return refuse_verdict(c, q, r, "not-pending",
                                      "request %llu is %s, not pending — nothing to %s",
                                      (unsigned long long)r->id, req_state_to_string(st),
                                      approve ? "approve" : "deny");
        }
        if (approve && requester) {
                pthread_mutex_unlock(&B.lock);
                return refuse_verdict(c, q, r, "requester-cannot-approve",
                                      "%s asked for request %llu and cannot approve it — another "
                                      "approver must",
                                      c->peer.user, (unsigned long long)r->id);
        }
        for (size_t i = 0; approve && i < r->n_verdicts; i++)
                if (r->verdicts[i].uid == c->peer.uid) {
                        unsigned needed = r->approvers_needed;

                        pthread_mutex_unlock(&B.lock);
                        return refuse_verdict(c, q, r, "already-approved",
                                              "%s already approved request %llu — it needs %u "
                                              "distinct approvers",
                                              c->peer.user, (unsigned long long)r->id, needed);
                }
        if (approve && !streq(q->digest, r->digest)) {
                char mine[13];

                memcpy(mine, r->digest, 12);
                mine[12] = '\0';
                pthread_mutex_unlock(&B.lock);
                if (!is_digest(q->digest))
                        return refuse_verdict(c, q, r, "digest-mismatch",
                                              "request %llu is not what you were shown (the "
                                              "digest you sent is not a SHA-256) — run 'airlock "
                                              "show %llu' and approve again",
                                              (unsigned long long)r->id, (unsigned long long)r->id);
                return refuse_verdict(c, q, r, "digest-mismatch",
                                      "request %llu is not what you were shown (digest %s…, "
                                      "yours %.12s…) — run 'airlock show %llu' and approve again",
                                      (unsigned long long)r->id, mine, q->digest,
                                      (unsigned long long)r->id);
        }
        if (approve && !streq(r->policy_digest, B.policy->digest)) {
                _cleanup_(json_decrefp) json_t *by = json_pack("{s:s}", "by", "policy-reload");

                k = transition(r, REQ_DENIED,
                               "the policy changed after it was requested; it must be asked "
                               "again",
                               by);
                pthread_mutex_unlock(&B.lock);
                return reply_error(c, "policy-changed",
                                   "the policy was reloaded after request %llu was made, so it "
                                   "was denied — the requester must ask again",
                                   (unsigned long long)q->id);
        }

        ex = approve ? json_pack("{s:I, s:s, s:I, s:s?, s:s}", "approver_uid",
                                 (json_int_t)c->peer.uid, "approver_name", c->peer.user, "pid",
                                 (json_int_t)c->peer.pid, "why", q->why, "shown_sha256", q->digest)
                     : json_pack("{s:s, s:I, s:s, s:I, s:s?}", "by", "approver", "approver_uid",
                                 (json_int_t)c->peer.uid, "approver_name", c->peer.user, "pid",
                                 (json_int_t)c->peer.pid, "why", q->why);
        if (!ex || add_verdict(r, c, q->why, !approve) < 0) {
                pthread_mutex_unlock(&B.lock);
                return -ENOMEM;
        }
        k = state_begin(B.state);
        if (k >= 0 && approve)
                k = audit_transition(AUDIT_EVENT_REQUEST_APPROVED, r, ex);
        if (k >= 0)
                k = state_insert_verdict(B.state, r->id, &r->verdicts[r->n_verdicts - 1]);
        if (k >= 0 && !approve)
                k = transition(r, REQ_DENIED, NULL, ex);
        else if (k >= 0 && req_count_approvals(r) >= r->approvers_needed)
                k = transition(r, REQ_APPROVED, NULL, NULL);
        if (k >= 0)
                k = state_commit(B.state);
        if (k < 0) {
                state_rollback(B.state);
                r->n_verdicts--;
                free(r->verdicts[r->n_verdicts].user);
                free(r->verdicts[r->n_verdicts].why);
                pthread_mutex_unlock(&B.lock);
                return reply_error(c, "audit-failed",
                                   "the verdict could not be recorded (%s), so it was not taken "
                                   "— see the broker's log",
                                   strerror(-k));
        }
        if (r->state == REQ_APPROVED)
                (void)start_executor(r);
        {
                json_t *j = req_json_for(c, r);

                pthread_mutex_unlock(&B.lock);
                return send_json(c->fd, json_pack("{s:s, s:o}", "type", "request", "request", j));
        }
}

static bool name_is_clean(const char *s)
{
        if (isempty(s))
                return false;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < 0x21 || *p == 0x7f || *p == '/' || *p == '\\')
                        return false;
        return true;
}

static json_t *session_record(const Session *s)
{
        char sid[32];

        snprintf(sid, sizeof(sid), "%llu", (unsigned long long)s->id);
        /*
         * The agent's uid is known only once it connects (SO_PEERCRED on its
         * session socket): each request record carries it; here it is null.
         */
        return json_pack("{s:{s:s, s:s, s:n, s:s}}", "agent", "name", s->agent, "session", sid,
                         "uid", "started_by", s->starter_name);
}

static void session_close(Session *s, const char *why)
{
        _cleanup_(json_decrefp) json_t *j = NULL;

        if (s->ended)
                return;
        j = session_record(s);
        if (j)
                json_object_set_new(j, "details", json_pack("{s:s}", "why", why));
        /* ending a session takes nothing away from the record: log failure, end it anyway */
        if (!j || audit_sink_write(AUDIT_EVENT_SESSION_END, j) < 0)
                log_error("cannot record the end of session %llu in the audit log",
                          (unsigned long long)s->id);
        (void)state_end_session(B.state, s->id, now_realtime_usec());
        s->ended = true;
        s->ended_usec = now_realtime_usec();
        if (s->listen_fd >= 0) {
                (void)epoll_ctl(B.epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL);
                s->listen_fd = safe_close(s->listen_fd);
        }
        if (s->socket_path)
                (void)unlink(s->socket_path);
        for (size_t i = 0; i < B.n_sessions; i++)
                if (B.sessions[i] == s) {
                        B.sessions[i] = B.sessions[--B.n_sessions];
                        session_unref(s);
                        break;
                }
        {
                UidCount *u = uid_count(s->starter_uid);

                if (u && u->sessions > 0)
                        u->sessions--;
        }
}

static int bind_listen(const char *path, mode_t mode, int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void)unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        /*
         * Who may connect is decided per request from SO_PEERCRED, not by the
         * file mode: the mode only has to let the intended peers reach it.
         */
        if (chmod(path, mode) < 0 || listen(fd, 256) < 0) {
                int k = -errno;

                (void)unlink(path);
                return k;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int handle_open_session(Conn *c, const ProtoRequest *q)
{
        _cleanup_(json_decrefp) json_t *j = NULL;
        char why[512];
        Session *s, **n;
        UidCount *u;
        int k;

        /*
         * A session confers an agent identity; only an unconfined human may
         * create one (no sandbox can reach this socket anyway; this is the
         * second wall).
         */
        if (peer_check_unconfined(&c->peer, why, sizeof(why)) < 0)
                return reply_error(c, "confined", "%s — sessions are opened from outside a sandbox",
                                   why);
        if (!name_is_clean(q->agent) || !name_is_clean(q->profile))
                return reply_error(c, "bad-request",
                                   "agent and profile names must be non-empty, without spaces, "
                                   "control characters or '/'");
        if (!path_is_clean_absolute(q->workspace))
                return reply_error(c, "bad-request",
                                   "the workspace must be an absolute path without '..'");
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->refs = 1;
        s->listen_fd = -EBADF;
        s->agent = strdup(q->agent);
        s->workspace = strdup(q->workspace);
        s->profile = strdup(q->profile);
        s->starter_name = strdup(c->peer.user);
        s->starter_uid = c->peer.uid;
        s->starter_pid = c->peer.pid;
        s->started_usec = now_realtime_usec();
        if (!s->agent || !s->workspace || !s->profile || !s->starter_name) {
                session_unref(s);
                return -ENOMEM;
        }

        pthread_mutex_lock(&B.lock);
        if (!policy_find_profile(B.policy, q->profile)) {
                pthread_mutex_unlock(&B.lock);
                session_unref(s);
                return reply_error(c, "unknown-profile",
                                   "the policy has no profile '%s' — see 'airlock policy check'",
                                   q->profile);
        }
        u = uid_count(c->peer.uid);
        if (!u || u->sessions >= MAX_SESSIONS_PER_UID) {
                pthread_mutex_unlock(&B.lock);
                session_unref(s);
                return reply_error(c, "limit", "too many open sessions for uid %u — end some",
                                   (unsigned)c->peer.uid);
        }
        k = state_begin(B.state);
        if (k >= 0)
                k = state_insert_session(B.state, s);
        if (k >= 0) {
                uint8_t rnd[8];
                char hex[17];

                /* an unguessable name on top of the owner-only mode */
                randombytes_buf(rnd, sizeof(rnd));
                hex_encode(rnd, sizeof(rnd), hex);
                if (asprintf(&s->socket_path, "%s/%llu-%s.sock", B.sessions_dir,
                             (unsigned long long)s->id, hex) < 0)
                        k = -ENOMEM;
        }
        if (k >= 0) {
                j = session_record(s);
                if (j)
                        json_object_set_new(j, "details",
                                            json_pack("{s:s, s:s, s:I, s:s}", "profile", s->profile,
                                                      "workspace", s->workspace, "pid",
                                                      (json_int_t)s->starter_pid, "socket",
                                                      s->socket_path));
                k = j ? audit_sink_write(AUDIT_EVENT_SESSION_START, j) : -ENOMEM;
        }
        /*
         * The session socket is the agent's identity, so only the agent's uid
         * may connect: it is owned by that uid with mode 0600 (root, the
         * broker's own side, can always connect). The directory is 0711 (no
         * listing, names unguessable) so that the sandbox's setup, which has
         * no privilege over root-owned host files, can reach it to bind-mount
         * it. The agent's uid is derived here, never taken from the message:
         * a sandbox started by root runs the agent as AIRLOCK_AGENT_USER, one
         * started by another user runs it as that user.
         */
        if (k >= 0)
                k = bind_listen(s->socket_path, 0600, &s->listen_fd);
        if (k >= 0) {
                uid_t au = c->peer.uid;
                gid_t ag = c->peer.gid;

                if (au == 0) {
                        struct passwd pw, *res = NULL;
                        char buf[4096];

                        if (getpwnam_r(AIRLOCK_AGENT_USER, &pw, buf, sizeof(buf), &res) == 0 &&
                            res) {
                                au = res->pw_uid;
                                ag = res->pw_gid;
                        } else
                                au = 0, ag = 0; /* no agent user yet: root-only until it exists */
                }
                if (chown(s->socket_path, au, ag) < 0)
                        k = -errno;
        }
        if (k >= 0) {
                struct epoll_event ev = { .events = EPOLLIN, .data.u64 = s->id };

                if (epoll_ctl(B.epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &ev) < 0)
                        k = -errno;
        }
        n = k >= 0 ? realloc(B.sessions, sizeof(Session *) * (B.n_sessions + 1)) : NULL;
        if (k >= 0 && !n)
                k = -ENOMEM;
        if (k >= 0)
                k = state_commit(B.state);
        if (k < 0) {
                state_rollback(B.state);
                if (s->listen_fd >= 0) {
                        (void)epoll_ctl(B.epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL);
                        (void)unlink(s->socket_path);
                }
                if (n)
                        B.sessions = n;
                pthread_mutex_unlock(&B.lock);
                session_unref(s);
                return reply_error(c, "internal", "cannot open a session: %s", strerror(-k));
        }
        B.sessions = n;
        B.sessions[B.n_sessions++] = s;
        u->sessions++;
        /* this connection now only holds the session: it accepts close-session, nothing else */
        c->channel = PROTO_CHANNEL_HOLDER;
        c->session = s;
        s->refs++;
        if (c->counted_admin) {
                if (u->admin_conns > 0)
                        u->admin_conns--;
                c->counted_admin = false;
        }
        pthread_mutex_unlock(&B.lock);
        return send_json(c->fd, json_pack("{s:s, s:I, s:s}", "type", "session", "session",
                                          (json_int_t)s->id, "socket", s->socket_path));
}

static int dispatch(Conn *c, json_t *msg)
{
        ProtoRequest q;
        char err[256];
        int k;

        k = proto_decode_request(c->channel, msg, &q, err, sizeof(err));
        if (k < 0)
                return proto_write_error(c->fd, k == -EOPNOTSUPP ? "unknown-request" : "malformed",
                                         err);
        switch (q.type) {
        case PROTO_REQ_EXEC:
                k = handle_exec(c, &q);
                break;
        case PROTO_REQ_WAIT:
        case PROTO_REQ_SHOW:
                k = handle_wait_or_show(c, &q);
                break;
        case PROTO_REQ_LIST:
                k = handle_list(c, &q);
                break;
        case PROTO_REQ_APPROVE:
        case PROTO_REQ_DENY:
                k = handle_verdict(c, &q);
                break;
        case PROTO_REQ_OPEN_SESSION:
                k = handle_open_session(c, &q);
                break;
        case PROTO_REQ_CLOSE_SESSION:
                pthread_mutex_lock(&B.lock);
                session_close(c->session, "closed by airlock run");
                pthread_mutex_unlock(&B.lock);
                k = send_json(c->fd, json_pack("{s:s}", "type", "ok"));
                break;
        case PROTO_REQ_INVALID:
        case _PROTO_REQ_MAX:
        default:
                k = proto_write_error(c->fd, "internal", "unhandled request");
                break;
        }
        if (k == -ENOMEM)
                k = proto_write_error(c->fd, "internal", "the broker is out of memory");
        proto_request_done(&q);
        return k;
}

/*
 * After refusing an oversized message: stop writing, then discard a bounded
 * amount of what the client is still sending, so that closing does not reset
 * the connection before the client has read the error.
 */
static void drain_and_close_write(int fd)
{
        struct timeval tv = { .tv_sec = 1 };
        char buf[16384];
        size_t total = 0;
        ssize_t n;

        (void)shutdown(fd, SHUT_WR);
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while (total < PROTO_MAX_MESSAGE && (n = read(fd, buf, sizeof(buf))) > 0)
                total += (size_t)n;
}

static void *conn_thread(void *userdata)
{
        Conn *c = userdata;

        for (;;) {
                _cleanup_(json_decrefp) json_t *msg = NULL;
                int k = proto_read(c->fd, &msg);

                if (k == 0 || k == -ECONNRESET)
                        break;
                if (k == -EMSGSIZE) {
                        /* the stream cannot be resynchronised without reading it: reply, close */
                        (void)proto_write_error(c->fd, "too-large",
                                                "message larger than 1 MiB — the connection is "
                                                "closed; nothing was done");
                        drain_and_close_write(c->fd);
                        break;
                }
                if (k == -EBADMSG) {
                        if (proto_write_error(c->fd, "malformed",
                                              "the message is not a JSON object — nothing was "
                                              "done") < 0)
                                break;
                        continue;
                }
                if (k < 0)
                        break;
                if (dispatch(c, msg) < 0)
                        break;
        }

        pthread_mutex_lock(&B.lock);
        if (c->channel == PROTO_CHANNEL_HOLDER && c->session)
                session_close(c->session, "the airlock run that opened it ended");
        if (c->channel == PROTO_CHANNEL_SESSION && c->session && c->session->n_conns > 0)
                c->session->n_conns--;
        if (c->counted_admin) {
                UidCount *u = uid_count(c->peer.uid);

                if (u && u->admin_conns > 0)
                        u->admin_conns--;
        }
        B.n_connections--;
        session_unref(c->session);
        pthread_mutex_unlock(&B.lock);
        safe_close(c->fd);
        peer_done(&c->peer);
        free(c);
        return NULL;
}

static void accept_one(int listen_fd, uint64_t session_id)
{
        _cleanup_close_ int fd = -EBADF;
        pthread_attr_t a;
        pthread_t t;
        Conn *c;
        const char *refuse = NULL;

        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        c = calloc(1, sizeof(*c));
        if (!c)
                return;
        c->fd = -EBADF;
        if (peer_get(fd, &c->peer) < 0) {
                free(c);
                return;
        }
        {
                /* replies are written with blocking sends; a reader that stops reading is cut off
                 */
                struct timeval tv = { .tv_sec = 30 };

                (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        pthread_mutex_lock(&B.lock);
        if (B.n_connections >= MAX_CONNECTIONS_TOTAL)
                refuse = "the broker has too many connections — try again later";
        else if (session_id == EPOLL_ADMIN) {
                UidCount *u = uid_count(c->peer.uid);

                if (!u || u->admin_conns >= MAX_ADMIN_CONN_PER_UID)
                        refuse = "too many connections from your uid — close some";
                else {
                        u->admin_conns++;
                        c->counted_admin = true;
                        c->channel = PROTO_CHANNEL_ADMIN;
                }
        } else {
                Session *s = session_find(session_id);

                if (!s || s->ended)
                        refuse = "this session has ended — start a new 'airlock run'";
                else if (s->n_conns >= MAX_CONN_PER_SESSION)
                        refuse = "too many connections on this session — close some";
                else {
                        s->n_conns++;
                        s->refs++;
                        c->session = s;
                        c->channel = PROTO_CHANNEL_SESSION;
                }
        }
        if (!refuse)
                B.n_connections++;
        pthread_mutex_unlock(&B.lock);
        if (refuse) {
                (void)proto_write_error(fd, "limit", refuse);
                peer_done(&c->peer);
                free(c);
                return;
        }
        c->fd = TAKE_FD(fd);
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 512 * 1024);
        if (pthread_create(&t, &a, conn_thread, c) != 0) {
                pthread_mutex_lock(&B.lock);
                B.n_connections--;
                if (c->counted_admin)
                        uid_count(c->peer.uid)->admin_conns--;
                if (c->session) {
                        c->session->n_conns--;
                        session_unref(c->session);
                }
                pthread_mutex_unlock(&B.lock);
                (void)proto_write_error(c->fd, "limit", "the broker cannot start a thread");
                safe_close(c->fd);
                peer_done(&c->peer);
                free(c);
        }
        pthread_attr_destroy(&a);
}

/* ---- startup, signals, expiry ---- */

/* Loads the policy; on failure logs why and leaves the reason in err. */
static int load_policy(Policy **ret, char *err, size_t err_size)
{
        PolicyError e = {};
        int k;

        k = B.policy_standard ? policy_load_standard(B.policy_path, ret, &e)
                              : policy_load_file(B.policy_path, ret, &e);
        if (k < 0) {
                policy_error_format(&e, err, err_size);
                log_error("invalid policy %s: %s — fix it ('airlock policy check %s')",
                          B.policy_path, err, B.policy_path);
        }
        return k;
}

static void reload_policy(void)
{
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        PolicyPin *pin, *old_pin;
        char err[1024] = "";

        if (load_policy(&p, err, sizeof(err)) < 0) {
                _cleanup_free_ char *esc = escape_for_terminal(err);

                /* the refusal is a decision too: the audit log says which policy stays */
                pthread_mutex_lock(&B.lock);
                j = json_pack("{s:{s:s, s:s, s:s}}", "details", "path", B.policy_path, "error",
                              esc ? esc : "?", "kept_sha256", B.policy->digest);
                if (!j || audit_sink_write(AUDIT_EVENT_POLICY_REJECTED, j) < 0)
                        log_error("cannot record the rejected policy reload in the audit log");
                pthread_mutex_unlock(&B.lock);
                log_error("kept the previous policy (version %.12s)", B.policy->digest);
                return;
        }
        pin = calloc(1, sizeof(*pin));
        if (!pin) {
                log_error("out of memory: kept the previous policy");
                return;
        }
        pthread_mutex_lock(&B.lock);
        j = json_pack("{s:{s:s, s:s, s:s}}", "details", "path", B.policy_path, "sha256", p->digest,
                      "previous_sha256", B.policy->digest);
        if (audit_sink_write(AUDIT_EVENT_POLICY_LOADED, j) < 0) {
                pthread_mutex_unlock(&B.lock);
                free(pin);
                log_error("cannot record the policy reload in the audit log; kept the previous "
                          "policy");
                return;
        }
        old_pin = B.pin;
        pin->policy = TAKE_PTR(p);
        pin->refs = 1;
        B.pin = pin;
        B.policy = pin->policy;
        policy_unpin(old_pin); /* freed now, or when the last plan using it is done */
        pthread_mutex_unlock(&B.lock);
        log_info("reloaded the policy %s (version %.12s)", B.policy_path, B.policy->digest);
}

static void expire_due(void)
{
        uint64_t now = now_realtime_usec();

        pthread_mutex_lock(&B.lock);
        for (size_t i = 0; i < B.n_active;) {
                Req *r = B.active[i];
                size_t before = B.n_active;

                (void)expire_if_due(r, now);
                if (B.n_active == before)
                        i++;
        }
        pthread_mutex_unlock(&B.lock);
}

static int recover(void)
{
        _cleanup_free_ uint64_t *ids = NULL;
        size_t n = 0;
        int k;

        k = state_next_request_id(B.state, &B.next_id);
        if (k < 0)
                return k;
        k = state_recover(B.state, now_realtime_usec(), &ids, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(req_unrefp) Req *r = NULL;
                bool ran;

                k = state_load_request(B.state, ids[i], &r);
                if (k < 0)
                        return k;
                ran = r->state == REQ_EXECUTING;
                k = transition(r, REQ_INTERRUPTED,
                               ran ? "the broker stopped while it ran; it was not run again — "
                                     "check its effect and ask again if needed"
                                   : "the broker stopped before it ran; nothing ran — ask again",
                               NULL);
                if (k < 0)
                        return k;
                log_warning("request %llu was %s when the broker stopped: marked interrupted",
                            (unsigned long long)r->id, ran ? "executing" : "approved");
        }
        /* pending requests stay pending: load them back into memory */
        free(ids);
        ids = NULL;
        k = state_list_requests(B.state, false, SIZE_MAX >> 1, &ids, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(req_unrefp) Req *r = NULL;

                k = state_load_request(B.state, ids[i], &r);
                if (k < 0)
                        return k;
                if (r->state != REQ_PENDING)
                        continue;
                k = active_add(r);
                if (k < 0)
                        return k;
                if (!r->session_id)
                        uid_count(r->requester_uid)->pending++;
        }
        return 0;
}

static int mkdir_mode(const char *path, mode_t mode)
{
        struct stat st;

        if (mkdir(path, mode) < 0 && errno != EEXIST)
                return -errno;
        if (lstat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (st.st_uid != geteuid())
                return -EPERM;
        if (chmod(path, mode) < 0)
                return -errno;
        return 0;
}

static void clean_stale_sockets(void)
{
        DIR *d = opendir(B.sessions_dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

static const char usage[] =
        "Usage: airlockd [--config FILE] [--state-dir DIR] [--runtime-dir DIR]\n"
        "                [--exec-timeout SEC] [--plan-wait SEC] [--debug]\n\n"
        "The airlock broker: takes requests from sandboxes (session sockets) and humans\n"
        "(the admin socket), decides by policy, waits for approvals, runs approved\n"
        "commands and records every step. Runs in the foreground; see airlockd(8).\n\n"
        "  --config FILE       the policy (default " AIRLOCK_POLICY_PATH ")\n"
        "  --state-dir DIR     the database and outputs (default " AIRLOCK_STATE_DIR ")\n"
        "  --runtime-dir DIR   the sockets (default " AIRLOCK_RUNTIME_DIR ")\n"
        "  --exec-timeout SEC  kill a command after SEC seconds (default 600)\n"
        "  --plan-wait SEC     a request waits at most SEC seconds for a free plan slot\n"
        "                      (default 300), then gets a limit error\n";

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "state-dir", required_argument, NULL, 's' },
                { "runtime-dir", required_argument, NULL, 'r' },
                { "exec-timeout", required_argument, NULL, 't' },
                { "plan-wait", required_argument, NULL, 'p' },
                { "debug", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        const char *state_dir = AIRLOCK_STATE_DIR, *runtime_dir = AIRLOCK_RUNTIME_DIR;
        uint64_t timeout = DEFAULT_EXEC_TIMEOUT_SEC;
        char err[512];
        _cleanup_close_ int sfd = -EBADF;
        sigset_t mask;
        int o, k;

        /* airlockd's own helper: plans one request for a connection thread (isolated.c) */
        if (argc == 2 && streq(argv[1], "--plan-helper")) {
                log_set_program("airlockd --plan-helper");
                return plan_helper_main();
        }
        log_set_program("airlockd");
        B.policy_path = AIRLOCK_POLICY_PATH;
        B.policy_standard = true;
        while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (o) {
                case 'c':
                        B.policy_path = optarg;
                        B.policy_standard = false;
                        break;
                case 's':
                        state_dir = optarg;
                        break;
                case 'r':
                        runtime_dir = optarg;
                        break;
                case 't':
                        if (parse_u64(optarg, 7 * 24 * 3600, &timeout) < 0 || timeout == 0) {
                                log_error("--exec-timeout: '%s' is not a number of seconds "
                                          "(1..604800) — e.g. --exec-timeout 600",
                                          optarg);
                                return 64;
                        }
                        break;
                case 'p': {
                        uint64_t w;
                        if (parse_u64(optarg, 24 * 3600, &w) < 0 || w == 0) {
                                log_error("--plan-wait: '%s' is not a number of seconds "
                                          "(1..86400) — e.g. --plan-wait 300",
                                          optarg);
                                return 64;
                        }
                        B.plan_wait_sec = (unsigned)w;
                        break;
                }
                case 'd':
                        log_set_level(LOG_LEVEL_DEBUG);
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                case 'V':
                        printf("airlockd %s\n", AIRLOCK_VERSION);
                        return 0;
                default:
                        fputs(usage, stderr);
                        return 64;
                }
        if (optind < argc) {
                log_error("unexpected argument '%s' — see 'airlockd --help'", argv[optind]);
                return 64;
        }
        B.exec_timeout_usec = timeout * 1000000;
        /* commands inherit it; the broker's own files get explicit modes */
        umask(0022);
        if (geteuid() != 0)
                log_warning("not running as root: commands run as root will fail");

        /* fail closed: no valid policy, no broker */
        if (load_policy(&B.policy, err, sizeof(err)) < 0)
                return 78; /* EX_CONFIG */
        B.pin = calloc(1, sizeof(*B.pin));
        if (!B.pin)
                return 70;
        *B.pin = (PolicyPin){ .policy = B.policy, .refs = 1 };
        if (sodium_init() < 0) {
                log_error("libsodium cannot initialise — is /dev/urandom readable?");
                return 71;
        }
        if (peer_init_reference() < 0) {
                log_error("cannot read this process's namespaces from /proc — is /proc mounted?");
                return 71;
        }
        B.state_dir = strdup(state_dir);
        B.runtime_dir = strdup(runtime_dir);
        if (!B.state_dir || !B.runtime_dir ||
            asprintf(&B.sessions_dir, "%s/sessions", runtime_dir) < 0 ||
            asprintf(&B.admin_path, "%s/admin.sock", runtime_dir) < 0)
                return 70;
        if ((k = mkdir_mode(state_dir, 0700)) < 0 || (k = mkdir_mode(runtime_dir, 0755)) < 0 ||
            (k = mkdir_mode(B.sessions_dir, 0711)) < 0) {
                log_error("cannot create %s or %s with the right owner and mode: %s — create them "
                          "as root or pick other directories (--state-dir, --runtime-dir)",
                          state_dir, runtime_dir, strerror(-k));
                return 73;
        }
        /* before any thread starts (the audit writer has one): they all inherit it */
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        k = audit_sink_open(state_dir, err, sizeof(err));
        if (k < 0) {
                log_error("%s — the broker does not run without its audit log", err);
                return 73;
        }
        k = state_open(state_dir, &B.state, err, sizeof(err));
        if (k < 0) {
                log_error("%s", err);
                return 73;
        }
        {
                _cleanup_(json_decrefp) json_t *j =
                        json_pack("{s:{s:s, s:i}}", "details", "version", AIRLOCK_VERSION, "pid",
                                  (int)getpid());
                _cleanup_(json_decrefp) json_t *pl =
                        json_pack("{s:{s:s, s:s}}", "details", "path", B.policy_path, "sha256",
                                  B.policy->digest);

                if (audit_sink_write(AUDIT_EVENT_BROKER_START, j) < 0 ||
                    audit_sink_write(AUDIT_EVENT_POLICY_LOADED, pl) < 0) {
                        log_error("cannot write the audit log in %s — the broker does not run "
                                  "without it",
                                  state_dir);
                        return 73;
                }
        }
        k = recover();
        if (k < 0) {
                log_error("cannot recover the state in %s: %s", state_dir, strerror(-k));
                return 73;
        }
        clean_stale_sockets();

        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        B.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (sfd < 0 || B.epoll_fd < 0)
                return 71;
        /*
         * The admin socket is open to every local user (0666): what each may
         * do is decided per request from SO_PEERCRED (approvers by policy,
         * everyone else only their own requests). Sandboxes never see it:
         * they get a fresh /run.
         */
        k = bind_listen(B.admin_path, 0666, &B.admin_fd);
        if (k < 0) {
                log_error("cannot listen on %s: %s — is another airlockd running?", B.admin_path,
                          strerror(-k));
                return 71;
        }
        {
                struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EPOLL_ADMIN };
                struct epoll_event sev = { .events = EPOLLIN, .data.u64 = EPOLL_SIGNAL };

                if (epoll_ctl(B.epoll_fd, EPOLL_CTL_ADD, B.admin_fd, &ev) < 0 ||
                    epoll_ctl(B.epoll_fd, EPOLL_CTL_ADD, sfd, &sev) < 0)
                        return 71;
        }
        log_info("listening on %s (policy %s, version %.12s)", B.admin_path, B.policy_path,
                 B.policy->digest);
        (void)sd_notify(0, "READY=1\nSTATUS=Accepting requests");

        for (;;) {
                struct epoll_event evs[32];
                int n = epoll_wait(B.epoll_fd, evs, ELEMENTSOF(evs), 1000);

                if (n < 0 && errno != EINTR) {
                        log_error("epoll_wait: %s", strerror(errno));
                        break;
                }
                for (int i = 0; i < n; i++) {
                        uint64_t id = evs[i].data.u64;

                        if (id == EPOLL_SIGNAL) {
                                struct signalfd_siginfo si;

                                while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                                        if (si.ssi_signo == SIGHUP) {
                                                (void)sd_notify(0, "RELOADING=1");
                                                reload_policy();
                                                (void)sd_notify(0, "READY=1");
                                        } else {
                                                log_info("stopping on signal %u", si.ssi_signo);
                                                (void)sd_notify(0, "STOPPING=1");
                                                (void)unlink(B.admin_path);
                                                {
                                                        _cleanup_(json_decrefp) json_t *j =
                                                                json_pack("{s:{s:s}}", "details",
                                                                          "reason", "signal");

                                                        (void)audit_sink_write(
                                                                AUDIT_EVENT_BROKER_STOP, j);
                                                }
                                                audit_sink_close();
                                                /* the state is durable; requests in flight
                                                 * become interrupted on the next start */
                                                _exit(0);
                                        }
                                }
                        } else if (id == EPOLL_ADMIN) {
                                accept_one(B.admin_fd, EPOLL_ADMIN);
                        } else {
                                int lfd = -EBADF;

                                pthread_mutex_lock(&B.lock);
                                {
                                        Session *s = session_find(id);

                                        /* a duplicate: the number cannot be
                                         * reused by another session's socket
                                         * while we accept on it */
                                        if (s && !s->ended)
                                                lfd = fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 3);
                                }
                                pthread_mutex_unlock(&B.lock);
                                if (lfd >= 0) {
                                        accept_one(lfd, id);
                                        safe_close(lfd);
                                }
                        }
                }
                expire_due();
        }
        return 70;
}
