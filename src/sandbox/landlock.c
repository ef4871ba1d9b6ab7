/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Landlock: the second wall behind the read-only mounts. The agent may read
 * and execute everything it can see, write only the workspace, --rw paths
 * and its own temporary directories, connect (net host) only to the allowed
 * TCP ports, bind no TCP port on the host network, reach no abstract unix
 * socket and signal no process outside its own Landlock domain.
 *
 * Debian 12's <linux/landlock.h> stops at ABI 2, so the newer fields and
 * flags are defined here from the kernel's UAPI (ABI 3: truncate, 4: TCP,
 * 5: ioctl on devices, 6: scopes, 7: logging flags).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox-internal.h"

struct sbx_landlock_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net; /* ABI 4 */
        uint64_t scoped;             /* ABI 6 */
};

struct sbx_landlock_path_beneath_attr {
        uint64_t allowed_access;
        int32_t parent_fd;
} __attribute__((packed));

struct sbx_landlock_net_port_attr {
        uint64_t allowed_access;
        uint64_t port;
};

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH      1
#define LL_RULE_NET_PORT          2

#define LL_FS_EXECUTE     (1ULL << 0)
#define LL_FS_WRITE_FILE  (1ULL << 1)
#define LL_FS_READ_FILE   (1ULL << 2)
#define LL_FS_READ_DIR    (1ULL << 3)
#define LL_FS_REMOVE_DIR  (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR   (1ULL << 6)
#define LL_FS_MAKE_DIR    (1ULL << 7)
#define LL_FS_MAKE_REG    (1ULL << 8)
#define LL_FS_MAKE_SOCK   (1ULL << 9)
#define LL_FS_MAKE_FIFO   (1ULL << 10)
#define LL_FS_MAKE_BLOCK  (1ULL << 11)
#define LL_FS_MAKE_SYM    (1ULL << 12)
#define LL_FS_REFER       (1ULL << 13) /* ABI 2 */
#define LL_FS_TRUNCATE    (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV   (1ULL << 15) /* ABI 5 */

#define LL_NET_BIND_TCP    (1ULL << 0) /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)

#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL               (1ULL << 1)

#define LL_FS_READ (LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR)
#define LL_FS_WRITE                                                                          \
        (LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_DIR |          \
         LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_SYM | LL_FS_REFER | \
         LL_FS_TRUNCATE)

static uint64_t fs_rights_for_abi(int abi)
{
        uint64_t r = (LL_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */

        if (abi >= 2)
                r |= LL_FS_REFER;
        if (abi >= 3)
                r |= LL_FS_TRUNCATE;
        if (abi >= 5)
                r |= LL_FS_IOCTL_DEV;
        return r;
}

static int weaker(SbxPlan *p, bool needed, SbxError *err, const char *what)
{
        if (!needed)
                return 0;
        if (!p->cfg->allow_weaker)
                return sbx_fail(err, 71, -EOPNOTSUPP,
                                "%s — refusing to start; run on a newer kernel or pass "
                                "--allow-weaker to accept the weaker sandbox",
                                what);
        return strv_extend(&p->weaker, what);
}

int sbx_landlock_probe(SbxPlan *p, SbxError *err)
{
        long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
        bool host = p->cfg->net == SBX_NET_HOST;
        int r;

        p->landlock = (SbxLandlock){ .abi = abi < 0 ? 0 : (int)abi };
        if (abi < 1)
                return weaker(p, true, err,
                              errno == EOPNOTSUPP
                                      ? "Landlock is disabled on this kernel (boot with "
                                        "lsm=landlock,...): no second filesystem wall, no TCP "
                                        "port filter"
                                      : "this kernel has no Landlock: no second filesystem "
                                        "wall, no TCP port filter");
        /*
         * Reading and executing are granted beneath "/" anyway (the read-only
         * mounts and the masks decide what can be read), so they are not
         * handled at all. Nor are truncating and device ioctls: Landlock
         * looks both up at every open (to decide them for the open file
         * later), and one that is handled makes it walk the opened path up
         * to the root each time, a quarter of an open's cost (measured:
         * open+close 975 -> ~710 ns; tar -c /usr/include 4-6 % faster). They
         * add nothing here: truncate(2) needs a writable mount and every
         * writable place but the sandbox's own /run tmpfs is granted both
         * anyway (O_TRUNC needs WRITE_FILE, which stays handled), and device
         * nodes open only under /dev (every other mount is nodev), where both
         * are granted.
         */
        p->landlock.fs_handled =
                fs_rights_for_abi((int)abi) & ~(LL_FS_READ | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV);
        if (abi >= 4) {
                if (host)
                        p->landlock.net_handled = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        } else {
                r = weaker(p, host, err,
                           "Landlock ABI < 4 has no TCP port rules: with --net host the agent "
                           "could connect to any port");
                if (r < 0)
                        return r;
        }
        if (abi >= 6)
                p->landlock.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
        else {
                /* With its own network namespace abstract sockets are separate anyway. */
                r = weaker(p, host, err,
                           "Landlock ABI < 6 cannot scope abstract unix sockets: with --net host "
                           "the agent could reach host daemons' abstract sockets");
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_path(int ruleset, const char *path, uint64_t access, uint64_t handled, bool must,
                    SbxError *err)
{
        struct sbx_landlock_path_beneath_attr pb = { .allowed_access = access & handled };
        int fd;

        if (pb.allowed_access == 0)
                return 0; /* nothing handled to grant here (reads are not handled) */
        fd = open(path, O_PATH | O_CLOEXEC);

        if (fd < 0) {
                if (!must && errno == ENOENT)
                        return 0;
                return sbx_fail(err, 71, -errno, "Landlock: cannot open %s: %m", path);
        }
        pb.parent_fd = fd;
        if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0) < 0) {
                int r = sbx_fail(err, 71, -errno, "Landlock: cannot add a rule for %s: %m", path);
                close(fd);
                return r;
        }
        close(fd);
        return 0;
}

/*
 * In the agent, after pivot_root (rules bind to the inodes it sees) and
 * after no_new_privs (which restrict_self requires without CAP_SYS_ADMIN).
 */
int sbx_landlock_apply(const SbxPlan *p, SbxError *err)
{
        const SbxLandlock *l = &p->landlock;
        struct sbx_landlock_ruleset_attr attr = {
                .handled_access_fs = l->fs_handled,
                .handled_access_net = l->net_handled,
                .scoped = l->scoped,
        };
        size_t size;
        _cleanup_close_ int rs = -EBADF;
        uint64_t h = l->fs_handled;
        int r;

        if (l->abi < 1)
                return 0; /* accepted with --allow-weaker; --explain says so */
        size = l->abi >= 6 ? sizeof attr : l->abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
        rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
        if (rs < 0)
                return sbx_fail(err, 71, -errno, "Landlock: cannot create the ruleset: %m");

        r = add_path(rs, "/", LL_FS_READ, h, true, err);
        if (r < 0)
                return r;
        /* Terminals and the harmless devices: write and ioctl, nothing created. */
        r = add_path(rs, "/dev", LL_FS_READ | LL_FS_WRITE_FILE | LL_FS_IOCTL_DEV | LL_FS_TRUNCATE,
                     h, true, err);
        if (r < 0)
                return r;
        static const char *const scratch[] = { "/tmp", "/var/tmp", "/dev/shm" };
        for (size_t i = 0; i < ELEMENTSOF(scratch); i++) {
                r = add_path(rs, scratch[i], LL_FS_READ | LL_FS_WRITE, h, false, err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < p->n_binds; i++)
                if (p->binds[i].writable) {
                        r = add_path(rs, p->binds[i].path, LL_FS_READ | LL_FS_WRITE, h, true, err);
                        if (r < 0)
                                return r;
                }
        if (l->net_handled) {
                for (size_t i = 0; i < p->cfg->n_ports; i++) {
                        struct sbx_landlock_net_port_attr np = {
                                .allowed_access = LL_NET_CONNECT_TCP,
                                .port = p->cfg->ports[i],
                        };
                        if (syscall(SYS_landlock_add_rule, rs, LL_RULE_NET_PORT, &np, 0) < 0)
                                return sbx_fail(err, 71, -errno,
                                                "Landlock: cannot allow TCP port %u: %m",
                                                (unsigned)p->cfg->ports[i]);
                }
        }
        if (syscall(SYS_landlock_restrict_self, rs, 0) < 0)
                return sbx_fail(err, 71, -errno, "Landlock: cannot enforce the ruleset: %m");
        return 0;
}
