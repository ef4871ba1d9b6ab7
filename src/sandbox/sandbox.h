/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The launcher behind `airlock run`: starts one command confined by the
 * kernel (user/mount/pid/ipc/uts/cgroup/net namespaces, a read-only view of
 * the host with secrets masked, a writable workspace, Landlock, seccomp,
 * no_new_privs, no capabilities, cgroup limits) and waits for it.
 *
 * Files, one per layer:
 *   sandbox.c    the parent: preparation, clone, uid maps, cgroup placement,
 *                waiting, signal forwarding, exit status
 *   child.c      pid 1 of the sandbox and the agent process before exec
 *   mounts.c     the mount namespace: read-only host, /dev, /proc, tmpfs,
 *                workspace, masks, protected files
 *   landlock.c   the Landlock ruleset (fs, TCP ports, scopes)
 *   seccomp.c    the seccomp filter (built with libseccomp)
 *   limits.c     capabilities, securebits, rlimits, the cgroup
 *   pty.c        the agent's own terminal and the relay to the human's
 *   selfcheck.c  the check, from inside, that every layer is in force
 *   explain.c    `--explain`: the confinement in words
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
        SBX_NET_NONE = 0, /* own network namespace, loopback only */
        SBX_NET_HOST,     /* host network; TCP connect to ports only; no UDP/raw/packet */
} SbxNetMode;

#define SBX_DEFAULT_MEMORY_MAX  (4ULL * 1024 * 1024 * 1024)
#define SBX_DEFAULT_PIDS_MAX    1024
#define SBX_SESSION_SOCKET_PATH "/run/airlock/session.sock"

/*
 * What differs per run when the sandbox was built ahead (SbxConfig.take, a
 * warm sandbox of `airlock pool`): the command, its environment, the broker
 * session and the client's connection.
 */
typedef struct {
        char *const *argv;          /* the command; argv[0] is looked up in PATH */
        char *const *env;           /* the client's environment; the usual allowlist applies */
        const char *session_socket; /* broker session socket (host path) or NULL; must be
                                       directly inside SbxConfig.session_dir */
        int hold_fd;       /* the client's connection: when it closes, the sandbox is killed */
        int sandbox_pidfd; /* set by sbx_run: readable once pid 1 is gone (return -ECHILD) */
} SbxTake;

struct SbxError;
/*
 * Blocks until a client takes the sandbox (watching t->sandbox_pidfd). On
 * success: has dup2'ed the client's stdin, stdout and stderr onto 0, 1, 2,
 * filled *t (its memory and hold_fd stay the caller's until sbx_run()
 * returns) and returns 0. Else returns -errno (-ECANCELED: the pool stops;
 * -ESTALE: the client's policy differs; -ECHILD: the sandbox died) and
 * sbx_run() tears the sandbox down and returns it, with err as the
 * callback left it.
 */
typedef int (*SbxTakeFn)(void *userdata, SbxTake *t, struct SbxError *err);
#define SBX_HAVE_TAKE 1

/*
 * Everything the launcher needs; the caller (cmd_run.c) fills it from flags
 * and the policy. All pointers are borrowed for the duration of sbx_run().
 */
typedef struct {
        char *const *argv;      /* the command; argv[0] is looked up in PATH */
        const char *agent;      /* agent name, exported as AIRLOCK_AGENT */
        const char *session_id; /* exported as AIRLOCK_SESSION_ID */
        const char *workspace;  /* absolute; writable inside, the working directory */
        char *const *ro;        /* extra read-only paths (the host is read-only anyway) */
        char *const *rw;        /* extra writable paths */
        SbxNetMode net;
        const uint16_t *ports; /* TCP connect ports in SBX_NET_HOST */
        size_t n_ports;
        char *const *env_allow;    /* extra variable names passed through (besides the base list) */
        uint64_t memory_max;       /* bytes; 0 = SBX_DEFAULT_MEMORY_MAX */
        uint64_t pids_max;         /* 0 = SBX_DEFAULT_PIDS_MAX */
        char *const *secret_globs; /* absolute globs, ~ already expanded */
        char *const *protect_globs; /* workspace-relative globs kept read-only */
        bool allow_weaker;          /* run even if a Landlock layer or the cgroup is missing */
        const char *session_socket; /* host path of the session socket, or NULL */
        const char *agent_user;     /* the system user the agent runs as when started by root */
        /*
         * A warm sandbox: sbx_run() builds the sandbox, then calls take()
         * and runs what it returns (argv and session_socket above are
         * ignored). NULL: argv, now, with this process's stdio.
         */
        SbxTakeFn take;
        void *take_userdata;
        /*
         * Called (with take_userdata) once the command's exit status is
         * final, the agent's processes are gone and the placeholders removed,
         * before the sandbox's own teardown is waited for (pid 1's namespaces,
         * the cgroup): a warm sandbox tells its client then. May be NULL.
         */
        void (*finished)(void *userdata, int exit_status);
        /* with take: the broker's session socket directory, cloned at build time (if it exists) */
        const char *session_dir;
} SbxConfig;

/* Why a launch was refused: a message a sysadmin can act on. */
typedef struct SbxError {
        int exit_code;      /* the airlock exit code to use (71 setup, 64 usage, 127 not found) */
        char message[1024]; /* "what went wrong — how to fix it" */
} SbxError;

/*
 * Runs c->argv confined and waits for it. Returns 0 and *ret_exit_status
 * (the command's exit status, or 128+signal if it was killed) when the
 * command ran; returns a negative errno and fills *err when the sandbox could
 * not be set up as required: then nothing of the command ran and nothing is
 * left behind. Must not be called from a multi-threaded process.
 */
int sbx_run(const SbxConfig *c, int *ret_exit_status, SbxError *err);

/*
 * Prints, in plain words, the confinement sbx_run() would apply with c on
 * this kernel (each layer, what is masked, what is not covered) to f.
 * Probes the kernel (Landlock ABI, cgroup) but starts nothing. Returns 0, or
 * a negative errno and fills *err when the launch would be refused.
 */
int sbx_explain(const SbxConfig *c, FILE *f, SbxError *err);

/*
 * The name of a broker session socket that a warm sandbox may bind: path must
 * be a direct child of dir named [A-Za-z0-9._-] (not "." or ".."). Returns
 * the name within path, or NULL. Checked by the pool entry and again by the
 * sandbox, which binds it.
 */
const char *sbx_session_socket_name(const char *dir, const char *path);

/* Writes a new random session id (32 hex characters) to buf (size >= 33). Returns 0 or -errno. */
int sbx_new_session_id(char *buf, size_t size);

/* True if name is a valid agent name: 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool sbx_agent_name_valid(const char *name);

/* With AIRLOCK_DEBUG_TIMING=1 in the environment, prints a phase timestamp to stderr. */
void sbx_timing(const char *phase);
