"""The broker plans what the policy neither allows nor denies outright: a dry
run in a copy-on-write snapshot (src/plan), whose effects the policy judges
again (effect rules), whose digest the approval binds to, which the approver
sees in `airlock show` and `airlock approve`, and which the audit log records
as request_planned. The host does not change until the approved command
runs."""
import json
import os
import shutil
import subprocess
import time

import pytest

from broker_helpers import (APPROVERS, BASE_RULES, EX_DENIED, EX_TIMEOUT, Broker, Raw,
                            ensure_users, exec_raw, policy_text)

ALICE, BOB = APPROVERS

EFFECT_RULES = """\
  - effect: {writes: "/etc/airlock-plan-test/**"}
    action: deny
    reason: nothing writes under /etc/airlock-plan-test
  - effect: {writes: "/tmp/airlock-plan-allow/**"}
    action: allow
    reason: the scratch directory is free for all
"""


@pytest.fixture
def broker(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    for d in ("/etc/airlock-plan-test", "/tmp/airlock-plan-allow"):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    b = Broker(tmp_path, policy_text(EFFECT_RULES + BASE_RULES)).start()
    yield b
    b.stop()
    for d in ("/etc/airlock-plan-test", "/tmp/airlock-plan-allow"):
        shutil.rmtree(d, ignore_errors=True)


def events(broker, rid):
    return [e for e in broker.audit_events() if e.get("request") == str(rid)]


def pending(broker, *argv):
    r = broker.airlock("exec", "--wait", "0", "--", *argv)
    assert r.returncode == EX_TIMEOUT, (r.stdout, r.stderr)
    return json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]


def test_pending_request_is_planned_shown_recorded_and_survives_a_restart(broker, tmp_path):
    target = tmp_path / "planned-file"
    rid = pending(broker, "touch", target)
    # the plan saw the file being created; the host has no such file
    req = broker.show(rid)
    plan = req["plan"]
    assert plan["complete"] is True
    assert [f["path"] for f in plan["files"]] == [str(target)]
    assert plan["files"][0]["change"] == "created"
    assert not target.exists()
    # the approver sees it in show and in approve, as text
    shown = broker.airlock("show", rid, user=ALICE).stdout
    assert "Plan (the command's dry run" in shown and f"created {target}" in shown, shown
    # the audit log records it between submitted and decided
    recs = events(broker, rid)
    assert [e["event"] for e in recs] == ["request_submitted", "request_planned",
                                          "request_decided"]
    assert recs[1]["details"]["plan_sha256"] == plan["digest"]
    assert recs[1]["details"]["effects"]["writes"] == [str(target)]
    # kill -9 and restart: the plan is still there, the digest the same
    broker.kill9()
    broker.start()
    again = broker.show(rid)
    assert again["plan"] == plan and again["digest"] == req["digest"]
    r = broker.airlock("approve", rid, user=ALICE)
    assert r.returncode == 0, r.stderr
    assert f"created {target}" in r.stdout  # what was approved, plan included
    broker.wait_state(rid, ("succeeded",))
    assert target.exists()


def test_approval_binds_to_the_plan(broker, tmp_path):
    target = tmp_path / "exists-or-not"
    first = pending(broker, "touch", target)
    second = pending(broker, "touch", target)
    a, b = broker.show(first), broker.show(second)
    # the same command, the same host state: the same plan, the same digest
    assert a["plan"]["digest"] == b["plan"]["digest"] and a["digest"] == b["digest"]
    # the same command once the file exists: another plan (it creates nothing
    # now), so another digest, though argv, environment and cwd are equal
    target.write_text("")
    third = pending(broker, "touch", target)
    c = broker.show(third)
    assert c["argv"] == a["argv"] and c["env"] == a["env"] and c["cwd"] == a["cwd"]
    assert a["plan"]["files"][0]["change"] == "created" and c["plan"]["files"] == []
    assert c["plan"]["digest"] != a["plan"]["digest"] and c["digest"] != a["digest"]
    # an approval of what was shown for the first does not approve the third
    r = broker.airlock("approve", "--digest", a["digest"], third, user=ALICE)
    assert r.returncode == EX_DENIED and "not what you were shown" in r.stderr
    assert broker.show(third)["state"] == "pending"
    assert broker.airlock("approve", "--digest", c["digest"], third, user=ALICE).returncode == 0
    broker.wait_state(third, ("succeeded",))


def test_effect_rules_judge_the_plan_both_ways(broker, tmp_path):
    # approve by its argv, denied by what its plan does
    r = broker.airlock("exec", "--wait", "0", "--", "touch", "/etc/airlock-plan-test/x")
    assert r.returncode == EX_DENIED, (r.stdout, r.stderr)
    assert "nothing writes under /etc/airlock-plan-test" in r.stderr
    assert not os.path.exists("/etc/airlock-plan-test/x")
    rid = json.loads(broker.airlock("requests", "--all", "--json").stdout)[0]["id"]
    recs = events(broker, rid)
    assert [e["event"] for e in recs] == ["request_submitted", "request_planned",
                                          "request_decided", "request_denied"]
    assert recs[2]["details"]["decision"] == "deny"
    # approve by its argv, allowed at once by what its plan does
    r = broker.airlock("exec", "--wait", "0", "--", "touch", "/tmp/airlock-plan-allow/y")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert os.path.exists("/tmp/airlock-plan-allow/y")
    # the same argv elsewhere still waits for a human
    rid = pending(broker, "touch", tmp_path / "z")
    assert broker.show(rid)["state"] == "pending"
    assert not (tmp_path / "z").exists()


def test_allowed_and_denied_outright_are_not_planned(broker):
    assert broker.airlock("exec", "--", "echo", "hi").returncode == 0
    assert broker.airlock("exec", "--", "rm", "-rf", "/nothing").returncode == EX_DENIED
    assert not [e for e in broker.audit_events() if e["event"] == "request_planned"]
    for req in json.loads(broker.airlock("requests", "--all", "--json").stdout):
        assert "plan" not in req and "plan_digest" not in req


def test_approved_execution_is_checked_against_its_plan(tmp_path):
    """After an approved command ran, the broker compares what it did (recorded
    as it ran) with the plan that was approved: nothing beyond the plan is no
    deviation; a write the plan did not have is one, named in the audit log
    and in `airlock show`."""
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    rules = "  - match: [sh, -c, \"**\"]\n    action: approve\n" + BASE_RULES
    b = Broker(tmp_path, policy_text(rules)).start()
    try:
        flag, a, other = tmp_path / "flag", tmp_path / "a", tmp_path / "other"
        script = f"if [ -e {flag} ]; then echo x > {other}; else echo x > {a}; fi"
        # as planned: no deviation
        rid = pending(b, "touch", tmp_path / "same")
        assert b.airlock("approve", rid, user=ALICE).returncode == 0
        b.wait_state(rid, ("succeeded",))
        check = b.show(rid)["deviation_check"]
        assert check["deviations"] == [], check
        assert "Deviations from the approved plan: none" in b.airlock("show", rid).stdout
        # planned while the flag was absent (writes a), run once it exists (writes other)
        rid = pending(b, "sh", "-c", script)
        assert [f["path"] for f in b.show(rid)["plan"]["files"]] == [str(a)]
        flag.write_text("")
        assert b.airlock("approve", rid, user=ALICE).returncode == 0
        b.wait_state(rid, ("succeeded",))
        assert other.exists() and not a.exists()
        lines = b.show(rid)["deviation_check"]["deviations"]
        assert any(str(other) in l for l in lines), lines
        shown = b.airlock("show", rid).stdout
        assert "Deviations from the approved plan (" in shown and str(other) in shown, shown
        end = [e for e in b.audit_events()
               if e["event"] == "exec_end" and e["request"] == str(rid)]
        assert end and any(str(other) in l
                           for l in end[0]["details"]["deviation_check"]["deviations"])
        # allowed requests are not recorded, so not checked
        assert b.airlock("exec", "--", "echo", "hi").returncode == 0
        rid = json.loads(b.airlock("requests", "--all", "--json").stdout)[0]["id"]
        assert "deviation_check" not in b.show(rid)
    finally:
        b.stop()


def test_recorded_execution_runs_with_the_run_as_users_groups(tmp_path):
    """The recorded (approved) path forks instead of posix_spawn: the command
    gets exactly root's groups from the group database, nothing else."""
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    rules = "  - match: [sh, -c, \"**\"]\n    action: approve\n" + BASE_RULES
    b = Broker(tmp_path, policy_text(rules)).start()
    try:
        out = tmp_path / "groups"
        rid = pending(b, "sh", "-c", f"grep ^Groups: /proc/self/status > {out}")
        assert b.airlock("approve", rid, user=ALICE).returncode == 0
        b.wait_state(rid, ("succeeded",))
        assert "deviations" in b.show(rid)["deviation_check"]  # it was recorded
        got = sorted(int(g) for g in out.read_text().split()[1:])
        want = sorted(g for g in set(os.getgrouplist("root", 0)))
        assert got == want or (got == [] and want == [0]), got
    finally:
        b.stop()


def planned_commands(cmdline, n):
    """Waits until n processes run exactly cmdline (the commands being planned, inside their
    snapshots) and returns their pids."""
    deadline = time.time() + 60
    while True:
        pids = subprocess.run(["pgrep", "-fx", cmdline], capture_output=True,
                              text=True).stdout.split()
        if len(pids) >= n:
            return pids
        assert time.time() < deadline, f"{n} plans of {cmdline!r} did not start: {pids}"
        time.sleep(0.05)


def end_planned_commands(cmdline):
    """Ends the planned commands early (SIGKILL from the host: a planned command is its pid
    namespace's init, which ignores signals it has no handler for): their plans finish,
    saying so, and their requests become pending. The slow commands sleep far longer than any test
    waits, so that however slow the machine, they are still running while the test needs
    them to be; this ends them once it does not."""
    subprocess.run(["pkill", "-KILL", "-fx", cmdline], check=False)


def test_plans_at_once_are_bounded_per_requester(tmp_path):
    """A plan runs the command in a snapshot (tmpfs included): one requester
    gets at most two at once; a third is refused with a limit error, and
    answered once the others are done."""
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    rules = "  - match: [sleep, \"**\"]\n    action: approve\n" + BASE_RULES
    b = Broker(tmp_path, policy_text(rules)).start()
    slow_cmd = "sleep 3601"
    try:
        slow = [b.popen("exec", "--wait", "0", "--", *slow_cmd.split()) for _ in range(2)]
        # both are being planned (their commands run in snapshots) while the third comes
        planned_commands(slow_cmd, 2)
        r = b.airlock("exec", "--wait", "0", "--", *slow_cmd.split())
        assert r.returncode != 0 and "being planned already" in r.stderr, (r.stdout, r.stderr)
        end_planned_commands(slow_cmd)
        for p in slow:
            p.communicate(timeout=60)
            assert p.returncode == EX_TIMEOUT  # planned, then pending
        reqs = json.loads(b.airlock("requests", "--json").stdout)
        assert len(reqs) == 2 and all(b.show(q["id"])["plan"]["argv"] == slow_cmd.split()
                                      for q in reqs)
        # with the others done, the same request is planned
        r = b.airlock("exec", "--wait", "0", "--", "sleep", "1")
        assert r.returncode == EX_TIMEOUT, (r.stdout, r.stderr)
    finally:
        end_planned_commands(slow_cmd)
        b.stop()


def test_a_request_waits_for_a_plan_slot_only_so_long(tmp_path):
    """Four plans at once; a fifth request waits for a slot, but not for ever: after
    --plan-wait it hears that the broker is busy (a limit error) and may ask again."""
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    rules = "  - match: [sleep, \"**\"]\n    action: approve\n" + BASE_RULES
    b = Broker(tmp_path, policy_text(rules), extra_args=["--plan-wait", "2"]).start()
    slow_cmd = "sleep 3602"
    try:
        # two humans, two plans each: every slot is taken until the test ends them
        slow = [b.popen("exec", "--wait", "0", "--", *slow_cmd.split(), user=u)
                for u in (None, None, ALICE, ALICE)]
        planned_commands(slow_cmd, 4)
        t0 = time.time()
        r = b.airlock("exec", "--wait", "0", "--", "sleep", "1", user=BOB)
        waited = time.time() - t0
        assert r.returncode == EX_TIMEOUT and "none ended within 2 s" in r.stderr, (r.stdout, r.stderr)
        assert 1.5 < waited < 60, f"it waited {waited:.1f} s for a slot"
        end_planned_commands(slow_cmd)
        for p in slow:
            try:
                p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                print(subprocess.run("ps -eo pid,ppid,stat,wchan:30,cmd | grep -v grep | grep -E 'sleep|airlock'", shell=True, capture_output=True, text=True).stdout)
                raise
            assert p.returncode == EX_TIMEOUT  # planned, then pending
        # with the slots free again, the same request is planned
        r = b.airlock("exec", "--wait", "0", "--", "sleep", "1", user=BOB)
        assert r.returncode == EX_TIMEOUT and "none ended" not in r.stderr, (r.stdout, r.stderr)
    finally:
        end_planned_commands(slow_cmd)
        b.stop()


def test_the_ttl_counts_from_when_the_plan_is_ready(tmp_path):
    """A plan takes as long as its command: a request whose plan took longer than the policy's
    ttl must still leave the approvers the whole ttl to read the plan and approve."""
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    rules = "  - match: [sleep, \"**\"]\n    action: approve\n" + BASE_RULES
    # a ttl of 6 s leaves the approver about 5 s after the plan, however slow the clients
    b = Broker(tmp_path, policy_text(rules, extra="ttl: 6s\n")).start()
    try:
        t0 = time.time()
        rid = pending(b, "sleep", "6.5")  # planned: the dry run takes 6.5 s, longer than the ttl
        assert time.time() - t0 >= 6.5
        r = b.airlock("approve", rid, user=ALICE)
        assert r.returncode == 0, f"approved right after its plan, within the ttl: {r.stderr}"
        b.wait_state(rid, ("succeeded",), timeout=30)
        # and the ttl still ends a request nobody approves
        rid = pending(b, "sleep", "0.1")
        time.sleep(6.5)
        r = b.airlock("approve", rid, user=ALICE)
        assert r.returncode != 0 and "expire" in r.stderr, (r.stdout, r.stderr)
    finally:
        b.stop()


def test_a_plan_too_big_for_a_message_is_named_not_sent(tmp_path):
    """Every reply fits one protocol message (1 MiB): a plan over 512 KiB of
    JSON is named by its digest in show and approve, lists never carry plans,
    and the approval still binds to it."""
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    rules = "  - match: [sh, -c, \"**\"]\n    action: approve\n" + BASE_RULES
    b = Broker(tmp_path, policy_text(rules)).start()
    try:
        d = tmp_path / "many"
        rid = pending(b, "sh", "-c", f"mkdir {d} && cd {d} && seq 8000 | xargs touch")
        req = b.show(rid)
        assert "plan" not in req and req["plan_omitted"]["files"] >= 8000, req.get("plan_omitted")
        assert req["plan_omitted"]["bytes"] > 512 * 1024
        shown = b.airlock("show", rid).stdout
        assert "too large to show" in shown and req["plan_digest"] in shown
        lst = json.loads(b.airlock("requests", "--json").stdout)
        assert [q["id"] for q in lst] == [rid] and lst[0]["plan_digest"] == req["plan_digest"]
        assert not d.exists()
        r = b.airlock("approve", rid, user=ALICE)
        assert r.returncode == 0, r.stderr
        # 8000 files under the recorder: slow in a sanitizer build
        b.wait_state(rid, ("succeeded",), timeout=180)
        assert len(os.listdir(d)) == 8000
        assert b.show(rid)["deviation_check"]["deviations"] == []
    finally:
        b.stop()


def test_many_deviations_still_fit_the_record(tmp_path):
    """An execution that strays far from its plan (8000 files it did not
    plan) is still recorded: the first deviations, and how many in all."""
    if os.geteuid() != 0:
        pytest.skip("the broker plans as root (namespaces, overlays): run as root")
    ensure_users()
    rules = "  - match: [sh, -c, \"**\"]\n    action: approve\n" + BASE_RULES
    b = Broker(tmp_path, policy_text(rules)).start()
    try:
        flag, a, d = tmp_path / "flag", tmp_path / "a", tmp_path / "many"
        script = (f"if [ -e {flag} ]; then mkdir {d} && cd {d} && seq 8000 | xargs touch; "
                  f"else echo x > {a}; fi")
        rid = pending(b, "sh", "-c", script)
        flag.write_text("")
        assert b.airlock("approve", rid, user=ALICE).returncode == 0
        assert b.wait_state(rid, ("succeeded", "failed"), timeout=180) == "succeeded"
        check = b.show(rid)["deviation_check"]
        assert check["count"] >= 8000 and check["truncated"] is True, {
            k: v for k, v in check.items() if k != "deviations"}
        assert 0 < len(check["deviations"]) < check["count"]
        end = [e for e in b.audit_events() if e["event"] == "exec_end" and e["request"] == str(rid)]
        assert end and end[0]["details"]["deviation_check"]["count"] == check["count"]
        assert "the first of them" in b.airlock("show", rid).stdout
    finally:
        b.stop()


def test_a_failed_plan_leaves_the_request_to_approvers_who_are_told(broker):
    """No plan (here: the directory the command would run in does not
    exist) is no reason to let it through: it is judged without effects,
    still needs approval, and show says there is no plan and why."""
    c = Raw(broker.admin)
    first, final, _ = exec_raw(c, ["touch", "x"], cwd="/nonexistent-airlock-plan-dir")
    req = first["request"]
    assert req["state"] == "pending" and "plan" not in req and req["plan_error"], req
    # the plan's own words reach the approver (through airlockd's plan helper)
    assert "/nonexistent-airlock-plan-dir" in req["plan_error"], req["plan_error"]
    assert "No plan: the dry run failed" in broker.airlock("show", req["id"]).stdout
    recs = events(broker, req["id"])
    assert [e["event"] for e in recs] == ["request_submitted", "request_planned",
                                          "request_decided"]
    assert recs[1]["details"]["error"] == req["plan_error"]
    c.close()
