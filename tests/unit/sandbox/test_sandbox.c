/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the sandbox module's parts that need no privileges: names,
 * session ids, and the preparation behind --explain (path checks, secret
 * expansion, hard-link refusal) on a real temporary directory tree, and the
 * message that carries the masks and protected paths to pid 1 with the go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox-internal.h"

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

/* The broker session socket a warm sandbox may bind: only a plain name directly in the dir. */
static void test_session_socket_names(void **state)
{
        const char *d = "/run/airlockd/sessions";
        static const char *const refused[] = {
                "/run/airlockd/sessions/",
                "/run/airlockd/sessions/.",
                "/run/airlockd/sessions/..",
                "/run/airlockd/sessions/../admin.sock",
                "/run/airlockd/sessions/sub/x",
                "/run/airlockd/sessionsx/abc",
                "/run/airlockd/session/abc",
                "/run/airlockd/sessions",
                "/run/airlockd/sessions/a b",
                "/run/airlockd/sessions/a\nb",
                "run/airlockd/sessions/abc",
                "/run/airlockd/sessions//abc",
                "abc",
                "",
        };

        (void)state;
        assert_string_equal(sbx_session_socket_name(d, "/run/airlockd/sessions/0f3a-b_c.sock"),
                            "0f3a-b_c.sock");
        assert_string_equal(sbx_session_socket_name(d, "/run/airlockd/sessions/.hidden"),
                            ".hidden");
        for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
                assert_null(sbx_session_socket_name(d, refused[i]));
        assert_null(sbx_session_socket_name(NULL, "/run/airlockd/sessions/abc"));
        assert_null(sbx_session_socket_name(d, NULL));
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

/* Sends raw bytes through a pipe to sbx_plan_receive(); returns its result. */
static int receive_bytes(const void *buf, size_t len, SbxPlan *out)
{
        int fds[2], r;

        assert_int_equal(pipe(fds), 0);
        assert_int_equal(write_all(fds[1], buf, len), 0);
        close(fds[1]);
        r = sbx_plan_receive(out, fds[0]);
        close(fds[0]);
        return r;
}

static void plan_free_lists(SbxPlan *p)
{
        for (size_t i = 0; i < p->n_masks; i++)
                free(p->masks[i].path);
        free(p->masks);
        strv_free(p->protect);
        strv_free(p->guard_regions);
        *p = (SbxPlan){ 0 };
}

static void test_plan_message_round_trip(void **state)
{
        SbxMask masks[] = { { .path = (char *)"/etc/shadow", .is_dir = false },
                            { .path = (char *)"/root/.ssh", .is_dir = true } };
        char *protect[] = { (char *)"/w/.bashrc", (char *)"/w/.git/hooks", NULL };
        char *regions[] = { (char *)"/etc", (char *)"/root", NULL };
        SbxPlan in = { .masks = masks, .n_masks = 2, .protect = protect, .guard_regions = regions },
                out = { 0 };
        int fds[2];

        (void)state;
        assert_int_equal(pipe(fds), 0);
        assert_int_equal(sbx_plan_send(&in, fds[1]), 0);
        close(fds[1]);
        assert_int_equal(sbx_plan_receive(&out, fds[0]), 0);
        close(fds[0]);
        assert_int_equal(out.n_masks, 2);
        assert_string_equal(out.masks[0].path, "/etc/shadow");
        assert_false(out.masks[0].is_dir);
        assert_string_equal(out.masks[1].path, "/root/.ssh");
        assert_true(out.masks[1].is_dir);
        assert_int_equal(strv_length(out.protect), 2);
        assert_string_equal(out.protect[1], "/w/.git/hooks");
        assert_int_equal(strv_length(out.guard_regions), 2);
        assert_string_equal(out.guard_regions[1], "/root");
        plan_free_lists(&out);

        /* Nothing to mask or protect: still a valid go. */
        in = (SbxPlan){ 0 };
        assert_int_equal(pipe(fds), 0);
        assert_int_equal(sbx_plan_send(&in, fds[1]), 0);
        close(fds[1]);
        assert_int_equal(sbx_plan_receive(&out, fds[0]), 0);
        close(fds[0]);
        assert_int_equal(out.n_masks, 0);
        assert_null(out.protect);
        plan_free_lists(&out);
}

/* Puts the saved fds back on 0-2 (a received command replaces them, as in pid 1). */
static void restore_stdio(const int saved[3])
{
        for (int i = 0; i < 3; i++)
                assert_int_equal(dup2(saved[i], i), i);
}

/* The command message (pid 1's last one): argv, environment, session name and fds. */
static void test_command_message(void **state)
{
        char *argv[] = { (char *)"sh", (char *)"-c", (char *)"echo hi", NULL };
        char *envp[] = { (char *)"PATH=/usr/bin", (char *)"LANG=C", NULL };
        SbxPlan out = { .pty_slave = -EBADF };
        int sp[2], devnull, fds[4];
        struct stat a, b;

        (void)state;
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        assert_true(devnull >= 0);
        /* fds 0-2 of pid 1 are replaced: keep ours, give it /dev/null three times and a fourth */
        int saved[3];
        for (int i = 0; i < 3; i++)
                saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
        fds[0] = fds[1] = fds[2] = fds[3] = devnull;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        assert_int_equal(sbx_command_send(sp[1], argv, envp, "s1.sock", fds, 4), 0);
        int r = sbx_command_receive(&out, sp[0]);
        assert_int_equal(fstat(0, &b), 0);
        restore_stdio(saved);
        assert_int_equal(r, 0);
        assert_int_equal(strv_length(out.cmd_argv), 3);
        assert_string_equal(out.cmd_argv[2], "echo hi");
        assert_int_equal(strv_length(out.envp), 2);
        assert_string_equal(out.envp[1], "LANG=C");
        assert_string_equal(out.session_name, "s1.sock");
        assert_true(out.pty_slave > 2);
        assert_int_equal(fstat(out.pty_slave, &a), 0);
        assert_true(a.st_rdev == b.st_rdev); /* fd 0 was /dev/null too */
        close(out.pty_slave);
        strv_free(out.cmd_argv);
        strv_free(out.envp);
        free(out.session_name);
        out = (SbxPlan){ .pty_slave = -EBADF };

        /* No session, no pty: 3 fds. */
        assert_int_equal(sbx_command_send(sp[1], argv, envp, NULL, fds, 3), 0);
        r = sbx_command_receive(&out, sp[0]);
        restore_stdio(saved);
        assert_int_equal(r, 0);
        assert_null(out.session_name);
        assert_int_equal(out.pty_slave, -EBADF);
        strv_free(out.cmd_argv);
        strv_free(out.envp);
        out = (SbxPlan){ .pty_slave = -EBADF };

        /* Fewer than 3 fds, or more than 4: refused by the sender. */
        assert_int_equal(sbx_command_send(sp[1], argv, envp, NULL, fds, 2), -EINVAL);
        assert_int_equal(sbx_command_send(sp[1], argv, envp, NULL, fds, 5), -EINVAL);

        /* A header without its fds (a plain write): the receiver refuses it. */
        {
                uint32_t h[6] = { 0x646d434cU, 1, 0, 0, 3, 2 };
                assert_int_equal(write_all(sp[1], h, sizeof h), 0);
                assert_int_equal(write_all(sp[1], "x", 2), 0);
                assert_int_equal(sbx_command_receive(&out, sp[0]), -EBADMSG);
        }
        close(sp[1]);
        /* The parent gone: EPIPE, nothing started. */
        assert_int_equal(sbx_command_receive(&out, sp[0]), -EPIPE);
        close(sp[0]);
        strv_free(out.cmd_argv);
        strv_free(out.envp);
        for (int i = 0; i < 3; i++)
                close(saved[i]);
        close(devnull);
}

/* Makes dir (and its parents) under base; returns the full path in a static buffer. */
static const char *mkpath(const char *base, const char *rel)
{
        static char buf[512];
        char cmd[600];

        snprintf(buf, sizeof buf, "%s/%s", base, rel);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", buf);
        assert_int_equal(system(cmd), 0);
        return buf;
}

/*
 * The open guard's regions: each glob's fixed leading directory or its
 * nearest existing ancestor, nested ones merged, "/" and paths through a
 * symlink left to the watcher; and its judgement of a path.
 */
static char guard_base[PATH_MAX];

/* Removes the test's directory even when an assertion ended the test early. */
static int guard_teardown(void **state)
{
        char cmd[PATH_MAX + 16];

        (void)state;
        if (!guard_base[0])
                return 0;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", guard_base);
        guard_base[0] = '\0';
        return system(cmd) == 0 ? 0 : -1;
}

static void test_guard_regions_and_judgement(void **state)
{
        char base_t[] = "airlock-guard-unit-XXXXXX", *base, g[8][600], *globs[9] = { 0 };
        char *homes[3] = { 0 }, link[600], cmd[700];
        SbxConfig c = { 0 };
        SbxPlan p = { 0 };
        SbxError err = { 0 };

        (void)state;
        /* Not under /tmp: the sandbox's own tmpfs there would hide a region. */
        assert_non_null(mkdtemp(base_t));
        base = realpath(base_t, NULL);
        assert_non_null(base);
        snprintf(guard_base, sizeof guard_base, "%s", base);
        mkpath(base, "etc");
        mkpath(base, "srv");
        homes[0] = strdup(mkpath(base, "home/a"));
        homes[1] = strdup("/");
        snprintf(link, sizeof link, "%s/link", base);
        assert_int_equal(symlink("etc", link), 0);
        snprintf(g[0], sizeof g[0], "%s/etc/authkey", base);
        snprintf(g[1], sizeof g[1], "%s/srv/deep/conf/app.key", base);
        snprintf(g[2], sizeof g[2], "%s/etc/sub/*.pem", base);
        snprintf(g[3], sizeof g[3], "~/.ssh/id_*");
        snprintf(g[4], sizeof g[4], "%s/link/other.key", base);
        snprintf(g[5], sizeof g[5], "%s/srv/secretdir", base);
        for (int i = 0; i < 6; i++)
                globs[i] = g[i];
        c.secret_globs = globs;
        p = (SbxPlan){ .cfg = &c, .privileged = true, .homes = homes, .guard_fd = -EBADF };
        assert_int_equal(sbx_guard_prepare(&p, true, &err), 0);

        /* and /home, where new homes are made, when this machine has one */
        assert_int_equal(strv_length(p.guard_regions), 3 + (access("/home", F_OK) == 0));
        snprintf(cmd, sizeof cmd, "%s/etc", base);
        assert_true(strv_contains(p.guard_regions, cmd));
        snprintf(cmd, sizeof cmd, "%s/srv", base);
        assert_true(strv_contains(p.guard_regions, cmd)); /* deep/conf does not exist yet */
        snprintf(cmd, sizeof cmd, "%s/home/a", base);
        assert_true(strv_contains(p.guard_regions, cmd)); /* ~/.ssh does not exist yet */
        assert_false(strv_contains(p.guard_regions, "/"));
        {
                /* A region a mask covers whole is dropped: nothing appears there inside. */
                char srv[600];
                SbxMask m = { .path = srv, .is_dir = true };
                snprintf(srv, sizeof srv, "%s/srv", base);
                p.masks = &m;
                p.n_masks = 1;
                sbx_guard_masks(&p);
                assert_int_equal(strv_length(p.guard_regions), 2 + (access("/home", F_OK) == 0));
                assert_false(strv_contains(p.guard_regions, srv));
                p.masks = NULL;
                p.n_masks = 0;
        }

        /* Its judgement: the globs, and whatever lies beneath a secret directory. */
        {
                static const struct {
                        const char *path; /* beneath base when it has no leading "/" */
                        bool secret;
                } judged[] = {
                        { "etc/authkey", true },
                        { "etc/authkey.pub", false },
                        { "etc/sub/new.pem", true },
                        { "etc/sub/new.conf", false },
                        { "home/a/.ssh/id_ed25519", true },
                        { "home/a/.ssh/known_hosts", false },
                        { "/.ssh/id_rsa", true }, /* the home "/" */
                        /* "~/" beneath any directory: a home made during the session too */
                        { "/home/new-user/.ssh/id_rsa", true },
                        { "/home/new-user/.ssh/authorized_keys", false },
                        { "srv/secretdir/x/y.key", true },
                        { "srv/secretdirectory", false },
                        { "/usr/include/stdio.h", false },
                };

                for (size_t i = 0; i < ELEMENTSOF(judged); i++) {
                        if (judged[i].path[0] == '/')
                                snprintf(cmd, sizeof cmd, "%s", judged[i].path);
                        else
                                snprintf(cmd, sizeof cmd, "%s/%s", base, judged[i].path);
                        if (sbx_guard_is_secret(&p, cmd) != judged[i].secret)
                                fail_msg("%s: judged %s", cmd,
                                         judged[i].secret ? "not a secret" : "a secret");
                }
        }
        assert_true(sbx_guard_is_secret(&p, "relative/path")); /* cannot judge: refused */

        /* Started by an ordinary user: no guard, and --explain says so. */
        strv_free(p.guard_regions);
        p = (SbxPlan){ .cfg = &c, .privileged = false, .homes = homes, .guard_fd = -EBADF };
        assert_int_equal(sbx_guard_prepare(&p, true, &err), 0);
        assert_null(p.guard_regions);
        assert_non_null(p.weaker);
        assert_non_null(strstr(p.weaker[0], "no open guard"));
        strv_free(p.weaker);

        free(homes[0]);
        free(homes[1]);
        free(base);
}

static void test_plan_message_malformed(void **state)
{
        struct {
                uint32_t magic, n_masks, n_protect, n_regions, size;
                char body[32];
        } m;
        SbxPlan out = { 0 };

        (void)state;
#define MSG(nm, np, text)                               \
        do {                                            \
                memset(&m, 0, sizeof m);                \
                m.magic = 0x6f67414cU;                  \
                m.n_masks = (nm);                       \
                m.n_protect = (np);                     \
                m.size = (uint32_t)(sizeof(text) - 1);  \
                memcpy(m.body, text, sizeof(text) - 1); \
        } while (0)
        MSG(1, 1, "0/etc/shadow\0/w/.bashrc\0");
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), 0); /* the reference: valid */
        plan_free_lists(&out);
        /* The parent went away (EOF) before or within the message: start nothing. */
        assert_int_equal(receive_bytes(&m, 0, &out), -EPIPE);
        plan_free_lists(&out);
        assert_int_equal(receive_bytes(&m, 20 + m.size - 3, &out), -EPIPE);
        plan_free_lists(&out);
        /* Counts that do not match the bytes, in either direction. */
        MSG(1, 0, "0/etc/shadow\0/w/.bashrc\0");
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), -EBADMSG);
        plan_free_lists(&out);
        MSG(1, 2, "0/etc/shadow\0/w/.bashrc\0");
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), -EBADMSG);
        plan_free_lists(&out);
        /* A region more than sent, or a relative one. */
        MSG(1, 1, "0/etc/shadow\0/w/.bashrc\0");
        m.n_regions = 1;
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), -EBADMSG);
        plan_free_lists(&out);
        MSG(0, 0, "etc\0");
        m.n_regions = 1;
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), -EBADMSG);
        plan_free_lists(&out);
        MSG(0, 0, "/etc\0");
        m.n_regions = 1;
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), 0);
        assert_string_equal(out.guard_regions[0], "/etc");
        plan_free_lists(&out);
        /* A bad kind byte, a relative path, a missing terminator, a bad magic. */
        MSG(1, 0, "x/etc/shadow\0");
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), -EBADMSG);
        plan_free_lists(&out);
        MSG(0, 1, "w/.bashrc\0");
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), -EBADMSG);
        plan_free_lists(&out);
        MSG(0, 1, "/w/.bashrc");
        assert_int_equal(receive_bytes(&m, 20 + m.size, &out), -EBADMSG);
        plan_free_lists(&out);
        MSG(0, 0, "");
        m.magic = 0;
        assert_int_equal(receive_bytes(&m, 20, &out), -EBADMSG);
        plan_free_lists(&out);
        /* A size beyond the limit is refused before anything is allocated. */
        MSG(0, 0, "");
        m.size = 0x7fffffffU;
        assert_int_equal(receive_bytes(&m, 20, &out), -EBADMSG);
        plan_free_lists(&out);
#undef MSG
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_agent_names),
                cmocka_unit_test(test_session_ids),
                cmocka_unit_test(test_session_socket_names),
                cmocka_unit_test(test_explain_lists_masks),
                cmocka_unit_test(test_workspace_refusals),
                cmocka_unit_test(test_hard_linked_secret_is_refused),
                cmocka_unit_test(test_plan_message_round_trip),
                cmocka_unit_test(test_plan_message_malformed),
                cmocka_unit_test(test_command_message),
                cmocka_unit_test_teardown(test_guard_regions_and_judgement, guard_teardown),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
