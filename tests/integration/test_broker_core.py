"""The broker end to end with the real airlockd and the real airlock client:
allow, approve, deny, the two-person rule, TTL expiry, who may approve, the
digest an approval binds to, restarts, policy reloads and bad input."""
import json
import os
import shutil
import socket
import struct
import subprocess
import textwrap
import time

import pytest

from broker_helpers import (APPROVERS, BASE_RULES, EX_DENIED, EX_TIMEOUT, EX_UNAVAILABLE,
                            EX_USAGE, OUTSIDER, Broker, Raw, ensure_users, exec_raw,
                            open_session, policy_text)

ALICE, BOB = APPROVERS


@pytest.fixture
def broker(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the broker tests run airlockd as root and switch users (run as root)")
    ensure_users()
    b = Broker(tmp_path, policy_text(BASE_RULES)).start()
    yield b
    b.stop()


def test_allowed_runs_at_once_with_output_and_status(broker):
    r = broker.airlock("exec", "--", "echo", "hello", "world")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello world\n"
    r = broker.airlock("exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n" and r.stderr == "err\n"
    j = json.loads(broker.airlock("exec", "--json", "--", "echo", "x").stdout)
    assert j["request"]["state"] == "succeeded" and j["stdout"] == "x\n"
    assert j["request"]["decision"]["action"] == "allow"


def test_denied_shows_the_rules_reason(broker):
    r = broker.airlock("exec", "--", "rm", "-rf", "/tmp/nothing")
    assert r.returncode == EX_DENIED
    assert "deleting is never done through the broker here" in r.stderr
    assert r.stdout == ""


def test_pending_then_approved_from_outside_runs_and_returns_output(broker, tmp_path):
    target = tmp_path / "made-by-broker"
    p = broker.popen("exec", "--wait", "30", "--why", "needs the file", "--", "touch", target)
    # the requester waits; an approver outside approves exactly what was shown
    deadline = time.time() + 30
    while True:
        lst = json.loads(broker.airlock("requests", "--json").stdout)
        if lst:
            break
        assert time.time() < deadline
        time.sleep(0.05)
    rid = lst[0]["id"]
    assert not target.exists()
    shown = broker.airlock("show", rid, user=ALICE)
    assert shown.returncode == 0, shown.stderr
    assert "touch " + str(target) in shown.stdout
    assert "needs the file" in shown.stdout.split("own words")[1]
    r = broker.airlock("approve", "--why", "looks right", rid, user=ALICE)
    assert r.returncode == 0, r.stderr
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert target.exists()
    assert broker.show(rid)["state"] == "succeeded"
    assert broker.show(rid)["verdicts"][0]["user"] == ALICE


def test_wait_timeout_prints_id_and_how_to_wait_again(broker, tmp_path):
    r = broker.airlock("exec", "--wait", "0", "--", "touch", tmp_path / "f")
    assert r.returncode == EX_TIMEOUT
    assert "airlock wait" in r.stderr
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    assert f"airlock wait {rid}" in r.stderr
    p = broker.popen("wait", rid)
    time.sleep(0.3)
    assert broker.airlock("approve", rid, user=BOB).returncode == 0
    p.communicate(timeout=30)
    assert p.returncode == 0
    assert (tmp_path / "f").exists()
    # waiting on a finished request returns its stored status and output again
    assert broker.airlock("wait", rid).returncode == 0


def test_exit_status_and_output_after_approval(broker, tmp_path):
    f = tmp_path / "two"
    r = broker.airlock("exec", "--wait", "0", "--", "tee", f, input="")
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    assert r.returncode == EX_TIMEOUT
    assert broker.airlock("approve", rid, user=ALICE).returncode == 0
    assert broker.airlock("approve", rid, user=BOB).returncode == 0
    assert broker.wait_state(rid, ("succeeded", "failed")) == "succeeded"


def test_two_person_rule(broker, tmp_path):
    f = tmp_path / "needs-two"
    broker.airlock("exec", "--wait", "0", "--", "tee", f)
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    r = broker.airlock("approve", rid, user=ALICE)
    assert r.returncode == 0 and "needs another approver" in r.stdout
    assert broker.show(rid)["state"] == "pending"
    again = broker.airlock("approve", rid, user=ALICE)
    assert again.returncode == EX_DENIED and "already approved" in again.stderr
    assert broker.show(rid)["state"] == "pending" and not f.exists()
    assert broker.airlock("approve", rid, user=BOB).returncode == 0
    assert broker.wait_state(rid, ("succeeded",)) == "succeeded"
    assert f.exists()
    assert {v["user"] for v in broker.show(rid)["verdicts"]} == {ALICE, BOB}


def test_requester_cannot_approve_own_request(broker, tmp_path):
    f = tmp_path / "alice-asks"
    r = broker.airlock("exec", "--wait", "0", "--", "touch", f, user=ALICE)
    assert r.returncode == EX_TIMEOUT, r.stderr
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    r = broker.airlock("approve", rid, user=ALICE)
    assert r.returncode == EX_DENIED and "cannot approve it" in r.stderr
    assert broker.show(rid)["state"] == "pending" and not f.exists()
    assert broker.airlock("approve", rid, user=BOB).returncode == 0
    broker.wait_state(rid, ("succeeded",))
    assert f.exists()


def test_non_approver_cannot_approve(broker, tmp_path):
    f = tmp_path / "x"
    broker.airlock("exec", "--wait", "0", "--", "touch", f)
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    digest = broker.show(rid)["digest"]
    r = broker.airlock("approve", "--digest", digest, rid, user=OUTSIDER)
    assert r.returncode != 0
    assert broker.show(rid)["state"] == "pending" and not f.exists()
    assert broker.airlock("approve", "--digest", digest, rid, user=ALICE).returncode == 0
    broker.wait_state(rid, ("succeeded",))


def test_approval_binds_to_the_digest_shown(broker, tmp_path):
    broker.airlock("exec", "--wait", "0", "--", "touch", tmp_path / "a")
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    r = broker.airlock("approve", "--digest", "0" * 64, rid, user=ALICE)
    assert r.returncode == EX_DENIED and "not what you were shown" in r.stderr
    assert broker.show(rid)["state"] == "pending"


def test_deny_with_reason_reaches_the_requester(broker, tmp_path):
    p = broker.popen("exec", "--wait", "30", "--", "touch", tmp_path / "no")
    deadline = time.time() + 30
    while not json.loads(broker.airlock("requests", "--json").stdout):
        assert time.time() < deadline
        time.sleep(0.05)
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    assert broker.airlock("deny", rid).returncode != 0  # --why is required
    r = broker.airlock("deny", "--why", "not during business hours", rid, user=BOB)
    assert r.returncode == 0, r.stderr
    _, err = p.communicate(timeout=30)
    assert p.returncode == EX_DENIED
    assert "not during business hours" in err
    assert not (tmp_path / "no").exists()


def test_ttl_expiry_means_deny(tmp_path):
    ensure_users()
    b = Broker(tmp_path, policy_text(BASE_RULES, extra="ttl: 1s\n")).start()
    try:
        # the wait outlasts the plan and the ttl however slow the machine: expiry ends it
        r = b.airlock("exec", "--wait", "60", "--", "touch", tmp_path / "late")
        assert r.returncode == EX_DENIED, r.stderr
        assert "expired" in r.stderr
        rid = json.loads(b.airlock("requests", "--all", "--json").stdout)[0]["id"]
        assert b.show(rid)["state"] == "expired"
        r = b.airlock("approve", rid, user=ALICE)
        assert r.returncode == EX_DENIED and "not pending" in r.stderr
        assert not (tmp_path / "late").exists()
    finally:
        b.stop()


def test_kill_9_and_restart(broker, tmp_path):
    marker = tmp_path / "ran"
    # a pending request survives a kill -9
    broker.airlock("exec", "--wait", "0", "--", "touch", tmp_path / "later")
    pending = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    # an executing one is interrupted and never rerun
    p = broker.popen("exec", "--", "sh", "-c", f"echo x >> {marker}; sleep 30")
    deadline = time.time() + 30
    while not marker.exists():
        assert time.time() < deadline
        time.sleep(0.02)
    running = pending + 1
    assert broker.show(running)["state"] == "executing"
    broker.kill9()
    p.wait(10)
    assert p.returncode == EX_UNAVAILABLE
    broker.start()
    assert broker.show(pending)["state"] == "pending"
    st = broker.show(running)
    assert st["state"] == "interrupted" and "not run again" in st["detail"]
    time.sleep(0.3)
    assert marker.read_text() == "x\n"
    assert broker.airlock("approve", pending, user=ALICE).returncode == 0
    broker.wait_state(pending, ("succeeded",))
    assert (tmp_path / "later").exists()


def test_invalid_policy_refuses_to_start(tmp_path):
    b = Broker(tmp_path, "version: 1\nrules: [{match: [x], action: maybe}]\n")
    b.start(wait=False)
    assert b.proc.wait(10) != 0
    assert "invalid policy" in b.log.read_text()
    assert not b.admin.exists()


def test_sighup_reload_keeps_old_policy_when_new_is_invalid(broker):
    assert broker.airlock("exec", "--", "echo", "a").returncode == 0
    broker.policy.write_text("version: 1\nrules: [{nonsense: 1}]\n")
    broker.hup()
    assert "kept the previous policy" in broker.log.read_text()
    assert broker.airlock("exec", "--", "echo", "a").returncode == 0
    broker.policy.write_text(policy_text("  - match: [echo, '**']\n    action: deny\n"
                                         "    reason: echo is banned now\n"))
    broker.hup()
    r = broker.airlock("exec", "--", "echo", "a")
    assert r.returncode == EX_DENIED and "echo is banned now" in r.stderr


def test_policy_change_voids_pending_approval(broker, tmp_path):
    broker.airlock("exec", "--wait", "0", "--", "touch", tmp_path / "p")
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    broker.policy.write_text(broker.policy.read_text() + "# changed\n")
    broker.hup()
    r = broker.airlock("approve", rid, user=ALICE)
    assert r.returncode == EX_DENIED and "reloaded" in r.stderr
    assert broker.show(rid)["state"] == "denied"
    assert not (tmp_path / "p").exists()


def test_no_broker_exits_69_saying_how_to_start_it(tmp_path, airlock):
    r = airlock("exec", "--", "true", env={"AIRLOCK_SOCKET": str(tmp_path / "none.sock")})
    assert r.returncode == EX_UNAVAILABLE
    assert "start it with 'systemctl start airlockd'" in r.stderr


def test_malformed_and_oversized_messages_get_errors_and_the_broker_serves_on(broker):
    c = Raw(broker.admin)
    c.send(b"{not json")
    assert c.recv()["error"] == "malformed"
    c.send(b"[1,2]")
    assert c.recv()["error"] == "malformed"
    c.send({"type": "list", "all": True, "extra": 1})
    m = c.recv()
    assert m["error"] == "malformed" and "unknown field 'extra'" in m["message"]
    c.send({"type": "list", "all": "yes"})
    assert c.recv()["error"] == "malformed"
    c.send(b'{"type":"list","type":"list"}')
    assert c.recv()["error"] == "malformed"
    c.send({"type": "frobnicate"})
    assert c.recv()["error"] == "unknown-request"
    c.send({"type": "exec", "argv": [], "cwd": "/", "wait_ms": 0})
    assert c.recv()["error"] == "malformed"
    c.send({"type": "exec", "argv": ["echo"], "cwd": "relative", "wait_ms": 0})
    assert c.recv()["error"] == "bad-request"
    c.send({"type": "show", "id": -1})
    assert c.recv()["error"] == "malformed"
    # the same connection still works
    assert c.call({"type": "list"})["type"] == "requests"
    # an oversized message: an error, the connection closes, nothing was allocated
    big = Raw(broker.admin)
    big.send_bytes(struct.pack(">I", 64 * 1024 * 1024) + b"{")
    m = big.recv()
    assert m["error"] == "too-large"
    assert big.recv() is None
    # a zero-length message and a truncated one
    z = Raw(broker.admin)
    z.send_bytes(struct.pack(">I", 0))
    assert z.recv()["error"] == "malformed"
    t = Raw(broker.admin)
    t.send_bytes(struct.pack(">I", 100) + b"{}")
    t.s.shutdown(socket.SHUT_WR)
    assert t.recv() is None
    # everyone else is still served
    assert broker.airlock("exec", "--", "echo", "still here").stdout == "still here\n"
    assert broker.proc.poll() is None


def test_session_requests_are_attributed_to_the_session(broker):
    holder, sock, sid = open_session(broker, agent="claude", workspace="/srv/ws")
    agent = Raw(sock)
    first, final, out = exec_raw(agent, ["echo", "from", "agent"], why="checking")
    assert final["type"] == "done" and out == b"from agent\n"
    who = final["request"]["requester"]
    assert who["kind"] == "agent" and who["agent"] == "claude" and who["session"] == sid
    assert who["workspace"] == "/srv/ws" and who["started_by"] == "root"
    # the client inside finds the session socket by itself
    r = broker.airlock("exec", "--", "echo", "via env",
                       env={"AIRLOCK_SESSION_SOCKET": sock, "AIRLOCK_SOCKET": ""})
    assert r.returncode == 0 and r.stdout == "via env\n"
    rid = final["request"]["id"]
    assert broker.show(rid)["requester"]["agent"] == "claude"
    # the session's starter (a human, outside) may approve the agent's request
    first, final, _ = exec_raw(agent, ["touch", "/tmp/airlock-session-test"], wait_ms=0)
    assert final["type"] == "still-pending"
    # closing the holder connection ends the session and removes its socket
    holder.close()
    deadline = time.time() + 30
    while os.path.exists(sock):
        assert time.time() < deadline
        time.sleep(0.02)


def test_session_socket_cannot_approve_or_deny_or_see_others(broker, tmp_path):
    holder, sock, sid = open_session(broker, agent="mallory")
    agent = Raw(sock)
    first, final, _ = exec_raw(agent, ["touch", str(tmp_path / "own")], wait_ms=0)
    rid = first["request"]["id"]
    digest = first["request"]["digest"]
    for msg in ({"type": "approve", "id": rid, "digest": digest},
                {"type": "deny", "id": rid, "why": "x"},
                {"type": "list", "all": True},
                {"type": "open-session", "agent": "x", "workspace": "/", "profile": "default"},
                {"type": "close-session"}):
        m = agent.call(msg)
        assert m["type"] == "error" and m["error"] == "unknown-request", m
    # a request made by someone else is invisible on the session socket
    broker.airlock("exec", "--wait", "0", "--", "touch", tmp_path / "human")
    other = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    assert agent.call({"type": "show", "id": other})["error"] == "not-found"
    assert agent.call({"type": "show", "id": rid})["type"] == "request"
    assert broker.show(rid)["state"] == "pending"
    # the legitimate route: an approver over the admin socket
    assert broker.airlock("approve", rid, user=ALICE).returncode == 0
    broker.wait_state(rid, ("succeeded",))
    # the holder connection only holds: it cannot be used to approve either
    m = holder.call({"type": "approve", "id": other, "digest": digest})
    assert m["error"] == "unknown-request"


def test_confined_processes_cannot_approve_whatever_their_uid(broker, tmp_path):
    broker.airlock("exec", "--wait", "0", "--", "touch", tmp_path / "c", user=ALICE)
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    attempts = {
        "pid+mount namespace": ["unshare", "--pid", "--mount", "--fork"],
        "user namespace": ["unshare", "--user", "--map-root-user"],
        "no_new_privs": ["setpriv", "--no-new-privs"],
    }
    for name, prefix in attempts.items():
        r = broker.airlock("approve", rid, prefix=prefix)
        assert r.returncode == EX_DENIED, (name, r.stdout, r.stderr)
        assert "outside every sandbox" in r.stderr, (name, r.stderr)
        assert broker.show(rid)["state"] == "pending", name
    assert broker.log.read_text().count(f"refused an approval of request {rid}") == len(attempts)
    # the same uid (root), unconfined, approves
    assert broker.airlock("approve", rid).returncode == 0
    broker.wait_state(rid, ("succeeded",))


def test_every_transition_is_audited_before_it_takes_effect(broker, tmp_path):
    broker.airlock("exec", "--wait", "0", "--", "touch", tmp_path / "aud")
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    broker.airlock("approve", "--why", "fine", rid, user=ALICE)
    broker.wait_state(rid, ("succeeded",))
    recs = [e for e in broker.audit_events() if e.get("request") == str(rid)]
    assert [e["event"] for e in recs] == ["request_submitted", "request_planned",
                                          "request_decided", "request_approved",
                                          "request_decided", "exec_start", "exec_end"]
    assert recs[1]["details"]["plan_sha256"] == broker.show(rid)["plan"]["digest"]
    assert recs[3]["details"]["approver_name"] == ALICE
    assert recs[3]["details"]["shown_sha256"] == broker.show(rid)["digest"]
    assert recs[-1]["details"]["exit_status"] == 0
    # the hash chain the broker wrote is intact (no seal key was set up for
    # this test, so the only finding is that the tail is unsealed)
    v = json.loads(broker.airlock("log", "verify", "--json", "--state-dir", broker.state).stdout)
    assert v["problem"] == "unsealed-tail" and v["seq"] == 1 and v["records"] >= 6, v
    # an audit log (and database) that cannot be written: the broker refuses to act
    d = tmp_path / "full"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(d)], check=True)
    try:
        b2 = Broker(d, broker.policy.read_text()).start()
        try:
            filler = d / "filler"
            with open(filler, "wb") as f:
                try:
                    f.write(b"\0" * 1024 * 1024)
                except OSError:
                    pass
            r = b2.airlock("exec", "--", "echo", "must not run")
            assert r.returncode == EX_UNAVAILABLE, (r.stdout, r.stderr)
            assert "could not record" in r.stderr and "must not run" not in r.stdout
        finally:
            b2.stop()
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_command_timeout_kills_the_process_group(tmp_path):
    ensure_users()
    b = Broker(tmp_path, policy_text(BASE_RULES), extra_args=("--exec-timeout", "1")).start()
    try:
        t0 = time.time()
        r = b.airlock("exec", "--", "sh", "-c", "sleep 30 & sleep 30; echo never")
        assert r.returncode == 124, (r.stdout, r.stderr)
        assert "killed after the timeout" in r.stderr
        assert time.time() - t0 < 15
        assert "never" not in r.stdout
    finally:
        b.stop()


def test_pending_requests_per_session_are_limited(broker, tmp_path):
    holder, sock, _ = open_session(broker)
    agent = Raw(sock)
    for i in range(32):
        _, final, _ = exec_raw(agent, ["touch", str(tmp_path / f"f{i}")], wait_ms=0)
        assert final["type"] == "still-pending", final
    first, _, _ = exec_raw(agent, ["touch", str(tmp_path / "one-too-many")], wait_ms=0)
    assert first["type"] == "error" and first["error"] == "limit"
    # allowed requests still run, and the broker serves everyone else
    _, final, out = exec_raw(agent, ["echo", "fine"])
    assert out == b"fine\n"
    assert broker.airlock("requests").returncode == 0


def test_connections_per_uid_are_limited(broker):
    script = textwrap.dedent(f"""\
        import json, socket, struct
        conns, refused = [], 0
        for i in range(80):
            s = socket.socket(socket.AF_UNIX); s.connect({str(broker.admin)!r})
            s.settimeout(5)
            b = json.dumps({{"type": "list"}}).encode()
            try:
                s.sendall(struct.pack(">I", len(b)) + b)
            except OSError:
                pass  # refused connections get their error and are closed at once
            n = struct.unpack(">I", s.recv(4))[0]
            m = json.loads(s.recv(n))
            if m["type"] == "error" and m["error"] == "limit":
                refused += 1
            conns.append(s)
        print(refused)
        """)
    r = subprocess.run(["setpriv", f"--reuid={OUTSIDER}", f"--regid={OUTSIDER}",
                        "--clear-groups", "/usr/bin/python3", "-c", script],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == 80 - 64
    # other users are unaffected
    assert broker.airlock("requests", user=ALICE).returncode == 0


def test_host_requests_run_through_the_inventory_connect_prefix(tmp_path):
    ensure_users()
    extra = ("hosts:\n"
             "  h1: {address: 198.51.100.7, environment: test,\n"
             "       connect: [sh, -c, 'echo \"on h1: $*\"', connect]}\n"
             "  h2: {address: 198.51.100.8, environment: test}\n")
    b = Broker(tmp_path, policy_text(BASE_RULES, extra=extra)).start()
    try:
        r = b.airlock("exec", "--host", "h1", "--", "echo", "two words", "x")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "on h1: echo two words x\n"
        rid = json.loads(b.airlock("requests", "--all", "--json").stdout)[0]["id"]
        st = b.show(rid)
        assert st["host"] == "h1" and st["cwd"] == "/"
        assert st["command"][:3] == ["sh", "-c", 'echo "on h1: $*"']
        # the default: ssh, with the command as one shell-quoted word
        r = b.airlock("exec", "--host", "h2", "--wait", "0", "--", "touch", "/a b")
        assert r.returncode == EX_TIMEOUT
        rid = json.loads(b.airlock("requests", "--json").stdout)[0]["id"]
        assert b.show(rid)["command"] == ["ssh", "-T", "-o", "BatchMode=yes", "--",
                                          "root@198.51.100.8", "touch '/a b'"]
        r = b.airlock("exec", "--host", "nowhere", "--", "echo")
        assert r.returncode == EX_USAGE and "unknown host 'nowhere'" in r.stderr
    finally:
        b.stop()


def test_requesters_words_and_argv_are_escaped_for_the_approver(broker, tmp_path):
    evil = "fine\x1b[2J\x1b[1;1HApproved by admin\r\nreally"
    broker.airlock("exec", "--wait", "0", "--why", evil, "--", "touch", "a\x1b[31mb")
    rid = json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]
    shown = broker.airlock("show", rid, user=ALICE).stdout
    assert "\x1b" not in shown and "\r" not in shown
    facts, words = shown.split("own words")
    assert "a\\x1b[31mb" in facts
    assert "fine\\x1b[2J\\x1b[1;1HApproved by admin\\x0d" in words
    assert "Approved by admin" not in facts
    listing = broker.airlock("requests").stdout
    assert "\x1b" not in listing


def all_threads_traced(pid):
    """Whether every thread of pid has a tracer (TracerPid in its status)."""
    seen = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                tracer = next(l.split()[1] for l in f if l.startswith("TracerPid:"))
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        if tracer == "0":
            return False
        seen += 1
    return seen > 0


def test_allowed_request_records_its_decision_in_one_sync_before_running(broker, tmp_path):
    """submitted + decided + exec_start are decided at once: one batch in the
    audit log, on disk (one fdatasync) and the database committed (the two
    syncs may overlap) before the command runs; exec_end and the final state
    likewise before the reply."""
    if not shutil.which("strace"):
        pytest.skip("strace is missing (apt-get install strace)")
    out = tmp_path / "trace"
    st = subprocess.Popen(["strace", "-f", "-y", "-qq", "-o", str(out),
                           "-e", "trace=fdatasync,fsync,execve", "-p", str(broker.proc.pid)],
                          stderr=subprocess.PIPE, text=True)
    try:
        # strace attaches to every thread: wait until each one shows a tracer
        deadline = time.time() + 30
        while not all_threads_traced(broker.proc.pid):
            assert st.poll() is None, st.stderr.read()
            assert time.time() < deadline, "strace did not attach to every broker thread"
            time.sleep(0.05)
        r = broker.airlock("exec", "--", "echo", "batched")
        assert r.returncode == 0 and r.stdout == "batched\n", r.stderr
    finally:
        st.terminate()
        st.wait(10)
    steps = []
    started = {}  # pid -> the file of a sync strace shows as unfinished
    for line in out.read_text().splitlines():
        pid = line.split()[0]
        if "execve(" in line and "batched" in line:
            steps.append("run")  # when it starts
            continue
        if "fdatasync" not in line and "fsync" not in line:
            continue
        what = "audit" if "audit.log>" in line else "db" if "airlockd.db" in line else None
        if "<unfinished" in line:
            started[pid] = what
            continue
        if "resumed>" in line:
            what = started.pop(pid, None)
        if what and "= 0" in line:
            steps.append(what)  # when it completed
    assert len(steps) == 5 and steps[2] == "run", steps
    assert sorted(steps[:2]) == ["audit", "db"] and sorted(steps[3:]) == ["audit", "db"], steps
    recs = [e for e in broker.audit_events() if e.get("argv") == ["echo", "batched"]]
    assert [e["event"] for e in recs] == ["request_submitted", "request_decided", "exec_start",
                                          "exec_end"]
    seqs = [e["seq"] for e in recs[:3]]
    assert seqs == list(range(seqs[0], seqs[0] + 3)), seqs
