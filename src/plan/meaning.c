/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What an exec or a unix socket means for a daemon, so that an approver
 * reads "restarts corosync.service" rather than a command line, and a
 * policy rule on "contacts: corosync*" holds however the command is
 * spelled. Tables, not heuristics: an exec that no table knows means
 * nothing (the exec itself is still in the plan).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "plan/plan-internal.h"
#include "policy/policy.h"

static const char *base_name(const char *s)
{
        const char *b = strrchr(s, '/');

        return b ? b + 1 : s;
}

static int result(const char *daemon, char *meaning, char **ret_daemon, char **ret_meaning)
{
        char *d;

        if (!meaning)
                return -ENOMEM;
        d = strdup(daemon);
        if (!d) {
                free(meaning);
                return -ENOMEM;
        }
        *ret_daemon = d;
        *ret_meaning = meaning;
        return 1;
}

static char *fmt(const char *f, ...) _printf_(1, 2);
static char *fmt(const char *f, ...)
{
        va_list ap;
        char *s = NULL;
        int n;

        va_start(ap, f);
        n = vasprintf(&s, f, ap);
        va_end(ap);
        return n < 0 ? NULL : s;
}

/* A table's meaning with its one "%s" replaced by arg (tables are not format strings). */
static char *subst(const char *tmpl, const char *arg)
{
        const char *at = strstr(tmpl, "%s");

        if (!at)
                return strdup(tmpl);
        return fmt("%.*s%s%s", (int)(at - tmpl), tmpl, arg, at + 2);
}

/* "corosync" → "corosync.service"; a name with a unit suffix stays as it is. */
static char *unit_name(const char *u)
{
        static const char *const suffixes[] = { ".service", ".socket",    ".target", ".timer",
                                                ".mount",   ".automount", ".path",   ".slice",
                                                ".scope",   ".device",    ".swap" };
        const char *dot = strrchr(u, '.');

        if (dot)
                for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
                        if (streq(dot, suffixes[i]))
                                return strdup(u);
        return fmt("%s.service", u);
}

typedef struct {
        const char *verb;
        const char *meaning; /* "%s" is the unit */
} VerbMeaning;

static const VerbMeaning systemctl_verbs[] = {
        { "start", "starts %s" },
        { "stop", "stops %s" },
        { "restart", "restarts %s" },
        { "try-restart", "restarts %s if it is running" },
        { "condrestart", "restarts %s if it is running" },
        { "reload", "reloads %s" },
        { "reload-or-restart", "reloads or restarts %s" },
        { "try-reload-or-restart", "reloads or restarts %s if it is running" },
        { "force-reload", "reloads or restarts %s" },
        { "enable", "enables %s at boot" },
        { "reenable", "re-enables %s at boot" },
        { "disable", "disables %s at boot" },
        { "mask", "masks %s (it can no longer be started)" },
        { "unmask", "unmasks %s" },
        { "kill", "sends a signal to the processes of %s" },
        { "freeze", "freezes %s" },
        { "thaw", "thaws %s" },
        { "isolate", "isolates %s (stops every unit it does not need)" },
        { "reset-failed", "resets the failed state of %s" },
        { "set-property", "changes properties of %s" },
        { "edit", "edits %s" },
        { "revert", "reverts %s to its vendor version" },
        { "status", "queries %s (read-only)" },
        { "show", "queries %s (read-only)" },
        { "cat", "queries %s (read-only)" },
        { "is-active", "queries %s (read-only)" },
        { "is-enabled", "queries %s (read-only)" },
        { "is-failed", "queries %s (read-only)" },
        { "list-dependencies", "queries %s (read-only)" },
};

/* Verbs on systemd itself, with no unit. */
static const VerbMeaning systemctl_manager_verbs[] = {
        { "daemon-reload", "reloads systemd's unit files" },
        { "daemon-reexec", "re-executes systemd" },
        { "reboot", "reboots the host" },
        { "poweroff", "powers the host off" },
        { "halt", "halts the host" },
        { "kexec", "reboots the host (kexec)" },
        { "suspend", "suspends the host" },
        { "hibernate", "hibernates the host" },
        { "rescue", "enters rescue mode" },
        { "emergency", "enters emergency mode" },
        { "default", "enters the default target" },
        { "set-default", "changes the default target" },
        { "preset-all", "applies presets to every unit" },
        { "list-units", "queries systemd (read-only)" },
        { "list-unit-files", "queries systemd (read-only)" },
        { "list-jobs", "queries systemd (read-only)" },
        { "list-timers", "queries systemd (read-only)" },
        { "list-sockets", "queries systemd (read-only)" },
        { "is-system-running", "queries systemd (read-only)" },
};

/* systemctl options that take a separate argument. */
static const char *const systemctl_opts_with_arg[] = {
        "-t",
        "--type",
        "-s",
        "--signal",
        "-p",
        "--property",
        "-H",
        "--host",
        "-M",
        "--machine",
        "-n",
        "--lines",
        "-o",
        "--output",
        "--job-mode",
        "--kill-whom",
        "--kill-value",
        "--root",
        "--what",
        "--state",
        "--timestamp",
        "--message",
        "--boot-loader-entry",
        "--boot-loader-menu",
        "--image",
        "--reboot-argument",
        "--drop-in",
        "--check-inhibitors",
};

static bool takes_arg(const char *o, const char *const *tbl, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (streq(o, tbl[i]))
                        return true;
        return false;
}

/* The verb and unit arguments of a systemctl command line, options skipped. */
static int systemctl_words(char *const *argv, char ***ret, bool *now)
{
        _cleanup_strv_free_ char **w = NULL;
        bool opts_done = false;
        int r;

        *now = false;
        for (size_t i = 1; argv[i]; i++) {
                const char *a = argv[i];

                if (!opts_done && streq(a, "--")) {
                        opts_done = true;
                        continue;
                }
                if (!opts_done && a[0] == '-' && a[1]) {
                        if (streq(a, "--now"))
                                *now = true;
                        if (!strchr(a, '=') && takes_arg(a, systemctl_opts_with_arg,
                                                         ELEMENTSOF(systemctl_opts_with_arg)))
                                if (argv[i + 1])
                                        i++;
                        continue;
                }
                r = strv_extend(&w, a);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(w);
        return 0;
}

static int meaning_systemctl(char *const *argv, size_t nth, char **ret_daemon, char **ret_meaning)
{
        _cleanup_strv_free_ char **w = NULL;
        _cleanup_free_ char *unit = NULL;
        const char *verb;
        bool now;
        int r;

        r = systemctl_words(argv, &w, &now);
        if (r < 0)
                return r;
        if (!w || !w[0])
                return 0;
        verb = w[0];
        for (size_t i = 0; i < ELEMENTSOF(systemctl_manager_verbs); i++)
                if (streq(verb, systemctl_manager_verbs[i].verb)) {
                        if (nth > 0)
                                return 0;
                        return result("systemd", strdup(systemctl_manager_verbs[i].meaning),
                                      ret_daemon, ret_meaning);
                }
        for (size_t i = 0; i < ELEMENTSOF(systemctl_verbs); i++) {
                const char *m;

                if (!streq(verb, systemctl_verbs[i].verb))
                        continue;
                if (strv_length(w) < nth + 2)
                        return 0;
                unit = unit_name(w[nth + 1]);
                if (!unit)
                        return -ENOMEM;
                m = systemctl_verbs[i].meaning;
                if (now && streq(verb, "enable"))
                        m = "enables %s at boot and starts it now";
                else if (now && streq(verb, "disable"))
                        m = "disables %s at boot and stops it now";
                else if (now && streq(verb, "mask"))
                        m = "masks %s and stops it now";
                return result(unit, subst(m, unit), ret_daemon, ret_meaning);
        }
        if (nth > 0)
                return 0;
        return result("systemd", fmt("talks to systemd (systemctl %s)", verb), ret_daemon,
                      ret_meaning);
}

/* service UNIT VERB, invoke-rc.d UNIT VERB, /etc/init.d/UNIT VERB */
static int meaning_sysv(const char *name, const char *verb, char **ret_daemon, char **ret_meaning)
{
        static const VerbMeaning verbs[] = {
                { "start", "starts %s" },
                { "stop", "stops %s" },
                { "restart", "restarts %s" },
                { "try-restart", "restarts %s if it is running" },
                { "reload", "reloads %s" },
                { "force-reload", "reloads or restarts %s" },
                { "status", "queries %s (read-only)" },
        };
        _cleanup_free_ char *unit = NULL;

        if (!name || !verb || strchr(name, '/') || name[0] == '-')
                return 0;
        unit = unit_name(name);
        if (!unit)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verb, verbs[i].verb))
                        return result(unit, subst(verbs[i].meaning, unit), ret_daemon, ret_meaning);
        return result(unit, fmt("runs the init script of %s with \"%s\"", unit, verb), ret_daemon,
                      ret_meaning);
}

static int meaning_pvecm(char *const *argv, char **ret_daemon, char **ret_meaning)
{
        static const VerbMeaning verbs[] = {
                { "add", "joins this node to a cluster (pvecm add %s)" },
                { "addnode", "adds a node to the cluster (pvecm addnode %s)" },
                { "delnode", "removes a node from the cluster (pvecm delnode %s)" },
                { "create", "creates a cluster (pvecm create %s)" },
                { "expected", "sets the expected votes (pvecm expected %s)" },
                { "updatecerts", "updates the cluster certificates" },
                { "status", "queries the cluster (read-only)" },
                { "nodes", "queries the cluster (read-only)" },
                { "qdevice", "changes the cluster's quorum device (pvecm qdevice %s)" },
        };
        const char *verb = argv[1], *arg = argv[1] && argv[2] ? argv[2] : "";

        if (!verb)
                return result("corosync", strdup("queries the cluster (read-only)"), ret_daemon,
                              ret_meaning);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verb, verbs[i].verb))
                        return result("corosync", subst(verbs[i].meaning, arg), ret_daemon,
                                      ret_meaning);
        return result("corosync", fmt("manages the cluster (pvecm %s)", verb), ret_daemon,
                      ret_meaning);
}

static int meaning_corosync_tool(char *const *argv, bool quorum, char **ret_daemon,
                                 char **ret_meaning)
{
        /* the first option decides; the tools take one action each */
        for (size_t i = 1; argv[i]; i++) {
                const char *a = argv[i], *v = argv[i + 1] ? argv[i + 1] : "?";

                if (a[0] != '-' || !a[1])
                        continue;
                if (!quorum) {
                        switch (a[1]) {
                        case 'R':
                                return result("corosync",
                                              strdup("reloads corosync's configuration on every "
                                                     "node"),
                                              ret_daemon, ret_meaning);
                        case 'H':
                                return result("corosync", strdup("shuts corosync down"), ret_daemon,
                                              ret_meaning);
                        case 'k':
                                return result("corosync",
                                              fmt("kills cluster node %s", a[2] ? a + 2 : v),
                                              ret_daemon, ret_meaning);
                        case 'r':
                                return result("corosync", strdup("resets corosync's link state"),
                                              ret_daemon, ret_meaning);
                        case 'm':
                        case 'b':
                                return result("corosync", strdup("changes corosync's settings"),
                                              ret_daemon, ret_meaning);
                        default:
                                break;
                        }
                } else {
                        switch (a[1]) {
                        case 'e':
                                return result(
                                        "corosync",
                                        fmt("sets the expected votes to %s", a[2] ? a + 2 : v),
                                        ret_daemon, ret_meaning);
                        case 'v':
                                return result("corosync",
                                              fmt("sets a node's votes to %s", a[2] ? a + 2 : v),
                                              ret_daemon, ret_meaning);
                        case 'm':
                        case 'f':
                                return result("corosync", strdup("changes quorum tracking"),
                                              ret_daemon, ret_meaning);
                        default:
                                break;
                        }
                }
        }
        return result("corosync", strdup("queries corosync (read-only)"), ret_daemon, ret_meaning);
}

static int meaning_pve_guest(char *const *argv, bool ct, char **ret_daemon, char **ret_meaning)
{
        static const VerbMeaning verbs[] = {
                { "start", "starts %s" },
                { "stop", "stops %s" },
                { "shutdown", "shuts %s down" },
                { "reboot", "reboots %s" },
                { "destroy", "destroys %s" },
                { "set", "changes the configuration of %s" },
                { "create", "creates %s" },
                { "migrate", "migrates %s" },
                { "suspend", "suspends %s" },
                { "resume", "resumes %s" },
                { "snapshot", "snapshots %s" },
                { "rollback", "rolls %s back to a snapshot" },
                { "restore", "restores %s" },
                { "clone", "clones %s" },
                { "enter", "enters %s" },
                { "exec", "runs a command in %s" },
                { "unlock", "unlocks %s" },
                { "resize", "resizes a disk of %s" },
                { "status", "queries %s (read-only)" },
                { "config", "queries %s (read-only)" },
        };
        const char *verb = argv[1], *id = argv[1] ? argv[2] : NULL;
        _cleanup_free_ char *what = NULL, *daemon = NULL;

        if (!verb)
                return 0;
        if (!id || id[0] == '-') {
                if (streq(verb, "list"))
                        return result(ct ? "pve-container" : "qemu-server",
                                      strdup("queries the guests (read-only)"), ret_daemon,
                                      ret_meaning);
                return result(ct ? "pve-container" : "qemu-server",
                              fmt("%s %s", ct ? "pct" : "qm", verb), ret_daemon, ret_meaning);
        }
        what = fmt("%s %s", ct ? "container" : "VM", id);
        daemon = fmt("%s/%s", ct ? "pve-container" : "qemu-server", id);
        if (!what || !daemon)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verb, verbs[i].verb))
                        return result(daemon, subst(verbs[i].meaning, what), ret_daemon,
                                      ret_meaning);
        return result(daemon, fmt("%s (%s %s)", what, ct ? "pct" : "qm", verb), ret_daemon,
                      ret_meaning);
}

static int meaning_docker(char *const *argv, char **ret_daemon, char **ret_meaning)
{
        static const VerbMeaning verbs[] = {
                { "run", "runs a container from %s" },
                { "start", "starts container %s" },
                { "stop", "stops container %s" },
                { "restart", "restarts container %s" },
                { "kill", "kills container %s" },
                { "rm", "removes container %s" },
                { "rmi", "removes image %s" },
                { "exec", "runs a command in container %s" },
                { "pull", "pulls image %s" },
                { "push", "pushes image %s" },
                { "build", "builds an image from %s" },
                { "ps", "queries containers (read-only)" },
                { "images", "queries images (read-only)" },
                { "inspect", "queries %s (read-only)" },
                { "logs", "reads the logs of container %s" },
        };
        const char *verb = NULL, *arg = NULL;

        /* skip global options: docker [-H host] [--context c] VERB [opts] ARG */
        for (size_t i = 1; argv[i]; i++) {
                const char *a = argv[i];

                if (a[0] == '-') {
                        if (!verb && !strchr(a, '=') &&
                            (streq(a, "-H") || streq(a, "--host") || streq(a, "-c") ||
                             streq(a, "--context") || streq(a, "--config") || streq(a, "-l") ||
                             streq(a, "--log-level")) &&
                            argv[i + 1])
                                i++;
                        continue;
                }
                if (!verb)
                        verb = a;
                else if (!arg) {
                        arg = a;
                        break;
                }
        }
        if (!verb)
                return result("docker", strdup("talks to docker"), ret_daemon, ret_meaning);
        if (streq(verb, "container") || streq(verb, "image") || streq(verb, "compose"))
                return result("docker", fmt("docker %s %s", verb, arg ? arg : ""), ret_daemon,
                              ret_meaning);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verb, verbs[i].verb))
                        return result("docker", subst(verbs[i].meaning, arg ? arg : "?"),
                                      ret_daemon, ret_meaning);
        return result("docker", fmt("talks to docker (docker %s)", verb), ret_daemon, ret_meaning);
}

int plan_meaning_exec_nth(char *const *argv, size_t nth, char **ret_daemon, char **ret_meaning)
{
        const char *name;

        if (!argv || !argv[0])
                return 0;
        name = base_name(argv[0]);

        if (streq(name, "systemctl"))
                return meaning_systemctl(argv, nth, ret_daemon, ret_meaning);
        if (nth > 0)
                return 0;
        if (streq(name, "service"))
                return argv[1] ? meaning_sysv(argv[1], argv[2], ret_daemon, ret_meaning) : 0;
        if (streq(name, "invoke-rc.d")) {
                size_t i = 1;

                while (argv[i] && argv[i][0] == '-')
                        i++;
                return argv[i] ? meaning_sysv(argv[i], argv[i + 1], ret_daemon, ret_meaning) : 0;
        }
        if (strncmp(argv[0], "/etc/init.d/", 12) == 0)
                return meaning_sysv(name, argv[1], ret_daemon, ret_meaning);
        if (streq(name, "pvecm"))
                return meaning_pvecm(argv, ret_daemon, ret_meaning);
        if (streq(name, "corosync-cfgtool"))
                return meaning_corosync_tool(argv, false, ret_daemon, ret_meaning);
        if (streq(name, "corosync-quorumtool"))
                return meaning_corosync_tool(argv, true, ret_daemon, ret_meaning);
        if (streq(name, "corosync-cmapctl"))
                return result("corosync",
                              strdup(strv_contains(argv, "-s") || strv_contains(argv, "-d") ||
                                                     strv_contains(argv, "-p")
                                             ? "changes corosync's runtime configuration (cmap)"
                                             : "queries corosync's configuration (read-only)"),
                              ret_daemon, ret_meaning);
        if (streq(name, "pct"))
                return meaning_pve_guest(argv, true, ret_daemon, ret_meaning);
        if (streq(name, "qm"))
                return meaning_pve_guest(argv, false, ret_daemon, ret_meaning);
        if (streq(name, "docker"))
                return meaning_docker(argv, ret_daemon, ret_meaning);
        return 0;
}

int plan_meaning_exec(char *const *argv, char **ret_daemon, char **ret_meaning)
{
        return plan_meaning_exec_nth(argv, 0, ret_daemon, ret_meaning);
}

typedef struct {
        const char *glob; /* policy_glob_match(), pathname mode */
        const char *daemon;
} SocketMeaning;

/*
 * Unix socket names. Abstract names start with '@'. libqb (corosync's IPC)
 * listens on abstract sockets named after the service: on Debian 12,
 * `ss -xlp` in a lab node shows corosync on "@cmap", "@cfg", "@cpg",
 * "@quorum" and "@votequorum" (the name NUL-padded to the whole sun_path;
 * the supervisor strips the padding), and corosync-quorumtool connects to
 * them; the data then flows through /dev/shm/qb-* files. pmxcfs's service
 * is "pve2".
 */
static const SocketMeaning sockets[] = {
        { "/run/systemd/private", "systemd" },
        { "/run/systemd/notify", "systemd" },
        { "/run/systemd/io.system.ManagedOOM", "systemd" },
        { "/run/systemd/userdb/*", "systemd-userdb" },
        { "/run/systemd/journal/*", "journald" },
        { "/dev/log", "journald" },
        { "/run/dbus/system_bus_socket", "dbus" },
        { "/run/user/*/bus", "dbus" },
        { "/run/docker.sock", "docker" },
        { "/run/containerd/containerd.sock*", "containerd" },
        { "/run/libvirt/*", "libvirt" },
        { "/run/airlock/*", "airlock" },
        { "/run/ssh-agent*", "ssh-agent" },
        { "/tmp/ssh-*/agent.*", "ssh-agent" },
        { "/run/user/*/gnupg/S.gpg-agent*", "gpg-agent" },
        { "/run/user/*/openssh_agent", "ssh-agent" },
        { "/run/user/*/keyring/ssh", "ssh-agent" },
        { "/run/corosync*", "corosync" },
        { "/run/pve-cluster/*", "pve-cluster" },
        { "/run/pveproxy/*", "pveproxy" },
        { "/run/pvedaemon/*", "pvedaemon" },
        { "/run/qemu-server/*", "qemu-server" },
        { "/run/lxc/*", "lxc" },
        { "/run/lxd/*", "lxd" },
        { "/run/podman/podman.sock", "podman" },
        { "/run/snapd.socket", "snapd" },
        { "/run/udev/control", "udev" },
        { "/run/nscd/socket", "nscd" },
        { "/run/postgresql/.s.PGSQL.*", "postgresql" },
        { "/run/mysqld/mysqld.sock", "mysql" },
};

static const struct {
        const char *service;
        const char *daemon;
} qb_services[] = {
        { "cmap", "corosync" },   { "cfg", "corosync" },        { "cpg", "corosync" },
        { "quorum", "corosync" }, { "votequorum", "corosync" }, { "pve2", "pve-cluster" },
};

static const char *qb_daemon(const char *name)
{
        /* name is "SERVICE" or "qb-...": the service is one of the '-'-separated words */
        _cleanup_free_ char *copy = strdup(name);
        char *save = NULL;

        if (!copy)
                return "corosync"; /* fail towards naming a daemon, not towards none */
        for (char *w = strtok_r(copy, "-_", &save); w; w = strtok_r(NULL, "-_", &save))
                for (size_t i = 0; i < ELEMENTSOF(qb_services); i++)
                        if (streq(w, qb_services[i].service))
                                return qb_services[i].daemon;
        return "libqb";
}

const char *plan_meaning_socket(const char *path)
{
        char norm[4096];

        if (!path || !path[0])
                return NULL;
        /* /var/run is /run on every system airlock supports */
        if (strncmp(path, "/var/run/", 9) == 0) {
                if (snprintf(norm, sizeof(norm), "/run/%s", path + 9) >= (int)sizeof(norm))
                        return NULL;
                path = norm;
        }
        if (path[0] == '@') {
                const char *d;

                if (strncmp(path, "@qb-", 4) == 0)
                        return qb_daemon(path + 1);
                d = qb_daemon(path + 1);
                if (!streq(d, "libqb") && !strchr(path + 1, '/'))
                        return d;
                if (strncmp(path, "@/org/freedesktop/systemd1", 26) == 0)
                        return "systemd";
                if (strncmp(path, "@/tmp/dbus-", 11) == 0)
                        return "dbus";
                return NULL;
        }
        if (strncmp(path, "/dev/shm/qb-", 12) == 0)
                return qb_daemon(path + 9);
        for (size_t i = 0; i < ELEMENTSOF(sockets); i++)
                if (policy_glob_match(sockets[i].glob, path, true))
                        return sockets[i].daemon;
        return NULL;
}
