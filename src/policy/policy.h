/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The policy: one YAML file, validated strictly, loaded into an immutable
 * model that every part of airlock reads (the sandbox its secrets and
 * profiles, the broker its rules, hosts and approvers). Evaluation is pure.
 *
 * Ownership: a Policy is created by policy_load_*() and freed with
 * policy_free(); everything reachable from it is owned by it and must be
 * treated as read-only by callers.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macros.h"

#define POLICY_MAX_FILE_SIZE (1024 * 1024) /* a policy larger than 1 MiB is refused */

typedef enum {
        POLICY_DENY = 0, /* the zero value: decisions start as deny */
        POLICY_ALLOW,
        POLICY_APPROVE,
} PolicyAction;

typedef enum {
        POLICY_NET_NONE = 0, /* own network namespace, loopback only */
        POLICY_NET_HOST,     /* host network, TCP connect limited to ports */
} PolicyNetMode;

/* A parse or validation error: where it is and what is wrong. */
typedef struct {
        char file[256];    /* the file name as given (or "<default>") */
        unsigned line;     /* 1-based; 0 when not tied to a position */
        unsigned column;   /* 1-based */
        char message[512]; /* "unknown key 'foo' in rule; expected one of: ..." */
} PolicyError;

typedef struct {
        char *name;
        char *address;     /* IPv4/IPv6 literal or DNS name */
        char *environment; /* e.g. "production"; NULL if unset */
        char *cluster;     /* e.g. "pve"; NULL if not in a cluster */
        char **connect;    /* argv prefix to run a command there; NULL = default ssh */
} PolicyHost;

typedef struct {
        char *name;
        char **ro; /* extra read-only paths (besides the host tree) */
        char **rw; /* extra writable paths */
        PolicyNetMode net;
        uint16_t *ports; /* TCP ports allowed in net: host */
        size_t n_ports;
        char **env;          /* extra environment variable names passed through */
        uint64_t memory_max; /* bytes; 0 = airlock's default */
        uint64_t pids_max;   /* 0 = airlock's default */
        char **protect;      /* workspace-relative globs kept read-only (.git/hooks ...) */
} PolicyProfile;

/* One argv element pattern: a glob with brace sets, or "**" for "the rest". */
typedef struct {
        char *pattern;
        bool rest; /* "**": matches zero or more remaining arguments */
} PolicyArgPattern;

/* The kind of a rule's effect condition (see PolicyRule.effect). */
typedef enum {
        POLICY_EFFECT_NONE = 0,
        POLICY_EFFECT_READS_SECRET,          /* "reads-secret" */
        POLICY_EFFECT_WRITES_SECRET_CONTENT, /* "writes-secret-content" */
        POLICY_EFFECT_WRITES,                /* {writes: GLOB}: effect_arg is the path glob */
        POLICY_EFFECT_DELETES,               /* {deletes: GLOB}: effect_arg is the path glob */
        POLICY_EFFECT_NETWORK,               /* {network: ...}: see the network_* fields */
        POLICY_EFFECT_CONTACTS,              /* {contacts: DAEMON}: effect_arg is a glob */
} PolicyEffectKind;

typedef struct {
        unsigned line, column;   /* where the rule starts, for explanations */
        PolicyArgPattern *match; /* NULL if the rule has no argv condition */
        size_t n_match;
        char **hosts; /* conditions; NULL = any */
        char **environments;
        char **agents;    /* globs on the agent name */
        char *effect;     /* effect condition for plans (issue 6); NULL = none */
        char *effect_arg; /* e.g. the glob of "writes: GLOB" */
        PolicyAction action;
        unsigned approvers; /* for POLICY_APPROVE: distinct approvals needed; 0 = the target
                               environment's approvals:, else 1 */
        char *reason;       /* shown to agent and approver; may be NULL */
        /* Added after the first draft: */
        size_t index;    /* 1-based position in rules: */
        char **profiles; /* condition on the sandbox profile of the request; NULL = any */
        PolicyEffectKind effect_kind;
        /* {network: ...}: every set field must hold for a connection to match. */
        char *network_host;             /* an inventory host name; NULL = any */
        char *network_environment;      /* an environment; NULL = any */
        uint16_t network_port;          /* 0 = any */
        bool network_outside_inventory; /* {network: outside-inventory}: not an inventory host */
} PolicyRule;

typedef struct {
        char *environment;
        unsigned approvers;
} PolicyApprovalCount;

typedef struct Policy {
        char *source;    /* file name, or "<default>" for the embedded one */
        char digest[65]; /* sha256 hex of the source text: the policy version */
        char *text;      /* the source text itself (NUL-terminated), so that a helper
                            process can be handed exactly this policy */
        size_t text_len;
        char **secrets; /* paths and globs; "~/" means every user's home */
        PolicyHost *hosts;
        size_t n_hosts;
        PolicyApprovalCount *approvals;
        size_t n_approvals;
        char **approver_users; /* who may approve */
        char **approver_groups;
        PolicyProfile *profiles; /* always contains "default" */
        size_t n_profiles;
        char **protect; /* workspace files kept read-only in every profile (a built-in
                           list when the policy has no protect:) */
        PolicyRule *rules;
        size_t n_rules;
        PolicyAction default_action;
        unsigned default_approvers; /* 0 = the target environment's approvals:, else 1 */
        uint64_t request_ttl_usec;  /* pending requests expire after this; default 15 min */
} Policy;

/*
 * Loads and validates a policy. On success returns 0 and *ret (free with
 * policy_free()). On a validation error returns -EINVAL and fills *err (if
 * non-NULL) with file:line:column and a message; on I/O errors returns
 * -errno (and fills err with the reason). Files above POLICY_MAX_FILE_SIZE
 * are refused with -EFBIG.
 */
int policy_load_file(const char *path, Policy **ret, PolicyError *err);
int policy_load_string(const char *text, size_t len, const char *name, Policy **ret,
                       PolicyError *err);

/* The embedded default policy (compiled in). Returns 0 or -ENOMEM. */
int policy_load_default(Policy **ret);
/* The YAML text of the embedded default policy (static, NUL-terminated). */
const char *policy_default_text(void);

/*
 * Loads path if it exists, else the embedded default when path is the
 * standard location (AIRLOCK_POLICY_PATH) and is missing. A policy file that
 * exists but is invalid is an error: never a silent fallback.
 */
int policy_load_standard(const char *path, Policy **ret, PolicyError *err);

Policy *policy_free(Policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_free)

const PolicyProfile *policy_find_profile(const Policy *p, const char *name);
const PolicyHost *policy_find_host(const Policy *p, const char *name);

/* The number of approvals an environment requires (approvals: map), or -1 if unset. */
int policy_environment_approvals(const Policy *p, const char *environment);

/* Formats an error as "FILE:LINE:COLUMN: message" (or "FILE: message"). */
void policy_error_format(const PolicyError *err, char *buf, size_t size);

/* One network connection a plan attempted. */
typedef struct {
        const char *host;    /* the inventory host it resolves to; NULL = outside the inventory */
        const char *address; /* the address as attempted (for reasons); may be NULL */
        uint16_t port;       /* 0 = unknown */
} PolicyConnection;

/*
 * The effects of a request, as its plan observed them (issue 6). Every
 * list is NULL-terminated and may be NULL (= no such effect). Paths are
 * absolute. Borrowed by policy_evaluate().
 */
typedef struct {
        char *const *secrets_read;           /* secret files the command opened for reading */
        char *const *secret_content_written; /* files that received a secret's bytes */
        char *const *writes;                 /* files created or modified */
        char *const *deletes;                /* files deleted */
        const PolicyConnection *connections;
        size_t n_connections;
        char *const *contacts; /* daemons contacted: unit names, D-Bus names, "corosync" */
} PolicyEffects;

/* What is being asked: filled by the caller, borrowed by policy_evaluate(). */
typedef struct {
        char *const *argv;            /* the command (NULL-terminated) */
        const char *host;             /* target host name; NULL = the local host */
        const char *agent;            /* agent name; NULL = a human outside any sandbox */
        const char *profile;          /* sandbox profile the request came from; NULL = unknown */
        const PolicyEffects *effects; /* its plan's effects; NULL = not planned */
        const char *cwd; /* where the command will run (relative arguments); NULL = "/" */
} PolicyRequest;

typedef struct {
        PolicyAction action;    /* deny unless a rule or the default says otherwise */
        unsigned approvers;     /* for POLICY_APPROVE */
        const PolicyRule *rule; /* the deciding rule; NULL = the default */
        char reason[512];       /* human-readable: which rule, where, and why */
} PolicyDecision;

/*
 * Evaluates a request against the rules (first match wins; a rule with an
 * effect condition matches only when req->effects holds such an effect, so
 * never for a request without a plan; its other conditions must hold too).
 * The reason names the matching effect. Pure: no I/O.
 * Always fills *ret; starts from deny. Returns 0, or -EINVAL for a request
 * with no argv (decision stays deny).
 */
int policy_evaluate(const Policy *p, const PolicyRequest *req, PolicyDecision *ret);

/*
 * Glob match of one string: '*' and '?' (not crossing '/' when pathname is
 * true), '[...]' classes, '{a,b,c}' brace sets and '**' (crossing '/'). Used
 * for argv patterns and secret paths. Returns true on match.
 */
bool policy_glob_match(const char *pattern, const char *s, bool pathname);

/* Checks a glob's syntax. Returns 0, or -EINVAL with a message in why. */
int policy_glob_validate(const char *pattern, char *why, size_t why_size);

/*
 * Returns true if path (absolute; "." and ".." and repeated slashes are
 * normalized first) is a secret or lies beneath one. Pure: "~/X" matches X
 * beneath any directory, an over-approximation of "every user's home" that
 * fails closed. A pattern too complex to evaluate also counts as secret.
 * A relative path returns false.
 */
bool policy_path_is_secret(const Policy *p, const char *path);

/*
 * The secrets as absolute globs: each "~/X" expanded to X under every home
 * directory from the passwd database (and /root), duplicates removed.
 * Returns 0 and *ret (a strv; free with strv_free), or -ENOMEM. Reads the
 * passwd database with getpwent() under a lock of its own: safe to call from
 * several threads, but not while another part of the process walks the
 * database with getpwent() itself.
 */
int policy_secret_globs(const Policy *p, char ***ret);

/*
 * Like policy_load_file()/policy_load_string(), but collects every error
 * (up to 100) instead of the first. On success returns 0 with *ret_errors
 * NULL and *ret (if ret is non-NULL) the policy. On failure returns a
 * negative errno; *ret_errors (free()) holds *ret_n_errors errors.
 */
int policy_check_file(const char *path, Policy **ret, PolicyError **ret_errors,
                      size_t *ret_n_errors);
int policy_check_string(const char *text, size_t len, const char *name, Policy **ret,
                        PolicyError **ret_errors, size_t *ret_n_errors);

/*
 * Whether rule would match req, ignoring the order of rules. When it does
 * not and why is non-NULL, writes the first condition that failed. When it
 * does and the rule has an effect condition, why holds the matching effect
 * (e.g. "reads secret /etc/corosync/authkey"). Returns
 * 1, 0, or -1 if a pattern was too complex to evaluate.
 */
int policy_rule_matches(const Policy *p, const PolicyRule *rule, const PolicyRequest *req,
                        char *why, size_t why_size);

/* The inventory host whose address is exactly address, or NULL. */
const PolicyHost *policy_find_host_by_address(const Policy *p, const char *address);

const char *policy_action_to_string(PolicyAction a);
const char *policy_net_mode_to_string(PolicyNetMode m);
const char *policy_effect_kind_to_string(PolicyEffectKind k);
