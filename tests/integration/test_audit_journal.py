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
    import json, os, socket, subprocess, sys, threading, time
    writer, state, syslog_path = sys.argv[1:4]
    os.makedirs("/run/systemd/journal", exist_ok=True)
    got = {"journal": [], "syslog": []}

    def serve(path, name):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(0.2)
        def loop():
            while not done:
                try:
                    got[name].append(s.recv(65536).decode())
                except socket.timeout:
                    pass
        t = threading.Thread(target=loop)
        t.start()
        return t

    def run():
        subprocess.run([writer, "--state-dir", state, "--threads", "2", "--records", "5",
                        "--copy", "auto", "--syslog-socket", syslog_path], check=True,
                       stdout=subprocess.DEVNULL)
        time.sleep(0.5)

    done = False
    threads = [serve("/run/systemd/journal/socket", "journal"), serve(syslog_path, "syslog")]
    run()
    first = {k: list(v) for k, v in got.items()}
    os.unlink("/run/systemd/journal/socket")  # journald stops
    for v in got.values():
        v.clear()
    run()
    done = True
    for t in threads:
        t.join()
    print(json.dumps({"with_journald": first, "without": got}))
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
    assert sseqs == list(range(seqs[-1] + 1, max(recs) + 1))
