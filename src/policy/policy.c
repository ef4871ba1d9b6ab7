/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Loading a policy: YAML tree -> strict validation -> immutable model.
 *
 * Every value is checked against what it is for, and every mistake is
 * reported with the line and column of the key or value that is wrong, plus
 * how to fix it. Validation goes on after an error, so `airlock policy check`
 * can show all of them at once; but a policy with any error is never
 * returned.
 */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/hash.h"
#include "config.h"
#include "policy/policy-internal.h"

extern const char policy_default_yaml[];
extern const size_t policy_default_yaml_len;

/* Workspace files kept read-only when the policy does not list its own. */
static const char *const default_protect[] = {
        ".git/hooks/**", ".git/config", ".bashrc",   ".bash_profile", ".bash_login", ".profile",
        ".zshrc",        ".zshenv",     ".zprofile", ".envrc",        ".gitmodules", ".mcp.json",
        ".claude/**",    NULL,
};

/* A sorted set of names borrowed from the YAML tree, for lookups in O(log n). */
typedef struct {
        const char **v;
        size_t n, cap;
} Names;

typedef struct {
        const char *name;
        PolicyError *errors;
        size_t n_errors;
        bool oom;
        Policy *p;
        Names environments; /* known environments: from hosts and approvals */
        Names hosts, profiles;
        size_t max_approvers; /* approvers lists only users: no more approvals than that; 0 = any */
} Ctx;

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void names_add(Ctx *c, Names *s, const char *name)
{
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 16;
                const char **t = reallocarray(s->v, cap, sizeof(char *));

                if (!t) {
                        c->oom = true;
                        return;
                }
                s->v = t;
                s->cap = cap;
        }
        s->v[s->n++] = name;
}

static void names_sort(Names *s)
{
        if (s->n > 1)
                qsort(s->v, s->n, sizeof(char *), cmp_str);
}

static bool names_has(const Names *s, const char *name)
{
        return s->n > 0 && bsearch(&name, s->v, s->n, sizeof(char *), cmp_str);
}

static void ctx_err(Ctx *c, const YNode *n, const char *fmt, ...) _printf_(3, 4);
static void ctx_err(Ctx *c, const YNode *n, const char *fmt, ...)
{
        PolicyError *t, *e;
        va_list ap;

        if (c->n_errors >= POLICY_MAX_ERRORS)
                return;
        t = reallocarray(c->errors, c->n_errors + 1, sizeof(PolicyError));
        if (!t) {
                c->oom = true;
                return;
        }
        c->errors = t;
        e = &t[c->n_errors++];
        *e = (PolicyError){};
        snprintf(e->file, sizeof(e->file), "%s", c->name);
        if (n) {
                e->line = n->line;
                e->column = n->column;
        }
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
}

static void ctx_oom(Ctx *c)
{
        c->oom = true;
}

/* ---- small helpers -------------------------------------------------------------------- */

static const char *type_name(const YNode *n)
{
        switch (n->type) {
        case YNODE_SCALAR:
                return n->len == 0 ? "empty" : "a single value";
        case YNODE_SEQUENCE:
                return "a list";
        case YNODE_MAPPING:
                return "a mapping";
        }
        return "?";
}

static unsigned edit_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        unsigned prev[64], cur[64];

        if (la >= 63 || lb >= 63)
                return 99;
        for (size_t j = 0; j <= lb; j++)
                prev[j] = (unsigned)j;
        for (size_t i = 1; i <= la; i++) {
                cur[0] = (unsigned)i;
                for (size_t j = 1; j <= lb; j++) {
                        unsigned d = prev[j - 1] + (a[i - 1] != b[j - 1]);

                        if (prev[j] + 1 < d)
                                d = prev[j] + 1;
                        if (cur[j - 1] + 1 < d)
                                d = cur[j - 1] + 1;
                        cur[j] = d;
                }
                memcpy(prev, cur, sizeof(unsigned) * (lb + 1));
        }
        return prev[lb];
}

static void join_names(const char *const *names, char *buf, size_t size)
{
        size_t off = 0;

        buf[0] = '\0';
        for (size_t i = 0; names[i] && off < size; i++) {
                int k = snprintf(buf + off, size - off, "%s%s", i ? ", " : "", names[i]);
                if (k < 0)
                        break;
                off += (size_t)k;
        }
}

static int cmp_key(const void *a, const void *b)
{
        const YNode *x = *(const YNode *const *)a, *y = *(const YNode *const *)b;
        int r = strcmp(x->value, y->value);

        if (r != 0)
                return r;
        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        return x->column < y->column ? -1 : x->column > y->column;
}

/* Reports every key that appears again in a mapping. Sorting keeps this O(n log n). */
static bool check_duplicates(Ctx *c, const YNode *map, const char *where)
{
        _cleanup_free_ const YNode **keys = NULL;
        size_t n = map->n_items / 2;
        bool ok = true;

        if (n < 2)
                return true;
        keys = calloc(n, sizeof(YNode *));
        if (!keys) {
                ctx_oom(c);
                return false;
        }
        for (size_t i = 0; i < n; i++)
                keys[i] = map->items[2 * i];
        qsort(keys, n, sizeof(YNode *), cmp_key);
        for (size_t i = 1, first = 0; i < n; i++) {
                if (!streq(keys[i]->value, keys[first]->value)) {
                        first = i;
                        continue;
                }
                ctx_err(c, keys[i], "duplicate key '%s' in %s (first at line %u) — keep only one",
                        keys[i]->value, where, keys[first]->line);
                ok = false;
        }
        return ok;
}

/*
 * Checks a mapping's keys: each must be in allowed (unless allowed is NULL:
 * free-form names such as host names), none twice. Reports
 * unknown keys (with the closest allowed one) and duplicates. Returns true
 * if all keys are fine.
 */
static bool check_keys(Ctx *c, const YNode *map, const char *const *allowed, const char *where)
{
        bool ok = true;

        for (size_t i = 0; i + 1 < map->n_items; i += 2) {
                const YNode *k = map->items[i];
                bool known = !allowed;

                for (size_t a = 0; allowed && allowed[a]; a++)
                        if (streq(k->value, allowed[a]))
                                known = true;
                if (!known) {
                        const char *best = NULL;
                        unsigned bestd = 3;
                        char list[512];

                        for (size_t a = 0; allowed[a]; a++) {
                                unsigned d = edit_distance(k->value, allowed[a]);
                                if (d < bestd) {
                                        bestd = d;
                                        best = allowed[a];
                                }
                        }
                        join_names(allowed, list, sizeof(list));
                        if (best)
                                ctx_err(c, k,
                                        "unknown key '%s' in %s — did you mean '%s'? (expected "
                                        "one of: %s)",
                                        k->value, where, best, list);
                        else
                                ctx_err(c, k, "unknown key '%s' in %s — expected one of: %s",
                                        k->value, where, list);
                        ok = false;
                }
        }
        return check_duplicates(c, map, where) && ok;
}

static const YNode *map_get(const YNode *map, const char *key)
{
        for (size_t i = 0; i + 1 < map->n_items; i += 2)
                if (streq(map->items[i]->value, key))
                        return map->items[i + 1];
        return NULL;
}

static bool expect_type(Ctx *c, const YNode *n, YNodeType t, const char *what, const char *hint)
{
        static const char *const want[] = {
                [YNODE_SCALAR] = "a single value",
                [YNODE_SEQUENCE] = "a list",
                [YNODE_MAPPING] = "a mapping",
        };

        if (n->type == t)
                return true;
        ctx_err(c, n, "wrong type: %s must be %s, not %s — %s", what, want[t], type_name(n), hint);
        return false;
}

/* A non-empty scalar. */
static bool get_text(Ctx *c, const YNode *n, const char *what, const char *hint, const char **ret)
{
        if (!expect_type(c, n, YNODE_SCALAR, what, hint))
                return false;
        if (n->len == 0) {
                ctx_err(c, n, "%s is empty — %s", what, hint);
                return false;
        }
        *ret = n->value;
        return true;
}

static bool valid_name(const char *s)
{
        if (isempty(s) || strlen(s) > 64 || s[0] == '-' || s[0] == '.')
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
                        return false;
        return true;
}

static bool valid_user_name(const char *s)
{
        if (isempty(s) || strlen(s) > 32 || s[0] == '-')
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("._-$", *p))
                        return false;
        return true;
}

static bool has_dotdot(const char *path)
{
        for (const char *p = path; (p = strstr(p, "..")); p += 2)
                if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
                        return true;
        return false;
}

/* Appends a copy of s; on OOM marks the context. */
static void push(Ctx *c, char ***l, const char *s)
{
        if (strv_extend(l, s) < 0)
                ctx_oom(c);
}

static char *dup_or_oom(Ctx *c, const char *s)
{
        char *d = strdup(s);
        if (!d)
                ctx_oom(c);
        return d;
}

/* A scalar or a list of scalars, each checked by check(); returns NULL on any error. */
typedef bool (*ItemCheck)(Ctx *c, const YNode *n, const char *what);

static char **get_list(Ctx *c, const YNode *n, const char *what, bool allow_scalar,
                       const char *hint, ItemCheck check)
{
        _cleanup_strv_free_ char **l = NULL;
        bool ok = true;

        if (n->type == YNODE_SCALAR && allow_scalar) {
                const char *v;

                if (!get_text(c, n, what, hint, &v) || (check && !check(c, n, what)))
                        return NULL;
                push(c, &l, v);
                return TAKE_PTR(l);
        }
        if (!expect_type(c, n, YNODE_SEQUENCE, what, hint))
                return NULL;
        /* Filled in place: appending one by one would be quadratic on a long list. */
        l = calloc(n->n_items + 1, sizeof(char *));
        if (!l) {
                ctx_oom(c);
                return NULL;
        }
        for (size_t i = 0, k = 0; i < n->n_items; i++) {
                const YNode *it = n->items[i];
                const char *v;

                if (!get_text(c, it, what, hint, &v) || (check && !check(c, it, what))) {
                        ok = false;
                        continue;
                }
                l[k] = strdup(v);
                if (!l[k]) {
                        ctx_oom(c);
                        return NULL;
                }
                k++;
        }
        return ok ? TAKE_PTR(l) : NULL;
}

static bool check_glob(Ctx *c, const YNode *n, const char *what)
{
        char why[256];

        if (policy_glob_validate(n->value, why, sizeof(why)) < 0) {
                ctx_err(c, n, "bad glob '%s' in %s: %s — see GLOBS in airlock-policy(5)", n->value,
                        what, why);
                return false;
        }
        return true;
}

static bool check_secret(Ctx *c, const YNode *n, const char *what)
{
        const char *v = n->value;

        if (v[0] != '/' && !strneq(v, "~/", 2)) {
                ctx_err(c, n,
                        "secret '%s' is not an absolute path — write it as /path or as ~/path "
                        "(every user's home)",
                        v);
                return false;
        }
        if (has_dotdot(v)) {
                ctx_err(c, n, "secret '%s' contains '..' — write the path without '..'", v);
                return false;
        }
        {
                /*
                 * The sandbox expands "DIR/ ** /NAME" (no spaces) by walking DIR, so DIR
                 * must be literal; refusing here gives the line and column instead of a
                 * launch failure.
                 */
                const char *star2 = strstr(v, "**");

                if (star2 && strpbrk(v, "*?[{") < star2) {
                        ctx_err(c, n,
                                "secret '%s' has a wildcard before '**' — the sandbox walks the "
                                "directory before '**', so it must be literal; split the secret "
                                "into several entries",
                                v);
                        return false;
                }
        }
        if (streq(v, "/") || streq(v, "~/")) {
                ctx_err(c, n,
                        "secret '%s' would hide everything — name the files or directories "
                        "that hold secrets",
                        v);
                return false;
        }
        return check_glob(c, n, what);
}

static bool check_abs_path(Ctx *c, const YNode *n, const char *what)
{
        if (n->value[0] != '/' || has_dotdot(n->value)) {
                ctx_err(c, n, "%s '%s' must be an absolute path without '..' — write /path", what,
                        n->value);
                return false;
        }
        return check_glob(c, n, what);
}

static bool check_protect(Ctx *c, const YNode *n, const char *what)
{
        if (n->value[0] == '/' || has_dotdot(n->value) || n->value[0] == '~') {
                ctx_err(c, n,
                        "%s '%s' must be relative to the workspace, without '..' — write e.g. "
                        ".git/hooks/**",
                        what, n->value);
                return false;
        }
        return check_glob(c, n, what);
}

static bool check_name(Ctx *c, const YNode *n, const char *what)
{
        if (!valid_name(n->value)) {
                ctx_err(c, n,
                        "bad %s '%s' — use letters, digits, '.', '_' and '-' (at most 64, not "
                        "starting with '-' or '.')",
                        what, n->value);
                return false;
        }
        return true;
}

static bool check_user(Ctx *c, const YNode *n, const char *what)
{
        if (!valid_user_name(n->value)) {
                ctx_err(c, n, "bad %s '%s' — write a user or group name as in /etc/passwd", what,
                        n->value);
                return false;
        }
        return true;
}

static bool check_env_name(Ctx *c, const YNode *n, const char *what)
{
        const char *v = n->value;

        if (!isalpha((unsigned char)v[0]) && v[0] != '_')
                goto bad;
        for (const char *p = v; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '_')
                        goto bad;
        return true;
bad:
        ctx_err(c, n, "bad environment variable name '%s' in %s — use letters, digits and '_'", v,
                what);
        return false;
}

static bool get_uint(Ctx *c, const YNode *n, const char *what, uint64_t min, uint64_t max,
                     const char *hint, uint64_t *ret)
{
        const char *v;
        uint64_t u;

        if (!get_text(c, n, what, hint, &v))
                return false;
        if (parse_u64(v, max, &u) < 0 || u < min) {
                ctx_err(c, n,
                        "bad %s '%s': must be a whole number from %" PRIu64 " to %" PRIu64 " — %s",
                        what, v, min, max, hint);
                return false;
        }
        *ret = u;
        return true;
}

/* "15m", "1h30m", "45s", "2d": units s, m, h, d; at least one. */
static int parse_duration(const char *s, uint64_t *ret)
{
        uint64_t total = 0;

        if (isempty(s))
                return -EINVAL;
        while (*s) {
                uint64_t v = 0, mult;

                if (!isdigit((unsigned char)*s))
                        return -EINVAL;
                while (isdigit((unsigned char)*s)) {
                        if (v > UINT32_MAX)
                                return -ERANGE;
                        v = v * 10 + (uint64_t)(*s - '0');
                        s++;
                }
                switch (*s) {
                case 's':
                        mult = 1;
                        break;
                case 'm':
                        mult = 60;
                        break;
                case 'h':
                        mult = 3600;
                        break;
                case 'd':
                        mult = 86400;
                        break;
                default:
                        return -EINVAL;
                }
                s++;
                total += v * mult;
                if (total > UINT32_MAX)
                        return -ERANGE;
        }
        *ret = total * 1000000ULL;
        return 0;
}

static PolicyAction parse_action(Ctx *c, const YNode *n, bool *ok)
{
        const char *v;

        *ok = false;
        if (!get_text(c, n, "action", "write allow, approve or deny", &v))
                return POLICY_DENY;
        if (streq(v, "allow")) {
                *ok = true;
                return POLICY_ALLOW;
        }
        if (streq(v, "approve")) {
                *ok = true;
                return POLICY_APPROVE;
        }
        if (streq(v, "deny")) {
                *ok = true;
                return POLICY_DENY;
        }
        ctx_err(c, n, "bad action '%s' — write allow, approve or deny", v);
        return POLICY_DENY;
}

/* A count that the listed approvers could never reach would leave requests pending forever. */
static bool check_reachable(Ctx *c, const YNode *n, uint64_t count)
{
        if (c->max_approvers == 0 || count <= c->max_approvers)
                return true;
        ctx_err(c, n,
                "%" PRIu64 " approvals can never be given: approvers lists only %zu user%s — "
                "lower the count, add users, or list approver groups",
                count, c->max_approvers, c->max_approvers == 1 ? "" : "s");
        return false;
}

static bool get_approvers(Ctx *c, const YNode *n, unsigned *ret)
{
        uint64_t u;

        if (!get_uint(c, n, "approver count", 1, POLICY_MAX_APPROVERS,
                      "the number of distinct humans who must approve; use action: allow for "
                      "none",
                      &u))
                return false;
        if (!check_reachable(c, n, u))
                return false;
        *ret = (unsigned)u;
        return true;
}

/* ---- sections ------------------------------------------------------------------------- */

static void parse_secrets(Ctx *c, const YNode *n)
{
        c->p->secrets =
                get_list(c, n, "secret", false,
                         "write a list of paths, e.g. '- /etc/corosync/authkey'", check_secret);
}

static void parse_hosts(Ctx *c, const YNode *n)
{
        static const char *const keys[] = { "address", "environment", "cluster", "connect", NULL };
        Policy *p = c->p;

        if (!expect_type(c, n, YNODE_MAPPING, "hosts",
                         "write 'NAME: {address: ADDR, environment: ENV}' per host"))
                return;
        p->hosts = calloc(n->n_items / 2 + 1, sizeof(PolicyHost));
        if (!p->hosts)
                return ctx_oom(c);
        check_keys(c, n, NULL, "hosts");
        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i], *v = n->items[i + 1], *f;
                PolicyHost *h = &p->hosts[p->n_hosts];
                const char *s;

                if (!check_name(c, k, "host name"))
                        continue;
                if (streq(k->value, "local")) {
                        ctx_err(c, k,
                                "'local' is reserved for the machine airlock runs on — name "
                                "the host differently");
                        continue;
                }
                if (!expect_type(c, v, YNODE_MAPPING, "a host",
                                 "write 'NAME: {address: ADDR, environment: ENV}'"))
                        continue;
                check_keys(c, v, keys, "a host");
                h->name = dup_or_oom(c, k->value);
                names_add(c, &c->hosts, k->value);
                p->n_hosts++;
                f = map_get(v, "address");
                if (!f)
                        ctx_err(c, v, "host '%s' has no address — add 'address: IP-OR-NAME'",
                                k->value);
                else if (get_text(c, f, "address", "write an IP address or a DNS name", &s)) {
                        bool bad = s[0] == '-';

                        for (const char *q = s; *q; q++)
                                if (!isalnum((unsigned char)*q) && !strchr(".:-_[]%", *q))
                                        bad = true;
                        if (bad)
                                ctx_err(c, f,
                                        "bad address '%s' — write an IP address or a DNS name "
                                        "(letters, digits, '.', ':', '-')",
                                        s);
                        else
                                h->address = dup_or_oom(c, s);
                }
                f = map_get(v, "environment");
                if (f && get_text(c, f, "environment", "write a name such as production", &s) &&
                    check_name(c, f, "environment name")) {
                        h->environment = dup_or_oom(c, s);
                        names_add(c, &c->environments, s);
                }
                f = map_get(v, "cluster");
                if (f && get_text(c, f, "cluster", "write a cluster name such as pve", &s) &&
                    check_name(c, f, "cluster name"))
                        h->cluster = dup_or_oom(c, s);
                f = map_get(v, "connect");
                if (f) {
                        h->connect = get_list(c, f, "connect", false,
                                              "write the command prefix as a list, e.g. [ssh, "
                                              "-l, root, 10.0.0.1]",
                                              NULL);
                        if (h->connect && !h->connect[0]) {
                                ctx_err(c, f,
                                        "connect is an empty list — write the command prefix, "
                                        "e.g. [ssh, root@10.0.0.1], or leave connect out");
                                h->connect = strv_free(h->connect);
                        }
                }
        }
}

static void parse_approvals(Ctx *c, const YNode *n)
{
        Policy *p = c->p;

        if (!expect_type(c, n, YNODE_MAPPING, "approvals",
                         "write 'ENVIRONMENT: COUNT', e.g. {production: 2, test: 0}"))
                return;
        check_keys(c, n, NULL, "approvals");
        p->approvals = calloc(n->n_items / 2 + 1, sizeof(PolicyApprovalCount));
        if (!p->approvals)
                return ctx_oom(c);
        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i], *v = n->items[i + 1];
                uint64_t u;

                if (!check_name(c, k, "environment name"))
                        continue;
                if (!get_uint(c, v, "approval count", 0, POLICY_MAX_APPROVERS,
                              "write how many distinct humans must approve (0 = none)", &u) ||
                    !check_reachable(c, v, u))
                        continue;
                p->approvals[p->n_approvals].environment = dup_or_oom(c, k->value);
                p->approvals[p->n_approvals++].approvers = (unsigned)u;
                names_add(c, &c->environments, k->value);
        }
}

static void parse_approvers(Ctx *c, const YNode *n)
{
        static const char *const keys[] = { "users", "groups", NULL };
        const YNode *f;

        if (!expect_type(c, n, YNODE_MAPPING, "approvers",
                         "write '{users: [alice], groups: [sudo]}'"))
                return;
        check_keys(c, n, keys, "approvers");
        if ((f = map_get(n, "users")))
                c->p->approver_users = get_list(c, f, "approver user", true,
                                                "write a list of user names", check_user);
        if ((f = map_get(n, "groups")))
                c->p->approver_groups = get_list(c, f, "approver group", true,
                                                 "write a list of group names", check_user);
        if (c->p->approver_users && !map_get(n, "groups"))
                c->max_approvers = strv_length(c->p->approver_users);
}

static void parse_ttl(Ctx *c, const YNode *n)
{
        const char *v;
        uint64_t u;
        int r;

        if (!get_text(c, n, "ttl", "write a duration such as 15m, 1h or 90s", &v))
                return;
        r = parse_duration(v, &u);
        if (r < 0 || u < POLICY_MIN_TTL_USEC || u > POLICY_MAX_TTL_USEC) {
                ctx_err(c, n,
                        "bad duration '%s' for ttl — write a number with a unit (s, m, h, d), "
                        "e.g. 15m or 1h30m, between 1s and 7d",
                        v);
                return;
        }
        c->p->request_ttl_usec = u;
}

static void parse_profile(Ctx *c, const YNode *k, const YNode *v, PolicyProfile *pr)
{
        static const char *const keys[] = { "ro",     "rw",   "net",     "ports", "env",
                                            "memory", "pids", "protect", NULL };
        const YNode *f;
        const char *s;

        check_keys(c, v, keys, "a profile");
        if ((f = map_get(v, "ro")))
                pr->ro = get_list(c, f, "read-only path", false, "write a list of absolute paths",
                                  check_abs_path);
        if ((f = map_get(v, "rw")))
                pr->rw = get_list(c, f, "writable path", false, "write a list of absolute paths",
                                  check_abs_path);
        if ((f = map_get(v, "net")) &&
            get_text(c, f, "net", "write none (loopback only) or host", &s)) {
                if (streq(s, "none"))
                        pr->net = POLICY_NET_NONE;
                else if (streq(s, "host"))
                        pr->net = POLICY_NET_HOST;
                else
                        ctx_err(c, f,
                                "bad network mode '%s' — write none (loopback only) or host "
                                "(host network, TCP limited to ports:)",
                                s);
        }
        if ((f = map_get(v, "ports")) &&
            expect_type(c, f, YNODE_SEQUENCE, "ports", "write a list such as [22, 443]")) {
                pr->ports = calloc(f->n_items + 1, sizeof(uint16_t));
                if (!pr->ports)
                        return ctx_oom(c);
                for (size_t i = 0; i < f->n_items; i++) {
                        uint64_t u;

                        if (get_uint(c, f->items[i], "port", 1, 65535,
                                     "write a TCP port number from 1 to 65535", &u))
                                pr->ports[pr->n_ports++] = (uint16_t)u;
                }
        }
        if ((f = map_get(v, "env")))
                pr->env = get_list(c, f, "env", false, "write a list of environment variable names",
                                   check_env_name);
        if ((f = map_get(v, "memory")) &&
            get_text(c, f, "memory", "write a size such as 512M or 2G", &s)) {
                uint64_t u;

                if (parse_size(s, &u) < 0 || u < (1ULL << 20))
                        ctx_err(c, f,
                                "bad size '%s' for memory — write a number with K, M, G or T "
                                "(powers of 1024), e.g. 512M, at least 1M",
                                s);
                else
                        pr->memory_max = u;
        }
        if ((f = map_get(v, "pids"))) {
                uint64_t u;

                if (get_uint(c, f, "pids", 1, POLICY_MAX_PIDS,
                             "write the most processes the sandbox may run, e.g. 512", &u))
                        pr->pids_max = u;
        }
        if ((f = map_get(v, "protect")))
                pr->protect = get_list(c, f, "protected path", false,
                                       "write workspace-relative globs such as .git/hooks/**",
                                       check_protect);
        (void)k;
}

static void parse_profiles(Ctx *c, const YNode *n)
{
        Policy *p = c->p;

        if (!expect_type(c, n, YNODE_MAPPING, "profiles",
                         "write 'NAME: {net: none, rw: [/path]}' per profile"))
                return;
        check_keys(c, n, NULL, "profiles");
        p->profiles = calloc(n->n_items / 2 + 2, sizeof(PolicyProfile));
        if (!p->profiles)
                return ctx_oom(c);
        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i], *v = n->items[i + 1];
                PolicyProfile *pr;

                if (!check_name(c, k, "profile name"))
                        continue;
                if (!expect_type(c, v, YNODE_MAPPING, "a profile",
                                 "write 'NAME: {net: none, rw: [/path]}' (use {} for none)"))
                        continue;
                pr = &p->profiles[p->n_profiles++];
                pr->name = dup_or_oom(c, k->value);
                names_add(c, &c->profiles, k->value);
                parse_profile(c, k, v, pr);
        }
}

/* Checks each name in l against the known set; errors point at the list items. */
static void check_refs(Ctx *c, const YNode *n, char *const *names, const char *what,
                       bool (*known)(Ctx *c, const char *name), const char *hint)
{
        for (size_t i = 0; names && names[i]; i++) {
                const YNode *at = n->type == YNODE_SEQUENCE && i < n->n_items ? n->items[i] : n;

                if (!known(c, names[i]))
                        ctx_err(c, at, "unknown %s '%s' in a rule — %s", what, names[i], hint);
        }
}

static bool known_host(Ctx *c, const char *name)
{
        return streq(name, "local") || names_has(&c->hosts, name);
}

static bool known_environment(Ctx *c, const char *name)
{
        return names_has(&c->environments, name);
}

static bool known_profile(Ctx *c, const char *name)
{
        return streq(name, "default") || names_has(&c->profiles, name);
}

static bool check_path_glob(Ctx *c, const YNode *n, const char *what)
{
        if (n->value[0] != '/') {
                ctx_err(c, n, "%s '%s' must be an absolute path glob — write e.g. /etc/corosync/**",
                        what, n->value);
                return false;
        }
        return check_glob(c, n, what);
}

static void parse_network_effect(Ctx *c, const YNode *v, PolicyRule *r)
{
        static const char *const keys[] = { "host", "environment", "port", NULL };
        const YNode *f;
        const char *s;

        r->effect_kind = POLICY_EFFECT_NETWORK;
        if (v->type == YNODE_SCALAR) {
                if (streq(v->value, "any"))
                        return;
                if (streq(v->value, "outside-inventory")) {
                        r->network_outside_inventory = true;
                        r->effect_arg = dup_or_oom(c, "outside-inventory");
                        return;
                }
                ctx_err(c, v,
                        "bad network condition '%s' — write any, outside-inventory, or "
                        "{host: NAME, environment: ENV, port: N}",
                        v->value);
                return;
        }
        if (!expect_type(c, v, YNODE_MAPPING, "a network condition",
                         "write any, outside-inventory, or {host: NAME, environment: ENV, port: "
                         "N}"))
                return;
        check_keys(c, v, keys, "a network condition");
        if (v->n_items == 0)
                ctx_err(c, v,
                        "empty network condition — write any, outside-inventory, or {host: "
                        "NAME, environment: ENV, port: N}");
        if ((f = map_get(v, "host")) &&
            get_text(c, f, "host", "write an inventory host name", &s)) {
                if (!names_has(&c->hosts, s))
                        ctx_err(c, f,
                                "unknown host '%s' in a network condition — add it under hosts: "
                                "or use outside-inventory",
                                s);
                else
                        r->network_host = dup_or_oom(c, s);
        }
        if ((f = map_get(v, "environment")) &&
            get_text(c, f, "environment", "write an environment name", &s)) {
                if (!known_environment(c, s))
                        ctx_err(c, f,
                                "unknown environment '%s' in a network condition — use an "
                                "environment named by a host or under approvals:",
                                s);
                else
                        r->network_environment = dup_or_oom(c, s);
        }
        if ((f = map_get(v, "port"))) {
                uint64_t u;

                if (get_uint(c, f, "port", 1, 65535, "write a TCP or UDP port from 1 to 65535", &u))
                        r->network_port = (uint16_t)u;
        }
}

static void parse_effect(Ctx *c, const YNode *n, PolicyRule *r)
{
        static const char *const keys[] = { "writes", "deletes", "network", "contacts", NULL };
        static const char *hint = "write reads-secret, writes-secret-content, {writes: GLOB}, "
                                  "{deletes: GLOB}, {network: ...} or {contacts: DAEMON}";
        const YNode *k, *v;

        if (n->type == YNODE_SCALAR) {
                if (streq(n->value, "reads-secret"))
                        r->effect_kind = POLICY_EFFECT_READS_SECRET;
                else if (streq(n->value, "writes-secret-content"))
                        r->effect_kind = POLICY_EFFECT_WRITES_SECRET_CONTENT;
                else if (strv_contains((char **)keys, n->value)) {
                        ctx_err(c, n, "effect '%s' needs an argument — write {%s: ...}", n->value,
                                n->value);
                        return;
                } else {
                        ctx_err(c, n, "unknown effect '%s' — %s", n->value, hint);
                        return;
                }
                r->effect = dup_or_oom(c, n->value);
                return;
        }
        if (!expect_type(c, n, YNODE_MAPPING, "effect", hint))
                return;
        if (!check_keys(c, n, keys, "an effect"))
                return;
        if (n->n_items != 2) {
                ctx_err(c, n,
                        "an effect names exactly one condition — %s; write one rule per "
                        "effect",
                        hint);
                return;
        }
        k = n->items[0];
        v = n->items[1];
        r->effect = dup_or_oom(c, k->value);
        if (streq(k->value, "network"))
                return parse_network_effect(c, v, r);
        if (streq(k->value, "contacts")) {
                if (!get_text(c, v, "contacts", "write a daemon or unit name such as corosync",
                              &(const char *){ NULL }) ||
                    !check_glob(c, v, "contacts"))
                        return;
                r->effect_kind = POLICY_EFFECT_CONTACTS;
                r->effect_arg = dup_or_oom(c, v->value);
                return;
        }
        if (!get_text(c, v, k->value, "write an absolute path glob such as /etc/corosync/**",
                      &(const char *){ NULL }) ||
            !check_path_glob(c, v, k->value))
                return;
        r->effect_kind = streq(k->value, "writes") ? POLICY_EFFECT_WRITES : POLICY_EFFECT_DELETES;
        r->effect_arg = dup_or_oom(c, v->value);
}

static bool check_arg_pattern(Ctx *c, const YNode *n, const char *what)
{
        if (streq(n->value, "**"))
                return true;
        return check_glob(c, n, what);
}

static void parse_rule(Ctx *c, const YNode *n, PolicyRule *r)
{
        static const char *const keys[] = { "match",  "host",   "environment", "agent",  "profile",
                                            "effect", "action", "approvers",   "reason", NULL };
        const YNode *f;
        bool action_ok = false;

        r->line = n->line;
        r->column = n->column;
        if (!expect_type(c, n, YNODE_MAPPING, "a rule",
                         "write '- {match: [CMD, ARG...], action: allow}'"))
                return;
        check_keys(c, n, keys, "a rule");

        if ((f = map_get(n, "match"))) {
                _cleanup_strv_free_ char **l = NULL;

                l = get_list(c, f, "argument pattern", false,
                             "write the command as a list of patterns, e.g. [systemctl, status, "
                             "\"**\"]",
                             check_arg_pattern);
                if (l && !l[0])
                        ctx_err(c, f,
                                "empty argv pattern — write at least the command name, e.g. "
                                "[journalctl, \"**\"], or leave match out to match any command");
                else if (l) {
                        size_t m = strv_length(l);

                        r->match = calloc(m, sizeof(PolicyArgPattern));
                        if (!r->match)
                                return ctx_oom(c);
                        for (size_t i = 0; i < m; i++) {
                                r->match[i].pattern = TAKE_PTR(l[i]);
                                r->match[i].rest = streq(r->match[i].pattern, "**");
                        }
                        r->n_match = m;
                }
        }
        if ((f = map_get(n, "host"))) {
                r->hosts = get_list(c, f, "host", true, "write an inventory host name or a list",
                                    check_name);
                check_refs(c, f, r->hosts, "host", known_host,
                           "add it under hosts: or fix the spelling ('local' is this machine)");
        }
        if ((f = map_get(n, "environment"))) {
                r->environments = get_list(c, f, "environment", true,
                                           "write an environment name or a list", check_name);
                check_refs(c, f, r->environments, "environment", known_environment,
                           "use an environment a host has, or one listed under approvals:");
        }
        if ((f = map_get(n, "agent")))
                r->agents = get_list(c, f, "agent", true, "write an agent name glob or a list",
                                     check_glob);
        if ((f = map_get(n, "profile"))) {
                r->profiles = get_list(c, f, "profile", true, "write a profile name or a list",
                                       check_name);
                check_refs(c, f, r->profiles, "profile", known_profile,
                           "define it under profiles: or fix the spelling");
        }
        if ((f = map_get(n, "effect")))
                parse_effect(c, f, r);

        f = map_get(n, "action");
        if (!f)
                ctx_err(c, n,
                        "rule %zu has no action — add 'action: allow', 'action: approve' or "
                        "'action: deny'",
                        r->index);
        else
                r->action = parse_action(c, f, &action_ok);
        if (!action_ok)
                r->action = POLICY_DENY;

        if ((f = map_get(n, "approvers"))) {
                if (action_ok && r->action != POLICY_APPROVE)
                        ctx_err(c, f,
                                "approvers is only meaningful with action: approve — remove it "
                                "or change the action");
                else
                        get_approvers(c, f, &r->approvers);
        }
        if ((f = map_get(n, "reason"))) {
                const char *s;

                if (get_text(c, f, "reason", "write a short sentence for the agent and approver",
                             &s)) {
                        if (strlen(s) > 300)
                                ctx_err(c, f, "reason is longer than 300 bytes — shorten it");
                        else
                                r->reason = dup_or_oom(c, s);
                }
        }
}

static void parse_rules(Ctx *c, const YNode *n)
{
        Policy *p = c->p;

        if (!expect_type(c, n, YNODE_SEQUENCE, "rules",
                         "write a list: '- {match: [CMD, \"**\"], action: allow}'"))
                return;
        p->rules = calloc(n->n_items + 1, sizeof(PolicyRule));
        if (!p->rules)
                return ctx_oom(c);
        for (size_t i = 0; i < n->n_items; i++) {
                PolicyRule *r = &p->rules[p->n_rules++];

                r->index = p->n_rules;
                parse_rule(c, n->items[i], r);
        }
}

static void parse_default(Ctx *c, const YNode *n)
{
        static const char *const keys[] = { "action", "approvers", NULL };
        Policy *p = c->p;
        const YNode *f;
        bool ok;

        if (n->type == YNODE_SCALAR) {
                p->default_action = parse_action(c, n, &ok);
                if (!ok)
                        p->default_action = POLICY_DENY;
                return;
        }
        if (!expect_type(c, n, YNODE_MAPPING, "default",
                         "write allow, approve or deny, or {action: approve, approvers: 2}"))
                return;
        check_keys(c, n, keys, "default");
        f = map_get(n, "action");
        if (!f) {
                ctx_err(c, n, "default has no action — add 'action: approve' (or allow, deny)");
                return;
        }
        p->default_action = parse_action(c, f, &ok);
        if (!ok)
                p->default_action = POLICY_DENY;
        if ((f = map_get(n, "approvers"))) {
                if (ok && p->default_action != POLICY_APPROVE)
                        ctx_err(c, f,
                                "approvers is only meaningful with action: approve — remove it "
                                "or change the action");
                else
                        get_approvers(c, f, &p->default_approvers);
        }
}

static void parse_version(Ctx *c, const YNode *n)
{
        if (n->type != YNODE_SCALAR || !streq(n->value, "1"))
                ctx_err(c, n, "unsupported policy version — write 'version: 1' or leave it out");
}

static void ensure_default_profile(Ctx *c)
{
        Policy *p = c->p;

        if (policy_find_profile(p, "default"))
                return;
        if (!p->profiles) {
                p->profiles = calloc(2, sizeof(PolicyProfile));
                if (!p->profiles)
                        return ctx_oom(c);
        }
        /* parse_profiles allocated one spare slot */
        p->profiles[p->n_profiles].name = dup_or_oom(c, "default");
        p->profiles[p->n_profiles].net = POLICY_NET_NONE;
        p->n_profiles++;
}

static void policy_build(Ctx *c, const YNode *root)
{
        static const char *const keys[] = { "version",   "secrets", "hosts",    "approvals",
                                            "approvers", "ttl",     "profiles", "protect",
                                            "rules",     "default", NULL };
        /* Sections in dependency order: rules refer to hosts, environments and profiles. */
        static const struct {
                const char *key;
                void (*parse)(Ctx *c, const YNode *n);
        } order[] = {
                { "version", parse_version },     { "secrets", parse_secrets },
                { "hosts", parse_hosts },         { "approvers", parse_approvers },
                { "approvals", parse_approvals }, { "ttl", parse_ttl },
                { "profiles", parse_profiles },   { "rules", parse_rules },
                { "default", parse_default },
        };
        Policy *p = c->p;
        const YNode *f;

        if (root->type != YNODE_MAPPING) {
                ctx_err(c, root,
                        "wrong type: the policy must be a mapping of sections (secrets:, hosts:, "
                        "rules:, default: ...), not %s — see airlock-policy(5)",
                        type_name(root));
                return;
        }
        check_keys(c, root, keys, "the policy");

        p->default_action = POLICY_APPROVE; /* when default: is left out (documented) */
        p->request_ttl_usec = POLICY_DEFAULT_TTL_USEC;
        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                if ((f = map_get(root, order[i].key)))
                        order[i].parse(c, f);
                if (streq(order[i].key, "profiles")) {
                        /* rules come next and look names up */
                        names_sort(&c->hosts);
                        names_sort(&c->environments);
                        names_sort(&c->profiles);
                }
        }
        if ((f = map_get(root, "protect")))
                p->protect = get_list(c, f, "protected path", false,
                                      "write workspace-relative globs such as .git/hooks/**",
                                      check_protect);
        else {
                p->protect = strv_copy((char **)default_protect);
                if (!p->protect)
                        ctx_oom(c);
        }
        if (!p->secrets) {
                p->secrets = calloc(1, sizeof(char *));
                if (!p->secrets)
                        ctx_oom(c);
        }
        ensure_default_profile(c);
}

/* ---- public API ---------------------------------------------------------------------- */

Policy *policy_free(Policy *p)
{
        if (!p)
                return NULL;
        free(p->source);
        free(p->text);
        strv_free(p->secrets);
        for (size_t i = 0; i < p->n_hosts; i++) {
                free(p->hosts[i].name);
                free(p->hosts[i].address);
                free(p->hosts[i].environment);
                free(p->hosts[i].cluster);
                strv_free(p->hosts[i].connect);
        }
        free(p->hosts);
        for (size_t i = 0; i < p->n_approvals; i++)
                free(p->approvals[i].environment);
        free(p->approvals);
        strv_free(p->approver_users);
        strv_free(p->approver_groups);
        for (size_t i = 0; i < p->n_profiles; i++) {
                PolicyProfile *pr = &p->profiles[i];

                free(pr->name);
                strv_free(pr->ro);
                strv_free(pr->rw);
                free(pr->ports);
                strv_free(pr->env);
                strv_free(pr->protect);
        }
        free(p->profiles);
        strv_free(p->protect);
        for (size_t i = 0; i < p->n_rules; i++) {
                PolicyRule *r = &p->rules[i];

                for (size_t j = 0; j < r->n_match; j++)
                        free(r->match[j].pattern);
                free(r->match);
                strv_free(r->hosts);
                strv_free(r->environments);
                strv_free(r->agents);
                strv_free(r->profiles);
                free(r->effect);
                free(r->effect_arg);
                free(r->reason);
                free(r->network_host);
                free(r->network_environment);
        }
        free(p->rules);
        free(p);
        return NULL;
}

static void set_error(PolicyError **errs, size_t *n, const char *name, unsigned line,
                      unsigned column, const char *fmt, ...) _printf_(6, 7);
static void set_error(PolicyError **errs, size_t *n, const char *name, unsigned line,
                      unsigned column, const char *fmt, ...)
{
        PolicyError *e;
        va_list ap;

        e = calloc(1, sizeof(PolicyError));
        *errs = e;
        *n = e ? 1 : 0;
        if (!e)
                return;
        snprintf(e->file, sizeof(e->file), "%s", name);
        e->line = line;
        e->column = column;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
}

int policy_check_string(const char *text, size_t len, const char *name, Policy **ret,
                        PolicyError **ret_errors, size_t *ret_n_errors)
{
        _cleanup_(ynode_freep) YNode *root = NULL;
        _cleanup_(policy_freep) Policy *p = NULL;
        char msg[sizeof(((PolicyError *)0)->message)];
        unsigned line, column;
        Ctx c = {};
        int r;

        *ret_errors = NULL;
        *ret_n_errors = 0;
        if (!name)
                name = "<string>";
        if (!text) {
                set_error(ret_errors, ret_n_errors, name, 0, 0, "no policy text");
                return -EINVAL;
        }
        if (len > POLICY_MAX_FILE_SIZE) {
                set_error(ret_errors, ret_n_errors, name, 0, 0,
                          "the policy is larger than %d bytes — shorten it", POLICY_MAX_FILE_SIZE);
                return -EFBIG;
        }
        r = ynode_parse(text, len, &root, &line, &column, msg, sizeof(msg));
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                set_error(ret_errors, ret_n_errors, name, line, column, "%s", msg);
                return r;
        }

        p = calloc(1, sizeof(Policy));
        if (!p)
                return -ENOMEM;
        p->source = strdup(name);
        if (!p->source)
                return -ENOMEM;
        r = sha256_hex(text, len, p->digest);
        if (r < 0)
                return r;
        p->text = malloc(len + 1);
        if (!p->text)
                return -ENOMEM;
        memcpy(p->text, text, len);
        p->text[len] = 0;
        p->text_len = len;

        c.name = name;
        c.p = p;
        policy_build(&c, root);
        free(c.environments.v);
        free(c.hosts.v);
        free(c.profiles.v);
        if (c.oom) {
                free(c.errors);
                return -ENOMEM;
        }
        if (c.n_errors > 0) {
                /* In file order (stable: insertion sort of at most POLICY_MAX_ERRORS). */
                for (size_t i = 1; i < c.n_errors; i++) {
                        PolicyError e = c.errors[i];
                        size_t j = i;

                        while (j > 0 && (c.errors[j - 1].line > e.line ||
                                         (c.errors[j - 1].line == e.line &&
                                          c.errors[j - 1].column > e.column))) {
                                c.errors[j] = c.errors[j - 1];
                                j--;
                        }
                        c.errors[j] = e;
                }
                *ret_errors = c.errors;
                *ret_n_errors = c.n_errors;
                return -EINVAL;
        }
        if (ret)
                *ret = TAKE_PTR(p);
        return 0;
}

int policy_check_file(const char *path, Policy **ret, PolicyError **ret_errors,
                      size_t *ret_n_errors)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t len = 0;
        int r;

        *ret_errors = NULL;
        *ret_n_errors = 0;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                set_error(ret_errors, ret_n_errors, path, 0, 0, "cannot open: %s — %s",
                          strerror(-r),
                          r == -ENOENT ? "check the path, or run 'airlock policy show-default' "
                                         "for a starting point"
                                       : "check the file's permissions");
                return r;
        }
        /* Size cap before reading: refuse a huge or non-regular file outright. */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode)) {
                set_error(ret_errors, ret_n_errors, path, 0, 0,
                          "not a regular file — point to the policy file itself");
                return -EINVAL;
        }
        if (st.st_size > POLICY_MAX_FILE_SIZE) {
                set_error(ret_errors, ret_n_errors, path, 0, 0,
                          "the file is larger than %d bytes — a policy that large is refused; "
                          "shorten it",
                          POLICY_MAX_FILE_SIZE);
                return -EFBIG;
        }
        r = read_full_fd(fd, POLICY_MAX_FILE_SIZE, &text, &len);
        if (r == -EFBIG) {
                set_error(ret_errors, ret_n_errors, path, 0, 0,
                          "the file is larger than %d bytes — shorten it", POLICY_MAX_FILE_SIZE);
                return r;
        }
        if (r < 0) {
                set_error(ret_errors, ret_n_errors, path, 0, 0, "cannot read: %s — check the file",
                          strerror(-r));
                return r;
        }
        return policy_check_string(text, len, path, ret, ret_errors, ret_n_errors);
}

static int first_error(int r, PolicyError *errs, size_t n, const char *name, PolicyError *err)
{
        if (err) {
                if (n > 0)
                        *err = errs[0];
                else if (r < 0) {
                        *err = (PolicyError){};
                        snprintf(err->file, sizeof(err->file), "%s", name ?: "<string>");
                        snprintf(err->message, sizeof(err->message), "%s", strerror(-r));
                }
        }
        free(errs);
        return r;
}

int policy_load_string(const char *text, size_t len, const char *name, Policy **ret,
                       PolicyError *err)
{
        PolicyError *errs = NULL;
        size_t n = 0;
        int r;

        r = policy_check_string(text, len, name, ret, &errs, &n);
        return first_error(r, errs, n, name, err);
}

int policy_load_file(const char *path, Policy **ret, PolicyError *err)
{
        PolicyError *errs = NULL;
        size_t n = 0;
        int r;

        r = policy_check_file(path, ret, &errs, &n);
        return first_error(r, errs, n, path, err);
}

const char *policy_default_text(void)
{
        return policy_default_yaml;
}

int policy_load_default(Policy **ret)
{
        int r;

        r = policy_load_string(policy_default_yaml, policy_default_yaml_len, "<default>", ret,
                               NULL);
        /* The embedded policy is tested at build time; any failure here is memory. */
        return r < 0 ? -ENOMEM : 0;
}

int policy_load_standard(const char *path, Policy **ret, PolicyError *err)
{
        int r;

        if (!path)
                path = AIRLOCK_POLICY_PATH;
        r = policy_load_file(path, ret, err);
        if (r == -ENOENT && streq(path, AIRLOCK_POLICY_PATH))
                return policy_load_default(ret);
        return r;
}

const PolicyProfile *policy_find_profile(const Policy *p, const char *name)
{
        if (!p || !name)
                return NULL;
        for (size_t i = 0; i < p->n_profiles; i++)
                if (p->profiles[i].name && streq(p->profiles[i].name, name))
                        return &p->profiles[i];
        return NULL;
}

const PolicyHost *policy_find_host(const Policy *p, const char *name)
{
        if (!p || !name)
                return NULL;
        for (size_t i = 0; i < p->n_hosts; i++)
                if (p->hosts[i].name && streq(p->hosts[i].name, name))
                        return &p->hosts[i];
        return NULL;
}

int policy_environment_approvals(const Policy *p, const char *environment)
{
        if (!p || !environment)
                return -1;
        for (size_t i = 0; i < p->n_approvals; i++)
                if (streq(p->approvals[i].environment, environment))
                        return (int)p->approvals[i].approvers;
        return -1;
}

void policy_error_format(const PolicyError *err, char *buf, size_t size)
{
        if (!buf || size == 0)
                return;
        if (err->line > 0)
                snprintf(buf, size, "%s:%u:%u: %s", err->file, err->line, err->column,
                         err->message);
        else
                snprintf(buf, size, "%s: %s", err->file, err->message);
}

const char *policy_action_to_string(PolicyAction a)
{
        switch (a) {
        case POLICY_ALLOW:
                return "allow";
        case POLICY_APPROVE:
                return "approve";
        case POLICY_DENY:
                return "deny";
        }
        return "deny";
}

const char *policy_net_mode_to_string(PolicyNetMode m)
{
        switch (m) {
        case POLICY_NET_NONE:
                return "none";
        case POLICY_NET_HOST:
                return "host";
        }
        return "none";
}

const char *policy_effect_kind_to_string(PolicyEffectKind k)
{
        switch (k) {
        case POLICY_EFFECT_NONE:
                return "none";
        case POLICY_EFFECT_READS_SECRET:
                return "reads-secret";
        case POLICY_EFFECT_WRITES_SECRET_CONTENT:
                return "writes-secret-content";
        case POLICY_EFFECT_WRITES:
                return "writes";
        case POLICY_EFFECT_DELETES:
                return "deletes";
        case POLICY_EFFECT_NETWORK:
                return "network";
        case POLICY_EFFECT_CONTACTS:
                return "contacts";
        }
        return "none";
}

const PolicyHost *policy_find_host_by_address(const Policy *p, const char *address)
{
        if (!p || !address)
                return NULL;
        for (size_t i = 0; i < p->n_hosts; i++)
                if (p->hosts[i].address && streq(p->hosts[i].address, address))
                        return &p->hosts[i];
        return NULL;
}
