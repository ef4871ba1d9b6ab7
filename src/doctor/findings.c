/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Findings across hosts: pure analysis of the facts each host reported,
 * against the inventory. What the lab showed (corosync 3.1.7 / knet 1.25):
 * with the cluster's own key, a rogue node changes nothing the members
 * report — membership, quorum, links and logs stay the same — so the
 * decisive evidence is the key's fingerprint on a host outside the cluster
 * and corosync's own view on that host. Members' views still matter for the
 * other failure modes (quorum lost, links down, configs diverged).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "doctor/doctor.h"

static const char *fmt_time(json_t *t, char *buf, size_t size)
{
        time_t v;
        struct tm tm;

        if (!json_is_integer(t))
                return "unknown time";
        v = (time_t)json_integer_value(t);
        if (!gmtime_r(&v, &tm))
                return "unknown time";
        strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
        return buf;
}

static const char *jstr(json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : "";
}

static json_t *facts_of(json_t *reports, const char *host)
{
        json_t *r = json_object_get(reports, host);
        return json_is_true(json_object_get(r, "ok")) ? json_object_get(r, "facts") : NULL;
}

static json_t *corosync_of(json_t *facts)
{
        return json_object_get(facts, "corosync");
}

static void add_evidence(json_t *f, const char *fmt, ...) _printf_(2, 3);
static void add_evidence(json_t *f, const char *fmt, ...)
{
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        json_array_append_new(json_object_get(f, "evidence"), json_string(buf));
}

static json_t *new_finding(json_t *all, const char *severity, const char *kind, const char *host,
                           const char *cluster, const char *meaning, const char *title_fmt, ...)
        _printf_(7, 8);
static json_t *new_finding(json_t *all, const char *severity, const char *kind, const char *host,
                           const char *cluster, const char *meaning, const char *title_fmt, ...)
{
        char title[512];
        va_list ap;
        json_t *f = json_object();

        if (!f)
                return NULL;
        va_start(ap, title_fmt);
        vsnprintf(title, sizeof(title), title_fmt, ap);
        va_end(ap);
        json_object_set_new(f, "severity", json_string(severity));
        json_object_set_new(f, "kind", json_string(kind));
        json_object_set_new(f, "host", host ? json_string(host) : json_null());
        json_object_set_new(f, "cluster", cluster ? json_string(cluster) : json_null());
        json_object_set_new(f, "title", json_string(title));
        json_object_set_new(f, "evidence", json_array());
        json_object_set_new(f, "meaning", json_string(meaning));
        if (json_array_append_new(all, f) < 0)
                return NULL;
        return f;
}

/* Describes what corosync on a host is doing, as evidence lines. */
static void corosync_evidence(json_t *f, json_t *c)
{
        json_t *p = json_object_get(c, "process"), *rt = json_object_get(c, "runtime"),
               *cfg = json_object_get(c, "config"), *en = json_object_get(c, "enabled_by"), *v;
        char t[64];
        size_t i;

        if (json_is_true(json_object_get(c, "running"))) {
                json_t *cpu = json_object_get(p, "cpu_percent");
                add_evidence(f, "corosync is running: pid %lld, since %s, %.2f%% CPU on average",
                             (long long)json_integer_value(json_object_get(p, "pid")),
                             fmt_time(json_object_get(p, "started"), t, sizeof(t)),
                             json_is_number(cpu) ? json_number_value(cpu) : 0.0);
        } else
                add_evidence(f, "corosync is not running");
        if (json_array_size(en) > 0) {
                char links[768] = "";
                json_array_foreach(en, i, v)
                {
                        size_t l = strlen(links);
                        snprintf(links + l, sizeof(links) - l, "%s%s", l ? ", " : "",
                                 json_string_value(v));
                }
                add_evidence(f, "corosync is enabled at boot: %s", links);
        }
        if (rt) {
                char nl[768] = "";
                json_t *q = json_object_get(rt, "quorum"), *links = json_object_get(rt, "links");
                unsigned down = 0, total = 0;

                json_array_foreach(json_object_get(rt, "nodelist"), i, v)
                {
                        size_t l = strlen(nl);
                        snprintf(nl + l, sizeof(nl) - l, "%s%s=%s (id %lld)", l ? ", " : "",
                                 jstr(v, "name"), jstr(v, "ring0_addr"),
                                 (long long)json_integer_value(json_object_get(v, "nodeid")));
                }
                add_evidence(f,
                             "its runtime configuration (cmap): cluster '%s', config_version %lld, "
                             "this node id %lld, nodelist: %s",
                             jstr(rt, "cluster_name"),
                             (long long)json_integer_value(json_object_get(rt, "config_version")),
                             (long long)json_integer_value(json_object_get(rt, "node_id")), nl);
                if (q)
                        add_evidence(
                                f,
                                "its quorum view: %s, total votes %lld, expected votes %lld, "
                                "members %zu",
                                json_is_true(json_object_get(q, "quorate")) ? "quorate"
                                                                            : "NOT quorate",
                                (long long)json_integer_value(json_object_get(q, "total_votes")),
                                (long long)json_integer_value(json_object_get(q, "expected_votes")),
                                json_array_size(json_object_get(q, "members")));
                json_array_foreach(links, i, v)
                {
                        json_t *l0 = json_object_get(v, "link0");
                        if (json_is_true(json_object_get(v, "local")))
                                continue;
                        total++;
                        if (!json_is_true(json_object_get(l0, "connected")))
                                down++;
                }
                if (total)
                        add_evidence(f, "its knet links: %u of %u other nodes disconnected", down,
                                     total);
        } else if (json_object_get(c, "runtime_error"))
                add_evidence(f, "its runtime view is unavailable: %s", jstr(c, "runtime_error"));
        if (json_is_true(json_object_get(cfg, "present")))
                add_evidence(f, "%s: cluster '%s', config_version %lld, %zu nodes, sha256 %.16s…",
                             jstr(cfg, "path"), jstr(cfg, "cluster_name"),
                             (long long)json_integer_value(json_object_get(cfg, "config_version")),
                             json_array_size(json_object_get(cfg, "nodes")), jstr(cfg, "sha256"));
}

static bool key_is_main(json_t *k)
{
        return streq(jstr(k, "path"), "/etc/corosync/authkey");
}

/* Does the host's runtime or configured nodelist contain this address? */
static bool nodelist_has_address(json_t *nodelist, const char *addr)
{
        size_t i;
        json_t *n;
        const char *k;
        json_t *v;

        if (!addr)
                return false;
        json_array_foreach(nodelist, i, n)
        {
                json_object_foreach(n, k, v)
                {
                        if (strneq(k, "ring", 4) && json_is_string(v) &&
                            streq(json_string_value(v), addr))
                                return true;
                }
        }
        return false;
}

static int cmp_severity(const void *a, const void *b)
{
        static const char *const order[] = { "critical", "warning", "info" };
        json_t *fa = *(json_t *const *)a, *fb = *(json_t *const *)b;
        int ra = 3, rb = 3;

        for (int i = 0; i < 3; i++) {
                if (streq(jstr(fa, "severity"), order[i]))
                        ra = i;
                if (streq(jstr(fb, "severity"), order[i]))
                        rb = i;
        }
        return ra - rb;
}

size_t doctor_findings_count_problems(json_t *findings)
{
        size_t i, n = 0;
        json_t *f;

        json_array_foreach(findings, i, f)
        {
                const char *s = jstr(f, "severity");
                if (streq(s, "critical") || streq(s, "warning"))
                        n++;
        }
        return n;
}

static void cluster_findings(const PolicyHost *hosts, size_t n_hosts, json_t *reports,
                             const char *cluster, json_t *all)
{
        json_t *fprs = json_object();    /* fingerprint -> member name */
        json_t *digests = json_object(); /* sha256 -> [member, ...] */
        json_t *nodelist = NULL;
        size_t i;

        if (!fprs || !digests)
                goto out;

        /* The members' view: their keys, configs, quorum and links. */
        for (size_t h = 0; h < n_hosts; h++) {
                json_t *facts, *c, *rt, *q, *k, *cfg;
                const char *name = hosts[h].name;

                if (!hosts[h].cluster || !streq(hosts[h].cluster, cluster))
                        continue;
                facts = facts_of(reports, name);
                if (!facts) {
                        json_t *f =
                                new_finding(all, "warning", "member-unreachable", name, cluster,
                                            "The doctor could not ask this member; its state is "
                                            "unknown, so nothing "
                                            "about it can be called healthy.",
                                            "cannot reach %s, member of cluster %s", name, cluster);
                        if (f)
                                add_evidence(f, "%s",
                                             jstr(json_object_get(reports, name), "error"));
                        continue;
                }
                c = corosync_of(facts);
                json_array_foreach(json_object_get(c, "keys"), i, k)
                {
                        if (key_is_main(k) && json_is_string(json_object_get(k, "fingerprint"))) {
                                /* fingerprint -> "pve1, pve2, ...": who legitimately holds it */
                                const char *fp = jstr(k, "fingerprint"), *prev = jstr(fprs, fp);
                                char who[512];
                                snprintf(who, sizeof(who), "%s%s%s", prev, *prev ? ", " : "", name);
                                json_object_set_new(fprs, fp, json_string(who));
                        }
                }
                cfg = json_object_get(c, "config");
                if (json_is_string(json_object_get(cfg, "sha256"))) {
                        json_t *l = json_object_get(digests, jstr(cfg, "sha256"));
                        if (!l) {
                                l = json_array();
                                json_object_set_new(digests, jstr(cfg, "sha256"), l);
                        }
                        json_array_append_new(l, json_string(name));
                }
                if (!json_is_true(json_object_get(c, "running"))) {
                        json_t *f =
                                new_finding(all, "critical", "member-down", name, cluster,
                                            "A member without corosync is missing from the "
                                            "cluster: it has no quorum "
                                            "and the others lose its vote.",
                                            "corosync is not running on %s, member of cluster %s",
                                            name, cluster);
                        if (f)
                                corosync_evidence(f, c);
                        continue;
                }
                rt = json_object_get(c, "runtime");
                if (!rt) {
                        json_t *f =
                                new_finding(all, "warning", "member-unresponsive", name, cluster,
                                            "corosync runs but does not answer its own client "
                                            "libraries: it may be "
                                            "hung or overloaded.",
                                            "corosync on %s does not answer", name);
                        if (f)
                                corosync_evidence(f, c);
                        continue;
                }
                if (!nodelist)
                        nodelist = json_object_get(rt, "nodelist");
                q = json_object_get(rt, "quorum");
                if (!json_is_true(json_object_get(q, "quorate"))) {
                        json_t *f =
                                new_finding(all, "critical", "member-not-quorate", name, cluster,
                                            "Without quorum this member refuses cluster writes (on "
                                            "Proxmox /etc/pve "
                                            "turns read-only and the web UI hangs).",
                                            "%s is not quorate in cluster %s", name, cluster);
                        if (f)
                                corosync_evidence(f, c);
                } else {
                        /* Every node of the nodelist should be a member. */
                        json_t *n, *members = json_object_get(q, "members");
                        json_array_foreach(json_object_get(rt, "nodelist"), i, n)
                        {
                                json_int_t id = json_integer_value(json_object_get(n, "nodeid"));
                                bool in = false;
                                size_t j;
                                json_t *m;

                                json_array_foreach(members, j, m) if (json_integer_value(m) == id)
                                        in = true;
                                if (!in && members) {
                                        json_t *f = new_finding(
                                                all, "warning", "member-missing", name, cluster,
                                                "A node of the nodelist is not in the membership: "
                                                "it is "
                                                "down, cut off, or refused.",
                                                "%s sees node %s (id %lld) missing from cluster %s",
                                                name, jstr(n, "name"), (long long)id, cluster);
                                        if (f)
                                                corosync_evidence(f, c);
                                }
                        }
                }
                /* Who sends corosync traffic to this member from outside its nodelist. */
                {
                        json_t *cap = json_object_get(facts, "capture"), *cnt;
                        const char *src;

                        json_object_foreach(json_object_get(cap, "sources"), src, cnt)
                        {
                                const char *who = "a host not in the inventory";
                                json_t *f;

                                if (nodelist_has_address(json_object_get(rt, "nodelist"), src))
                                        continue;
                                for (size_t o = 0; o < n_hosts; o++)
                                        if (hosts[o].address && streq(hosts[o].address, src))
                                                who = hosts[o].name;
                                f = new_finding(all, "warning", "foreign-corosync-traffic", name,
                                                cluster,
                                                "Something outside the nodelist sends corosync "
                                                "(knet) packets to this "
                                                "member: a corosync configured with this cluster's "
                                                "nodes. With the "
                                                "cluster's key it is the incident; with another "
                                                "key the member spends "
                                                "CPU rejecting it.",
                                                "%s receives corosync traffic from %s (%s), "
                                                "outside the nodelist of %s",
                                                name, src, who, cluster);
                                if (f)
                                        add_evidence(f,
                                                     "%lld packets to UDP 5405 from %s in %lld s "
                                                     "(libpcap on %s)",
                                                     (long long)json_integer_value(cnt), src,
                                                     (long long)json_integer_value(
                                                             json_object_get(cap, "seconds")),
                                                     name);
                        }
                }
                json_array_foreach(json_object_get(rt, "links"), i, k)
                {
                        json_t *l0 = json_object_get(k, "link0");
                        if (json_is_true(json_object_get(k, "local")) || !l0 ||
                            json_is_true(json_object_get(l0, "connected")))
                                continue;
                        json_t *f = new_finding(
                                all, "warning", "link-down", name, cluster,
                                "A knet link between members is down: the cluster runs with less "
                                "redundancy or loses that node.",
                                "%s: knet link 0 to node %lld is down", name,
                                (long long)json_integer_value(json_object_get(k, "nodeid")));
                        if (f)
                                add_evidence(f, "link 0 to %s: connected=false", jstr(l0, "dst"));
                }
        }

        if (json_object_size(digests) > 1) {
                const char *d;
                json_t *l, *f = new_finding(all, "warning", "config-diverged", NULL, cluster,
                                            "Members run from different corosync.conf files: the "
                                            "next restart may "
                                            "split the cluster or drop a node.",
                                            "members of cluster %s disagree on corosync.conf",
                                            cluster);
                json_object_foreach(digests, d, l)
                {
                        char who[512] = "";
                        json_t *m;
                        json_array_foreach(l, i, m)
                        {
                                size_t len = strlen(who);
                                snprintf(who + len, sizeof(who) - len, "%s%s", len ? ", " : "",
                                         json_string_value(m));
                        }
                        if (f)
                                add_evidence(f, "sha256 %s on %s", d, who);
                }
        }
        if (json_object_size(fprs) > 1) {
                json_t *f = new_finding(
                        all, "warning", "keys-diverged", NULL, cluster,
                        "Members hold different cluster keys: they cannot talk to each other.",
                        "members of cluster %s hold different keys in /etc/corosync/authkey",
                        cluster);
                const char *fp;
                json_t *m;
                json_object_foreach(fprs, fp, m) if (f)
                        add_evidence(f, "%s on %s", fp, json_string_value(m));
        }

        /* Everyone else: the cluster's key, or corosync talking about this cluster. */
        for (size_t h = 0; h < n_hosts; h++) {
                const char *name = hosts[h].name;
                json_t *facts, *c, *k, *rt, *cfg, *f = NULL;
                bool in_nodelist;

                if (hosts[h].cluster && streq(hosts[h].cluster, cluster))
                        continue;
                facts = facts_of(reports, name);
                if (!facts)
                        continue;
                c = corosync_of(facts);
                in_nodelist = nodelist_has_address(nodelist, hosts[h].address);
                json_array_foreach(json_object_get(c, "keys"), i, k)
                {
                        json_t *owner = json_object_get(fprs, jstr(k, "fingerprint"));
                        char t1[64], t2[64];

                        if (!owner)
                                continue;
                        if (!f) {
                                f = new_finding(all, "critical", "cluster-key-outside-cluster",
                                                name, cluster,
                                                "A host outside the cluster holds the cluster's "
                                                "secret key. With it, "
                                                "that host can join or disturb the cluster, and "
                                                "the key must be treated "
                                                "as leaked: stop corosync there, remove the "
                                                "copies, and restart the "
                                                "members (and consider rotating the key).",
                                                "%s, outside cluster %s, holds %s's cluster key",
                                                name, cluster, cluster);
                                if (!f)
                                        break;
                        }
                        add_evidence(f,
                                     "%s on %s has fingerprint %s, the same as "
                                     "/etc/corosync/authkey on %s "
                                     "(mode %s, modified %s, changed %s)",
                                     jstr(k, "path"), name, jstr(k, "fingerprint"),
                                     json_string_value(owner), jstr(k, "mode"),
                                     fmt_time(json_object_get(k, "mtime"), t1, sizeof(t1)),
                                     fmt_time(json_object_get(k, "ctime"), t2, sizeof(t2)));
                }
                if (f) {
                        json_t *own = json_object_get(json_object_get(c, "config"), "sha256");
                        json_t *same = json_is_string(own)
                                               ? json_object_get(digests, json_string_value(own))
                                               : NULL;
                        if (same)
                                add_evidence(f,
                                             "%s's corosync.conf is byte-for-byte the members' "
                                             "(sha256 %.16s…): "
                                             "its nodelist does not list %s, so corosync there "
                                             "exits at start "
                                             "(\"No valid name found for local host\")",
                                             name, json_string_value(own), name);
                        if (in_nodelist)
                                add_evidence(f, "%s's address %s is in the members' nodelist", name,
                                             hosts[h].address);
                        corosync_evidence(f, c);
                        continue;
                }
                /* No key of ours: corosync there naming our cluster or our members is still wrong.
                 */
                rt = json_object_get(c, "runtime");
                cfg = json_object_get(c, "config");
                if (json_is_true(json_object_get(c, "running")) ||
                    json_is_true(json_object_get(c, "enabled"))) {
                        const char *rname =
                                rt ? jstr(rt, "cluster_name") : jstr(cfg, "cluster_name");
                        bool names_us = streq(rname, cluster);
                        json_t *nl = rt ? json_object_get(rt, "nodelist")
                                        : json_object_get(cfg, "nodes");
                        bool lists_members = false;

                        for (size_t m = 0; m < n_hosts && !lists_members; m++)
                                if (hosts[m].cluster && streq(hosts[m].cluster, cluster) &&
                                    nodelist_has_address(nl, hosts[m].address))
                                        lists_members = true;
                        if (!names_us && !lists_members)
                                continue;
                        f = new_finding(
                                all, "warning", "corosync-outside-cluster", name, cluster,
                                "corosync runs (or will run at boot) on a host outside the cluster "
                                "with a "
                                "configuration that names the cluster or its members: it sends "
                                "cluster "
                                "traffic to the members (with a different key the members log "
                                "'Unable to decrypt packet'), and one copied key away from the "
                                "incident.",
                                "corosync %s on %s, outside cluster %s, configured for %s",
                                json_is_true(json_object_get(c, "running")) ? "running" : "enabled",
                                name, cluster, names_us ? "that cluster" : "its members");
                        if (f)
                                corosync_evidence(f, c);
                }
        }
out:
        json_decref(fprs);
        json_decref(digests);
}

int doctor_findings(const PolicyHost *hosts, size_t n_hosts, json_t *reports, json_t **ret)
{
        json_t *all = json_array(), *clusters = json_object(), *sorted, *v;
        _cleanup_free_ json_t **arr = NULL;
        const char *cl;
        size_t i, n;

        if (!all || !clusters) {
                json_decref(all);
                json_decref(clusters);
                return -ENOMEM;
        }
        for (size_t h = 0; h < n_hosts; h++)
                if (hosts[h].cluster)
                        json_object_set_new(clusters, hosts[h].cluster, json_true());
        json_object_foreach(clusters, cl, v) cluster_findings(hosts, n_hosts, reports, cl, all);
        json_decref(clusters);

        for (size_t h = 0; h < n_hosts; h++) {
                json_t *facts = facts_of(reports, hosts[h].name), *s;
                char t1[64], t2[64];

                if (!facts) {
                        if (!hosts[h].cluster && json_object_get(reports, hosts[h].name)) {
                                json_t *f = new_finding(
                                        all, "warning", "host-unreachable", hosts[h].name, NULL,
                                        "The doctor could not ask this host: whatever it runs is "
                                        "unknown, so it cannot be called clean.",
                                        "cannot reach %s", hosts[h].name);
                                if (f)
                                        add_evidence(f, "%s",
                                                     jstr(json_object_get(reports, hosts[h].name),
                                                          "error"));
                        }
                        continue;
                }
                json_array_foreach(json_object_get(json_object_get(facts, "secrets"), "changed"), i,
                                   s)
                {
                        json_t *f = new_finding(
                                all, "warning", "secret-changed", hosts[h].name, hosts[h].cluster,
                                "A file the policy lists as secret was written or copied recently. "
                                "If no "
                                "approved request explains it, find out who did it and whether the "
                                "secret has leaked.",
                                "secret %s on %s changed recently", jstr(s, "path"), hosts[h].name);
                        if (f) {
                                json_int_t mt = json_integer_value(json_object_get(s, "mtime")),
                                           ct = json_integer_value(json_object_get(s, "ctime"));
                                json_object_set_new(f, "path", json_string(jstr(s, "path")));
                                json_object_set_new(f, "changed", json_integer(mt > ct ? mt : ct));
                        }
                        if (f)
                                add_evidence(
                                        f,
                                        "%s (matches '%s'): modified %s, inode changed %s, mode %s",
                                        jstr(s, "path"), jstr(s, "pattern"),
                                        fmt_time(json_object_get(s, "mtime"), t1, sizeof(t1)),
                                        fmt_time(json_object_get(s, "ctime"), t2, sizeof(t2)),
                                        jstr(s, "mode"));
                }
        }

        n = json_array_size(all);
        arr = calloc(n ? n : 1, sizeof(json_t *));
        sorted = json_array();
        if (!arr || !sorted) {
                json_decref(all);
                json_decref(sorted);
                return -ENOMEM;
        }
        json_array_foreach(all, i, v) arr[i] = v;
        /* qsort is not stable; a stable insertion sort keeps discovery order within a severity. */
        for (size_t a = 1; a < n; a++)
                for (size_t b = a; b > 0 && cmp_severity(&arr[b - 1], &arr[b]) > 0; b--) {
                        json_t *t = arr[b];
                        arr[b] = arr[b - 1];
                        arr[b - 1] = t;
                }
        for (i = 0; i < n; i++)
                json_array_append(sorted, arr[i]);
        json_decref(all);
        *ret = sorted;
        return 0;
}
