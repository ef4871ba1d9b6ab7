/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pid 1 of the sandbox and the agent. Pid 1 builds the mount namespace with
 * the capabilities it holds in the new user namespace, drops every
 * privilege, forks the agent and then only reaps and forwards signals. When
 * it exits the kernel kills everything left in the pid namespace: nothing
 * the agent started survives the session. The agent, before exec, enters a
 * Landlock domain and the seccomp filter and checks from the inside that
 * every layer is in force.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox-internal.h"
#include "sandbox/unotify.h"

void sbx_report(int fd, const SbxError *err)
{
        char buf[sizeof err->message + 8];
        int n = snprintf(buf, sizeof buf, "%d %s", err->exit_code, err->message);

        if (n > 0)
                (void)write_all(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

_noreturn_ static void die(int fd, const SbxError *err)
{
        sbx_report(fd, err);
        _exit(127);
}

static void noop_handler(int sig)
{
        (void)sig;
}

/*
 * execvpe() reports EACCES when any PATH directory is unsearchable (the
 * agent cannot enter /root/bin, say), hiding "not found": look up by hand,
 * so a missing command is 127 and an unexecutable one 126, as in a shell.
 */
static void exec_in_path(char *const *argv, char *const *envp, SbxError *err)
{
        const char *path = NULL;
        int saved = ENOENT;

        if (strchr(argv[0], '/')) {
                execve(argv[0], argv, envp);
                sbx_fail(err, errno == ENOENT ? 127 : 126, -errno, "cannot execute %s: %m",
                         argv[0]);
                return;
        }
        for (char *const *e = envp; *e; e++)
                if (strneq(*e, "PATH=", 5))
                        path = *e + 5;
        if (!path)
                path = "/usr/local/bin:/usr/bin:/bin";
        for (const char *d = path; d;) {
                const char *end = strchr(d, ':');
                size_t n = end ? (size_t)(end - d) : strlen(d);
                char full[4096];

                if (n > 0 && n + strlen(argv[0]) + 2 < sizeof full) {
                        snprintf(full, sizeof full, "%.*s/%s", (int)n, d, argv[0]);
                        execve(full, argv, envp);
                        if (errno != ENOENT && errno != ENOTDIR &&
                            !(errno == EACCES && access(full, F_OK) < 0))
                                saved = errno;
                }
                d = end ? end + 1 : NULL;
        }
        errno = saved;
        sbx_fail(err, saved == ENOENT ? 127 : 126, -saved,
                 saved == ENOENT ? "%s: command not found in the sandbox's PATH"
                                 : "cannot execute %s: %m",
                 argv[0]);
}

_noreturn_ static void agent_main(SbxPlan *p, SbxError *err)
{
        int errfd = p->err_fd;
        sigset_t none;

        sigemptyset(&none);
        for (int s = 1; s < NSIG; s++)
                signal(s, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (sbx_pty_make_controlling(p->pty_slave, err) < 0)
                die(errfd, err);
        /* Only 0-2 and the error pipe (close-on-exec) survive until exec. */
        if (errfd > 3)
                close_range(3, (unsigned)errfd - 1, 0);
        close_range((unsigned)errfd + 1, ~0U, 0);
        if (chdir(p->binds[0].path) < 0) {
                sbx_fail(err, 71, -errno, "cannot enter the workspace %s: %m", p->binds[0].path);
                die(errfd, err);
        }
        sbx_timing("agent: forked");
        if (sbx_landlock_apply(p, err) < 0)
                die(errfd, err);
        sbx_timing("agent: landlock");
        if (sbx_seccomp_apply(p, err) < 0)
                die(errfd, err);
        sbx_timing("agent: seccomp");
        if (sbx_selfcheck(p, err) < 0)
                die(errfd, err);
        sbx_timing("agent: ready to exec");
        if (sbx_limit_address_space(p, err) < 0)
                die(errfd, err);
        exec_in_path(p->cmd_argv, p->envp, err);
        die(errfd, err);
}

typedef struct {
        SbxPlan *p;
        SbxError *err;
        int sync_fd;
} AgentArgs;

static int agent_trampoline(void *arg) _unused_;
static int agent_trampoline(void *arg)
{
        AgentArgs *a = arg;

        close(a->sync_fd);
        agent_main(a->p, a->err);
}

/*
 * The agent is started like posix_spawn does it: it shares pid 1's memory
 * (CLONE_VM) on a stack of its own and pid 1 sleeps (CLONE_VFORK) until it
 * has exec'd or died, so no page table is copied. Safe because pid 1 is
 * single-threaded and suspended meanwhile; the agent's own fd table and
 * signal handlers are still private copies. The sanitizer builds use
 * fork(), which their runtimes understand.
 */
static pid_t spawn_agent(SbxPlan *p, SbxError *err, int sync_fd)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
        pid_t pid = fork();

        if (pid == 0) {
                close(sync_fd);
                agent_main(p, err);
        }
        return pid;
#else
        static AgentArgs args;
        const size_t size = 512 * 1024;
        void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        pid_t pid;

        if (stack == MAP_FAILED)
                return -1;
        args = (AgentArgs){ .p = p, .err = err, .sync_fd = sync_fd };
        pid = clone(agent_trampoline, (char *)stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD,
                    &args);
        munmap(stack, size);
        return pid;
#endif
}

/*
 * The agent has exited: the session is over. Everything else in our pid
 * namespace is killed and reaped here (again and again, until none is
 * left: a fork racing the first kill gives a child the next one gets),
 * then airlock is told the agent's status, and we exit with it. airlock
 * may finish the session before our own exit has torn the namespaces down
 * (the mount tree, up to a millisecond): nothing of the agent's runs any
 * more. Our exit status stays the same, for when the message is lost.
 */
_noreturn_ static void session_over(int sync_fd, int status)
{
        char msg[2] = { 'X', (char)(unsigned char)status };

        for (;;) {
                (void)kill(-1, SIGKILL);
                if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
                        break;
        }
        sbx_timing("child: all reaped");
        if (send(sync_fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) {
                /* airlock is gone, or learns the status from our exit */
        }
        _exit(status);
}

_noreturn_ void sbx_child_main(SbxPlan *p, int sync_fd)
{
        SbxError err = { 0 };
        SbxMountsCtx m;
        int errfd = p->err_fd;
        pid_t agent;
        sigset_t all;

        /* If airlock dies, so does the sandbox (and with pid 1, everything in it). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(127);
        /*
         * While the parent writes our uid/gid maps, expands the secrets and
         * places us in the cgroup: our network namespace and the first
         * phase of the mounts, which need none of that (the capabilities
         * of our user namespace are ours from the clone on, and nothing
         * here creates a file). Both are our own namespaces: if the parent
         * refuses the launch, it kills us and they go with us.
         */
        if (p->cfg->net == SBX_NET_NONE && unshare(CLONE_NEWNET) < 0) {
                sbx_fail(&err, 71, -errno, "cannot create the network namespace: %m");
                die(errfd, &err);
        }
        sbx_timing("child: network namespace");
        if (sbx_mounts_begin(p, &m, &err) < 0)
                die(errfd, &err);
        sbx_timing("child: mounts begun");
        /*
         * The go: the secrets to mask and the paths to protect, sent once
         * the maps and the cgroup are in place. Nothing (parent gone or
         * refused) or anything malformed: start nothing.
         */
        if (sbx_plan_receive(p, sync_fd) < 0)
                _exit(127);
        sbx_timing("child: go");
        if (sbx_mounts_open_masks(p, &m, &err) < 0)
                die(errfd, &err);
        if (p->privileged) {
                /*
                 * Become the agent user (mapped to itself): keep the
                 * capabilities of this user namespace for the mounts below;
                 * they are all dropped before anything of the agent runs.
                 */
                if (setgroups(0, NULL) < 0 || setresgid(p->gid, p->gid, p->gid) < 0) {
                        sbx_fail(&err, 71, -errno, "cannot switch to the agent's group: %m");
                        die(errfd, &err);
                }
                if (prctl(PR_SET_KEEPCAPS, 1) < 0 || setresuid(p->uid, p->uid, p->uid) < 0) {
                        sbx_fail(&err, 71, -errno, "cannot switch to the agent user: %m");
                        die(errfd, &err);
                }
                if (sbx_restore_effective_caps(&err) < 0)
                        die(errfd, &err);
                /*
                 * Changing credentials cleared the parent-death signal: set
                 * it again, then make sure airlock did not die in between
                 * (its end of the sync pipe would be closed).
                 */
                struct pollfd pf = { .fd = sync_fd, .events = POLLIN };
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&pf, 1, 0) != 0)
                        _exit(127);
        }
        if (sbx_mounts_finish(p, &m, &err) < 0)
                die(errfd, &err);
        p->session_dir_mnt = TAKE_FD(m.session_dir);
        sbx_mounts_ctx_done(&m);
        sbx_timing("child: mounts");
        /* The open guard's regions are in place: the parent marks them now (guard.c). */
        if (p->guard_regions && write(p->guard_ready, "R", 1) != 1) {
                sbx_fail(&err, 71, -errno, "cannot start the sandbox: %m");
                die(errfd, &err);
        }
        p->guard_ready = safe_close(p->guard_ready);
        /* Placed in the session's cgroup by now: a cgroup namespace rooted there. */
        if (unshare(CLONE_NEWCGROUP) < 0) {
                sbx_fail(&err, 71, -errno, "cannot create the cgroup namespace: %m");
                die(errfd, &err);
        }
        if (p->cfg->net == SBX_NET_NONE && sbx_loopback_up(&err) < 0)
                die(errfd, &err);
        for (size_t i = 0; i < p->n_binds; i++)
                p->binds[i].mount_fd = safe_close(p->binds[i].mount_fd);
        /* The unix socket wall's supervisor keeps CAP_SYS_PTRACE of this namespace: unotify.c */
        if (sbx_unotify_fork(p, &err) < 0)
                die(errfd, &err);
        /*
         * Our memory and /proc entries are nobody's business: not dumpable,
         * not ptraceable, also while a warm sandbox waits for its client
         * (we still hold the capabilities of our user namespace then).
         */
        if (prctl(PR_SET_DUMPABLE, 0) < 0) {
                sbx_fail(&err, 71, -errno, "cannot make pid 1 non-dumpable: %m");
                die(errfd, &err);
        }
        if (p->guard_regions) {
                /* Nothing of the agent runs before the guard's marks are in place. */
                char c;
                ssize_t n;
                while ((n = read(sync_fd, &c, 1)) < 0 && errno == EINTR)
                        ;
                if (n != 1 || c != 'M')
                        _exit(127); /* airlock is gone or refused: it says why */
        }
        /*
         * The sandbox is built. The command comes now from a cold run, or
         * when a client takes this warm sandbox (then also its broker
         * session's socket, bound while we still hold our capabilities).
         * A warm sandbox's parent hears first that we wait, with every
         * process of ours started (it resets their CPU priority then).
         */
        if (p->cfg->take && send(sync_fd, "W", 1, MSG_NOSIGNAL) != 1)
                _exit(127);
        if (sbx_command_receive(p, sync_fd) < 0)
                _exit(127); /* airlock is gone or refused: it says why */
        sbx_timing("child: command");
        if (sbx_mounts_bind_session(p, &err) < 0)
                die(errfd, &err);
        if (sbx_drop_privileges(p, &err) < 0)
                die(errfd, &err);

        /*
         * As pid 1 we ignore every signal we have no handler for: install
         * handlers (never run: the signals stay blocked for sigwaitinfo)
         * so those airlock forwards reach us and we pass them on.
         */
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        for (int s = 1; s < NSIG; s++)
                if (s != SIGKILL && s != SIGSTOP)
                        signal(s, noop_handler);

        if (sbx_unotify_start(p, &err) < 0) /* the unix socket wall: unotify.c */
                die(errfd, &err);
        sbx_timing("child: privileges dropped");
        agent = spawn_agent(p, &err, sync_fd);
        if (agent < 0) {
                sbx_fail(&err, 71, -errno, "cannot start the agent: %m");
                die(errfd, &err);
        }
        close(errfd);
        p->pty_slave = safe_close(p->pty_slave);
        /*
         * Dropping the detached clone of the sessions' directory waits for
         * an RCU grace period (up to a millisecond): now, not before the
         * agent's start. The agent never had it (close_range before exec).
         */
        p->session_dir_mnt = safe_close(p->session_dir_mnt);
        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(&all, &si);

                if (sig < 0)
                        continue;
                if (sig == SIGCHLD) {
                        pid_t r;
                        int st;
                        while ((r = waitpid(-1, &st, WNOHANG)) > 0)
                                if (r == agent) {
                                        sbx_timing("child: agent reaped");
                                        session_over(sync_fd, WIFEXITED(st) ? WEXITSTATUS(st)
                                                                            : 128 + WTERMSIG(st));
                                }
                        continue;
                }
                kill(agent, sig);
        }
}
