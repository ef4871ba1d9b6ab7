/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unified diffs of text files and summaries of binaries, for the file
 * effects of a plan (files.c calls these on each changed file).
 *
 * The diff is Myers' greedy O(ND) algorithm on lines, after the common
 * prefix and suffix are stripped. Its trace costs O(D^2) memory, so past
 * PLAN_DIFF_MAX_EDITS edits the middle is shown as one hunk that deletes all
 * old lines and adds all new ones: still a correct diff (patch(1) applies
 * it), only not the smallest, and an approver sees no diff of that size
 * anyway (the output is cut at the plan's diff_max).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "plan/plan-internal.h"

#define PLAN_DIFF_MAX_INPUT (8U * 1024 * 1024) /* each side; larger is -E2BIG */
#define PLAN_DIFF_MAX_EDITS 2048 /* Myers' D past which the middle is replaced whole */
#define PLAN_DIFF_CONTEXT   3

bool plan_is_text(const void *buf, size_t len)
{
        const unsigned char *p = buf;
        size_t odd = 0;

        for (size_t i = 0; i < len;) {
                unsigned char c = p[i];
                size_t n;
                uint32_t cp;

                if (c == 0)
                        return false;
                if (c < 0x80) {
                        if ((c < 0x20 && !strchr("\t\n\r\f\v\b\x1b", c)) || c == 0x7f)
                                odd++;
                        i++;
                        continue;
                }
                /* strict UTF-8: the diff goes into JSON, which accepts nothing else */
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 2;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 3;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 4;
                        cp = c & 0x07;
                } else
                        return false;
                if (len - i < n)
                        return false;
                for (size_t k = 1; k < n; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n;
        }
        /* a few stray control bytes (a form feed, a bell) still make a text file */
        return odd == 0 || odd * 100 <= len;
}

typedef struct {
        const char *s; /* start of the line */
        size_t len;    /* with its newline, if it has one */
        uint64_t h;
} Line;

static uint64_t line_hash(const char *s, size_t n)
{
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */

        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)s[i];
                h *= 1099511628211ULL;
        }
        return h;
}

static int split_lines(const char *s, size_t len, Line **ret, size_t *ret_n)
{
        size_t n = 0, k = 0;
        Line *l;

        for (size_t i = 0; i < len; i++)
                if (s[i] == '\n')
                        n++;
        if (len > 0 && s[len - 1] != '\n')
                n++;
        l = calloc(n + 1, sizeof(Line));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < len;) {
                const char *e = memchr(s + i, '\n', len - i);
                size_t ll = e ? (size_t)(e - (s + i)) + 1 : len - i;

                l[k].s = s + i;
                l[k].len = ll;
                l[k].h = line_hash(s + i, ll);
                k++;
                i += ll;
        }
        *ret = l;
        *ret_n = n;
        return 0;
}

static bool line_eq(const Line *a, const Line *b)
{
        return a->h == b->h && a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

/* One edit script entry per line: ' ' kept, '-' deleted (old), '+' added (new). */
typedef struct {
        char op;
        size_t ai, bi; /* index in a (for ' ' and '-') and b (for ' ' and '+') */
} Edit;

typedef struct {
        Edit *e;
        size_t n, cap;
} Script;

static int script_push(Script *s, char op, size_t ai, size_t bi)
{
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 256;
                Edit *e = realloc(s->e, cap * sizeof(Edit));

                if (!e)
                        return -ENOMEM;
                s->e = e;
                s->cap = cap;
        }
        s->e[s->n++] = (Edit){ op, ai, bi };
        return 0;
}

/*
 * Myers on a[0..n) and b[0..m) (already without common prefix and suffix).
 * Writes the edits, in reverse order, to rev. Returns 0, 1 when the edit
 * distance exceeds PLAN_DIFF_MAX_EDITS (nothing written), or -ENOMEM.
 */
static int myers(const Line *a, size_t n, const Line *b, size_t m, size_t a0, size_t b0,
                 Script *rev)
{
        size_t max = n + m, dmax = max < PLAN_DIFF_MAX_EDITS ? max : PLAN_DIFF_MAX_EDITS;
        ssize_t off = (ssize_t)dmax + 1;
        _cleanup_free_ int32_t *v = NULL;
        /* v's live band after each d: row d holds k = -d-1..d+1 at row[k + d + 1] */
        _cleanup_free_ int32_t *trace = NULL;
        size_t w = 2 * dmax + 3, dend = 0, tlen = 0, tcap = 0;
        bool found = false;

        v = calloc(w, sizeof(int32_t));
        if (!v)
                return -ENOMEM;

        for (size_t d = 0; d <= dmax && !found; d++) {
                for (ssize_t k = -(ssize_t)d; k <= (ssize_t)d; k += 2) {
                        ssize_t x, y;

                        if (k == -(ssize_t)d ||
                            (k != (ssize_t)d && v[off + k - 1] < v[off + k + 1]))
                                x = v[off + k + 1];
                        else
                                x = v[off + k - 1] + 1;
                        y = x - k;
                        while (x < (ssize_t)n && y < (ssize_t)m && line_eq(&a[x], &b[y])) {
                                x++;
                                y++;
                        }
                        v[off + k] = (int32_t)x;
                        if (x >= (ssize_t)n && y >= (ssize_t)m) {
                                found = true;
                                break;
                        }
                }
                if (tlen + 2 * d + 3 > tcap) {
                        size_t cap = tcap ? tcap * 2 : 4096;
                        int32_t *t;

                        while (cap < tlen + 2 * d + 3)
                                cap *= 2;
                        t = realloc(trace, cap * sizeof(int32_t));
                        if (!t)
                                return -ENOMEM;
                        trace = t;
                        tcap = cap;
                }
                memcpy(trace + tlen, v + off - (ssize_t)d - 1, (2 * d + 3) * sizeof(int32_t));
                tlen += 2 * d + 3;
                dend = d;
        }
        if (!found)
                return 1;

        /* walk back from (n, m) */
        ssize_t x = (ssize_t)n, y = (ssize_t)m;
        for (size_t d = dend; d > 0; d--) {
                /* row d-1 starts at (d-1)^2 + 2(d-1) and is indexed by k + d */
                const int32_t *pv = trace + (d - 1) * (d - 1) + 2 * (d - 1) + d;
                ssize_t k = x - y, pk, px, py;
                int r;

                if (k == -(ssize_t)d || (k != (ssize_t)d && pv[k - 1] < pv[k + 1]))
                        pk = k + 1; /* came down: an insertion */
                else
                        pk = k - 1; /* came right: a deletion */
                px = pv[pk];
                py = px - pk;
                while (x > px && y > py) {
                        x--;
                        y--;
                        r = script_push(rev, ' ', a0 + (size_t)x, b0 + (size_t)y);
                        if (r < 0)
                                return r;
                }
                if (pk == k + 1)
                        r = script_push(rev, '+', a0 + (size_t)px, b0 + (size_t)py);
                else
                        r = script_push(rev, '-', a0 + (size_t)px, b0 + (size_t)py);
                if (r < 0)
                        return r;
                x = px;
                y = py;
        }
        while (x > 0 && y > 0) {
                x--;
                y--;
                if (script_push(rev, ' ', a0 + (size_t)x, b0 + (size_t)y) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int build_script(const Line *a, size_t n, const Line *b, size_t m, Script *ret)
{
        size_t pre = 0, suf = 0;
        Script rev = { 0 };
        int r;

        while (pre < n && pre < m && line_eq(&a[pre], &b[pre]))
                pre++;
        while (suf < n - pre && suf < m - pre && line_eq(&a[n - 1 - suf], &b[m - 1 - suf]))
                suf++;

        for (size_t i = 0; i < pre; i++)
                if (script_push(ret, ' ', i, i) < 0)
                        return -ENOMEM;

        r = myers(a + pre, n - pre - suf, b + pre, m - pre - suf, pre, pre, &rev);
        if (r < 0) {
                free(rev.e);
                return r;
        }
        if (r == 0) {
                for (size_t i = rev.n; i > 0; i--)
                        if (script_push(ret, rev.e[i - 1].op, rev.e[i - 1].ai, rev.e[i - 1].bi) <
                            0) {
                                free(rev.e);
                                return -ENOMEM;
                        }
        } else {
                /* too many edits for a minimal script: replace the middle whole */
                for (size_t i = pre; i < n - suf; i++)
                        if (script_push(ret, '-', i, pre) < 0)
                                goto nomem;
                for (size_t i = pre; i < m - suf; i++)
                        if (script_push(ret, '+', n - suf, i) < 0)
                                goto nomem;
        }
        free(rev.e);
        for (size_t i = 0; i < suf; i++)
                if (script_push(ret, ' ', n - suf + i, m - suf + i) < 0)
                        return -ENOMEM;
        return 0;
nomem:
        free(rev.e);
        return -ENOMEM;
}

typedef struct {
        char *buf;
        size_t len, cap, max;
        bool full;
} Out;

static int out_add(Out *o, const char *s, size_t n)
{
        if (o->full)
                return 0;
        if (o->len + n > o->max) {
                /* keep whole lines only: cut back to the last newline that fits */
                size_t fit = o->max - o->len;
                const char *nl = NULL;

                for (size_t i = fit; i > 0; i--)
                        if (s[i - 1] == '\n') {
                                nl = s + i;
                                break;
                        }
                n = nl ? (size_t)(nl - s) : 0;
                o->full = true;
                if (!nl) {
                        /* nothing of s fits: drop the unfinished line already written */
                        while (o->len > 0 && o->buf[o->len - 1] != '\n')
                                o->len--;
                        if (o->buf)
                                o->buf[o->len] = 0;
                        return 0;
                }
        }
        if (o->len + n + 1 > o->cap) {
                size_t cap = o->cap ? o->cap : 4096;
                char *b;

                while (cap < o->len + n + 1)
                        cap *= 2;
                b = realloc(o->buf, cap);
                if (!b)
                        return -ENOMEM;
                o->buf = b;
                o->cap = cap;
        }
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        o->buf[o->len] = 0;
        return 0;
}

static int out_printf(Out *o, const char *fmt, ...) _printf_(2, 3);
static int out_printf(Out *o, const char *fmt, ...)
{
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        return out_add(o, s, (size_t)n);
}

static int out_line(Out *o, char op, const Line *l)
{
        int r;

        r = out_add(o, &op, 1);
        if (r < 0)
                return r;
        r = out_add(o, l->s, l->len);
        if (r < 0)
                return r;
        if (l->len == 0 || l->s[l->len - 1] != '\n')
                r = out_add(o, "\n\\ No newline at end of file\n", 29);
        return r;
}

static int out_range(Out *o, size_t start, size_t count)
{
        /* GNU diff's convention: an empty range names the line before it */
        if (count == 1)
                return out_printf(o, "%zu", start + 1);
        return out_printf(o, "%zu,%zu", count == 0 ? start : start + 1, count);
}

static int out_header(Out *o, const char *side, const char *path)
{
        if (!path)
                return out_printf(o, "%s /dev/null\n", side);
        return out_printf(o, "%s %s%s%s\n", side, streq(side, "---") ? "a" : "b",
                          path[0] == '/' ? "" : "/", path);
}

int plan_diff(const char *a, size_t a_len, const char *b, size_t b_len, const char *a_path,
              const char *b_path, size_t max, char **ret, bool *truncated)
{
        _cleanup_free_ Line *la = NULL, *lb = NULL;
        size_t na = 0, nb = 0;
        Script sc = { 0 };
        Out o = { .max = max };
        int r;

        if (a_len > PLAN_DIFF_MAX_INPUT || b_len > PLAN_DIFF_MAX_INPUT)
                return -E2BIG;
        if ((a_len > 0 && !a) || (b_len > 0 && !b))
                return -EINVAL;

        if (a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0)) {
                char *e = strdup("");

                if (!e)
                        return -ENOMEM;
                *ret = e;
                if (truncated)
                        *truncated = false;
                return 0;
        }

        r = split_lines(a, a_len, &la, &na);
        if (r < 0)
                return r;
        r = split_lines(b, b_len, &lb, &nb);
        if (r < 0)
                return r;
        r = build_script(la, na, lb, nb, &sc);
        if (r < 0)
                goto fail;

        r = out_header(&o, "---", a_path);
        if (r >= 0)
                r = out_header(&o, "+++", b_path);
        if (r < 0)
                goto fail;

        /* hunks: runs of changes with up to 3 kept lines around, merged when close */
        for (size_t i = 0; i < sc.n && !o.full;) {
                size_t first, last, j, a_start, b_start, a_count = 0, b_count = 0;

                if (sc.e[i].op == ' ') {
                        i++;
                        continue;
                }
                first = i >= PLAN_DIFF_CONTEXT ? i - PLAN_DIFF_CONTEXT : 0;
                /* extend while the next change is within 2*context kept lines */
                last = i;
                j = i;
                while (j < sc.n) {
                        size_t k = j;

                        while (k < sc.n && sc.e[k].op != ' ')
                                k++;
                        last = k; /* one past the last change of this run */
                        size_t kept = 0;
                        while (k < sc.n && sc.e[k].op == ' ' && kept <= 2 * PLAN_DIFF_CONTEXT) {
                                k++;
                                kept++;
                        }
                        if (k < sc.n && sc.e[k].op != ' ' && kept <= 2 * PLAN_DIFF_CONTEXT)
                                j = k;
                        else
                                break;
                }
                last = last + PLAN_DIFF_CONTEXT < sc.n ? last + PLAN_DIFF_CONTEXT : sc.n;

                a_start = sc.e[first].ai;
                b_start = sc.e[first].bi;
                for (size_t k = first; k < last; k++) {
                        if (sc.e[k].op != '+')
                                a_count++;
                        if (sc.e[k].op != '-')
                                b_count++;
                }
                r = out_add(&o, "@@ -", 4);
                if (r >= 0)
                        r = out_range(&o, a_start, a_count);
                if (r >= 0)
                        r = out_add(&o, " +", 2);
                if (r >= 0)
                        r = out_range(&o, b_start, b_count);
                if (r >= 0)
                        r = out_add(&o, " @@\n", 4);
                for (size_t k = first; r >= 0 && k < last; k++)
                        r = out_line(&o, sc.e[k].op,
                                     sc.e[k].op == '+' ? &lb[sc.e[k].bi] : &la[sc.e[k].ai]);
                if (r < 0)
                        goto fail;
                i = last;
        }

        free(sc.e);
        if (!o.buf) {
                o.buf = strdup("");
                if (!o.buf)
                        return -ENOMEM;
        }
        *ret = o.buf;
        if (truncated)
                *truncated = o.full;
        return 0;
fail:
        free(sc.e);
        free(o.buf);
        return r;
}

static void short_hash(const void *p, size_t n, char out[16])
{
        char hex[SHA256_HEX_LEN + 1];

        if (sha256_hex(p ? p : "", n, hex) < 0) {
                strcpy(out, "?");
                return;
        }
        memcpy(out, hex, 12);
        out[12] = 0;
}

char *plan_binary_summary(const void *a, size_t a_len, bool a_exists, const void *b, size_t b_len,
                          bool b_exists)
{
        char ha[16], hb[16];
        char *s = NULL;
        int n;

        if (a_exists)
                short_hash(a, a_len, ha);
        if (b_exists)
                short_hash(b, b_len, hb);

        if (a_exists && b_exists)
                n = asprintf(&s, "binary, %zu → %zu bytes, sha256 %s… → %s…", a_len, b_len, ha, hb);
        else if (b_exists)
                n = asprintf(&s, "binary, created, %zu bytes, sha256 %s…", b_len, hb);
        else if (a_exists)
                n = asprintf(&s, "binary, deleted, %zu bytes, sha256 %s…", a_len, ha);
        else
                n = asprintf(&s, "binary, absent");
        return n < 0 ? NULL : s;
}
