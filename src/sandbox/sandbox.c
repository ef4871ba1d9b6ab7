/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The parent side of `airlock run`: prepares everything that can be
 * prepared (and refused) before anything starts, clones pid 1 of the
 * sandbox into new namespaces, writes its uid/gid maps, places it in the
 * session's cgroup, waits for the agent's exec (or for the reason the
 * launch was refused), then relays the terminal and signals until the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "config.h"
#include "sandbox/sandbox-internal.h"
#include "sandbox/unotify.h"

void sbx_timing(const char *phase)
{
        static int enabled = -1;
        static uint64_t t0;
        uint64_t now;

        if (enabled < 0) {
                const char *e = getenv("AIRLOCK_DEBUG_TIMING");
                /* "abs": the monotonic clock itself, to line up several processes' lines */
                enabled = e && (streq(e, "1") || streq(e, "abs"));
                t0 = e && streq(e, "abs") ? 0 : now_monotonic_usec();
        }
        if (!enabled)
                return;
        now = now_monotonic_usec();
        fprintf(stderr, "airlock: timing: %6.3f ms %s (pid %d)\n", (double)(now - t0) / 1000.0,
                phase, (int)getpid());
}

int sbx_fail(SbxError *err, int exit_code, int r, const char *fmt, ...)
{
        int saved = errno;

        if (err) {
                va_list ap;
                err->exit_code = exit_code;
                errno = r < 0 ? -r : saved; /* for %m in fmt */
                va_start(ap, fmt);
                vsnprintf(err->message, sizeof err->message, fmt, ap);
                va_end(ap);
        }
        errno = saved;
        return r < 0 ? r : -EINVAL;
}

bool sbx_agent_name_valid(const char *name)
{
        size_t n;

        if (isempty(name) || name[0] == '.' || name[0] == '-')
                return false;
        n = strlen(name);
        if (n > 64)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = name[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
                        return false;
        }
        return true;
}

int sbx_new_session_id(char *buf, size_t size)
{
        uint8_t raw[16];

        if (size < 33)
                return -ENOBUFS;
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
                return -errno;
        for (size_t i = 0; i < sizeof raw; i++)
                snprintf(buf + 2 * i, 3, "%02x", raw[i]);
        return 0;
}

/*
 * The agent user, created on first use. useradd runs by argv (no shell),
 * with an empty environment, and only when getpwnam() says the user does
 * not exist: every later run costs one getpwnam().
 */
/*
 * One pass over /etc/passwd (fgetpwent, not NSS: the systemd/userdb
 * modules cost a millisecond per scan): the home directories that exist,
 * for "~/" secrets and the workspace check, and the agent user's entry.
 */
static int scan_passwd(SbxPlan *p, const char *agent_user, uid_t *ret_uid, gid_t *ret_gid)
{
        FILE *f;
        struct passwd *pw;
        int found = 0;

        if (strv_extend(&p->homes, "/root") < 0)
                return -ENOMEM;
        f = fopen("/etc/passwd", "re");
        if (!f)
                return 0;
        while ((pw = fgetpwent(f))) {
                struct stat st;
                if (agent_user && streq(pw->pw_name, agent_user)) {
                        *ret_uid = pw->pw_uid;
                        *ret_gid = pw->pw_gid;
                        found = 1;
                }
                if (isempty(pw->pw_dir) || pw->pw_dir[0] != '/' || streq(pw->pw_dir, "/") ||
                    strv_contains(p->homes, pw->pw_dir))
                        continue;
                if (stat(pw->pw_dir, &st) < 0 || !S_ISDIR(st.st_mode))
                        continue; /* /nonexistent and friends: nothing to mask there */
                /*
                 * Where the home really is (/home/u may be a symlink to
                 * /data/u): watches, the open guard and the workspace check
                 * all work on canonical paths.
                 */
                _cleanup_free_ char *real = realpath(pw->pw_dir, NULL);
                if (!real || streq(real, "/") || strv_contains(p->homes, real))
                        continue;
                if (strv_consume(&p->homes, TAKE_PTR(real)) < 0) {
                        fclose(f);
                        return -ENOMEM;
                }
        }
        fclose(f);
        return found;
}

static int ensure_agent_user(SbxPlan *p, bool create, SbxError *err)
{
        const char *name = p->cfg->agent_user ? p->cfg->agent_user : AIRLOCK_AGENT_USER;
        struct passwd *pw = NULL, local;
        uid_t uid = 0;
        gid_t gid = 0;
        int r;

        r = scan_passwd(p, name, &uid, &gid);
        if (r < 0)
                return r;
        if (r > 0) {
                local = (struct passwd){ .pw_name = (char *)name, .pw_uid = uid, .pw_gid = gid };
                pw = &local;
        } else
                pw = getpwnam(name); /* not local: ask NSS */

        if (!pw && create) {
                char *const argv[] = { (char *)"/usr/sbin/useradd",
                                       (char *)"--system",
                                       (char *)"--no-create-home",
                                       (char *)"--home-dir",
                                       (char *)"/nonexistent",
                                       (char *)"--shell",
                                       (char *)"/usr/sbin/nologin",
                                       (char *)"--user-group",
                                       (char *)name,
                                       NULL };
                char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
                int st;
                pid_t pid;

                fprintf(stderr,
                        "airlock: run: creating system user '%s' for the agent (first run)\n",
                        name);
                pid = fork();
                if (pid < 0)
                        return sbx_fail(err, 71, -errno, "cannot fork useradd: %m");
                if (pid == 0) {
                        execve(argv[0], argv, envp);
                        _exit(127);
                }
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        return sbx_fail(err, 71, -EIO,
                                        "useradd %s failed (status %d) — create the user by hand: "
                                        "useradd --system --no-create-home --shell "
                                        "/usr/sbin/nologin %s",
                                        name, WIFEXITED(st) ? WEXITSTATUS(st) : -1, name);
                pw = getpwnam(name);
        }
        if (!pw) {
                if (!create) { /* --explain: say what would happen */
                        p->uid = 65533;
                        p->gid = 65533;
                        return 0;
                }
                return sbx_fail(err, 71, -ENOENT,
                                "the agent user %s does not exist — create it: useradd --system "
                                "--no-create-home --shell /usr/sbin/nologin %s",
                                name, name);
        }
        if (pw->pw_uid == 0 || pw->pw_gid == 0)
                return sbx_fail(err, 71, -EPERM,
                                "the agent user %s has uid or gid 0 — it must be an unprivileged "
                                "system user",
                                name);
        p->uid = pw->pw_uid;
        p->gid = pw->pw_gid;
        return 0;
}

static bool env_allowed(const SbxConfig *c, const char *entry)
{
        static const char *const base[] = { "PATH", "HOME", "TERM", "LANG", "COLORTERM", "TZ" };
        size_t n = strcspn(entry, "=");

        if (entry[n] != '=')
                return false;
        if (strneq(entry, "LC_", 3))
                return true;
        for (size_t i = 0; i < ELEMENTSOF(base); i++)
                if (strlen(base[i]) == n && strneq(entry, base[i], n))
                        return true;
        STRV_FOREACH (s, c->env_allow)
                if (strlen(*s) == n && strneq(entry, *s, n))
                        return true;
        return false;
}

extern char **environ;

/* The agent's environment: from, filtered by the allowlist, and airlock's own variables. */
static int build_env(SbxPlan *p, char *const *from, bool session)
{
        const SbxConfig *c = p->cfg;
        _cleanup_strv_free_ char **env = calloc(1, sizeof(char *));
        bool have_path = false;
        char *s;

        if (!env)
                return -ENOMEM;
        for (char *const *e = from; e && *e; e++) {
                if (strneq(*e, "HOME=", 5) || strneq(*e, "AIRLOCK_", 8))
                        continue;
                if (env_allowed(c, *e)) {
                        if (strneq(*e, "PATH=", 5))
                                have_path = true;
                        if (strv_extend(&env, *e) < 0)
                                return -ENOMEM;
                }
        }
        if (!have_path &&
            strv_extend(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") <
                    0)
                return -ENOMEM;
        if (asprintf(&s, "HOME=%s", p->home) < 0 || strv_consume(&env, s) < 0)
                return -ENOMEM;
        if (asprintf(&s, "AIRLOCK_AGENT=%s", c->agent) < 0 || strv_consume(&env, s) < 0)
                return -ENOMEM;
        if (asprintf(&s, "AIRLOCK_SESSION_ID=%s", c->session_id) < 0 || strv_consume(&env, s) < 0)
                return -ENOMEM;
        if (session && strv_extend(&env, "AIRLOCK_SESSION_SOCKET=" SBX_SESSION_SOCKET_PATH) < 0)
                return -ENOMEM;
        strv_free(p->envp);
        p->envp = TAKE_PTR(env);
        return 0;
}

int sbx_plan_prepare_launch(SbxPlan *p, const SbxConfig *c, bool for_explain, SbxError *err)
{
        int r;

        *p = (SbxPlan){ .cfg = c,
                        .pty_master = -EBADF,
                        .pty_slave = -EBADF,
                        .err_fd = -EBADF,
                        .inotify_fd = -EBADF,
                        .watch_report = -EBADF,
                        .watch_done = -EBADF,
                        .watch_cleaned = -EBADF,
                        .guard_fd = -EBADF,
                        .guard_ready = -EBADF,
                        .session_dir_mnt = -EBADF,
                        .hold_fd = -EBADF,
                        .sync_w = -EBADF };
        if (!c->take && (!c->argv || !c->argv[0]))
                return sbx_fail(err, 64, -EINVAL, "no command given — write: airlock run -- CMD");
        if (!sbx_agent_name_valid(c->agent))
                return sbx_fail(err, 64, -EINVAL,
                                "bad agent name '%s' — use 1-64 letters, digits, '.', '_', '-'",
                                c->agent ? c->agent : "");
        if (access("/proc/self/ns/user", F_OK) < 0)
                return sbx_fail(err, 71, -EOPNOTSUPP,
                                "this kernel has no user namespaces (CONFIG_USER_NS) — airlock run "
                                "needs them");
        p->privileged = geteuid() == 0;
        sbx_timing("start");
        if (!p->privileged) {
                r = scan_passwd(p, NULL, NULL, NULL);
                if (r < 0)
                        return r;
        }
        if (p->privileged) {
                r = ensure_agent_user(p, !for_explain, err);
                if (r < 0)
                        return r;
                p->home = strdup("/tmp/home");
        } else {
                const char *h = getenv("HOME");
                p->uid = getuid();
                p->gid = getgid();
                if (p->uid != geteuid())
                        return sbx_fail(err, 71, -EPERM,
                                        "airlock run is not meant to be setuid — run it as root "
                                        "or as yourself");
                p->home = strdup(h && h[0] == '/' ? h : "/tmp/home");
        }
        if (!p->home)
                return -ENOMEM;
        r = sbx_landlock_probe(p, err);
        if (r < 0)
                return r;
        sbx_timing("user+landlock");
        if (for_explain && p->privileged &&
            !getpwnam(c->agent_user ? c->agent_user : AIRLOCK_AGENT_USER)) {
                /* Nothing to idmap against yet; describe the binds without preparing them. */
                p->privileged = false;
                r = sbx_prepare_binds(p, err);
                p->privileged = true;
        } else
                r = sbx_prepare_binds(p, err);
        if (r < 0)
                return r;
        sbx_timing("binds");
        if (c->net == SBX_NET_HOST) {
                r = sbx_prepare_resolv_conf(p, err);
                if (r < 0)
                        return r;
        }
        if (for_explain) {
                p->cgroup.pids_max = c->pids_max ? c->pids_max : SBX_DEFAULT_PIDS_MAX;
                p->cgroup.memory_max = c->memory_max ? c->memory_max : SBX_DEFAULT_MEMORY_MAX;
                p->cgroup.v1_pids = p->cgroup.v1_memory =
                        p->privileged && sbx_cgroup_v1_available();
                if (!p->cgroup.v1_pids &&
                    strv_extend(&p->weaker, p->privileged ? SBX_NO_CGROUP_V1 : SBX_NO_CGROUP_USER) <
                            0)
                        return -ENOMEM;
                return 0;
        }
        r = sbx_seccomp_prepare(p, err);
        if (r < 0)
                return r;
        r = sbx_cgroup_prepare(p, err);
        sbx_timing("seccomp+cgroup");
        return r;
}

int sbx_plan_prepare_secrets(SbxPlan *p, bool for_explain, SbxError *err)
{
        int r, rt;

        /*
         * Pathname unix sockets are not masked: connect(2) goes through the
         * unix socket wall (unotify.c), whenever and wherever a daemon
         * listens.
         */
        if (for_explain) {
                r = sbx_expand_secrets(p, err);
                if (r >= 0)
                        r = sbx_prepare_protect(p, false, err);
                if (r >= 0)
                        r = sbx_guard_prepare(p, true, err);
                if (r >= 0)
                        sbx_guard_masks(p);
                return r;
        }
        /* The watches and the secrets in the helper thread, the placeholders here. */
        sbx_prep_thread_start(p);
        r = sbx_prepare_protect(p, true, err);
        sbx_timing("protect");
        if (r >= 0)
                r = sbx_guard_prepare(p, false, err);
        sbx_timing("open guard");
        rt = sbx_prep_thread_join(p, r < 0 ? NULL : err);
        sbx_timing("watches+secrets joined");
        if (r < 0 || rt < 0)
                return r < 0 ? r : rt;
        sbx_guard_masks(p);
        return 0;
}

int sbx_plan_prepare(SbxPlan *p, const SbxConfig *c, bool for_explain, SbxError *err)
{
        int r = sbx_plan_prepare_launch(p, c, for_explain, err);

        return r < 0 ? r : sbx_plan_prepare_secrets(p, for_explain, err);
}

/*
 * The part of the plan worked out after pid 1's clone, sent to it on the
 * sync pipe as the go: a header, then each mask ('0' file or '1' directory,
 * its path, NUL), then each protected path (NUL-terminated). Pid 1 checks
 * every length and count exactly; anything else is fatal (it comes from
 * our own side).
 */
#define SBX_PLAN_MAGIC     0x6f67414cU /* "LAgo" */
#define SBX_PLAN_MAX_BYTES (64U * 1024 * 1024)

typedef struct {
        uint32_t magic, n_masks, n_protect, n_regions, size;
} SbxPlanHeader;

/*
 * write_all() for the socket to pid 1, without SIGPIPE when pid 1 is gone:
 * the signal would wait, blocked, and kill airlock as soon as its mask is
 * restored, before it could say why the launch failed. On a pipe (the unit
 * tests), a plain write_all().
 */
static int send_all(int fd, const void *buf, size_t len)
{
        const char *q = buf;

        while (len > 0) {
                ssize_t k = send(fd, q, len, MSG_NOSIGNAL);

                if (k < 0 && errno == ENOTSOCK)
                        return write_all(fd, q, len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                q += k;
                len -= (size_t)k;
        }
        return 0;
}

/* Copies each path of l with its NUL to buf + off (buf NULL: only counts); returns the new off. */
static size_t put_paths(char *buf, size_t off, char *const *l)
{
        STRV_FOREACH (s, l) {
                size_t n = strlen(*s) + 1;
                if (buf)
                        memcpy(buf + off, *s, n);
                off += n;
        }
        return off;
}

int sbx_plan_send(const SbxPlan *p, int fd)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, off = 0, n_protect = strv_length(p->protect),
               n_regions = strv_length(p->guard_regions);
        SbxPlanHeader h;
        int r;

        for (size_t i = 0; i < p->n_masks; i++)
                size += strlen(p->masks[i].path) + 2;
        size += put_paths(NULL, 0, p->protect) + put_paths(NULL, 0, p->guard_regions);
        if (size > SBX_PLAN_MAX_BYTES)
                return -E2BIG;
        buf = malloc(sizeof h + size);
        if (!buf)
                return -ENOMEM;
        h = (SbxPlanHeader){ .magic = SBX_PLAN_MAGIC,
                             .n_masks = (uint32_t)p->n_masks,
                             .n_protect = (uint32_t)n_protect,
                             .n_regions = (uint32_t)n_regions,
                             .size = (uint32_t)size };
        memcpy(buf, &h, sizeof h);
        off = sizeof h;
        for (size_t i = 0; i < p->n_masks; i++) {
                size_t n = strlen(p->masks[i].path) + 1;
                buf[off++] = p->masks[i].is_dir ? '1' : '0';
                memcpy(buf + off, p->masks[i].path, n);
                off += n;
        }
        off = put_paths(buf, off, p->protect);
        off = put_paths(buf, off, p->guard_regions);
        r = send_all(fd, buf, off);
        return r < 0 ? r : 0;
}

static int read_exact(int fd, void *buf, size_t len)
{
        size_t done = 0;

        while (done < len) {
                ssize_t n = read(fd, (char *)buf + done, len - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EPIPE; /* the parent is gone or refused the launch */
                done += (size_t)n;
        }
        return 0;
}

/* The next NUL-terminated absolute path in buf[*off..size), or NULL. */
static const char *next_path(const char *buf, size_t size, size_t *off)
{
        const char *s = buf + *off, *end;

        if (*off >= size)
                return NULL;
        end = memchr(s, '\0', size - *off);
        if (!end || s[0] != '/')
                return NULL;
        *off += (size_t)(end - s) + 1;
        return s;
}

/* n NUL-terminated absolute paths from buf[*off..size) into *l (replaced). */
static int read_paths(const char *buf, size_t size, size_t *off, uint32_t n, char ***l)
{
        *l = strv_free(*l);
        for (uint32_t i = 0; i < n; i++) {
                const char *path = next_path(buf, size, off);
                if (!path)
                        return -EBADMSG;
                if (strv_extend(l, path) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int sbx_plan_receive(SbxPlan *p, int fd)
{
        _cleanup_free_ char *buf = NULL;
        SbxPlanHeader h;
        size_t off = 0;
        int r;

        r = read_exact(fd, &h, sizeof h);
        if (r < 0)
                return r;
        if (h.magic != SBX_PLAN_MAGIC || h.size > SBX_PLAN_MAX_BYTES ||
            (uint64_t)h.n_masks * 3 + ((uint64_t)h.n_protect + h.n_regions) * 2 > h.size)
                return -EBADMSG;
        buf = malloc(h.size + 1);
        if (!buf)
                return -ENOMEM;
        r = read_exact(fd, buf, h.size);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_masks; i++)
                free(p->masks[i].path);
        free(p->masks);
        p->masks = calloc(h.n_masks + 1, sizeof(SbxMask));
        p->n_masks = 0;
        if (!p->masks)
                return -ENOMEM;
        for (uint32_t i = 0; i < h.n_masks; i++) {
                const char *path;
                char kind;

                if (off >= h.size)
                        return -EBADMSG;
                kind = buf[off++];
                path = next_path(buf, h.size, &off);
                if ((kind != '0' && kind != '1') || !path)
                        return -EBADMSG;
                p->masks[i] = (SbxMask){ .path = strdup(path), .is_dir = kind == '1' };
                if (!p->masks[i].path)
                        return -ENOMEM;
                p->n_masks++;
        }
        r = read_paths(buf, h.size, &off, h.n_protect, &p->protect);
        if (r < 0)
                return r;
        r = read_paths(buf, h.size, &off, h.n_regions, &p->guard_regions);
        if (r < 0)
                return r;
        return off == h.size ? 0 : -EBADMSG; /* no trailing bytes */
}

#define SBX_CMD_MAGIC     0x646d434cU /* "LCmd" */
#define SBX_CMD_MAX_BYTES (16U * 1024 * 1024)

typedef struct {
        uint32_t magic, argc, envc, has_session, n_fds, size;
} SbxCmdHeader;

int sbx_command_send(int fd, char *const *argv, char *const *envp, const char *session_name,
                     const int *fds, size_t n_fds)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = put_paths(NULL, 0, argv) + put_paths(NULL, 0, envp), off = 0;
        union {
                char buf[CMSG_SPACE(4 * sizeof(int))];
                struct cmsghdr align;
        } ctl;
        SbxCmdHeader h;
        struct iovec iov = { .iov_base = &h, .iov_len = sizeof h };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *cm;
        ssize_t n;

        if (n_fds < 3 || n_fds > 4)
                return -EINVAL;
        if (session_name)
                size += strlen(session_name) + 1;
        if (size > SBX_CMD_MAX_BYTES)
                return -E2BIG;
        buf = malloc(size + 1);
        if (!buf)
                return -ENOMEM;
        off = put_paths(buf, 0, argv);
        off = put_paths(buf, off, envp);
        if (session_name) {
                memcpy(buf + off, session_name, strlen(session_name) + 1);
                off += strlen(session_name) + 1;
        }
        h = (SbxCmdHeader){ .magic = SBX_CMD_MAGIC,
                            .argc = (uint32_t)strv_length((char **)argv),
                            .envc = (uint32_t)strv_length((char **)envp),
                            .has_session = session_name != NULL,
                            .n_fds = (uint32_t)n_fds,
                            .size = (uint32_t)size };
        memset(&ctl, 0, sizeof ctl);
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
        do
                n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if ((size_t)n != sizeof h)
                return -EIO;
        return send_all(fd, buf, off);
}

/* The fds received with the command: closed on every error path. */
static void close_fds(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

int sbx_command_receive(SbxPlan *p, int fd)
{
        _cleanup_free_ char *buf = NULL;
        union {
                char buf[CMSG_SPACE(4 * sizeof(int))];
                struct cmsghdr align;
        } ctl;
        SbxCmdHeader h;
        struct iovec iov = { .iov_base = &h, .iov_len = sizeof h };
        struct msghdr msg = { .msg_iov = &iov,
                              .msg_iovlen = 1,
                              .msg_control = ctl.buf,
                              .msg_controllen = sizeof ctl.buf };
        int fds[4] = { -EBADF, -EBADF, -EBADF, -EBADF };
        size_t n_fds = 0, off = 0;
        ssize_t n;
        int r = -EBADMSG;

        do
                n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k; i++) {
                                int f;
                                memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof f);
                                if (n_fds < ELEMENTSOF(fds))
                                        fds[n_fds++] = f;
                                else
                                        close(f);
                        }
                }
        if (n == 0)
                r = -EPIPE; /* the parent is gone or refused the launch */
        else if ((size_t)n < sizeof h)
                r = read_exact(fd, (char *)&h + n, sizeof h - (size_t)n);
        else
                r = 0;
        if (r >= 0 && ((msg.msg_flags & MSG_CTRUNC) || h.magic != SBX_CMD_MAGIC ||
                       h.size > SBX_CMD_MAX_BYTES || h.n_fds != n_fds || n_fds < 3 || h.argc == 0 ||
                       (uint64_t)h.argc + h.envc + h.has_session > h.size))
                r = -EBADMSG;
        if (r >= 0) {
                buf = malloc(h.size + 1);
                r = buf ? read_exact(fd, buf, h.size) : -ENOMEM;
        }
        if (r >= 0) {
                strv_free(p->cmd_argv);
                strv_free(p->envp);
                p->cmd_argv = calloc(h.argc + 1, sizeof(char *));
                p->envp = calloc(h.envc + 1, sizeof(char *));
                r = p->cmd_argv && p->envp ? 0 : -ENOMEM;
        }
        for (uint32_t i = 0; r >= 0 && i < h.argc + h.envc + h.has_session; i++) {
                const char *s = buf + off;
                const char *end = memchr(s, '\0', h.size - off);
                char *copy;

                if (off >= h.size || !end) {
                        r = -EBADMSG;
                        break;
                }
                off += (size_t)(end - s) + 1;
                copy = strdup(s);
                if (!copy) {
                        r = -ENOMEM;
                        break;
                }
                if (i < h.argc)
                        p->cmd_argv[i] = copy;
                else if (i < h.argc + h.envc)
                        p->envp[i - h.argc] = copy;
                else
                        p->session_name = copy;
        }
        if (r >= 0 && off != h.size)
                r = -EBADMSG; /* no trailing bytes */
        /* The agent's 0, 1 and 2, and its terminal. */
        for (int i = 0; r >= 0 && i < 3; i++)
                if (fds[i] != i && dup2(fds[i], i) < 0)
                        r = -errno;
        if (r < 0) {
                close_fds(fds, n_fds);
                return r;
        }
        p->pty_slave = safe_close(p->pty_slave);
        p->pty_slave = n_fds == 4 ? TAKE_FD(fds[3]) : -EBADF;
        for (int i = 0; i < 3; i++)
                if (fds[i] != i)
                        safe_close(fds[i]);
        return 0;
}

/*
 * A protected name that did not exist at launch could not be made
 * read-only; if the agent created it, the human must know before running
 * anything in the workspace.
 */
static void report_protect_created(const SbxPlan *p)
{
        STRV_FOREACH (path, p->protect_missing) {
                struct stat st;
                if (lstat(*path, &st) == 0)
                        fprintf(stderr,
                                "airlock: run: WARNING: the agent created %s, a protected name "
                                "(it runs code or configures tools) — review it before using "
                                "the workspace\n",
                                *path);
        }
}

/*
 * Closing the session helper's pipe tells it the session is over: it
 * removes the placeholders (it also does so on its own when airlock is
 * killed) and says so with one byte, which we wait for, so that the
 * workspace is as it was and the next launch in it does not race a
 * cleanup still running. Its exit (closing the inotify instance, an SRCU
 * grace period) touches nothing on disk and is not waited for: init reaps
 * it once airlock has exited.
 */
static void finish_placeholders(SbxPlan *p)
{
        pid_t watcher = p->watcher;

        if (p->placeholders_done)
                return;
        p->placeholders_done = true;
        p->watch_done = safe_close(p->watch_done);
        p->watcher = 0;
        if (watcher <= 0) {
                sbx_remove_placeholders(p);
                return;
        }
        char c;
        ssize_t n;

        while ((n = read(p->watch_cleaned, &c, 1)) < 0 && errno == EINTR)
                ;
        if (n != 1) {
                /* The helper died before it was done: finish here (its locks are gone). */
                while (waitpid(watcher, NULL, 0) < 0 && errno == EINTR)
                        ;
                sbx_remove_placeholders(p);
        } else
                (void)waitpid(watcher, NULL, WNOHANG);
}

void sbx_plan_done(SbxPlan *p)
{
        if (p->prep_started) /* a launch refused before the join: the thread ends first */
                (void)sbx_prep_thread_join(p, NULL);

        /* The helper works while the other helper and the cgroup are reaped here. */
        p->watch_done = safe_close(p->watch_done);
        sbx_reap_idmap_helper(p);
        sbx_timing("helper reaped");
        sbx_cgroup_cleanup(p);
        finish_placeholders(p);
        for (size_t i = 0; i < p->n_binds; i++) {
                free(p->binds[i].path);
                safe_close(p->binds[i].mount_fd);
        }
        free(p->binds);
        for (size_t i = 0; i < p->n_masks; i++)
                free(p->masks[i].path);
        free(p->masks);
        strv_free(p->protect);
        strv_free(p->protect_missing);
        strv_free(p->protect_new);
        for (size_t i = 0; i < p->n_protect_new_fds; i++)
                safe_close(p->protect_new_fds[i]);
        free(p->protect_new_fds);
        strv_free(p->envp);
        strv_free(p->cmd_argv);
        free(p->session_name);
        safe_close(p->session_dir_mnt);
        strv_free(p->weaker);
        strv_free(p->homes);
        strv_free(p->guard_regions);
        strv_free(p->guard_submounts);
        free(p->guard_inodes);
        safe_close(p->guard_fd);
        safe_close(p->guard_ready);
        free(p->home);
        free(p->resolv_conf);
        free(p->resolv_target);
        sbx_seccomp_free(p);
        safe_close(p->inotify_fd);
        safe_close(p->watch_report);
        safe_close(p->watch_done);
        safe_close(p->watch_cleaned);
        for (size_t i = 0; i < p->n_watches; i++) {
                free(p->watches[i].dir);
                free(p->watches[i].name);
        }
        free(p->watches);
        free(p->secret_appeared);
        safe_close(p->pty_master);
        safe_close(p->pty_slave);
        safe_close(p->err_fd);
        *p = (SbxPlan){ .pty_master = -EBADF,
                        .pty_slave = -EBADF,
                        .err_fd = -EBADF,
                        .inotify_fd = -EBADF,
                        .watch_report = -EBADF,
                        .watch_done = -EBADF,
                        .watch_cleaned = -EBADF,
                        .guard_fd = -EBADF,
                        .guard_ready = -EBADF,
                        .session_dir_mnt = -EBADF,
                        .hold_fd = -EBADF,
                        .sync_w = -EBADF };
}

static int write_map(pid_t pid, const char *file, const char *text)
{
        char path[64];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write_all(fd, text, strlen(text));
}

typedef struct {
        int pidfd;  /* pid 1 of the sandbox */
        int userns; /* its namespaces, opened while it was still dumpable */
        int mntns;
        int report;  /* to the parent: one line per secret that appeared */
        bool ending; /* the session is over: report only */
        SbxPlan *plan;
} WatchCtx;

/*
 * Masks a secret that appeared during the session, from inside the
 * sandbox's user and mount namespaces (as their owner, we hold every
 * capability there): an empty read-only tmpfs
 * over a directory, a read-only bind of the sandbox's /dev/null (reads
 * empty, creates no file: our uid may not be mapped) over anything else.
 */
static int remask_inside(const WatchCtx *w, const char *path)
{
        _cleanup_close_ int target = -EBADF, mnt = -EBADF;
        struct open_how how = { .flags = O_PATH | O_CLOEXEC,
                                .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
        struct mount_attr a = { .attr_set =
                                        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC };
        struct stat st;

        if (w->userns >= 0) {
                if (setns(w->userns, CLONE_NEWUSER) < 0 || setns(w->mntns, CLONE_NEWNS) < 0)
                        return -errno;
        } else if (setns(w->pidfd, CLONE_NEWUSER | CLONE_NEWNS) < 0)
                return -errno;
        target = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
        if (target < 0)
                return errno == ENOENT ? 0 : -errno; /* gone again, or not visible inside */
        if (fstat(target, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode)) {
                _cleanup_close_ int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
                if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0555", 0) < 0 ||
                    fsconfig(fs, FSCONFIG_SET_STRING, "size", "4k", 0) < 0 ||
                    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                        return -errno;
                mnt = fsmount(fs, FSMOUNT_CLOEXEC,
                              MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                      MOUNT_ATTR_NOEXEC);
        } else {
                mnt = open_tree(AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                if (mnt >= 0 && mount_setattr(mnt, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
                        return -errno;
        }
        if (mnt < 0)
                return -errno;
        if (move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return -errno;
        return 0;
}

/*
 * In a child of its own: the helper itself stays in the host's namespaces,
 * where its /proc/self names the open guard's event files (guard.c) and no
 * open of its own can wait on the guard.
 */
static int remask(WatchCtx *w, const char *path)
{
        pid_t pid = fork();
        int st;

        if (pid < 0)
                return -errno;
        if (pid == 0)
                _exit(remask_inside(w, path) < 0 ? 1 : 0);
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static int on_secret_appeared(const char *path, bool final, void *userdata)
{
        WatchCtx *w = userdata;

        /*
         * The secret itself: mask it too and carry on ("~"). A directory on
         * the way, or a failed mask: end the session ("!"). After the agent
         * has ended, only report ("+"): it may have read the file before.
         */
        if (w->ending) {
                (void)dprintf(w->report, "+%s\n", path);
                return 0;
        }
        if (final && remask(w, path) == 0) {
                struct stat st;
                /* Its other names, should the host make any, are refused by the guard. */
                if (w->plan->guard_fd >= 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                        (void)sbx_guard_add_inode(w->plan, &st);
                        sbx_guard_forget(w->plan, path);
                }
                (void)dprintf(w->report, "~%s\n", path);
                return 0;
        }
        (void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
        (void)dprintf(w->report, "!%s\n", path);
        return -ECANCELED;
}

/*
 * The secret watcher: a small process that blocks on the inotify instance;
 * when a secret appears on the host during the session it masks it inside
 * as well, or, if it cannot (a directory on the way to a secret appeared,
 * or the mount fails), kills pid 1 through its pidfd (no pid reuse race)
 * and tells the parent which secret it was. A separate process so that
 * closing the instance (an SRCU grace period, ~10 ms) never delays the end
 * of `airlock run`.
 */
static int start_watcher(SbxPlan *p, pid_t child, SbxError *err)
{
        _cleanup_close_ int pidfd = -EBADF, userns = -EBADF, mntns = -EBADF;
        int fds[2], done[2], cleaned[2];
        pid_t pid;

        if (p->n_watches == 0 && !p->protect_new && p->guard_fd < 0)
                return 0;
        pidfd = (int)syscall(SYS_pidfd_open, child, 0);
        if (pidfd < 0)
                return sbx_fail(err, 71, -errno, "pidfd_open failed: %m");
        /*
         * Root may enter the namespaces of the (non-dumpable) pid 1 later,
         * through its pidfd; an ordinary user must open them now, while it
         * is still dumpable. Holding them keeps the sandbox's mount
         * namespace alive a little longer at the end, so root does not.
         */
        if (!p->privileged && p->n_watches > 0) {
                char path[64];
                snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
                userns = open(path, O_RDONLY | O_CLOEXEC);
                snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)child);
                mntns = open(path, O_RDONLY | O_CLOEXEC);
                if (userns < 0 || mntns < 0)
                        return sbx_fail(err, 71, -errno,
                                        "cannot open the sandbox's namespaces: %m");
        }
        if (pipe2(fds, O_CLOEXEC) < 0)
                return sbx_fail(err, 71, -errno, "cannot create a pipe: %m");
        if (pipe2(done, O_CLOEXEC) < 0) {
                close(fds[0]);
                close(fds[1]);
                return sbx_fail(err, 71, -errno, "cannot create a pipe: %m");
        }
        if (pipe2(cleaned, O_CLOEXEC) < 0) {
                close(fds[0]);
                close(fds[1]);
                close(done[0]);
                close(done[1]);
                return sbx_fail(err, 71, -errno, "cannot create a pipe: %m");
        }
        pid = fork();
        if (pid < 0) {
                close(fds[0]);
                close(fds[1]);
                close(done[0]);
                close(done[1]);
                close(cleaned[0]);
                close(cleaned[1]);
                return sbx_fail(err, 71, -errno, "cannot start the session helper: %m");
        }
        if (pid == 0) {
                WatchCtx w = { .pidfd = pidfd,
                               .userns = userns,
                               .mntns = mntns,
                               .report = fds[1],
                               .plan = p };
                bool watching = p->inotify_fd >= 0, over = false;
                sigset_t all;

                /*
                 * No parent-death signal on purpose: when airlock ends, even by
                 * SIGKILL, its end of `done` closes; we then wait for pid 1 to
                 * be gone (it dies with airlock) and remove the placeholders.
                 */
                sigfillset(&all);
                sigprocmask(SIG_BLOCK, &all, NULL);
                close(fds[0]);
                close(done[1]);
                close(cleaned[0]);
                /* Before the go (the agent's opens wait for it): the secrets' inodes. */
                if (p->guard_fd >= 0 && sbx_guard_collect_inodes(p) < 0) {
                        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                        (void)dprintf(w.report, SBX_GUARD_FAILED "\n");
                        _exit(1);
                }
                for (;;) {
                        /*
                         * The session is over when the parent says so or, sooner,
                         * when pid 1 has exited (with it everything in the sandbox):
                         * the cleanup then starts as the parent wakes, not after.
                         */
                        struct pollfd pf[4] = {
                                { .fd = watching ? p->inotify_fd : -1, .events = POLLIN },
                                { .fd = done[0], .events = POLLIN },
                                { .fd = pidfd, .events = POLLIN },
                                { .fd = p->guard_fd, .events = POLLIN },
                        };

                        if (poll(pf, 4, -1) < 0) {
                                if (errno == EINTR)
                                        continue;
                                _exit(1);
                        }
                        /*
                         * The open guard first: an agent waits in each open.
                         * Should answering fail, pid 1 is killed (we keep the
                         * group open meanwhile: closing it would allow every
                         * waiting open).
                         */
                        if (pf[3].revents && sbx_guard_answer(p) < 0) {
                                (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                                (void)dprintf(w.report, SBX_GUARD_FAILED "\n");
                                break;
                        }
                        if (pf[0].revents && sbx_watch_drain(p, on_secret_appeared, &w) < 0)
                                watching = false; /* pid 1 is being killed; the parent knows why */
                        if (pf[1].revents) {
                                /* "o": pid 1 has reaped everything; else airlock is gone */
                                char c;
                                over = read(done[0], &c, 1) == 1 && c == 'o';
                                break;
                        }
                        if (pf[2].revents)
                                break;
                }
                /* Events that arrived while the agent was ending: report them too. */
                w.ending = true;
                if (watching)
                        (void)sbx_watch_drain(p, on_secret_appeared, &w);
                close(w.report); /* the parent reads the report up to here */
                /*
                 * Nothing of the agent's may run while the placeholders go:
                 * pid 1 has said it reaped everything (its own exit, the
                 * namespaces' teardown, need not be waited for), or its exit
                 * shows it.
                 */
                if (!over) {
                        struct pollfd pf = { .fd = pidfd, .events = POLLIN };
                        while (poll(&pf, 1, -1) < 0 && errno == EINTR)
                                ;
                }
                sbx_remove_placeholders(p);
                if (write(cleaned[1], "d", 1) < 0) /* airlock run may return now */
                        _exit(1);                  /* (it then cleans up itself) */
                _exit(0);
        }
        close(fds[1]);
        close(done[0]);
        close(cleaned[1]);
        p->watch_cleaned = cleaned[0];
        p->watch_report = fds[0];
        p->watch_done = done[1];
        p->watcher = pid;
        /* The parent keeps no reference that would make its own exit wait. */
        p->inotify_fd = safe_close(p->inotify_fd);
        /*
         * Nor the placeholders: the helper's copies hold their shared locks
         * (flock belongs to the open file, which both copies share) for the
         * session, and the last close of an unlinked placeholder (the
         * filesystem freeing its inode) then happens in the helper's exit,
         * which nobody waits for. Should the helper die early, the parent
         * falls back to removing them by path (sbx_remove_placeholders
         * opens what it does not hold).
         */
        for (size_t i = 0; i < p->n_protect_new_fds; i++)
                p->protect_new_fds[i] = safe_close(p->protect_new_fds[i]);
        return 0;
}

/*
 * Reads the rest of the session helper's report (it closes its end right
 * after a last look at the watches) and tells the human: a secret masked
 * during the session may still have been read by an agent polling for it
 * (a warning); one that ended the session, or appeared while the agent was
 * ending and was never masked, fails the run (exit 71).
 */
/* The open guard was in force where path appeared (its marks were placed). */
static bool guarded(const SbxPlan *p, const char *path)
{
        if (!p->guard_marked)
                return false;
        STRV_FOREACH (r, p->guard_regions)
                if (sbx_path_startswith(path, *r))
                        return true;
        return false;
}

static int finish_secret_report(SbxPlan *p, SbxError *err)
{
        _cleanup_free_ char *rest = NULL, *all = NULL;
        const char *fatal = NULL;

        if (p->watch_report >= 0) {
                p->watch_done = safe_close(p->watch_done); /* the session is over */
                (void)read_full_fd(p->watch_report, 64 * 1024, &rest, NULL);
                p->watch_report = safe_close(p->watch_report);
        }
        if (asprintf(&all, "%s%s", p->secret_appeared ? p->secret_appeared : "", rest ? rest : "") <
            0)
                return -ENOMEM;
        for (char *line = all, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (line[0] == '~' && guarded(p, line + 1))
                        fprintf(stderr,
                                "airlock: run: WARNING: secret %s appeared on the host during the "
                                "session; the open guard refused the agent every open of it "
                                "until it was masked inside, at once\n",
                                line + 1);
                else if (line[0] == '~')
                        fprintf(stderr,
                                "airlock: run: WARNING: secret %s appeared on the host during the "
                                "session; it was masked inside at once, but an agent polling for "
                                "it may have read it — rotate it if that matters\n",
                                line + 1);
                else if ((line[0] == '!' || line[0] == '+' || line[0] == '#') && !fatal)
                        fatal = line;
        }
        if (!fatal)
                return 0;
        if (fatal[0] == '#')
                return sbx_fail(err, 71, -EIO,
                                "%s — the session was ended, as new secrets could no longer be "
                                "kept from the agent; start a new one (and see dmesg if it "
                                "happens again)",
                                fatal + 1);
        return sbx_fail(err, 71, -EPERM,
                        fatal[0] == '!'
                                ? "%s appeared on the host during the session (on the way to a "
                                  "secret, or it could not be masked inside) — the session was "
                                  "ended; start a new one"
                                : "secret %s appeared on the host as the session ended and was "
                                  "not masked: the agent may have read it — rotate it",
                        fatal + 1);
}

const char *sbx_session_socket_name(const char *dir, const char *path)
{
        const char *slash = path ? strrchr(path, '/') : NULL, *name;
        size_t n;

        if (!dir || !slash)
                return NULL;
        n = (size_t)(slash - path);
        name = slash + 1;
        if (n != strlen(dir) || !strneq(path, dir, n) || !*name || streq(name, ".") ||
            streq(name, ".."))
                return NULL;
        for (const char *q = name; *q; q++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                            *q))
                        return NULL;
        return name;
}

/*
 * A warm sandbox built at idle priority (airlock pool as root builds so,
 * that its refills take only spare CPU time) waits, and serves its client,
 * at the normal one: once built, this process, the session helper, pid 1
 * and its children (the unix socket wall) go back to SCHED_OTHER, before
 * the take (an idle-priority process on a busy machine could take seconds
 * to answer its client). Called once pid 1 has said it waits ("W"), so its
 * children are all there to be found. Returns 0 or -errno; the sandbox is
 * not offered then.
 */
static int leave_idle_priority(const SbxPlan *p, pid_t pid1)
{
        const struct sched_param sp = { 0 };
        FILE *f;
        char path[64];
        int child, r = 0;

        if (sched_getscheduler(0) != SCHED_IDLE)
                return 0;
        if (sched_setscheduler(0, SCHED_OTHER, &sp) < 0 ||
            (p->watcher > 0 && sched_setscheduler(p->watcher, SCHED_OTHER, &sp) < 0) ||
            sched_setscheduler(pid1, SCHED_OTHER, &sp) < 0)
                return -errno;
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid1, (int)pid1);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (r == 0 && fscanf(f, "%d", &child) == 1)
                if (sched_setscheduler(child, SCHED_OTHER, &sp) < 0)
                        r = -errno;
        fclose(f);
        return r;
}

/*
 * The command, once the sandbox is built: this process's own (cold) or,
 * for a warm sandbox, what the client that takes it hands over. Then the
 * agent's environment and terminal, made from the client's.
 */
static int send_command(SbxPlan *p, pid_t pid, int fd, SbxError *err)
{
        const SbxConfig *c = p->cfg;
        char *const *argv = c->argv, *const *env = environ;
        const char *session = c->session_socket, *name = NULL;
        int fds[4] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, -EBADF };
        size_t n_fds = 3;
        int r;

        if (c->take) {
                _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
                SbxTake t = { .hold_fd = -EBADF };

                if (pidfd < 0)
                        return sbx_fail(err, 71, -errno, "cannot watch the sandbox's pid 1: %m");
                /* pid 1 waits, its own processes (the unix wall) started: see leave_idle_priority
                 */
                {
                        char w;
                        r = read_exact(fd, &w, 1);
                        if (r < 0 || w != 'W')
                                return sbx_fail(err, 71, r < 0 ? r : -EBADMSG,
                                                "the warm sandbox's pid 1 ended while it was "
                                                "built");
                }
                r = leave_idle_priority(p, pid);
                if (r < 0)
                        return sbx_fail(err, 71, r,
                                        "cannot give the warm sandbox the normal CPU priority: %s",
                                        strerror(-r));
                t.sandbox_pidfd = pidfd;
                sbx_reap_idmap_helper(p); /* before a wait of up to --max-age */
                r = c->take(c->take_userdata, &t, err);
                if (r < 0)
                        return r;
                sbx_timing("taken");
                argv = t.argv;
                env = t.env;
                session = t.session_socket;
                p->hold_fd = t.hold_fd;
                if (!argv || !argv[0])
                        return sbx_fail(err, 64, -EINVAL,
                                        "no command given — write: airlock run -- CMD");
                if (session) {
                        name = sbx_session_socket_name(c->session_dir, session);
                        if (!name)
                                return sbx_fail(err, 71, -EINVAL,
                                                "session socket %s is not in the broker's "
                                                "session directory %s — run with --no-pool",
                                                session, c->session_dir ? c->session_dir : "");
                }
        }
        r = build_env(p, env, session != NULL);
        if (r < 0)
                return sbx_fail(err, 71, r, "cannot build the agent's environment: %s",
                                strerror(-r));
        r = sbx_pty_open(p, err);
        if (r < 0)
                return r;
        if (p->pty_slave >= 0)
                fds[n_fds++] = p->pty_slave;
        r = sbx_command_send(fd, argv, p->envp, name, fds, n_fds);
        p->pty_slave = safe_close(p->pty_slave);
        if (r < 0)
                return sbx_fail(err, 71, r, "cannot start the sandbox: %s", strerror(-r));
        return 0;
}

/* Reads the child's report: "CODE message". Returns 0 at EOF without one (exec happened). */
static int read_report(int fd, SbxError *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        int r = read_full_fd(fd, sizeof err->message + 16, &buf, &n);
        char *sp;

        if (r < 0)
                return sbx_fail(err, 71, r, "cannot read the sandbox's setup report: %s",
                                strerror(-r));
        if (n == 0)
                return 0;
        err->exit_code = (int)strtol(buf, &sp, 10);
        if (sp == buf || *sp != ' ')
                err->exit_code = 71;
        else
                sp++;
        snprintf(err->message, sizeof err->message, "%s", sp == buf ? buf : sp);
        return -EPERM;
}

int sbx_run(const SbxConfig *c, int *ret_exit_status, SbxError *err)
{
        _cleanup_close_ int sync_r = -EBADF, sync_w = -EBADF, err_r = -EBADF, ready_r = -EBADF;
        SbxPlan plan;
        sigset_t mask, old;
        int fds[2], r, status = 0;
        unsigned long flags =
                CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
        pid_t pid;

        /*
         * Pid 1 is cloned as soon as what it needs at its start is ready:
         * it creates its network namespace (--net none: the dearest part
         * of a clone, loopback and sysctls) and its mount tree while we
         * expand the secrets and prepare the protected names, which it
         * receives with the go. Until then it has done nothing but build
         * its own namespaces; if we refuse the launch, it is killed.
         */
        r = sbx_plan_prepare_launch(&plan, c, false, err);
        if (r >= 0)
                r = sbx_unotify_prepare(&plan, err); /* the unix socket wall: unotify.c */
        if (r < 0)
                goto finish;

        /* A socket: the command goes with its fds (SCM_RIGHTS). */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                goto fail_errno;
        sync_r = fds[0];
        sync_w = fds[1];
        if (pipe2(fds, O_CLOEXEC) < 0)
                goto fail_errno;
        err_r = fds[0];
        plan.err_fd = fds[1];
        if (plan.privileged) {
                /* The open guard's handshake: pid 1 says when it has pivoted (guard.c). */
                if (pipe2(fds, O_CLOEXEC) < 0)
                        goto fail_errno;
                ready_r = fds[0];
                plan.guard_ready = fds[1];
        }

        /* Signals wait in a signalfd (sbx_relay) from now on; pid 1 sets its own mask. */
        sigemptyset(&mask);
        for (int s = 1; s < NSIG; s++)
                if (s != SIGKILL && s != SIGSTOP && s != SIGSEGV && s != SIGBUS && s != SIGILL &&
                    s != SIGFPE && s != SIGTSTP && s != SIGTTIN && s != SIGTTOU)
                        sigaddset(&mask, s);
        sigprocmask(SIG_BLOCK, &mask, &old);

        sbx_timing("cgroup+pipes");
        fflush(NULL);
        pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
        if (pid < 0) {
                r = sbx_fail(err, 71, -errno,
                             errno == EPERM || errno == ENOSPC
                                     ? "cannot create the sandbox's namespaces: %m — user "
                                       "namespaces may be disabled (sysctl "
                                       "user.max_user_namespaces, "
                                       "kernel.unprivileged_userns_clone)"
                                     : "cannot create the sandbox's namespaces: %m");
                sigprocmask(SIG_SETMASK, &old, NULL);
                goto finish;
        }
        if (pid == 0) {
                sync_w = safe_close(sync_w);
                err_r = safe_close(err_r);
                ready_r = safe_close(ready_r);
                sbx_child_main(&plan, sync_r);
        }
        sbx_timing("cloned");
        sync_r = safe_close(sync_r);
        plan.err_fd = safe_close(plan.err_fd);
        plan.guard_ready = safe_close(plan.guard_ready);

        /*
         * The identity map: the agent's uid and gid map to themselves and
         * nothing else is mapped, so host root (and every other uid)
         * is "nobody" inside and cannot be reached through the namespace.
         */
        {
                char map[64];
                if (!plan.privileged)
                        r = write_map(pid, "setgroups", "deny");
                else
                        r = 0;
                snprintf(map, sizeof map, "%u %u 1\n", (unsigned)plan.uid, (unsigned)plan.uid);
                if (r >= 0)
                        r = write_map(pid, "uid_map", map);
                snprintf(map, sizeof map, "%u %u 1\n", (unsigned)plan.gid, (unsigned)plan.gid);
                if (r >= 0)
                        r = write_map(pid, "gid_map", map);
                if (r < 0)
                        r = sbx_fail(err, 71, r, "cannot write the sandbox's uid/gid map: %s",
                                     strerror(-r));
        }
        sbx_timing("maps");
        if (r >= 0)
                r = sbx_plan_prepare_secrets(&plan, false, err);
        if (r >= 0)
                r = sbx_cgroup_attach(&plan, pid, err);
        sbx_timing("cgroup attach");
        if (r >= 0)
                r = start_watcher(&plan, pid, err);
        if (r >= 0) {
                r = sbx_plan_send(&plan, sync_w);
                if (r < 0)
                        r = sbx_fail(err, 71, r, "cannot start the sandbox: %s", strerror(-r));
        }
        if (r >= 0 && plan.guard_fd >= 0 && plan.guard_regions) {
                /*
                 * The open guard's marks go on the sandbox's own mounts of
                 * the regions, reached through pid 1's root once it has
                 * pivoted; the agent starts only after our byte. No byte
                 * (pid 1 refused the launch and exited): its report says why.
                 */
                char byte;
                ssize_t n;

                while ((n = read(ready_r, &byte, 1)) < 0 && errno == EINTR)
                        ;
                if (n == 1) {
                        r = sbx_guard_mark(&plan, pid, err);
                        if (r >= 0 && send_all(sync_w, "M", 1) < 0)
                                r = sbx_fail(err, 71, -errno, "cannot start the sandbox: %m");
                        plan.guard_marked = r >= 0;
                }
                sbx_timing("open guard marked");
        }
        /* The session helper answers the guard's opens; our copy is not needed. */
        plan.guard_fd = safe_close(plan.guard_fd);
        if (r >= 0)
                r = send_command(&plan, pid, sync_w, err);
        sbx_reap_idmap_helper(&plan);
        /* sync_w stays open: pid 1 checks it to know airlock is still alive. */
        if (r < 0) {
                SbxError child_err = { 0 };

                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                sigprocmask(SIG_SETMASK, &old, NULL);
                /*
                 * Pid 1 starts its mounts before the go: if it refused the
                 * launch meanwhile (and exited, failing our step), its reason
                 * is the one to tell.
                 */
                if (read_report(err_r, &child_err) < 0 && err && child_err.message[0])
                        *err = child_err;
                goto finish;
        }
        /*
         * Relay until pid 1 exits. Only then is the setup report read: it
         * is empty when the agent was exec'd, else the reason the launch
         * was refused (pid 1 exits right after writing it).
         */
        plan.sync_w = sync_w;
        r = sbx_relay(&plan, pid, &status);
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                r = sbx_fail(err, 70, r, "lost track of the sandbox: %s", strerror(-r));
                goto finish;
        }
        sbx_timing("exited");
        /*
         * The session is over (nothing of the agent's runs; pid 1 may
         * still be tearing its namespaces down): the session helper starts
         * its last look and removes the placeholders meanwhile.
         */
        if (plan.watch_done >= 0) {
                /* A helper that is gone (it ended the session) must not SIGPIPE us. */
                struct sigaction ign = { .sa_handler = SIG_IGN }, was;

                sigaction(SIGPIPE, &ign, &was);
                if (write(plan.watch_done, "o", 1) != 1) {
                        /* the helper is gone: finish_placeholders() removes them */
                }
                sigaction(SIGPIPE, &was, NULL);
        }
        plan.watch_done = safe_close(plan.watch_done);
        r = read_report(err_r, err);
        if (r >= 0)
                r = finish_secret_report(&plan, err);
        if (r >= 0) {
                *ret_exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                report_protect_created(&plan);
                finish_placeholders(&plan);
                sbx_timing("placeholders removed");
                /* the outcome is final: a warm sandbox's client hears it now */
                if (c->finished)
                        c->finished(c->take_userdata, *ret_exit_status);
                r = 0;
        }
        if (!plan.pid1_reaped)
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        sbx_timing("pid 1 reaped");
        sbx_cgroup_cleanup(&plan);
        goto finish;

fail_errno:
        r = sbx_fail(err, 71, -errno, "cannot create a pipe: %m");
finish:
        sbx_plan_done(&plan);
        return r;
}
