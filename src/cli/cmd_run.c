/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli/cli.h"

/* Placeholder until the run subcommand lands in this build. */
static int cmd_run(int argc, char **argv)
{
        return cli_fail("run", EXIT_INTERNAL,
                        "not available in this build — this is a development snapshot");
}

const CliCommand cli_command_run = {
        .name = "run",
        .summary = "(not yet available)",
        .usage = "Usage: airlock run\n",
        .run = cmd_run,
};
