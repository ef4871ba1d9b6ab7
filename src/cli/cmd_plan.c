/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlock plan: a true dry run. Runs the command in a copy-on-write
 * snapshot of the host (src/plan), prints what it did, and judges those
 * effects with the policy. Exit status: 0 the policy would allow it,
 * 10 it needs approval, 77 it would be denied (see airlock(1)).
 */
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "config.h"
#include "plan/plan.h"
#include "policy/policy.h"

#define SUB "plan"

static void json_decref_p(json_t **j)
{
        if (*j)
                json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_decref_p)

static int parse_user(const char *s, uid_t *ret_uid, gid_t *ret_gid)
{
        struct passwd *pw;
        uint64_t u;

        pw = getpwnam(s);
        if (!pw && parse_u64(s, UINT32_MAX - 1, &u) >= 0) {
                pw = getpwuid((uid_t)u);
                if (!pw) {
                        /* a bare uid without a passwd entry: its own group */
                        *ret_uid = (uid_t)u;
                        *ret_gid = (gid_t)u;
                        return 0;
                }
        }
        if (!pw)
                return -ENOENT;
        *ret_uid = pw->pw_uid;
        *ret_gid = pw->pw_gid;
        return 0;
}

/* Every effect rule the plan matches, besides the deciding one: the approver sees all. */
static int matching_effect_rules(const Policy *p, const PolicyRequest *req, json_t *arr, FILE *f)
{
        for (size_t i = 0; i < p->n_rules; i++) {
                const PolicyRule *rule = &p->rules[i];
                char why[512] = "";

                if (rule->effect_kind == POLICY_EFFECT_NONE)
                        continue;
                if (policy_rule_matches(p, rule, req, why, sizeof why) != 1)
                        continue;
                if (arr) {
                        json_t *o =
                                json_pack("{s:I, s:s, s:s, s:s?}", "rule", (json_int_t)rule->index,
                                          "action", policy_action_to_string(rule->action), "effect",
                                          why, "reason", rule->reason);

                        if (!o || json_array_append_new(arr, o) < 0)
                                return -ENOMEM;
                }
                if (f) {
                        _cleanup_free_ char *w = escape_for_terminal(why),
                                            *rs = escape_for_terminal(rule->reason ? rule->reason
                                                                                   : "");

                        fprintf(f, "  rule %zu (%s): %s%s%s\n", rule->index,
                                policy_action_to_string(rule->action), w ? w : "?",
                                rule->reason ? " — " : "", rs ? rs : "");
                }
        }
        return 0;
}

static int cmd_plan(int argc, char **argv)
{
        enum { ARG_POLICY = 0x100, ARG_USER, ARG_CWD, ARG_TIMEOUT, ARG_HOST, ARG_JSON };
        static const struct option options[] = {
                { "host", required_argument, NULL, ARG_HOST },
                { "json", no_argument, NULL, ARG_JSON },
                { "policy", required_argument, NULL, ARG_POLICY },
                { "user", required_argument, NULL, ARG_USER },
                { "cwd", required_argument, NULL, ARG_CWD },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(policy_freep) Policy *policy = NULL;
        _cleanup_(plan_result_freep) PlanResult *plan = NULL;
        _cleanup_free_ char *cwd_buf = NULL;
        const char *policy_path = NULL, *host = NULL, *user = NULL, *cwd = NULL;
        PlanPolicyEffects pe = {};
        PolicyDecision d = {};
        PolicyRequest req;
        PolicyError perr = {};
        PlanOptions o = {};
        uint64_t timeout = 0;
        bool json = false;
        char err[1024] = "";
        int c, r, code;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_HOST:
                        host = optarg;
                        break;
                case ARG_JSON:
                        json = true;
                        break;
                case ARG_POLICY:
                        policy_path = optarg;
                        break;
                case ARG_USER:
                        user = optarg;
                        break;
                case ARG_CWD:
                        cwd = optarg;
                        break;
                case ARG_TIMEOUT:
                        if (parse_u64(optarg, 24 * 3600, &timeout) < 0 || timeout == 0)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "bad --timeout '%s' — give whole seconds, 1 to "
                                                "86400",
                                                optarg);
                        break;
                case 'h':
                        cli_print_usage(&cli_command_plan, false);
                        return EXIT_OK;
                case ':':
                        return cli_fail(SUB, EXIT_USAGE,
                                        "%s needs a value — run 'airlock help plan'",
                                        argv[optind - 1]);
                default:
                        return cli_fail(SUB, EXIT_USAGE,
                                        "bad option '%s' — run 'airlock help plan'",
                                        argv[optind - 1]);
                }
        }
        if (optind >= argc)
                return cli_fail(
                        SUB, EXIT_USAGE,
                        "no command given — write: airlock plan [OPTIONS] -- CMD [ARGS...]");
        if (geteuid() != 0)
                return cli_fail(SUB, EXIT_USAGE,
                                "planning needs root: it builds namespaces and overlays over the "
                                "host's filesystems — run it as root (sudo airlock plan ...)");

        if (!policy_path) {
                const char *e = getenv("AIRLOCK_POLICY");
                policy_path = !isempty(e) ? e : AIRLOCK_POLICY_PATH;
        }
        r = policy_load_standard(policy_path, &policy, &perr);
        if (r < 0) {
                char msg[1024];
                policy_error_format(&perr, msg, sizeof msg);
                return cli_fail(SUB, EXIT_POLICY,
                                "invalid policy: %s — fix it (airlock policy check)", msg);
        }
        if (host && !policy_find_host(policy, host))
                return cli_fail(SUB, EXIT_USAGE,
                                "unknown host '%s' — the hosts: section of the policy lists the "
                                "hosts a command may target",
                                host);

        o.uid = 0;
        o.gid = 0;
        if (user && parse_user(user, &o.uid, &o.gid) < 0)
                return cli_fail(SUB, EXIT_USAGE,
                                "unknown user '%s' — give a user name or a numeric uid", user);
        if (!cwd) {
                cwd_buf = getcwd(NULL, 0);
                cwd = cwd_buf ? cwd_buf : "/";
        }
        if (cwd[0] != '/')
                return cli_fail(SUB, EXIT_USAGE, "--cwd '%s' is not an absolute path — give /DIR",
                                cwd);
        o.argv = argv + optind;
        o.envp = environ;
        o.cwd = cwd;
        o.host = host;
        o.policy = policy;
        o.timeout_usec = timeout * 1000000ULL;

        r = plan_run(&o, &plan, err, sizeof err);
        if (r < 0)
                return cli_fail(SUB, r == -EPERM || r == -ENOMEM ? EXIT_INTERNAL : EXIT_SETUP, "%s",
                                err[0] ? err : strerror(-r));

        r = plan_policy_effects(plan, &pe);
        if (r < 0)
                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
        req = (PolicyRequest){
                .argv = o.argv,
                .host = host,
                .effects = &pe.effects,
                .cwd = cwd,
        };
        r = policy_evaluate(policy, &req, &d);
        if (r < 0) {
                plan_policy_effects_done(&pe);
                return cli_fail(SUB, EXIT_INTERNAL, "cannot evaluate the policy: %s", strerror(-r));
        }
        code = d.action == POLICY_ALLOW     ? EXIT_OK
               : d.action == POLICY_APPROVE ? EXIT_PLAN_APPROVE
                                            : EXIT_DENIED;

        if (json) {
                _cleanup_json_ json_t *out = json_object(), *rules = json_array();
                _cleanup_free_ char *text = NULL;

                if (!out || !rules || matching_effect_rules(policy, &req, rules, NULL) < 0 ||
                    json_object_set_new(out, "plan", plan_result_to_json(plan)) < 0 ||
                    json_object_set_new(out, "decision",
                                        json_pack("{s:s, s:I, s:s, s:O}", "action",
                                                  policy_action_to_string(d.action), "approvers",
                                                  (json_int_t)d.approvers, "reason", d.reason,
                                                  "effect_rules", rules)) < 0 ||
                    !(text = json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS))) {
                        plan_policy_effects_done(&pe);
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                }
                puts(text);
        } else {
                _cleanup_free_ char *reason = escape_for_terminal(d.reason);

                plan_result_print(stdout, plan);
                printf("Decision: %s", policy_action_to_string(d.action));
                if (d.action == POLICY_APPROVE)
                        printf(" (%u approval%s)", d.approvers, d.approvers == 1 ? "" : "s");
                printf(" — %s\n", reason ? reason : "?");
                {
                        _cleanup_free_ char *rules = NULL;
                        size_t len = 0;
                        FILE *m = open_memstream(&rules, &len);

                        if (!m || matching_effect_rules(policy, &req, NULL, m) < 0) {
                                if (m)
                                        fclose(m);
                                plan_policy_effects_done(&pe);
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                        }
                        fclose(m);
                        if (len > 0)
                                printf("Effect rules this plan matches:\n%s", rules);
                }
        }
        plan_policy_effects_done(&pe);
        fflush(stdout);
        return code;
}

const CliCommand cli_command_plan = {
        .name = "plan",
        .summary = "dry-run a command in a copy-on-write snapshot and show its effects",
        .usage =
                "Usage: airlock plan [OPTIONS] -- CMD [ARGS...]\n"
                "\n"
                "Runs CMD for real in a copy-on-write snapshot of this host (an overlay over\n"
                "every filesystem, no network but loopback, its own pid namespace) and shows\n"
                "what it did: files created, modified, deleted or renamed (with diffs),\n"
                "secrets read or copied, connections attempted (refused), daemons contacted,\n"
                "programs run. Then judges those effects with the policy. Nothing on the host\n"
                "changes. Needs root.\n"
                "\n"
                "Options:\n"
                "  --host H        plan CMD as run on inventory host H: the local side runs\n"
                "                  (the host's connect prefix, ssh by default); its connection\n"
                "                  is refused and the plan is partial\n"
                "  --json          print the plan and the decision as JSON\n"
                "  --policy FILE   policy file (default: $AIRLOCK_POLICY, else " AIRLOCK_POLICY_PATH
                ",\n"
                "                  else the embedded default)\n"
                "  --user U        run as user U (name or uid; default root)\n"
                "  --cwd DIR       working directory (default: the current one)\n"
                "  --timeout SEC   stop the command after SEC seconds (default 120)\n"
                "  -h, --help      this text\n"
                "\n"
                "Exit status: 0 the policy would allow the command, 10 it needs approval,\n"
                "77 it would be denied; 64 usage, 65 invalid policy, 71 the snapshot could\n"
                "not be built, 70 internal error.\n",
        .run = cmd_plan,
};
