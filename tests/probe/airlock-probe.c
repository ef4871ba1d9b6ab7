/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlock-probe: one multi-call program for the escape corpus. Each
 * technique makes the one system call (or short sequence) an attacker would
 * use, and prints a single line:
 *
 *     OK [detail]            the call succeeded (exit 0)
 *     ERR ENAME [detail]     the call failed with errno ENAME (exit 1)
 *
 * Usage errors print "USAGE ..." and exit 2. The same binary runs outside
 * the sandbox (where, as root, the call succeeds or the target exists) and
 * inside `airlock run` (where it must fail): the two sides of every proof.
 *
 * This is test code: it deliberately does dangerous things (ptrace, raw
 * sockets, mount, key rings). It is never installed. Calls that would change
 * the host when they succeed are chosen so that success is harmless: a
 * reboot with a wrong magic number, settimeofday(NULL, NULL), a mount inside
 * a private mount namespace, writing a value that is already there.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <grp.h>
#include <sys/io.h>
#include <sys/ipc.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

static const char *errno_name(int e)
{
        static char buf[32];
        switch (e) {
        case EPERM:
                return "EPERM";
        case ENOENT:
                return "ENOENT";
        case ESRCH:
                return "ESRCH";
        case EINTR:
                return "EINTR";
        case EIO:
                return "EIO";
        case ENXIO:
                return "ENXIO";
        case E2BIG:
                return "E2BIG";
        case ENOEXEC:
                return "ENOEXEC";
        case EBADF:
                return "EBADF";
        case ECHILD:
                return "ECHILD";
        case EAGAIN:
                return "EAGAIN";
        case ENOMEM:
                return "ENOMEM";
        case EACCES:
                return "EACCES";
        case EFAULT:
                return "EFAULT";
        case EBUSY:
                return "EBUSY";
        case EEXIST:
                return "EEXIST";
        case EXDEV:
                return "EXDEV";
        case ENODEV:
                return "ENODEV";
        case ENOTDIR:
                return "ENOTDIR";
        case EISDIR:
                return "EISDIR";
        case EINVAL:
                return "EINVAL";
        case ENFILE:
                return "ENFILE";
        case EMFILE:
                return "EMFILE";
        case ENOTTY:
                return "ENOTTY";
        case ENOSPC:
                return "ENOSPC";
        case EROFS:
                return "EROFS";
        case EMLINK:
                return "EMLINK";
        case ENOSYS:
                return "ENOSYS";
        case ELOOP:
                return "ELOOP";
        case ENOKEY:
                return "ENOKEY";
        case EKEYREVOKED:
                return "EKEYREVOKED";
        case ENOTSOCK:
                return "ENOTSOCK";
        case EPROTONOSUPPORT:
                return "EPROTONOSUPPORT";
        case EOPNOTSUPP:
                return "EOPNOTSUPP";
        case ESOCKTNOSUPPORT:
                return "ESOCKTNOSUPPORT";
        case EPROTOTYPE:
                return "EPROTOTYPE";
        case EAFNOSUPPORT:
                return "EAFNOSUPPORT";
        case EADDRINUSE:
                return "EADDRINUSE";
        case EADDRNOTAVAIL:
                return "EADDRNOTAVAIL";
        case ENETDOWN:
                return "ENETDOWN";
        case ENETUNREACH:
                return "ENETUNREACH";
        case ECONNRESET:
                return "ECONNRESET";
        case ETIMEDOUT:
                return "ETIMEDOUT";
        case ENOTCONN:
                return "ENOTCONN";
        case EISCONN:
                return "EISCONN";
        case ECONNREFUSED:
                return "ECONNREFUSED";
        case EHOSTUNREACH:
                return "EHOSTUNREACH";
        case EINPROGRESS:
                return "EINPROGRESS";
        case ESTALE:
                return "ESTALE";
        case EOVERFLOW:
                return "EOVERFLOW";
        default:
                snprintf(buf, sizeof(buf), "E%d", e);
                return buf;
        }
}

static int ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ok(const char *fmt, ...)
{
        va_list ap;
        fputs("OK", stdout);
        if (fmt && *fmt) {
                fputc(' ', stdout);
                va_start(ap, fmt);
                vfprintf(stdout, fmt, ap);
                va_end(ap);
        }
        fputc('\n', stdout);
        return 0;
}

/* Reports errno (captured by the caller) and what failed. */
static int fail(int e, const char *what)
{
        printf("ERR %s %s\n", errno_name(e), what);
        return 1;
}

#define FAIL(what) fail(errno, what)

static int parse_int(const char *s, long long *ret)
{
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 0);
        if (errno || end == s || *end)
                return -1;
        *ret = v;
        return 0;
}

/* Prints up to 200 bytes as text with non-printables as \xNN. */
static void print_data(const char *buf, size_t n)
{
        for (size_t i = 0; i < n && i < 200; i++) {
                unsigned char c = (unsigned char)buf[i];
                if (c >= 0x20 && c < 0x7f && c != '\\')
                        putchar(c);
                else
                        printf("\\x%02x", c);
        }
}

static int report_read(int fd, const char *what)
{
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0)
                return FAIL(what);
        printf("OK %zd ", n);
        print_data(buf, (size_t)n);
        putchar('\n');
        return 0;
}

/*
 * reopen PATH: an O_PATH handle first (no open of the file's content, so
 * no open check fires), then a real open through /proc/self/fd/N.
 */
static int t_reopen(int argc, char **argv)
{
        char link[64];

        if (argc != 2)
                return 2;
        int p = open(argv[1], O_PATH | O_CLOEXEC);
        if (p < 0)
                return FAIL("open O_PATH");
        snprintf(link, sizeof link, "/proc/self/fd/%d", p);
        int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return FAIL("reopen");
        return report_read(fd, "read");
}

/* read PATH: open and read; prints the byte count and the data. */
static int t_read(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return FAIL("open");
        return report_read(fd, "read");
}

/*
 * tmpfile-suid DIR NAME: an unnamed file made with O_TMPFILE and mode 06755 (no O_CREAT in
 * the flags, so a filter that looks for O_CREAT misses it), filled with this program,
 * then given NAME through /proc/self/fd with linkat. Prints the resulting mode.
 */
static int t_tmpfile_suid(int argc, char **argv)
{
        if (argc != 3)
                return 2;
        int fd = open(argv[1], O_TMPFILE | O_RDWR | O_CLOEXEC, 06755);
        if (fd < 0)
                return FAIL("open O_TMPFILE");
        int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        if (self < 0)
                return FAIL("open /proc/self/exe");
        char buf[65536];
        ssize_t n;
        while ((n = read(self, buf, sizeof(buf))) > 0)
                if (write(fd, buf, (size_t)n) != n)
                        return FAIL("write");
        char src[64], dst[4096];
        snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
        snprintf(dst, sizeof(dst), "%s/%s", argv[1], argv[2]);
        if (linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) < 0)
                return FAIL("linkat");
        struct stat st;
        if (fstat(fd, &st) < 0)
                return FAIL("fstat");
        return ok("mode %o uid %u", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
}

/*
 * poll-copy SRC DST SECONDS: an attacker waiting for a file to appear: opens SRC in a tight
 * loop, reads as soon as it has content, and copies that into DST (in the workspace, which
 * outlives the session). Reports what it got.
 */
static int t_poll_copy(int argc, char **argv)
{
        long long secs;
        if (argc != 4 || parse_int(argv[3], &secs) < 0 || secs <= 0)
                return 2;
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int fd = -1;
        char buf[4096];
        ssize_t n = 0;
        printf("polling\n");
        for (;;) {
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - t0.tv_sec >= secs)
                        return fail(fd < 0 ? ENOENT : EAGAIN, "timed out");
                if (fd < 0) {
                        fd = open(argv[1], O_RDONLY | O_CLOEXEC);
                        continue;
                }
                n = pread(fd, buf, sizeof(buf), 0);
                if (n > 0)
                        break;
                if (n == 0) { /* opened while still empty: look again by name too */
                        int fd2 = open(argv[1], O_RDONLY | O_CLOEXEC);
                        if (fd2 >= 0) {
                                close(fd);
                                fd = fd2;
                        }
                }
        }
        int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0 || write(out, buf, (size_t)n) != n)
                return FAIL("write copy");
        close(out);
        printf("OK %zd ", n);
        print_data(buf, (size_t)n);
        putchar('\n');
        return 0;
}

/* write PATH: creates a new file (O_EXCL) and writes one line. */
static int t_write(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return FAIL("open");
        if (write(fd, "airlock-escape\n", 15) != 15)
                return FAIL("write");
        return ok("created");
}

/* truncate PATH: truncate(2) to zero bytes, by path (no open file needed). */
static int t_truncate(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        if (truncate(argv[1], 0) < 0)
                return FAIL("truncate");
        return ok("truncated");
}

/* ioctl-dev PATH: opens a device node and asks it something harmless (FIONREAD). */
static int t_ioctl_dev(int argc, char **argv)
{
        int n = 0;

        if (argc != 2)
                return 2;
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return FAIL("open");
        if (ioctl(fd, FIONREAD, &n) < 0 && errno != ENOTTY && errno != EINVAL)
                return FAIL("ioctl");
        return ok("ioctl answered");
}

/* writeval PATH VALUE: writes VALUE into an existing file (no create). */
static int t_writeval(int argc, char **argv)
{
        if (argc != 3)
                return 2;
        int fd = open(argv[1], O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return FAIL("open");
        size_t n = strlen(argv[2]);
        if (write(fd, argv[2], n) != (ssize_t)n)
                return FAIL("write");
        return ok("written");
}

/* fd-read N: reads from an inherited file descriptor. */
static int t_fd_read(int argc, char **argv)
{
        long long fd;
        if (argc != 2 || parse_int(argv[1], &fd) < 0)
                return 2;
        if (lseek((int)fd, 0, SEEK_SET) < 0 && errno == EBADF)
                return FAIL("lseek");
        return report_read((int)fd, "read");
}

/* openat-fd N REL: opens REL relative to an inherited directory fd. */
static int t_openat_fd(int argc, char **argv)
{
        long long dfd;
        if (argc != 3 || parse_int(argv[1], &dfd) < 0)
                return 2;
        int fd = openat((int)dfd, argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return FAIL("openat");
        return report_read(fd, "read");
}

/* handle-get PATH: prints the file handle ("TYPE HEX") of PATH. */
static int t_handle_get(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        union {
                struct file_handle fh;
                char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
        } u;
        int mount_id;
        u.fh.handle_bytes = MAX_HANDLE_SZ;
        if (name_to_handle_at(AT_FDCWD, argv[1], &u.fh, &mount_id, 0) < 0)
                return FAIL("name_to_handle_at");
        printf("OK %d ", u.fh.handle_type);
        for (unsigned i = 0; i < u.fh.handle_bytes; i++)
                printf("%02x", u.fh.f_handle[i]);
        putchar('\n');
        return 0;
}

/* handle-open MOUNTPOINT TYPE HEX: open_by_handle_at (the "shocker" attack). */
static int t_handle_open(int argc, char **argv)
{
        long long type;
        if (argc != 4 || parse_int(argv[2], &type) < 0)
                return 2;
        size_t len = strlen(argv[3]) / 2;
        if (len > MAX_HANDLE_SZ)
                return 2;
        union {
                struct file_handle fh;
                char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
        } u;
        u.fh.handle_bytes = (unsigned)len;
        u.fh.handle_type = (int)type;
        for (size_t i = 0; i < len; i++) {
                unsigned v;
                if (sscanf(argv[3] + 2 * i, "%2x", &v) != 1)
                        return 2;
                u.fh.f_handle[i] = (unsigned char)v;
        }
        int mfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (mfd < 0)
                return FAIL("open mountpoint");
        int fd = open_by_handle_at(mfd, &u.fh, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return FAIL("open_by_handle_at");
        return report_read(fd, "read");
}

/* keyctl-add DESC DATA: adds a "user" key to the user keyring. */
static int t_keyctl_add(int argc, char **argv)
{
        if (argc != 3)
                return 2;
        long id = syscall(SYS_add_key, "user", argv[1], argv[2], strlen(argv[2]),
                          -4 /* KEY_SPEC_USER_KEYRING */);
        if (id < 0)
                return FAIL("add_key");
        return ok("%ld", id);
}

/* keyctl-read DESC: finds a "user" key by description and reads it. */
static int t_keyctl_read(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        long id = syscall(SYS_keyctl, 10 /* KEYCTL_SEARCH */, -4 /* user keyring */, "user",
                          argv[1], 0);
        if (id < 0)
                return FAIL("keyctl search");
        char buf[4096];
        long n = syscall(SYS_keyctl, 11 /* KEYCTL_READ */, id, buf, sizeof(buf));
        if (n < 0)
                return FAIL("keyctl read");
        printf("OK %ld ", n);
        print_data(buf, (size_t)(n < (long)sizeof(buf) ? n : (long)sizeof(buf)));
        putchar('\n');
        return 0;
}

/* keyctl-unlink ID: removes a key we added (test cleanup). */
static int t_keyctl_unlink(int argc, char **argv)
{
        long long id;
        if (argc != 2 || parse_int(argv[1], &id) < 0)
                return 2;
        if (syscall(SYS_keyctl, 9 /* KEYCTL_UNLINK */, (long)id, -4) < 0)
                return FAIL("keyctl unlink");
        return ok("unlinked");
}

/* keyctl-session: joins a new session keyring (an attacker's first step). */
static int t_keyctl_session(int argc, char **argv)
{
        long id = syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL);
        if (id < 0)
                return FAIL("keyctl join");
        return ok("%ld", id);
}

/*
 * request-key DESC: request_key(2) with callout info: when the key is missing the kernel
 * runs /sbin/request-key as root in the initial namespaces (an upcall).
 */
static int t_request_key(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        long id = syscall(SYS_request_key, "user", argv[1], "airlock-probe-callout",
                          -3 /* KEY_SPEC_SESSION_KEYRING */);
        if (id < 0)
                return FAIL("request_key");
        return ok("%ld", id);
}

/* mknod-read PATH b|c MAJOR MINOR: creates a device node and reads from it. */
static int t_mknod_read(int argc, char **argv)
{
        long long maj, min;
        if (argc != 5 || parse_int(argv[3], &maj) < 0 || parse_int(argv[4], &min) < 0)
                return 2;
        mode_t type = argv[2][0] == 'b' ? S_IFBLK : S_IFCHR;
        if (mknod(argv[1], type | 0600, makedev(maj, min)) < 0)
                return FAIL("mknod");
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        int e = errno;
        unlink(argv[1]);
        if (fd < 0)
                return fail(e, "open");
        return report_read(fd, "read");
}

/* mknod PATH [b|c MAJOR MINOR]: creates a device node (default 1:3, /dev/null's numbers). */
static int t_mknod(int argc, char **argv)
{
        long long maj = 1, min = 3;
        mode_t type = S_IFCHR;
        if (argc != 2 && argc != 5)
                return 2;
        if (argc == 5) {
                if (parse_int(argv[3], &maj) < 0 || parse_int(argv[4], &min) < 0)
                        return 2;
                type = argv[2][0] == 'b' ? S_IFBLK : S_IFCHR;
        }
        if (mknod(argv[1], type | 0600, makedev(maj, min)) < 0)
                return FAIL("mknod");
        unlink(argv[1]);
        return ok("created");
}

/* mount-tmpfs TARGET: the classic mount(2). */
static int t_mount_tmpfs(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        if (mount("airlock-probe", argv[1], "tmpfs", 0, "size=64k") < 0)
                return FAIL("mount");
        umount2(argv[1], MNT_DETACH);
        return ok("mounted");
}

/* mount-bind SRC DST: bind mount (e.g. to cover a mask with something else). */
static int t_mount_bind(int argc, char **argv)
{
        if (argc != 3)
                return 2;
        if (mount(argv[1], argv[2], NULL, MS_BIND, NULL) < 0)
                return FAIL("mount bind");
        umount2(argv[2], MNT_DETACH);
        return ok("bound");
}

/* remount-rw PATH: clears MS_RDONLY on the mount at PATH. */
static int t_remount_rw(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        if (mount(NULL, argv[1], NULL, MS_REMOUNT | MS_BIND, NULL) < 0)
                return FAIL("mount remount");
        return ok("remounted");
}

/* umount PATH: detaches the mount at PATH (e.g. a secret's mask). */
static int t_umount(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        if (umount2(argv[1], MNT_DETACH) < 0)
                return FAIL("umount2");
        return ok("unmounted");
}

/* fsmount: the new mount API: fsopen + fsconfig + fsmount. */
static int t_fsmount(int argc, char **argv)
{
        int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0)
                return FAIL("fsopen");
        if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return FAIL("fsconfig");
        int m = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
        if (m < 0)
                return FAIL("fsmount");
        return ok("mount fd %d", m);
}

/* fspick PATH: reconfigure an existing superblock (e.g. remount ro->rw). */
static int t_fspick(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        int fs = (int)syscall(SYS_fspick, AT_FDCWD, argv[1], FSPICK_CLOEXEC);
        if (fs < 0)
                return FAIL("fspick");
        return ok("fs fd %d", fs);
}

/* open-tree PATH: clones the mount tree at PATH (OPEN_TREE_CLONE). */
static int t_open_tree(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        int t = (int)syscall(SYS_open_tree, AT_FDCWD, argv[1],
                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (t < 0)
                return FAIL("open_tree");
        return ok("tree fd %d", t);
}

/* move-mount SRC DST: attaches a clone of SRC over DST with move_mount. */
static int t_move_mount(int argc, char **argv)
{
        if (argc != 3)
                return 2;
        int t = (int)syscall(SYS_open_tree, AT_FDCWD, argv[1], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (t < 0)
                return FAIL("open_tree");
        if (syscall(SYS_move_mount, t, "", AT_FDCWD, argv[2], MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return FAIL("move_mount");
        umount2(argv[2], MNT_DETACH);
        return ok("moved");
}

/* mount-setattr PATH: clears MOUNT_ATTR_RDONLY (makes a read-only mount writable). */
static int t_mount_setattr(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        struct mount_attr attr = { .attr_clr = MOUNT_ATTR_RDONLY };
        if (syscall(SYS_mount_setattr, AT_FDCWD, argv[1], 0, &attr, sizeof(attr)) < 0)
                return FAIL("mount_setattr");
        return ok("attributes changed");
}

/*
 * open-tree-attr PATH: open_tree_attr(2) (Linux 6.15, syscall 467): a clone of a mount
 * tree with new attributes. Newer than libseccomp 2.5: a filter that names syscalls
 * only by libseccomp's table does not know it.
 */
static int t_open_tree_attr(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        int t = (int)syscall(467, AT_FDCWD, argv[1], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC, NULL, 0);
        if (t < 0)
                return FAIL("open_tree_attr");
        return ok("tree fd %d", t);
}

/* pivot-root NEW PUTOLD */
static int t_pivot_root(int argc, char **argv)
{
        if (argc != 3)
                return 2;
        if (syscall(SYS_pivot_root, argv[1], argv[2]) < 0)
                return FAIL("pivot_root");
        return ok("pivoted");
}

/* chroot DIR: then reads ../../../etc/hostname relative, the classic breakout. */
static int t_chroot(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        if (chroot(argv[1]) < 0)
                return FAIL("chroot");
        return ok("chrooted");
}

static int ns_flag(const char *name)
{
        static const struct {
                const char *name;
                int flag;
        } t[] = {
                { "user", CLONE_NEWUSER },     { "mnt", CLONE_NEWNS },
                { "net", CLONE_NEWNET },       { "pid", CLONE_NEWPID },
                { "ipc", CLONE_NEWIPC },       { "uts", CLONE_NEWUTS },
                { "cgroup", CLONE_NEWCGROUP }, { "time", 0x00000080 /* CLONE_NEWTIME */ },
        };
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
                if (strcmp(t[i].name, name) == 0)
                        return t[i].flag;
        return -1;
}

/* unshare NS...: unshare(2) with the named namespaces (user mnt net pid ipc uts cgroup time). */
static int t_unshare(int argc, char **argv)
{
        int flags = 0;
        for (int i = 1; i < argc; i++) {
                int f = ns_flag(argv[i]);
                if (f < 0)
                        return 2;
                flags |= f;
        }
        if (unshare(flags) < 0)
                return FAIL("unshare");
        return ok("unshared");
}

/* clone-userns: the classic clone(2) with CLONE_NEWUSER in its flags register. */
static int t_clone_userns(int argc, char **argv)
{
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
        if (pid < 0)
                return FAIL("clone");
        if (pid == 0)
                _exit(0);
        waitpid((pid_t)pid, NULL, 0);
        return ok("child in a new user namespace");
}

/* clone3-userns: clone3 with CLONE_NEWUSER (seccomp cannot inspect clone3's flags). */
static int t_clone3_userns(int argc, char **argv)
{
        struct clone_args ca = { .flags = CLONE_NEWUSER, .exit_signal = SIGCHLD };
        long pid = syscall(SYS_clone3, &ca, sizeof(ca));
        if (pid < 0)
                return FAIL("clone3");
        if (pid == 0)
                _exit(0);
        waitpid((pid_t)pid, NULL, 0);
        return ok("child in a new user namespace");
}

static int write_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, text, strlen(text));
        int e = errno;
        close(fd);
        return n == (ssize_t)strlen(text) ? 0 : -e;
}

/*
 * userns-umount PATH: the nested-namespace attack on a mask: a new user and
 * mount namespace gives CAP_SYS_ADMIN over the copy of the mount table;
 * unmount the mask over PATH and read what is under it.
 */
static int t_userns_umount(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        uid_t uid = geteuid();
        gid_t gid = getegid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
                return FAIL("unshare");
        char map[64];
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
        int r = write_file("/proc/self/uid_map", map);
        if (r < 0)
                return fail(-r, "uid_map");
        (void)write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
        r = write_file("/proc/self/gid_map", map);
        if (r < 0)
                return fail(-r, "gid_map");
        if (umount2(argv[1], MNT_DETACH) < 0)
                return FAIL("umount2");
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return FAIL("open");
        return report_read(fd, "read");
}

static int parse_pid(const char *s, pid_t *ret)
{
        long long v;
        if (parse_int(s, &v) < 0 || v <= 0 || v > INT32_MAX)
                return -1;
        *ret = (pid_t)v;
        return 0;
}

/* ptrace-attach PID */
static int t_ptrace_attach(int argc, char **argv)
{
        pid_t pid;
        if (argc != 2 || parse_pid(argv[1], &pid) < 0)
                return 2;
        if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0)
                return FAIL("ptrace attach");
        waitpid(pid, NULL, __WALL);
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
        return ok("attached");
}

/* ptrace-seize PID: PTRACE_SEIZE (a second entry point some filters forget). */
static int t_ptrace_seize(int argc, char **argv)
{
        pid_t pid;
        if (argc != 2 || parse_pid(argv[1], &pid) < 0)
                return 2;
        if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) < 0)
                return FAIL("ptrace seize");
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
        return ok("seized");
}

static unsigned long first_mapping(pid_t pid)
{
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/maps", pid);
        FILE *f = fopen(path, "re");
        unsigned long start = 0x400000;
        if (f) {
                if (fgets(line, sizeof(line), f))
                        sscanf(line, "%lx-", &start);
                fclose(f);
        }
        return start;
}

/* vm-read PID: process_vm_readv of the first mapping of PID. */
static int t_vm_read(int argc, char **argv)
{
        pid_t pid;
        if (argc != 2 || parse_pid(argv[1], &pid) < 0)
                return 2;
        char buf[16];
        struct iovec local = { buf, sizeof(buf) };
        struct iovec remote = { (void *)first_mapping(pid), sizeof(buf) };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n < 0)
                return FAIL("process_vm_readv");
        return ok("read %zd bytes", n);
}

/* proc-mem PID: opens /proc/PID/mem for writing (code injection without ptrace). */
static int t_proc_mem(int argc, char **argv)
{
        pid_t pid;
        if (argc != 2 || parse_pid(argv[1], &pid) < 0)
                return 2;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/mem", pid);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return FAIL("open");
        char buf[16];
        if (pread(fd, buf, sizeof(buf), (off_t)first_mapping(pid)) < 0)
                return FAIL("pread");
        return ok("opened for writing");
}

/* pidfd-getfd PID FD: steals a file descriptor from another process. */
static int t_pidfd_getfd(int argc, char **argv)
{
        pid_t pid;
        long long target;
        if (argc != 3 || parse_pid(argv[1], &pid) < 0 || parse_int(argv[2], &target) < 0)
                return 2;
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0)
                return FAIL("pidfd_open");
        int fd = (int)syscall(SYS_pidfd_getfd, pfd, (int)target, 0);
        if (fd < 0)
                return FAIL("pidfd_getfd");
        return ok("got fd %d", fd);
}

/* kill PID SIG */
static int t_kill(int argc, char **argv)
{
        pid_t pid;
        long long sig;
        if (argc != 3 || parse_pid(argv[1], &pid) < 0 || parse_int(argv[2], &sig) < 0)
                return 2;
        if (kill(pid, (int)sig) < 0)
                return FAIL("kill");
        return ok("signalled");
}

/* io-uring: io_uring_setup. */
static int t_io_uring(int argc, char **argv)
{
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        int fd = (int)syscall(SYS_io_uring_setup, 4, &p);
        if (fd < 0)
                return FAIL("io_uring_setup");
        return ok("ring fd %d", fd);
}

/* bpf: creates a one-entry array map. */
static int t_bpf(int argc, char **argv)
{
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        int fd = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
        if (fd < 0)
                return FAIL("bpf");
        return ok("map fd %d", fd);
}

/* perf: a software counter on ourselves (allowed unprivileged at paranoid <= 2). */
static int t_perf(int argc, char **argv)
{
        struct perf_event_attr a;
        memset(&a, 0, sizeof(a));
        a.type = PERF_TYPE_SOFTWARE;
        a.size = sizeof(a);
        a.config = PERF_COUNT_SW_TASK_CLOCK;
        a.disabled = 1;
        a.exclude_kernel = 1;
        a.exclude_hv = 1;
        int fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
        if (fd < 0)
                return FAIL("perf_event_open");
        return ok("event fd %d", fd);
}

/* userfaultfd: user-mode-only, which the kernel allows unprivileged. */
static int t_userfaultfd(int argc, char **argv)
{
        int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
        if (fd < 0)
                return FAIL("userfaultfd");
        return ok("uffd %d", fd);
}

/* init-module: loads a (garbage) module image; success is impossible, EPERM is the wall. */
static int t_init_module(int argc, char **argv)
{
        static char image[64];
        if (syscall(SYS_init_module, image, sizeof(image), "") < 0)
                return FAIL("init_module");
        return ok("loaded");
}

/* finit-module PATH */
static int t_finit_module(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return FAIL("open");
        if (syscall(SYS_finit_module, fd, "", 0) < 0)
                return FAIL("finit_module");
        return ok("loaded");
}

/* kexec: kexec_load with too many segments: EINVAL after the capability check. */
static int t_kexec(int argc, char **argv)
{
        if (syscall(SYS_kexec_load, 0UL, 1000UL, NULL, 0UL) < 0)
                return FAIL("kexec_load");
        return ok("loaded");
}

/* reboot: with a wrong magic number the kernel answers EINVAL *after* checking CAP_SYS_BOOT. */
static int t_reboot(int argc, char **argv)
{
        if (syscall(SYS_reboot, 0x12345678, 0x12345678, LINUX_REBOOT_CMD_CAD_OFF, NULL) < 0)
                return FAIL("reboot");
        return ok("reboot accepted");
}

/* acct: acct(NULL) (turn process accounting off): checks CAP_SYS_PACCT, changes nothing if off. */
static int t_acct(int argc, char **argv)
{
        if (syscall(SYS_acct, NULL) < 0)
                return FAIL("acct");
        return ok("allowed");
}

/* swapoff PATH: the capability is checked before the path (ENOENT means root got past it). */
static int t_swapoff(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        if (syscall(SYS_swapoff, argv[1]) < 0)
                return FAIL("swapoff");
        return ok("swapped off");
}

/* settime: settimeofday(NULL, NULL) checks CAP_SYS_TIME and changes nothing. */
static int t_settime(int argc, char **argv)
{
        if (syscall(SYS_settimeofday, NULL, NULL) < 0)
                return FAIL("settimeofday");
        return ok("allowed");
}

/* syslog: reads the kernel ring buffer. */
static int t_syslog(int argc, char **argv)
{
        char buf[256];
        int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof(buf));
        if (n < 0)
                return FAIL("syslog");
        return ok("%d bytes", n);
}

/* ioperm: direct I/O port access (port 0x80, the POST diagnostic port). */
static int t_ioperm(int argc, char **argv)
{
        if (ioperm(0x80, 1, 1) < 0)
                return FAIL("ioperm");
        ioperm(0x80, 1, 0);
        return ok("granted");
}

/* setuid0: setuid(0) then setgroups(0). */
static int t_setuid0(int argc, char **argv)
{
        if (setuid(0) < 0)
                return FAIL("setuid");
        if (setgroups(0, NULL) < 0)
                return FAIL("setgroups");
        return ok("uid %u", (unsigned)getuid());
}

/* ids: prints the real and effective ids (for setuid and file-capability tests). */
static int t_ids(int argc, char **argv)
{
        return ok("uid=%u euid=%u gid=%u egid=%u", (unsigned)getuid(), (unsigned)geteuid(),
                  (unsigned)getgid(), (unsigned)getegid());
}

/* sethostname NAME */
static int t_sethostname(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        if (sethostname(argv[1], strlen(argv[1])) < 0)
                return FAIL("sethostname");
        return ok("hostname set");
}

/* rlimit-core: raises RLIMIT_CORE's hard limit (core dumps go to the host's core_pattern). */
static int t_rlimit_core(int argc, char **argv)
{
        struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
        if (setrlimit(RLIMIT_CORE, &rl) < 0)
                return FAIL("setrlimit");
        return ok("unlimited");
}

/* setns PATH: joins the namespace behind PATH (e.g. /proc/1/ns/mnt). */
static int t_setns(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return FAIL("open");
        if (setns(fd, 0) < 0)
                return FAIL("setns");
        return ok("joined");
}

/* personality: sets ADDR_NO_RANDOMIZE (turns off ASLR for what we exec next). */
static int t_personality(int argc, char **argv)
{
        int old = personality(0xffffffff);
        if (personality(old | ADDR_NO_RANDOMIZE) < 0)
                return FAIL("personality");
        if ((personality(0xffffffff) & ADDR_NO_RANDOMIZE) == 0)
                return fail(EPERM, "personality did not change");
        return ok("ASLR off");
}

/* int80: a 32-bit (i386 ABI) getpid through int 0x80: a second syscall table. */
static int t_int80(int argc, char **argv)
{
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
        if (ret < 0)
                return fail((int)-ret, "int 0x80");
        return ok("pid %ld", ret);
}

/* x32: getpid through the x32 ABI bit: a third syscall table. */
static int t_x32(int argc, char **argv)
{
        long ret = syscall(__X32_SYSCALL_BIT | SYS_getpid);
        if (ret < 0)
                return FAIL("x32 getpid");
        return ok("pid %ld", ret);
}

static int parse_addr(const char *host, const char *port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
        long long p;
        if (parse_int(port, &p) < 0 || p < 0 || p > 65535)
                return -1;
        memset(ss, 0, sizeof(*ss));
        struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
                in4->sin_family = AF_INET;
                in4->sin_port = htons((uint16_t)p);
                *len = sizeof(*in4);
                return 0;
        }
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t)p);
                *len = sizeof(*in6);
                return 0;
        }
        return -1;
}

static void set_timeouts(int fd)
{
        struct timeval tv = { 3, 0 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Reads the peer's greeting after a connect (our test listeners send one line). */
static int report_connected(int fd)
{
        char buf[128];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0)
                n = 0;
        printf("OK connected ");
        print_data(buf, (size_t)n);
        putchar('\n');
        return 0;
}

static int connect_proto(int argc, char **argv, int proto)
{
        struct sockaddr_storage ss;
        socklen_t len;
        if (argc != 3 || parse_addr(argv[1], argv[2], &ss, &len) < 0)
                return 2;
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, proto);
        if (fd < 0)
                return FAIL("socket");
        set_timeouts(fd);
        if (connect(fd, (struct sockaddr *)&ss, len) < 0)
                return FAIL("connect");
        return report_connected(fd);
}

/* tcp-connect ADDR PORT */
static int t_tcp_connect(int argc, char **argv)
{
        return connect_proto(argc, argv, 0);
}

/* mptcp-connect ADDR PORT: Multipath TCP, a different protocol number than TCP. */
static int t_mptcp_connect(int argc, char **argv)
{
        return connect_proto(argc, argv, IPPROTO_MPTCP);
}

/* tfo-connect ADDR PORT: TCP Fast Open connects through sendto(), not connect(). */
static int t_tfo_connect(int argc, char **argv)
{
        struct sockaddr_storage ss;
        socklen_t len;
        if (argc != 3 || parse_addr(argv[1], argv[2], &ss, &len) < 0)
                return 2;
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return FAIL("socket");
        set_timeouts(fd);
        if (sendto(fd, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&ss, len) < 0)
                return FAIL("sendto MSG_FASTOPEN");
        return report_connected(fd);
}

/* udp-send ADDR PORT [TYPEFLAGS]: one datagram; TYPEFLAGS ORs SOCK_* flags into the type. */
static int t_udp_send(int argc, char **argv)
{
        struct sockaddr_storage ss;
        socklen_t len;
        long long extra = 0;
        if ((argc != 3 && argc != 4) || parse_addr(argv[1], argv[2], &ss, &len) < 0)
                return 2;
        if (argc == 4 && parse_int(argv[3], &extra) < 0)
                return 2;
        int fd = socket(ss.ss_family, SOCK_DGRAM | (int)extra, 0);
        if (fd < 0)
                return FAIL("socket");
        if (sendto(fd, "airlock-udp", 11, 0, (struct sockaddr *)&ss, len) < 0)
                return FAIL("sendto");
        return ok("sent");
}

/* socket FAMILY TYPE PROTO: just creates the socket (raw, packet, vsock...). */
static int t_socket(int argc, char **argv)
{
        long long fam, type, proto;
        if (argc != 4 || parse_int(argv[1], &fam) < 0 || parse_int(argv[2], &type) < 0 ||
            parse_int(argv[3], &proto) < 0)
                return 2;
        int fd = socket((int)fam, (int)type, (int)proto);
        if (fd < 0)
                return FAIL("socket");
        return ok("socket fd %d", fd);
}

static int unix_connect(const char *name, bool abstract)
{
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        size_t n = strlen(name);
        if (n + 2 > sizeof(sun.sun_path))
                return 2;
        memcpy(sun.sun_path + (abstract ? 1 : 0), name, n);
        socklen_t len =
                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 1 : 0));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return FAIL("socket");
        set_timeouts(fd);
        if (connect(fd, (struct sockaddr *)&sun, len) < 0)
                return FAIL("connect");
        return report_connected(fd);
}

/* unix-sendto PATH: one datagram to a SOCK_DGRAM unix socket (a daemon's command socket). */
static int t_unix_sendto(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        size_t n = strlen(argv[1]);
        if (n + 1 > sizeof(sun.sun_path))
                return 2;
        memcpy(sun.sun_path, argv[1], n);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return FAIL("socket");
        if (sendto(fd, "airlock-dgram", 13, 0, (struct sockaddr *)&sun,
                   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
                return FAIL("sendto");
        return ok("sent");
}

/* unix-connect PATH */
static int t_unix_connect(int argc, char **argv)
{
        return argc == 2 ? unix_connect(argv[1], false) : 2;
}

/* abstract-connect NAME: the abstract namespace (no file, so no mount can hide it). */
static int t_abstract_connect(int argc, char **argv)
{
        return argc == 2 ? unix_connect(argv[1], true) : 2;
}

/* --- the unix socket wall (issue 3: F15, F20, F21 and the routes around connect) --- */

static socklen_t unix_addr(const char *path, struct sockaddr_un *sun)
{
        size_t n = strlen(path);
        *sun = (struct sockaddr_un){ .sun_family = AF_UNIX };
        if (n + 1 > sizeof(sun->sun_path))
                return 0;
        memcpy(sun->sun_path, path, n);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* unix-socketpair-sendto PATH: a datagram from an unbound socketpair end, to a path. */
static int t_unix_socketpair_sendto(int argc, char **argv)
{
        struct sockaddr_un sun;
        socklen_t len;
        int sv[2];
        if (argc != 2 || !(len = unix_addr(argv[1], &sun)))
                return 2;
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
                return FAIL("socketpair");
        if (sendto(sv[0], "airlock-dgram", 13, 0, (struct sockaddr *)&sun, len) < 0)
                return FAIL("sendto");
        return ok("sent");
}

/* unix-raw-sendto PATH: SOCK_RAW, which af_unix.c turns into a datagram socket. */
static int t_unix_raw_sendto(int argc, char **argv)
{
        struct sockaddr_un sun;
        socklen_t len;
        if (argc != 2 || !(len = unix_addr(argv[1], &sun)))
                return 2;
        int fd = socket(AF_UNIX, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return FAIL("socket");
        if (sendto(fd, "airlock-dgram", 13, 0, (struct sockaddr *)&sun, len) < 0)
                return FAIL("sendto");
        return ok("sent");
}

/* unix-sendmsg-name TYPE PATH: sendmsg with msg_name on an unconnected stream/seqpacket socket. */
static int t_unix_sendmsg_name(int argc, char **argv)
{
        struct sockaddr_un sun;
        socklen_t len;
        if (argc != 3 || !(len = unix_addr(argv[2], &sun)))
                return 2;
        int type = strcmp(argv[1], "seqpacket") == 0 ? SOCK_SEQPACKET : SOCK_STREAM;
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return FAIL("socket");
        struct iovec iov = { .iov_base = (void *)"airlock-dgram", .iov_len = 13 };
        struct msghdr mh = {
                .msg_name = &sun, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1
        };
        if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
                return FAIL("sendmsg");
        return ok("sent");
}

/* unix-connect-procfd PATH: connect through /proc/self/fd/N of an O_PATH fd of the socket. */
static int t_unix_connect_procfd(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        int t = open(argv[1], O_PATH | O_CLOEXEC);
        if (t < 0)
                return FAIL("open O_PATH");
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", t);
        return unix_connect(path, false);
}

/* unix-connect-relative DIR NAME: chdir(DIR), then connect(NAME). */
static int t_unix_connect_relative(int argc, char **argv)
{
        if (argc != 3)
                return 2;
        if (chdir(argv[1]) < 0)
                return FAIL("chdir");
        return unix_connect(argv[2], false);
}

/* A listener of our own that greets with "own" (accepts in a thread). */
static void *own_acceptor(void *arg)
{
        int l = (int)(intptr_t)arg;
        for (;;) {
                int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                (void)!write(c, "own\n", 4);
                close(c);
        }
        return NULL;
}

static int own_listener(const char *path)
{
        struct sockaddr_un sun;
        socklen_t len = unix_addr(path, &sun);
        int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        pthread_t t;
        if (!len || l < 0)
                return -1;
        unlink(path);
        if (bind(l, (struct sockaddr *)&sun, len) < 0 || listen(l, 128) < 0)
                return -1;
        if (pthread_create(&t, NULL, own_acceptor, (void *)(intptr_t)l) != 0)
                return -1;
        return l;
}

/* unix-own PATH: a server of our own at PATH, and a connect to it (must work, also inside). */
static int t_unix_own(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        if (own_listener(argv[1]) < 0)
                return FAIL("listen");
        return unix_connect(argv[1], false);
}

static void on_alarm(int sig)
{
        (void)sig;
}

/*
 * unix-own-signals PATH N: N connects to a server of our own at PATH while an
 * interval timer (SA_RESTART, every 50 us) interrupts them, as the Go
 * runtime's preemption signals do to its threads: every connect must work.
 */
static int t_unix_own_signals(int argc, char **argv)
{
        struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
        struct itimerval every = { { 0, 50 }, { 0, 50 } }, off = { { 0, 0 }, { 0, 0 } };
        struct sockaddr_un sun;
        long long n, failed = 0;
        socklen_t len;
        sigset_t alarm_set;
        int last = 0;

        if (argc != 3 || parse_int(argv[2], &n) < 0 || n <= 0)
                return 2;
        len = unix_addr(argv[1], &sun);
        signal(SIGPIPE, SIG_IGN); /* the acceptor greets connections we have closed */
        sigemptyset(&alarm_set);
        sigaddset(&alarm_set, SIGALRM);
        /* the acceptor thread inherits the blocked mask: the signals hit the connects */
        pthread_sigmask(SIG_BLOCK, &alarm_set, NULL);
        if (!len || own_listener(argv[1]) < 0)
                return FAIL("listen");
        pthread_sigmask(SIG_UNBLOCK, &alarm_set, NULL);
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGALRM, &sa, NULL) < 0 || setitimer(ITIMER_REAL, &every, NULL) < 0)
                return FAIL("setitimer");
        for (long long i = 0; i < n; i++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return FAIL("socket");
                if (connect(fd, (struct sockaddr *)&sun, len) < 0) {
                        failed++;
                        last = errno;
                }
                close(fd);
        }
        (void)setitimer(ITIMER_REAL, &off, NULL);
        if (failed) {
                printf("ERR %s %lld of %lld connects failed\n", errno_name(last), failed, n);
                return 1;
        }
        return ok("%lld connects, none failed", n);
}

static struct sockaddr_un flip_addr; /* rewritten by the flipper while connects read it */
static char flip_paths[2][108];

static void *flipper(void *arg)
{
        (void)arg;
        /* hold each value a little: a read during the copy is torn (ENOENT), not a race won */
        for (unsigned i = 0;; i++) {
                memcpy(flip_addr.sun_path, flip_paths[i & 1], sizeof flip_addr.sun_path);
                for (volatile int spin = 0; spin < 2000; spin++)
                        ;
        }
        return NULL;
}

/*
 * After one connect: 1 if it reached TARGET (its greeting is not ours), 0 if
 * it reached our own listener, -1 if it failed (errno from connect).
 */
static int flip_result(int fd, int r, int *err)
{
        char buf[64];
        if (r < 0) {
                *err = errno;
                close(fd);
                return -1;
        }
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        return strncmp(buf, "own", 3) != 0;
}

static int report_flips(long long rounds, int reached, int own, int failed, int last_err)
{
        if (reached)
                return ok("reached the target %d times of %lld (own %d, refused %d)", reached,
                          rounds, own, failed);
        printf("ERR %s never reached the target in %lld rounds (own %d, refused %d)\n",
               errno_name(failed ? last_err : EACCES), rounds, own, failed);
        return 1;
}

/*
 * unix-connect-flip OWN TARGET ROUNDS: a thread rewrites the address between
 * OWN (our listener) and TARGET while connect(2) reads it.
 */
static int t_unix_connect_flip(int argc, char **argv)
{
        long long rounds;
        pthread_t t;
        int reached = 0, own = 0, failed = 0, last_err = 0;
        if (argc != 4 || parse_int(argv[3], &rounds) < 0 || strlen(argv[1]) >= 108 ||
            strlen(argv[2]) >= 108)
                return 2;
        if (own_listener(argv[1]) < 0)
                return FAIL("listen");
        flip_addr.sun_family = AF_UNIX;
        strncpy(flip_paths[0], argv[1], sizeof flip_paths[0] - 1);
        strncpy(flip_paths[1], argv[2], sizeof flip_paths[1] - 1);
        if (pthread_create(&t, NULL, flipper, NULL) != 0)
                return FAIL("pthread_create");
        for (long long i = 0; i < rounds; i++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return FAIL("socket");
                set_timeouts(fd);
                int r = flip_result(fd,
                                    connect(fd, (struct sockaddr *)&flip_addr, sizeof flip_addr),
                                    &last_err);
                reached += r == 1;
                own += r == 0;
                failed += r < 0;
        }
        return report_flips(rounds, reached, own, failed, last_err);
}

static const char *flip_link;

static void *link_flipper(void *arg)
{
        char tmp[4200];
        (void)arg;
        snprintf(tmp, sizeof tmp, "%s.new", flip_link);
        for (unsigned i = 0;; i++) {
                unlink(tmp);
                if (symlink(flip_paths[i & 1], tmp) == 0)
                        (void)rename(tmp, flip_link);
        }
        return NULL;
}

/* unix-connect-symlink-flip LINK OWN TARGET ROUNDS: LINK is flipped between OWN and TARGET. */
static int t_unix_connect_symlink_flip(int argc, char **argv)
{
        long long rounds;
        pthread_t t;
        int reached = 0, own = 0, failed = 0, last_err = 0;
        struct sockaddr_un sun;
        socklen_t len;
        if (argc != 5 || parse_int(argv[4], &rounds) < 0 || !(len = unix_addr(argv[1], &sun)) ||
            strlen(argv[2]) >= 108 || strlen(argv[3]) >= 108)
                return 2;
        if (own_listener(argv[2]) < 0)
                return FAIL("listen");
        flip_link = argv[1];
        strncpy(flip_paths[0], argv[2], sizeof flip_paths[0] - 1);
        strncpy(flip_paths[1], argv[3], sizeof flip_paths[1] - 1);
        if (pthread_create(&t, NULL, link_flipper, NULL) != 0)
                return FAIL("pthread_create");
        for (long long i = 0; i < rounds; i++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return FAIL("socket");
                set_timeouts(fd);
                int r = flip_result(fd, connect(fd, (struct sockaddr *)&sun, len), &last_err);
                reached += r == 1;
                own += r == 0;
                failed += r < 0 && last_err != ENOENT; /* between unlink and rename */
        }
        return report_flips(rounds, reached, own, failed, last_err);
}

/* seccomp-listener: install a connect filter of our own with a notification listener. */
static int t_seccomp_listener(int argc, char **argv)
{
        (void)argv;
        if (argc != 1)
                return 2;
        struct sock_filter f[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { .len = 4, .filter = f };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return FAIL("prctl");
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                          &prog);
        if (fd < 0)
                return FAIL("seccomp NEW_LISTENER");
        return ok("listener %ld", fd);
}

/* tiocsti FD TEXT [HIGHBITS]: pushes TEXT into the terminal's input queue. */
static int t_tiocsti(int argc, char **argv)
{
        long long fd, high = 0;
        if ((argc != 3 && argc != 4) || parse_int(argv[1], &fd) < 0)
                return 2;
        if (argc == 4 && parse_int(argv[3], &high) < 0)
                return 2;
        unsigned long req = (unsigned long)TIOCSTI | ((unsigned long)high << 32);
        for (const char *p = argv[2]; *p; p++)
                if (syscall(SYS_ioctl, (int)fd, req, p) < 0)
                        return FAIL("ioctl TIOCSTI");
        return ok("injected");
}

/* tioclinux FD: TIOCLINUX subcode 6 (get shift state), the harmless member of the family. */
static int t_tioclinux(int argc, char **argv)
{
        long long fd;
        if (argc != 2 || parse_int(argv[1], &fd) < 0)
                return 2;
        char sub = 6;
        if (syscall(SYS_ioctl, (int)fd, (unsigned long)TIOCLINUX, &sub) < 0)
                return FAIL("ioctl TIOCLINUX");
        return ok("answered %d", sub);
}

/* forkbomb N: forks up to N children that wait; reports how many it got, then kills them. */
static int t_forkbomb(int argc, char **argv)
{
        long long n;
        if (argc != 2 || parse_int(argv[1], &n) < 0 || n <= 0 || n > 100000)
                return 2;
        pid_t *kids = calloc((size_t)n, sizeof(pid_t));
        if (!kids)
                return FAIL("calloc");
        long long got = 0;
        int e = 0;
        for (; got < n; got++) {
                pid_t p = fork();
                if (p < 0) {
                        e = errno;
                        break;
                }
                if (p == 0) {
                        /* the child dies with its parent even if the parent is killed */
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        pause();
                        _exit(0);
                }
                kids[got] = p;
        }
        for (long long i = 0; i < got; i++)
                kill(kids[i], SIGKILL);
        for (long long i = 0; i < got; i++)
                waitpid(kids[i], NULL, 0);
        if (e) {
                printf("ERR %s forked=%lld\n", errno_name(e), got);
                return 1;
        }
        return ok("forked=%lld", got);
}

/* mem MIB: allocates and touches MIB mebibytes. */
static int t_mem(int argc, char **argv)
{
        long long mib;
        if (argc != 2 || parse_int(argv[1], &mib) < 0 || mib <= 0)
                return 2;
        for (long long i = 0; i < mib; i++) {
                char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                               -1, 0);
                if (p == MAP_FAILED) {
                        printf("ERR %s allocated=%lld\n", errno_name(errno), i);
                        return 1;
                }
                memset(p, 0x5a, 1 << 20);
        }
        return ok("allocated=%lld", mib);
}

/* shm-create KEY TEXT: a System V shared memory segment holding TEXT. */
static int t_shm_create(int argc, char **argv)
{
        long long key;
        if (argc != 3 || parse_int(argv[1], &key) < 0)
                return 2;
        int id = shmget((key_t)key, 4096, IPC_CREAT | IPC_EXCL | 0666);
        if (id < 0)
                return FAIL("shmget");
        char *p = shmat(id, NULL, 0);
        if (p == (void *)-1)
                return FAIL("shmat");
        snprintf(p, 4096, "%s", argv[2]);
        shmdt(p);
        return ok("%d", id);
}

/* shm-read KEY */
static int t_shm_read(int argc, char **argv)
{
        long long key;
        if (argc != 2 || parse_int(argv[1], &key) < 0)
                return 2;
        int id = shmget((key_t)key, 0, 0);
        if (id < 0)
                return FAIL("shmget");
        char *p = shmat(id, NULL, SHM_RDONLY);
        if (p == (void *)-1)
                return FAIL("shmat");
        printf("OK ");
        print_data(p, strnlen(p, 200));
        putchar('\n');
        return 0;
}

/* shm-rm KEY (test cleanup) */
static int t_shm_rm(int argc, char **argv)
{
        long long key;
        if (argc != 2 || parse_int(argv[1], &key) < 0)
                return 2;
        int id = shmget((key_t)key, 0, 0);
        if (id < 0 || shmctl(id, IPC_RMID, NULL) < 0)
                return FAIL("shmctl");
        return ok("removed");
}

typedef int (*Technique)(int argc, char **argv);

static const struct {
        const char *name;
        Technique run;
} techniques[] = {
        { "read", t_read },
        { "reopen", t_reopen },
        { "write", t_write },
        { "poll-copy", t_poll_copy },
        { "tmpfile-suid", t_tmpfile_suid },
        { "writeval", t_writeval },
        { "truncate", t_truncate },
        { "ioctl-dev", t_ioctl_dev },
        { "fd-read", t_fd_read },
        { "openat-fd", t_openat_fd },
        { "handle-get", t_handle_get },
        { "handle-open", t_handle_open },
        { "keyctl-add", t_keyctl_add },
        { "keyctl-read", t_keyctl_read },
        { "keyctl-unlink", t_keyctl_unlink },
        { "keyctl-session", t_keyctl_session },
        { "request-key", t_request_key },
        { "mknod-read", t_mknod_read },
        { "mknod", t_mknod },
        { "mount-tmpfs", t_mount_tmpfs },
        { "mount-bind", t_mount_bind },
        { "remount-rw", t_remount_rw },
        { "umount", t_umount },
        { "fsmount", t_fsmount },
        { "fspick", t_fspick },
        { "open-tree", t_open_tree },
        { "open-tree-attr", t_open_tree_attr },
        { "move-mount", t_move_mount },
        { "mount-setattr", t_mount_setattr },
        { "pivot-root", t_pivot_root },
        { "chroot", t_chroot },
        { "unshare", t_unshare },
        { "clone3-userns", t_clone3_userns },
        { "clone-userns", t_clone_userns },
        { "userns-umount", t_userns_umount },
        { "ptrace-attach", t_ptrace_attach },
        { "ptrace-seize", t_ptrace_seize },
        { "vm-read", t_vm_read },
        { "proc-mem", t_proc_mem },
        { "pidfd-getfd", t_pidfd_getfd },
        { "kill", t_kill },
        { "io-uring", t_io_uring },
        { "bpf", t_bpf },
        { "perf", t_perf },
        { "userfaultfd", t_userfaultfd },
        { "init-module", t_init_module },
        { "finit-module", t_finit_module },
        { "kexec", t_kexec },
        { "reboot", t_reboot },
        { "settime", t_settime },
        { "acct", t_acct },
        { "swapoff", t_swapoff },
        { "syslog", t_syslog },
        { "ioperm", t_ioperm },
        { "setuid0", t_setuid0 },
        { "ids", t_ids },
        { "sethostname", t_sethostname },
        { "rlimit-core", t_rlimit_core },
        { "setns", t_setns },
        { "personality", t_personality },
        { "int80", t_int80 },
        { "x32", t_x32 },
        { "tcp-connect", t_tcp_connect },
        { "mptcp-connect", t_mptcp_connect },
        { "tfo-connect", t_tfo_connect },
        { "udp-send", t_udp_send },
        { "socket", t_socket },
        { "unix-connect", t_unix_connect },
        { "unix-sendto", t_unix_sendto },
        { "abstract-connect", t_abstract_connect },
        { "unix-socketpair-sendto", t_unix_socketpair_sendto },
        { "unix-raw-sendto", t_unix_raw_sendto },
        { "unix-sendmsg-name", t_unix_sendmsg_name },
        { "unix-connect-procfd", t_unix_connect_procfd },
        { "unix-connect-relative", t_unix_connect_relative },
        { "unix-own", t_unix_own },
        { "unix-own-signals", t_unix_own_signals },
        { "unix-connect-flip", t_unix_connect_flip },
        { "unix-connect-symlink-flip", t_unix_connect_symlink_flip },
        { "seccomp-listener", t_seccomp_listener },
        { "tiocsti", t_tiocsti },
        { "tioclinux", t_tioclinux },
        { "forkbomb", t_forkbomb },
        { "mem", t_mem },
        { "shm-create", t_shm_create },
        { "shm-read", t_shm_read },
        { "shm-rm", t_shm_rm },
};

int main(int argc, char **argv)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc >= 2)
                for (size_t i = 0; i < sizeof(techniques) / sizeof(techniques[0]); i++)
                        if (strcmp(techniques[i].name, argv[1]) == 0) {
                                int r = techniques[i].run(argc - 1, argv + 1);
                                if (r == 2)
                                        fprintf(stderr, "USAGE airlock-probe %s: wrong arguments\n",
                                                argv[1]);
                                return r;
                        }
        fprintf(stderr, "USAGE airlock-probe TECHNIQUE ARGS... (techniques:");
        for (size_t i = 0; i < sizeof(techniques) / sizeof(techniques[0]); i++)
                fprintf(stderr, " %s", techniques[i].name);
        fprintf(stderr, ")\n");
        return 2;
}
