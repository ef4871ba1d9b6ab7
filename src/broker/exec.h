/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * How airlockd runs an approved or allowed command: fork + execve of an argv
 * (no shell unless argv names one), a clean environment, a working
 * directory, a user, a new session and process group, a timeout that kills
 * the whole group, stdin from /dev/null and stdout/stderr through pipes.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plan/plan.h"

typedef void (*ExecOutputFn)(void *userdata, int stream, const uint8_t *buf, size_t len);

typedef struct {
        char *const *command; /* argv; command[0] is looked up in the env's PATH */
        char *const *env;
        const char *cwd;
        const char *user; /* run as; resolved with getpwnam_r */
        uint64_t timeout_usec;
        ExecOutputFn on_output; /* called from the calling thread for every read */
        void *userdata;

        /*
         * Non-NULL: record what the command does (plan_record_*(), judged
         * with this policy's secrets and inventory) into *ret_observed, for
         * the deviation check of an approved request. If the recorder cannot
         * be set up the command does not run (exec_run() fails): what was
         * approved runs only where it can be checked.
         */
        const Policy *record_policy;
        PlanResult **ret_observed;
} ExecSpec;

/*
 * Runs the command to completion. Returns 0 and *ret_status (the exit code,
 * or 128+signal; 124 after the timeout), or -errno when it could not be
 * started, with the reason in detail; detail also notes a timeout.
 */
int exec_run(const ExecSpec *spec, int *ret_status, char *detail, size_t detail_size);

/* The environment commands run with (for user): new strv or NULL. */
char **exec_clean_env(const char *user, uint64_t request_id);
