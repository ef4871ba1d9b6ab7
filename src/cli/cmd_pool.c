/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlock pool: warm sandboxes. Three roles, one file:
 *
 *   server  `airlock pool`: listens on DIR/KEY.sock, keeps --size entries
 *           built, hands each accepted client to a ready entry, rebuilds.
 *   entry   a fork of the server: builds the sandbox exactly as `airlock run`
 *           does (run_setup()), and when pid 1 waits, takes one client
 *           (pool_take()), runs its command, reports the exit status, exits.
 *   client  `airlock run` (pool_client_run()): asks for a sandbox, forwards
 *           signals, exits with the command's status.
 *
 * The wire, on the client's connection (AF_UNIX stream), one JSON object a
 * line: client -> {"v":1,"key","argv","env","session_socket"} with fds 0,1,2;
 * entry -> {"ok":true} with a pidfd of the entry, or {"ok":false,"why"}
 * (server: "busy"); entry -> {"exit":N} at the end. Server -> entry, on a
 * SEQPACKET pair: "C" + the client's fd; entry -> server: "R" (ready).
 *
 * Trust: the server and every entry run as the user; a client is served only
 * if the kernel says (SO_PEERCRED) it is that user, and a client uses a pool
 * only if the kernel says the server is itself. A pool is never a way to
 * more rights: it runs what the client could run cold. Whatever is doubtful
 * sends the client down the cold path, never to an unconfined command.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "broker/client.h"
#include "cli/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "config.h"
#include "policy/policy.h"
#include "sandbox/sandbox.h"

#define SUB "pool"

#define POOL_SIZE_MAX        16
#define POOL_SIZE_DEFAULT    2
#define POOL_REQUEST_MAX     (1024 * 1024) /* the client's line (argv + environment) */
#define POOL_REPLY_MAX       (64 * 1024)   /* {"ok":...} and {"exit":N} */
#define POOL_REQUEST_TIMEOUT 5000          /* ms an entry waits for the client's line */
#define POOL_REPLY_TIMEOUT   10000         /* ms a client waits for the answer, then runs cold */
#define POOL_MAX_FDS         3
#define POOL_BACKOFF_FIRST   (1000 * 1000ULL)
#define POOL_PENDING_MAX     64 /* accepted connections waiting for their request */
#define POOL_BACKOFF_MAX     (30 * 1000 * 1000ULL)
#define POOL_STOP_TIMEOUT    (10 * 1000 * 1000ULL) /* an untaken entry's teardown, then SIGKILL */
/*
 * A refill starts this long after a take, not at once: a build is kernel
 * work (namespaces, the mount tree) that even at idle priority delays the
 * start it would overlap on a kernel without forced preemption
 * (PREEMPT_NONE, as here), measured ~1 ms of a ~4 ms warm start.
 */
#define POOL_REFILL_DELAY (100 * 1000ULL)
/*
 * A sandbox waiting longer is rebuilt: it shows the host's mounts as they
 * were when it was built (like a session that started then), and a fresh
 * one costs a few milliseconds of idle CPU time.
 */
#define POOL_MAX_AGE_DEFAULT 300
#define POOL_MAX_AGE_MAX     86400

extern char **environ;

/* ---- directory, key, socket ------------------------------------------------------------ */

/* Returns the pool directory for this user (see airlock(1), POOL); caller frees. */
static int pool_dir_path(char **ret)
{
        const char *e = getenv("AIRLOCK_POOL_DIR");
        char *s;

        if (!isempty(e))
                s = strdup(e);
        else if (getuid() == 0)
                s = strdup(AIRLOCK_RUNTIME_DIR "/pool");
        else if (!isempty(getenv("XDG_RUNTIME_DIR"))) {
                if (asprintf(&s, "%s/airlock-pool", getenv("XDG_RUNTIME_DIR")) < 0)
                        s = NULL;
        } else if (asprintf(&s, "/tmp/airlock-pool-%u", (unsigned)getuid()) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/*
 * A pool directory is used only if it is a directory itself (not a symlink),
 * owned by this user, closed to everyone else: then nobody else can put a
 * socket there. Returns 0 or -errno with why.
 */
static int pool_dir_usable(const char *dir, char *why, size_t why_size)
{
        struct stat st;

        if (lstat(dir, &st) < 0) {
                int r = -errno;
                snprintf(why, why_size, "%s: %s", dir, strerror(-r));
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                snprintf(why, why_size, "%s is not a directory (or is a symlink)", dir);
                return -ENOTDIR;
        }
        if (st.st_uid != getuid()) {
                snprintf(why, why_size, "%s belongs to uid %u, not to uid %u", dir,
                         (unsigned)st.st_uid, (unsigned)getuid());
                return -EPERM;
        }
        if (st.st_mode & 0077) {
                snprintf(why, why_size, "%s is open to others (mode %04o)", dir,
                         (unsigned)(st.st_mode & 07777));
                return -EPERM;
        }
        return 0;
}

/* p as an absolute path: relative ones are taken from the current directory, not resolved. */
static char *pool_absolute(const char *p, const char *cwd)
{
        char *s;

        if (p[0] == '/')
                return strdup(p);
        if (asprintf(&s, "%s/%s", cwd, p) < 0)
                return NULL;
        return s;
}

static char **pool_absolute_strv(char *const *l, const char *cwd)
{
        _cleanup_strv_free_ char **a = NULL;

        STRV_FOREACH (s, l)
                if (strv_consume(&a, pool_absolute(*s, cwd)) < 0)
                        return NULL;
        if (!a)
                a = calloc(1, sizeof(char *));
        return TAKE_PTR(a);
}

/*
 * The configuration as one canonical JSON text: what must be equal for a
 * warm sandbox to be the one a cold run would build. The workspace and the
 * policy by their real paths; --ro/--rw as given (relative ones made
 * absolute, since the two sides may have different current directories).
 */
static int pool_canonical_config(const RunFlags *f, char **ret)
{
        _cleanup_(json_decrefp) json_t *j = NULL, *ro = NULL, *rw = NULL;
        _cleanup_strv_free_ char **aro = NULL, **arw = NULL;
        _cleanup_free_ char *ws = NULL, *policy = NULL;
        char cwd[4096], *s;

        if (!getcwd(cwd, sizeof cwd))
                return -errno;
        ws = realpath(f->workspace ? f->workspace : cwd, NULL);
        if (!ws)
                return -errno;
        policy = realpath(f->policy, NULL);
        if (!policy && !(policy = pool_absolute(f->policy, cwd)))
                return -ENOMEM;
        aro = pool_absolute_strv(f->ro, cwd);
        arw = pool_absolute_strv(f->rw, cwd);
        if (!aro || !arw)
                return -ENOMEM;
        ro = json_from_strv(aro);
        rw = json_from_strv(arw);
        if (!ro || !rw)
                return -EINVAL;
        j = json_pack("{s:I, s:s, s:s, s:s, s:O, s:O, s:s, s:s, s:b}", "uid", (json_int_t)getuid(),
                      "profile", f->profile, "agent", f->agent, "workspace", ws, "ro", ro, "rw", rw,
                      "net", f->net ? f->net : "", "policy", policy, "allow_weaker",
                      (int)f->allow_weaker);
        if (!j)
                return -EINVAL; /* a string that is not UTF-8 */
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/*
 * The socket's name: a 128-bit FNV-1a of the canonical configuration (two
 * 64-bit halves with different offsets). Only an address: the entry
 * compares the whole text the client sends, so a collision (or a crafted
 * name) reaches at most a pool that refuses. Not SHA-256: libsodium would
 * be loaded at every warm start for it (about 0.2 ms).
 */
static void pool_name_of(const char *text, char key[static 33])
{
        uint64_t h[2] = { 0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL };

        for (const unsigned char *c = (const unsigned char *)text; *c; c++)
                for (size_t i = 0; i < 2; i++) {
                        h[i] ^= *c;
                        h[i] *= 0x100000001b3ULL;
                }
        snprintf(key, 33, "%016" PRIx64 "%016" PRIx64, h[0], h[1]);
}

int pool_key(const RunFlags *f, char key[static 33], char **ret_config)
{
        _cleanup_free_ char *text = NULL;
        int r;

        r = pool_canonical_config(f, &text);
        if (r < 0)
                return r;
        pool_name_of(text, key);
        if (ret_config)
                *ret_config = TAKE_PTR(text);
        return 0;
}

static int pool_socket_path(const char *dir, const char *key, char **ret)
{
        char *s;

        if (asprintf(&s, "%s/%s.sock", dir, key) < 0)
                return -ENOMEM;
        if (strlen(s) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
                free(s);
                return -ENAMETOOLONG;
        }
        *ret = s;
        return 0;
}

static int peer_uid(int fd, pid_t *ret_pid, uid_t *ret_uid)
{
        struct ucred cred;
        socklen_t len = sizeof cred;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        if (ret_pid)
                *ret_pid = cred.pid;
        *ret_uid = cred.uid;
        return 0;
}

/* ---- lines with fds --------------------------------------------------------------------- */

/* What has arrived on a stream: bytes not yet taken as lines, and the fds that came along. */
typedef struct {
        char *buf;
        size_t len, size;
        int fds[POOL_MAX_FDS];
        size_t n_fds;
        bool extra_fds; /* more fds than expected came (they were closed) */
} PoolInput;

static void pool_input_done(PoolInput *in)
{
        free(in->buf);
        in->buf = NULL;
        for (size_t i = 0; i < in->n_fds; i++)
                safe_close(in->fds[i]);
        in->n_fds = 0;
}

/* Takes one fd that came along (or -EBADF); the caller owns it. */
static int pool_input_take_fd(PoolInput *in, size_t i)
{
        return i < in->n_fds ? TAKE_FD(in->fds[i]) : -EBADF;
}

/*
 * One recvmsg(): appends what came (at most max bytes held in all) and keeps
 * up to POOL_MAX_FDS fds. Returns the number of bytes (0 at EOF), -EAGAIN if
 * none were waiting, -EMSGSIZE beyond max, or -errno.
 */
static int pool_input_fill(int fd, PoolInput *in, size_t max)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * POOL_MAX_FDS)];
        } control;
        struct iovec iov;
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        ssize_t n;

        if (in->len >= max)
                return -EMSGSIZE;
        if (in->size - in->len < 4096) {
                size_t size = in->size + 65536 > max ? max : in->size + 65536;
                char *b = realloc(in->buf, size);
                if (!b)
                        return -ENOMEM;
                in->buf = b;
                in->size = size;
        }
        iov = (struct iovec){ in->buf + in->len, in->size - in->len };
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return errno == EINTR || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                size_t k;
                int *p;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                p = (int *)(void *)CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                        int x;
                        memcpy(&x, p + i, sizeof x);
                        if (in->n_fds < POOL_MAX_FDS)
                                in->fds[in->n_fds++] = x;
                        else {
                                safe_close(x);
                                in->extra_fds = true;
                        }
                }
        }
        if (mh.msg_flags & MSG_CTRUNC)
                in->extra_fds = true;
        in->len += (size_t)n;
        return (int)n;
}

/* Takes the first complete line, without its newline, if one is held. Returns 1, 0, or -errno. */
static int pool_input_line(PoolInput *in, char **ret)
{
        char *nl = in->len ? memchr(in->buf, '\n', in->len) : NULL, *line;
        size_t n;

        if (!nl)
                return 0;
        n = (size_t)(nl - in->buf);
        if (memchr(in->buf, '\0', n))
                return -EBADMSG;
        line = strndup(in->buf, n);
        if (!line)
                return -ENOMEM;
        memmove(in->buf, nl + 1, in->len - n - 1);
        in->len -= n + 1;
        *ret = line;
        return 1;
}

/*
 * Reads until a whole line is held, for at most timeout_ms. Returns 1 and
 * *ret (caller frees), 0 at EOF before any byte, -ETIMEDOUT, -EBADMSG (EOF
 * inside a line, a NUL byte), -EMSGSIZE, or -errno.
 */
static int pool_read_line(int fd, PoolInput *in, size_t max, int timeout_ms, char **ret)
{
        uint64_t deadline = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;
        int r;

        for (;;) {
                uint64_t now;

                r = pool_input_line(in, ret);
                if (r != 0)
                        return r;
                r = pool_input_fill(fd, in, max);
                if (r == 0)
                        return in->len ? -EBADMSG : 0;
                if (r > 0)
                        continue;
                if (r != -EAGAIN)
                        return r;
                now = now_monotonic_usec();
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1,
                         (int)((deadline - now + 999) / 1000));
                if (r < 0 && errno != EINTR)
                        return -errno;
        }
}

/* Sends j as one line; fds (if any) go with its first byte. Returns 0 or -errno. */
static int pool_send_line(int fd, const json_t *j, const int *fds, size_t n_fds)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * POOL_MAX_FDS)];
        } control = { 0 };
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT);
        size_t len, off = 0;
        char *t;

        if (!s || n_fds > POOL_MAX_FDS)
                return -ENOMEM;
        len = strlen(s);
        t = realloc(s, len + 2);
        if (!t)
                return -ENOMEM;
        s = t;
        s[len++] = '\n';
        s[len] = '\0';
        while (off < len) {
                struct iovec iov = { s + off, len - off };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                ssize_t n;

                if (off == 0 && n_fds > 0) {
                        struct cmsghdr *c;

                        mh.msg_control = &control;
                        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                        c = CMSG_FIRSTHDR(&mh);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
                }
                n = sendmsg(fd, &mh, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t)n;
        }
        return 0;
}

/* One line as JSON: strict (no duplicate keys, nothing after the value). */
static json_t *pool_parse(const char *line)
{
        return json_loads(line, JSON_REJECT_DUPLICATES, NULL);
}

/* Says why the client runs cold (for AIRLOCK_DEBUG_TIMING) and returns r. */
_printf_(4, 5) static int why_cold(char *why, size_t why_size, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
        return r;
}

/* ---- client ----------------------------------------------------------------------------- */

static const int forwarded_signals[] = { SIGINT,  SIGTERM, SIGHUP,  SIGQUIT, SIGUSR1,
                                         SIGUSR2, SIGALRM, SIGCONT, SIGPIPE, SIGWINCH };

/*
 * After the entry took us: forward signals to it until its last line
 * {"exit":N}. Returns N, or 70 after a message.
 */
static int pool_client_wait(int fd, int pidfd, PoolInput *in)
{
        _cleanup_close_ int sfd = -EBADF;
        _cleanup_free_ char *line = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        json_int_t status = -1;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(forwarded_signals); i++)
                sigaddset(&mask, forwarded_signals[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
            (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
                /* Without forwarding the sandbox would still end with us (it holds our
                 * connection), but ^C would not reach it: say so and end it. */
                return cli_fail("run", EXIT_INTERNAL,
                                "cannot set up signal forwarding to the warm sandbox: %s — "
                                "run with --no-pool",
                                strerror(errno));
        for (;;) {
                struct pollfd p[2] = { { .fd = sfd, .events = POLLIN },
                                       { .fd = fd, .events = POLLIN } };

                r = pool_input_line(in, &line);
                if (r != 0)
                        break;
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (p[0].revents) {
                        struct signalfd_siginfo si;

                        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                                (void)syscall(SYS_pidfd_send_signal, pidfd, (int)si.ssi_signo, NULL,
                                              0);
                }
                if (p[1].revents) {
                        r = pool_input_fill(fd, in, POOL_REPLY_MAX);
                        if (r == 0) {
                                r = -ECONNRESET;
                                break;
                        }
                        if (r < 0 && r != -EAGAIN)
                                break;
                }
        }
        if (r < 0)
                return cli_fail("run", EXIT_INTERNAL,
                                "the warm sandbox ended without an exit status — see airlock "
                                "pool's output");
        j = pool_parse(line);
        if (!j || json_unpack_ex(j, NULL, JSON_STRICT, "{s:I}", "exit", &status) < 0 ||
            status < 0 || status > 255)
                return cli_fail("run", EXIT_INTERNAL,
                                "the warm sandbox sent a malformed exit status — see airlock "
                                "pool's output");
        return (int)status;
}

int pool_client_run(const RunFlags *f, char *const *argv, PoolOpenSessionFn open_session,
                    void *userdata, char *why, size_t why_size)
{
        _cleanup_(json_decrefp) json_t *req = NULL, *reply = NULL, *jargv = NULL, *jenv = NULL;
        _cleanup_free_ char *dir = NULL, *path = NULL, *line = NULL, *config = NULL;
        _cleanup_close_ int fd = -EBADF, pidfd = -EBADF;
        _cleanup_(pool_input_done) PoolInput in = { 0 };
        const char *session_socket = NULL, *refusal = NULL;
        char key[33];
        uid_t uid = (uid_t)-1;
        int ok = 0, r;

        r = pool_dir_path(&dir);
        if (r < 0)
                return why_cold(why, why_size, r, "no pool directory");
        r = pool_dir_usable(dir, why, why_size);
        if (r < 0)
                return r;
        r = pool_key(f, key, &config);
        if (r < 0)
                return why_cold(why, why_size, r, "no key: %s", strerror(-r));
        r = pool_socket_path(dir, key, &path);
        if (r < 0)
                return why_cold(why, why_size, r, "socket path: %s", strerror(-r));
        r = broker_connect(path, &fd);
        if (r < 0)
                return why_cold(why, why_size, r, "%s: %s", path, strerror(-r));
        r = peer_uid(fd, NULL, &uid);
        if (r < 0)
                return why_cold(why, why_size, r, "SO_PEERCRED: %s", strerror(-r));
        if (uid != getuid()) {
                fprintf(stderr,
                        "airlock: run: the pool on %s runs as uid %u, not as you (uid %u) — "
                        "not using it (running cold); stop that pool or fix the directory's "
                        "owner\n",
                        path, (unsigned)uid, (unsigned)getuid());
                return why_cold(why, why_size, -EPERM, "the server is uid %u", (unsigned)uid);
        }

        r = open_session(userdata, &session_socket);
        if (r < 0)
                return why_cold(why, why_size, r, "broker session: %s", strerror(-r));
        jargv = json_from_strv(argv);
        jenv = json_from_strv(environ);
        if (!jargv || !jenv)
                return why_cold(why, why_size, -EINVAL, "argv or environment is not UTF-8");
        req = json_pack("{s:i, s:s, s:O, s:O, s:s?}", "v", 1, "config", config, "argv", jargv,
                        "env", jenv, "session_socket", session_socket);
        if (!req)
                return why_cold(why, why_size, -ENOMEM, "request: out of memory");
        r = pool_send_line(fd, req, (const int[]){ 0, 1, 2 }, 3);
        if (r < 0)
                return why_cold(why, why_size, r, "send: %s", strerror(-r));

        r = pool_read_line(fd, &in, POOL_REPLY_MAX, POOL_REPLY_TIMEOUT, &line);
        if (r <= 0)
                return why_cold(why, why_size, r ? r : -ECONNRESET, "no reply: %s",
                                r ? strerror(-r) : "EOF");
        reply = pool_parse(line);
        if (reply &&
            json_unpack_ex(reply, NULL, JSON_STRICT, "{s:b, s?s}", "ok", &ok, "why", &refusal) ==
                    0 &&
            !ok) {
                return why_cold(why, why_size, -EAGAIN, "the pool said: %s",
                                refusal ? refusal : "no");
        }
        pidfd = pool_input_take_fd(&in, 0);
        /*
         * The entry may be running our command now: from here on there is no
         * going cold (it would run twice). A reply we cannot trust ends it:
         * we exit, our connection closes, and the entry kills the sandbox.
         */
        if (!reply || !ok || refusal || pidfd < 0 || in.n_fds != 1 || in.extra_fds)
                return cli_fail("run", EXIT_INTERNAL,
                                "the pool's reply on %s was malformed — stop that pool, or run "
                                "with --no-pool",
                                path);
        sbx_timing("pool: taken");
        return pool_client_wait(fd, pidfd, &in);
}

/* ---- entry ------------------------------------------------------------------------------ */

typedef struct {
        int ctl;
        const char *config; /* the canonical configuration (pool_key) */
        const char *policy_path;
        const Policy *policy; /* what the sandbox was built with */
        const char *session_dir;
        struct stat session_dir_st; /* as it was before the sandbox was built */
        bool session_dir_existed;
        int client_fd;
        bool taken;
        bool told;             /* the client has its exit status (pool_finished) */
        uint64_t expires_usec; /* not taken by then: torn down, the server builds another */
        bool idle_build;       /* built at SCHED_IDLE (the sandbox leaves it before the take) */
        char **argv, **env;
        char *session_socket;
} PoolEntry;

/* The policy file still has the text the entry built its sandbox from. */
static bool pool_policy_unchanged(const PoolEntry *e)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r;

        r = read_full_file(e->policy_path, POLICY_MAX_FILE_SIZE, &text, &len);
        if (r == -ENOENT && streq(e->policy_path, AIRLOCK_POLICY_PATH))
                return streq(e->policy->source, "<default>"); /* the built-in one, still */
        return r >= 0 && len == e->policy->text_len && memcmp(text, e->policy->text, len) == 0;
}

/*
 * The sandbox cloned the session directory when it was built (if it
 * existed): a session socket can be bound at take time only if that is still
 * the broker's directory (airlockd may have started, or restarted, since).
 */
static bool pool_session_dir_unchanged(const PoolEntry *e)
{
        struct stat st;

        return e->session_dir_existed && stat(e->session_dir, &st) == 0 &&
               st.st_dev == e->session_dir_st.st_dev && st.st_ino == e->session_dir_st.st_ino;
}

static int pool_refuse(PoolEntry *e, SbxError *err, const char *why)
{
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:b, s:s}", "ok", 0, "why", why);

        if (j)
                (void)pool_send_line(e->client_fd, j, NULL, 0);
        snprintf(err->message, sizeof err->message, "refused a client: %s", why);
        err->exit_code = EXIT_SETUP;
        return -ESTALE;
}

/*
 * The SbxTakeFn: tells the server we are ready, waits for a client, checks
 * its request, and hands its stdio to the sandbox. Runs in the entry, as the
 * user, before anything of the client's runs.
 */
static int pool_take(void *userdata, SbxTake *t, SbxError *err)
{
        PoolEntry *e = userdata;
        _cleanup_(pool_input_done) PoolInput in = { 0 };
        _cleanup_(json_decrefp) json_t *req = NULL, *jargv = NULL, *jenv = NULL, *jsock = NULL,
                                       *ok = NULL;
        _cleanup_free_ char *line = NULL;
        _cleanup_close_ int pidfd = -EBADF;
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        char byte = 0;
        struct iovec iov = { &byte, 1 };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        struct cmsghdr *c;
        const char *config = NULL;
        json_int_t v = 0;
        uid_t uid = (uid_t)-1;
        ssize_t n;
        int r;

        /* ready: "I" when built at idle priority, else "R" */
        if (send(e->ctl, e->idle_build ? "I" : "R", 1, MSG_NOSIGNAL) < 0)
                return -ECANCELED; /* the server is gone */
        for (;;) {
                struct pollfd p[2] = { { .fd = e->ctl, .events = POLLIN },
                                       { .fd = t->sandbox_pidfd, .events = POLLIN } };
                uint64_t now = now_monotonic_usec();
                int n_ready;

                if (now >= e->expires_usec) {
                        /* "E": expired, not failed; the server builds another at once */
                        (void)send(e->ctl, "E", 1, MSG_NOSIGNAL);
                        return -ETIMEDOUT;
                }
                n_ready = poll(p, t->sandbox_pidfd >= 0 ? 2 : 1,
                               (int)((e->expires_usec - now + 999) / 1000));
                if (n_ready < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n_ready == 0)
                        continue;
                if (p[1].revents) {
                        snprintf(err->message, sizeof err->message,
                                 "the warm sandbox's pid 1 ended while it waited for a client");
                        err->exit_code = EXIT_SETUP;
                        return -ECHILD;
                }
                if (p[0].revents)
                        break;
        }
        n = recvmsg(e->ctl, &mh, MSG_CMSG_CLOEXEC);
        if (n <= 0)
                return -ECANCELED; /* the server stops */
        c = CMSG_FIRSTHDR(&mh);
        /* The server is our own side: anything but "C" with one fd is a bug. */
        if (n != 1 || byte != 'C' || (mh.msg_flags & MSG_CTRUNC) || !c ||
            c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len != CMSG_LEN(sizeof(int))) {
                snprintf(err->message, sizeof err->message,
                         "unexpected message from the pool server — this is a bug in airlock");
                err->exit_code = EXIT_INTERNAL;
                return -EPROTO;
        }
        memcpy(&e->client_fd, CMSG_DATA(c), sizeof(int));

        /* The server checked the client's uid; check again, it costs nothing. */
        if (peer_uid(e->client_fd, NULL, &uid) < 0 || uid != getuid())
                return pool_refuse(e, err, "not the pool's user");
        r = pool_read_line(e->client_fd, &in, POOL_REQUEST_MAX, POOL_REQUEST_TIMEOUT, &line);
        if (r <= 0) {
                snprintf(err->message, sizeof err->message, "no request from the client: %s",
                         r == 0 ? "it closed the connection" : strerror(-r));
                err->exit_code = EXIT_SETUP;
                return r < 0 ? r : -ECONNRESET;
        }
        req = pool_parse(line);
        if (!req ||
            json_unpack_ex(req, NULL, JSON_STRICT, "{s:I, s:s, s:O, s:O, s:O}", "v", &v, "config",
                           &config, "argv", &jargv, "env", &jenv, "session_socket", &jsock) < 0)
                return pool_refuse(e, err, "malformed request");
        if (v != 1)
                return pool_refuse(e, err, "unknown protocol version");
        /* the whole configuration, not only the socket's name */
        if (!streq(config, e->config))
                return pool_refuse(e, err, "another configuration");
        if (in.n_fds != 3 || in.extra_fds || in.len != 0)
                return pool_refuse(e, err, "the request must carry exactly fds 0, 1, 2");
        e->argv = strv_from_json(jargv);
        e->env = strv_from_json(jenv);
        if (!e->argv || !e->env || !e->argv[0])
                return pool_refuse(e, err, "malformed argv or env");
        if (!json_is_null(jsock)) {
                const char *s = json_string_value(jsock);

                if (!s || strlen(s) != json_string_length(jsock) ||
                    !sbx_session_socket_name(e->session_dir, s))
                        return pool_refuse(e, err, "the session socket is not the broker's");
                if (!pool_session_dir_unchanged(e))
                        return pool_refuse(e, err,
                                           "the broker's session directory is newer than this "
                                           "sandbox");
                e->session_socket = strdup(s);
                if (!e->session_socket)
                        return pool_refuse(e, err, "out of memory");
        }
        if (!pool_policy_unchanged(e))
                return pool_refuse(e, err, "the policy changed since this sandbox was built");

        pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        ok = json_pack("{s:b}", "ok", 1);
        if (pidfd < 0 || !ok)
                return pool_refuse(e, err, "cannot make a pidfd for signal forwarding");
        for (int i = 0; i < 3; i++)
                if (dup2(in.fds[i], i) < 0) {
                        r = -errno;
                        snprintf(err->message, sizeof err->message, "dup2: %s", strerror(-r));
                        err->exit_code = EXIT_SETUP;
                        return r;
                }
        r = pool_send_line(e->client_fd, ok, &pidfd, 1);
        if (r < 0) {
                snprintf(err->message, sizeof err->message, "the client went away: %s",
                         strerror(-r));
                err->exit_code = EXIT_SETUP;
                return r;
        }
        e->taken = true;
        t->argv = e->argv;
        t->env = e->env;
        t->session_socket = e->session_socket;
        t->hold_fd = e->client_fd;
        return 0;
}

static void pool_tell_exit(PoolEntry *e, int code)
{
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:i}", "exit", code);

        if (e->told)
                return;
        e->told = true;
        if (!j || pool_send_line(e->client_fd, j, NULL, 0) < 0)
                _exit(EXIT_INTERNAL);
}

/*
 * The sandbox's outcome is final (its processes are gone, the placeholders
 * removed): the client exits now, while we wait for the namespaces'
 * teardown and remove the cgroup.
 */
static void pool_finished(void *userdata, int exit_status)
{
        PoolEntry *e = userdata;

        if (e->taken)
                pool_tell_exit(e, exit_status);
}

/*
 * An entry: forked by the server, builds one sandbox and serves one client.
 * Never returns.
 */
_noreturn_ static void pool_entry_main(RunFlags *f, const char *config, const char *session_dir,
                                       unsigned max_age, int ctl)
{
        _cleanup_(run_setup_done) RunSetup setup = { 0 };
        PoolEntry e = {
                .config = config,
                .policy_path = f->policy,
                .session_dir = session_dir,
                .client_fd = -EBADF,
                .expires_usec = now_monotonic_usec() + max_age * 1000000ULL,
        };
        SbxError serr = { 0 };
        sigset_t none;
        int nul, r, status = 0, code;

        /* our own session: a ^C meant for the pool's terminal is not for the sandbox */
        (void)setsid();
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        (void)signal(SIGPIPE, SIG_DFL);
        /* only our ctl and stdio: the listen socket and the other entries' ctl stay the server's */
        if (ctl != 3) {
                if (dup3(ctl, 3, O_CLOEXEC) < 0)
                        _exit(EXIT_INTERNAL);
                ctl = 3;
        }
        (void)close_range(4, ~0U, 0);
        e.ctl = ctl;
        nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0)
                _exit(EXIT_INTERNAL);
        safe_close(nul);

        /*
         * Root builds at idle priority: refilling the pool takes only CPU
         * time nobody else wants (a build costs about as much CPU as a cold
         * run). The sandbox leaves it at the take (sbx_run); an ordinary
         * user could not (SCHED_IDLE -> SCHED_OTHER needs CAP_SYS_NICE), so
         * builds at the normal priority.
         */
        if (geteuid() == 0) {
                if (sched_setscheduler(0, SCHED_IDLE, &(struct sched_param){ 0 }) == 0)
                        e.idle_build = true;
                else
                        fprintf(stderr,
                                "airlock: pool: entry (pid %d): cannot build at idle priority "
                                "(%m) — building at the normal one\n",
                                (int)getpid());
        }
        r = run_setup(&setup, f, NULL, SUB);
        if (r > 0)
                _exit(r);
        e.policy = setup.policy;
        e.session_dir_existed =
                stat(session_dir, &e.session_dir_st) == 0 && S_ISDIR(e.session_dir_st.st_mode);
        setup.cfg.take = pool_take;
        setup.cfg.take_userdata = &e;
        setup.cfg.finished = pool_finished;
        setup.cfg.session_dir = session_dir;
        r = sbx_run(&setup.cfg, &status, &serr);
        if (!e.taken) {
                if (r == -ECANCELED || r == -ETIMEDOUT)
                        _exit(EXIT_OK); /* the pool stops, or this sandbox expired */
                fprintf(stderr, "airlock: pool: entry (pid %d): %s\n", (int)getpid(),
                        serr.message[0] ? serr.message : strerror(-r));
                _exit(serr.exit_code ? serr.exit_code : EXIT_SETUP);
        }
        /* stderr is the client's now: the same message a cold run would print */
        code = status;
        if (r < 0)
                code = cli_fail("run", serr.exit_code ? serr.exit_code : EXIT_SETUP, "%s",
                                serr.message[0] ? serr.message : strerror(-r));
        pool_tell_exit(&e, code);
        _exit(EXIT_OK);
}

/* ---- server ----------------------------------------------------------------------------- */

typedef struct {
        pid_t pid;
        int ctl; /* -EBADF: a free slot */
        bool ready;
} PoolSlot;

/* An accepted client whose request has not arrived yet. */
typedef struct {
        int fd; /* -EBADF: a free slot */
        pid_t pid;
        uid_t uid;
        uint64_t deadline_usec;
} PoolClient;

typedef struct {
        RunFlags *flags;
        const char *config;
        const char *socket_path;
        const char *session_dir;
        unsigned size;
        unsigned max_age; /* seconds a sandbox waits before it is rebuilt */
        uid_t uid;
        PoolSlot slots[POOL_SIZE_MAX];
        PoolClient pending[POOL_PENDING_MAX];
        uint64_t backoff_usec, next_build_usec;
        uint64_t refill_usec; /* no build before (POOL_REFILL_DELAY after a take) */
} PoolServer;

static void pool_slot_clear(PoolSlot *s)
{
        s->ctl = safe_close(s->ctl);
        s->pid = 0;
        s->ready = false;
}

static void pool_failed(PoolServer *S)
{
        S->backoff_usec = S->backoff_usec ? S->backoff_usec * 2 : POOL_BACKOFF_FIRST;
        if (S->backoff_usec > POOL_BACKOFF_MAX)
                S->backoff_usec = POOL_BACKOFF_MAX;
        S->next_build_usec = now_monotonic_usec() + S->backoff_usec;
}

static void pool_spawn(PoolServer *S, PoolSlot *s)
{
        int sp[2];
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
                fprintf(stderr,
                        "airlock: pool: cannot make an entry's socket pair: %m — retrying\n");
                pool_failed(S);
                return;
        }
        fflush(stderr);
        pid = fork();
        if (pid < 0) {
                fprintf(stderr, "airlock: pool: cannot fork an entry: %m — retrying\n");
                safe_close(sp[0]);
                safe_close(sp[1]);
                pool_failed(S);
                return;
        }
        if (pid == 0) {
                safe_close(sp[0]);
                pool_entry_main(S->flags, S->config, S->session_dir, S->max_age, sp[1]);
        }
        safe_close(sp[1]);
        *s = (PoolSlot){ .pid = pid, .ctl = sp[0] };
}

/* The entry in slot s wrote, or closed its end. */
static void pool_slot_event(PoolServer *S, PoolSlot *s)
{
        char buf[2];
        ssize_t n = recv(s->ctl, buf, sizeof buf, MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n == 1 && (buf[0] == 'R' || buf[0] == 'I') && !s->ready) {
                s->ready = true;
                S->backoff_usec = 0;
                fprintf(stderr, "airlock: pool: built entry (pid %d%s)\n", (int)s->pid,
                        buf[0] == 'I' ? ", at idle priority" : "");
                return;
        }
        if (n == 1 && buf[0] == 'E' && s->ready) {
                fprintf(stderr,
                        "airlock: pool: entry (pid %d) expired after %u s unused — building "
                        "another\n",
                        (int)s->pid, S->max_age);
                pool_slot_clear(s);
                return;
        }
        if (n > 0) {
                /* our own side speaking nonsense: a bug; that entry goes */
                fprintf(stderr,
                        "airlock: pool: entry (pid %d) sent an unexpected message — killing it "
                        "(a bug in airlock)\n",
                        (int)s->pid);
                (void)kill(s->pid, SIGKILL);
        }
        pool_failed(S);
        fprintf(stderr,
                "airlock: pool: entry (pid %d) failed %s (its reason is on stderr above) — "
                "building another in %llu s\n",
                (int)s->pid, s->ready ? "while it waited" : "before it was ready",
                (unsigned long long)(S->backoff_usec / 1000000));
        pool_slot_clear(s);
}

static int pool_hand_over(PoolSlot *s, int cfd)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = { 0 };
        struct iovec iov = { (char *)"C", 1 };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &cfd, sizeof(int));
        return sendmsg(s->ctl, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 ? 0 : -errno;
}

/*
 * A client is handed to an entry only once its request has arrived: a
 * connection that only probes (is a pool listening?) or never speaks must
 * not use up a warm sandbox.
 */
static void pool_accept(PoolServer *S, int lfd)
{
        _cleanup_close_ int cfd = -EBADF;
        PoolClient *c = NULL;
        pid_t pid = 0;
        uid_t uid = (uid_t)-1;

        cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
                return;
        if (peer_uid(cfd, &pid, &uid) < 0 || uid != S->uid) {
                /* the directory and socket modes keep others out; root is the exception */
                fprintf(stderr, "airlock: pool: refused client (pid %d, uid %u): not uid %u\n",
                        (int)pid, (unsigned)uid, (unsigned)S->uid);
                return;
        }
        for (size_t i = 0; i < POOL_PENDING_MAX && !c; i++)
                if (S->pending[i].fd < 0)
                        c = &S->pending[i];
        if (!c) {
                fprintf(stderr,
                        "airlock: pool: refused client (pid %d, uid %u): %d connections wait "
                        "already\n",
                        (int)pid, (unsigned)uid, POOL_PENDING_MAX);
                return;
        }
        *c = (PoolClient){
                .fd = TAKE_FD(cfd),
                .pid = pid,
                .uid = uid,
                .deadline_usec = now_monotonic_usec() + POOL_REQUEST_TIMEOUT * 1000ULL,
        };
}

/* The pending client c has sent something (or closed, or took too long). */
static void pool_dispatch(PoolServer *S, PoolClient *c, bool timed_out)
{
        _cleanup_close_ int cfd = TAKE_FD(c->fd);
        char byte;

        if (timed_out) {
                fprintf(stderr, "airlock: pool: dropped client (pid %d): no request in %d s\n",
                        (int)c->pid, POOL_REQUEST_TIMEOUT / 1000);
                return;
        }
        if (recv(cfd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) != 1)
                return; /* closed without a request: someone checked that we listen */
        for (unsigned i = 0; i < S->size; i++) {
                PoolSlot *s = &S->slots[i];

                if (s->ctl < 0 || !s->ready)
                        continue;
                if (pool_hand_over(s, cfd) < 0) {
                        pool_slot_event(S, s);
                        continue;
                }
                fprintf(stderr, "airlock: pool: entry (pid %d) taken by pid %d (uid %u)\n",
                        (int)s->pid, (int)c->pid, (unsigned)c->uid);
                /* the entry is the client's now; a new one takes its place, soon */
                pool_slot_clear(s);
                S->refill_usec = now_monotonic_usec() + POOL_REFILL_DELAY;
                return;
        }
        {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:b, s:s}", "ok", 0, "why", "busy");
                if (j)
                        (void)pool_send_line(cfd, j, NULL, 0);
        }
        fprintf(stderr, "airlock: pool: busy: no entry ready for pid %d — it runs cold\n",
                (int)c->pid);
}

static void pool_reap(void)
{
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

/*
 * Waits for the untaken entries, whose ctl was just closed, to tear their
 * sandboxes down. One that has not exited within POOL_STOP_TIMEOUT (stopped,
 * or hung in the kernel) is killed, so that stopping the pool always ends;
 * its sandbox dies with it (pid 1's parent-death signal), and a later
 * session in that workspace removes the placeholders it left when that
 * session ends (they are marked).
 */
static void pool_wait_entries(PoolServer *S)
{
        uint64_t deadline = now_monotonic_usec() + POOL_STOP_TIMEOUT;

        for (;;) {
                bool left = false;

                for (unsigned i = 0; i < S->size; i++) {
                        if (S->slots[i].pid <= 0)
                                continue;
                        if (waitpid(S->slots[i].pid, NULL, WNOHANG) == 0)
                                left = true;
                        else /* reaped, or not ours to wait for (ECHILD) */
                                S->slots[i].pid = 0;
                }
                if (!left)
                        return;
                if (now_monotonic_usec() >= deadline)
                        break;
                (void)poll(NULL, 0, 10);
        }
        for (unsigned i = 0; i < S->size; i++) {
                pid_t pid = S->slots[i].pid;

                if (pid <= 0)
                        continue;
                fprintf(stderr,
                        "airlock: pool: a waiting sandbox (pid %d) did not stop within %llu s; "
                        "killing it\n",
                        (int)pid, POOL_STOP_TIMEOUT / 1000000ULL);
                (void)kill(pid, SIGKILL);
                (void)waitpid(pid, NULL, 0);
                S->slots[i].pid = 0;
        }
}

static int pool_serve(PoolServer *S, int lfd, int sfd)
{
        const char *stop = NULL;

        while (!stop) {
                struct pollfd p[2 + POOL_SIZE_MAX + POOL_PENDING_MAX];
                PoolSlot *which[2 + POOL_SIZE_MAX];
                PoolClient *client[POOL_PENDING_MAX];
                size_t n_slots, n_clients = 0;
                uint64_t now = now_monotonic_usec();
                int timeout = -1;
                size_t n = 0;

                for (unsigned i = 0; i < S->size; i++)
                        if (S->slots[i].ctl < 0) {
                                uint64_t at = S->next_build_usec > S->refill_usec
                                                      ? S->next_build_usec
                                                      : S->refill_usec;

                                if (now >= at)
                                        pool_spawn(S, &S->slots[i]);
                                if (S->slots[i].ctl < 0)
                                        timeout = (int)((at - now + 999) / 1000);
                        }
                p[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
                p[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
                for (unsigned i = 0; i < S->size; i++)
                        if (S->slots[i].ctl >= 0) {
                                which[n] = &S->slots[i];
                                p[n++] = (struct pollfd){ .fd = S->slots[i].ctl, .events = POLLIN };
                        }
                n_slots = n;
                for (size_t i = 0; i < POOL_PENDING_MAX; i++) {
                        PoolClient *c = &S->pending[i];
                        int t;

                        if (c->fd < 0)
                                continue;
                        t = c->deadline_usec > now ? (int)((c->deadline_usec - now + 999) / 1000)
                                                   : 0;
                        if (timeout < 0 || t < timeout)
                                timeout = t;
                        client[n_clients++] = c;
                        p[n++] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
                }
                if (poll(p, n, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "airlock: pool: poll: %m\n");
                        stop = "poll failed";
                        break;
                }
                if (p[0].revents) {
                        struct signalfd_siginfo si;

                        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                                if (si.ssi_signo == SIGCHLD)
                                        pool_reap();
                                else
                                        stop = sigdescr_np((int)si.ssi_signo);
                        }
                }
                for (size_t i = 2; i < n_slots; i++)
                        if (p[i].revents && which[i]->ctl == p[i].fd)
                                pool_slot_event(S, which[i]);
                now = now_monotonic_usec();
                for (size_t i = 0; i < n_clients && !stop; i++)
                        if (p[n_slots + i].revents || now >= client[i]->deadline_usec)
                                pool_dispatch(S, client[i], !p[n_slots + i].revents);
                if (p[1].revents && !stop)
                        pool_accept(S, lfd);
        }

        fprintf(stderr, "airlock: pool: stopping (%s)\n", stop);
        (void)unlink(S->socket_path);
        for (size_t i = 0; i < POOL_PENDING_MAX; i++)
                S->pending[i].fd = safe_close(S->pending[i].fd);
        /* closing an untaken entry's ctl cancels it: it tears its sandbox down and exits */
        for (unsigned i = 0; i < S->size; i++) {
                pid_t pid = S->slots[i].pid;

                if (S->slots[i].ctl < 0)
                        continue;
                pool_slot_clear(&S->slots[i]);
                S->slots[i].pid = pid;
        }
        pool_wait_entries(S);
        pool_reap();
        fprintf(stderr, "airlock: pool: stopped\n");
        return EXIT_OK;
}

/* Creates (0700) and checks the pool directory; exits the server's way on failure. */
static int pool_make_dir(const char *dir)
{
        char why[512];

        if (getuid() == 0 && !getenv("AIRLOCK_POOL_DIR") && mkdir(AIRLOCK_RUNTIME_DIR, 0755) < 0 &&
            errno != EEXIST)
                return cli_fail(SUB, EXIT_SETUP, "cannot create %s: %m — create it (mode 0755)",
                                AIRLOCK_RUNTIME_DIR);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return cli_fail(SUB, EXIT_SETUP,
                                "cannot create the pool directory %s: %m — create it (mode 0700) "
                                "or set AIRLOCK_POOL_DIR",
                                dir);
        if (pool_dir_usable(dir, why, sizeof why) < 0)
                return cli_fail(SUB, EXIT_SETUP,
                                "the pool directory is unusable: %s — it must be a directory of "
                                "your own with mode 0700 (remove it and let airlock pool create "
                                "it, or set AIRLOCK_POOL_DIR)",
                                why);
        return 0;
}

static int pool_listen(const char *path, int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF, probe = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        mode_t old;
        int r;

        r = broker_connect(path, &probe);
        if (r == 0)
                return cli_fail(SUB, EXIT_SETUP,
                                "a pool for this configuration already runs on %s — use it, or "
                                "stop it first",
                                path);
        if (r == -ECONNREFUSED) {
                fprintf(stderr, "airlock: pool: replacing the stale socket %s\n", path);
                if (unlink(path) < 0 && errno != ENOENT)
                        return cli_fail(SUB, EXIT_SETUP, "cannot remove the stale socket %s: %m",
                                        path);
        } else if (r != -ENOENT)
                return cli_fail(SUB, EXIT_SETUP, "cannot check %s: %s — remove it", path,
                                strerror(-r));
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return cli_fail(SUB, EXIT_SETUP, "socket: %m");
        old = umask(0177); /* the socket is 0600 from the start */
        r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
        umask(old);
        if (r < 0)
                return cli_fail(SUB, EXIT_SETUP, "cannot bind %s: %m — is another pool starting?",
                                path);
        if (listen(fd, SOMAXCONN) < 0)
                return cli_fail(SUB, EXIT_SETUP, "listen on %s: %m", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int cmd_pool(int argc, char **argv)
{
        enum { ARG_SIZE = RUN_ARG_LAST, ARG_MAX_AGE };
        static const struct option options[] = {
                RUN_OPTIONS,
                { "size", required_argument, NULL, ARG_SIZE },
                { "max-age", required_argument, NULL, ARG_MAX_AGE },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(run_flags_done) RunFlags flags = RUN_FLAGS_INIT;
        _cleanup_free_ char *dir = NULL, *path = NULL, *ws = NULL, *session_dir = NULL,
                            *admin = NULL, *policy = NULL, *config = NULL;
        _cleanup_close_ int lfd = -EBADF, sfd = -EBADF;
        PoolServer S = { .flags = &flags,
                         .size = POOL_SIZE_DEFAULT,
                         .max_age = POOL_MAX_AGE_DEFAULT,
                         .uid = getuid() };
        char key[33], cwd[4096];
        sigset_t mask;
        uint64_t size;
        struct stat st;
        int c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                r = run_flags_parse_one(&flags, c, optarg, SUB);
                if (r > 0)
                        return r;
                if (r == 0)
                        continue;
                switch (c) {
                case ARG_SIZE:
                        if (parse_u64(optarg, POOL_SIZE_MAX, &size) < 0 || size < 1)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "bad --size '%s' — give a number from 1 to %d",
                                                optarg, POOL_SIZE_MAX);
                        S.size = (unsigned)size;
                        break;
                case ARG_MAX_AGE:
                        if (parse_u64(optarg, POOL_MAX_AGE_MAX, &size) < 0 || size < 1)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "bad --max-age '%s' — give seconds from 1 to %d",
                                                optarg, POOL_MAX_AGE_MAX);
                        S.max_age = (unsigned)size;
                        break;
                case 'h':
                        cli_print_usage(&cli_command_pool, false);
                        return EXIT_OK;
                default:
                        return cli_fail(SUB, EXIT_USAGE,
                                        "bad option '%s' — run 'airlock help pool'",
                                        argv[optind - 1]);
                }
        }
        if (optind < argc)
                return cli_fail(SUB, EXIT_USAGE,
                                "unexpected argument '%s' — the pool takes no command; give it "
                                "to 'airlock run'",
                                argv[optind]);
        r = run_flags_check(&flags, SUB);
        if (r > 0)
                return r;
        if (!getcwd(cwd, sizeof cwd))
                return cli_fail(SUB, EXIT_SETUP,
                                "cannot read the current directory — give --workspace DIR");
        ws = realpath(flags.workspace ? flags.workspace : cwd, NULL);
        if (!ws || stat(ws, &st) < 0 || !S_ISDIR(st.st_mode))
                return cli_fail(SUB, EXIT_USAGE,
                                "workspace %s is not an existing directory — give one with "
                                "--workspace DIR",
                                flags.workspace ? flags.workspace : cwd);

        /* the key, then the same flags for the entries, in absolute form */
        r = pool_key(&flags, key, &config);
        if (r < 0)
                return cli_fail(SUB, EXIT_USAGE,
                                "cannot make the pool key: %s — give paths in UTF-8", strerror(-r));
        flags.workspace = ws;
        policy = realpath(flags.policy, NULL);
        if (policy)
                flags.policy = policy;
        {
                char **ro = pool_absolute_strv(flags.ro, cwd),
                     **rw = pool_absolute_strv(flags.rw, cwd);
                if (!ro || !rw) {
                        strv_free(ro);
                        strv_free(rw);
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                }
                strv_free(flags.ro);
                strv_free(flags.rw);
                flags.ro = ro;
                flags.rw = rw;
        }
        /* what a client would get: refuse now, not once per entry */
        {
                _cleanup_(run_setup_done) RunSetup setup = { 0 };
                r = run_setup(&setup, &flags, NULL, SUB);
                if (r > 0)
                        return r;
        }

        admin = strdup(broker_admin_socket_path());
        if (!admin || asprintf(&session_dir, "%s/sessions", dirname(admin)) < 0)
                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
        r = pool_dir_path(&dir);
        if (r < 0)
                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
        r = pool_make_dir(dir);
        if (r > 0)
                return r;
        r = pool_socket_path(dir, key, &path);
        if (r < 0)
                return cli_fail(SUB, EXIT_SETUP,
                                "the socket path %s/%s.sock is too long — set AIRLOCK_POOL_DIR to "
                                "a shorter directory",
                                dir, key);

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
            (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
                return cli_fail(SUB, EXIT_INTERNAL, "signalfd: %m");
        (void)signal(SIGPIPE, SIG_IGN);
        r = pool_listen(path, &lfd);
        if (r > 0)
                return r;

        for (unsigned i = 0; i < POOL_SIZE_MAX; i++)
                S.slots[i].ctl = -EBADF;
        for (unsigned i = 0; i < POOL_PENDING_MAX; i++)
                S.pending[i].fd = -EBADF;
        S.config = config;
        S.socket_path = path;
        S.session_dir = session_dir;
        fprintf(stderr, "airlock: pool: listening on %s (size %u, workspace %s)\n", path, S.size,
                ws);
        return pool_serve(&S, lfd, sfd);
}

const CliCommand cli_command_pool = {
        .name = "pool",
        .summary = "keep sandboxes built ahead, so that 'airlock run' starts at once",
        .usage = "Usage: airlock pool [RUN OPTIONS] [--size N] [--max-age SECONDS]\n"
                 "\n"
                 "Keeps N sandboxes of one configuration built and waiting, in the foreground\n"
                 "(stop it with ^C or SIGTERM). An 'airlock run' with the same options, by the\n"
                 "same user, takes one instead of building its own, and the pool builds the\n"
                 "next (0.1 s later; as root at idle CPU priority); each is used once. Any\n"
                 "other 'airlock run' builds its own as before.\n"
                 "A sandbox taken from the pool is the one 'airlock run' would build: the policy\n"
                 "is read for each, and one built before the policy changed is not used.\n"
                 "\n"
                 "Options:\n"
                 "  --profile NAME     sandbox profile from the policy (default: default)\n"
                 "  --agent NAME       the agent's name, for requests and the audit log\n"
                 "  --workspace DIR    writable working directory (default: the current one)\n"
                 "  --ro PATH          bind PATH read-only (e.g. from under /run or /tmp)\n"
                 "  --rw PATH          make PATH writable too (repeatable)\n"
                 "  --net none|host    network: none (loopback only, the default) or host\n"
                 "  --policy FILE      policy file (default: $AIRLOCK_POLICY, else "
                 "/etc/airlock/policy.yaml)\n"
                 "  --allow-weaker     run even where this host lacks a layer the profile needs\n"
                 "  --size N           sandboxes kept ready, 1 to 16 (default: 2)\n"
                 "  --max-age SECONDS  rebuild a sandbox unused this long (default: 300), so\n"
                 "                     that it shows the host's mounts as they are now\n"
                 "\n"
                 "The socket is DIR/KEY.sock, DIR being $AIRLOCK_POOL_DIR, else /run/airlock/pool\n"
                 "for root, else $XDG_RUNTIME_DIR/airlock-pool, else /tmp/airlock-pool-UID.\n"
                 "\n"
                 "Exit codes: 0 stopped by a signal; 64 usage, 65 invalid policy, 71 the pool\n"
                 "could not start (its directory, or a pool already runs). See airlock(1).\n",
        .run = cmd_pool,
};
