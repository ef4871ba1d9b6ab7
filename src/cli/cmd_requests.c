/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The broker's client commands: exec and wait (from inside a sandbox over the
 * session socket, or as a human over the admin socket), and requests, show,
 * approve, deny (admin socket only).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker/client.h"
#include "broker/proto.h"
#include "cli/cli.h"
#include "common/util.h"
#include "plan/plan.h"

#define DEFAULT_WAIT_SEC 60

typedef struct {
        const char *sub;
        const char *socket; /* --socket */
        bool json;
} ClientOpts;

/* Which socket: --socket, then a session socket (inside a sandbox), then the admin socket. */
static const char *pick_socket(const ClientOpts *o, bool session_ok, bool *ret_session)
{
        const char *s;

        *ret_session = false;
        if (o->socket)
                return o->socket;
        if (session_ok) {
                s = getenv("AIRLOCK_SESSION_SOCKET");
                if (!isempty(s)) {
                        *ret_session = true;
                        return s;
                }
                if (!getenv("AIRLOCK_SOCKET") &&
                    access(BROKER_SESSION_SOCKET_IN_SANDBOX, F_OK) == 0) {
                        *ret_session = true;
                        return BROKER_SESSION_SOCKET_IN_SANDBOX;
                }
        }
        return broker_admin_socket_path();
}

static int connect_or_explain(const ClientOpts *o, bool session_ok, int *ret_fd)
{
        bool session;
        const char *path = pick_socket(o, session_ok, &session);
        int r;

        r = broker_connect(path, ret_fd);
        if (r >= 0)
                return 0;
        if (session)
                return cli_fail(o->sub, EXIT_UNAVAILABLE,
                                "cannot reach the broker through this sandbox's session socket "
                                "%s: %s — the broker stopped or restarted; ask the human to start "
                                "it ('airlockd' or 'systemctl start airlockd') and to restart "
                                "this sandbox",
                                path, strerror(-r));
        return cli_fail(o->sub, EXIT_UNAVAILABLE,
                        "no broker at %s: %s — start it with 'systemctl start airlockd' (or run "
                        "'airlockd'), or point --socket / AIRLOCK_SOCKET at its admin socket; "
                        "inside 'airlock run' started without a broker, ask the human to start "
                        "it and restart the sandbox",
                        path, strerror(-r));
}

static const char *jstr(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static int64_t jint(json_t *o, const char *key, int64_t def)
{
        json_t *v = json_object_get(o, key);

        return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static void print_escaped(FILE *f, const char *s)
{
        _cleanup_free_ char *e = escape_for_terminal(s ?: "");

        fputs(e ?: "?", f);
}

static char *argv_display_escaped(json_t *a)
{
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        _cleanup_free_ char *d = NULL;
        json_t *e;
        size_t i;

        if (!l)
                return NULL;
        json_array_foreach(a, i,
                           e) if (strv_extend(&l, json_string_value(e) ?: "") < 0) return NULL;
        d = argv_to_display(l);
        return d ? escape_for_terminal(d) : NULL;
}

static void format_time(uint64_t usec, char *buf, size_t size)
{
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm))
                snprintf(buf, size, "-");
}

static void print_who(FILE *f, json_t *who)
{
        char t[64];

        if (streq(jstr(who, "kind") ?: "", "agent")) {
                format_time((uint64_t)jint(who, "started_usec", 0), t, sizeof(t));
                fputs("agent '", f);
                print_escaped(f, jstr(who, "agent"));
                fprintf(f, "' in session %" PRId64 ", started by ", jint(who, "session", 0));
                print_escaped(f, jstr(who, "started_by"));
                fprintf(f, " (uid %" PRId64 ") at %s, workspace ", jint(who, "started_by_uid", -1),
                        t);
                print_escaped(f, jstr(who, "workspace"));
                fputs(", profile ", f);
                print_escaped(f, jstr(who, "profile"));
        } else {
                fputs("human ", f);
                print_escaped(f, jstr(who, "user"));
                fprintf(f, " (uid %" PRId64 ", outside any sandbox)", jint(who, "uid", -1));
        }
}

/* The full view an approver decides on: facts the broker derived, then the requester's words. */
/* The request's plan (what its dry run did), part of what an approval binds to. */
static void print_plan(FILE *f, json_t *r)
{
        _cleanup_(plan_result_freep) PlanResult *plan = NULL;
        json_t *j = json_object_get(r, "plan");

        if (jstr(r, "plan_error")) {
                fputs("\nNo plan: the dry run failed (", f);
                print_escaped(f, jstr(r, "plan_error"));
                fputs(") — what the command would do was not observed.\n", f);
                return;
        }
        if (json_object_get(r, "plan_omitted")) {
                json_t *o = json_object_get(r, "plan_omitted");

                fprintf(f,
                        "\nPlan: too large to show here (%" PRId64 " bytes of JSON, %" PRId64
                        " files changed); its digest, which the approval covers: %s\n",
                        jint(o, "bytes", 0), jint(o, "files", 0), jstr(r, "plan_digest") ?: "?");
                return;
        }
        if (!j)
                return;
        fputs("\nPlan (the command's dry run in a snapshot of this host; the digest covers it):\n",
              f);
        if (plan_result_from_json(j, &plan) < 0) {
                fputs("  (the broker sent a plan this airlock cannot read — upgrade it; 'airlock "
                      "show --json' shows it raw)\n",
                      f);
                return;
        }
        plan_result_print(f, plan);
}

/* After an approved execution: what it did beyond the plan that was approved. */
static void print_deviations(FILE *f, json_t *r)
{
        json_t *d = json_object_get(r, "deviation_check"), *lines, *v;
        size_t i;

        if (!d)
                return;
        if (jstr(d, "error")) {
                fputs("\nDeviations from the approved plan: not checked (", f);
                print_escaped(f, jstr(d, "error"));
                fputs(")\n", f);
                return;
        }
        lines = json_object_get(d, "deviations");
        if (json_array_size(lines) == 0) {
                fprintf(f, "\nDeviations from the approved plan: none%s\n",
                        json_is_false(json_object_get(d, "complete"))
                                ? " seen (the recording is incomplete)"
                                : "");
                return;
        }
        fprintf(f, "\nDeviations from the approved plan (%" PRId64 "%s):\n",
                jint(d, "count", (int64_t)json_array_size(lines)),
                json_is_true(json_object_get(d, "truncated")) ? ", the first of them" : "");
        json_array_foreach(lines, i, v)
        {
                fputs("  ", f);
                print_escaped(f, json_string_value(v));
                fputc('\n', f);
        }
}

static void print_request(FILE *f, json_t *r)
{
        _cleanup_free_ char *cmd = argv_display_escaped(json_object_get(r, "argv"));
        _cleanup_free_ char *full = argv_display_escaped(json_object_get(r, "command"));
        json_t *d = json_object_get(r, "decision"), *v, *env;
        const char *state = jstr(r, "state") ?: "?", *why = jstr(r, "why");
        char t[64];
        size_t i;

        fprintf(f, "Request %" PRId64 ": %s", jint(r, "id", 0), state);
        if (streq(state, "pending"))
                fprintf(f, " (%" PRId64 " of %" PRId64 " approvals)", jint(r, "approvals", 0),
                        jint(d, "approvers", 0));
        fputs("\n\nFacts (derived by the broker):\n  Asked by:  ", f);
        print_who(f, json_object_get(r, "requester"));
        fprintf(f, "\n  Command:   %s\n", cmd ?: "?");
        if (jstr(r, "host")) {
                fputs("  On host:  ", f);
                print_escaped(f, jstr(r, "host"));
                fprintf(f, ", run as: %s\n", full ?: "?");
        }
        fputs("  Runs as:   ", f);
        print_escaped(f, jstr(r, "run_as"));
        fputs(", in ", f);
        print_escaped(f, jstr(r, "cwd"));
        fputs(", environment:", f);
        env = json_object_get(r, "env");
        json_array_foreach(env, i, v)
        {
                fputc(' ', f);
                print_escaped(f, json_string_value(v));
        }
        fputs("\n  Policy:    ", f);
        print_escaped(f, jstr(d, "action"));
        fputs(" — ", f);
        print_escaped(f, jstr(d, "reason"));
        format_time((uint64_t)jint(r, "created_usec", 0), t, sizeof(t));
        fprintf(f, "\n  Asked at:  %s", t);
        if (streq(state, "pending")) {
                format_time((uint64_t)jint(r, "expires_usec", 0), t, sizeof(t));
                fprintf(f, ", expires %s (then it is denied)", t);
        }
        fprintf(f, "\n  Digest:    %s\n", jstr(r, "digest") ?: "?");
        json_array_foreach(json_object_get(r, "verdicts"), i, v)
        {
                format_time((uint64_t)jint(v, "at_usec", 0), t, sizeof(t));
                fprintf(f, "  %s:  ",
                        streq(jstr(v, "verdict") ?: "", "deny") ? "Denied by " : "Approved by");
                print_escaped(f, jstr(v, "user"));
                fprintf(f, " at %s", t);
                if (jstr(v, "why")) {
                        fputs(": ", f);
                        print_escaped(f, jstr(v, "why"));
                }
                fputc('\n', f);
        }
        if (jstr(r, "detail")) {
                fputs("  Detail:    ", f);
                print_escaped(f, jstr(r, "detail"));
                fputc('\n', f);
        }
        if (json_is_integer(json_object_get(r, "exit_status")))
                fprintf(f, "  Exit:      %" PRId64 "\n", jint(r, "exit_status", -1));
        print_plan(f, r);
        print_deviations(f, r);
        if (why) {
                fputs("\nIn the requester's own words (not verified by airlock):\n  | ", f);
                for (const char *p = why; *p; p++) {
                        if (*p == '\n') {
                                fputs("\n  | ", f);
                                continue;
                        }
                        const char *nl = strchr(p, '\n');
                        size_t n = nl ? (size_t)(nl - p) : strlen(p);
                        _cleanup_free_ char *part = strndup(p, n);
                        print_escaped(f, part);
                        p += n - 1;
                }
                fputc('\n', f);
        } else
                fputs("\nThe requester gave no reason (--why).\n", f);
}

static int error_exit(const char *sub, json_t *m)
{
        const char *code = jstr(m, "error") ?: "", *msg = jstr(m, "message") ?: "unknown error";
        int ec = EXIT_INTERNAL;

        if (streq(code, "malformed") || streq(code, "bad-request") || streq(code, "unknown-host") ||
            streq(code, "unknown-profile") || streq(code, "unknown-request") ||
            streq(code, "not-found"))
                ec = EXIT_USAGE;
        else if (streq(code, "limit"))
                ec = EXIT_TIMEOUT;
        else if (streq(code, "audit-failed") || streq(code, "session-ended"))
                ec = EXIT_UNAVAILABLE;
        else if (streq(code, "confined") || streq(code, "not-approver") ||
                 streq(code, "requester-cannot-approve") || streq(code, "already-approved") ||
                 streq(code, "digest-mismatch") || streq(code, "policy-changed") ||
                 streq(code, "not-pending"))
                ec = EXIT_DENIED;
        /* the broker's message already says what and how; keep the one-line form */
        fprintf(stderr, "airlock: %s: ", sub);
        print_escaped(stderr, msg);
        fputc('\n', stderr);
        return ec;
}

typedef struct {
        char *out, *err;
        size_t out_len, err_len;
} Collected;

static int append(char **buf, size_t *len, const uint8_t *data, size_t n)
{
        char *b = realloc(*buf, *len + n + 1);

        if (!b)
                return -ENOMEM;
        memcpy(b + *len, data, n);
        *len += n;
        b[*len] = '\0';
        *buf = b;
        return 0;
}

static json_t *text_or_base64(const char *buf, size_t len)
{
        json_t *s = json_stringn(buf ?: "", len);

        if (s)
                return s;
        {
                _cleanup_free_ char *b = proto_base64_encode(buf, len);

                return json_pack("{s:s}", "base64", b ?: "");
        }
}

/*
 * Reads the broker's replies to exec or wait until the request is decided:
 * output is copied to our stdout/stderr (or collected for --json); the exit
 * status is the command's, or 75 still pending, 77 denied or expired.
 */
static int follow(const ClientOpts *o, int fd, bool quiet_pending)
{
        Collected c = {};
        bool announced = false;
        int ec = EXIT_INTERNAL;

        for (;;) {
                _cleanup_(json_decrefp) json_t *m = NULL;
                const char *type;
                json_t *req;
                int r = proto_read(fd, &m);

                if (r <= 0) {
                        free(c.out);
                        free(c.err);
                        return cli_fail(o->sub, EXIT_UNAVAILABLE,
                                        "the broker closed the connection (%s) — the request may "
                                        "still be recorded; check with 'airlock requests'",
                                        r == 0 ? "end of stream" : strerror(-r));
                }
                type = jstr(m, "type") ?: "";
                req = json_object_get(m, "request");
                if (streq(type, "error")) {
                        free(c.out);
                        free(c.err);
                        return error_exit(o->sub, m);
                }
                if (streq(type, "output")) {
                        _cleanup_free_ uint8_t *data = NULL;
                        size_t n = 0;
                        bool err = streq(jstr(m, "stream") ?: "", "stderr");

                        if (proto_base64_decode(jstr(m, "data") ?: "", &data, &n) < 0)
                                continue;
                        if (o->json)
                                (void)append(err ? &c.err : &c.out, err ? &c.err_len : &c.out_len,
                                             data, n);
                        else {
                                (void)write_all(err ? 2 : 1, data, n);
                        }
                        continue;
                }
                if (streq(type, "request")) {
                        if (!announced && !o->json && !quiet_pending &&
                            streq(jstr(req, "state") ?: "", "pending")) {
                                fprintf(stderr,
                                        "airlock: %s: request %" PRId64 " needs approval (%" PRId64
                                        " of %" PRId64
                                        ") — an approver runs 'airlock approve %" PRId64
                                        "' outside the sandbox; waiting\n",
                                        o->sub, jint(req, "id", 0), jint(req, "approvals", 0),
                                        jint(json_object_get(req, "decision"), "approvers", 0),
                                        jint(req, "id", 0));
                                announced = true;
                        }
                        continue;
                }
                if (streq(type, "still-pending")) {
                        ec = EXIT_TIMEOUT;
                        if (!o->json)
                                fprintf(stderr,
                                        "airlock: %s: request %" PRId64
                                        " is still waiting for approval — wait again with "
                                        "'airlock wait %" PRId64 "'\n",
                                        o->sub, jint(req, "id", 0), jint(req, "id", 0));
                } else if (streq(type, "done")) {
                        const char *st = jstr(req, "state") ?: "";

                        if (streq(st, "succeeded") || streq(st, "failed")) {
                                ec = (int)jint(req, "exit_status", EXIT_INTERNAL);
                                if (ec < 0 || ec > 255)
                                        ec = EXIT_INTERNAL;
                                if (streq(st, "failed") && jstr(req, "detail") && !o->json) {
                                        fprintf(stderr, "airlock: %s: request %" PRId64 ": ",
                                                o->sub, jint(req, "id", 0));
                                        print_escaped(stderr, jstr(req, "detail"));
                                        fputc('\n', stderr);
                                }
                        } else if (streq(st, "denied") || streq(st, "expired")) {
                                ec = EXIT_DENIED;
                                if (!o->json) {
                                        json_t *v, *d = json_object_get(req, "decision");
                                        size_t i;

                                        fprintf(stderr,
                                                "airlock: %s: request %" PRId64 " %s: ", o->sub,
                                                jint(req, "id", 0), st);
                                        if (streq(st, "expired"))
                                                fputs("nobody approved it in time", stderr);
                                        else if (streq(jstr(d, "action") ?: "", "deny"))
                                                print_escaped(stderr, jstr(d, "reason"));
                                        else
                                                fputs("an approver said no", stderr);
                                        json_array_foreach(
                                                json_object_get(req, "verdicts"), i,
                                                v) if (streq(jstr(v, "verdict") ?: "", "deny"))
                                        {
                                                fputs(" (", stderr);
                                                print_escaped(stderr, jstr(v, "user"));
                                                fputs(": ", stderr);
                                                print_escaped(stderr, jstr(v, "why"));
                                                fputs(")", stderr);
                                        }
                                        if (jstr(req, "detail") && streq(st, "denied") &&
                                            !streq(jstr(d, "action") ?: "", "deny")) {
                                                fputs(" — ", stderr);
                                                print_escaped(stderr, jstr(req, "detail"));
                                        }
                                        fputc('\n', stderr);
                                }
                        } else {
                                ec = EXIT_INTERNAL;
                                if (!o->json) {
                                        fprintf(stderr,
                                                "airlock: %s: request %" PRId64 " %s: ", o->sub,
                                                jint(req, "id", 0), st);
                                        print_escaped(stderr, jstr(req, "detail"));
                                        fputc('\n', stderr);
                                }
                        }
                } else
                        continue; /* a newer broker's message we do not know: skip it */

                if (o->json) {
                        _cleanup_(json_decrefp) json_t *j =
                                json_pack("{s:O, s:o, s:o, s:b}", "request", req, "stdout",
                                          text_or_base64(c.out, c.out_len), "stderr",
                                          text_or_base64(c.err, c.err_len), "pending",
                                          streq(type, "still-pending"));

                        if (j) {
                                json_dumpf(j, stdout, JSON_INDENT(2));
                                fputc('\n', stdout);
                        }
                }
                free(c.out);
                free(c.err);
                return ec;
        }
}

static int parse_id(const char *sub, const char *s, uint64_t *ret)
{
        if (parse_u64(s, INT64_MAX, ret) < 0 || *ret == 0)
                return cli_fail(sub, EXIT_USAGE,
                                "'%s' is not a request id — ids are positive numbers, see "
                                "'airlock requests'",
                                s);
        return 0;
}

static int parse_wait(const char *sub, const char *s, uint64_t *ret_ms)
{
        uint64_t sec;

        if (parse_u64(s, PROTO_MAX_WAIT_MS / 1000, &sec) < 0)
                return cli_fail(sub, EXIT_USAGE,
                                "--wait '%s' is not a number of seconds (0..86400) — e.g. --wait "
                                "300",
                                s);
        *ret_ms = sec * 1000;
        return 0;
}

/* ---- exec ---- */

static int cmd_exec(int argc, char **argv)
{
        static const struct option opts[] = {
                { "host", required_argument, NULL, 'H' },   { "why", required_argument, NULL, 'w' },
                { "wait", required_argument, NULL, 'W' },   { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' }, {},
        };
        ClientOpts o = { .sub = "exec" };
        const char *host = NULL, *why = NULL;
        uint64_t wait_ms = DEFAULT_WAIT_SEC * 1000;
        _cleanup_(json_decrefp) json_t *req = NULL, *a = NULL;
        _cleanup_close_ int fd = -EBADF;
        char cwd[4096];
        int c, r;

        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0)
                switch (c) {
                case 'H':
                        host = optarg;
                        break;
                case 'w':
                        why = optarg;
                        break;
                case 'W':
                        if (parse_wait(o.sub, optarg, &wait_ms))
                                return EXIT_USAGE;
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 's':
                        o.socket = optarg;
                        break;
                default:
                        return cli_fail(o.sub, EXIT_USAGE,
                                        "unknown option — run 'airlock exec --help'");
                }
        if (optind >= argc)
                return cli_fail(o.sub, EXIT_USAGE,
                                "no command given — e.g. 'airlock exec --why \"...\" -- systemctl "
                                "restart nginx'");
        if (argc - optind > PROTO_MAX_ARGV)
                return cli_fail(o.sub, EXIT_USAGE, "more than %d arguments — split the command",
                                PROTO_MAX_ARGV);
        if (why && strlen(why) > PROTO_MAX_WHY)
                return cli_fail(o.sub, EXIT_USAGE, "--why is longer than %d bytes — shorten it",
                                PROTO_MAX_WHY);
        if (!getcwd(cwd, sizeof(cwd)))
                strcpy(cwd, "/");
        a = json_array();
        if (!a)
                return EXIT_INTERNAL;
        for (int i = optind; i < argc; i++) {
                json_t *s = json_string(argv[i]);

                if (!s)
                        return cli_fail(o.sub, EXIT_USAGE,
                                        "argument %d is not valid UTF-8 — the broker takes text "
                                        "arguments only",
                                        i - optind + 1);
                json_array_append_new(a, s);
        }
        req = json_pack("{s:s, s:O, s:s, s:I}", "type", "exec", "argv", a, "cwd", cwd, "wait_ms",
                        (json_int_t)wait_ms);
        if (!req || (host && json_object_set_new(req, "host", json_string(host)) < 0) ||
            (why && json_object_set_new(req, "why", json_string(why)) < 0))
                return cli_fail(o.sub, EXIT_USAGE, "--host and --why must be valid UTF-8 text");
        r = connect_or_explain(&o, true, &fd);
        if (r)
                return r;
        r = proto_write(fd, req);
        if (r < 0)
                return cli_fail(o.sub, EXIT_UNAVAILABLE,
                                "cannot send the request to the broker: %s — is it running?",
                                strerror(-r));
        return follow(&o, fd, false);
}

/* ---- wait ---- */

static int cmd_wait(int argc, char **argv)
{
        static const struct option opts[] = {
                { "wait", required_argument, NULL, 'W' },
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                {},
        };
        ClientOpts o = { .sub = "wait" };
        uint64_t wait_ms = 3600 * 1000, id;
        _cleanup_(json_decrefp) json_t *req = NULL;
        _cleanup_close_ int fd = -EBADF;
        int c, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'W':
                        if (parse_wait(o.sub, optarg, &wait_ms))
                                return EXIT_USAGE;
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 's':
                        o.socket = optarg;
                        break;
                default:
                        return cli_fail(o.sub, EXIT_USAGE,
                                        "unknown option — run 'airlock wait --help'");
                }
        if (argc - optind != 1)
                return cli_fail(o.sub, EXIT_USAGE, "give one request id — e.g. 'airlock wait 12'");
        if (parse_id(o.sub, argv[optind], &id))
                return EXIT_USAGE;
        req = json_pack("{s:s, s:I, s:I}", "type", "wait", "id", (json_int_t)id, "wait_ms",
                        (json_int_t)wait_ms);
        if (!req)
                return EXIT_INTERNAL;
        r = connect_or_explain(&o, true, &fd);
        if (r)
                return r;
        r = proto_write(fd, req);
        if (r < 0)
                return cli_fail(o.sub, EXIT_UNAVAILABLE, "cannot send to the broker: %s",
                                strerror(-r));
        return follow(&o, fd, true);
}

/* One request-reply exchange; returns 0 and the reply (not an error), or an exit code. */
static int call(const ClientOpts *o, bool session_ok, json_t *req, json_t **ret)
{
        _cleanup_close_ int fd = -EBADF;
        json_t *reply = NULL;
        int r;

        if (!req)
                return EXIT_INTERNAL;
        r = connect_or_explain(o, session_ok, &fd);
        if (r)
                return r;
        r = broker_call(fd, req, &reply);
        if (r < 0)
                return cli_fail(o->sub, EXIT_UNAVAILABLE,
                                "no answer from the broker: %s — is it running?", strerror(-r));
        if (streq(jstr(reply, "type") ?: "", "error")) {
                r = error_exit(o->sub, reply);
                json_decref(reply);
                return r;
        }
        *ret = reply;
        return 0;
}

/* ---- requests ---- */

static int cmd_requests(int argc, char **argv)
{
        static const struct option opts[] = {
                { "all", no_argument, NULL, 'a' },
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                {},
        };
        ClientOpts o = { .sub = "requests" };
        _cleanup_(json_decrefp) json_t *reply = NULL, *req = NULL;
        bool all = false;
        json_t *list, *r;
        size_t i;
        int c, k;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'a':
                        all = true;
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 's':
                        o.socket = optarg;
                        break;
                default:
                        return cli_fail(o.sub, EXIT_USAGE,
                                        "unknown option — run 'airlock requests --help'");
                }
        if (optind != argc)
                return cli_fail(o.sub, EXIT_USAGE, "takes no arguments — run 'airlock requests'");
        req = json_pack("{s:s, s:b}", "type", "list", "all", all);
        k = call(&o, false, req, &reply);
        if (k)
                return k;
        list = json_object_get(reply, "requests");
        if (o.json) {
                json_dumpf(list, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
                return EXIT_OK;
        }
        if (json_array_size(list) == 0) {
                printf(all ? "No requests.\n" : "No pending requests.\n");
                return EXIT_OK;
        }
        printf("%-6s %-11s %-28s %s\n", "ID", "STATE", "ASKED BY", "COMMAND");
        json_array_foreach(list, i, r)
        {
                _cleanup_free_ char *cmd = argv_display_escaped(json_object_get(r, "argv"));
                json_t *who = json_object_get(r, "requester");
                char by[128];
                _cleanup_free_ char *esc = NULL;

                if (streq(jstr(who, "kind") ?: "", "agent"))
                        snprintf(by, sizeof(by), "agent %s (session %" PRId64 ")",
                                 jstr(who, "agent") ?: "?", jint(who, "session", 0));
                else
                        snprintf(by, sizeof(by), "%s", jstr(who, "user") ?: "?");
                esc = escape_for_terminal(by);
                printf("%-6" PRId64 " %-11s %-28s %s%s%s\n", jint(r, "id", 0),
                       jstr(r, "state") ?: "?", esc ?: "?", cmd ?: "?", jstr(r, "host") ? " @" : "",
                       jstr(r, "host") ? jstr(r, "host") : "");
        }
        return EXIT_OK;
}

/* ---- show ---- */

static int fetch(const ClientOpts *o, bool session_ok, uint64_t id, json_t **ret)
{
        _cleanup_(json_decrefp) json_t *req =
                json_pack("{s:s, s:I}", "type", "show", "id", (json_int_t)id);

        return call(o, session_ok, req, ret);
}

static int cmd_show(int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                {},
        };
        ClientOpts o = { .sub = "show" };
        _cleanup_(json_decrefp) json_t *reply = NULL;
        uint64_t id;
        int c, k;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'j':
                        o.json = true;
                        break;
                case 's':
                        o.socket = optarg;
                        break;
                default:
                        return cli_fail(o.sub, EXIT_USAGE,
                                        "unknown option — run 'airlock show --help'");
                }
        if (argc - optind != 1)
                return cli_fail(o.sub, EXIT_USAGE, "give one request id — e.g. 'airlock show 12'");
        if (parse_id(o.sub, argv[optind], &id))
                return EXIT_USAGE;
        k = fetch(&o, true, id, &reply);
        if (k)
                return k;
        if (o.json) {
                json_dumpf(json_object_get(reply, "request"), stdout, JSON_INDENT(2));
                fputc('\n', stdout);
        } else
                print_request(stdout, json_object_get(reply, "request"));
        return EXIT_OK;
}

/* ---- approve, deny ---- */

static int verdict(int argc, char **argv, bool approve)
{
        static const struct option opts[] = {
                { "why", required_argument, NULL, 'w' },
                { "digest", required_argument, NULL, 'D' },
                { "json", no_argument, NULL, 'j' },
                { "socket", required_argument, NULL, 's' },
                {},
        };
        ClientOpts o = { .sub = approve ? "approve" : "deny" };
        _cleanup_(json_decrefp) json_t *shown = NULL, *reply = NULL, *req = NULL;
        const char *why = NULL, *digest = NULL;
        json_t *r;
        uint64_t id;
        int c, k;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'w':
                        why = optarg;
                        break;
                case 'D':
                        digest = optarg;
                        break;
                case 'j':
                        o.json = true;
                        break;
                case 's':
                        o.socket = optarg;
                        break;
                default:
                        return cli_fail(o.sub, EXIT_USAGE,
                                        "unknown option — run 'airlock %s --help'", o.sub);
                }
        if (argc - optind != 1)
                return cli_fail(o.sub, EXIT_USAGE, "give one request id — e.g. 'airlock %s 12'",
                                o.sub);
        if (parse_id(o.sub, argv[optind], &id))
                return EXIT_USAGE;
        if (!approve && isempty(why))
                return cli_fail(o.sub, EXIT_USAGE,
                                "say why with --why TEXT — the requester is shown your reason");
        if (why && strlen(why) > PROTO_MAX_WHY)
                return cli_fail(o.sub, EXIT_USAGE, "--why is longer than %d bytes — shorten it",
                                PROTO_MAX_WHY);

        if (approve && !digest) {
                /* fetch and show exactly what is being approved; the approval names its digest */
                k = fetch(&o, false, id, &shown);
                if (k)
                        return k;
                r = json_object_get(shown, "request");
                if (!o.json) {
                        print_request(stdout, r);
                        fputc('\n', stdout);
                        fflush(stdout);
                }
                digest = jstr(r, "digest");
                if (!digest)
                        return cli_fail(o.sub, EXIT_INTERNAL,
                                        "the broker sent a request without a digest — upgrade "
                                        "airlock");
        }
        req = approve ? json_pack("{s:s, s:I, s:s}", "type", "approve", "id", (json_int_t)id,
                                  "digest", digest)
                      : json_pack("{s:s, s:I, s:s}", "type", "deny", "id", (json_int_t)id, "why",
                                  why);
        if (req && approve && why)
                json_object_set_new(req, "why", json_string(why));
        k = call(&o, false, req, &reply);
        if (k)
                return k;
        r = json_object_get(reply, "request");
        if (o.json) {
                json_dumpf(r, stdout, JSON_INDENT(2));
                fputc('\n', stdout);
                return EXIT_OK;
        }
        if (!approve)
                printf("Denied request %" PRId64 ".\n", jint(r, "id", 0));
        else if (streq(jstr(r, "state") ?: "", "pending"))
                printf("Approval recorded for request %" PRId64 " (%" PRId64 " of %" PRId64
                       "); it needs another approver.\n",
                       jint(r, "id", 0), jint(r, "approvals", 0),
                       jint(json_object_get(r, "decision"), "approvers", 0));
        else
                printf("Approved request %" PRId64 "; the broker runs it now (follow it with "
                       "'airlock wait %" PRId64 "').\n",
                       jint(r, "id", 0), jint(r, "id", 0));
        return EXIT_OK;
}

static int cmd_approve(int argc, char **argv)
{
        return verdict(argc, argv, true);
}

static int cmd_deny(int argc, char **argv)
{
        return verdict(argc, argv, false);
}

const CliCommand cli_command_exec = {
        .name = "exec",
        .summary = "ask the broker to run a command (policy decides; approval if needed)",
        .usage =
                "Usage: airlock exec [--host H] [--why TEXT] [--wait SEC] [--json] [--socket PATH] "
                "-- CMD...\n\n"
                "Asks airlockd to run CMD. Inside 'airlock run' the request goes over the\n"
                "sandbox's session socket (as the agent); outside, over the admin socket (as\n"
                "you). The policy decides: allow runs it now and streams its output; approve\n"
                "waits up to --wait seconds (default 60) for an approver, then prints the\n"
                "request id; deny prints the reasons.\n\n"
                "  --host H       run it on inventory host H (through its connect command)\n"
                "  --why TEXT     your reason, shown to the approver as your own words\n"
                "  --wait SEC     how long to wait for an approval (0: do not wait)\n"
                "  --json         print the request, stdout and stderr as one JSON object\n"
                "  --socket PATH  the broker's socket (default: $AIRLOCK_SESSION_SOCKET inside\n"
                "                 a sandbox, else $AIRLOCK_SOCKET or /run/airlock/admin.sock)\n\n"
                "Exit status: the command's own; 75 still waiting for approval (see\n"
                "'airlock wait ID'); 77 denied or expired; 69 no broker.\n",
        .run = cmd_exec,
};

const CliCommand cli_command_wait = {
        .name = "wait",
        .summary = "wait for a request's approval and its output",
        .usage = "Usage: airlock wait [--wait SEC] [--json] [--socket PATH] ID\n\n"
                 "Waits up to --wait seconds (default 3600) for request ID to be decided, then\n"
                 "streams its output. Exit status as for 'airlock exec'.\n",
        .run = cmd_wait,
};

const CliCommand cli_command_requests = {
        .name = "requests",
        .summary = "list requests waiting for approval (--all: recent ones too)",
        .usage = "Usage: airlock requests [--all] [--json] [--socket PATH]\n\n"
                 "Lists pending requests (with --all, the last 200 of any state). Approvers\n"
                 "see every request; others only their own and their agents'.\n",
        .run = cmd_requests,
};

const CliCommand cli_command_show = {
        .name = "show",
        .summary = "show one request: who asks, what exactly, and why",
        .usage = "Usage: airlock show [--json] [--socket PATH] ID\n\n"
                 "Shows request ID: the facts the broker derived (who asks, the exact command,\n"
                 "user, directory, environment, host, the policy's decision, the digest an\n"
                 "approval binds to) and, apart from them, the requester's own words.\n",
        .run = cmd_show,
};

const CliCommand cli_command_approve = {
        .name = "approve",
        .summary = "approve a pending request (from outside every sandbox)",
        .usage =
                "Usage: airlock approve [--why TEXT] [--digest HEX] [--json] [--socket PATH] ID\n\n"
                "Shows request ID, then approves exactly what was shown: the approval names\n"
                "its digest, so any other command needs a new approval. With --digest, approves\n"
                "only if the request still has that digest (from 'airlock show --json').\n"
                "Only approvers by policy may approve, never from inside a sandbox, and never\n"
                "their own request.\n",
        .run = cmd_approve,
};

const CliCommand cli_command_deny = {
        .name = "deny",
        .summary = "deny a pending request, saying why",
        .usage = "Usage: airlock deny --why TEXT [--json] [--socket PATH] ID\n\n"
                 "Denies request ID; the requester sees your reason.\n",
        .run = cmd_deny,
};
