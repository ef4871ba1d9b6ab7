"""The audit log end to end, written by the real broker: a request that
needs approval, one allowed at once and one denied; then `airlock log`
tells what happened, `airlock log verify --key` proves the log intact
after the broker stopped, and an edit of who approved is caught."""
import json
import os
import time

import pytest

from audit_helpers import setup_keys, verify
from broker_helpers import APPROVERS, BASE_RULES, EX_DENIED, EX_TIMEOUT, Broker, ensure_users, policy_text
from conftest import run_airlock

ALICE = APPROVERS[0]


@pytest.fixture
def broker(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the broker runs as root and the test switches users (run as root)")
    ensure_users()
    b = Broker(tmp_path, policy_text(BASE_RULES))
    b.vkey = setup_keys(b.state)  # before the broker's first start, as an admin would
    b.start()
    yield b
    b.stop()


def test_broker_story_is_told_and_sealed(broker, tmp_path):
    target = tmp_path / "made-by-broker"
    r = broker.airlock("exec", "--wait", "0", "--why", "needs the file", "--", "touch", target)
    assert r.returncode == EX_TIMEOUT, r.stderr
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    assert broker.airlock("approve", "--why", "looks right", rid, user=ALICE).returncode == 0
    broker.wait_state(str(rid), ("succeeded",))
    assert broker.airlock("exec", "--", "echo", "hello").returncode == 0
    assert broker.airlock("exec", "--", "rm", "-rf", "/nothing").returncode == EX_DENIED
    broker._stop()  # a clean stop closes and seals the log

    state = broker.state
    timeline = run_airlock("log", "--state-dir", state)
    assert timeline.returncode == 0, timeline.stderr
    mine = [l for l in timeline.stdout.splitlines() if f" {rid} " in l or l.endswith(f" {rid}")]
    events = [l.split()[3] for l in mine]
    assert events[:3] == ["request_submitted", "request_planned", "request_decided"], \
        timeline.stdout
    planned = next(l for l in mine if "request_planned" in l)
    assert "complete=true" in planned and "plan_sha256=" in planned, planned
    assert "request_approved" in events and "exec_end" in events
    approved = next(l for l in mine if "request_approved" in l)
    assert f"approver_name={ALICE}" in approved
    assert f"$ touch {target}" in approved
    assert any("request_denied" in l and "rm -rf /nothing" in l for l in timeline.stdout.splitlines())
    assert any("broker_start" in l for l in timeline.stdout.splitlines())

    log = state / "audit.log"
    v = verify(log, "--key", broker.vkey)
    assert v["ok"] and v["closed"] and v["seals"] >= 1, v

    # Rewrite who approved: caught, at that record.
    lines = log.read_bytes().split(b"\n")
    i = next(n for n, l in enumerate(lines) if b'"event":"request_approved"' in l)
    lines[i] = lines[i].replace(ALICE.encode(), b"airlock-t-mallory")
    log.write_bytes(b"\n".join(lines))
    v = verify(log, "--key", broker.vkey)
    assert (v["ok"], v["problem"], v["line"]) == (False, "modified", i + 1), v
