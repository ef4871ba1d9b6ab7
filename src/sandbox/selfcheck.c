/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The last thing before exec: check from the inside, as the agent, that
 * each layer is really in force. A layer that silently failed (a kernel
 * that ignored a flag, a mount that did not stick) aborts the launch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox-internal.h"
#include "sandbox/unotify.h"

static const char *status_field(const char *status, const char *key)
{
        size_t n = strlen(key);

        for (const char *l = status; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
                if (strneq(l, key, n) && l[n] == ':') {
                        l += n + 1;
                        while (*l == ' ' || *l == '\t')
                                l++;
                        return l;
                }
        return NULL;
}

static bool field_is(const char *status, const char *key, const char *want)
{
        const char *v = status_field(status, key);

        return v && strneq(v, want, strlen(want)) &&
               (v[strlen(want)] == '\n' || v[strlen(want)] == '\0');
}

/* Our uid as the host sees it, from uid_map: never 0. */
static int host_uid_of(uid_t inside, uid_t *ret)
{
        _cleanup_free_ char *map = NULL;
        int r = read_full_file("/proc/self/uid_map", 64 * 1024, &map, NULL);

        if (r < 0)
                return r;
        for (char *l = map; l && *l;) {
                unsigned long a, b, n;
                if (sscanf(l, "%lu %lu %lu", &a, &b, &n) == 3 && inside >= a && inside - a < n) {
                        *ret = (uid_t)(b + (inside - a));
                        return 0;
                }
                l = strchr(l, '\n');
                if (l)
                        l++;
        }
        return -ENOENT;
}

int sbx_selfcheck(const SbxPlan *p, SbxError *err)
{
        _cleanup_free_ char *status = NULL;
        uid_t host;
        int r, fd;

#define CHECK(cond, ...)                                                                     \
        do {                                                                                 \
                if (!(cond))                                                                 \
                        return sbx_fail(err, 71, -EPERM, "self-check failed: " __VA_ARGS__); \
        } while (0)

        r = read_full_file("/proc/self/status", 64 * 1024, &status, NULL);
        if (r < 0)
                return sbx_fail(err, 71, r, "self-check: cannot read /proc/self/status");
        CHECK(getuid() == p->uid && geteuid() == p->uid, "the agent's uid is %u, expected %u",
              (unsigned)geteuid(), (unsigned)p->uid);
        r = host_uid_of(geteuid(), &host);
        CHECK(r == 0 && host != 0, "the agent would run as host uid 0");
        CHECK(field_is(status, "CapEff", "0000000000000000"), "CapEff is not empty");
        CHECK(field_is(status, "CapPrm", "0000000000000000"), "CapPrm is not empty");
        CHECK(field_is(status, "CapInh", "0000000000000000"), "CapInh is not empty");
        CHECK(field_is(status, "CapBnd", "0000000000000000"), "the bounding set is not empty");
        CHECK(field_is(status, "CapAmb", "0000000000000000"), "CapAmb is not empty");
        CHECK(field_is(status, "NoNewPrivs", "1"), "no_new_privs is not set");
        CHECK(field_is(status, "Seccomp", "2"), "the seccomp filter is not in force");

        /*
         * Landlock: /run is a writable tmpfs (for the mount layer) that the
         * Landlock ruleset does not grant, so creating anything there must
         * fail with EACCES exactly when the domain is in force.
         */
        if (p->landlock.abi >= 1) {
                fd = open("/run", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                CHECK(fd >= 0, "cannot open /run");
                r = mkdirat(fd, ".airlock-landlock-probe", 0700);
                int e = errno;
                if (r == 0)
                        unlinkat(fd, ".airlock-landlock-probe", AT_REMOVEDIR);
                close(fd);
                CHECK(r < 0 && e == EACCES, "the Landlock domain is not in force (%s)",
                      r == 0 ? "a write outside the allowed paths worked" : strerror(e));
        }
        /*
         * The unix socket wall: no datagram unix socket (seccomp), and a
         * connect to a path that is no socket of ours is answered by the
         * supervisor (EACCES), not by the kernel (ECONNREFUSED: the filter
         * is missing; ENOSYS: nobody supervises).
         */
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0)
                close(fd);
        CHECK(fd < 0 && errno == EACCES, "a datagram unix socket can be created");
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0, "cannot create a unix stream socket: %s", strerror(errno));
        {
                struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = "/" };
                /*
                 * The supervisor reads the caller's memory and fd table
                 * with ptrace access. This memory is pid 1's (before exec),
                 * which belongs to the host's user namespace: its
                 * CAP_SYS_PTRACE of the sandbox's does not reach it while
                 * it is undumpable. Dumpable for the probe only: nothing
                 * but airlock's own code runs meanwhile, and exec gives
                 * the agent a fresh, dumpable memory anyway.
                 */
                r = prctl(PR_SET_DUMPABLE, 1);
                CHECK(r == 0, "cannot probe the unix socket wall: %s", strerror(errno));
                r = connect(fd, (struct sockaddr *)&sun, sizeof sun);
                int e = errno;
                close(fd);
                CHECK(prctl(PR_SET_DUMPABLE, 0) == 0, "cannot make the sandbox undumpable again");
                /* The supervisor answers EPERM where the kernel refuses it ptrace access. */
                char yama[48] = "no Yama";
                if (sbx_unotify_yama_scope() >= 0)
                        snprintf(yama, sizeof yama, "kernel.yama.ptrace_scope = %d",
                                 sbx_unotify_yama_scope());
                CHECK(!(r < 0 && e == EPERM),
                      "the unix socket wall's supervisor may not inspect the agent's connects: "
                      "the kernel refused it ptrace access despite its CAP_SYS_PTRACE (%s) — "
                      "an LSM confining airlock (AppArmor, SELinux) may forbid ptrace: allow it",
                      yama);
                CHECK(!(r < 0 && e == ENOSYS),
                      "the unix socket wall's supervisor is not running (it could not confine "
                      "itself to CAP_SYS_PTRACE, or died)");
                CHECK(r < 0 && e == SBX_UNOTIFY_REFUSED,
                      "the unix socket wall is not in force (connect answered %s)",
                      r == 0 ? "success" : strerror(e));
        }

        /* A write to the host tree must fail. */
        fd = open("/etc/.airlock-probe", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0) {
                close(fd);
                unlink("/etc/.airlock-probe");
        }
        CHECK(fd < 0, "/etc is writable");

        /* Each mask: the path is our empty file or directory. */
        for (size_t i = 0; i < p->n_masks; i++) {
                struct stat st;
                if (lstat(p->masks[i].path, &st) < 0) {
                        CHECK(errno == ENOENT || errno == EACCES, "cannot examine mask %s: %s",
                              p->masks[i].path, strerror(errno));
                        continue; /* gone or unreachable: nothing to read either way */
                }
                CHECK(st.st_dev == sbx_mask_dev &&
                              st.st_ino ==
                                      (S_ISDIR(st.st_mode) ? sbx_mask_dir_ino : sbx_mask_file_ino),
                      "secret %s is not masked", p->masks[i].path);
        }
#undef CHECK
        return 0;
}
