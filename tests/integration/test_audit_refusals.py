"""Refused approvals and rejected policy reloads are in the audit log: every
approval or denial the broker refuses (a confined peer, a non-approver, the
requester, a second approval by the same person, a digest other than the
request's, a request that is not pending or not visible) is recorded as
approval_refused before the peer hears of the refusal, and a SIGHUP that
finds the policy invalid is recorded as policy_rejected, with the policy
that stays in force."""
import json
import os
import subprocess
import textwrap
import time

import pytest

from broker_helpers import (APPROVERS, BASE_RULES, EX_DENIED, OUTSIDER, Broker, Raw,
                            ensure_users, exec_raw, open_session, policy_text)

ALICE, BOB = APPROVERS


@pytest.fixture
def broker(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the broker runs as root and the test switches users (run as root)")
    ensure_users()
    b = Broker(tmp_path, policy_text(BASE_RULES)).start()
    yield b
    b.stop()


def refusals(broker, rid=None):
    return [e for e in broker.audit_events() if e["event"] == "approval_refused" and
            (rid is None or e["request"] == str(rid))]


def pending(broker, argv, user=None):
    r = broker.airlock("exec", "--wait", "0", "--", *argv, user=user)
    assert r.returncode != 0
    return json.loads(broker.airlock("requests", "--json").stdout)[0]["id"]


def check_refusal(broker, rid, n, user, args, reason, r):
    # the reply came after the record: it is in the log already
    recs = refusals(broker, rid)
    assert len(recs) == n, (reason, recs)
    rec = recs[-1]
    d = rec["details"]
    assert d["reason"] == reason and d["user"] == user, rec
    assert d["verdict"] == args[0]
    assert d["uid"] == int(os.popen(f"id -u {user}").read())
    assert d["message"] in r.stderr  # what the peer was told, word for word
    return rec


def test_each_refused_approval_is_recorded_before_the_reply(broker, tmp_path):
    rid = pending(broker, ["touch", tmp_path / "a"], user=ALICE)
    digest = broker.show(rid)["digest"]
    argv = ["touch", str(tmp_path / "a")]
    cases = [
        # (who, approve args, expected reason, whether the peer may see the request)
        (OUTSIDER, ["approve", "--digest", digest, rid], "not-found", False),
        (OUTSIDER, ["deny", "--why", "mine now", rid], "not-found", False),
        (ALICE, ["approve", rid], "requester-cannot-approve", True),
        (BOB, ["approve", "--digest", "0" * 64, rid], "digest-mismatch", True),
    ]
    for n, (user, args, reason, visible) in enumerate(cases, 1):
        r = broker.airlock(*args, user=user)
        assert r.returncode != 0, (reason, r.stdout, r.stderr)
        rec = check_refusal(broker, rid, n, user, args, reason, r)
        # nothing about a request the peer may not see, beyond the id it named
        assert rec.get("argv") == (argv if visible else None), rec
        assert broker.show(rid)["state"] == "pending"
    assert refusals(broker, rid)[1]["details"]["why"] == "mine now"
    assert refusals(broker, rid)[3]["details"]["shown_sha256"] == "0" * 64
    # the same approval, where it is allowed, is no refusal
    assert broker.airlock("approve", "--digest", digest, rid, user=BOB).returncode == 0
    broker.wait_state(rid, ("succeeded",))
    assert len(refusals(broker, rid)) == len(cases)
    # approving what has finished, and what does not exist
    r = broker.airlock("approve", rid, user=BOB)
    assert r.returncode == EX_DENIED
    check_refusal(broker, rid, len(cases) + 1, BOB, ["approve"], "not-pending", r)
    r = broker.airlock("approve", "--digest", digest, "987654", user=BOB)
    assert r.returncode != 0
    check_refusal(broker, 987654, 1, BOB, ["approve"], "not-found", r)


def test_non_approver_is_refused_and_recorded(broker, tmp_path):
    """A user who is not an approver, on a request it may see (its own)."""
    rid = pending(broker, ["touch", tmp_path / "e"], user=OUTSIDER)
    r = broker.airlock("approve", rid, user=OUTSIDER)
    assert r.returncode == EX_DENIED
    rec = check_refusal(broker, rid, 1, OUTSIDER, ["approve"], "not-approver", r)
    assert rec["argv"] == ["touch", str(tmp_path / "e")]
    assert broker.show(rid)["state"] == "pending" and not (tmp_path / "e").exists()
    # its own request it may deny: that is a denial, not a refusal
    assert broker.airlock("deny", "--why", "changed my mind", rid, user=OUTSIDER).returncode == 0
    assert broker.show(rid)["state"] == "denied"
    assert len(refusals(broker, rid)) == 1


def test_second_approval_by_the_same_person_is_recorded(broker, tmp_path):
    rid = pending(broker, ["tee", tmp_path / "two"])  # needs two approvers
    assert broker.airlock("approve", rid, user=ALICE).returncode == 0
    r = broker.airlock("approve", rid, user=ALICE)
    assert r.returncode == EX_DENIED and "already approved" in r.stderr
    rec = refusals(broker, rid)
    assert [e["details"]["reason"] for e in rec] == ["already-approved"]
    assert rec[0]["details"]["user"] == ALICE
    approved = [e for e in broker.audit_events()
                if e["event"] == "request_approved" and e["request"] == str(rid)]
    assert len(approved) == 1  # the refused one is not an approval


def test_confined_approval_is_recorded_and_the_same_root_outside_approves(broker, tmp_path):
    rid = pending(broker, ["touch", tmp_path / "c"], user=ALICE)
    r = broker.airlock("approve", rid, prefix=["unshare", "--user", "--map-root-user"])
    assert r.returncode == EX_DENIED and "outside every sandbox" in r.stderr
    rec = refusals(broker, rid)
    assert len(rec) == 1 and rec[0]["details"]["reason"] == "confined"
    assert "another user namespace" in rec[0]["details"]["message"]
    assert not (tmp_path / "c").exists()
    # outside, the same uid approves, and that is no refusal
    assert broker.airlock("approve", rid).returncode == 0
    broker.wait_state(rid, ("succeeded",))
    assert len(refusals(broker, rid)) == 1


def test_malformed_digest_is_refused_and_still_recorded(broker, tmp_path):
    """Bytes an attacker picks for the digest cannot keep the refusal out of
    the log (the record stays valid UTF-8 whatever is cut)."""
    rid = pending(broker, ["touch", tmp_path / "d"], user=ALICE)
    c = Raw(broker.admin)  # root, an approver, not the requester
    bad = "é" * 32  # 64 bytes, multibyte all along
    m = c.call({"type": "approve", "id": rid, "digest": bad})
    assert m["type"] == "error" and m["error"] == "digest-mismatch", m
    rec = refusals(broker, rid)
    assert len(rec) == 1 and rec[0]["details"]["shown_sha256"] == bad
    assert broker.show(rid)["state"] == "pending"


def test_session_agent_request_refusal_names_the_peer(broker, tmp_path):
    holder, sock, _ = open_session(broker, agent="claude")
    agent = Raw(sock)
    first, _, _ = exec_raw(agent, ["touch", str(tmp_path / "s")], wait_ms=0)
    rid = first["request"]["id"]
    r = broker.airlock("approve", "--digest", "1" * 64, rid, user=ALICE)
    assert r.returncode == EX_DENIED
    rec = refusals(broker, rid)
    assert len(rec) == 1
    assert rec[0]["agent"]["name"] == "claude" and rec[0]["details"]["user"] == ALICE
    # the timeline says who tried, not only whose request it was
    line = [x for x in broker.airlock("log", "--state-dir", broker.state).stdout.splitlines()
            if "approval_refused" in x]
    assert len(line) == 1 and f"by {ALICE}" in line[0] and "agent=claude" in line[0], line
    assert "reason=digest-mismatch" in line[0] and "verdict=approve" in line[0]
    holder.close()


def test_rejected_reload_is_recorded_with_the_policy_kept(broker):
    loaded = [e for e in broker.audit_events() if e["event"] == "policy_loaded"]
    in_force = loaded[-1]["details"]["sha256"]
    broker.policy.write_text("version: 1\nrules: [{nonsense: 1}]\n")
    broker.hup()
    deadline = time.time() + 10
    while not [e for e in broker.audit_events() if e["event"] == "policy_rejected"]:
        assert time.time() < deadline
        time.sleep(0.05)
    rec = [e for e in broker.audit_events() if e["event"] == "policy_rejected"]
    assert len(rec) == 1
    d = rec[0]["details"]
    assert d["kept_sha256"] == in_force and d["path"] == str(broker.policy)
    assert "has no action" in d["error"]
    # the old policy is in force: echo is still allowed
    assert broker.airlock("exec", "--", "echo", "a").returncode == 0
    # a valid reload is a policy_loaded, not a rejection
    broker.policy.write_text(policy_text(BASE_RULES) + "# changed\n")
    broker.hup()
    while len([e for e in broker.audit_events() if e["event"] == "policy_loaded"]) == len(loaded):
        assert time.time() < deadline
        time.sleep(0.05)
    assert len([e for e in broker.audit_events() if e["event"] == "policy_rejected"]) == 1
    v = json.loads(broker.airlock("log", "verify", "--json", "--state-dir", broker.state).stdout)
    assert v["problem"] == "unsealed-tail", v  # the chain with the new events is intact


def test_a_flood_of_refused_verdicts_is_counted_not_synced_one_by_one(broker, tmp_path):
    """Any local user may try verdicts on the admin socket; each recorded refusal is a synced
    audit record. Past a burst of 20, one user's refusals are still refused but counted, and
    the next record of that user says how many went unrecorded."""
    rid = pending(broker, ["touch", tmp_path / "f"], user=ALICE)
    digest = broker.show(rid)["digest"]
    tries = 60
    # One process, one connection per attempt, back to back: the flood outruns the refill
    # (one token a second) however slow each client of `airlock approve` would be.
    script = textwrap.dedent(f"""\
        import json, socket, struct
        def exact(s, n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                assert chunk, "the broker closed the connection"
                buf += chunk
            return buf
        codes = []
        for _ in range({tries}):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            s.connect({str(broker.admin)!r})
            b = json.dumps({{"type": "approve", "id": {int(rid)}, "digest": {digest!r}}}).encode()
            s.sendall(struct.pack(">I", len(b)) + b)
            m = json.loads(exact(s, struct.unpack(">I", exact(s, 4))[0]))
            codes.append(m["error"] if m["type"] == "error" else m["type"])
            s.close()
        print(json.dumps(codes))
        """)
    r = subprocess.run(["setpriv", f"--reuid={OUTSIDER}", f"--regid={OUTSIDER}",
                        "--clear-groups", "/usr/bin/python3", "-c", script],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["not-found"] * tries  # every one refused
    recs = refusals(broker, rid)
    # the burst, and what the bucket refilled while the flood ran (one per second)
    assert 20 <= len(recs) < tries, len(recs)
    flood_recorded = len(recs)
    time.sleep(1.2)  # a token again: the next refusal is recorded, with the count
    r = broker.airlock("approve", "--digest", digest, rid, user=OUTSIDER)
    assert r.returncode != 0
    recs = refusals(broker, rid)
    assert len(recs) == flood_recorded + 1, len(recs)
    counted = sum(e["details"].get("unrecorded_before", 0) for e in recs)
    # every refusal is either a record or counted in the next record: none is lost
    assert len(recs) + counted == tries + 1, (len(recs), counted)
    assert any(e["details"].get("unrecorded_before", 0) > 0 for e in recs), recs
    assert all(e["details"]["user"] == OUTSIDER for e in recs), recs
    # another user's refusals are recorded as before
    r = broker.airlock("approve", "--digest", digest, rid, user=ALICE)  # the requester
    assert r.returncode != 0
    assert refusals(broker, rid)[-1]["details"]["user"] == ALICE
    # and `airlock log` shows the count
    out = broker.airlock("log", "--state-dir", broker.state).stdout
    assert "more refused before, not recorded" in out, out[-2000:]
