/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>

#include "common/hash.h"
#include "common/json.h"
#include "common/util.h"

static void test_parse_u64(void **state)
{
        uint64_t v = 0;

        assert_int_equal(parse_u64("0", 10, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_u64("18446744073709551615", UINT64_MAX, &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(parse_u64("18446744073709551616", UINT64_MAX, &v), -ERANGE);
        assert_int_equal(parse_u64("11", 10, &v), -ERANGE);
        assert_int_equal(parse_u64("", 10, &v), -EINVAL);
        assert_int_equal(parse_u64(" 1", 10, &v), -EINVAL);
        assert_int_equal(parse_u64("1 ", 10, &v), -EINVAL);
        assert_int_equal(parse_u64("-1", 10, &v), -EINVAL);
        assert_int_equal(parse_u64("+1", 10, &v), -EINVAL);
        assert_int_equal(parse_u64("0x10", 100, &v), -EINVAL);
}

static void test_parse_size(void **state)
{
        uint64_t v = 0;

        assert_int_equal(parse_size("512M", &v), 0);
        assert_true(v == 512ULL << 20);
        assert_int_equal(parse_size("3", &v), 0);
        assert_true(v == 3);
        assert_int_equal(parse_size("1G", &v), 0);
        assert_true(v == 1ULL << 30);
        assert_int_equal(parse_size("M", &v), -EINVAL);
        assert_int_equal(parse_size("1X", &v), -EINVAL);
        assert_int_equal(parse_size("99999999999999999T", &v), -ERANGE);
}

static void test_strv(void **state)
{
        _cleanup_strv_free_ char **l = NULL, **c = NULL;

        assert_int_equal(strv_extend(&l, "a"), 0);
        assert_int_equal(strv_extend(&l, "b"), 0);
        assert_int_equal(strv_length(l), 2);
        assert_true(strv_contains(l, "b"));
        assert_false(strv_contains(l, "c"));
        c = strv_copy(l);
        assert_non_null(c);
        assert_string_equal(c[1], "b");
        assert_null(c[2]);
}

static void test_escape(void **state)
{
        _cleanup_free_ char *a = escape_for_terminal("ok \x1b[2J\r\n\\ é");
        _cleanup_free_ char *b = escape_for_terminal("\xc3\x28 bad utf8");
        _cleanup_free_ char *c = escape_for_terminal("\xe2\x80\xae rtl");

        assert_string_equal(a, "ok \\x1b[2J\\x0d\\x0a\\x5c é");
        assert_string_equal(b, "\\xc3( bad utf8");
        assert_string_equal(c, "\\xe2\\x80\\xae rtl");
}

static void test_argv_display(void **state)
{
        char *argv[] = { (char *)"systemctl", (char *)"restart", (char *)"it's here", (char *)"",
                         NULL };
        _cleanup_free_ char *s = argv_to_display(argv);

        assert_string_equal(s, "systemctl restart 'it'\\''s here' ''");
}

static void test_read_full_limits(void **state)
{
        char path[] = "/tmp/airlock-test-XXXXXX";
        int fd = mkstemp(path);
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;

        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, "hello world", 11), 0);
        close(fd);
        assert_int_equal(read_full_file(path, 11, &buf, &n), 0);
        assert_int_equal(n, 11);
        assert_string_equal(buf, "hello world");
        free(buf);
        buf = NULL;
        assert_int_equal(read_full_file(path, 10, &buf, &n), -EFBIG);
        assert_null(buf);
        unlink(path);
        assert_int_equal(read_full_file(path, 10, &buf, &n), -ENOENT);
}

static void test_json_strv(void **state)
{
        char *l[] = { (char *)"a b", (char *)"", (char *)"é", NULL };
        char *bad[] = { (char *)"ok", (char *)"\xff not UTF-8", NULL };
        json_t *a, *nul;
        char **back;

        (void)state;
        a = json_from_strv(l);
        assert_non_null(a);
        assert_int_equal(json_array_size(a), 3);
        back = strv_from_json(a);
        assert_non_null(back);
        assert_int_equal(strv_length(back), 3);
        for (size_t i = 0; i < 3; i++)
                assert_string_equal(back[i], l[i]);
        strv_free(back);
        json_decref(a);
        /* exact or nothing: never a list with a string mended or dropped */
        assert_null(json_from_strv(bad));
        a = json_pack("[s, i]", "x", 1);
        assert_null(strv_from_json(a));
        json_decref(a);
        nul = json_pack("[s#]", "a\0b", 3); /* a NUL inside would cut the string short */
        assert_null(strv_from_json(nul));
        json_decref(nul);
        assert_null(strv_from_json(NULL));
        a = json_array();
        back = strv_from_json(a);
        assert_non_null(back);
        assert_null(back[0]);
        strv_free(back);
        json_decref(a);
}

static void test_sha256(void **state)
{
        char hex[SHA256_HEX_LEN + 1];

        assert_int_equal(sha256_hex("abc", 3, hex), 0);
        assert_string_equal(hex,
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_u64),    cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_strv),         cmocka_unit_test(test_escape),
                cmocka_unit_test(test_argv_display), cmocka_unit_test(test_read_full_limits),
                cmocka_unit_test(test_sha256),       cmocka_unit_test(test_json_strv),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
