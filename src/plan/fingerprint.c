/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A secret's bytes recognised wherever a planned command wrote them.
 *
 * Every window of PLAN_FP_WINDOW bytes of a secret (the whole secret when
 * it is shorter) goes into a table under a rolling hash whose byte table
 * and multiplier are random per PlanFingerprints, with a keyed BLAKE2b tag
 * of the window beside it. No secret byte is kept: the table holds only
 * keyed hashes, which say nothing about the secret without the key (and a
 * 256-bit window of a random key cannot be guessed even with it).
 *
 * Scanning rolls the hash over every position of three views of the data:
 * the bytes as they are; every run of hex digits (either case; blanks and
 * line breaks between them are skipped, so `xxd -p` output counts) decoded
 * at both nibble alignments; every run of base64 characters (standard or
 * URL-safe alphabet; line breaks skipped, so `base64`'s 76-column lines and
 * PEM's 64 count) decoded at all four character alignments, which covers a
 * secret starting at any of the three byte offsets of a base64 quantum;
 * hex dumps with offsets (xxd, hexdump -C, od -A x -t x1), line by line. A
 * window whose rolling hash is in the table is confirmed by its keyed tag.
 * Decoding streams through a fixed stack buffer: scanning never allocates,
 * so it cannot fail open for lack of memory.
 *
 * Limits: a secret's first PLAN_FP_SECRET_MAX bytes are fingerprinted;
 * secrets under PLAN_FP_MIN_SECRET bytes are not (they would match
 * everywhere); windows with few distinct bytes (zero padding) or with a
 * PEM armour line ("-----BEGIN ...") are skipped, since every key of a kind
 * shares them. Dumps that swap bytes (od -x, hexdump without -C) and
 * nested encodings (base64 of hex) are not recognised.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/util.h"
#include "plan/plan-internal.h"

#define PLAN_FP_WINDOW       32
#define PLAN_FP_MIN_SECRET   8
#define PLAN_FP_SECRET_MAX   (1024 * 1024)
#define PLAN_FP_MIN_DISTINCT 6
#define PLAN_FP_BITMAP_MIN   16 /* log2 of the bitmap's bits: 8 KiB .. 1 MiB, 64 bits a window */
#define PLAN_FP_BITMAP_MAX   23
#define PLAN_FP_TAG          16
#define PLAN_FP_CHUNK        8192

typedef struct {
        uint64_t h;
        uint32_t secret;
        uint32_t len;
        uint8_t tag[PLAN_FP_TAG];
} FpEntry;

struct PlanFingerprints {
        uint64_t t[256];           /* random per byte value (shorter windows: Rabin-Karp) */
        uint32_t g1[256], g2[256]; /* random per byte value (full windows: two gear hashes) */
        uint64_t m;                /* random odd multiplier */
        uint8_t key[crypto_generichash_KEYBYTES];
        char **paths;
        size_t n_paths;
        FpEntry *entries;
        size_t n_entries, cap_entries;
        uint32_t *slots;  /* open addressing: index + 1 into entries, 0 = empty */
        size_t n_slots;   /* a power of two */
        uint64_t *bitmap; /* bit (h >> (64 - bitmap_log)) set for every entry: a cheap first test */
        unsigned bitmap_log;
        /* the distinct window lengths, and m^(len-1) for each */
        uint32_t lens[PLAN_FP_WINDOW + 1];
        uint64_t mpow[PLAN_FP_WINDOW + 1];
        size_t n_lens;
};

PlanFingerprints *plan_fp_new(void)
{
        PlanFingerprints *fp;

        if (sodium_init() < 0)
                return NULL;
        fp = calloc(1, sizeof(*fp));
        if (!fp)
                return NULL;
        fp->bitmap_log = PLAN_FP_BITMAP_MIN;
        fp->bitmap = calloc((1U << fp->bitmap_log) / 64, sizeof(uint64_t));
        if (!fp->bitmap) {
                free(fp);
                return NULL;
        }
        randombytes_buf(fp->t, sizeof(fp->t));
        randombytes_buf(fp->g1, sizeof(fp->g1));
        randombytes_buf(fp->g2, sizeof(fp->g2));
        randombytes_buf(&fp->m, sizeof(fp->m));
        fp->m |= 1;
        randombytes_buf(fp->key, sizeof(fp->key));
        return fp;
}

PlanFingerprints *plan_fp_free(PlanFingerprints *fp)
{
        if (!fp)
                return NULL;
        strv_free(fp->paths);
        explicit_wipe(fp->entries, fp->cap_entries * sizeof(FpEntry));
        free(fp->entries);
        free(fp->slots);
        free(fp->bitmap);
        explicit_wipe(fp, sizeof(*fp));
        free(fp);
        return NULL;
}

/*
 * Full windows use two 32-bit gear hashes (h = (h << 1) + g[byte]): a byte
 * shifts out of a 32-bit gear hash after exactly 32 steps, so the hash is
 * that of the last 32 bytes at the cost of a shift and an add per byte.
 * Shorter windows (whole short secrets) use Rabin-Karp.
 */
static uint64_t fp_hash(const PlanFingerprints *fp, const uint8_t *p, size_t len)
{
        uint64_t h = 0;
        uint32_t a = 0, b = 0;

        if (len == PLAN_FP_WINDOW) {
                for (size_t i = 0; i < len; i++) {
                        a = (a << 1) + fp->g1[p[i]];
                        b = (b << 1) + fp->g2[p[i]];
                }
                return (uint64_t)a << 32 | b;
        }
        for (size_t i = 0; i < len; i++)
                h = h * fp->m + fp->t[p[i]];
        return h;
}

static void fp_tag(const PlanFingerprints *fp, const uint8_t *p, size_t len,
                   uint8_t tag[PLAN_FP_TAG])
{
        crypto_generichash(tag, PLAN_FP_TAG, p, len, fp->key, sizeof(fp->key));
}

static size_t slot_of(const PlanFingerprints *fp, uint64_t h)
{
        return (size_t)(h * 0x9e3779b97f4a7c15ULL >> 20) & (fp->n_slots - 1);
}

static void slot_insert(PlanFingerprints *fp, size_t idx)
{
        size_t s = slot_of(fp, fp->entries[idx].h);

        while (fp->slots[s])
                s = (s + 1) & (fp->n_slots - 1);
        fp->slots[s] = (uint32_t)idx + 1;
}

static int fp_reserve(PlanFingerprints *fp, size_t more)
{
        size_t need = fp->n_entries + more;

        if (need > UINT32_MAX / 4)
                return -E2BIG;
        if (need > fp->cap_entries) {
                size_t cap = fp->cap_entries ? fp->cap_entries : 1024;
                FpEntry *e;

                while (cap < need)
                        cap *= 2;
                e = calloc(cap, sizeof(FpEntry));
                if (!e)
                        return -ENOMEM;
                if (fp->entries) {
                        memcpy(e, fp->entries, fp->n_entries * sizeof(FpEntry));
                        explicit_wipe(fp->entries, fp->cap_entries * sizeof(FpEntry));
                        free(fp->entries);
                }
                fp->entries = e;
                fp->cap_entries = cap;
        }
        if (need * 2 > fp->n_slots) {
                size_t n = fp->n_slots ? fp->n_slots : 2048;
                uint32_t *s;

                while (n < need * 2)
                        n *= 2;
                s = calloc(n, sizeof(uint32_t));
                if (!s)
                        return -ENOMEM;
                free(fp->slots);
                fp->slots = s;
                fp->n_slots = n;
                for (size_t i = 0; i < fp->n_entries; i++)
                        slot_insert(fp, i);
        }
        return 0;
}

static void fp_add_len(PlanFingerprints *fp, uint32_t len)
{
        uint64_t p = 1;

        for (size_t i = 0; i < fp->n_lens; i++)
                if (fp->lens[i] == len)
                        return;
        for (uint32_t i = 1; i < len; i++)
                p *= fp->m;
        fp->lens[fp->n_lens] = len;
        fp->mpow[fp->n_lens] = p;
        fp->n_lens++;
}

/* Windows that are mostly one byte (zero padding) say nothing. */
static bool window_is_generic(const uint8_t *p, size_t len)
{
        uint8_t seen[256] = { 0 };
        size_t distinct = 0;

        for (size_t i = 0; i < len; i++)
                if (!seen[p[i]]++)
                        distinct++;
        return distinct < PLAN_FP_MIN_DISTINCT;
}

/*
 * For each position, the next byte at or after it that lies on a PEM armour
 * line (one starting with "-----"), or len: every key of a kind shares those
 * lines, so no window may overlap one.
 */
static uint32_t *armour_next(const uint8_t *p, size_t len)
{
        uint32_t *nxt = malloc((len + 1) * sizeof(uint32_t));
        size_t line_start = 0;
        bool armour = false;

        if (!nxt)
                return NULL;
        /* forward: mark armour bytes with 0, others with 1 */
        for (size_t i = 0; i < len; i++) {
                if (i == line_start)
                        armour = len - i >= 5 && memcmp(p + i, "-----", 5) == 0;
                nxt[i] = armour ? 0 : 1;
                if (p[i] == '\n')
                        line_start = i + 1;
        }
        nxt[len] = (uint32_t)len;
        for (size_t i = len; i > 0; i--)
                nxt[i - 1] = nxt[i - 1] == 0 ? (uint32_t)(i - 1) : nxt[i];
        return nxt;
}

/*
 * Sized to the entries (64 bits each, so a random position passes it with
 * probability 1/64) but small enough to stay in cache: scanning tests it at
 * every position.
 */
static int bitmap_build(PlanFingerprints *fp)
{
        unsigned lg = PLAN_FP_BITMAP_MIN;
        uint64_t *b;

        while (lg < PLAN_FP_BITMAP_MAX && (1ULL << lg) < (uint64_t)fp->n_entries * 64)
                lg++;
        b = calloc((1ULL << lg) / 64, sizeof(uint64_t));
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < fp->n_entries; i++) {
                uint64_t bit = fp->entries[i].h >> (64 - lg);

                b[bit >> 6] |= 1ULL << (bit & 63);
        }
        free(fp->bitmap);
        fp->bitmap = b;
        fp->bitmap_log = lg;
        return 0;
}

int plan_fp_add(PlanFingerprints *fp, const char *secret_path, const void *data, size_t len)
{
        _cleanup_free_ uint32_t *nxt = NULL;
        const uint8_t *p = data;
        uint32_t w, idx;
        size_t n;
        int r;

        if (!fp || !secret_path || (len > 0 && !data))
                return -EINVAL;
        if (len < PLAN_FP_MIN_SECRET)
                return 0;
        if (len > PLAN_FP_SECRET_MAX)
                len = PLAN_FP_SECRET_MAX;
        w = len < PLAN_FP_WINDOW ? (uint32_t)len : PLAN_FP_WINDOW;
        n = len - w + 1;

        idx = (uint32_t)fp->n_paths;
        r = strv_extend(&fp->paths, secret_path);
        if (r < 0)
                return r;
        fp->n_paths++;
        r = fp_reserve(fp, n);
        if (r < 0)
                return r;
        fp_add_len(fp, w);

        nxt = armour_next(p, len);
        if (!nxt)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                FpEntry *e;

                if (w == PLAN_FP_WINDOW && (nxt[i] < i + w || window_is_generic(p + i, w)))
                        continue;
                e = &fp->entries[fp->n_entries];
                e->h = fp_hash(fp, p + i, w);
                e->secret = idx;
                e->len = w;
                fp_tag(fp, p + i, w, e->tag);
                slot_insert(fp, fp->n_entries);
                fp->n_entries++;
        }
        return bitmap_build(fp);
}

static const char *confirm(const PlanFingerprints *fp, uint64_t h, uint32_t len, const uint8_t *p)
{
        uint8_t tag[PLAN_FP_TAG];
        bool tagged = false;

        for (size_t s = slot_of(fp, h); fp->slots[s]; s = (s + 1) & (fp->n_slots - 1)) {
                const FpEntry *e = &fp->entries[fp->slots[s] - 1];

                if (e->h != h || e->len != len)
                        continue;
                if (!tagged) {
                        fp_tag(fp, p, len, tag);
                        tagged = true;
                }
                if (sodium_memcmp(tag, e->tag, PLAN_FP_TAG) == 0)
                        return fp->paths[e->secret];
        }
        return NULL;
}

static const char *scan_gear(const PlanFingerprints *fp, const uint8_t *p, size_t n)
{
        unsigned shift = 32 - fp->bitmap_log;
        uint32_t a = 0;
        size_t i;

        for (i = 0; i + 1 < PLAN_FP_WINDOW; i++)
                a = (a << 1) + fp->g1[p[i]];
        /* the hot loop: one gear hash; the second only where the bitmap says maybe */
        for (; i < n; i++) {
                uint32_t bit;

                a = (a << 1) + fp->g1[p[i]];
                bit = a >> shift;
                if (__builtin_expect(!!(fp->bitmap[bit >> 6] & (1ULL << (bit & 63))), 0)) {
                        const uint8_t *w = p + i + 1 - PLAN_FP_WINDOW;
                        uint32_t b = 0;
                        const char *s;

                        for (size_t k = 0; k < PLAN_FP_WINDOW; k++)
                                b = (b << 1) + fp->g2[w[k]];
                        s = confirm(fp, (uint64_t)a << 32 | b, PLAN_FP_WINDOW, w);
                        if (s)
                                return s;
                }
        }
        return NULL;
}

/* The raw view: every window of every fingerprinted length. */
static const char *scan_bytes(const PlanFingerprints *fp, const uint8_t *p, size_t n)
{
        for (size_t l = 0; l < fp->n_lens; l++) {
                uint32_t w = fp->lens[l];
                uint64_t top = fp->mpow[l], h;

                if (n < w)
                        continue;
                if (w == PLAN_FP_WINDOW) {
                        const char *s = scan_gear(fp, p, n);

                        if (s)
                                return s;
                        continue;
                }
                h = fp_hash(fp, p, w);
                for (size_t i = 0;; i++) {
                        uint64_t bit = h >> (64 - fp->bitmap_log);

                        if (fp->bitmap[bit >> 6] & (1ULL << (bit & 63))) {
                                const char *s = confirm(fp, h, w, p + i);

                                if (s)
                                        return s;
                        }
                        if (i + w >= n)
                                break;
                        h = (h - fp->t[p[i]] * top) * fp->m + fp->t[p[i + w]];
                }
        }
        return NULL;
}

/* A decoded view streams through this buffer, keeping a window's worth of overlap. */
typedef struct {
        uint8_t buf[PLAN_FP_CHUNK];
        size_t n;
        const char *found;
} Decoded;

static void dec_flush(const PlanFingerprints *fp, Decoded *d)
{
        size_t keep = PLAN_FP_WINDOW - 1;

        if (d->found || d->n == 0)
                return;
        d->found = scan_bytes(fp, d->buf, d->n);
        if (d->n > keep) {
                memmove(d->buf, d->buf + d->n - keep, keep);
                d->n = keep;
        }
}

static void dec_put(const PlanFingerprints *fp, Decoded *d, uint8_t b)
{
        if (d->n == sizeof(d->buf))
                dec_flush(fp, d);
        d->buf[d->n++] = b;
}

enum {
        C_HEX = 1,
        C_B64 = 2,
        C_BLANK = 4, /* skipped inside a hex run */
        C_NL = 8,    /* skipped inside a base64 run */
};

static uint8_t cls[256];
static int8_t hexval[256], b64val[256];

static void tables_fill(void)
{
        const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

        for (int c = 0; c < 256; c++) {
                hexval[c] = -1;
                b64val[c] = -1;
        }
        for (int i = 0; i < 64; i++) {
                b64val[(unsigned char)b64[i]] = (int8_t)i;
                cls[(unsigned char)b64[i]] |= C_B64;
        }
        b64val['-'] = 62;
        b64val['_'] = 63;
        cls['-'] |= C_B64;
        cls['_'] |= C_B64;
        for (int i = 0; i < 10; i++)
                hexval['0' + i] = (int8_t)i;
        for (int i = 0; i < 6; i++) {
                hexval['a' + i] = (int8_t)(10 + i);
                hexval['A' + i] = (int8_t)(10 + i);
        }
        for (int c = 0; c < 256; c++)
                if (hexval[c] >= 0)
                        cls[c] |= C_HEX;
        cls[' '] |= C_BLANK;
        cls['\t'] |= C_BLANK;
        cls['\r'] |= C_BLANK | C_NL;
        cls['\n'] |= C_BLANK | C_NL;
}

static void tables_init(void)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, tables_fill);
}

static size_t min_len(const PlanFingerprints *fp)
{
        size_t m = PLAN_FP_WINDOW;

        for (size_t i = 0; i < fp->n_lens; i++)
                if (fp->lens[i] < m)
                        m = fp->lens[i];
        return m;
}

static const char *scan_hex_run(const PlanFingerprints *fp, const uint8_t *p, size_t n)
{
        for (int align = 0; align < 2; align++) {
                Decoded d; /* (buf is not cleared: only its first n bytes are read) */

                d.n = 0;
                d.found = NULL;
                int hi = -1, skip = align;

                for (size_t i = 0; i < n && !d.found; i++) {
                        int v = hexval[p[i]];

                        if (v < 0)
                                continue; /* a blank */
                        if (skip > 0) {
                                skip--;
                                continue;
                        }
                        if (hi < 0)
                                hi = v;
                        else {
                                dec_put(fp, &d, (uint8_t)(hi << 4 | v));
                                hi = -1;
                        }
                }
                dec_flush(fp, &d);
                if (d.found)
                        return d.found;
        }
        return NULL;
}

static const char *scan_b64_run(const PlanFingerprints *fp, const uint8_t *p, size_t n)
{
        for (int align = 0; align < 4; align++) {
                Decoded d; /* (buf is not cleared: only its first n bytes are read) */

                d.n = 0;
                d.found = NULL;
                uint32_t acc = 0;
                int k = 0, skip = align;

                for (size_t i = 0; i < n && !d.found; i++) {
                        int v = b64val[p[i]];

                        if (v < 0)
                                continue; /* a line break */
                        if (skip > 0) {
                                skip--;
                                continue;
                        }
                        acc = acc << 6 | (uint32_t)v;
                        if (++k == 4) {
                                dec_put(fp, &d, (uint8_t)(acc >> 16));
                                dec_put(fp, &d, (uint8_t)(acc >> 8));
                                dec_put(fp, &d, (uint8_t)acc);
                                acc = 0;
                                k = 0;
                        }
                }
                /* a final partial quantum: 2 characters give 1 byte, 3 give 2 */
                if (!d.found && k >= 2) {
                        acc <<= 6 * (4 - k);
                        dec_put(fp, &d, (uint8_t)(acc >> 16));
                        if (k == 3)
                                dec_put(fp, &d, (uint8_t)(acc >> 8));
                }
                dec_flush(fp, &d);
                if (d.found)
                        return d.found;
        }
        return NULL;
}

/*
 * Calls scan on every maximal run of characters of class want (with the
 * characters of class skip allowed inside) holding at least min_chars of
 * want. Such a run is at least min_chars bytes long, so it holds one of
 * any min_chars-spaced grid of positions: only those are probed, and a run
 * is measured only around a probe that lands in one.
 */
static const char *scan_runs(const PlanFingerprints *fp, const uint8_t *p, size_t n, uint8_t want,
                             uint8_t skip, size_t min_chars,
                             const char *(*scan)(const PlanFingerprints *, const uint8_t *, size_t))
{
        uint8_t any = want | skip;
        size_t lo = 0;

        for (size_t i = min_chars - 1; i < n;) {
                size_t a = i, b = i + 1, count = 0;

                if (!(cls[p[i]] & any)) {
                        i += min_chars;
                        continue;
                }
                while (a > lo && (cls[p[a - 1]] & any))
                        a--;
                while (b < n && (cls[p[b]] & any))
                        b++;
                if (b - a >= min_chars) {
                        for (size_t k = a; k < b; k++)
                                count += (cls[p[k]] & want) != 0;
                        if (count >= min_chars) {
                                const char *s = scan(fp, p + a, b - a);

                                if (s)
                                        return s;
                        }
                }
                lo = b;
                i = b + min_chars;
        }
        return NULL;
}

/*
 * Parses one line of a hex dump with offsets: "OFFSET[:] HEX HEX ... [ASCII]"
 * (xxd, hexdump -C, od -A x -t x1). Appends its bytes to d and returns true,
 * or returns false when the line is not one. Groups of 2, 4, 8... digits are
 * read as bytes in order (xxd's groups); a token that is not an even run of
 * hex digits ends the bytes (the ASCII column, "|...|").
 */
static bool dump_line(const PlanFingerprints *fp, const uint8_t *p, size_t n, Decoded *d)
{
        size_t i = 0, off = 0, bytes = 0;

        while (i < n && p[i] == ' ')
                i++;
        while (i + off < n && hexval[p[i + off]] >= 0)
                off++;
        if (off < 6 || i + off >= n || (p[i + off] != ':' && p[i + off] != ' '))
                return false;
        i += off + (p[i + off] == ':');
        while (i < n && bytes < 64) {
                size_t k = 0;

                while (i < n && p[i] == ' ')
                        i++;
                while (i + k < n && hexval[p[i + k]] >= 0)
                        k++;
                if (k == 0 || k % 2 || k > 16 || (i + k < n && p[i + k] != ' ' && p[i + k] != '\r'))
                        break;
                for (size_t j = 0; j < k; j += 2) {
                        dec_put(fp, d, (uint8_t)(hexval[p[i + j]] << 4 | hexval[p[i + j + 1]]));
                        bytes++;
                }
                i += k;
                /* two blanks before a word that is not hex: the ASCII column follows */
        }
        return bytes > 0;
}

static const char *scan_dump(const PlanFingerprints *fp, const uint8_t *p, size_t n)
{
        Decoded d;
        size_t i = 0;

        d.n = 0;
        d.found = NULL;
        while (i < n && !d.found) {
                const uint8_t *nl = memchr(p + i, '\n', n - i);
                size_t e = nl ? (size_t)(nl - p) : n;

                if (!dump_line(fp, p + i, e - i, &d)) {
                        dec_flush(fp, &d);
                        d.n = 0; /* a line that is no dump line breaks the byte stream */
                }
                i = e + 1;
        }
        dec_flush(fp, &d);
        return d.found;
}

/* Cheap test before parsing lines: does a line start with an offset of 6+ hex digits? */
static bool looks_like_dump(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n;) {
                size_t k = 0;
                const uint8_t *nl;

                while (i + k < n && k < 8 && hexval[p[i + k]] >= 0)
                        k++;
                if (k >= 6 && i + k < n && (p[i + k] == ':' || p[i + k] == ' '))
                        return true;
                nl = memchr(p + i, '\n', n - i);
                if (!nl)
                        break;
                i = (size_t)(nl - p) + 1;
        }
        return false;
}

const char *plan_fp_scan(const PlanFingerprints *fp, const void *data, size_t len)
{
        const uint8_t *p = data;
        const char *s;
        size_t m;

        if (!fp || fp->n_entries == 0 || !data)
                return NULL;
        tables_init();
        m = min_len(fp);

        s = scan_bytes(fp, p, len);
        if (s)
                return s;
        s = scan_runs(fp, p, len, C_HEX, C_BLANK, 2 * m, scan_hex_run);
        if (s)
                return s;
        s = scan_runs(fp, p, len, C_B64, C_NL, (4 * m + 2) / 3, scan_b64_run);
        if (s)
                return s;
        return looks_like_dump(p, len) ? scan_dump(fp, p, len) : NULL;
}
