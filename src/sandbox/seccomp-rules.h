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
