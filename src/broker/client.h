/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The client side of the broker protocol, for the airlock command (exec,
 * wait, requests, show, approve, deny) and for `airlock run`, which opens a
 * session for the sandbox it starts.
 */

#include <stdint.h>

#include <jansson.h>

#define BROKER_SESSION_SOCKET_IN_SANDBOX "/run/airlock/session.sock"

/*
 * The admin socket path: AIRLOCK_SOCKET if set, else
 * AIRLOCK_RUNTIME_DIR/admin.sock. Static or environment string.
 */
const char *broker_admin_socket_path(void);

/*
 * Connects to a broker socket. Returns 0 and *ret_fd (O_CLOEXEC), or -errno:
 * -ENOENT / -ECONNREFUSED mean no broker listens there.
 */
int broker_connect(const char *path, int *ret_fd);

/*
 * Sends one request and reads one reply. Returns 0 and *ret (caller
 * json_decref()s) — which may be an error reply — or -errno.
 */
int broker_call(int fd, json_t *request, json_t **ret);

/*
 * Opens a session for a sandbox over the admin socket. On success returns 0,
 * *ret_fd (the connection that holds the session: keep it open for the
 * sandbox's lifetime, never let it into the sandbox — it is O_CLOEXEC; the
 * broker ends the session when it closes), *ret_socket (the session socket's
 * host path, caller frees) and *ret_session_id. Returns -ENOENT /
 * -ECONNREFUSED when no broker runs, -EPERM (with the broker's message in
 * err) when it refused, other -errno otherwise.
 */
int broker_open_session(const char *admin_socket, const char *agent, const char *workspace,
                        const char *profile, int *ret_fd, char **ret_socket,
                        uint64_t *ret_session_id, char *err, size_t err_size);
