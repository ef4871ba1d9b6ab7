/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The record format: building, canonical serialization and strict parsing.
 * Canonical text = jansson's JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII
 * dump of an object with exactly the keys below; a line is valid only if
 * re-dumping its parse gives back the same bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit/audit-internal.h"
#include "common/hash.h"
#include "common/macros.h"

#if AUDIT_HAVE_LIBCRYPTO
#include <dlfcn.h>
#include <openssl/evp.h>
#endif

static const char *const caller_events[] = {
        AUDIT_EVENT_BROKER_START,     AUDIT_EVENT_BROKER_STOP,     AUDIT_EVENT_POLICY_LOADED,
        AUDIT_EVENT_SESSION_START,    AUDIT_EVENT_SESSION_END,     AUDIT_EVENT_REQUEST_SUBMITTED,
        AUDIT_EVENT_REQUEST_PLANNED,  AUDIT_EVENT_REQUEST_DECIDED, AUDIT_EVENT_REQUEST_APPROVED,
        AUDIT_EVENT_REQUEST_DENIED,   AUDIT_EVENT_REQUEST_EXPIRED, AUDIT_EVENT_EXEC_START,
        AUDIT_EVENT_EXEC_END,         AUDIT_EVENT_UNDO_START,      AUDIT_EVENT_UNDO_END,
        AUDIT_EVENT_APPROVAL_REFUSED, AUDIT_EVENT_POLICY_REJECTED,
};

static const char *const writer_events[] = {
        AUDIT_EVENT_LOG_OPEN,
        AUDIT_EVENT_LOG_CLOSE,
        AUDIT_EVENT_TORN_TAIL,
        AUDIT_EVENT_SEAL,
};

static bool in_list(const char *const *l, size_t n, const char *s)
{
        for (size_t i = 0; i < n; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

bool audit_event_known(const char *event)
{
        return event && (in_list(caller_events, ELEMENTSOF(caller_events), event) ||
                         in_list(writer_events, ELEMENTSOF(writer_events), event));
}

#if AUDIT_HAVE_LIBCRYPTO
/*
 * Hashing every line is most of what verification costs. OpenSSL's SHA-256
 * uses the CPU's SHA extensions where libsodium's does not (about 2.5x
 * faster on 400-byte lines here), so use it when it is installed. It is
 * loaded at the first hash, not linked: loading libcrypto costs about 0.7 ms,
 * which every start of the airlock command (airlock run, airlock exec)
 * would pay for nothing. dlopen() searches as the dynamic linker does for a
 * DT_NEEDED entry (LD_LIBRARY_PATH is ignored in a secure-execution
 * process), so this trusts no library that linking would not have trusted;
 * and a hash is a hash: whichever implementation runs, a wrong digest fails
 * verification against the one the writer recorded.
 */
static struct {
        __typeof__(EVP_MD_fetch) *md_fetch;
        __typeof__(EVP_Digest) *digest;
        EVP_MD *sha256;
} ossl;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_load(void)
{
        void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
        void *f, *d;

        if (!h)
                return; /* not installed: libsodium's SHA-256 gives the same hashes */
        f = dlsym(h, "EVP_MD_fetch");
        d = dlsym(h, "EVP_Digest");
        if (!f || !d)
                return;
        /* POSIX guarantees a function pointer survives the trip through void *. */
        memcpy(&ossl.md_fetch, &f, sizeof(f));
        memcpy(&ossl.digest, &d, sizeof(d));
        ossl.sha256 = ossl.md_fetch(NULL, "SHA256", NULL);
}
#endif

void audit_hash_line(const char *line, size_t len, uint8_t raw[32],
                     char hex[AUDIT_HASH_HEX_LEN + 1])
{
        uint8_t d[crypto_hash_sha256_BYTES];
#if AUDIT_HAVE_LIBCRYPTO
        unsigned n = 0;

        pthread_once(&sha256_once, sha256_load);
        if (!ossl.sha256 || ossl.digest(line, len, d, &n, ossl.sha256, NULL) != 1 || n != sizeof(d))
#endif
                crypto_hash_sha256(d, (const unsigned char *)line, len);
        if (raw)
                memcpy(raw, d, sizeof(d));
        if (hex)
                hex_encode(d, sizeof(d), hex);
}

void audit_format_time(uint64_t usec, char *buf, size_t size)
{
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;

        gmtime_r(&t, &tm);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(usec % 1000000));
}

static int digits(const char *s, size_t n, unsigned *ret)
{
        unsigned v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        *ret = v;
        return 0;
}

int audit_parse_time(const char *s, uint64_t *ret)
{
        unsigned Y, M, D, h = 0, m = 0, sec = 0, us = 0;
        size_t n = strlen(s);
        struct tm tm = { 0 };
        time_t t;

        if (n < 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &Y) < 0 ||
            digits(s + 5, 2, &M) < 0 || digits(s + 8, 2, &D) < 0)
                return -EINVAL;
        if (n > 10) {
                if (n < 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
                    digits(s + 11, 2, &h) < 0 || digits(s + 14, 2, &m) < 0 ||
                    digits(s + 17, 2, &sec) < 0)
                        return -EINVAL;
                if (n == 20) {
                        if (s[19] != 'Z')
                                return -EINVAL;
                } else if (n == 27) {
                        if (s[19] != '.' || s[26] != 'Z' || digits(s + 20, 6, &us) < 0)
                                return -EINVAL;
                } else
                        return -EINVAL;
        }
        if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
                return -EINVAL;
        tm.tm_year = (int)Y - 1900;
        tm.tm_mon = (int)M - 1;
        tm.tm_mday = (int)D;
        tm.tm_hour = (int)h;
        tm.tm_min = (int)m;
        tm.tm_sec = (int)sec;
        t = timegm(&tm);
        if (t < 0)
                return -EINVAL;
        *ret = (uint64_t)t * 1000000ULL + us;
        return 0;
}

int audit_parse_time_text(const char *s, uint64_t *ret_usec)
{
        return audit_parse_time(s, ret_usec);
}

/* No reals anywhere: they have no single canonical text. Depth-limited. */
static bool json_no_reals(json_t *v, unsigned depth)
{
        const char *k;
        json_t *e;
        size_t i;

        if (depth > 32)
                return false;
        switch (json_typeof(v)) {
        case JSON_REAL:
                return false;
        case JSON_OBJECT:
                json_object_foreach(v, k, e) if (!json_no_reals(e, depth + 1)) return false;
                return true;
        case JSON_ARRAY:
                json_array_foreach(v, i, e) if (!json_no_reals(e, depth + 1)) return false;
                return true;
        case JSON_STRING:
        case JSON_INTEGER:
        case JSON_TRUE:
        case JSON_FALSE:
        case JSON_NULL:
                return true;
        }
        return false;
}

static bool is_string_or_null(json_t *v)
{
        return !v || json_is_string(v) || json_is_null(v);
}

static int agent_check(json_t *a)
{
        const char *k;
        json_t *v;

        if (!a || json_is_null(a))
                return 0;
        if (!json_is_object(a))
                return -EINVAL;
        json_object_foreach(a, k, v)
        {
                if (streq(k, "uid")) {
                        if (!json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 0 ||
                                                 json_integer_value(v) > UINT32_MAX))
                                return -EINVAL;
                } else if (streq(k, "name") || streq(k, "session") || streq(k, "started_by")) {
                        if (!is_string_or_null(v))
                                return -EINVAL;
                } else
                        return -EINVAL;
        }
        return 0;
}

static int argv_check(json_t *a)
{
        size_t i;
        json_t *v;

        if (!a || json_is_null(a))
                return 0;
        if (!json_is_array(a))
                return -EINVAL;
        json_array_foreach(a, i, v) if (!json_is_string(v)) return -EINVAL;
        return 0;
}

int audit_fields_check(json_t *fields, bool writer_event)
{
        const char *k, *event;
        json_t *v;

        if (!json_is_object(fields))
                return -EINVAL;
        event = json_string_value(json_object_get(fields, "event"));
        if (!event)
                return -EINVAL;
        if (!in_list(caller_events, ELEMENTSOF(caller_events), event) &&
            !(writer_event && in_list(writer_events, ELEMENTSOF(writer_events), event)))
                return -EINVAL;
        json_object_foreach(fields, k, v)
        {
                if (streq(k, "event"))
                        continue;
                if (streq(k, "request") || streq(k, "target")) {
                        if (!is_string_or_null(v))
                                return -EINVAL;
                } else if (streq(k, "agent")) {
                        if (agent_check(v) < 0)
                                return -EINVAL;
                } else if (streq(k, "argv")) {
                        if (argv_check(v) < 0)
                                return -EINVAL;
                } else if (streq(k, "details")) {
                        if (!json_is_object(v) && !json_is_null(v))
                                return -EINVAL;
                        if (!json_no_reals(v, 0))
                                return -EINVAL;
                } else
                        return -EINVAL;
        }
        return 0;
}

static json_t *get_or_null(json_t *fields, const char *key)
{
        json_t *v = json_object_get(fields, key);

        return v ? json_incref(v) : json_null();
}

int audit_record_build(json_t *fields, uint64_t seq, uint64_t time_usec, const char *host,
                       const char *prev, json_t **ret)
{
        json_t *rec, *details, *agent;
        char t[40];

        audit_format_time(time_usec, t, sizeof(t));
        details = json_object_get(fields, "details");
        details = (details && json_is_object(details)) ? json_deep_copy(details) : json_object();
        agent = json_object_get(fields, "agent");
        if (agent && json_is_object(agent)) {
                /* Fixed members: absent ones become null, so every record has the same shape. */
                static const char *const keys[] = { "name", "session", "uid", "started_by" };
                json_t *a = json_object();

                for (size_t i = 0; a && i < ELEMENTSOF(keys); i++)
                        if (json_object_set_new(a, keys[i], get_or_null(agent, keys[i])) < 0)
                                a = NULL;
                agent = a;
        } else
                agent = json_null();
        rec = json_pack("{s:i, s:I, s:s, s:s, s:O, s:o, s:o, s:o, s:o, s:o, s:s}", "v",
                        AUDIT_FORMAT_VERSION, "seq", (json_int_t)seq, "time", t, "host", host,
                        "event", json_object_get(fields, "event"), "request",
                        get_or_null(fields, "request"), "agent", agent, "argv",
                        get_or_null(fields, "argv"), "target", get_or_null(fields, "target"),
                        "details", details, "prev", prev);
        if (!rec)
                return -ENOMEM;
        *ret = rec;
        return 0;
}

char *audit_record_dump(json_t *rec, size_t *ret_len)
{
        char *s = json_dumps(rec, AUDIT_JSON_FLAGS);

        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}

static bool is_hex(const char *s, size_t n)
{
        if (!s || strlen(s) != n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static int seal_details_check(json_t *d)
{
        json_t *e = json_object_get(d, "epoch");

        if (json_object_size(d) != 3 || !json_is_integer(e) || json_integer_value(e) < 1 ||
            !is_hex(json_string_value(json_object_get(d, "key")), AUDIT_KEYID_LEN) ||
            !is_hex(json_string_value(json_object_get(d, "mac")), AUDIT_HASH_HEX_LEN))
                return -EBADMSG;
        return 0;
}

static int torn_details_check(json_t *d)
{
        json_t *o = json_object_get(d, "offset"), *b = json_object_get(d, "bytes");

        if (!json_is_integer(o) || json_integer_value(o) < 0 || !json_is_integer(b) ||
            json_integer_value(b) < 0 || json_integer_value(b) > AUDIT_TORN_MAX ||
            !is_hex(json_string_value(json_object_get(d, "sha256")), AUDIT_HASH_HEX_LEN))
                return -EBADMSG;
        return 0;
}

int audit_parse_record(const char *line, size_t len, json_t **ret)
{
        static const char *const keys[] = { "v",      "seq",     "time",  "host",
                                            "event",  "request", "agent", "argv",
                                            "target", "details", "prev" };
        json_t *rec = NULL, *v, *seq;
        json_error_t err;
        const char *event;
        uint64_t t;
        size_t n;
        int r = -EBADMSG;

        if (len == 0 || len > AUDIT_RECORD_MAX || line[0] != '{')
                return -EBADMSG;
        rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
        if (!rec)
                return -EBADMSG;
        if (!json_is_object(rec) || json_object_size(rec) != ELEMENTSOF(keys))
                goto fail;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (!json_object_get(rec, keys[i]))
                        goto fail;
        v = json_object_get(rec, "v");
        seq = json_object_get(rec, "seq");
        if (!json_is_integer(v) || json_integer_value(v) != AUDIT_FORMAT_VERSION ||
            !json_is_integer(seq) || json_integer_value(seq) < 1 ||
            !json_is_string(json_object_get(rec, "host")) ||
            !is_hex(json_string_value(json_object_get(rec, "prev")), AUDIT_HASH_HEX_LEN) ||
            !json_is_object(json_object_get(rec, "details")))
                goto fail;
        if (!json_is_string(json_object_get(rec, "time")) ||
            audit_parse_time(json_string_value(json_object_get(rec, "time")), &t) < 0 ||
            strlen(json_string_value(json_object_get(rec, "time"))) != 27)
                goto fail;
        event = json_string_value(json_object_get(rec, "event"));
        if (!audit_event_known(event))
                goto fail;
        if (!is_string_or_null(json_object_get(rec, "request")) ||
            !is_string_or_null(json_object_get(rec, "target")) ||
            agent_check(json_object_get(rec, "agent")) < 0 ||
            argv_check(json_object_get(rec, "argv")) < 0 ||
            !json_no_reals(json_object_get(rec, "details"), 0))
                goto fail;
        v = json_object_get(rec, "agent");
        if (json_is_object(v) && json_object_size(v) != 4)
                goto fail;
        if (streq(event, AUDIT_EVENT_SEAL) &&
            seal_details_check(json_object_get(rec, "details")) < 0)
                goto fail;
        if (streq(event, AUDIT_EVENT_TORN_TAIL) &&
            torn_details_check(json_object_get(rec, "details")) < 0)
                goto fail;
        {
                _cleanup_free_ char *canon = audit_record_dump(rec, &n);

                if (!canon) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (n != len || memcmp(canon, line, len) != 0)
                        goto fail;
        }
        *ret = rec;
        return 0;
fail:
        json_decref(rec);
        return r;
}

uint64_t audit_rec_seq(json_t *rec)
{
        return (uint64_t)json_integer_value(json_object_get(rec, "seq"));
}

const char *audit_rec_str(json_t *rec, const char *key)
{
        return json_string_value(json_object_get(rec, key));
}

int audit_seal_mac(json_t *seal_rec, const uint8_t key[AUDIT_KEY_BYTES],
                   char mac_hex[AUDIT_HASH_HEX_LEN + 1])
{
        _cleanup_free_ char *text = NULL;
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        json_t *copy, *d;
        size_t n;

        copy = json_deep_copy(seal_rec);
        if (!copy)
                return -ENOMEM;
        d = json_object_get(copy, "details");
        if (!json_is_object(d) || json_object_set_new(d, "mac", json_string("")) < 0) {
                json_decref(copy);
                return -EINVAL;
        }
        text = audit_record_dump(copy, &n);
        json_decref(copy);
        if (!text)
                return -ENOMEM;
        crypto_auth_hmacsha256(mac, (const unsigned char *)text, n, key);
        hex_encode(mac, sizeof(mac), mac_hex);
        return 0;
}

/* ---- the fast scanner ---- */

typedef struct {
        const char *p, *end;
} Cursor;

/* Printable ASCII other than quote and backslash: bytes a string holds as they are. */
static const bool plain_char[256] = {
        [0x20 ... 0x21] = true, /* 0x22 is '"' */
        [0x23 ... 0x5b] = true, /* 0x5c is '\\' */
        [0x5d ... 0x7f] = true,
};

/* A string; ret_s and ret_n: its raw (escaped) contents. ASCII only, as written. */
static int scan_string(Cursor *c, const char **ret_s, size_t *ret_n)
{
        const char *s;

        if (c->p >= c->end || *c->p != '"')
                return -EBADMSG;
        s = ++c->p;
        for (;;) {
                unsigned char ch;

                /* Plain characters need no look beyond this. */
                while (c->p < c->end && plain_char[(unsigned char)*c->p])
                        c->p++;
                if (c->p >= c->end)
                        return -EBADMSG;
                ch = (unsigned char)*c->p;
                if (ch == '"')
                        break;
                if (ch < 0x20 || ch >= 0x80) /* jansson writes DEL as is */
                        return -EBADMSG;
                if (ch == '\\') {
                        if (++c->p >= c->end)
                                return -EBADMSG;
                        switch (*c->p) {
                        case '"':
                        case '\\':
                        case '/':
                        case 'b':
                        case 'f':
                        case 'n':
                        case 'r':
                        case 't':
                                break;
                        case 'u':
                                if (c->end - c->p < 5)
                                        return -EBADMSG;
                                for (int i = 1; i <= 4; i++)
                                        if (!strchr("0123456789abcdefABCDEF", c->p[i]) || !c->p[i])
                                                return -EBADMSG;
                                c->p += 4;
                                break;
                        default:
                                return -EBADMSG;
                        }
                }
                c->p++;
        }
        if (ret_s)
                *ret_s = s;
        if (ret_n)
                *ret_n = (size_t)(c->p - s);
        c->p++;
        return 0;
}

static int scan_literal(Cursor *c, const char *lit)
{
        size_t n = strlen(lit);

        if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
                return -EBADMSG;
        c->p += n;
        return 0;
}

/* An integer: -?(0|[1-9][0-9]*), at most 19 digits. */
static int scan_integer(Cursor *c, bool *ret_neg, uint64_t *ret)
{
        uint64_t v = 0;
        bool neg = false;
        int n = 0;

        if (c->p < c->end && *c->p == '-') {
                neg = true;
                c->p++;
        }
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
                return -EBADMSG;
        if (*c->p == '0' && c->end - c->p > 1 && c->p[1] >= '0' && c->p[1] <= '9')
                return -EBADMSG;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
                if (++n > 18)
                        return -EBADMSG;
                v = v * 10 + (uint64_t)(*c->p - '0');
                c->p++;
        }
        /* No fractions or exponents: records hold no reals. */
        if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
                return -EBADMSG;
        if (ret_neg)
                *ret_neg = neg;
        if (ret)
                *ret = v;
        return 0;
}

static int scan_value(Cursor *c, unsigned depth);

static int scan_object(Cursor *c, unsigned depth)
{
        if (depth > 32 || c->p >= c->end || *c->p != '{')
                return -EBADMSG;
        c->p++;
        if (c->p < c->end && *c->p == '}') {
                c->p++;
                return 0;
        }
        for (;;) {
                if (scan_string(c, NULL, NULL) < 0 || c->p >= c->end || *c->p++ != ':' ||
                    scan_value(c, depth + 1) < 0 || c->p >= c->end)
                        return -EBADMSG;
                if (*c->p == '}') {
                        c->p++;
                        return 0;
                }
                if (*c->p++ != ',')
                        return -EBADMSG;
        }
}

static int scan_array(Cursor *c, unsigned depth, bool strings_only)
{
        if (depth > 32 || c->p >= c->end || *c->p != '[')
                return -EBADMSG;
        c->p++;
        if (c->p < c->end && *c->p == ']') {
                c->p++;
                return 0;
        }
        for (;;) {
                if ((strings_only ? scan_string(c, NULL, NULL) : scan_value(c, depth + 1)) < 0 ||
                    c->p >= c->end)
                        return -EBADMSG;
                if (*c->p == ']') {
                        c->p++;
                        return 0;
                }
                if (*c->p++ != ',')
                        return -EBADMSG;
        }
}

static int scan_value(Cursor *c, unsigned depth)
{
        if (c->p >= c->end)
                return -EBADMSG;
        switch (*c->p) {
        case '{':
                return scan_object(c, depth);
        case '[':
                return scan_array(c, depth, false);
        case '"':
                return scan_string(c, NULL, NULL);
        case 't':
                return scan_literal(c, "true");
        case 'f':
                return scan_literal(c, "false");
        case 'n':
                return scan_literal(c, "null");
        default:
                return scan_integer(c, NULL, NULL);
        }
}

static bool span_is(const char *s, size_t n, const char *lit, size_t lit_len)
{
        return lit_len == n && memcmp(s, lit, n) == 0;
}

int audit_scan_record(const char *line, size_t len, AuditScan *ret)
{
        /* The keys in the order JSON_SORT_KEYS writes them. */
        static const char *const keys[] = { "agent",   "argv", "details", "event", "host", "prev",
                                            "request", "seq",  "target",  "time",  "v" };
        static const size_t key_len[] = { 5, 4, 7, 5, 4, 4, 7, 3, 6, 4, 1 };
        Cursor c = { line, line + len };
        AuditScan out = { 0 };

        if (len == 0 || len > AUDIT_RECORD_MAX || *c.p++ != '{')
                return -EBADMSG;
        for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                const char *s;
                size_t n;
                bool neg;
                int r = 0;

                if (scan_string(&c, &s, &n) < 0 || !span_is(s, n, keys[k], key_len[k]) ||
                    c.p >= c.end || *c.p++ != ':' || c.p >= c.end)
                        return -EBADMSG;
                switch (k) {
                case 0: /* agent */
                        r = *c.p == 'n' ? scan_literal(&c, "null") : scan_object(&c, 1);
                        break;
                case 1: /* argv */
                        r = *c.p == 'n' ? scan_literal(&c, "null") : scan_array(&c, 1, true);
                        break;
                case 2: /* details */
                        r = scan_object(&c, 1);
                        break;
                case 3: /* event */
                        r = scan_string(&c, &s, &n);
                        if (r == 0 && n < sizeof(out.event)) {
                                memcpy(out.event, s, n);
                                out.event[n] = '\0';
                        }
                        if (r == 0 && !audit_event_known(out.event))
                                r = -EBADMSG;
                        break;
                case 4: /* host */
                        r = scan_string(&c, NULL, NULL);
                        break;
                case 5: /* prev */
                        r = scan_string(&c, &s, &n);
                        if (r == 0 && n != AUDIT_HASH_HEX_LEN)
                                r = -EBADMSG;
                        for (size_t i = 0; r == 0 && i < n; i++)
                                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                                        r = -EBADMSG;
                        if (r == 0) {
                                memcpy(out.prev, s, n);
                                out.prev[n] = '\0';
                        }
                        break;
                case 6: /* request */
                case 8: /* target */
                        r = *c.p == 'n' ? scan_literal(&c, "null") : scan_string(&c, NULL, NULL);
                        break;
                case 7: /* seq */
                        r = scan_integer(&c, &neg, &out.seq);
                        if (r == 0 && (neg || out.seq == 0))
                                r = -EBADMSG;
                        break;
                case 9: /* time */
                        r = scan_string(&c, &s, &n);
                        if (r == 0 && (n != 27 || s[4] != '-' || s[10] != 'T' || s[26] != 'Z'))
                                r = -EBADMSG;
                        break;
                case 10: /* v */
                        r = scan_literal(&c, "1");
                        break;
                default:
                        r = -EBADMSG;
                }
                if (r < 0 || c.p >= c.end)
                        return -EBADMSG;
                if (*c.p++ != (k + 1 < ELEMENTSOF(keys) ? ',' : '}'))
                        return -EBADMSG;
        }
        if (c.p != c.end)
                return -EBADMSG;
        out.needs_full =
                streq(out.event, AUDIT_EVENT_SEAL) || streq(out.event, AUDIT_EVENT_TORN_TAIL);
        *ret = out;
        return 0;
}
