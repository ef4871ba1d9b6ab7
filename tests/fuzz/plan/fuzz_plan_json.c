/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fuzzes plan_result_from_json(): plans come back from the broker's
 * database and, as file effects, from the snapshot's builder over a pipe.
 * Any input must be refused cleanly or read into a plan that writes back
 * to the same JSON (a second round trip changes nothing), prints, and
 * gives a policy view without crashing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "plan/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        PlanResult *r = NULL, *again = NULL;
        PlanPolicyEffects pe = { 0 };
        json_t *in, *out, *out2;
        FILE *devnull;

        in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!in)
                return 0;
        if (plan_result_from_json(in, &r) < 0) {
                json_decref(in);
                return 0;
        }
        json_decref(in);
        out = plan_result_to_json(r);
        if (!out)
                abort();
        if (plan_result_from_json(out, &again) < 0)
                abort(); /* what we wrote must read back */
        out2 = plan_result_to_json(again);
        if (!out2 || !json_equal(out, out2))
                abort();
        devnull = fopen("/dev/null", "w");
        if (devnull) {
                plan_result_print(devnull, r);
                fclose(devnull);
        }
        if (plan_policy_effects(r, &pe) == 0)
                plan_policy_effects_done(&pe);
        json_decref(out);
        json_decref(out2);
        plan_result_free(again);
        plan_result_free(r);
        return 0;
}
