/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/util.h"
#include "policy/policy.h"
#include "test-policy.h"

static Policy *load_ok(const char *text)
{
        Policy *p = NULL;
        PolicyError err = {};
        int r;

        r = policy_load_string(text, strlen(text), "t.yaml", &p, &err);
        if (r < 0)
                fail_msg("unexpected error %d: %u:%u: %s", r, err.line, err.column, err.message);
        assert_non_null(p);
        return p;
}

/* Loads text expecting an error (among all reported) at line:column whose message contains needle.
 */
static void load_bad(const char *text, unsigned line, unsigned column, const char *needle)
{
        Policy *p = NULL;
        PolicyError err = {}, *errs = NULL;
        size_t n = 0;
        bool found = false;
        int r;

        r = policy_load_string(text, strlen(text), "t.yaml", &p, &err);
        assert_int_equal(r, -EINVAL);
        assert_null(p);
        assert_string_equal(err.file, "t.yaml");
        r = policy_check_string(text, strlen(text), "t.yaml", &p, &errs, &n);
        assert_int_equal(r, -EINVAL);
        assert_null(p);
        assert_true(n > 0);
        /* the first error of check is the one load reports */
        assert_string_equal(errs[0].message, err.message);
        for (size_t i = 0; i < n; i++) {
                /* every message says how to fix it */
                assert_non_null(strstr(errs[i].message, " — "));
                if (errs[i].line == line && errs[i].column == column &&
                    strstr(errs[i].message, needle))
                        found = true;
        }
        if (!found)
                fail_msg("expected %u:%u '%s', got %u:%u '%s' (of %zu)", line, column, needle,
                         errs[0].line, errs[0].column, errs[0].message, n);
        free(errs);
}

static void test_parse_full(void **state)
{
        _cleanup_(policy_freep) Policy *p = load_ok(
                "version: 1\n"
                "secrets: [/etc/corosync/authkey, ~/.ssh/id_*]\n"
                "hosts:\n"
                "  pve1: {address: 10.140.3.10, environment: production, cluster: pve}\n"
                "  xenon:\n"
                "    address: 10.140.3.82\n"
                "    environment: production\n"
                "    connect: [ssh, -l, root, 10.140.3.82]\n"
                "  lab: {address: lab.example, environment: test}\n"
                "approvals: {production: 2, test: 0}\n"
                "approvers: {users: [alice, bob], groups: [sudo]}\n"
                "ttl: 1h30m\n"
                "profiles:\n"
                "  default: {net: none}\n"
                "  web: {net: host, ports: [80, 443], memory: 512M, pids: 100, env: [HTTP_PROXY],\n"
                "        ro: [/srv/data], rw: [/var/tmp/x], protect: [Makefile]}\n"
                "protect: [.git/hooks/**]\n"
                "rules:\n"
                "  - {match: [systemctl, status, \"**\"], action: allow, reason: read-only}\n"
                "  - {match: [systemctl, \"{start,stop}\", \"**\"], host: [pve1], action: "
                "approve, approvers: 3}\n"
                "  - {effect: reads-secret, action: deny}\n"
                "  - {effect: {writes: /etc/corosync/**}, action: approve, approvers: 2}\n"
                "  - {effect: {network: {host: xenon, port: 22}}, action: deny}\n"
                "  - {effect: {network: outside-inventory}, action: deny}\n"
                "  - {effect: {contacts: corosync}, action: approve}\n"
                "  - {effect: {deletes: /var/lib/**}, action: approve}\n"
                "  - {agent: \"claude*\", environment: test, profile: web, action: allow}\n"
                "default: {action: approve, approvers: 1}\n");
        const PolicyHost *h;
        const PolicyProfile *pr;

        assert_int_equal(strv_length(p->secrets), 2);
        assert_int_equal(p->n_hosts, 3);
        h = policy_find_host(p, "pve1");
        assert_non_null(h);
        assert_string_equal(h->address, "10.140.3.10");
        assert_string_equal(h->environment, "production");
        assert_string_equal(h->cluster, "pve");
        assert_null(h->connect);
        h = policy_find_host(p, "xenon");
        assert_int_equal(strv_length(h->connect), 4);
        assert_null(h->cluster);
        assert_null(policy_find_host(p, "nope"));
        assert_int_equal(policy_environment_approvals(p, "production"), 2);
        assert_int_equal(policy_environment_approvals(p, "test"), 0);
        assert_int_equal(policy_environment_approvals(p, "staging"), -1);
        assert_true(strv_contains(p->approver_users, "bob"));
        assert_true(strv_contains(p->approver_groups, "sudo"));
        assert_true(p->request_ttl_usec == 5400ULL * 1000000ULL);
        assert_int_equal(p->n_profiles, 2);
        pr = policy_find_profile(p, "web");
        assert_non_null(pr);
        assert_int_equal(pr->net, POLICY_NET_HOST);
        assert_int_equal(pr->n_ports, 2);
        assert_int_equal(pr->ports[1], 443);
        assert_true(pr->memory_max == 512ULL << 20);
        assert_true(pr->pids_max == 100);
        assert_string_equal(pr->env[0], "HTTP_PROXY");
        assert_string_equal(pr->ro[0], "/srv/data");
        assert_string_equal(pr->rw[0], "/var/tmp/x");
        assert_string_equal(pr->protect[0], "Makefile");
        assert_int_equal(policy_find_profile(p, "default")->net, POLICY_NET_NONE);
        assert_int_equal(strv_length(p->protect), 1);
        assert_int_equal(p->n_rules, 9);
        assert_int_equal(p->rules[0].n_match, 3);
        assert_true(p->rules[0].match[2].rest);
        assert_false(p->rules[0].match[1].rest);
        assert_int_equal(p->rules[0].line, 19);
        assert_int_equal(p->rules[0].column, 5);
        assert_int_equal(p->rules[0].index, 1);
        assert_string_equal(p->rules[0].reason, "read-only");
        assert_int_equal(p->rules[1].approvers, 3);
        assert_int_equal(p->rules[2].effect_kind, POLICY_EFFECT_READS_SECRET);
        assert_string_equal(p->rules[2].effect, "reads-secret");
        assert_int_equal(p->rules[3].effect_kind, POLICY_EFFECT_WRITES);
        assert_string_equal(p->rules[3].effect_arg, "/etc/corosync/**");
        assert_int_equal(p->rules[4].effect_kind, POLICY_EFFECT_NETWORK);
        assert_string_equal(p->rules[4].network_host, "xenon");
        assert_int_equal(p->rules[4].network_port, 22);
        assert_true(p->rules[5].network_outside_inventory);
        assert_int_equal(p->rules[6].effect_kind, POLICY_EFFECT_CONTACTS);
        assert_string_equal(p->rules[6].effect_arg, "corosync");
        assert_int_equal(p->rules[7].effect_kind, POLICY_EFFECT_DELETES);
        assert_string_equal(p->rules[8].agents[0], "claude*");
        assert_int_equal(p->default_action, POLICY_APPROVE);
        assert_int_equal(p->default_approvers, 1);
        assert_string_equal(p->source, "t.yaml");
        assert_int_equal(strlen(p->digest), 64);
}

static void test_approvers_reachable(void **state)
{
        /* groups can hold any number of people: no limit then */
        _cleanup_(policy_freep) Policy *p =
                load_ok("approvers: {users: [a], groups: [sudo]}\n"
                        "rules:\n  - {action: approve, approvers: 5}\n");
        _cleanup_(policy_freep) Policy *q =
                load_ok("approvers: {users: [a, b]}\n"
                        "rules:\n  - {action: approve, approvers: 2}\n");

        assert_int_equal(p->rules[0].approvers, 5);
        assert_int_equal(q->rules[0].approvers, 2);
}

static void test_parse_defaults(void **state)
{
        _cleanup_(policy_freep) Policy *p = load_ok("rules: []\n");

        assert_int_equal(p->default_action, POLICY_APPROVE);
        assert_true(p->request_ttl_usec == 15ULL * 60 * 1000000ULL);
        assert_non_null(policy_find_profile(p, "default"));
        assert_non_null(p->secrets);
        assert_int_equal(strv_length(p->secrets), 0);
        assert_true(strv_contains(p->protect, ".git/hooks/**"));
        assert_true(strv_contains(p->protect, ".bashrc"));
}

static void test_digest(void **state)
{
        _cleanup_(policy_freep) Policy *a = load_ok("default: deny\n");
        _cleanup_(policy_freep) Policy *b = load_ok("default: deny\n");
        _cleanup_(policy_freep) Policy *c = load_ok("default:  deny\n");

        assert_string_equal(a->digest, b->digest);
        assert_string_not_equal(a->digest, c->digest);
        /* sha256 of the source text */
        assert_string_equal(a->digest,
                            "f9b0bb885f6b55d65039dbd21e2051b883c623db853bc5e127bed691dc799e60");
}

static void test_errors(void **state)
{
        load_bad("foo: 1\n", 1, 1, "unknown key 'foo' in the policy");
        load_bad("secret: []\n", 1, 1, "did you mean 'secrets'");
        load_bad("secrets: /etc/shadow\n", 1, 10, "wrong type");
        load_bad("secrets:\n  - etc/shadow\n", 2, 5, "not an absolute path");
        load_bad("secrets:\nrules: []\n", 1, 9, "must be a list, not empty");
        load_bad("secrets:\n  - /etc/[abc\n", 2, 5, "bad glob");
        load_bad("secrets: [\"/var/*/**/key\"]\n", 1, 11, "wildcard before '**'");
        load_bad("secrets: [/a/../etc/shadow]\n", 1, 11, "'..'");
        load_bad("hosts:\n  pve1: {adress: 1.2.3.4}\n", 2, 10, "did you mean 'address'");
        load_bad("hosts:\n  pve1: {environment: x}\n", 2, 9, "has no address");
        load_bad("hosts:\n  pve1: {address: -oProxyCommand=x}\n", 2, 19, "bad address");
        load_bad("hosts:\n  a: {address: x}\n  a: {address: y}\n", 3, 3, "duplicate key 'a'");
        load_bad("hosts:\n  local: {address: x}\n", 2, 3, "reserved");
        load_bad("rules:\n  - {match: [ls], action: allow, host: pve9}\n", 2, 40,
                 "unknown host 'pve9'");
        load_bad("rules:\n  - {action: allow, environment: [prod]}\n", 2, 35,
                 "unknown environment 'prod'");
        load_bad("rules:\n  - {action: allow, profile: web}\n", 2, 30, "unknown profile 'web'");
        load_bad("rules:\n  - {match: [], action: deny}\n", 2, 13, "empty argv pattern");
        load_bad("rules:\n  - {match: [ls], action: alow}\n", 2, 27, "bad action 'alow'");
        load_bad("rules:\n  - {match: [ls]}\n", 2, 5, "has no action");
        load_bad("rules:\n  - {action: approve, approvers: 0}\n", 2, 34, "bad approver count");
        load_bad("rules:\n  - {action: approve, approvers: 17}\n", 2, 34, "bad approver count");
        load_bad("rules:\n  - {action: approve, approvers: two}\n", 2, 34, "bad approver count");
        load_bad("rules:\n  - {action: allow, approvers: 2}\n", 2, 32, "only meaningful");
        load_bad("rules:\n  - {action: deny, effect: {network: {port: 70000}}}\n", 2, 45,
                 "bad port");
        load_bad("rules:\n  - {action: deny, effect: writes}\n", 2, 28, "needs an argument");
        load_bad("rules:\n  - {action: deny, effect: eats-cake}\n", 2, 28, "unknown effect");
        load_bad("rules:\n  - {action: deny, effect: {writes: etc}}\n", 2, 37,
                 "absolute path glob");
        load_bad("rules:\n  - {action: deny, effect: {writes: /a, deletes: /b}}\n", 2, 28,
                 "exactly one");
        load_bad("rules:\n  - {action: deny, match: [\"{a,b\"]}\n", 2, 28, "bad glob");
        load_bad("rules:\n  - action: deny\n    action: allow\n", 3, 5, "duplicate key 'action'");
        load_bad("rules: {a: 1}\n", 1, 8, "wrong type: rules must be a list");
        load_bad("profiles:\n  p: {net: wifi}\n", 2, 12, "bad network mode");
        load_bad("profiles:\n  p: {ports: [0]}\n", 2, 15, "bad port");
        load_bad("profiles:\n  p: {memory: 12Q}\n", 2, 15, "bad size");
        load_bad("profiles:\n  p: {memory: 512k}\n", 2, 15, "bad size");
        load_bad("profiles:\n  p: {pids: -1}\n", 2, 13, "bad pids");
        load_bad("profiles:\n  p: {protect: [/etc]}\n", 2, 17, "relative to the workspace");
        load_bad("ttl: 15\n", 1, 6, "bad duration");
        load_bad("ttl: 8d\n", 1, 6, "bad duration");
        load_bad("ttl: 0s\n", 1, 6, "bad duration");
        load_bad("default: maybe\n", 1, 10, "bad action");
        load_bad("default: {action: deny, approvers: 2}\n", 1, 36, "only meaningful");
        load_bad("approvals: {production: x}\n", 1, 25, "bad approval count");
        load_bad("approvers: {users: [alice]}\nrules:\n  - {action: approve, approvers: 2}\n", 3,
                 34, "2 approvals can never be given: approvers lists only 1 user");
        load_bad("approvers: {users: [a, b]}\napprovals: {prod: 3}\n", 2, 19, "can never be given");
        load_bad("approvers: {users: [a]}\ndefault: {action: approve, approvers: 2}\n", 2, 39,
                 "can never be given");
        load_bad("version: 2\n", 1, 10, "unsupported policy version");
        load_bad("approvers: {users: [\"a b\"]}\n", 1, 21, "bad approver user");
}

static void test_duplicates(void **state)
{
        static const char text[] = "hosts:\n"
                                   "  b: {address: x}\n"
                                   "  a: {address: x}\n"
                                   "  b: {address: y}\n"
                                   "  c: {address: x}\n"
                                   "  b: {address: z}\n";
        PolicyError *errs = NULL;
        size_t n = 0;

        assert_int_equal(policy_check_string(text, strlen(text), "t", NULL, &errs, &n), -EINVAL);
        assert_int_equal(n, 2);
        assert_int_equal(errs[0].line, 4);
        assert_int_equal(errs[0].column, 3);
        assert_non_null(strstr(errs[0].message, "duplicate key 'b' in hosts (first at line 2)"));
        assert_int_equal(errs[1].line, 6);
        assert_non_null(strstr(errs[1].message, "(first at line 2)"));
        free(errs);
}

static void test_yaml_errors(void **state)
{
        load_bad("a: [\n", 2, 1, "YAML syntax error");
        load_bad("rules:\n  - {match: [a], action: allow}\n   foo: 1\n", 3, 4, "YAML syntax error");
        load_bad("", 1, 1, "the policy is empty");
        load_bad("- a\n", 1, 1, "must be a mapping");
        load_bad("x: &a [1]\ny: *a\n", 1, 4, "anchors");
        load_bad("default: !!str deny\n", 1, 10, "tags");
        load_bad("default: deny\n---\ndefault: allow\n", 2, 1, "second YAML document");
        load_bad("? [a]\n: b\n", 1, 3, "mapping key must be a plain name");
}

static void test_size_cap(void **state)
{
        size_t n = POLICY_MAX_FILE_SIZE + 1;
        _cleanup_free_ char *big = malloc(n);
        Policy *p = NULL;
        PolicyError err = {};

        assert_non_null(big);
        memset(big, '#', n);
        assert_int_equal(policy_load_string(big, n, "big", &p, &err), -EFBIG);
        assert_null(p);
        assert_non_null(strstr(err.message, "larger than"));
}

static void test_all_errors(void **state)
{
        static const char text[] = "foo: 1\n"
                                   "default: maybe\n"
                                   "secrets: [etc]\n";
        PolicyError *errs = NULL;
        size_t n = 0;
        Policy *p = NULL;

        assert_int_equal(policy_check_string(text, strlen(text), "t", &p, &errs, &n), -EINVAL);
        assert_null(p);
        assert_int_equal(n, 3);
        /* in file order */
        assert_int_equal(errs[0].line, 1);
        assert_int_equal(errs[1].line, 2);
        assert_int_equal(errs[2].line, 3);
        free(errs);
}

static void test_embedded_default(void **state)
{
        _cleanup_(policy_freep) Policy *p = NULL;
        static const char *const must[] = {
                "/etc/corosync/authkey",
                "/etc/pve/priv/**",
                "/etc/pve/local/*.key",
                "/etc/pve/nodes/*/*.key",
                "/var/lib/pve-cluster/config.db",
                "/etc/ssh/ssh_host_*_key",
                "/etc/shadow",
                "/etc/gshadow",
                "~/.ssh/id_*",
                "~/.ssh/*_key",
                "~/.aws",
                "~/.kube/config",
                "~/.docker/config.json",
                "~/.gnupg",
                "~/.netrc",
                "~/.pgpass",
                "/etc/ceph/*.keyring",
        };

        assert_int_equal(policy_load_default(&p), 0);
        assert_string_equal(p->source, "<default>");
        for (size_t i = 0; i < ELEMENTSOF(must); i++)
                if (!strv_contains(p->secrets, must[i]))
                        fail_msg("embedded default lacks secret %s", must[i]);
        assert_int_equal(p->default_action, POLICY_APPROVE);
        assert_non_null(strstr(policy_default_text(), "secrets:"));
}

static void test_secrets(void **state)
{
        _cleanup_(policy_freep) Policy *p = NULL;

        assert_int_equal(policy_load_default(&p), 0);
        assert_true(policy_path_is_secret(p, "/etc/corosync/authkey"));
        assert_true(policy_path_is_secret(p, "/etc//corosync/./authkey"));
        assert_true(policy_path_is_secret(p, "/etc/pve/../corosync/authkey"));
        assert_true(policy_path_is_secret(p, "/etc/pve/priv/authkey.key"));
        assert_true(policy_path_is_secret(p, "/etc/pve/priv"));
        assert_true(policy_path_is_secret(p, "/etc/pve/nodes/pve1/pve-ssl.key"));
        assert_true(policy_path_is_secret(p, "/etc/ssh/ssh_host_rsa_key"));
        assert_true(policy_path_is_secret(p, "/home/alice/.ssh/id_ed25519"));
        assert_true(policy_path_is_secret(p, "/root/.ssh/id_rsa"));
        assert_true(policy_path_is_secret(p, "/root/.aws/credentials")); /* beneath a secret */
        assert_true(policy_path_is_secret(p, "/home/bob/.gnupg/private-keys-v1.d/x.key"));
        assert_false(policy_path_is_secret(p, "/etc/corosync/corosync.conf"));
        assert_false(policy_path_is_secret(p, "/etc/ssh/ssh_host_rsa_key.pub"));
        assert_false(policy_path_is_secret(p, "/etc/pve"));
        assert_false(policy_path_is_secret(p, "/etc/passwd"));
        assert_false(policy_path_is_secret(p, "/root/.ssh/authorized_keys"));
        assert_false(policy_path_is_secret(p, "relative/.aws"));
        assert_false(policy_path_is_secret(p, "/"));
}

static void test_secret_globs(void **state)
{
        _cleanup_(policy_freep) Policy *p =
                load_ok("secrets: [/etc/shadow, ~/.aws, ~/.ssh/id_*]\n");
        _cleanup_strv_free_ char **g = NULL;

        assert_int_equal(policy_secret_globs(p, &g), 0);
        assert_true(strv_contains(g, "/etc/shadow"));
        assert_true(strv_contains(g, "/root/.aws"));
        assert_true(strv_contains(g, "/root/.ssh/id_*"));
        STRV_FOREACH (s, g) {
                assert_true((*s)[0] == '/');
                assert_null(strstr(*s, "//"));
                assert_null(strchr(*s, '~'));
        }
        /* no duplicates */
        for (size_t i = 0; g[i]; i++)
                for (size_t j = i + 1; g[j]; j++)
                        assert_string_not_equal(g[i], g[j]);
}

/* Threads listing the secrets at once (airlockd plans on several threads). */
typedef struct {
        const Policy *p;
        size_t n;
        int r;
} GlobsRun;

static void *globs_thread(void *arg)
{
        GlobsRun *run = arg;

        for (int i = 0; i < 200 && run->r == 0; i++) {
                char **g = NULL;

                run->r = policy_secret_globs(run->p, &g);
                if (run->r == 0 && strv_length(g) != run->n)
                        run->r = -EIO; /* a home was skipped or listed twice */
                strv_free(g);
        }
        return NULL;
}

static void test_secret_globs_from_threads(void **state)
{
        _cleanup_(policy_freep) Policy *p =
                load_ok("secrets: [/etc/shadow, ~/.aws, ~/.ssh/id_*]\n");
        _cleanup_strv_free_ char **g = NULL;
        GlobsRun runs[6];
        pthread_t t[6];

        assert_int_equal(policy_secret_globs(p, &g), 0);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                runs[i] = (GlobsRun){ .p = p, .n = strv_length(g) };
                assert_int_equal(pthread_create(&t[i], NULL, globs_thread, &runs[i]), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(runs[i].r, 0);
        }
}

static PolicyDecision eval(const Policy *p, const char *host, const char *agent, ...)
{
        char *argv[32];
        size_t n = 0;
        PolicyDecision d;
        va_list ap;
        const char *a;

        va_start(ap, agent);
        while ((a = va_arg(ap, const char *)) && n < 31)
                argv[n++] = (char *)a;
        va_end(ap);
        argv[n] = NULL;
        assert_int_equal(
                policy_evaluate(p, &(PolicyRequest){ .argv = argv, .host = host, .agent = agent },
                                &d),
                0);
        return d;
}

static void test_evaluate(void **state)
{
        _cleanup_(policy_freep) Policy *p = load_ok(
                "secrets: [/etc/corosync/authkey]\n"
                "hosts:\n"
                "  pve1: {address: 10.0.0.1, environment: production}\n"
                "  lab: {address: 10.0.0.2, environment: test}\n"
                "  misc: {address: 10.0.0.3}\n"
                "approvals: {production: 2, test: 0}\n"
                "rules:\n"
                "  - {effect: reads-secret, action: deny}\n"
                "  - {match: [systemctl, status, \"**\"], action: allow, reason: ro}\n"
                "  - {match: [cat, \"**\"], action: allow}\n"
                "  - {match: [rm, \"**\"], action: deny, reason: no rm}\n"
                "  - {match: [reboot], host: pve1, action: approve, approvers: 3}\n"
                "  - {match: [apt-get, install, \"**\"], agent: \"claude*\", action: approve}\n"
                "  - {match: [make, \"**\", test], action: allow}\n"
                "  - {match: [ping], host: local, action: allow}\n"
                "default: approve\n");
        PolicyDecision d;

        d = eval(p, NULL, NULL, "systemctl", "status", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        assert_non_null(d.rule);
        assert_int_equal(d.rule->index, 2);
        assert_non_null(strstr(d.reason, "rule 2 (t.yaml:9:5): allow — ro"));
        d = eval(p, NULL, NULL, "systemctl", "status", "corosync", "--no-pager", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        d = eval(p, NULL, NULL, "systemctl", "restart", "corosync", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        assert_int_equal(d.approvers, 1);
        assert_null(d.rule);
        assert_non_null(strstr(d.reason, "the default is approve"));
        /* approve count from the environment */
        d = eval(p, "pve1", NULL, "systemctl", "restart", "corosync", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        assert_int_equal(d.approvers, 2);
        d = eval(p, "lab", NULL, "systemctl", "restart", "corosync", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        assert_non_null(strstr(d.reason, "needs 0 approvals"));
        d = eval(p, "misc", NULL, "systemctl", "restart", "corosync", NULL);
        assert_int_equal(d.approvers, 1);
        /* explicit approvers win */
        d = eval(p, "pve1", NULL, "reboot", NULL);
        assert_int_equal(d.approvers, 3);
        d = eval(p, "lab", NULL, "reboot", NULL);
        assert_null(d.rule);
        /* unknown host: denied */
        d = eval(p, "nowhere", NULL, "systemctl", "status", NULL);
        assert_int_equal(d.action, POLICY_DENY);
        assert_non_null(strstr(d.reason, "not in the policy's inventory"));
        /* deny rule */
        d = eval(p, NULL, NULL, "rm", "-rf", "/", NULL);
        assert_int_equal(d.action, POLICY_DENY);
        assert_non_null(strstr(d.reason, "no rm"));
        /* allow never passes an argument naming a secret */
        d = eval(p, NULL, NULL, "cat", "/etc/hosts", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        d = eval(p, NULL, NULL, "cat", "/etc/corosync/authkey", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "/etc/corosync/../corosync//authkey", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "--file=/etc/corosync/authkey", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        /* nor a raw device, kernel memory or another process's files */
        d = eval(p, NULL, NULL, "cat", "/dev/sda", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        assert_non_null(strstr(d.reason, "would allow, but the argument '/dev/sda' names a secret "
                                         "or a raw device"));
        d = eval(p, NULL, NULL, "cat", "//dev/./mapper/../sda1", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "/proc/kcore", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "/proc/1/environ", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "/proc/1/root/etc/corosync/authkey", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "/proc/1/task/1/mem", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "-f/etc/corosync/authkey", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "/dev/null", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        d = eval(p, NULL, NULL, "cat", "/dev", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        d = eval(p, NULL, NULL, "cat", "/proc/1/status", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        /* too many arguments to check: no allow */
        {
                size_t n = 5000;
                _cleanup_free_ char **many = calloc(n + 1, sizeof(char *));

                assert_non_null(many);
                many[0] = (char *)"cat";
                for (size_t i = 1; i < n; i++)
                        many[i] = (char *)"/etc/hosts";
                assert_int_equal(policy_evaluate(p, &(PolicyRequest){ .argv = many }, &d), 0);
                assert_int_equal(d.action, POLICY_APPROVE);
                assert_non_null(strstr(d.reason, "more than 4096 arguments"));
                many[4096] = NULL;
                assert_int_equal(policy_evaluate(p, &(PolicyRequest){ .argv = many }, &d), 0);
                assert_int_equal(d.action, POLICY_ALLOW);
        }
        /* relative arguments are read against cwd ("/" when unknown) */
        d = eval(p, NULL, NULL, "cat", "etc/corosync/authkey", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        d = eval(p, NULL, NULL, "cat", "../../etc/corosync/authkey", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        {
                char *argv[] = { (char *)"cat", (char *)"authkey", NULL };
                PolicyRequest req = { .argv = argv, .cwd = "/etc/corosync" };

                assert_int_equal(policy_evaluate(p, &req, &d), 0);
                assert_int_equal(d.action, POLICY_APPROVE);
                req.cwd = "/tmp";
                assert_int_equal(policy_evaluate(p, &req, &d), 0);
                assert_int_equal(d.action, POLICY_ALLOW);
        }
        /* agent conditions */
        d = eval(p, NULL, "claude-code", "apt-get", "install", "vim", NULL);
        assert_non_null(d.rule);
        assert_int_equal(d.rule->index, 6);
        d = eval(p, NULL, NULL, "apt-get", "install", "vim", NULL);
        assert_null(d.rule);
        d = eval(p, NULL, "gemini", "apt-get", "install", "vim", NULL);
        assert_null(d.rule);
        /* ** in the middle */
        d = eval(p, NULL, NULL, "make", "test", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        d = eval(p, NULL, NULL, "make", "-j4", "V=1", "test", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        d = eval(p, NULL, NULL, "make", "test", "install", NULL);
        assert_int_equal(d.action, POLICY_APPROVE);
        /* local host condition */
        d = eval(p, NULL, NULL, "ping", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
        d = eval(p, "lab", NULL, "ping", NULL);
        assert_null(d.rule);
        /* whole-argument match: no prefix match */
        d = eval(p, NULL, NULL, "systemctl-evil", "status", NULL);
        assert_null(d.rule);
        d = eval(p, NULL, NULL, "/tmp/systemctl", "status", NULL);
        assert_null(d.rule);
}

static void test_evaluate_edge(void **state)
{
        _cleanup_(policy_freep) Policy *p = load_ok("default: deny\n");
        _cleanup_(policy_freep) Policy *a = load_ok("default: allow\n");
        PolicyDecision d;
        char *empty[] = { NULL };

        assert_int_equal(policy_evaluate(p, &(PolicyRequest){ .argv = empty }, &d), -EINVAL);
        assert_int_equal(d.action, POLICY_DENY);
        assert_int_equal(policy_evaluate(p, &(PolicyRequest){}, &d), -EINVAL);
        assert_int_equal(d.action, POLICY_DENY);
        d = eval(p, NULL, NULL, "true", NULL);
        assert_int_equal(d.action, POLICY_DENY);
        assert_non_null(strstr(d.reason, "the default is deny"));
        d = eval(a, NULL, NULL, "true", NULL);
        assert_int_equal(d.action, POLICY_ALLOW);
}

static void test_evaluate_effects(void **state)
{
        _cleanup_(policy_freep) Policy *p =
                load_ok("secrets: [/etc/corosync/authkey]\n"
                        "hosts:\n"
                        "  pve1: {address: 10.0.0.1, environment: production}\n"
                        "  lab: {address: 10.0.0.2, environment: test}\n"
                        "rules:\n"
                        "  - {effect: reads-secret, action: deny, reason: secret}\n"
                        "  - {effect: writes-secret-content, action: deny}\n"
                        "  - {effect: {network: outside-inventory}, action: deny}\n"
                        "  - {effect: {network: {host: lab, port: 22}}, action: allow}\n"
                        "  - {effect: {network: {environment: production}}, action: approve, "
                        "approvers: 3}\n"
                        "  - {effect: {writes: /etc/corosync/**}, action: approve, approvers: 2}\n"
                        "  - {effect: {deletes: /var/**}, match: [rm, \"**\"], action: deny}\n"
                        "  - {effect: {contacts: \"corosync*\"}, action: approve, approvers: 4}\n"
                        "  - {match: [ls, \"**\"], action: allow}\n"
                        "default: approve\n");
        char *argv[] = { (char *)"x", NULL }, *rm[] = { (char *)"rm", (char *)"-r", NULL };
        char *secret[] = { (char *)"/etc/corosync/authkey", NULL };
        char *conf[] = { (char *)"/etc/corosync/corosync.conf", NULL };
        char *other[] = { (char *)"/etc/hosts", NULL };
        char *var[] = { (char *)"/var/lib/x", NULL };
        char *units[] = { (char *)"nginx.service", (char *)"corosync.service", NULL };
        PolicyConnection outside = { .address = "1.2.3.4", .port = 443 };
        PolicyConnection lab22 = { .host = "lab", .address = "10.0.0.2", .port = 22 };
        PolicyConnection lab80 = { .host = "lab", .address = "10.0.0.2", .port = 80 };
        PolicyConnection pve = { .host = "pve1", .address = "10.0.0.1", .port = 8006 };
        PolicyEffects e = {};
        PolicyRequest req = { .argv = argv, .effects = &e };
        PolicyDecision d;

        /* a plan with no effects: no effect rule matches */
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_null(d.rule);
        /* without a plan, effect rules are skipped */
        req.effects = NULL;
        e.secrets_read = secret;
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_null(d.rule);
        req.effects = &e;
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.action, POLICY_DENY);
        assert_int_equal(d.rule->index, 1);
        assert_non_null(
                strstr(d.reason, "deny — secret (the plan reads secret /etc/corosync/authkey)"));
        e = (PolicyEffects){ .secret_content_written = other };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.rule->index, 2);
        assert_non_null(strstr(d.reason, "writes a secret's content to /etc/hosts"));
        e = (PolicyEffects){ .connections = &outside, .n_connections = 1 };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.rule->index, 3);
        assert_non_null(strstr(d.reason, "connects to 1.2.3.4:443 (outside the inventory)"));
        e = (PolicyEffects){ .connections = &lab22, .n_connections = 1 };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.action, POLICY_ALLOW);
        assert_int_equal(d.rule->index, 4);
        e = (PolicyEffects){ .connections = &lab80, .n_connections = 1 };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_null(d.rule);
        e = (PolicyEffects){ .connections = &pve, .n_connections = 1 };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.rule->index, 5);
        assert_int_equal(d.approvers, 3);
        e = (PolicyEffects){ .writes = conf };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.rule->index, 6);
        assert_int_equal(d.approvers, 2);
        e = (PolicyEffects){ .writes = other };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_null(d.rule);
        /* effect and argv must both hold */
        e = (PolicyEffects){ .deletes = var };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_null(d.rule);
        req.argv = rm;
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.rule->index, 7);
        req.argv = argv;
        e = (PolicyEffects){ .contacts = units };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.rule->index, 8);
        assert_non_null(strstr(d.reason, "contacts corosync.service"));
        /* the first rule in order wins, whatever the effect */
        e = (PolicyEffects){ .writes = conf, .secrets_read = secret };
        assert_int_equal(policy_evaluate(p, &req, &d), 0);
        assert_int_equal(d.rule->index, 1);
        assert_non_null(policy_find_host_by_address(p, "10.0.0.2"));
        assert_null(policy_find_host_by_address(p, "10.0.0.9"));
}

static void test_rule_matches_why(void **state)
{
        _cleanup_(policy_freep) Policy *p = load_ok("hosts: {h: {address: x, environment: e}}\n"
                                                    "rules:\n"
                                                    "  - {match: [a], action: allow}\n"
                                                    "  - {host: h, action: allow}\n"
                                                    "  - {environment: e, action: allow}\n"
                                                    "  - {agent: x, action: allow}\n"
                                                    "  - {effect: reads-secret, action: deny}\n");
        char *argv[] = { (char *)"b", NULL };
        PolicyRequest req = { .argv = argv };
        char why[256];

        assert_int_equal(policy_rule_matches(p, &p->rules[0], &req, why, sizeof(why)), 0);
        assert_non_null(strstr(why, "argv pattern"));
        assert_int_equal(policy_rule_matches(p, &p->rules[1], &req, why, sizeof(why)), 0);
        assert_non_null(strstr(why, "host local"));
        assert_int_equal(policy_rule_matches(p, &p->rules[2], &req, why, sizeof(why)), 0);
        assert_non_null(strstr(why, "environment"));
        assert_int_equal(policy_rule_matches(p, &p->rules[3], &req, why, sizeof(why)), 0);
        assert_non_null(strstr(why, "agent"));
        assert_int_equal(policy_rule_matches(p, &p->rules[4], &req, why, sizeof(why)), 0);
        assert_non_null(strstr(why, "needs a plan"));
        req.host = "h";
        assert_int_equal(policy_rule_matches(p, &p->rules[1], &req, why, sizeof(why)), 1);
        assert_int_equal(policy_rule_matches(p, &p->rules[2], &req, why, sizeof(why)), 1);
}

static void test_error_format(void **state)
{
        PolicyError e = { .file = "f.yaml", .line = 3, .column = 7, .message = "bad — fix" };
        char buf[128];

        policy_error_format(&e, buf, sizeof(buf));
        assert_string_equal(buf, "f.yaml:3:7: bad — fix");
        e.line = 0;
        policy_error_format(&e, buf, sizeof(buf));
        assert_string_equal(buf, "f.yaml: bad — fix");
}

static void test_load_file(void **state)
{
        char path[] = "/tmp/airlock-test-policy-XXXXXX";
        int fd = mkstemp(path);
        Policy *p = NULL;
        PolicyError err = {};

        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, "default: deny\n", 14), 0);
        close(fd);
        assert_int_equal(policy_load_file(path, &p, &err), 0);
        assert_string_equal(p->source, path);
        assert_int_equal(p->default_action, POLICY_DENY);
        p = policy_free(p);
        assert_int_equal(policy_load_standard(path, &p, &err), 0);
        p = policy_free(p);
        unlink(path);
        assert_int_equal(policy_load_file(path, &p, &err), -ENOENT);
        assert_string_equal(err.file, path);
        /* a missing non-standard path is an error, never a silent fallback */
        assert_int_equal(policy_load_standard(path, &p, &err), -ENOENT);
        assert_null(p);
        assert_int_equal(policy_load_file("/", &p, &err), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_full),
                cmocka_unit_test(test_parse_defaults),
                cmocka_unit_test(test_approvers_reachable),
                cmocka_unit_test(test_digest),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_yaml_errors),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_all_errors),
                cmocka_unit_test(test_embedded_default),
                cmocka_unit_test(test_secrets),
                cmocka_unit_test(test_secret_globs),
                cmocka_unit_test(test_secret_globs_from_threads),
                cmocka_unit_test(test_evaluate),
                cmocka_unit_test(test_evaluate_edge),
                cmocka_unit_test(test_evaluate_effects),
                cmocka_unit_test(test_rule_matches_why),
                cmocka_unit_test(test_error_format),
                cmocka_unit_test(test_load_file),
        };
        int r;

        r = cmocka_run_group_tests_name("policy", tests, NULL, NULL);
        r += _cmocka_run_group_tests("glob", glob_tests, n_glob_tests, NULL, NULL);
        return r;
}
