/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The glob matcher used for argv patterns, secret paths, agent names and
 * effect conditions. No allocation: brace sets are matched by recursing into
 * each alternative with a continuation (the rest of the pattern after the
 * closing brace), kept on the stack. A step budget bounds backtracking, so a
 * pathological pattern against a hostile string cannot hang the broker; the
 * callers treat "too complex" as the answer that fails closed.
 */
#include <stdio.h>

#include "policy/policy-internal.h"

#define GLOB_STEP_BUDGET 200000

typedef struct GlobCont {
        const char *p, *end;
        const struct GlobCont *next;
} GlobCont;

typedef struct {
        long budget;
        bool pathname;
        const char *pattern; /* the whole pattern, to know what precedes a '**' */
} GlobState;

/* The ']' closing the class that starts at the '[' at p (a leading ']' is literal), or NULL. */
static const char *class_end(const char *p, const char *end)
{
        const char *q = p + 1;

        if (q < end && (*q == '!' || *q == '^'))
                q++;
        if (q < end && *q == ']')
                q++;
        while (q < end && *q != ']') {
                if (*q == '\\' && q + 1 < end)
                        q++;
                q++;
        }
        return q < end ? q : NULL;
}

/* Returns the matching '}' for the '{' at p, or NULL. Skips escapes and classes. */
static const char *brace_end(const char *p, const char *end)
{
        unsigned depth = 0;

        for (; p < end; p++) {
                if (*p == '\\') {
                        if (p + 1 < end)
                                p++;
                        continue;
                }
                if (*p == '[') {
                        const char *q = class_end(p, end);

                        if (!q)
                                return NULL;
                        p = q;
                        continue;
                }
                if (*p == '{')
                        depth++;
                else if (*p == '}') {
                        if (depth == 0)
                                return NULL;
                        if (--depth == 0)
                                return p;
                }
        }
        return NULL;
}

/* The next top-level ',' or the end, for an alternative starting at p inside braces. */
static const char *alt_end(const char *p, const char *end)
{
        unsigned depth = 0;

        for (; p < end; p++) {
                if (*p == '\\') {
                        if (p + 1 < end)
                                p++;
                        continue;
                }
                if (*p == '[') {
                        const char *q = class_end(p, end);

                        p = q ? q : end - 1;
                        continue;
                }
                if (*p == '{')
                        depth++;
                else if (*p == '}')
                        depth--;
                else if (*p == ',' && depth == 0)
                        return p;
        }
        return end;
}

/*
 * Matches one character c against the class starting at p ('[' already
 * consumed). Returns the position after ']' in *ret_next, or NULL on a
 * malformed class (which never matches).
 */
static bool class_match(const char *p, const char *end, char c, const char **ret_next)
{
        bool negate = false, found = false;
        bool first = true;

        *ret_next = NULL;
        if (p < end && (*p == '!' || *p == '^')) {
                negate = true;
                p++;
        }
        while (p < end) {
                unsigned char lo, hi;

                if (*p == ']' && !first) {
                        *ret_next = p + 1;
                        return found != negate;
                }
                first = false;
                if (*p == '\\' && p + 1 < end)
                        p++;
                lo = (unsigned char)*p++;
                hi = lo;
                if (p + 1 < end && *p == '-' && p[1] != ']') {
                        p++;
                        if (*p == '\\' && p + 1 < end)
                                p++;
                        hi = (unsigned char)*p++;
                }
                if ((unsigned char)c >= lo && (unsigned char)c <= hi)
                        found = true;
        }
        return false;
}

/* True if the rest of the pattern (p..end plus continuations) is empty. */
static bool rest_empty(const char *p, const char *end, const GlobCont *k)
{
        if (p < end)
                return false;
        for (; k; k = k->next)
                if (k->p < k->end)
                        return false;
        return true;
}

static bool rest_is_doublestar(const char *p, const char *end, const GlobCont *k)
{
        return end - p == 2 && p[0] == '*' && p[1] == '*' && rest_empty(end, end, k);
}

/* 1 = match, 0 = no match, -1 = budget exhausted */
static int match_here(GlobState *st, const char *p, const char *end, const GlobCont *k,
                      const char *s)
{
        for (;;) {
                if (--st->budget < 0)
                        return -1;
                if (p >= end) {
                        if (k) {
                                p = k->p;
                                end = k->end;
                                k = k->next;
                                continue;
                        }
                        return *s == '\0';
                }

                switch (*p) {
                case '*': {
                        bool dbl = p + 1 < end && p[1] == '*';
                        const char *q = p + 1;
                        int r;

                        while (q < end && *q == '*')
                                q++;
                        if (dbl && st->pathname && q < end && *q == '/' &&
                            (p == st->pattern || p[-1] == '/')) {
                                /* a "**" between slashes also matches one "/": zero directories */
                                r = match_here(st, q + 1, end, k, s);
                                if (r != 0)
                                        return r;
                        }
                        for (const char *t = s;; t++) {
                                r = match_here(st, q, end, k, t);
                                if (r != 0)
                                        return r;
                                if (*t == '\0')
                                        return 0;
                                if (!dbl && st->pathname && *t == '/')
                                        return 0;
                        }
                }
                case '?':
                        if (*s == '\0' || (st->pathname && *s == '/'))
                                return 0;
                        p++;
                        s++;
                        break;
                case '[': {
                        const char *next;

                        if (*s == '\0' || (st->pathname && *s == '/'))
                                return 0;
                        if (!class_match(p + 1, end, *s, &next))
                                return 0;
                        p = next;
                        s++;
                        break;
                }
                case '{': {
                        const char *close = brace_end(p, end);
                        GlobCont nk;

                        if (!close)
                                return 0; /* malformed: never matches */
                        nk = (GlobCont){ .p = close + 1, .end = end, .next = k };
                        for (const char *a = p + 1; a <= close;) {
                                const char *e = alt_end(a, close);
                                int r = match_here(st, a, e, &nk, s);

                                if (r != 0)
                                        return r;
                                a = e + 1;
                        }
                        return 0;
                }
                case '\\':
                        if (p + 1 < end)
                                p++;
                        if (*s != *p)
                                return 0;
                        p++;
                        s++;
                        break;
                default:
                        if (*p == '/' && *s == '\0' && st->pathname &&
                            rest_is_doublestar(p + 1, end, k))
                                return 1; /* a trailing "**" after a slash also matches the
                                             directory itself */
                        if (*s != *p)
                                return 0;
                        p++;
                        s++;
                        break;
                }
        }
}

int policy_glob_match_full(const char *pattern, const char *s, bool pathname)
{
        GlobState st = { .budget = GLOB_STEP_BUDGET, .pathname = pathname, .pattern = pattern };

        if (!pattern || !s)
                return 0;
        return match_here(&st, pattern, pattern + strlen(pattern), NULL, s);
}

bool policy_glob_match(const char *pattern, const char *s, bool pathname)
{
        return policy_glob_match_full(pattern, s, pathname) > 0;
}

bool policy_glob_is_literal(const char *pattern)
{
        return !strpbrk(pattern, "*?[{\\");
}

int policy_glob_validate(const char *pattern, char *why, size_t why_size)
{
        unsigned depth = 0;
        size_t n;

#define FAIL(...)                                             \
        do {                                                  \
                if (why && why_size)                          \
                        snprintf(why, why_size, __VA_ARGS__); \
                return -EINVAL;                               \
        } while (0)

        if (isempty(pattern))
                FAIL("the pattern is empty");
        n = strlen(pattern);
        if (n > POLICY_MAX_GLOB_LEN)
                FAIL("the pattern is longer than %d bytes", POLICY_MAX_GLOB_LEN);
        for (size_t i = 0; i < n; i++) {
                char c = pattern[i];

                if ((unsigned char)c < 0x20 || c == 0x7f)
                        FAIL("control character at offset %zu", i);
                switch (c) {
                case '\\':
                        if (i + 1 >= n)
                                FAIL("a trailing backslash escapes nothing; write \\\\ for a "
                                     "literal backslash");
                        i++;
                        break;
                case '[': {
                        size_t j = i + 1;
                        bool empty = true;

                        if (j < n && (pattern[j] == '!' || pattern[j] == '^'))
                                j++;
                        if (j < n && pattern[j] == ']') {
                                j++;
                                empty = false;
                        }
                        while (j < n && pattern[j] != ']') {
                                unsigned char lo, hi;

                                empty = false;
                                if (pattern[j] == '\\') {
                                        if (j + 1 >= n)
                                                break;
                                        j++;
                                }
                                lo = (unsigned char)pattern[j++];
                                if (j + 1 < n && pattern[j] == '-' && pattern[j + 1] != ']') {
                                        j++;
                                        if (pattern[j] == '\\' && j + 1 < n)
                                                j++;
                                        hi = (unsigned char)pattern[j++];
                                        if (hi < lo)
                                                FAIL("the range '%c-%c' in a [...] class is "
                                                     "reversed",
                                                     lo, hi);
                                }
                        }
                        if (j >= n)
                                FAIL("'[' at offset %zu opens a class that is never closed "
                                     "with ']'; write \\[ for a literal bracket",
                                     i);
                        if (empty)
                                FAIL("the class at offset %zu is empty", i);
                        i = j;
                        break;
                }
                case '{':
                        if (++depth > POLICY_MAX_BRACE_DEPTH)
                                FAIL("brace sets are nested deeper than %d",
                                     POLICY_MAX_BRACE_DEPTH);
                        break;
                case '}':
                        if (depth == 0)
                                FAIL("'}' at offset %zu closes no brace set; write \\} for a "
                                     "literal brace",
                                     i);
                        depth--;
                        break;
                default:
                        break;
                }
        }
        if (depth > 0)
                FAIL("a '{' brace set is never closed with '}'; write \\{ for a literal brace");
        return 0;
#undef FAIL
}
