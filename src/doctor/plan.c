/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The repair plan: the incident report's recovery checklist, derived from
 * findings. The doctor never runs these; each step becomes a request that a
 * human approves through the broker. Commands are argv (no shell) and use
 * the host's own init system as its facts report it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "doctor/doctor.h"

static const char *jstr(json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : "";
}

static json_t *host_facts(json_t *reports, const char *host)
{
        json_t *r = json_object_get(reports, host);
        return json_is_true(json_object_get(r, "ok")) ? json_object_get(r, "facts") : NULL;
}

static bool host_is_systemd(json_t *reports, const char *host)
{
        return streq(jstr(host_facts(reports, host), "init"), "systemd");
}

static int add_step(json_t *plan, const char *host, const char *kind, json_t *argv, const char *fmt,
                    ...) _printf_(5, 6);
static int add_step(json_t *plan, const char *host, const char *kind, json_t *argv, const char *fmt,
                    ...)
{
        char why[512];
        va_list ap;
        json_t *s = json_object();

        if (!s || !argv) {
                json_decref(s);
                json_decref(argv);
                return -ENOMEM;
        }
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        json_object_set_new(s, "step", json_integer((json_int_t)json_array_size(plan) + 1));
        json_object_set_new(s, "host", json_string(host));
        json_object_set_new(s, "kind", json_string(kind));
        json_object_set_new(s, "argv", argv);
        json_object_set_new(s, "why", json_string(why));
        return json_array_append_new(plan, s) < 0 ? -ENOMEM : 0;
}

static json_t *service_argv(json_t *reports, const char *host, const char *action)
{
        if (host_is_systemd(reports, host) || streq(action, "disable"))
                /* systemctl enable/disable edit links offline too, on both unit and rc.d sides. */
                return json_pack("[sss]", "systemctl", action, "corosync");
        return json_pack("[sss]", "service", "corosync", action);
}

static bool plan_has(json_t *plan, const char *host, const char *argv1)
{
        size_t i;
        json_t *s;

        json_array_foreach(plan, i, s)
        {
                json_t *a = json_object_get(s, "argv");
                if (streq(jstr(s, "host"), host) && json_array_size(a) > 1 &&
                    (streq(json_string_value(json_array_get(a, 1)), argv1) ||
                     streq(json_string_value(json_array_get(a, 2)) ?: "", argv1)))
                        return true;
        }
        return false;
}

/* Stop, remove the copied keys, disable: the intruder's part of the checklist. */
static int intruder_steps(json_t *plan, json_t *reports, json_t *f)
{
        const char *host = jstr(f, "host"), *cluster = jstr(f, "cluster");
        json_t *facts = host_facts(reports, host), *c = json_object_get(facts, "corosync"), *k, *rm;
        size_t i;
        int r;

        if (json_is_true(json_object_get(c, "running")) && !plan_has(plan, host, "stop")) {
                r = add_step(plan, host, "change", service_argv(reports, host, "stop"),
                             "stop the corosync that %s runs outside cluster %s", host, cluster);
                if (r < 0)
                        return r;
        }
        if (streq(jstr(f, "kind"), "cluster-key-outside-cluster")) {
                rm = json_pack("[sss]", "rm", "-f", "--");
                json_array_foreach(json_object_get(c, "keys"), i, k)
                {
                        if (json_is_string(json_object_get(k, "fingerprint")))
                                json_array_append_new(rm, json_string(jstr(k, "path")));
                }
                if (json_array_size(rm) > 3) {
                        r = add_step(plan, host, "change", rm,
                                     "remove the copies of cluster %s's key from %s", cluster,
                                     host);
                        if (r < 0)
                                return r;
                } else
                        json_decref(rm);
        }
        if (json_is_true(json_object_get(c, "enabled")) && !plan_has(plan, host, "disable")) {
                r = add_step(plan, host, "change", service_argv(reports, host, "disable"),
                             "keep corosync from starting again at boot on %s", host);
                if (r < 0)
                        return r;
        }
        return 0;
}

int doctor_fix_plan(const PolicyHost *hosts, size_t n_hosts, json_t *reports, json_t *findings,
                    const char *airlock_command, json_t **ret)
{
        json_t *plan = json_array(), *f, *restart = json_object();
        size_t i;
        int r = 0;

        if (!plan || !restart) {
                json_decref(plan);
                json_decref(restart);
                return -ENOMEM;
        }
        /* 1. The intruders: stop, remove the keys, disable. */
        json_array_foreach(findings, i, f)
        {
                const char *kind = jstr(f, "kind");
                if (streq(kind, "cluster-key-outside-cluster") ||
                    streq(kind, "corosync-outside-cluster")) {
                        r = intruder_steps(plan, reports, f);
                        if (r < 0)
                                goto fail;
                        json_object_set_new(restart, jstr(f, "cluster"), json_true());
                }
                if (streq(kind, "member-down") || streq(kind, "member-not-quorate"))
                        json_object_set_new(restart, jstr(f, "cluster"), json_true());
        }
        /* 2. The members, one at a time: restart, then wait until quorate again. */
        for (size_t h = 0; h < n_hosts; h++) {
                const char *name = hosts[h].name;
                json_t *c = json_object_get(host_facts(reports, name), "corosync");

                if (!hosts[h].cluster || !json_object_get(restart, hosts[h].cluster))
                        continue;
                r = add_step(plan, name, "change",
                             service_argv(reports, name,
                                          json_is_true(json_object_get(c, "running")) ? "restart"
                                                                                      : "start"),
                             "restart corosync on %s, member of cluster %s, to clear state left by "
                             "the intruder",
                             name, hosts[h].cluster);
                if (r < 0)
                        goto fail;
                r = add_step(plan, name, "verify",
                             json_pack("[sssss]", airlock_command ? airlock_command : "airlock",
                                       "doctor", "--local", "--wait-quorate", "60"),
                             "wait until %s is quorate with every node of its nodelist before "
                             "touching the next member",
                             name);
                if (r < 0)
                        goto fail;
        }
        json_decref(restart);
        *ret = plan;
        return 0;
fail:
        json_decref(plan);
        json_decref(restart);
        return r;
}
