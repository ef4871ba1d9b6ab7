/* SPDX-License-Identifier: GPL-2.0-or-later */
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

#include "common/hash.h"
#include "common/util.h"
#include "doctor/doctor-libs.h"
#include "doctor/doctor.h"

static const char lab_conf[] = "# a comment\n"
                               "totem {\n"
                               "  version: 2\n"
                               "  cluster_name: pve\n"
                               "  config_version: 3\n"
                               "  transport: knet\n"
                               "  interface {\n"
                               "    linknumber: 0\n"
                               "  }\n"
                               "}\n"
                               "nodelist {\n"
                               "  node {\n"
                               "    name: pve1\n"
                               "    nodeid: 1\n"
                               "    ring0_addr: 198.51.100.10\n"
                               "  }\n"
                               "  node {\n"
                               "    name: pve2\n"
                               "    nodeid: 2\n"
                               "    ring0_addr: 198.51.100.20\n"
                               "  }\n"
                               "}\n"
                               "quorum {\n  provider: corosync_votequorum\n}\n";

static void test_parse_conf(void **state)
{
        json_t *j = NULL, *n;
        char why[256] = "";

        assert_int_equal(
                doctor_parse_corosync_conf(lab_conf, strlen(lab_conf), &j, why, sizeof(why)), 0);
        assert_string_equal(json_string_value(json_object_get(j, "cluster_name")), "pve");
        assert_int_equal(json_integer_value(json_object_get(j, "config_version")), 3);
        assert_string_equal(json_string_value(json_object_get(j, "transport")), "knet");
        assert_int_equal(json_array_size(json_object_get(j, "nodes")), 2);
        n = json_array_get(json_object_get(j, "nodes"), 1);
        assert_string_equal(json_string_value(json_object_get(n, "name")), "pve2");
        assert_int_equal(json_integer_value(json_object_get(n, "nodeid")), 2);
        assert_string_equal(json_string_value(json_object_get(n, "ring0_addr")), "198.51.100.20");
        /* The interface's linknumber is not a totem key of interest, and version is skipped. */
        assert_null(json_object_get(j, "linknumber"));
        json_decref(j);
}

static void test_parse_conf_errors(void **state)
{
        static const char *const bad[] = {
                "totem {\n cluster_name: x\n", /* not closed */
                "}\n",                         /* stray close */
                "totem {\n just words\n}\n",   /* no colon */
                "totem {\n : value\n}\n",      /* empty key */
                "a b {\n}\n",                  /* bad section name */
        };
        char why[256];
        json_t *j = NULL;
        char *deep = NULL, *longline = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                why[0] = '\0';
                assert_int_equal(
                        doctor_parse_corosync_conf(bad[i], strlen(bad[i]), &j, why, sizeof(why)),
                        -EINVAL);
                assert_true(strlen(why) > 0);
        }
        /* 17 nested sections: one too deep. */
        deep = calloc(1, 1024);
        for (int i = 0; i < 17; i++)
                strcat(deep, "s {\n");
        assert_int_equal(doctor_parse_corosync_conf(deep, strlen(deep), &j, why, sizeof(why)),
                         -EINVAL);
        assert_non_null(strstr(why, "nested"));
        free(deep);
        longline = malloc(5000);
        memset(longline, 'a', 4999);
        longline[4999] = '\0';
        longline[10] = ':';
        assert_int_equal(
                doctor_parse_corosync_conf(longline, strlen(longline), &j, why, sizeof(why)),
                -EINVAL);
        assert_non_null(strstr(why, "longer"));
        free(longline);
        /* An embedded NUL is refused, not silently truncated. */
        assert_int_equal(doctor_parse_corosync_conf("totem {\0}\n", 10, &j, why, sizeof(why)),
                         -EINVAL);
}

static void test_parse_conf_escapes(void **state)
{
        static const char t[] = "totem {\n cluster_name: evil\x1b[2J\n}\n";
        json_t *j = NULL;
        char why[64];

        assert_int_equal(doctor_parse_corosync_conf(t, strlen(t), &j, why, sizeof(why)), 0);
        assert_null(strchr(json_string_value(json_object_get(j, "cluster_name")), '\x1b'));
        json_decref(j);
}

/* A small deterministic fuzz of the reader: mutated configs never crash it
 * (ASan build), and it only ever answers 0 or -EINVAL. */
static void test_parse_conf_mutations(void **state)
{
        uint64_t x = 88172645463325252ULL;
        char buf[sizeof(lab_conf)];

        for (int iter = 0; iter < 5000; iter++) {
                json_t *j = NULL;
                char why[128];
                size_t len = sizeof(lab_conf) - 1;
                int r;

                memcpy(buf, lab_conf, sizeof(lab_conf));
                for (int k = 0; k < 1 + iter % 8; k++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        buf[x % len] = "{}:#\n \t\0a\x1b"[(x >> 32) % 10];
                }
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                len -= (x % 4 == 0) ? (x >> 20) % len : 0;
                r = doctor_parse_corosync_conf(buf, len, &j, why, sizeof(why));
                assert_true(r == 0 || r == -EINVAL);
                if (r == 0) {
                        assert_true(json_is_array(json_object_get(j, "nodes")));
                        json_decref(j);
                }
        }
}

static void test_fingerprint(void **state)
{
        uint8_t key[256], other[256];
        char a[DOCTOR_FINGERPRINT_LEN], b[DOCTOR_FINGERPRINT_LEN], c[DOCTOR_FINGERPRINT_LEN],
                hex[513];

        for (size_t i = 0; i < sizeof(key); i++) {
                key[i] = (uint8_t)(i * 7 + 3);
                other[i] = key[i];
        }
        other[255] ^= 1;
        assert_int_equal(doctor_fingerprint(key, sizeof(key), a), 0);
        assert_int_equal(doctor_fingerprint(key, sizeof(key), b), 0);
        assert_int_equal(doctor_fingerprint(other, sizeof(other), c), 0);
        assert_string_equal(a, b);
        assert_string_not_equal(a, c);
        assert_true(strneq(a, DOCTOR_FINGERPRINT_PREFIX, strlen(DOCTOR_FINGERPRINT_PREFIX)));
        assert_int_equal(strlen(a), strlen(DOCTOR_FINGERPRINT_PREFIX) + 32);
        /* Not a plain hash or a prefix of the key. */
        hex_encode(key, sizeof(key), hex);
        assert_null(strstr(hex, a + strlen(DOCTOR_FINGERPRINT_PREFIX)));
}

/* ---- synthetic facts for findings ---- */

#define FPR_PVE   "blake2b-128:11111111111111111111111111111111"
#define FPR_OTHER "blake2b-128:22222222222222222222222222222222"

static PolicyHost inventory[] = {
        { .name = (char *)"pve1", .address = (char *)"198.51.100.10", .cluster = (char *)"pve" },
        { .name = (char *)"pve2", .address = (char *)"198.51.100.20", .cluster = (char *)"pve" },
        { .name = (char *)"pve8", .address = (char *)"198.51.100.80", .cluster = (char *)"pve" },
        { .name = (char *)"xenon", .address = (char *)"198.51.100.82" },
};

static json_t *nodelist(bool with_xenon)
{
        json_t *l = json_pack("[{s:s,s:i,s:s},{s:s,s:i,s:s},{s:s,s:i,s:s}]", "name", "pve1",
                              "nodeid", 1, "ring0_addr", "198.51.100.10", "name", "pve2", "nodeid",
                              2, "ring0_addr", "198.51.100.20", "name", "pve8", "nodeid", 3,
                              "ring0_addr", "198.51.100.80");
        if (with_xenon)
                json_array_append_new(l, json_pack("{s:s,s:i,s:s}", "name", "xenon", "nodeid", 4,
                                                   "ring0_addr", "198.51.100.82"));
        return l;
}

static json_t *links(int me, int n, bool connected)
{
        json_t *l = json_array();
        for (int i = 1; i <= n; i++)
                json_array_append_new(l,
                                      json_pack("{s:i,s:b,s:b,s:{s:b,s:s}}", "nodeid", i, "local",
                                                i == me, "reachable", i == me || connected, "link0",
                                                "connected", i == me || connected, "dst", "x"));
        return l;
}

static json_t *member_facts(int id, const char *conf_sha)
{
        return json_pack(
                "{s:s,s:{s:b,s:b,s:[s],s:b,s:{s:i,s:i,s:f},s:{s:b,s:s,s:s,s:i},s:[{s:s,s:s,s:s,s:i,"
                "s:i}],s:{s:s,s:i,s:i,s:o,s:{s:b,s:i,s:i,s:[iii]},s:o}},s:{s:[]}}",
                "init", "sysv", "corosync", "installed", 1, "enabled", 1, "enabled_by",
                "/etc/rc2.d/S01corosync", "running", 1, "process", "pid", 19, "started", 1795860000,
                "cpu_percent", 0.5, "config", "present", 1, "path", "/etc/corosync/corosync.conf",
                "sha256", conf_sha, "config_version", 3, "keys", "path", "/etc/corosync/authkey",
                "fingerprint", FPR_PVE, "mode", "0400", "mtime", 1795860000, "ctime", 1795860000,
                "runtime", "cluster_name", "pve", "node_id", id, "config_version", 3, "nodelist",
                nodelist(false), "quorum", "quorate", 1, "total_votes", 3, "expected_votes", 3,
                "members", 1, 2, 3, "links", links(id, 3, true), "secrets", "changed");
}

static json_t *ok(json_t *facts)
{
        return json_pack("{s:b,s:o}", "ok", 1, "facts", facts);
}

static json_t *xenon_clean(void)
{
        return json_pack("{s:s,s:{s:b,s:b,s:[],s:b,s:{s:b},s:[]},s:{s:[]}}", "init", "sysv",
                         "corosync", "installed", 1, "enabled", 0, "enabled_by", "running", 0,
                         "config", "present", 0, "keys", "secrets", "changed");
}

static json_t *xenon_rogue(const char *fpr)
{
        return json_pack(
                "{s:s,s:{s:b,s:b,s:[s],s:b,s:{s:i,s:i,s:f},s:{s:b,s:s,s:s},s:[{s:s,s:s,s:s,s:i,s:i}"
                ",{s:s,s:s,s:s,s:i,s:i}],s:{s:s,s:i,s:i,s:o,s:{s:b,s:i,s:i,s:[i]},s:o}},s:{s:[]}}",
                "init", "sysv", "corosync", "installed", 1, "enabled", 1, "enabled_by",
                "/etc/systemd/system/multi-user.target.wants/corosync.service", "running", 1,
                "process", "pid", 33, "started", 1795863000, "cpu_percent", 3.1, "config",
                "present", 1, "path", "/etc/corosync/corosync.conf", "sha256", "ffff", "keys",
                "path", "/etc/corosync/authkey", "fingerprint", fpr, "mode", "0400", "mtime",
                1795863000, "ctime", 1795863000, "path", "/etc/corosync/authkey.backup",
                "fingerprint", fpr, "mode", "0400", "mtime", 1795863000, "ctime", 1795863000,
                "runtime", "cluster_name", "pve", "node_id", 4, "config_version", 3, "nodelist",
                nodelist(true), "quorum", "quorate", 0, "total_votes", 1, "expected_votes", 4,
                "members", 4, "links", links(4, 4, false), "secrets", "changed");
}

static json_t *reports(json_t *xenon)
{
        return json_pack("{s:o,s:o,s:o,s:o}", "pve1", ok(member_facts(1, "aaaa")), "pve2",
                         ok(member_facts(2, "aaaa")), "pve8", ok(member_facts(3, "aaaa")), "xenon",
                         ok(xenon));
}

static json_t *find_kind(json_t *findings, const char *kind)
{
        size_t i;
        json_t *f;

        json_array_foreach(findings, i, f) if (streq(json_string_value(json_object_get(f, "kind")),
                                                     kind)) return f;
        return NULL;
}

static void test_findings_healthy(void **state)
{
        json_t *r = reports(xenon_clean()), *f = NULL;

        assert_int_equal(doctor_findings(inventory, ELEMENTSOF(inventory), r, &f), 0);
        assert_int_equal(json_array_size(f), 0);
        assert_int_equal(doctor_findings_count_problems(f), 0);
        json_decref(f);
        json_decref(r);
}

static void test_findings_incident(void **state)
{
        json_t *r = reports(xenon_rogue(FPR_PVE)), *f = NULL, *c, *plan = NULL, *s;
        char *dump;

        assert_int_equal(doctor_findings(inventory, ELEMENTSOF(inventory), r, &f), 0);
        c = json_array_get(f, 0);
        assert_string_equal(json_string_value(json_object_get(c, "severity")), "critical");
        assert_string_equal(json_string_value(json_object_get(c, "kind")),
                            "cluster-key-outside-cluster");
        assert_string_equal(json_string_value(json_object_get(c, "host")), "xenon");
        assert_string_equal(json_string_value(json_object_get(c, "cluster")), "pve");
        dump = json_dumps(json_object_get(c, "evidence"), 0);
        assert_non_null(strstr(dump, "/etc/corosync/authkey.backup"));
        assert_non_null(strstr(dump, "pve1, pve2, pve8"));
        assert_non_null(strstr(dump, "NOT quorate"));
        assert_non_null(strstr(dump, "expected votes 4"));
        assert_non_null(strstr(dump, "3 of 3 other nodes disconnected"));
        free(dump);
        /* The members themselves look healthy: no other finding. */
        assert_int_equal(json_array_size(f), 1);

        assert_int_equal(
                doctor_fix_plan(inventory, ELEMENTSOF(inventory), r, f, "/usr/bin/airlock", &plan),
                0);
        /* stop, rm, disable on xenon; then restart + verify on each member, in order. */
        assert_int_equal(json_array_size(plan), 3 + 2 * 3);
        s = json_array_get(plan, 0);
        assert_string_equal(json_string_value(json_object_get(s, "host")), "xenon");
        assert_string_equal(json_string_value(json_array_get(json_object_get(s, "argv"), 2)),
                            "stop");
        s = json_array_get(plan, 1);
        assert_string_equal(json_string_value(json_array_get(json_object_get(s, "argv"), 0)), "rm");
        assert_string_equal(json_string_value(json_array_get(json_object_get(s, "argv"), 3)),
                            "/etc/corosync/authkey");
        assert_string_equal(json_string_value(json_array_get(json_object_get(s, "argv"), 4)),
                            "/etc/corosync/authkey.backup");
        s = json_array_get(plan, 2);
        assert_string_equal(json_string_value(json_array_get(json_object_get(s, "argv"), 1)),
                            "disable");
        for (int m = 0; m < 3; m++) {
                static const char *const names[] = { "pve1", "pve2", "pve8" };
                json_t *rs = json_array_get(plan, 3 + 2 * m), *vs = json_array_get(plan, 4 + 2 * m);
                assert_string_equal(json_string_value(json_object_get(rs, "host")), names[m]);
                assert_string_equal(
                        json_string_value(json_array_get(json_object_get(rs, "argv"), 2)),
                        "restart");
                assert_string_equal(json_string_value(json_object_get(vs, "kind")), "verify");
                assert_string_equal(json_string_value(json_object_get(vs, "host")), names[m]);
        }
        json_decref(plan);
        json_decref(f);
        json_decref(r);
}

static void test_findings_wrong_key(void **state)
{
        json_t *r = reports(xenon_rogue(FPR_OTHER)), *f = NULL, *w;

        assert_int_equal(doctor_findings(inventory, ELEMENTSOF(inventory), r, &f), 0);
        assert_null(find_kind(f, "cluster-key-outside-cluster"));
        w = find_kind(f, "corosync-outside-cluster");
        assert_non_null(w);
        assert_string_equal(json_string_value(json_object_get(w, "severity")), "warning");
        assert_string_equal(json_string_value(json_object_get(w, "host")), "xenon");
        json_decref(f);
        json_decref(r);
}

static void test_findings_member_problems(void **state)
{
        json_t *r = reports(xenon_clean()), *f = NULL, *pve2, *q;

        /* pve8 unreachable; pve2 not quorate with a link down; pve1 runs a different corosync.conf.
         */
        json_object_set_new(
                r, "pve8",
                json_pack("{s:b,s:s}", "ok", 0, "error", "exit status 255: ssh: connect refused"));
        pve2 = json_object_get(
                json_object_get(json_object_get(json_object_get(r, "pve2"), "facts"), "corosync"),
                "runtime");
        q = json_object_get(pve2, "quorum");
        json_object_set_new(q, "quorate", json_false());
        json_object_set_new(pve2, "links", links(2, 3, false));
        json_object_set_new(
                json_object_get(
                        json_object_get(json_object_get(json_object_get(r, "pve1"), "facts"),
                                        "corosync"),
                        "config"),
                "sha256", json_string("bbbb"));
        assert_int_equal(doctor_findings(inventory, ELEMENTSOF(inventory), r, &f), 0);
        assert_non_null(find_kind(f, "member-unreachable"));
        assert_non_null(find_kind(f, "member-not-quorate"));
        assert_non_null(find_kind(f, "link-down"));
        assert_non_null(find_kind(f, "config-diverged"));
        assert_null(find_kind(f, "cluster-key-outside-cluster"));
        assert_true(doctor_findings_count_problems(f) >= 4);
        /* Sorted: the critical one first. */
        assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "severity")),
                            "critical");
        json_decref(f);
        json_decref(r);
}

static void test_explain_secret_changes(void **state)
{
        json_t *findings =
                json_pack("[{s:s,s:s,s:s,s:i,s:[]},{s:s,s:s,s:s,s:i,s:[]}]", "severity", "warning",
                          "kind", "secret-changed", "host", "pve1", "changed", 1795863805,
                          "evidence", "severity", "warning", "kind", "secret-changed", "host",
                          "pve2", "changed", 1795863805, "evidence");
        json_t *records =
                json_pack("[{s:s,s:s,s:s,s:{s:s}},{s:s,s:s,s:s,s:s,s:[ss]},{s:s,s:s,s:s}]", "event",
                          "request_approved", "request", "7", "time", "2026-11-28T11:03:20.000000Z",
                          "details", "approver_name", "alice", "event", "exec_start", "request",
                          "7", "time", "2026-11-28T11:03:24.500000Z", "target", "pve1", "argv",
                          "touch", "/etc/corosync/authkey", "event", "exec_end", "request", "7",
                          "time", "2026-11-28T11:03:24.900000Z");
        json_t *f;
        char *ev;

        assert_non_null(findings);
        assert_non_null(records);
        assert_int_equal(doctor_explain_secret_changes(findings, records, "audit.log"), 0);
        f = json_array_get(findings, 0);
        assert_string_equal(json_string_value(json_object_get(f, "severity")), "info");
        assert_string_equal(json_string_value(json_object_get(f, "explained_by")), "7");
        ev = json_dumps(json_object_get(f, "evidence"), 0);
        assert_non_null(strstr(ev, "touch /etc/corosync/authkey"));
        assert_non_null(strstr(ev, "approved by alice"));
        free(ev);
        /* Same time, other host: not explained. */
        f = json_array_get(findings, 1);
        assert_string_equal(json_string_value(json_object_get(f, "severity")), "warning");
        assert_null(json_object_get(f, "explained_by"));
        assert_int_equal(doctor_findings_count_problems(findings), 1);
        json_decref(findings);
        json_decref(records);
}

/* ---- local facts on a fake root: files, links, /proc ---- */

static void put(const char *root, const char *rel, const char *text, mode_t mode)
{
        char path[4096], *slash;

        snprintf(path, sizeof(path), "%s%s", root, rel);
        for (slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = '\0';
                mkdir(path, 0755);
                *slash = '/';
        }
        if (text) {
                int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
                assert_true(fd >= 0);
                assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
                close(fd);
        } else
                mkdir(path, mode);
}

static void test_local_facts_fake_root(void **state)
{
        char root[] = "/tmp/airlock-doctor-unit-XXXXXX", link[4200], key[257];
        char *globs[] = { (char *)"/etc/corosync/authkey*", NULL };
        DoctorLocalOptions o = { .root = root, .secret_globs = globs, .secrets_since_sec = 0 };
        json_t *f = NULL, *c, *k, *p;
        char cmd[4300];

        assert_non_null(mkdtemp(root));
        for (int i = 0; i < 256; i++)
                key[i] = (char)('A' + i % 26);
        key[256] = '\0';
        put(root, "/usr/sbin/corosync", "#!/bin/sh\n", 0755);
        put(root, "/etc/corosync/authkey", key, 0400);
        put(root, "/etc/corosync/authkey.backup", key, 0400);
        put(root, "/etc/corosync/corosync.conf", lab_conf, 0644);
        put(root, "/etc/systemd/system/multi-user.target.wants", NULL, 0755);
        snprintf(link, sizeof(link),
                 "%s/etc/systemd/system/multi-user.target.wants/corosync.service", root);
        assert_int_equal(symlink("/lib/systemd/system/corosync.service", link), 0);
        put(root, "/proc/stat", "cpu 1 2 3\nbtime 1795000000\nprocesses 5\n", 0644);
        put(root, "/proc/4242/comm", "corosync\n", 0644);
        /* pid (comm) state ... utime=14 stime=15 ... starttime=22 (in clock ticks) */
        put(root, "/proc/4242/stat",
            "4242 (corosync) S 1 4242 4242 0 -1 4194560 100 0 0 0 300 200 0 0 -2 0 9 0 100000 0 "
            "0\n",
            0644);
        put(root, "/proc/77/comm", "sshd\n", 0644);

        assert_int_equal(doctor_local_facts(&o, &f), 0);
        c = json_object_get(f, "corosync");
        assert_true(json_is_true(json_object_get(c, "installed")));
        assert_true(json_is_true(json_object_get(c, "enabled")));
        assert_string_equal(json_string_value(json_array_get(json_object_get(c, "enabled_by"), 0)),
                            "/etc/systemd/system/multi-user.target.wants/corosync.service");
        assert_true(json_is_true(json_object_get(c, "running")));
        p = json_object_get(c, "process");
        assert_int_equal(json_integer_value(json_object_get(p, "pid")), 4242);
        /* started = btime + starttime/HZ */
        assert_int_equal(json_integer_value(json_object_get(p, "started")),
                         1795000000 + 100000 / sysconf(_SC_CLK_TCK));
        assert_true(json_real_value(json_object_get(p, "cpu_seconds")) > 0.0);
        assert_int_equal(json_array_size(json_object_get(c, "keys")), 2);
        k = json_array_get(json_object_get(c, "keys"), 0);
        assert_string_equal(json_string_value(json_object_get(k, "path")), "/etc/corosync/authkey");
        assert_string_equal(json_string_value(json_object_get(k, "mode")), "0400");
        assert_string_equal(json_string_value(json_object_get(k, "fingerprint")),
                            json_string_value(json_object_get(
                                    json_array_get(json_object_get(c, "keys"), 1), "fingerprint")));
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(c, "config"), "cluster_name")),
                "pve");
        assert_int_equal(json_array_size(json_object_get(json_object_get(f, "secrets"), "changed")),
                         2);
        /* The key's bytes appear nowhere in the facts. */
        {
                char *dump = json_dumps(f, 0);
                assert_null(strstr(dump, "ABCDEFGHIJKLMNOP"));
                free(dump);
        }
        json_decref(f);

        /* Nothing changed since the far future: no secrets reported. */
        o.secrets_since_sec = UINT32_MAX;
        assert_int_equal(doctor_local_facts(&o, &f), 0);
        assert_int_equal(json_array_size(json_object_get(json_object_get(f, "secrets"), "changed")),
                         0);
        json_decref(f);

        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", root);
        assert_int_equal(system(cmd), 0);
}

/* Every slot of a loaded table holds a function (tables are pointers only). */
static void assert_table_filled(const void *table, size_t size)
{
        assert_int_equal(size % sizeof(void *), 0);
        for (size_t off = 0; off < size; off += sizeof(void *)) {
                void *p;

                memcpy(&p, (const char *)table + off, sizeof(p));
                assert_non_null(p);
        }
}

static void test_libs_load_installed(void **state)
{
        char why[512] = "";
        const DoctorCorosyncLibs *cs = doctor_corosync_libs(why, sizeof(why));
        const DoctorPcapLib *pc = doctor_pcap_lib(why, sizeof(why));
        char err[PCAP_ERRBUF_SIZE] = "";
        pcap_t *p;

        assert_non_null(cs);
        assert_non_null(pc);
        assert_table_filled(cs, sizeof(*cs));
        assert_table_filled(pc, sizeof(*pc));
        /* Loaded once: the same table on every call. */
        assert_ptr_equal(doctor_corosync_libs(why, sizeof(why)), cs);
        /* The pointers are the real functions: a handle is created and closed. */
        p = pc->pcap_create("any", err);
        assert_non_null(p);
        pc->pcap_close(p);
}

static void test_libs_load_missing(void **state)
{
        static const DoctorLib libs[] = {
                { "libcmap.so.4", "libcmap4" },
                { "libairlock-test-absent.so.9", "libabsent9" },
        };
        static const DoctorSym syms[] = {
                { "cmap_initialize", offsetof(DoctorCorosyncLibs, cmap_initialize) },
        };
        static const DoctorSym bad_syms[] = {
                { "cmap_initialize", offsetof(DoctorCorosyncLibs, cmap_initialize) },
                { "cmap_no_such_function", offsetof(DoctorCorosyncLibs, cmap_finalize) },
        };
        DoctorCorosyncLibs t = {};
        char why[512] = "";

        /* A library that is not there: named, with dlerror's reason and the packages. */
        assert_int_equal(doctor_libs_load("corosync's client libraries", libs, 2, syms, 1, &t, why,
                                          sizeof(why)),
                         -ENOENT);
        assert_non_null(strstr(why, "corosync's client libraries are not installed "
                                    "(libairlock-test-absent.so.9: "));
        assert_non_null(strstr(why, "No such file"));
        assert_non_null(strstr(why, "— apt-get install libcmap4 libabsent9"));

        /* A function the installed library lacks. */
        assert_int_equal(doctor_libs_load("corosync's client libraries", libs, 1, bad_syms, 2, &t,
                                          why, sizeof(why)),
                         -ENOSYS);
        assert_non_null(strstr(why, "cmap_no_such_function() is missing"));

        /* The same call with what exists works, and fills the slot. */
        memset(&t, 0, sizeof(t));
        assert_int_equal(doctor_libs_load("corosync's client libraries", libs, 1, syms, 1, &t, why,
                                          sizeof(why)),
                         0);
        assert_non_null(t.cmap_initialize);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_conf),
                cmocka_unit_test(test_parse_conf_errors),
                cmocka_unit_test(test_parse_conf_escapes),
                cmocka_unit_test(test_parse_conf_mutations),
                cmocka_unit_test(test_fingerprint),
                cmocka_unit_test(test_local_facts_fake_root),
                cmocka_unit_test(test_explain_secret_changes),
                cmocka_unit_test(test_findings_healthy),
                cmocka_unit_test(test_findings_incident),
                cmocka_unit_test(test_findings_wrong_key),
                cmocka_unit_test(test_findings_member_problems),
                cmocka_unit_test(test_libs_load_installed),
                cmocka_unit_test(test_libs_load_missing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
