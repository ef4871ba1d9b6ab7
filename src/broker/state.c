/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "broker/state.h"
#include "common/json.h"
#include "common/util.h"

/*
 * One connection, one recursive mutex: every call holds it, and a
 * transaction holds it from state_begin() to state_commit() or
 * state_rollback(), so no other thread's statement can slip into it.
 */
#define STMT_CACHE_MAX 24

/*
 * Statements are prepared once and reused (reset after each use): parsing
 * the SQL again for every request cost more CPU than running it. Keyed by
 * the address of the SQL text, which is always a string literal here.
 */
typedef struct {
        const char *sql;
        sqlite3_stmt *st;
} CachedStmt;

struct State {
        sqlite3 *db;
        pthread_mutex_t mu;
        bool in_tx; /* only read or written with mu held */
        CachedStmt cache[STMT_CACHE_MAX];
        size_t n_cache;
};

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS sessions ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  agent TEXT NOT NULL, workspace TEXT NOT NULL, profile TEXT NOT NULL,"
        "  starter_uid INTEGER NOT NULL, starter_name TEXT NOT NULL, starter_pid INTEGER NOT NULL,"
        "  socket TEXT NOT NULL, started_usec INTEGER NOT NULL, ended_usec INTEGER);"
        "CREATE TABLE IF NOT EXISTS requests ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  session_id INTEGER REFERENCES sessions(id),"
        "  requester_uid INTEGER NOT NULL, requester_name TEXT NOT NULL,"
        "  requester_pid INTEGER NOT NULL,"
        "  argv TEXT NOT NULL, command TEXT NOT NULL, env TEXT NOT NULL, cwd TEXT NOT NULL,"
        "  host TEXT, run_as TEXT NOT NULL, why TEXT,"
        "  policy_digest TEXT NOT NULL, digest TEXT NOT NULL,"
        "  action TEXT NOT NULL, approvers_needed INTEGER NOT NULL, reason TEXT,"
        "  state TEXT NOT NULL, detail TEXT,"
        "  created_usec INTEGER NOT NULL, expires_usec INTEGER NOT NULL,"
        "  finished_usec INTEGER NOT NULL DEFAULT 0, exit_status INTEGER NOT NULL DEFAULT -1);"
        "CREATE INDEX IF NOT EXISTS requests_state ON requests(state);"
        "CREATE TABLE IF NOT EXISTS verdicts ("
        "  request_id INTEGER NOT NULL REFERENCES requests(id),"
        "  uid INTEGER NOT NULL, user TEXT NOT NULL, verdict TEXT NOT NULL, why TEXT,"
        "  at_usec INTEGER NOT NULL, PRIMARY KEY (request_id, uid));"
        "CREATE TABLE IF NOT EXISTS outputs ("
        "  request_id INTEGER PRIMARY KEY REFERENCES requests(id),"
        "  stdout BLOB, stderr BLOB, truncated INTEGER NOT NULL);";

static int sq_err(State *s, int rc)
{
        (void)s;
        switch (rc) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_READONLY:
        case SQLITE_PERM:
                return -EROFS;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        default:
                return -EIO;
        }
}

static int exec_sql(State *s, const char *sql)
{
        return sq_err(s, sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

/* Databases made before requests had plans get the columns (NULL: not planned). */
static int add_plan_columns(State *s)
{
        sqlite3_stmt *st = NULL;
        bool have = false;
        int rc;

        rc = sqlite3_prepare_v2(s->db,
                                "SELECT 1 FROM pragma_table_info('requests') WHERE name = "
                                "'plan'",
                                -1, &st, NULL);
        if (rc != SQLITE_OK)
                return sq_err(s, rc);
        rc = sqlite3_step(st);
        have = rc == SQLITE_ROW;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return sq_err(s, rc);
        if (have)
                return 0;
        return exec_sql(s, "ALTER TABLE requests ADD COLUMN plan TEXT; "
                           "ALTER TABLE requests ADD COLUMN plan_digest TEXT; "
                           "ALTER TABLE requests ADD COLUMN plan_error TEXT; "
                           "ALTER TABLE requests ADD COLUMN deviations TEXT;");
}

int state_open(const char *state_dir, State **ret, char *err, size_t err_size)
{
        _cleanup_free_ char *path = NULL;
        State *s;
        int rc, r;

        if (asprintf(&path, "%s/airlockd.db", state_dir) < 0)
                return -ENOMEM;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        {
                pthread_mutexattr_t a;

                pthread_mutexattr_init(&a);
                pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
                pthread_mutex_init(&s->mu, &a);
                pthread_mutexattr_destroy(&a);
        }
        rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
        if (rc != SQLITE_OK) {
                snprintf(err, err_size, "cannot open %s: %s", path,
                         s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
                state_close(s);
                return -EIO;
        }
        /* the state is root's alone: requests carry commands, why texts and outputs */
        (void)chmod(path, 0600);
        /*
         * WAL with synchronous=FULL: a commit is on disk before the broker acts
         * on it, so kill -9 loses nothing that was acknowledged.
         */
        r = exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                        "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;");
        if (r >= 0)
                r = exec_sql(s, schema);
        if (r >= 0)
                r = add_plan_columns(s);
        if (r < 0) {
                snprintf(err, err_size, "cannot initialise %s: %s", path, sqlite3_errmsg(s->db));
                state_close(s);
                return r;
        }
        *ret = s;
        return 0;
}

void state_close(State *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n_cache; i++)
                sqlite3_finalize(s->cache[i].st);
        sqlite3_close(s->db);
        free(s);
}

/* The cached statement for sql (a string literal), prepared on first use. Caller holds mu. */
static int prepare(State *s, const char *sql, sqlite3_stmt **st)
{
        sqlite3_stmt *n = NULL;
        int rc;

        for (size_t i = 0; i < s->n_cache; i++)
                if (s->cache[i].sql == sql) {
                        *st = s->cache[i].st;
                        return 0;
                }
        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &n, NULL);
        if (rc != SQLITE_OK)
                return sq_err(s, rc);
        if (s->n_cache >= STMT_CACHE_MAX) {
                sqlite3_finalize(n);
                return -ENOBUFS; /* more statement texts than the cache holds: raise the cap */
        }
        s->cache[s->n_cache++] = (CachedStmt){ .sql = sql, .st = n };
        *st = n;
        return 0;
}

/* Ends a use of a cached statement: it is reset for the next one, its bindings cleared. */
static void stmt_done(sqlite3_stmt *st)
{
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
}

static int step_done(State *s, sqlite3_stmt *st)
{
        int rc = sqlite3_step(st);

        stmt_done(st);
        return rc == SQLITE_DONE ? 0 : sq_err(s, rc == SQLITE_ROW ? SQLITE_ERROR : rc);
}

static int exec_cached(State *s, const char *sql)
{
        sqlite3_stmt *st;
        int r;

        r = prepare(s, sql, &st);
        return r < 0 ? r : step_done(s, st);
}

int state_begin(State *s)
{
        int r;

        pthread_mutex_lock(&s->mu);
        r = exec_cached(s, "BEGIN IMMEDIATE");
        if (r < 0) {
                pthread_mutex_unlock(&s->mu);
                return r;
        }
        s->in_tx = true; /* the mutex stays held until commit or rollback */
        return 0;
}

int state_commit(State *s)
{
        int r;

        pthread_mutex_lock(&s->mu);
        r = exec_cached(s, "COMMIT");
        if (r >= 0 && s->in_tx) {
                s->in_tx = false;
                pthread_mutex_unlock(&s->mu); /* the hold from state_begin() */
        }
        pthread_mutex_unlock(&s->mu);
        return r; /* on failure the transaction stays open: call state_rollback() */
}

void state_rollback(State *s)
{
        pthread_mutex_lock(&s->mu);
        if (s->in_tx) {
                (void)exec_cached(s, "ROLLBACK");
                s->in_tx = false;
                pthread_mutex_unlock(&s->mu);
        }
        pthread_mutex_unlock(&s->mu);
}

static char *strv_to_text(char *const *l)
{
        _cleanup_(json_decrefp) json_t *a = json_from_strv(l);

        return a ? json_dumps(a, JSON_COMPACT) : NULL;
}

static char **text_to_strv(const char *t)
{
        _cleanup_(json_decrefp) json_t *a = json_loads(t ?: "[]", 0, NULL);

        return strv_from_json(a);
}

static void bind_text(sqlite3_stmt *st, int i, const char *t)
{
        if (t)
                sqlite3_bind_text(st, i, t, -1, SQLITE_TRANSIENT);
        else
                sqlite3_bind_null(st, i);
}

static int insert_session_unlocked(State *s, Session *sess)
{
        sqlite3_stmt *st;
        int r;

        r = prepare(s,
                    "INSERT INTO sessions (agent, workspace, profile, starter_uid, starter_name, "
                    "starter_pid, socket, started_usec) VALUES (?,?,?,?,?,?,?,?)",
                    &st);
        if (r < 0)
                return r;
        bind_text(st, 1, sess->agent);
        bind_text(st, 2, sess->workspace);
        bind_text(st, 3, sess->profile);
        sqlite3_bind_int64(st, 4, sess->starter_uid);
        bind_text(st, 5, sess->starter_name);
        sqlite3_bind_int64(st, 6, sess->starter_pid);
        bind_text(st, 7, sess->socket_path ?: "");
        sqlite3_bind_int64(st, 8, (sqlite3_int64)sess->started_usec);
        r = step_done(s, st);
        if (r < 0)
                return r;
        sess->id = (uint64_t)sqlite3_last_insert_rowid(s->db);
        return 0;
}

static int end_session_unlocked(State *s, uint64_t id, uint64_t now_usec)
{
        sqlite3_stmt *st;
        int r;

        r = prepare(s, "UPDATE sessions SET ended_usec = ? WHERE id = ?", &st);
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)now_usec);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)id);
        return step_done(s, st);
}

static int insert_request_unlocked(State *s, Req *r)
{
        _cleanup_free_ char *argv = NULL, *command = NULL, *env = NULL, *plan = NULL;
        sqlite3_stmt *st;
        int k;

        argv = strv_to_text(r->argv);
        command = strv_to_text(r->command);
        env = strv_to_text(r->env);
        if (r->plan)
                plan = json_dumps(r->plan, JSON_COMPACT);
        if (!argv || !command || !env || (r->plan && !plan))
                return -ENOMEM;
        k = prepare(s,
                    "INSERT INTO requests (id, session_id, requester_uid, requester_name, "
                    "requester_pid, argv, command, env, cwd, host, run_as, why, policy_digest, "
                    "digest, action, approvers_needed, reason, state, detail, created_usec, "
                    "expires_usec, finished_usec, exit_status, plan, plan_digest, plan_error) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    &st);
        if (k < 0)
                return k;
        /* an id assigned by the broker (0: let SQLite choose) */
        if (r->id)
                sqlite3_bind_int64(st, 1, (sqlite3_int64)r->id);
        else
                sqlite3_bind_null(st, 1);
        if (r->session_id)
                sqlite3_bind_int64(st, 2, (sqlite3_int64)r->session_id);
        else
                sqlite3_bind_null(st, 2);
        sqlite3_bind_int64(st, 3, r->requester_uid);
        bind_text(st, 4, r->requester_name);
        sqlite3_bind_int64(st, 5, r->requester_pid);
        bind_text(st, 6, argv);
        bind_text(st, 7, command);
        bind_text(st, 8, env);
        bind_text(st, 9, r->cwd);
        bind_text(st, 10, r->host);
        bind_text(st, 11, r->run_as);
        bind_text(st, 12, r->why);
        bind_text(st, 13, r->policy_digest);
        bind_text(st, 14, r->digest);
        bind_text(st, 15, policy_action_to_string(r->action));
        sqlite3_bind_int64(st, 16, r->approvers_needed);
        bind_text(st, 17, r->reason);
        bind_text(st, 18, req_state_to_string(r->state));
        bind_text(st, 19, r->detail);
        sqlite3_bind_int64(st, 20, (sqlite3_int64)r->created_usec);
        sqlite3_bind_int64(st, 21, (sqlite3_int64)r->expires_usec);
        sqlite3_bind_int64(st, 22, (sqlite3_int64)r->finished_usec);
        sqlite3_bind_int64(st, 23, r->exit_status);
        bind_text(st, 24, plan);
        bind_text(st, 25, r->plan_digest[0] ? r->plan_digest : NULL);
        bind_text(st, 26, r->plan_error);
        k = step_done(s, st);
        if (k < 0)
                return k;
        r->id = (uint64_t)sqlite3_last_insert_rowid(s->db);
        return 0;
}

static int update_request_unlocked(State *s, const Req *r)
{
        _cleanup_free_ char *dev = NULL;
        sqlite3_stmt *st;
        int k;

        if (r->deviations) {
                dev = json_dumps(r->deviations, JSON_COMPACT);
                if (!dev)
                        return -ENOMEM;
        }
        k = prepare(
                s,
                "UPDATE requests SET state = ?, detail = ?, finished_usec = ?, exit_status = ?, "
                "deviations = ? WHERE id = ?",
                &st);
        if (k < 0)
                return k;
        bind_text(st, 1, req_state_to_string(r->state));
        bind_text(st, 2, r->detail);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)r->finished_usec);
        sqlite3_bind_int64(st, 4, r->exit_status);
        bind_text(st, 5, dev);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)r->id);
        return step_done(s, st);
}

static int insert_verdict_unlocked(State *s, uint64_t req_id, const Verdict *v)
{
        sqlite3_stmt *st;
        int k;

        k = prepare(s,
                    "INSERT INTO verdicts (request_id, uid, user, verdict, why, at_usec) "
                    "VALUES (?,?,?,?,?,?)",
                    &st);
        if (k < 0)
                return k;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)req_id);
        sqlite3_bind_int64(st, 2, v->uid);
        bind_text(st, 3, v->user);
        bind_text(st, 4, v->deny ? "deny" : "approve");
        bind_text(st, 5, v->why);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)v->at_usec);
        return step_done(s, st);
}

static int save_output_unlocked(State *s, uint64_t req_id, const uint8_t *out, size_t out_len,
                                const uint8_t *err, size_t err_len, bool truncated)
{
        sqlite3_stmt *st;
        int k;

        k = prepare(s,
                    "INSERT OR REPLACE INTO outputs (request_id, stdout, stderr, truncated) "
                    "VALUES (?,?,?,?)",
                    &st);
        if (k < 0)
                return k;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)req_id);
        sqlite3_bind_blob(st, 2, out ? (const void *)out : "", (int)out_len, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, err ? (const void *)err : "", (int)err_len, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, truncated);
        return step_done(s, st);
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
        const unsigned char *t = sqlite3_column_text(st, i);

        return t ? strdup((const char *)t) : NULL;
}

static int load_request_unlocked(State *s, uint64_t id, Req **ret)
{
        sqlite3_stmt *st;
        Req *r;
        int k, rc;

        k = prepare(s,
                    "SELECT r.session_id, r.requester_uid, r.requester_name, r.requester_pid, "
                    "r.argv, r.command, r.env, r.cwd, r.host, r.run_as, r.why, r.policy_digest, "
                    "r.digest, r.action, r.approvers_needed, r.reason, r.state, r.detail, "
                    "r.created_usec, r.expires_usec, r.finished_usec, r.exit_status, "
                    "s.agent, s.workspace, s.profile, s.starter_name, s.starter_uid, "
                    "s.started_usec, o.truncated, r.plan, r.plan_digest, r.plan_error, "
                    "r.deviations "
                    "FROM requests r LEFT JOIN sessions s ON s.id = r.session_id "
                    "LEFT JOIN outputs o ON o.request_id = r.id WHERE r.id = ?",
                    &st);
        if (k < 0)
                return k;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                stmt_done(st);
                return rc == SQLITE_DONE ? -ENOENT : sq_err(s, rc);
        }
        r = calloc(1, sizeof(*r));
        if (!r) {
                stmt_done(st);
                return -ENOMEM;
        }
        r->refs = 1;
        pthread_cond_init(&r->cond, NULL);
        r->id = id;
        r->session_id = (uint64_t)sqlite3_column_int64(st, 0);
        r->requester_uid = (uid_t)sqlite3_column_int64(st, 1);
        r->requester_name = col_strdup(st, 2);
        r->requester_pid = (pid_t)sqlite3_column_int64(st, 3);
        r->argv = text_to_strv((const char *)sqlite3_column_text(st, 4));
        r->command = text_to_strv((const char *)sqlite3_column_text(st, 5));
        r->env = text_to_strv((const char *)sqlite3_column_text(st, 6));
        r->cwd = col_strdup(st, 7);
        r->host = col_strdup(st, 8);
        r->run_as = col_strdup(st, 9);
        r->why = col_strdup(st, 10);
        snprintf(r->policy_digest, sizeof(r->policy_digest), "%s",
                 (const char *)sqlite3_column_text(st, 11) ?: "");
        snprintf(r->digest, sizeof(r->digest), "%s",
                 (const char *)sqlite3_column_text(st, 12) ?: "");
        {
                const char *a = (const char *)sqlite3_column_text(st, 13) ?: "deny";

                r->action = streq(a, "allow")     ? POLICY_ALLOW
                            : streq(a, "approve") ? POLICY_APPROVE
                                                  : POLICY_DENY;
        }
        r->approvers_needed = (unsigned)sqlite3_column_int64(st, 14);
        r->reason = col_strdup(st, 15);
        if (req_state_from_string((const char *)sqlite3_column_text(st, 16) ?: "", &r->state) < 0)
                r->state = REQ_INTERRUPTED;
        r->detail = col_strdup(st, 17);
        r->created_usec = (uint64_t)sqlite3_column_int64(st, 18);
        r->expires_usec = (uint64_t)sqlite3_column_int64(st, 19);
        r->finished_usec = (uint64_t)sqlite3_column_int64(st, 20);
        r->exit_status = (int)sqlite3_column_int64(st, 21);
        if (r->session_id) {
                r->agent = col_strdup(st, 22);
                r->session_workspace = col_strdup(st, 23);
                r->session_profile = col_strdup(st, 24);
                r->session_starter = col_strdup(st, 25);
                r->session_starter_uid = (uid_t)sqlite3_column_int64(st, 26);
                r->session_started_usec = (uint64_t)sqlite3_column_int64(st, 27);
        }
        r->truncated = sqlite3_column_int(st, 28) != 0;
        if (sqlite3_column_text(st, 29)) {
                r->plan = json_loads((const char *)sqlite3_column_text(st, 29), 0, NULL);
                if (!r->plan) {
                        stmt_done(st);
                        req_unref(r);
                        return -EBADMSG;
                }
        }
        snprintf(r->plan_digest, sizeof(r->plan_digest), "%s",
                 (const char *)sqlite3_column_text(st, 30) ?: "");
        r->plan_error = col_strdup(st, 31);
        if (sqlite3_column_text(st, 32))
                r->deviations = json_loads((const char *)sqlite3_column_text(st, 32), 0, NULL);
        stmt_done(st);
        if (!r->argv || !r->command || !r->env || !r->cwd || !r->run_as || !r->requester_name ||
            (r->session_id &&
             (!r->agent || !r->session_workspace || !r->session_profile || !r->session_starter))) {
                req_unref(r);
                return -ENOMEM;
        }

        k = prepare(s,
                    "SELECT uid, user, verdict, why, at_usec FROM verdicts WHERE request_id = ? "
                    "ORDER BY at_usec",
                    &st);
        if (k < 0) {
                req_unref(r);
                return k;
        }
        sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                Verdict *n = realloc(r->verdicts, sizeof(Verdict) * (r->n_verdicts + 1));

                if (!n) {
                        stmt_done(st);
                        req_unref(r);
                        return -ENOMEM;
                }
                r->verdicts = n;
                n[r->n_verdicts++] = (Verdict){
                        .uid = (uid_t)sqlite3_column_int64(st, 0),
                        .user = col_strdup(st, 1),
                        .deny = streq((const char *)sqlite3_column_text(st, 2) ?: "", "deny"),
                        .why = col_strdup(st, 3),
                        .at_usec = (uint64_t)sqlite3_column_int64(st, 4),
                };
        }
        stmt_done(st);
        if (rc != SQLITE_DONE) {
                req_unref(r);
                return sq_err(s, rc);
        }
        *ret = r;
        return 0;
}

static int load_output_unlocked(State *s, uint64_t id, uint8_t **ret_out, size_t *ret_out_len,
                                uint8_t **ret_err, size_t *ret_err_len)
{
        sqlite3_stmt *st;
        uint8_t *bufs[2] = {};
        size_t lens[2] = {};
        int k, rc;

        k = prepare(s, "SELECT stdout, stderr FROM outputs WHERE request_id = ?", &st);
        if (k < 0)
                return k;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                stmt_done(st);
                return rc == SQLITE_DONE ? -ENOENT : sq_err(s, rc);
        }
        for (int i = 0; i < 2; i++) {
                int n = sqlite3_column_bytes(st, i);
                const void *b = sqlite3_column_blob(st, i);

                if (n > 0 && b) {
                        bufs[i] = malloc((size_t)n);
                        if (!bufs[i]) {
                                free(bufs[0]);
                                stmt_done(st);
                                return -ENOMEM;
                        }
                        memcpy(bufs[i], b, (size_t)n);
                        lens[i] = (size_t)n;
                }
        }
        stmt_done(st);
        *ret_out = bufs[0];
        *ret_out_len = lens[0];
        *ret_err = bufs[1];
        *ret_err_len = lens[1];
        return 0;
}

static int list_requests_unlocked(State *s, bool all, size_t limit, uint64_t **ret_ids,
                                  size_t *ret_n)
{
        sqlite3_stmt *st;
        uint64_t *ids = NULL;
        size_t n = 0;
        int k, rc;

        k = prepare(s,
                    all ? "SELECT id FROM requests ORDER BY id DESC LIMIT ?"
                        : "SELECT id FROM requests WHERE state IN ('pending','approved',"
                          "'executing') ORDER BY id DESC LIMIT ?",
                    &st);
        if (k < 0)
                return k;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                uint64_t *t = realloc(ids, sizeof(uint64_t) * (n + 1));

                if (!t) {
                        free(ids);
                        stmt_done(st);
                        return -ENOMEM;
                }
                ids = t;
                ids[n++] = (uint64_t)sqlite3_column_int64(st, 0);
        }
        stmt_done(st);
        if (rc != SQLITE_DONE) {
                free(ids);
                return sq_err(s, rc);
        }
        *ret_ids = ids;
        *ret_n = n;
        return 0;
}

static int recover_unlocked(State *s, uint64_t now_usec, uint64_t **ret_ids, size_t *ret_n)
{
        uint64_t *ids = NULL;
        size_t n = 0;
        sqlite3_stmt *st;
        int k, rc;

        k = prepare(s, "SELECT id FROM requests WHERE state IN ('approved','executing')", &st);
        if (k < 0)
                return k;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                uint64_t *t = realloc(ids, sizeof(uint64_t) * (n + 1));

                if (!t) {
                        free(ids);
                        stmt_done(st);
                        return -ENOMEM;
                }
                ids = t;
                ids[n++] = (uint64_t)sqlite3_column_int64(st, 0);
        }
        stmt_done(st);
        if (rc != SQLITE_DONE) {
                free(ids);
                return sq_err(s, rc);
        }
        *ret_ids = ids;
        *ret_n = n;
        (void)now_usec;
        return 0;
}

static int next_request_id_unlocked(State *s, uint64_t *ret)
{
        sqlite3_stmt *st;
        int k, rc;

        /* sqlite_sequence remembers ids even of rows that were removed */
        k = prepare(s,
                    "SELECT MAX(COALESCE((SELECT MAX(id) FROM requests), 0), "
                    "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0)) + 1",
                    &st);
        if (k < 0)
                return k;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *ret = (uint64_t)sqlite3_column_int64(st, 0);
        stmt_done(st);
        return rc == SQLITE_ROW ? 0 : sq_err(s, rc);
}

int state_insert_session(State *s, Session *sess)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = insert_session_unlocked(s, sess);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_end_session(State *s, uint64_t id, uint64_t now_usec)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = end_session_unlocked(s, id, now_usec);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_insert_request(State *s, Req *r)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = insert_request_unlocked(s, r);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_update_request(State *s, const Req *r)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = update_request_unlocked(s, r);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_delete_request(State *s, uint64_t id)
{
        sqlite3_stmt *st;
        int k;

        pthread_mutex_lock(&s->mu);
        k = prepare(s, "DELETE FROM requests WHERE id = ?", &st);
        if (k >= 0) {
                sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
                k = step_done(s, st);
        }
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_insert_verdict(State *s, uint64_t req_id, const Verdict *v)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = insert_verdict_unlocked(s, req_id, v);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_save_output(State *s, uint64_t req_id, const uint8_t *out, size_t out_len,
                      const uint8_t *err, size_t err_len, bool truncated)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = save_output_unlocked(s, req_id, out, out_len, err, err_len, truncated);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_load_request(State *s, uint64_t id, Req **ret)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = load_request_unlocked(s, id, ret);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_load_output(State *s, uint64_t id, uint8_t **ret_out, size_t *ret_out_len,
                      uint8_t **ret_err, size_t *ret_err_len)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = load_output_unlocked(s, id, ret_out, ret_out_len, ret_err, ret_err_len);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_list_requests(State *s, bool all, size_t limit, uint64_t **ret_ids, size_t *ret_n)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = list_requests_unlocked(s, all, limit, ret_ids, ret_n);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_recover(State *s, uint64_t now_usec, uint64_t **ret_ids, size_t *ret_n)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = recover_unlocked(s, now_usec, ret_ids, ret_n);
        pthread_mutex_unlock(&s->mu);
        return k;
}

int state_next_request_id(State *s, uint64_t *ret)
{
        int k;

        pthread_mutex_lock(&s->mu);
        k = next_request_id_unlocked(s, ret);
        pthread_mutex_unlock(&s->mu);
        return k;
}
