/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlock run: start a command (the agent) in the kernel-enforced sandbox.
 * This file turns flags and the policy into an SbxConfig; src/sandbox does
 * the rest.
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

static int append_all(char ***dst, char *const *src)
{
        STRV_FOREACH (s, src)
                if (!strv_contains(*dst, *s) && strv_extend(dst, *s) < 0)
                        return -ENOMEM;
        return 0;
}

static int cmd_run(int argc, char **argv)
{
        enum {
                ARG_AGENT = 0x100,
                ARG_WORKSPACE,
                ARG_RO,
                ARG_RW,
                ARG_NET,
                ARG_EXPLAIN,
                ARG_ALLOW_WEAKER,
                ARG_POLICY,
                ARG_PROFILE
        };
        static const struct option options[] = {
                { "profile", required_argument, NULL, ARG_PROFILE },
                { "agent", required_argument, NULL, ARG_AGENT },
                { "workspace", required_argument, NULL, ARG_WORKSPACE },
                { "ro", required_argument, NULL, ARG_RO },
                { "rw", required_argument, NULL, ARG_RW },
                { "net", required_argument, NULL, ARG_NET },
                { "explain", no_argument, NULL, ARG_EXPLAIN },
                { "allow-weaker", no_argument, NULL, ARG_ALLOW_WEAKER },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_strv_free_ char **ro = NULL, **rw = NULL, **secrets = NULL, **protect = NULL,
                                 **env = NULL;
        _cleanup_(policy_freep) Policy *policy = NULL;
        const char *profile_name = "default", *agent = "agent", *workspace = NULL,
                   *policy_path = NULL, *net_arg = NULL;
        bool explain = false, allow_weaker = false;
        char session_id[33], cwd[4096];
        const PolicyProfile *profile;
        PolicyError perr = { 0 };
        SbxConfig cfg = { 0 };
        _cleanup_close_ int broker_fd = -EBADF;
        _cleanup_free_ char *broker_socket = NULL;
        SbxError serr = { 0 };
        int c, r, status = 0;

        sbx_timing("airlock run");
        opterr = 0; /* one error line, ours */
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_PROFILE:
                        profile_name = optarg;
                        break;
                case ARG_AGENT:
                        agent = optarg;
                        break;
                case ARG_WORKSPACE:
                        workspace = optarg;
                        break;
                case ARG_RO:
                        if (strv_extend(&ro, optarg) < 0)
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                        break;
                case ARG_RW:
                        if (strv_extend(&rw, optarg) < 0)
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                        break;
                case ARG_NET:
                        if (!streq(optarg, "none") && !streq(optarg, "host"))
                                return cli_fail(SUB, EXIT_USAGE,
                                                "unknown --net mode '%s' — use none or host",
                                                optarg);
                        net_arg = optarg;
                        break;
                case ARG_EXPLAIN:
                        explain = true;
                        break;
                case ARG_ALLOW_WEAKER:
                        allow_weaker = true;
                        break;
                case ARG_POLICY:
                        policy_path = optarg;
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
        if (!sbx_agent_name_valid(agent))
                return cli_fail(SUB, EXIT_USAGE,
                                "bad agent name '%s' — use 1-64 letters, digits, '.', '_' and '-'",
                                agent);

        if (!policy_path) {
                const char *e = getenv("AIRLOCK_POLICY");
                policy_path = !isempty(e) ? e : AIRLOCK_POLICY_PATH;
        }
        sbx_timing("options");
        r = policy_load_standard(policy_path, &policy, &perr);
        sbx_timing("policy loaded");
        if (r < 0) {
                char msg[1024];
                policy_error_format(&perr, msg, sizeof msg);
                return cli_fail(SUB, EXIT_POLICY,
                                "invalid policy: %s — fix it (airlock policy check)", msg);
        }
        profile = policy_find_profile(policy, profile_name);
        if (!profile) {
                _cleanup_free_ char *names = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&names, &len);
                for (size_t i = 0; f && i < policy->n_profiles; i++)
                        fprintf(f, "%s%s", i ? ", " : "", policy->profiles[i].name);
                if (f)
                        fclose(f);
                return cli_fail(SUB, EXIT_USAGE, "unknown profile '%s' — the policy defines: %s",
                                profile_name, names ? names : "default");
        }
        if (append_all(&ro, profile->ro) < 0 || append_all(&rw, profile->rw) < 0 ||
            append_all(&secrets, policy->secrets) < 0 ||
            append_all(&protect, policy->protect) < 0 ||
            append_all(&protect, profile->protect) < 0 || append_all(&env, profile->env) < 0)
                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");

        if (!workspace) {
                if (!getcwd(cwd, sizeof cwd))
                        return cli_fail(SUB, EXIT_SETUP,
                                        "cannot read the current directory — give --workspace DIR");
                workspace = cwd;
        }
        if (sbx_new_session_id(session_id, sizeof session_id) < 0)
                return cli_fail(SUB, EXIT_SETUP, "cannot get random bytes for the session id");

        cfg = (SbxConfig){
                .argv = optind < argc ? argv + optind : (char *[]){ (char *)"(command)", NULL },
                .agent = agent,
                .session_id = session_id,
                .workspace = workspace,
                .ro = ro,
                .rw = rw,
                .env_allow = env,
                .memory_max = profile->memory_max,
                .pids_max = profile->pids_max,
                .secret_globs = secrets,
                .protect_globs = protect,
                .allow_weaker = allow_weaker,
                .agent_user = AIRLOCK_AGENT_USER,
        };
        cfg.net = profile->net == POLICY_NET_HOST ? SBX_NET_HOST : SBX_NET_NONE;
        if (net_arg)
                cfg.net = streq(net_arg, "host") ? SBX_NET_HOST : SBX_NET_NONE;
        if (profile->n_ports > 0) {
                cfg.ports = profile->ports;
                cfg.n_ports = profile->n_ports;
        } else {
                cfg.ports = default_ports;
                cfg.n_ports = ELEMENTSOF(default_ports);
        }

        if (explain) {
                r = sbx_explain(&cfg, stdout, &serr);
                if (r < 0)
                        return cli_fail(SUB, serr.exit_code ? serr.exit_code : EXIT_SETUP, "%s",
                                        serr.message);
                return EXIT_OK;
        }
        sbx_timing("secret globs");
        /*
         * The broker (added by the broker engineer): when one is reachable, a
         * session of its own for this sandbox; its socket, bind-mounted
         * inside, is the agent's only way to ask for a change. The connection
         * that opened it holds it (O_CLOEXEC, and it only accepts
         * close-session); it closes, ending the session, when we exit.
         * Without a broker the sandbox still runs, confined, and requests
         * from inside say how to start the broker.
         */
        {
                char berr[512];
                uint64_t bsid = 0;
                int br = broker_open_session(broker_admin_socket_path(), agent, workspace,
                                             profile_name, &broker_fd, &broker_socket, &bsid, berr,
                                             sizeof berr);

                if (br >= 0)
                        cfg.session_socket = broker_socket;
                /* no broker (ENOENT, ECONNREFUSED): silent here; the agent's requests
                 * say how to start it */
                else if (br != -ENOENT && br != -ECONNREFUSED)
                        fprintf(stderr,
                                "airlock: run: the broker gave this sandbox no session (%s) — "
                                "the agent's requests will fail\n",
                                br == -EPERM ? berr : strerror(-br));
        }
        r = sbx_run(&cfg, &status, &serr);
        sbx_timing("cleaned up");
        if (r < 0)
                return cli_fail(SUB, serr.exit_code ? serr.exit_code : EXIT_SETUP, "%s",
                                serr.message[0] ? serr.message : strerror(-r));
        return status;
}

const CliCommand cli_command_run = {
        .name = "run",
        .summary = "run a command (an agent) in the kernel-enforced sandbox",
        .usage = "Usage: airlock run [OPTIONS] -- CMD [ARGS...]\n"
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
                 "  --allow-weaker     run even where this kernel lacks a layer the profile needs\n"
                 "  --explain          print the confinement that would apply, start nothing\n"
                 "\n"
                 "Exit codes: CMD's own; 64 usage, 65 invalid policy, 71 the sandbox could not be\n"
                 "set up (nothing ran), 126/127 CMD could not be executed. See airlock(1).\n",
        .run = cmd_run,
};
