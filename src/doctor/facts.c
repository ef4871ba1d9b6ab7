/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * This host's facts for `airlock doctor --local`. Read-only: every file is
 * opened O_RDONLY|O_NOFOLLOW and size-limited; the cluster key is read only
 * to be hashed and is wiped from memory at once.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/hash.h"
#include "common/util.h"
#include "config.h"
#include "doctor/doctor.h"

#define MAX_KEY_FILE_SIZE (64 * 1024)
#define MAX_CONF_SIZE     (1024 * 1024)
#define MAX_KEY_FILES     32

static char *root_path(const DoctorLocalOptions *o, const char *path)
{
        char *s = NULL;

        if (asprintf(&s, "%s%s", o->root ? o->root : "", path) < 0)
                return NULL;
        return s;
}

static int json_set_str(json_t *o, const char *key, const char *s)
{
        return json_object_set_new(o, key, s ? json_string(s) : json_null()) < 0 ? -ENOMEM : 0;
}

static void set_error(json_t *o, const char *what, int err)
{
        char buf[512];

        snprintf(buf, sizeof(buf), "%s: %s", what, strerror(err > 0 ? err : -err));
        json_object_set_new(o, "error", json_string(buf));
}

/* ---- corosync process: pid, start time, CPU% from /proc ---- */

static int read_small(const char *path, char *buf, size_t size)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, size - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = '\0';
        return (int)n;
}

static uint64_t boot_time_sec(const DoctorLocalOptions *o)
{
        _cleanup_free_ char *p = root_path(o, "/proc/stat");
        _cleanup_free_ char *text = NULL;
        const char *b;

        if (!p || read_full_file(p, 1024 * 1024, &text, NULL) < 0)
                return 0;
        b = strstr(text, "\nbtime ");
        if (!b)
                return 0;
        return strtoull(b + 7, NULL, 10);
}

static json_t *process_facts(const DoctorLocalOptions *o, pid_t pid)
{
        _cleanup_free_ char *p = NULL;
        char stat[2048], *c, *save = NULL, *tok;
        unsigned long long utime = 0, stime = 0, start_ticks = 0;
        long hz = sysconf(_SC_CLK_TCK);
        json_t *j;
        int field;

        if (asprintf(&p, "%s/proc/%d/stat", o->root ? o->root : "", (int)pid) < 0)
                return NULL;
        if (read_small(p, stat, sizeof(stat)) < 0)
                return NULL;
        c = strrchr(stat, ')');
        if (!c)
                return NULL;
        /* Fields after "comm)": 3 = state ... 14 utime, 15 stime, 22 starttime. */
        field = 3;
        for (tok = strtok_r(c + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
                if (field == 3 && tok[0] == 'Z')
                        return NULL; /* a zombie is not a running corosync */
                if (field == 14)
                        utime = strtoull(tok, NULL, 10);
                else if (field == 15)
                        stime = strtoull(tok, NULL, 10);
                else if (field == 22) {
                        start_ticks = strtoull(tok, NULL, 10);
                        break;
                }
        }
        j = json_object();
        if (!j)
                return NULL;
        json_object_set_new(j, "pid", json_integer(pid));
        if (hz > 0) {
                uint64_t btime = boot_time_sec(o);
                double started = (double)btime + (double)start_ticks / (double)hz;
                double now = (double)now_realtime_usec() / 1e6;
                double cpu = (double)(utime + stime) / (double)hz;

                if (btime > 0) {
                        json_object_set_new(j, "started", json_integer((json_int_t)started));
                        json_object_set_new(j, "running_seconds",
                                            json_integer((json_int_t)(now - started)));
                        if (now - started > 0.5)
                                json_object_set_new(
                                        j, "cpu_percent",
                                        json_real((double)((long)(cpu * 1000.0 / (now - started) *
                                                                  100.0)) /
                                                  1000.0));
                }
                json_object_set_new(j, "cpu_seconds", json_real(cpu));
        }
        return j;
}

static json_t *find_corosync_process(const DoctorLocalOptions *o)
{
        _cleanup_free_ char *proc = root_path(o, "/proc");
        DIR *d;
        struct dirent *de;
        json_t *found = NULL;

        if (!proc)
                return NULL;
        d = opendir(proc);
        if (!d)
                return NULL;
        while (!found && (de = readdir(d))) {
                char comm[64], path[512];
                uint64_t pid;

                if (parse_u64(de->d_name, INT32_MAX, &pid) < 0)
                        continue;
                snprintf(path, sizeof(path), "%s/%s/comm", proc, de->d_name);
                if (read_small(path, comm, sizeof(comm)) <= 0)
                        continue;
                comm[strcspn(comm, "\n")] = '\0';
                if (streq(comm, "corosync"))
                        found = process_facts(o, (pid_t)pid);
        }
        closedir(d);
        return found;
}

/* ---- enabled: systemd unit links and SysV rc links ---- */

static json_t *enabled_links(const DoctorLocalOptions *o)
{
        static const char *const patterns[] = {
                "/etc/systemd/system/*.wants/corosync.service",
                "/etc/rc[2345].d/S*corosync",
        };
        json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(patterns); i++) {
                _cleanup_free_ char *p = root_path(o, patterns[i]);
                glob_t g = {};

                if (!p)
                        continue;
                if (glob(p, GLOB_NOSORT, NULL, &g) == 0)
                        for (size_t k = 0; k < g.gl_pathc; k++)
                                json_array_append_new(a,
                                                      json_string(g.gl_pathv[k] +
                                                                  (o->root ? strlen(o->root) : 0)));
                globfree(&g);
        }
        return a;
}

/* ---- files: key fingerprints and the configuration digest ---- */

static void stat_to_json(json_t *j, const struct stat *st)
{
        char mode[8];

        snprintf(mode, sizeof(mode), "%04o", (unsigned)(st->st_mode & 07777));
        json_object_set_new(j, "mode", json_string(mode));
        json_object_set_new(j, "uid", json_integer(st->st_uid));
        json_object_set_new(j, "size", json_integer((json_int_t)st->st_size));
        json_object_set_new(j, "mtime", json_integer((json_int_t)st->st_mtim.tv_sec));
        json_object_set_new(j, "ctime", json_integer((json_int_t)st->st_ctim.tv_sec));
}

/* Reads a regular file without following symlinks; refuses more than max. */
static int read_regular(const char *path, size_t max, char **ret, size_t *ret_size,
                        struct stat *ret_st)
{
        _cleanup_close_ int fd =
                open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);

        if (fd < 0)
                return negative_errno();
        if (fstat(fd, ret_st) < 0)
                return negative_errno();
        if (!S_ISREG(ret_st->st_mode))
                return -EBADFD;
        return read_full_fd(fd, max, ret, ret_size);
}

static json_t *key_facts(const DoctorLocalOptions *o)
{
        _cleanup_free_ char *p = root_path(o, "/etc/corosync/authkey*");
        json_t *a = json_array();
        glob_t g = {};

        if (!a || !p)
                return a;
        if (glob(p, 0, NULL, &g) == 0) {
                for (size_t k = 0; k < g.gl_pathc && k < MAX_KEY_FILES; k++) {
                        char *buf = NULL;
                        size_t size = 0;
                        struct stat st;
                        json_t *j = json_object();
                        int r;

                        if (!j)
                                break;
                        json_object_set_new(
                                j, "path",
                                json_string(g.gl_pathv[k] + (o->root ? strlen(o->root) : 0)));
                        r = read_regular(g.gl_pathv[k], MAX_KEY_FILE_SIZE, &buf, &size, &st);
                        if (r < 0) {
                                set_error(j, "cannot read", r);
                        } else {
                                char fpr[DOCTOR_FINGERPRINT_LEN];

                                stat_to_json(j, &st);
                                if (doctor_fingerprint(buf, size, fpr) == 0)
                                        json_object_set_new(j, "fingerprint", json_string(fpr));
                                /* The key leaves memory here; only its keyed hash remains. */
                                explicit_wipe(buf, size);
                                free(buf);
                        }
                        json_array_append_new(a, j);
                }
        }
        globfree(&g);
        return a;
}

static json_t *config_facts(const DoctorLocalOptions *o)
{
        _cleanup_free_ char *p = root_path(o, "/etc/corosync/corosync.conf");
        _cleanup_free_ char *text = NULL;
        json_t *j = json_object(), *parsed = NULL;
        char hex[SHA256_HEX_LEN + 1], why[256];
        struct stat st;
        size_t size = 0;
        int r;

        if (!j || !p)
                return j;
        json_object_set_new(j, "path", json_string("/etc/corosync/corosync.conf"));
        r = read_regular(p, MAX_CONF_SIZE, &text, &size, &st);
        if (r == -ENOENT) {
                json_object_set_new(j, "present", json_false());
                return j;
        }
        json_object_set_new(j, "present", json_true());
        if (r < 0) {
                set_error(j, "cannot read", r);
                return j;
        }
        stat_to_json(j, &st);
        if (sha256_hex(text, size, hex) == 0)
                json_object_set_new(j, "sha256", json_string(hex));
        r = doctor_parse_corosync_conf(text, size, &parsed, why, sizeof(why));
        if (r < 0)
                json_object_set_new(j, "parse_error", json_string(why));
        else
                json_object_update_new(j, parsed);
        return j;
}

/* ---- secrets changed since a time ---- */

static bool has_glob_chars(const char *s)
{
        return strpbrk(s, "*?[{") != NULL;
}

typedef struct {
        const char *pattern; /* absolute glob, without the root prefix */
        size_t root_len;
        uint64_t since;
        unsigned scanned;
        json_t *changed;
} SecretScan;

static void secret_check_file(SecretScan *s, const char *full, const struct stat *st)
{
        uint64_t t = (uint64_t)(st->st_mtim.tv_sec > st->st_ctim.tv_sec ? st->st_mtim.tv_sec
                                                                        : st->st_ctim.tv_sec);
        json_t *j;

        if (!S_ISREG(st->st_mode) || t < s->since)
                return;
        j = json_object();
        if (!j)
                return;
        json_object_set_new(j, "path", json_string(full + s->root_len));
        json_object_set_new(j, "pattern", json_string(s->pattern));
        stat_to_json(j, st);
        json_array_append_new(s->changed, j);
}

/* Walks dir (a full path) depth-first without following symlinks; a file
 * counts when it or one of its parent directories matches the pattern. */
static void secret_walk(SecretScan *s, const char *dir, bool inside, unsigned depth)
{
        DIR *d;
        struct dirent *de;

        if (depth > 16)
                return;
        d = opendir(dir);
        if (!d)
                return;
        while ((de = readdir(d)) && s->scanned < DOCTOR_MAX_SECRET_SCAN) {
                _cleanup_free_ char *full = NULL;
                struct stat st;
                bool match;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                s->scanned++;
                if (asprintf(&full, "%s/%s", streq(dir, "/") ? "" : dir, de->d_name) < 0)
                        break;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                match = inside || policy_glob_match(s->pattern, full + s->root_len, true);
                if (S_ISDIR(st.st_mode))
                        secret_walk(s, full, match, depth + 1);
                else if (match)
                        secret_check_file(s, full, &st);
        }
        closedir(d);
}

static json_t *secret_facts(const DoctorLocalOptions *o)
{
        json_t *j = json_object(), *changed = json_array();
        size_t root_len = o->root ? strlen(o->root) : 0;

        if (!j || !changed) {
                json_decref(changed);
                return j;
        }
        json_object_set_new(j, "since", json_integer((json_int_t)o->secrets_since_sec));
        json_object_set_new(j, "patterns", json_integer((json_int_t)strv_length(o->secret_globs)));
        STRV_FOREACH (pat, o->secret_globs) {
                _cleanup_free_ char *base = NULL, *full = NULL;
                SecretScan s = { .pattern = *pat,
                                 .root_len = root_len,
                                 .since = o->secrets_since_sec,
                                 .changed = changed };
                struct stat st;
                char *slash;

                if ((*pat)[0] != '/')
                        continue;
                base = strdup(*pat);
                if (!base)
                        break;
                /* The longest literal directory prefix, where the walk starts. */
                if (has_glob_chars(base)) {
                        char *w = strpbrk(base, "*?[{");
                        *w = '\0';
                        slash = strrchr(base, '/');
                        slash[slash == base ? 1 : 0] = '\0';
                }
                full = root_path(o, base);
                if (!full || lstat(full, &st) < 0)
                        continue;
                if (S_ISDIR(st.st_mode))
                        secret_walk(&s, full, !has_glob_chars(*pat), 0);
                else if (policy_glob_match(*pat, full + root_len, true))
                        secret_check_file(&s, full, &st);
        }
        json_object_set_new(j, "changed", changed);
        return j;
}

/* ---- the management endpoint (pveproxy on 8006) ---- */

static json_t *management_facts(const DoctorLocalOptions *o)
{
        uint16_t port = o->management_port ? o->management_port : 8006;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        _cleanup_close_ int fd = -EBADF;
        json_t *j = json_object();
        uint64_t t0, t1;
        struct pollfd pfd;
        int r, err = 0;
        socklen_t len = sizeof(err);
        static const char req[] = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
        char buf[256];

        if (!j)
                return NULL;
        json_object_set_new(j, "port", json_integer(port));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                set_error(j, "socket", errno);
                return j;
        }
        t0 = now_monotonic_usec();
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        if (r < 0 && errno != EINPROGRESS) {
                json_object_set_new(j, "listening", json_false());
                return j;
        }
        pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
        if (r < 0 && (poll(&pfd, 1, 1000) <= 0 ||
                      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)) {
                json_object_set_new(j, "listening", json_false());
                return j;
        }
        t1 = now_monotonic_usec();
        json_object_set_new(j, "listening", json_true());
        json_object_set_new(j, "connect_ms", json_real((double)(t1 - t0) / 1000.0));
        if (write(fd, req, sizeof(req) - 1) < 0)
                return j;
        pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 3000) <= 0) {
                json_object_set_new(j, "response", json_string("no answer within 3 s"));
                return j;
        }
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        json_object_set_new(j, "response_ms",
                            json_real((double)(now_monotonic_usec() - t0) / 1000.0));
        if (n > 0) {
                buf[n] = '\0';
                buf[strcspn(buf, "\r\n")] = '\0';
                if (strneq(buf, "HTTP/", 5)) {
                        _cleanup_free_ char *e = escape_for_terminal(buf);
                        json_object_set_new(j, "status_line", json_string(e ? e : "?"));
                }
        }
        return j;
}

int doctor_local_facts(const DoctorLocalOptions *o, json_t **ret)
{
        json_t *f = json_object(), *c = json_object(), *proc, *tmp;
        char host[256] = "";
        _cleanup_free_ char *bin = NULL;
        struct stat st;

        if (!f || !c) {
                json_decref(f);
                json_decref(c);
                return -ENOMEM;
        }
        gethostname(host, sizeof(host) - 1);
        json_set_str(f, "hostname", host);
        json_set_str(f, "airlock_version", AIRLOCK_VERSION);
        json_object_set_new(f, "time", json_integer((json_int_t)(now_realtime_usec() / 1000000)));
        {
                _cleanup_free_ char *sd = root_path(o, "/run/systemd/system");
                json_set_str(f, "init", sd && stat(sd, &st) == 0 ? "systemd" : "sysv");
        }

        bin = root_path(o, "/usr/sbin/corosync");
        json_object_set_new(c, "installed",
                            json_boolean(bin && stat(bin, &st) == 0 && (st.st_mode & 0111)));
        tmp = enabled_links(o);
        json_object_set_new(c, "enabled", json_boolean(tmp && json_array_size(tmp) > 0));
        json_object_set_new(c, "enabled_by", tmp ? tmp : json_array());
        proc = find_corosync_process(o);
        json_object_set_new(c, "running", json_boolean(proc != NULL));
        if (proc)
                json_object_set_new(c, "process", proc);
        json_object_set_new(c, "config", config_facts(o));
        json_object_set_new(c, "keys", key_facts(o));
        if (proc && !o->root) {
                json_t *rt = NULL;
                char why[256];

                if (doctor_corosync_runtime(&rt, why, sizeof(why)) >= 0)
                        json_object_set_new(c, "runtime", rt);
                else
                        json_object_set_new(c, "runtime_error", json_string(why));
        }
        json_object_set_new(f, "corosync", c);
        json_object_set_new(f, "secrets", secret_facts(o));
        if (o->capture_seconds > 0 && !o->root) {
                json_t *cap = NULL;
                if (doctor_capture_corosync(o->capture_seconds, &cap) == 0)
                        json_object_set_new(f, "capture", cap);
        }
        if (o->probe_management)
                json_object_set_new(f, "management", management_facts(o));
        *ret = f;
        return 0;
}
