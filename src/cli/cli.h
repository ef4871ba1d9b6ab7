/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <getopt.h>
#include <stdbool.h>

#include "common/macros.h"
#include "policy/policy.h"
#include "sandbox/sandbox.h"

/*
 * Exit codes of the airlock command. Stable: scripts depend on them, and
 * airlock(1) documents them. They follow sysexits.h where one fits.
 * `airlock run` and `airlock exec` otherwise pass through the command's own
 * exit status.
 */
enum {
        EXIT_OK = 0,
        EXIT_CHECK_FAILED = 1,  /* a check ran and found a problem (log verify, doctor) */
        EXIT_PLAN_APPROVE = 10, /* airlock plan: the command would need approval */
        EXIT_USAGE = 64,        /* bad flag, missing argument, unknown subcommand */
        EXIT_POLICY = 65,       /* the policy file is invalid */
        EXIT_UNAVAILABLE = 69,  /* the broker is not running or not reachable */
        EXIT_INTERNAL = 70,     /* a bug or an unexpected failure in airlock */
        EXIT_SETUP = 71,        /* the sandbox could not be set up as required; nothing ran */
        EXIT_TIMEOUT = 75,      /* waited, and the request is still pending */
        EXIT_DENIED = 77,       /* denied by policy, by an approver, or expired */
};

typedef struct {
        const char *name;
        const char *summary;               /* one line for `airlock --help` */
        const char *usage;                 /* full text for `airlock help NAME` and `NAME --help` */
        int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} CliCommand;

/*
 * Prints "airlock: SUB: <message>" to stderr and returns code, so a command
 * can `return cli_fail(...)`. The message should say what went wrong and,
 * after " — ", how to fix it.
 */
int cli_fail(const char *sub, int code, const char *fmt, ...) _printf_(3, 4);

/* Prints a command's usage text to stdout (help) or stderr (after a usage error). */
void cli_print_usage(const CliCommand *c, bool to_stderr);

/* True if argv (after the subcommand) asks for help: "-h" or "--help" as argv[1]. */
bool cli_wants_help(int argc, char **argv);

/*
 * The options `airlock run` and `airlock pool` share (cmd_run.c), and the
 * sandbox configuration they make: both sides of a warm sandbox build it with
 * the same code, so a pooled sandbox is exactly the one a cold run builds.
 */
enum {
        RUN_ARG_PROFILE = 0x100,
        RUN_ARG_AGENT,
        RUN_ARG_WORKSPACE,
        RUN_ARG_RO,
        RUN_ARG_RW,
        RUN_ARG_NET,
        RUN_ARG_ALLOW_WEAKER,
        RUN_ARG_POLICY,
        RUN_ARG_LAST, /* a command's own options start here */
};
#define RUN_OPTIONS                                                          \
        { "profile", required_argument, NULL, RUN_ARG_PROFILE },             \
                { "agent", required_argument, NULL, RUN_ARG_AGENT },         \
                { "workspace", required_argument, NULL, RUN_ARG_WORKSPACE }, \
                { "ro", required_argument, NULL, RUN_ARG_RO },               \
                { "rw", required_argument, NULL, RUN_ARG_RW },               \
                { "net", required_argument, NULL, RUN_ARG_NET },             \
                { "allow-weaker", no_argument, NULL, RUN_ARG_ALLOW_WEAKER }, \
        {                                                                    \
                "policy", required_argument, NULL, RUN_ARG_POLICY            \
        }

typedef struct {
        const char *profile;   /* default "default" */
        const char *agent;     /* default "agent" */
        const char *workspace; /* NULL: the current directory */
        char **ro;             /* as given, in order (owned) */
        char **rw;
        const char *net;    /* NULL (the profile's), "none" or "host" */
        const char *policy; /* --policy; run_flags_check() fills in the default */
        bool allow_weaker;
} RunFlags;

#define RUN_FLAGS_INIT                                 \
        {                                              \
                .profile = "default", .agent = "agent" \
        }

/* Frees what run_flags_parse_one() allocated. */
void run_flags_done(RunFlags *f);

/*
 * Handles one getopt result c for the shared options. Returns 0 when c was
 * one of them, -ENOENT when it was not, or an exit code (> 0) after printing
 * the error as "airlock: SUB: ...".
 */
int run_flags_parse_one(RunFlags *f, int c, const char *arg, const char *sub);

/*
 * Checks the flags that need no policy (the agent name) and fills in the
 * policy path (--policy, else $AIRLOCK_POLICY, else the standard one).
 * Returns 0 or an exit code after printing the error.
 */
int run_flags_check(RunFlags *f, const char *sub);

/* The sandbox configuration made from RunFlags and the policy; see run_setup(). */
typedef struct {
        Policy *policy;
        const PolicyProfile *profile;
        char **ro, **rw, **secrets, **protect, **env;
        char session_id[33];
        char cwd[4096];
        SbxConfig cfg;
} RunSetup;

/*
 * Loads the policy and fills s->cfg from it and f as `airlock run` does
 * (argv may be NULL: cfg.argv is then a placeholder). cfg points into s and
 * f. Returns 0, or an exit code after printing the error as cli_fail(sub).
 */
int run_setup(RunSetup *s, const RunFlags *f, char *const *argv, const char *sub);
void run_setup_done(RunSetup *s);

/*
 * Warm sandboxes (cmd_pool.c). The pool key, the socket's name: 32 hex
 * digits of a hash of the canonical JSON of the flags (see
 * pool_canonical_config()), which goes to *ret_config if that is not NULL.
 * Returns 0, or -errno (e.g. the workspace does not resolve).
 */
int pool_key(const RunFlags *f, char key[static 33], char **ret_config);

/*
 * The client side: connects to the pool for f, checks that the server runs as
 * this user, asks it for a sandbox running argv with this process's stdio and
 * environment, and on success waits for it, forwarding signals. Returns:
 * -errno and why (for AIRLOCK_DEBUG_TIMING) when the caller should run cold;
 * or the exit status to exit with (the command's, or 70 after an error
 * message). open_session opens the broker session (once, before asking);
 * its socket path is sent along.
 */
typedef int (*PoolOpenSessionFn)(void *userdata, const char **ret_socket);
int pool_client_run(const RunFlags *f, char *const *argv, PoolOpenSessionFn open_session,
                    void *userdata, char *why, size_t why_size);

extern const CliCommand cli_command_policy;
extern const CliCommand cli_command_run;
extern const CliCommand cli_command_log;
extern const CliCommand cli_command_doctor;
extern const CliCommand cli_command_exec;
extern const CliCommand cli_command_wait;
extern const CliCommand cli_command_requests;
extern const CliCommand cli_command_show;
extern const CliCommand cli_command_approve;
extern const CliCommand cli_command_deny;
extern const CliCommand cli_command_plan;
extern const CliCommand cli_command_pool;
