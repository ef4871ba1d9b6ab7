/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlock run: start a command (the agent) in the kernel-enforced sandbox.
 * This file turns flags and the policy into an SbxConfig (for `airlock pool`
 * too); src/sandbox does the rest. A warm sandbox from a pool (cmd_pool.c)
 * is used instead when one of the same configuration is ready.
 */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "broker/client.h"
#include "cli/cli.h"
#include "common/util.h"
#include "config.h"
#include "policy/policy.h"
#include "sandbox/sandbox.h"

#define SUB "run"

static const uint16_t default_ports[] = { 443, 53 };
static char *const placeholder_argv[] = { (char *)"(command)", NULL };

static int append_all(char ***dst, char *const *src)
{
        STRV_FOREACH (s, src)
                if (!strv_contains(*dst, *s) && strv_extend(dst, *s) < 0)
                        return -ENOMEM;
        return 0;
}

void run_flags_done(RunFlags *f)
{
        f->ro = strv_free(f->ro);
        f->rw = strv_free(f->rw);
}

int run_flags_parse_one(RunFlags *f, int c, const char *arg, const char *sub)
{
        switch (c) {
        case RUN_ARG_PROFILE:
                f->profile = arg;
                return 0;
        case RUN_ARG_AGENT:
                f->agent = arg;
                return 0;
        case RUN_ARG_WORKSPACE:
                f->workspace = arg;
                return 0;
        case RUN_ARG_RO:
                if (strv_extend(&f->ro, arg) < 0)
                        return cli_fail(sub, EXIT_INTERNAL, "out of memory");
                return 0;
        case RUN_ARG_RW:
                if (strv_extend(&f->rw, arg) < 0)
                        return cli_fail(sub, EXIT_INTERNAL, "out of memory");
                return 0;
        case RUN_ARG_NET:
                if (!streq(arg, "none") && !streq(arg, "host"))
                        return cli_fail(sub, EXIT_USAGE,
                                        "unknown --net mode '%s' — use none or host", arg);
                f->net = arg;
                return 0;
        case RUN_ARG_ALLOW_WEAKER:
                f->allow_weaker = true;
                return 0;
        case RUN_ARG_POLICY:
                f->policy = arg;
                return 0;
        default:
                return -ENOENT;
        }
}

int run_flags_check(RunFlags *f, const char *sub)
{
        if (!sbx_agent_name_valid(f->agent))
                return cli_fail(sub, EXIT_USAGE,
                                "bad agent name '%s' — use 1-64 letters, digits, '.', '_' and '-'",
                                f->agent);
        if (!f->policy) {
                const char *e = getenv("AIRLOCK_POLICY");
                f->policy = !isempty(e) ? e : AIRLOCK_POLICY_PATH;
        }
        return 0;
}

void run_setup_done(RunSetup *s)
{
        s->policy = policy_free(s->policy);
        s->ro = strv_free(s->ro);
        s->rw = strv_free(s->rw);
        s->secrets = strv_free(s->secrets);
        s->protect = strv_free(s->protect);
        s->env = strv_free(s->env);
}

int run_setup(RunSetup *s, const RunFlags *f, char *const *argv, const char *sub)
{
        const char *workspace = f->workspace;
        const PolicyProfile *profile;
        PolicyError perr = { 0 };
        int r;

        sbx_timing("options");
        r = policy_load_standard(f->policy, &s->policy, &perr);
        sbx_timing("policy loaded");
        if (r < 0) {
                char msg[1024];
                policy_error_format(&perr, msg, sizeof msg);
                return cli_fail(sub, EXIT_POLICY,
                                "invalid policy: %s — fix it (airlock policy check)", msg);
        }
        profile = s->profile = policy_find_profile(s->policy, f->profile);
        if (!profile) {
                _cleanup_free_ char *names = NULL;
                size_t len = 0;
                FILE *mf = open_memstream(&names, &len);
                for (size_t i = 0; mf && i < s->policy->n_profiles; i++)
                        fprintf(mf, "%s%s", i ? ", " : "", s->policy->profiles[i].name);
                if (mf)
                        fclose(mf);
                return cli_fail(sub, EXIT_USAGE, "unknown profile '%s' — the policy defines: %s",
                                f->profile, names ? names : "default");
        }
        /* the flags' lists as given (duplicates too), then what the profile adds */
        if ((f->ro && !(s->ro = strv_copy(f->ro))) || (f->rw && !(s->rw = strv_copy(f->rw))) ||
            append_all(&s->ro, profile->ro) < 0 || append_all(&s->rw, profile->rw) < 0 ||
            append_all(&s->secrets, s->policy->secrets) < 0 ||
            append_all(&s->protect, s->policy->protect) < 0 ||
            append_all(&s->protect, profile->protect) < 0 || append_all(&s->env, profile->env) < 0)
                return cli_fail(sub, EXIT_INTERNAL, "out of memory");

        if (!workspace) {
                if (!getcwd(s->cwd, sizeof s->cwd))
                        return cli_fail(sub, EXIT_SETUP,
                                        "cannot read the current directory — give --workspace DIR");
                workspace = s->cwd;
        }
        if (sbx_new_session_id(s->session_id, sizeof s->session_id) < 0)
                return cli_fail(sub, EXIT_SETUP, "cannot get random bytes for the session id");

        s->cfg = (SbxConfig){
                .argv = argv ? argv : placeholder_argv,
                .agent = f->agent,
                .session_id = s->session_id,
                .workspace = workspace,
                .ro = s->ro,
                .rw = s->rw,
                .env_allow = s->env,
                .memory_max = profile->memory_max,
                .pids_max = profile->pids_max,
                .secret_globs = s->secrets,
                .protect_globs = s->protect,
                .allow_weaker = f->allow_weaker,
                .agent_user = AIRLOCK_AGENT_USER,
        };
        s->cfg.net = profile->net == POLICY_NET_HOST ? SBX_NET_HOST : SBX_NET_NONE;
        if (f->net)
                s->cfg.net = streq(f->net, "host") ? SBX_NET_HOST : SBX_NET_NONE;
        if (profile->n_ports > 0) {
                s->cfg.ports = profile->ports;
                s->cfg.n_ports = profile->n_ports;
        } else {
                s->cfg.ports = default_ports;
                s->cfg.n_ports = ELEMENTSOF(default_ports);
        }
        return 0;
}

typedef struct {
        const RunFlags *flags;
        const char *workspace; /* as the broker is told: --workspace, else the current directory */
        int broker_fd;
        char *broker_socket;
        bool opened;
} RunSession;

/*
 * The broker: when one is reachable, a session of its own for this sandbox;
 * its socket, bind-mounted inside, is the agent's only way to ask for a
 * change. The connection that opened it holds it (O_CLOEXEC, and it only
 * accepts close-session); it closes, ending the session, when we exit.
 * Without a broker the sandbox still runs, confined, and requests from
 * inside say how to start the broker. Opened at most once per run, whether
 * a warm or a cold sandbox ends up running the command.
 */
static int run_open_session(void *userdata, const char **ret_socket)
{
        RunSession *rs = userdata;
        char berr[512];
        uint64_t bsid = 0;
        int br;

        if (!rs->opened) {
                rs->opened = true;
                br = broker_open_session(broker_admin_socket_path(), rs->flags->agent,
                                         rs->workspace, rs->flags->profile, &rs->broker_fd,
                                         &rs->broker_socket, &bsid, berr, sizeof berr);
                /* no broker (ENOENT, ECONNREFUSED): silent here; the agent's requests
                 * say how to start it */
                if (br < 0 && br != -ENOENT && br != -ECONNREFUSED)
                        fprintf(stderr,
                                "airlock: run: the broker gave this sandbox no session (%s) — "
                                "the agent's requests will fail\n",
                                br == -EPERM ? berr : strerror(-br));
        }
        *ret_socket = rs->broker_socket;
        return 0;
}

static int cmd_run(int argc, char **argv)
{
        enum { ARG_EXPLAIN = RUN_ARG_LAST, ARG_NO_POOL };
        static const struct option options[] = {
                RUN_OPTIONS,
                { "explain", no_argument, NULL, ARG_EXPLAIN },
                { "no-pool", no_argument, NULL, ARG_NO_POOL },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(run_flags_done) RunFlags flags = RUN_FLAGS_INIT;
        _cleanup_(run_setup_done) RunSetup setup = { 0 };
        RunSession rs = { .flags = &flags, .broker_fd = -EBADF };
        bool explain = false, no_pool = false;
        char cwd[4096];
        SbxError serr = { 0 };
        int c, r, status = 0;

        sbx_timing("airlock run");
        opterr = 0; /* one error line, ours */
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                r = run_flags_parse_one(&flags, c, optarg, SUB);
                if (r > 0)
                        return r;
                if (r == 0)
                        continue;
                switch (c) {
                case ARG_EXPLAIN:
                        explain = true;
                        break;
                case ARG_NO_POOL:
                        no_pool = true;
                        break;
                case 'h':
                        cli_print_usage(&cli_command_run, false);
                        return EXIT_OK;
                default:
                        return cli_fail(SUB, EXIT_USAGE, "bad option '%s' — run 'airlock help run'",
                                        argv[optind - 1]);
                }
        }
        if (optind >= argc && !explain)
                return cli_fail(SUB, EXIT_USAGE,
                                "no command given — write: airlock run [OPTIONS] -- CMD [ARGS...]");
        r = run_flags_check(&flags, SUB);
        if (r > 0)
                return r;

        rs.workspace = flags.workspace;
        if (!no_pool && !explain) {
                char why[512] = "";

                if (!rs.workspace && getcwd(cwd, sizeof cwd))
                        rs.workspace = cwd;
                if (rs.workspace) {
                        r = pool_client_run(&flags, argv + optind, run_open_session, &rs, why,
                                            sizeof why);
                        if (r >= 0)
                                goto out; /* the warm run's status; the session closes */
                        {
                                char phase[600];
                                snprintf(phase, sizeof phase, "pool: not used (%s)", why);
                                sbx_timing(phase);
                        }
                }
        }

        r = run_setup(&setup, &flags, optind < argc ? argv + optind : NULL, SUB);
        if (r > 0)
                goto out;
        if (explain) {
                r = sbx_explain(&setup.cfg, stdout, &serr);
                if (r < 0)
                        r = cli_fail(SUB, serr.exit_code ? serr.exit_code : EXIT_SETUP, "%s",
                                     serr.message);
                else
                        r = EXIT_OK;
                goto out;
        }
        sbx_timing("secret globs");
        rs.workspace = setup.cfg.workspace;
        (void)run_open_session(&rs, &setup.cfg.session_socket);
        r = sbx_run(&setup.cfg, &status, &serr);
        sbx_timing("cleaned up");
        if (r < 0)
                r = cli_fail(SUB, serr.exit_code ? serr.exit_code : EXIT_SETUP, "%s",
                             serr.message[0] ? serr.message : strerror(-r));
        else
                r = status;
out:
        safe_close(rs.broker_fd);
        free(rs.broker_socket);
        return r;
}

const CliCommand cli_command_run = {
        .name = "run",
        .summary = "run a command (an agent) in the kernel-enforced sandbox",
        .usage =
                "Usage: airlock run [OPTIONS] -- CMD [ARGS...]\n"
                "\n"
                "Runs CMD confined: it can read the host (secrets masked) and write only its\n"
                "workspace; it cannot change the host, reach another host (unless --net host,\n"
                "and then only TCP to the profile's ports), touch your terminal, or outlive the\n"
                "session. The exit status is CMD's (128+N if killed by signal N).\n"
                "\n"
                "Options:\n"
                "  --profile NAME     sandbox profile from the policy (default: default)\n"
                "  --agent NAME       the agent's name, for requests and the audit log\n"
                "  --workspace DIR    writable working directory (default: the current one)\n"
                "  --ro PATH          bind PATH read-only (e.g. from under /run or /tmp)\n"
                "  --rw PATH          make PATH writable too (repeatable)\n"
                "  --net none|host    network: none (loopback only, the default) or host\n"
                "  --policy FILE      policy file (default: $AIRLOCK_POLICY, else "
                "/etc/airlock/policy.yaml)\n"
                "  --allow-weaker     run even where this host lacks a layer the profile needs\n"
                "  --explain          print the confinement that would apply, start nothing\n"
                "  --no-pool          build a new sandbox even if an 'airlock pool' has one ready\n"
                "\n"
                "Exit codes: CMD's own; 64 usage, 65 invalid policy, 71 the sandbox could not be\n"
                "set up (nothing ran), 126/127 CMD could not be executed. See airlock(1).\n",
        .run = cmd_run,
};
