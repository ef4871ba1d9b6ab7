/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The open guard (started by root): closes the window between a secret
 * appearing on the host during the session and its mask (F4). A key
 * renamed into place is whole at once; an agent that opens the name in a
 * loop would get it before any watcher could react. So the directories in
 * which a secret may appear ("regions": each secret glob's fixed leading
 * directory, or its nearest existing ancestor) are bound onto themselves
 * inside the sandbox, and those sandbox-only mounts carry a fanotify
 * FAN_OPEN_PERM mark: every open through them waits for the session
 * helper, which refuses (EPERM) a path that a secret glob matches (or lies
 * beneath), another name of a secret's file, and allows anything else. The
 * marks sit on the sandbox's own copies of the mounts, so no host process
 * is ever slowed or stopped by them; files elsewhere (/usr/include, the
 * workspace) are not guarded and cost nothing.
 *
 * An allowed file readable by everyone is remembered (remember()): its
 * next opens do not wait for the helper until its content changes.
 *
 * Not guarded (the watcher alone, as before): a region that would be "/"
 * itself (a home of "/" in passwd), a path through a symlink, anything
 * under the sandbox's own tmpfs directories and writable binds. An
 * ordinary user cannot create the fanotify group (CAP_SYS_ADMIN): no guard
 * then.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/macros.h"
#include "common/util.h"
#include "policy/policy.h"
#include "sandbox/sandbox-internal.h"

/* More regions than this are merged into their parents (a passwd with thousands of homes). */
#define GUARD_MAX_REGIONS 32

/* Ignore marks per session at most (a few MiB of kernel memory; see remember()). */
#define GUARD_MAX_REMEMBERED 16384

static bool has_wildcard(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (strchr("*?[{", s[i]))
                        return true;
        return false;
}

/* The glob's leading directory without a wildcard (/etc/ssl/private for its "**" glob). */
static char *static_dir(const char *g)
{
        const char *last = g, *s = g;
        char *d;

        while ((s = strchr(s + 1, '/'))) {
                if (has_wildcard(last, (size_t)(s - last)))
                        break;
                last = s;
        }
        if (!s && !has_wildcard(last, strlen(last))) {
                /* No wildcard at all: the secret's directory. */
                const char *slash = strrchr(g, '/');
                last = slash;
        }
        d = strndup(g, (size_t)(last - g));
        if (d && !d[0]) {
                free(d);
                d = strdup("/");
        }
        return d;
}

/*
 * Does glob g match path exactly? "~/X" matches X beneath any directory:
 * a home made during the session (useradd -m) is not in the launch's list
 * of homes, and refusing a few more names than needed fails closed.
 */
static bool glob_matches(const char *g, const char *path)
{
        if (!strneq(g, "~/", 2))
                return policy_glob_match(g, path, true);
        for (const char *s = path; s; s = strchr(s + 1, '/'))
                if (policy_glob_match(g + 2, s + 1, true))
                        return true;
        return false;
}

/* True if path is a secret by one of the globs, or lies beneath one. */
bool sbx_guard_is_secret(const SbxPlan *p, const char *path)
{
        char buf[PATH_MAX];
        size_t n = strlen(path);

        if (path[0] != '/' || n >= sizeof buf)
                return true; /* not a path we can judge: refuse */
        memcpy(buf, path, n + 1);
        /* The path itself, then each ancestor: a secret directory covers what is beneath it. */
        for (;;) {
                STRV_FOREACH (g, p->cfg->secret_globs)
                        if (glob_matches(*g, buf))
                                return true;
                char *slash = strrchr(buf, '/');
                if (!slash || slash == buf)
                        return false;
                *slash = '\0';
        }
}

static bool in_list(char **l, const char *path)
{
        STRV_FOREACH (s, l)
                if (sbx_path_startswith(path, *s))
                        return true;
        return false;
}

static bool masked(const SbxPlan *p, const char *path)
{
        for (size_t i = 0; i < p->n_masks; i++)
                if (sbx_path_startswith(path, p->masks[i].path))
                        return true;
        return false;
}

/* Keeps only regions no other region contains. */
static void regions_minimize(char **l)
{
        size_t n = strv_length(l), o = 0;

        if (!l)
                return;
        for (size_t i = 0; i < n; i++) {
                bool inner = false;
                for (size_t j = 0; j < n && !inner; j++)
                        if (j != i && l[j] && sbx_path_startswith(l[i], l[j]) &&
                            (!streq(l[i], l[j]) || j < i))
                                inner = true;
                if (inner) {
                        free(l[i]);
                        l[i] = NULL;
                }
        }
        for (size_t i = 0; i < n; i++)
                if (l[i])
                        l[o++] = l[i];
        l[o] = NULL;
}

/*
 * The agent's own writable binds are not guarded (the workspace: every
 * open there would wait). A region under a read-only bind (--ro /etc) is
 * kept: its mark then lands on the bind, which covers it.
 */
static bool under_a_writable_bind(const SbxPlan *p, const char *path)
{
        for (size_t i = 0; i < p->n_binds; i++)
                if (p->binds[i].writable && sbx_path_startswith(path, p->binds[i].path))
                        return true;
        return false;
}

/* d: a candidate (a glob's fixed leading directory); adds its region, if any. */
static int add_region(SbxPlan *p, char *d)
{
        _cleanup_free_ char *real = NULL;
        struct stat st;

        if (in_list(p->guard_regions, d))
                return 0; /* inside a region already: no look needed */
        /* The nearest existing directory: where a secret (or a directory on its way) appears. */
        while (lstat(d, &st) < 0) {
                char *slash = strrchr(d, '/');

                if (errno != ENOENT)
                        return 0; /* not searchable: nothing appears there for the agent */
                if (!slash || slash == d)
                        return 0; /* "/" itself: the watcher only */
                *slash = '\0';
        }
        if (!S_ISDIR(st.st_mode))
                return 0; /* a symlink (or a file) on the way: the watcher only */
        real = realpath(d, NULL);
        if (!real || !streq(real, d) || streq(d, "/"))
                return 0; /* through a symlink: the watcher only */
        if (sbx_hidden_by_tmpfs(p, d) || under_a_writable_bind(p, d) ||
            strv_contains(p->guard_regions, d))
                return 0;
        return strv_extend(&p->guard_regions, d);
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int sbx_guard_prepare(SbxPlan *p, bool for_explain, SbxError *err)
{
        _cleanup_strv_free_ char **candidates = NULL;
        size_t n;
        int r;

        if (!p->privileged) {
                if (strv_extend(&p->weaker,
                                "no open guard (not started by root): a secret renamed into "
                                "place during the session may be read before it is masked") < 0)
                        return -ENOMEM;
                return 0;
        }
        /*
         * The candidates, sorted and unique: a parent comes before what
         * lies beneath it, which then needs no system call at all.
         */
        STRV_FOREACH (g, p->cfg->secret_globs) {
                _cleanup_free_ char *d = NULL;
                if (strneq(*g, "~/", 2)) {
                        _cleanup_free_ char *abs = NULL;
                        if (asprintf(&abs, "/%s", *g + 2) < 0)
                                return -ENOMEM;
                        d = static_dir(abs); /* relative to each home */
                        if (!d)
                                return -ENOMEM;
                        STRV_FOREACH (h, p->homes) {
                                char *c;
                                if (asprintf(&c, "%s%s", streq(*h, "/") ? "" : *h,
                                             streq(d, "/") && !streq(*h, "/") ? "" : d) < 0)
                                        return -ENOMEM;
                                if (strv_consume(&candidates, c) < 0)
                                        return -ENOMEM;
                        }
                        continue;
                }
                if ((*g)[0] != '/')
                        continue;
                d = static_dir(*g);
                if (!d || strv_consume(&candidates, TAKE_PTR(d)) < 0)
                        return -ENOMEM;
        }
        /* Where new homes are made (useradd -m): a key in one is judged there too. */
        if (strv_extend(&candidates, "/home") < 0)
                return -ENOMEM;
        n = strv_length(candidates);
        if (n)
                qsort(candidates, n, sizeof(char *), cmp_str);
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && streq(candidates[i], candidates[i - 1]))
                        continue;
                r = add_region(p, candidates[i]);
                if (r < 0)
                        return r;
        }
        regions_minimize(p->guard_regions);
        while (strv_length(p->guard_regions) > GUARD_MAX_REGIONS) {
                bool changed = false;
                STRV_FOREACH (s, p->guard_regions) {
                        char *slash = strrchr(*s, '/');
                        if (slash && slash != *s) {
                                *slash = '\0';
                                changed = true;
                        }
                }
                regions_minimize(p->guard_regions);
                if (!changed)
                        break;
        }
        if (!p->guard_regions || for_explain)
                return 0;

        /*
         * A read-only bind (--ro) inside a region, or over one, is a mount
         * of its own in the sandbox: marked too.
         */
        for (size_t i = 0; i < p->n_binds; i++) {
                bool over = false;
                if (p->binds[i].writable)
                        continue;
                STRV_FOREACH (g, p->guard_regions)
                        if (sbx_path_startswith(*g, p->binds[i].path))
                                over = true;
                if ((over || in_list(p->guard_regions, p->binds[i].path)) &&
                    strv_extend(&p->guard_submounts, p->binds[i].path) < 0)
                        return -ENOMEM;
        }
        /* The host's mounts inside a region (a FUSE /etc/pve): marked one by one. */
        {
                _cleanup_free_ char *text = NULL;
                r = read_full_file("/proc/self/mountinfo", 4 * 1024 * 1024, &text, NULL);
                if (r < 0)
                        return sbx_fail(err, 71, r, "cannot read /proc/self/mountinfo: %s",
                                        strerror(-r));
                for (char *line = text, *next; line && *line; line = next) {
                        char *f[5] = { 0 }, *save = NULL;
                        next = strchr(line, '\n');
                        if (next)
                                *next++ = '\0';
                        f[0] = strtok_r(line, " ", &save);
                        for (int i = 1; i < 5 && f[i - 1]; i++)
                                f[i] = strtok_r(NULL, " ", &save);
                        if (!f[4])
                                continue;
                        sbx_unescape_octal(f[4]);
                        if (!in_list(p->guard_regions, f[4]) ||
                            strv_contains(p->guard_regions, f[4]) || sbx_hidden_by_tmpfs(p, f[4]) ||
                            sbx_under_a_bind(p, f[4]) || strv_contains(p->guard_submounts, f[4]))
                                continue;
                        if (strv_extend(&p->guard_submounts, f[4]) < 0)
                                return -ENOMEM;
                }
        }
        p->guard_fd =
                fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE |
                                      /* remember()'s marks, capped by us, not root's budget */
                                      FAN_UNLIMITED_MARKS,
                              O_RDONLY | O_CLOEXEC | O_LARGEFILE);
        if (p->guard_fd < 0) {
                int e = errno;
                p->guard_regions = strv_free(p->guard_regions);
                p->guard_submounts = strv_free(p->guard_submounts);
                r = -e;
                if (!p->cfg->allow_weaker)
                        return sbx_fail(err, 71, r,
                                        "cannot create the open guard (fanotify permission "
                                        "events: %s) — a kernel with "
                                        "CONFIG_FANOTIFY_ACCESS_PERMISSIONS is needed; pass "
                                        "--allow-weaker to start without it",
                                        strerror(e));
                return strv_extend(&p->weaker,
                                   "no open guard (this kernel has no fanotify permission "
                                   "events): a secret renamed into place during the session "
                                   "may be read before it is masked");
        }
        return 0;
}

/* Drops from l what a mask covers whole: nothing appears there for the agent. */
static void drop_masked(const SbxPlan *p, char **l)
{
        size_t o = 0, k = strv_length(l);

        for (size_t i = 0; i < k; i++)
                if (masked(p, l[i]))
                        free(l[i]);
                else
                        l[o++] = l[i];
        if (l)
                l[o] = NULL;
}

void sbx_guard_masks(SbxPlan *p)
{
        drop_masked(p, p->guard_regions);
        drop_masked(p, p->guard_submounts);
        if (p->guard_regions && !p->guard_regions[0])
                p->guard_regions = strv_free(p->guard_regions);
}

/* In the parent, once pid 1 has pivoted into the sandbox's root. */
int sbx_guard_mark(SbxPlan *p, pid_t pid1, SbxError *err)
{
        char *const *lists[] = { p->guard_regions, p->guard_submounts };

        for (size_t l = 0; l < ELEMENTSOF(lists); l++)
                STRV_FOREACH (s, lists[l]) {
                        char path[PATH_MAX + 32];
                        if ((size_t)snprintf(path, sizeof path, "/proc/%d/root%s", (int)pid1, *s) >=
                            sizeof path)
                                return sbx_fail(err, 71, -ENAMETOOLONG,
                                                "open guard: the path %s is too long to mark — "
                                                "shorten the secret's directory in the policy",
                                                *s);
                        if (fanotify_mark(p->guard_fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_PERM,
                                          AT_FDCWD, path) < 0)
                                return sbx_fail(err, 71, -errno,
                                                "open guard: cannot mark the sandbox's mount "
                                                "of %s: %m — the launch is refused rather than "
                                                "run unguarded; 'findmnt -T %s' shows which "
                                                "filesystem fanotify could not watch: report it",
                                                *s, *s);
                }
        return 0;
}

static int cmp_inode(const void *a, const void *b)
{
        const SbxInode *x = a, *y = b;

        if (x->dev != y->dev)
                return x->dev < y->dev ? -1 : 1;
        return x->ino < y->ino ? -1 : x->ino > y->ino ? 1 : 0;
}

static int append_inode(SbxPlan *p, const struct stat *st)
{
        if (p->n_guard_inodes >= p->guard_inodes_cap) {
                size_t cap = p->guard_inodes_cap ? p->guard_inodes_cap * 2 : 64;
                SbxInode *t = realloc(p->guard_inodes, cap * sizeof(SbxInode));
                if (!t)
                        return -ENOMEM;
                p->guard_inodes = t;
                p->guard_inodes_cap = cap;
        }
        p->guard_inodes[p->n_guard_inodes++] = (SbxInode){ .dev = st->st_dev, .ino = st->st_ino };
        return 0;
}

int sbx_guard_add_inode(SbxPlan *p, const struct stat *st)
{
        int r = append_inode(p, st);

        if (r >= 0)
                qsort(p->guard_inodes, p->n_guard_inodes, sizeof(SbxInode), cmp_inode);
        return r;
}

/*
 * The secrets' files by inode, in the session helper before the first
 * answer: a hard link made during the session (a backup's `cp -al` of
 * /etc) is refused under any name. Files beneath a masked directory too,
 * up to a bound (the rest are still masked under their own names).
 */
#define GUARD_MAX_DIR_ENTRIES 10000 /* per masked directory */

/* The regular files beneath a masked directory, breadth first, up to the bound. */
static int collect_dir(SbxPlan *p, const char *root)
{
        _cleanup_strv_free_ char **dirs = NULL;
        size_t next = 0, seen = 0;

        if (strv_extend(&dirs, root) < 0)
                return -ENOMEM;
        while (dirs[next] && seen < GUARD_MAX_DIR_ENTRIES) {
                const char *dir = dirs[next++]; /* the string stays put when dirs grows */
                DIR *d = opendir(dir);
                struct dirent *de;
                int r = 0;

                if (!d)
                        continue; /* gone, or not a directory now: nothing to link to */
                while (r >= 0 && (de = readdir(d)) && seen < GUARD_MAX_DIR_ENTRIES) {
                        struct stat st;
                        char *sub;

                        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                                continue;
                        seen++;
                        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                                continue;
                        if (S_ISREG(st.st_mode))
                                r = append_inode(p, &st);
                        else if (S_ISDIR(st.st_mode))
                                r = asprintf(&sub, "%s/%s", dir, de->d_name) < 0
                                            ? -ENOMEM
                                            : strv_consume(&dirs, sub);
                }
                closedir(d);
                if (r < 0)
                        return r;
        }
        return 0;
}

int sbx_guard_collect_inodes(SbxPlan *p)
{
        for (size_t i = 0; i < p->n_masks; i++) {
                struct stat st;
                int r = 0;

                if (lstat(p->masks[i].path, &st) < 0)
                        continue;
                if (S_ISREG(st.st_mode))
                        r = append_inode(p, &st);
                else if (S_ISDIR(st.st_mode))
                        r = collect_dir(p, p->masks[i].path);
                if (r < 0)
                        return r;
        }
        if (p->n_guard_inodes)
                qsort(p->guard_inodes, p->n_guard_inodes, sizeof(SbxInode), cmp_inode);
        return 0;
}

static bool secret_inode(const SbxPlan *p, int fd)
{
        struct stat st;
        SbxInode key;

        if (fstat(fd, &st) < 0)
                return true; /* cannot tell: refuse */
        if (!S_ISREG(st.st_mode) || st.st_nlink < 2 || p->n_guard_inodes == 0)
                return false; /* one name only: the path judged it */
        key = (SbxInode){ .dev = st.st_dev, .ino = st.st_ino };
        return bsearch(&key, p->guard_inodes, p->n_guard_inodes, sizeof key, cmp_inode) != NULL;
}

/*
 * After an allowed open (before the answer): an ignore mark on the file's
 * inode, so that its next opens through the guarded mounts raise no event
 * and do not wait for this helper. Every command the agent runs opens the
 * same few files in guarded places (the binary in /usr/bin, /etc/ld.so.cache,
 * /etc/passwd): each wait is a round trip to this process, ~20 us on a busy
 * machine against ~1 us for the open itself.
 *
 * Why the guard loses nothing: the mark only ever lets an open reach an
 * inode that the agent could already open under a name that is not a
 * secret, and an agent that did so could have kept that fd, which reads
 * whatever the inode holds later, renamed or not. The mark is placed only
 * on a regular file that, once marked, reads for everyone (r for owner,
 * group and other, no ACL that could refuse the agent), so this holds even
 * when the allowed open was not the agent's (root through /proc/PID/root).
 * And the kernel drops the mark at the file's next write or truncation
 * (no FAN_MARK_IGNORED_SURV_MODIFY), whatever name it has by then: a key
 * written into a file the agent once read and closed, then renamed into a
 * secret's place, is asked about again and refused. The watcher removes
 * the mark when it masks a new secret (sbx_guard_forget()), so that its
 * other names are refused like any secret's. Evictable marks do not pin
 * inodes; the marks die with the group at the session's end. A kernel
 * that does not know them (before 6.0) or the cap turns remembering off:
 * every open then asks, as before.
 */
static void remember(SbxPlan *p, int fd)
{
        unsigned flags = FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE;
        struct stat st;
        int acl_errno;

        if (p->guard_forgetful)
                return;
        if (p->guard_remembered >= GUARD_MAX_REMEMBERED) {
                p->guard_forgetful = true;
                return;
        }
        if (fanotify_mark(p->guard_fd, flags, FAN_OPEN_PERM, fd, NULL) < 0) {
                /* EINVAL: flags this kernel does not know; anything else: not this file */
                p->guard_forgetful = errno == EINVAL;
                return;
        }
        p->guard_remembered++;
        /* Judged once the mark exists: a change from here on clears it. */
        acl_errno = fgetxattr(fd, "system.posix_acl_access", NULL, 0) < 0 ? errno : 0;
        if ((acl_errno == ENODATA || acl_errno == EOPNOTSUPP) && fstat(fd, &st) == 0 &&
            S_ISREG(st.st_mode) && (st.st_mode & 0444) == 0444)
                return;
        (void)fanotify_mark(p->guard_fd, FAN_MARK_REMOVE | FAN_MARK_IGNORE, FAN_OPEN_PERM, fd,
                            NULL);
}

/* In the session helper, when a secret appeared at path: its file is asked about again. */
void sbx_guard_forget(SbxPlan *p, const char *path)
{
        if (p->guard_fd >= 0 && p->guard_remembered > 0)
                (void)fanotify_mark(p->guard_fd,
                                    FAN_MARK_REMOVE | FAN_MARK_IGNORE | FAN_MARK_DONT_FOLLOW,
                                    FAN_OPEN_PERM, AT_FDCWD, path);
}

/*
 * In the session helper: answers every pending open. The decision needs
 * only the path the opener used (as the sandbox sees it); anything that
 * cannot be judged is refused.
 */
int sbx_guard_answer(SbxPlan *p)
{
        char buf[4096] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
        ssize_t n;

        while ((n = read(p->guard_fd, buf, sizeof buf)) > 0) {
                const struct fanotify_event_metadata *m = (const void *)buf;
                for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
                        struct fanotify_response resp = { .fd = m->fd, .response = FAN_DENY };
                        char link[64], path[PATH_MAX];
                        ssize_t k;

                        if (m->vers != FANOTIFY_METADATA_VERSION)
                                return -EPROTO;
                        if (m->fd < 0)
                                continue; /* an overflow notice: nothing waits on it */
                        snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
                        k = readlink(link, path, sizeof path - 1);
                        if (k > 0 && (size_t)k < sizeof path - 1) { /* else cut short: refused */
                                static const char deleted[] = " (deleted)";
                                path[k] = '\0';
                                if ((size_t)k > sizeof deleted - 1 &&
                                    streq(path + k - (sizeof deleted - 1), deleted))
                                        path[k - (sizeof deleted - 1)] = '\0';
                                if (!sbx_guard_is_secret(p, path) && !secret_inode(p, m->fd)) {
                                        remember(p, m->fd);
                                        resp.response = FAN_ALLOW;
                                }
                        }
                        if (write(p->guard_fd, &resp, sizeof resp) < 0) {
                                int e = errno;
                                close(m->fd);
                                return -e;
                        }
                        close(m->fd);
                }
        }
        return n < 0 && errno != EAGAIN ? -errno : 0;
}
