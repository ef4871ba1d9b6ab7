/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "common/json.h"
#include "common/hash.h"
#include "common/util.h"

static const char *const state_names[_REQ_STATE_MAX] = {
        [REQ_PENDING] = "pending",     [REQ_APPROVED] = "approved",
        [REQ_EXECUTING] = "executing", [REQ_SUCCEEDED] = "succeeded",
        [REQ_FAILED] = "failed",       [REQ_DENIED] = "denied",
        [REQ_EXPIRED] = "expired",     [REQ_INTERRUPTED] = "interrupted",
};

const char *req_state_to_string(ReqState s)
{
        if ((unsigned)s >= _REQ_STATE_MAX)
                return "unknown";
        return state_names[s];
}

int req_state_from_string(const char *s, ReqState *ret)
{
        for (unsigned i = 0; i < _REQ_STATE_MAX; i++)
                if (streq(state_names[i], s)) {
                        *ret = (ReqState)i;
                        return 0;
                }
        return -EINVAL;
}

bool req_state_is_final(ReqState s)
{
        return s >= REQ_SUCCEEDED;
}

/* References are taken and dropped with and without the broker lock: atomic. */
Req *req_ref(Req *r)
{
        if (r)
                __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
        return r;
}

void req_unref(Req *r)
{
        if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) > 0)
                return;
        free(r->agent);
        free(r->session_workspace);
        free(r->session_profile);
        free(r->session_starter);
        free(r->requester_name);
        strv_free(r->argv);
        strv_free(r->env);
        strv_free(r->command);
        free(r->cwd);
        free(r->host);
        free(r->run_as);
        free(r->why);
        free(r->reason);
        free(r->detail);
        json_decref(r->plan);
        free(r->plan_error);
        json_decref(r->deviations);
        for (size_t i = 0; i < r->n_verdicts; i++) {
                free(r->verdicts[i].user);
                free(r->verdicts[i].why);
        }
        free(r->verdicts);
        for (size_t i = 0; i < r->n_chunks; i++)
                free(r->chunks[i]);
        free(r->chunks);
        pthread_cond_destroy(&r->cond);
        free(r);
}

size_t req_count_approvals(const Req *r)
{
        size_t n = 0;

        for (size_t i = 0; i < r->n_verdicts; i++)
                if (!r->verdicts[i].deny)
                        n++;
        return n;
}

int req_compute_digest(Req *r)
{
        _cleanup_free_ char *text = NULL;
        json_t *j;

        /*
         * Exactly what will run: the command (argv as given, and the full argv
         * the broker executes, connect prefix included), its environment,
         * directory, host and user, the policy version that judged it, and
         * its plan (what its dry run did), if it has one. An approval names
         * this digest; anything else needs a new approval.
         */
        j = json_pack("{s:o, s:o, s:o, s:s, s:s?, s:s, s:s, s:s*}", "argv", json_from_strv(r->argv),
                      "command", json_from_strv(r->command), "env", json_from_strv(r->env), "cwd",
                      r->cwd, "host", r->host, "run_as", r->run_as, "policy", r->policy_digest,
                      "plan", r->plan_digest[0] ? r->plan_digest : NULL);
        if (!j)
                return -ENOMEM;
        text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
        if (!text)
                return -ENOMEM;
        return sha256_hex(text, strlen(text), r->digest);
}

static json_t *to_json(const Req *r, bool with_plan)
{
        json_t *j, *v, *who;

        v = json_array();
        if (!v)
                return NULL;
        for (size_t i = 0; i < r->n_verdicts; i++)
                json_array_append_new(v, json_pack("{s:s, s:I, s:s, s:s?, s:I}", "verdict",
                                                   r->verdicts[i].deny ? "deny" : "approve", "uid",
                                                   (json_int_t)r->verdicts[i].uid, "user",
                                                   r->verdicts[i].user, "why", r->verdicts[i].why,
                                                   "at_usec", (json_int_t)r->verdicts[i].at_usec));
        if (r->session_id)
                who = json_pack("{s:s, s:I, s:s, s:I, s:s, s:s, s:s, s:I, s:I}", "kind", "agent",
                                "session", (json_int_t)r->session_id, "agent", r->agent,
                                "started_by_uid", (json_int_t)r->session_starter_uid, "started_by",
                                r->session_starter, "workspace", r->session_workspace, "profile",
                                r->session_profile, "started_usec",
                                (json_int_t)r->session_started_usec, "pid",
                                (json_int_t)r->requester_pid);
        else
                who = json_pack("{s:s, s:I, s:s, s:I}", "kind", "human", "uid",
                                (json_int_t)r->requester_uid, "user", r->requester_name, "pid",
                                (json_int_t)r->requester_pid);
        j = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:s, s:s?, s:s, s:s?, s:{s:s, s:i, s:s?}, "
                      "s:o, s:I, s:I, s:I, s:s, s:s, s:s?}",
                      "id", (json_int_t)r->id, "state", req_state_to_string(r->state), "requester",
                      who, "argv", json_from_strv(r->argv), "command", json_from_strv(r->command),
                      "env", json_from_strv(r->env), "cwd", r->cwd, "host", r->host, "run_as",
                      r->run_as, "why", r->why, "decision", "action",
                      policy_action_to_string(r->action), "approvers", (int)r->approvers_needed,
                      "reason", r->reason, "verdicts", v, "created_usec",
                      (json_int_t)r->created_usec, "expires_usec", (json_int_t)r->expires_usec,
                      "finished_usec", (json_int_t)r->finished_usec, "digest", r->digest,
                      "policy_digest", r->policy_digest, "detail", r->detail);
        if (!j)
                return NULL;
        if (r->exit_status >= 0)
                json_object_set_new(j, "exit_status", json_integer(r->exit_status));
        json_object_set_new(j, "approvals", json_integer((json_int_t)req_count_approvals(r)));
        if (r->truncated)
                json_object_set_new(j, "output_truncated", json_true());
        if (r->plan_digest[0])
                json_object_set_new(j, "plan_digest", json_string(r->plan_digest));
        if (r->plan && with_plan) {
                _cleanup_free_ char *text = json_dumps(r->plan, JSON_COMPACT);

                /* every reply fits one message: a plan too big to show is named, not sent */
                if (text && strlen(text) <= REQ_PLAN_SHOW_MAX)
                        json_object_set_new(j, "plan", json_incref(r->plan));
                else
                        json_object_set_new(j, "plan_omitted",
                                            json_pack("{s:I, s:I}", "bytes",
                                                      (json_int_t)(text ? strlen(text) : 0),
                                                      "files",
                                                      (json_int_t)json_array_size(
                                                              json_object_get(r->plan, "files"))));
        }
        if (r->plan_error)
                json_object_set_new(j, "plan_error", json_string(r->plan_error));
        if (r->deviations)
                json_object_set_new(j, "deviation_check", json_incref(r->deviations));
        return j;
}

json_t *req_to_json(const Req *r)
{
        return to_json(r, true);
}

/* Whether the request's dry run opened a secret. */
static bool plan_read_secret(const Req *r)
{
        const json_t *s = r->plan ? json_object_get(r->plan, "secrets") : NULL;

        return json_is_array(s) && json_array_size(s) > 0;
}

json_t *req_to_json_for_agent(const Req *r)
{
        json_t *j = to_json(r, true);

        if (!j || !plan_read_secret(r))
                return j;
        /*
         * The dry run ran as root and read a secret. Everything it did is the
         * command's choice and may carry the secret's bytes: file names and
         * sizes, link targets, addresses, its exit status, even the rule's
         * reason (it names the file written). The agent that asked learns
         * only that; approvers see the whole plan.
         */
        json_object_del(j, "plan");
        json_object_del(j, "plan_omitted");
        json_object_del(j, "deviation_check");
        json_object_set_new(j, "plan_withheld", json_true());
        json_object_set_new(json_object_get(j, "decision"), "reason",
                            json_string(r->action == POLICY_DENY
                                                ? "denied: its dry run reads a secret; what it did "
                                                  "is shown to approvers only"
                                                : "its dry run reads a secret; what it did is "
                                                  "shown to approvers only"));
        return j;
}

json_t *req_to_json_brief(const Req *r)
{
        return to_json(r, false);
}
