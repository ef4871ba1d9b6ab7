/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The plan's supervisor: a seccomp user-notification listener and a
 * fanotify group, served by one thread outside the command.
 *
 * Child side (plan_sup_child, after fork, before execve, no malloc): a
 * classic BPF program written here by hand kills any other architecture
 * (x32 included), notifies the supervisor of connect, addressed sends,
 * sendmsg/sendmmsg, execs and signals, and in refuse mode refuses what
 * would outlive or leave a user-namespaced snapshot (keyrings, io_uring,
 * bpf, userfaultfd, unix datagram sockets, socket families that network
 * namespaces do not confine). In record mode it also notifies the calls
 * that change files.
 *
 * Why refuse mode is airtight against races on the caller's memory: a
 * refused call is answered with an error and never reaches the kernel, so
 * nothing the command changes after the supervisor read its arguments
 * matters. The only calls refuse mode lets through after a look
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE) are execs, signals (both confined by
 * the pid namespace) and sendmsg/sendmmsg without a destination; a racing
 * thread may add a destination to those after the look, but every socket
 * the command can hold is then either confined by its network namespace
 * (inet, netlink, packet, alg) or a unix stream/seqpacket socket, which
 * ignores or rejects a destination: unix datagram sockets, the only unix
 * sockets that send to a path without connect(), cannot be created (the
 * filter checks socket()'s arguments, which are registers, not memory).
 * Every connect() is refused in refuse mode, whatever its address, except
 * netlink's, which the supervisor does itself on its own copy of the
 * socket (see connect_for()): none is ever let run.
 * Connects to a unix socket that does not exist (the call fails for real
 * too) and name-service lookups (nscd, systemd-userdb, sssd, resolved) are
 * neither recorded nor let out: they change nothing.
 *
 * Record mode (plan_record_*, an approved real execution) continues every
 * call after recording it. It is for detecting deviations from the plan,
 * not a security boundary: a command can race the recorder (change a path
 * after it was read), and descendants that outlive the command stay under
 * the filter (served, not recorded, until they exit or airlock does).
 *
 * The listener reaches the parent without sendmsg(): sendmsg after the
 * filter is installed would itself wait for the supervisor that has not
 * got the listener yet. The child writes the listener's fd number on sock
 * (SO_PASSCRED set, so the kernel attaches its pid), the parent takes the
 * fd with pidfd_getfd() and acknowledges, and only then does the child
 * close its copy and exec: the command never holds its own listener.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "plan/plan-internal.h"

#if defined(__x86_64__)
#define PLAN_AUDIT_ARCH AUDIT_ARCH_X86_64
#define PLAN_X32_BIT    0x40000000U
#elif defined(__aarch64__)
#define PLAN_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "the plan supervisor knows the syscall table of x86_64 and aarch64 only"
#endif

#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef __NR_setxattrat
#define __NR_setxattrat 463
#endif
#ifndef __NR_removexattrat
#define __NR_removexattrat 466
#endif

#define PLAN_SUP_MAX_ARGS     4096         /* argv entries read from an exec */
#define PLAN_SUP_MAX_ARGBYTES (256 * 1024) /* bytes of argv read from an exec */
#define PLAN_SUP_MAX_RECORDS  100000       /* distinct records kept per plan */
#define PLAN_SUP_MAX_MARKS    4096         /* secret inodes watched */
#define PLAN_SUP_WALK_MAX     20000        /* entries examined expanding one secret glob */
#define PLAN_SUP_PROG_MAX     256          /* BPF instructions */

/* ---- the filter (child side: no malloc, no stdio) ---- */

typedef struct {
        struct sock_filter *f;
        size_t n;
        bool overflow;
} Prog;

static void emit(Prog *p, uint16_t code, uint32_t k, uint8_t jt, uint8_t jf)
{
        if (p->n >= PLAN_SUP_PROG_MAX) {
                p->overflow = true;
                return;
        }
        p->f[p->n++] = (struct sock_filter){ code, jt, jf, k };
}

#define ARG_LO(i) ((uint32_t)offsetof(struct seccomp_data, args[i]))
#define ARG_HI(i) ((uint32_t)offsetof(struct seccomp_data, args[i]) + 4)

static void load_nr(Prog *p)
{
        emit(p, BPF_LD | BPF_W | BPF_ABS, (uint32_t)offsetof(struct seccomp_data, nr), 0, 0);
}

/* if nr == n: return action (A holds nr and still does after) */
static void on(Prog *p, long n, uint32_t action)
{
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)n, 0, 1);
        emit(p, BPF_RET | BPF_K, action, 0, 0);
}

/* if nr == n: notify when the 64-bit argument i is not zero, else allow */
static void on_nonzero_arg(Prog *p, long n, int i, uint32_t action)
{
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)n, 0, 6);
        emit(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(i), 0, 0);
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2);
        emit(p, BPF_LD | BPF_W | BPF_ABS, ARG_HI(i), 0, 0);
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
        emit(p, BPF_RET | BPF_K, action, 0, 0);
        emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
}

/* if nr == n: notify when argument i (low word) has any of bits, else allow */
static void on_flags(Prog *p, long n, int i, uint32_t bits, uint32_t action)
{
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)n, 0, 4);
        emit(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(i), 0, 0);
        emit(p, BPF_JMP | BPF_JSET | BPF_K, bits, 0, 1);
        emit(p, BPF_RET | BPF_K, action, 0, 0);
        emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
}

/*
 * socket()/socketpair() in refuse mode: families a network namespace
 * confines are allowed, AF_UNIX stream and seqpacket sockets too, the rest is
 * refused with EAFNOSUPPORT (vsock, bluetooth, ... are not namespaced).
 */
static void on_socket(Prog *p, long n)
{
        static const uint32_t ok[] = { AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_ALG };
        size_t m = ELEMENTSOF(ok);

        /*
         * AF_UNIX: stream and seqpacket only. Every other type is refused,
         * SOCK_RAW included: af_unix.c makes it a datagram socket, which
         * sends to any path.
         * block: JEQ n | LD a0 | JEQ unix | LD a1 | AND | JEQ stream | JEQ seqpacket |
         *        RET EACCES | RET ALLOW | (JEQ ok_i, RET ALLOW) * m | RET EAFNOSUPPORT
         */
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)n, 0, (uint8_t)(9 + 2 * m));
        emit(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(0), 0, 0);
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 6);
        emit(p, BPF_LD | BPF_W | BPF_ABS, ARG_LO(1), 0, 0);
        emit(p, BPF_ALU | BPF_AND | BPF_K, 0xf, 0, 0);
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, SOCK_STREAM, 2, 0);
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, SOCK_SEQPACKET, 1, 0);
        emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES, 0, 0);
        emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
        for (size_t i = 0; i < m; i++) {
                emit(p, BPF_JMP | BPF_JEQ | BPF_K, ok[i], 0, 1);
                emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
        }
        emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT, 0, 0);
}

static void build_filter(PlanSupMode mode, Prog *p)
{
        const uint32_t notify = SECCOMP_RET_USER_NOTIF;
        const uint32_t write_bits = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC;

        /* the native architecture only: another table would let calls slip past by number */
        emit(p, BPF_LD | BPF_W | BPF_ABS, (uint32_t)offsetof(struct seccomp_data, arch), 0, 0);
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, PLAN_AUDIT_ARCH, 1, 0);
        emit(p, BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
        load_nr(p);
#ifdef PLAN_X32_BIT
        emit(p, BPF_JMP | BPF_JGE | BPF_K, PLAN_X32_BIT, 0, 1);
        emit(p, BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0);
#endif

        on(p, __NR_connect, notify);
        on_nonzero_arg(p, __NR_sendto, 4, notify);
        on(p, __NR_sendmsg, notify);
        on(p, __NR_sendmmsg, notify);
        on(p, __NR_execve, notify);
        on(p, __NR_execveat, notify);
        on(p, __NR_kill, notify);
        on(p, __NR_tkill, notify);
        on(p, __NR_tgkill, notify);
        on(p, __NR_rt_sigqueueinfo, notify);
        on(p, __NR_rt_tgsigqueueinfo, notify);
        on(p, __NR_pidfd_send_signal, notify);
        /* io_uring performs connects and sends without system calls the filter sees */
        on(p, __NR_io_uring_setup, SECCOMP_RET_ERRNO | ENOSYS);
        on(p, __NR_io_uring_enter, SECCOMP_RET_ERRNO | ENOSYS);
        on(p, __NR_io_uring_register, SECCOMP_RET_ERRNO | ENOSYS);

        if (mode == PLAN_SUP_REFUSE) {
                /* keyrings belong to the kuid and outlive the snapshot */
                on(p, __NR_add_key, SECCOMP_RET_ERRNO | EPERM);
                on(p, __NR_keyctl, SECCOMP_RET_ERRNO | EPERM);
                on(p, __NR_request_key, SECCOMP_RET_ERRNO | EPERM);
                /* kernel objects that are not namespaced; userfaultfd could stall the supervisor */
                on(p, __NR_bpf, SECCOMP_RET_ERRNO | EPERM);
                on(p, __NR_userfaultfd, SECCOMP_RET_ERRNO | EPERM);
                on_socket(p, __NR_socket);
                load_nr(p);
                on_socket(p, __NR_socketpair);
                load_nr(p);
        } else {
#ifdef __NR_open
                on_flags(p, __NR_open, 1, write_bits, notify);
#endif
                on_flags(p, __NR_openat, 2, write_bits, notify);
#ifdef __NR_creat
                on(p, __NR_creat, notify);
#endif
                on(p, __NR_openat2, notify); /* the flags are in memory: always */
#ifdef __NR_unlink
                on(p, __NR_unlink, notify);
                on(p, __NR_rename, notify);
                on(p, __NR_mkdir, notify);
                on(p, __NR_rmdir, notify);
                on(p, __NR_link, notify);
                on(p, __NR_symlink, notify);
                on(p, __NR_chmod, notify);
                on(p, __NR_chown, notify);
                on(p, __NR_lchown, notify);
                on(p, __NR_mknod, notify);
#endif
                on(p, __NR_unlinkat, notify);
#ifdef __NR_renameat
                on(p, __NR_renameat, notify);
#endif
                on(p, __NR_renameat2, notify);
                on(p, __NR_mkdirat, notify);
                on(p, __NR_linkat, notify);
                on(p, __NR_symlinkat, notify);
                on(p, __NR_fchmod, notify);
                on(p, __NR_fchmodat, notify);
                on(p, __NR_fchmodat2, notify);
                on(p, __NR_fchown, notify);
                on(p, __NR_fchownat, notify);
                on(p, __NR_truncate, notify);
                on(p, __NR_ftruncate, notify);
                on(p, __NR_mknodat, notify);
                on(p, __NR_setxattr, notify);
                on(p, __NR_lsetxattr, notify);
                on(p, __NR_fsetxattr, notify);
                on(p, __NR_removexattr, notify);
                on(p, __NR_lremovexattr, notify);
                on(p, __NR_fremovexattr, notify);
                on(p, __NR_setxattrat, notify);
                on(p, __NR_removexattrat, notify);
        }
        emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0);
}

static int install(struct sock_fprog *fprog, unsigned flags)
{
        long fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, flags, fprog);

        return fd < 0 ? -errno : (int)fd;
}

int plan_sup_child(PlanSupMode mode, int sock)
{
        struct sock_filter insns[PLAN_SUP_PROG_MAX];
        Prog p = { .f = insns };
        struct sock_fprog fprog;
        unsigned flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        int one = 1, fd, r;
        char ack;
        ssize_t n;

        build_filter(mode, &p);
        if (p.overflow)
                return -E2BIG;
        fprog.len = (unsigned short)p.n;
        fprog.filter = insns;

        /* set before the write below, so the kernel attaches our pid to it */
        if (setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return -errno;

        /*
         * Without CAP_SYS_ADMIN (a run-as user) the kernel requires
         * no_new_privs; with it (root, in its user namespace) setuid programs
         * the command runs keep working.
         */
        fd = install(&fprog, flags);
        if (fd == -EINVAL) /* a kernel before 5.19: no WAIT_KILLABLE_RECV */
                fd = install(&fprog, flags & ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
        if (fd == -EACCES) {
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                        return -errno;
                fd = install(&fprog, flags);
                if (fd == -EINVAL)
                        fd = install(&fprog, flags & ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
        }
        if (fd < 0)
                return fd;

        /* write() and read() are not notified: no deadlock with a parent that has no listener yet
         */
        do
                n = write(sock, &fd, sizeof(fd));
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof(fd)) {
                r = n < 0 ? -errno : -EIO;
                close(fd);
                return r;
        }
        do
                n = read(sock, &ack, 1);
        while (n < 0 && errno == EINTR);
        r = n == 1 && ack == 'K' ? 0 : (n < 0 ? -errno : -ECONNABORTED);
        /* the command must not hold its own listener */
        close(fd);
        return r;
}

/* ---- the supervisor ---- */

typedef struct {
        dev_t dev;
        ino_t ino;
        char *path;
} Watched;

/* A set of strings, for records kept once. */
typedef struct {
        char **slot;
        size_t n, cap;
} StrSet;

struct PlanSup {
        PlanSupMode mode;
        const Policy *policy;
        PlanResult *r;
        int sock;
        int listener;
        int fan;
        int stop_efd;   /* written by plan_sup_free to end a thread that never got a listener */
        int standby_fd; /* record mode: the continuer's leash (see continuer()) */
        pthread_t thread;
        bool thread_started;
        int thread_error;

        pthread_mutex_t lock; /* guards closed and every write to r */
        bool closed;          /* r has been handed over: record nothing more */
        bool thread_done;     /* the thread has left its loop and will not touch r again */
        bool gated;           /* the child waits until the secrets are watched (record mode) */
        bool cancelled;       /* plan_sup_free() before the child was let go: never let it go */
        pthread_cond_t gate_cond;

        pid_t root_pid;    /* the first process that notified (the command) */
        char *root_prefix; /* how the snapshot's root shows in /proc/PID/exe from here */
        size_t n_records;
        StrSet seen;
        StrSet pids; /* "pid N": notified (record mode); "host N": exec'd in our pid ns (refuse) */
        /* the program each recent exec ran, by pid: names a reader that is gone before its event */
        struct {
                pid_t pid;
                char *path;
        } execd[256];
        size_t execd_next;

        Watched *watched;
        size_t n_watched;
};

static uint64_t str_hash(const char *s)
{
        uint64_t h = 1469598103934665603ULL;

        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

/* Returns 1 if s was added, 0 if it was there, -ENOMEM. */
static int strset_add(StrSet *set, const char *s)
{
        size_t i;

        if ((set->n + 1) * 2 > set->cap) {
                size_t cap = set->cap ? set->cap * 2 : 256;
                char **slot = calloc(cap, sizeof(char *));

                if (!slot)
                        return -ENOMEM;
                for (size_t k = 0; k < set->cap; k++)
                        if (set->slot[k]) {
                                for (i = str_hash(set->slot[k]) & (cap - 1); slot[i];
                                     i = (i + 1) & (cap - 1))
                                        ;
                                slot[i] = set->slot[k];
                        }
                free(set->slot);
                set->slot = slot;
                set->cap = cap;
        }
        for (i = str_hash(s) & (set->cap - 1); set->slot[i]; i = (i + 1) & (set->cap - 1))
                if (streq(set->slot[i], s))
                        return 0;
        set->slot[i] = strdup(s);
        if (!set->slot[i])
                return -ENOMEM;
        set->n++;
        return 1;
}

static void strset_done(StrSet *set)
{
        for (size_t i = 0; i < set->cap; i++)
                free(set->slot[i]);
        free(set->slot);
        *set = (StrSet){ 0 };
}

/*
 * Whether to record an effect with this key: not yet recorded, the results
 * not yet handed over, and under the record cap (past it the plan is
 * partial). Takes s->lock; on true the caller records and calls unlock().
 */
static bool record_begin(PlanSup *s, const char *key)
{
        int r;

        pthread_mutex_lock(&s->lock);
        if (s->closed)
                goto no;
        r = key ? strset_add(&s->seen, key) : 1;
        if (r == 0)
                goto no;
        if (r < 0 || s->n_records >= PLAN_SUP_MAX_RECORDS) {
                (void)plan_result_partial(s->r, r < 0 ? "out of memory while recording: effects "
                                                        "may be missing"
                                                      : "too many effects to record: effects may "
                                                        "be missing");
                goto no;
        }
        s->n_records++;
        return true;
no:
        pthread_mutex_unlock(&s->lock);
        return false;
}

static void record_end(PlanSup *s)
{
        pthread_mutex_unlock(&s->lock);
}

static void partial(PlanSup *s, const char *reason)
{
        pthread_mutex_lock(&s->lock);
        if (!s->closed)
                (void)plan_result_partial(s->r, reason);
        pthread_mutex_unlock(&s->lock);
}

static char *readlink_malloc(const char *path)
{
        char buf[PATH_MAX];
        ssize_t n = readlink(path, buf, sizeof(buf) - 1);

        if (n < 0)
                return NULL;
        buf[n] = 0;
        return strdup(buf);
}

static void remember_exec(PlanSup *s, pid_t pid, const char *path)
{
        size_t i = s->execd_next++ % ELEMENTSOF(s->execd);

        pthread_mutex_lock(&s->lock);
        free(s->execd[i].path);
        s->execd[i].pid = pid;
        s->execd[i].path = path ? strdup(path) : NULL;
        pthread_mutex_unlock(&s->lock);
}

/* The caller's program, as a path the approver recognises (snapshot prefix removed). */
static char *program_of(PlanSup *s, pid_t pid)
{
        char p[64];
        char *exe;

        snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
        exe = readlink_malloc(p);
        if (!exe) {
                /* gone already: the program its last exec under the filter ran */
                pthread_mutex_lock(&s->lock);
                for (size_t k = 1; k <= ELEMENTSOF(s->execd) && k <= s->execd_next; k++) {
                        size_t i = (s->execd_next - k) % ELEMENTSOF(s->execd);

                        if (s->execd[i].pid == pid && s->execd[i].path) {
                                exe = strdup(s->execd[i].path);
                                break;
                        }
                }
                pthread_mutex_unlock(&s->lock);
                return exe;
        }
        if (exe && s->root_prefix && strncmp(exe, s->root_prefix, strlen(s->root_prefix)) == 0 &&
            exe[strlen(s->root_prefix)] == '/') {
                char *t = strdup(exe + strlen(s->root_prefix));

                free(exe);
                exe = t;
        }
        return exe;
}

/* ---- reading the caller's memory ---- */

static int mem_open(pid_t pid)
{
        char p[64];

        snprintf(p, sizeof(p), "/proc/%d/mem", (int)pid);
        return open(p, O_RDONLY | O_CLOEXEC);
}

static int mem_read(int mem, uint64_t addr, void *buf, size_t len)
{
        ssize_t n;

        if (addr == 0)
                return -EFAULT;
        n = pread(mem, buf, len, (off_t)addr);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EFAULT;
}

/* A NUL-terminated string of at most max bytes; page by page, since a string may end near one. */
static int mem_string(int mem, uint64_t addr, size_t max, char **ret)
{
        size_t cap = 256, len = 0;
        char *s = malloc(cap);

        if (!s)
                return -ENOMEM;
        if (addr == 0) {
                free(s);
                return -EFAULT;
        }
        for (;;) {
                size_t chunk = 4096 - ((addr + len) & 4095);
                ssize_t n;
                char *nul;

                if (len + chunk + 1 > cap) {
                        char *t;

                        cap = len + chunk + 1;
                        t = realloc(s, cap);
                        if (!t) {
                                free(s);
                                return -ENOMEM;
                        }
                        s = t;
                }
                n = pread(mem, s + len, chunk, (off_t)(addr + len));
                if (n <= 0) {
                        free(s);
                        return -EFAULT;
                }
                nul = memchr(s + len, 0, (size_t)n);
                if (nul) {
                        *ret = s;
                        return 0;
                }
                len += (size_t)n;
                if (len > max) {
                        free(s);
                        return -E2BIG;
                }
        }
}

/* ---- addresses ---- */

typedef struct {
        int family;
        char *address; /* IP literal or unix path ('@' first: abstract), escaped for display */
        uint16_t port;
} Addr;

static void addr_done(Addr *a)
{
        free(a->address);
        a->address = NULL;
}

static int addr_parse(const struct sockaddr_storage *ss, size_t len, Addr *ret)
{
        char buf[INET6_ADDRSTRLEN + 1];

        *ret = (Addr){ .family = len >= sizeof(sa_family_t) ? ss->ss_family : AF_UNSPEC };
        switch (ret->family) {
        case AF_INET: {
                const struct sockaddr_in *in = (const void *)ss;

                if (len < sizeof(*in))
                        return -EINVAL;
                inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
                ret->port = ntohs(in->sin_port);
                break;
        }
        case AF_INET6: {
                const struct sockaddr_in6 *in6 = (const void *)ss;

                if (len < sizeof(*in6))
                        return -EINVAL;
                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
                        inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, sizeof(buf));
                else
                        inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
                ret->port = ntohs(in6->sin6_port);
                break;
        }
        case AF_UNIX: {
                const struct sockaddr_un *un = (const void *)ss;
                size_t n = len - offsetof(struct sockaddr_un, sun_path);
                char raw[sizeof(un->sun_path) + 2];
                size_t k = 0;

                if (len <= offsetof(struct sockaddr_un, sun_path))
                        return -EINVAL; /* unnamed */
                if (n > sizeof(un->sun_path))
                        n = sizeof(un->sun_path);
                if (un->sun_path[0] == 0) {
                        /* abstract: libqb pads the name with NULs to the whole sun_path */
                        while (n > 1 && un->sun_path[n - 1] == 0)
                                n--;
                        raw[k++] = '@';
                        for (size_t i = 1; i < n; i++)
                                raw[k++] = un->sun_path[i] ? un->sun_path[i] : '@';
                } else {
                        for (size_t i = 0; i < n && un->sun_path[i]; i++)
                                raw[k++] = un->sun_path[i];
                }
                raw[k] = 0;
                ret->address = escape_for_terminal(raw);
                return ret->address ? 0 : -ENOMEM;
        }
        default:
                snprintf(buf, sizeof(buf), "family %d", ret->family);
                break;
        }
        ret->address = strdup(buf);
        return ret->address ? 0 : -ENOMEM;
}

static int socket_type(pid_t pid, int fd)
{
        int pidfd, sfd, type = 0;
        socklen_t l = sizeof(type);

        pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
        if (pidfd < 0)
                return 0;
        sfd = (int)syscall(__NR_pidfd_getfd, pidfd, fd, 0);
        close(pidfd);
        if (sfd < 0)
                return 0;
        if (getsockopt(sfd, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
                type = 0;
        close(sfd);
        return type;
}

/* ---- handlers ---- */

static bool same_pidns_as_us(pid_t pid)
{
        char p[64];
        struct stat a, b;

        snprintf(p, sizeof(p), "/proc/%d/ns/pid", (int)pid);
        return stat(p, &a) == 0 && stat("/proc/self/ns/pid", &b) == 0 && a.st_ino == b.st_ino &&
               a.st_dev == b.st_dev;
}

static char *resolve_at(pid_t pid, long dirfd, const char *path);

/* Name-service sockets: lookups (users, groups, hosts) that change nothing anywhere. */
static const char *const lookup_sockets[] = {
        "/run/nscd/socket",
        "/var/run/nscd/socket",
        "/run/systemd/userdb/*",
        "/var/lib/sss/pipes/nss",
        "/run/systemd/resolve/io.systemd.Resolve",
};

typedef enum {
        UNIX_EFFECT, /* a daemon, or an abstract name: record (refused in refuse mode) */
        UNIX_LOOKUP, /* a name-service lookup: neither recorded nor let out */
        UNIX_NONE,   /* no such socket: the call fails in reality too, nothing to record */
} UnixTarget;

static UnixTarget unix_target(pid_t pid, const struct sockaddr_storage *ss, size_t len)
{
        const struct sockaddr_un *un = (const void *)ss;
        char raw[sizeof(un->sun_path) + 1];
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        _cleanup_free_ char *abs = NULL, *p = NULL;
        struct stat st;

        if (n > sizeof(un->sun_path))
                n = sizeof(un->sun_path);
        memcpy(raw, un->sun_path, n);
        raw[n] = 0;
        if (raw[0] == 0)
                return UNIX_EFFECT; /* abstract: no file to look at */
        abs = resolve_at(pid, -1, raw);
        if (!abs)
                return UNIX_EFFECT;
        for (size_t i = 0; i < ELEMENTSOF(lookup_sockets); i++)
                if (policy_glob_match(lookup_sockets[i], abs, true))
                        return UNIX_LOOKUP;
        if (asprintf(&p, "/proc/%d/root%s", (int)pid, abs) < 0)
                return UNIX_EFFECT;
        if (lstat(p, &st) < 0 && (errno == ENOENT || errno == ENOTDIR))
                return UNIX_NONE;
        return UNIX_EFFECT;
}

typedef struct {
        int error;    /* negative errno to answer with */
        bool cont;    /* let the call run */
        bool success; /* answer 0: the supervisor did the call itself */
} Verdict;

/*
 * connect() on a socket whose family the network namespace confines
 * (netlink, packet), done here on our own copy of the caller's socket with
 * the address as read: the socket keeps its namespace, and a racing thread
 * can change neither the address we use nor the socket we got (letting the
 * call continue would let it swap the fd for a unix socket and the address
 * for a path).
 */
/*
 * The caller pinned first (a pidfd), then the notification checked still
 * live: only then is the pid surely the caller's and not a reused one.
 * Sets *ok = false when the call is gone.
 */
static Verdict connect_for(const PlanSup *s, const struct seccomp_notif *req, int fd,
                           const struct sockaddr_storage *ss, size_t len, bool *ok)
{
        Verdict v = { .error = -ECONNREFUSED };
        int pidfd, sfd, family = 0;
        socklen_t l = sizeof(family);

        pidfd = (int)syscall(__NR_pidfd_open, (pid_t)req->pid, 0);
        if (pidfd < 0) {
                *ok = false;
                return v;
        }
        if (ioctl(s->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
                close(pidfd);
                *ok = false;
                return v;
        }
        sfd = (int)syscall(__NR_pidfd_getfd, pidfd, fd, 0);
        close(pidfd);
        if (sfd < 0) {
                v.error = errno == EBADF ? -EBADF : -ECONNREFUSED;
                return v;
        }
        /* the socket itself must be of the confined family, not only the address */
        if (getsockopt(sfd, SOL_SOCKET, SO_DOMAIN, &family, &l) < 0 || family != ss->ss_family)
                v.error = -EAFNOSUPPORT;
        else if (connect(sfd, (const struct sockaddr *)ss, (socklen_t)len) == 0) {
                v.error = 0;
                v.success = true;
        } else
                v.error = -errno;
        close(sfd);
        return v;
}

static void record_net(PlanSup *s, pid_t pid, PlanNetKind kind, int sockfd, const Addr *a,
                       bool blocked)
{
        const PolicyHost *h = NULL;
        _cleanup_free_ char *key = NULL, *program = NULL, *reason = NULL;
        PlanNet n;

        if (a->family == AF_INET || a->family == AF_INET6)
                h = policy_find_host_by_address(s->policy, a->address);
        if (asprintf(&key, "net %d %d %s %u", kind, a->family, a->address, a->port) < 0)
                return;
        program = program_of(s, pid);
        n = (PlanNet){ .kind = kind,
                       .family = a->family,
                       .socktype = socket_type(pid, sockfd),
                       .address = a->address,
                       .port = a->port,
                       .host = h ? h->name : NULL,
                       .environment = h ? h->environment : NULL,
                       .program = program,
                       .blocked = blocked };
        if (blocked) {
                const char *verb = kind == PLAN_NET_CONNECT ? "connect to" : "send to";

                if (a->family == AF_UNIX) {
                        const char *d = plan_meaning_socket(a->address);

                        if (asprintf(&reason, "attempted to %s %s%s%s%s", verb, a->address,
                                     d ? " (" : "", d ? d : "", d ? ")" : "") < 0)
                                reason = NULL;
                } else if (h) {
                        if (asprintf(&reason, "attempted to %s %s:%u (%s)", verb, h->name, a->port,
                                     a->address) < 0)
                                reason = NULL;
                } else if (asprintf(&reason, "attempted to %s %s%s%s:%u%s", verb,
                                    a->family == AF_INET6 ? "[" : "", a->address,
                                    a->family == AF_INET6 ? "]" : "", a->port,
                                    a->family == AF_INET || a->family == AF_INET6
                                            ? " (outside the inventory)"
                                            : "") < 0)
                        reason = NULL;
        }
        if (!record_begin(s, key))
                return;
        (void)plan_result_add_net(s->r, &n);
        if (blocked)
                (void)plan_result_partial(s->r, reason ? reason : "attempted a connection");
        if (a->family == AF_UNIX) {
                const char *d = plan_meaning_socket(a->address);

                if (d) {
                        _cleanup_free_ char *ev = NULL;

                        if (asprintf(&ev, "%s %s", kind == PLAN_NET_CONNECT ? "connect" : "send",
                                     a->address) >= 0)
                                (void)plan_result_add_contact(s->r, d, NULL, ev, blocked);
                }
        }
        record_end(s);
}

/* connect, sendto: the address is in memory at arg, its length in arglen. */
static Verdict on_address(PlanSup *s, const struct seccomp_notif *req, int mem, PlanNetKind kind,
                          uint64_t addr, uint64_t addrlen, bool *ok)
{
        struct sockaddr_storage ss = { 0 };
        size_t len = addrlen > sizeof(ss) ? sizeof(ss) : (size_t)addrlen;
        Addr a = { 0 };
        Verdict v = { .cont = s->mode == PLAN_SUP_RECORD };

        *ok = true;
        if (s->mode == PLAN_SUP_REFUSE)
                v.error = kind == PLAN_NET_CONNECT ? -ECONNREFUSED : -ENETUNREACH;
        if (addr == 0 || len == 0 || mem_read(mem, addr, &ss, len) < 0) {
                /* unreadable: nothing to record; refused all the same */
                if (kind == PLAN_NET_SEND && s->mode == PLAN_SUP_REFUSE)
                        v.error = -EFAULT;
                return v;
        }
        if (addr_parse(&ss, len, &a) < 0 || ss.ss_family == AF_UNSPEC) {
                addr_done(&a);
                return v;
        }
        if (a.family == AF_NETLINK || a.family == AF_PACKET) {
                /*
                 * The kernel's own interfaces, confined to the network namespace:
                 * no effect to record. Sends may run (whatever a racer changes, every
                 * socket refuse mode allows is confined or ignores a destination);
                 * a connect is done here instead.
                 */
                addr_done(&a);
                if (s->mode == PLAN_SUP_RECORD || kind == PLAN_NET_SEND)
                        return (Verdict){ .cont = true };
                return connect_for(s, req, (int)req->data.args[0], &ss, len, ok);
        }
        if (s->mode == PLAN_SUP_REFUSE && kind == PLAN_NET_SEND && a.family != AF_INET &&
            a.family != AF_INET6)
                v.error = -EACCES;
        if (s->mode == PLAN_SUP_REFUSE && kind == PLAN_NET_CONNECT && a.family == AF_UNIX)
                v.error = -EACCES;
        if (a.family == AF_UNIX) {
                UnixTarget t = unix_target((pid_t)req->pid, &ss, len);

                if (t != UNIX_EFFECT) {
                        /* refused all the same in refuse mode, with what reality would say */
                        if (s->mode == PLAN_SUP_REFUSE)
                                v.error = t == UNIX_NONE ? -ENOENT : -ECONNREFUSED;
                        addr_done(&a);
                        return v;
                }
        }
        /* the arguments read must still be the live call's before acting on them */
        if (ioctl(s->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
                *ok = false;
                addr_done(&a);
                return v;
        }
        record_net(s, req->pid, kind, (int)req->data.args[0], &a, s->mode == PLAN_SUP_REFUSE);
        addr_done(&a);
        return v;
}

/* sendmsg/sendmmsg: each message's destination, if any. */
static Verdict on_sendmsg(PlanSup *s, const struct seccomp_notif *req, int mem, bool mmsg, bool *ok)
{
        uint64_t base = req->data.args[1];
        unsigned vlen = mmsg ? (unsigned)req->data.args[2] : 1;
        Verdict v = { .cont = true };

        *ok = true;
        if (vlen > 1024)
                vlen = 1024; /* the kernel's UIO_MAXIOV cap on sendmmsg */
        for (unsigned i = 0; i < vlen; i++) {
                struct msghdr m;
                Verdict one;

                if (mem_read(mem, base + (uint64_t)i * (mmsg ? sizeof(struct mmsghdr) : sizeof(m)),
                             &m, sizeof(m)) < 0)
                        break; /* the kernel will fail it the same way */
                if (!m.msg_name || m.msg_namelen == 0)
                        continue;
                one = on_address(s, req, mem, PLAN_NET_SEND, (uint64_t)(uintptr_t)m.msg_name,
                                 m.msg_namelen, ok);
                if (!*ok)
                        return v;
                if (!one.cont) {
                        v = one;
                        /* refuse the whole call at the first addressed message */
                        return v;
                }
        }
        return v;
}

static void record_exec(PlanSup *s, pid_t pid, const char *path, char **argv)
{
        _cleanup_free_ char *shown = NULL;

        if (!record_begin(s, NULL))
                return;
        (void)plan_result_add_exec(s->r, argv, path);
        shown = argv_to_display(argv);
        for (size_t nth = 0;; nth++) {
                _cleanup_free_ char *daemon = NULL, *meaning = NULL, *ev = NULL, *reason = NULL;

                if (plan_meaning_exec_nth(argv, nth, &daemon, &meaning) != 1)
                        break;
                if (asprintf(&ev, "exec %s", shown ? shown : path) < 0)
                        break;
                (void)plan_result_add_contact(s->r, daemon, meaning, ev,
                                              s->mode == PLAN_SUP_REFUSE);
                /* inside the snapshot no daemon is reachable: the contact is intent only */
                if (s->mode == PLAN_SUP_REFUSE &&
                    asprintf(&reason, "would contact %s (%s): not reachable from the plan", daemon,
                             meaning) >= 0)
                        (void)plan_result_partial(s->r, reason);
        }
        record_end(s);
}

static bool exec_target_exists(pid_t pid, long dirfd, const char *path)
{
        _cleanup_free_ char *abs = NULL, *p = NULL;

        if (path[0] == '/')
                abs = strdup(path); /* (execveat's path was made absolute by the caller) */
        else
                abs = resolve_at(pid, dirfd, path);
        if (!abs || asprintf(&p, "/proc/%d/root%s", (int)pid, abs) < 0)
                return true; /* cannot tell: record it */
        return access(p, F_OK) == 0;
}

static Verdict on_exec(PlanSup *s, const struct seccomp_notif *req, int mem, bool at, bool *ok)
{
        _cleanup_free_ char *path = NULL;
        char **argv = NULL;
        size_t n = 0, bytes = 0;
        uint64_t vec = req->data.args[at ? 2 : 1];
        Verdict v = { .cont = true };
        int r;

        *ok = true;
        r = mem_string(mem, req->data.args[at ? 1 : 0], PATH_MAX, &path);
        if (r < 0)
                return v; /* the kernel fails it the same way */
        if (at && path[0] != '/') {
                /* execveat(dirfd, "rel" or "" with AT_EMPTY_PATH): name the fd's file */
                char link[64];
                _cleanup_free_ char *dir = NULL;

                snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)req->pid,
                         (int)req->data.args[0]);
                dir = readlink_malloc(link);
                if (dir) {
                        char *full = NULL;

                        if (path[0] == 0 ? !!(full = strdup(dir))
                                         : asprintf(&full, "%s/%s", dir, path) >= 0) {
                                free(path);
                                path = full;
                        }
                }
        }
        argv = calloc(1, sizeof(char *));
        if (!argv)
                return v;
        while (vec && n < PLAN_SUP_MAX_ARGS && bytes < PLAN_SUP_MAX_ARGBYTES) {
                uint64_t p;
                char *a = NULL, **t;

                if (mem_read(mem, vec + n * sizeof(uint64_t), &p, sizeof(p)) < 0 || p == 0)
                        break;
                if (mem_string(mem, p, PLAN_SUP_MAX_ARGBYTES - bytes, &a) < 0)
                        break;
                bytes += strlen(a) + 1;
                t = realloc(argv, (n + 2) * sizeof(char *));
                if (!t) {
                        free(a);
                        break;
                }
                argv = t;
                argv[n++] = a;
                argv[n] = NULL;
        }
        if (ioctl(s->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0)
                *ok = false;
        else if (exec_target_exists(req->pid, at ? (long)(int)req->data.args[0] : -1, path)) {
                /* (execvp tries each PATH entry: the ones that do not exist are no exec) */
                remember_exec(s, (pid_t)req->pid, path);
                if (s->mode == PLAN_SUP_REFUSE && same_pidns_as_us((pid_t)req->pid)) {
                        char key[32];

                        snprintf(key, sizeof(key), "host %d", (int)req->pid);
                        pthread_mutex_lock(&s->lock);
                        if (s->pids.n < PLAN_SUP_MAX_RECORDS)
                                (void)strset_add(&s->pids, key);
                        pthread_mutex_unlock(&s->lock);
                }
                record_exec(s, req->pid, path, argv);
        }
        strv_free(argv);
        return v;
}

/* The caller's pid as its own pid namespace numbers it (the last NSpid field). */
static pid_t ns_pid(pid_t pid, const char *file)
{
        char p[64];
        _cleanup_free_ char *buf = NULL;
        size_t n;
        const char *l;
        pid_t last = -1;

        snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, file);
        if (read_full_file(p, 64 * 1024, &buf, &n) < 0)
                return -1;
        l = strstr(buf, "NSpid:");
        if (!l)
                return -1;
        for (l += 6; *l && *l != '\n';) {
                char *e;
                long v;

                while (*l == ' ' || *l == '\t')
                        l++;
                v = strtol(l, &e, 10);
                if (e == l)
                        break;
                last = (pid_t)v;
                l = e;
        }
        return last;
}

static Verdict on_signal(PlanSup *s, const struct seccomp_notif *req, bool *ok)
{
        Verdict v = { .cont = true };
        const __u64 *a = req->data.args;
        pid_t target;
        int sig;
        _cleanup_free_ char *key = NULL, *program = NULL;

        *ok = true;
        switch (req->data.nr) {
        case __NR_kill:
        case __NR_rt_sigqueueinfo:
                target = (pid_t)a[0];
                sig = (int)a[1];
                break;
        case __NR_tkill:
                target = (pid_t)a[0];
                sig = (int)a[1];
                break;
        case __NR_tgkill:
        case __NR_rt_tgsigqueueinfo:
                target = (pid_t)a[0];
                sig = (int)a[2];
                break;
        case __NR_pidfd_send_signal: {
                char fdinfo[64];

                snprintf(fdinfo, sizeof(fdinfo), "fdinfo/%d", (int)a[0]);
                target = ns_pid(req->pid, fdinfo);
                sig = (int)a[1];
                break;
        }
        default:
                return v;
        }
        /* probes (signal 0) and signals to the caller itself (raise, abort, runtimes) are noise */
        if (sig == 0)
                return v;
        if (target > 0 && target == ns_pid(req->pid, "status"))
                return v;
        if (asprintf(&key, "sig %d %d", sig, (int)target) < 0)
                return v;
        program = program_of(s, req->pid);
        if (ioctl(s->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
                *ok = false;
                return v;
        }
        if (record_begin(s, key)) {
                (void)plan_result_add_signal(s->r, sig, target, program, false);
                record_end(s);
        }
        return v;
}

/* ---- record mode: the calls that change files ---- */

typedef enum {
        FC_OPEN,  /* flags in an argument */
        FC_OPEN2, /* flags in struct open_how */
        FC_CREAT,
        FC_DELETE,
        FC_RMDIR,
        FC_RENAME,
        FC_MKDIR,
        FC_LINK,    /* path2 is created */
        FC_SYMLINK, /* path arg is the target text; path2 is created */
        FC_MODE,
        FC_OWNER,
        FC_CONTENT,
        FC_META,
} FileKind;

typedef struct {
        long nr;
        FileKind kind;
        int dirfd; /* argument index of the directory fd; -1 = the cwd; -2 = arg path is an fd */
        int path;  /* argument index of the path (or of the fd when dirfd is -2) */
        int dirfd2, path2;
        int flags; /* FC_OPEN: the flags argument; *at calls: the AT_ flags argument or -1 */
} FileCall;

static const FileCall file_calls[] = {
#ifdef __NR_open
        { __NR_open, FC_OPEN, -1, 0, 0, 0, 1 },
        { __NR_creat, FC_CREAT, -1, 0, 0, 0, -1 },
        { __NR_unlink, FC_DELETE, -1, 0, 0, 0, -1 },
        { __NR_rmdir, FC_RMDIR, -1, 0, 0, 0, -1 },
        { __NR_rename, FC_RENAME, -1, 0, -1, 1, -1 },
        { __NR_mkdir, FC_MKDIR, -1, 0, 0, 0, -1 },
        { __NR_link, FC_LINK, -1, 0, -1, 1, -1 },
        { __NR_symlink, FC_SYMLINK, -1, 0, -1, 1, -1 },
        { __NR_chmod, FC_MODE, -1, 0, 0, 0, -1 },
        { __NR_chown, FC_OWNER, -1, 0, 0, 0, -1 },
        { __NR_lchown, FC_OWNER, -1, 0, 0, 0, -1 },
        { __NR_mknod, FC_CREAT, -1, 0, 0, 0, -1 },
        { __NR_setxattr, FC_META, -1, 0, 0, 0, -1 },
        { __NR_lsetxattr, FC_META, -1, 0, 0, 0, -1 },
        { __NR_removexattr, FC_META, -1, 0, 0, 0, -1 },
        { __NR_lremovexattr, FC_META, -1, 0, 0, 0, -1 },
        { __NR_truncate, FC_CONTENT, -1, 0, 0, 0, -1 },
#endif
        { __NR_openat, FC_OPEN, 0, 1, 0, 0, 2 },
        { __NR_openat2, FC_OPEN2, 0, 1, 0, 0, 2 },
        { __NR_unlinkat, FC_DELETE, 0, 1, 0, 0, 2 },
#ifdef __NR_renameat
        { __NR_renameat, FC_RENAME, 0, 1, 2, 3, -1 },
#endif
        { __NR_renameat2, FC_RENAME, 0, 1, 2, 3, -1 },
        { __NR_mkdirat, FC_MKDIR, 0, 1, 0, 0, -1 },
        { __NR_linkat, FC_LINK, 0, 1, 2, 3, -1 },
        { __NR_symlinkat, FC_SYMLINK, -1, 0, 1, 2, -1 },
        { __NR_mknodat, FC_CREAT, 0, 1, 0, 0, -1 },
        { __NR_fchmod, FC_MODE, -2, 0, 0, 0, -1 },
        { __NR_fchmodat, FC_MODE, 0, 1, 0, 0, -1 },
        { __NR_fchmodat2, FC_MODE, 0, 1, 0, 0, 3 },
        { __NR_fchown, FC_OWNER, -2, 0, 0, 0, -1 },
        { __NR_fchownat, FC_OWNER, 0, 1, 0, 0, 4 },
        { __NR_ftruncate, FC_CONTENT, -2, 0, 0, 0, -1 },
        { __NR_fsetxattr, FC_META, -2, 0, 0, 0, -1 },
        { __NR_fremovexattr, FC_META, -2, 0, 0, 0, -1 },
        { __NR_setxattrat, FC_META, 0, 1, 0, 0, 2 },
        { __NR_removexattrat, FC_META, 0, 1, 0, 0, 2 },
};

/* Lexically normalised absolute path: "//", "." and ".." resolved in the string. */
static char *normalize(const char *p)
{
        size_t n = strlen(p);
        char *out = malloc(n + 2);
        size_t o = 0;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n;) {
                size_t j;

                while (i < n && p[i] == '/')
                        i++;
                j = i;
                while (j < n && p[j] != '/')
                        j++;
                if (j == i)
                        break;
                if (j - i == 1 && p[i] == '.') {
                        /* skip */
                } else if (j - i == 2 && p[i] == '.' && p[i + 1] == '.') {
                        while (o > 0 && out[o - 1] != '/')
                                o--;
                        if (o > 0)
                                o--;
                } else {
                        out[o++] = '/';
                        memcpy(out + o, p + i, j - i);
                        o += j - i;
                }
                i = j;
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = 0;
        return out;
}

/* The absolute path of (dirfd, path) as the caller resolves it; dirfd -1 = cwd. */
static char *resolve_at(pid_t pid, long dirfd, const char *path)
{
        char link[64];
        _cleanup_free_ char *base = NULL, *joined = NULL;

        if (path && path[0] == '/')
                return normalize(path);
        if (dirfd == -1 || (int)dirfd == AT_FDCWD)
                snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
        else
                snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, (int)dirfd);
        base = readlink_malloc(link);
        if (!base || base[0] != '/')
                return NULL;
        if (!path || !path[0])
                return normalize(base);
        if (asprintf(&joined, "%s/%s", base, path) < 0)
                return NULL;
        return normalize(joined);
}

static bool exists_for(pid_t pid, const char *path, struct stat *st)
{
        char *p = NULL;
        bool r;

        if (asprintf(&p, "/proc/%d/root%s", (int)pid, path) < 0)
                return false;
        r = fstatat(AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW) == 0;
        free(p);
        return r;
}

/* The type a creating call makes: mknod's mode says; the rest create files. */
static char mknod_type(const struct seccomp_notif *req)
{
        mode_t m = 0;

#ifdef __NR_mknod
        if (req->data.nr == __NR_mknod)
                m = (mode_t)req->data.args[1];
#endif
        if (req->data.nr == __NR_mknodat)
                m = (mode_t)req->data.args[2];
        return (m & S_IFMT) ? plan_file_type(m) : 'f'; /* mknod with no type makes a file */
}

static void record_file(PlanSup *s, PlanFileChange change, const char *path, const char *from,
                        char type, bool content, bool mode, bool owner)
{
        _cleanup_free_ char *key = NULL;
        PlanFile f = { 0 };

        if (asprintf(&key, "file %d %d%d%d %s %s", change, content, mode, owner, path,
                     from ? from : "") < 0)
                return;
        f.path = strdup(path);
        f.renamed_from = from ? strdup(from) : NULL;
        if (!f.path || (from && !f.renamed_from)) {
                free(f.path);
                free(f.renamed_from);
                return;
        }
        f.change = change;
        f.type = type;
        f.content_changed = content;
        f.mode_changed = mode;
        f.owner_changed = owner;
        if (!record_begin(s, key)) {
                free(f.path);
                free(f.renamed_from);
                return;
        }
        if (plan_result_add_file(s->r, &f) < 0) {
                free(f.path);
                free(f.renamed_from);
        }
        record_end(s);
}

static Verdict on_file(PlanSup *s, const struct seccomp_notif *req, int mem, const FileCall *c,
                       bool *ok)
{
        const __u64 *a = req->data.args;
        _cleanup_free_ char *p1 = NULL, *p2 = NULL, *abs1 = NULL, *abs2 = NULL;
        Verdict v = { .cont = true };
        uint64_t flags = 0;
        struct stat st;
        bool existed;

        *ok = true;
        if (c->dirfd == -2)
                abs1 = resolve_at(req->pid, (long)(int)a[c->path], "");
        else {
                if (c->kind != FC_SYMLINK && mem_string(mem, a[c->path], PATH_MAX, &p1) < 0)
                        return v;
                if (c->kind != FC_SYMLINK)
                        abs1 = resolve_at(req->pid, c->dirfd < 0 ? -1 : (long)(int)a[c->dirfd], p1);
        }
        if (c->kind == FC_RENAME || c->kind == FC_LINK || c->kind == FC_SYMLINK) {
                if (mem_string(mem, a[c->path2], PATH_MAX, &p2) < 0)
                        return v;
                abs2 = resolve_at(req->pid, c->dirfd2 < 0 ? -1 : (long)(int)a[c->dirfd2], p2);
                if (!abs2)
                        return v;
        }
        if (c->kind != FC_SYMLINK && !abs1)
                return v;
        if (c->kind == FC_OPEN)
                flags = a[c->flags];
        else if (c->kind == FC_OPEN2) {
                struct open_how how;

                if (mem_read(mem, a[2], &how, sizeof(how.flags)) < 0)
                        return v;
                flags = how.flags;
        } else if (c->flags >= 0)
                flags = a[c->flags];
        if ((c->kind == FC_OPEN || c->kind == FC_OPEN2) &&
            !(flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)))
                return v;
        if (ioctl(s->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
                *ok = false;
                return v;
        }

        existed = abs1 && exists_for(req->pid, abs1, &st);
        if (existed && (c->kind == FC_OPEN || c->kind == FC_OPEN2 || c->kind == FC_CREAT) &&
            (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
                /* /dev/null, terminals, pipes: writing to them changes no file */
                return v;
        switch (c->kind) {
        case FC_OPEN:
        case FC_OPEN2:
        case FC_CREAT:
                if ((flags & O_TMPFILE) == O_TMPFILE)
                        break; /* an unnamed file: it shows when linked */
                if (existed)
                        record_file(s, PLAN_FILE_MODIFIED, abs1, NULL, plan_file_type(st.st_mode),
                                    true, false, false);
                else
                        record_file(s, PLAN_FILE_CREATED, abs1, NULL, mknod_type(req), true, false,
                                    false);
                break;
        case FC_DELETE:
        case FC_RMDIR:
                if (existed)
                        record_file(s, PLAN_FILE_DELETED, abs1, NULL, plan_file_type(st.st_mode),
                                    false, false, false);
                break;
        case FC_RENAME:
                if (existed)
                        record_file(s, PLAN_FILE_RENAMED, abs2, abs1, plan_file_type(st.st_mode),
                                    false, false, false);
                break;
        case FC_MKDIR:
                if (!existed)
                        record_file(s, PLAN_FILE_CREATED, abs1, NULL, 'd', false, false, false);
                break;
        case FC_LINK:
                record_file(s, PLAN_FILE_CREATED, abs2, NULL,
                            existed ? plan_file_type(st.st_mode) : 'f', false, false, false);
                break;
        case FC_SYMLINK:
                record_file(s, PLAN_FILE_CREATED, abs2, NULL, 'l', false, false, false);
                break;
        case FC_MODE:
                if (existed)
                        record_file(s, PLAN_FILE_MODIFIED, abs1, NULL, plan_file_type(st.st_mode),
                                    false, true, false);
                break;
        case FC_OWNER:
                if (existed)
                        record_file(s, PLAN_FILE_MODIFIED, abs1, NULL, plan_file_type(st.st_mode),
                                    false, false, true);
                break;
        case FC_CONTENT:
        case FC_META:
                if (existed)
                        record_file(s, PLAN_FILE_MODIFIED, abs1, NULL, plan_file_type(st.st_mode),
                                    c->kind == FC_CONTENT, false, false);
                break;
        }
        return v;
}

static void handle_notification(PlanSup *s, struct seccomp_notif *req)
{
        struct seccomp_notif_resp resp = { .id = req->id };
        _cleanup_close_ int mem = -EBADF;
        Verdict v = { .cont = true };
        bool ok = true;

        if (__atomic_load_n(&s->root_pid, __ATOMIC_RELAXED) == 0)
                __atomic_store_n(&s->root_pid, (pid_t)req->pid, __ATOMIC_RELAXED);
        /* signals are all registers: no need to open the caller's memory */
        if (req->data.nr != __NR_kill && req->data.nr != __NR_tkill &&
            req->data.nr != __NR_tgkill && req->data.nr != __NR_rt_sigqueueinfo &&
            req->data.nr != __NR_rt_tgsigqueueinfo && req->data.nr != __NR_pidfd_send_signal)
                mem = mem_open((pid_t)req->pid);
        if (s->mode == PLAN_SUP_RECORD && s->pids.n < PLAN_SUP_MAX_RECORDS) {
                char key[32];

                snprintf(key, sizeof(key), "pid %d", (int)req->pid);
                pthread_mutex_lock(&s->lock);
                (void)strset_add(&s->pids, key);
                pthread_mutex_unlock(&s->lock);
        }

        switch (req->data.nr) {
        case __NR_connect:
                v = on_address(s, req, mem, PLAN_NET_CONNECT, req->data.args[1], req->data.args[2],
                               &ok);
                if (s->mode == PLAN_SUP_REFUSE && v.cont) {
                        /* never let a connect run in refuse mode, whatever was read */
                        v.cont = false;
                        v.error = -ECONNREFUSED;
                }
                break;
        case __NR_sendto:
                v = on_address(s, req, mem, PLAN_NET_SEND, req->data.args[4], req->data.args[5],
                               &ok);
                break;
        case __NR_sendmsg:
                v = on_sendmsg(s, req, mem, false, &ok);
                break;
        case __NR_sendmmsg:
                v = on_sendmsg(s, req, mem, true, &ok);
                break;
        case __NR_execve:
                v = on_exec(s, req, mem, false, &ok);
                break;
        case __NR_execveat:
                v = on_exec(s, req, mem, true, &ok);
                break;
        case __NR_kill:
        case __NR_tkill:
        case __NR_tgkill:
        case __NR_rt_sigqueueinfo:
        case __NR_rt_tgsigqueueinfo:
        case __NR_pidfd_send_signal:
                v = on_signal(s, req, &ok);
                break;
        default:
                for (size_t i = 0; i < ELEMENTSOF(file_calls); i++)
                        if (file_calls[i].nr == req->data.nr) {
                                if (s->mode == PLAN_SUP_RECORD)
                                        v = on_file(s, req, mem, &file_calls[i], &ok);
                                break;
                        }
                break;
        }

        if (!ok)
                return; /* the caller is gone or its call was interrupted: nothing to answer */
        if (v.cont)
                resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        else if (!v.success)
                resp.error = v.error ? v.error : -EPERM;
        (void)ioctl(s->listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/* ---- secrets: fanotify ---- */

static pid_t ppid_of(pid_t pid)
{
        char p[64];
        _cleanup_free_ char *buf = NULL;
        size_t n;
        const char *e;
        int pp;

        snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
        if (read_full_file(p, 4096, &buf, &n) < 0)
                return 0;
        e = strrchr(buf, ')'); /* the command name may hold anything */
        if (!e || sscanf(e, ") %*c %d", &pp) != 1)
                return 0;
        return (pid_t)pp;
}

static bool pid_seen(PlanSup *s, const char *what, pid_t pid)
{
        char key[32];
        bool r = false;

        snprintf(key, sizeof(key), "%s %d", what, (int)pid);
        pthread_mutex_lock(&s->lock);
        for (size_t i = s->pids.cap ? str_hash(key) & (s->pids.cap - 1) : 0;
             s->pids.cap && s->pids.slot[i]; i = (i + 1) & (s->pids.cap - 1))
                if (streq(s->pids.slot[i], key)) {
                        r = true;
                        break;
                }
        pthread_mutex_unlock(&s->lock);
        return r;
}

/* Is pid the command or one of its descendants? */
static bool is_command(PlanSup *s, pid_t pid, int event_fd)
{
        pid_t root;

        if (pid <= 0 || pid == getpid())
                return false;
        /*
         * Refuse mode: an overlay inode of the snapshot is reached only by
         * processes inside the snapshot's mount namespace. A secret the
         * snapshot shows without an overlay is the host's own inode: there a
         * reader from our pid namespace is a host process, not the command.
         * (A reader that is gone cannot be told apart: it counts, so that a
         * short-lived command is never missed.)
         */
        if (s->mode == PLAN_SUP_REFUSE) {
                struct statfs sf;

                if (fstatfs(event_fd, &sf) == 0 && sf.f_type == OVERLAYFS_SUPER_MAGIC)
                        return true;
                /* gone already: what its exec under the filter said */
                return !same_pidns_as_us(pid) && !pid_seen(s, "host", pid);
        }
        /* record mode: a process that exec'd under the filter, or a descendant of the command */
        if (pid_seen(s, "pid", pid))
                return true;
        root = __atomic_load_n(&s->root_pid, __ATOMIC_RELAXED);
        if (root == 0)
                return false;
        for (int depth = 0; depth < 256 && pid > 1; depth++) {
                if (pid == root)
                        return true;
                pid = ppid_of(pid);
        }
        return false;
}

static const char *watched_path(PlanSup *s, int fd, char **fallback)
{
        struct stat st;
        char link[64];

        if (fstat(fd, &st) == 0) {
                const char *found = NULL;

                /* the paths are never freed before the supervisor: valid after unlocking */
                pthread_mutex_lock(&s->lock);
                for (size_t i = 0; i < s->n_watched && !found; i++)
                        if (s->watched[i].dev == st.st_dev && s->watched[i].ino == st.st_ino)
                                found = s->watched[i].path;
                pthread_mutex_unlock(&s->lock);
                if (found)
                        return found;
        }
        /* a file created later inside a watched directory: name it as the kernel does */
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        *fallback = readlink_malloc(link);
        if (*fallback && s->root_prefix &&
            strncmp(*fallback, s->root_prefix, strlen(s->root_prefix)) == 0) {
                char *t = strdup(*fallback + strlen(s->root_prefix));

                free(*fallback);
                *fallback = t;
        }
        return *fallback;
}

static void handle_fanotify(PlanSup *s)
{
        char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));

        for (;;) {
                ssize_t n = read(s->fan, buf, sizeof(buf));
                struct fanotify_event_metadata *m;

                if (n <= 0)
                        return;
                for (m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
                        _cleanup_free_ char *fallback = NULL, *program = NULL, *key = NULL;
                        const char *path;
                        bool write;

                        if (m->vers != FANOTIFY_METADATA_VERSION)
                                return;
                        if (m->mask & FAN_Q_OVERFLOW) {
                                partial(s, "too many secret opens to record: some may be missing");
                                continue;
                        }
                        if (m->fd < 0)
                                continue;
                        if (!is_command(s, m->pid, m->fd)) {
                                close(m->fd);
                                continue;
                        }
                        path = watched_path(s, m->fd, &fallback);
                        close(m->fd);
                        if (!path)
                                continue;
                        write = m->mask & (FAN_MODIFY | FAN_CLOSE_WRITE);
                        program = program_of(s, m->pid);
                        if (asprintf(&key, "secret %d %s %s", write, path, program ? program : "") <
                            0)
                                continue;
                        if (record_begin(s, key)) {
                                (void)plan_result_add_secret(s->r, path, program, write);
                                record_end(s);
                        }
                }
        }
}

static int watch_add(PlanSup *s, int fd, const char *path, bool dir)
{
        char p[64];
        struct stat st;
        uint64_t mask = FAN_OPEN | FAN_MODIFY | FAN_CLOSE_WRITE;
        Watched *w;

        if (fstat(fd, &st) < 0)
                return -errno;
        for (size_t i = 0; i < s->n_watched; i++)
                if (s->watched[i].dev == st.st_dev && s->watched[i].ino == st.st_ino)
                        return 0;
        if (s->n_watched >= PLAN_SUP_MAX_MARKS)
                return -E2BIG;
        if (dir)
                mask |= FAN_EVENT_ON_CHILD;
        /* fanotify_mark() does not take O_PATH fds; their /proc/self/fd link names the inode */
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
                /* devices, fifos, sockets: nothing to read a secret from by open */
        } else if (fanotify_mark(s->fan, FAN_MARK_ADD, mask, AT_FDCWD, p) < 0)
                return -errno;
        /* (under the lock: the thread may already be reading events) */
        char *copy = strdup(path);
        int r = -ENOMEM;

        if (!copy)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        w = realloc(s->watched, (s->n_watched + 1) * sizeof(Watched));
        if (w) {
                s->watched = w;
                w[s->n_watched++] = (Watched){ .dev = st.st_dev, .ino = st.st_ino, .path = copy };
                copy = NULL;
                r = 0;
        }
        pthread_mutex_unlock(&s->lock);
        free(copy);
        return r;
}

static int open_in_root(int root_fd, const char *path, bool follow)
{
        struct open_how how = { .flags = O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW),
                                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
        const char *rel = path;

        while (*rel == '/')
                rel++;
        if (!*rel)
                rel = ".";
        return (int)syscall(__NR_openat2, root_fd, rel, &how, sizeof(how));
}

/* A secret directory: the directory, every subdirectory, every file's inode (for its name). */
static int watch_tree(PlanSup *s, int root_fd, const char *path, unsigned depth, size_t *budget)
{
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *de;
        int r;

        fd = open_in_root(root_fd, path, false);
        if (fd < 0)
                return -errno;
        r = watch_add(s, fd, path, true);
        if (r < 0)
                return r;
        if (depth > 32)
                return 0;
        {
                int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                if (dfd < 0)
                        return 0;
                d = fdopendir(dfd);
                if (!d) {
                        close(dfd);
                        return 0;
                }
        }
        while ((de = readdir(d)) && *budget > 0) {
                _cleanup_free_ char *child = NULL;
                _cleanup_close_ int cfd = -EBADF;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                (*budget)--;
                if (asprintf(&child, "%s/%s", streq(path, "/") ? "" : path, de->d_name) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
                cfd = openat(dirfd(d), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (cfd < 0 || fstat(cfd, &st) < 0)
                        continue;
                if (S_ISDIR(st.st_mode))
                        r = watch_tree(s, root_fd, child, depth + 1, budget);
                else if (S_ISREG(st.st_mode))
                        r = watch_add(s, cfd, child, false);
                else
                        r = 0;
                if (r == -E2BIG || r == -ENOMEM) {
                        closedir(d);
                        return r;
                }
        }
        closedir(d);
        return 0;
}

static int watch_path(PlanSup *s, int root_fd, const char *path, size_t *budget)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open_in_root(root_fd, path, true);
        if (fd < 0)
                return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return watch_tree(s, root_fd, path, 0, budget);
        return watch_add(s, fd, path, false);
}

static bool has_magic(const char *s)
{
        return strpbrk(s, "*?[{") != NULL;
}

static size_t slashes(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                n += *s == '/';
        return n;
}

/* Every existing path under dir (inside root) that glob matches. */
static int expand_glob(PlanSup *s, int root_fd, const char *glob, const char *dir, unsigned depth,
                       size_t *budget)
{
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (depth > 32 || *budget == 0)
                return 0;
        fd = open_in_root(root_fd, dir, false);
        if (fd < 0)
                return 0;
        {
                int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                if (dfd < 0)
                        return 0;
                d = fdopendir(dfd);
                if (!d) {
                        close(dfd);
                        return 0;
                }
        }
        while ((de = readdir(d)) && *budget > 0 && r >= 0) {
                _cleanup_free_ char *child = NULL;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                (*budget)--;
                if (asprintf(&child, "%s/%s", streq(dir, "/") ? "" : dir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (policy_glob_match(glob, child, true))
                        r = watch_path(s, root_fd, child, budget);
                else if ((de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) &&
                         (strstr(glob, "**") || slashes(child) < slashes(glob)))
                        /* descend only where the glob can still match beneath */
                        r = expand_glob(s, root_fd, glob, child, depth + 1, budget);
        }
        closedir(d);
        return r;
}

int plan_sup_watch_secrets(PlanSup *s, int root_fd, char *err, size_t err_size)
{
        _cleanup_strv_free_ char **globs = NULL;
        char link[64];
        int r;

        if (!s || root_fd < 0)
                return -EINVAL;
        /* how paths under the snapshot's root show from here (program names, late files) */
        snprintf(link, sizeof(link), "/proc/self/fd/%d", root_fd);
        free(s->root_prefix);
        s->root_prefix = readlink_malloc(link);
        if (s->root_prefix && streq(s->root_prefix, "/")) {
                free(s->root_prefix);
                s->root_prefix = NULL;
        }

        r = policy_secret_globs(s->policy, &globs);
        if (r < 0) {
                snprintf(err, err_size, "cannot list the policy's secrets: %s", strerror(-r));
                return r;
        }
        STRV_FOREACH (g, globs) {
                size_t budget = PLAN_SUP_WALK_MAX;

                if (!has_magic(*g))
                        r = watch_path(s, root_fd, *g, &budget);
                else {
                        /* walk from the deepest directory named literally */
                        _cleanup_free_ char *dir = strdup(*g);
                        char *m, *slash;

                        if (!dir)
                                return -ENOMEM;
                        m = dir + (strpbrk(*g, "*?[{") - *g);
                        *m = 0;
                        slash = strrchr(dir, '/');
                        if (slash == dir)
                                dir[1] = 0;
                        else if (slash)
                                *slash = 0;
                        r = expand_glob(s, root_fd, *g, dir, 0, &budget);
                }
                if (r == -E2BIG) {
                        pthread_mutex_lock(&s->lock);
                        (void)plan_result_partial(s->r, "too many secret files to watch: opens "
                                                        "of some may be missing");
                        pthread_mutex_unlock(&s->lock);
                        return 0;
                }
                if (r < 0) {
                        snprintf(err, err_size,
                                 "cannot watch the secret %s for opens: %s — check that the "
                                 "kernel has fanotify (CONFIG_FANOTIFY) and airlock runs as root",
                                 *g, strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* ---- the thread ---- */

/*
 * The process that keeps answering for a recorded command when the broker
 * cannot: the command's processes hold the recording filter for the rest of
 * their lives, and a filter without a listener answers every notified call
 * with ENOSYS. So in record mode, before the command runs, a small process
 * of its own (reparented away from the broker) gets a copy of the listener
 * and waits on a socket, its leash, whose other end the supervisor holds:
 * - 'x': the command and everything it started have ended: it exits;
 * - 'c': the command ended but left processes running (a daemon a script
 *   started): it lets their calls continue, unrecorded;
 * - end of file: the broker died or restarted mid-command: the same, so an
 *   approved command is never broken halfway by losing its broker.
 * It exits when no process holds the filter any more (POLLHUP). Runs after
 * fork() in a threaded process: system calls only, no allocation, no locks.
 */
static _noreturn_ void continuer(int listener, int leash)
{
        char c = 0;
        ssize_t n;

        /* out of the way first: either may be 3 or 4 already */
        listener = fcntl(listener, F_DUPFD, 10);
        leash = fcntl(leash, F_DUPFD, 10);
        if (listener < 0 || leash < 0 || dup2(listener, 3) < 0 || dup2(leash, 4) < 0)
                _exit(1);
        (void)close_range(0, 2, 0);
        (void)close_range(5, ~0U, 0);
        (void)setsid();
        (void)prctl(PR_SET_NAME, (unsigned long)"airlock-contd", 0, 0, 0);
        do
                n = read(4, &c, 1);
        while (n < 0 && errno == EINTR);
        if (n == 1 && c == 'x')
                _exit(0);
        close(4);
        for (;;) {
                struct pollfd pfd = { .fd = 3, .events = POLLIN };
                struct seccomp_notif req;
                struct seccomp_notif_resp resp;

                if (poll(&pfd, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                if (!(pfd.revents & POLLIN)) {
                        if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))
                                _exit(0); /* no process holds the filter any more */
                        continue;
                }
                memset(&req, 0, sizeof(req));
                if (ioctl(3, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
                        continue; /* the caller went away meanwhile */
                resp = (struct seccomp_notif_resp){
                        .id = req.id,
                        .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE,
                };
                (void)ioctl(3, SECCOMP_IOCTL_NOTIF_SEND, &resp);
        }
}

/* Starts the continuer on its leash; returns the leash's end to keep, or -errno. */
static int start_continuer(int listener)
{
        int leash[2], status;
        pid_t pid, w;

        /* a socket, not a pipe: telling a continuer that is gone must not raise SIGPIPE */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, leash) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(leash[0]);
                close(leash[1]);
                return r;
        }
        if (pid == 0) {
                /* a second fork: the continuer is nobody's child here, init reaps it */
                pid_t grandchild = fork();
                if (grandchild < 0)
                        _exit(1);
                if (grandchild == 0)
                        continuer(listener, leash[0]);
                _exit(0);
        }
        close(leash[0]);
        do
                w = waitpid(pid, &status, 0);
        while (w < 0 && errno == EINTR);
        if (w < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                close(leash[1]);
                return w < 0 ? -errno : -ECHILD;
        }
        return leash[1];
}

/* Tells the continuer to exit ('x') or to take over ('c'), and lets go of it. */
static void release_continuer(PlanSup *s, char what)
{
        if (s->standby_fd < 0)
                return;
        if (send(s->standby_fd, &what, 1, MSG_NOSIGNAL) != 1) {
                /* it is gone: nothing to tell */
        }
        s->standby_fd = safe_close(s->standby_fd);
}

static int receive_listener(PlanSup *s)
{
        int num = -1, pidfd, fd;
        char cbuf[CMSG_SPACE(sizeof(struct ucred))];
        struct iovec iov = { .iov_base = &num, .iov_len = sizeof(num) };
        struct msghdr mh = { .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = cbuf,
                             .msg_controllen = sizeof(cbuf) };
        struct ucred cred = { 0 };
        struct pollfd pfd[2] = { { .fd = s->sock, .events = POLLIN },
                                 { .fd = s->stop_efd, .events = POLLIN } };
        ssize_t n;

        for (;;) {
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (pfd[1].revents)
                        return -ECANCELED;
                break;
        }
        n = recvmsg(s->sock, &mh, MSG_CMSG_CLOEXEC);
        if (n != (ssize_t)sizeof(num))
                return n < 0 ? -errno : -ECONNABORTED;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
                        memcpy(&cred, CMSG_DATA(c), sizeof(cred));
        if (cred.pid <= 0)
                return -EPROTO;
        /* the kernel vouches for the pid; the child waits for our answer, so it is still there */
        pidfd = (int)syscall(__NR_pidfd_open, cred.pid, 0);
        if (pidfd < 0)
                return -errno;
        fd = (int)syscall(__NR_pidfd_getfd, pidfd, num, 0);
        close(pidfd);
        if (fd < 0)
                return -errno;
        /* plan_record_start(): the command may run only once its secrets are watched */
        pthread_mutex_lock(&s->lock);
        while (s->gated && !s->cancelled)
                pthread_cond_wait(&s->gate_cond, &s->lock);
        if (s->cancelled) {
                /* no acknowledgement: the child's plan_sup_child() fails, it never execs */
                pthread_mutex_unlock(&s->lock);
                close(fd);
                return -ECANCELED;
        }
        pthread_mutex_unlock(&s->lock);
        if (s->mode == PLAN_SUP_RECORD) {
                /* before the command runs: no moment without someone to answer it */
                int leash = start_continuer(fd);
                if (leash < 0) {
                        close(fd); /* no acknowledgement: the command never runs */
                        return leash;
                }
                s->standby_fd = leash;
        }
        if (write(s->sock, "K", 1) != 1) {
                close(fd);
                return -errno;
        }
        s->listener = fd;
        return 0;
}

static void *sup_thread(void *arg)
{
        PlanSup *s = arg;
        struct seccomp_notif req;
        int r;

        r = receive_listener(s);
        if (r < 0) {
                /*
                 * No acknowledgement is coming: end the channel, so that the
                 * child's plan_sup_child() reads end of file and gives up
                 * instead of waiting for ever (the command never runs).
                 */
                (void)shutdown(s->sock, SHUT_RDWR);
                s->thread_error = r;
                goto out;
        }
        for (;;) {
                struct pollfd pfd[3] = { { .fd = s->listener, .events = POLLIN },
                                         { .fd = s->fan, .events = POLLIN },
                                         { .fd = s->stop_efd, .events = POLLIN } };

                if (poll(pfd, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        s->thread_error = -errno;
                        break;
                }
                if (pfd[0].revents & POLLIN) {
                        memset(&req, 0, sizeof(req));
                        if (ioctl(s->listener, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0)
                                handle_notification(s, &req);
                }
                if (pfd[1].revents & POLLIN)
                        handle_fanotify(s);
                if ((pfd[0].revents & (POLLHUP | POLLERR)) && !(pfd[0].revents & POLLIN))
                        break;
                if (pfd[2].revents & POLLIN)
                        break;
        }
        /* opens that raced the end of the command are still queued */
        handle_fanotify(s);
        /*
         * Drop the marks now: their teardown waits for an SRCU grace period
         * (10-25 ms) in a kernel worker, while the caller collects the file
         * effects, instead of in close() at the end of the plan.
         */
        (void)fanotify_mark(s->fan, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL);
out:
        pthread_mutex_lock(&s->lock);
        s->thread_done = true;
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

static int sup_start(PlanSupMode mode, const Policy *policy, int sock, PlanResult *r, bool gated,
                     PlanSup **ret, char *err, size_t err_size)
{
        PlanSup *s;
        int e;

        if (!policy || sock < 0 || !r || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->mode = mode;
        s->policy = policy;
        s->r = r;
        s->listener = -EBADF;
        s->fan = -EBADF;
        s->stop_efd = -EBADF;
        s->standby_fd = -EBADF;
        s->gated = gated;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->gate_cond, NULL);
        /* our own copy: the caller may close its end once we have started */
        s->sock = fcntl(sock, F_DUPFD_CLOEXEC, 3);
        if (s->sock < 0) {
                e = -errno;
                free(s);
                snprintf(err, err_size, "cannot duplicate the supervisor socket: %s", strerror(-e));
                return e;
        }
        {
                /* the kernel attaches the writer's pid to what the child writes */
                int one = 1;

                if (setsockopt(s->sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
                        e = -errno;
                        snprintf(err, err_size, "cannot set SO_PASSCRED: %s", strerror(-e));
                        goto fail;
                }
        }
        s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->stop_efd < 0) {
                s->stop_efd = -EBADF;
                e = -errno;
                snprintf(err, err_size, "cannot create an eventfd: %s", strerror(-e));
                goto fail;
        }
        /* notification class, no permission events: the supervisor observes, it never blocks an
         * open */
        s->fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                               O_RDONLY | O_CLOEXEC | O_LARGEFILE | O_NOATIME);
        if (s->fan < 0)
                s->fan = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                                       O_RDONLY | O_CLOEXEC | O_LARGEFILE);
        if (s->fan < 0) {
                e = -errno;
                snprintf(err, err_size,
                         "cannot watch secrets with fanotify: %s — the plan needs root "
                         "(CAP_SYS_ADMIN) and a kernel with CONFIG_FANOTIFY",
                         strerror(-e));
                goto fail;
        }
        e = -pthread_create(&s->thread, NULL, sup_thread, s);
        if (e < 0) {
                snprintf(err, err_size, "cannot start the supervisor thread: %s", strerror(-e));
                goto fail;
        }
        s->thread_started = true;
        *ret = s;
        return 0;
fail:
        plan_sup_free(s);
        return e;
}

int plan_sup_start(PlanSupMode mode, const Policy *policy, int sock, PlanResult *r, PlanSup **ret,
                   char *err, size_t err_size)
{
        return sup_start(mode, policy, sock, r, false, ret, err, err_size);
}

static void sup_ungate(PlanSup *s)
{
        pthread_mutex_lock(&s->lock);
        s->gated = false;
        pthread_cond_broadcast(&s->gate_cond);
        pthread_mutex_unlock(&s->lock);
}

int plan_sup_stop(PlanSup *s)
{
        if (!s)
                return -EINVAL;
        if (s->thread_started) {
                pthread_join(s->thread, NULL);
                s->thread_started = false;
        }
        return s->thread_error;
}

static void *closer(void *arg)
{
        close((int)(intptr_t)arg);
        return NULL;
}

/*
 * Closing a fanotify group with marks waits for an SRCU grace period (10-25
 * ms here): a plan should not wait for that, so a detached thread does it.
 */
static void close_in_background(int fd)
{
        pthread_attr_t a;
        pthread_t t;

        if (fd < 0)
                return;
        if (pthread_attr_init(&a) == 0) {
                bool ok = pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) == 0 &&
                          pthread_create(&t, &a, closer, (void *)(intptr_t)fd) == 0;

                pthread_attr_destroy(&a);
                if (ok)
                        return;
        }
        close(fd);
}

PlanSup *plan_sup_free(PlanSup *s)
{
        if (!s)
                return NULL;
        if (s->thread_started) {
                uint64_t one = 1;

                pthread_mutex_lock(&s->lock);
                s->cancelled = true;
                pthread_cond_broadcast(&s->gate_cond);
                pthread_mutex_unlock(&s->lock);
                if (write(s->stop_efd, &one, sizeof(one)) < 0) {
                        /* an eventfd counter this far from overflow does not fail */
                }
                pthread_join(s->thread, NULL);
        }
        /* still on its leash (an error path): end of file, it serves whatever is left */
        safe_close(s->standby_fd);
        safe_close(s->listener);
        close_in_background(s->fan);
        safe_close(s->stop_efd);
        safe_close(s->sock);
        for (size_t i = 0; i < s->n_watched; i++)
                free(s->watched[i].path);
        free(s->watched);
        strset_done(&s->seen);
        strset_done(&s->pids);
        for (size_t i = 0; i < ELEMENTSOF(s->execd); i++)
                free(s->execd[i].path);
        free(s->root_prefix);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->gate_cond);
        free(s);
        return NULL;
}

/* ---- recording a real execution ---- */

#define PLAN_RECORD_GRACE_USEC (2ULL * 1000000ULL)

struct PlanRecorder {
        PlanSup *sup;
        PlanResult *r;
        int root_fd;
};

int plan_record_child(int sock)
{
        return plan_sup_child(PLAN_SUP_RECORD, sock);
}

int plan_record_start(const Policy *policy, pid_t child, int sock, PlanRecorder **ret, char *err,
                      size_t err_size)
{
        PlanRecorder *rec;
        int r;

        if (!policy || child <= 0 || sock < 0 || !ret)
                return -EINVAL;
        rec = calloc(1, sizeof(*rec));
        if (!rec)
                return -ENOMEM;
        rec->root_fd = -EBADF;
        rec->r = calloc(1, sizeof(PlanResult));
        if (!rec->r) {
                free(rec);
                return -ENOMEM;
        }
        rec->r->complete = true;
        rec->r->exit_status = -1;
        r = sup_start(PLAN_SUP_RECORD, policy, sock, rec->r, true, &rec->sup, err, err_size);
        if (r < 0)
                goto fail;
        /* the first notification is the child's execve; ancestry is counted from the child */
        __atomic_store_n(&rec->sup->root_pid, child, __ATOMIC_RELAXED);
        rec->root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rec->root_fd < 0) {
                r = -errno;
                snprintf(err, err_size, "cannot open /: %s", strerror(-r));
                goto fail;
        }
        r = plan_sup_watch_secrets(rec->sup, rec->root_fd, err, err_size);
        if (r < 0)
                goto fail;
        sup_ungate(rec->sup);
        *ret = rec;
        return 0;
fail:
        plan_recorder_free(rec);
        return r;
}

int plan_record_finish(PlanRecorder *rec, PlanResult **ret_observed)
{
        PlanSup *s;
        uint64_t deadline;
        bool ended = false;

        if (!rec || !rec->sup || !ret_observed)
                return -EINVAL;
        s = rec->sup;
        /*
         * The child has exited; descendants it left behind still hold the
         * filter. Wait a little for them, then hand the results over and
         * let the continuer answer for them (see continuer()).
         */
        deadline = now_monotonic_usec() + PLAN_RECORD_GRACE_USEC;
        while (now_monotonic_usec() < deadline) {
                if (pthread_tryjoin_np(s->thread, NULL) == 0) {
                        s->thread_started = false;
                        ended = true;
                        break;
                }
                usleep(5000);
        }
        if (!ended) {
                uint64_t one = 1;

                /* stop our thread (it finishes the call in hand), then let the continuer serve */
                if (write(s->stop_efd, &one, sizeof(one)) < 0) {
                        /* an eventfd counter this far from overflow does not fail */
                }
                pthread_join(s->thread, NULL);
                s->thread_started = false;
                pthread_mutex_lock(&s->lock);
                (void)plan_result_partial(s->r,
                                          "processes the command started were still running when "
                                          "it ended: their later effects are not recorded");
                pthread_mutex_unlock(&s->lock);
                release_continuer(s, 'c');
        } else
                release_continuer(s, 'x');
        pthread_mutex_lock(&s->lock);
        s->closed = true;
        pthread_mutex_unlock(&s->lock);
        *ret_observed = TAKE_PTR(rec->r);
        return 0;
}

PlanRecorder *plan_recorder_free(PlanRecorder *rec)
{
        if (!rec)
                return NULL;
        plan_sup_free(rec->sup);
        plan_result_free(rec->r);
        safe_close(rec->root_fd);
        free(rec);
        return NULL;
}
