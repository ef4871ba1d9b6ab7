/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "policy/policy.h"
#include "test-policy.h"

#define M(p, s, pn)  assert_true(policy_glob_match((p), (s), (pn)))
#define NM(p, s, pn) assert_false(policy_glob_match((p), (s), (pn)))

static void test_glob_literal(void **state)
{
        M("systemctl", "systemctl", false);
        NM("systemctl", "systemctl2", false);
        NM("systemctl", "systemct", false);
        NM("systemctl", "", false);
        M("", "", false);
        NM("a", "A", false);
}

static void test_glob_star(void **state)
{
        M("*", "", false);
        M("*", "anything/with/slashes", false);
        NM("*", "a/b", true);
        M("*", "abc", true);
        M("/etc/ssh/ssh_host_*_key", "/etc/ssh/ssh_host_ed25519_key", true);
        NM("/etc/ssh/ssh_host_*_key", "/etc/ssh/ssh_host_ed25519_key.pub", true);
        NM("/etc/pve/nodes/*/*.key", "/etc/pve/nodes/a/b/c.key", true);
        M("/etc/pve/nodes/*/*.key", "/etc/pve/nodes/pve1/pve-ssl.key", true);
        M("a*b*c", "aXXbYYc", false);
        NM("a*b*c", "aXXbYY", false);
        M("*.key", ".key", true);
        /* no special rule for leading dots */
        M("*", ".hidden", true);
}

static void test_glob_doublestar(void **state)
{
        M("/etc/pve/priv/**", "/etc/pve/priv/authkey.key", true);
        M("/etc/pve/priv/**", "/etc/pve/priv/a/b/c", true);
        M("/etc/pve/priv/**", "/etc/pve/priv", true); /* the directory itself */
        NM("/etc/pve/priv/**", "/etc/pve/private", true);
        NM("/etc/pve/priv/**", "/etc/pve", true);
        M("/var/lib/ceph/**/keyring", "/var/lib/ceph/osd/ceph-0/keyring", true);
        M("/var/lib/ceph/**/keyring", "/var/lib/ceph/keyring", true); /* zero directories */
        NM("/var/lib/ceph/**/keyring", "/var/lib/ceph/xkeyring", true);
        M("**/.ssh/id_*", ".ssh/id_rsa", true);
        M("**/.ssh/id_*", "/home/a/.ssh/id_rsa", true);
        M("/a/**.key", "/a/b/c.key", true);
        M("**", "", true);
        M("**", "a/b/c", true);
}

static void test_glob_question_and_class(void **state)
{
        M("?", "a", false);
        NM("?", "", false);
        NM("?", "ab", false);
        NM("?", "/", true);
        M("?", "/", false);
        M("[abc]", "b", false);
        NM("[abc]", "d", false);
        M("[a-c]x", "bx", false);
        M("[!a-c]", "d", false);
        NM("[!a-c]", "a", false);
        M("[^a-c]", "z", false);
        M("[]]", "]", false);
        M("[!]]", "a", false);
        NM("[!]]", "]", false);
        M("[a-]", "-", false);
        NM("[/]", "/", true);
        M("sd[a-z][0-9]", "sdb1", false);
        M("[\\]]", "]", false);
}

static void test_glob_braces(void **state)
{
        M("{status,show}", "status", false);
        M("{status,show}", "show", false);
        NM("{status,show}", "stop", false);
        NM("{status,show}", "statusshow", false);
        M("x{,y}", "x", false);
        M("x{,y}", "xy", false);
        M("{a,b{c,d}}e", "bde", false);
        M("{a,b{c,d}}e", "ae", false);
        NM("{a,b{c,d}}e", "be", false);
        M("/etc/{pve,corosync}/**", "/etc/corosync/authkey", true);
        M("--{vacuum-*,flush}", "--vacuum-size=1M", false);
        M("{[ab],c}", "b", false);
        M("{a\\,b,c}", "a,b", false);
        NM("{a\\,b,c}", "a", false);
        M("{*.conf,*.key}", "x.key", true);
}

static void test_glob_escape(void **state)
{
        M("\\*", "*", false);
        NM("\\*", "a", false);
        M("a\\?", "a?", false);
        M("\\{a,b\\}", "{a,b}", false);
}

static void test_glob_validate(void **state)
{
        char why[256];

        assert_int_equal(policy_glob_validate("/etc/**", why, sizeof(why)), 0);
        assert_int_equal(policy_glob_validate("{a,{b,c}}", why, sizeof(why)), 0);
        assert_int_equal(policy_glob_validate("[]]", why, sizeof(why)), 0);
        assert_int_equal(policy_glob_validate("", why, sizeof(why)), -EINVAL);
        assert_int_equal(policy_glob_validate("[abc", why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, "never closed"));
        assert_int_equal(policy_glob_validate("{a,b", why, sizeof(why)), -EINVAL);
        assert_int_equal(policy_glob_validate("a}", why, sizeof(why)), -EINVAL);
        assert_int_equal(policy_glob_validate("a\\", why, sizeof(why)), -EINVAL);
        assert_int_equal(policy_glob_validate("[z-a]", why, sizeof(why)), -EINVAL);
        assert_non_null(strstr(why, "reversed"));
        assert_int_equal(policy_glob_validate("a\tb", why, sizeof(why)), -EINVAL);
        assert_int_equal(policy_glob_validate("{{{{{{{{{a}}}}}}}}}", why, sizeof(why)), -EINVAL);
        assert_int_equal(policy_glob_validate("{{{{{{{{a}}}}}}}}", why, sizeof(why)), 0);
}

static void test_glob_pathological(void **state)
{
        /* A backtracking bomb ends (budget) and does not match. */
        char s[200];

        memset(s, 'a', sizeof(s) - 1);
        s[sizeof(s) - 1] = '\0';
        NM("*a*a*a*a*a*a*a*a*a*a*a*a*b", s, false);
        M("*a*a*a*a*a*a*a*a*a*a*a*a*", s, false);
}

const struct CMUnitTest glob_tests[] = {
        cmocka_unit_test(test_glob_literal),    cmocka_unit_test(test_glob_star),
        cmocka_unit_test(test_glob_doublestar), cmocka_unit_test(test_glob_question_and_class),
        cmocka_unit_test(test_glob_braces),     cmocka_unit_test(test_glob_escape),
        cmocka_unit_test(test_glob_validate),   cmocka_unit_test(test_glob_pathological),
};
const size_t n_glob_tests = ELEMENTSOF(glob_tests);
