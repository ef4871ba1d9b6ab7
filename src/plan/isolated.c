/*
 * plan_run() in a process of its own, for a caller with threads (airlockd).
 *
 * plan_run() forks, and its child runs for as long as the planned command:
 * it builds namespaces, allocates, reads files, diffs. fork() in a threaded
 * process copies every lock another thread held at that instant, held for
 * ever in the copy. glibc's own locks are reset by its fork(), but no other
 * allocator's are (AddressSanitizer's is not: a plan forked from airlockd's
 * connection thread while another thread refilled an allocator cache hung
 * for ever in its first malloc), nor any library lock. So airlockd does not
 * fork a plan: it starts a new image of itself (posix_spawn, which allocates
 * nothing in the child) with one thread, none of the broker's memory (its
 * database pages, other requests, other sessions never reach the process
 * that runs the planned command), and hands it the options and the exact
 * policy the request was judged by. The helper plans and writes the result
 * back as the JSON plan_result_to_json() writes, which this side reads
 * strictly (plan_result_from_json()).
 *
 *   fd 0   the options (JSON, a memfd)
 *   fd 1   the answer: {"plan": {...}} or {"error": "...", "errno": N}
 *   fd 2   airlockd's standard error (its log)
 *   fd 3   the policy's text (a memfd); its sha256 must be the options' digest
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/json.h"
#include "common/macros.h"
#include "common/util.h"
#include "plan/plan-internal.h"

/* The options are small; the answer carries the plan (output and diffs are capped). */
#define ISOLATED_OPTIONS_MAX (4U << 20)
#define ISOLATED_ANSWER_MAX  (512U << 20)
/*
 * plan_run() gives up on its snapshot a minute into building it and
 * 2 × timeout + 300 s into running it; the helper gets a minute more than
 * that before this side stops it.
 */
#define ISOLATED_GRACE_USEC (420ULL * 1000000)

extern char **environ;

static int memfd_with(const char *name, const void *data, size_t len)
{
        _cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (write_all(fd, data, len) < 0 || lseek(fd, 0, SEEK_SET) != 0)
                return -errno ?: -EIO;
        return TAKE_FD(fd);
}

/* Reads the helper's answer until it closes fd 1, or until deadline (monotonic). */
static int read_answer(int fd, uint64_t deadline, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, alloc = 0;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = now_monotonic_usec(), wait_ms;
                ssize_t n;
                int k;

                if (now >= deadline)
                        return -ETIMEDOUT;
                wait_ms = (deadline - now) / 1000 + 1;
                k = poll(&p, 1, wait_ms < 60000 ? (int)wait_ms : 60000);
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (k <= 0)
                        continue;
                if (alloc - len < 65536) {
                        char *b;

                        if (alloc >= ISOLATED_ANSWER_MAX)
                                return -EFBIG;
                        alloc = alloc ? alloc * 2 : 262144;
                        b = realloc(buf, alloc + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                n = read(fd, buf + len, alloc - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (!buf)
                return -ENODATA;
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int plan_run_isolated(const PlanOptions *o, const char *helper, PlanResult **ret, char *err,
                      size_t err_size)
{
        _cleanup_(json_decrefp) json_t *req = NULL, *ans = NULL;
        _cleanup_free_ char *req_text = NULL, *answer = NULL;
        _cleanup_close_ int req_fd = -EBADF, pol_fd = -EBADF, out_r = -EBADF, out_w = -EBADF;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        char *const argv[] = { (char *)helper, (char *)"--plan-helper", NULL };
        uint64_t timeout;
        size_t answer_len = 0;
        json_t *j;
        pid_t pid;
        int fds[2], k, status;

        if (!o || !o->argv || !o->argv[0] || !o->policy || !ret || !helper)
                return plan_fail(err, err_size, -EINVAL, "nothing to plan — give a command");
        if (!o->policy->text)
                return plan_fail(err, err_size, -EINVAL,
                                 "the policy was not loaded from its text (a bug: report it) — "
                                 "the request is judged without a plan");
        req = json_pack("{s:i, s:i, s:o, s:o, s:s*, s:I, s:I, s:s*, s:I, s:I, s:I, s:I, s:s, s:s}",
                        "version", 1, "parent", (int)getpid(), "argv", json_from_strv(o->argv),
                        "envp", json_from_strv(o->envp ?: (char *const[]){ NULL }), "cwd", o->cwd,
                        "uid", (json_int_t)o->uid, "gid", (json_int_t)o->gid, "host", o->host,
                        "timeout_usec", (json_int_t)o->timeout_usec, "output_max",
                        (json_int_t)o->output_max, "diff_max", (json_int_t)o->diff_max, "tmpfs_max",
                        (json_int_t)o->tmpfs_max, "policy_name", o->policy->source, "policy_sha256",
                        o->policy->digest);
        if (!req)
                /* json_pack() fails on an allocation or on a string that is not UTF-8 */
                return plan_fail(err, err_size, -EINVAL,
                                 "the command, its environment or its directory is not valid UTF-8 "
                                 "(or memory ran out) — it cannot be planned");
        req_text = json_dumps(req, JSON_COMPACT);
        if (!req_text)
                return plan_fail(err, err_size, -ENOMEM, "out of memory");
        req_fd = memfd_with("airlock-plan-options", req_text, strlen(req_text));
        if (req_fd >= 0)
                pol_fd = memfd_with("airlock-plan-policy", o->policy->text, o->policy->text_len);
        if (req_fd < 0 || pol_fd < 0)
                return plan_fail(err, err_size, req_fd < 0 ? req_fd : pol_fd,
                                 "cannot hand the plan its options: %s — airlockd is short of "
                                 "memory or file descriptors (see LimitNOFILE)",
                                 strerror(req_fd < 0 ? -req_fd : -pol_fd));
        if (pipe2(fds, O_CLOEXEC) < 0)
                return plan_fail(err, err_size, -errno, "pipe: %m");
        out_r = fds[0];
        out_w = fds[1];

        /* the helper starts with every signal at its default and none blocked */
        sigemptyset(&none);
        sigfillset(&all);
        if (posix_spawn_file_actions_init(&fa) != 0)
                return plan_fail(err, err_size, -ENOMEM, "out of memory");
        if (posix_spawnattr_init(&attr) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return plan_fail(err, err_size, -ENOMEM, "out of memory");
        }
        k = posix_spawn_file_actions_adddup2(&fa, req_fd, 0);
        if (k == 0)
                k = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
        if (k == 0)
                k = posix_spawn_file_actions_adddup2(&fa, pol_fd, 3);
        if (k == 0)
                k = posix_spawnattr_setsigmask(&attr, &none);
        if (k == 0)
                k = posix_spawnattr_setsigdefault(&attr, &all);
        if (k == 0)
                k = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (k == 0)
                k = posix_spawn(&pid, helper, &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (k != 0)
                return plan_fail(err, err_size, -k,
                                 "cannot start the plan helper %s: %s — airlockd is short of "
                                 "processes or memory (see TasksMax); restart it if this lasts",
                                 helper, strerror(k));
        out_w = safe_close(out_w);

        timeout = o->timeout_usec ?: PLAN_DEFAULT_TIMEOUT_USEC;
        k = read_answer(out_r, now_monotonic_usec() + 2 * timeout + ISOLATED_GRACE_USEC, &answer,
                        &answer_len);
        if (k < 0)
                /* stuck, or an answer too large: it ends here, and its plan with it */
                (void)kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        status = -1;
                        break;
                }
        if (k == -ETIMEDOUT)
                return plan_fail(
                        err, err_size, k,
                        "the plan did not finish within twice its timeout and %llu s more — "
                        "it was stopped; see airlockd's log",
                        (unsigned long long)(ISOLATED_GRACE_USEC / 1000000));
        if (k < 0 && k != -ENODATA)
                return plan_fail(err, err_size, k, "cannot read the plan: %s", strerror(-k));
        ans = answer ? json_loadb(answer, answer_len, 0, NULL) : NULL;
        if (!ans) {
                if (status != -1 && WIFSIGNALED(status))
                        return plan_fail(
                                err, err_size, -EIO,
                                "the plan helper was killed by signal %d before it answered — "
                                "see airlockd's log",
                                WTERMSIG(status));
                return plan_fail(
                        err, err_size, -EIO,
                        "the plan helper ended (status %d) without a readable answer — see "
                        "airlockd's log",
                        status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        j = json_object_get(ans, "error");
        if (json_is_string(j)) {
                json_t *e = json_object_get(ans, "errno");
                int r = json_is_integer(e) ? (int)json_integer_value(e) : EIO;

                return plan_fail(err, err_size, r > 0 && r < 4096 ? -r : -EIO, "%s",
                                 json_string_value(j));
        }
        k = plan_result_from_json(json_object_get(ans, "plan"), ret);
        if (k < 0)
                return plan_fail(err, err_size, k == -ENOMEM ? k : -EIO,
                                 "the plan helper's answer is not a plan (%s) — airlockd and its "
                                 "helper disagree; restart airlockd",
                                 strerror(-k));
        return 0;
}

/* ---- the helper's side ---- */

static int answer_error(int r, const char *msg)
{
        _cleanup_(json_decrefp) json_t *a = json_pack("{s:s, s:i}", "error", msg, "errno", -r);
        _cleanup_free_ char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;

        if (!text || write_all(STDOUT_FILENO, text, strlen(text)) < 0)
                return 1;
        return 0;
}

int plan_helper_main(void)
{
        _cleanup_(json_decrefp) json_t *req = NULL, *out = NULL;
        _cleanup_(plan_result_freep) PlanResult *plan = NULL;
        _cleanup_(policy_freep) Policy *policy = NULL;
        _cleanup_free_ char *req_text = NULL, *pol_text = NULL, *text = NULL;
        _cleanup_strv_free_ char **argv = NULL, **envp = NULL;
        json_int_t parent = 0, version = 0, uid = -1, gid = -1, timeout = 0, output_max = 0,
                   diff_max = 0, tmpfs_max = 0;
        const char *cwd = NULL, *host = NULL, *name = NULL, *digest = NULL;
        json_t *jargv = NULL, *jenvp = NULL;
        size_t req_len = 0, pol_len = 0;
        PolicyError perr = {};
        PlanOptions o;
        char err[1024] = "";
        int k;

        /* airlockd's connection thread waits for this answer; if it is gone, so is the plan */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                return 1;
        if (isatty(STDIN_FILENO) || fcntl(3, F_GETFD) < 0) {
                fprintf(stderr, "airlockd --plan-helper: this is airlockd's own helper for "
                                "planning a request, started by airlockd; it is not run by "
                                "hand (see airlockd(8))\n");
                return 64;
        }
        (void)syscall(SYS_close_range, 4U, ~0U, 0U);
        if (read_full_fd(STDIN_FILENO, ISOLATED_OPTIONS_MAX, &req_text, &req_len) < 0 ||
            read_full_fd(3, POLICY_MAX_FILE_SIZE, &pol_text, &pol_len) < 0)
                return answer_error(-EIO, "the plan helper could not read its options — restart "
                                          "airlockd");
        close(3);
        req = json_loadb(req_text, req_len, 0, NULL);
        if (!req ||
            json_unpack(req,
                        "{s:I, s:I, s:o, s:o, s?s, s:I, s:I, s?s, s:I, s:I, s:I, s:I, "
                        "s:s, s:s}",
                        "version", &version, "parent", &parent, "argv", &jargv, "envp", &jenvp,
                        "cwd", &cwd, "uid", &uid, "gid", &gid, "host", &host, "timeout_usec",
                        &timeout, "output_max", &output_max, "diff_max", &diff_max, "tmpfs_max",
                        &tmpfs_max, "policy_name", &name, "policy_sha256", &digest) < 0 ||
            version != 1 || uid < 0 || uid > UINT32_MAX - 1 || gid < 0 || gid > UINT32_MAX - 1 ||
            timeout < 0 || output_max < 0 || diff_max < 0 || tmpfs_max < 0)
                return answer_error(-EINVAL, "the plan helper's options are not readable — "
                                             "airlockd and its helper disagree; restart airlockd");
        /* the parent may have died before PR_SET_PDEATHSIG took effect */
        if (getppid() != (pid_t)parent)
                return 1;
        argv = strv_from_json(jargv);
        envp = strv_from_json(jenvp);
        if (!argv || !envp || !argv[0])
                return answer_error(-ENOMEM, "out of memory");
        k = policy_load_string(pol_text, pol_len, name, &policy, &perr);
        if (k < 0) {
                char msg[1024];

                policy_error_format(&perr, msg, sizeof(msg));
                return answer_error(k, msg);
        }
        if (!streq(policy->digest, digest))
                return answer_error(-EINVAL, "the plan helper was handed a policy other than "
                                             "the request's — the plan is refused");
        o = (PlanOptions){
                .argv = argv,
                .envp = envp,
                .cwd = cwd,
                .uid = (uid_t)uid,
                .gid = (gid_t)gid,
                .host = host,
                .policy = policy,
                .timeout_usec = (uint64_t)timeout,
                .output_max = (size_t)output_max,
                .diff_max = (size_t)diff_max,
                .tmpfs_max = (uint64_t)tmpfs_max,
        };
        k = plan_run(&o, &plan, err, sizeof(err));
        if (k < 0)
                return answer_error(k, err[0] ? err : strerror(-k));
        out = json_pack("{s:o}", "plan", plan_result_to_json(plan));
        text = out ? json_dumps(out, JSON_COMPACT) : NULL;
        if (!text)
                return answer_error(-ENOMEM, "out of memory");
        return write_all(STDOUT_FILENO, text, strlen(text)) < 0 ? 1 : 0;
}
