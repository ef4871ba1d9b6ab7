"""Golden decision tests, in the style of sudo's testsudoers.

tests/policy-golden/decisions.table holds one request per line with the
decision and the full reason airlock must give; every line is replayed
through the real binary (`airlock policy explain --json`). Set
AIRLOCK_GOLDEN_UPDATE=1 to rewrite the expectations from the current build,
then review the diff like any other change to the policy engine.
"""
import json
import os
import shlex

import pytest

from conftest import ROOT, run_airlock

GOLDEN = ROOT / "tests" / "policy-golden"
TABLE = GOLDEN / "decisions.table"


def parse_table():
    cases = []
    for lineno, line in enumerate(TABLE.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("|", 4)]
        assert len(fields) == 5, f"{TABLE}:{lineno}: expected 5 fields separated by '|'"
        cases.append((lineno, *fields))
    return cases


def explain(policy, options, command):
    args = ["policy", "explain", "--json"]
    # <default> is the embedded policy, even where /etc/airlock/policy.yaml exists
    args += ["--embedded"] if policy == "<default>" else ["--policy", policy]
    args += shlex.split(options) + ["--"] + shlex.split(command)
    r = run_airlock(*args, cwd=GOLDEN)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


CASES = parse_table()


@pytest.mark.parametrize("lineno,policy,options,command,expect,reason", CASES,
                         ids=[f"line{c[0]}" for c in CASES])
def test_golden(airlock, lineno, policy, options, command, expect, reason):
    d = explain(policy, options, command)
    got = f"{d['action']} {d['approvers']}"
    assert (got, d["reason"]) == (expect, reason), f"{TABLE.name}:{lineno}"


def test_table_is_not_empty():
    assert len(CASES) > 50
    actions = {c[4].split()[0] for c in CASES}
    assert actions == {"allow", "approve", "deny"}


if os.environ.get("AIRLOCK_GOLDEN_UPDATE") == "1":
    def test_update_golden(airlock):
        out = []
        for line in TABLE.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                out.append(line)
                continue
            policy, options, command = [f.strip() for f in line.split("|", 4)][:3]
            d = explain(policy, options, command)
            out.append(f"{policy} | {options} | {command} | {d['action']} {d['approvers']} | "
                       f"{d['reason']}")
        TABLE.write_text("\n".join(out) + "\n")
