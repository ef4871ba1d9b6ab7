"""airlock log, log verify and log setup-keys, driven through the real
binary against logs written by the real writer (tests/unit/audit/audit-writer)."""
import hashlib
import json
import os
import pathlib
import re
import select
import socket
import subprocess
import threading
import time

import pytest

from audit_helpers import WRITER, records, setup_keys, verify, write
from conftest import AIRLOCK, ROOT


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def test_setup_keys_shows_the_key_once_and_keeps_only_the_epoch_key(airlock, state):
    r = airlock("log", "setup-keys", "--state-dir", state)
    assert r.returncode == 0, r.stderr
    vkey = re.search(r"alvk1-[0-9a-f]{16}-([0-9a-f]{64})-[0-9a-f]{8}", r.stdout)
    assert vkey, r.stdout
    k0 = vkey.group(1)
    keyfile = state / "audit.key"
    assert keyfile.stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    # k0 itself is nowhere on the host.
    for f in state.iterdir():
        assert k0 not in f.read_text(errors="replace")
    again = airlock("log", "setup-keys", "--state-dir", state)
    assert again.returncode == 64
    assert "already has a seal key" in again.stderr and "—" in again.stderr
    assert "alvk1-" not in again.stdout


def test_timeline_and_filters(airlock, state):
    setup_keys(state)
    write(state, "--threads", "2", "--records", "14", "--story", "--seal-every", "10")
    r = airlock("log", "--state-dir", state)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("request_approved" in l and "approver_name=bob" in l for l in lines)
    assert any("exec_end" in l and "exit_status=0" in l for l in lines)
    assert any("agent=claude(uid 1001, started by alice)" in l and
               "$ systemctl restart corosync" in l for l in lines)
    assert not any(" seal " in l for l in lines)  # seals hidden by default
    assert any(" seal " in l for l in airlock("log", "--state-dir", state, "--all").stdout.splitlines())

    j = airlock("log", "--state-dir", state, "--json", "--all")
    file_lines = (state / "audit.log").read_text().splitlines()
    assert j.stdout.splitlines() == file_lines

    one = airlock("log", "--state-dir", state, "--json", "--request", "req-1-1")
    recs = [json.loads(l) for l in one.stdout.splitlines()]
    assert len(recs) == 7 and {r["request"] for r in recs} == {"req-1-1"}
    assert [r["event"] for r in recs][:3] == ["session_start", "request_submitted", "request_decided"]

    codex = airlock("log", "--state-dir", state, "--json", "--agent", "codex")
    assert codex.stdout and all(json.loads(l)["agent"]["name"] == "codex"
                                for l in codex.stdout.splitlines())

    assert airlock("log", "--state-dir", state, "--since", "2999-01-01").stdout == ""
    assert airlock("log", "--state-dir", state, "--since", "1h").stdout.count("\n") == len(lines)
    bad = airlock("log", "--state-dir", state, "--since", "yesterday")
    assert bad.returncode == 64 and "2h" in bad.stderr


def jansson_escape(s):
    """json.dumps as jansson writes it (uppercase \\u escapes)."""
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), s)


def test_timeline_escapes_what_an_agent_wrote(airlock, tmp_path):
    rec = {"agent": {"name": "evil\x1b]0;owned\x07", "session": "s", "started_by": "alice",
                     "uid": 1000},
           "argv": ["echo", "\x1b[2J\x1b[31mAPPROVED", "a\nb"], "details": {}, "event": "request_submitted",
           "host": "h", "prev": "0" * 64, "request": "r-1", "seq": 1, "target": None,
           "time": "2026-11-28T10:00:00.000000Z", "v": 1}
    line = jansson_escape(json.dumps(rec, sort_keys=True, separators=(",", ":")))
    log = tmp_path / "audit.log"
    log.write_text(line + "\n")
    r = airlock("log", "--file", log)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "\\x1b[2J" in r.stdout and "evil\\x1b]0;owned\\x07" in r.stdout
    assert r.stdout.count("\n") == 1  # the newline inside argv did not forge a line


def test_verify_intact_tampered_and_keyless(airlock, state):
    vkey = setup_keys(state)
    write(state, "--threads", "4", "--records", "30", "--seal-every", "16")
    log = state / "audit.log"

    ok = airlock("log", "verify", "--state-dir", state, "--key", vkey)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK: the chain is intact and every seal verifies" in ok.stdout
    assert "closed" in ok.stdout

    keyless = airlock("log", "verify", "--state-dir", state)
    assert keyless.returncode == 0
    assert "WARNING: no --key: seals NOT verified" in keyless.stdout

    lines = log.read_bytes().split(b"\n")
    lines[40] = lines[40].replace(b"corosync", b"corosynd")
    log.write_bytes(b"\n".join(lines))
    bad = airlock("log", "verify", "--state-dir", state, "--key", vkey)
    assert bad.returncode == 1
    assert "FAIL (modified) at line 41, seq 41" in bad.stdout
    j = verify(log, "--key", vkey)
    assert (j["ok"], j["problem"], j["line"], j["seq"]) == (False, "modified", 41, 41)


def test_verify_usage_errors(airlock, state, tmp_path):
    vkey = setup_keys(state)
    write(state, "--threads", "1", "--records", "2")
    r = airlock("log", "verify", "--state-dir", state, "--key", vkey[:-1] + ("0" if vkey[-1] != "0" else "1"))
    assert r.returncode == 64 and "checksum" in r.stderr
    r = airlock("log", "verify", "--state-dir", state, "--head", "12:nothex")
    assert r.returncode == 64 and "SEQ:HASH" in r.stderr
    r = airlock("log", "verify", "--state-dir", tmp_path / "nowhere")
    assert r.returncode == 1 and "does not exist" in r.stderr
    keyfile = tmp_path / "k"
    keyfile.write_text(vkey + "\n")
    r = airlock("log", "verify", "--state-dir", state, "--key-file", keyfile)
    assert r.returncode == 0, r.stdout


def test_external_head_from_syslog_catches_truncation(airlock, state, tmp_path):
    """The writer's syslog copy carries the chain head out of the file; a log
    cut back to an earlier seal passes on its own, but not against that head."""
    vkey = setup_keys(state)
    sock_path = tmp_path / "log.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(sock_path))
    s.setblocking(False)
    heads, bursts, done = [], [0], threading.Event()

    def drain():  # reads every datagram queued now; returns how many
        n = 0
        while True:
            try:
                msg = s.recv(4096).decode()
            except BlockingIOError:
                return n
            m = re.search(r"seq=(\d+) hash=([0-9a-f]{64})", msg)
            assert m and "airlock-audit[" in msg and msg.startswith("<86>"), msg
            heads.append((int(m.group(1)), m.group(2)))
            n += 1

    def receive():  # a syslog daemon: reads while the writer writes
        while not done.is_set():
            if select.select([s], [], [], 0.2)[0]:
                bursts.append(drain())

    t = threading.Thread(target=receive)
    t.start()
    try:
        write(state, "--threads", "2", "--records", "20", "--seal-every", "8", "--copy", "syslog",
              "--syslog-socket", sock_path)
    finally:
        done.set()
        t.join()
    try:
        # The writer has exited, and a copy is queued by the time its send() returns:
        # what is queued now is every copy that will ever arrive.
        bursts.append(drain())
    finally:
        s.close()
    log = state / "audit.log"
    data = log.read_bytes()
    recs = records(data)
    hashes = {}
    for line in data.split(b"\n"):
        try:
            hashes[json.loads(line)["seq"]] = hashlib.sha256(line).hexdigest()
        except (ValueError, TypeError, KeyError):
            continue
    seqs = [h[0] for h in heads]
    assert seqs == sorted(set(seqs)) and set(seqs) <= set(recs), seqs  # in order, one per record
    assert all(h == hashes[q] for q, h in heads)  # each carries its own record's hash
    # One copy per record, except that the writer waits only briefly (never stalls) while the
    # receiver's queue is full: a copy may be lost only after the queue filled, so never one of
    # the first max_dgram_qlen, and only if a read then found the queue that full.
    qlen = int(pathlib.Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    assert seqs[:qlen] == sorted(recs)[:qlen], seqs
    if seqs != sorted(recs):
        assert max(bursts) >= qlen, f"copies lost though the queue never filled: {seqs} {bursts}"
    head = "%d:%s" % heads[-1]
    assert verify(log, "--key", vkey, "--head", head)["ok"]

    # Cut the log right after its first seal: sealed and chained, so alone it passes.
    data = log.read_bytes()
    lines = data.split(b"\n")
    first_seal = next(i for i, l in enumerate(lines) if b'"event":"seal"' in l)
    assert heads[-1][0] >= first_seal + 2, (heads[-1][0], first_seal)  # the head is past the cut
    log.write_bytes(b"\n".join(lines[:first_seal + 1]) + b"\n")
    alone = airlock("log", "verify", "--file", log, "--key", vkey)
    assert alone.returncode == 0 and "--head" in alone.stdout  # it says what it cannot know
    j = verify(log, "--key", vkey, "--head", head)
    assert (j["ok"], j["problem"], j["seq"]) == (False, "truncated", first_seal + 2)


def test_follow_prints_new_records(state):
    setup_keys(state)
    write(state, "--threads", "1", "--records", "1")
    p = subprocess.Popen([str(AIRLOCK), "log", "-f", "--json", "--all", "--state-dir", str(state)],
                         stdout=subprocess.PIPE)
    try:
        write(state, "--threads", "1", "--records", "3")
        last = max(records((state / "audit.log").read_bytes()))
        out, deadline = b"", time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([p.stdout], [], [], 1)
            if ready:
                out += os.read(p.stdout.fileno(), 65536)
                if last in records(out):
                    break
        assert last in records(out)
    finally:
        p.terminate()
        p.wait(timeout=10)
    assert p.returncode == 0


def man_page_verifier():
    text = (ROOT / "man" / "airlock-log.5.scd").read_text()
    code = text.split("```\n")[1]
    return code.replace("\\\\", "\\")


def test_independent_verifier_in_the_man_page_agrees(state, airlock):
    """airlock-log(5) shows a verifier in a few lines of Python: run it."""
    vkey = setup_keys(state)
    write(state, "--threads", "2", "--records", "10", "--seal-every", "7")
    log = state / "audit.log"
    with open(log, "ab") as f:
        f.write(b'{"agent":{"na')  # a crash's torn write, then a restart
    write(state, "--threads", "1", "--records", "2")
    ns = {"__name__": "airlock_log_5"}
    exec(man_page_verifier(), ns)
    seq, head = ns["verify"](log.read_bytes(), vkey)
    j = verify(log, "--key", vkey)
    assert j["ok"] and j["torn_recorded"] == 1
    assert (seq, head) == (j["last_seq"], j["last_hash"])
    lines = log.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"restart", b"stop", 1)
    with pytest.raises(ValueError):
        ns["verify"](b"\n".join(lines), vkey)


@pytest.mark.parametrize("kind,problem,line", [
    ("delete", "missing", 10),
    ("swap", "reordered", 10),
    ("insert", "inserted", 11),
    ("torn", "torn", 10),
    ("unsealed", "unsealed-tail", None),
])
def test_verify_names_each_kind_of_change(airlock, state, kind, problem, line):
    vkey = setup_keys(state)
    if kind == "unsealed":
        # The writer stops without closing (as a crash would) before its next seal.
        write(state, "--threads", "1", "--records", "25", "--seal-every", "10", "--no-close")
    else:
        write(state, "--threads", "1", "--records", "25", "--seal-every", "10")
    log = state / "audit.log"
    lines = log.read_bytes().split(b"\n")[:-1]
    if kind == "delete":
        del lines[9]
    elif kind == "swap":
        lines[9], lines[10] = lines[10], lines[9]
    elif kind == "insert":
        lines.insert(10, lines[2])
    if kind == "torn":
        log.write_bytes(b"\n".join(lines[:9]) + b"\n" + lines[9][:40])
    else:
        log.write_bytes(b"\n".join(lines) + b"\n")
    r = airlock("log", "verify", "--file", log, "--key", vkey)
    assert r.returncode == 1, r.stdout
    assert f"FAIL ({problem})" in r.stdout
    if line:
        assert f"at line {line}," in r.stdout, r.stdout
    else:
        # The records after the last seal, named as such.
        last_seal = max(i for i, l in enumerate(lines) if b'"event":"seal"' in l)
        assert f"at line {last_seal + 2}," in r.stdout and "after the last seal" in r.stdout
