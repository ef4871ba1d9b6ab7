/* SPDX-License-Identifier: GPL-2.0-or-later */
/* `airlock run --explain`: the confinement, in words a sysadmin reads in ten seconds. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>

#include "common/util.h"
#include "config.h"
#include "sandbox/sandbox-internal.h"

static void human_size(uint64_t v, char *buf, size_t size)
{
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        size_t u = 0;

        while (v >= 1024 && v % 1024 == 0 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024;
                u++;
        }
        snprintf(buf, size, "%ju %s", (uintmax_t)v, units[u]);
}

int sbx_explain(const SbxConfig *c, FILE *f, SbxError *err)
{
        SbxPlan p;
        char mem[32];
        int r;

        r = sbx_plan_prepare(&p, c, true, err);
        if (r < 0) {
                sbx_plan_done(&p);
                return r;
        }
        fprintf(f, "airlock run: how '%s' would be confined (agent %s)\n\n", c->argv[0], c->agent);
        if (p.privileged)
                fprintf(f,
                        "identity    runs as system user %s (uid %u), never as root; host uids "
                        "other than its own appear as nobody\n",
                        c->agent_user ? c->agent_user : AIRLOCK_AGENT_USER, (unsigned)p.uid);
        else
                fprintf(f, "identity    keeps your uid %u, in its own user namespace\n",
                        (unsigned)p.uid);
        fprintf(f, "namespaces  user, mount, pid (own /proc), ipc, uts, cgroup, net %s\n",
                c->net == SBX_NET_HOST ? "(host network)" : "(own: loopback only)");
        fprintf(f, "files       the whole host read-only; /tmp /var/tmp /run /dev/shm empty "
                   "and private; minimal /dev (null zero full random urandom tty pts)\n");
        for (size_t i = 0; i < p.n_binds; i++)
                fprintf(f, "            %s %s%s\n", p.binds[i].writable ? "writable " : "read-only",
                        p.binds[i].path,
                        i == 0 ? (p.privileged ? " (workspace; idmapped to the agent when "
                                                 "owned by someone else)"
                                               : " (workspace)")
                               : "");
        fprintf(f, "secrets     %zu path(s) masked (read as empty):", p.n_masks);
        for (size_t i = 0; i < p.n_masks && i < 8; i++)
                fprintf(f, " %s", p.masks[i].path);
        fprintf(f, "%s\n", p.n_masks > 8 ? " ..." : "");
        if (p.guard_regions) {
                fprintf(f, "open guard  a secret appearing during the session is refused at its "
                           "first open (fanotify) under:");
                STRV_FOREACH (g, p.guard_regions)
                        fprintf(f, " %s", *g);
                fprintf(f, "; elsewhere it is masked (or the session ended) as it appears\n");
        }
        fprintf(f,
                "protected   %zu existing workspace file(s) read-only (.git/hooks, shell rc "
                "files, ...); %zu absent protected name(s) get an empty read-only placeholder "
                "for the session\n",
                strv_length(p.protect), strv_length(p.protect_missing));
        if (c->net == SBX_NET_HOST) {
                fprintf(f, "network     host network; TCP connect only to port(s)");
                for (size_t i = 0; i < c->n_ports; i++)
                        fprintf(f, "%s%u", i ? "," : " ", (unsigned)c->ports[i]);
                fprintf(f, " (Landlock); no listening; UDP, raw, packet, SCTP refused (seccomp); "
                           "DNS over TCP\n");
        } else
                fprintf(f, "network     none: own network namespace with loopback only\n");
        if (p.landlock.abi > 0)
                fprintf(f,
                        "landlock    ABI %d: read+execute everywhere, write only the "
                        "workspace, --rw paths and /tmp%s%s\n",
                        p.landlock.abi, p.landlock.net_handled ? "; TCP ports" : "",
                        p.landlock.scoped ? "; no abstract unix sockets or signals outside" : "");
        else
                fprintf(f, "landlock    NOT AVAILABLE on this kernel\n");
        fprintf(f, "seccomp     denied: mount API, new namespaces, ptrace, process_vm_*, bpf, "
                   "keyrings, io_uring, perf, userfaultfd, modules, kexec, reboot, clock, "
                   "open_by_handle_at, syslog, TIOCSTI/TIOCLINUX/TIOCSETD, socket families other "
                   "than unix/inet/inet6/netlink/packet, set-id mode bits; non-native ABIs "
                   "killed\n");
        fprintf(f,
                "sockets     every connect(2) checked by a supervisor the agent cannot reach: unix "
                "sockets only the session socket and the agent's own%s; no datagram unix "
                "sockets%s\n",
                c->net == SBX_NET_HOST ? " (in its /tmp, /run, ...)" : "",
                c->net == SBX_NET_HOST ? "; TCP only to the allowed ports" : "");
        fprintf(f, "privileges  no capabilities (all five sets), securebits locked, "
                   "no_new_privs, core dumps off\n");
        human_size(p.cgroup.memory_max, mem, sizeof mem);
        if (p.cgroup.v1_pids)
                fprintf(f,
                        "limits      cgroup v1 pids.max %ju, memory %s (the v2 tree here has "
                        "no controllers); also RLIMIT_NPROC\n",
                        (uintmax_t)p.cgroup.pids_max, mem);
        else
                fprintf(f,
                        "limits      RLIMIT_NPROC %ju in the user namespace, RLIMIT_AS %s per "
                        "process, each writable tmpfs at most %s (no cgroup)\n",
                        (uintmax_t)p.cgroup.pids_max, mem, mem);
        fprintf(f,
                "terminal    its own pty when you are on a terminal, never yours; fds above 2 "
                "closed; environment reduced to PATH HOME TERM LANG LC_* TZ%s\n",
                c->env_allow && c->env_allow[0] ? " + profile's" : "");
        fprintf(f, "lifetime    everything it starts ends with the session\n");
        STRV_FOREACH (w, p.weaker)
                fprintf(f, "WEAKER      %s\n", *w);
        fprintf(f,
                "not covered reading what is not a listed secret (it is a diagnosis tool); "
                "CPU and disk I/O are not limited; %s\n",
                c->net == SBX_NET_HOST
                        ? "in host mode, TCP services on allowed ports of this host and others "
                          "are reachable"
                        : "nothing leaves the machine over the network");
        sbx_plan_done(&p);
        return 0;
}
