/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The file-effect walker (files.c) on two plain directories standing for
 * an overlay's upper and lower layers: whiteouts (char 0:0), opaque
 * directories (user.overlay.opaque), copy-ups left equal, renames, secret
 * content, the diff budget and the order of the result.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include "plan/plan-internal.h"

typedef struct {
        char dir[64];
        int upper, lower;
} Pair;

static void put(int dir, const char *name, const char *content, mode_t mode)
{
        int fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        assert_int_equal(fchmodat(dir, name, mode, 0), 0);
        close(fd);
}

static void whiteout(int dir, const char *name)
{
        assert_int_equal(mknodat(dir, name, S_IFCHR | 0, makedev(0, 0)), 0);
}

static int setup_in(void **state, const char *template)
{
        Pair *p = calloc(1, sizeof *p);
        char path[128];

        assert_non_null(p);
        strcpy(p->dir, template);
        assert_non_null(mkdtemp(p->dir));
        snprintf(path, sizeof path, "%s/upper", p->dir);
        assert_int_equal(mkdir(path, 0755), 0);
        p->upper = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        snprintf(path, sizeof path, "%s/lower", p->dir);
        assert_int_equal(mkdir(path, 0755), 0);
        p->lower = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(p->upper >= 0 && p->lower >= 0);
        *state = p;
        return 0;
}

static int setup(void **state)
{
        return setup_in(state, "/tmp/airlock-test-files-XXXXXX");
}

/* On tmpfs, as a plan's upper layer is: it takes extended attribute values of any size. */
static int setup_shm(void **state)
{
        return setup_in(state, "/dev/shm/airlock-test-files-XXXXXX");
}

static int teardown(void **state)
{
        Pair *p = *state;
        char cmd[128];

        close(p->upper);
        close(p->lower);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
        assert_int_equal(system(cmd), 0);
        free(p);
        return 0;
}

static PlanResult *collect_with(Pair *p, const PlanFingerprints *fp, size_t diff_max,
                                size_t diff_total, const char *prefix)
{
        PlanResult *r = calloc(1, sizeof *r);
        PlanFiles *pf = plan_files_new(NULL, fp, diff_max, diff_total);

        assert_non_null(r);
        assert_non_null(pf);
        assert_int_equal(plan_files_walk(pf, p->upper, p->lower, prefix), 0);
        assert_int_equal(plan_files_finish(pf, r), 0);
        plan_files_free(pf);
        return r;
}

static PlanResult *collect(Pair *p)
{
        return collect_with(p, NULL, 16384, 1 << 20, "/srv");
}

static const PlanFile *find(const PlanResult *r, const char *path)
{
        for (size_t i = 0; i < r->n_files; i++)
                if (strcmp(r->files[i].path, path) == 0)
                        return &r->files[i];
        return NULL;
}

/* The effect on path, which must exist (the test fails otherwise). */
__attribute__((returns_nonnull)) static const PlanFile *get(const PlanResult *r, const char *path)
{
        const PlanFile *f = find(r, path);

        if (!f) {
                print_error("no effect on %s\n", path);
                abort();
        }
        return f;
}

static void test_nothing_changed(void **state)
{
        Pair *p = *state;
        PlanResult *r;

        put(p->lower, "a", "same\n", 0644);
        put(p->upper, "a", "same\n", 0644); /* copied up, left equal */
        assert_int_equal(mkdirat(p->lower, "d", 0755), 0);
        assert_int_equal(mkdirat(p->upper, "d", 0755), 0); /* a copied-up parent */
        r = collect(p);
        assert_int_equal(r->n_files, 0);
        plan_result_free(r);
}

static void test_created_modified_deleted(void **state)
{
        Pair *p = *state;
        const PlanFile *f;
        PlanResult *r;

        put(p->lower, "conf", "a=1\nb=2\n", 0644);
        put(p->upper, "conf", "a=1\nb=3\n", 0644);
        put(p->lower, "gone", "bye\n", 0600);
        whiteout(p->upper, "gone");
        whiteout(p->upper, "never-existed"); /* created and deleted by the command: nothing */
        put(p->upper, "new", "hello\n", 0640);
        put(p->lower, "perm", "x\n", 0644);
        put(p->upper, "perm", "x\n", 0600);
        assert_int_equal(symlinkat("one", p->lower, "link"), 0);
        assert_int_equal(symlinkat("two", p->upper, "link"), 0);
        r = collect(p);

        assert_int_equal(r->n_files, 5);
        f = get(r, "/srv/conf");
        assert_int_equal(f->change, PLAN_FILE_MODIFIED);
        assert_true(f->content_changed);
        assert_false(f->mode_changed);
        assert_non_null(f->diff);
        assert_non_null(strstr(f->diff, "--- a/srv/conf\n+++ b/srv/conf\n"));
        assert_non_null(strstr(f->diff, "-b=2\n+b=3\n"));

        f = get(r, "/srv/gone");
        assert_int_equal(f->change, PLAN_FILE_DELETED);
        assert_int_equal(f->old_size, 4);
        assert_int_equal(f->old_mode & 07777, 0600);

        f = get(r, "/srv/new");
        assert_int_equal(f->change, PLAN_FILE_CREATED);
        assert_int_equal(f->type, 'f');
        assert_int_equal(f->new_mode & 07777, 0640);
        assert_non_null(strstr(f->diff, "+hello\n"));

        f = get(r, "/srv/perm");
        assert_int_equal(f->change, PLAN_FILE_MODIFIED);
        assert_false(f->content_changed);
        assert_true(f->mode_changed);
        assert_null(f->diff);

        f = get(r, "/srv/link");
        assert_int_equal(f->type, 'l');
        assert_true(f->content_changed);
        assert_string_equal(f->link_target, "two");
        assert_null(find(r, "/srv/never-existed"));

        /* sorted by path */
        for (size_t i = 1; i < r->n_files; i++)
                assert_true(strcmp(r->files[i - 1].path, r->files[i].path) <= 0);
        plan_result_free(r);
}

static void test_deleted_tree(void **state)
{
        Pair *p = *state;
        PlanResult *r;

        assert_int_equal(mkdirat(p->lower, "d", 0755), 0);
        assert_int_equal(mkdirat(p->lower, "d/e", 0755), 0);
        put(p->lower, "d/e/f", "1\n", 0644);
        put(p->lower, "d/g", "2\n", 0644);
        whiteout(p->upper, "d");
        r = collect(p);
        assert_int_equal(r->n_files, 4);
        assert_string_equal(r->files[0].path, "/srv/d");
        assert_int_equal(r->files[0].type, 'd');
        assert_string_equal(r->files[1].path, "/srv/d/e");
        assert_string_equal(r->files[2].path, "/srv/d/e/f");
        assert_string_equal(r->files[3].path, "/srv/d/g");
        for (size_t i = 0; i < r->n_files; i++)
                assert_int_equal(r->files[i].change, PLAN_FILE_DELETED);
        plan_result_free(r);
}

static void test_opaque_directory(void **state)
{
        Pair *p = *state;
        const PlanFile *f;
        PlanResult *r;
        int d;

        /* rm -rf d; mkdir d; echo > d/new: the upper d is opaque */
        assert_int_equal(mkdirat(p->lower, "d", 0755), 0);
        assert_int_equal(mkdirat(p->lower, "d/sub", 0755), 0);
        put(p->lower, "d/sub/x", "x\n", 0644);
        put(p->lower, "d/old", "o\n", 0644);
        put(p->lower, "d/kept", "k\n", 0644);
        assert_int_equal(mkdirat(p->upper, "d", 0755), 0);
        d = openat(p->upper, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(d >= 0);
        assert_int_equal(fsetxattr(d, "user.overlay.opaque", "y", 1, 0), 0);
        close(d);
        put(p->upper, "d/new", "n\n", 0644);
        put(p->upper, "d/kept", "k\n", 0644); /* recreated with the same content */
        r = collect(p);
        f = get(r, "/srv/d/new");
        assert_int_equal(f->change, PLAN_FILE_CREATED);
        f = get(r, "/srv/d/old");
        assert_int_equal(f->change, PLAN_FILE_DELETED);
        f = get(r, "/srv/d/sub");
        assert_int_equal(f->change, PLAN_FILE_DELETED);
        f = get(r, "/srv/d/sub/x");
        assert_int_equal(f->change, PLAN_FILE_DELETED);
        assert_null(find(r, "/srv/d/kept"));
        assert_null(find(r, "/srv/d"));
        assert_int_equal(r->n_files, 4);
        plan_result_free(r);
}

static void test_rename(void **state)
{
        Pair *p = *state;
        PlanResult *r;

        put(p->lower, "old.conf", "the content that moved\n", 0644);
        whiteout(p->upper, "old.conf");
        put(p->upper, "new.conf", "the content that moved\n", 0600);
        /* same size, other content: not a rename */
        put(p->lower, "x", "aaaa\n", 0644);
        whiteout(p->upper, "x");
        put(p->upper, "y", "bbbb\n", 0644);
        r = collect(p);
        assert_int_equal(r->n_files, 3);
        assert_string_equal(r->files[0].path, "/srv/new.conf");
        assert_int_equal(r->files[0].change, PLAN_FILE_RENAMED);
        assert_string_equal(r->files[0].renamed_from, "/srv/old.conf");
        assert_false(r->files[0].content_changed);
        assert_true(r->files[0].mode_changed);
        assert_null(r->files[0].diff);
        assert_string_equal(r->files[1].path, "/srv/x");
        assert_int_equal(r->files[1].change, PLAN_FILE_DELETED);
        assert_string_equal(r->files[2].path, "/srv/y");
        assert_int_equal(r->files[2].change, PLAN_FILE_CREATED);
        plan_result_free(r);
}

static void test_type_change(void **state)
{
        Pair *p = *state;
        PlanResult *r;

        /* a file became a directory: deleted, then created, same path */
        put(p->lower, "t", "file\n", 0644);
        assert_int_equal(mkdirat(p->upper, "t", 0755), 0);
        put(p->upper, "t/inside", "i\n", 0644);
        r = collect(p);
        assert_int_equal(r->n_files, 3);
        assert_string_equal(r->files[0].path, "/srv/t");
        assert_int_equal(r->files[0].change, PLAN_FILE_DELETED);
        assert_int_equal(r->files[0].type, 'f');
        assert_string_equal(r->files[1].path, "/srv/t");
        assert_int_equal(r->files[1].change, PLAN_FILE_CREATED);
        assert_int_equal(r->files[1].type, 'd');
        assert_string_equal(r->files[2].path, "/srv/t/inside");
        plan_result_free(r);
}

static void test_secret_content(void **state)
{
        static const char secret[] = "0123456789abcdef0123456789abcdef-the-cluster-key-bytes";
        Pair *p = *state;
        PlanFingerprints *fp = plan_fp_new();
        char buf[256];
        const PlanFile *f;
        PlanResult *r;

        assert_non_null(fp);
        assert_int_equal(plan_fp_add(fp, "/etc/corosync/authkey", secret, strlen(secret)), 0);
        /* copied under another name, and embedded in a text file */
        put(p->upper, "k", secret, 0600);
        snprintf(buf, sizeof buf, "key=%s\n", secret);
        put(p->lower, "conf", "key=none\n", 0644);
        put(p->upper, "conf", buf, 0644);
        put(p->upper, "plain", "nothing secret\n", 0644);
        r = collect_with(p, fp, 16384, 1 << 20, "/srv");
        f = get(r, "/srv/k");
        assert_string_equal(f->secret_content, "/etc/corosync/authkey");
        assert_null(f->diff);
        assert_null(f->summary);
        f = get(r, "/srv/conf");
        assert_string_equal(f->secret_content, "/etc/corosync/authkey");
        assert_null(f->diff); /* never shown */
        f = get(r, "/srv/plain");
        assert_null(f->secret_content);
        assert_non_null(f->diff);
        for (size_t i = 0; i < r->n_files; i++)
                if (r->files[i].diff)
                        assert_null(strstr(r->files[i].diff, "cluster-key"));
        plan_result_free(r);
        plan_fp_free(fp);
}

static void test_diff_budget_and_binary(void **state)
{
        Pair *p = *state;
        const PlanFile *f;
        PlanResult *r;
        int fd;

        put(p->upper, "a", "first file, with a diff\n", 0644);
        put(p->upper, "b", "second file: the budget is spent\n", 0644);
        fd = openat(p->upper, "bin", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "\0\1\2\3binary", 10), 10);
        close(fd);
        r = collect_with(p, NULL, 16384, 20, "/");
        f = get(r, "/a");
        assert_non_null(f->diff);
        assert_false(f->diff_truncated);
        f = get(r, "/b");
        assert_null(f->diff);
        assert_true(f->diff_truncated);
        f = get(r, "/bin");
        assert_null(f->diff);
        assert_non_null(f->summary);
        assert_non_null(strstr(f->summary, "binary"));
        plan_result_free(r);
}

static void test_baseline(void **state)
{
        Pair *p = *state;
        PlanResult *r;
        PlanFiles *pf;
        static const char generated[] = "127.0.0.1 localhost\n198.51.100.82 xenon\n";

        /* the snapshot's /etc/hosts had the inventory appended before the command ran */
        assert_int_equal(mkdirat(p->lower, "etc", 0755), 0);
        assert_int_equal(mkdirat(p->upper, "etc", 0755), 0);
        put(p->lower, "etc/hosts", "127.0.0.1 localhost\n", 0644);
        put(p->upper, "etc/hosts", generated, 0644);
        r = calloc(1, sizeof *r);
        pf = plan_files_new(NULL, NULL, 0, 1 << 20);
        assert_non_null(r);
        assert_non_null(pf);
        assert_int_equal(plan_files_set_baseline(pf, "/etc/hosts", generated, strlen(generated)),
                         0);
        assert_int_equal(plan_files_walk(pf, p->upper, p->lower, "/"), 0);
        assert_int_equal(plan_files_finish(pf, r), 0);
        assert_int_equal(r->n_files, 0);
        plan_files_free(pf);
        plan_result_free(r);
}

static void test_owner_change(void **state)
{
        Pair *p = *state;
        const PlanFile *f;
        PlanResult *r;

        if (geteuid() != 0) {
                skip(); /* chown to another user needs root */
                return;
        }
        put(p->lower, "o", "x\n", 0644);
        put(p->upper, "o", "x\n", 0644);
        assert_int_equal(fchownat(p->upper, "o", 5, 5, 0), 0);
        r = collect(p);
        f = get(r, "/srv/o");
        assert_true(f->owner_changed);
        assert_false(f->content_changed);
        assert_int_equal(f->new_uid, 5);
        assert_int_equal(f->old_uid, 0);
        plan_result_free(r);
}

static void set_xattr(int dir, const char *file, const char *name, const void *v, size_t n)
{
        int fd = openat(dir, file, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(fsetxattr(fd, name, v, n, 0), 0);
        close(fd);
}

static void test_xattr_change(void **state)
{
        Pair *p = *state;
        const PlanFile *f;
        PlanResult *r;
        int fd;

        /* same content, mode and owner; an extended attribute (an ACL, a capability) changed */
        put(p->lower, "x", "same\n", 0644);
        put(p->upper, "x", "same\n", 0644);
        fd = openat(p->lower, "x", O_RDONLY | O_CLOEXEC);
        assert_int_equal(fsetxattr(fd, "user.note", "1", 1, 0), 0);
        close(fd);
        fd = openat(p->upper, "x", O_RDONLY | O_CLOEXEC);
        assert_int_equal(fsetxattr(fd, "user.note", "2", 1, 0), 0);
        assert_int_equal(fsetxattr(fd, "user.overlay.origin", "y", 1, 0), 0); /* overlay's own */
        close(fd);
        put(p->lower, "y", "same\n", 0644);
        put(p->upper, "y", "same\n", 0644);
        fd = openat(p->upper, "y", O_RDONLY | O_CLOEXEC);
        assert_int_equal(fsetxattr(fd, "user.overlay.origin", "y", 1, 0), 0);
        close(fd);
        r = collect(p);
        assert_int_equal(r->n_files, 1);
        f = get(r, "/srv/x");
        assert_int_equal(f->change, PLAN_FILE_MODIFIED);
        assert_false(f->content_changed);
        assert_string_equal(f->summary, "extended attributes changed: user.note");
        plan_result_free(r);
}

/* Values beyond a page, differing only past the first 4 KiB: compared whole. */
static void test_large_xattr_change(void **state)
{
        Pair *p = *state;
        char a[6000], b[6000];
        const PlanFile *f;
        PlanResult *r;

        memset(a, 'a', sizeof a);
        memcpy(b, a, sizeof b);
        b[sizeof b - 1] = 'b';
        put(p->lower, "x", "same\n", 0644);
        put(p->upper, "x", "same\n", 0644);
        set_xattr(p->lower, "x", "user.big", a, sizeof a);
        set_xattr(p->upper, "x", "user.big", b, sizeof b);
        /* and the same large value on both sides: no change */
        put(p->lower, "y", "same\n", 0644);
        put(p->upper, "y", "same\n", 0644);
        set_xattr(p->lower, "y", "user.big", a, sizeof a);
        set_xattr(p->upper, "y", "user.big", a, sizeof a);
        r = collect(p);
        assert_int_equal(r->n_files, 1);
        f = get(r, "/srv/x");
        assert_int_equal(f->change, PLAN_FILE_MODIFIED);
        assert_string_equal(f->summary, "extended attributes changed: user.big");
        plan_result_free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_nothing_changed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_created_modified_deleted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deleted_tree, setup, teardown),
                cmocka_unit_test_setup_teardown(test_opaque_directory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
                cmocka_unit_test_setup_teardown(test_type_change, setup, teardown),
                cmocka_unit_test_setup_teardown(test_secret_content, setup, teardown),
                cmocka_unit_test_setup_teardown(test_diff_budget_and_binary, setup, teardown),
                cmocka_unit_test_setup_teardown(test_baseline, setup, teardown),
                cmocka_unit_test_setup_teardown(test_owner_change, setup, teardown),
                cmocka_unit_test_setup_teardown(test_xattr_change, setup, teardown),
                cmocka_unit_test_setup_teardown(test_large_xattr_change, setup_shm, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
