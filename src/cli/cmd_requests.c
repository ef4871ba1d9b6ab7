/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli/cli.h"

/* Placeholders until the broker client lands in this build. */
static int cmd_placeholder(int argc, char **argv)
{
        return cli_fail(argv[0], EXIT_INTERNAL,
                        "not available in this build — this is a development snapshot");
}

#define PLACEHOLDER(n)                              \
        const CliCommand cli_command_##n = {        \
                .name = #n,                         \
                .summary = "(not yet available)",   \
                .usage = "Usage: airlock " #n "\n", \
                .run = cmd_placeholder,             \
        }
PLACEHOLDER(exec);
PLACEHOLDER(wait);
PLACEHOLDER(requests);
PLACEHOLDER(show);
PLACEHOLDER(approve);
PLACEHOLDER(deny);
