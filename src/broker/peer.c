/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "broker/peer.h"
#include "common/util.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static const char *const ns_names[] = { "user", "pid", "mnt" };
static struct stat ns_ref[ELEMENTSOF(ns_names)];

int peer_init_reference(void)
{
        for (size_t i = 0; i < ELEMENTSOF(ns_names); i++) {
                char p[64];

                snprintf(p, sizeof(p), "/proc/1/ns/%s", ns_names[i]);
                if (stat(p, &ns_ref[i]) == 0)
                        continue;
                snprintf(p, sizeof(p), "/proc/self/ns/%s", ns_names[i]);
                if (stat(p, &ns_ref[i]) < 0)
                        return -errno;
        }
        return 0;
}

static char *user_name(uid_t uid)
{
        struct passwd pw, *res = NULL;
        char buf[4096];
        char *s;

        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
                return strdup(res->pw_name);
        if (asprintf(&s, "%u", (unsigned)uid) < 0)
                return NULL;
        return s;
}

int peer_get(int fd, Peer *ret)
{
        struct ucred uc;
        socklen_t l = sizeof(uc);
        int pidfd = -EBADF;

        *ret = (Peer){ .pidfd = -EBADF };
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0)
                return -errno;
        l = sizeof(pidfd);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &l) < 0)
                pidfd = -EBADF;
        ret->pid = uc.pid;
        ret->uid = uc.uid;
        ret->gid = uc.gid;
        ret->pidfd = pidfd;
        ret->user = user_name(uc.uid);
        if (!ret->user) {
                safe_close(pidfd);
                return -ENOMEM;
        }
        return 0;
}

void peer_done(Peer *p)
{
        if (!p)
                return;
        safe_close(p->pidfd);
        free(p->user);
        *p = (Peer){ .pidfd = -EBADF };
}

static bool cgroup_is_sandbox(const char *path)
{
        /* any path component naming airlock, except the broker's own unit */
        const char *p = path;

        while (p && *p) {
                const char *slash = strchr(p, '/');
                size_t n = slash ? (size_t)(slash - p) : strlen(p);

                if (n >= 7 && strneq(p, "airlock", 7) &&
                    !(n == strlen("airlockd.service") && strneq(p, "airlockd.service", n)))
                        return true;
                p = slash ? slash + 1 : NULL;
        }
        return false;
}

int peer_check_unconfined(const Peer *p, char *why, size_t why_size)
{
        _cleanup_free_ char *status = NULL, *cgroup = NULL;
        char path[64];
        int r;

        if (p->pid <= 0) {
                snprintf(why, why_size, "the kernel did not report the peer's process");
                return -EPERM;
        }
        for (size_t i = 0; i < ELEMENTSOF(ns_names); i++) {
                struct stat st;

                snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)p->pid, ns_names[i]);
                if (stat(path, &st) < 0) {
                        snprintf(why, why_size, "cannot inspect process %d (%s): %s", (int)p->pid,
                                 path, strerror(errno));
                        return -EPERM;
                }
                if (st.st_dev != ns_ref[i].st_dev || st.st_ino != ns_ref[i].st_ino) {
                        snprintf(why, why_size,
                                 "process %d is in another %s namespace than the host: it runs "
                                 "inside a sandbox or container",
                                 (int)p->pid, ns_names[i]);
                        return -EPERM;
                }
        }

        snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
        r = read_full_file(path, 64 * 1024, &status, NULL);
        if (r < 0) {
                snprintf(why, why_size, "cannot read %s: %s", path, strerror(-r));
                return -EPERM;
        }
        for (const char *line = status; line && *line;) {
                if (strneq(line, "NoNewPrivs:", 11) && strtol(line + 11, NULL, 10) != 0) {
                        snprintf(why, why_size,
                                 "process %d has no_new_privs set, as every sandboxed process "
                                 "has",
                                 (int)p->pid);
                        return -EPERM;
                }
                if (strneq(line, "Seccomp:", 8) && strtol(line + 8, NULL, 10) != 0) {
                        snprintf(why, why_size,
                                 "process %d runs under a seccomp filter, as every sandboxed "
                                 "process does",
                                 (int)p->pid);
                        return -EPERM;
                }
                line = strchr(line, '\n');
                if (line)
                        line++;
        }

        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)p->pid);
        r = read_full_file(path, 64 * 1024, &cgroup, NULL);
        if (r < 0) {
                snprintf(why, why_size, "cannot read %s: %s", path, strerror(-r));
                return -EPERM;
        }
        for (char *line = cgroup; line && *line;) {
                char *nl = strchr(line, '\n'), *c;

                if (nl)
                        *nl = '\0';
                c = strchr(line, ':');
                c = c ? strchr(c + 1, ':') : NULL;
                if (c && cgroup_is_sandbox(c + 1)) {
                        snprintf(why, why_size, "process %d is in the sandbox cgroup %s",
                                 (int)p->pid, c + 1);
                        return -EPERM;
                }
                line = nl ? nl + 1 : NULL;
        }

        /*
         * Everything above was read by pid. If the process is still alive (its
         * pidfd can be signalled with 0), the pid was not reused meanwhile, so
         * what we read belongs to the process that connected.
         */
        if (p->pidfd >= 0 && syscall(SYS_pidfd_send_signal, p->pidfd, 0, NULL, 0) < 0) {
                snprintf(why, why_size, "process %d exited while it was being checked",
                         (int)p->pid);
                return -EPERM;
        }
        return 0;
}

bool peer_is_approver(const Policy *pol, const Peer *p)
{
        struct passwd pw, *res = NULL;
        char buf[4096];
        gid_t groups[256];
        int ng = ELEMENTSOF(groups);

        if (p->uid == 0)
                return true;
        if (getpwuid_r(p->uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
                return false;
        if (strv_contains(pol->approver_users, res->pw_name))
                return true;
        if (!pol->approver_groups)
                return false;
        if (getgrouplist(res->pw_name, res->pw_gid, groups, &ng) < 0)
                return false; /* more than 256 groups: fail closed */
        for (int i = 0; i < ng; i++) {
                struct group gr, *gres = NULL;
                char gbuf[8192];

                if (getgrgid_r(groups[i], &gr, gbuf, sizeof(gbuf), &gres) == 0 && gres &&
                    strv_contains(pol->approver_groups, gres->gr_name))
                        return true;
        }
        return false;
}
