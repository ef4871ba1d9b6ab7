/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Evaluation: a request (argv, target host, agent) against the rules, first
 * match wins, else the default. Pure: no I/O, no allocation that can change
 * the answer (an allocation failure only ever makes it stricter).
 */
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>

#include "policy/policy-internal.h"

/* Matches argv[ai...] against pat[pi...]; "**" takes zero or more arguments. */
static int argv_match(const PolicyArgPattern *pat, size_t n, size_t pi, char *const *argv,
                      size_t ai, unsigned *budget)
{
        for (;;) {
                if (*budget == 0)
                        return -1;
                (*budget)--;
                if (pi == n)
                        return argv[ai] == NULL;
                if (pat[pi].rest) {
                        if (pi + 1 == n)
                                return 1;
                        for (size_t k = ai;; k++) {
                                int r = argv_match(pat, n, pi + 1, argv, k, budget);
                                if (r != 0)
                                        return r;
                                if (!argv[k])
                                        return 0;
                        }
                }
                if (!argv[ai])
                        return 0;
                int r = policy_glob_match_full(pat[pi].pattern, argv[ai], false);
                if (r <= 0)
                        return r;
                pi++;
                ai++;
        }
}

static bool list_has(char *const *l, const char *s)
{
        return s && strv_contains(l, s);
}

/*
 * Collapses "//", "." and ".." in an absolute path, in place. ".." at the
 * root stays at the root, as the kernel does.
 */
static void path_normalize(char *path)
{
        char *w = path;
        const char *r = path;

        while (*r) {
                while (*r == '/')
                        r++;
                if (!*r)
                        break;
                const char *e = strchrnul(r, '/');
                size_t n = (size_t)(e - r);

                if (n == 1 && r[0] == '.') {
                        /* skip */
                } else if (n == 2 && r[0] == '.' && r[1] == '.') {
                        while (w > path && *--w != '/')
                                ;
                } else {
                        *w++ = '/';
                        memmove(w, r, n);
                        w += n;
                }
                r = e;
        }
        if (w == path)
                *w++ = '/';
        *w = '\0';
}

/* 1 = secret (or too complex to tell), 0 = not. path must be absolute and normalized. */
static int path_matches_secret(const char *secret, const char *path)
{
        if (strneq(secret, "~/", 2)) {
                /* X beneath any directory: try every '/' of path as the home's end. */
                for (const char *q = path; (q = strchr(q, '/')); q++) {
                        int r = policy_glob_match_full(secret + 2, q + 1, true);
                        if (r != 0)
                                return 1;
                }
                return 0;
        }
        return policy_glob_match_full(secret, path, true) != 0;
}

bool policy_path_is_secret(const Policy *p, const char *path)
{
        _cleanup_free_ char *copy = NULL;
        size_t n;

        if (!p || isempty(path) || path[0] != '/')
                return false;
        copy = strdup(path);
        if (!copy)
                return true; /* fail closed */
        path_normalize(copy);
        /* The path itself, then each ancestor: a secret directory covers what is beneath. */
        for (n = strlen(copy);;) {
                STRV_FOREACH (s, p->secrets)
                        if (path_matches_secret(*s, copy))
                                return true;
                while (n > 1 && copy[n - 1] != '/')
                        n--;
                if (n <= 1)
                        break;
                copy[--n] = '\0';
        }
        return false;
}

/*
 * getpwent() walks one process-wide cursor: two threads listing at once
 * (airlockd plans requests on several connection threads) would each see
 * part of the database, and a home left out is a secret left unwatched.
 */
static pthread_mutex_t passwd_walk_lock = PTHREAD_MUTEX_INITIALIZER;

/* Every home directory of the passwd database, and /root. */
static int list_homes(char ***homes)
{
        struct passwd *pw;
        int r = 0;

        if (strv_extend(homes, "/root") < 0)
                return -ENOMEM;
        pthread_mutex_lock(&passwd_walk_lock);
        setpwent();
        while (r == 0 && (pw = getpwent())) {
                _cleanup_free_ char *h = NULL;

                if (isempty(pw->pw_dir) || pw->pw_dir[0] != '/')
                        continue;
                h = strdup(pw->pw_dir);
                if (!h) {
                        r = -ENOMEM;
                        break;
                }
                path_normalize(h);
                if (!strv_contains(*homes, h) && strv_consume(homes, TAKE_PTR(h)) < 0)
                        r = -ENOMEM;
        }
        endpwent();
        pthread_mutex_unlock(&passwd_walk_lock);
        return r;
}

int policy_secret_globs(const Policy *p, char ***ret)
{
        _cleanup_strv_free_ char **homes = NULL, **out = NULL;
        int r;

        out = calloc(1, sizeof(char *));
        if (!out)
                return -ENOMEM;
        r = list_homes(&homes);
        if (r < 0)
                return r;

        STRV_FOREACH (s, p->secrets) {
                if (!strneq(*s, "~/", 2)) {
                        if (!strv_contains(out, *s) && strv_extend(&out, *s) < 0)
                                return -ENOMEM;
                        continue;
                }
                STRV_FOREACH (h, homes) {
                        char *g;

                        if (asprintf(&g, "%s/%s", streq(*h, "/") ? "" : *h, *s + 2) < 0)
                                return -ENOMEM;
                        if (strv_contains(out, g)) {
                                free(g);
                                continue;
                        }
                        if (strv_consume(&out, g) < 0)
                                return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(out);
        return 0;
}

#define SECRET_ARG_PREFIX       "it allows, but "
#define POLICY_MAX_CHECKED_ARGS 4096
static const char TOO_MANY_ARGS[] = "";

/*
 * Paths an allow rule never passes whatever the policy's secrets say: raw
 * devices and kernel memory hold every file's bytes (a disk holds the
 * authkey), a process's environment and memory hold its credentials, and
 * /proc/PID/root, cwd and fd lead into other mount namespaces and open
 * files under names no secret glob covers.
 */
static const char *const raw_paths[] = {
        "/dev/?**", /* not /dev itself: listing it is harmless */
        "/proc/kcore",
        "/proc/kmem",
        "/proc/*/{environ,mem,root,cwd,fd,map_files}/**",
        "/proc/*/task/*/{environ,mem,root,cwd,fd,map_files}/**",
        "/sys/firmware/**",
        "/sys/kernel/debug/**",
        "/sys/kernel/security/**",
        NULL,
};

/* Harmless device names that commands commonly take as arguments. */
static const char *const harmless_devices[] = {
        "/dev/null",   "/dev/zero",   "/dev/urandom", "/dev/random", "/dev/stdin",
        "/dev/stdout", "/dev/stderr", "/dev/tty",     NULL,
};

/* 1 if the normalized path is a raw path (or too complex to tell), else 0. */
static int path_is_raw(const char *path)
{
        if (strv_contains((char **)harmless_devices, path))
                return 0;
        for (size_t i = 0; raw_paths[i]; i++)
                if (policy_glob_match_full(raw_paths[i], path, true) != 0)
                        return 1;
        return 0;
}

/*
 * Whether one argument, read as a path, is a secret or a raw path. Absolute
 * paths and "~/" are taken as they are; anything else that could be a path
 * (not an option) is taken relative to cwd. "." and ".." are resolved.
 */
static bool arg_is_sensitive(const Policy *p, const char *arg, const char *cwd)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if (isempty(arg) || arg[0] == '-')
                return false;
        if (arg[0] == '/')
                r = asprintf(&path, "%s", arg);
        else if (strneq(arg, "~/", 2))
                r = asprintf(&path, "/root%s", arg + 1);
        else
                r = asprintf(&path, "%s/%s", cwd, arg);
        if (r < 0)
                return true; /* fail closed */
        path_normalize(path);
        return policy_path_is_secret(p, path) || path_is_raw(path);
}

/*
 * An allow rule never lets an argument that names a secret or a raw path
 * (see raw_paths) through: such a request falls to the next rule (usually
 * the default: a human decides). This catches `cat /etc/shadow`,
 * `cat ../etc/shadow` from /, `head -c 1M /dev/sda` and `--file=/etc/shadow`
 * against `allow: [cat, "**"]`. It cannot see through symbolic links, which
 * is why the plan (issue 6) and the broker's own view of the files remain
 * the real check. Returns the offending argument, or NULL.
 */
static const char *argv_names_secret(const Policy *p, char *const *argv, const char *cwd)
{
        if (isempty(cwd) || cwd[0] != '/')
                cwd = "/";
        /* Checking costs time per argument; an agent must not make the broker spin. */
        if (strv_length(argv) > POLICY_MAX_CHECKED_ARGS)
                return TOO_MANY_ARGS;
        for (size_t i = 1; argv[0] && argv[i]; i++) {
                const char *a = argv[i], *eq = strchr(a, '=');

                if (arg_is_sensitive(p, a, cwd) || (eq && arg_is_sensitive(p, eq + 1, cwd)))
                        return a;
                /* "-f/etc/shadow": a short option glued to its value */
                if (a[0] == '-' && a[1] && a[1] != '-' && a[2] && arg_is_sensitive(p, a + 2, cwd))
                        return a;
        }
        return NULL;
}

/* The first path of l matching glob (pathname mode): 1, 0, or -1 (too complex). */
static int first_path_match(const char *glob, char *const *l, const char **ret)
{
        STRV_FOREACH (s, l) {
                int r = policy_glob_match_full(glob, *s, true);
                if (r != 0) {
                        *ret = *s;
                        return r;
                }
        }
        return 0;
}

static bool connection_matches(const Policy *p, const PolicyRule *rule, const PolicyConnection *c)
{
        const PolicyHost *h = c->host ? policy_find_host(p, c->host) : NULL;

        if (rule->network_outside_inventory)
                return !h;
        if (rule->network_host && (!h || !streq(h->name, rule->network_host)))
                return false;
        if (rule->network_environment &&
            (!h || !h->environment || !streq(h->environment, rule->network_environment)))
                return false;
        if (rule->network_port && c->port != rule->network_port)
                return false;
        return true;
}

/*
 * Whether the plan's effects hold the rule's effect condition. On a match,
 * why describes the effect found ("reads secret /etc/corosync/authkey").
 */
static int effect_matches(const Policy *p, const PolicyRule *rule, const PolicyEffects *e,
                          char *why, size_t why_size)
{
        const char *path = NULL;
        int r = 0;

        switch (rule->effect_kind) {
        case POLICY_EFFECT_NONE:
                return 1;
        case POLICY_EFFECT_READS_SECRET:
                if (e->secrets_read && e->secrets_read[0]) {
                        snprintf(why, why_size, "reads secret %.200s", e->secrets_read[0]);
                        return 1;
                }
                snprintf(why, why_size, "the plan reads no secret");
                return 0;
        case POLICY_EFFECT_WRITES_SECRET_CONTENT:
                if (e->secret_content_written && e->secret_content_written[0]) {
                        snprintf(why, why_size, "writes a secret's content to %.200s",
                                 e->secret_content_written[0]);
                        return 1;
                }
                snprintf(why, why_size, "the plan writes no secret's content");
                return 0;
        case POLICY_EFFECT_WRITES:
        case POLICY_EFFECT_DELETES: {
                bool writes = rule->effect_kind == POLICY_EFFECT_WRITES;

                r = first_path_match(rule->effect_arg, writes ? e->writes : e->deletes, &path);
                if (r > 0)
                        snprintf(why, why_size, "%s %.200s", writes ? "writes" : "deletes", path);
                else if (r == 0)
                        snprintf(why, why_size, "the plan %s nothing matching %.200s",
                                 writes ? "writes" : "deletes", rule->effect_arg);
                else
                        snprintf(why, why_size, "its path pattern is too complex to evaluate");
                return r;
        }
        case POLICY_EFFECT_NETWORK:
                for (size_t i = 0; i < e->n_connections; i++) {
                        const PolicyConnection *c = &e->connections[i];

                        if (!connection_matches(p, rule, c))
                                continue;
                        snprintf(why, why_size, "connects to %.100s%s%.100s:%u%s",
                                 c->host ?: (c->address ?: "?"), c->host && c->address ? " " : "",
                                 c->host && c->address ? c->address : "", c->port,
                                 c->host ? "" : " (outside the inventory)");
                        return 1;
                }
                snprintf(why, why_size, "the plan makes no such connection");
                return 0;
        case POLICY_EFFECT_CONTACTS:
                STRV_FOREACH (d, e->contacts) {
                        r = policy_glob_match_full(rule->effect_arg, *d, false);
                        if (r > 0) {
                                snprintf(why, why_size, "contacts %.200s", *d);
                                return 1;
                        }
                        if (r < 0) {
                                snprintf(why, why_size,
                                         "its daemon pattern is too complex to evaluate");
                                return -1;
                        }
                }
                snprintf(why, why_size, "the plan contacts no daemon matching %.200s",
                         rule->effect_arg);
                return 0;
        }
        return 0;
}

/* policy_rule_matches() with the target host looked up once by the caller. */
static int rule_matches(const Policy *p, const PolicyRule *rule, const PolicyRequest *req,
                        const PolicyHost *host, char *why, size_t why_size)
{
        const char *env = host ? host->environment : NULL;
        char dummy[1];

        if (!why) {
                why = dummy;
                why_size = sizeof(dummy);
        }
        why[0] = '\0';
        if (rule->effect_kind != POLICY_EFFECT_NONE && !req->effects) {
                snprintf(why, why_size, "has an effect condition (%s), which needs a plan",
                         policy_effect_kind_to_string(rule->effect_kind));
                return 0;
        }
        if (rule->match) {
                unsigned budget = 100000;
                int r = argv_match(rule->match, rule->n_match, 0, req->argv, 0, &budget);

                if (r < 0) {
                        snprintf(why, why_size, "its argv pattern is too complex to evaluate");
                        return -1;
                }
                if (r == 0) {
                        snprintf(why, why_size, "the command does not match its argv pattern");
                        return 0;
                }
        }
        if (rule->hosts) {
                bool ok = req->host ? list_has(rule->hosts, req->host)
                                    : list_has(rule->hosts, "local");
                if (!ok) {
                        snprintf(why, why_size, "the target host %s is not one of its hosts",
                                 req->host ?: "local");
                        return 0;
                }
        }
        if (rule->environments && !list_has(rule->environments, env)) {
                snprintf(why, why_size,
                         "the target's environment %s is not one of its environments",
                         env ?: "(none)");
                return 0;
        }
        if (rule->agents) {
                bool ok = false;

                if (req->agent)
                        STRV_FOREACH (g, rule->agents) {
                                int r = policy_glob_match_full(*g, req->agent, false);
                                if (r < 0) {
                                        snprintf(why, why_size,
                                                 "its agent pattern is too complex to evaluate");
                                        return -1;
                                }
                                if (r > 0)
                                        ok = true;
                        }
                if (!ok) {
                        snprintf(why, why_size, "the agent %s is not one of its agents",
                                 req->agent ?: "(none: a human)");
                        return 0;
                }
        }
        if (rule->profiles && !list_has(rule->profiles, req->profile)) {
                snprintf(why, why_size, "the sandbox profile %s is not one of its profiles",
                         req->profile ?: "(none)");
                return 0;
        }
        if (rule->action == POLICY_ALLOW) {
                const char *a = argv_names_secret(p, req->argv, req->cwd);

                if (a == TOO_MANY_ARGS) {
                        snprintf(why, why_size,
                                 SECRET_ARG_PREFIX "the command has more than %d arguments, too "
                                                   "many to check for secrets",
                                 POLICY_MAX_CHECKED_ARGS);
                        return 0;
                }
                if (a) {
                        snprintf(why, why_size,
                                 SECRET_ARG_PREFIX "the argument '%.200s' names a secret or a "
                                                   "raw device, kernel or process file",
                                 a);
                        return 0;
                }
        }
        if (rule->effect_kind != POLICY_EFFECT_NONE)
                return effect_matches(p, rule, req->effects, why, why_size);
        return 1;
}

int policy_rule_matches(const Policy *p, const PolicyRule *rule, const PolicyRequest *req,
                        char *why, size_t why_size)
{
        return rule_matches(p, rule, req, req->host ? policy_find_host(p, req->host) : NULL, why,
                            why_size);
}

/* Fills the decision for action with explicit (0 = from the environment) approvers. */
static void decide(const Policy *p, const PolicyRequest *req, PolicyAction action,
                   unsigned explicit_approvers, PolicyDecision *ret, const char *who)
{
        const PolicyHost *host = req->host ? policy_find_host(p, req->host) : NULL;
        const char *env = host ? host->environment : NULL;
        int n;

        ret->action = action;
        if (action != POLICY_APPROVE) {
                snprintf(ret->reason, sizeof(ret->reason), "%.400s", who);
                return;
        }
        if (explicit_approvers > 0) {
                ret->approvers = explicit_approvers;
                snprintf(ret->reason, sizeof(ret->reason), "%.400s; %u approval%s needed", who,
                         explicit_approvers, explicit_approvers == 1 ? "" : "s");
                return;
        }
        n = policy_environment_approvals(p, env);
        if (n < 0) {
                ret->approvers = 1;
                snprintf(ret->reason, sizeof(ret->reason), "%.400s; 1 approval needed", who);
        } else if (n == 0) {
                ret->action = POLICY_ALLOW;
                ret->approvers = 0;
                snprintf(ret->reason, sizeof(ret->reason),
                         "%.400s; allowed because environment %.60s needs 0 approvals", who, env);
        } else {
                ret->approvers = (unsigned)n;
                snprintf(ret->reason, sizeof(ret->reason),
                         "%.400s; %d approval%s needed (environment %.60s)", who, n,
                         n == 1 ? "" : "s", env);
        }
}

int policy_evaluate(const Policy *p, const PolicyRequest *req, PolicyDecision *ret)
{
        const PolicyRule *blocked = NULL; /* the first allow rule a secret argument passed by */
        const PolicyHost *host;
        char who[1100], why[300], note[300] = "";

        *ret = (PolicyDecision){ .action = POLICY_DENY };
        if (!p || !req || !req->argv || !req->argv[0]) {
                snprintf(ret->reason, sizeof(ret->reason), "denied: the request has no command");
                return -EINVAL;
        }
        host = req->host ? policy_find_host(p, req->host) : NULL;
        if (req->host && !host) {
                snprintf(ret->reason, sizeof(ret->reason),
                         "denied: host '%.100s' is not in the policy's inventory (hosts:)",
                         req->host);
                return 0;
        }

        for (size_t i = 0; i < p->n_rules; i++) {
                const PolicyRule *rule = &p->rules[i];
                int r = rule_matches(p, rule, req, host, why, sizeof(why));

                if (r < 0) {
                        ret->rule = rule;
                        snprintf(ret->reason, sizeof(ret->reason),
                                 "denied: rule %zu (%.100s:%u:%u) is too complex to evaluate "
                                 "against this request",
                                 rule->index, p->source, rule->line, rule->column);
                        return 0;
                }
                if (r == 0) {
                        if (!blocked && rule->action == POLICY_ALLOW &&
                            strneq(why, SECRET_ARG_PREFIX, strlen(SECRET_ARG_PREFIX))) {
                                blocked = rule;
                                snprintf(note, sizeof(note), " (rule %zu would allow, but %.150s)",
                                         rule->index, why + strlen(SECRET_ARG_PREFIX));
                        }
                        continue;
                }
                ret->rule = rule;
                snprintf(who, sizeof(who), "rule %zu (%.100s:%u:%u): %s%s%.200s%s%.200s%s%s",
                         rule->index, p->source, rule->line, rule->column,
                         policy_action_to_string(rule->action), rule->reason ? " — " : "",
                         rule->reason ?: "", rule->effect_kind ? " (the plan " : "",
                         rule->effect_kind ? why : "", rule->effect_kind ? ")" : "", note);
                decide(p, req, rule->action, rule->approvers, ret, who);
                return 0;
        }
        snprintf(who, sizeof(who), "no rule matched%s; the default is %s", note,
                 policy_action_to_string(p->default_action));
        decide(p, req, p->default_action, p->default_approvers, ret, who);
        return 0;
}
