"""airlock doctor --fix through a real broker on the corosync lab: with the
incident reproduced, the doctor submits the incident report's checklist one
step at a time as pending requests; a human (a test approver) approves each;
afterwards the doctor looks again and the cluster is healthy: quorate with
three members, xenon holds no key and runs no corosync. Every step is on the
broker's audit log, and the key is in none of the outputs or records.
"""
import base64
import json
import re
import subprocess
import time

import pytest

from broker_helpers import APPROVERS, Broker, ensure_users
from conftest import AIRLOCK
from doctor_helpers import MEMBERS, Lab, lab_fixture_name, require_lab


@pytest.fixture(scope="module")
def lab():
    require_lab()
    lab = Lab(lab_fixture_name("f"))
    lab.down()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def broker_policy(lab, tmp_path):
    inv = lab.policy(tmp_path / "inventory.yaml").read_text()
    return (f"version: 1\napprovers: {{users: [{APPROVERS[0]}]}}\n{inv}"
            "rules:\n  - match: [echo, \"**\"]\n    action: allow\ndefault: approve\n")


def test_fix_through_broker_heals_the_cluster(lab, tmp_path):
    ensure_users()
    lab.incident("fourth-node")
    broker = Broker(tmp_path, broker_policy(lab, tmp_path)).start()
    outputs = []
    try:
        env = broker.env()
        env["AIRLOCK_POLICY"] = str(broker.policy)
        doc = subprocess.Popen([str(AIRLOCK), "doctor", "--policy", str(broker.policy), "--remote-airlock",
                                str(AIRLOCK), "--recent", "0", "--fix", "--wait", "120", "--socket", str(broker.admin)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        approved = []
        deadline = time.monotonic() + 150
        while doc.poll() is None and time.monotonic() < deadline:
            r = broker.airlock("requests", "--json")
            assert r.returncode == 0, r.stderr
            for req in json.loads(r.stdout):
                if req["state"] == "pending" and req["id"] not in approved:
                    # Exactly one step is pending at a time: the plan goes in order.
                    a = broker.airlock("approve", req["id"], "--why", "doctor plan step", user=APPROVERS[0])
                    assert a.returncode == 0, a.stderr
                    approved.append(req["id"])
            time.sleep(0.2)
        out, err = doc.communicate(timeout=30)
        outputs += [out, err]
        assert doc.returncode == 0, out + err
        assert len(approved) == 9, (approved, out, err)
        assert "The cluster is healthy again." in out
        assert "Repair plan (9 steps" in out

        # The requests, in order, with the hosts and commands of the checklist.
        reqs = sorted(json.loads(broker.airlock("requests", "--all", "--json").stdout), key=lambda r: r["id"])
        cmds = [(r["host"], r["argv"][:3]) for r in reqs]
        assert cmds[0] == ("xenon", ["service", "corosync", "stop"])
        assert cmds[1] == ("xenon", ["rm", "-f", "--"])
        assert cmds[2] == ("xenon", ["systemctl", "disable", "corosync"])
        assert [h for h, _ in cmds[3:]] == ["pve1", "pve1", "pve2", "pve2", "pve8", "pve8"]
        assert all(r["state"] == "succeeded" for r in reqs)

        # The lab itself: quorate with three, xenon clean.
        for m in MEMBERS:
            q = lab.enter(m, "corosync-quorumtool", "-s").stdout
            assert re.search(r"^Quorate:\s+Yes", q, re.M) and re.search(r"^Total votes:\s+3$", q, re.M), q
        # No key left (the checklist removes the keys; xenon's corosync.conf is not a secret and stays).
        assert not [f for f in lab.enter("xenon", "ls", "/etc/corosync").stdout.split() if f.startswith("authkey")]
        assert lab.enter("xenon", "sh", "-c", "pidof corosync").returncode != 0

        # Every step is on the audit log: submitted, approved, and its outcome.
        events = broker.audit_events()
        blob = json.dumps(events)
        for r in reqs:
            recs = [e for e in events if str(e.get("request")) == str(r["id"])]
            ev = [e["event"] for e in recs]
            assert ev and ev[0] == "request_submitted" and "request_approved" in ev, (r["id"], ev)
            assert ev[-1] == "exec_end" and recs[-1]["details"]["exit_status"] == 0, (r["id"], recs[-1])
        outputs.append(blob)
        for p in broker.state.rglob("*"):
            if p.is_file():
                outputs.append(p.read_bytes().decode("latin-1"))
    finally:
        broker.stop()
        lab.incident("reset")
    key = lab.key()
    text = "\n".join(outputs)
    for needle in (key.hex(), key.hex().upper(), base64.b64encode(key).decode(), key[:32].hex()):
        assert needle not in text
    assert key[:32].decode("latin-1") not in text


def test_secret_changes_explained_by_the_audit_log(lab, tmp_path):
    """A secret changed through an approved request is accounted for (request, command, approver);
    the same change made behind airlock's back is flagged as not having gone through it."""
    ensure_users()
    broker = Broker(tmp_path, broker_policy(lab, tmp_path)).start()
    try:
        baseline = int(time.time()) + 1
        time.sleep(max(0.0, baseline - time.time()))
        r = broker.airlock("exec", "--host", "pve1", "--why", "refresh the key's times", "--wait", "0", "--",
                           "touch", "/etc/corosync/authkey")
        assert r.returncode == 75, r.stderr
        rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
        assert broker.airlock("approve", rid, "--why", "ok", user=APPROVERS[0]).returncode == 0
        broker.wait_state(rid, ("succeeded",), timeout=30)
        # The same change on pve2, straight through the transport: no request, no approval.
        assert lab.enter("pve2", "touch", "/etc/corosync/authkey").returncode == 0

        env = broker.env()
        env["AIRLOCK_POLICY"] = str(broker.policy)
        p = subprocess.run([str(AIRLOCK), "doctor", "--policy", str(broker.policy), "--remote-airlock", str(AIRLOCK),
                            "--since", str(baseline), "--audit-log", str(broker.state / "audit.log"), "--json"],
                           env=env, capture_output=True, text=True, timeout=120)
        findings = json.loads(p.stdout)["findings"]
        changed = {f["host"]: f for f in findings if f["kind"] == "secret-changed"}
        assert set(changed) == {"pve1", "pve2"}, findings
        ok = changed["pve1"]
        assert ok["severity"] == "info" and str(ok["explained_by"]) == str(rid)
        assert f"explained by airlock request {rid} on pve1 (touch /etc/corosync/authkey), approved by {APPROVERS[0]}" \
            in "\n".join(ok["evidence"])
        bad = changed["pve2"]
        assert bad["severity"] == "warning" and "explained_by" not in bad
        assert "did not go through airlock" in "\n".join(bad["evidence"])
        assert p.returncode == 1
        # Without pve2's change the same run is clean: an explained change is not a problem.
        def doctor_pve1():
            return subprocess.run([str(AIRLOCK), "doctor", "--policy", str(broker.policy), "--remote-airlock",
                                   str(AIRLOCK), "--host", "pve1", "--host", "pve8", "--since", str(baseline),
                                   "--audit-log", str(broker.state / "audit.log")],
                                  env=env, capture_output=True, text=True, timeout=120)
        p2 = doctor_pve1()
        # The cluster may still be re-forming after the previous test's fix: a knet link comes
        # back within seconds (seen down once under the sanitizer build). Only that is waited
        # out; a finding about the secret fails at once.
        deadline = time.monotonic() + 60
        while (p2.returncode != 0 and "knet link" in p2.stdout and "did not go through airlock" not in p2.stdout
               and time.monotonic() < deadline):
            time.sleep(1)
            p2 = doctor_pve1()
        assert p2.returncode == 0, p2.stdout + p2.stderr
        assert "explained by airlock request" in p2.stdout
    finally:
        broker.stop()
