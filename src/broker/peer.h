/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Who is on the other end of a connection, from the kernel only
 * (SO_PEERCRED, SO_PEERPIDFD and /proc), and whether that process is inside
 * an airlock sandbox.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "policy/policy.h"

typedef struct {
        pid_t pid;
        uid_t uid;
        gid_t gid;
        int pidfd;  /* -EBADF when the kernel has no SO_PEERPIDFD */
        char *user; /* user name, or the uid as a string */
} Peer;

/* Fills *ret from the connected socket fd. Returns 0 or -errno. */
int peer_get(int fd, Peer *ret);
void peer_done(Peer *p);

/*
 * Records the namespaces a process outside every sandbox has (those of PID 1
 * when readable, else the broker's own). Call once at startup. Returns 0 or
 * -errno.
 */
int peer_init_reference(void);

/*
 * Checks from the kernel that the peer process is outside any airlock
 * sandbox, whatever its uid: its user, pid and mount namespaces are the
 * reference ones, it has neither no_new_privs nor a seccomp filter, and its
 * cgroup is not an airlock sandbox cgroup; then that the process is still the
 * one that connected (its pidfd is alive, so the pid was not reused). Returns
 * 0 when unconfined; -EPERM with the reason in why when confined (or when
 * anything cannot be verified: fail closed).
 */
int peer_check_unconfined(const Peer *p, char *why, size_t why_size);

/*
 * Whether uid may approve by policy: root always (root can replace the broker
 * and its policy anyway, so refusing it buys nothing), else when its user name
 * is in approvers.users or it is a member of a group in approvers.groups.
 */
bool peer_is_approver(const Policy *pol, const Peer *p);
