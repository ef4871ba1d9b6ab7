/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The agent never gets the human's terminal: a terminal it shares could be
 * fed input (TIOCSTI), resized, or left in a strange mode. Where any of fds
 * 0-2 is a terminal, the agent gets a pty of its own for exactly those fds;
 * airlock relays bytes between it and the human's terminal (raw mode) and
 * restores the terminal's modes when the session ends, also on signals.
 * Non-terminal fds (pipes, files) are passed through unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox-internal.h"

static struct termios saved_termios;
static bool termios_saved;

static void restore_terminal(void)
{
        if (termios_saved) {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
                termios_saved = false;
        }
}

static int tty_out_fd(void)
{
        if (isatty(STDOUT_FILENO))
                return STDOUT_FILENO;
        if (isatty(STDERR_FILENO))
                return STDERR_FILENO;
        return -1;
}

int sbx_pty_open(SbxPlan *p, SbxError *err)
{
        _cleanup_close_ int master = -EBADF, slave = -EBADF;
        struct winsize ws;
        int ref = -1;

        p->pty_master = p->pty_slave = -EBADF;
        for (int fd = 0; fd <= 2; fd++)
                if (isatty(fd)) {
                        ref = fd;
                        break;
                }
        if (ref < 0)
                return 0;
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
                return sbx_fail(err, 71, -errno, "cannot create the agent's terminal: %m");
        slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
        if (slave < 0)
                return sbx_fail(err, 71, -errno, "cannot open the agent's terminal: %m");
        if (ioctl(ref, TIOCGWINSZ, &ws) == 0)
                (void)ioctl(master, TIOCSWINSZ, &ws);
        /* The agent's terminal starts with the human's modes (echo, line editing...). */
        if (isatty(STDIN_FILENO)) {
                struct termios t;
                if (tcgetattr(STDIN_FILENO, &t) == 0)
                        (void)tcsetattr(slave, TCSANOW, &t);
        }
        p->pty_master = TAKE_FD(master);
        p->pty_slave = TAKE_FD(slave);
        return 0;
}

int sbx_pty_make_controlling(int slave, SbxError *err)
{
        if (setsid() < 0)
                return sbx_fail(err, 71, -errno, "setsid failed: %m");
        if (slave < 0)
                return 0;
        if (ioctl(slave, TIOCSCTTY, 0) < 0)
                return sbx_fail(err, 71, -errno, "cannot make the pty the agent's terminal: %m");
        for (int fd = 0; fd <= 2; fd++)
                if (isatty(fd) && dup2(slave, fd) < 0)
                        return sbx_fail(err, 71, -errno, "dup2 of the pty failed: %m");
        return 0;
}

static void copy_winsize(int master)
{
        struct winsize ws;
        int ref = isatty(STDIN_FILENO) ? STDIN_FILENO : tty_out_fd();

        if (ref >= 0 && ioctl(ref, TIOCGWINSZ, &ws) == 0)
                (void)ioctl(master, TIOCSWINSZ, &ws);
}

/* Moves what is available from in to out; returns false at EOF or error of in. */
static bool pump(int in, int out)
{
        char buf[16384];
        ssize_t n = read(in, buf, sizeof buf);

        if (n < 0)
                return errno == EAGAIN || errno == EINTR;
        if (n == 0)
                return false;
        if (out >= 0)
                (void)write_all(out, buf, (size_t)n);
        return true;
}

/*
 * The parent's loop: forwards signals to pid 1 of the sandbox (which
 * forwards them to the agent), relays the pty, and returns when pid 1 has
 * exited, with pid 1's wait status (its exit code is the agent's status).
 */
int sbx_relay(SbxPlan *p, pid_t child, int *ret_wstatus)
{
        static const int forwarded[] = { SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGUSR1,
                                         SIGUSR2, SIGALRM, SIGCONT, SIGPIPE };
        _cleanup_close_ int sfd = -EBADF;
        int master = p->pty_master, out = tty_out_fd();
        bool in_open = master >= 0 && isatty(STDIN_FILENO);
        int wstatus = 0;
        bool exited = false, report_open = p->watch_report >= 0, hold_open = p->hold_fd >= 0,
             sync_open = p->sync_w >= 0;
        sigset_t mask;

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGWINCH);
        for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
                sigaddset(&mask, forwarded[i]);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return -errno;

        if (in_open && tcgetattr(STDIN_FILENO, &saved_termios) == 0) {
                struct termios raw = saved_termios;
                cfmakeraw(&raw);
                termios_saved = true;
                atexit(restore_terminal);
                (void)tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        }
        if (master >= 0)
                (void)fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);

        while (!exited) {
                struct pollfd pfd[6] = {
                        { .fd = sfd, .events = POLLIN },
                        { .fd = master, .events = POLLIN },
                        { .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
                        { .fd = report_open ? p->watch_report : -1, .events = POLLIN },
                        { .fd = hold_open ? p->hold_fd : -1, .events = POLLIN },
                        { .fd = sync_open ? p->sync_w : -1, .events = POLLIN },
                };
                if (poll(pfd, 6, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                /* A pipe whose writer is gone polls POLLHUP, not POLLIN. */
                if (pfd[3].revents & (POLLIN | POLLHUP | POLLERR)) {
                        /* lines from the session helper: see finish_secret_report() */
                        char buf[4096];
                        ssize_t n = read(p->watch_report, buf, sizeof buf - 1);
                        char *more;

                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                n = 0, buf[0] = '\0';
                        else if (n <= 0) {
                                /*
                                 * The helper closed its end. It does so when pid 1
                                 * has exited (the session is over). Otherwise it
                                 * died, and with it the secret watcher and the
                                 * open guard's answers (an unanswered guard allows
                                 * every open): the session ends now.
                                 */
                                report_open = false;
                                n = 0;
                                buf[0] = '\0';
                                if (waitpid(child, &wstatus, WNOHANG) == child)
                                        exited = p->pid1_reaped = true;
                                else {
                                        strcpy(buf, SBX_HELPER_STOPPED "\n");
                                        n = (ssize_t)strlen(buf);
                                        kill(child, SIGKILL);
                                }
                        }
                        buf[n] = '\0';
                        if (asprintf(&more, "%s%s", p->secret_appeared ? p->secret_appeared : "",
                                     buf) >= 0) {
                                free(p->secret_appeared);
                                p->secret_appeared = more;
                        }
                }
                if (pfd[4].revents & (POLLIN | POLLHUP | POLLERR)) {
                        /*
                         * A warm sandbox's client (airlock run) says nothing
                         * more once it has taken it: its end of the
                         * connection closing means it is gone, and the
                         * session ends as if it had been its parent.
                         */
                        char buf[256];
                        ssize_t n = recv(p->hold_fd, buf, sizeof buf, MSG_DONTWAIT);

                        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                                hold_open = false;
                                kill(child, SIGKILL);
                        }
                }
                if (pfd[5].revents & (POLLIN | POLLHUP | POLLERR)) {
                        /*
                         * Pid 1's last word: the agent's status, once nothing
                         * else runs in the sandbox (child.c, session_over()).
                         * Its own exit (the namespaces' teardown) is reaped
                         * later, by sbx_run(). EOF: it is gone, SIGCHLD tells.
                         */
                        unsigned char msg[2];
                        ssize_t n = recv(p->sync_w, msg, sizeof msg, MSG_DONTWAIT | MSG_WAITALL);

                        if (n == 2 && msg[0] == 'X') {
                                wstatus = W_EXITCODE(msg[1], 0);
                                exited = true;
                        } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                                sync_open = false;
                }
                if (pfd[0].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof si) == sizeof si) {
                                if (si.ssi_signo == SIGCHLD) {
                                        pid_t r = exited ? 0 : waitpid(child, &wstatus, WNOHANG);
                                        if (r == child)
                                                exited = p->pid1_reaped = true;
                                } else if (si.ssi_signo == SIGWINCH) {
                                        if (master >= 0)
                                                copy_winsize(master);
                                } else
                                        kill(child, (int)si.ssi_signo);
                        }
                }
                if (master >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
                        if (!pump(master, out) && (pfd[1].revents & (POLLHUP | POLLERR)) &&
                            !(pfd[1].revents & POLLIN)) {
                                /* every slave closed: only wait for the exit now */
                                master = -1;
                        }
                if (in_open && (pfd[2].revents & (POLLIN | POLLHUP | POLLERR)))
                        if (!pump(STDIN_FILENO, p->pty_master))
                                in_open = false;
        }
        /* What the agent wrote last is still in the pty. */
        if (master >= 0)
                while (pump(master, out)) {
                        struct pollfd pf = { .fd = master, .events = POLLIN };
                        if (poll(&pf, 1, 0) <= 0)
                                break;
                }
        restore_terminal();
        *ret_wstatus = wstatus;
        return 0;
}
