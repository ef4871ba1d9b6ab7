/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * airlock doctor: read-only diagnostics of corosync clusters across the
 * inventory.
 *
 *  - doctor_local_facts(): what this host knows about itself (corosync
 *    installed / enabled / running, its runtime view through corosync's own
 *    client libraries, keyed fingerprints of its cluster keys, secrets
 *    changed recently, the management endpoint). The key itself is read only
 *    to hash it, is wiped right after, and never leaves this function.
 *  - doctor_gather(): runs `CONNECT... airlock doctor --local --json` on many
 *    hosts in parallel, with a timeout each, and collects their facts.
 *  - doctor_findings(): pure analysis of the collected facts against the
 *    inventory: each finding has a severity, evidence and its meaning.
 *  - doctor_fix_plan(): turns findings into an ordered list of repair steps.
 *
 * Facts, reports and findings are jansson objects; their layout is the
 * `--json` output documented in airlock(1).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#define DOCTOR_FINGERPRINT_PREFIX "blake2b-128:"
#define DOCTOR_MAX_REPORT_SIZE \
        (4u * 1024 * 1024)           /* a host's --json facts larger than this are refused */
#define DOCTOR_MAX_SECRET_SCAN 20000 /* directory entries walked per secret glob */

typedef struct {
        char *const *secret_globs;  /* absolute globs (policy_secret_globs()); may be NULL */
        uint64_t secrets_since_sec; /* report secrets changed at or after this epoch second */
        const char *root;           /* prefix for every path read; NULL = "/" (unit tests) */
        bool probe_management;      /* connect to 127.0.0.1:8006 and time a GET */
        uint16_t management_port;   /* default 8006 */
        unsigned capture_seconds;   /* >0: capture incoming UDP 5405 this long (libpcap) */
} DoctorLocalOptions;

/*
 * Gathers this host's facts. Never fails for a missing or unreachable
 * component: what could not be learned is recorded as an "error" member
 * next to the fact. Returns 0 and *ret (a new JSON object), or -ENOMEM.
 */
int doctor_local_facts(const DoctorLocalOptions *opts, json_t **ret);

/*
 * Keyed BLAKE2b-128 of a key file's contents with airlock's fixed
 * per-purpose context, as "blake2b-128:HEX". Equal keys give equal
 * fingerprints on every host; the key cannot be recovered from it. buf is
 * not modified; out must hold DOCTOR_FINGERPRINT_LEN bytes. Returns 0 or
 * -EIO (libsodium unavailable).
 */
#define DOCTOR_FINGERPRINT_LEN (sizeof(DOCTOR_FINGERPRINT_PREFIX) + 32)
int doctor_fingerprint(const void *buf, size_t len, char out[DOCTOR_FINGERPRINT_LEN]);

/*
 * Parses corosync.conf text into {"cluster_name", "config_version",
 * "nodes": [{"name","nodeid","ring0_addr",...}]}. Unknown sections are
 * skipped; nesting deeper than 16 levels, lines over 4 KiB or more than
 * 1024 nodes are errors. Returns 0 and *ret, -EINVAL with why filled on a
 * syntax error, or -ENOMEM.
 */
int doctor_parse_corosync_conf(const char *text, size_t len, json_t **ret, char *why,
                               size_t why_size);

/* Live view of the local corosync through libcmap, libquorum, libvotequorum
 * and libcfg. Returns 0 and *ret, or a negative errno when corosync cannot be
 * reached (with why filled). */
int doctor_corosync_runtime(json_t **ret, char *why, size_t why_size);

/*
 * Captures incoming UDP 5405 for seconds (headers only) and returns
 * {"seconds", "packets", "sources": {address: packets}} or, when capturing
 * is not possible here, {"error": why}. Returns 0, or -ENOMEM.
 */
int doctor_capture_corosync(unsigned seconds, json_t **ret);

/* One host to ask. */
typedef struct {
        const char *name;
        char **argv; /* the full command: connect prefix + airlock doctor --local --json ... */
} DoctorTarget;

typedef void (*DoctorProgressFn)(size_t done, size_t total, const char *last_host, void *userdata);

/*
 * Runs every target's argv in parallel (at most max_parallel at once, no
 * shell, stdin /dev/null), waits at most timeout_usec for each, and returns
 * a JSON object {host: {"ok": true, "facts": {...}, "elapsed_ms": N} |
 * {"ok": false, "error": "...", "elapsed_ms": N}}. Output above
 * DOCTOR_MAX_REPORT_SIZE or not a JSON object is an error for that host.
 * Returns 0 and *ret, or a negative errno for local failures (fork, pipe).
 */
int doctor_gather(const DoctorTarget *targets, size_t n, unsigned max_parallel,
                  uint64_t timeout_usec, DoctorProgressFn progress, void *userdata, json_t **ret);

/*
 * Findings across hosts. hosts: the inventory (name, address, cluster);
 * reports: the doctor_gather() object. Returns 0 and *ret, a JSON array of
 * {"severity": "critical"|"warning"|"info", "kind", "host", "cluster",
 * "title", "evidence": [...], "meaning"} sorted by severity, or -ENOMEM.
 * Pure: no I/O.
 */
int doctor_findings(const PolicyHost *hosts, size_t n_hosts, json_t *reports, json_t **ret);

/*
 * Looks up each "secret-changed" finding in the audit log's records (an
 * array of parsed records, airlock-log(5)): a change on host H while an
 * airlock request ran on H (exec_start .. exec_end, 2 s of slack) is
 * explained — evidence names the request, its command and approver, and the
 * finding drops to "info"; otherwise evidence says no request explains it.
 * Returns 0 or -ENOMEM.
 */
int doctor_explain_secret_changes(json_t *findings, json_t *records, const char *log_name);

/* The number of findings that count (critical or warning). */
size_t doctor_findings_count_problems(json_t *findings);

/*
 * The ordered repair plan for findings: an array of steps {"step": N,
 * "host", "argv": [...], "why", "kind": "change"|"verify"}; verify steps run
 * airlock_command (the airlock binary on the hosts) with --local
 * --wait-quorate. Never runs anything. Returns 0 and *ret, or -ENOMEM.
 */
int doctor_fix_plan(const PolicyHost *hosts, size_t n_hosts, json_t *reports, json_t *findings,
                    const char *airlock_command, json_t **ret);
