/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The seccomp filter (compiled to BPF at build time by seccomp-gen.c): a denylist of the kernel
 * interfaces an agent never needs for diagnosis and that are the usual ways out of a sandbox
 * (mounts, new namespaces, ptrace, bpf, keyrings, io_uring, ...). Denied calls fail with EPERM
 * (ENOSYS for clone3, so libc falls back to clone, whose flags we can inspect) rather than killing,
 * so tools degrade gracefully. Syscalls newer than the libseccomp we build with are named by
 * number. Non-native ABIs (x32, i386) are killed outright: their numbers would bypass this list.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>

#include <stdbool.h>
#include <string.h>

#include "sandbox/seccomp-rules.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* Raw x86_64 numbers of syscalls libseccomp 2.5.4 may not know. */
static const int raw_denied[] = {
        425, /* io_uring_setup */
        426, /* io_uring_enter */
        427, /* io_uring_register */
        428, /* open_tree */
        429, /* move_mount */
        430, /* fsopen */
        431, /* fsconfig */
        432, /* fsmount */
        433, /* fspick */
        442, /* mount_setattr */
        447, /* memfd_secret */
        457, /* statmount */
        458, /* listmount */
        467, /* open_tree_attr */
};

static const char *const denied[] = {
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "chroot",
        "setns",
        "unshare",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "process_madvise",
        "kcmp",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "keyctl",
        "add_key",
        "request_key",
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "init_module",
        "finit_module",
        "delete_module",
        "swapon",
        "swapoff",
        "clock_settime",
        "clock_adjtime",
        "settimeofday",
        "adjtimex",
        "stime",
        "open_by_handle_at",
        "name_to_handle_at",
        "syslog",
        "acct",
        "quotactl",
        "quotactl_fd",
        "lookup_dcookie",
        "vhangup",
        "iopl",
        "ioperm",
        "uselib",
        "nfsservctl",
        "fanotify_init",
        "sethostname",
        "setdomainname",
        "pidfd_getfd",
};

/* Mode bits that would let the agent plant a set-id file for the human (idmapped workspace). */
#define SETID_BITS (S_ISUID | S_ISGID)

int sbx_seccomp_build(bool net_host, void **ret)
{
        scmp_filter_ctx ctx;
        uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
        int r = 0;

        /* Default allow; kill anything from a non-native ABI (bad arch → kill). */
        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        /*
         * A binary tree of syscall numbers (libseccomp >= 2.5): an allowed
         * call like read(2) passes in a handful of comparisons instead of a
         * walk down the whole denylist.
         */
        if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0 ||
            seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1) < 0 ||
            seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0)
                r = -EINVAL;

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(denied); i++) {
                int nr = seccomp_syscall_resolve_name(denied[i]);
                if (nr == __NR_SCMP_ERROR)
                        continue; /* not on this architecture */
                r = seccomp_rule_add(ctx, eperm, nr, 0);
        }
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(raw_denied); i++)
                r = seccomp_rule_add(ctx, eperm, raw_denied[i], 0);

        /* clone3 takes its flags in memory we cannot inspect: ENOSYS makes libc use clone. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        /*
         * clone with any namespace flag: libseccomp has no "any bit set"
         * comparison, so one rule per flag (flags & F == F).
         */
        static const uint64_t ns_flags[] = { CLONE_NEWNS,     CLONE_NEWUSER, CLONE_NEWPID,
                                             CLONE_NEWNET,    CLONE_NEWIPC,  CLONE_NEWUTS,
                                             CLONE_NEWCGROUP, CLONE_NEWTIME };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(ns_flags); i++)
                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(clone), 1,
                                     SCMP_A0_64(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));

        /* TIOCSTI (inject input) and TIOCLINUX: compare the low 32 bits only. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(ioctl), 1,
                                     SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCSTI));
        if (r >= 0)
                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(ioctl), 1,
                                     SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCLINUX));
        /*
         * TIOCSETD: a line discipline other than the tty's own is loaded as a
         * module on demand (dev.tty.ldisc_autoload), n_gsm and n_hdlc among
         * them: kernel code no agent needs, with a history of exploits.
         */
        if (r >= 0)
                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(ioctl), 1,
                                     SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCSETD));

        /*
         * personality: only the default. (libseccomp allows one comparison
         * per argument, so the query value 0xffffffff is refused as well.)
         */
        if (r >= 0)
                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(personality), 1,
                                     SCMP_A0_32(SCMP_CMP_NE, PER_LINUX));

        /* No set-id bits: chmod family and creating files or directories with them. */
        struct {
                int nr;
                unsigned arg;
        } mode_calls[] = {
                { SCMP_SYS(chmod), 1 },
                { SCMP_SYS(fchmod), 1 },
                { SCMP_SYS(fchmodat), 2 },
                { 452 /* fchmodat2 */, 2 },
                { SCMP_SYS(creat), 1 },
                { SCMP_SYS(open), 2 },
                { SCMP_SYS(openat), 3 },
                { SCMP_SYS(mkdir), 1 },
                { SCMP_SYS(mkdirat), 2 },
                /* mknod makes FIFOs (fine) and also regular files, with any mode bits */
                { SCMP_SYS(mknod), 1 },
                { SCMP_SYS(mknodat), 2 },
        };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(mode_calls); i++) {
                static const uint32_t bits[] = { S_ISUID, S_ISGID };
                for (size_t b = 0; r >= 0 && b < ELEMENTSOF(bits); b++) {
                        struct scmp_arg_cmp cmp = {
                                .arg = mode_calls[i].arg,
                                .op = SCMP_CMP_MASKED_EQ,
                                .datum_a = bits[b],
                                .datum_b = bits[b],
                        };
                        /* open/openat: only when creating (the mode is ignored otherwise). */
                        if (mode_calls[i].nr == SCMP_SYS(open) ||
                            mode_calls[i].nr == SCMP_SYS(openat)) {
                                struct scmp_arg_cmp creat = {
                                        .arg = mode_calls[i].nr == SCMP_SYS(open) ? 1 : 2,
                                        .op = SCMP_CMP_MASKED_EQ,
                                        .datum_a = O_CREAT,
                                        .datum_b = O_CREAT,
                                };
                                r = seccomp_rule_add_array(ctx, eperm, mode_calls[i].nr, 2,
                                                           (struct scmp_arg_cmp[]){ cmp, creat });
                        } else
                                r = seccomp_rule_add_array(ctx, eperm, mode_calls[i].nr, 1, &cmp);
                }
        }
        /* vsock reaches the hypervisor host and is not confined by the network namespace. */
        static const int never_families[] = { 40 /* AF_VSOCK */, 31 /* AF_BLUETOOTH */ };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(never_families); i++)
                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(socket), 1,
                                     SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)never_families[i]));
        /*
         * AF_UNIX: stream and seqpacket only. A datagram socket (SOCK_RAW is
         * one too in af_unix.c) sends to any pathname socket with sendto(2),
         * even once connected, and sendto has no hook we could route to the
         * connect supervisor: refuse the type. Stream and seqpacket sockets
         * ignore or refuse an address on sendmsg, so only connect(2) reaches
         * a pathname socket, and connect is the supervisor's (unotify.c).
         */
        static const int unix_calls[] = { SCMP_SYS(socket), SCMP_SYS(socketpair) };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(unix_calls); i++)
                for (uint32_t t = 0; r >= 0 && t <= 0xf; t++) {
                        if (t == SOCK_STREAM || t == SOCK_SEQPACKET)
                                continue;
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), unix_calls[i], 2,
                                             SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)AF_UNIX),
                                             SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xf, t));
                }
        /* openat2 carries its mode in memory: ENOSYS makes callers fall back to openat. */
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), 437 /* openat2 */, 0);

        if (r >= 0 && net_host) {
                /*
                 * Only TCP on the host network (Landlock filters its ports):
                 * no UDP, raw, SCTP/MPTCP or other socket type. The type
                 * argument carries SOCK_CLOEXEC/NONBLOCK: compare its low bits.
                 */
                static const int families[] = { AF_INET, AF_INET6 };
                static const uint32_t types[] = { SOCK_DGRAM,     SOCK_RAW,  SOCK_RDM,
                                                  SOCK_SEQPACKET, SOCK_DCCP, SOCK_PACKET };
                for (size_t i = 0; r >= 0 && i < ELEMENTSOF(families); i++) {
                        for (size_t t = 0; r >= 0 && t < ELEMENTSOF(types); t++)
                                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(socket), 2,
                                                     SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)families[i]),
                                                     SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xf, types[t]));
                        if (r >= 0) /* protocols beyond IPPROTO_TCP (6): SCTP, MPTCP, ... */
                                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(socket), 2,
                                                     SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)families[i]),
                                                     SCMP_A2_32(SCMP_CMP_GT, IPPROTO_TCP));
                }
                /*
                 * TCP Fast Open connects from sendto/sendmsg without the
                 * connect hook Landlock filters ports in: refuse the flag.
                 */
                if (r >= 0)
                        r = seccomp_rule_add(
                                ctx, eperm, SCMP_SYS(sendto), 1,
                                SCMP_A3_32(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN));
                if (r >= 0)
                        r = seccomp_rule_add(
                                ctx, eperm, SCMP_SYS(sendmsg), 1,
                                SCMP_A2_32(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN));
                if (r >= 0)
                        r = seccomp_rule_add(
                                ctx, eperm, SCMP_SYS(sendmmsg), 1,
                                SCMP_A3_32(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN));
                /* AF_NETLINK stays: ip and ss need it, and it cannot reach another host. */
                if (r >= 0)
                        r = seccomp_rule_add(ctx, eperm, SCMP_SYS(socket), 1,
                                             SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)AF_PACKET));
        }
        /*
         * Socket families: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK and (it
         * needs CAP_NET_RAW, which the agent lacks) AF_PACKET; nothing else.
         * socket() of any other family makes the kernel load that family's
         * module on demand (net-pf-N): rarely used protocol code reachable
         * by anyone, where many kernel exploits have started. Numbers from
         * <sys/socket.h>; everything above AF_PACKET (17) is refused, so a
         * family added to a later kernel is refused too.
         */
        static const uint32_t unused_families[] = { AF_UNSPEC, 3,  4,  5,  6,  7, 8,
                                                    9,         11, 12, 13, 14, 15 };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(unused_families); i++)
                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(socket), 1,
                                     SCMP_A0_32(SCMP_CMP_EQ, unused_families[i]));
        if (r >= 0)
                r = seccomp_rule_add(ctx, eperm, SCMP_SYS(socket), 1,
                                     SCMP_A0_32(SCMP_CMP_GT, (uint32_t)AF_PACKET));
        if (r < 0) {
                seccomp_release(ctx);
                return r;
        }
        *ret = ctx;
        return 0;
}

int sbx_seccomp_build_unotify(void **ret)
{
        scmp_filter_ctx ctx;
        int r = 0;

        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0 ||
            seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1) < 0)
                r = -EINVAL;
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(connect), 0);
        if (r < 0) {
                seccomp_release(ctx);
                return r;
        }
        *ret = ctx;
        return 0;
}
