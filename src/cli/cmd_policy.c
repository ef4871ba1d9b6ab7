/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * airlock policy check | explain | show-default: validate a policy file,
 * ask which rule decides a request and why (as sudo's testsudoers does),
 * and print the embedded default policy.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>

#include "cli/cli.h"
#include "common/util.h"
#include "config.h"
#include "policy/policy.h"

#define SUB "policy"

static void json_decref_p(json_t **j)
{
        if (*j)
                json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_decref_p)

static int print_json(json_t *j)
{
        _cleanup_free_ char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

        if (!s)
                return cli_fail(SUB, EXIT_INTERNAL, "out of memory — free some memory and retry");
        puts(s);
        return EXIT_OK;
}

/*
 * Prints text from the policy file or the command line safely for a
 * terminal: control characters and DEL become \xNN, so nothing in a policy
 * can move the cursor. Backslashes stay as they are (globs use them), and
 * the text is UTF-8 already (libyaml refuses anything else).
 */
static void put_escaped(FILE *f, const char *s)
{
        for (const unsigned char *p = (const unsigned char *)(s ?: ""); *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        fprintf(f, "\\x%02x", *p);
                else
                        fputc(*p, f);
}

/*
 * Which file a command should read: FILE, else $AIRLOCK_POLICY, else the
 * standard path when it exists, else NULL for the embedded default.
 */
static const char *resolve_policy_path(const char *arg)
{
        const char *e;

        if (arg)
                return arg;
        e = getenv("AIRLOCK_POLICY");
        if (!isempty(e))
                return e;
        if (access(AIRLOCK_POLICY_PATH, F_OK) == 0)
                return AIRLOCK_POLICY_PATH;
        return NULL;
}

static int print_errors(const PolicyError *errs, size_t n, const char *path, bool json, int r)
{
        if (json) {
                _cleanup_json_ json_t *o = json_object(), *a = json_array();

                if (!o || !a)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                for (size_t i = 0; i < n; i++) {
                        json_t *e =
                                json_pack("{s:s, s:I, s:I, s:s}", "file", errs[i].file, "line",
                                          (json_int_t)errs[i].line, "column",
                                          (json_int_t)errs[i].column, "message", errs[i].message);
                        if (!e || json_array_append_new(a, e) < 0)
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                }
                if (json_object_set_new(o, "file", json_string(path)) < 0 ||
                    json_object_set_new(o, "ok", json_false()) < 0 ||
                    json_object_set(o, "errors", a) < 0)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                print_json(o);
                return EXIT_POLICY;
        }
        for (size_t i = 0; i < n; i++) {
                char buf[1024];

                policy_error_format(&errs[i], buf, sizeof(buf));
                put_escaped(stderr, buf);
                fputc('\n', stderr);
        }
        if (n == 0)
                return cli_fail(SUB, r == -ENOMEM ? EXIT_INTERNAL : EXIT_POLICY,
                                "%s: cannot load the policy: %s — check the file", path,
                                strerror(-r));
        return cli_fail(SUB, EXIT_POLICY,
                        "%s: %zu error%s — fix %s and run 'airlock policy check' again", path, n,
                        n == 1 ? "" : "s", n == 1 ? "it" : "them");
}

static int policy_check(int argc, char **argv)
{
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "embedded", no_argument, NULL, 'E' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyError *errs = NULL;
        const char *path;
        bool json = false, embedded = false, force_embedded = false;
        size_t n = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "+jEh", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        json = true;
                        break;
                case 'E':
                        force_embedded = true;
                        break;
                case 'h':
                        cli_print_usage(&cli_command_policy, false);
                        return EXIT_OK;
                default:
                        return cli_fail(SUB, EXIT_USAGE, "bad option — run 'airlock help policy'");
                }
        if (argc - optind > 1)
                return cli_fail(SUB, EXIT_USAGE,
                                "check takes at most one FILE — run 'airlock help policy'");
        if (force_embedded && argc > optind)
                return cli_fail(SUB, EXIT_USAGE,
                                "--embedded checks the built-in policy — give it no FILE");
        path = force_embedded ? NULL : resolve_policy_path(argc > optind ? argv[optind] : NULL);
        if (!path) {
                embedded = true;
                if (!json && !force_embedded)
                        fprintf(stderr,
                                "airlock: policy: no policy file at %s; checking the embedded "
                                "default\n",
                                AIRLOCK_POLICY_PATH);
                r = policy_check_string(policy_default_text(), strlen(policy_default_text()),
                                        "<default>", &p, &errs, &n);
                path = "<default>";
        } else
                r = policy_check_file(path, &p, &errs, &n);
        if (r < 0) {
                int code = print_errors(errs, n, path, json, r);

                free(errs);
                return code;
        }

        if (json) {
                _cleanup_json_ json_t *o = json_pack(
                        "{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:s, s:[]}", "file", path, "ok", 1,
                        "embedded", embedded, "rules", (json_int_t)p->n_rules, "secrets",
                        (json_int_t)strv_length(p->secrets), "hosts", (json_int_t)p->n_hosts,
                        "profiles", (json_int_t)p->n_profiles, "digest", p->digest, "errors");
                if (!o)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                return print_json(o);
        }
        put_escaped(stdout, path);
        printf(": OK (%zu rule%s, %zu secret%s, %zu host%s, %zu profile%s, digest %s)\n",
               p->n_rules, p->n_rules == 1 ? "" : "s", strv_length(p->secrets),
               strv_length(p->secrets) == 1 ? "" : "s", p->n_hosts, p->n_hosts == 1 ? "" : "s",
               p->n_profiles, p->n_profiles == 1 ? "" : "s", p->digest);
        return EXIT_OK;
}

static void describe_rule(FILE *f, const Policy *p, const PolicyRule *r)
{
        fprintf(f, "rule %zu at ", r->index);
        put_escaped(f, p->source);
        fprintf(f, ":%u:%u", r->line, r->column);
}

/* Effects given on the command line with --effect, as a plan would report them. */
typedef struct {
        char **secrets_read, **secret_content_written, **writes, **deletes, **contacts;
        char **connect_specs; /* "HOST[:PORT]" as given; resolved once the policy is loaded */
        PolicyConnection *connections;
        size_t n_connections;
        bool planned;
} CliEffects;

static void cli_effects_done(CliEffects *e)
{
        strv_free(e->secrets_read);
        strv_free(e->secret_content_written);
        strv_free(e->writes);
        strv_free(e->deletes);
        strv_free(e->contacts);
        strv_free(e->connect_specs);
        free(e->connections);
}

static int add_effect(CliEffects *e, const char *spec)
{
        static const struct {
                const char *kind;
                size_t offset;
        } kinds[] = {
                { "reads-secret", offsetof(CliEffects, secrets_read) },
                { "writes-secret-content", offsetof(CliEffects, secret_content_written) },
                { "writes", offsetof(CliEffects, writes) },
                { "deletes", offsetof(CliEffects, deletes) },
                { "contacts", offsetof(CliEffects, contacts) },
                { "connects", offsetof(CliEffects, connect_specs) },
        };
        const char *eq = strchr(spec, '=');

        e->planned = true;
        if (!eq || eq[1] == '\0')
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (strlen(kinds[i].kind) == (size_t)(eq - spec) &&
                    strneq(spec, kinds[i].kind, (size_t)(eq - spec)))
                        return strv_extend((char ***)((char *)e + kinds[i].offset), eq + 1);
        return -EINVAL;
}

/* "HOST[:PORT]" -> a connection: HOST is an inventory name or address, else outside it. */
static int resolve_connections(const Policy *p, CliEffects *e)
{
        size_t n = strv_length(e->connect_specs);

        if (n == 0)
                return 0;
        e->connections = calloc(n, sizeof(PolicyConnection));
        if (!e->connections)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char *spec = e->connect_specs[i], *colon = strrchr(spec, ':');
                PolicyConnection *c = &e->connections[i];
                const PolicyHost *h;

                if (colon && !strchr(colon, ']') && strchr(spec, ':') == colon) {
                        uint64_t port;

                        if (parse_u64(colon + 1, 65535, &port) < 0 || port == 0)
                                return -EINVAL;
                        *colon = '\0';
                        c->port = (uint16_t)port;
                }
                h = policy_find_host(p, spec) ?: policy_find_host_by_address(p, spec);
                c->host = h ? h->name : NULL;
                c->address = h ? h->address : spec;
        }
        e->n_connections = n;
        return 0;
}

static int policy_explain(int argc, char **argv)
{
        static const struct option options[] = {
                { "policy", required_argument, NULL, 'p' },
                { "host", required_argument, NULL, 'H' },
                { "agent", required_argument, NULL, 'a' },
                { "profile", required_argument, NULL, 'P' },
                { "json", no_argument, NULL, 'j' },
                { "verbose", no_argument, NULL, 'v' },
                { "effect", required_argument, NULL, 'e' },
                { "planned", no_argument, NULL, 'n' },
                { "cwd", required_argument, NULL, 'C' },
                { "embedded", no_argument, NULL, 'E' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(cli_effects_done) CliEffects fx = {};
        PolicyEffects effects = {};
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_free_ char *cmd = NULL;
        const char *policy_arg = NULL, *path;
        PolicyRequest req = {};
        PolicyDecision d;
        PolicyError err = {};
        bool json = false, verbose = false, force_embedded = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "+p:H:a:P:jve:nC:Eh", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        policy_arg = optarg;
                        break;
                case 'H':
                        req.host = optarg;
                        break;
                case 'a':
                        req.agent = optarg;
                        break;
                case 'P':
                        req.profile = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'v':
                        verbose = true;
                        break;
                case 'e':
                        r = add_effect(&fx, optarg);
                        if (r == -ENOMEM)
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                        if (r < 0)
                                return cli_fail(SUB, EXIT_USAGE,
                                                "bad --effect '%s' — write KIND=VALUE with KIND "
                                                "one of reads-secret, writes-secret-content, "
                                                "writes, deletes, connects, contacts",
                                                optarg);
                        break;
                case 'n':
                        fx.planned = true;
                        break;
                case 'E':
                        force_embedded = true;
                        break;
                case 'C':
                        if (optarg[0] != '/')
                                return cli_fail(SUB, EXIT_USAGE,
                                                "--cwd needs an absolute directory, e.g. "
                                                "--cwd /etc/corosync");
                        req.cwd = optarg;
                        break;
                case 'h':
                        cli_print_usage(&cli_command_policy, false);
                        return EXIT_OK;
                default:
                        return cli_fail(SUB, EXIT_USAGE, "bad option — run 'airlock help policy'");
                }
        if (optind >= argc)
                return cli_fail(SUB, EXIT_USAGE,
                                "explain needs a command — write 'airlock policy explain -- CMD "
                                "ARGS...'");
        req.argv = argv + optind;

        if (force_embedded && policy_arg)
                return cli_fail(SUB, EXIT_USAGE,
                                "--embedded and --policy exclude each other — give one");
        path = force_embedded ? NULL : resolve_policy_path(policy_arg);
        if (path) {
                PolicyError *errs = NULL;
                size_t n = 0;

                r = policy_check_file(path, &p, &errs, &n);
                if (r < 0) {
                        int code = print_errors(errs, n, path, json, r);

                        free(errs);
                        return code;
                }
        } else {
                r = policy_load_default(&p);
                if (r < 0)
                        return cli_fail(SUB, EXIT_INTERNAL,
                                        "cannot load the embedded default policy: %s",
                                        strerror(-r));
        }
        (void)err;

        if (fx.planned) {
                r = resolve_connections(p, &fx);
                if (r == -ENOMEM)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                if (r < 0)
                        return cli_fail(SUB, EXIT_USAGE,
                                        "bad --effect connects=... — write connects=HOST:PORT "
                                        "with a port from 1 to 65535");
                effects = (PolicyEffects){
                        .secrets_read = fx.secrets_read,
                        .secret_content_written = fx.secret_content_written,
                        .writes = fx.writes,
                        .deletes = fx.deletes,
                        .connections = fx.connections,
                        .n_connections = fx.n_connections,
                        .contacts = fx.contacts,
                };
                req.effects = &effects;
        }

        r = policy_evaluate(p, &req, &d);
        if (r < 0)
                return cli_fail(SUB, EXIT_INTERNAL, "cannot evaluate: %s", d.reason);

        cmd = argv_to_display(req.argv);
        if (!cmd)
                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");

        if (json) {
                _cleanup_json_ json_t *o = NULL, *skipped = json_array();

                if (!skipped)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                for (size_t i = 0; i < p->n_rules && &p->rules[i] != d.rule; i++) {
                        char why[512];
                        json_t *e;

                        policy_rule_matches(p, &p->rules[i], &req, why, sizeof(why));
                        e = json_pack("{s:I, s:I, s:I, s:s}", "rule", (json_int_t)p->rules[i].index,
                                      "line", (json_int_t)p->rules[i].line, "column",
                                      (json_int_t)p->rules[i].column, "why", why);
                        if (!e || json_array_append_new(skipped, e) < 0)
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                }
                o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s?, s:s?, s:s?}", "policy", p->source,
                              "digest", p->digest, "action", policy_action_to_string(d.action),
                              "approvers", (json_int_t)d.approvers, "reason", d.reason, "host",
                              req.host, "agent", req.agent, "profile", req.profile);
                if (!o)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                if (json_object_set_new(o, "command", json_string(cmd)) < 0 ||
                    json_object_set(o, "skipped", skipped) < 0)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                if (d.rule) {
                        json_t *jr = json_pack(
                                "{s:I, s:I, s:I, s:s?}", "index", (json_int_t)d.rule->index, "line",
                                (json_int_t)d.rule->line, "column", (json_int_t)d.rule->column,
                                "reason", d.rule->reason);
                        if (!jr || json_object_set_new(o, "rule", jr) < 0)
                                return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                } else if (json_object_set_new(o, "rule", json_null()) < 0)
                        return cli_fail(SUB, EXIT_INTERNAL, "out of memory");
                return print_json(o);
        }

        fputs("policy:    ", stdout);
        put_escaped(stdout, p->source);
        printf(" (digest %.12s)\n", p->digest);
        fputs("request:   ", stdout);
        put_escaped(stdout, cmd);
        fputs("\n           on host ", stdout);
        put_escaped(stdout, req.host ?: "local");
        fputs(", agent ", stdout);
        put_escaped(stdout, req.agent ?: "(none: a human)");
        if (req.profile) {
                fputs(", profile ", stdout);
                put_escaped(stdout, req.profile);
        }
        fputc('\n', stdout);
        if (verbose)
                for (size_t i = 0; i < p->n_rules && &p->rules[i] != d.rule; i++) {
                        char why[512];

                        policy_rule_matches(p, &p->rules[i], &req, why, sizeof(why));
                        fputs("skipped:   ", stdout);
                        describe_rule(stdout, p, &p->rules[i]);
                        fputs(": ", stdout);
                        put_escaped(stdout, why);
                        fputc('\n', stdout);
                }
        fputs("decided:   ", stdout);
        if (d.rule)
                describe_rule(stdout, p, d.rule);
        else
                fputs("the default (no rule matched)", stdout);
        fputc('\n', stdout);
        printf("decision:  %s", policy_action_to_string(d.action));
        if (d.action == POLICY_APPROVE)
                printf(" (%u approval%s needed)", d.approvers, d.approvers == 1 ? "" : "s");
        fputc('\n', stdout);
        fputs("reason:    ", stdout);
        put_escaped(stdout, d.reason);
        fputc('\n', stdout);
        return EXIT_OK;
}

static int policy_show_default(int argc, char **argv)
{
        if (argc > 1)
                return cli_fail(SUB, EXIT_USAGE,
                                "show-default takes no arguments — run 'airlock policy "
                                "show-default'");
        fputs(policy_default_text(), stdout);
        return EXIT_OK;
}

static int cmd_policy(int argc, char **argv)
{
        if (argc < 2)
                return cli_fail(SUB, EXIT_USAGE,
                                "missing action — write 'airlock policy check', 'explain' or "
                                "'show-default' (see 'airlock help policy')");
        optind = 0;
        if (streq(argv[1], "check"))
                return policy_check(argc - 1, argv + 1);
        if (streq(argv[1], "explain"))
                return policy_explain(argc - 1, argv + 1);
        if (streq(argv[1], "show-default"))
                return policy_show_default(argc - 1, argv + 1);
        return cli_fail(SUB, EXIT_USAGE,
                        "unknown action '%s' — write check, explain or show-default (see "
                        "'airlock help policy')",
                        argv[1]);
}

const CliCommand cli_command_policy = {
        .name = "policy",
        .summary = "check a policy file, or explain which rule decides a command",
        .usage = "Usage: airlock policy check [--json] [--embedded | FILE]\n"
                 "       airlock policy explain [--policy FILE | --embedded] [--host H]\n"
                 "                              [--agent A] [--profile P] [--cwd DIR]\n"
                 "                              [--effect KIND=VALUE]... [--planned]\n"
                 "                              [--verbose] [--json] -- CMD...\n"
                 "       airlock policy show-default\n"
                 "\n"
                 "check         Validates FILE (default: $AIRLOCK_POLICY, else\n"
                 "              " AIRLOCK_POLICY_PATH ", else the embedded default) and\n"
                 "              prints every error as\n"
                 "              FILE:LINE:COLUMN: what is wrong — how to fix it.\n"
                 "              Exit 0 if valid, 65 if not.\n"
                 "explain       Shows which rule decides CMD and why: the rule's file:line,\n"
                 "              the action, the approvals needed and the reason. --verbose\n"
                 "              also lists each earlier rule and why it did not match.\n"
                 "              --host names an inventory host (default: this machine),\n"
                 "              --agent the agent asking (default: a human), --profile its\n"
                 "              sandbox profile, --cwd where it would run (relative\n"
                 "              arguments; default /). Rules on effects (reads-secret,\n"
                 "              writes, ...) judge a plan: without one they never match.\n"
                 "              --effect describes what a plan observed, as if the request\n"
                 "              had one: reads-secret=PATH, writes-secret-content=PATH,\n"
                 "              writes=PATH, deletes=PATH, connects=HOST:PORT (an inventory\n"
                 "              name or address; anything else is outside the inventory),\n"
                 "              contacts=DAEMON. --planned: a plan with no effects.\n"
                 "show-default  Prints the embedded default policy, a starting point for\n"
                 "              " AIRLOCK_POLICY_PATH ".\n"
                 "\n"
                 "Options:\n"
                 "  --policy FILE   the policy for explain (also $AIRLOCK_POLICY)\n"
                 "  --embedded      use the embedded default policy, even if a file exists\n"
                 "  --json          machine-readable output\n"
                 "\n"
                 "See airlock-policy(5) for the file format.\n",
        .run = cmd_policy,
};
