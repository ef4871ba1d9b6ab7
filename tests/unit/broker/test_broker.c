/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "broker/broker.h"
#include "broker/proto.h"
#include "broker/state.h"
#include "common/util.h"

static int decode(ProtoChannel ch, const char *text, ProtoRequest *q, char *err)
{
        json_t *m = NULL;
        int r;

        r = proto_parse_body(text, strlen(text), &m);
        if (r < 0)
                return r;
        r = proto_decode_request(ch, m, q, err, 256);
        if (r >= 0) {
                /* strings are borrowed from m: copy what the tests look at */
                proto_request_done(q);
        }
        json_decref(m);
        return r;
}

static void test_decode_accepts_well_formed(void **state)
{
        ProtoRequest q;
        char err[256];
        json_t *m = NULL;

        const char *t = "{\"type\":\"exec\",\"argv\":[\"ls\",\"-l\"],\"cwd\":\"/\","
                        "\"wait_ms\":5,\"why\":\"look\"}";

        assert_int_equal(proto_parse_body(t, strlen(t), &m), 0);
        assert_int_equal(proto_decode_request(PROTO_CHANNEL_SESSION, m, &q, err, sizeof(err)), 0);
        assert_int_equal(q.type, PROTO_REQ_EXEC);
        assert_string_equal(q.argv[0], "ls");
        assert_string_equal(q.argv[1], "-l");
        assert_null(q.argv[2]);
        assert_int_equal(q.wait_ms, 5);
        assert_string_equal(q.why, "look");
        assert_null(q.host);
        proto_request_done(&q);
        json_decref(m);
}

static void test_decode_is_strict(void **state)
{
        ProtoRequest q;
        char err[256];

        /* unknown field */
        assert_int_equal(
                decode(PROTO_CHANNEL_ADMIN, "{\"type\":\"list\",\"all\":true,\"x\":1}", &q, err),
                -EBADMSG);
        assert_non_null(strstr(err, "unknown field 'x'"));
        /* wrong types, missing fields, negative ids, empty argv, empty command */
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN, "{\"type\":\"list\",\"all\":1}", &q, err),
                         -EBADMSG);
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN, "{\"type\":\"show\"}", &q, err), -EBADMSG);
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN, "{\"type\":\"show\",\"id\":-1}", &q, err),
                         -EBADMSG);
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN,
                                "{\"type\":\"exec\",\"argv\":[],\"cwd\":\"/\",\"wait_ms\":0}", &q,
                                err),
                         -EBADMSG);
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN,
                                "{\"type\":\"exec\",\"argv\":[\"\"],\"cwd\":\"/\",\"wait_ms\":0}",
                                &q, err),
                         -EBADMSG);
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN,
                                "{\"type\":\"exec\",\"argv\":[1],\"cwd\":\"/\",\"wait_ms\":0}", &q,
                                err),
                         -EBADMSG);
        /* a NUL inside a string is refused by the JSON parser already */
        assert_int_equal(
                decode(PROTO_CHANNEL_ADMIN, "{\"type\":\"show\\u0000\",\"id\":1}", &q, err),
                -EBADMSG);
        /* duplicate keys */
        assert_int_equal(
                decode(PROTO_CHANNEL_ADMIN, "{\"type\":\"list\",\"type\":\"list\"}", &q, err),
                -EBADMSG);
        /* no type */
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN, "{\"id\":1}", &q, err), -EBADMSG);
}

static void test_channel_tables(void **state)
{
        ProtoRequest q;
        char err[256];
        const char *approve = "{\"type\":\"approve\",\"id\":1,\"digest\":\"ab\"}";

        assert_int_equal(decode(PROTO_CHANNEL_ADMIN, approve, &q, err), 0);
        assert_int_equal(decode(PROTO_CHANNEL_SESSION, approve, &q, err), -EOPNOTSUPP);
        assert_non_null(strstr(err, "does not exist on the session channel"));
        assert_int_equal(decode(PROTO_CHANNEL_HOLDER, approve, &q, err), -EOPNOTSUPP);
        assert_int_equal(decode(PROTO_CHANNEL_SESSION, "{\"type\":\"list\"}", &q, err),
                         -EOPNOTSUPP);
        assert_int_equal(decode(PROTO_CHANNEL_HOLDER, "{\"type\":\"close-session\"}", &q, err), 0);
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN, "{\"type\":\"close-session\"}", &q, err),
                         -EOPNOTSUPP);
}

static void test_limits(void **state)
{
        _cleanup_free_ char *big = malloc(PROTO_MAX_WHY + 100), *text = NULL;
        ProtoRequest q;
        char err[256];
        uint8_t frame[8] = { 0x7f, 0xff, 0xff, 0xff, '{', '}' };
        json_t *m = NULL;

        memset(big, 'a', PROTO_MAX_WHY + 1);
        big[PROTO_MAX_WHY + 1] = '\0';
        assert_true(asprintf(&text, "{\"type\":\"deny\",\"id\":1,\"why\":\"%s\"}", big) > 0);
        assert_int_equal(decode(PROTO_CHANNEL_ADMIN, text, &q, err), -EBADMSG);
        assert_int_equal(proto_parse_frame(frame, 6, &m), -EMSGSIZE);
        frame[0] = 0;
        frame[1] = 0;
        frame[2] = 0;
        frame[3] = 3; /* claims 3 bytes, has 2 */
        assert_int_equal(proto_parse_frame(frame, 6, &m), -EBADMSG);
        frame[3] = 2;
        assert_int_equal(proto_parse_frame(frame, 6, &m), 0);
        json_decref(m);
}

static void test_base64_round_trip(void **state)
{
        const uint8_t bin[] = { 0, 1, 2, 0xff, 0xfe, '\n', 0x1b };
        _cleanup_free_ char *s = proto_base64_encode(bin, sizeof(bin));
        _cleanup_free_ uint8_t *back = NULL;
        size_t n = 0;

        assert_non_null(s);
        assert_int_equal(proto_base64_decode(s, &back, &n), 0);
        assert_int_equal(n, sizeof(bin));
        assert_memory_equal(back, bin, n);
        assert_int_equal(proto_base64_decode("!!!", &back, &n), -EBADMSG);
}

static Req *new_req(void)
{
        Req *r = calloc(1, sizeof(Req));
        char a0[] = "systemctl", a1[] = "restart", a2[] = "nginx", e0[] = "PATH=/usr/bin";
        char *argv[] = { a0, a1, a2, NULL };
        char *env[] = { e0, NULL };

        r->refs = 1;
        r->exit_status = -1;
        pthread_cond_init(&r->cond, NULL);
        r->argv = strv_copy(argv);
        r->command = strv_copy(argv);
        r->env = strv_copy(env);
        r->cwd = strdup("/");
        r->run_as = strdup("root");
        r->requester_name = strdup("root");
        r->reason = strdup("rule 1");
        strcpy(r->policy_digest, "0123");
        return r;
}

static void test_digest_covers_what_runs(void **state)
{
        Req *r = new_req();
        char d0[65], d1[65];

        assert_int_equal(req_compute_digest(r), 0);
        memcpy(d0, r->digest, sizeof(d0));
        /* the same request: the same digest */
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_equal(d0, r->digest);
        /* the why text is not part of what runs */
        r->why = strdup("words");
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_equal(d0, r->digest);
        /* each of argv, env, cwd, run-as user, host, policy changes it */
        free(r->cwd);
        r->cwd = strdup("/etc");
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_not_equal(d0, r->digest);
        memcpy(d1, r->digest, sizeof(d1));
        free(r->run_as);
        r->run_as = strdup("nobody");
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_not_equal(d1, r->digest);
        memcpy(d1, r->digest, sizeof(d1));
        r->host = strdup("pve1");
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_not_equal(d1, r->digest);
        memcpy(d1, r->digest, sizeof(d1));
        strcpy(r->policy_digest, "4567");
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_not_equal(d1, r->digest);
        /* and so does its plan: an approval binds to what the dry run saw */
        memcpy(d1, r->digest, sizeof(d1));
        strcpy(r->plan_digest, "89ab");
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_not_equal(d1, r->digest);
        r->plan_digest[0] = '\0';
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_equal(d1, r->digest); /* no plan: the digest of before plans existed */
        memcpy(d1, r->digest, sizeof(d1));
        free(r->env[0]);
        r->env[0] = strdup("PATH=/tmp");
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_not_equal(d1, r->digest);
        memcpy(d1, r->digest, sizeof(d1));
        free(r->argv[2]);
        r->argv[2] = strdup("sshd");
        assert_int_equal(req_compute_digest(r), 0);
        assert_string_not_equal(d1, r->digest);
        req_unref(r);
}

static void test_state_round_trip(void **state)
{
        char dir[] = "/tmp/airlock-unit-broker.XXXXXX", err[256];
        State *s = NULL;
        Req *r = new_req(), *back = NULL;
        char alice[] = "alice", fine[] = "fine";
        Verdict v = { .uid = 1000, .user = alice, .why = fine, .at_usec = 42 };
        uint8_t *out = NULL, *errb = NULL;
        size_t ol = 0, el = 0;
        uint64_t *ids = NULL;
        size_t n = 0;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(state_open(dir, &s, err, sizeof(err)), 0);
        r->state = REQ_PENDING;
        r->action = POLICY_APPROVE;
        r->approvers_needed = 2;
        r->why = strdup("agent's \x1b words");
        assert_int_equal(req_compute_digest(r), 0);
        assert_int_equal(state_insert_request(s, r), 0);
        assert_true(r->id > 0);
        assert_int_equal(state_insert_verdict(s, r->id, &v), 0);
        r->state = REQ_EXECUTING;
        assert_int_equal(state_update_request(s, r), 0);
        assert_int_equal(state_save_output(s, r->id, (const uint8_t *)"out", 3,
                                           (const uint8_t *)"e", 1, false),
                         0);

        assert_int_equal(state_load_request(s, r->id, &back), 0);
        assert_string_equal(back->digest, r->digest);
        assert_string_equal(back->argv[2], "nginx");
        assert_string_equal(back->why, r->why);
        assert_int_equal(back->state, REQ_EXECUTING);
        assert_int_equal(back->action, POLICY_APPROVE);
        assert_int_equal(back->approvers_needed, 2);
        assert_int_equal(back->n_verdicts, 1);
        assert_string_equal(back->verdicts[0].user, "alice");
        assert_int_equal(state_load_output(s, r->id, &out, &ol, &errb, &el), 0);
        assert_int_equal(ol, 3);
        assert_memory_equal(out, "out", 3);
        assert_int_equal(el, 1);

        /* what was executing when the broker stopped is found for interruption */
        assert_int_equal(state_recover(s, 0, &ids, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], r->id);
        {
                Req *none = NULL;

                assert_int_equal(state_load_request(s, 999, &none), -ENOENT);
                assert_null(none);
        }

        free(ids);
        free(out);
        free(errb);
        req_unref(back);
        req_unref(r);
        state_close(s);
        {
                char cmd[128];

                snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
                assert_int_equal(system(cmd), 0);
        }
}

/* A database from before plans (no plan columns) is upgraded on open, and plans round-trip. */
static void test_state_upgrades_and_keeps_plans(void **state)
{
        char dir[] = "/tmp/airlock-unit-broker.XXXXXX", path[128], err[256];
        State *s = NULL;
        Req *r = new_req(), *back = NULL;
        sqlite3 *db = NULL;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/airlockd.db", dir);
        /* the requests table as session 1 made it */
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(
                sqlite3_exec(db,
                             "CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                             " session_id INTEGER, requester_uid INTEGER NOT NULL,"
                             " requester_name TEXT NOT NULL, requester_pid INTEGER NOT NULL,"
                             " argv TEXT NOT NULL, command TEXT NOT NULL, env TEXT NOT NULL,"
                             " cwd TEXT NOT NULL, host TEXT, run_as TEXT NOT NULL, why TEXT,"
                             " policy_digest TEXT NOT NULL, digest TEXT NOT NULL,"
                             " action TEXT NOT NULL, approvers_needed INTEGER NOT NULL,"
                             " reason TEXT, state TEXT NOT NULL, detail TEXT,"
                             " created_usec INTEGER NOT NULL, expires_usec INTEGER NOT NULL,"
                             " finished_usec INTEGER NOT NULL DEFAULT 0,"
                             " exit_status INTEGER NOT NULL DEFAULT -1);"
                             "INSERT INTO requests (requester_uid, requester_name, requester_pid,"
                             " argv, command, env, cwd, run_as, policy_digest, digest, action,"
                             " approvers_needed, state, created_usec, expires_usec) VALUES"
                             " (0, 'root', 1, '[\"true\"]', '[\"true\"]', '[]', '/', 'root',"
                             " 'p', 'd', 'allow', 0, 'succeeded', 1, 2);",
                             NULL, NULL, NULL),
                SQLITE_OK);
        sqlite3_close(db);

        assert_int_equal(state_open(dir, &s, err, sizeof(err)), 0);
        /* the old row reads back, without a plan */
        assert_int_equal(state_load_request(s, 1, &back), 0);
        assert_null(back->plan);
        assert_null(back->plan_error);
        assert_string_equal(back->plan_digest, "");
        req_unref(back);
        back = NULL;

        r->id = 2;
        r->state = REQ_PENDING;
        r->plan = json_pack("{s:s, s:[]}", "digest", "feed", "files");
        strcpy(r->plan_digest, "feed");
        assert_int_equal(req_compute_digest(r), 0);
        assert_int_equal(state_insert_request(s, r), 0);
        r->state = REQ_SUCCEEDED;
        r->deviations = json_pack("{s:[s], s:b}", "deviations", "wrote /etc/x (not in the plan)",
                                  "complete", 1);
        assert_int_equal(state_update_request(s, r), 0);
        assert_int_equal(state_load_request(s, 2, &back), 0);
        assert_true(json_equal(back->plan, r->plan));
        assert_string_equal(back->plan_digest, "feed");
        assert_string_equal(back->digest, r->digest);
        assert_true(json_equal(back->deviations, r->deviations));
        req_unref(back);
        req_unref(r);
        state_close(s);
        /* opening again finds the columns there: nothing to add, nothing lost */
        assert_int_equal(state_open(dir, &s, err, sizeof(err)), 0);
        assert_int_equal(state_load_request(s, 2, &back), 0);
        assert_string_equal(back->plan_digest, "feed");
        req_unref(back);
        state_close(s);
        {
                char cmd[128];

                snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
                assert_int_equal(system(cmd), 0);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decode_accepts_well_formed),
                cmocka_unit_test(test_decode_is_strict),
                cmocka_unit_test(test_channel_tables),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_base64_round_trip),
                cmocka_unit_test(test_digest_covers_what_runs),
                cmocka_unit_test(test_state_round_trip),
                cmocka_unit_test(test_state_upgrades_and_keeps_plans),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
