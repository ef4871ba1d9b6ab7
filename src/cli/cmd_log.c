/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlock log [verify | setup-keys]: the audit log's timeline for a person
 * (or JSON lines for a script), its verification, and the one-time
 * creation of its seal keys. Reading never needs the broker: the log is a
 * file (see airlock-log(5)).
 */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "common/util.h"
#include "config.h"

#define SUB "log"

static void json_decref_p(json_t **j)
{
        if (*j)
                json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_decref_p)

static const char *default_state_dir(void)
{
        const char *e = getenv("AIRLOCK_STATE_DIR");

        return isempty(e) ? AIRLOCK_STATE_DIR : e;
}

static char *log_path(const char *state_dir, const char *file)
{
        char *p = NULL;

        if (file)
                return strdup(file);
        if (asprintf(&p, "%s/%s", state_dir ? state_dir : default_state_dir(), AUDIT_LOG_FILE) < 0)
                return NULL;
        return p;
}

/* ---- the timeline ---- */

typedef struct {
        bool json, all;
        uint64_t since;
        const char *request, *agent;
} Filter;

static void put_esc(const char *s)
{
        _cleanup_free_ char *e = escape_for_terminal(s ? s : "");

        fputs(e ? e : "?", stdout);
}

static bool filter_match(const Filter *f, json_t *rec)
{
        const char *t = json_string_value(json_object_get(rec, "time"));
        json_t *agent = json_object_get(rec, "agent");
        uint64_t usec;

        if (!f->all && streq(json_string_value(json_object_get(rec, "event")), AUDIT_EVENT_SEAL))
                return false;
        if (f->since && (!t || audit_parse_time_text(t, &usec) < 0 || usec < f->since))
                return false;
        if (f->request) {
                const char *r = json_string_value(json_object_get(rec, "request"));

                if (!r || !streq(r, f->request))
                        return false;
        }
        if (f->agent) {
                const char *a = json_string_value(json_object_get(agent, "name"));

                if (!a || !streq(a, f->agent))
                        return false;
        }
        return true;
}

/* The few details a reader needs on the timeline line itself. */
static void print_details(json_t *d)
{
        static const char *const keys[] = {
                "decision",
                "rules",
                "approvers_needed",
                "by",
                "approver_name",
                "approver_uid",
                "why",
                "exit_status",
                "signal",
                "output_sha256",
                "verdict",
                "reason",
                "path",
                "sha256",
                "kept_sha256",
                "plan_sha256",
                "complete",
                "error",
                "epoch",
                "bytes",
                "sealing",
                "previous_closed",
        };
        bool first = true;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(d, keys[i]);
                _cleanup_free_ char *text = NULL;

                if (!v || json_is_null(v))
                        continue;
                text = json_is_string(v) ? strdup(json_string_value(v))
                                         : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                if (!text)
                        continue;
                fputs(first ? "  [" : " ", stdout);
                fputs(keys[i], stdout);
                fputc('=', stdout);
                if (streq(keys[i], "sha256") || streq(keys[i], "output_sha256") ||
                    streq(keys[i], "kept_sha256") || streq(keys[i], "plan_sha256"))
                        text[strlen(text) > 12 ? 12 : strlen(text)] = '\0';
                if (json_is_string(v) && strpbrk(text, " ]=\"")) {
                        /* Quoted, so free text cannot pass for another field. */
                        _cleanup_free_ char *q = NULL;

                        if (asprintf(&q, "\"%s\"", text) >= 0) {
                                free(text);
                                text = TAKE_PTR(q);
                        }
                }
                put_esc(text);
                first = false;
        }
        if (!first)
                fputc(']', stdout);
}

static void print_record(const Filter *f, json_t *rec, const char *line, size_t len)
{
        json_t *agent = json_object_get(rec, "agent"), *argv = json_object_get(rec, "argv");
        const char *t = json_string_value(json_object_get(rec, "time"));
        const char *req = json_string_value(json_object_get(rec, "request"));
        const char *target = json_string_value(json_object_get(rec, "target"));
        char when[32];

        if (f->json) {
                fwrite(line, 1, len, stdout);
                fputc('\n', stdout);
                return;
        }
        /* "2026-11-28T10:57:01.123456Z" -> "2026-11-28 10:57:01.123" */
        snprintf(when, sizeof(when), "%.10s %.12s", t, t + 11);
        printf("%s  #%-6llu %-17s", when,
               (unsigned long long)json_integer_value(json_object_get(rec, "seq")),
               json_string_value(json_object_get(rec, "event")));
        if (req) {
                fputs(" ", stdout);
                put_esc(req);
        }
        if (json_is_object(agent)) {
                const char *name = json_string_value(json_object_get(agent, "name"));
                const char *ev = json_string_value(json_object_get(rec, "event"));
                const char *by = json_string_value(json_object_get(agent, "started_by"));
                json_t *uid = json_object_get(agent, "uid");

                fputs("  agent=", stdout);
                put_esc(name ? name : "?");
                if (json_is_integer(uid) || by) {
                        fputs("(", stdout);
                        if (json_is_integer(uid))
                                printf("uid %lld%s", (long long)json_integer_value(uid),
                                       by ? ", " : "");
                        if (by) {
                                fputs("started by ", stdout);
                                put_esc(by);
                        }
                        fputs(")", stdout);
                }
                if (streq(ev, AUDIT_EVENT_APPROVAL_REFUSED)) {
                        /* who tried: not the agent, a peer on the admin socket */
                        json_t *d = json_object_get(rec, "details");
                        const char *user = json_string_value(json_object_get(d, "user"));
                        json_t *puid = json_object_get(d, "uid");

                        fputs("  by ", stdout);
                        put_esc(user ? user : "?");
                        if (json_is_integer(puid))
                                printf("(uid %lld)", (long long)json_integer_value(puid));
                }
        } else {
                /* A request from outside any sandbox: the broker names the requester. */
                json_t *d = json_object_get(rec, "details");
                const char *user = json_string_value(json_object_get(d, "user"));
                json_t *uid = json_object_get(d, "uid");

                if (user) {
                        fputs("  by ", stdout);
                        put_esc(user);
                        if (json_is_integer(uid))
                                printf("(uid %lld)", (long long)json_integer_value(uid));
                }
        }
        {
                /* approval_refused past its user's burst: what was counted, not recorded */
                json_t *unrec =
                        json_object_get(json_object_get(rec, "details"), "unrecorded_before");
                if (json_is_integer(unrec))
                        printf("  (+%lld more refused before, not recorded)",
                               (long long)json_integer_value(unrec));
        }
        if (target) {
                fputs("  on ", stdout);
                put_esc(target);
        }
        if (json_is_array(argv)) {
                _cleanup_strv_free_ char **v = calloc(json_array_size(argv) + 1, sizeof(char *));
                _cleanup_free_ char *shown = NULL;
                size_t i;
                json_t *a;

                if (v) {
                        json_array_foreach(argv, i, a) v[i] = strdup(json_string_value(a));
                        shown = argv_to_display(v);
                }
                fputs("  $ ", stdout);
                put_esc(shown ? shown : "?");
        }
        print_details(json_object_get(rec, "details"));
        fputc('\n', stdout);
}

/* Prints each complete line of buf[0, n); returns how many bytes it consumed. */
static size_t print_lines(const Filter *f, const char *buf, size_t n, uint64_t *lineno)
{
        size_t pos = 0;

        for (;;) {
                const char *nl = memchr(buf + pos, '\n', n - pos);
                size_t len;
                json_t *rec = NULL;

                if (!nl)
                        return pos;
                len = (size_t)(nl - (buf + pos));
                (*lineno)++;
                if (audit_parse_record(buf + pos, len, &rec) < 0) {
                        if (f->json)
                                fprintf(stderr,
                                        "airlock: log: line %llu is not a valid record (torn or "
                                        "changed) — run 'airlock log verify'\n",
                                        (unsigned long long)*lineno);
                        else
                                printf("-- line %llu is not a valid record (torn or changed) — "
                                       "run 'airlock log verify' --\n",
                                       (unsigned long long)*lineno);
                } else {
                        if (filter_match(f, rec))
                                print_record(f, rec, buf + pos, len);
                        json_decref(rec);
                }
                pos += len + 1;
        }
}

static volatile sig_atomic_t stop_following;

static void on_signal(int sig)
{
        stop_following = 1;
}

static int show_log(const char *path, const Filter *f, bool follow)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, cap = 0;
        uint64_t lineno = 0;
        struct sigaction sa = { .sa_handler = on_signal };

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return cli_fail(SUB, errno == ENOENT ? EXIT_CHECK_FAILED : EXIT_INTERNAL,
                                "cannot open %s: %m — check --state-dir or --file (the broker "
                                "creates the log when it first starts)",
                                path);
        if (follow) {
                sigaction(SIGINT, &sa, NULL);
                sigaction(SIGTERM, &sa, NULL);
                setvbuf(stdout, NULL, _IOLBF, 0);
        }
        for (;;) {
                ssize_t k;
                size_t used;

                if (cap - n < 65536) {
                        char *t = realloc(buf, cap + 131072);

                        if (!t)
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                        buf = t;
                        cap += 131072;
                }
                k = read(fd, buf + n, cap - n);
                if (k < 0) {
                        if (errno == EINTR && !stop_following)
                                continue;
                        if (stop_following)
                                break;
                        return cli_fail(SUB, EXIT_INTERNAL, "reading %s: %m", path);
                }
                if (k == 0) {
                        if (!follow || stop_following)
                                break;
                        fflush(stdout);
                        usleep(200000);
                        continue;
                }
                n += (size_t)k;
                used = print_lines(f, buf, n, &lineno);
                memmove(buf, buf + used, n - used);
                n -= used;
                if (n > AUDIT_RECORD_MAX * 4) {
                        /* A "line" this long is no record: report and skip it. */
                        printf("-- line %llu is longer than any record — run 'airlock log verify' "
                               "--\n",
                               (unsigned long long)++lineno);
                        n = 0;
                }
        }
        if (n > 0 && !follow)
                fprintf(stderr,
                        "airlock: log: the file ends in a partial line (%zu bytes): the writer was "
                        "interrupted or is writing — run 'airlock log verify'\n",
                        n);
        fflush(stdout);
        return EXIT_OK;
}

/* "YYYY-MM-DD[THH:MM:SS[.uuuuuu]Z]" or an age: "90s", "15m", "2h", "7d". */
static int parse_since(const char *s, uint64_t *ret)
{
        size_t n = strlen(s);
        uint64_t v, mult;
        _cleanup_free_ char *num = NULL;

        if (n >= 2 && strchr("smhd", s[n - 1])) {
                mult = s[n - 1] == 's' ? 1 : s[n - 1] == 'm' ? 60 : s[n - 1] == 'h' ? 3600 : 86400;
                num = strndup(s, n - 1);
                if (!num || parse_u64(num, 100ULL * 365 * 86400, &v) < 0)
                        return -EINVAL;
                *ret = now_realtime_usec() - v * mult * 1000000ULL;
                return 0;
        }
        return audit_parse_time_text(s, ret);
}

static const char usage_text[] =
        "Usage: airlock log [--state-dir DIR|--file FILE] [--json] [-f] [--since T]\n"
        "                   [--request ID] [--agent NAME] [--all]\n"
        "       airlock log verify [--state-dir DIR|--file FILE] [--key KEY|--key-file FILE]\n"
        "                   [--head SEQ:HASH] [--json]\n"
        "       airlock log setup-keys [--state-dir DIR] [--json]\n\n"
        "Shows the audit log: one line per event (time, seq, event, request, agent,\n"
        "target host, the command) for a person, or the records as JSON lines (--json).\n"
        "  --state-dir DIR  the broker's state directory (default $AIRLOCK_STATE_DIR or\n"
        "                   " AIRLOCK_STATE_DIR ")\n"
        "  --file FILE      read this log file instead\n"
        "  -f, --follow     keep printing records as they are written\n"
        "  --since T        only records from T on: 2026-11-28, 2026-11-28T10:00:00Z, or an\n"
        "                   age such as 90s, 15m, 2h, 7d\n"
        "  --request ID     only records of one request\n"
        "  --agent NAME     only records of one agent\n"
        "  --all            also show seal records\n\n"
        "verify checks the hash chain and, with the verification key, every seal, and\n"
        "names the first record that is wrong and how (modified, missing, inserted,\n"
        "reordered, truncated, torn, unsealed tail, a seal with a wrong epoch or MAC).\n"
        "Without --key only the chain is checked, which someone with root can rebuild.\n"
        "  --key KEY        the verification key printed by setup-keys\n"
        "  --key-file FILE  read the key from FILE (keeps it out of the process list)\n"
        "  --head SEQ:HASH  a chain head kept elsewhere (journald AIRLOCK_SEQ and\n"
        "                   AIRLOCK_HASH, or syslog): catches truncation\n"
        "Exit status: 0 intact, 1 not intact (or no log), 64 usage.\n\n"
        "setup-keys creates the seal key for a new log and prints the verification key\n"
        "once: keep it off this host.\n";

static int cmd_log_verify(int argc, char **argv)
{
        static const struct option opts[] = {
                { "state-dir", required_argument, NULL, 'd' },
                { "file", required_argument, NULL, 'F' },
                { "key", required_argument, NULL, 'k' },
                { "key-file", required_argument, NULL, 'K' },
                { "head", required_argument, NULL, 'H' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *state_dir = NULL, *file = NULL, *key = NULL, *key_file = NULL;
        _cleanup_free_ char *path = NULL, *keybuf = NULL;
        AuditVerifyOptions vo = { 0 };
        AuditVerifyResult res;
        bool json = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        state_dir = optarg;
                        break;
                case 'F':
                        file = optarg;
                        break;
                case 'k':
                        key = optarg;
                        break;
                case 'K':
                        key_file = optarg;
                        break;
                case 'H':
                        if (audit_parse_head(optarg, &vo) < 0)
                                return cli_fail(SUB " verify", EXIT_USAGE,
                                                "--head '%s' is not SEQ:HASH (a sequence number, "
                                                "a colon, 64 hex digits) — copy AIRLOCK_SEQ and "
                                                "AIRLOCK_HASH from the journal or syslog",
                                                optarg);
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return EXIT_OK;
                default:
                        return cli_fail(SUB " verify", EXIT_USAGE,
                                        "bad option — run 'airlock log --help'");
                }
        }
        if (optind < argc)
                return cli_fail(SUB " verify", EXIT_USAGE,
                                "unexpected argument '%s' — run 'airlock log --help'",
                                argv[optind]);
        if (state_dir && file)
                return cli_fail(SUB " verify", EXIT_USAGE,
                                "--state-dir and --file exclude each other — name one log");
        if (key && key_file)
                return cli_fail(SUB " verify", EXIT_USAGE, "give --key or --key-file, not both");
        if (key_file) {
                size_t n;

                r = read_full_file(key_file, 4096, &keybuf, &n);
                if (r < 0)
                        return cli_fail(SUB " verify", EXIT_USAGE,
                                        "cannot read key file %s: %s — check the path", key_file,
                                        strerror(-r));
                while (n > 0 &&
                       (keybuf[n - 1] == '\n' || keybuf[n - 1] == ' ' || keybuf[n - 1] == '\r'))
                        keybuf[--n] = '\0';
                key = keybuf;
        }
        vo.vkey = key;
        path = log_path(state_dir, file);
        if (!path)
                return cli_fail(SUB " verify", EXIT_INTERNAL, "out of memory");
        r = audit_verify_file(path, &vo, &res);
        if (r == -EINVAL)
                return cli_fail(SUB " verify", EXIT_USAGE,
                                "the verification key is malformed or its checksum does not match "
                                "— copy it exactly as setup-keys printed it (alvk1-...)");
        if (r == -ENOENT)
                return cli_fail(SUB " verify", EXIT_CHECK_FAILED,
                                "%s does not exist — check --state-dir or --file; a log that "
                                "existed and is gone was removed",
                                path);
        if (r < 0)
                return cli_fail(SUB " verify", EXIT_INTERNAL, "cannot verify %s: %s", path,
                                strerror(-r));
        if (json) {
                _cleanup_json_ json_t *o = json_pack(
                        "{s:s, s:b, s:s, s:I, s:I, s:s, s:b, s:b, s:I, s:I, s:I, s:s, s:I, s:I, "
                        "s:b, s:I}",
                        "file", path, "ok", res.problem == AUDIT_OK, "problem",
                        audit_problem_name(res.problem), "line", (json_int_t)res.line, "seq",
                        (json_int_t)res.seq, "message", res.message, "keyed", res.keyed, "closed",
                        res.closed, "records", (json_int_t)res.records, "seals",
                        (json_int_t)res.seals, "last_seq", (json_int_t)res.last_seq, "last_hash",
                        res.last_hash, "sealed_through", (json_int_t)res.sealed_through,
                        "torn_recorded", (json_int_t)res.torn_recorded, "torn_tail", res.torn_tail,
                        "unsealed", (json_int_t)res.unsealed);
                _cleanup_free_ char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;

                if (!s)
                        return cli_fail(SUB " verify", EXIT_INTERNAL, "out of memory");
                puts(s);
        } else {
                printf("%s: %llu records, last seq %llu, %llu seals%s, sealed through seq %llu%s\n",
                       path, (unsigned long long)res.records, (unsigned long long)res.last_seq,
                       (unsigned long long)res.seals,
                       res.keyed ? " (MACs checked with the key)" : "",
                       (unsigned long long)res.sealed_through,
                       res.closed ? ", closed"
                                  : ", open (writer running, or it stopped uncleanly)");
                if (res.torn_recorded)
                        printf("%llu torn write(s) from crashes, kept and recorded by torn_tail "
                               "records\n",
                               (unsigned long long)res.torn_recorded);
                if (!res.keyed)
                        printf("WARNING: no --key: seals NOT verified, only the hash chain. Anyone "
                               "with root can rebuild a hash chain after changing a record; pass "
                               "the verification key from 'airlock log setup-keys' to check the "
                               "seals.\n");
                if (!vo.have_head && res.problem == AUDIT_OK && !res.closed)
                        printf("note: records cut off after the last seal cannot be told from a "
                               "log that simply ends there; compare with an external head "
                               "(--head SEQ:HASH from the journal or syslog).\n");
                if (res.problem == AUDIT_OK)
                        printf("OK: the chain is intact%s\n",
                               res.keyed ? " and every seal verifies" : "");
                else
                        printf("FAIL (%s) at line %llu, seq %llu: %s\n",
                               audit_problem_name(res.problem), (unsigned long long)res.line,
                               (unsigned long long)res.seq, res.message);
        }
        return res.problem == AUDIT_OK ? EXIT_OK : EXIT_CHECK_FAILED;
}

static int cmd_log_setup_keys(int argc, char **argv)
{
        static const struct option opts[] = {
                { "state-dir", required_argument, NULL, 'd' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *state_dir = NULL;
        char vkey[AUDIT_VKEY_MAX];
        bool json = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        state_dir = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return EXIT_OK;
                default:
                        return cli_fail(SUB " setup-keys", EXIT_USAGE,
                                        "bad option — run 'airlock log --help'");
                }
        }
        if (optind < argc)
                return cli_fail(SUB " setup-keys", EXIT_USAGE,
                                "unexpected argument '%s' — run 'airlock log --help'",
                                argv[optind]);
        if (!state_dir)
                state_dir = default_state_dir();
        r = audit_setup_keys(state_dir, vkey);
        if (r == -EEXIST)
                return cli_fail(SUB " setup-keys", EXIT_USAGE,
                                "%s already has a seal key, or its log carries seals — a new key "
                                "cannot continue a sealed log; to start a new log, stop the "
                                "broker and move %s/" AUDIT_LOG_FILE " and " AUDIT_KEY_FILE
                                " aside first",
                                state_dir, state_dir);
        if (r == -EPERM)
                return cli_fail(SUB " setup-keys", EXIT_USAGE,
                                "%s is not owned by you or is writable by others — chmod 0700 it "
                                "(only its owner may add files next to the log)",
                                state_dir);
        if (r < 0)
                return cli_fail(SUB " setup-keys", EXIT_INTERNAL, "cannot create the key in %s: %s",
                                state_dir, strerror(-r));
        if (json) {
                _cleanup_json_ json_t *o =
                        json_pack("{s:s, s:s}", "verification_key", vkey, "state_dir", state_dir);
                _cleanup_free_ char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;

                explicit_wipe(vkey, sizeof(vkey));
                if (!s)
                        return cli_fail(SUB " setup-keys", EXIT_INTERNAL, "out of memory");
                puts(s);
                return EXIT_OK;
        }
        printf("The verification key of the audit log in %s:\n\n    %s\n\n"
               "It is shown only this once and is not stored on this host. Keep it off this host\n"
               "(print it, or put it in a password manager). With it,\n"
               "    airlock log verify --key KEY\n"
               "proves that nothing sealed before an intruder took this host was changed.\n"
               "The host keeps only the current epoch key (%s/" AUDIT_KEY_FILE
               "), which changes one way\n"
               "at every seal.\n",
               state_dir, vkey, state_dir);
        explicit_wipe(vkey, sizeof(vkey));
        return EXIT_OK;
}

static int cmd_log(int argc, char **argv)
{
        static const struct option opts[] = {
                { "state-dir", required_argument, NULL, 'd' },
                { "file", required_argument, NULL, 'F' },
                { "json", no_argument, NULL, 'j' },
                { "follow", no_argument, NULL, 'f' },
                { "since", required_argument, NULL, 's' },
                { "request", required_argument, NULL, 'r' },
                { "agent", required_argument, NULL, 'a' },
                { "all", no_argument, NULL, 'A' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *state_dir = NULL, *file = NULL;
        _cleanup_free_ char *path = NULL;
        Filter f = { 0 };
        bool follow = false;
        int c;

        if (argc >= 2 && streq(argv[1], "verify"))
                return cmd_log_verify(argc - 1, argv + 1);
        if (argc >= 2 && streq(argv[1], "setup-keys"))
                return cmd_log_setup_keys(argc - 1, argv + 1);
        while ((c = getopt_long(argc, argv, "fh", opts, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        state_dir = optarg;
                        break;
                case 'F':
                        file = optarg;
                        break;
                case 'j':
                        f.json = true;
                        break;
                case 'f':
                        follow = true;
                        break;
                case 's':
                        if (parse_since(optarg, &f.since) < 0)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "--since '%s' is not a time — use 2026-11-28, "
                                                "2026-11-28T10:00:00Z, or an age like 15m, 2h, 7d",
                                                optarg);
                        break;
                case 'r':
                        f.request = optarg;
                        break;
                case 'a':
                        f.agent = optarg;
                        break;
                case 'A':
                        f.all = true;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return EXIT_OK;
                default:
                        return cli_fail(SUB, EXIT_USAGE, "bad option — run 'airlock log --help'");
                }
        }
        if (optind < argc)
                return cli_fail(SUB, EXIT_USAGE,
                                "unknown subcommand or argument '%s' — use 'airlock log', 'airlock "
                                "log verify' or 'airlock log setup-keys'",
                                argv[optind]);
        if (state_dir && file)
                return cli_fail(SUB, EXIT_USAGE,
                                "--state-dir and --file exclude each other — name one log");
        path = log_path(state_dir, file);
        if (!path)
                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
        return show_log(path, &f, follow);
}

const CliCommand cli_command_log = {
        .name = "log",
        .summary = "show, follow and verify the audit log",
        .usage = usage_text,
        .run = cmd_log,
};
