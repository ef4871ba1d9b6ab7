/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The audit log: one append-only file of JSON lines, hash-chained and sealed
 * with forward-secure MACs. airlock-log(5) documents the format; this header
 * is the API the broker writes through and the CLI reads through.
 *
 * Writer: audit_open() / audit_append() / audit_append_many() / audit_close().
 * audit_append() returns only once the record is on disk (write + fdatasync,
 * grouped across concurrent callers). After any write failure the writer is
 * failed for good: every later call returns the same error, so the broker
 * refuses to act (fail closed) and reports audit_failure().
 *
 * Reader: audit_verify_buffer() checks the chain and, given the verification
 * key, every seal; it names the first wrong record and how it is wrong.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* File names inside the state directory. */
#define AUDIT_LOG_FILE "audit.log"
#define AUDIT_KEY_FILE "audit.key"

/* Format version, the "v" field of every record. */
#define AUDIT_FORMAT_VERSION 1

/* A record line (without its newline) is never longer than this. */
#define AUDIT_RECORD_MAX (64 * 1024)

/* Defaults for AuditOptions' sealing interval. */
#define AUDIT_SEAL_EVERY_RECORDS_DEFAULT 1000
#define AUDIT_SEAL_EVERY_USEC_DEFAULT    (10ULL * 1000000ULL)

/* journald MESSAGE_ID of every copy of a record (and "prev" of the first record). */
#define AUDIT_JOURNAL_MESSAGE_ID "4f8d1c2b7a6e45e39b0a5c3d2e1f7a60"
#define AUDIT_GENESIS_PREV       "0000000000000000000000000000000000000000000000000000000000000000"

#define AUDIT_HASH_HEX_LEN 64

/*
 * The event vocabulary: the only values of the "event" field. audit_append()
 * accepts the first group; the writer itself emits the second.
 * The expected "details" of each are listed in airlock-log(5).
 */
#define AUDIT_EVENT_BROKER_START  "broker_start"  /* details: version, pid */
#define AUDIT_EVENT_BROKER_STOP   "broker_stop"   /* details: reason */
#define AUDIT_EVENT_POLICY_LOADED "policy_loaded" /* details: path, sha256 */
#define AUDIT_EVENT_SESSION_START "session_start" /* agent set; details: profile, workspace */
#define AUDIT_EVENT_SESSION_END   "session_end"   /* agent set; details: exit_status */
#define AUDIT_EVENT_REQUEST_SUBMITTED \
        "request_submitted" /* request, agent, argv, target; details: why */
#define AUDIT_EVENT_REQUEST_PLANNED \
        "request_planned" /* details: plan_sha256, complete, effects; or error */
#define AUDIT_EVENT_REQUEST_DECIDED \
        "request_decided" /* details: decision, rules, approvers_needed */
#define AUDIT_EVENT_REQUEST_APPROVED \
        "request_approved" /* details: approver_uid, approver_name, why, shown_sha256 */
#define AUDIT_EVENT_REQUEST_DENIED \
        "request_denied" /* details: by (policy|approver), approver_uid, approver_name, why */
#define AUDIT_EVENT_REQUEST_EXPIRED "request_expired" /* details: ttl_sec */
#define AUDIT_EVENT_EXEC_START      "exec_start"      /* request, argv, target; details: pid */
#define AUDIT_EVENT_EXEC_END                                                                   \
        "exec_end" /* details: exit_status|signal, output_sha256, output_bytes, duration_usec, \
                      deviation_check */
#define AUDIT_EVENT_UNDO_START "undo_start" /* details: of_request */
#define AUDIT_EVENT_UNDO_END   "undo_end"   /* details: exit_status */
#define AUDIT_EVENT_APPROVAL_REFUSED                                                      \
        "approval_refused" /* request; details: verdict, reason, message, uid, user, pid, \
                              unrecorded_before */
#define AUDIT_EVENT_POLICY_REJECTED "policy_rejected" /* details: path, error, kept_sha256 */

/* Emitted by the writer only; audit_append() refuses them. */
#define AUDIT_EVENT_LOG_OPEN  "log_open"  /* details: pid, sealing, previous_closed */
#define AUDIT_EVENT_LOG_CLOSE "log_close" /* details: pid */
#define AUDIT_EVENT_TORN_TAIL "torn_tail" /* details: offset, bytes, sha256 of the torn bytes */
#define AUDIT_EVENT_SEAL      "seal"      /* details: epoch, key, mac */

/* True if event is in the vocabulary above (writer events included). */
bool audit_event_known(const char *event);

typedef enum {
        AUDIT_COPY_AUTO = 0, /* journald if it accepts the message, else syslog */
        AUDIT_COPY_JOURNAL,  /* sd_journal_send() only */
        AUDIT_COPY_SYSLOG,   /* syslog datagrams to syslog_socket only */
        AUDIT_COPY_NONE,     /* no copy outside the file (tests) */
} AuditCopyMode;

typedef struct {
        const char *state_dir;       /* required; created 0700 if missing */
        const char *host;            /* the "host" field; NULL: gethostname() */
        uint64_t seal_every_records; /* 0: AUDIT_SEAL_EVERY_RECORDS_DEFAULT */
        uint64_t seal_every_usec;    /* 0: AUDIT_SEAL_EVERY_USEC_DEFAULT */
        AuditCopyMode copy;          /* where each record's copy goes */
        const char *syslog_socket;   /* NULL: /dev/log */
        bool require_sealing;        /* refuse to open (-ENOKEY) without a seal key */
} AuditOptions;

typedef struct AuditWriter AuditWriter;

/*
 * Opens (creating if needed) STATE_DIR/audit.log for appending: the state
 * directory is created 0700 and must be owned by us and not group/world
 * writable; the file is opened O_APPEND, mode 0600, and locked (flock) so
 * there is one writer. Reads the end of the existing log to continue the
 * chain: a torn last line (bytes after the last newline, left by a crash) is
 * kept in place, terminated with a newline and followed by a "torn_tail"
 * record naming its offset, length and SHA-256 (see airlock-log(5)). Then
 * writes and syncs a "log_open" record. Loads the seal key (audit.key) if
 * setup-keys ran, catching up its epoch with the log's last seal.
 *
 * Starts two background threads: one seals on time, one writes and syncs
 * what audit_append_start() queued.
 * Returns 0 and *ret (free with audit_close()), or a negative errno:
 * -EBUSY another writer holds the log, -EBADMSG the log's last complete line
 * is not a valid record (refuses to continue a chain it cannot read),
 * -EKEYREJECTED the key file is corrupt or belongs to another log, -ENOKEY
 * no key and require_sealing, -EPERM unsafe state directory, or an I/O error.
 */
int audit_open(const AuditOptions *o, AuditWriter **ret);

/*
 * Appends one record and returns once it is durable (written and
 * fdatasync'ed), grouping concurrent callers into one sync. Thread-safe.
 *
 * fields is borrowed (not stolen, not modified): a JSON object with exactly
 * these keys, all but "event" optional:
 *   "event"   string, one of the AUDIT_EVENT_* that callers may emit
 *   "request" string, the request id
 *   "agent"   object {"name": str, "session": str, "uid": int, "started_by": str}
 *             (each member optional)
 *   "argv"    array of strings
 *   "target"  string, the target host
 *   "details" object; integers, strings, booleans, null, arrays, objects —
 *             no reals (they have no single canonical text)
 * The writer adds v, seq, time, host and prev. Strings must be valid UTF-8
 * (jansson guarantees it for strings it built); escape raw bytes first.
 *
 * Returns 0 and writes *ret_seq (may be NULL) with the record's sequence
 * number, or: -EINVAL (fields malformed, unknown key or event), -E2BIG (the
 * record line would exceed AUDIT_RECORD_MAX), -ESHUTDOWN (closed), or the
 * error that failed the writer (e.g. -EIO, -ENOSPC): once a write or sync has
 * failed, every later call returns that error and nothing more is written —
 * the caller must not act on what it could not record.
 */
int audit_append(AuditWriter *w, json_t *fields, uint64_t *ret_seq);

/*
 * Appends n records (fields[0..n-1], each as for audit_append()) as
 * consecutive records of the chain, and returns once all of them are durable
 * — one write and one fdatasync for the batch (shared with concurrent
 * callers as audit_append() does). For transitions decided together: each
 * record is still on disk before the caller acts on any of them.
 *
 * Every fields[i] is checked before any is queued: -EINVAL queues nothing.
 * If building record i fails later (-E2BIG, -ENOMEM), the records before it
 * stay in the chain and are synced, and the error is returned: the caller
 * must treat the batch as not recorded and not act on it. Returns 0 and
 * writes *ret_last_seq (may be NULL) with the last record's sequence number,
 * or the errors audit_append() returns. n == 0 waits until everything queued
 * so far is durable.
 */
int audit_append_many(AuditWriter *w, json_t *const *fields, size_t n, uint64_t *ret_last_seq);

/*
 * The first half of audit_append_many(): queues the n records (consecutive
 * in the chain, checked as audit_append_many() checks them) and hands their
 * write and fdatasync to the writer's sync thread, then returns at once with
 * *ret_last_seq, before they are durable. The caller may do other work (its
 * own database commit) meanwhile, and must call audit_wait_durable() with
 * that seq before it acts on any of the records. Returns 0, or the errors
 * audit_append_many() returns: then the batch must be treated as not
 * recorded (records queued before a failing one are still written).
 */
int audit_append_start(AuditWriter *w, json_t *const *fields, size_t n, uint64_t *ret_last_seq);

/*
 * Returns once every record up to seq (from audit_append_start()) is
 * durable: 0, or the error that failed the writer (nothing may be acted on),
 * or -EINVAL if seq was never queued.
 */
int audit_wait_durable(AuditWriter *w, uint64_t seq);

/*
 * Appends a seal now if records were written since the last one (the writer
 * also does so by itself every seal_every_records records and every
 * seal_every_usec). Returns 0 or the writer's error; -ENOKEY if there is no
 * seal key.
 */
int audit_seal_now(AuditWriter *w);

/*
 * The error that failed the writer (negative errno), or 0 while healthy.
 * Thread-safe.
 */
int audit_failure(AuditWriter *w);

/*
 * Sequence number and hash (64 hex digits + NUL) of the last durable record.
 * Thread-safe. This is the "external head" airlock log verify --head checks.
 */
void audit_head(AuditWriter *w, uint64_t *ret_seq, char ret_hash[AUDIT_HASH_HEX_LEN + 1]);

/*
 * Writes a "log_close" record and a final seal (if there is a key), syncs,
 * stops the background threads and frees w. Accepts NULL. Returns 0, or the
 * writer's error (w is freed in any case). Call it only after every
 * audit_append() on w has returned, and call nothing on w afterwards.
 */
int audit_close(AuditWriter *w);

/* ---- seal keys ---- */

/*
 * Creates STATE_DIR/audit.key for a new log: draws k0, stores the epoch-1
 * key k1 = evolve(k0) (k0 itself never touches the disk) and writes the
 * verification key text (k0, its key id and a checksum, NUL-terminated)
 * into ret_vkey, which must hold AUDIT_VKEY_MAX bytes. Returns 0, -EEXIST if
 * a key file exists or the log already carries seals, or an I/O error.
 */
#define AUDIT_VKEY_MAX 128
int audit_setup_keys(const char *state_dir, char ret_vkey[AUDIT_VKEY_MAX]);

/* ---- reading and verifying ---- */

typedef enum {
        AUDIT_OK = 0,
        AUDIT_PROBLEM_MALFORMED,     /* a line is not a valid canonical record */
        AUDIT_PROBLEM_MODIFIED,      /* a record's bytes changed after it was chained */
        AUDIT_PROBLEM_MISSING,       /* records removed from the middle */
        AUDIT_PROBLEM_INSERTED,      /* a record that is not part of the chain */
        AUDIT_PROBLEM_REORDERED,     /* records out of order */
        AUDIT_PROBLEM_TRUNCATED,     /* records known to exist (--head) are gone */
        AUDIT_PROBLEM_TORN,          /* a partial last line not yet recorded by a torn_tail */
        AUDIT_PROBLEM_SEAL_MAC,      /* a seal's MAC does not verify under the key */
        AUDIT_PROBLEM_SEAL_EPOCH,    /* a seal's epoch is reused or skips one */
        AUDIT_PROBLEM_SEAL_KEY,      /* a seal was made with another key */
        AUDIT_PROBLEM_HEAD_MISMATCH, /* the record at the external head's seq has another hash */
        AUDIT_PROBLEM_UNSEALED_TAIL, /* records after the last seal (chain intact) */
        AUDIT_PROBLEM_EMPTY,         /* no records at all */
} AuditProblem;

/* Stable name of a problem ("modified", "unsealed-tail", ...). */
const char *audit_problem_name(AuditProblem p);

typedef struct {
        const char *vkey; /* verification key text from setup-keys; NULL: chain only */
        bool have_head;   /* check against an external head */
        uint64_t head_seq;
        char head_hash[AUDIT_HASH_HEX_LEN + 1];
} AuditVerifyOptions;

typedef struct {
        AuditProblem problem; /* the first problem found; AUDIT_OK if none */
        uint64_t line;        /* 1-based line of the first wrong record (0 if none) */
        uint64_t seq;         /* its sequence number, or the first missing one */
        char message[512];    /* one sentence for a person */
        bool keyed;           /* seals were checked with a key */
        bool closed;          /* the log ends with log_close + seal */
        uint64_t records;     /* valid chained records before the first problem */
        uint64_t seals;       /* seals checked (MAC verified if keyed) */
        uint64_t last_seq;    /* last chained record */
        char last_hash[AUDIT_HASH_HEX_LEN + 1];
        uint64_t sealed_through; /* highest seq covered by a seal */
        uint64_t torn_recorded;  /* torn regions explained by torn_tail records */
        bool torn_tail;          /* the file ends in a torn region no record explains yet */
        uint64_t unsealed;       /* chained records after the last seal */
} AuditVerifyResult;

/*
 * Verifies a whole log held in memory. Returns 0 after filling *ret
 * (problem AUDIT_OK if intact, else the first problem), -EINVAL if the
 * verification key text is malformed (bad checksum), or -ENOMEM.
 * Never reads past size; data need not be NUL-terminated.
 */
int audit_verify_buffer(const char *data, size_t size, const AuditVerifyOptions *o,
                        AuditVerifyResult *ret);

/* Reads path (at most 16 GiB) and verifies it as audit_verify_buffer(). */
int audit_verify_file(const char *path, const AuditVerifyOptions *o, AuditVerifyResult *ret);

/*
 * Parses "SEQ:HASH" (the external head) into o. Returns 0 or -EINVAL.
 */
int audit_parse_head(const char *s, AuditVerifyOptions *o);

/*
 * Parses a record's "time" text ("2026-11-28T10:57:01.123456Z"), also
 * "YYYY-MM-DDTHH:MM:SSZ" and a plain date "YYYY-MM-DD" (midnight UTC), into
 * microseconds since the epoch. Returns 0 or -EINVAL.
 */
int audit_parse_time_text(const char *s, uint64_t *ret_usec);

/*
 * Parses one record line (without newline) strictly: canonical form, all
 * fields present with their types. Returns 0 and *ret (a new reference) or
 * -EBADMSG. Used by `airlock log` to print the timeline.
 */
int audit_parse_record(const char *line, size_t len, json_t **ret);
