/* SPDX-License-Identifier: GPL-2.0-or-later */
/* plan_meaning_exec() and plan_meaning_socket(): tables of commands and socket names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "plan/plan-internal.h"

typedef struct {
        const char *argv[8];
        const char *daemon;  /* NULL: means nothing known */
        const char *meaning; /* exact */
} ExecCase;

static const ExecCase exec_cases[] = {
        { { "systemctl", "restart", "corosync" }, "corosync.service", "restarts corosync.service" },
        { { "/usr/bin/systemctl", "restart", "corosync.service" },
          "corosync.service",
          "restarts corosync.service" },
        { { "systemctl", "start", "pve-cluster" },
          "pve-cluster.service",
          "starts pve-cluster.service" },
        { { "systemctl", "stop", "nginx.socket" }, "nginx.socket", "stops nginx.socket" },
        { { "systemctl", "reload", "ssh" }, "ssh.service", "reloads ssh.service" },
        { { "systemctl", "--no-block", "-q", "restart", "corosync" },
          "corosync.service",
          "restarts corosync.service" },
        { { "systemctl", "-H", "root@xenon", "restart", "corosync" },
          "corosync.service",
          "restarts corosync.service" },
        { { "systemctl", "enable", "--now", "corosync" },
          "corosync.service",
          "enables corosync.service at boot and starts it now" },
        { { "systemctl", "enable", "corosync" },
          "corosync.service",
          "enables corosync.service at boot" },
        { { "systemctl", "disable", "corosync" },
          "corosync.service",
          "disables corosync.service at boot" },
        { { "systemctl", "mask", "corosync" },
          "corosync.service",
          "masks corosync.service (it can no longer be started)" },
        { { "systemctl", "kill", "-s", "HUP", "corosync" },
          "corosync.service",
          "sends a signal to the processes of corosync.service" },
        { { "systemctl", "--signal=HUP", "kill", "corosync" },
          "corosync.service",
          "sends a signal to the processes of corosync.service" },
        { { "systemctl", "status", "corosync" },
          "corosync.service",
          "queries corosync.service (read-only)" },
        { { "systemctl", "daemon-reload" }, "systemd", "reloads systemd's unit files" },
        { { "systemctl", "reboot" }, "systemd", "reboots the host" },
        { { "systemctl", "restart" }, NULL, NULL }, /* no unit: nothing */
        { { "systemctl" }, NULL, NULL },
        { { "service", "corosync", "restart" }, "corosync.service", "restarts corosync.service" },
        { { "service", "ssh", "reload" }, "ssh.service", "reloads ssh.service" },
        { { "invoke-rc.d", "--quiet", "corosync", "stop" },
          "corosync.service",
          "stops corosync.service" },
        { { "/etc/init.d/corosync", "start" }, "corosync.service", "starts corosync.service" },
        { { "pvecm", "addnode", "xenon" },
          "corosync",
          "adds a node to the cluster (pvecm addnode xenon)" },
        { { "pvecm", "status" }, "corosync", "queries the cluster (read-only)" },
        { { "pvecm", "expected", "1" }, "corosync", "sets the expected votes (pvecm expected 1)" },
        { { "corosync-cfgtool", "-R" },
          "corosync",
          "reloads corosync's configuration on every node" },
        { { "corosync-cfgtool", "-k", "3" }, "corosync", "kills cluster node 3" },
        { { "corosync-cfgtool", "-s" }, "corosync", "queries corosync (read-only)" },
        { { "corosync-quorumtool", "-e", "2" }, "corosync", "sets the expected votes to 2" },
        { { "corosync-quorumtool", "-s" }, "corosync", "queries corosync (read-only)" },
        { { "corosync-cmapctl", "-s", "totem.token", "u32", "3000" },
          "corosync",
          "changes corosync's runtime configuration (cmap)" },
        { { "pct", "stop", "101" }, "pve-container/101", "stops container 101" },
        { { "qm", "destroy", "9000" }, "qemu-server/9000", "destroys VM 9000" },
        { { "qm", "list" }, "qemu-server", "queries the guests (read-only)" },
        { { "docker", "run", "--rm", "debian" }, "docker", "runs a container from debian" },
        { { "docker", "-H", "unix:///x", "stop", "web" }, "docker", "stops container web" },
        { { "docker", "ps" }, "docker", "queries containers (read-only)" },
        { { "ls", "-l" }, NULL, NULL },
        { { "sh", "-c", "systemctl restart corosync" },
          NULL,
          NULL }, /* the exec of systemctl counts */
        { { "kill", "-HUP", "1234" }, NULL, NULL },
};

static void test_exec_table(void **state)
{
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(exec_cases); i++) {
                const ExecCase *c = &exec_cases[i];
                char *d = NULL, *m = NULL;
                int r = plan_meaning_exec((char *const *)c->argv, &d, &m);

                if (!c->daemon) {
                        if (r != 0)
                                fail_msg("case %zu (%s %s): expected nothing, got %s: %s", i,
                                         c->argv[0], c->argv[1] ? c->argv[1] : "", d, m);
                        continue;
                }
                if (r != 1)
                        fail_msg("case %zu (%s %s): returned %d", i, c->argv[0],
                                 c->argv[1] ? c->argv[1] : "", r);
                if (!streq(d, c->daemon) || !streq(m, c->meaning))
                        fail_msg("case %zu: got \"%s\" / \"%s\", expected \"%s\" / \"%s\"", i, d, m,
                                 c->daemon, c->meaning);
                free(d);
                free(m);
        }
}

static void test_exec_every_unit(void **state)
{
        const char *argv[] = { "systemctl",           "restart", "foo", "corosync",
                               "pve-cluster.service", NULL };
        const char *want[] = { "foo.service", "corosync.service", "pve-cluster.service" };
        char *d = NULL, *m = NULL;

        (void)state;
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(plan_meaning_exec_nth((char *const *)argv, i, &d, &m), 1);
                assert_string_equal(d, want[i]);
                free(d);
                free(m);
        }
        assert_int_equal(plan_meaning_exec_nth((char *const *)argv, 3, &d, &m), 0);
        /* commands naming one daemon have no second */
        const char *one[] = { "pvecm", "status", NULL };
        assert_int_equal(plan_meaning_exec_nth((char *const *)one, 1, &d, &m), 0);
}

typedef struct {
        const char *path;
        const char *daemon;
} SocketCase;

static const SocketCase socket_cases[] = {
        { "/run/systemd/private", "systemd" },
        { "/run/systemd/notify", "systemd" },
        { "/var/run/dbus/system_bus_socket", "dbus" },
        { "/run/dbus/system_bus_socket", "dbus" },
        { "/var/run/docker.sock", "docker" },
        { "/run/docker.sock", "docker" },
        { "/run/containerd/containerd.sock", "containerd" },
        { "/run/containerd/containerd.sock.ttrpc", "containerd" },
        { "/var/run/libvirt/libvirt-sock", "libvirt" },
        { "/run/airlock/session.sock", "airlock" },
        { "/tmp/ssh-XXXXabcd/agent.1234", "ssh-agent" },
        { "/run/user/0/gnupg/S.gpg-agent.ssh", "gpg-agent" },
        { "/run/systemd/journal/socket", "journald" },
        { "/dev/log", "journald" },
        /* libqb, as corosync 3 on Debian 12 listens (ss -xlp in the lab) */
        { "@cmap", "corosync" },
        { "@cfg", "corosync" },
        { "@cpg", "corosync" },
        { "@quorum", "corosync" },
        { "@votequorum", "corosync" },
        { "@qb-corosync-cmap", "corosync" },
        { "/dev/shm/qb-1234-5678-cpg-request", "corosync" },
        { "@pve2", "pve-cluster" },
        { "@/org/freedesktop/systemd1/notify/123", "systemd" },
        { "/tmp/app.sock", NULL },
        { "@some-other", NULL },
        { "@/tmp/.X11-unix/X0", NULL },
        { "", NULL },
        { "/run/systemd/privatex", NULL },
};

static void test_socket_table(void **state)
{
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(socket_cases); i++) {
                const char *d = plan_meaning_socket(socket_cases[i].path);

                if ((d == NULL) != (socket_cases[i].daemon == NULL) ||
                    (d && !streq(d, socket_cases[i].daemon)))
                        fail_msg("%s: got %s, expected %s", socket_cases[i].path, d ? d : "(none)",
                                 socket_cases[i].daemon ? socket_cases[i].daemon : "(none)");
        }
        assert_null(plan_meaning_socket(NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_exec_table),
                cmocka_unit_test(test_exec_every_unit),
                cmocka_unit_test(test_socket_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
