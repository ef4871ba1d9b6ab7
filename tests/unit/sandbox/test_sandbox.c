/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the sandbox module's parts that need no privileges: names,
 * session ids, and the preparation behind --explain (path checks, secret
 * expansion, hard-link refusal) on a real temporary directory tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

static char tmpdir[256];

static int setup(void **state)
{
        char cmd[300];

        snprintf(tmpdir, sizeof tmpdir, "/tmp/airlock-sbx-unit-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(cmd, sizeof cmd, "%s/ws", tmpdir);
        mkdir(cmd, 0755);
        snprintf(cmd, sizeof cmd, "%s/secret", tmpdir);
        FILE *f = fopen(cmd, "w");
        if (!f)
                return -1;
        fputs("TOPSECRET\n", f);
        fclose(f);
        return 0;
}

static int teardown(void **state)
{
        char cmd[300];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static void test_agent_names(void **state)
{
        assert_true(sbx_agent_name_valid("claude"));
        assert_true(sbx_agent_name_valid("a.b_c-9"));
        assert_false(sbx_agent_name_valid(""));
        assert_false(sbx_agent_name_valid(NULL));
        assert_false(sbx_agent_name_valid("-x"));
        assert_false(sbx_agent_name_valid(".x"));
        assert_false(sbx_agent_name_valid("a b"));
        assert_false(sbx_agent_name_valid("a/b"));
        assert_false(sbx_agent_name_valid("a\nb"));
        assert_true(sbx_agent_name_valid(
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_false(sbx_agent_name_valid(
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

static void test_session_ids(void **state)
{
        char a[33], b[33], small[8];

        assert_int_equal(sbx_new_session_id(a, sizeof a), 0);
        assert_int_equal(sbx_new_session_id(b, sizeof b), 0);
        assert_int_equal(strlen(a), 32);
        assert_int_equal(strspn(a, "0123456789abcdef"), 32);
        assert_string_not_equal(a, b);
        assert_int_equal(sbx_new_session_id(small, sizeof small), -ENOBUFS);
}

static char *explain(const char *workspace, char *const *secrets, SbxError *err, int *ret)
{
        char *argv[] = { (char *)"true", NULL };
        SbxConfig c = {
                .argv = argv,
                .agent = "unit",
                .session_id = "00000000000000000000000000000000",
                .workspace = workspace,
                .secret_globs = secrets,
                .allow_weaker = true,
                .agent_user = "airlock-agent",
        };
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);

        assert_non_null(f);
        *ret = sbx_explain(&c, f, err);
        fclose(f);
        return out;
}

static void test_explain_lists_masks(void **state)
{
        char ws[300], secret[300];
        char *secrets[] = { secret, NULL };
        SbxError err = { 0 };
        int r;

        snprintf(ws, sizeof ws, "%s/ws", tmpdir);
        snprintf(secret, sizeof secret, "%s/secret", tmpdir);
        char *out = explain(ws, secrets, &err, &r);
        assert_int_equal(r, 0);
        /* under /tmp (a private tmpfs inside), so hidden rather than masked: */
        assert_non_null(strstr(out, "secrets"));
        assert_non_null(strstr(out, "landlock"));
        assert_non_null(strstr(out, "not covered"));
        free(out);
}

static void test_workspace_refusals(void **state)
{
        char link[300], ws[300];
        SbxError err = { 0 };
        int r;

        char *out = explain("/", NULL, &err, &r);
        free(out);
        assert_true(r < 0);
        assert_int_equal(err.exit_code, 64);
        assert_non_null(strstr(err.message, "system directory"));

        snprintf(ws, sizeof ws, "%s/ws", tmpdir);
        snprintf(link, sizeof link, "%s/link", tmpdir);
        assert_int_equal(symlink(ws, link), 0);
        memset(&err, 0, sizeof err);
        out = explain(link, NULL, &err, &r);
        free(out);
        assert_true(r < 0);
        assert_non_null(strstr(err.message, "symlink"));

        memset(&err, 0, sizeof err);
        snprintf(link, sizeof link, "%s/missing", tmpdir);
        out = explain(link, NULL, &err, &r);
        free(out);
        assert_true(r < 0);
        assert_int_equal(err.exit_code, 64);
}

static void test_hard_linked_secret_is_refused(void **state)
{
        char secret[4400], other[4400], ws[300], dir[4200], cwd[4096];
        char *secrets[] = { secret, NULL };
        SbxError err = { 0 };
        int r, fd;

        /* In the build directory: not under /tmp, so visible inside and must be masked. */
        assert_non_null(getcwd(cwd, sizeof cwd));
        snprintf(dir, sizeof dir, "%s/airlock-sbx-unit-XXXXXX", cwd);
        if (!mkdtemp(dir)) {
                print_message("build directory not writable: skipped\n");
                skip();
        }
        snprintf(secret, sizeof secret, "%s/key", dir);
        snprintf(other, sizeof other, "%s/copy", dir);
        fd = open(secret, O_CREAT | O_WRONLY, 0644);
        assert_true(fd >= 0);
        close(fd);
        snprintf(ws, sizeof ws, "%s/ws", tmpdir);

        /* One name: masked, and --explain names it. */
        char *out = explain(ws, secrets, &err, &r);
        assert_int_equal(r, 0);
        assert_non_null(strstr(out, secret));
        free(out);

        /* A second hard link would show the bytes under another name: refused. */
        assert_int_equal(link(secret, other), 0);
        out = explain(ws, secrets, &err, &r);
        free(out);
        unlink(secret);
        unlink(other);
        rmdir(dir);
        assert_true(r < 0);
        assert_int_equal(err.exit_code, 71);
        assert_non_null(strstr(err.message, "hard link"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_agent_names),
                cmocka_unit_test(test_session_ids),
                cmocka_unit_test(test_explain_lists_masks),
                cmocka_unit_test(test_workspace_refusals),
                cmocka_unit_test(test_hard_linked_secret_is_refused),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
