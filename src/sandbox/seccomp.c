/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Loading the seccomp filter. The filter itself is in seccomp-rules.c; it
 * is compiled to BPF when airlock is built (seccomp-gen.c writes
 * seccomp-bpf.h), so a launch loads a ready program instead of spending
 * half a millisecond in libseccomp's compiler. The arrays include
 * libseccomp's architecture check: a non-native ABI is killed.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/sandbox-internal.h"
#include "sandbox/unotify.h"
#include "seccomp-bpf.h"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV /* Linux 5.19 */
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

int sbx_seccomp_prepare(SbxPlan *p, SbxError *err)
{
        (void)p;
        (void)err;
        return 0;
}

/* In the agent, after no_new_privs (set by pid 1, inherited). */
int sbx_seccomp_apply(const SbxPlan *p, SbxError *err)
{
        bool host = p->cfg->net == SBX_NET_HOST;
        struct sock_fprog prog = {
                .len = (unsigned short)(host ? ELEMENTSOF(sbx_seccomp_host)
                                             : ELEMENTSOF(sbx_seccomp_none)),
                .filter = (struct sock_filter *)(host ? sbx_seccomp_host : sbx_seccomp_none),
        };

        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
                return sbx_fail(err, 71, -errno, "cannot load the seccomp filter: %m");
        return 0;
}

void sbx_seccomp_free(SbxPlan *p)
{
        (void)p;
}

/*
 * WAIT_KILLABLE_RECV (Linux 5.19): once the supervisor has taken a connect,
 * a signal that does not kill the agent no longer interrupts its wait. The
 * supervisor performs the connect itself, so an interrupted wait would
 * leave the socket connected while the agent's call fails and restarts:
 * the restarted connect then failed with EISCONN (a quarter to a half of
 * them under a 50 us interval timer, as the Go runtime's preemption signals
 * do to its threads). A signal before the supervisor has taken the connect
 * still interrupts it (nothing was done yet), and a fatal one ends the wait
 * at any time; a handled signal waits until the connect is answered. An
 * older kernel (EINVAL) loads the filter without it.
 */
int sbx_seccomp_load_unotify(void)
{
        struct sock_fprog prog = {
                .len = (unsigned short)ELEMENTSOF(sbx_seccomp_unotify),
                .filter = (struct sock_filter *)sbx_seccomp_unotify,
        };
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                          SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                          &prog);

        if (fd < 0 && errno == EINVAL)
                fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                             &prog);
        return fd < 0 ? -errno : (int)fd;
}
