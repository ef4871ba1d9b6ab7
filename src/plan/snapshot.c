/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The snapshot: plan_run() forks a helper (in the host's namespaces, so it
 * may write the id maps), which clones the builder into new user, mount,
 * network, pid, ipc and uts namespaces. The user namespace maps every id to
 * itself: uid 0 there owns what root owns, so file access is as in the real
 * run, but it holds no capability over the host's kernel objects.
 *
 * The builder (pid 1 of the new pid namespace) makes the mount tree
 * private, puts an overlay with a tmpfs upper layer over every real
 * filesystem, a fresh proc, a read-only /sys, a minimal /dev, pivots into
 * it and detaches the host's tree. Then the command runs in one more user
 * and mount namespace nested in the builder's: every mount the builder made
 * is locked there (read-only stays read-only, nothing can be unmounted to
 * reveal what is below), and fresh proc or sysfs mounts are forced
 * read-only. When the command has ended, the builder kills what is left,
 * walks the upper layers (files.c) and reports to plan_run() as JSON.
 * Everything it built disappears with its namespaces.
 *
 * Which mounts get an overlay (a writable copy-on-write view): the local
 * and memory filesystems that hold data (OVERLAY_TYPES below, tmpfs
 * included: /run, /tmp). Read-only filesystems (squashfs, iso9660, erofs)
 * and every other filesystem (network and FUSE filesystems when the
 * overlay refuses them) are bound read-only, and the plan says so.
 * Pseudo filesystems are not copied: /proc is a fresh read-only proc of the
 * new pid namespace, /sys a read-only recursive bind (the cgroup trees with
 * it), /dev a small tmpfs.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <net/if.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/util.h"
#include "plan/plan-internal.h"

#define SECRET_FILE_MAX (16 * 1024 * 1024) /* larger secret files are fingerprinted up to here */
#define SECRET_WALK_MAX 50000              /* entries looked at to expand the secret globs */
#define MOUNTINFO_MAX   (4 * 1024 * 1024)
#define STAGE           "/tmp" /* a private tmpfs here holds the stage while building */
#define STAGE_ROOT      STAGE "/root"
#define STAGE_UP        STAGE "/up"

static const char *const overlay_types[] = {
        "ext2",     "ext3",   "ext4", "xfs",   "btrfs",   "vfat", "msdos", "exfat", "f2fs", "jfs",
        "reiserfs", "nilfs2", "ntfs", "ntfs3", "hfsplus", "zfs",  "tmpfs", "ramfs", NULL,
};

static const char *const readonly_types[] = {
        "squashfs", "iso9660", "erofs", "udf", "cramfs", NULL,
};

/* Pseudo filesystems outside /proc, /sys and /dev that are not shown at all. */
static const char *const hidden_types[] = {
        "autofs",   "binfmt_misc", "debugfs",   "tracefs",    "securityfs", "pstore",   "bpf",
        "configfs", "fusectl",     "efivarfs",  "rpc_pipefs", "nsfs",       "proc",     "sysfs",
        "devpts",   "mqueue",      "hugetlbfs", "cgroup",     "cgroup2",    "devtmpfs", NULL,
};

static bool in_list(const char *const *l, const char *s)
{
        for (; *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

typedef enum {
        M_SKIP,
        M_OVERLAY,
        M_RO_BIND,
} MountKind;

typedef struct {
        int id, parent;
        char *path;
        char *type;
        bool ro, nosuid, nodev, noexec;
        int visible; /* -1 unknown, 0, 1 */
        MountKind kind;
        int lower_fd; /* the original mount's root, kept to walk after the command */
        int upper_fd;
} Mount;

typedef struct {
        const PlanSnapshotArgs *a;
        Mount *mounts;
        size_t n_mounts;
        PlanFingerprints *fp;
        char **notes; /* partial-fidelity reasons */
        char *hosts_baseline;
        size_t hosts_baseline_len;
        int tmp_fd;  /* the upper tmpfs */
        int proc_fd; /* a detached, writable proc of the pid namespace: the command's id maps */
} Builder;

/* ---- failing: the message goes to plan_run() over the control pipe ---- */

/* Set in the helper before it has sent the builder's pid: plan_run() reads a pid first. */
static bool die_pid_first;

static _noreturn_ _printf_(2, 3) void die(const PlanSnapshotArgs *a, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        int saved = errno;
        int32_t none = 0;

        if (die_pid_first)
                (void)write_all(a->ctl_fd, &none, sizeof none);
        msg[0] = 'E';
        va_start(ap, fmt);
        errno = saved;
        vsnprintf(msg + 1, sizeof msg - 1, fmt, ap);
        va_end(ap);
        (void)write_all(a->ctl_fd, msg, strlen(msg));
        _exit(1);
}

/* ---- the mount table ---- */

static char *unescape_mountinfo(const char *s)
{
        char *out = malloc(strlen(s) + 1), *o = out;

        if (!out)
                return NULL;
        while (*s) {
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
                    s[3] >= '0' && s[3] <= '7') {
                        *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
                        s += 4;
                } else
                        *o++ = *s++;
        }
        *o = '\0';
        return out;
}

static bool has_opt(const char *opts, const char *o)
{
        size_t n = strlen(o);

        for (const char *p = opts; p && *p;) {
                const char *c = strchr(p, ',');
                size_t len = c ? (size_t)(c - p) : strlen(p);

                if (len == n && strneq(p, o, n))
                        return true;
                p = c ? c + 1 : NULL;
        }
        return false;
}

static bool path_under(const char *path, const char *dir)
{
        size_t n = strlen(dir);

        if (streq(dir, "/"))
                return true;
        return strneq(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

static int depth_of(const char *p)
{
        int d = 0;

        if (streq(p, "/"))
                return 0;
        for (; *p; p++)
                if (*p == '/')
                        d++;
        return d;
}

static int cmp_mount(const void *x, const void *y)
{
        const Mount *a = x, *b = y;
        int d = depth_of(a->path) - depth_of(b->path);

        return d ? d : strcmp(a->path, b->path);
}

/*
 * A mount is visible when nothing is mounted on top of it at the same path
 * (a child with the same mount point) and its parent is visible.
 */
static bool mount_visible(Builder *b, size_t i, unsigned depth)
{
        Mount *m = &b->mounts[i];
        bool v = true;

        if (m->visible >= 0)
                return m->visible;
        if (depth > 64)
                return false;
        for (size_t j = 0; j < b->n_mounts && v; j++) {
                const Mount *o = &b->mounts[j];

                if (j != i && o->parent == m->id && streq(o->path, m->path))
                        v = false;
        }
        for (size_t j = 0; j < b->n_mounts && v; j++)
                if (j != i && b->mounts[j].id == m->parent && b->mounts[j].id != m->id)
                        v = mount_visible(b, j, depth + 1);
        m->visible = v;
        return v;
}

/*
 * Reads the mount table and decides, for each visible mount, what the
 * snapshot shows there. Only the topmost mount at a path counts, and a
 * mount hidden by a later one on a parent path is left out.
 */
static void read_mounts(Builder *b)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0, n = 0;
        char *line, *save = NULL;
        int r;

        r = read_full_file("/proc/self/mountinfo", MOUNTINFO_MAX, &text, &len);
        if (r < 0)
                die(b->a, "cannot read /proc/self/mountinfo: %s", strerror(-r));
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *f[64], *s2 = NULL, *tok;
                size_t nf = 0, dash = 0;
                Mount m = { .lower_fd = -EBADF, .upper_fd = -EBADF };
                Mount *t;

                for (tok = strtok_r(line, " ", &s2); tok && nf < ELEMENTSOF(f);
                     tok = strtok_r(NULL, " ", &s2))
                        f[nf++] = tok;
                for (size_t i = 6; i < nf; i++)
                        if (streq(f[i], "-")) {
                                dash = i;
                                break;
                        }
                if (nf < 10 || dash == 0 || dash + 3 > nf)
                        die(b->a, "cannot parse /proc/self/mountinfo");
                m.path = unescape_mountinfo(f[4]);
                m.type = strdup(f[dash + 1]);
                if (!m.path || !m.type)
                        die(b->a, "out of memory");
                if (sscanf(f[0], "%d", &m.id) != 1 || sscanf(f[1], "%d", &m.parent) != 1)
                        die(b->a, "cannot parse /proc/self/mountinfo");
                m.visible = -1;
                m.ro = has_opt(f[5], "ro");
                m.nosuid = has_opt(f[5], "nosuid");
                m.nodev = has_opt(f[5], "nodev");
                m.noexec = has_opt(f[5], "noexec");

                if (streq(m.path, "/"))
                        m.kind = M_OVERLAY;
                else if (path_under(m.path, "/proc") || path_under(m.path, "/sys") ||
                         path_under(m.path, "/dev"))
                        m.kind = M_SKIP; /* built fresh below */
                else if (in_list(overlay_types, m.type))
                        m.kind = M_OVERLAY;
                else if (in_list(hidden_types, m.type))
                        m.kind = M_SKIP;
                else if (in_list(readonly_types, m.type))
                        m.kind = M_RO_BIND;
                else
                        m.kind = M_OVERLAY; /* tried; a read-only bind if the overlay refuses */
                t = reallocarray(b->mounts, n + 1, sizeof *t);
                if (!t)
                        die(b->a, "out of memory");
                b->mounts = t;
                b->mounts[n++] = m;
        }
        b->n_mounts = n;
        for (size_t i = 0; i < n; i++)
                if (!mount_visible(b, i, 0))
                        b->mounts[i].kind = M_SKIP;
        /* parents before children */
        qsort(b->mounts, n, sizeof *b->mounts, cmp_mount);
        if (n == 0 || !streq(b->mounts[0].path, "/") || b->mounts[0].kind != M_OVERLAY)
                die(b->a, "no root filesystem in /proc/self/mountinfo");
}

static void note(Builder *b, const char *fmt, ...) _printf_(2, 3);
static void note(Builder *b, const char *fmt, ...)
{
        char *s;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0 || strv_consume(&b->notes, s) < 0)
                die(b->a, "out of memory");
}

/* ---- secrets: their bytes, read from the host before anything runs ---- */

static bool has_glob(const char *s)
{
        return strpbrk(s, "*?[{\\") != NULL;
}

/*
 * Fingerprints the secret at dir/name. follow: name is a symlink whose path
 * is a secret (/etc/letsencrypt/live/X/privkey.pem): the file it points to
 * is read, as a command reading the secret would.
 */
static void fingerprint_file(Builder *b, int dir, const char *name, const char *path, bool follow)
{
        _cleanup_close_ int fd =
                openat(dir, name,
                       O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW) | O_NOCTTY | O_NONBLOCK);
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t len = 0;

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
                return;
        buf = malloc(st.st_size < SECRET_FILE_MAX ? (size_t)st.st_size : SECRET_FILE_MAX);
        if (!buf)
                die(b->a, "out of memory");
        while (len < (size_t)st.st_size && len < SECRET_FILE_MAX) {
                ssize_t k = read(fd, buf + len,
                                 ((size_t)st.st_size < SECRET_FILE_MAX ? (size_t)st.st_size
                                                                       : SECRET_FILE_MAX) -
                                         len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += (size_t)k;
        }
        if (len > 0 && plan_fp_add(b->fp, path, buf, len) < 0)
                die(b->a, "out of memory");
        explicit_wipe(buf, len);
}

/* Walks dir (path) and fingerprints every regular file that is a secret. */
static void fingerprint_tree(Builder *b, int dir, const char *path, unsigned depth,
                             unsigned *budget)
{
        _cleanup_close_ int copy = -EBADF;
        DIR *d;
        struct dirent *de;

        if (depth > 16)
                return;
        copy = fcntl(dir, F_DUPFD_CLOEXEC, 3);
        if (copy < 0 || !(d = fdopendir(copy)))
                return;
        TAKE_FD(copy);
        while ((de = readdir(d)) && *budget > 0) {
                _cleanup_free_ char *child = NULL;
                struct stat st;

                (*budget)--;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (asprintf(&child, "%s/%s", streq(path, "/") ? "" : path, de->d_name) < 0)
                        die(b->a, "out of memory");
                if (fstatat(dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if ((S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) &&
                    policy_path_is_secret(b->a->o->policy, child))
                        fingerprint_file(b, dir, de->d_name, child, S_ISLNK(st.st_mode));
                else if (S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int sub = openat(
                                dir, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

                        if (sub >= 0)
                                fingerprint_tree(b, sub, child, depth + 1, budget);
                }
        }
        closedir(d);
}

static void fingerprint_secrets(Builder *b)
{
        unsigned budget = SECRET_WALK_MAX;

        b->fp = plan_fp_new();
        if (!b->fp)
                die(b->a, "out of memory");
        STRV_FOREACH (g, b->a->secret_globs) {
                _cleanup_free_ char *prefix = strdup(*g);
                _cleanup_close_ int fd = -EBADF;
                struct stat st;
                char *slash;

                if (!prefix)
                        die(b->a, "out of memory");
                if ((*g)[0] != '/')
                        continue;
                /* the literal directory in front of the first glob character */
                if (has_glob(prefix)) {
                        prefix[strcspn(prefix, "*?[{\\")] = '\0';
                        slash = strrchr(prefix, '/');
                        slash[slash == prefix ? 1 : 0] = '\0';
                }
                if (lstat(prefix, &st) < 0)
                        continue;
                if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
                        _cleanup_free_ char *dir = strdup(prefix);
                        char *base = strrchr(prefix, '/') + 1;

                        if (!dir)
                                die(b->a, "out of memory");
                        dir[base - prefix - (base - prefix > 1 ? 1 : 0)] = '\0';
                        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        if (fd >= 0 && policy_path_is_secret(b->a->o->policy, prefix))
                                fingerprint_file(b, fd, base, prefix, S_ISLNK(st.st_mode));
                } else if (S_ISDIR(st.st_mode)) {
                        fd = open(prefix, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (fd >= 0)
                                fingerprint_tree(b, fd, prefix, 0, &budget);
                }
        }
        if (budget == 0)
                note(b,
                     "more than %d files lie under the secrets' directories: secret content "
                     "was recognised for the first ones only",
                     SECRET_WALK_MAX);
}

/* ---- building the tree ---- */

static char *staged(Builder *b, const char *path)
{
        char *s;

        if (asprintf(&s, "%s%s", STAGE_ROOT, streq(path, "/") ? "" : path) < 0)
                die(b->a, "out of memory");
        return s;
}

/* An overlay of m at its staged path; returns 0 or -errno (m stays as it was). */
static int mount_overlay(Builder *b, Mount *m, size_t i)
{
        _cleanup_free_ char *upper = NULL, *work = NULL, *opts = NULL, *target = staged(b, m->path);
        unsigned long flags = (m->ro ? MS_RDONLY : 0) | (m->nosuid ? MS_NOSUID : 0) |
                              (m->noexec ? MS_NOEXEC : 0) | MS_NODEV;
        struct stat st;
        int ufd;

        if (asprintf(&upper, "u%zu", i) < 0 || asprintf(&work, "w%zu", i) < 0)
                die(b->a, "out of memory");
        if (mkdirat(b->tmp_fd, upper, 0700) < 0 || mkdirat(b->tmp_fd, work, 0700) < 0)
                die(b->a, "cannot create the snapshot's upper layer for %s: %m", m->path);
        ufd = openat(b->tmp_fd, upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (ufd < 0)
                die(b->a, "cannot open the snapshot's upper layer: %m");
        /* The overlay's root shows the upper root's mode and owner: mirror the lower's
         * (/tmp stays 1777). */
        if (fstat(m->lower_fd, &st) < 0 || fchown(ufd, st.st_uid, st.st_gid) < 0 ||
            fchmod(ufd, st.st_mode & 07777) < 0)
                die(b->a, "cannot prepare the upper layer of %s: %m", m->path);
        free(upper);
        upper = NULL;
        /*
         * lowerdir: the helper's non-recursive read-only bind of the mount
         * (the overlay refuses a lower with locked submounts). userxattr:
         * whiteouts and opaque marks in user.overlay.* (the only kind a user
         * namespace may write).
         */
        if (asprintf(&opts, "lowerdir=%s/l%zu,upperdir=%s/u%zu,workdir=%s/w%zu,userxattr", STAGE, i,
                     STAGE_UP, i, STAGE_UP, i) < 0)
                die(b->a, "out of memory");
        if (mount("overlay", target, "overlay", flags, opts) < 0) {
                int k = negative_errno();

                close(ufd);
                return k;
        }
        m->upper_fd = ufd;
        return 0;
}

/* A read-only bind of the original mount (the helper's), locked for the command. */
static int mount_ro_bind(Builder *b, const Mount *m, size_t i)
{
        _cleanup_free_ char *target = staged(b, m->path), *src = NULL;
        struct mount_attr attr = {
                .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        };

        if (asprintf(&src, "%s/l%zu", STAGE, i) < 0)
                die(b->a, "out of memory");
        if (mount(src, target, NULL, MS_BIND, NULL) < 0)
                return negative_errno();
        if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof attr) < 0)
                die(b->a, "cannot make %s read-only in the snapshot: %m", m->path);
        return 0;
}

static void mount_dev(Builder *b)
{
        /* no tty: the command must never reach a terminal (see plan_snapshot_main) */
        static const char *const nodes[] = { "null", "zero", "full", "random", "urandom" };
        static const char *const links[][2] = {
                { "ptmx", "pts/ptmx" },          { "fd", "/proc/self/fd" },
                { "stdin", "/proc/self/fd/0" },  { "stdout", "/proc/self/fd/1" },
                { "stderr", "/proc/self/fd/2" }, { "core", "/proc/kcore" },
        };
        char path[128], src[64];

        if (mount("tmpfs", STAGE_ROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
                  "mode=0755,size=1m,nr_inodes=64") < 0)
                die(b->a, "cannot mount the snapshot's /dev: %m");
        for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
                int fd;

                snprintf(path, sizeof path, STAGE_ROOT "/dev/%s", nodes[i]);
                snprintf(src, sizeof src, "/dev/%s", nodes[i]);
                fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
                if (fd < 0)
                        die(b->a, "cannot create %s: %m", path);
                close(fd);
                /* a bind of the host's device node: the same harmless device, nothing else */
                if (mount(src, path, NULL, MS_BIND, NULL) < 0)
                        die(b->a, "cannot bind %s into the snapshot: %m", src);
        }
        for (size_t i = 0; i < ELEMENTSOF(links); i++) {
                snprintf(path, sizeof path, STAGE_ROOT "/dev/%s", links[i][0]);
                if (symlink(links[i][1], path) < 0)
                        die(b->a, "cannot create %s: %m", path);
        }
        if (mkdir(STAGE_ROOT "/dev/pts", 0755) < 0 || mkdir(STAGE_ROOT "/dev/shm", 01777) < 0 ||
            mkdir(STAGE_ROOT "/dev/mqueue", 01777) < 0)
                die(b->a, "cannot create the snapshot's /dev directories: %m");
        /* a new devpts instance: the snapshot's own terminals, none of the host's */
        if (mount("devpts", STAGE_ROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=0620") < 0)
                die(b->a, "cannot mount devpts in the snapshot: %m");
        if (mount("tmpfs", STAGE_ROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
                  "mode=1777,size=64m") < 0)
                die(b->a, "cannot mount the snapshot's /dev/shm: %m");
        /* the ipc namespace's own message queues */
        if (mount("mqueue", STAGE_ROOT "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  NULL) < 0)
                (void)rmdir(STAGE_ROOT "/dev/mqueue");
}

/* The inventory's IP literals in the snapshot's /etc/hosts: names like xenon resolve. */
static void write_hosts(Builder *b)
{
        _cleanup_free_ char *old = NULL, *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0;
        struct stat st;

        if (isempty(b->a->hosts_extra))
                return;
        fd = open("/etc/hosts", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return; /* no regular /etc/hosts: the names stay unresolved */
        if (read_full_fd(fd, 1024 * 1024, &old, &len) < 0)
                return;
        fd = safe_close(fd);
        if (asprintf(&text, "%s%s# airlock plan: the inventory\n%s", old,
                     len && old[len - 1] != '\n' ? "\n" : "", b->a->hosts_extra) < 0)
                die(b->a, "out of memory");
        fd = open("/etc/hosts", O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || write_all(fd, text, strlen(text)) < 0)
                die(b->a, "cannot write the snapshot's /etc/hosts: %m");
        b->hosts_baseline_len = strlen(text);
        b->hosts_baseline = TAKE_PTR(text);
}

static void loopback_up(Builder *b)
{
        _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};

        strcpy(ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                die(b->a, "cannot find the snapshot's loopback: %m");
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                die(b->a, "cannot bring the snapshot's loopback up: %m");
}

/*
 * The helper's part, in its own mount namespace of the initial user
 * namespace (so without locked mounts): a tmpfs on STAGE with, for each
 * mount the snapshot shows, a non-recursive read-only bind STAGE/lN. Those
 * are the overlays' lowers and what the file effects are compared with:
 * exactly the one filesystem, nothing mounted below it, and nothing in
 * this namespace can write to the host through them.
 */
static void prepare_lowers(Builder *b)
{
        if (unshare(CLONE_NEWNS) < 0)
                die(b->a, "cannot create the snapshot's mount namespace: %m");
        /* Nothing done here may propagate to the host's mount tree. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                die(b->a, "cannot make the snapshot's mount tree private: %m");
        read_mounts(b);

        /* the mounts as they are now, before the stage covers anything */
        for (size_t i = 0; i < b->n_mounts; i++) {
                Mount *m = &b->mounts[i];

                if (m->kind == M_SKIP)
                        continue;
                m->lower_fd = open(m->path, O_PATH | O_CLOEXEC | O_NOFOLLOW);
                if (m->lower_fd < 0) {
                        if (i == 0)
                                die(b->a, "cannot open the root filesystem: %m");
                        note(b, "%s (%s) is not in the snapshot: %s", m->path, m->type,
                             strerror(errno));
                        m->kind = M_SKIP;
                }
        }
        if (mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=1m") <
            0)
                die(b->a, "cannot mount the snapshot's stage on %s: %m", STAGE);
        if (mkdir(STAGE_ROOT, 0755) < 0 || mkdir(STAGE_UP, 0700) < 0)
                die(b->a, "cannot prepare the snapshot's stage: %m");
        for (size_t i = 0; i < b->n_mounts; i++) {
                Mount *m = &b->mounts[i];
                char src[64], dst[64];
                struct stat st;

                if (m->kind == M_SKIP)
                        continue;
                snprintf(src, sizeof src, "/proc/self/fd/%d", m->lower_fd);
                snprintf(dst, sizeof dst, STAGE "/l%zu", i);
                if (fstat(m->lower_fd, &st) < 0) {
                        /* a user's FUSE mount without allow_other refuses even root */
                        if (i == 0)
                                die(b->a, "cannot stat %s: %m", m->path);
                        note(b, "%s (%s) is not in the snapshot: %s", m->path, m->type,
                             strerror(errno));
                        m->kind = M_SKIP;
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        /* a mount on a file: shown read-only */
                        int fd = open(dst, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);

                        if (fd < 0)
                                die(b->a, "cannot create %s: %m", dst);
                        close(fd);
                        m->kind = M_RO_BIND;
                } else if (mkdir(dst, 0700) < 0)
                        die(b->a, "cannot create %s: %m", dst);
                /* safe: a bind in this private namespace, made read-only right away */
                if (mount(src, dst, NULL, MS_BIND, NULL) < 0 ||
                    mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
                        if (i == 0)
                                die(b->a, "cannot bind the root filesystem: %m");
                        note(b, "%s (%s) is not in the snapshot: %s", m->path, m->type,
                             strerror(errno));
                        m->kind = M_SKIP;
                }
                m->lower_fd = safe_close(m->lower_fd);
        }
}

static void build(Builder *b)
{
        char opts[128];
        struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                             MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC };

        fingerprint_secrets(b);
        for (size_t i = 0; i < b->n_mounts; i++) {
                Mount *m = &b->mounts[i];
                char l[64];

                if (m->kind != M_OVERLAY)
                        continue;
                snprintf(l, sizeof l, STAGE "/l%zu", i);
                m->lower_fd = open(l, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (m->lower_fd < 0)
                        die(b->a, "cannot open %s: %m", l);
        }
        /* the upper layers: the builder's own tmpfs, sized by the plan */
        snprintf(opts, sizeof opts, "mode=0700,size=%llu", (unsigned long long)b->a->o->tmpfs_max);
        if (mount("tmpfs", STAGE_UP, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                die(b->a, "cannot mount the snapshot's tmpfs on %s: %m", STAGE_UP);
        b->tmp_fd = open(STAGE_UP, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (b->tmp_fd < 0)
                die(b->a, "cannot open the snapshot's tmpfs: %m");

        for (size_t i = 0; i < b->n_mounts; i++) {
                Mount *m = &b->mounts[i];
                int r = 0;

                if (m->kind == M_OVERLAY) {
                        r = mount_overlay(b, m, i);
                        if (r < 0 && i == 0)
                                die(b->a,
                                    "cannot put an overlay over the root filesystem (%s): "
                                    "%s — the kernel needs overlayfs with userxattr",
                                    m->type, strerror(-r));
                        if (r < 0) {
                                m->kind = M_RO_BIND;
                                note(b,
                                     "%s (%s) is read-only in the plan (no overlay: %s); "
                                     "writes there fail in the plan but not in the real run",
                                     m->path, m->type, strerror(-r));
                        }
                }
                if (m->kind == M_RO_BIND) {
                        r = mount_ro_bind(b, m, i);
                        if (r < 0) {
                                note(b, "%s (%s) is not in the snapshot: %s", m->path, m->type,
                                     strerror(-r));
                                m->kind = M_SKIP;
                        }
                }
        }

        /*
         * The builder's own writable proc, detached (in no tree the command
         * can reach), to write the command's id maps after /proc went read-only.
         */
        {
                int fs = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);

                if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
                    (b->proc_fd = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC,
                                               MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                       MOUNT_ATTR_NOEXEC)) < 0)
                        die(b->a, "cannot mount a proc for the snapshot: %m");
                close(fs);
        }
        /* /proc: the new pid namespace's own, read-only (no sysctl, no sysrq). */
        if (mount("proc", STAGE_ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                  NULL) < 0)
                die(b->a, "cannot mount the snapshot's /proc: %m");
        /* /sys: read-only, with the cgroup trees beneath it. */
        if (mount("/sys", STAGE_ROOT "/sys", NULL, MS_BIND | MS_REC, NULL) < 0 ||
            syscall(SYS_mount_setattr, AT_FDCWD, STAGE_ROOT "/sys", AT_RECURSIVE, &ro, sizeof ro) <
                    0)
                die(b->a, "cannot bind a read-only /sys into the snapshot: %m");
        mount_dev(b);

        /*
         * Into the snapshot for good: pivot_root + detaching the old root (not
         * chroot), so no path leads back to the host's tree. The builder keeps
         * fds of the lowers (the host's real filesystems) to walk them later;
         * it is not dumpable and the command runs in a nested user namespace,
         * so the command can neither ptrace it nor reach its fds.
         */
        if (chdir(STAGE_ROOT) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
            umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
                die(b->a, "cannot enter the snapshot (pivot_root): %m");
        loopback_up(b);
        write_hosts(b);
        /* plan_run()'s stdin, stdout and stderr (a terminal, a socket) stay outside */
        {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);

                if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
                        die(b->a, "cannot open the snapshot's /dev/null: %m");
                if (null > 2)
                        close(null);
        }
}

/* ---- running the command ---- */

static int cmp_int(const void *x, const void *y)
{
        return *(const int *)x - *(const int *)y;
}

/* Every fd of plan_run()'s process (the broker's sockets and database, ...) goes. */
static void close_all_but(int *keep, size_t n)
{
        unsigned from = 3;

        qsort(keep, n, sizeof *keep, cmp_int);
        for (size_t i = 0; i < n; i++) {
                if (keep[i] < (int)from)
                        continue;
                if ((unsigned)keep[i] > from)
                        syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
                from = (unsigned)keep[i] + 1;
        }
        syscall(SYS_close_range, from, ~0U, 0);
}

static void write_map(const PlanSnapshotArgs *a, int proc_fd, pid_t pid, const char *file)
{
        char path[64];
        _cleanup_close_ int fd = -EBADF;
        static const char map[] = "0 0 4294967295\n";

        snprintf(path, sizeof path, "%s%d/%s", proc_fd >= 0 ? "" : "/proc/", (int)pid, file);
        fd = openat(proc_fd >= 0 ? proc_fd : AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, map, sizeof map - 1) != (ssize_t)(sizeof map - 1))
                die(a, "cannot write %s: %m", path);
}

/* The command's process: nested namespaces, its user, its fds, the filter, exec. */
static _noreturn_ void command_main(const PlanSnapshotArgs *a, int sync_r, int sync_w)
{
        const PlanOptions *o = a->o;
        char c;
        int fd;

        /*
         * A user and mount namespace of its own, nested in the builder's:
         * every mount the builder made is locked in it (read-only stays so,
         * nothing can be unmounted), while file access stays that of the
         * same uid (the builder maps every id to itself again).
         */
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
                goto fail;
        if (write(sync_w, "U", 1) != 1 || read(sync_r, &c, 1) != 1)
                _exit(127);
        close(sync_w);
        close(sync_r);

        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || dup2(fd, 0) < 0 || dup2(a->out_fd, 1) < 0 || dup2(a->out_fd, 2) < 0)
                goto fail;
        if (setgroups(a->n_groups, a->groups) < 0 || setresgid(o->gid, o->gid, o->gid) < 0 ||
            setresuid(o->uid, o->uid, o->uid) < 0)
                goto fail;
        if (chdir(o->cwd) < 0) {
                dprintf(2, "airlock plan: cannot enter %s: %m\n", o->cwd);
                _exit(126);
        }
        if (plan_sup_child(PLAN_SUP_REFUSE, a->sup_fd) < 0)
                goto fail;
        close(a->sup_fd);
        environ = (char **)(o->envp ? o->envp : (char *const[]){ NULL });
        execvpe(a->argv[0], a->argv, environ);
        dprintf(2, "airlock plan: cannot execute %s: %m\n", a->argv[0]);
        _exit(errno == ENOENT ? 127 : 126);
fail:
        dprintf(a->out_fd, "airlock plan: cannot start the command in the snapshot: %m\n");
        _exit(127);
}

/* Waits for the command, within the timeout; as init, reaps every orphan. */
static int wait_command(Builder *b, pid_t cmd, bool *timed_out)
{
        uint64_t deadline = now_monotonic_usec() + b->a->o->timeout_usec;
        int pidfd = (int)syscall(SYS_pidfd_open, cmd, 0), status = 0;
        bool done = false;

        while (!done) {
                struct pollfd p = { .fd = pidfd, .events = POLLIN };
                uint64_t now = now_monotonic_usec();
                int st;
                pid_t w;

                if (now >= deadline) {
                        *timed_out = true;
                        break;
                }
                uint64_t wait_ms = (deadline - now) / 1000 + 1;

                if (pidfd >= 0)
                        (void)poll(&p, 1, (int)(wait_ms < 200 ? wait_ms : 200));
                else
                        usleep(10000);
                while ((w = waitpid(-1, &st, WNOHANG)) > 0)
                        if (w == cmd) {
                                status = st;
                                done = true;
                        }
        }
        safe_close(pidfd);
        /* what the command left running: nothing outlives the plan */
        (void)kill(-1, SIGKILL);
        for (;;) {
                int st;
                pid_t w = waitpid(-1, &st, 0);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        break;
                if (w == cmd)
                        status = st;
        }
        return status;
}

static void report(Builder *b, int status, bool timed_out)
{
        _cleanup_(plan_result_freep) PlanResult *r = calloc(1, sizeof *r);
        _cleanup_(plan_files_freep) PlanFiles *pf = NULL;
        json_t *j;
        char *text;
        int k;

        if (!r)
                die(b->a, "out of memory");
        r->complete = true;
        r->argv = calloc(1, sizeof(char *));
        r->envp = calloc(1, sizeof(char *));
        r->fidelity_reasons = calloc(1, sizeof(char *));
        pf = plan_files_new(b->a->o->policy, b->fp, b->a->o->diff_max, b->a->o->diff_max * 64);
        if (!r->argv || !r->envp || !r->fidelity_reasons || !pf)
                die(b->a, "out of memory");
        r->exit_status = status;
        r->timed_out = timed_out;
        if (timed_out)
                note(b, "the command was stopped after the timeout: effects after that point are "
                        "not in the plan");
        if (b->hosts_baseline &&
            plan_files_set_baseline(pf, "/etc/hosts", b->hosts_baseline, b->hosts_baseline_len) < 0)
                die(b->a, "out of memory");
        for (size_t i = 0; i < b->n_mounts; i++) {
                Mount *m = &b->mounts[i];

                if (m->kind != M_OVERLAY || m->upper_fd < 0)
                        continue;
                k = plan_files_walk(pf, m->upper_fd, m->lower_fd, m->path);
                if (k < 0)
                        note(b, "the file effects under %s are incomplete: %s", m->path,
                             k == -E2BIG   ? "too many changes"
                             : k == -ELOOP ? "directories nested too deep"
                                           : strerror(-k));
        }
        k = plan_files_finish(pf, r);
        if (k < 0)
                die(b->a, "cannot collect the file effects: %s", strerror(-k));
        STRV_FOREACH (n, b->notes)
                if (plan_result_partial(r, *n) < 0)
                        die(b->a, "out of memory");
        j = plan_result_to_json(r);
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (!text)
                die(b->a, "out of memory");
        if (write_all(b->a->effects_fd, text, strlen(text)) < 0)
                _exit(1);
        free(text);
        json_decref(j);
}

static _noreturn_ void builder_main(Builder *bp, int maps_r)
{
        Builder b = *bp;
        const PlanSnapshotArgs *a = b.a;
        int sync1[2], sync2[2], status;
        bool timed_out = false;
        pid_t cmd;
        char c;

        /* the helper has written our id maps: we are uid 0 of the new user namespace */
        if (read(maps_r, &c, 1) != 1)
                _exit(1);
        close(maps_r);
        /* not dumpable: nothing in the snapshot may ptrace us or open /proc/1/fd */
        if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                die(a, "prctl: %m");
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0 || setgroups(0, NULL) < 0)
                die(a, "cannot become root of the snapshot's user namespace: %m");
        build(&b);

        if (write(a->ctl_fd, "R", 1) != 1 || read(a->go_fd, &c, 1) != 1)
                _exit(1);
        close(a->go_fd);

        if (pipe2(sync1, O_CLOEXEC) < 0 || pipe2(sync2, O_CLOEXEC) < 0)
                die(a, "pipe: %m");
        cmd = fork();
        if (cmd < 0)
                die(a, "cannot start the command: %m");
        if (cmd == 0) {
                close(sync1[0]);
                close(sync2[1]);
                command_main(a, sync2[0], sync1[1]);
        }
        close(sync1[1]);
        close(sync2[0]);
        close(a->out_fd);
        close(a->sup_fd);
        if (read(sync1[0], &c, 1) == 1) {
                write_map(a, b.proc_fd, cmd, "uid_map");
                write_map(a, b.proc_fd, cmd, "gid_map");
                if (write(sync2[1], "M", 1) != 1)
                        die(a, "cannot start the command: %m");
        }
        close(sync1[0]);
        close(sync2[1]);

        status = wait_command(&b, cmd, &timed_out);
        report(&b, status, timed_out);
        _exit(0);
}

_noreturn_ void plan_snapshot_main(const PlanSnapshotArgs *a)
{
        int keep[] = { a->ctl_fd, a->go_fd, a->out_fd, a->effects_fd, a->sup_fd };
        Builder b = { .a = a, .tmp_fd = -EBADF, .proc_fd = -EBADF };
        int maps[2], status;
        int32_t pid32;
        pid_t builder;

        /* If plan_run()'s process dies, so does the plan. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(1);
        /*
         * A session of our own, without a controlling terminal: the planned
         * command must not reach the terminal airlock plan was started from
         * (TIOCSTI into the admin's shell, reading what they type, stty).
         */
        if (setsid() < 0)
                _exit(1);
        close_all_but(keep, ELEMENTSOF(keep));
        die_pid_first = true;
        prepare_lowers(&b);
        if (pipe2(maps, O_CLOEXEC) < 0)
                die(a, "pipe: %m");
        builder = (pid_t)syscall(SYS_clone,
                                 CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID |
                                         CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
                                 NULL, NULL, NULL, NULL);
        if (builder < 0)
                die(a, "cannot create the snapshot's namespaces: %m — user namespaces may be "
                       "disabled (sysctl user.max_user_namespaces)");
        if (builder == 0) {
                close(maps[1]);
                die_pid_first = false;
                builder_main(&b, maps[0]);
        }
        close(maps[0]);
        pid32 = builder;
        die_pid_first = false;
        if (write_all(a->ctl_fd, &pid32, sizeof pid32) < 0) {
                kill(builder, SIGKILL);
                _exit(1);
        }
        /* Every id maps to itself: file access as the real run, no capability on the host. */
        write_map(a, -EBADF, builder, "uid_map");
        write_map(a, -EBADF, builder, "gid_map");
        if (write(maps[1], "M", 1) != 1) {
                kill(builder, SIGKILL);
                _exit(1);
        }
        close(maps[1]);
        close(a->ctl_fd);
        close(a->go_fd);
        close(a->out_fd);
        close(a->effects_fd);
        close(a->sup_fd);
        while (waitpid(builder, &status, 0) < 0)
                if (errno != EINTR)
                        _exit(1);
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}
