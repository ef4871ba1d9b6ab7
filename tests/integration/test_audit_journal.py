"""The copy of each record that leaves the file, both ways: with a journald
socket present the writer sends native journal entries (MESSAGE_ID and
AIRLOCK_* fields) through sd_journal_send(); without one it falls back to
syslog. No journald runs on the test machines, so the test puts a receiving
socket at /run/systemd/journal/socket inside a private mount namespace (a
tmpfs over /run that only this test sees)."""
import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from audit_helpers import WRITER, records, setup_keys, verify

RECEIVER = textwrap.dedent(r"""
    import json, os, select, socket, subprocess, sys, threading
    writer, state, syslog_path = sys.argv[1:4]
    os.makedirs("/run/systemd/journal", exist_ok=True)
    socks = {}
    for name, path in (("journal", "/run/systemd/journal/socket"), ("syslog", syslog_path)):
        socks[name] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        socks[name].bind(path)
        socks[name].setblocking(False)

    def drain(name, got):  # reads every datagram queued now; returns how many
        n = 0
        while True:
            try:
                got[name].append(socks[name].recv(65536).decode())
            except BlockingIOError:
                return n
            n += 1

    def run():
        got = {name: [] for name in socks}
        burst = {name: 0 for name in socks}  # the most datagrams one read found queued
        done = threading.Event()

        def loop(name):  # reads while the writer writes
            while not done.is_set():
                if select.select([socks[name]], [], [], 0.2)[0]:
                    burst[name] = max(burst[name], drain(name, got))
        threads = [threading.Thread(target=loop, args=(name,)) for name in socks]
        for t in threads:
            t.start()
        try:
            subprocess.run([writer, "--state-dir", state, "--threads", "2", "--records", "5",
                            "--copy", "auto", "--syslog-socket", syslog_path], check=True,
                           stdout=subprocess.DEVNULL)
        finally:
            done.set()
            for t in threads:
                t.join()
        # The writer has exited, and a copy is queued by the time its send() returns:
        # what is queued now is every copy of this run that will ever arrive.
        for name in socks:
            burst[name] = max(burst[name], drain(name, got))
        return got, burst

    first, _ = run()
    os.unlink("/run/systemd/journal/socket")  # journald stops
    second, burst = run()
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        qlen = int(f.read())
    print(json.dumps({"with_journald": first, "without": second, "syslog_burst": burst["syslog"],
                      "qlen": qlen}))
""")


def test_copies_go_to_journald_when_it_runs_else_to_syslog(tmp_path):
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is missing — install util-linux")
    state = tmp_path / "state"
    setup_keys(state)
    script = tmp_path / "receiver.py"
    script.write_text(RECEIVER)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs tmpfs /run && exec "$0" "$@"', sys.executable, str(script),
                        str(WRITER), str(state), str(tmp_path / "syslog.sock")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    log = state / "audit.log"
    recs = records(log.read_bytes())

    # First run: every record went to the journal, none to syslog.
    first = got["with_journald"]
    assert first["syslog"] == []
    entries = [dict(l.split("=", 1) for l in m.splitlines() if "=" in l) for m in first["journal"]]
    assert entries and all(e["MESSAGE_ID"] == "4f8d1c2b7a6e45e39b0a5c3d2e1f7a60" and
                           e["SYSLOG_IDENTIFIER"] == "airlock-audit" for e in entries)
    seqs = [int(e["AIRLOCK_SEQ"]) for e in entries]
    assert seqs == list(range(1, len(seqs) + 1))
    for e in entries:
        assert recs[int(e["AIRLOCK_SEQ"])]["event"] == e["AIRLOCK_EVENT"]
    # The journal's head checks the file: it names the last record of the first run.
    head = "%s:%s" % (entries[-1]["AIRLOCK_SEQ"], entries[-1]["AIRLOCK_HASH"])
    assert verify(log, "--head", head)["ok"]
    bad_head = head[:-1] + ("0" if head[-1] != "0" else "1")
    j = verify(log, "--head", bad_head)
    assert (j["ok"], j["problem"], j["seq"]) == (False, "head-mismatch", seqs[-1])

    # Second run, journald gone: the copies arrive over syslog instead.
    second = got["without"]
    assert second["journal"] == [] and second["syslog"]
    sseqs = [int(m.split("seq=")[1].split()[0]) for m in second["syslog"]]
    expected = list(range(seqs[-1] + 1, max(recs) + 1))
    # One copy per record, in order, except that the syslog copy waits only briefly (never
    # stalls the writer) while the receiver's queue is full: a copy may be lost only after the
    # queue filled, so never one of the first max_dgram_qlen, and only if a read then found
    # the queue that full. (sd_journal_send() blocks instead: the journal gets every one.)
    assert sseqs == sorted(set(sseqs)) and set(sseqs) <= set(expected), sseqs
    assert sseqs[:got["qlen"]] == expected[:got["qlen"]], sseqs
    if sseqs != expected:
        assert got["syslog_burst"] >= got["qlen"], f"copies lost, the queue never full: {sseqs}"
