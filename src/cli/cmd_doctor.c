/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli/cli.h"

/* Placeholder until the doctor subcommand lands in this build. */
static int cmd_doctor(int argc, char **argv)
{
        return cli_fail("doctor", EXIT_INTERNAL,
                        "not available in this build — this is a development snapshot");
}

const CliCommand cli_command_doctor = {
        .name = "doctor",
        .summary = "(not yet available)",
        .usage = "Usage: airlock doctor\n",
        .run = cmd_doctor,
};
