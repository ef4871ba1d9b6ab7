/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "broker/exec.h"
#include "common/util.h"

#define EXEC_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

char **exec_clean_env(const char *user, uint64_t request_id)
{
        _cleanup_strv_free_ char **env = NULL;
        struct passwd pw, *res = NULL;
        char buf[4096], *s;

        if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || !res)
                return NULL;
        env = calloc(1, sizeof(char *));
        if (!env)
                return NULL;
        if (strv_extend(&env, "PATH=" EXEC_PATH) < 0 || strv_extend(&env, "LANG=C.UTF-8") < 0)
                return NULL;
        if (asprintf(&s, "HOME=%s", res->pw_dir) < 0 || strv_consume(&env, s) < 0)
                return NULL;
        if (asprintf(&s, "USER=%s", res->pw_name) < 0 || strv_consume(&env, s) < 0)
                return NULL;
        if (asprintf(&s, "LOGNAME=%s", res->pw_name) < 0 || strv_consume(&env, s) < 0)
                return NULL;
        (void)request_id; /* not in the env: the env is part of the digest shown before the id */
        return TAKE_PTR(env);
}

static int find_program(const char *name, char *const *env, char **ret)
{
        const char *path = EXEC_PATH;

        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return -errno;
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }
        STRV_FOREACH (e, env)
                if (strneq(*e, "PATH=", 5))
                        path = *e + 5;
        for (const char *p = path; p && *p;) {
                const char *colon = strchr(p, ':');
                size_t n = colon ? (size_t)(colon - p) : strlen(p);
                _cleanup_free_ char *full = NULL;
                struct stat st;

                if (n > 0 && asprintf(&full, "%.*s/%s", (int)n, p, name) >= 0 &&
                    stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
                        *ret = TAKE_PTR(full);
                        return 0;
                }
                p = colon ? colon + 1 : NULL;
        }
        return -ENOENT;
}

typedef struct {
        int step;
        int err;
} ChildError;

static _noreturn_ void child_fail(int fd, int step)
{
        ChildError e = { .step = step, .err = errno };

        (void)!write(fd, &e, sizeof(e));
        _exit(127);
}

static const char *const child_steps[] = {
        "setsid", "redirect stdio", "setgroups", "setgid", "setuid", "chdir", "execve", "recording",
};

static int spawn_same_user(const char *program, const ExecSpec *spec, int in, int out, int err,
                           pid_t *ret_pid)
{
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, dfl;
        int r;

        sigemptyset(&none);
        sigfillset(&dfl);
        if (posix_spawn_file_actions_init(&fa) != 0)
                return -ENOMEM;
        if (posix_spawnattr_init(&attr) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -ENOMEM;
        }
        r = posix_spawn_file_actions_adddup2(&fa, in, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, out, 1);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, err, 2);
        if (r == 0)
                r = posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
        /* no broker fd (sockets, the database, the audit log) reaches the command */
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        if (r == 0)
                r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                            POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnattr_setsigmask(&attr, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&attr, &dfl);
        if (r == 0)
                r = posix_spawn(ret_pid, program, &fa, &attr, spec->command, spec->env);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

int exec_run(const ExecSpec *spec, int *ret_status, char *detail, size_t detail_size)
{
        _cleanup_free_ char *program = NULL;
        _cleanup_close_ int nullfd = -EBADF, errp_r = -EBADF, errp_w = -EBADF, rec_parent = -EBADF,
                            rec_child = -EBADF;
        _cleanup_(plan_recorder_freep) PlanRecorder *rec = NULL;
        int outp[2] = { -EBADF, -EBADF }, errp[2] = { -EBADF, -EBADF }, ep[2];
        struct passwd pw, *res = NULL;
        char pwbuf[4096];
        gid_t groups[256];
        int ngroups = ELEMENTSOF(groups), status = 0, r;
        bool timed_out = false, same_user;
        uint64_t deadline;
        ChildError ce;
        ssize_t n;
        pid_t pid;

        detail[0] = '\0';
        /* everything that may allocate or read files happens before fork() */
        if (getpwnam_r(spec->user, &pw, pwbuf, sizeof(pwbuf), &res) != 0 || !res) {
                snprintf(detail, detail_size, "the user '%s' to run as does not exist", spec->user);
                return -ESRCH;
        }
        same_user = res->pw_uid == geteuid() && res->pw_gid == getegid();
        /* the groups matter only on the fork path (posix_spawn keeps the broker's own) */
        if ((!same_user || spec->record_policy) &&
            getgrouplist(res->pw_name, res->pw_gid, groups, &ngroups) < 0) {
                snprintf(detail, detail_size, "the user '%s' is in more than %zu groups",
                         spec->user, ELEMENTSOF(groups));
                return -E2BIG;
        }
        r = find_program(spec->command[0], spec->env, &program);
        if (r < 0) {
                snprintf(detail, detail_size, "command not found: '%s' (PATH=%s): %s",
                         spec->command[0], EXEC_PATH, strerror(-r));
                return r;
        }
        nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nullfd < 0)
                return -errno;
        if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
                r = -errno;
                safe_close(outp[0]);
                safe_close(outp[1]);
                safe_close(errp[0]);
                safe_close(errp[1]);
                return r;
        }
        errp_r = ep[0];
        errp_w = ep[1];
        if (spec->record_policy) {
                int sk[2];

                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk) < 0) {
                        r = -errno;
                        snprintf(detail, detail_size, "cannot set up the recording: %s",
                                 strerror(-r));
                        safe_close(outp[0]);
                        safe_close(outp[1]);
                        safe_close(errp[0]);
                        safe_close(errp[1]);
                        return r;
                }
                rec_parent = sk[0];
                rec_child = sk[1];
        }

        if (same_user && !spec->record_policy) {
                /*
                 * Running as the broker's own user (root for administrative
                 * commands): posix_spawn (vfork-style, no copy of the broker's
                 * address space, which is what dominates under load) does all
                 * the child needs: new session, stdio, directory, no inherited
                 * fds, default signals.
                 */
                r = spawn_same_user(program, spec, nullfd, outp[1], errp[1], &pid);
                safe_close(outp[1]);
                safe_close(errp[1]);
                if (r < 0) {
                        safe_close(outp[0]);
                        safe_close(errp[0]);
                        snprintf(detail, detail_size, "could not start '%s' in %s: %s", program,
                                 spec->cwd, strerror(-r));
                        return r;
                }
                goto started;
        }

        pid = fork();
        if (pid < 0) {
                r = -errno;
                snprintf(detail, detail_size, "fork failed: %s", strerror(-r));
                safe_close(outp[0]);
                safe_close(outp[1]);
                safe_close(errp[0]);
                safe_close(errp[1]);
                return r;
        }
        if (pid == 0) {
                sigset_t all;

                /* the child of a threaded process: only async-signal-safe calls until execve */
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                signal(SIGPIPE, SIG_DFL);
                umask(0022);
                if (setsid() < 0)
                        child_fail(errp_w, 0);
                if (dup2(nullfd, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0)
                        child_fail(errp_w, 1);
                /* drop to the target user: groups first, then gid, then uid (irreversibly) */
                if (setgroups((size_t)ngroups, groups) < 0)
                        child_fail(errp_w, 2);
                if (setresgid(res->pw_gid, res->pw_gid, res->pw_gid) < 0)
                        child_fail(errp_w, 3);
                if (setresuid(res->pw_uid, res->pw_uid, res->pw_uid) < 0)
                        child_fail(errp_w, 4);
                if (chdir(spec->cwd) < 0)
                        child_fail(errp_w, 5);
                /* no broker fd (sockets, the database, the audit log) survives execve */
                syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
                /* last: from here on the recorder sees every call it watches, execve first */
                if (rec_child >= 0 && plan_record_child(rec_child) < 0)
                        child_fail(errp_w, 7);
                execve(program, spec->command, spec->env);
                child_fail(errp_w, 6);
        }
        safe_close(outp[1]);
        safe_close(errp[1]);
        errp_w = safe_close(errp_w);
        rec_child = safe_close(rec_child);
        if (rec_parent >= 0) {
                /*
                 * The child waits in plan_record_child() for this side: start the
                 * recorder before waiting for its execve. Without a recorder the
                 * child is killed: an approved command runs only where it is
                 * checked.
                 */
                char rerr[512] = "";

                r = plan_record_start(spec->record_policy, pid, rec_parent, &rec, rerr,
                                      sizeof(rerr));
                rec_parent = safe_close(rec_parent); /* the recorder holds its own copy */
                if (r < 0) {
                        (void)kill(pid, SIGKILL);
                        (void)waitpid(pid, NULL, 0);
                        safe_close(outp[0]);
                        safe_close(errp[0]);
                        snprintf(detail, detail_size,
                                 "could not start '%s': the recording of what it does failed: %s",
                                 program, rerr[0] ? rerr : strerror(-r));
                        return r;
                }
        }

        do
                n = read(errp_r, &ce, sizeof(ce));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(ce)) {
                safe_close(outp[0]);
                safe_close(errp[0]);
                (void)waitpid(pid, NULL, 0);
                snprintf(detail, detail_size, "could not start '%s': %s failed: %s", program,
                         child_steps[ce.step < (int)ELEMENTSOF(child_steps) ? ce.step : 6],
                         strerror(ce.err));
                return -ce.err ?: -EIO;
        }

started:
        deadline = now_monotonic_usec() + spec->timeout_usec;
        {
                struct pollfd pf[2] = { { .fd = outp[0], .events = POLLIN },
                                        { .fd = errp[0], .events = POLLIN } };
                uint8_t buf[16384];
                int open_fds = 2;

                while (open_fds > 0) {
                        uint64_t now = now_monotonic_usec();
                        int timeout_ms;

                        if (now >= deadline) {
                                if (timed_out)
                                        break; /* something escaped the group and holds the pipe */
                                timed_out = true;
                                (void)kill(-pid, SIGKILL);
                                deadline = now + 1000000;
                                continue;
                        }
                        timeout_ms = (int)((deadline - now + 999) / 1000);
                        r = poll(pf, 2, timeout_ms);
                        if (r < 0) {
                                if (errno == EINTR)
                                        continue;
                                break;
                        }
                        for (int i = 0; i < 2; i++) {
                                if (pf[i].fd < 0 || !pf[i].revents)
                                        continue;
                                n = read(pf[i].fd, buf, sizeof(buf));
                                if (n < 0 && errno == EINTR)
                                        continue;
                                if (n <= 0) {
                                        safe_close(pf[i].fd);
                                        pf[i].fd = -1;
                                        open_fds--;
                                        continue;
                                }
                                spec->on_output(spec->userdata, i, buf, (size_t)n);
                        }
                }
                safe_close(pf[0].fd);
                safe_close(pf[1].fd);
        }
        if (!timed_out) {
                /* the pipes closed; the leader may still run (it closed its stdio) */
                _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

                for (;;) {
                        uint64_t now = now_monotonic_usec();
                        struct pollfd pp = { .fd = pidfd, .events = POLLIN };

                        if (waitpid(pid, &status, WNOHANG) == pid)
                                break;
                        if (now >= deadline) {
                                timed_out = true;
                                break;
                        }
                        if (pidfd < 0)
                                usleep(1000);
                        else
                                (void)poll(&pp, 1, (int)((deadline - now + 999) / 1000));
                }
        }
        if (timed_out) {
                (void)kill(-pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
        }
        /* the command has ended: what the recorder saw (processes it left are not waited for) */
        if (rec && spec->ret_observed && plan_record_finish(rec, spec->ret_observed) < 0)
                *spec->ret_observed = NULL;
        if (timed_out) {
                snprintf(detail, detail_size, "killed after the timeout of %llu s",
                         (unsigned long long)(spec->timeout_usec / 1000000));
                *ret_status = 124;
                return 0;
        }
        if (WIFEXITED(status))
                *ret_status = WEXITSTATUS(status);
        else if (WIFSIGNALED(status)) {
                *ret_status = 128 + WTERMSIG(status);
                snprintf(detail, detail_size, "killed by signal %d", WTERMSIG(status));
        } else
                *ret_status = 1;
        return 0;
}
