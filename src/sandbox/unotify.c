/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The unix socket wall. connect(2) to a pathname AF_UNIX socket is not
 * stopped by a read-only mount, is not per network namespace, and Landlock
 * (ABI 7) has no right for it: a daemon listening anywhere on the host's
 * file system (now or later, in a container or not) would be reachable.
 * So every connect(2) of the agent stops at a seccomp user notification
 * and a supervisor decides, then performs the connect itself on the same
 * socket (its duplicate from pidfd_getfd) with its own copy of the
 * address, and answers with the result. The agent's call never continues
 * in the kernel: a thread of the agent that rewrites the address, or a
 * dup2() onto the fd number, after the check changes nothing we connect.
 *
 * The rules:
 * - AF_UNIX, pathname: the path is resolved (as the agent would, no magic
 *   links) to an O_PATH fd and the connect goes to that very inode through
 *   /proc/self/fd/N. Allowed: the session socket, and the agent's own
 *   servers (tmux, a test harness): with --net none a socket bound inside
 *   the sandbox's own network namespace, which sock_diag tells by the
 *   inode; with --net host (one namespace with the host) a socket on one of
 *   the sandbox's own tmpfs (its /tmp, /run, ...). Everything else: EACCES
 *   (SBX_UNOTIFY_REFUSED).
 * - AF_UNIX, abstract: with --net none the abstract namespace is the
 *   sandbox's own; with --net host it is the host's: EPERM (what
 *   Landlock's abstract-socket scope answers to the agent itself).
 * - AF_INET/AF_INET6: with --net host only the profile's TCP ports (the
 *   Landlock rule does not apply to the supervisor's own connect, so the
 *   ports are checked here as well); with --net none, anything (the
 *   namespace has only loopback). AF_NETLINK: as asked. Other families:
 *   EACCES.
 *
 * The supervisor is a process inside the sandbox, forked by pid 1 before
 * the agent: it has the agent's uid and namespaces, so a connection it
 * makes carries the same credentials the agent's own would (the broker
 * decides by SO_PEERCRED and sees a sandboxed process), and it can reach
 * nothing the agent could not reach by the rules above. It is not in the
 * agent's Landlock domain (so the agent cannot signal it) and it is not
 * dumpable (so the agent cannot read or write its memory). If it dies, the
 * kernel answers every connect with ENOSYS: the wall fails closed.
 *
 * It holds one capability, CAP_SYS_PTRACE in the sandbox's user namespace
 * (the one every agent process's credentials belong to), and nothing else
 * (see confine_supervisor). Reading the connect's address
 * (process_vm_readv) and taking the socket (pidfd_getfd) need ptrace
 * attach access to the agent, and the Yama LSM at ptrace_scope 1 (its
 * default: Ubuntu's and so Proxmox VE's kernels) grants that only to an
 * ancestor of the target or to a holder of CAP_SYS_PTRACE in the target's
 * user namespace; at ptrace_scope 2 only to the latter. The supervisor is
 * the agent's sibling, so without the capability every connect would fail
 * (EPERM) there. Why the capability is safe:
 * - it is a capability of the sandbox's own user namespace: every check
 *   against the host (capable(), the init namespace) still fails, and the
 *   sandbox's pid namespace shows the supervisor no process but pid 1, the
 *   agent's and itself. Pid 1 is out of reach anyway: its memory belongs
 *   to the host's user namespace (it never exec'd) and is not dumpable,
 *   and ptrace access to such memory needs CAP_SYS_PTRACE there.
 * - the agent cannot reach the supervisor: besides seccomp (no ptrace,
 *   no process_vm_*) and the undumpable memory, commoncap refuses ptrace
 *   access (/proc/PID/mem, environ, fd) to a process whose permitted
 *   capabilities are not a subset of the caller's, and the agent has none.
 * - the supervisor's own calls gain nothing from it: connect(2) to a unix
 *   socket checks write permission on the inode (CAP_SYS_PTRACE does not
 *   bypass file permissions: CAP_DAC_OVERRIDE would), and the path is
 *   resolved with the agent's uid and mounts.
 * - what it adds is reach into the agent's own processes: one that made
 *   itself undumpable is now looked at too (and its connects checked like
 *   any other). A process whose memory belongs to an outer user namespace
 *   (it exec'd a file it may not read, owned by an unmapped user) stays
 *   out of reach: its connects fail with EPERM, closed.
 * The alternative, making the supervisor the agent's ancestor (a child
 * subreaper that forks the agent), would pass Yama's scope 1 but not
 * scope 2, and would move pid 1's reaping, exit status and signal
 * forwarding into a multi-threaded process that handles the agent's input.
 * Yama's ptrace exceptions (PR_SET_PTRACER) are per process and not
 * inherited on fork. At ptrace_scope 3 no process may attach to another:
 * the launch is refused (sbx_unotify_prepare).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/rtnetlink.h>
#include <linux/securebits.h>
#include <linux/seccomp.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/unotify.h"

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS /* Linux 6.6 */
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

/*
 * --net host: the device numbers of the host's mounts, taken by airlock
 * before the sandbox's mount namespace is copied from them; inherited by
 * pid 1 and the supervisor. A tmpfs inside whose device is not among them
 * was made by the sandbox.
 */
static dev_t *host_devs;
static size_t n_host_devs;

/* Calls fn for each mount of /proc/self/mountinfo: its device, mount point and type. */
static int for_each_mount(int (*fn)(dev_t dev, const char *where, const char *type, void *u),
                          void *userdata)
{
        _cleanup_free_ char *text = NULL;
        int r = read_full_file("/proc/self/mountinfo", 16 * 1024 * 1024, &text, NULL);

        if (r < 0)
                return r;
        for (char *line = text, *next; line && *line; line = next) {
                unsigned maj, min;
                char where[4096], type[64];
                const char *dash;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE ..." */
                dash = strstr(line, " - ");
                if (!dash || sscanf(line, "%*s %*s %u:%u %*s %4095s", &maj, &min, where) != 3 ||
                    sscanf(dash + 3, "%63s", type) != 1)
                        continue;
                r = fn(makedev(maj, min), where, type, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_host_dev(dev_t dev, const char *where, const char *type, void *u)
{
        dev_t *t;

        (void)where;
        (void)type;
        (void)u;
        for (size_t i = 0; i < n_host_devs; i++)
                if (host_devs[i] == dev)
                        return 0;
        t = realloc(host_devs, sizeof *t * (n_host_devs + 1));
        if (!t)
                return -ENOMEM;
        host_devs = t;
        host_devs[n_host_devs++] = dev;
        return 0;
}

/* kernel.yama.ptrace_scope as read before the clone (-1: no Yama); see sbx_unotify_yama_scope. */
static int yama_scope = -1;

/* Pid 1's end of the channel to the supervisor, from sbx_unotify_fork to sbx_unotify_start. */
static int supervisor_chan = -EBADF;

int sbx_unotify_yama_scope(void)
{
        return yama_scope;
}

static int read_yama_scope(void)
{
        _cleanup_free_ char *s = NULL;
        uint64_t v;
        int r = read_full_file("/proc/sys/kernel/yama/ptrace_scope", 64, &s, NULL);

        if (r == -ENOENT)
                return -1; /* no Yama in this kernel */
        if (r < 0)
                return r;
        s[strcspn(s, "\n")] = '\0';
        r = parse_u64(s, 3, &v);
        if (r < 0)
                return r;
        return (int)v;
}

int sbx_unotify_prepare(const SbxPlan *p, SbxError *err)
{
        int r;

        r = read_yama_scope();
        if (r < -1)
                return sbx_fail(err, 71, r,
                                "cannot read /proc/sys/kernel/yama/ptrace_scope: %m — the unix "
                                "socket wall needs to know whether Yama lets it inspect connects");
        yama_scope = r;
        if (yama_scope >= 3)
                return sbx_fail(err, 71, -EPERM,
                                "kernel.yama.ptrace_scope is 3 (no process may inspect another, "
                                "until reboot): the unix socket wall cannot read the agent's "
                                "connects, so airlock run cannot confine unix sockets here — set "
                                "kernel.yama.ptrace_scope to 1 or 2 (in /etc/sysctl.d) and reboot");
        if (p->cfg->net != SBX_NET_HOST)
                return 0; /* --net none tells the agent's sockets by their network namespace */
        r = for_each_mount(add_host_dev, NULL);
        if (r < 0)
                return sbx_fail(err, 71, r, "cannot read /proc/self/mountinfo: %m");
        return 0;
}

typedef struct {
        int listener;
        bool net_host;
        const uint16_t *ports;
        size_t n_ports;
        bool have_session;
        dev_t session_dev;
        ino_t session_ino;
        dev_t private_devs[8]; /* --net host: the sandbox's own tmpfs (see own_tmpfs) */
        size_t n_private_devs;
} Wall;

/* One connect to perform: what the supervisor (or a worker thread) needs. */
typedef struct {
        const Wall *w;
        uint64_t id;
        int sock;   /* our duplicate of the agent's socket */
        int target; /* O_PATH fd of the unix socket to connect to, or -EBADF */
        struct sockaddr_storage addr;
        socklen_t len;
        bool quick; /* a blocking connect that cannot wait: done without a thread */
} Job;

static void job_free(Job *j)
{
        if (!j)
                return;
        safe_close(j->sock);
        safe_close(j->target);
        free(j);
}

static void reply(const Wall *w, uint64_t id, int r)
{
        struct seccomp_notif_resp resp = { .id = id, .error = r < 0 ? r : 0 };

        /* ENOENT: the agent's thread was interrupted or is gone; nothing waits. */
        (void)ioctl(w->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

static bool id_valid(const Wall *w, uint64_t id)
{
        return ioctl(w->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* sock_diag reports the kernel's own dev_t (MKDEV: 12 bits major, 20 bits minor). */
static uint32_t diag_dev(dev_t dev)
{
        return ((uint32_t)major(dev) << 20) | (uint32_t)minor(dev);
}

/*
 * Whether a unix socket bound in our network namespace (the sandbox's)
 * owns the file st describes. A socket inode belongs to one socket for its
 * whole life, so the answer cannot change between here and the connect.
 * Returns 1, 0, or a negative errno (treated as "no"); *ret_room: whether a
 * connect to it would not wait (not listening, or its backlog has room).
 */
static int bound_in_sandbox(const struct stat *st, bool *ret_room)
{
        _cleanup_close_ int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        struct {
                struct nlmsghdr nlh;
                struct unix_diag_req req;
        } q = {
                .nlh = { .nlmsg_len = sizeof q,
                         .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                         .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
                .req = { .sdiag_family = AF_UNIX,
                         .udiag_states = ~0U,
                         .udiag_show = UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN },
        };
        uint32_t want_dev = diag_dev(st->st_dev);

        if (nl < 0)
                return -errno;
        if (send(nl, &q, sizeof q, 0) != (ssize_t)sizeof q)
                return -errno;
        if (major(st->st_dev) > 0xfff || minor(st->st_dev) > 0xfffff ||
            (uint64_t)st->st_ino > UINT32_MAX)
                return 0; /* not expressible in sock_diag's fields: never ours to allow */
        for (;;) {
                uint32_t buf[8192];
                ssize_t n = recv(nl, buf, sizeof buf, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
                     h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_type == NLMSG_DONE)
                                return 0;
                        if (h->nlmsg_type == NLMSG_ERROR)
                                return -EIO;
                        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                            h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
                                continue;
                        struct unix_diag_msg *m = NLMSG_DATA(h);
                        size_t alen = h->nlmsg_len - NLMSG_LENGTH(sizeof *m);
                        bool match = false, room = m->udiag_state != TCP_LISTEN;
                        for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen);
                             a = RTA_NEXT(a, alen)) {
                                struct unix_diag_vfs v;
                                struct unix_diag_rqlen rq;
                                if (a->rta_type == UNIX_DIAG_VFS && RTA_PAYLOAD(a) >= sizeof v) {
                                        memcpy(&v, RTA_DATA(a), sizeof v);
                                        match = v.udiag_vfs_ino == (uint32_t)st->st_ino &&
                                                v.udiag_vfs_dev == want_dev;
                                } else if (a->rta_type == UNIX_DIAG_RQLEN &&
                                           RTA_PAYLOAD(a) >= sizeof rq) {
                                        /* listening: queued connections and the backlog */
                                        memcpy(&rq, RTA_DATA(a), sizeof rq);
                                        room = room || rq.udiag_rqueue < rq.udiag_wqueue;
                                }
                        }
                        if (match) {
                                *ret_room = room;
                                return 1;
                        }
                }
        }
}

static int decide_unix(const Wall *w, pid_t tid, Job *j, int type)
{
        struct sockaddr_un sun;
        char path[sizeof sun.sun_path + 1];
        size_t n;
        _cleanup_close_ int dirfd = -EBADF, target = -EBADF;
        struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS };
        struct stat st;
        bool ok;

        if (j->len <= offsetof(struct sockaddr_un, sun_path) || j->len > sizeof sun)
                return -EINVAL; /* as unix_validate_addr() */
        memcpy(&sun, &j->addr, sizeof sun);
        if (sun.sun_family != AF_UNIX)
                return -EINVAL;
        /* A datagram socket could sendto(2) anywhere later: none is created inside. */
        if (type != SOCK_STREAM && type != SOCK_SEQPACKET)
                return -SBX_UNOTIFY_REFUSED;
        n = j->len - offsetof(struct sockaddr_un, sun_path);
        if (sun.sun_path[0] == '\0')
                /* abstract: the sandbox's own namespace with --net none, the host's else */
                return w->net_host ? -EPERM : 0;
        memcpy(path, sun.sun_path, n);
        path[n] = '\0';
        if (path[0] != '/') {
                char cwd[64];
                snprintf(cwd, sizeof cwd, "/proc/%d/cwd", (int)tid);
                dirfd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0)
                        return -SBX_UNOTIFY_REFUSED;
        }
        /*
         * As the agent would resolve it (same root, mounts and uid), except
         * magic links (/proc/self is us, not the agent): refused (ELOOP).
         */
        target = (int)syscall(SYS_openat2, dirfd >= 0 ? dirfd : AT_FDCWD, path, &how, sizeof how);
        if (target < 0)
                return -errno;
        if (fstat(target, &st) < 0)
                return -errno;
        /* The broker accepts at once (backlog 256): its connects need no thread. */
        ok = j->quick = S_ISSOCK(st.st_mode) && w->have_session && st.st_dev == w->session_dev &&
                        st.st_ino == w->session_ino;
        if (!ok && S_ISSOCK(st.st_mode) && !w->net_host)
                ok = bound_in_sandbox(&st, &j->quick) > 0;
        for (size_t i = 0; !ok && S_ISSOCK(st.st_mode) && i < w->n_private_devs; i++)
                ok = st.st_dev == w->private_devs[i];
        if (!ok)
                return -SBX_UNOTIFY_REFUSED;
        j->target = TAKE_FD(target);
        return 0;
}

static int decide_inet(const Wall *w, Job *j, int type)
{
        struct sockaddr_in sin;

        if (!w->net_host)
                return 0; /* its own network namespace: loopback only */
        if (type != SOCK_STREAM)
                return -EACCES; /* not created on the host network (seccomp); never connect one */
        if (j->len >= sizeof(sa_family_t) && j->addr.ss_family == AF_UNSPEC)
                return 0; /* disconnect */
        if (j->len < offsetof(struct sockaddr_in, sin_addr))
                return -EINVAL;
        /* sin_port and sin6_port are at the same place */
        memcpy(&sin, &j->addr, sizeof sin);
        for (size_t i = 0; i < w->n_ports; i++)
                if (ntohs(sin.sin_port) == w->ports[i])
                        return 0;
        return -EACCES; /* what Landlock answers the agent for a port outside the list */
}

/*
 * A pidfd for the notifying thread tid: PIDFD_THREAD (Linux 6.9 and later),
 * else, where the kernel refuses that flag (EINVAL), one for its thread
 * group, whose memory and (unless the thread unshared it) fd table are the
 * thread's. Either way the caller checks SECCOMP_IOCTL_NOTIF_ID_VALID
 * afterwards, which rules out a tid reused meanwhile.
 */
static int pidfd_of_thread(pid_t tid)
{
        _cleanup_free_ char *status = NULL;
        char path[64];
        const char *t;
        long tgid;
        int fd;

        fd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
        if (fd >= 0 || errno != EINVAL)
                return fd;
        snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
        if (read_full_file(path, 64 * 1024, &status, NULL) < 0) {
                errno = ESRCH;
                return -1;
        }
        t = strstr(status, "\nTgid:");
        if (!t || (tgid = strtol(t + 6, NULL, 10)) <= 0) {
                errno = ESRCH;
                return -1;
        }
        return (int)syscall(SYS_pidfd_open, (pid_t)tgid, 0);
}

/*
 * Reads the notification's arguments and fetches the socket. Returns 0 (the
 * job is ready to connect), 1 (the notification is stale: drop it), or a
 * negative errno to answer.
 */
static int prepare(const Wall *w, const struct seccomp_notif *req, Job *j)
{
        pid_t tid = (pid_t)req->pid;
        int len = (int)req->data.args[2];
        int domain = 0, type = 0;
        socklen_t l = sizeof domain;
        _cleanup_close_ int pidfd = -EBADF;

        if (req->data.nr != SYS_connect)
                return -ENOSYS;
        if (len < 0 || (size_t)len > sizeof j->addr)
                return -EINVAL; /* as move_addr_to_kernel() */
        j->len = (socklen_t)len;
        if (len > 0) {
                struct iovec local = { .iov_base = &j->addr, .iov_len = (size_t)len };
                struct iovec remote = { .iov_base = (void *)(uintptr_t)req->data.args[1],
                                        .iov_len = (size_t)len };
                if (process_vm_readv(tid, &local, 1, &remote, 1, 0) != len) {
                        /* EPERM: the kernel lets nobody here look (see the top) */
                        int e = errno == EPERM ? -EPERM : -EFAULT;
                        return id_valid(w, req->id) ? e : 1;
                }
        }
        pidfd = pidfd_of_thread(tid);
        if (pidfd < 0) /* gone (then nobody waits), or we are short of fds: answer */
                return id_valid(w, req->id) ? -EAGAIN : 1;
        /* The tid (and so the memory read and the pidfd) was the notifying thread's. */
        if (!id_valid(w, req->id))
                return 1;
        j->sock = (int)syscall(SYS_pidfd_getfd, pidfd, (int)req->data.args[0], 0);
        if (j->sock < 0)
                return -errno;
        if (getsockopt(j->sock, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0)
                return -errno; /* ENOTSOCK, as connect(2) on a file */
        l = sizeof type;
        if (getsockopt(j->sock, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
                return -errno;
        switch (domain) {
        case AF_UNIX:
                return decide_unix(w, tid, j, type);
        case AF_INET:
        case AF_INET6:
                return decide_inet(w, j, type);
        case AF_NETLINK:
                return 0;
        default:
                return -EACCES;
        }
}

static int do_connect(Job *j)
{
        if (j->target >= 0) {
                struct sockaddr_un sun = { .sun_family = AF_UNIX };
                int n = snprintf(sun.sun_path, sizeof sun.sun_path, "/proc/self/fd/%d", j->target);
                return connect(j->sock, (struct sockaddr *)&sun,
                               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n +
                                           1)) < 0
                               ? -errno
                               : 0;
        }
        return connect(j->sock, (struct sockaddr *)&j->addr, j->len) < 0 ? -errno : 0;
}

static void *worker(void *arg)
{
        Job *j = arg;

        reply(j->w, j->id, do_connect(j));
        job_free(j);
        return NULL;
}

static void handle(const Wall *w, const struct seccomp_notif *req)
{
        Job *j = calloc(1, sizeof *j);
        pthread_attr_t attr;
        pthread_t t;
        int r, fl;

        if (!j) {
                reply(w, req->id, -ENOMEM);
                return;
        }
        *j = (Job){ .w = w, .id = req->id, .sock = -EBADF, .target = -EBADF };
        r = prepare(w, req, j);
        if (r != 0) {
                if (r < 0)
                        reply(w, req->id, r);
                job_free(j);
                return;
        }
        /*
         * A non-blocking socket connects at once (EINPROGRESS and the agent
         * polls the same socket), and so does a unix connect to a listener
         * with room in its backlog; any other blocking connect may take
         * minutes (a full backlog, a host that does not answer): a thread of
         * its own, so one slow connect never holds up the others. (A backlog
         * filled by a racing connect between our look and ours holds up the
         * agent's own connects only, until its own listener accepts.)
         */
        fl = fcntl(j->sock, F_GETFL);
        if (j->quick || (fl >= 0 && (fl & O_NONBLOCK))) {
                worker(j);
                return;
        }
        if (pthread_attr_init(&attr) != 0) {
                reply(w, req->id, -EAGAIN);
                job_free(j);
                return;
        }
        (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &attr, worker, j);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                reply(w, req->id, -EAGAIN); /* the pids limit, say: fail, do not block */
                job_free(j);
        }
}

static int recv_fd(int chan)
{
        char data;
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u;
        struct iovec iov = { .iov_base = &data, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = u.buf,
                             .msg_controllen = sizeof u.buf };
        struct cmsghdr *c;
        int fd;

        if (recvmsg(chan, &mh, MSG_CMSG_CLOEXEC) != 1 || (mh.msg_flags & MSG_CTRUNC))
                return -EIO;
        c = CMSG_FIRSTHDR(&mh);
        if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len != CMSG_LEN(sizeof(int)))
                return -EIO;
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
        return fd;
}

/*
 * --net host: the tmpfs the sandbox mounted where the agent keeps its own
 * sockets (its /tmp, /run, home, ...). The host's network namespace cannot
 * tell the agent's sockets from a daemon's, but a file system no host
 * mount has can only hold sockets bound from inside. A host mount made
 * just before the launch and missing from host_devs could only be under
 * these paths, which the sandbox's tmpfs cover.
 */
static int own_tmpfs(dev_t dev, const char *where, const char *type, void *u)
{
        static const char *const paths[] = { "/run",     "/var/run",  "/tmp",     "/var/tmp",
                                             "/dev/shm", "/run/user", "/tmp/home" };
        Wall *w = u;
        bool listed = false;

        if (!streq(type, "tmpfs") || w->n_private_devs >= ELEMENTSOF(w->private_devs))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                listed = listed || streq(where, paths[i]);
        for (size_t i = 0; listed && i < n_host_devs; i++)
                listed = host_devs[i] != dev;
        if (listed)
                w->private_devs[w->n_private_devs++] = dev;
        return 0;
}

#define SUPERVISOR_SECUREBITS                                                                    \
        (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |                         \
         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | \
         SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

/*
 * Right after the fork, single-threaded (capabilities are per thread: the
 * workers inherit these): from pid 1's full set of the sandbox's user
 * namespace down to CAP_SYS_PTRACE alone, permitted and effective;
 * inheritable and ambient empty, the bounding set CAP_SYS_PTRACE,
 * securebits locked (no capability back through uid 0 or a uid change),
 * no_new_privs, not dumpable, no core. The uid and gids are already the
 * agent's (pid 1 switched before the fork). Then every part is read back:
 * anything else and the supervisor exits, which fails the wall closed.
 */
static int confine_supervisor(const SbxPlan *p)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = { 0 }, got[2] = { 0 };
        struct rlimit core = { 0, 0 };
        struct rlimit nproc = { p->cgroup.pids_max, p->cgroup.pids_max };
        const int keep = CAP_SYS_PTRACE;

        if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_SET_SECUREBITS, SUPERVISOR_SECUREBITS) < 0)
                return -errno;
        for (int c = 0; c < 64; c++) /* EINVAL: beyond the kernel's last capability */
                if (c != keep && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                        return -errno;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                return -errno;
        d[CAP_TO_INDEX(keep)].permitted = d[CAP_TO_INDEX(keep)].effective = CAP_TO_MASK(keep);
        if (syscall(SYS_capset, &h, d) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            setrlimit(RLIMIT_CORE, &core) < 0 || setrlimit(RLIMIT_NPROC, &nproc) < 0 ||
            prctl(PR_SET_DUMPABLE, 0) < 0)
                return -errno;

        if (syscall(SYS_capget, &h, got) < 0)
                return -errno;
        if (memcmp(got, d, sizeof d) != 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 ||
            prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 ||
            prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) != SUPERVISOR_SECUREBITS)
                return -EPERM;
        for (int c = 0; c < 64; c++) {
                int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
                if (r < 0 ? errno != EINVAL : r != (c == keep))
                        return -EPERM;
        }
        return 0;
}

_noreturn_ static void supervise(const SbxPlan *p, int chan)
{
        Wall w = { .net_host = p->cfg->net == SBX_NET_HOST,
                   .ports = p->cfg->ports,
                   .n_ports = p->cfg->n_ports };
        int null;
        struct stat st;
        sigset_t all;

        /*
         * Every signal blocked (SIGKILL and SIGSTOP aside), as in pid 1: a
         * stray one neither kills the wall nor interrupts a worker.
         */
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        if (confine_supervisor(p) < 0)
                _exit(1);
        (void)prctl(PR_SET_NAME, "airlock-wall");
        null = open("/dev/null", O_RDWR | O_CLOEXEC);
        /* Nothing of pid 1's (the pty, the setup pipes) stays open here. */
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
                _exit(1);
        if (chan != 3 && dup2(chan, 3) < 0)
                _exit(1);
        close_range(4, ~0U, 0);
        w.listener = recv_fd(3);
        close(3);
        if (w.listener < 0)
                _exit(1);
        /*
         * The agent waits while we work: wake us on its CPU and switch at
         * once (else a busy machine's scheduler may let it wait a slice,
         * milliseconds, per connect). Older kernels: the usual wakeup.
         */
        (void)ioctl(w.listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
        /*
         * The session socket, if pid 1 bound one (a warm sandbox binds it
         * at the take, after our fork; the agent has run nothing yet).
         */
        if (stat(SBX_SESSION_SOCKET_PATH, &st) == 0 && S_ISSOCK(st.st_mode)) {
                w.have_session = true;
                w.session_dev = st.st_dev;
                w.session_ino = st.st_ino;
        }
        if (w.net_host && for_each_mount(own_tmpfs, &w) < 0)
                w.n_private_devs = 0; /* then only the session socket: fail closed */
        for (;;) {
                struct seccomp_notif req;

                memset(&req, 0, sizeof req);
                if (ioctl(w.listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
                        if (errno == EINTR || errno == ENOENT)
                                continue;
                        _exit(1); /* the agent's connects now fail with ENOSYS */
                }
                handle(&w, &req);
        }
}

static int send_fd(int chan, int fd)
{
        char data = 'L';
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } u = { 0 };
        struct iovec iov = { .iov_base = &data, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = u.buf,
                             .msg_controllen = sizeof u.buf };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
        return sendmsg(chan, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

int sbx_unotify_fork(const SbxPlan *p, SbxError *err)
{
        int sv[2], r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return sbx_fail(err, 71, -errno,
                                "cannot create the connect supervisor's channel: %m");
        /*
         * Forked while pid 1 still holds its capabilities in the sandbox's
         * user namespace, so that the supervisor can keep CAP_SYS_PTRACE
         * (confine_supervisor drops everything else before it reads
         * anything). It is forked before the filter is loaded: its own
         * connects are not filtered.
         */
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(sv[0]);
                close(sv[1]);
                return sbx_fail(err, 71, r, "cannot start the connect supervisor: %m");
        }
        if (pid == 0) {
                close(sv[0]);
                supervise(p, sv[1]);
        }
        close(sv[1]);
        supervisor_chan = sv[0];
        return 0;
}

int sbx_unotify_start(const SbxPlan *p, SbxError *err)
{
        _cleanup_close_ int chan = TAKE_FD(supervisor_chan), listener = -EBADF;
        int r;

        (void)p;
        if (chan < 0)
                return sbx_fail(err, 71, -EBADF, "the connect supervisor was not started");
        listener = sbx_seccomp_load_unotify();
        if (listener < 0)
                return sbx_fail(err, 71, listener,
                                "cannot load the connect filter (seccomp user notification, "
                                "Linux >= 5.5): %m");
        r = send_fd(chan, listener);
        if (r < 0)
                return sbx_fail(err, 71, r,
                                "cannot hand the connect filter to its supervisor (it could not "
                                "confine itself, or died): %m");
        return 0;
}
