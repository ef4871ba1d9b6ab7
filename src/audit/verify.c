/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The verifier: walks the file once, line by line, checking each record's
 * canonical form, its seq and prev link to the record before, every seal
 * (epoch order, and with the verification key, its MAC under the derived
 * epoch key), and torn regions against the torn_tail records that explain
 * them. At the first failure it looks one line ahead to say how the log
 * was changed (modified, missing, inserted, reordered).
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "audit/audit-internal.h"
#include "common/hash.h"
#include "common/util.h"

#define NO_RUN ((size_t)-1)

const char *audit_problem_name(AuditProblem p)
{
        switch (p) {
        case AUDIT_OK:
                return "ok";
        case AUDIT_PROBLEM_MALFORMED:
                return "malformed";
        case AUDIT_PROBLEM_MODIFIED:
                return "modified";
        case AUDIT_PROBLEM_MISSING:
                return "missing";
        case AUDIT_PROBLEM_INSERTED:
                return "inserted";
        case AUDIT_PROBLEM_REORDERED:
                return "reordered";
        case AUDIT_PROBLEM_TRUNCATED:
                return "truncated";
        case AUDIT_PROBLEM_TORN:
                return "torn";
        case AUDIT_PROBLEM_SEAL_MAC:
                return "seal-mac";
        case AUDIT_PROBLEM_SEAL_EPOCH:
                return "seal-epoch";
        case AUDIT_PROBLEM_SEAL_KEY:
                return "seal-key";
        case AUDIT_PROBLEM_HEAD_MISMATCH:
                return "head-mismatch";
        case AUDIT_PROBLEM_UNSEALED_TAIL:
                return "unsealed-tail";
        case AUDIT_PROBLEM_EMPTY:
                return "empty";
        }
        return "unknown";
}

int audit_parse_head(const char *s, AuditVerifyOptions *o)
{
        const char *colon = s ? strchr(s, ':') : NULL;
        char num[24];
        uint64_t seq;
        size_t n;

        if (!colon || (size_t)(colon - s) >= sizeof(num) || strlen(colon + 1) != AUDIT_HASH_HEX_LEN)
                return -EINVAL;
        n = (size_t)(colon - s);
        memcpy(num, s, n);
        num[n] = '\0';
        if (parse_u64(num, UINT64_MAX, &seq) < 0 || seq < 1)
                return -EINVAL;
        for (const char *p = colon + 1; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return -EINVAL;
        o->have_head = true;
        o->head_seq = seq;
        memcpy(o->head_hash, colon + 1, AUDIT_HASH_HEX_LEN + 1);
        return 0;
}

typedef struct {
        uint64_t lineno;
        size_t off, len;
        bool valid;
        json_t *rec; /* the parsed record, for seals and torn_tail only */
        uint64_t seq;
        char event[24];
        char prev[AUDIT_HASH_HEX_LEN + 1];
        char hash[AUDIT_HASH_HEX_LEN + 1];
} Line;

static void line_clear(Line *l)
{
        json_decref(l->rec);
        l->rec = NULL;
}

/* Reads the line at *pos; advances *pos. Returns false at the end of data. */
static bool line_read(const char *data, size_t size, size_t *pos, uint64_t lineno, Line *l)
{
        const char *nl;

        memset(l, 0, sizeof(*l));
        if (*pos >= size)
                return false;
        l->lineno = lineno;
        l->off = *pos;
        nl = memchr(data + *pos, '\n', size - *pos);
        l->len = nl ? (size_t)(nl - (data + *pos)) : size - *pos;
        *pos = nl ? (size_t)(nl - data) + 1 : size;
        /* A line without its newline is torn, whatever it looks like. */
        if (nl) {
                AuditScan sc;

                if (audit_scan_record(data + l->off, l->len, &sc) < 0)
                        return true;
                if (sc.needs_full && audit_parse_record(data + l->off, l->len, &l->rec) < 0)
                        return true;
                l->valid = true;
                l->seq = sc.seq;
                memcpy(l->prev, sc.prev, sizeof(l->prev));
                memcpy(l->event, sc.event, sizeof(l->event));
                audit_hash_line(data + l->off, l->len, NULL, l->hash);
        }
        return true;
}

_printf_(5, 6) static void report(AuditVerifyResult *r, AuditProblem p, uint64_t line, uint64_t seq,
                                  const char *fmt, ...)
{
        va_list ap;

        r->problem = p;
        r->line = line;
        r->seq = seq;
        va_start(ap, fmt);
        vsnprintf(r->message, sizeof(r->message), fmt, ap);
        va_end(ap);
}

static bool links(const Line *l, uint64_t seq, const char *prev)
{
        return l && l->valid && l->seq == seq && streq(l->prev, prev);
}

/*
 * The first broken link is between the last good record (pv, expected
 * next seq E and prev P) and cur; nx is the line after cur (may be NULL or
 * invalid). Names what happened.
 */
static void classify(AuditVerifyResult *r, const Line *pv, const Line *cur, const Line *nx,
                     uint64_t E, const char *P, bool cur_intact)
{
        bool nx_links_pv = links(nx, E, P);

        if (nx_links_pv && cur->seq == E + 1 && streq(cur->prev, nx->hash)) {
                report(r, AUDIT_PROBLEM_REORDERED, cur->lineno, cur->seq,
                       "line %llu holds seq %llu, which belongs after seq %llu on line %llu: "
                       "records "
                       "were reordered",
                       (unsigned long long)cur->lineno, (unsigned long long)cur->seq,
                       (unsigned long long)E, (unsigned long long)nx->lineno);
                return;
        }
        if (nx_links_pv) {
                report(r, AUDIT_PROBLEM_INSERTED, cur->lineno, cur->seq,
                       "line %llu (seq %llu) is not part of the chain: the record after it "
                       "continues "
                       "from line %llu — it was inserted",
                       (unsigned long long)cur->lineno, (unsigned long long)cur->seq,
                       (unsigned long long)(pv ? pv->lineno : 0));
                return;
        }
        if (cur->seq == E) {
                if (pv && (cur_intact || (nx && links(nx, cur->seq + 1, cur->hash)))) {
                        report(r, AUDIT_PROBLEM_MODIFIED, pv->lineno, pv->seq,
                               "record seq %llu (line %llu) was modified: seq %llu recorded its "
                               "hash "
                               "as %.16s…, it now hashes to %.16s…",
                               (unsigned long long)pv->seq, (unsigned long long)pv->lineno,
                               (unsigned long long)cur->seq, cur->prev, P);
                        return;
                }
                report(r, AUDIT_PROBLEM_MODIFIED, cur->lineno, cur->seq,
                       "record seq %llu (line %llu) was modified: its prev %.16s… is not the hash "
                       "%.16s… of the record before it",
                       (unsigned long long)cur->seq, (unsigned long long)cur->lineno, cur->prev, P);
                return;
        }
        if (streq(cur->prev, P)) {
                report(r, AUDIT_PROBLEM_MODIFIED, cur->lineno, cur->seq,
                       "record on line %llu was modified: it follows seq %llu but says seq %llu",
                       (unsigned long long)cur->lineno, (unsigned long long)E - 1,
                       (unsigned long long)cur->seq);
                return;
        }
        if (cur->seq > E) {
                if (nx && nx->valid && nx->seq == E) {
                        report(r, AUDIT_PROBLEM_REORDERED, cur->lineno, cur->seq,
                               "line %llu holds seq %llu before seq %llu: records were reordered",
                               (unsigned long long)cur->lineno, (unsigned long long)cur->seq,
                               (unsigned long long)E);
                        return;
                }
                report(r, AUDIT_PROBLEM_MISSING, cur->lineno, E,
                       "records seq %llu..%llu are missing: line %llu holds seq %llu right after "
                       "seq "
                       "%llu",
                       (unsigned long long)E, (unsigned long long)cur->seq - 1,
                       (unsigned long long)cur->lineno, (unsigned long long)cur->seq,
                       (unsigned long long)E - 1);
                return;
        }
        if (pv && cur->seq == pv->seq && streq(cur->prev, pv->prev)) {
                if (nx && links(nx, cur->seq + 1, cur->hash)) {
                        report(r, AUDIT_PROBLEM_INSERTED, pv->lineno, pv->seq,
                               "line %llu (seq %llu) is not part of the chain: line %llu has the "
                               "same "
                               "seq and predecessor and the chain continues from it — it was "
                               "inserted",
                               (unsigned long long)pv->lineno, (unsigned long long)pv->seq,
                               (unsigned long long)cur->lineno);
                        return;
                }
                report(r, AUDIT_PROBLEM_INSERTED, cur->lineno, cur->seq,
                       "line %llu repeats seq %llu of line %llu: a record was inserted",
                       (unsigned long long)cur->lineno, (unsigned long long)cur->seq,
                       (unsigned long long)pv->lineno);
                return;
        }
        report(r, AUDIT_PROBLEM_REORDERED, cur->lineno, cur->seq,
               "line %llu holds seq %llu after seq %llu: records were reordered or inserted",
               (unsigned long long)cur->lineno, (unsigned long long)cur->seq,
               (unsigned long long)E - 1);
}

typedef struct {
        bool keyed;
        uint8_t key[AUDIT_KEY_BYTES]; /* key of epoch cur_epoch */
        uint64_t cur_epoch;
        char vkey_id[AUDIT_KEYID_LEN + 1];
        char log_key[AUDIT_KEYID_LEN + 1];
        uint64_t last_epoch;
} SealState;

/* Returns true if the seal on line l is good; else reports. */
static bool seal_check(AuditVerifyResult *r, SealState *s, const Line *l)
{
        json_t *d = json_object_get(l->rec, "details");
        uint64_t epoch = (uint64_t)json_integer_value(json_object_get(d, "epoch"));
        const char *key = json_string_value(json_object_get(d, "key"));
        const char *mac = json_string_value(json_object_get(d, "mac"));
        char want[AUDIT_HASH_HEX_LEN + 1];

        if (!s->log_key[0])
                memcpy(s->log_key, key, sizeof(s->log_key));
        else if (!streq(s->log_key, key)) {
                report(r, AUDIT_PROBLEM_SEAL_KEY, l->lineno, l->seq,
                       "the seal at line %llu (seq %llu) names key %s, earlier seals key %s",
                       (unsigned long long)l->lineno, (unsigned long long)l->seq, key, s->log_key);
                return false;
        }
        if (s->keyed && !streq(s->vkey_id, key)) {
                report(r, AUDIT_PROBLEM_SEAL_KEY, l->lineno, l->seq,
                       "the seal at line %llu (seq %llu) was made with key %s, not with the "
                       "verification key given (%s)",
                       (unsigned long long)l->lineno, (unsigned long long)l->seq, key, s->vkey_id);
                return false;
        }
        if (epoch != s->last_epoch + 1) {
                report(r, AUDIT_PROBLEM_SEAL_EPOCH, l->lineno, l->seq,
                       "the seal at line %llu (seq %llu) has epoch %llu, expected %llu: an epoch "
                       "was "
                       "%s",
                       (unsigned long long)l->lineno, (unsigned long long)l->seq,
                       (unsigned long long)epoch, (unsigned long long)s->last_epoch + 1,
                       epoch <= s->last_epoch ? "reused" : "skipped");
                return false;
        }
        if (s->keyed) {
                while (s->cur_epoch < epoch) {
                        audit_key_evolve(s->key);
                        s->cur_epoch++;
                }
                if (audit_seal_mac(l->rec, s->key, want) < 0 ||
                    sodium_memcmp(want, mac, AUDIT_HASH_HEX_LEN) != 0) {
                        report(r, AUDIT_PROBLEM_SEAL_MAC, l->lineno, l->seq,
                               "the seal at line %llu (seq %llu, epoch %llu) does not verify under "
                               "the key: it, or the chain head it seals, was forged or changed",
                               (unsigned long long)l->lineno, (unsigned long long)l->seq,
                               (unsigned long long)epoch);
                        return false;
                }
        }
        s->last_epoch = epoch;
        return true;
}

/* With the key, a seal whose MAC verifies is known unchanged (used to place blame). */
static bool seal_intact(const SealState *s, const Line *l)
{
        json_t *d = json_object_get(l->rec, "details");
        uint64_t epoch = (uint64_t)json_integer_value(json_object_get(d, "epoch"));
        const char *mac = json_string_value(json_object_get(d, "mac"));
        uint8_t k[AUDIT_KEY_BYTES];
        char want[AUDIT_HASH_HEX_LEN + 1];
        bool ok;

        if (!s->keyed || !streq(l->event, AUDIT_EVENT_SEAL) || epoch < s->cur_epoch ||
            epoch - s->cur_epoch > 1000000)
                return false;
        memcpy(k, s->key, sizeof(k));
        for (uint64_t e = s->cur_epoch; e < epoch; e++)
                audit_key_evolve(k);
        ok = audit_seal_mac(l->rec, k, want) == 0 &&
             sodium_memcmp(want, mac, AUDIT_HASH_HEX_LEN) == 0;
        explicit_wipe(k, sizeof(k));
        return ok;
}

static bool torn_explained(const char *data, const Line *l, size_t run_start)
{
        json_t *d = json_object_get(l->rec, "details");
        uint64_t off = (uint64_t)json_integer_value(json_object_get(d, "offset"));
        uint64_t bytes = (uint64_t)json_integer_value(json_object_get(d, "bytes"));
        const char *sha = json_string_value(json_object_get(d, "sha256"));
        char want[SHA256_HEX_LEN + 1];

        if (!streq(l->event, AUDIT_EVENT_TORN_TAIL))
                return false;
        if (off != run_start || l->off < 1 || bytes != l->off - 1 - run_start)
                return false;
        if (sha256_hex(data + run_start, bytes, want) < 0)
                return false;
        return streq(want, sha);
}

int audit_verify_buffer(const char *data, size_t size, const AuditVerifyOptions *o,
                        AuditVerifyResult *ret)
{
        AuditVerifyResult r = { 0 };
        SealState s = { 0 };
        Line pv = { 0 }, cur = { 0 }, nx = { 0 };
        bool have_pv = false;
        char P[AUDIT_HASH_HEX_LEN + 1] = AUDIT_GENESIS_PREV;
        char last_event[24] = "", before_event[24] = "";
        uint64_t E = 1, lineno = 0, run_line = 0, first_unsealed_line = 0, first_unsealed_seq = 0;
        size_t pos = 0, run_start = NO_RUN;

        if (sodium_init() < 0)
                return -EIO;
        if (o && o->vkey) {
                if (audit_vkey_parse(o->vkey, s.key, s.vkey_id) < 0)
                        return -EINVAL;
                audit_key_evolve(s.key); /* k1: epochs start at 1 */
                s.cur_epoch = 1;
                s.keyed = true;
        }
        r.keyed = s.keyed;

        while (line_read(data, size, &pos, ++lineno, &cur)) {
                const char *event;

                if (!cur.valid) {
                        if (run_start == NO_RUN) {
                                run_start = cur.off;
                                run_line = lineno;
                        }
                        continue;
                }
                event = cur.event;
                if (!links(&cur, E, P)) {
                        size_t p2 = pos;

                        bool have_nx = line_read(data, size, &p2, lineno + 1, &nx);

                        classify(&r, have_pv ? &pv : NULL, &cur, have_nx ? &nx : NULL, E, P,
                                 seal_intact(&s, &cur));
                        /* An invalid line before a broken link is the first wrong one. */
                        if (run_start != NO_RUN)
                                report(&r, AUDIT_PROBLEM_MALFORMED, run_line, E,
                                       "line %llu is not a valid record (changed or corrupted), "
                                       "and "
                                       "no torn_tail record explains it",
                                       (unsigned long long)run_line);
                        goto done;
                }
                if (run_start != NO_RUN) {
                        if (!torn_explained(data, &cur, run_start)) {
                                report(&r, AUDIT_PROBLEM_MALFORMED, run_line, E,
                                       "line %llu is not a valid record (changed or corrupted), "
                                       "and no torn_tail record explains it",
                                       (unsigned long long)run_line);
                                goto done;
                        }
                        r.torn_recorded++;
                        run_start = NO_RUN;
                } else if (streq(event, AUDIT_EVENT_TORN_TAIL)) {
                        report(&r, AUDIT_PROBLEM_INSERTED, cur.lineno, cur.seq,
                               "line %llu is a torn_tail record, but no torn bytes precede it",
                               (unsigned long long)cur.lineno);
                        goto done;
                }
                if (o && o->have_head && cur.seq == o->head_seq && !streq(cur.hash, o->head_hash)) {
                        report(&r, AUDIT_PROBLEM_HEAD_MISMATCH, cur.lineno, cur.seq,
                               "record seq %llu (line %llu) hashes to %.16s…, but the external "
                               "head "
                               "says %.16s…: the log was rewritten from here or earlier",
                               (unsigned long long)cur.seq, (unsigned long long)cur.lineno,
                               cur.hash, o->head_hash);
                        goto done;
                }
                if (streq(event, AUDIT_EVENT_SEAL)) {
                        if (!seal_check(&r, &s, &cur))
                                goto done;
                        r.seals++;
                        r.sealed_through = cur.seq;
                        r.unsealed = 0;
                } else if (r.unsealed++ == 0) {
                        first_unsealed_line = cur.lineno;
                        first_unsealed_seq = cur.seq;
                }
                r.records++;
                r.last_seq = cur.seq;
                memcpy(r.last_hash, cur.hash, sizeof(r.last_hash));
                memcpy(before_event, last_event, sizeof(before_event));
                snprintf(last_event, sizeof(last_event), "%s", event);
                E = cur.seq + 1;
                memcpy(P, cur.hash, sizeof(P));
                line_clear(&pv);
                pv = cur;
                cur.rec = NULL;
                line_clear(&nx);
                have_pv = true;
        }

        r.closed =
                streq(last_event, AUDIT_EVENT_SEAL) && streq(before_event, AUDIT_EVENT_LOG_CLOSE);
        if (run_start != NO_RUN && data[size - 1] == '\n')
                /* A crash leaves a prefix: a complete line that is not a record was made. */
                report(&r, AUDIT_PROBLEM_MALFORMED, run_line, E,
                       "line %llu is not a valid record (changed or corrupted), and no torn_tail "
                       "record explains it",
                       (unsigned long long)run_line);
        else if (run_start != NO_RUN) {
                r.torn_tail = true;
                report(&r, AUDIT_PROBLEM_TORN, run_line, E,
                       "line %llu (offset %zu, %zu bytes) is a torn write at the end of the file: "
                       "the "
                       "writer was interrupted; its next start records it as torn_tail%s",
                       (unsigned long long)run_line, run_start, size - run_start,
                       r.unsealed ? "; the records before it are not sealed yet" : "");
        } else if (r.records == 0)
                report(&r, AUDIT_PROBLEM_EMPTY, 0, 0, "the log holds no records");
        else if (o && o->have_head && r.last_seq < o->head_seq)
                report(&r, AUDIT_PROBLEM_TRUNCATED, lineno, r.last_seq + 1,
                       "the log ends at seq %llu, but the external head is seq %llu: records "
                       "%llu..%llu were cut off",
                       (unsigned long long)r.last_seq, (unsigned long long)o->head_seq,
                       (unsigned long long)r.last_seq + 1, (unsigned long long)o->head_seq);
        else if (r.unsealed > 0)
                report(&r, AUDIT_PROBLEM_UNSEALED_TAIL, first_unsealed_line, first_unsealed_seq,
                       "records seq %llu..%llu (from line %llu) come after the last seal: only the "
                       "hash chain protects them, and anyone with root could rewrite them%s",
                       (unsigned long long)first_unsealed_seq, (unsigned long long)r.last_seq,
                       (unsigned long long)first_unsealed_line,
                       s.last_epoch ? ""
                                    : " (the log has no seal at all: run airlock log setup-keys)");
done:
        line_clear(&pv);
        line_clear(&cur);
        line_clear(&nx);
        explicit_wipe(&s, sizeof(s));
        *ret = r;
        return 0;
}

int audit_verify_file(const char *path, const AuditVerifyOptions *o, AuditVerifyResult *ret)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        void *m;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode)) {
                _cleanup_free_ char *buf = NULL;
                size_t n = 0;

                r = read_full_fd(fd, 1ULL << 30, &buf, &n);
                if (r < 0)
                        return r;
                return audit_verify_buffer(buf, n, o, ret);
        }
        if (st.st_size == 0)
                return audit_verify_buffer("", 0, o, ret);
        if ((uint64_t)st.st_size > (16ULL << 30))
                return -EFBIG;
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
                return negative_errno();
        (void)madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
        r = audit_verify_buffer(m, (size_t)st.st_size, o, ret);
        munmap(m, (size_t)st.st_size);
        return r;
}
