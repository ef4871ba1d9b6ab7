/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * plan_fp_*: a secret's bytes found wherever they land. The secret is
 * shaped like corosync's authkey (256 random bytes); it is found copied,
 * hex-dumped (lower, upper, `xxd -p` lines), base64-encoded (wrapped at 76
 * like base64(1), at each of the three byte offsets, URL-safe too),
 * embedded in a larger file, and as a 32-byte piece; a 31-byte piece,
 * other random data and another key with the same PEM armour are not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "plan/plan-internal.h"

static const char *AUTHKEY = "/etc/corosync/authkey";

static void fill_random(unsigned *seed, uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)(rand_r(seed) >> 7);
}

static char *hex(const uint8_t *p, size_t n, bool upper, size_t wrap)
{
        const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
        char *s = malloc(n * 3 + 2), *o = s;

        assert_non_null(s);
        for (size_t i = 0; i < n; i++) {
                *o++ = d[p[i] >> 4];
                *o++ = d[p[i] & 15];
                if (wrap && (i + 1) % wrap == 0)
                        *o++ = '\n';
        }
        *o = 0;
        return s;
}

static char *b64(const uint8_t *p, size_t n, size_t wrap, bool url)
{
        const char *a = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                            : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *s = malloc(n * 2 + 8), *o = s;
        size_t col = 0;

        assert_non_null(s);
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                char q[4];

                if (i + 1 < n)
                        v |= (uint32_t)p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                q[0] = a[v >> 18 & 63];
                q[1] = a[v >> 12 & 63];
                q[2] = i + 1 < n ? a[v >> 6 & 63] : '=';
                q[3] = i + 2 < n ? a[v & 63] : '=';
                for (int k = 0; k < 4; k++) {
                        *o++ = q[k];
                        if (wrap && ++col == wrap) {
                                *o++ = '\n';
                                col = 0;
                        }
                }
        }
        *o++ = '\n';
        *o = 0;
        return s;
}

typedef struct {
        PlanFingerprints *fp;
        uint8_t key[256];
        unsigned seed;
} Fixture;

static int setup(void **state)
{
        Fixture *f = calloc(1, sizeof(*f));
        uint8_t other[100];

        assert_non_null(f);
        f->seed = 4242;
        fill_random(&f->seed, f->key, sizeof(f->key));
        f->fp = plan_fp_new();
        assert_non_null(f->fp);
        assert_int_equal(plan_fp_add(f->fp, AUTHKEY, f->key, sizeof(f->key)), 0);
        /* a second secret, so that results name the right one */
        fill_random(&f->seed, other, sizeof(other));
        assert_int_equal(plan_fp_add(f->fp, "/root/.ssh/id_ed25519", other, sizeof(other)), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        Fixture *f = *state;

        plan_fp_free(f->fp);
        free(f);
        return 0;
}

static void test_copy(void **state)
{
        Fixture *f = *state;

        assert_string_equal(plan_fp_scan(f->fp, f->key, sizeof(f->key)), AUTHKEY);
}

static void test_embedded_at_odd_offset(void **state)
{
        Fixture *f = *state;
        size_t n = 1 << 20;
        uint8_t *big = malloc(n);

        assert_non_null(big);
        fill_random(&f->seed, big, n);
        assert_null(plan_fp_scan(f->fp, big, n));
        memcpy(big + 777777, f->key, sizeof(f->key));
        assert_string_equal(plan_fp_scan(f->fp, big, n), AUTHKEY);
        /* at the very end */
        fill_random(&f->seed, big, n);
        memcpy(big + n - sizeof(f->key), f->key, sizeof(f->key));
        assert_string_equal(plan_fp_scan(f->fp, big, n), AUTHKEY);
        free(big);
}

static void test_pieces(void **state)
{
        Fixture *f = *state;
        uint8_t buf[100];

        fill_random(&f->seed, buf, sizeof(buf));
        memcpy(buf + 13, f->key + 101, 32);
        assert_string_equal(plan_fp_scan(f->fp, buf, sizeof(buf)), AUTHKEY);
        /* 31 bytes are not enough */
        fill_random(&f->seed, buf, sizeof(buf));
        memcpy(buf + 13, f->key + 101, 31);
        assert_null(plan_fp_scan(f->fp, buf, sizeof(buf)));
        /* nor two 31-byte pieces from different places */
        memcpy(buf + 50, f->key + 180, 31);
        assert_null(plan_fp_scan(f->fp, buf, sizeof(buf)));
        /* exactly 32 bytes alone */
        assert_string_equal(plan_fp_scan(f->fp, f->key + 224, 32), AUTHKEY);
}

static void test_hex(void **state)
{
        Fixture *f = *state;
        char *s, *wrapped;

        s = hex(f->key, sizeof(f->key), false, 0);
        assert_string_equal(plan_fp_scan(f->fp, s, strlen(s)), AUTHKEY);
        free(s);
        s = hex(f->key, sizeof(f->key), true, 0);
        assert_string_equal(plan_fp_scan(f->fp, s, strlen(s)), AUTHKEY);
        free(s);
        /* xxd -p: 30 bytes a line */
        s = hex(f->key, sizeof(f->key), false, 30);
        assert_string_equal(plan_fp_scan(f->fp, s, strlen(s)), AUTHKEY);
        /* starting at an odd nibble inside a longer hex run */
        assert_int_equal(asprintf(&wrapped, "key=7%s\n", s), (int)strlen(s) + 6);
        assert_string_equal(plan_fp_scan(f->fp, wrapped, strlen(wrapped)), AUTHKEY);
        free(wrapped);
        free(s);
        /* a hex piece of 32 bytes */
        s = hex(f->key + 40, 32, false, 0);
        assert_string_equal(plan_fp_scan(f->fp, s, strlen(s)), AUTHKEY);
        free(s);
        s = hex(f->key + 40, 31, false, 0);
        assert_null(plan_fp_scan(f->fp, s, strlen(s)));
        free(s);
}

static void test_base64_all_offsets(void **state)
{
        Fixture *f = *state;
        uint8_t buf[300];

        for (size_t off = 0; off < 3; off++) {
                char *s, *doc;

                fill_random(&f->seed, buf, sizeof(buf));
                memcpy(buf + off, f->key, sizeof(f->key));
                /* base64(1) wraps at 76 columns */
                s = b64(buf, off + sizeof(f->key), 76, false);
                assert_string_equal(plan_fp_scan(f->fp, s, strlen(s)), AUTHKEY);
                assert_int_equal(asprintf(&doc, "secret: |\n%s...\n", s), (int)strlen(s) + 14);
                assert_string_equal(plan_fp_scan(f->fp, doc, strlen(doc)), AUTHKEY);
                free(doc);
                free(s);
                /* unwrapped, URL-safe */
                s = b64(buf, off + sizeof(f->key), 0, true);
                assert_string_equal(plan_fp_scan(f->fp, s, strlen(s)), AUTHKEY);
                free(s);
                /* CRLF lines of 64 (PEM) */
                s = b64(buf, off + sizeof(f->key), 64, false);
                assert_string_equal(plan_fp_scan(f->fp, s, strlen(s)), AUTHKEY);
                free(s);
        }
        /* base64 of a 32-byte piece, at offset 1 of a quantum */
        buf[0] = 'x';
        memcpy(buf + 1, f->key + 7, 32);
        char *s = b64(buf, 33, 0, false);
        assert_string_equal(plan_fp_scan(f->fp, s, strlen(s)), AUTHKEY);
        free(s);
}

static void test_no_false_positive_on_random(void **state)
{
        Fixture *f = *state;
        size_t n = 32 << 20;
        uint8_t *big = malloc(n);
        char *h, *b;

        assert_non_null(big);
        fill_random(&f->seed, big, n);
        assert_null(plan_fp_scan(f->fp, big, n));
        h = hex(big, 1 << 20, false, 30);
        assert_null(plan_fp_scan(f->fp, h, strlen(h)));
        b = b64(big, 1 << 20, 76, false);
        assert_null(plan_fp_scan(f->fp, b, strlen(b)));
        free(h);
        free(b);
        free(big);
}

static void test_other_secret_named(void **state)
{
        PlanFingerprints *fp = plan_fp_new();
        uint8_t a[64], b[64];
        unsigned seed = 7;

        (void)state;
        fill_random(&seed, a, sizeof(a));
        fill_random(&seed, b, sizeof(b));
        assert_int_equal(plan_fp_add(fp, "/a", a, sizeof(a)), 0);
        assert_int_equal(plan_fp_add(fp, "/b", b, sizeof(b)), 0);
        assert_string_equal(plan_fp_scan(fp, b + 10, 40), "/b");
        assert_string_equal(plan_fp_scan(fp, a, 33), "/a");
        plan_fp_free(fp);
}

static void test_short_secret_whole(void **state)
{
        PlanFingerprints *fp = plan_fp_new();
        const char *pw = "hunter2-Xq9!zz"; /* 14 bytes */
        char doc[64];

        (void)state;
        assert_int_equal(plan_fp_add(fp, "/etc/pw", pw, strlen(pw)), 0);
        assert_int_equal(plan_fp_add(fp, "/etc/tiny", "abc", 3), 0); /* too short: ignored */
        snprintf(doc, sizeof(doc), "password=%s\n", pw);
        assert_string_equal(plan_fp_scan(fp, doc, strlen(doc)), "/etc/pw");
        assert_null(plan_fp_scan(fp, "password=hunter2-Xq9!z\n", 23));
        assert_null(plan_fp_scan(fp, "abcabcabc", 9));
        plan_fp_free(fp);
        /* nothing added: nothing found */
        fp = plan_fp_new();
        assert_null(plan_fp_scan(fp, doc, strlen(doc)));
        plan_fp_free(fp);
}

static void test_pem_armour_not_shared(void **state)
{
        PlanFingerprints *fp = plan_fp_new();
        uint8_t k1[200], k2[200];
        unsigned seed = 99;
        char *b1, *b2, *pem1, *pem2;

        (void)state;
        fill_random(&seed, k1, sizeof(k1));
        fill_random(&seed, k2, sizeof(k2));
        b1 = b64(k1, sizeof(k1), 70, false);
        b2 = b64(k2, sizeof(k2), 70, false);
        assert_true(asprintf(&pem1,
                             "-----BEGIN OPENSSH PRIVATE KEY-----\n%s"
                             "-----END OPENSSH PRIVATE KEY-----\n",
                             b1) > 0);
        assert_true(asprintf(&pem2,
                             "-----BEGIN OPENSSH PRIVATE KEY-----\n%s"
                             "-----END OPENSSH PRIVATE KEY-----\n",
                             b2) > 0);
        assert_int_equal(plan_fp_add(fp, "/root/.ssh/id_rsa", pem1, strlen(pem1)), 0);
        assert_string_equal(plan_fp_scan(fp, pem1, strlen(pem1)), "/root/.ssh/id_rsa");
        assert_null(plan_fp_scan(fp, pem2, strlen(pem2)));
        /* zero padding is not a fingerprint either */
        uint8_t zeros[100] = { 0 };
        uint8_t padded[200] = { 0 };
        memcpy(padded + 100, k1, 100);
        assert_int_equal(plan_fp_add(fp, "/etc/keytab", padded, sizeof(padded)), 0);
        assert_null(plan_fp_scan(fp, zeros, sizeof(zeros)));
        assert_string_equal(plan_fp_scan(fp, padded + 90, 50), "/etc/keytab");
        free(b1);
        free(b2);
        free(pem1);
        free(pem2);
        plan_fp_free(fp);
}

/* The real encoders' output, as a command would write it (base64(1) wraps at 76). */
static char *run_tool(const char *cmd, const char *file)
{
        char line[512];
        char *out = NULL;
        size_t len = 0;
        FILE *f;

        snprintf(line, sizeof(line), "%s '%s'", cmd, file);
        f = popen(line, "r");
        assert_non_null(f);
        for (;;) {
                char buf[4096];
                size_t n = fread(buf, 1, sizeof(buf), f);

                if (n == 0)
                        break;
                out = realloc(out, len + n + 1);
                assert_non_null(out);
                memcpy(out + len, buf, n);
                len += n;
                out[len] = 0;
        }
        assert_int_equal(pclose(f), 0);
        assert_non_null(out);
        return out;
}

static void test_real_encoders(void **state)
{
        Fixture *f = *state;
        char path[] = "/tmp/airlock-fp-XXXXXX";
        int fd = mkstemp(path);
        static const char *const tools[] = {
                "base64",   "base64 -w 64",  "base64 -w 0",    "xxd -p",
                "xxd",      "xxd -u -g1",    "xxd -c 32 -g 8", "hexdump -C",
                "od -t x1", "od -A x -t x1", "od -An -v -tx1", "hexdump -v -e '1/1 \"%02X\"'",
        };

        assert_true(fd >= 0);
        assert_int_equal(write(fd, f->key, sizeof(f->key)), (ssize_t)sizeof(f->key));
        close(fd);
        for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
                char *out = run_tool(tools[i], path);

                if (!plan_fp_scan(f->fp, out, strlen(out)))
                        fail_msg("%s output not recognised:\n%.200s", tools[i], out);
                free(out);
        }
        unlink(path);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_embedded_at_odd_offset, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pieces, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hex, setup, teardown),
                cmocka_unit_test_setup_teardown(test_base64_all_offsets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_false_positive_on_random, setup, teardown),
                cmocka_unit_test_setup_teardown(test_real_encoders, setup, teardown),
                cmocka_unit_test(test_other_secret_named),
                cmocka_unit_test(test_short_secret_whole),
                cmocka_unit_test(test_pem_armour_not_shared),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
