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
 * In pid 1 of the sandbox, after its privileges are dropped (no
 * capabilities, no_new_privs) and before the agent is started: forks the
 * supervisor, then puts pid 1 (and so everything it starts later) under the
 * connect filter and hands the filter's listener to the supervisor. Returns
 * 0, or a negative errno with err filled: the launch must then be refused.
 */
int sbx_unotify_start(const SbxPlan *p, SbxError *err);

/*
 * seccomp.c: loads the prebuilt connect filter with a notification
 * listener. Returns the listener fd (close-on-exec) or a negative errno.
 */
int sbx_seccomp_load_unotify(void);

/* The errno the supervisor answers for a unix socket the agent may not reach. */
#define SBX_UNOTIFY_REFUSED EACCES
