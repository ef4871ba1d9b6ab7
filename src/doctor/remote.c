/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runs `CONNECT... airlock doctor --local --json` on many hosts at once and
 * collects what they answer. argv only, no shell; each child gets /dev/null
 * as stdin, only its pipes as fds, its own process group (so a timeout kills
 * the transport and everything it started), and a hard deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "doctor/doctor.h"

#define MAX_STDERR 4096

typedef struct {
        const DoctorTarget *t;
        pid_t pid;
        int out, err; /* -EBADF when closed */
        char *obuf;
        size_t olen, ocap;
        char ebuf[MAX_STDERR + 1];
        size_t elen;
        uint64_t start, deadline;
        bool started, done, timed_out, too_big;
        int status;
} Job;

static int spawn(Job *j)
{
        int po[2], pe[2];
        pid_t pid;

        if (pipe2(po, O_CLOEXEC) < 0)
                return negative_errno();
        if (pipe2(pe, O_CLOEXEC) < 0) {
                safe_close(po[0]);
                safe_close(po[1]);
                return negative_errno();
        }
        pid = fork();
        if (pid < 0) {
                int r = negative_errno();
                safe_close(po[0]), safe_close(po[1]), safe_close(pe[0]), safe_close(pe[1]);
                return r;
        }
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

                setpgid(0, 0);
                if (null < 0 || dup2(null, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
                        _exit(127);
                /* Only stdin/stdout/stderr cross into the transport. */
                syscall(SYS_close_range, 3U, ~0U, 0U);
                signal(SIGPIPE, SIG_DFL);
                execvp(j->t->argv[0], j->t->argv);
                dprintf(2, "cannot execute %s: %s", j->t->argv[0], strerror(errno));
                _exit(127);
        }
        setpgid(pid, pid); /* also here, so the group exists before any kill */
        safe_close(po[1]);
        safe_close(pe[1]);
        j->pid = pid;
        j->out = po[0];
        j->err = pe[0];
        j->started = true;
        return 0;
}

static void drain(Job *j, int *fd, bool is_out)
{
        char buf[16384];
        ssize_t n = read(*fd, buf, sizeof(buf));

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n <= 0) {
                *fd = safe_close(*fd);
                return;
        }
        if (is_out) {
                if (j->olen + (size_t)n > DOCTOR_MAX_REPORT_SIZE) {
                        j->too_big = true;
                        kill(-j->pid, SIGKILL);
                        *fd = safe_close(*fd);
                        return;
                }
                if (j->olen + (size_t)n + 1 > j->ocap) {
                        size_t cap = (j->olen + (size_t)n + 1) * 2;
                        char *nb = realloc(j->obuf, cap);
                        if (!nb) {
                                j->too_big = true;
                                *fd = safe_close(*fd);
                                return;
                        }
                        j->obuf = nb;
                        j->ocap = cap;
                }
                memcpy(j->obuf + j->olen, buf, (size_t)n);
                j->olen += (size_t)n;
                j->obuf[j->olen] = '\0';
        } else {
                size_t take = (size_t)n;
                if (j->elen + take > MAX_STDERR)
                        take = MAX_STDERR - j->elen;
                memcpy(j->ebuf + j->elen, buf, take);
                j->elen += take;
                j->ebuf[j->elen] = '\0';
        }
}

static json_t *job_result(Job *j)
{
        json_t *r = json_object();
        char msg[MAX_STDERR + 256];

        if (!r)
                return NULL;
        json_object_set_new(r, "elapsed_ms",
                            json_integer((json_int_t)((now_monotonic_usec() - j->start) / 1000)));
        if (!j->timed_out && !j->too_big && j->obuf && WIFEXITED(j->status) &&
            (WEXITSTATUS(j->status) == 0 || WEXITSTATUS(j->status) == 1)) {
                json_error_t e;
                json_t *facts = json_loadb(j->obuf, j->olen, JSON_REJECT_DUPLICATES, &e);

                if (json_is_object(facts)) {
                        json_object_set_new(r, "ok", json_true());
                        json_object_set_new(r, "facts", facts);
                        return r;
                }
                json_decref(facts);
                snprintf(msg, sizeof(msg), "its answer is not a JSON object (%s at line %d)",
                         e.text, e.line);
        } else if (j->timed_out)
                snprintf(msg, sizeof(msg), "no answer before the timeout");
        else if (j->too_big)
                snprintf(msg, sizeof(msg), "its answer is larger than %u bytes",
                         DOCTOR_MAX_REPORT_SIZE);
        else if (WIFSIGNALED(j->status))
                snprintf(msg, sizeof(msg), "the transport was killed by signal %d",
                         WTERMSIG(j->status));
        else {
                /* The last line of stderr usually says why (ssh, nsenter, airlock). */
                char *e = j->ebuf, *last;
                while (j->elen > 0 && (e[j->elen - 1] == '\n' || e[j->elen - 1] == '\r'))
                        e[--j->elen] = '\0';
                last = strrchr(e, '\n');
                snprintf(msg, sizeof(msg), "exit status %d%s%s", WEXITSTATUS(j->status),
                         j->elen ? ": " : "", last ? last + 1 : e);
        }
        {
                _cleanup_free_ char *esc = escape_for_terminal(msg);
                json_object_set_new(r, "ok", json_false());
                json_object_set_new(r, "error", json_string(esc ? esc : "error"));
        }
        return r;
}

int doctor_gather(const DoctorTarget *targets, size_t n, unsigned max_parallel,
                  uint64_t timeout_usec, DoctorProgressFn progress, void *userdata, json_t **ret)
{
        _cleanup_free_ Job *jobs = calloc(n ? n : 1, sizeof(Job));
        _cleanup_free_ struct pollfd *pfds = calloc(n ? 2 * n : 1, sizeof(struct pollfd));
        _cleanup_free_ size_t *pmap = calloc(n ? 2 * n : 1, sizeof(size_t));
        json_t *out = json_object();
        size_t next = 0, running = 0, finished = 0;
        int r = 0;

        if (!jobs || !pfds || !pmap || !out) {
                json_decref(out);
                return -ENOMEM;
        }
        if (max_parallel == 0)
                max_parallel = 1;
        for (size_t i = 0; i < n; i++) {
                jobs[i].t = &targets[i];
                jobs[i].out = jobs[i].err = -EBADF;
        }

        while (finished < n) {
                size_t np = 0;
                uint64_t now = now_monotonic_usec(), soonest = UINT64_MAX;

                while (next < n && running < max_parallel) {
                        Job *j = &jobs[next++];
                        j->start = now_monotonic_usec();
                        j->deadline = j->start + timeout_usec;
                        if (spawn(j) < 0) {
                                j->done = true;
                                j->status = 127 << 8;
                                snprintf(j->ebuf, sizeof(j->ebuf), "cannot start the transport: %s",
                                         strerror(errno));
                                j->elen = strlen(j->ebuf);
                                json_object_set_new(out, j->t->name, job_result(j));
                                finished++;
                                if (progress)
                                        progress(finished, n, j->t->name, userdata);
                                continue;
                        }
                        running++;
                }
                for (size_t i = 0; i < n; i++) {
                        Job *j = &jobs[i];
                        if (!j->started || j->done)
                                continue;
                        if (j->out >= 0) {
                                pfds[np] = (struct pollfd){ .fd = j->out, .events = POLLIN };
                                pmap[np++] = i;
                        }
                        if (j->err >= 0) {
                                pfds[np] = (struct pollfd){ .fd = j->err, .events = POLLIN };
                                pmap[np++] = i;
                        }
                        if (j->deadline < soonest)
                                soonest = j->deadline;
                }
                if (np > 0) {
                        int ms = soonest > now ? (int)((soonest - now) / 1000) + 1 : 0;
                        int pr = poll(pfds, np, ms);
                        if (pr < 0 && errno != EINTR) {
                                r = negative_errno();
                                break;
                        }
                        for (size_t k = 0; pr > 0 && k < np; k++) {
                                Job *j = &jobs[pmap[k]];
                                if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                                        continue;
                                if (pfds[k].fd == j->out)
                                        drain(j, &j->out, true);
                                else if (pfds[k].fd == j->err)
                                        drain(j, &j->err, false);
                        }
                }
                now = now_monotonic_usec();
                for (size_t i = 0; i < n; i++) {
                        Job *j = &jobs[i];
                        if (!j->started || j->done)
                                continue;
                        if (now >= j->deadline && !j->timed_out && (j->out >= 0 || j->err >= 0)) {
                                j->timed_out = true;
                                kill(-j->pid, SIGKILL);
                                j->out = safe_close(j->out);
                                j->err = safe_close(j->err);
                        }
                        if (j->out >= 0 || j->err >= 0)
                                continue;
                        /* Both pipes closed: reap (the group was killed on timeout). */
                        if (waitpid(j->pid, &j->status, j->timed_out || j->too_big ? 0 : WNOHANG) <=
                            0) {
                                if (now < j->deadline)
                                        continue;
                                kill(-j->pid, SIGKILL);
                                j->timed_out = true;
                                waitpid(j->pid, &j->status, 0);
                        }
                        j->done = true;
                        running--;
                        finished++;
                        json_object_set_new(out, j->t->name, job_result(j));
                        if (progress)
                                progress(finished, n, j->t->name, userdata);
                }
                if (np == 0 && running > 0)
                        usleep(10000); /* pipes closed, waiting for exit */
        }
        for (size_t i = 0; i < n; i++) {
                Job *j = &jobs[i];
                if (j->started && !j->done) {
                        kill(-j->pid, SIGKILL);
                        safe_close(j->out);
                        safe_close(j->err);
                        waitpid(j->pid, NULL, 0);
                }
                free(j->obuf);
        }
        if (r < 0) {
                json_decref(out);
                return r;
        }
        *ret = out;
        return 0;
}
