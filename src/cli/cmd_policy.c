/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli/cli.h"

/* Placeholder until the policy subcommand lands in this build. */
static int cmd_policy(int argc, char **argv)
{
        return cli_fail("policy", EXIT_INTERNAL, "not available in this build — this is a development snapshot");
}

const CliCommand cli_command_policy = {
        .name = "policy",
        .summary = "(not yet available)",
        .usage = "Usage: airlock policy\n",
        .run = cmd_policy,
};
