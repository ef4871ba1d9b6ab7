/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>

/*
 * Builds the sandbox's seccomp filter with libseccomp (scmp_filter_ctx in
 * *ret; release with seccomp_release). Used at build time only, by
 * seccomp-gen.c, which exports it as BPF: launching then costs no compile.
 * Returns 0 or a negative errno.
 */
int sbx_seccomp_build(bool net_host, void **ret);

/*
 * The connect filter, loaded by the sandbox's pid 1 with a notification
 * listener: every connect(2) of the agent goes to the supervisor
 * (unotify.c); nothing else. Same ownership and return as above.
 */
int sbx_seccomp_build_unotify(void **ret);
