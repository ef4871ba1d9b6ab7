/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The plan supervisor. Run without arguments: cmocka tests of the filter in
 * refuse mode on real child processes (they need root for fanotify: as
 * another user they skip, saying so). Run as
 *
 *   test-supervisor run record|refuse POLICY [--root DIR] [--cwd DIR] -- CMD...
 *
 * it is the driver of tests/integration/test_plan_supervisor.py: it
 * supervises CMD exactly as plan_run() (plan_sup_*) and the broker
 * (plan_record_*, record mode without --root) do and prints what
 * was recorded as JSON on stdout, and the notification count and cost on
 * stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "plan/plan-internal.h"

typedef struct {
        PlanResult *r;
        PlanSup *sup;
        int status;
} Supervised;

/* Supervises fn(arg) in a child (in mode) the way plan_run does; fn's return is the exit code. */
static int supervise(PlanSupMode mode, const Policy *p, const char *root, int (*fn)(void *),
                     void *arg, Supervised *out, char *err, size_t err_size)
{
        int sv[2], root_fd, r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        out->r = calloc(1, sizeof(PlanResult));
        if (!out->r)
                return -ENOMEM;
        out->r->complete = true;
        r = plan_sup_start(mode, p, sv[0], out->r, &out->sup, err, err_size);
        close(sv[0]);
        if (r < 0)
                return r;
        root_fd = open(root ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
                return -errno;
        r = plan_sup_watch_secrets(out->sup, root_fd, err, err_size);
        close(root_fd);
        if (r < 0)
                return r;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                r = plan_sup_child(mode, sv[1]);
                if (r < 0) {
                        dprintf(2, "plan_sup_child: %s\n", strerror(-r));
                        _exit(125);
                }
                _exit(fn(arg));
        }
        close(sv[1]);
        if (waitpid(pid, &out->status, 0) < 0)
                return -errno;
        return plan_sup_stop(out->sup);
}

/* Record mode the way the broker records an approved execution: plan_record_*. */
static int record(const Policy *p, int (*fn)(void *), void *arg, Supervised *out, char *err,
                  size_t err_size)
{
        PlanRecorder *rec = NULL;
        int sv[2], r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                close(sv[0]);
                r = plan_record_child(sv[1]);
                if (r < 0) {
                        dprintf(2, "plan_record_child: %s\n", strerror(-r));
                        _exit(125);
                }
                _exit(fn(arg));
        }
        close(sv[1]);
        r = plan_record_start(p, pid, sv[0], &rec, err, err_size);
        close(sv[0]);
        if (r < 0) {
                waitpid(pid, NULL, 0);
                return r;
        }
        if (waitpid(pid, &out->status, 0) < 0)
                return -errno;
        r = plan_record_finish(rec, &out->r);
        plan_recorder_free(rec);
        return r;
}

static void supervised_done(Supervised *s)
{
        plan_sup_free(s->sup);
        plan_result_free(s->r);
}

/* ---- cmocka: refuse mode on real children ---- */

static Policy *test_policy(void)
{
        static const char yaml[] = "version: 1\n"
                                   "secrets: [/nonexistent/secret]\n"
                                   "hosts:\n"
                                   "  xenon: {address: 198.51.100.5, environment: production}\n";
        Policy *p = NULL;
        PolicyError e;

        assert_int_equal(policy_load_string(yaml, strlen(yaml), "<test>", &p, &e), 0);
        return p;
}

static int child_connect_inet(void *arg)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(22) };
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        (void)arg;
        inet_pton(AF_INET, "198.51.100.5", &a.sin_addr);
        if (fd < 0)
                return 2;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
                return 0;
        return errno == ECONNREFUSED ? 10 : 3;
}

static void skip_unless_root(void)
{
        if (geteuid() != 0) {
                fprintf(stderr, "skipped: the supervisor needs root (fanotify_init)\n");
                skip();
        }
}

static void test_refuse_connect(void **state)
{
        Supervised s = { 0 };
        char err[256] = "";
        Policy *p;

        (void)state;
        skip_unless_root();
        p = test_policy();
        assert_int_equal(
                supervise(PLAN_SUP_REFUSE, p, NULL, child_connect_inet, NULL, &s, err, sizeof(err)),
                0);
        assert_true(WIFEXITED(s.status));
        assert_int_equal(WEXITSTATUS(s.status), 10);
        assert_int_equal(s.r->n_net, 1);
        assert_int_equal(s.r->net[0].kind, PLAN_NET_CONNECT);
        assert_string_equal(s.r->net[0].address, "198.51.100.5");
        assert_int_equal(s.r->net[0].port, 22);
        assert_string_equal(s.r->net[0].host, "xenon");
        assert_string_equal(s.r->net[0].environment, "production");
        assert_int_equal(s.r->net[0].socktype, SOCK_STREAM);
        assert_true(s.r->net[0].blocked);
        assert_false(s.r->complete);
        assert_non_null(s.r->fidelity_reasons);
        assert_string_equal(s.r->fidelity_reasons[0],
                            "attempted to connect to xenon:22 (198.51.100.5)");
        supervised_done(&s);
        policy_free(p);
}

static int child_refused_calls(void *arg)
{
        int bad = 0;

        (void)arg;
        /* unix datagram sockets send to paths without connect(): none in refuse mode */
        if (socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) >= 0 || errno != EACCES)
                bad |= 1;
        if (socket(AF_VSOCK, SOCK_STREAM, 0) >= 0 || errno != EAFNOSUPPORT)
                bad |= 2;
        if (syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0) >= 0 || errno != EPERM)
                bad |= 4;
        if (syscall(SYS_io_uring_setup, 1, NULL) >= 0 || errno != ENOSYS)
                bad |= 8;
        /* what a network namespace confines stays usable */
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
                bad |= 16;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
                bad |= 32;
        if (socket(AF_UNIX, SOCK_STREAM, 0) < 0 || socket(AF_NETLINK, SOCK_RAW, 0) < 0)
                bad |= 64;
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) >= 0 || errno != EACCES)
                bad |= 128;
        return bad;
}

static void test_refuse_what_leaves(void **state)
{
        Supervised s = { 0 };
        char err[256] = "";
        Policy *p;

        (void)state;
        skip_unless_root();
        p = test_policy();
        assert_int_equal(supervise(PLAN_SUP_REFUSE, p, NULL, child_refused_calls, NULL, &s, err,
                                   sizeof(err)),
                         0);
        assert_true(WIFEXITED(s.status));
        assert_int_equal(WEXITSTATUS(s.status), 0);
        supervised_done(&s);
        policy_free(p);
}

static int child_x32(void *arg)
{
        (void)arg;
#ifdef __x86_64__
        /* getpid through the x32 table */
        syscall(0x40000000 | 39);
#endif
        return 0;
}

static void test_other_abi_killed(void **state)
{
        Supervised s = { 0 };
        char err[256] = "";
        Policy *p;

        (void)state;
        skip_unless_root();
#ifndef __x86_64__
        skip();
#endif
        p = test_policy();
        assert_int_equal(supervise(PLAN_SUP_REFUSE, p, NULL, child_x32, NULL, &s, err, sizeof(err)),
                         0);
        assert_true(WIFSIGNALED(s.status));
        assert_int_equal(WTERMSIG(s.status), SIGSYS);
        supervised_done(&s);
        policy_free(p);
}

static int child_send_dns(void *arg)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(53) };
        int fd = socket(AF_INET, SOCK_DGRAM, 0);

        (void)arg;
        inet_pton(AF_INET, "203.0.113.53", &a.sin_addr);
        if (sendto(fd, "q", 1, 0, (struct sockaddr *)&a, sizeof(a)) >= 0)
                return 1;
        if (errno != ENETUNREACH)
                return 2;
        /* a send without address is not a destination */
        if (send(fd, "q", 1, 0) >= 0 || errno != EDESTADDRREQ)
                return 3;
        return 0;
}

static void test_refuse_addressed_send(void **state)
{
        Supervised s = { 0 };
        char err[256] = "";
        Policy *p;

        (void)state;
        skip_unless_root();
        p = test_policy();
        assert_int_equal(
                supervise(PLAN_SUP_REFUSE, p, NULL, child_send_dns, NULL, &s, err, sizeof(err)), 0);
        assert_true(WIFEXITED(s.status));
        assert_int_equal(WEXITSTATUS(s.status), 0);
        assert_int_equal(s.r->n_net, 1);
        assert_int_equal(s.r->net[0].kind, PLAN_NET_SEND);
        assert_int_equal(s.r->net[0].port, 53);
        assert_int_equal(s.r->net[0].socktype, SOCK_DGRAM);
        assert_null(s.r->net[0].host);
        assert_string_equal(s.r->fidelity_reasons[0],
                            "attempted to send to 203.0.113.53:53 (outside the inventory)");
        supervised_done(&s);
        policy_free(p);
}

/* ---- the driver ---- */

static json_t *jstr(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *jstrv(char *const *l)
{
        json_t *a = json_array();

        STRV_FOREACH (s, l)
                json_array_append_new(a, jstr(*s));
        return a;
}

static json_t *result_json(const PlanResult *r)
{
        json_t *o = json_object(), *a;

        json_object_set_new(o, "complete", json_boolean(r->complete));
        json_object_set_new(o, "fidelity_reasons", jstrv(r->fidelity_reasons));
        a = json_array();
        for (size_t i = 0; i < r->n_net; i++) {
                const PlanNet *n = &r->net[i];

                json_array_append_new(a, json_pack("{s:s,s:i,s:i,s:o,s:i,s:o,s:o,s:o,s:b}", "kind",
                                                   n->kind == PLAN_NET_CONNECT ? "connect" : "send",
                                                   "family", n->family, "socktype", n->socktype,
                                                   "address", jstr(n->address), "port", n->port,
                                                   "host", jstr(n->host), "environment",
                                                   jstr(n->environment), "program",
                                                   jstr(n->program), "blocked", n->blocked));
        }
        json_object_set_new(o, "net", a);
        a = json_array();
        for (size_t i = 0; i < r->n_execs; i++)
                json_array_append_new(a, json_pack("{s:o,s:o}", "path", jstr(r->execs[i].path),
                                                   "argv", jstrv(r->execs[i].argv)));
        json_object_set_new(o, "execs", a);
        a = json_array();
        for (size_t i = 0; i < r->n_secrets; i++)
                json_array_append_new(
                        a, json_pack("{s:o,s:o,s:b}", "path", jstr(r->secrets[i].path), "program",
                                     jstr(r->secrets[i].program), "write", r->secrets[i].write));
        json_object_set_new(o, "secrets", a);
        a = json_array();
        for (size_t i = 0; i < r->n_files; i++) {
                static const char *const ch[] = { "created", "modified", "deleted", "renamed" };
                const PlanFile *f = &r->files[i];

                json_array_append_new(
                        a, json_pack("{s:s,s:o,s:o,s:s#,s:b,s:b,s:b}", "change", ch[f->change],
                                     "path", jstr(f->path), "renamed_from", jstr(f->renamed_from),
                                     "type", &f->type, (size_t)1, "content_changed",
                                     f->content_changed, "mode_changed", f->mode_changed,
                                     "owner_changed", f->owner_changed));
        }
        json_object_set_new(o, "files", a);
        a = json_array();
        for (size_t i = 0; i < r->n_signals; i++)
                json_array_append_new(a, json_pack("{s:i,s:i,s:o,s:b}", "sig", r->signals[i].sig,
                                                   "target", (int)r->signals[i].target, "program",
                                                   jstr(r->signals[i].program), "blocked",
                                                   r->signals[i].blocked));
        json_object_set_new(o, "signals", a);
        a = json_array();
        for (size_t i = 0; i < r->n_contacts; i++)
                json_array_append_new(a, json_pack("{s:o,s:o,s:o,s:b}", "daemon",
                                                   jstr(r->contacts[i].daemon), "meaning",
                                                   jstr(r->contacts[i].meaning), "evidence",
                                                   jstr(r->contacts[i].evidence), "blocked",
                                                   r->contacts[i].blocked));
        json_object_set_new(o, "contacts", a);
        return o;
}

typedef struct {
        char **argv;
        const char *cwd;
} ExecArgs;

static int child_exec(void *arg)
{
        ExecArgs *e = arg;

        if (e->cwd && chdir(e->cwd) < 0)
                return 126;
        /* stdout carries the driver's JSON: the command writes to stderr */
        if (dup2(2, 1) < 0)
                return 126;
        execvp(e->argv[0], e->argv);
        return 127;
}

static int driver(int argc, char **argv)
{
        static const struct option opts[] = { { "root", required_argument, NULL, 'r' },
                                              { "cwd", required_argument, NULL, 'c' },
                                              { "linger", required_argument, NULL, 'l' },
                                              {} };
        const char *root = NULL;
        unsigned linger = 0;
        ExecArgs e = { 0 };
        PlanSupMode mode;
        Policy *p = NULL;
        PolicyError perr;
        Supervised s = { 0 };
        char err[512] = "";
        json_t *j;
        int c, r;

        /* argv: run MODE POLICY [opts] -- CMD... */
        if (argc < 5)
                return 2;
        mode = streq(argv[2], "record") ? PLAN_SUP_RECORD : PLAN_SUP_REFUSE;
        r = policy_load_file(argv[3], &p, &perr);
        if (r < 0) {
                char m[1024];

                policy_error_format(&perr, m, sizeof(m));
                fprintf(stderr, "policy: %s\n", m);
                return 2;
        }
        optind = 4;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0)
                switch (c) {
                case 'r':
                        root = optarg;
                        break;
                case 'c':
                        e.cwd = optarg;
                        break;
                case 'l':
                        linger = (unsigned)atoi(optarg);
                        break;
                default:
                        return 2;
                }
        if (optind >= argc)
                return 2;
        e.argv = argv + optind;
        if (mode == PLAN_SUP_RECORD && !root)
                r = record(p, child_exec, &e, &s, err, sizeof(err));
        else
                r = supervise(mode, p, root, child_exec, &e, &s, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "supervise: %s: %s\n", strerror(-r), err);
                return 2;
        }
        j = result_json(s.r);
        json_object_set_new(j, "exit_status", json_integer(s.status));
        json_dumpf(j, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
        printf("\n");
        fflush(stdout);
        /* like the broker, stay alive a while: a detached recorder keeps serving descendants */
        if (linger > 0)
                sleep(linger);
        json_decref(j);
        supervised_done(&s);
        policy_free(p);
        return 0;
}

/*
 * test-supervisor race PATH N: one thread connects N times to a shared
 * sockaddr while another flips its path between a decoy nobody listens on
 * and PATH, as a command would to slip a refused address past a check.
 * Prints how many connects succeeded.
 */
static struct sockaddr_un race_addr;
static char race_paths[2][sizeof(race_addr.sun_path)];
static volatile int race_stop;

static void *race_flipper(void *arg)
{
        (void)arg;
        while (!race_stop)
                for (int k = 0; k < 2; k++) {
                        memcpy(race_addr.sun_path, race_paths[k], sizeof(race_addr.sun_path));
                        __asm__ volatile("" ::: "memory");
                }
        return NULL;
}

static int race(const char *path, const char *count)
{
        size_t len = strlen(path);
        unsigned long n = strtoul(count, NULL, 10), ok = 0;
        pthread_t t;

        if (len < 2 || len >= sizeof(race_addr.sun_path))
                return 2;
        race_addr.sun_family = AF_UNIX;
        memcpy(race_paths[0], path, len);
        memset(race_paths[1], 'x', len); /* same length, no such file */
        race_paths[1][0] = '/';
        memcpy(race_addr.sun_path, race_paths[1], len);
        if (pthread_create(&t, NULL, race_flipper, NULL) != 0)
                return 2;
        for (unsigned long i = 0; i < n; i++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (fd < 0)
                        return 2;
                if (connect(fd, (struct sockaddr *)&race_addr, sizeof(race_addr)) == 0)
                        ok++;
                close(fd);
        }
        race_stop = 1;
        pthread_join(t, NULL);
        printf("%lu\n", ok);
        return 0;
}

/*
 * test-supervisor cost N: N notified calls that record nothing (kill(ppid,
 * 0), a probe); prints nanoseconds per call. Run plain and under the
 * driver, the difference is the cost of one notification round trip.
 */
static int cost(const char *count)
{
        unsigned long n = strtoul(count, NULL, 10);
        uint64_t t0 = now_monotonic_usec();
        pid_t pp = getppid();

        for (unsigned long i = 0; i < n; i++)
                (void)kill(pp, 0);
        printf("%.0f\n", (double)(now_monotonic_usec() - t0) * 1000.0 / (double)(n ? n : 1));
        return 0;
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_refuse_connect),
                cmocka_unit_test(test_refuse_what_leaves),
                cmocka_unit_test(test_other_abi_killed),
                cmocka_unit_test(test_refuse_addressed_send),
        };

        if (argc > 1 && streq(argv[1], "run"))
                return driver(argc, argv);
        if (argc == 4 && streq(argv[1], "race"))
                return race(argv[2], argv[3]);
        if (argc == 3 && streq(argv[1], "cost"))
                return cost(argv[2]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
