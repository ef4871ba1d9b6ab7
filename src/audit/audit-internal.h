/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Shared between the audit module's files; not part of the API. */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"

#define AUDIT_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
#define AUDIT_KEY_BYTES  32
#define AUDIT_KEYID_LEN  16
/* How much invalid data at the end of the log the writer records as torn. */
#define AUDIT_TORN_MAX (4 * AUDIT_RECORD_MAX)

/* sha256 of a record line (without its newline): raw and hex. */
void audit_hash_line(const char *line, size_t len, uint8_t raw[32],
                     char hex[AUDIT_HASH_HEX_LEN + 1]);

/* "2026-01-02T03:04:05.123456Z" into buf (at least 32 bytes). */
void audit_format_time(uint64_t usec, char *buf, size_t size);
/* Strict inverse of audit_format_time(); also accepts plain dates "YYYY-MM-DD". */
int audit_parse_time(const char *s, uint64_t *ret);

/*
 * Checks caller-supplied fields (see audit_append()); writer_event allows
 * the writer's own events. Returns 0 or -EINVAL.
 */
int audit_fields_check(json_t *fields, bool writer_event);

/*
 * Builds the full record object: fixed keys, nulls for absent fields.
 * Returns 0 and *ret or -ENOMEM/-EINVAL.
 */
int audit_record_build(json_t *fields, uint64_t seq, uint64_t time_usec, const char *host,
                       const char *prev, json_t **ret);

/* Canonical text of a record (no newline), malloc'ed; NULL on failure. */
char *audit_record_dump(json_t *rec, size_t *ret_len);

/* Computes a seal MAC over the seal record with details.mac = "" (hex into mac_hex). */
int audit_seal_mac(json_t *seal_rec, const uint8_t key[AUDIT_KEY_BYTES],
                   char mac_hex[AUDIT_HASH_HEX_LEN + 1]);

/* k' = SHA-256("airlock-evolve-v1" || k), in place; the old key is wiped. */
void audit_key_evolve(uint8_t key[AUDIT_KEY_BYTES]);
/* The key id of k0: first 16 hex digits of SHA-256("airlock-keyid-v1" || k0). */
void audit_key_id(const uint8_t k0[AUDIT_KEY_BYTES], char id[AUDIT_KEYID_LEN + 1]);

/* Parses the verification key text into k0 and its id. Returns 0 or -EINVAL. */
int audit_vkey_parse(const char *text, uint8_t k0[AUDIT_KEY_BYTES], char id[AUDIT_KEYID_LEN + 1]);

typedef struct {
        char id[AUDIT_KEYID_LEN + 1];
        uint64_t epoch; /* the epoch the key is for: the next seal's epoch */
        uint8_t key[AUDIT_KEY_BYTES];
} AuditKeyState;

/*
 * Loads the key state from dir_fd (audit.key, or a newer audit.key.new left
 * by a crash, which it then moves into place). Returns 0, -ENOENT (no key),
 * -EKEYREJECTED (corrupt), or an I/O error.
 */
int audit_key_load(int dir_fd, AuditKeyState *ret);
/*
 * Replaces the stored key: writes audit.key.new, syncs, overwrites the old
 * audit.key's bytes with zeros and syncs (so the old epoch key does not
 * stay on the disk), renames the new file into place and syncs the
 * directory. Returns 0 or a negative errno.
 */
int audit_key_store(int dir_fd, const AuditKeyState *k, bool create);
/*
 * Opens the log's state directory (creating it 0700 if create), refusing
 * one that is not owned by us or is group/world-writable. Returns the fd or
 * a negative errno.
 */
int audit_state_dir_open(const char *state_dir, bool create);

/* Field access for parsed records (audit_parse_record() guarantees types). */
uint64_t audit_rec_seq(json_t *rec);
const char *audit_rec_str(json_t *rec, const char *key); /* NULL if null */

/*
 * The verifier's fast path: checks that line is one compact JSON object
 * (strict grammar, ASCII only, integers only, depth <= 32) with exactly the
 * record keys in sorted order and the right types, and extracts seq, prev
 * and event without building a tree. Returns 0 or -EBADMSG. Seal and
 * torn_tail records (needs_full) must also pass audit_parse_record().
 */
typedef struct {
        uint64_t seq;
        char prev[AUDIT_HASH_HEX_LEN + 1];
        char event[24];
        bool needs_full;
} AuditScan;
int audit_scan_record(const char *line, size_t len, AuditScan *ret);
