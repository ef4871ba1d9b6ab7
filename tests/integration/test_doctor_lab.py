"""airlock doctor on the corosync lab: a healthy cluster gives no findings;
every incident variant gives the critical finding naming xenon and cluster
pve with its evidence; the control (a different key) does not; the key never
appears in anything the doctor prints; --fix --dry-run gives the incident
report's checklist in order.

One lab per module (about 3 s to come up); xenon is reset between variants.
"""
import base64
import json
import time

import pytest

from conftest import AIRLOCK
from doctor_helpers import Lab, MEMBERS, lab_fixture_name, require_lab

OUTPUTS = []  # everything the doctor printed in this module, checked for the key at the end


@pytest.fixture(scope="module")
def lab():
    require_lab()
    lab = Lab(lab_fixture_name("d"))
    lab.down()
    try:
        lab.up()
        lab.baseline = int(time.time()) + 1  # secrets changed after the lab came up
        time.sleep(max(0.0, lab.baseline - time.time()))
        yield lab
    finally:
        lab.down()


@pytest.fixture
def doctor(lab, airlock, tmp_path):
    policy = lab.policy(tmp_path / "policy.yaml")

    def run(*args, variant_since=True):
        extra = ["--since", str(lab.baseline)] if variant_since else []
        # AIRLOCK_POLICY reaches the airlock inside each node too (env and
        # nsenter pass the environment on), so every host watches the same secrets.
        p = airlock("doctor", "--policy", policy, "--remote-airlock", AIRLOCK, *extra, *args, timeout=120,
                    env={"AIRLOCK_POLICY": str(policy)})
        OUTPUTS.append(p.stdout + p.stderr)
        return p
    return run


def findings_of(p):
    return json.loads(p.stdout)["findings"]


def critical_key_finding(findings):
    return [f for f in findings if f["kind"] == "cluster-key-outside-cluster"]


def test_healthy_cluster_no_findings(lab, doctor):
    p = doctor("--json")
    out = json.loads(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert out["findings"] == []
    assert set(out["hosts"]) == {"pve1", "pve2", "pve8", "xenon"}
    for m in MEMBERS:
        rt = out["hosts"][m]["facts"]["corosync"]["runtime"]
        assert rt["cluster_name"] == "pve"
        assert rt["quorum"]["quorate"] is True
        assert sorted(rt["quorum"]["members"]) == [1, 2, 3]
        assert rt["quorum"]["expected_votes"] == 3
    x = out["hosts"]["xenon"]["facts"]["corosync"]
    assert x["running"] is False and x["enabled"] is False and x["keys"] == []
    # Text output says so, too.
    t = doctor()
    assert t.returncode == 0 and "no findings" in t.stdout


def test_secrets_changed_window(lab, doctor):
    """Without a baseline the lab's freshly generated keys are 'changed recently' on every member."""
    p = doctor("--json", "--recent", "3600", variant_since=False)
    assert p.returncode == 1
    changed = {f["host"] for f in findings_of(p) if f["kind"] == "secret-changed"}
    assert changed == set(MEMBERS)


@pytest.mark.parametrize("variant", ["own-config", "same-config", "fourth-node", "reused-nodeid"])
def test_incident_variant_found(lab, doctor, variant):
    lab.incident(variant)
    try:
        t0 = time.monotonic()
        p = doctor("--json")
        elapsed = time.monotonic() - t0
        assert p.returncode == 1, p.stdout + p.stderr
        findings = findings_of(p)
        crit = critical_key_finding(findings)
        assert len(crit) == 1, findings
        f = crit[0]
        assert f["severity"] == "critical" and f["host"] == "xenon" and f["cluster"] == "pve"
        assert findings[0] is not None and findings[0]["severity"] == "critical"
        ev = "\n".join(f["evidence"])
        assert "/etc/corosync/authkey on xenon has fingerprint blake2b-128:" in ev
        assert "/etc/corosync/authkey.backup on xenon" in ev
        assert "pve1, pve2, pve8" in ev
        assert "corosync is enabled at boot" in ev
        if variant == "same-config":
            assert "corosync is not running" in ev
            assert "byte-for-byte the members'" in ev
        else:
            assert "corosync is running" in ev
            assert "its runtime configuration (cmap)" in ev
        if variant == "fourth-node":
            assert "NOT quorate" in ev and "expected votes 4" in ev and "3 of 3 other nodes disconnected" in ev
        if variant == "own-config":
            assert "cluster 'xenon'" in ev
        # No false alarm about the members: with the right key they look healthy.
        assert not [x for x in findings if x["host"] in MEMBERS], findings
        assert elapsed < 120  # generous; the benchmark measures the real time
        text = doctor()
        assert text.returncode == 1
        assert "CRITICAL  xenon, outside cluster pve, holds pve's cluster key" in text.stdout
    finally:
        lab.incident("reset")


def test_wrong_key_control(lab, doctor):
    lab.incident("wrong-key")
    try:
        p = doctor("--json")
        findings = findings_of(p)
        assert critical_key_finding(findings) == []
        w = [f for f in findings if f["kind"] == "corosync-outside-cluster"]
        assert len(w) == 1 and w[0]["host"] == "xenon" and w[0]["severity"] == "warning"
        assert p.returncode == 1
    finally:
        lab.incident("reset")


def test_capture_sees_intruder_traffic(lab, doctor):
    """--capture: members receive UDP 5405 from xenon only while it runs corosync for the cluster."""
    p = doctor("--json", "--capture", "2")
    assert p.returncode == 0, p.stdout
    for m in MEMBERS:
        cap = json.loads(p.stdout)["hosts"][m]["facts"]["capture"]
        assert "error" not in cap and cap["seconds"] == 2
        assert "198.51.100.82" not in cap["sources"]
    lab.incident("fourth-node")
    try:
        p = doctor("--json", "--capture", "3")
        traffic = [f for f in findings_of(p) if f["kind"] == "foreign-corosync-traffic"]
        assert sorted(f["host"] for f in traffic) == sorted(MEMBERS), findings_of(p)
        for f in traffic:
            assert "198.51.100.82 (xenon)" in f["title"] and "packets to UDP 5405" in f["evidence"][0]
    finally:
        lab.incident("reset")


def test_management_endpoint_timed(lab, doctor):
    """Where something answers on 127.0.0.1:8006 (pveproxy on Proxmox), its response time is a fact."""
    pid = lab.enter("xenon", "sh", "-c",
                    "python3 -m http.server 8006 --bind 127.0.0.1 >/dev/null 2>&1 & echo $!").stdout.strip()
    assert pid.isdigit()
    try:
        def answered():
            p = doctor("--json", "--host", "xenon", "--host", "pve1")
            return json.loads(p.stdout)["hosts"]
        from doctor_helpers import wait_for
        assert wait_for(lambda: answered()["xenon"]["facts"]["management"].get("listening") is True, 60)
        hosts = answered()
        m = hosts["xenon"]["facts"]["management"]
        assert m["port"] == 8006 and m["connect_ms"] >= 0 and m["response_ms"] >= m["connect_ms"]
        assert m["status_line"].startswith("HTTP/1.0 200")
        # pve1 has nothing on 8006: that is a fact too, not an error.
        assert hosts["pve1"]["facts"]["management"] == {"port": 8006, "listening": False}
    finally:
        lab.enter("xenon", "kill", pid)


def test_fix_dry_run_plan(lab, doctor):
    lab.incident("fourth-node")
    try:
        p = doctor("--fix", "--dry-run", "--json")
        assert p.returncode == 1, p.stderr
        plan = json.loads(p.stdout)["plan"]
        steps = [(s["host"], s["kind"], s["argv"]) for s in plan]
        assert steps[0] == ("xenon", "change", ["service", "corosync", "stop"])
        assert steps[1] == ("xenon", "change", ["rm", "-f", "--", "/etc/corosync/authkey", "/etc/corosync/authkey.backup"])
        assert steps[2] == ("xenon", "change", ["systemctl", "disable", "corosync"])
        rest = steps[3:]
        assert [h for h, _, _ in rest] == ["pve1", "pve1", "pve2", "pve2", "pve8", "pve8"]
        for i in range(0, 6, 2):
            assert rest[i][2] == ["service", "corosync", "restart"]
            assert rest[i + 1][1] == "verify"
            assert rest[i + 1][2][:4] == [str(AIRLOCK), "doctor", "--local", "--wait-quorate"]
        text = doctor("--fix", "--dry-run")
        assert "Repair plan (9 steps" in text.stdout
        # Without --dry-run and without a broker nothing runs, and it says so (fails closed).
        nodry = doctor("--fix", "--socket", str(lab.dir / "no-broker.sock"))
        assert nodry.returncode == 69 and "no broker at" in nodry.stderr and "nothing was submitted" in nodry.stderr
        # The doctor changed nothing: xenon still has its key and corosync.
        assert (lab.node_root("xenon") / "etc/corosync/authkey").exists()
    finally:
        lab.incident("reset")


def test_plan_steps_repair_the_lab(lab, doctor):
    """Running the plan's steps (as the broker would, through the same transport) heals the lab."""
    lab.incident("fourth-node")
    try:
        plan = json.loads(doctor("--fix", "--dry-run", "--json").stdout)["plan"]
        for s in plan:
            r = lab.enter(s["host"], *s["argv"], timeout=90)
            OUTPUTS.append(r.stdout + r.stderr)
            assert r.returncode == 0, (s, r.stdout, r.stderr)
        p = doctor("--json")
        assert p.returncode == 0, p.stdout
        assert findings_of(p) == []
        x = json.loads(p.stdout)["hosts"]["xenon"]["facts"]["corosync"]
        assert x["running"] is False and x["enabled"] is False and x["keys"] == []
    finally:
        lab.incident("reset")


def test_unreachable_host_is_a_finding(lab, doctor, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  ghost: {address: 198.51.100.99, connect: [/bin/false]}\n")
    p = doctor("--policy", bad, "--json")
    # --policy given twice: the last wins (getopt), so the ghost inventory is used.
    out = json.loads(p.stdout)
    assert p.returncode == 1
    assert out["hosts"]["ghost"]["ok"] is False
    assert [f["kind"] for f in out["findings"]] == ["host-unreachable"]


def test_key_never_in_output(lab):
    """Runs last in this module: everything the doctor printed, and the lab's own
    doctor-side files, hold neither the key's bytes nor its hex or base64."""
    key = lab.key()
    assert len(key) == 256
    needles = [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), base64.b64encode(key[:48]).decode(),
               key[:32].hex()]
    blob = "\n".join(OUTPUTS)
    assert len(OUTPUTS) >= 10
    for n in needles:
        assert n not in blob
    assert key[:32] not in blob.encode("utf-8", "surrogateescape")
