"""The broker with real sandboxes: an agent inside `airlock run` asks through
its session socket; a human outside approves; and nothing inside the sandbox
can approve, whatever route or uid it tries — each attempt shown failing next
to the legitimate route working."""
import json
import pwd
import os
import pathlib
import shutil
import subprocess
import tempfile
import textwrap
import time

import pytest

from broker_helpers import (APPROVERS, BASE_RULES, EX_DENIED, EX_TIMEOUT, EX_UNAVAILABLE, Broker,
                            ensure_users, policy_text)
from conftest import AIRLOCK

ALICE, BOB = APPROVERS
AGENT_USER = "airlock-agent"


def sandbox_works(policy):
    e = dict(os.environ, AIRLOCK_POLICY=str(policy))
    r = subprocess.run([str(AIRLOCK), "run", "--", "true"], capture_output=True, text=True,
                       timeout=60, cwd="/tmp", env=e)
    return r.returncode == 0, r.stderr


@pytest.fixture
def broker(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("airlockd and root-started sandboxes need root")
    ensure_users()
    # the agent user is an approver by policy too: a sandboxed process must be
    # refused whatever its uid
    b = Broker(tmp_path, policy_text(BASE_RULES, approvers=(*APPROVERS, AGENT_USER)),
               runtime_base="/run").start()
    ok, why = sandbox_works(b.policy)
    if not ok:
        b.stop()
        pytest.fail(f"airlock run does not work here: {why}")
    yield b
    b.stop()


def run_in_sandbox(broker, script, extra=(), env=None, timeout=60, user=None):
    """Runs sh -c SCRIPT as the agent inside `airlock run`, started by root (or user)."""
    e = broker.env()
    e["AIRLOCK_POLICY"] = str(broker.policy)
    if env:
        e.update(env)
    cmd = [str(AIRLOCK), "run", "--agent", "claude", *extra, "--", "sh", "-c", script]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *cmd]
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout,
                          cwd="/tmp")


def popen_in_sandbox(broker, script):
    e = broker.env()
    e["AIRLOCK_POLICY"] = str(broker.policy)
    return subprocess.Popen([str(AIRLOCK), "run", "--agent", "claude", "--", "sh", "-c", script],
                            env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd="/tmp")


def wait_pending(broker, n=1, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lst = json.loads(broker.airlock("requests", "--json").stdout)
        if len(lst) >= n:
            return lst
        time.sleep(0.05)
    raise AssertionError("no pending request appeared")


# The client as run inside the sandbox. LeakSanitizer (sanitizer builds)
# cannot work there (it needs ptrace-like access the sandbox forbids), so it
# is off inside; the same client is leak-checked outside.
A = f"env ASAN_OPTIONS=detect_leaks=0 {AIRLOCK}"


def test_agent_allowed_read_runs(broker):
    r = run_in_sandbox(broker, f"{A} exec -- echo hello from the agent")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from the agent\n"
    rid = json.loads(broker.airlock("requests", "--all", "--json").stdout)[0]["id"]
    who = broker.show(rid)["requester"]
    assert who["kind"] == "agent" and who["agent"] == "claude"
    assert who["started_by"] == "root" and who["profile"] == "default"


def test_audit_records_carry_the_agents_own_uid(broker):
    """The agent runs as airlock-agent, never as the root who started it: its records say so."""
    r = run_in_sandbox(broker, f"{A} exec -- echo hello")
    assert r.returncode == 0, r.stderr
    agent_uid = pwd.getpwnam("airlock-agent").pw_uid
    assert agent_uid != 0
    recs = [e for e in broker.audit_events() if e["event"] == "request_submitted"]
    assert recs and all(e["agent"]["uid"] == agent_uid for e in recs), recs
    assert all(e["agent"]["started_by"] == "root" for e in recs)
    starts = [e for e in broker.audit_events() if e["event"] == "session_start"]
    assert starts and all(e["agent"]["uid"] is None for e in starts), starts


def test_agent_change_pending_approved_outside_output_and_status_back(broker, tmp_path):
    ok = tmp_path / "restarted"
    p = popen_in_sandbox(broker, textwrap.dedent(f"""\
        {A} exec --wait 60 --why 'restart it: config changed' -- touch {ok}
        echo first=$?
        {A} exec --wait 60 --why 'this one fails' -- touch /nonexistent/dir/x
        echo second=$?
        """))
    rid = wait_pending(broker)[0]["id"]
    shown = broker.airlock("show", rid, user=ALICE)
    facts, words = shown.stdout.split("own words")
    assert "agent 'claude'" in facts and f"touch {ok}" in facts
    assert "restart it: config changed" in words
    assert not ok.exists()
    assert broker.airlock("approve", rid, user=ALICE).returncode == 0
    rid2 = None
    deadline = time.time() + 20
    while rid2 is None:
        lst = json.loads(broker.airlock("requests", "--json").stdout)
        rid2 = next((x["id"] for x in lst if x["id"] != rid), None)
        assert time.time() < deadline
        time.sleep(0.05)
    assert broker.airlock("approve", rid2, user=BOB).returncode == 0
    out, err = p.communicate(timeout=60)
    assert "first=0" in out and "second=1" in out, (out, err)
    assert "No such file or directory" in err  # the command's stderr, streamed back
    assert ok.exists()


def test_agent_denied_command_shows_reasons(broker):
    r = run_in_sandbox(broker, f"{A} exec -- rm -rf /etc; echo rc=$?")
    assert "rc=77" in r.stdout
    assert "deleting is never done through the broker here" in r.stderr


def test_admin_socket_is_not_reachable_inside(broker):
    admin = broker.admin
    # outside: it exists and answers
    assert admin.exists()
    assert broker.airlock("requests").returncode == 0
    # inside: the path does not exist and the client cannot reach it
    r = run_in_sandbox(broker, f"test -e {admin}; echo exists=$?; "
                               f"AIRLOCK_SOCKET={admin} {A} requests; echo rc=$?")
    assert "exists=1" in r.stdout
    assert f"rc={EX_UNAVAILABLE}" in r.stdout


CRAFT = textwrap.dedent("""\
    import json, socket, struct, sys
    def call(m):
        s = socket.socket(socket.AF_UNIX); s.connect("/run/airlock/session.sock")
        b = json.dumps(m).encode(); s.sendall(struct.pack(">I", len(b)) + b)
        n = struct.unpack(">I", s.recv(4))[0]; data = b""
        while len(data) < n: data += s.recv(n - len(data))
        return json.loads(data)
    rid = json.load(open(sys.argv[1]))["request"]["id"]
    req = call({"type": "show", "id": rid})["request"]
    for msg in ({"type": "approve", "id": rid, "digest": req["digest"]},
                {"type": "approve", "id": rid, "digest": req["digest"], "uid": 0},
                {"type": "open-session", "agent": "x", "workspace": "/", "profile": "default"},
                {"type": "list", "all": True}):
        print(json.dumps(call(msg)))
    """)


def test_crafted_approval_on_the_session_socket_fails(broker, tmp_path):
    target = tmp_path / "crafted"
    script = tmp_path / "craft.py"
    script.write_text(CRAFT)
    p = popen_in_sandbox(broker, f"{A} exec --json --wait 0 -- touch {target} > {tmp_path}/req.json; "
                                 f"python3 {script} {tmp_path}/req.json")
    out, err = p.communicate(timeout=60)
    replies = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(replies) == 4, (out, err)
    assert all(m["type"] == "error" for m in replies), replies
    assert replies[0]["error"] == "unknown-request"
    assert replies[1]["error"] == "unknown-request"
    assert broker.show(1)["state"] == "pending" and not target.exists()
    # the legitimate route, from outside
    assert broker.airlock("approve", 1, user=ALICE).returncode == 0
    broker.wait_state(1, ("succeeded",))
    assert target.exists()


def assert_refused_inside(broker, r, rid):
    """The attempt from inside failed: either the sandbox kept the bound-in
    admin socket unusable (it masks host sockets), or the connection reached
    the broker, which refused the confined peer. Either way nothing changed."""
    if f"rc={EX_DENIED}" in r.stdout:
        assert "outside every sandbox" in r.stderr, r.stderr
        assert f"refused an approval of request {rid}" in broker.log.read_text()
    else:
        assert f"rc={EX_UNAVAILABLE}" in r.stdout, (r.stdout, r.stderr)
        assert "Permission denied" in r.stderr or "No such file" in r.stderr, r.stderr
    assert broker.show(rid)["state"] == "pending"


def test_approver_uid_inside_sandbox_with_the_admin_socket_bound_in_is_refused(broker, tmp_path):
    """Even given the admin socket (bound in with --ro) and an approver uid (the
    agent user is an approver in this policy), approving from inside fails: the
    sandbox masks the socket, and were it reachable the broker checks the
    peer's namespaces, no_new_privs, seccomp and cgroup (shown on its own in
    test_broker_core.test_confined_processes_cannot_approve_whatever_their_uid)."""
    target = tmp_path / "bound"
    broker.airlock("exec", "--wait", "0", "--", "touch", target, user=ALICE)
    rid = wait_pending(broker)[0]["id"]
    digest = broker.show(rid)["digest"]
    r = run_in_sandbox(broker,
                       f"id -un; AIRLOCK_SOCKET={broker.admin} {A} approve --digest {digest} "
                       f"{rid}; echo rc=$?",
                       extra=("--ro", str(broker.runtime)))
    assert r.stdout.startswith(AGENT_USER), r.stdout
    assert_refused_inside(broker, r, rid)
    assert not target.exists()
    # the same uid outside any sandbox may approve
    r = broker.airlock("approve", "--digest", digest, rid, user=AGENT_USER)
    assert r.returncode == 0, r.stderr
    broker.wait_state(rid, ("succeeded",))
    assert target.exists()


def test_unprivileged_sandbox_of_an_approver_cannot_approve(broker, tmp_path):
    """alice (an approver) runs the agent in her own sandbox: inside, the agent
    has alice's uid; it still cannot approve anything."""
    target = tmp_path / "by-bob"
    broker.airlock("exec", "--wait", "0", "--", "touch", target, user=BOB)
    rid = wait_pending(broker)[0]["id"]
    digest = broker.show(rid)["digest"]
    # alice's own files: a policy and a workspace she can read
    ws = pathlib.Path(tempfile.mkdtemp(prefix="airlock-alice-", dir="/var/tmp"))
    shutil.chown(ws, ALICE, ALICE)
    pol = ws / "policy.yaml"
    pol.write_text(broker.policy.read_text())
    pol.chmod(0o644)
    try:
        r = run_in_sandbox(broker,
                           f"id -un; AIRLOCK_SOCKET={broker.admin} {A} approve --digest "
                           f"{digest} {rid}; echo rc=$?",
                           extra=("--ro", str(broker.runtime), "--workspace", str(ws)),
                           env={"AIRLOCK_POLICY": str(pol)}, user=ALICE)
    finally:
        shutil.rmtree(ws, ignore_errors=True)
    if "rc=" not in r.stdout or "AddressSanitizer" in r.stderr:
        if "Failed to mmap" in r.stderr or "ReserveShadowMemoryRange" in r.stderr:
            pytest.skip("AddressSanitizer cannot reserve its shadow memory under the limits of "
                        "an unprivileged sandbox; this test runs in the plain build")
        pytest.fail(f"alice's sandbox did not start: {r.stderr}")
    assert r.stdout.startswith(ALICE), r.stdout
    assert_refused_inside(broker, r, rid)
    assert broker.airlock("approve", "--digest", digest, rid, user=ALICE).returncode == 0
    broker.wait_state(rid, ("succeeded",))


def test_session_ends_with_the_sandbox(broker):
    r = run_in_sandbox(broker, "true")
    assert r.returncode == 0
    # the broker ends the session when the sandbox's connection closes: a moment later
    deadline = time.time() + 30
    while time.time() < deadline and (
            list((broker.runtime / "sessions").iterdir()) or
            not any(e["event"] == "session_end" for e in broker.audit_events())):
        time.sleep(0.05)
    assert list((broker.runtime / "sessions").iterdir()) == []
    starts = [e for e in broker.audit_events() if e["event"] == "session_start"]
    ends = [e for e in broker.audit_events() if e["event"] == "session_end"]
    assert len(starts) == 1 and len(ends) == 1
    assert starts[0]["agent"]["name"] == "claude"


def test_without_a_broker_the_sandbox_confines_and_requests_say_how_to_start_it(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("root-started sandbox")
    pol = tmp_path / "policy.yaml"
    pol.write_text(policy_text(BASE_RULES))
    e = dict(os.environ)
    e["AIRLOCK_POLICY"] = str(pol)
    e["AIRLOCK_SOCKET"] = str(tmp_path / "no-broker.sock")
    e.pop("AIRLOCK_SESSION_SOCKET", None)
    r = subprocess.run([str(AIRLOCK), "run", "--", "sh", "-c",
                        f"touch /etc/airlock-probe; echo touch=$?; {A} exec -- true; echo rc=$?"],
                       env=e, capture_output=True, text=True, timeout=60, cwd="/tmp")
    assert "no broker" in r.stderr and "start airlockd" in r.stderr
    assert "touch=1" in r.stdout  # still confined
    assert f"rc={EX_UNAVAILABLE}" in r.stdout
    assert "start it" in r.stderr
    assert not pathlib.Path("/etc/airlock-probe").exists()


def test_timeout_inside_prints_id_and_how_to_wait(broker, tmp_path):
    r = run_in_sandbox(broker, f"{A} exec --wait 0 -- touch {tmp_path}/w; echo rc=$?")
    assert f"rc={EX_TIMEOUT}" in r.stdout
    assert "airlock wait 1" in r.stderr
