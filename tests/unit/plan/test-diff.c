/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * plan_diff(), plan_is_text(), plan_binary_summary(). Besides exact
 * expected diffs, every generated diff is applied back to the old text by
 * a small, strict patcher here and must give the new text byte for byte.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan/plan-internal.h"

/* Applies a unified diff from plan_diff() to a; returns the result or NULL if it does not apply. */
static char *apply(const char *a, size_t a_len, const char *diff, size_t *ret_len)
{
        size_t cap = a_len + strlen(diff) + 1, len = 0, ai = 0;
        char *out = malloc(cap);
        const char *p = diff;

        assert_non_null(out);
        /* skip the two header lines */
        for (int i = 0; i < 2; i++) {
                p = strchr(p, '\n');
                if (!p)
                        goto fail;
                p++;
        }
        while (*p) {
                unsigned long as, ac = 1, bs, bc = 1;
                int n = 0;

                if (sscanf(p, "@@ -%lu%n", &as, &n) != 1)
                        goto fail;
                p += n;
                if (*p == ',') {
                        ac = strtoul(p + 1, (char **)&p, 10);
                }
                if (sscanf(p, " +%lu%n", &bs, &n) != 1)
                        goto fail;
                p += n;
                if (*p == ',')
                        bc = strtoul(p + 1, (char **)&p, 10);
                if (strncmp(p, " @@\n", 4) != 0)
                        goto fail;
                p += 4;
                /* copy a's lines before the hunk */
                size_t target = ac == 0 ? as : as - 1;
                size_t line = 0;
                {
                        /* count lines already consumed */
                        for (size_t i = 0; i < ai; i++)
                                if (a[i] == '\n')
                                        line++;
                }
                while (line < target) {
                        const char *e = memchr(a + ai, '\n', a_len - ai);
                        size_t l = e ? (size_t)(e - (a + ai)) + 1 : a_len - ai;

                        memcpy(out + len, a + ai, l);
                        len += l;
                        ai += l;
                        line++;
                }
                while (*p == ' ' || *p == '-' || *p == '+') {
                        char op = *p++;
                        const char *e = strchr(p, '\n');
                        size_t l;

                        if (!e)
                                goto fail;
                        l = (size_t)(e - p) + 1;
                        bool no_nl = strncmp(e + 1, "\\ No newline at end of file\n", 28) == 0;
                        size_t real = no_nl ? l - 1 : l;
                        if (op != '+') {
                                if (ai + real > a_len || memcmp(a + ai, p, real) != 0)
                                        goto fail;
                                ai += real;
                        }
                        if (op != '-') {
                                memcpy(out + len, p, real);
                                len += real;
                        }
                        p += l;
                        if (no_nl)
                                p += 28;
                }
                (void)bs;
                (void)bc;
        }
        memcpy(out + len, a + ai, a_len - ai);
        len += a_len - ai;
        *ret_len = len;
        return out;
fail:
        free(out);
        return NULL;
}

static void check_roundtrip(const char *a, size_t a_len, const char *b, size_t b_len)
{
        char *d = NULL, *got;
        bool trunc = true;
        size_t got_len = 0;

        assert_int_equal(plan_diff(a, a_len, b, b_len, "/x", "/x", SIZE_MAX, &d, &trunc), 0);
        assert_false(trunc);
        if (a_len == b_len && memcmp(a, b, a_len) == 0) {
                assert_string_equal(d, "");
                free(d);
                return;
        }
        got = apply(a, a_len, d, &got_len);
        if (!got || got_len != b_len || memcmp(got, b, b_len) != 0)
                fail_msg("diff does not apply:\n%s", d);
        free(got);
        free(d);
}

static void test_equal_is_empty(void **state)
{
        char *d = NULL;
        bool t = true;

        (void)state;
        assert_int_equal(plan_diff("a\nb\n", 4, "a\nb\n", 4, "/etc/x", "/etc/x", 100, &d, &t), 0);
        assert_string_equal(d, "");
        assert_false(t);
        free(d);
        assert_int_equal(plan_diff(NULL, 0, NULL, 0, NULL, "/etc/x", 100, &d, &t), 0);
        assert_string_equal(d, "");
        free(d);
}

static void test_one_change_exact(void **state)
{
        const char *a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        const char *b = "1\n2\n3\n4\n5\nsix\n7\n8\n9\n10\n";
        char *d = NULL;
        bool t;

        (void)state;
        assert_int_equal(plan_diff(a, strlen(a), b, strlen(b), "/etc/x", "/etc/x", 4096, &d, &t),
                         0);
        assert_string_equal(d, "--- a/etc/x\n+++ b/etc/x\n"
                               "@@ -3,7 +3,7 @@\n 3\n 4\n 5\n-6\n+six\n 7\n 8\n 9\n");
        free(d);
}

static void test_two_hunks_and_merge(void **state)
{
        char a[512] = "", b[512] = "";
        char *d = NULL;
        bool t;

        (void)state;
        for (int i = 1; i <= 30; i++) {
                char l[16];

                snprintf(l, sizeof(l), "%d\n", i);
                strcat(a, l);
                if (i == 2 || i == 25)
                        strcat(b, "X\n");
                else
                        strcat(b, l);
        }
        assert_int_equal(plan_diff(a, strlen(a), b, strlen(b), "/f", "/f", 4096, &d, &t), 0);
        assert_string_equal(d, "--- a/f\n+++ b/f\n"
                               "@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n"
                               "@@ -22,7 +22,7 @@\n 22\n 23\n 24\n-25\n+X\n 26\n 27\n 28\n");
        free(d);
        check_roundtrip(a, strlen(a), b, strlen(b));

        /* changes 6 kept lines apart share one hunk (GNU diff does the same) */
        strcpy(b, a);
        b[strlen("1\n2\n3\n4\n5\n6\n7\n")] = 'Y'; /* line 8 */
        b[0] = 'Z';                               /* line 1 */
        assert_int_equal(plan_diff(a, strlen(a), b, strlen(b), "/f", "/f", 4096, &d, &t), 0);
        assert_non_null(strstr(d, "@@ -1,11 +1,11 @@\n"));
        assert_null(strstr(d + 20, "@@ -1"));
        free(d);
}

static void test_no_trailing_newline(void **state)
{
        char *d = NULL;
        bool t;

        (void)state;
        assert_int_equal(plan_diff("a\nb", 3, "a\nb\n", 4, "/f", "/f", 4096, &d, &t), 0);
        assert_string_equal(d, "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n"
                               "\\ No newline at end of file\n+b\n");
        free(d);
        assert_int_equal(plan_diff("a\n", 2, "a\nc", 3, "/f", "/f", 4096, &d, &t), 0);
        assert_string_equal(d, "--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n a\n+c\n"
                               "\\ No newline at end of file\n");
        free(d);
        check_roundtrip("a\nb", 3, "a\nb\n", 4);
        check_roundtrip("x", 1, "y", 1);
        check_roundtrip("a\nb\nc", 5, "a\nB\nc", 5);
}

static void test_created_and_deleted(void **state)
{
        char *d = NULL;
        bool t;

        (void)state;
        assert_int_equal(plan_diff(NULL, 0, "new\nfile\n", 9, NULL, "/etc/n", 4096, &d, &t), 0);
        assert_string_equal(d, "--- /dev/null\n+++ b/etc/n\n@@ -0,0 +1,2 @@\n+new\n+file\n");
        free(d);
        assert_int_equal(plan_diff("old\n", 4, NULL, 0, "/etc/o", NULL, 4096, &d, &t), 0);
        assert_string_equal(d, "--- a/etc/o\n+++ /dev/null\n@@ -1 +0,0 @@\n-old\n");
        free(d);
        /* emptied, not deleted */
        check_roundtrip("a\nb\n", 4, "", 0);
        check_roundtrip("", 0, "a\n", 2);
}

static void test_truncated_at_line(void **state)
{
        char a[4096] = "", b[4096] = "";
        char *d = NULL;
        bool t = false;

        (void)state;
        for (int i = 0; i < 100; i++) {
                strcat(a, "old line\n");
                strcat(b, "new line\n");
        }
        assert_int_equal(plan_diff(a, strlen(a), b, strlen(b), "/f", "/f", 100, &d, &t), 0);
        assert_true(t);
        assert_true(strlen(d) <= 100);
        assert_true(strlen(d) > 50);
        assert_int_equal(d[strlen(d) - 1], '\n');
        free(d);
}

static void test_too_large(void **state)
{
        size_t n = 8 * 1024 * 1024 + 1;
        char *big = calloc(1, n), *d = NULL;
        bool t;

        (void)state;
        assert_non_null(big);
        memset(big, 'a', n);
        assert_int_equal(plan_diff(big, n, "x", 1, "/f", "/f", 100, &d, &t), -E2BIG);
        assert_int_equal(plan_diff("x", 1, big, n, "/f", "/f", 100, &d, &t), -E2BIG);
        free(big);
}

static char *random_text(unsigned *seed, size_t lines, size_t *ret_len)
{
        size_t cap = lines * 4 + 2, len = 0;
        char *s = malloc(cap);

        assert_non_null(s);
        for (size_t i = 0; i < lines; i++) {
                s[len++] = (char)('a' + rand_r(seed) % 4);
                if (rand_r(seed) % 3 == 0)
                        s[len++] = (char)('a' + rand_r(seed) % 4);
                s[len++] = '\n';
        }
        if (len && rand_r(seed) % 4 == 0)
                len--; /* sometimes no final newline */
        *ret_len = len;
        return s;
}

static void test_random_roundtrips(void **state)
{
        unsigned seed = 12345;

        (void)state;
        for (int i = 0; i < 400; i++) {
                size_t la, lb;
                char *a = random_text(&seed, (size_t)(rand_r(&seed) % 40), &la);
                char *b = random_text(&seed, (size_t)(rand_r(&seed) % 40), &lb);

                check_roundtrip(a, la, b, lb);
                check_roundtrip(b, lb, a, la);
                free(a);
                free(b);
        }
}

static void test_many_edits_fallback_still_applies(void **state)
{
        /* more than the edit limit: the middle is replaced whole, the diff still applies */
        size_t n = 6000, la = 0, lb = 0;
        char *a = malloc(n * 8), *b = malloc(n * 8);

        (void)state;
        assert_non_null(a);
        assert_non_null(b);
        for (size_t i = 0; i < n; i++) {
                la += (size_t)sprintf(a + la, "a%zu\n", i);
                lb += (size_t)sprintf(b + lb, "b%zu\n", i);
        }
        memcpy(b, "a0\n", 3); /* a common first line */
        check_roundtrip(a, la, b, lb);
        free(a);
        free(b);
}

static void test_is_text(void **state)
{
        (void)state;
        assert_true(plan_is_text("", 0));
        assert_true(plan_is_text("hello\n", 6));
        assert_true(plan_is_text("caf\xc3\xa9\tx\r\n", 9));
        assert_false(plan_is_text("a\0b", 3));
        assert_false(plan_is_text("\xff\xfe", 2));
        assert_false(plan_is_text("\xc3", 1));             /* cut sequence */
        assert_false(plan_is_text("\xe0\x80\x80", 3));     /* overlong */
        assert_false(plan_is_text("\xed\xa0\x80", 3));     /* surrogate */
        assert_false(plan_is_text("\x01\x02\x03\x04", 4)); /* control bytes */
        char buf[300];
        memset(buf, 'x', sizeof(buf));
        buf[10] = '\a'; /* one bell in 300 bytes is still text */
        assert_true(plan_is_text(buf, sizeof(buf)));
}

static void test_binary_summary(void **state)
{
        char *s;

        (void)state;
        s = plan_binary_summary("abc", 3, true, "abcd", 4, true);
        /* sha256("abc") = ba7816bf8f01..., sha256("abcd") = 88d4266fd4e6... */
        assert_string_equal(s, "binary, 3 → 4 bytes, sha256 ba7816bf8f01… → 88d4266fd4e6…");
        free(s);
        s = plan_binary_summary(NULL, 0, false, "abc", 3, true);
        assert_string_equal(s, "binary, created, 3 bytes, sha256 ba7816bf8f01…");
        free(s);
        s = plan_binary_summary("abc", 3, true, NULL, 0, false);
        assert_string_equal(s, "binary, deleted, 3 bytes, sha256 ba7816bf8f01…");
        free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_equal_is_empty),
                cmocka_unit_test(test_one_change_exact),
                cmocka_unit_test(test_two_hunks_and_merge),
                cmocka_unit_test(test_no_trailing_newline),
                cmocka_unit_test(test_created_and_deleted),
                cmocka_unit_test(test_truncated_at_line),
                cmocka_unit_test(test_too_large),
                cmocka_unit_test(test_random_roundtrips),
                cmocka_unit_test(test_many_edits_fallback_still_applies),
                cmocka_unit_test(test_is_text),
                cmocka_unit_test(test_binary_summary),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
