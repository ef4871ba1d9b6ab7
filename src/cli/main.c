/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>

#include "cli/cli.h"
#include "common/log.h"
#include "config.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const CliCommand cli_command_help = {
        .name = "help",
        .summary = "show help for airlock or one subcommand",
        .usage = "Usage: airlock help [SUBCOMMAND]\n\n"
                 "Without an argument, lists the subcommands; with one, shows its usage.\n",
        .run = cmd_help,
};

static const CliCommand cli_command_version = {
        .name = "version",
        .summary = "print airlock's version",
        .usage = "Usage: airlock version\n",
        .run = cmd_version,
};

/* The dispatch table: one entry per subcommand, in the order --help shows. */
static const CliCommand *const commands[] = {
        &cli_command_run,      &cli_command_pool,    &cli_command_exec,    &cli_command_wait,
        &cli_command_requests, &cli_command_show,    &cli_command_approve, &cli_command_deny,
        &cli_command_plan,     &cli_command_policy,  &cli_command_log,     &cli_command_doctor,
        &cli_command_help,     &cli_command_version,
};

int cli_fail(const char *sub, int code, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "airlock: %s: ", sub);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

void cli_print_usage(const CliCommand *c, bool to_stderr)
{
        fputs(c->usage, to_stderr ? stderr : stdout);
}

bool cli_wants_help(int argc, char **argv)
{
        return argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"));
}

static const CliCommand *find_command(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i]->name, name))
                        return commands[i];
        return NULL;
}

static void print_main_help(FILE *f)
{
        fputs("Usage: airlock [--version] [--help] SUBCOMMAND [ARGS...]\n\n"
              "airlock confines an AI agent: it may read and diagnose, but every change\n"
              "goes through a broker, is approved by a human, and is recorded.\n\n"
              "Subcommands:\n",
              f);
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
        fputs("\nRun 'airlock help SUBCOMMAND' for a subcommand's options; "
              "see airlock(1) and airlock-policy(5).\n",
              f);
}

static int cmd_help(int argc, char **argv)
{
        const CliCommand *c;

        if (argc < 2) {
                print_main_help(stdout);
                return EXIT_OK;
        }
        if (argc > 2)
                return cli_fail("help", EXIT_USAGE,
                                "too many arguments — run 'airlock help SUBCOMMAND'");
        c = find_command(argv[1]);
        if (!c)
                return cli_fail("help", EXIT_USAGE,
                                "unknown subcommand '%s' — run 'airlock --help' for the list",
                                argv[1]);
        cli_print_usage(c, false);
        return EXIT_OK;
}

static int cmd_version(int argc, char **argv)
{
        if (argc > 1)
                return cli_fail("version", EXIT_USAGE,
                                "takes no arguments — run 'airlock version'");
        printf("airlock %s\n", AIRLOCK_VERSION);
        return EXIT_OK;
}

int main(int argc, char **argv)
{
        const CliCommand *c;

        log_set_program("airlock");
        if (argc < 2) {
                print_main_help(stderr);
                return EXIT_USAGE;
        }
        if (streq(argv[1], "--help") || streq(argv[1], "-h"))
                return cmd_help(1, argv);
        if (streq(argv[1], "--version") || streq(argv[1], "-V"))
                return cmd_version(1, argv);
        if (argv[1][0] == '-')
                return cli_fail("airlock", EXIT_USAGE,
                                "unknown option '%s' — options go after the subcommand; run "
                                "'airlock --help'",
                                argv[1]);
        c = find_command(argv[1]);
        if (!c)
                return cli_fail(argv[1], EXIT_USAGE,
                                "unknown subcommand — run 'airlock --help' for the list");
        if (cli_wants_help(argc - 1, argv + 1)) {
                cli_print_usage(c, false);
                return EXIT_OK;
        }
        optind = 0; /* reset getopt for the subcommand */
        return c->run(argc - 1, argv + 1);
}
