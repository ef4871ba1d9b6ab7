/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlock doctor: read-only diagnostics across the inventory (issue 7).
 * `--local` gathers this host's facts; without it, every inventory host is
 * asked in parallel through its `connect:` transport and the answers are
 * analysed together. `--fix` turns findings into an ordered repair plan.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "broker/client.h"
#include "broker/proto.h"
#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "config.h"
#include "doctor/doctor.h"
#include "policy/policy.h"

#define SUB "doctor"

static int load_policy(const char *path, Policy **ret)
{
        PolicyError err = {};
        char msg[1024];
        int r;

        if (!path)
                path = getenv("AIRLOCK_POLICY");
        r = path ? policy_load_file(path, ret, &err)
                 : policy_load_standard(AIRLOCK_POLICY_PATH, ret, &err);
        if (r < 0) {
                policy_error_format(&err, msg, sizeof(msg));
                return cli_fail(SUB, EXIT_POLICY,
                                "cannot load the policy: %s — fix it (airlock policy check) or "
                                "pass --policy FILE",
                                msg);
        }
        return 0;
}

static int print_json(json_t *j)
{
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

        if (!s)
                return -ENOMEM;
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
        return fflush(stdout) == 0 ? 0 : -EIO;
}

/* Polls the local corosync until it is quorate with every node of its nodelist. */
static bool local_quorate_complete(json_t *facts)
{
        json_t *rt = json_object_get(json_object_get(facts, "corosync"), "runtime"),
               *q = json_object_get(rt, "quorum");

        return q && json_is_true(json_object_get(q, "quorate")) &&
               json_array_size(json_object_get(q, "members")) ==
                       json_array_size(json_object_get(rt, "nodelist")) &&
               json_array_size(json_object_get(rt, "nodelist")) > 0;
}

static int run_local(const DoctorLocalOptions *o, bool json, uint64_t wait_quorate_sec)
{
        json_t *facts = NULL;
        uint64_t deadline = now_monotonic_usec() + wait_quorate_sec * 1000000;
        int r;

        for (;;) {
                json_decref(facts);
                facts = NULL;
                r = doctor_local_facts(o, &facts);
                if (r < 0)
                        return cli_fail(SUB, EXIT_INTERNAL, "cannot gather facts: %s",
                                        strerror(-r));
                if (!wait_quorate_sec || local_quorate_complete(facts) ||
                    now_monotonic_usec() >= deadline)
                        break;
                usleep(250000);
        }
        if (json)
                r = print_json(facts);
        else {
                json_t *c = json_object_get(facts, "corosync"), *rt = json_object_get(c, "runtime");
                printf("host %s: corosync %s, %s, %s\n",
                       json_string_value(json_object_get(facts, "hostname")),
                       json_is_true(json_object_get(c, "installed")) ? "installed"
                                                                     : "not installed",
                       json_is_true(json_object_get(c, "enabled")) ? "enabled" : "not enabled",
                       json_is_true(json_object_get(c, "running")) ? "running" : "not running");
                if (rt)
                        printf("cluster %s, node id %lld, %s\n",
                               json_string_value(json_object_get(rt, "cluster_name")),
                               (long long)json_integer_value(json_object_get(rt, "node_id")),
                               json_is_true(
                                       json_object_get(json_object_get(rt, "quorum"), "quorate"))
                                       ? "quorate"
                                       : "not quorate");
                r = 0;
        }
        if (wait_quorate_sec && !local_quorate_complete(facts)) {
                json_decref(facts);
                return cli_fail(SUB, EXIT_CHECK_FAILED,
                                "corosync is not quorate with every node of its nodelist after "
                                "%llu s — check "
                                "`airlock doctor` across the cluster",
                                (unsigned long long)wait_quorate_sec);
        }
        json_decref(facts);
        return r < 0 ? EXIT_INTERNAL : EXIT_OK;
}

static void progress_line(size_t done, size_t total, const char *last, void *userdata)
{
        _cleanup_free_ char *e = escape_for_terminal(last);
        fprintf(stderr, "\r\033[Kdoctor: %zu/%zu hosts answered (last: %s)", done, total,
                e ? e : "?");
        if (done == total)
                fputs("\r\033[K", stderr);
        fflush(stderr);
}

static void print_findings_text(json_t *findings, json_t *reports, double seconds)
{
        size_t i, j, crit = 0, n = json_array_size(findings), answered = 0;
        json_t *f, *e, *r;
        const char *h;

        json_object_foreach(reports, h, r) if (json_is_true(json_object_get(r, "ok"))) answered++;
        json_array_foreach(findings, i, f)
        {
                const char *sev = json_string_value(json_object_get(f, "severity"));
                _cleanup_free_ char *title =
                        escape_for_terminal(json_string_value(json_object_get(f, "title")));
                char up[16];
                size_t k;

                for (k = 0; sev[k] && k < sizeof(up) - 1; k++)
                        up[k] = (char)(sev[k] >= 'a' && sev[k] <= 'z' ? sev[k] - 32 : sev[k]);
                up[k] = '\0';
                if (streq(sev, "critical"))
                        crit++;
                printf("%-8s  %s\n", up, title ? title : "");
                json_array_foreach(json_object_get(f, "evidence"), j, e)
                {
                        _cleanup_free_ char *ev = escape_for_terminal(json_string_value(e));
                        printf("          - %s\n", ev ? ev : "");
                }
                printf("          meaning: %s\n\n",
                       json_string_value(json_object_get(f, "meaning")));
        }
        if (n == 0)
                printf("%zu hosts asked, %zu answered in %.2f s: no findings.\n",
                       json_object_size(reports), answered, seconds);
        else
                printf("%zu hosts asked, %zu answered in %.2f s: %zu findings (%zu critical).\n",
                       json_object_size(reports), answered, seconds, n, crit);
}

static void print_plan_text(json_t *plan)
{
        size_t i;
        json_t *s;

        if (json_array_size(plan) == 0) {
                printf("Repair plan: nothing to do.\n");
                return;
        }
        printf("Repair plan (%zu steps, in order; each needs approval):\n", json_array_size(plan));
        json_array_foreach(plan, i, s)
        {
                json_t *a = json_object_get(s, "argv");
                _cleanup_strv_free_ char **argv = NULL;
                _cleanup_free_ char *disp = NULL, *why = NULL;
                size_t k;
                json_t *v;

                json_array_foreach(a, k, v) strv_extend(&argv, json_string_value(v));
                disp = argv ? argv_to_display(argv) : NULL;
                why = escape_for_terminal(json_string_value(json_object_get(s, "why")));
                printf("%3lld. [%s] %-7s %s\n       why: %s\n",
                       (long long)json_integer_value(json_object_get(s, "step")),
                       json_string_value(json_object_get(s, "host")),
                       json_string_value(json_object_get(s, "kind")), disp ? disp : "?",
                       why ? why : "");
        }
}

/* --capture SECONDS, passed on to every host's --local. */
static unsigned arg_capture;
/* --audit-log PATH: explains secret changes; NULL = the default, if present. */
static const char *arg_audit_log;
static bool arg_audit_log_explicit;

#define MAX_AUDIT_LOG_SIZE (512u * 1024 * 1024)

/*
 * Reads the audit log's records (airlock-log(5)) into *ret. Returns 0, or
 * -ENOENT when the default log does not exist, or another negative errno
 * (the line that failed is reported in why).
 */
static int read_audit_records(const char *path, json_t **ret, char *why, size_t why_size)
{
        _cleanup_free_ char *text = NULL;
        size_t size = 0, line = 0;
        json_t *a;
        char *p, *nl;
        int r;

        r = read_full_file(path, MAX_AUDIT_LOG_SIZE, &text, &size);
        if (r < 0) {
                snprintf(why, why_size, "%s", strerror(-r));
                return r;
        }
        a = json_array();
        if (!a)
                return -ENOMEM;
        for (p = text; p < text + size; p = nl + 1) {
                json_t *rec = NULL;

                nl = memchr(p, '\n', (size_t)(text + size - p));
                if (!nl)
                        break; /* a torn last line: the writer repairs it; nothing to explain with
                                */
                line++;
                if (audit_parse_record(p, (size_t)(nl - p), &rec) < 0) {
                        snprintf(why, why_size, "line %zu is not a valid record", line);
                        json_decref(a);
                        return -EBADMSG;
                }
                json_array_append_new(a, rec);
        }
        *ret = a;
        return 0;
}

static int explain_with_audit_log(json_t *findings)
{
        const char *path = arg_audit_log ? arg_audit_log : AIRLOCK_STATE_DIR "/audit.log";
        json_t *records = NULL;
        char why[256] = "";
        bool any = false;
        size_t i;
        json_t *f;
        int r;

        json_array_foreach(findings, i,
                           f) if (streq(json_string_value(json_object_get(f, "kind")) ?: "",
                                        "secret-changed")) any = true;
        if (!any)
                return 0;
        r = read_audit_records(path, &records, why, sizeof(why));
        if (r == -ENOENT && !arg_audit_log_explicit)
                return 0;
        if (r < 0) {
                /* Fails closed: the findings stay warnings, and say why they are unexplained. */
                json_array_foreach(findings, i, f)
                {
                        char ev[512];
                        if (!streq(json_string_value(json_object_get(f, "kind")) ?: "",
                                   "secret-changed"))
                                continue;
                        snprintf(ev, sizeof(ev), "cannot check the audit log %s: %s", path, why);
                        json_array_append_new(json_object_get(f, "evidence"), json_string(ev));
                }
                return 0;
        }
        r = doctor_explain_secret_changes(findings, records, path);
        json_decref(records);
        return r;
}

static int build_targets(const Policy *p, char **only, const char *remote_airlock, uint64_t since,
                         DoctorTarget **ret_targets, size_t *ret_n, PolicyHost **ret_hosts)
{
        _cleanup_free_ DoctorTarget *t = calloc(p->n_hosts ? p->n_hosts : 1, sizeof(DoctorTarget));
        _cleanup_free_ PolicyHost *hosts = calloc(p->n_hosts ? p->n_hosts : 1, sizeof(PolicyHost));
        char since_s[32];
        size_t n = 0;

        if (!t || !hosts)
                return -ENOMEM;
        snprintf(since_s, sizeof(since_s), "%llu", (unsigned long long)since);
        STRV_FOREACH (h, only)
                if (!policy_find_host(p, *h))
                        return cli_fail(SUB, EXIT_USAGE,
                                        "host '%s' is not in the policy's inventory — add it under "
                                        "hosts: or check the name",
                                        *h);
        for (size_t i = 0; i < p->n_hosts; i++) {
                const PolicyHost *h = &p->hosts[i];
                char **argv = NULL;
                int r = 0;

                if (only && !strv_contains(only, h->name))
                        continue;
                if (h->connect)
                        STRV_FOREACH (c, h->connect)
                                r = r < 0 ? r : strv_extend(&argv, *c);
                else {
                        _cleanup_free_ char *dest = NULL;
                        if (asprintf(&dest, "root@%s", h->address) < 0)
                                r = -ENOMEM;
                        r = r < 0 ? r : strv_extend(&argv, "ssh");
                        r = r < 0 ? r : strv_extend(&argv, "-T");
                        r = r < 0 ? r : strv_extend(&argv, "-o");
                        r = r < 0 ? r : strv_extend(&argv, "BatchMode=yes");
                        r = r < 0 ? r : strv_extend(&argv, "--");
                        r = r < 0 ? r : strv_extend(&argv, dest);
                }
                r = r < 0 ? r : strv_extend(&argv, remote_airlock);
                r = r < 0 ? r : strv_extend(&argv, "doctor");
                r = r < 0 ? r : strv_extend(&argv, "--local");
                r = r < 0 ? r : strv_extend(&argv, "--json");
                r = r < 0 ? r : strv_extend(&argv, "--since");
                r = r < 0 ? r : strv_extend(&argv, since_s);
                if (arg_capture > 0) {
                        char cap[16];
                        snprintf(cap, sizeof(cap), "%u", arg_capture);
                        r = r < 0 ? r : strv_extend(&argv, "--capture");
                        r = r < 0 ? r : strv_extend(&argv, cap);
                }
                if (r < 0) {
                        strv_free(argv);
                        for (size_t k = 0; k < n; k++)
                                strv_free(t[k].argv);
                        return -ENOMEM;
                }
                t[n].name = h->name;
                t[n].argv = argv;
                hosts[n] = *h;
                n++;
        }
        *ret_targets = TAKE_PTR(t);
        *ret_hosts = TAKE_PTR(hosts);
        *ret_n = n;
        return 0;
}

/* Asks the hosts and analyses their answers. Returns 0, or an exit code after cli_fail(). */
static int survey(const Policy *p, char **only, const char *remote_airlock, uint64_t since,
                  uint64_t timeout, uint64_t parallel, PolicyHost **ret_hosts, size_t *ret_n,
                  json_t **ret_reports, json_t **ret_findings, double *ret_secs)
{
        _cleanup_free_ DoctorTarget *targets = NULL;
        _cleanup_free_ PolicyHost *hosts = NULL;
        json_t *reports = NULL, *findings = NULL;
        uint64_t t0 = now_monotonic_usec();
        size_t n = 0;
        int r;

        r = build_targets(p, only, remote_airlock, since, &targets, &n, &hosts);
        if (r != 0)
                return r < 0 ? cli_fail(SUB, EXIT_INTERNAL, "out of memory") : r;
        r = doctor_gather(targets, n, (unsigned)parallel, (timeout + arg_capture) * 1000000,
                          isatty(2) ? progress_line : NULL, NULL, &reports);
        for (size_t i = 0; i < n; i++)
                strv_free(targets[i].argv);
        if (r < 0)
                return cli_fail(SUB, EXIT_INTERNAL,
                                "cannot run the transports: %s — check fork/pipe limits",
                                strerror(-r));
        *ret_secs = (double)(now_monotonic_usec() - t0) / 1e6;
        r = doctor_findings(hosts, n, reports, &findings);
        if (r >= 0)
                r = explain_with_audit_log(findings);
        if (r < 0) {
                json_decref(reports);
                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
        }
        *ret_hosts = TAKE_PTR(hosts);
        *ret_n = n;
        *ret_reports = reports;
        *ret_findings = findings;
        return 0;
}

static const char *broker_socket(const char *opt)
{
        if (opt)
                return opt;
        if (!getenv("AIRLOCK_SOCKET") && access(BROKER_SESSION_SOCKET_IN_SANDBOX, F_OK) == 0)
                return BROKER_SESSION_SOCKET_IN_SANDBOX;
        return broker_admin_socket_path();
}

/*
 * Submits the plan to the broker one step at a time, in order: each step is
 * a request the policy judges and (normally) a human approves; the next step
 * is submitted only after the previous one succeeded. The doctor itself
 * changes nothing. Returns EXIT_OK when every step succeeded, else the exit
 * code that says why it stopped (and says so on stderr).
 */
static int submit_plan(json_t *plan, const char *socket_path, uint64_t wait_sec, bool json)
{
        size_t i;
        json_t *s;

        json_array_foreach(plan, i, s)
        {
                _cleanup_close_ int fd = -EBADF;
                json_t *req;
                const char *host = json_string_value(json_object_get(s, "host"));
                long long step = (long long)json_integer_value(json_object_get(s, "step"));
                int64_t id = -1;
                int r;

                r = broker_connect(socket_path, &fd);
                if (r < 0)
                        return cli_fail(SUB, EXIT_UNAVAILABLE,
                                        "no broker at %s: %s — start it ('airlockd' or 'systemctl "
                                        "start airlockd') "
                                        "or point --socket / AIRLOCK_SOCKET at its admin socket; "
                                        "nothing was submitted "
                                        "from step %lld on",
                                        socket_path, strerror(-r), step);
                req = json_pack("{s:s,s:O,s:s,s:s,s:s,s:I}", "type", "exec", "argv",
                                json_object_get(s, "argv"), "host", host, "why",
                                json_string_value(json_object_get(s, "why")), "cwd", "/", "wait_ms",
                                (json_int_t)(wait_sec * 1000));
                if (!req)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                r = proto_write(fd, req);
                json_decref(req);
                if (r < 0)
                        return cli_fail(SUB, EXIT_UNAVAILABLE,
                                        "cannot send step %lld to the broker: %s — is it running?",
                                        step, strerror(-r));
                for (;;) {
                        json_t *m = NULL, *rq;
                        const char *type, *state;

                        r = proto_read(fd, &m);
                        if (r <= 0)
                                return cli_fail(SUB, EXIT_UNAVAILABLE,
                                                "the broker closed the connection during step %lld "
                                                "(%s) — check "
                                                "'airlock requests'",
                                                step, r == 0 ? "end of stream" : strerror(-r));
                        type = json_string_value(json_object_get(m, "type"));
                        rq = json_object_get(m, "request");
                        if (json_is_integer(json_object_get(rq, "id")))
                                id = json_integer_value(json_object_get(rq, "id"));
                        state = json_string_value(json_object_get(rq, "state"));
                        if (!type || streq(type, "output")) {
                                json_decref(m);
                                continue;
                        }
                        if (streq(type, "error")) {
                                _cleanup_free_ char *e = escape_for_terminal(
                                        json_string_value(json_object_get(m, "message")));
                                json_decref(m);
                                return cli_fail(SUB, EXIT_DENIED,
                                                "step %lld on %s was refused by the broker: %s",
                                                step, host, e ? e : "?");
                        }
                        if (streq(type, "request")) {
                                if (state && streq(state, "pending") && !json)
                                        fprintf(stderr,
                                                "airlock: doctor: step %lld on %s is request %lld "
                                                "— waiting for an "
                                                "approver ('airlock show %lld', 'airlock approve "
                                                "%lld')\n",
                                                step, host, (long long)id, (long long)id,
                                                (long long)id);
                                json_decref(m);
                                continue;
                        }
                        if (streq(type, "still-pending")) {
                                json_decref(m);
                                return cli_fail(SUB, EXIT_TIMEOUT,
                                                "step %lld (request %lld) is still waiting for "
                                                "approval after %llu s — "
                                                "approve it, then rerun 'airlock doctor --fix' for "
                                                "the rest",
                                                step, (long long)id, (unsigned long long)wait_sec);
                        }
                        if (streq(type, "done")) {
                                bool ok =
                                        state && streq(state, "succeeded") &&
                                        json_integer_value(json_object_get(rq, "exit_status")) == 0;
                                _cleanup_free_ char *st = escape_for_terminal(state ? state : "?");
                                long long es = (long long)json_integer_value(
                                        json_object_get(rq, "exit_status"));

                                json_decref(m);
                                if (!ok)
                                        return cli_fail(SUB,
                                                        state && (streq(state, "denied") ||
                                                                  streq(state, "expired"))
                                                                ? EXIT_DENIED
                                                                : EXIT_CHECK_FAILED,
                                                        "step %lld (request %lld) on %s %s (exit "
                                                        "status %lld) — the rest "
                                                        "of the plan was not submitted; see "
                                                        "'airlock show %lld'",
                                                        step, (long long)id, host, st, es,
                                                        (long long)id);
                                if (!json)
                                        fprintf(stderr,
                                                "airlock: doctor: step %lld on %s done (request "
                                                "%lld)\n",
                                                step, host, (long long)id);
                                break;
                        }
                        json_decref(m); /* a newer broker's message: skip */
                }
        }
        return EXIT_OK;
}

static int cmd_doctor(int argc, char **argv)
{
        static const struct option options[] = {
                { "local", no_argument, NULL, 'l' },
                { "json", no_argument, NULL, 'j' },
                { "host", required_argument, NULL, 'H' },
                { "policy", required_argument, NULL, 'p' },
                { "timeout", required_argument, NULL, 't' },
                { "parallel", required_argument, NULL, 'P' },
                { "remote-airlock", required_argument, NULL, 'R' },
                { "since", required_argument, NULL, 's' },
                { "recent", required_argument, NULL, 'r' },
                { "no-management", no_argument, NULL, 'M' },
                { "wait-quorate", required_argument, NULL, 'w' },
                { "fix", no_argument, NULL, 'f' },
                { "dry-run", no_argument, NULL, 'n' },
                { "socket", required_argument, NULL, 'S' },
                { "capture", required_argument, NULL, 'C' },
                { "audit-log", required_argument, NULL, 'A' },
                { "wait", required_argument, NULL, 'W' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool local = false, json = false, fix = false, dry_run = false, management = true;
        _cleanup_strv_free_ char **only = NULL;
        const char *socket_path = NULL;
        uint64_t wait_approval = 3600, capture = 0;
        const char *policy_path = NULL, *remote_airlock = getenv("AIRLOCK_DOCTOR_REMOTE_AIRLOCK");
        uint64_t timeout = 20, parallel = 32, since = UINT64_MAX, recent = 86400, wait_quorate = 0;
        _cleanup_(policy_freep) Policy *p = NULL;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                switch (c) {
                case 'l':
                        local = true;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'H':
                        if (strv_extend(&only, optarg) < 0)
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                        break;
                case 'p':
                        policy_path = optarg;
                        break;
                case 't':
                        if (parse_u64(optarg, 3600, &timeout) < 0 || timeout == 0)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "invalid --timeout '%s' — give seconds, 1 to 3600",
                                                optarg);
                        break;
                case 'P':
                        if (parse_u64(optarg, 1024, &parallel) < 0 || parallel == 0)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "invalid --parallel '%s' — give 1 to 1024", optarg);
                        break;
                case 'R':
                        remote_airlock = optarg;
                        break;
                case 's':
                        if (parse_u64(optarg, UINT32_MAX * 2ULL, &since) < 0)
                                return cli_fail(
                                        SUB, EXIT_USAGE,
                                        "invalid --since '%s' — give seconds since the epoch",
                                        optarg);
                        break;
                case 'r':
                        if (parse_u64(optarg, UINT32_MAX, &recent) < 0)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "invalid --recent '%s' — give seconds", optarg);
                        break;
                case 'M':
                        management = false;
                        break;
                case 'w':
                        if (parse_u64(optarg, 3600, &wait_quorate) < 0 || wait_quorate == 0)
                                return cli_fail(
                                        SUB, EXIT_USAGE,
                                        "invalid --wait-quorate '%s' — give seconds, 1 to 3600",
                                        optarg);
                        break;
                case 'f':
                        fix = true;
                        break;
                case 'n':
                        dry_run = true;
                        break;
                case 'S':
                        socket_path = optarg;
                        break;
                case 'A':
                        arg_audit_log = optarg;
                        arg_audit_log_explicit = true;
                        break;
                case 'C':
                        if (parse_u64(optarg, 300, &capture) < 0 || capture == 0)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "invalid --capture '%s' — give seconds, 1 to 300",
                                                optarg);
                        break;
                case 'W':
                        if (parse_u64(optarg, 86400, &wait_approval) < 0 || wait_approval == 0)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "invalid --wait '%s' — give seconds, 1 to 86400",
                                                optarg);
                        break;
                case 'h':
                        cli_print_usage(&cli_command_doctor, false);
                        return EXIT_OK;
                default:
                        cli_print_usage(&cli_command_doctor, true);
                        return EXIT_USAGE;
                }
        }
        if (optind < argc)
                return cli_fail(SUB, EXIT_USAGE,
                                "unexpected argument '%s' — see airlock doctor --help",
                                argv[optind]);
        arg_capture = (unsigned)capture;
        if (since == UINT64_MAX) {
                uint64_t now = now_realtime_usec() / 1000000;
                since = now > recent ? now - recent : 0;
        }
        if (!remote_airlock)
                remote_airlock = "airlock";
        if (wait_quorate && !local)
                return cli_fail(SUB, EXIT_USAGE, "--wait-quorate works with --local only");
        if (dry_run && !fix)
                return cli_fail(SUB, EXIT_USAGE, "--dry-run goes with --fix");
        if (local && (fix || only))
                return cli_fail(SUB, EXIT_USAGE,
                                "--local gathers this host's facts only; --fix and --host work "
                                "across the inventory");

        r = load_policy(policy_path, &p);
        if (r != 0)
                return r;

        if (local) {
                _cleanup_strv_free_ char **globs = NULL;
                DoctorLocalOptions o = { .secrets_since_sec = since,
                                         .probe_management = management,
                                         .capture_seconds = (unsigned)capture };

                r = policy_secret_globs(p, &globs);
                if (r < 0)
                        return cli_fail(SUB, EXIT_INTERNAL,
                                        "cannot expand the policy's secrets: %s", strerror(-r));
                o.secret_globs = globs;
                return run_local(&o, json, wait_quorate);
        }

        if (p->n_hosts == 0)
                return cli_fail(SUB, EXIT_USAGE,
                                "the policy %s has no hosts — list them under hosts: (see "
                                "airlock-policy(5))",
                                p->source);
        {
                json_t *reports = NULL, *findings = NULL, *plan = NULL, *out = NULL;
                _cleanup_free_ PolicyHost *hosts = NULL;
                size_t n = 0;
                double secs;
                int ret;

                r = survey(p, only, remote_airlock, since, timeout, parallel, &hosts, &n, &reports,
                           &findings, &secs);
                if (r != 0)
                        return r;
                if (fix &&
                    doctor_fix_plan(hosts, n, reports, findings, remote_airlock, &plan) < 0) {
                        json_decref(reports);
                        json_decref(findings);
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                }
                ret = doctor_findings_count_problems(findings) > 0 ? EXIT_CHECK_FAILED : EXIT_OK;
                if (json) {
                        out = json_object();
                        json_object_set_new(out, "hosts", reports);
                        json_object_set_new(out, "findings", findings);
                        json_object_set_new(out, "elapsed_seconds", json_real(secs));
                        json_object_set_new(out, "secrets_since", json_integer((json_int_t)since));
                        if (plan)
                                json_object_set_new(out, "plan", json_incref(plan));
                } else {
                        print_findings_text(findings, reports, secs);
                        if (plan) {
                                printf("\n");
                                print_plan_text(plan);
                        }
                        json_decref(reports);
                        json_decref(findings);
                }
                fflush(stdout);

                if (fix && !dry_run && json_array_size(plan) > 0) {
                        json_t *reports2 = NULL, *findings2 = NULL;
                        _cleanup_free_ PolicyHost *hosts2 = NULL;
                        size_t n2 = 0;
                        double secs2;

                        ret = submit_plan(plan, broker_socket(socket_path), wait_approval, json);
                        json_object_set_new(out ? out : json_null(), "submitted",
                                            json_boolean(ret == EXIT_OK));
                        if (ret == EXIT_OK) {
                                /* Every step ran: look again, and say whether the cluster is
                                 * healthy. */
                                r = survey(p, only, remote_airlock, now_realtime_usec() / 1000000,
                                           timeout, parallel, &hosts2, &n2, &reports2, &findings2,
                                           &secs2);
                                if (r != 0) {
                                        json_decref(out);
                                        json_decref(plan);
                                        return r;
                                }
                                ret = doctor_findings_count_problems(findings2) > 0
                                              ? EXIT_CHECK_FAILED
                                              : EXIT_OK;
                                if (json) {
                                        json_object_set_new(out, "after",
                                                            json_pack("{s:o,s:o}", "hosts",
                                                                      reports2, "findings",
                                                                      findings2));
                                } else {
                                        printf("\nAfter the repair:\n");
                                        print_findings_text(findings2, reports2, secs2);
                                        if (ret == EXIT_OK)
                                                printf("The cluster is healthy again.\n");
                                        json_decref(reports2);
                                        json_decref(findings2);
                                }
                        }
                }
                if (out) {
                        if (print_json(out) < 0)
                                ret = EXIT_INTERNAL;
                        json_decref(out);
                }
                json_decref(plan);
                return ret;
        }
}

const CliCommand cli_command_doctor = {
        .name = "doctor",
        .summary = "find corosync cluster problems across the inventory (read-only)",
        .usage =
                "Usage: airlock doctor [--host H]... [--json] [--timeout SEC] [--parallel N]\n"
                "                      [--since EPOCH | --recent SEC] [--capture SEC]\n"
                "                      [--fix [--dry-run] [--socket PATH] [--wait SEC]]\n"
                "       airlock doctor --local [--json] [--since EPOCH | --recent SEC] [--capture "
                "SEC]\n"
                "                      [--wait-quorate SEC]\n"
                "\n"
                "Asks every host of the policy's inventory (through its connect: transport, "
                "default\n"
                "ssh -T -o BatchMode=yes root@ADDRESS) to run `airlock doctor --local --json`, in\n"
                "parallel, and reports findings across hosts: a host outside a cluster holding "
                "the\n"
                "cluster's key, corosync running outside the cluster, members not quorate or\n"
                "missing, knet links down, configs that disagree, secrets changed recently.\n"
                "Exits 0 with no findings, 1 with findings.\n"
                "\n"
                "  --local              gather this host's facts only\n"
                "  --json               machine-readable output\n"
                "  --host H             ask only host H (repeatable)\n"
                "  --policy FILE        the policy with the inventory (default: $AIRLOCK_POLICY "
                "or " AIRLOCK_POLICY_PATH ")\n"
                "  --timeout SEC        per-host timeout (default 20)\n"
                "  --parallel N         hosts asked at once (default 32)\n"
                "  --remote-airlock P   the airlock command on the hosts (default airlock;\n"
                "                       env AIRLOCK_DOCTOR_REMOTE_AIRLOCK)\n"
                "  --since EPOCH        report secrets changed since this time\n"
                "  --recent SEC         ... or within the last SEC seconds (default 86400)\n"
                "  --capture SEC        capture incoming UDP 5405 for SEC seconds on every host "
                "(libpcap,\n"
                "                       needs CAP_NET_RAW there) and report senders outside the "
                "nodelist\n"
                "  --audit-log PATH     explain secret changes with airlock's audit log (default\n"
                "                       " AIRLOCK_STATE_DIR "/audit.log when it exists)\n"
                "  --no-management      do not time the management endpoint (127.0.0.1:8006)\n"
                "  --wait-quorate SEC   with --local: wait until quorate with every node, exit 1 "
                "if not\n"
                "  --fix                turn findings into an ordered repair plan for the broker\n"
                "  --dry-run            with --fix: print the plan, submit nothing\n"
                "  --socket PATH        with --fix: the broker's socket (default $AIRLOCK_SOCKET "
                "or the\n"
                "                       admin socket; inside a sandbox, its session socket)\n"
                "  --wait SEC           with --fix: how long to wait for each step's approval "
                "(default 3600)\n"
                "\n"
                "--fix submits the steps to the broker one at a time, in order, each as a request "
                "a\n"
                "human approves; the next step is submitted when the previous one succeeded. "
                "After\n"
                "the last step it asks every host again and says whether the cluster is healthy.\n",
        .run = cmd_doctor,
};
