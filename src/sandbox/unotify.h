/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The unix socket wall: every connect(2) of the agent is stopped by a
 * seccomp user notification and performed, or refused, by a supervisor
 * process (see unotify.c for the rules and why each step is safe).
 */

#include "sandbox/sandbox-internal.h"

/*
 * In airlock, before the sandbox is cloned: what the supervisor needs to
 * know of the host (with --net host, its mounts' device numbers). Returns
 * 0, or a negative errno with err filled: the launch must then be refused.
 */
int sbx_unotify_prepare(const SbxPlan *p, SbxError *err);

/*
 * In pid 1 of the sandbox, after the mounts and the switch to the agent's
 * uid but while it still holds the capabilities of the sandbox's user
 * namespace: forks the supervisor, which keeps CAP_SYS_PTRACE there and
 * nothing else (see unotify.c). Returns 0, or a negative errno with err
 * filled: the launch must then be refused.
 */
int sbx_unotify_fork(const SbxPlan *p, SbxError *err);

/*
 * In pid 1 of the sandbox, after its privileges are dropped (no
 * capabilities, no_new_privs) and before the agent is started: puts pid 1
 * (and so everything it starts later) under the connect filter and hands
 * the filter's listener to the supervisor sbx_unotify_fork started.
 * Returns 0, or a negative errno with err filled: the launch must then be
 * refused.
 */
int sbx_unotify_start(const SbxPlan *p, SbxError *err);

/*
 * kernel.yama.ptrace_scope as sbx_unotify_prepare read it before the
 * sandbox was cloned: 0-2, or -1 where the kernel has no Yama (scope 3
 * refuses the launch there).
 */
int sbx_unotify_yama_scope(void);

/*
 * seccomp.c: loads the prebuilt connect filter with a notification
 * listener. Returns the listener fd (close-on-exec) or a negative errno.
 */
int sbx_seccomp_load_unotify(void);

/* The errno the supervisor answers for a unix socket the agent may not reach. */
#define SBX_UNOTIFY_REFUSED EACCES
