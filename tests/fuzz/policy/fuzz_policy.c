/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes the policy parser: any bytes either load into a policy whose
 * invariants hold, or fail with a positioned error; nothing crashes, leaks
 * or hangs. A loaded policy is also evaluated against a few requests so the
 * matcher sees the fuzzed globs.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>

#include "common/util.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static char *const argvs[][5] = {
                { (char *)"systemctl", (char *)"status", (char *)"corosync", NULL },
                { (char *)"cat", (char *)"/etc/corosync/authkey", NULL },
                { (char *)"rm", (char *)"-rf", (char *)"/", NULL },
        };
        _cleanup_(policy_freep) Policy *p = NULL;
        PolicyError *errs = NULL;
        size_t n = 0;
        int r;

        r = policy_check_string((const char *)data, size, "fuzz", &p, &errs, &n);
        if (r < 0) {
                assert(!p);
                assert(r != -EINVAL || n > 0);
                for (size_t i = 0; i < n; i++) {
                        char buf[1024];

                        assert(errs[i].message[0]);
                        policy_error_format(&errs[i], buf, sizeof(buf));
                }
                free(errs);
                return 0;
        }
        assert(!errs && n == 0);
        assert(p->secrets && p->protect);
        assert(policy_find_profile(p, "default"));
        for (size_t i = 0; i < ELEMENTSOF(argvs); i++) {
                PolicyDecision d;

                for (size_t h = 0; h <= p->n_hosts; h++) {
                        PolicyRequest req = {
                                .argv = argvs[i],
                                .host = h < p->n_hosts ? p->hosts[h].name : NULL,
                                .agent = "claude",
                        };

                        assert(policy_evaluate(p, &req, &d) == 0);
                        assert(d.action != POLICY_APPROVE || d.approvers > 0);
                }
        }
        {
                static char *const paths[] = { (char *)"/etc/corosync/authkey",
                                               (char *)"/etc/pve/priv/x", NULL };
                static char *const units[] = { (char *)"corosync.service", NULL };
                PolicyConnection conns[] = {
                        { .host = p->n_hosts ? p->hosts[0].name : NULL,
                          .address = "a",
                          .port = 22 },
                        { .address = "198.51.100.1", .port = 5405 },
                };
                PolicyEffects e = {
                        .secrets_read = NULL,
                        .secret_content_written = NULL,
                        .writes = paths,
                        .deletes = paths,
                        .connections = conns,
                        .n_connections = ELEMENTSOF(conns),
                        .contacts = units,
                };
                PolicyRequest req = { .argv = argvs[0], .agent = "claude", .effects = &e };
                PolicyDecision d;

                assert(policy_evaluate(p, &req, &d) == 0);
                e.secrets_read = paths;
                e.secret_content_written = paths;
                assert(policy_evaluate(p, &req, &d) == 0);
        }
        (void)policy_path_is_secret(p, "/etc/corosync/authkey");
        (void)policy_path_is_secret(p, "/home/a/.ssh/id_rsa");
        return 0;
}
