/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The sandbox's mount namespace: a recursive read-only clone of the host
 * tree, with fresh /proc, a minimal /dev, empty tmpfs over the runtime and
 * temporary directories, the workspace and --rw paths writable, every
 * secret masked by an empty read-only file or directory, and the protected
 * workspace files read-only.
 *
 * The parent resolves and checks every path (canonical, no symlink on the
 * way) before anything starts; the child then opens each path again with
 * RESOLVE_NO_SYMLINKS and acts on the fd, so a symlink swapped in between
 * makes the launch fail instead of redirecting a mount.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/xattr.h>
#include <glob.h>
#include <limits.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox-internal.h"

#define MAX_MASKS      4096
#define MAX_WALK_NODES 100000

dev_t sbx_mask_dev;
ino_t sbx_mask_file_ino, sbx_mask_dir_ino;

/* Directories replaced by an empty tmpfs inside (their host content is invisible). */
static const char *const tmpfs_dirs[] = { "/run", "/var/run", "/tmp", "/var/tmp", "/dev", "/proc" };

static int openat2_nofollow(int dirfd, const char *path, int flags, uint64_t resolve)
{
        struct open_how how = {
                .flags = (uint64_t)flags | O_CLOEXEC,
                .resolve = resolve | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);

        return fd < 0 ? -errno : fd;
}

bool sbx_path_startswith(const char *path, const char *prefix)
{
        size_t n = strlen(prefix);

        if (streq(prefix, "/"))
                return true;
        return strneq(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

/* Lexically normalizes an absolute path in place: collapses "//", "/./" and "x/..". */
static void path_normalize_lexical(char *p)
{
        char *out = p, *in = p;

        while (*in) {
                while (*in == '/')
                        in++;
                if (!*in)
                        break;
                char *seg = in;
                while (*in && *in != '/')
                        in++;
                size_t len = (size_t)(in - seg);
                if (len == 1 && seg[0] == '.')
                        continue;
                if (len == 2 && seg[0] == '.' && seg[1] == '.') {
                        while (out > p && *(out - 1) != '/')
                                out--;
                        if (out > p)
                                out--;
                        continue;
                }
                *out++ = '/';
                memmove(out, seg, len);
                out += len;
        }
        if (out == p)
                *out++ = '/';
        *out = '\0';
}

/*
 * Makes path absolute and canonical; refuses one that goes through a
 * symlink (the human named one place, the kernel would mount another).
 */
static int canonical_path(const char *path, const char *what, char **ret, SbxError *err)
{
        _cleanup_free_ char *abs = NULL, *real = NULL;

        if (isempty(path))
                return sbx_fail(err, 64, -EINVAL, "%s: empty path — give a directory", what);
        if (path[0] == '/')
                abs = strdup(path);
        else {
                char cwd[PATH_MAX];

                if (!getcwd(cwd, sizeof cwd))
                        return sbx_fail(err, 71, -errno,
                                        "cannot read the current directory: %m — cd somewhere "
                                        "that exists");
                if (asprintf(&abs, "%s/%s", cwd, path) < 0)
                        abs = NULL;
        }
        if (!abs)
                return -ENOMEM;
        path_normalize_lexical(abs);
        real = realpath(abs, NULL);
        if (!real)
                return sbx_fail(err, errno == ENOENT ? 64 : 71, -errno,
                                "%s %s: %m — create it or give an existing path", what, abs);
        if (!streq(real, abs))
                return sbx_fail(err, 64, -ELOOP,
                                "%s %s resolves through a symlink to %s — give %s itself", what,
                                abs, real, real);
        *ret = TAKE_PTR(real);
        return 0;
}

/* A writable path must not expose the host: not /, not a system directory, not a home. */
static int check_writable_path(const SbxPlan *p, const char *path, const char *what, SbxError *err)
{
        static const char *const refused[] = {
                "/",    "/etc",     "/usr", "/bin", "/sbin", "/lib",  "/lib32", "/lib64", "/boot",
                "/var", "/var/lib", "/opt", "/srv", "/home", "/root", "/mnt",   "/media",
        };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                if (streq(path, refused[i]))
                        return sbx_fail(err, 64, -EPERM,
                                        "%s %s would make a system directory writable — give a "
                                        "project directory",
                                        what, path);
        if (sbx_path_startswith(path, "/proc") || sbx_path_startswith(path, "/sys") ||
            sbx_path_startswith(path, "/dev"))
                return sbx_fail(err, 64, -EPERM,
                                "%s %s is a kernel interface and cannot be writable — give a "
                                "project directory",
                                what, path);
        STRV_FOREACH (h, p->homes)
                if (streq(*h, path))
                        return sbx_fail(err, 64, -EPERM,
                                        "%s %s is a home directory: the agent could plant "
                                        ".ssh/authorized_keys or shell startup files — give a "
                                        "project directory below it",
                                        what, path);
        return 0;
}

static int add_bind(SbxPlan *p, const char *path, bool writable, const char *what, SbxError *err)
{
        _cleanup_free_ char *canon = NULL;
        struct stat st;
        SbxBind *t;
        int r;

        r = canonical_path(path, what, &canon, err);
        if (r < 0)
                return r;
        if (writable) {
                r = check_writable_path(p, canon, what, err);
                if (r < 0)
                        return r;
        }
        if (stat(canon, &st) < 0)
                return sbx_fail(err, 71, -errno, "%s %s: %m", what, canon);
        for (size_t i = 0; i < p->n_binds; i++)
                if (streq(p->binds[i].path, canon)) {
                        p->binds[i].writable = p->binds[i].writable || writable;
                        return 0;
                }
        t = realloc(p->binds, sizeof(SbxBind) * (p->n_binds + 1));
        if (!t)
                return -ENOMEM;
        p->binds = t;
        p->binds[p->n_binds++] = (SbxBind){
                .path = TAKE_PTR(canon),
                .writable = writable,
                .is_dir = S_ISDIR(st.st_mode),
                .mount_fd = -EBADF,
        };
        return 0;
}

/*
 * Root mode: an idmapped mount needs CAP_SYS_ADMIN in the initial user
 * namespace, so the parent (root) prepares it as a detached mount and the
 * child attaches it. The id mapping lives in a throwaway user namespace
 * whose only job is to carry "owner -> agent": files of the path's owner
 * appear as the agent's, files the agent creates land on disk as the
 * owner's. Safe because the mount is also nosuid+nodev and seccomp refuses
 * setuid/setgid mode bits (see seccomp.c), so the agent cannot plant a
 * setuid-owner binary for the human.
 */
static int idmap_userns(SbxPlan *p, uid_t from_uid, gid_t from_gid, uid_t to_uid, gid_t to_gid)
{
        char path[64], map[64];
        int pfd[2], fd, saved;
        pid_t pid;

        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid < 0) {
                saved = -errno;
                close(pfd[0]);
                close(pfd[1]);
                return saved;
        }
        if (pid == 0) {
                char c;

                close(pfd[1]);
                (void)!read(pfd[0], &c, 1);
                _exit(0);
        }
        close(pfd[0]);
        fd = -EBADF;
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)from_uid, (unsigned)to_uid);
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
        saved = 0;
        {
                _cleanup_close_ int m = open(path, O_WRONLY | O_CLOEXEC);
                if (m < 0 || write_all(m, map, strlen(map)) < 0)
                        saved = -EIO;
        }
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)from_gid, (unsigned)to_gid);
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
        if (saved == 0) {
                _cleanup_close_ int m = open(path, O_WRONLY | O_CLOEXEC);
                if (m < 0 || write_all(m, map, strlen(map)) < 0)
                        saved = -EIO;
        }
        if (saved == 0) {
                snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        saved = -errno;
        }
        close(pfd[1]); /* the helper exits now; it is reaped at the end (no need to wait) */
        p->idmap_helper = pid;
        return saved < 0 ? saved : fd;
}

/*
 * Reaps the helper once the launch no longer waits on it (after the command
 * is sent, before a warm sandbox waits to be taken, for a second owner, at
 * the end), so that a session of hours shows no "[airlock] <defunct>" in ps.
 * Both write ends of its pipe are closed when idmap_userns() returns: the
 * wait is only for an exit already under way (a helper built at idle
 * priority may not have run yet).
 */
void sbx_reap_idmap_helper(SbxPlan *p)
{
        if (p->idmap_helper <= 0)
                return;
        while (waitpid(p->idmap_helper, NULL, 0) < 0 && errno == EINTR)
                ;
        p->idmap_helper = 0;
}

static int prepare_idmapped(SbxPlan *p, SbxBind *b, SbxError *err)
{
        _cleanup_close_ int fd = -EBADF, mnt = -EBADF, userns = -EBADF;
        struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                                   .propagation = MS_PRIVATE };
        struct stat st;

        fd = openat2_nofollow(AT_FDCWD, b->path, O_PATH, 0);
        if (fd < 0)
                return sbx_fail(err, 71, fd, "cannot open %s without following symlinks: %s",
                                b->path, strerror(-fd));
        if (fstat(fd, &st) < 0)
                return sbx_fail(err, 71, -errno, "cannot stat %s: %m", b->path);
        if (!b->writable)
                attr.attr_set |= MOUNT_ATTR_RDONLY;
        if (b->writable && (st.st_uid != p->uid || st.st_gid != p->gid)) {
                sbx_reap_idmap_helper(p); /* one helper per launch; a second owner waits */
                userns = idmap_userns(p, st.st_uid, st.st_gid, p->uid, p->gid);
                if (userns < 0)
                        return sbx_fail(err, 71, userns,
                                        "cannot create the user namespace for the idmapped mount "
                                        "of %s: %s",
                                        b->path, strerror(-userns));
                attr.attr_set |= MOUNT_ATTR_IDMAP;
                attr.userns_fd = (uint64_t)userns;
                b->idmapped = true;
        }
        mnt = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (mnt < 0)
                return sbx_fail(err, 71, -errno, "cannot clone the mount of %s: %m", b->path);
        if (mount_setattr(mnt, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
                return sbx_fail(err, 71, -errno,
                                "cannot make %s writable for the agent (idmapped mount): %m — "
                                "the filesystem must support idmapped mounts (ext4, xfs, btrfs, "
                                "tmpfs do), or chown it to the agent user",
                                b->path);
        b->mount_fd = TAKE_FD(mnt);
        return 0;
}

int sbx_prepare_binds(SbxPlan *p, SbxError *err)
{
        const SbxConfig *c = p->cfg;
        int r;

        r = add_bind(p, c->workspace, true, "workspace", err);
        if (r < 0)
                return r;
        if (!p->binds[0].is_dir)
                return sbx_fail(err, 64, -ENOTDIR,
                                "workspace %s is not a directory — give a directory",
                                p->binds[0].path);
        STRV_FOREACH (s, c->rw) {
                r = add_bind(p, *s, true, "--rw path", err);
                if (r < 0)
                        return r;
        }
        STRV_FOREACH (s, c->ro) {
                r = add_bind(p, *s, false, "--ro path", err);
                if (r < 0)
                        return r;
        }
        if (p->privileged)
                for (size_t i = 0; i < p->n_binds; i++) {
                        r = prepare_idmapped(p, &p->binds[i], err);
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* ---- secrets --------------------------------------------------------------------------- */

bool sbx_hidden_by_tmpfs(const SbxPlan *p, const char *path)
{
        for (size_t i = 0; i < p->n_binds; i++)
                if (sbx_path_startswith(path, p->binds[i].path))
                        return false;
        for (size_t i = 0; i < ELEMENTSOF(tmpfs_dirs); i++)
                if (sbx_path_startswith(path, tmpfs_dirs[i]))
                        return true;
        return false;
}

static int add_mask(SbxPlan *p, const char *glob_pattern, const char *match, SbxError *err)
{
        _cleanup_free_ char *real = NULL;
        struct stat st;
        SbxMask *t;

        real = realpath(match, NULL);
        if (!real) {
                if (errno == ENOENT) /* a dangling symlink: nothing to read */
                        return 0;
                return sbx_fail(err, 71, -errno,
                                "secret %s (from %s) cannot be resolved: %m — cannot prove it is "
                                "masked, refusing to start",
                                match, glob_pattern);
        }
        if (sbx_hidden_by_tmpfs(p, real))
                return 0;
        if (stat(real, &st) < 0)
                return sbx_fail(err, 71, -errno, "secret %s cannot be examined: %m", real);
        /*
         * A second hard link would show the same bytes under a name we do
         * not mask: refuse rather than pretend the secret is hidden.
         */
        if (!S_ISDIR(st.st_mode) && st.st_nlink > 1)
                return sbx_fail(err, 71, -EMLINK,
                                "secret %s has %ju hard links: the other names would still show "
                                "its content — remove the extra links (find / -xdev -samefile "
                                "%s) or list them as secrets too",
                                real, (uintmax_t)st.st_nlink, real);
        for (size_t i = 0; i < p->n_masks; i++)
                if (streq(p->masks[i].path, real))
                        return 0;
        if (p->n_masks >= MAX_MASKS)
                return sbx_fail(err, 71, -E2BIG,
                                "more than %d secret paths match the policy — narrow the secret "
                                "globs",
                                MAX_MASKS);
        t = realloc(p->masks, sizeof(SbxMask) * (p->n_masks + 1));
        if (!t)
                return -ENOMEM;
        p->masks = t;
        p->masks[p->n_masks++] = (SbxMask){ .path = TAKE_PTR(real), .is_dir = S_ISDIR(st.st_mode) };
        return 0;
}

/* State for walking a tree for a pattern with "**" in the middle. */
static struct {
        SbxPlan *plan;
        SbxError *err;
        const char *glob;
        char *flat; /* the glob with "**" turned into "*" matched without FNM_PATHNAME */
        size_t nodes;
        int r;
} walk;

static int walk_cb(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
        if (++walk.nodes > MAX_WALK_NODES) {
                walk.r = sbx_fail(walk.err, 71, -E2BIG,
                                  "secret glob %s covers more than %d files — narrow it", walk.glob,
                                  MAX_WALK_NODES);
                return 1;
        }
        /*
         * Without FNM_PATHNAME every '*' may cross '/': this matches a
         * superset of the glob, so at worst we mask more, never less.
         */
        if (fnmatch(walk.flat, fpath, 0) == 0) {
                walk.r = add_mask(walk.plan, walk.glob, fpath, walk.err);
                if (walk.r < 0)
                        return 1;
                if (type == FTW_D)
                        return FTW_SKIP_SUBTREE;
        }
        return 0;
}

static int expand_one(SbxPlan *p, const char *g, SbxError *err)
{
        const char *star2 = strstr(g, "**");
        glob_t gl = { 0 };
        int r = 0, gr;

        if (g[0] != '/')
                return sbx_fail(err, 65, -EINVAL,
                                "secret glob '%s' is not absolute — fix the policy's secrets list",
                                g);
        if (star2) {
                _cleanup_free_ char *prefix = strndup(g, (size_t)(star2 - g));
                size_t n;

                if (!prefix)
                        return -ENOMEM;
                n = strlen(prefix);
                while (n > 1 && prefix[n - 1] == '/')
                        prefix[--n] = '\0';
                if (streq(star2, "**") && g[(size_t)(star2 - g) - 1] == '/') {
                        /* "DIR/ **" (no space): masking DIR hides everything beneath it. */
                        gr = glob(prefix, GLOB_BRACE | GLOB_NOSORT | GLOB_ONLYDIR, NULL, &gl);
                        if (gr == 0)
                                for (size_t i = 0; i < gl.gl_pathc && r >= 0; i++)
                                        r = add_mask(p, g, gl.gl_pathv[i], err);
                        globfree(&gl);
                        return r;
                }
                /* "DIR/ ** /NAME" (no spaces): walk DIR physically (no symlink followed). */
                if (strpbrk(prefix, "*?[{"))
                        return sbx_fail(err, 65, -EINVAL,
                                        "secret glob '%s': wildcards before '**' are not "
                                        "supported — split it into several globs",
                                        g);
                if (access(prefix, F_OK) < 0)
                        return 0;
                walk.plan = p;
                walk.err = err;
                walk.glob = g;
                walk.nodes = 0;
                walk.r = 0;
                walk.flat = strdup(g);
                if (!walk.flat)
                        return -ENOMEM;
                for (char *s = walk.flat; (s = strstr(s, "**"));)
                        memmove(s, s + 1, strlen(s + 1) + 1);
                if (nftw(prefix, walk_cb, 16, FTW_PHYS | FTW_ACTIONRETVAL) < 0 && walk.r == 0)
                        walk.r = sbx_fail(err, 71, -errno,
                                          "cannot walk %s for secret glob %s: %m — masking "
                                          "cannot be proven",
                                          prefix, g);
                free(walk.flat);
                walk.flat = NULL;
                return walk.r;
        }
        gr = glob(g, GLOB_BRACE | GLOB_NOSORT | GLOB_PERIOD, NULL, &gl);
        if (gr == GLOB_NOSPACE)
                r = -ENOMEM;
        else if (gr == GLOB_ABORTED)
                r = sbx_fail(err, 71, -EIO,
                             "cannot read a directory while expanding secret glob %s — masking "
                             "cannot be proven",
                             g);
        else if (gr == 0)
                for (size_t i = 0; i < gl.gl_pathc && r >= 0; i++) {
                        const char *base = strrchr(gl.gl_pathv[i], '/');
                        /* GLOB_PERIOD lets '*' match dotfiles, but never "." and "..". */
                        if (base && (streq(base, "/.") || streq(base, "/..")))
                                continue;
                        r = add_mask(p, g, gl.gl_pathv[i], err);
                }
        globfree(&gl);
        return r;
}

typedef struct {
        unsigned major, minor;
        char *root, *mountpoint;
} MountEntry;

void sbx_unescape_octal(char *s)
{
        char *o = s;

        for (; *s; s++)
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
                    s[3] >= '0' && s[3] <= '7') {
                        *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
                        s += 3;
                } else
                        *o++ = *s;
        *o = '\0';
}

static const char *strip_prefix(const char *path, const char *prefix)
{
        size_t n = strlen(prefix);

        if (streq(prefix, "/"))
                return path;
        if (!strneq(path, prefix, n) || (path[n] != '\0' && path[n] != '/'))
                return NULL;
        return path + n;
}

/*
 * A secret masked at one path is still readable wherever the host shows
 * its filesystem a second time (a bind mount of /etc elsewhere, a container
 * host's mounts). For every secret, find each other mount of the same
 * device whose root contains the secret and mask the secret there too (if
 * the same inode is visible there).
 */
static int mask_aliases(SbxPlan *p, SbxError *err)
{
        _cleanup_free_ char *text = NULL;
        MountEntry *mounts = NULL;
        size_t n = 0, n_masks = p->n_masks;
        int r;

        if (n_masks == 0)
                return 0;
        r = read_full_file("/proc/self/mountinfo", 4 * 1024 * 1024, &text, NULL);
        if (r < 0)
                return sbx_fail(err, 71, r,
                                "cannot read /proc/self/mountinfo to find other mounts of the "
                                "secrets: %s",
                                strerror(-r));
        for (char *line = text, *next; line && *line; line = next) {
                unsigned maj, min;
                char root[4096], mp[4096];
                MountEntry *t;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (sscanf(line, "%*u %*u %u:%u %4095s %4095s", &maj, &min, root, mp) != 4)
                        continue;
                t = realloc(mounts, sizeof(MountEntry) * (n + 1));
                if (!t) {
                        r = -ENOMEM;
                        goto out;
                }
                mounts = t;
                sbx_unescape_octal(root);
                sbx_unescape_octal(mp);
                mounts[n] = (MountEntry){ maj, min, strdup(root), strdup(mp) };
                if (!mounts[n].root || !mounts[n].mountpoint) {
                        n++;
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        r = 0;
        for (size_t i = 0; i < n_masks && r >= 0; i++) {
                _cleanup_free_ char *secret = strdup(p->masks[i].path), *fsrel = NULL;
                const MountEntry *home = NULL;
                struct stat st;

                if (!secret)
                        return -ENOMEM;
                if (stat(secret, &st) < 0)
                        continue;
                /* The mount the secret is seen through: the last (topmost) longest match. */
                for (size_t k = 0; k < n; k++) {
                        const char *rest = strip_prefix(secret, mounts[k].mountpoint);
                        if (rest &&
                            (!home || strlen(mounts[k].mountpoint) >= strlen(home->mountpoint)))
                                home = &mounts[k];
                }
                if (!home)
                        continue;
                if (asprintf(&fsrel, "%s%s", streq(home->root, "/") ? "" : home->root,
                             strip_prefix(secret, home->mountpoint)) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (fsrel[0] == '\0') {
                        free(fsrel);
                        fsrel = strdup("/");
                        if (!fsrel) {
                                r = -ENOMEM;
                                break;
                        }
                }
                for (size_t k = 0; k < n && r >= 0; k++) {
                        _cleanup_free_ char *alias = NULL;
                        const char *rest;
                        struct stat ast;

                        if (&mounts[k] == home || mounts[k].major != home->major ||
                            mounts[k].minor != home->minor)
                                continue;
                        rest = strip_prefix(fsrel, mounts[k].root);
                        if (!rest)
                                continue;
                        if (asprintf(&alias, "%s%s",
                                     streq(mounts[k].mountpoint, "/") ? "" : mounts[k].mountpoint,
                                     rest) < 0) {
                                r = -ENOMEM;
                                break;
                        }
                        if (streq(alias, secret) || stat(alias, &ast) < 0 ||
                            ast.st_dev != st.st_dev || ast.st_ino != st.st_ino)
                                continue;
                        r = add_mask(p, secret, alias, err);
                }
        }
out:
        for (size_t k = 0; k < n; k++) {
                free(mounts[k].root);
                free(mounts[k].mountpoint);
        }
        free(mounts);
        return r;
}

/*
 * The helper thread: the inotify watches on the secrets' directories, then
 * the secrets' expansion (globs, other mounts of the same files). It only
 * reads the host and the configuration, and writes fields of the plan
 * nobody else touches until sbx_prep_thread_join() (watches, masks; the
 * static nftw state is its alone): the main thread meanwhile prepares the
 * protected names (placeholders, protect list). It starts after pid 1's
 * clone and is joined before the session helper's fork, so no process is
 * ever forked with a second thread running. The watches are set before the
 * expansion: a secret created after it is still seen.
 */
static void *prep_thread(void *arg)
{
        SbxPlan *p = arg;

        p->prep_r = sbx_watch_secrets(p, &p->prep_err);
        sbx_timing("thread: watches");
        if (p->prep_r >= 0)
                p->prep_r = sbx_expand_secrets(p, &p->prep_err);
        return NULL;
}

void sbx_prep_thread_start(SbxPlan *p)
{
        sigset_t all, old;

        /* The thread takes no signal: they stay with the main thread. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        p->prep_started = pthread_create(&p->prep_thread, NULL, prep_thread, p) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int sbx_prep_thread_join(SbxPlan *p, SbxError *err)
{
        if (p->prep_started) {
                pthread_join(p->prep_thread, NULL);
                p->prep_started = false;
        } else if (!p->prep_done) {
                /* Not started (or could not be): the same work, here. */
                (void)prep_thread(p);
        }
        p->prep_done = true;
        if (p->prep_r < 0 && err)
                *err = p->prep_err;
        return p->prep_r;
}

/*
 * The names in a small directory, read in one go (a home: most hold none of
 * the "~/" secrets' first components, and one listing answers them all
 * instead of a glob each). NULL for a directory that cannot be read or is
 * large: then every glob runs as usual.
 */
typedef struct {
        char *buf;
        size_t len;
} DirNames;

#define DIR_NAMES_MAX (32 * 1024)

static void dir_names_read(const char *path, DirNames *ret)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct stat st;
        ssize_t n;

        *ret = (DirNames){ 0 };
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > DIR_NAMES_MAX / 2)
                return;
        ret->buf = malloc(DIR_NAMES_MAX);
        if (!ret->buf)
                return;
        while ((n = getdents64(fd, ret->buf + ret->len, DIR_NAMES_MAX - ret->len)) > 0)
                ret->len += (size_t)n;
        if (n < 0 || ret->len >= DIR_NAMES_MAX - 1024) { /* an error, or maybe more to read */
                free(ret->buf);
                *ret = (DirNames){ 0 };
        }
}

/* True unless the listing shows that no entry can match name (a glob's first component). */
static bool dir_names_may_hold(const DirNames *l, const char *name, size_t n)
{
        if (!l->buf)
                return true; /* not listed: ask glob */
        for (size_t i = 0; i < n; i++)
                if (strchr("*?[]{}\\", name[i]))
                        return true; /* a pattern: glob decides */
        for (size_t off = 0; off < l->len;) {
                const struct dirent64 *d = (const struct dirent64 *)(l->buf + off);
                if (d->d_reclen == 0)
                        return true;
                if (strlen(d->d_name) == n && strneq(d->d_name, name, n))
                        return true;
                off += d->d_reclen;
        }
        return false;
}

int sbx_expand_secrets(SbxPlan *p, SbxError *err)
{
        size_t n_homes = strv_length(p->homes);
        _cleanup_free_ DirNames *lists = calloc(n_homes + 1, sizeof(DirNames));
        int r = 0;

        if (!lists)
                return -ENOMEM;
        STRV_FOREACH (g, p->cfg->secret_globs)
                if (strneq(*g, "~/", 2)) {
                        for (size_t i = 0; i < n_homes; i++)
                                dir_names_read(p->homes[i], &lists[i]);
                        break;
                }
        STRV_FOREACH (g, p->cfg->secret_globs) {
                if (strneq(*g, "~/", 2)) {
                        const char *rest = *g + 2;
                        size_t first = strcspn(rest, "/");

                        /* In every existing home: a missing home has nothing to mask. */
                        for (size_t i = 0; i < n_homes && r >= 0; i++) {
                                _cleanup_free_ char *abs = NULL;
                                if (!dir_names_may_hold(&lists[i], rest, first))
                                        continue; /* its first component is not there */
                                if (asprintf(&abs, "%s/%s", p->homes[i], rest) < 0)
                                        r = -ENOMEM;
                                else
                                        r = expand_one(p, abs, err);
                        }
                } else
                        r = expand_one(p, *g, err);
                if (r < 0)
                        break;
        }
        for (size_t i = 0; i < n_homes; i++)
                free(lists[i].buf);
        if (r < 0)
                return r;
        sbx_timing("secrets: globs");
        r = mask_aliases(p, err);
        if (r < 0)
                return r;
        /* A secret that contains the workspace would hide it: say so instead of surprising. */
        for (size_t i = 0; i < p->n_masks; i++)
                for (size_t j = 0; j < p->n_binds; j++)
                        if (sbx_path_startswith(p->binds[j].path, p->masks[i].path))
                                return sbx_fail(err, 64, -EPERM,
                                                "%s %s is inside the secret %s — choose a path "
                                                "outside it",
                                                j == 0 ? "workspace" : "path", p->binds[j].path,
                                                p->masks[i].path);
        /* (A socket, masked later, contains nothing.) */
        return 0;
}

/* ---- protected workspace files --------------------------------------------------------- */

/*
 * A regular file where a protected path needs a directory (".git" is a
 * "gitdir:" file in a git worktree or submodule, so ".git/hooks" cannot
 * exist): rewriting that file would point the human's tools at a directory
 * of the agent's making, so the file itself is kept read-only.
 */
static int protect_file_in_the_way(SbxPlan *p, const char *ws, const char *full)
{
        _cleanup_free_ char *path = strdup(full);

        if (!path)
                return -ENOMEM;
        for (char *s = path + strlen(ws) + 1; (s = strchr(s, '/')); s++) {
                struct stat st;

                *s = '\0';
                if (lstat(path, &st) < 0)
                        return 0;
                if (S_ISREG(st.st_mode)) {
                        if (!strv_contains(p->protect, path) && strv_extend(&p->protect, path) < 0)
                                return -ENOMEM;
                        return 0;
                }
                if (!S_ISDIR(st.st_mode))
                        return 0; /* a symlink (resolves elsewhere) or a special file */
                *s = '/';
        }
        return 0;
}

/*
 * Placeholders carry an extended attribute, so that one left behind by an
 * airlock killed during its launch (before its helper could clean up) is
 * recognised by the next launch and removed after that session (if still
 * empty). Best effort: a filesystem without user xattrs just skips it.
 */
#define PLACEHOLDER_XATTR "user.airlock.placeholder"

/* The value is the session id of the launch that owns the placeholder now. */
static void mark_placeholder(const SbxPlan *p, int fd)
{
        const char *sid = p->cfg->session_id;

        (void)fsetxattr(fd, PLACEHOLDER_XATTR, sid, strlen(sid), 0);
}

static bool is_placeholder(const char *path)
{
        char v[64];

        return lgetxattr(path, PLACEHOLDER_XATTR, v, sizeof v) > 0;
}

/*
 * Placeholders are created, adopted and removed under an exclusive flock
 * on the workspace directory. Each session that relies on a placeholder
 * (created or adopted) holds it open with a shared flock for as long as
 * the session lasts (its helper outlives a killed airlock),: a session
 * ending never removes a placeholder another one still has mounted (an
 * unlink of it would detach that session's read-only mount), and the last
 * one to end removes it. Returns the locked fd (close it to unlock) or
 * -errno.
 */
static int lock_workspace(const char *ws)
{
        int fd = open(ws, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return -errno;
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
        return fd;
}

/* Holds each placeholder of this session (call with the workspace locked). */
static int hold_placeholders(SbxPlan *p)
{
        size_t n = strv_length(p->protect_new);

        if (n == 0)
                return 0;
        p->protect_new_fds = calloc(n, sizeof(int));
        if (!p->protect_new_fds)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int fd = open(p->protect_new[i],
                              O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);

                if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) < 0)
                        fd = safe_close(fd);
                p->protect_new_fds[i] = fd < 0 ? -EBADF : fd;
        }
        p->n_protect_new_fds = n;
        return 0;
}

/*
 * True when no other session holds path: our own shared lock (fd, when we
 * hold one) converts to an exclusive one only if no other holder is left.
 */
static bool placeholder_unused(SbxPlan *p, size_t i, const struct stat *st)
{
        _cleanup_close_ int own = -EBADF;
        int fd = i < p->n_protect_new_fds ? p->protect_new_fds[i] : -EBADF;
        struct stat fst;

        if (fd < 0) {
                own = open(p->protect_new[i],
                           O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
                if (own < 0)
                        return false;
                fd = own;
        }
        if (fstat(fd, &fst) < 0 || fst.st_dev != st->st_dev || fst.st_ino != st->st_ino)
                return false; /* replaced since: not what we hold */
        return flock(fd, LOCK_EX | LOCK_NB) == 0;
}

void sbx_remove_placeholders(SbxPlan *p)
{
        _cleanup_close_ int lock = -EBADF;

        if (!p->protect_new || p->n_binds == 0)
                return;
        lock = lock_workspace(p->binds[0].path);
        if (lock < 0)
                return; /* fail safe: an empty placeholder stays, adopted next time */
        for (size_t i = strv_length(p->protect_new); i > 0; i--) {
                const char *path = p->protect_new[i - 1];
                struct stat st;

                /* Only what airlock marked, and only once no other session has it mounted. */
                if (lstat(path, &st) < 0 || !is_placeholder(path) ||
                    !placeholder_unused(p, i - 1, &st))
                        continue;
                if (S_ISDIR(st.st_mode))
                        (void)rmdir(path); /* only if empty: what the agent added stays */
                else if (S_ISREG(st.st_mode) && st.st_size == 0)
                        (void)unlink(path);
                /*
                 * Not exclusive beyond the workspace lock: one that stays
                 * (not empty) must not refuse the next session's hold while
                 * the helper's copy of the fd lives on.
                 */
                if (i - 1 < p->n_protect_new_fds && p->protect_new_fds[i - 1] >= 0)
                        (void)flock(p->protect_new_fds[i - 1], LOCK_UN);
        }
}

/* Adopts the marked placeholders along rel (left by an earlier, killed launch). */
static int adopt_placeholders(SbxPlan *p, const char *ws, const char *rel)
{
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s", ws, rel) < 0)
                return -ENOMEM;
        for (char *s = path + strlen(ws) + 1;; s++) {
                char saved = *s;
                if (saved != '/' && saved != '\0')
                        continue;
                *s = '\0';
                if (is_placeholder(path) && !strv_contains(p->protect_new, path)) {
                        const char *sid = p->cfg->session_id;
                        (void)lsetxattr(path, PLACEHOLDER_XATTR, sid, strlen(sid), 0);
                        if (strv_extend(&p->protect_new, path) < 0)
                                return -ENOMEM;
                }
                *s = saved;
                if (saved == '\0')
                        return 0;
        }
}

/*
 * Creates an empty placeholder for a missing protected name (rel, below the
 * workspace), and the missing directories on the way, owned by the
 * workspace's owner; each is recorded in p->protect_new so that it is
 * removed after the session. Walks by fds without following symlinks: a
 * symlink left in the workspace (".git" -> "/etc") must not make root
 * create something elsewhere. Returns 1 when created, 0 when a symlink or a
 * non-directory is in the way (then there is nothing inside the workspace
 * to protect), or a negative errno. (Started by an ordinary user, files are
 * that user's already: no chown.)
 */
static int make_placeholder(SbxPlan *p, const char *ws, const struct stat *wst, const char *rel,
                            bool dir, SbxError *err)
{
        _cleanup_close_ int cur = -EBADF;
        _cleanup_free_ char *copy = strdup(rel), *done = NULL;
        char *save = NULL, *seg, *next;

        if (!copy)
                return -ENOMEM;
        cur = openat2_nofollow(AT_FDCWD, ws, O_RDONLY | O_DIRECTORY, 0);
        if (cur < 0)
                return sbx_fail(err, 71, cur, "cannot open the workspace %s", ws);
        done = strdup(ws);
        if (!done)
                return -ENOMEM;
        for (seg = strtok_r(copy, "/", &save); seg; seg = next) {
                bool last;
                char *path;
                int fd;

                next = strtok_r(NULL, "/", &save);
                last = !next;
                if (asprintf(&path, "%s/%s", done, seg) < 0)
                        return -ENOMEM;
                free(done);
                done = path;
                if (last && !dir) {
                        fd = openat(cur, seg, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
                                    0644);
                        if (fd < 0)
                                return errno == EEXIST ? 0
                                                       : sbx_fail(err, 71, -errno,
                                                                  "cannot create the placeholder "
                                                                  "%s: %m",
                                                                  path);
                        if (p->privileged && fchown(fd, wst->st_uid, wst->st_gid) < 0) {
                                int r = sbx_fail(err, 71, -errno, "cannot chown %s: %m", path);
                                close(fd);
                                return r;
                        }
                        mark_placeholder(p, fd);
                        close(fd);
                        return strv_extend(&p->protect_new, path) < 0 ? -ENOMEM : 1;
                }
                fd = openat2_nofollow(cur, seg, O_RDONLY | O_DIRECTORY, RESOLVE_BENEATH);
                if (fd == -ENOENT) {
                        if (mkdirat(cur, seg, 0755) < 0)
                                return sbx_fail(err, 71, -errno,
                                                "cannot create the placeholder %s: %m", path);
                        if (strv_extend(&p->protect_new, path) < 0)
                                return -ENOMEM;
                        if (p->privileged &&
                            fchownat(cur, seg, wst->st_uid, wst->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
                                return sbx_fail(err, 71, -errno, "cannot chown %s: %m", path);
                        fd = openat2_nofollow(cur, seg, O_RDONLY | O_DIRECTORY, RESOLVE_BENEATH);
                        if (fd >= 0)
                                mark_placeholder(p, fd);
                }
                if (fd == -ELOOP || fd == -ENOTDIR)
                        return 0;
                if (fd < 0)
                        return sbx_fail(err, 71, fd, "cannot open %s: %s", path, strerror(-fd));
                safe_close(cur);
                cur = fd;
        }
        return 1;
}

/*
 * Inside the workspace, files the human later executes or that tools load
 * automatically (.git/hooks, .envrc, shell rc files, agent configs) stay
 * read-only: each existing match is bound read-only over itself.
 *
 * Nothing can be mounted on a name that does not exist, so for a missing
 * literal entry airlock creates an empty placeholder (and the missing
 * directories on the way) owned by the workspace's owner, mounts it
 * read-only like the others, and removes what it created after the
 * session (sbx_plan_done), if still empty. A SIGKILLed airlock leaves them
 * behind (empty). Wildcard entries protect what exists at launch
 * (documented in airlock(1)). With create false (--explain), missing names
 * are only counted.
 */
int sbx_prepare_protect(SbxPlan *p, bool create, SbxError *err)
{
        const char *ws = p->binds[0].path;
        struct stat wst;

        _cleanup_close_ int lock = -EBADF;

        if (stat(ws, &wst) < 0)
                return sbx_fail(err, 71, -errno, "workspace %s: %m", ws);
        if (create && p->cfg->protect_globs && p->cfg->protect_globs[0]) {
                lock = lock_workspace(ws);
                if (lock < 0)
                        return sbx_fail(err, 71, lock, "cannot lock the workspace %s: %s", ws,
                                        strerror(-lock));
        }
        STRV_FOREACH (g, p->cfg->protect_globs) {
                _cleanup_free_ char *full = NULL;
                glob_t gl = { 0 };
                int gr;
                bool literal = !strpbrk(*g, "*?[{");
                size_t len;

                if ((*g)[0] == '/' || strstr(*g, ".."))
                        return sbx_fail(err, 65, -EINVAL,
                                        "protected path '%s' must be relative to the workspace "
                                        "without '..' — fix the policy",
                                        *g);
                if (asprintf(&full, "%s/%s", streq(ws, "/") ? "" : ws, *g) < 0)
                        return -ENOMEM;
                len = strlen(full);
                /* A trailing slash-star-star protects the directory itself. */
                bool dir_hint = false;
                if (len > 3 && streq(full + len - 3, "/**")) {
                        full[len - 3] = '\0';
                        literal = !strpbrk(full + strlen(ws), "*?[{");
                        dir_hint = true;
                } else if (len > 1 && full[len - 1] == '/') {
                        full[len - 1] = '\0';
                        dir_hint = true;
                }
                if (literal) {
                        /* No wildcard: one lstat; a missing name is remembered. */
                        struct stat st;

                        if (lstat(full, &st) < 0) {
                                if (errno == ENOTDIR) {
                                        int r = protect_file_in_the_way(p, ws, full);
                                        if (r < 0)
                                                return r;
                                        continue;
                                }
                                if (errno != ENOENT)
                                        continue;
                                if (!create) {
                                        if (strv_extend(&p->protect_missing, full) < 0)
                                                return -ENOMEM;
                                        continue;
                                }
                                /*
                                 * Directories on the way left by a killed
                                 * launch are this session's to remove too.
                                 */
                                int r = adopt_placeholders(p, ws, full + strlen(ws) + 1);
                                if (r < 0)
                                        return r;
                                r = make_placeholder(p, ws, &wst, full + strlen(ws) + 1, dir_hint,
                                                     err);
                                if (r < 0)
                                        return r;
                                if (r == 0)
                                        continue; /* a symlink on the way: nothing to protect */
                                /*
                                 * Created by a walk from the (canonical) workspace that
                                 * followed no symlink: full is its real path once "." and
                                 * "//" are folded (".." is refused above).
                                 */
                                path_normalize_lexical(full);
                                if (!strv_contains(p->protect, full) &&
                                    strv_extend(&p->protect, full) < 0)
                                        return -ENOMEM;
                                continue;
                        } else if (create) {
                                int r = adopt_placeholders(p, ws, full + strlen(ws) + 1);
                                if (r < 0)
                                        return r;
                        }
                        _cleanup_free_ char *real = realpath(full, NULL);
                        if (real && sbx_path_startswith(real, ws) && !streq(real, ws) &&
                            !strv_contains(p->protect, real) && strv_extend(&p->protect, real) < 0)
                                return -ENOMEM;
                        continue;
                }
                gr = glob(full, GLOB_BRACE | GLOB_NOSORT | GLOB_PERIOD, NULL, &gl);
                if (gr == 0)
                        for (size_t i = 0; i < gl.gl_pathc; i++) {
                                _cleanup_free_ char *real = realpath(gl.gl_pathv[i], NULL);
                                /* Only what is really inside the workspace needs it. */
                                if (!real || !sbx_path_startswith(real, ws) || streq(real, ws))
                                        continue;
                                if (!strv_contains(p->protect, real) &&
                                    strv_extend(&p->protect, real) < 0) {
                                        globfree(&gl);
                                        return -ENOMEM;
                                }
                        }
                globfree(&gl);
        }
        return create ? hold_placeholders(p) : 0;
}

/* ---- resolv.conf for net host ----------------------------------------------------------- */

/*
 * In net host mode UDP is refused by seccomp, so the resolver must speak
 * TCP: the sandbox gets the host's nameservers with "options use-vc".
 */
int sbx_prepare_resolv_conf(SbxPlan *p, SbxError *err)
{
        _cleanup_free_ char *host = NULL, *out = NULL, *target = NULL;
        size_t size = 0, n = 0;
        FILE *f;
        int r;

        r = read_full_file("/etc/resolv.conf", 64 * 1024, &host, NULL);
        if (r < 0 && r != -ENOENT)
                return sbx_fail(err, 71, r, "cannot read /etc/resolv.conf: %s", strerror(-r));
        f = open_memstream(&out, &size);
        if (!f)
                return -ENOMEM;
        fputs("# written by airlock run: the sandbox resolves over TCP (UDP is blocked)\n", f);
        for (char *line = host ? strtok(host, "\n") : NULL; line; line = strtok(NULL, "\n")) {
                if (strneq(line, "nameserver", 10) || strneq(line, "search", 6) ||
                    strneq(line, "domain", 6)) {
                        fprintf(f, "%s\n", line);
                        n += strneq(line, "nameserver", 10);
                }
        }
        if (n == 0)
                fputs("nameserver 127.0.0.1\n", f);
        fputs("options use-vc\n", f);
        if (fclose(f) != 0)
                return -ENOMEM;
        /* If /etc/resolv.conf links into /run (systemd-resolved), write the target there. */
        target = realpath("/etc/resolv.conf", NULL);
        if (!target ||
            !(sbx_path_startswith(target, "/run") || sbx_path_startswith(target, "/var/run"))) {
                free(target);
                target = strdup("/etc/resolv.conf");
                if (!target)
                        return -ENOMEM;
        }
        p->resolv_conf = TAKE_PTR(out);
        p->resolv_target = TAKE_PTR(target);
        return 0;
}

/* ---- in the child ----------------------------------------------------------------------- */

#define MNT_FAIL(err, fmt, ...) sbx_fail(err, 71, -errno, fmt, ##__VA_ARGS__)

/* Opens (creating directories as needed) path beneath rootfd; returns an O_PATH fd. */
static int open_mountpoint(int rootfd, const char *abs, bool dir, SbxError *err)
{
        _cleanup_close_ int cur = -EBADF;
        _cleanup_free_ char *copy = strdup(abs);
        char *save = NULL, *seg;
        int fd;

        if (!copy)
                return -ENOMEM;
        cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return -errno;
        for (seg = strtok_r(copy, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
                bool last = !save || *save == '\0';
                int flags = O_PATH | ((last && !dir) ? 0 : O_DIRECTORY);

                fd = openat2_nofollow(cur, seg, flags, RESOLVE_BENEATH);
                if (fd == -ENOENT) {
                        /* Only under our own tmpfs: the host tree is read-only. */
                        if (last && !dir) {
                                int c = openat(cur, seg,
                                               O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
                                               0444);
                                if (c < 0)
                                        return sbx_fail(err, 71, -errno,
                                                        "cannot create mount point %s: %m", abs);
                                close(c);
                        } else if (mkdirat(cur, seg, 0755) < 0 && errno != EEXIST)
                                return sbx_fail(err, 71, -errno, "cannot create mount point %s: %m",
                                                abs);
                        fd = openat2_nofollow(cur, seg, flags, RESOLVE_BENEATH);
                }
                if (fd < 0)
                        return sbx_fail(err, 71, fd,
                                        "cannot open %s inside the sandbox without following "
                                        "symlinks: %s",
                                        abs, strerror(-fd));
                safe_close(cur);
                cur = fd;
        }
        return TAKE_FD(cur);
}

static int attach(int mnt, int target, const char *what, SbxError *err)
{
        if (move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return MNT_FAIL(err, "cannot mount %s: %m", what);
        return 0;
}

/*
 * A tmpfs of the sandbox's own at abs. size, when not 0, bounds it: where no
 * memory cgroup counts a tmpfs's pages (an ordinary user's sandbox, or
 * root's with --allow-weaker on a host without v1 controllers) each writable
 * one holds at most the memory limit instead of the kernel's default, half
 * the machine's RAM (tmpfs_size()).
 */
static int mount_tmpfs(int rootfd, const char *abs, const char *mode, uint64_t size, SbxError *err)
{
        _cleanup_close_ int target = -EBADF;
        char opts[96];
        char proc_path[64];

        target = open_mountpoint(rootfd, abs, true, err);
        if (target < 0)
                return target;
        if (size)
                snprintf(opts, sizeof opts, "mode=%s,size=%ju", mode, (uintmax_t)size);
        else
                snprintf(opts, sizeof opts, "mode=%s", mode);
        snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", target);
        /* mount(2) on the O_PATH fd's magic link: the target is the fd, not a path re-walked. */
        if (mount("tmpfs", proc_path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                return MNT_FAIL(err, "cannot mount a tmpfs on %s: %m", abs);
        return 0;
}

static int bind_dev(int devfd, const char *name, SbxError *err)
{
        char src[64], tgt[64];
        int fd;

        fd = openat(devfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444);
        if (fd < 0)
                return MNT_FAIL(err, "cannot create /dev/%s: %m", name);
        close(fd);
        snprintf(src, sizeof src, "/dev/%s", name);
        fd = openat2_nofollow(devfd, name, O_PATH, RESOLVE_BENEATH);
        if (fd < 0)
                return sbx_fail(err, 71, fd, "cannot open /dev/%s", name);
        snprintf(tgt, sizeof tgt, "/proc/self/fd/%d", fd);
        /* src is the host's device node (still reachable: we have not pivoted yet). */
        if (mount(src, tgt, NULL, MS_BIND, NULL) < 0) {
                int r = MNT_FAIL(err, "cannot bind /dev/%s: %m", name);
                close(fd);
                return r;
        }
        close(fd);
        return 0;
}

/* The size of the sandbox's writable tmpfs: 0 (unbounded) where the memory cgroup counts them. */
static uint64_t tmpfs_size(const SbxPlan *p)
{
        return p->cgroup.v1_memory ? 0 : p->cgroup.memory_max;
}

static int setup_dev(int rootfd, uint64_t shm_size, SbxError *err)
{
        static const char *const devices[] = { "null", "zero", "full", "random", "urandom", "tty" };
        static const struct {
                const char *name, *target;
        } links[] = {
                { "ptmx", "pts/ptmx" },          { "fd", "/proc/self/fd" },
                { "stdin", "/proc/self/fd/0" },  { "stdout", "/proc/self/fd/1" },
                { "stderr", "/proc/self/fd/2" },
        };
        _cleanup_close_ int devfd = -EBADF;
        char path[64];
        int r;

        r = mount_tmpfs(rootfd, "/dev", "0755", 0, err); /* read-only below */
        if (r < 0)
                return r;
        devfd = openat2_nofollow(rootfd, "dev", O_PATH | O_DIRECTORY, RESOLVE_BENEATH);
        if (devfd < 0)
                return sbx_fail(err, 71, devfd, "cannot open the new /dev");
        for (size_t i = 0; i < ELEMENTSOF(devices); i++) {
                r = bind_dev(devfd, devices[i], err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(links); i++)
                if (symlinkat(links[i].target, devfd, links[i].name) < 0)
                        return MNT_FAIL(err, "cannot create /dev/%s: %m", links[i].name);
        if (mkdirat(devfd, "pts", 0755) < 0 || mkdirat(devfd, "shm", 01777) < 0)
                return MNT_FAIL(err, "cannot create /dev/pts or /dev/shm: %m");
        snprintf(path, sizeof path, "/proc/self/fd/%d/pts", devfd);
        if (mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=620") < 0)
                return MNT_FAIL(err, "cannot mount devpts on /dev/pts: %m");
        r = mount_tmpfs(rootfd, "/dev/shm", "1777", shm_size, err);
        if (r < 0)
                return r;
        /* Nothing may be added to /dev: the tmpfs becomes read-only (the binds keep their flags).
         */
        snprintf(path, sizeof path, "/proc/self/fd/%d", devfd);
        {
                _cleanup_close_ int d2 =
                        openat2_nofollow(rootfd, "dev", O_PATH | O_DIRECTORY, RESOLVE_BENEATH);
                struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                                    MOUNT_ATTR_NOEXEC };
                if (d2 < 0 || mount_setattr(d2, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
                        return MNT_FAIL(err, "cannot make /dev read-only: %m");
        }
        return 0;
}

/* The empty file and directory every mask is a read-only clone of. */
static int make_mask_source(SbxError *err)
{
        _cleanup_close_ int fsfd = -EBADF, mnt = -EBADF;
        struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
        struct stat st;
        int fd;

        fsfd = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return MNT_FAIL(err, "cannot create the tmpfs for masks: %m");
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "mode", "0555", 0) < 0 ||
            fsconfig(fsfd, FSCONFIG_SET_STRING, "size", "4k", 0) < 0 ||
            fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return MNT_FAIL(err, "cannot configure the tmpfs for masks: %m");
        mnt = fsmount(fsfd, FSMOUNT_CLOEXEC,
                      MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (mnt < 0)
                return MNT_FAIL(err, "cannot mount the tmpfs for masks: %m");
        fd = openat(mnt, "file", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0444);
        if (fd < 0 || fchmod(fd, 0444) < 0)
                return MNT_FAIL(err, "cannot create the empty mask file: %m");
        if (fstat(fd, &st) < 0)
                return MNT_FAIL(err, "cannot stat the empty mask file: %m");
        close(fd);
        sbx_mask_dev = st.st_dev;
        sbx_mask_file_ino = st.st_ino;
        if (mkdirat(mnt, "dir", 0555) < 0 || fstatat(mnt, "dir", &st, AT_SYMLINK_NOFOLLOW) < 0)
                return MNT_FAIL(err, "cannot create the empty mask directory: %m");
        sbx_mask_dir_ino = st.st_ino;
        if (mount_setattr(mnt, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
                return MNT_FAIL(err, "cannot make the mask tmpfs read-only: %m");
        return TAKE_FD(mnt);
}

static int open_mask_target(int rootfd, const SbxMask *m, SbxError *err)
{
        int target = openat2_nofollow(rootfd, m->path + 1, O_PATH, RESOLVE_BENEATH);

        if (target == -ENOENT) /* removed since the launch was prepared: nothing to read */
                return -ENOENT;
        if (target < 0)
                return sbx_fail(err, 71, target,
                                "secret %s cannot be masked: %s (a symlink appeared on its path?) "
                                "— refusing to start",
                                m->path, strerror(-target));
        return target;
}

/* target: an O_PATH fd of the secret inside the sandbox's tree (consumed). */
static int apply_mask(int target_fd, int source, const SbxMask *m, SbxError *err)
{
        _cleanup_close_ int target = target_fd, clone = -EBADF;
        struct stat st;

        if (fstat(target, &st) < 0)
                return MNT_FAIL(err, "secret %s cannot be masked: %m", m->path);
        clone = open_tree(source, S_ISDIR(st.st_mode) ? "dir" : "file",
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (clone < 0)
                return MNT_FAIL(err, "secret %s cannot be masked: cloning the empty source: %m",
                                m->path);
        if (move_mount(clone, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
            0)
                return MNT_FAIL(err, "secret %s cannot be masked: %m — refusing to start", m->path);
        return 0;
}

/* A detached clone of b's host path (from the original tree, symlink-free). */
static int clone_bind_source(const SbxBind *b, SbxError *err)
{
        _cleanup_close_ int src = -EBADF, mnt = -EBADF;
        struct mount_attr a = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                                .propagation = MS_PRIVATE };

        if (b->mount_fd >= 0)
                mnt = fcntl(b->mount_fd, F_DUPFD_CLOEXEC, 3);
        else {
                /* From the original tree (still our "/": not pivoted yet), symlink-free. */
                src = openat2_nofollow(AT_FDCWD, b->path, O_PATH, 0);
                if (src < 0)
                        return sbx_fail(err, 71, src,
                                        "%s cannot be opened without following symlinks: %s",
                                        b->path, strerror(-src));
                mnt = open_tree(src, "",
                                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
                if (mnt < 0)
                        return MNT_FAIL(err, "cannot clone the mount of %s: %m", b->path);
                if (!b->writable)
                        a.attr_set |= MOUNT_ATTR_RDONLY;
                if (mount_setattr(mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
                        return MNT_FAIL(err, "cannot set the flags of %s: %m", b->path);
        }
        if (mnt < 0)
                return MNT_FAIL(err, "cannot duplicate the mount of %s: %m", b->path);
        return TAKE_FD(mnt);
}

static int bind_path(int rootfd, int mnt_fd, const SbxBind *b, SbxError *err)
{
        _cleanup_close_ int mnt = mnt_fd, target = -EBADF;

        target = open_mountpoint(rootfd, b->path, b->is_dir, err);
        if (target < 0)
                return target;
        return attach(mnt, target, b->path, err);
}

static int protect_path(int rootfd, const char *path, SbxError *err)
{
        _cleanup_close_ int target = -EBADF, mnt = -EBADF;
        struct mount_attr a = { .attr_set =
                                        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                                .propagation = MS_PRIVATE };

        target = openat2_nofollow(rootfd, path + 1, O_PATH, RESOLVE_BENEATH);
        if (target == -ENOENT)
                return 0;
        if (target < 0)
                return sbx_fail(err, 71, target, "cannot protect %s: %s", path, strerror(-target));
        mnt = open_tree(target, "",
                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (mnt < 0 || mount_setattr(mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
                return MNT_FAIL(err, "cannot make %s read-only: %m", path);
        return attach(mnt, target, path, err);
}

/*
 * A read-only bind on .git/hooks does not stop `mv .git .git-old` and a new
 * .git/hooks: rename only refuses a mount point itself. So the first
 * component below the workspace of every protected path is bound onto
 * itself (keeping its flags): a mount point cannot be renamed or removed.
 */
static int protect_anchors(int rootfd, const SbxPlan *p, SbxError *err)
{
        const char *ws = p->binds[0].path;
        size_t wl = streq(ws, "/") ? 0 : strlen(ws);
        _cleanup_strv_free_ char **done = NULL;

        STRV_FOREACH (s, p->protect) {
                _cleanup_free_ char *top = NULL;
                const char *rest = *s + wl + 1, *slash = strchr(rest, '/');
                _cleanup_close_ int target = -EBADF, mnt = -EBADF;

                if (!slash)
                        continue; /* the protected path is itself at the top: its own bind */
                top = strndup(*s, (size_t)(slash - *s));
                if (!top)
                        return -ENOMEM;
                if (strv_contains(done, top))
                        continue;
                target = openat2_nofollow(rootfd, top + 1, O_PATH | O_DIRECTORY, RESOLVE_BENEATH);
                if (target == -ENOTDIR) {
                        /*
                         * A file where a protected directory's parent should be:
                         * in a git worktree or submodule ".git" is a "gitdir:"
                         * file, and rewriting it would point the human's git at
                         * hooks of the agent's making. Read-only, like the rest.
                         */
                        int r = protect_path(rootfd, top, err);
                        if (r < 0)
                                return r;
                        if (strv_consume(&done, TAKE_PTR(top)) < 0)
                                return -ENOMEM;
                        continue;
                }
                if (target < 0)
                        continue; /* gone: nothing to rename under it */
                mnt = open_tree(target, "",
                                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
                if (mnt < 0)
                        return MNT_FAIL(err, "cannot anchor %s: %m", top);
                int r = attach(mnt, target, top, err);
                if (r < 0)
                        return r;
                if (strv_consume(&done, TAKE_PTR(top)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int write_file_at(int rootfd, const char *abs, const char *text, SbxError *err)
{
        _cleanup_close_ int dir = -EBADF;
        _cleanup_free_ char *parent = strdup(abs);
        char *slash;
        int fd, r;

        if (!parent)
                return -ENOMEM;
        slash = strrchr(parent, '/');
        *slash = '\0';
        dir = open_mountpoint(rootfd, *parent ? parent : "/", true, err);
        if (dir < 0)
                return dir;
        {
                char p[64];
                _cleanup_close_ int d = -EBADF;
                snprintf(p, sizeof p, "/proc/self/fd/%d", dir);
                d = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (d < 0)
                        return MNT_FAIL(err, "cannot open %s: %m", parent);
                fd = openat(d, slash + 1, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
                            0444);
        }
        if (fd < 0)
                return MNT_FAIL(err, "cannot write %s: %m", abs);
        r = write_all(fd, text, strlen(text));
        close(fd);
        if (r < 0)
                return sbx_fail(err, 71, r, "cannot write %s", abs);
        return 0;
}

/* The sandbox's resolv.conf: a file in our tmpfs, or bound over the host's read-only one. */
static int setup_resolv_conf(int rootfd, const SbxPlan *p, SbxError *err)
{
        _cleanup_close_ int src_mnt = -EBADF, fsfd = -EBADF, target = -EBADF;
        int fd, r;

        if (!p->resolv_conf)
                return 0;
        if (!streq(p->resolv_target, "/etc/resolv.conf"))
                return write_file_at(rootfd, p->resolv_target, p->resolv_conf, err);
        fsfd = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fsfd < 0 || fsconfig(fsfd, FSCONFIG_SET_STRING, "size", "64k", 0) < 0 ||
            fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return MNT_FAIL(err, "cannot create the tmpfs for resolv.conf: %m");
        src_mnt = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (src_mnt < 0)
                return MNT_FAIL(err, "cannot mount the tmpfs for resolv.conf: %m");
        fd = openat(src_mnt, "resolv.conf", O_CREAT | O_WRONLY | O_CLOEXEC, 0444);
        if (fd < 0)
                return MNT_FAIL(err, "cannot create resolv.conf: %m");
        r = write_all(fd, p->resolv_conf, strlen(p->resolv_conf));
        close(fd);
        if (r < 0)
                return sbx_fail(err, 71, r, "cannot write resolv.conf");
        {
                _cleanup_close_ int clone =
                        open_tree(src_mnt, "resolv.conf", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
                if (clone < 0 || mount_setattr(clone, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
                        return MNT_FAIL(err, "cannot prepare resolv.conf: %m");
                target = openat2_nofollow(rootfd, "etc/resolv.conf", O_PATH, RESOLVE_BENEATH);
                if (target < 0)
                        return sbx_fail(err, 71, target, "cannot open /etc/resolv.conf inside");
                return attach(clone, target, "/etc/resolv.conf", err);
        }
}

static int clone_session_socket(const char *host_path, SbxError *err)
{
        _cleanup_close_ int src = -EBADF;
        int mnt;

        src = openat2_nofollow(AT_FDCWD, host_path, O_PATH, 0);
        if (src < 0)
                return sbx_fail(err, 71, src, "session socket %s: %s — is airlockd running?",
                                host_path, strerror(-src));
        mnt = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (mnt < 0)
                return MNT_FAIL(err, "cannot clone the session socket %s: %m", host_path);
        return mnt;
}

static int bind_session_socket(int rootfd, int mnt_fd, SbxError *err)
{
        _cleanup_close_ int mnt = mnt_fd, target = -EBADF;

        target = open_mountpoint(rootfd, SBX_SESSION_SOCKET_PATH, false, err);
        if (target < 0)
                return target;
        return attach(mnt, target, SBX_SESSION_SOCKET_PATH, err);
}

int sbx_mounts_bind_session(SbxPlan *p, SbxError *err)
{
        _cleanup_close_ int sock = -EBADF, mnt = -EBADF, rootfd = -EBADF;
        int dir = p->session_dir_mnt; /* closed after the agent's start (dissolving it waits) */
        struct stat st;

        if (!p->session_name)
                return 0;
        if (dir < 0)
                return sbx_fail(err, 71, -ENOENT,
                                "the broker's session directory %s did not exist when this warm "
                                "sandbox was built — restart airlock pool after airlockd, or run "
                                "with --no-pool",
                                p->cfg->session_dir ? p->cfg->session_dir : "(none)");
        if (strchr(p->session_name, '/') || streq(p->session_name, ".") ||
            streq(p->session_name, ".."))
                return sbx_fail(err, 71, -EINVAL, "bad session socket name '%s'", p->session_name);
        sock = openat2_nofollow(dir, p->session_name, O_PATH, RESOLVE_BENEATH);
        if (sock < 0)
                return sbx_fail(err, 71, sock, "session socket %s/%s: %s — is airlockd running?",
                                p->cfg->session_dir, p->session_name, strerror(-sock));
        if (fstat(sock, &st) < 0 || !S_ISSOCK(st.st_mode))
                return sbx_fail(err, 71, -ENOTSOCK, "%s/%s is not the broker's session socket",
                                p->cfg->session_dir, p->session_name);
        mnt = open_tree(sock, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (mnt < 0)
                return MNT_FAIL(err, "cannot clone the session socket %s/%s: %m",
                                p->cfg->session_dir, p->session_name);
        rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return MNT_FAIL(err, "cannot open the sandbox's root: %m");
        return bind_session_socket(rootfd, TAKE_FD(mnt), err);
}

bool sbx_under_a_bind(const SbxPlan *p, const char *path)
{
        for (size_t i = 0; i < p->n_binds; i++)
                if (sbx_path_startswith(path, p->binds[i].path))
                        return true;
        return false;
}

void sbx_mounts_ctx_done(SbxMountsCtx *m)
{
        safe_close(m->rootfd);
        safe_close(m->session_socket);
        safe_close(m->session_dir);
        for (size_t i = 0; m->bind_fds && i < m->n_binds; i++)
                safe_close(m->bind_fds[i]);
        for (size_t i = 0; m->mask_fds && i < m->n_masks; i++)
                safe_close(m->mask_fds[i]);
        for (size_t i = 0; m->region_fds && i < m->n_regions; i++)
                safe_close(m->region_fds[i]);
        free(m->bind_fds);
        free(m->mask_fds);
        free(m->region_fds);
        *m = (SbxMountsCtx){ .rootfd = -EBADF, .session_socket = -EBADF, .session_dir = -EBADF };
}

/*
 * First phase, in pid 1 of the sandbox, which holds every capability of
 * the new user namespace (and none on the host), and, when started by
 * root, still the host root's uid: so it can still traverse directories
 * like /root to find the secrets to mask. It creates no file (it could not:
 * its uid is not mapped). Every mount lives in the sandbox's own mount
 * namespace; propagation is private both ways, so nothing leaks to the host
 * and no later host mount can uncover a mask.
 */
int sbx_mounts_begin(const SbxPlan *p, SbxMountsCtx *m, SbxError *err)
{
        _cleanup_close_ int tree = -EBADF;
        struct mount_attr ro = { .attr_set =
                                         MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                                 .propagation = MS_PRIVATE };

        *m = (SbxMountsCtx){ .rootfd = -EBADF, .session_socket = -EBADF, .session_dir = -EBADF };
        m->bind_fds = calloc(p->n_binds + 1, sizeof(int));
        if (!m->bind_fds)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_binds; i++)
                m->bind_fds[i] = -EBADF;
        m->n_binds = p->n_binds;

        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return MNT_FAIL(err, "cannot make the mount namespace private: %m");
        /* Sources from the original tree, before anything covers a part of it. */
        for (size_t i = 0; i < p->n_binds; i++) {
                m->bind_fds[i] = clone_bind_source(&p->binds[i], err);
                if (m->bind_fds[i] < 0)
                        return m->bind_fds[i];
        }
        if (p->cfg->take && p->cfg->session_dir) {
                /*
                 * A warm sandbox meets its broker session only at the take:
                 * a clone of the sessions' directory now (it shows the
                 * sockets created later), the socket's own bind then.
                 */
                m->session_dir =
                        open_tree(AT_FDCWD, p->cfg->session_dir,
                                  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
                if (m->session_dir < 0 && errno != ENOENT)
                        return MNT_FAIL(err, "cannot clone the broker's session directory %s: %m",
                                        p->cfg->session_dir);
        } else if (p->cfg->session_socket) {
                m->session_socket = clone_session_socket(p->cfg->session_socket, err);
                if (m->session_socket < 0)
                        return m->session_socket;
        }
        /* The whole host tree, cloned and read-only in one recursive step. */
        tree = open_tree(AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0)
                return MNT_FAIL(err, "cannot clone the host's mount tree: %m");
        if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &ro, sizeof ro) < 0)
                return MNT_FAIL(err, "cannot make the host's tree read-only: %m");
        /* Attach it somewhere in our private copy so we can work in it, then pivot into it. */
        if (move_mount(tree, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return MNT_FAIL(err, "cannot attach the sandbox's root: %m");
        m->rootfd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (m->rootfd < 0)
                return MNT_FAIL(err, "cannot open the sandbox's root: %m");
        return 0;
}

/*
 * Secrets outside the binds: opened once the masks have arrived, before
 * pid 1 leaves the host root's uid, while directories like /root are
 * still searchable.
 */
/*
 * Each region of the open guard bound onto itself (with the host's mounts
 * beneath it): a mount of the sandbox's own, which the parent marks. Done
 * before the masks are opened, so that they go on top of it.
 */
static int bind_regions(const SbxPlan *p, SbxMountsCtx *m, SbxError *err)
{
        for (size_t i = 0; i < m->n_regions; i++) {
                _cleanup_close_ int tree = open_tree(m->region_fds[i], "",
                                                     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                                                             AT_RECURSIVE | AT_EMPTY_PATH);
                if (tree < 0 || move_mount(tree, "", m->region_fds[i], "",
                                           MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        return MNT_FAIL(err,
                                        "open guard: cannot bind %s onto itself inside: %m — "
                                        "run again; if it persists, 'findmnt -T %s' shows the "
                                        "mount in the way",
                                        p->guard_regions[i], p->guard_regions[i]);
                m->region_fds[i] = safe_close(m->region_fds[i]);
        }
        return 0;
}

int sbx_mounts_open_masks(const SbxPlan *p, SbxMountsCtx *m, SbxError *err)
{
        int r;

        /* The open guard's regions (guard.c): canonical directories, no symlink on the way. */
        m->n_regions = strv_length(p->guard_regions);
        m->region_fds = calloc(m->n_regions + 1, sizeof(int));
        if (!m->region_fds)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_regions; i++)
                m->region_fds[i] = -EBADF;
        for (size_t i = 0; i < m->n_regions; i++) {
                const char *rel = p->guard_regions[i] + 1;
                m->region_fds[i] =
                        openat2_nofollow(m->rootfd, rel, O_PATH | O_DIRECTORY, RESOLVE_BENEATH);
                if (m->region_fds[i] < 0)
                        return sbx_fail(err, 71, m->region_fds[i],
                                        "open guard: cannot open %s inside: %s — it changed "
                                        "while airlock started; run again",
                                        p->guard_regions[i], strerror(-m->region_fds[i]));
        }
        r = bind_regions(p, m, err);
        if (r < 0)
                return r;

        m->mask_fds = calloc(p->n_masks + 1, sizeof(int));
        if (!m->mask_fds)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_masks; i++)
                m->mask_fds[i] = -EBADF;
        m->n_masks = p->n_masks;
        for (size_t i = 0; i < p->n_masks; i++) {
                if (sbx_under_a_bind(p, p->masks[i].path))
                        continue;
                m->mask_fds[i] = open_mask_target(m->rootfd, &p->masks[i], err);
                if (m->mask_fds[i] < 0 && m->mask_fds[i] != -ENOENT)
                        return m->mask_fds[i];
        }
        return 0;
}

/* Second phase, as the agent's uid (still with the namespace's capabilities). */
int sbx_mounts_finish(const SbxPlan *p, SbxMountsCtx *m, SbxError *err)
{
        _cleanup_close_ int masks = -EBADF;
        int rootfd = m->rootfd;
        char path[64];
        int r;

        /* Fresh /proc of our pid namespace: no other process of the host is visible. */
        {
                _cleanup_close_ int t =
                        openat2_nofollow(rootfd, "proc", O_PATH | O_DIRECTORY, RESOLVE_BENEATH);
                if (t < 0)
                        return sbx_fail(err, 71, t, "cannot open /proc inside");
                snprintf(path, sizeof path, "/proc/self/fd/%d", t);
                if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                          NULL) < 0)
                        return MNT_FAIL(err, "cannot mount /proc: %m");
        }
        r = setup_dev(rootfd, tmpfs_size(p), err);
        if (r < 0)
                return r;
        r = mount_tmpfs(rootfd, "/tmp", "1777", tmpfs_size(p), err);
        if (r < 0)
                return r;
        r = mount_tmpfs(rootfd, "/run", "0755", tmpfs_size(p), err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 2; i++) {
                static const char *const more[] = { "var/tmp", "var/run" };
                struct stat st;
                if (fstatat(rootfd, more[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue; /* absent, or a symlink into /run or /tmp: already covered */
                r = mount_tmpfs(rootfd, more[i][4] == 't' ? "/var/tmp" : "/var/run",
                                more[i][4] == 't' ? "1777" : "0755", tmpfs_size(p), err);
                if (r < 0)
                        return r;
        }
        {
                _cleanup_close_ int u = open_mountpoint(rootfd, "/run/user", true, err);
                if (u < 0)
                        return u;
        }
        for (size_t i = 0; i < p->n_binds; i++) {
                r = bind_path(rootfd, TAKE_FD(m->bind_fds[i]), &p->binds[i], err);
                if (r < 0)
                        return r;
        }
        r = protect_anchors(rootfd, p, err);
        if (r < 0)
                return r;
        STRV_FOREACH (s, p->protect) {
                r = protect_path(rootfd, *s, err);
                if (r < 0)
                        return r;
        }
        masks = make_mask_source(err);
        if (masks < 0)
                return masks;
        for (size_t i = 0; i < p->n_masks; i++) {
                int t = m->mask_fds[i];
                m->mask_fds[i] = -EBADF;
                if (t == -EBADF && sbx_under_a_bind(p, p->masks[i].path))
                        t = open_mask_target(rootfd, &p->masks[i], err);
                if (t == -ENOENT || t == -EBADF)
                        continue;
                if (t < 0)
                        return t;
                r = apply_mask(t, masks, &p->masks[i], err);
                if (r < 0)
                        return r;
        }
        if (m->session_socket >= 0) {
                r = bind_session_socket(rootfd, TAKE_FD(m->session_socket), err);
                if (r < 0)
                        return r;
        }
        r = setup_resolv_conf(rootfd, p, err);
        if (r < 0)
                return r;

        /* Into the new root; the old one is detached, leaving nothing of it reachable. */
        if (fchdir(rootfd) < 0)
                return MNT_FAIL(err, "cannot enter the sandbox's root: %m");
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                return MNT_FAIL(err, "pivot_root failed: %m");
        if (umount2(".", MNT_DETACH) < 0)
                return MNT_FAIL(err, "cannot detach the host's root: %m");
        if (chdir("/") < 0)
                return MNT_FAIL(err, "chdir / failed: %m");
        if (p->home && sbx_path_startswith(p->home, "/tmp") && mkdir(p->home, 0700) < 0 &&
            errno != EEXIST)
                return MNT_FAIL(err, "cannot create the agent's home %s: %m", p->home);
        return 0;
}

int sbx_loopback_up(SbxError *err)
{
        struct ifreq ifr = { 0 };
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return MNT_FAIL(err, "cannot open a socket to configure loopback: %m");
        strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return MNT_FAIL(err, "cannot read loopback flags: %m");
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return MNT_FAIL(err, "cannot bring loopback up: %m");
        return 0;
}

/* ---- secrets that appear during the session ---------------------------------------------- */

/*
 * Masks are mounts on the files that existed at launch. A secret created
 * later (corosync-keygen writing authkey) or replaced by rename (key
 * rotation, passwd rewriting /etc/shadow) would be visible inside. The
 * parent watches the directory of every secret glob and ends the session
 * the moment a matching name is created or renamed into place: fail closed
 * (there is a window of milliseconds between the host's rename and the
 * kill; documented in airlock(1)).
 */
static uint32_t str_hash(const char *s)
{
        uint32_t h = 2166136261U; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 16777619U;
        return h;
}

/*
 * Returns 1 when the same (directory, name, final) is watched already (no
 * new entry), 0 when added (or the directory cannot be watched), -errno.
 */
static int add_watch(SbxPlan *p, const char *dir, const char *name_glob, bool final)
{
        uint32_t h = str_hash(dir);
        int wd = -1;

        /*
         * Many globs share a directory (every "~/" glob in each home, and
         * every ancestor of every secret): one inotify_add_watch per
         * directory, the same watch for each glob, and one entry per
         * (directory, name). A directory replaced in between ends the
         * session anyway (the first watch sees IN_MOVE_SELF or
         * IN_DELETE_SELF).
         */
        for (size_t i = 0; i < p->n_watches; i++) {
                const SbxWatch *w = &p->watches[i];
                if (w->dir_hash != h || !streq(w->dir, dir))
                        continue;
                if (w->final == final && streq(w->name, name_glob))
                        return 1;
                wd = w->wd;
        }
        if (wd < 0)
                wd = inotify_add_watch(p->inotify_fd, dir,
                                       IN_CREATE | IN_MOVED_TO | IN_MOVE_SELF | IN_DELETE_SELF |
                                               IN_ONLYDIR | IN_DONT_FOLLOW);
        if (wd < 0)
                return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 0 : -errno;
        if (p->n_watches >= p->watches_cap) {
                size_t cap = p->watches_cap ? p->watches_cap * 2 : 64;
                SbxWatch *t = realloc(p->watches, sizeof(SbxWatch) * cap);
                if (!t)
                        return -ENOMEM;
                p->watches = t;
                p->watches_cap = cap;
        }
        p->watches[p->n_watches] = (SbxWatch){ .wd = wd,
                                               .dir_hash = h,
                                               .dir = strdup(dir),
                                               .name = strdup(name_glob),
                                               .final = final };
        if (!p->watches[p->n_watches].dir || !p->watches[p->n_watches].name) {
                free(p->watches[p->n_watches].dir);
                free(p->watches[p->n_watches].name);
                return -ENOMEM;
        }
        p->n_watches++;
        return 0;
}

static int watch_glob(SbxPlan *p, const char *g)
{
        _cleanup_free_ char *dir = strdup(g);
        const char *name;
        char *slash;
        size_t n;

        if (!dir)
                return -ENOMEM;
        n = strlen(dir);
        if (n > 3 && streq(dir + n - 3, "/**"))
                dir[n - 3] = '\0'; /* a directory secret: watch for the directory appearing */
        if (strstr(dir, "**"))
                return 0; /* a tree walk: not watched (documented) */
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        name = slash + 1;
        if (strpbrk(dir, "*?[{"))
                return 0; /* wildcard directories: not watched (documented) */
        /* The directory, or the nearest existing ancestor, watching for the next component. */
        for (bool final = true;; final = false) {
                struct stat st;
                int r;

                if (stat(dir, &st) == 0) {
                        r = add_watch(p, dir, name, final);
                        if (r == 1)
                                return 0; /* and its ancestors with it */
                        /*
                         * Every ancestor up to / too, for IN_MOVE_SELF and
                         * IN_DELETE_SELF only (the name "" matches no entry):
                         * `mv deep deep.old; mkdir -p deep/conf` moves no
                         * watched directory but an ancestor of one, and the
                         * new path is watched and masked by nothing (F19).
                         */
                        while (r >= 0 && (slash = strrchr(dir, '/')) && slash != dir) {
                                *slash = '\0';
                                r = add_watch(p, dir, "", false);
                                if (r == 1)
                                        return 0; /* watched already, and so its ancestors */
                        }
                        return r < 0 ? r : 0;
                }
                slash = strrchr(dir, '/');
                if (!slash || slash == dir)
                        return 0;
                *slash = '\0';
                name = slash + 1;
        }
}

int sbx_watch_secrets(SbxPlan *p, SbxError *err)
{
        p->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (p->inotify_fd < 0)
                return sbx_fail(err, 71, -errno,
                                "cannot watch the secrets' directories (inotify): %m — raise "
                                "fs.inotify.max_user_instances");
        STRV_FOREACH (g, p->cfg->secret_globs) {
                int r = 0;
                if (strneq(*g, "~/", 2)) {
                        STRV_FOREACH (h, p->homes) {
                                _cleanup_free_ char *abs = NULL;
                                if (asprintf(&abs, "%s/%s", *h, *g + 2) < 0)
                                        return -ENOMEM;
                                r = watch_glob(p, abs);
                                if (r < 0)
                                        break;
                        }
                } else
                        r = watch_glob(p, *g);
                if (r < 0)
                        return sbx_fail(err, 71, r,
                                        "cannot watch the directory of secret %s: %s — raise "
                                        "fs.inotify.max_user_watches",
                                        *g, strerror(-r));
        }
        return 0;
}

/* Reads pending events and calls fn for each that names a secret; stops at fn's first error. */
int sbx_watch_drain(SbxPlan *p, SbxWatchFn fn, void *userdata)
{
        char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t n;

        while ((n = read(p->inotify_fd, buf, sizeof buf)) > 0)
                for (char *q = buf; q < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *)q;
                        q += sizeof *ev + ev->len;
                        if (ev->mask & (IN_MOVE_SELF | IN_DELETE_SELF)) {
                                /*
                                 * A watched directory moved or went away: a new
                                 * one under its name is watched by nobody and
                                 * masked by nothing (mv /etc/x /etc/x.old; mkdir
                                 * /etc/x). Not a case to mend: end the session.
                                 */
                                for (size_t i = 0; i < p->n_watches; i++)
                                        if (p->watches[i].wd == ev->wd) {
                                                int r = fn(p->watches[i].dir, false, userdata);
                                                if (r < 0)
                                                        return r;
                                                break;
                                        }
                                continue;
                        }
                        if (ev->len == 0)
                                continue;
                        for (size_t i = 0; i < p->n_watches; i++) {
                                _cleanup_free_ char *path = NULL;
                                int r;

                                if (p->watches[i].wd != ev->wd ||
                                    fnmatch(p->watches[i].name, ev->name, 0) != 0)
                                        continue;
                                if (asprintf(&path, "%s/%s", p->watches[i].dir, ev->name) < 0)
                                        return -ENOMEM;
                                r = fn(path, p->watches[i].final, userdata);
                                if (r < 0)
                                        return r;
                                break;
                        }
                }
        return 0;
}
