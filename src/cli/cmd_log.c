/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli/cli.h"

/* Placeholder until the log subcommand lands in this build. */
static int cmd_log(int argc, char **argv)
{
        return cli_fail("log", EXIT_INTERNAL,
                        "not available in this build — this is a development snapshot");
}

const CliCommand cli_command_log = {
        .name = "log",
        .summary = "(not yet available)",
        .usage = "Usage: airlock log\n",
        .run = cmd_log,
};
