/* SPDX-License-Identifier: GPL-2.0-or-later */
/* plan_compare(): an approved plan against what the execution did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "common/util.h"
#include "plan/plan-internal.h"

/* the structs hold char *; the tests only read them */
#define S(x) ((char *)(x))

#define FILES(r, ...)                                   \
        do {                                            \
                static PlanFile _f[] = { __VA_ARGS__ }; \
                (r)->files = _f;                        \
                (r)->n_files = ELEMENTSOF(_f);          \
        } while (0)

static char **compare(const PlanResult *a, const PlanResult *o, int expect_n)
{
        char **l = NULL;
        int n = plan_compare(a, o, &l);

        if (n != expect_n) {
                STRV_FOREACH (s, l)
                        fprintf(stderr, "  deviation: %s\n", *s);
                fail_msg("expected %d deviations, got %d", expect_n, n);
        }
        return l;
}

static void test_identical_is_clean(void **state)
{
        PlanResult a = { 0 }, o = { 0 };
        char **l;

        (void)state;
        FILES(&a, { .path = S("/etc/x"), .change = PLAN_FILE_MODIFIED, .type = 'f' });
        FILES(&o, { .path = S("/etc/x"), .change = PLAN_FILE_MODIFIED, .type = 'f' });
        l = compare(&a, &o, 0);
        assert_null(l);
        /* doing less than the plan is no deviation */
        o.n_files = 0;
        l = compare(&a, &o, 0);
        assert_null(l);
}

static void test_extra_write_and_delete(void **state)
{
        PlanResult a = { 0 }, o = { 0 };
        char **l;

        (void)state;
        FILES(&a, { .path = S("/etc/x"), .change = PLAN_FILE_MODIFIED, .type = 'f' });
        FILES(&o, { .path = S("/etc/x"), .change = PLAN_FILE_MODIFIED, .type = 'f' },
              { .path = S("/etc/y"), .change = PLAN_FILE_CREATED, .type = 'f' },
              { .path = S("/etc/z"), .change = PLAN_FILE_DELETED, .type = 'f' },
              { .path = S("/srv/new"), .change = PLAN_FILE_CREATED, .type = 'd' });
        l = compare(&a, &o, 3);
        assert_string_equal(l[0], "wrote /etc/y (not in the plan)");
        assert_string_equal(l[1], "deleted /etc/z (not in the plan)");
        assert_string_equal(l[2], "created directory /srv/new (not in the plan)");
        strv_free(l);
}

static void test_sed_in_place_temporary(void **state)
{
        PlanResult a = { 0 }, o = { 0 };

        (void)state;
        /* the plan sees the end state; the recorder sees sed's temporary and its rename */
        FILES(&a, { .path = S("/etc/ssh/sshd_config"), .change = PLAN_FILE_MODIFIED, .type = 'f' });
        FILES(&o, { .path = S("/etc/ssh/sedAb12Cd"), .change = PLAN_FILE_CREATED, .type = 'f' },
              { .path = S("/etc/ssh/sshd_config"),
                .renamed_from = S("/etc/ssh/sedAb12Cd"),
                .change = PLAN_FILE_RENAMED,
                .type = 'f' });
        assert_null(compare(&a, &o, 0));
}

static void test_rename_needs_source_removal(void **state)
{
        PlanResult a = { 0 }, o = { 0 };
        char **l;

        (void)state;
        FILES(&a, { .path = S("/etc/new"), .change = PLAN_FILE_CREATED, .type = 'f' });
        FILES(&o, { .path = S("/etc/new"),
                    .renamed_from = S("/etc/old"),
                    .change = PLAN_FILE_RENAMED,
                    .type = 'f' });
        l = compare(&a, &o, 1);
        assert_string_equal(l[0], "deleted /etc/old (renamed to /etc/new; not in the plan)");
        strv_free(l);
        /* the plan showing the rename covers both ends */
        FILES(&a, { .path = S("/etc/new"),
                    .renamed_from = S("/etc/old"),
                    .change = PLAN_FILE_RENAMED,
                    .type = 'f' });
        assert_null(compare(&a, &o, 0));
}

static void test_rm_rf_under_deleted_directory(void **state)
{
        PlanResult a = { 0 }, o = { 0 };
        char **l;

        (void)state;
        FILES(&a, { .path = S("/srv/old"), .change = PLAN_FILE_DELETED, .type = 'd' });
        FILES(&o, { .path = S("/srv/old/a"), .change = PLAN_FILE_DELETED, .type = 'f' },
              { .path = S("/srv/old/sub/b"), .change = PLAN_FILE_DELETED, .type = 'f' },
              { .path = S("/srv/old"), .change = PLAN_FILE_DELETED, .type = 'd' },
              { .path = S("/srv/older"), .change = PLAN_FILE_DELETED, .type = 'f' });
        l = compare(&a, &o, 1);
        assert_string_equal(l[0], "deleted /srv/older (not in the plan)");
        strv_free(l);
}

static void test_created_then_deleted_is_nothing(void **state)
{
        PlanResult a = { 0 }, o = { 0 };

        (void)state;
        FILES(&o, { .path = S("/run/lock/x.lck"), .change = PLAN_FILE_CREATED, .type = 'f' },
              { .path = S("/run/lock/x.lck"), .change = PLAN_FILE_DELETED, .type = 'f' });
        assert_null(compare(&a, &o, 0));
}

static void test_connections(void **state)
{
        PlanNet an[] = { { .kind = PLAN_NET_CONNECT,
                           .family = AF_INET,
                           .address = S("198.51.100.10"),
                           .port = 22,
                           .host = S("pve1"),
                           .blocked = true } };
        PlanNet on[] = {
                { .kind = PLAN_NET_CONNECT,
                  .family = AF_INET,
                  .address = S("198.51.100.10"),
                  .port = 22,
                  .host = S("pve1") },
                { .kind = PLAN_NET_CONNECT,
                  .family = AF_INET,
                  .address = S("198.51.100.82"),
                  .port = 22,
                  .host = S("xenon") },
                { .kind = PLAN_NET_CONNECT,
                  .family = AF_INET,
                  .address = S("198.51.100.10"),
                  .port = 8006,
                  .host = S("pve1") },
                { .kind = PLAN_NET_SEND,
                  .family = AF_INET,
                  .address = S("203.0.113.9"),
                  .port = 53 },
                { .kind = PLAN_NET_CONNECT,
                  .family = AF_UNIX,
                  .address = S("/run/systemd/private") },
        };
        PlanResult a = { .net = an, .n_net = 1 }, o = { .net = on, .n_net = ELEMENTSOF(on) };
        char **l;

        (void)state;
        l = compare(&a, &o, 4);
        assert_string_equal(l[0], "connected to xenon:22 (198.51.100.82) (not in the plan)");
        assert_string_equal(l[1], "connected to pve1:8006 (198.51.100.10) (not in the plan)");
        assert_string_equal(l[2], "sent to 203.0.113.9:53 (not in the plan)");
        assert_string_equal(l[3], "connected to /run/systemd/private (not in the plan)");
        strv_free(l);
}

static void test_secrets_and_contacts(void **state)
{
        PlanSecretAccess as[] = { { .path = S("/etc/shadow") } };
        PlanSecretAccess os[] = { { .path = S("/etc/shadow") },
                                  { .path = S("/etc/corosync/authkey"),
                                    .program = S("/usr/bin/scp") },
                                  { .path = S("/etc/shadow"), .write = true } };
        PlanContact ac[] = { { .daemon = S("corosync.service"),
                               .meaning = S("restarts corosync.service") } };
        PlanContact oc[] = {
                { .daemon = S("corosync.service"), .meaning = S("restarts corosync.service") },
                { .daemon = S("corosync.service"), .meaning = S("stops corosync.service") },
                { .daemon = S("dbus") }
        };
        PlanResult a = { .secrets = as, .n_secrets = 1, .contacts = ac, .n_contacts = 1 };
        PlanResult o = { .secrets = os, .n_secrets = 3, .contacts = oc, .n_contacts = 3 };
        char **l;

        (void)state;
        l = compare(&a, &o, 4);
        assert_string_equal(l[0], "read secret /etc/corosync/authkey (not in the plan)");
        assert_string_equal(l[1], "wrote secret /etc/shadow (not in the plan)");
        assert_string_equal(l[2],
                            "contacted corosync.service: stops corosync.service (not in the plan)");
        assert_string_equal(l[3], "contacted dbus (not in the plan)");
        strv_free(l);
}

static void test_bad_arguments(void **state)
{
        PlanResult a = { 0 };
        char **l = NULL;

        (void)state;
        assert_int_equal(plan_compare(NULL, &a, &l), -EINVAL);
        assert_int_equal(plan_compare(&a, NULL, &l), -EINVAL);
        assert_int_equal(plan_compare(&a, &a, NULL), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_identical_is_clean),
                cmocka_unit_test(test_extra_write_and_delete),
                cmocka_unit_test(test_sed_in_place_temporary),
                cmocka_unit_test(test_rename_needs_source_removal),
                cmocka_unit_test(test_rm_rf_under_deleted_directory),
                cmocka_unit_test(test_created_then_deleted_is_nothing),
                cmocka_unit_test(test_connections),
                cmocka_unit_test(test_secrets_and_contacts),
                cmocka_unit_test(test_bad_arguments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
