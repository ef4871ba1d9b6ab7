/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>

#include "common/macros.h"

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
