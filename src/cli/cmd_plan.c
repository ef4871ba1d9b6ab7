/* SPDX-License-Identifier: GPL-2.0-or-later */
/* airlock plan: the plansnap engineer replaces this file (issue 6). */
#include "cli/cli.h"

static int run(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        return cli_fail("plan", EXIT_INTERNAL, "not built yet — this build predates airlock plan");
}

const CliCommand cli_command_plan = {
        .name = "plan",
        .summary = "dry-run a command in a copy-on-write snapshot and show its effects",
        .usage = "Usage: airlock plan [--host H] [--json] -- CMD...\n",
        .run = run,
};
